//! Layer application semantics: OCI whiteouts and opaque directories, metadata, hardlinks,
//! compression sniffing.

mod fs_support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

use fs_support::{Scratch, TarMaker, host, tree};
use trowel_engine::fs::{UnpackOptions, open_layer, unpack_layer};

fn opts() -> UnpackOptions {
    UnpackOptions { preserve_owner: true, allow_devices: true, ..UnpackOptions::default() }
}

fn apply(s: &Scratch, tar: Vec<u8>) -> trowel_engine::fs::UnpackStats {
    unpack_layer(&s.root(), &tar[..], &opts()).unwrap()
}

fn paths(s: &Scratch) -> Vec<String> {
    tree(&s.root_path()).into_keys().collect()
}

fn lower(s: &Scratch) {
    apply(
        s,
        TarMaker::new()
            .dir("etc")
            .file("etc/keep", b"k")
            .file("etc/gone", b"g")
            .dir("opt")
            .dir("opt/tree")
            .file("opt/tree/a", b"a")
            .dir("opt/tree/sub")
            .file("opt/tree/sub/b", b"b")
            .dir("d")
            .file("d/lower1", b"1")
            .dir("d/sub")
            .file("d/sub/lower2", b"2")
            .finish(),
    );
}

#[test]
fn whiteouts_delete_lower_files_and_trees() {
    let s = Scratch::new();
    lower(&s);
    let st = apply(&s, TarMaker::new().file("etc/.wh.gone", b"").file("opt/.wh.tree", b"").finish());
    assert_eq!(st.whiteouts, 2);
    assert_eq!(paths(&s), vec!["/d", "/d/lower1", "/d/sub", "/d/sub/lower2", "/etc", "/etc/keep", "/opt"]);
    // Whiteout of something that does not exist is fine.
    apply(&s, TarMaker::new().file("etc/.wh.never", b"").file("nodir/.wh.x", b"").finish());
    assert!(!host(&s.root(), "nodir").exists());
}

#[test]
fn opaque_marker_before_children() {
    let s = Scratch::new();
    lower(&s);
    apply(&s, TarMaker::new().dir("d").file("d/.wh..wh..opq", b"").file("d/new", b"n").finish());
    assert_eq!(paths(&s).into_iter().filter(|p| p.starts_with("/d")).collect::<Vec<_>>(), vec!["/d", "/d/new"]);
}

#[test]
fn opaque_marker_after_children_keeps_same_layer_entries() {
    let s = Scratch::new();
    lower(&s);
    let tar = TarMaker::new()
        .dir("d")
        .file("d/new", b"n")
        .dir("d/sub")
        .file("d/sub/new2", b"n2")
        .file("d/.wh..wh..opq", b"")
        .finish();
    apply(&s, tar);
    // d/sub was re-declared by this layer, but its lower child must still disappear.
    assert_eq!(
        paths(&s).into_iter().filter(|p| p.starts_with("/d")).collect::<Vec<_>>(),
        vec!["/d", "/d/new", "/d/sub", "/d/sub/new2"]
    );
}

#[test]
fn whiteout_only_hides_lower_layers() {
    let s = Scratch::new();
    lower(&s);
    // Same layer writes x then whites it out: the layer's own x stays. The whiteout of the
    // lower etc/keep before a re-add replaces it.
    apply(
        &s,
        TarMaker::new()
            .file("x", b"mine")
            .file(".wh.x", b"")
            .file("etc/.wh.keep", b"")
            .file("etc/keep", b"new")
            .finish(),
    );
    assert_eq!(fs::read(host(&s.root(), "x")).unwrap(), b"mine");
    assert_eq!(fs::read(host(&s.root(), "etc/keep")).unwrap(), b"new");
    assert!(!host(&s.root(), ".wh.x").exists());
}

#[test]
fn type_replacement_rules() {
    let s = Scratch::new();
    lower(&s);
    let tar = TarMaker::new().file("opt/tree", b"file now").dir("etc/keep").symlink("d", "/opt").finish();
    apply(&s, tar);
    let r = s.root();
    assert_eq!(fs::read(host(&r, "opt/tree")).unwrap(), b"file now");
    assert!(host(&r, "etc/keep").is_dir());
    assert_eq!(fs::read_link(host(&r, "d")).unwrap().to_str().unwrap(), "/opt");
}

