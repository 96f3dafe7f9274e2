//! `copy_tree` between two real roots.

mod fs_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};

use fs_support::{Scratch, assert_same_tree, tree};
use trowel_engine::chmod::Chmod;
use trowel_engine::fs::{CopyOptions, Filter, FsError, Root, copy_tree};

fn keep_all(_: &str) -> Filter {
    Filter::Copy
}

fn opts(filter: &dyn Fn(&str) -> Filter) -> CopyOptions<'_> {
    CopyOptions::exact(filter)
}

/// A source tree in `root/ctx`.
fn source(s: &Scratch) -> Root {
    let r = s.root_path();
    let h = |p: &str| r.join(p);
    fs::create_dir_all(h("src/app/lib")).unwrap();
    fs::write(h("src/app/main"), b"main").unwrap();
    fs::set_permissions(h("src/app/main"), fs::Permissions::from_mode(0o4750)).unwrap();
    lchown(h("src/app/main"), Some(12), Some(34)).unwrap();
    fs::write(h("src/app/lib/a.so"), b"a").unwrap();
    fs::hard_link(h("src/app/lib/a.so"), h("src/app/lib/a.so.1")).unwrap();
    symlink("../main", h("src/app/lib/escape-looking-link")).unwrap();
    symlink("/etc/passwd", h("src/app/abs")).unwrap();
    fs::write(h("src/app/skip.log"), b"excluded").unwrap();
    fs::create_dir(h("src/app/node_modules")).unwrap();
    fs::write(h("src/app/node_modules/x"), b"excluded").unwrap();
    let root = s.root();
    root.set_xattr("/src/app/main", "user.mark", b"1").unwrap();
    root
}

#[test]
fn copies_a_tree_with_links_modes_and_xattrs() {
    let s = Scratch::new();
    let src = source(&s);
    let dst = s.other_root("root-dst");
    let ex = |p: &str| if p.ends_with(".log") || p == "node_modules" { Filter::Skip } else { Filter::Copy };
    let st = copy_tree(&src, "src/app", &dst, "/opt/app", &opts(&ex)).unwrap();
    assert_eq!((st.files, st.hardlinks, st.symlinks, st.dirs, st.bytes), (2, 1, 2, 2, 5));
    let mut want = tree(&s.root_path().join("src/app"));
    want.retain(|p, _| !p.ends_with(".log") && !p.starts_with("/node_modules"));
    assert_same_tree(&want, &tree(&dst.host_path().join("opt/app")));
    let md = fs::metadata(dst.host_path().join("opt")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o755, 0, 0), "created parent");
    // Symlinks were copied verbatim, not followed.
    assert_eq!(fs::read_link(dst.host_path().join("opt/app/abs")).unwrap().to_str().unwrap(), "/etc/passwd");
}

#[test]
fn chown_and_chmod_override() {
    let s = Scratch::new();
    let src = source(&s);
    let dst = s.other_root("root-dst");
    let chmod = Chmod::parse("640").unwrap();
    let o = CopyOptions {
        owner: Some((1000, 1001)),
        chmod: Some(&chmod),
        preserve_times: false,
        filter: &keep_all,
        overwrite_dirs: false,
        watch: None,
        cancel: None,
    };
    copy_tree(&src, "/src/app", &dst, "/app", &o).unwrap();
    for p in ["app", "app/main", "app/lib", "app/lib/a.so"] {
        let md = fs::symlink_metadata(dst.host_path().join(p)).unwrap();
        assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o640, 1000, 1001), "{p}");
    }
    let md = fs::symlink_metadata(dst.host_path().join("app/abs")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1000, 1001));
}

