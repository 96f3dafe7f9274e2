//! Hostile layers: nothing may be written outside the root, whatever the tar says.
//!
//! Each test unpacks a crafted tar stream into `root/` and checks the result and that the
//! `canary/` directory next to the root is untouched.

mod fs_support;

use std::fs;
use std::os::unix::fs::FileTypeExt;

use fs_support::{Scratch, TarMaker, host};
use trowel_engine::fs::{FsError, IgnoreList, UnpackOptions, unpack_layer};

fn opts() -> UnpackOptions {
    UnpackOptions { preserve_owner: true, ..UnpackOptions::default() }
}

fn unpack(s: &Scratch, tar: Vec<u8>) -> Result<trowel_engine::fs::UnpackStats, FsError> {
    unpack_layer(&s.root(), &tar[..], &opts())
}

fn assert_unsafe(r: Result<trowel_engine::fs::UnpackStats, FsError>, needle: &str) {
    match r {
        Err(FsError::UnsafeEntry { entry, reason }) => {
            assert!(
                entry.contains(needle) || reason.contains(needle),
                "error for {entry:?} ({reason}) does not mention {needle:?}"
            );
        }
        other => panic!("expected UnsafeEntry mentioning {needle:?}, got {other:?}"),
    }
}

#[test]
fn dotdot_traversal_is_refused() {
    let s = Scratch::new();
    assert_unsafe(unpack(&s, TarMaker::new().file("../canary/secret", b"pwned").finish()), "..");
    assert_unsafe(unpack(&s, TarMaker::new().file("a/../../canary/x", b"pwned").finish()), "..");
    assert_unsafe(unpack(&s, TarMaker::new().dir("..").finish()), "..");
    s.assert_canary_untouched();
}

#[test]
fn absolute_paths_are_refused() {
    let s = Scratch::new();
    let target = format!("{}/secret", s.canary_path().display());
    assert_unsafe(unpack(&s, TarMaker::new().file(&target, b"pwned").finish()), "absolute");
    assert_unsafe(unpack(&s, TarMaker::new().file("/etc/evil", b"pwned").finish()), "absolute");
    assert!(!host(&s.root(), "etc/evil").exists());
    s.assert_canary_untouched();
}

#[test]
fn write_through_absolute_symlink_stays_inside_root() {
    let s = Scratch::new();
    let canary = s.canary_path().display().to_string();
    // An absolute symlink means "from the image root": the write lands inside the root.
    let tar = TarMaker::new().symlink("evil", &canary).file("evil/secret", b"pwned").finish();
    unpack(&s, tar).unwrap();
    let inside = host(&s.root(), &format!("{canary}/secret"));
    assert_eq!(fs::read(&inside).unwrap(), b"pwned");
    s.assert_canary_untouched();
}

#[test]
fn write_through_relative_escaping_symlink_is_refused() {
    let s = Scratch::new();
    let tar = TarMaker::new().symlink("evil", "../canary").file("evil/secret", b"pwned").finish();
    assert_unsafe(unpack(&s, tar), "leaves the root");
    let tar = TarMaker::new().symlink("deep", "../../../../../../../").file("deep/tmp/pwned", b"x").finish();
    assert_unsafe(unpack(&s, tar), "leaves the root");
    // An absolute target with `..` climbing past the image root is an escape attempt too.
    let tar = TarMaker::new().symlink("abs", "/../canary").file("abs/secret", b"x").finish();
    assert_unsafe(unpack(&s, tar), "leaves the root");
    // Chained: a symlink whose target goes through another symlink.
    let tar = TarMaker::new().dir("d").symlink("d/up", "..").symlink("d/up2", "up/..").file("d/up2/x", b"x").finish();
    assert_unsafe(unpack(&s, tar), "leaves the root");
    s.assert_canary_untouched();
}

#[test]
fn hardlinks_to_outside_are_refused() {
    let s = Scratch::new();
    assert_unsafe(unpack(&s, TarMaker::new().hardlink("h", "../canary/secret").finish()), "..");
    let abs = format!("{}/secret", s.canary_path().display());
    assert_unsafe(unpack(&s, TarMaker::new().hardlink("h2", &abs).finish()), "absolute");
    let tar = TarMaker::new().symlink("s", "../canary").hardlink("h3", "s/secret").finish();
    assert_unsafe(unpack(&s, tar), "leaves the root");
    // A hardlink to something that does not exist in the root.
    assert_unsafe(unpack(&s, TarMaker::new().hardlink("h4", "nope").finish()), "does not exist");
    for h in ["h", "h2", "h3", "h4"] {
        assert!(fs::symlink_metadata(host(&s.root(), h)).is_err(), "{h} was created");
    }
    s.assert_canary_untouched();
}