#[test]
fn metadata_is_applied_exactly() {
    let s = Scratch::new();
    let big = 3_000_000u64;
    let cap: &[u8] = &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let tar = TarMaker::new()
        .dir_with("dir", 0o1777, 1_500_000_000)
        .file_with("dir/suid", b"s", 0o4755, 0, 0, 1_400_000_000)
        .file_with("dir/sgid", b"g", 0o2711, 10, 20, 1_400_000_001)
        .pax(&[("uid", big.to_string().as_bytes()), ("gid", b"3000001")])
        .file_with("dir/bigid", b"b", 0o600, 0, 0, 1_400_000_002)
        .pax(&[
            ("SCHILY.xattr.security.capability", cap),
            ("SCHILY.xattr.user.note", b"hi"),
            ("mtime", b"1400000003.25"),
        ])
        .file_with("dir/caps", b"c", 0o755, 0, 0, 1)
        .finish();
    apply(&s, tar);
    let t = tree(&s.root_path());
    let d = &t["/dir"];
    assert_eq!((d.mode, d.mtime), (0o1777, 1_500_000_000), "dir mtime is set after its children");
    assert_eq!(t["/dir/suid"].mode, 0o4755);
    assert_eq!((t["/dir/sgid"].mode, t["/dir/sgid"].uid, t["/dir/sgid"].gid), (0o2711, 10, 20));
    assert_eq!((t["/dir/bigid"].uid, t["/dir/bigid"].gid), (3_000_000, 3_000_001));
    let caps = &t["/dir/caps"];
    assert_eq!(caps.xattrs["security.capability"], cap);
    assert_eq!(caps.xattrs["user.note"], b"hi");
    let md = fs::metadata(host(&s.root(), "dir/caps")).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_400_000_003, 250_000_000));
}

#[test]
fn hardlinks_share_inodes() {
    let s = Scratch::new();
    let tar = TarMaker::new()
        .dir("bin")
        .file_with("bin/busybox", b"BB", 0o755, 0, 0, 1)
        .hardlink("bin/sh", "bin/busybox")
        .hardlink("bin/ls", "./bin/busybox")
        .finish();
    let st = apply(&s, tar);
    assert_eq!((st.entries, st.bytes), (4, 2));
    let ino = |p: &str| fs::metadata(host(&s.root(), p)).unwrap().ino();
    assert_eq!(ino("bin/sh"), ino("bin/busybox"));
    assert_eq!(ino("bin/ls"), ino("bin/busybox"));
    // Re-applying the same layer keeps them linked.
    apply(&s, TarMaker::new().hardlink("bin/sh", "bin/busybox").finish());
    assert_eq!(ino("bin/sh"), ino("bin/busybox"));
}

#[test]
fn open_layer_sniffs_compression() {
    let s = Scratch::new();
    let tar = TarMaker::new().dir("a").file("a/b", &vec![42u8; 100_000]).finish();
    let dir = s.dir.path();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    fs::write(dir.join("l.gz"), gz.finish().unwrap()).unwrap();
    fs::write(dir.join("l.zst"), zstd::encode_all(&tar[..], 3).unwrap()).unwrap();
    fs::write(dir.join("l.tar"), &tar).unwrap();
    for (i, name) in ["l.gz", "l.zst", "l.tar"].iter().enumerate() {
        let root = s.other_root(&format!("root{i}"));
        let r = open_layer(fs::File::open(dir.join(name)).unwrap()).unwrap();
        let st = unpack_layer(&root, r, &opts()).unwrap();
        assert_eq!(st.bytes, 100_000, "{name}");
        assert_eq!(fs::read(host(&root, "a/b")).unwrap().len(), 100_000);
        fs::remove_file(dir.join(name)).unwrap();
    }
}