#[test]
fn a_symbolic_chmod_changes_each_entry_from_its_own_mode() {
    let s = Scratch::new();
    let src = source(&s);
    let r = s.root_path();
    fs::set_permissions(r.join("src/app/lib"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(r.join("src/app/lib/a.so"), fs::Permissions::from_mode(0o600)).unwrap();
    let dst = s.other_root("root-dst");
    let chmod = Chmod::parse("u=rwX,go=rX").unwrap();
    let o = CopyOptions {
        owner: None,
        chmod: Some(&chmod),
        preserve_times: true,
        filter: &keep_all,
        overwrite_dirs: false,
        watch: None,
        cancel: None,
    };
    copy_tree(&src, "/src/app", &dst, "/app", &o).unwrap();
    // A directory and an executable get 0755, a plain file 0644; `=` drops the setuid bit, and
    // the hard link still shares its first name's inode.
    for (p, want) in [("app", 0o755), ("app/lib", 0o755), ("app/main", 0o755), ("app/lib/a.so", 0o644)] {
        let md = fs::symlink_metadata(dst.host_path().join(p)).unwrap();
        assert_eq!(md.mode() & 0o7777, want, "{p}");
    }
    let a = fs::metadata(dst.host_path().join("app/lib/a.so")).unwrap();
    let a1 = fs::metadata(dst.host_path().join("app/lib/a.so.1")).unwrap();
    assert_eq!(a.ino(), a1.ino());
    // A symlink's own mode is never changed.
    let md = fs::symlink_metadata(dst.host_path().join("app/abs")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o777);
}

#[test]
fn merges_into_existing_dirs_and_through_dir_symlinks() {
    let s = Scratch::new();
    let src = source(&s);
    let dst = s.other_root("root-dst");
    let d = dst.host_path().to_path_buf();
    fs::create_dir_all(d.join("usr/lib")).unwrap();
    fs::set_permissions(d.join("usr/lib"), fs::Permissions::from_mode(0o711)).unwrap();
    fs::write(d.join("usr/lib/existing"), b"stays").unwrap();
    symlink("usr/lib", d.join("lib")).unwrap();
    copy_tree(&src, "/src/app/lib", &dst, "/lib", &opts(&keep_all)).unwrap();
    assert!(fs::symlink_metadata(d.join("lib")).unwrap().file_type().is_symlink());
    assert_eq!(fs::read(d.join("usr/lib/a.so")).unwrap(), b"a");
    assert_eq!(fs::read(d.join("usr/lib/existing")).unwrap(), b"stays");
    assert_eq!(fs::metadata(d.join("usr/lib")).unwrap().mode() & 0o7777, 0o711, "existing dir keeps its mode");
    // An existing file is replaced; a directory in the way of a file is an error.
    copy_tree(&src, "/src/app/main", &dst, "/usr/lib/existing", &opts(&keep_all)).unwrap();
    assert_eq!(fs::read(d.join("usr/lib/existing")).unwrap(), b"main");
    let err = copy_tree(&src, "/src/app/main", &dst, "/usr", &opts(&keep_all)).unwrap_err();
    assert!(matches!(err, FsError::WrongType { .. }), "{err}");
}

/// BuildKit's copy (fsutil `copyDirectory`): an existing directory below the destination takes
/// the source directory's owner, mode and times; the destination itself keeps its own.
#[test]
fn existing_directories_below_the_destination_take_the_source_metadata() {
    let s = Scratch::new();
    let r = s.root_path();
    fs::create_dir_all(r.join("src/tree/usr/local")).unwrap();
    fs::create_dir_all(r.join("src/tree/tmp")).unwrap();
    fs::write(r.join("src/tree/usr/local/x"), b"x").unwrap();
    fs::set_permissions(r.join("src/tree/usr"), fs::Permissions::from_mode(0o775)).unwrap();
    fs::set_permissions(r.join("src/tree/tmp"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(r.join("src/tree"), fs::Permissions::from_mode(0o700)).unwrap();
    let old = |p: &str, secs: u64| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        fs::File::open(r.join(p)).unwrap().set_times(fs::FileTimes::new().set_modified(t).set_accessed(t)).unwrap();
    };
    old("src/tree/usr", 2_000_000);
    old("src/tree", 1_000_000);
    let src = s.root();
    let dst = s.other_root("root-dst");
    let d = dst.host_path().to_path_buf();
    fs::create_dir_all(d.join("usr/local")).unwrap();
    fs::create_dir_all(d.join("tmp")).unwrap();
    fs::set_permissions(d.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir_all(d.join("top")).unwrap();
    fs::set_permissions(d.join("top"), fs::Permissions::from_mode(0o751)).unwrap();
    let o = CopyOptions {
        owner: Some((1000, 1001)),
        chmod: None,
        preserve_times: true,
        filter: &keep_all,
        overwrite_dirs: true,
        watch: None,
        cancel: None,
    };
    copy_tree(&src, "/src/tree", &dst, "/top", &o).unwrap();
    copy_tree(&src, "/src/tree", &dst, "/", &o).unwrap();
    let meta = |p: &str| {
        let m = fs::symlink_metadata(d.join(p)).unwrap();
        (m.mode() & 0o7777, m.uid(), m.gid())
    };
    assert_eq!(meta("usr"), (0o775, 1000, 1001));
    assert_eq!(meta("usr/local"), (0o755, 1000, 1001));
    assert_eq!(meta("tmp"), (0o755, 1000, 1001), "the sticky /tmp took the source's mode");
    assert_eq!(meta("top"), (0o751, 0, 0), "the destination keeps its own");
    let mtime = |p: &std::path::Path| fs::metadata(p).unwrap().mtime();
    assert_eq!(mtime(&d.join("usr")), 2_000_000);
    // The destination's times are the source's (fsutil's restoreFileTimestamp).
    assert_eq!(mtime(&d.join("top")), 1_000_000);
}

#[test]
fn destination_symlinks_never_lead_out_of_the_root() {
    let s = Scratch::new();
    let src = source(&s);
    let dst = s.other_root("root-dst");
    let d = dst.host_path().to_path_buf();
    symlink(s.canary_path(), d.join("out")).unwrap();
    symlink("../canary/secret", d.join("secretlink")).unwrap();
    copy_tree(&src, "/src/app/main", &dst, "/secretlink", &opts(&keep_all)).unwrap();
    assert!(fs::symlink_metadata(d.join("secretlink")).unwrap().is_file());
    // `out` is an absolute symlink: it resolves inside the destination root.
    copy_tree(&src, "/src/app", &dst, "/out/app", &opts(&keep_all)).unwrap();
    let inside = d.join(s.canary_path().strip_prefix("/").unwrap()).join("app/main");
    assert_eq!(fs::read(inside).unwrap(), b"main");
    s.assert_canary_untouched();
}

/// A copy into a directory that already holds some of its names: each is replaced by a new
/// entry, never written through a symlink or into an inode another path shares, and a file in
/// the way of a directory gives way to it; the names around them are created as usual (the
/// copy keeps the directory it writes in open from one file to the next, and must let go of
/// it when it removes an entry).
#[test]
fn a_copy_over_existing_names_replaces_each_without_writing_through_it() {
    let s = Scratch::new();
    let src = source(&s);
    let dst = s.other_root("root-dst");
    let d = dst.host_path().to_path_buf();
    fs::create_dir_all(d.join("opt/app/node_modules")).unwrap();
    fs::write(d.join("shared"), b"shared").unwrap();
    fs::hard_link(d.join("shared"), d.join("opt/app/main")).unwrap();
    fs::write(d.join("target"), b"pointed at").unwrap();
    symlink("/target", d.join("opt/app/skip.log")).unwrap();
    symlink("/target", d.join("opt/app/node_modules/x")).unwrap();
    fs::write(d.join("opt/app/lib"), b"a file where a directory goes").unwrap();
    copy_tree(&src, "/src/app", &dst, "/opt/app", &opts(&keep_all)).unwrap();
    assert_eq!(fs::read(d.join("shared")).unwrap(), b"shared");
    assert_eq!(fs::read(d.join("target")).unwrap(), b"pointed at");
    assert_same_tree(&tree(&s.root_path().join("src/app")), &tree(&d.join("opt/app")));
    s.assert_canary_untouched();
}

#[test]
fn missing_source_is_reported() {
    let s = Scratch::new();
    let src = source(&s);
    let dst = s.other_root("root-dst");
    match copy_tree(&src, "/nope", &dst, "/x", &opts(&keep_all)) {
        Err(FsError::NotFound { path, .. }) => assert_eq!(path, "/nope"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// An excluded directory with an exception below it (`.dockerignore`: `docs` then
/// `!docs/keep.md`) is walked: only what the exception re-includes is copied, and a walked
/// directory with nothing copied inside is not created.
#[test]
fn descend_copies_only_exceptions_below_excluded_dirs() {
    let s = Scratch::new();
    let r = s.root_path();
    fs::create_dir_all(r.join("ctx/docs/deep")).unwrap();
    fs::create_dir_all(r.join("ctx/empty-walked")).unwrap();
    fs::write(r.join("ctx/docs/keep.md"), b"keep").unwrap();
    fs::write(r.join("ctx/docs/drop.md"), b"drop").unwrap();
    fs::write(r.join("ctx/docs/deep/drop.md"), b"drop").unwrap();
    fs::write(r.join("ctx/empty-walked/drop.md"), b"drop").unwrap();
    fs::write(r.join("ctx/top.txt"), b"top").unwrap();
    let src = s.root();
    let dst = s.other_root("root-dst");
    let f = |p: &str| match p {
        "docs" | "docs/deep" | "empty-walked" => Filter::Descend,
        "docs/keep.md" | "top.txt" => Filter::Copy,
        _ => Filter::Skip,
    };
    copy_tree(&src, "/ctx", &dst, "/out", &opts(&f)).unwrap();
    let got = tree(&dst.host_path().join("out"));
    let paths: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(paths, vec!["/docs", "/docs/keep.md", "/top.txt"]);
}

/// Paths copied one by one with one `links` map (a debugger shell's changes, replayed onto the
/// root) keep the hard links between them, as a RUN's layer keeps them.
#[test]
fn paths_copied_one_by_one_keep_their_hard_links() {
    let s = Scratch::new();
    let r = s.root_path();
    fs::create_dir_all(r.join("up/dir")).unwrap();
    fs::write(r.join("up/c"), b"shared").unwrap();
    fs::hard_link(r.join("up/c"), r.join("up/dir/hard")).unwrap();
    let src = s.root();
    let dst = s.other_root("root-dst");
    let mut links = trowel_engine::fs::Links::new();
    for p in ["/up/c", "/up/dir"] {
        let to = p.trim_start_matches("/up");
        trowel_engine::fs::copy_tree_linking(&src, p, &dst, to, &opts(&keep_all), &mut links).unwrap();
    }
    let ino = |p: &str| fs::metadata(dst.host_path().join(p)).unwrap().ino();
    assert_eq!(ino("c"), ino("dir/hard"));
    // Copied apart without the map, they are two files.
    let other = s.other_root("root-apart");
    for p in ["/up/c", "/up/dir"] {
        copy_tree(&src, p, &other, p.trim_start_matches("/up"), &opts(&keep_all)).unwrap();
    }
    let ino = |p: &str| fs::metadata(other.host_path().join(p)).unwrap().ino();
    assert_ne!(ino("c"), ino("dir/hard"));
}

/// A debugger shell's `ln /c /hard` (two names of one inode in the session's upper directory)
/// is two names of one inode in the root its changes are kept in.
#[test]
fn a_shells_hard_link_is_kept_as_one() {
    let s = Scratch::new();
    let r = s.root_path();
    fs::write(r.join("c"), b"shared").unwrap();
    fs::hard_link(r.join("c"), r.join("hard")).unwrap();
    let upper = s.root();
    let root = s.other_root("root-kept");
    fs::write(root.host_path().join("c"), b"old").unwrap();
    let touched = trowel_engine::fs::overlay::apply(&upper, &root).unwrap();
    assert!(touched.contains(&"/c".to_string()) && touched.contains(&"/hard".to_string()), "{touched:?}");
    let md = |p: &str| fs::metadata(root.host_path().join(p)).unwrap();
    assert_eq!(md("c").ino(), md("hard").ino());
    assert_eq!(fs::read(root.host_path().join("hard")).unwrap(), b"shared");
}

/// A `Cancel` that says to give up from its `after`-th look on, and counts the looks.
fn cancel_after(after: usize) -> (trowel_engine::fs::Cancel, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let looks = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = looks.clone();
    (trowel_engine::fs::Cancel::new(move || counted.fetch_add(1, Ordering::Relaxed) + 1 >= after), looks)
}

/// A stopped build's copy gives up between entries, and inside a big file between chunks of
/// it (a COPY of a huge context file stopped at once, not after the whole file).
#[test]
fn a_cancelled_copy_gives_up_between_entries_and_between_chunks() {
    use std::sync::atomic::Ordering;
    let s = Scratch::new();
    let src = source(&s);
    let dst = s.other_root("root-dst");
    // Never asked: every entry and every chunk looked at, nothing given up.
    let (never, looks) = cancel_after(usize::MAX);
    let o = CopyOptions { cancel: Some(&never), ..opts(&keep_all) };
    copy_tree(&src, "src/app", &dst, "/all", &o).unwrap();
    assert!(looks.load(Ordering::Relaxed) >= 9, "one look per entry at least: {looks:?}");
    // Asked at once: nothing below the top is copied.
    let (now, _) = cancel_after(1);
    let o = CopyOptions { cancel: Some(&now), ..opts(&keep_all) };
    assert!(matches!(copy_tree(&src, "src/app", &dst, "/none", &o), Err(FsError::Cancelled)));
    assert!(!dst.host_path().join("none").exists());
    // A 40 MiB file (of data: a hole is not copied), asked after its first chunk: the copy
    // stops part way through it.
    let big = s.root_path().join("big");
    fs::write(&big, vec![7u8; 40 << 20]).unwrap();
    let (soon, _) = cancel_after(2);
    let o = CopyOptions { cancel: Some(&soon), ..opts(&keep_all) };
    assert!(matches!(copy_tree(&src, "/big", &dst, "/big", &o), Err(FsError::Cancelled)));
    let copied = fs::metadata(dst.host_path().join("big")).unwrap().len();
    assert!(copied > 0 && copied < 40 << 20, "{copied} bytes copied");
}

/// A host path copied whole (a cache mount seeded from a stage, a writable mount's copy) gives
/// up as `copy_tree` does, and says so in its io::Error.
#[test]
fn a_cancelled_copy_as_says_it_was_given_up() {
    use trowel_engine::fs::cancel::is_cancelled;
    use trowel_engine::fs::copy::copy_as_cancellable;
    let s = Scratch::new();
    source(&s);
    let from = s.root_path().join("src/app");
    let (now, _) = cancel_after(1);
    let e = copy_as_cancellable(&from, &s.root_path().join("none"), Some(&now)).unwrap_err();
    assert!(is_cancelled(&e), "{e}");
    assert!(!s.root_path().join("none").exists());
    let (never, _) = cancel_after(usize::MAX);
    copy_as_cancellable(&from, &s.root_path().join("all"), Some(&never)).unwrap();
    assert!(s.root_path().join("all").is_dir());
    let missing = copy_as_cancellable(&s.root_path().join("missing"), &s.root_path().join("x"), None).unwrap_err();
    assert!(!is_cancelled(&missing), "{missing}");
}

/// A sparse file's holes stay holes in the copy (a disk image of gigabytes that is mostly
/// holes took its whole size in every root it was copied to), its bytes and length the same:
/// holes between data, a trailing hole, data up to the end, and a file that is all hole.
#[test]
fn a_sparse_file_is_copied_with_its_holes() {
    use std::io::{Seek, SeekFrom, Write};
    let s = Scratch::new();
    let r = s.root_path();
    let write_at = |f: &mut fs::File, at: u64, data: &[u8]| {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(data).unwrap();
    };
    let mut f = fs::File::create(r.join("trailing-hole")).unwrap();
    write_at(&mut f, 0, b"head");
    write_at(&mut f, 32 << 20, b"middle");
    f.set_len(64 << 20).unwrap();
    let mut f = fs::File::create(r.join("data-at-end")).unwrap();
    write_at(&mut f, 48 << 20, &[9u8; 100_000]);
    fs::File::create(r.join("all-hole")).unwrap().set_len(16 << 20).unwrap();
    drop(f);
    let src = s.root();
    let dst = s.other_root("root-dst");
    let st = copy_tree(&src, "/", &dst, "/copy", &opts(&keep_all)).unwrap();
    for name in ["trailing-hole", "data-at-end", "all-hole"] {
        let (a, b) = (r.join(name), dst.host_path().join("copy").join(name));
        let (ma, mb) = (fs::metadata(&a).unwrap(), fs::metadata(&b).unwrap());
        assert_eq!(mb.len(), ma.len(), "{name}: length");
        assert!(ma.blocks() * 512 < 1 << 20, "{name}: the source is sparse here ({} blocks)", ma.blocks());
        assert!(mb.blocks() * 512 < 1 << 20, "{name}: {} bytes on disk for {}", mb.blocks() * 512, mb.len());
        assert!(fs::read(&a).unwrap() == fs::read(&b).unwrap(), "{name}: content");
    }
    assert_eq!(st.bytes, (64 << 20) + (48 << 20) + 100_000 + (16 << 20), "sizes counted with their holes");
}