#[test]
fn escaping_whiteouts_are_refused() {
    let s = Scratch::new();
    assert_unsafe(unpack(&s, TarMaker::new().file("../.wh.canary", b"").finish()), "..");
    assert_unsafe(unpack(&s, TarMaker::new().file(".wh...", b"").finish()), "whiteout");
    assert_unsafe(unpack(&s, TarMaker::new().file("a/.wh..", b"").finish()), "whiteout");
    let tar = TarMaker::new().symlink("up", "..").file("up/.wh.canary", b"").finish();
    assert_unsafe(unpack(&s, tar), "leaves the root");
    s.assert_canary_untouched();
}

#[test]
fn whiteout_through_absolute_symlink_deletes_inside_root_only() {
    let s = Scratch::new();
    fs::create_dir_all(host(&s.root(), "real")).unwrap();
    fs::write(host(&s.root(), "real/victim"), b"x").unwrap();
    let tar = TarMaker::new().symlink("link", "/real").file("link/.wh.victim", b"").finish();
    let stats = unpack(&s, tar).unwrap();
    assert_eq!(stats.whiteouts, 1);
    assert!(!host(&s.root(), "real/victim").exists());
    assert!(!host(&s.root(), "link/.wh.victim").exists());
    s.assert_canary_untouched();
}

#[test]
fn devices_need_permission() {
    let s = Scratch::new();
    let tar = TarMaker::new().device(tar::EntryType::Char, "dev/null", 1, 3).finish();
    match unpack(&s, tar.clone()) {
        Err(FsError::DeviceNotAllowed { entry, .. }) => assert_eq!(entry, "dev/null"),
        other => panic!("expected DeviceNotAllowed, got {other:?}"),
    }
    assert!(fs::symlink_metadata(host(&s.root(), "dev/null")).is_err());
    // FIFOs are harmless and always allowed.
    unpack(&s, TarMaker::new().device(tar::EntryType::Fifo, "run/fifo", 0, 0).finish()).unwrap();
    assert!(fs::symlink_metadata(host(&s.root(), "run/fifo")).unwrap().file_type().is_fifo());
    // Allowed (we are root here): a real device node.
    let o = UnpackOptions { allow_devices: true, ..opts() };
    unpack_layer(&s.root(), &tar[..], &o).unwrap();
    let md = fs::symlink_metadata(host(&s.root(), "dev/null")).unwrap();
    assert!(md.file_type().is_char_device());
    s.assert_canary_untouched();
}