/// Archives written by GNU tar itself (posix with long names and xattrs; gnu with long names
/// and a sparse file) apply exactly.
#[test]
fn gnu_tar_archives_apply_exactly() {
    let s = Scratch::new();
    let src = s.dir.path().join("root-src");
    let long = "d".repeat(60) + "/" + &"e".repeat(60) + "/" + &"f".repeat(80);
    fs::create_dir_all(src.join(&long)).unwrap();
    fs::write(src.join(&long).join("file-".repeat(20)), b"deep").unwrap();
    std::os::unix::fs::symlink(format!("/{long}"), src.join("ln")).unwrap();
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    // More data segments than a GNU header holds inline: sparse extension blocks follow it.
    for k in 1..12u64 {
        std::os::unix::fs::FileExt::write_at(&sparse, b"segment", k * (600 << 10)).unwrap();
    }
    drop(sparse);
    rustix::fs::lsetxattr(src.join("ln").as_path(), "trusted.x", b"1", rustix::fs::XattrFlags::empty()).unwrap();
    rustix::fs::lsetxattr(src.join("sparse").as_path(), "user.y", b"2", rustix::fs::XattrFlags::empty()).unwrap();
    for (i, args) in
        [vec!["--format=posix", "--xattrs", "--xattrs-include=*"], vec!["--format=gnu", "-S"]].iter().enumerate()
    {
        let tarfile = s.dir.path().join(format!("root-{i}.tar"));
        let out = std::process::Command::new("tar")
            .args(args)
            .arg("-cf")
            .arg(&tarfile)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let dst = s.other_root(&format!("root-dst{i}"));
        unpack_layer(&dst, open_layer(fs::File::open(&tarfile).unwrap()).unwrap(), &opts()).unwrap();
        let mut want = tree(&src);
        if i == 1 {
            // The gnu format carries no xattrs.
            want.values_mut().for_each(|n| n.xattrs.clear());
        }
        fs_support::assert_same_tree(&want, &tree(dst.host_path()));
        fs::remove_file(&tarfile).unwrap();
    }
}

#[test]
fn aufs_metadata_is_skipped() {
    let s = Scratch::new();
    lower(&s);
    let st = apply(
        &s,
        TarMaker::new()
            .file(".wh..wh.aufs", b"")
            .dir(".wh..wh.plnk")
            .file(".wh..wh.plnk/123.456", b"x")
            .dir(".wh..wh.orph")
            .file("etc/added", b"a")
            .finish(),
    );
    assert_eq!((st.entries, st.whiteouts), (1, 0));
    assert!(tree(&s.root_path()).keys().all(|p| !p.contains(".wh.")));
    assert!(host(&s.root(), "etc/added").exists());
}

/// Files of one directory are created through one cached descriptor of it; whatever moves,
/// replaces or removes a directory in between must send the next file to the right place.
#[test]
fn files_land_where_their_path_resolves_when_directories_change_mid_layer() {
    let s = Scratch::new();
    lower(&s);
    let tar = TarMaker::new()
        // Existing files are replaced (the fast create finds the name taken).
        .file_with("d/lower1", b"new", 0o640, 0, 0, 7)
        .file("d/fresh", b"f")
        // The directory the last files went to becomes a symlink to another one...
        .symlink("d", "opt/tree")
        // ...so the next file in "d" lands in opt/tree, not in the old directory.
        .file("d/after", b"via link")
        // A file replaces a directory, then files go to a sibling.
        .file("opt/tree/sub", b"was a dir")
        .file("opt/tree/z", b"z")
        .file("etc/.wh.keep", b"")
        .file("etc/new", b"n")
        // Same path, new directory: a descriptor of the old one would point at nothing.
        .file("opt/x/one", b"1")
        .file("opt/.wh.x", b"")
        .dir("opt/x")
        .file("opt/x/two", b"2")
        .finish();
    apply(&s, tar);
    let r = s.root();
    let t = tree(&s.root_path());
    assert_eq!(fs::read(host(&r, "opt/tree/after")).unwrap(), b"via link");
    assert_eq!(fs::read(host(&r, "opt/tree/sub")).unwrap(), b"was a dir");
    assert_eq!(fs::read(host(&r, "opt/tree/z")).unwrap(), b"z");
    assert!(!t.contains_key("/d/lower1"), "d is a symlink now: {:?}", t.keys().collect::<Vec<_>>());
    assert!(!t.contains_key("/etc/keep"));
    assert_eq!(fs::read(host(&r, "etc/new")).unwrap(), b"n");
    assert_eq!(fs::read_link(host(&r, "d")).unwrap().to_str().unwrap(), "opt/tree");
    assert_eq!(fs::read(host(&r, "opt/x/two")).unwrap(), b"2");
    assert!(!t.contains_key("/opt/x/one"));
}

#[test]
fn a_replaced_file_gets_the_new_content_mode_and_time() {
    let s = Scratch::new();
    lower(&s);
    apply(&s, TarMaker::new().file_with("etc/keep", b"replaced", 0o4711, 5, 6, 1_234_567).finish());
    let t = tree(&s.root_path());
    let k = &t["/etc/keep"];
    assert_eq!((k.mode, k.uid, k.gid, k.mtime), (0o4711, 5, 6, 1_234_567));
    assert_eq!(fs::read(host(&s.root(), "etc/keep")).unwrap(), b"replaced");
}

/// Hundreds of small files are created on several threads in batches; whatever the batching,
/// the result is what a sequential unpack in layer order gives: replaced lower files, the last
/// of two entries for one path, a lower directory replaced by a file, a directory's metadata
/// re-stated after its files.
#[test]
fn batched_small_files_give_the_sequential_result() {
    let s = Scratch::new();
    let mut lower = TarMaker::new().dir("x").file("x/y", b"lower");
    for d in 0..10 {
        lower = lower.dir(&format!("d{d}"));
        for f in 0..30 {
            lower = lower.file(&format!("d{d}/f{f}"), b"lower");
        }
    }
    apply(&s, lower.finish());
    let mut upper = TarMaker::new();
    for d in 0..10 {
        upper = upper.dir(&format!("d{d}"));
        for f in 0..30 {
            upper = upper.file_with(&format!("d{d}/f{f}"), format!("new {d}/{f}").as_bytes(), 0o640, 7, 8, 1_000 + f);
        }
        for g in 0..20 {
            upper = upper.file(&format!("d{d}/g{g}"), format!("added {d}/{g}").as_bytes());
        }
    }
    upper = upper
        .file("d0/g0", b"second entry wins")
        .file("x", b"a file where a directory was")
        .dir_with("d1", 0o700, 1_600_000_000)
        .file("d1/late", b"after the re-stated directory");
    let stats = apply(&s, upper.finish());
    assert_eq!(stats.entries, 10 + 10 * 50 + 4);
    let r = s.root();
    let t = tree(&s.root_path());
    for d in 0..10 {
        for f in 0..30u64 {
            let p = format!("d{d}/f{f}");
            assert_eq!(fs::read(host(&r, &p)).unwrap(), format!("new {d}/{f}").as_bytes(), "{p}");
            let m = &t[&format!("/{p}")];
            assert_eq!((m.mode, m.uid, m.gid, m.mtime), (0o640, 7, 8, 1_000 + f as i64), "{p}");
        }
        for g in 1..20 {
            let p = format!("d{d}/g{g}");
            assert_eq!(fs::read(host(&r, &p)).unwrap(), format!("added {d}/{g}").as_bytes(), "{p}");
        }
    }
    assert_eq!(fs::read(host(&r, "d0/g0")).unwrap(), b"second entry wins");
    assert_eq!(fs::read(host(&r, "x")).unwrap(), b"a file where a directory was");
    assert!(!t.contains_key("/x/y"));
    assert_eq!((t["/d1"].mode, t["/d1"].mtime), (0o700, 1_600_000_000));
    assert_eq!(fs::read(host(&r, "d1/late")).unwrap(), b"after the re-stated directory");
}

/// Files, directories and symlinks get exactly the owner and mode their entries give, whatever
/// creating them gave by itself: the unpacker leaves out the chown and chmod that would repeat
/// what creation did, and must not leave out one that changes something — a group inherited
/// from a setgid directory (and a new directory's inherited setgid bit), bits the umask took,
/// setuid bits after a chown, a file created for another owner.
#[test]
fn owners_and_modes_are_exact_whatever_creating_them_gives() {
    let s = Scratch::new();
    let big = vec![7u8; 300_000]; // above the batch limit: created on its own
    let tar = TarMaker::new()
        .pax(&[("gid", b"50")])
        .dir_with("sg", 0o2775, 1)
        .file_with("sg/root-file", b"r", 0o644, 0, 0, 2)
        .file_with("sg/big", &big, 0o600, 0, 0, 3)
        .dir_with("sg/plain", 0o755, 4)
        .symlink("sg/link", "root-file")
        .file_with("open", b"o", 0o666, 0, 0, 5)
        .file_with("open-big", &big, 0o777, 0, 0, 6)
        .dir_with("open-dir", 0o777, 7)
        .file_with("owned", b"u", 0o640, 1000, 1001, 8)
        .file_with("suid-owned", b"s", 0o4750, 1000, 50, 9)
        .file_with("sgid-root", b"g", 0o2755, 0, 0, 10)
        .dir_with("sticky", 0o1777, 11)
        .finish();
    apply(&s, tar);
    let t = tree(&s.root_path());
    let got = |p: &str| (t[p].mode, t[p].uid, t[p].gid);
    assert_eq!(got("/sg"), (0o2775, 0, 50));
    assert_eq!(got("/sg/root-file"), (0o644, 0, 0), "not the setgid directory's group");
    assert_eq!(got("/sg/big"), (0o600, 0, 0));
    assert_eq!(got("/sg/plain"), (0o755, 0, 0), "neither the group nor the setgid bit of its parent");
    assert_eq!((t["/sg/link"].uid, t["/sg/link"].gid), (0, 0));
    assert_eq!(got("/open"), (0o666, 0, 0), "the umask does not apply");
    assert_eq!(got("/open-big"), (0o777, 0, 0));
    assert_eq!(got("/open-dir"), (0o777, 0, 0));
    assert_eq!(got("/owned"), (0o640, 1000, 1001));
    assert_eq!(got("/suid-owned"), (0o4750, 1000, 50));
    assert_eq!(got("/sgid-root"), (0o2755, 0, 0));
    assert_eq!(got("/sticky"), (0o1777, 0, 0));
    let mtimes: Vec<i64> = ["/sg", "/sg/plain", "/open-dir", "/sticky"].iter().map(|p| t[*p].mtime).collect();
    assert_eq!(mtimes, vec![1, 4, 7, 11]);
    assert_eq!(fs::read(host(&s.root(), "open-big")).unwrap(), big);
}