#[test]
fn size_limits_are_enforced_before_reading() {
    let s = Scratch::new();
    // Claims a terabyte but carries 10 bytes: the limit must trip on the header alone.
    let tar = TarMaker::new().lying_file("huge", 1 << 40, 10).finish();
    let o = UnpackOptions { max_entry_size: Some(1 << 20), ..opts() };
    match unpack_layer(&s.root(), &tar[..], &o) {
        Err(FsError::TooLarge { entry, size, limit }) => {
            assert_eq!((entry.as_str(), size, limit), ("huge", 1 << 40, 1 << 20));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(!host(&s.root(), "huge").exists());
    let chunk = vec![7u8; 600 * 1024];
    let tar = TarMaker::new().file("a", &chunk).file("b", &chunk).finish();
    let o = UnpackOptions { max_total_size: Some(1 << 20), ..opts() };
    assert!(matches!(unpack_layer(&s.root(), &tar[..], &o), Err(FsError::LayerTooLarge { entry, .. }) if entry == "b"));
    // Without limits a truncated entry is a read error, never a silent short file.
    let tar = TarMaker::new().lying_file("short", 4096, 10).finish();
    assert!(matches!(unpack(&s, tar), Err(FsError::Layer { .. })));
    s.assert_canary_untouched();
}

/// A layer of many empty files passes every size limit; the entry limit stops it at the first
/// entry over the limit, before that entry is written, and counts whiteouts and directories too.
#[test]
fn the_entry_limit_stops_a_layer_at_the_first_entry_over_it() {
    let s = Scratch::new();
    let mut at = TarMaker::new().dir("d");
    for i in 0..8 {
        at = at.file(&format!("d/f{i}"), b"");
    }
    let at = at.file(".wh.gone", b"").finish();
    let o = UnpackOptions { max_entries: Some(10), ..opts() };
    let stats = unpack_layer(&s.root(), &at[..], &o).unwrap();
    assert_eq!((stats.entries, stats.whiteouts), (10, 1));
    let mut over = TarMaker::new().dir("e");
    for i in 0..10 {
        over = over.file(&format!("e/f{i}"), b"");
    }
    let over = over.finish();
    let err = unpack_layer(&s.root(), &over[..], &o).unwrap_err();
    match &err {
        FsError::TooManyEntries { entry, count, limit } => {
            assert_eq!((entry.as_str(), *count, *limit), ("e/f9", 11, 10))
        }
        other => panic!("expected TooManyEntries, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "layer has more than 10 entries (entry \"e/f9\" is number 11; raise --max-layer-entries, 0: no limit)"
    );
    // Nothing at or past the entry over the limit was written (small files before it may still
    // have been waiting in the unpacker's batch).
    assert!(!host(&s.root(), "e/f9").exists());
    // No limit: the same layer unpacks.
    unpack_layer(&s.root(), &over[..], &opts()).unwrap();
    assert!(host(&s.root(), "e/f9").exists());
    s.assert_canary_untouched();
}

#[test]
fn duplicate_entries_replace_and_never_follow() {
    let s = Scratch::new();
    let secret = format!("{}/secret", s.canary_path().display());
    let tar = TarMaker::new()
        .file("x", b"first")
        .symlink("x", "../canary/secret")
        .file("x", b"second")
        .symlink("y", &secret)
        .file("y", b"third")
        .dir("d")
        .file("d", b"file replaces dir")
        .file("e", b"dir replaces file")
        .dir("e")
        .file("e/inner", b"ok")
        .finish();
    unpack(&s, tar).unwrap();
    let r = s.root();
    assert_eq!(fs::read(host(&r, "x")).unwrap(), b"second");
    assert_eq!(fs::read(host(&r, "y")).unwrap(), b"third");
    assert_eq!(fs::read(host(&r, "d")).unwrap(), b"file replaces dir");
    assert_eq!(fs::read(host(&r, "e/inner")).unwrap(), b"ok");
    s.assert_canary_untouched();
}

#[test]
fn lib64_symlink_layer_lands_in_root_lib() {
    let s = Scratch::new();
    let tar = TarMaker::new().dir("lib").symlink("lib64", "/lib").file("lib64/ld.so", b"ELF").finish();
    unpack(&s, tar).unwrap();
    let r = s.root();
    assert_eq!(fs::read(host(&r, "lib/ld.so")).unwrap(), b"ELF");
    assert_eq!(fs::read_link(host(&r, "lib64")).unwrap().to_str().unwrap(), "/lib");
    // A relative variant, and a chain of symlinks, both inside the root.
    let tar = TarMaker::new()
        .symlink("usrlib", "usr/lib")
        .dir("usr")
        .dir("usr/lib")
        .symlink("l2", "usrlib")
        .file("l2/x", b"y")
        .finish();
    unpack(&s, tar).unwrap();
    assert_eq!(fs::read(host(&r, "usr/lib/x")).unwrap(), b"y");
    s.assert_canary_untouched();
}

#[test]
fn symlink_loops_and_file_parents_fail_cleanly() {
    let s = Scratch::new();
    let tar = TarMaker::new().symlink("a", "b").symlink("b", "a").file("a/x", b"x").finish();
    let err = unpack(&s, tar).unwrap_err();
    assert!(err.is_errno(libc::ELOOP), "{err}");
    let tar = TarMaker::new().file("f", b"x").file("f/x", b"x").finish();
    assert_unsafe(unpack(&s, tar), "parent /f is a regular file, not a directory");
    s.assert_canary_untouched();
}

#[test]
fn ignored_paths_are_never_written_or_whited_out() {
    let s = Scratch::new();
    fs::create_dir_all(host(&s.root(), "proc")).unwrap();
    fs::write(host(&s.root(), "proc/keep"), b"mount").unwrap();
    let tar = TarMaker::new().file("proc/evil", b"x").file(".wh.proc", b"").file("processes", b"not ignored").finish();
    let o = UnpackOptions { ignore: IgnoreList::new(["/proc"]), ..opts() };
    unpack_layer(&s.root(), &tar[..], &o).unwrap();
    let r = s.root();
    assert!(!host(&r, "proc/evil").exists());
    assert_eq!(fs::read(host(&r, "proc/keep")).unwrap(), b"mount");
    assert_eq!(fs::read(host(&r, "processes")).unwrap(), b"not ignored");
    // A whiteout of an ancestor keeps the ignored subtree.
    fs::create_dir_all(host(&r, "var/run")).unwrap();
    fs::write(host(&r, "var/run/sock"), b"live").unwrap();
    fs::write(host(&r, "var/other"), b"gone").unwrap();
    let o = UnpackOptions { ignore: IgnoreList::new(["/var/run"]), ..opts() };
    unpack_layer(&r, &TarMaker::new().file(".wh.var", b"").finish()[..], &o).unwrap();
    assert!(!host(&r, "var/other").exists());
    assert_eq!(fs::read(host(&r, "var/run/sock")).unwrap(), b"live");
    s.assert_canary_untouched();
}

#[test]
fn huge_extension_headers_are_refused_without_buffering_them() {
    let s = Scratch::new();
    // A 64 MiB PAX record compresses to almost nothing; the tar crate would buffer it whole
    // (and a real attack would use gigabytes).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let size: u64 = 64 << 20;
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(size);
    h.set_cksum();
    std::io::Write::write_all(&mut gz, h.as_bytes()).unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..(size >> 20) {
        std::io::Write::write_all(&mut gz, &chunk).unwrap();
    }
    let blob = gz.finish().unwrap();
    assert!(blob.len() < 1 << 20, "{}", blob.len());
    let path = s.dir.path().join("root-bomb.gz");
    fs::write(&path, &blob).unwrap();
    let r = trowel_engine::fs::open_layer(fs::File::open(&path).unwrap()).unwrap();
    match unpack_layer(&s.root(), r, &opts()) {
        Err(FsError::Layer { source, .. }) => assert!(source.to_string().contains("exceeds"), "{source}"),
        other => panic!("expected a refused extension header, got {other:?}"),
    }
    fs::remove_file(&path).unwrap();
    s.assert_canary_untouched();
}

#[test]
fn huge_gnu_long_names_are_refused_without_buffering_them() {
    let s = Scratch::new();
    // GNU `L` (long name) and `K` (long link) entries are buffered whole by the tar crate too.
    for kind in [b'L', b'K'] {
        let mut tar = Vec::new();
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_size(16 << 20);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.resize(tar.len() + (16 << 20), b'n');
        tar.extend_from_slice(&[0u8; 1024]);
        match unpack(&s, tar) {
            Err(FsError::Layer { source, .. }) => assert!(source.to_string().contains("exceeds"), "{source}"),
            other => panic!("expected a refused {:?} header, got {other:?}", kind as char),
        }
    }
    s.assert_canary_untouched();
}

#[test]
fn a_zstd_bomb_is_stopped_by_the_layer_limit() {
    let s = Scratch::new();
    // 64 files of 16 MiB of zeros: 1 GiB once unpacked, a few KiB of zstd.
    let path = s.dir.path().join("root-bomb.zst");
    {
        let mut z = zstd::stream::write::Encoder::new(fs::File::create(&path).unwrap(), 3).unwrap();
        let zeros = vec![0u8; 16 << 20];
        for i in 0..64 {
            let mut h = tar::Header::new_ustar();
            h.set_path(format!("z{i}")).unwrap();
            h.set_size(zeros.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            std::io::Write::write_all(&mut z, h.as_bytes()).unwrap();
            std::io::Write::write_all(&mut z, &zeros).unwrap();
        }
        std::io::Write::write_all(&mut z, &[0u8; 1024]).unwrap();
        z.finish().unwrap();
    }
    assert!(fs::metadata(&path).unwrap().len() < 1 << 20);
    let o = UnpackOptions { max_total_size: Some(100 << 20), ..opts() };
    let r = trowel_engine::fs::open_layer(fs::File::open(&path).unwrap()).unwrap();
    match unpack_layer(&s.root(), r, &o) {
        Err(FsError::LayerTooLarge { entry, size, limit }) => {
            assert_eq!((entry.as_str(), size, limit), ("z6", 7 * (16 << 20), 100 << 20));
        }
        other => panic!("expected LayerTooLarge, got {other:?}"),
    }
    // What was written before the limit stays inside the root (the build root is discarded).
    assert!(!host(&s.root(), "z6").exists());
    fs::remove_file(&path).unwrap();
    s.assert_canary_untouched();
}