/// A symlink made under a free name changes how no earlier path resolves, so what the
/// unpacker remembered of resolved directories stays right; one that replaces a directory
/// changes it, and files after it land where the link points.
#[test]
fn symlinks_among_files_send_later_files_where_paths_resolve() {
    let s = Scratch::new();
    let tar = TarMaker::new()
        .dir("lib")
        .file("lib/libc.so.6.0", b"c")
        .symlink("lib/libc.so.6", "libc.so.6.0")
        .file("lib/libm.so.6.0", b"m")
        .symlink("lib/alias", "../usr/lib")
        .dir("usr")
        .dir("usr/lib")
        .file("lib/alias/through", b"t")
        .file("lib/after", b"a")
        .dir("old")
        .file("old/one", b"1")
        .symlink("old", "lib")
        .file("old/two", b"2")
        .finish();
    apply(&s, tar);
    let r = s.root();
    let t = tree(&s.root_path());
    assert_eq!(fs::read(host(&r, "lib/libm.so.6.0")).unwrap(), b"m");
    assert_eq!(fs::read(host(&r, "lib/libc.so.6")).unwrap(), b"c");
    assert_eq!(fs::read(host(&r, "usr/lib/through")).unwrap(), b"t");
    assert_eq!(fs::read(host(&r, "lib/after")).unwrap(), b"a");
    assert_eq!(fs::read(host(&r, "lib/two")).unwrap(), b"2", "old is a link to lib now");
    assert!(!t.contains_key("/old/one") && !t.contains_key("/lib/one"));
}

/// Rootless isolation's unpack: device nodes are skipped and listed (a user namespace cannot
/// make them), replacing what a lower layer had there as the device would have; with one id,
/// every owner becomes 0 while modes, setuid bits included, stay.
#[test]
fn rootless_unpacks_skip_devices_and_may_give_every_file_to_0() {
    let s = Scratch::new();
    apply(&s, TarMaker::new().dir("dev").file("dev/null", b"a file below").finish());
    let rootless = UnpackOptions { skip_devices: true, owners_to_root: true, ..opts() };
    let layer = TarMaker::new()
        .device(tar::EntryType::Char, "dev/null", 1, 3)
        .device(tar::EntryType::Block, "dev/sda", 8, 0)
        .device(tar::EntryType::Fifo, "fifo", 0, 0)
        .file_with("suid", b"x", 0o4755, 1000, 2000, 0)
        .finish();
    let st = unpack_layer(&s.root(), &layer[..], &rootless).unwrap();
    assert_eq!(st.devices_skipped, vec!["/dev/null", "/dev/sda"]);
    assert!(!host(&s.root(), "dev/null").exists(), "what the device replaces is gone");
    assert!(!host(&s.root(), "dev/sda").exists());
    assert!(host(&s.root(), "fifo").exists(), "FIFOs need no privilege and are made");
    let suid = fs::metadata(host(&s.root(), "suid")).unwrap();
    assert_eq!((suid.uid(), suid.gid(), suid.mode() & 0o7777), (0, 0, 0o4755));
    // Without the single-id choice, owners are the layer's.
    let st = unpack_layer(&s.root(), &layer[..], &UnpackOptions { owners_to_root: false, ..rootless }).unwrap();
    assert_eq!(st.devices_skipped.len(), 2);
    let suid = fs::metadata(host(&s.root(), "suid")).unwrap();
    assert_eq!((suid.uid(), suid.gid(), suid.mode() & 0o7777), (1000, 2000, 0o4755));
}
