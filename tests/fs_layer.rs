//! Layer writing: round trips through unpack, determinism, compression, GNU tar readability.

mod fs_support;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::Path;
use std::process::Command;

use fs_support::{Scratch, assert_same_tree, tree};
use trowel_engine::digest::Digest;
use trowel_engine::fs::{Cancel, layer::write_layer_tapped};
use trowel_engine::fs::{
    Change, ChangeKind, Changes, FileType, FsError, IgnoreList, LayerInfo, LayerOptions, NodeKind, Root, SnapshotMode,
    Snapshotter, Timespec, UnpackOptions, open_layer, unpack_layer, write_layer,
};
use trowel_engine::image::manifest::Compression;
use trowel_engine::image::store::BlobStore;

const LONG_DIR: &str =
    "a-directory-name-that-is-quite-long-0123456789/another-long-directory-name-abcdefghijklmnopqrstuvwxyz";

fn set_times(root: &Root, p: &str, sec: i64) {
    root.set_times(p, Timespec::new(sec, 0), Timespec::new(sec, 0)).unwrap();
}

/// A tree with every kind of entry and metadata a layer must carry.
fn populate(root: &Root, mtime: i64) {
    let h = |p: &str| root.host_path().join(p);
    for (d, mode) in
        [("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("srv", 0o2775), ("root", 0o700), ("data", 0o755)]
    {
        fs::create_dir(h(d)).unwrap();
        fs::set_permissions(h(d), fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::create_dir_all(h(&format!("data/{LONG_DIR}"))).unwrap();
    fs::write(h(&format!("data/{LONG_DIR}/file-with-a-long-name-as-well.txt")), b"long").unwrap();
    fs::create_dir_all(h("data/sub")).unwrap();
    fs::write(h("data/sub/lower"), b"lower").unwrap();
    fs::write(h("bin/busybox"), b"\x7fELF busybox").unwrap();
    fs::set_permissions(h("bin/busybox"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(h("bin/busybox"), h("bin/sh")).unwrap();
    fs::hard_link(h("bin/busybox"), h("bin/ls")).unwrap();
    fs::write(h("etc/shadow"), b"root:*:1::::::\n").unwrap();
    lchown(h("etc/shadow"), Some(0), Some(42)).unwrap();
    fs::set_permissions(h("etc/shadow"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(h("etc/empty"), b"").unwrap();
    fs::write(h("srv/big"), (0..1_000_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>()).unwrap();
    fs::write(h("srv/bigids"), b"ids").unwrap();
    lchown(h("srv/bigids"), Some(3_000_000), Some(3_000_001)).unwrap();
    fs::write(h("bin/ping"), b"ping").unwrap();
    root.set_xattr(
        "/bin/ping",
        "security.capability",
        &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    )
    .unwrap();
    root.set_xattr("/etc/shadow", "user.note", b"kept").unwrap();
    symlink("busybox", h("bin/cat")).unwrap();
    symlink("/etc/shadow", h("etc/abs-link")).unwrap();
    symlink(format!("/data/{LONG_DIR}/file-with-a-long-name-as-well.txt"), h("etc/long-link")).unwrap();
    lchown(h("etc/abs-link"), Some(7), Some(8)).unwrap();
    root.set_xattr("/etc/abs-link", "trusted.t", b"on a symlink").unwrap();
    root.mknod("/tmp/fifo", NodeKind::Fifo, 0o620, 0).unwrap();
    root.mknod("/tmp/null", NodeKind::CharDevice, 0o666, rustix::fs::makedev(1, 3)).unwrap();
    // Times last, deepest first, so directory mtimes stick.
    let mut all: Vec<String> = tree(root.host_path()).into_keys().collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in all {
        set_times(root, &p, mtime);
    }
}

fn unpack_opts() -> UnpackOptions {
    UnpackOptions { allow_devices: true, preserve_owner: true, ..UnpackOptions::default() }
}

fn store(s: &Scratch) -> BlobStore {
    BlobStore::open(s.dir.path().join("root-store")).unwrap()
}

fn apply(store: &BlobStore, info: &LayerInfo, root: &Root) {
    let r = open_layer(store.open_blob(&info.digest).unwrap()).unwrap();
    unpack_layer(root, r, &unpack_opts()).unwrap();
}

fn gz() -> LayerOptions {
    LayerOptions::default()
}

#[test]
fn round_trip_reproduces_the_tree_across_two_layers() {
    let s = Scratch::new();
    let a = s.root();
    populate(&a, 1_600_000_000);
    let st = store(&s);
    let mut snap = Snapshotter::new(a.try_clone().unwrap(), SnapshotMode::Full, IgnoreList::default());
    let mut changes = snap.snapshot().unwrap();
    let info = write_layer(&a, &mut changes, &st, &gz()).unwrap();
    let b = s.other_root("root-b");
    apply(&st, &info, &b);
    assert_same_tree(&tree(a.host_path()), &tree(b.host_path()));
    // Digests were filled for regular files, and hardlinks recognised.
    let by_path = |p: &str| changes.entries.iter().find(|c| c.path == p).unwrap().clone();
    assert_eq!(by_path("/etc/shadow").digest, Some(Digest::of(b"root:*:1::::::\n").into()));
    let links: Vec<_> = ["/bin/busybox", "/bin/ls", "/bin/sh"].iter().map(|p| by_path(p).file_type).collect();
    assert_eq!(links, vec![FileType::File, FileType::Hardlink, FileType::Hardlink]);
    assert_eq!(by_path("/bin/sh").link_target.as_deref(), Some("/bin/busybox"));

    // Second layer: deletions, an opaque re-created directory, a type change, edits.
    let h = |p: &str| a.host_path().join(p);
    fs::remove_file(h("etc/empty")).unwrap();
    fs::remove_dir_all(h(&format!("data/{}", LONG_DIR.split('/').next().unwrap()))).unwrap();
    fs::remove_dir_all(h("data/sub")).unwrap();
    fs::create_dir(h("data/sub")).unwrap();
    fs::write(h("data/sub/fresh"), b"fresh").unwrap();
    fs::remove_file(h("bin/ls")).unwrap();
    fs::create_dir(h("bin/ls")).unwrap();
    fs::write(h("etc/shadow"), b"root:!:2::::::\n").unwrap();
    fs::set_permissions(h("srv/big"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(h("new-top"), b"new").unwrap();
    let mut changes = snap.snapshot().unwrap();
    assert!(changes.entries.iter().any(|c| c.path == "/data/sub" && c.opaque));
    let info2 = write_layer(&a, &mut changes, &st, &gz()).unwrap();
    apply(&st, &info2, &b);
    assert_same_tree(&tree(a.host_path()), &tree(b.host_path()));
    assert!(!b.host_path().join("data/sub/lower").exists());
    assert!(!b.host_path().join("data/sub/.wh..wh..opq").exists());
}

fn blob_bytes(st: &BlobStore, d: &Digest) -> Vec<u8> {
    st.read(d).unwrap()
}

#[test]
fn reproducible_layers_are_byte_identical() {
    let s = Scratch::new();
    let a = s.root();
    let b = s.other_root("root-b");
    populate(&a, 1_600_000_000);
    populate(&b, 1_700_000_000);
    let st = store(&s);
    let repro = LayerOptions { mtime: Some(0), ..gz() };
    let layer = |root: &Root, opts: &LayerOptions| {
        let mut snap = Snapshotter::new(root.try_clone().unwrap(), SnapshotMode::Redo, IgnoreList::default());
        let mut c = snap.snapshot().unwrap();
        write_layer(root, &mut c, &st, opts).unwrap()
    };
    let a1 = layer(&a, &repro);
    let a2 = layer(&a, &repro);
    assert_eq!(a1, a2);
    // Different inodes and mtimes, same content: identical once mtimes are clamped.
    let b1 = layer(&b, &repro);
    assert_eq!(a1.digest, b1.digest);
    assert_eq!(blob_bytes(&st, &a1.digest), blob_bytes(&st, &b1.digest));
    // Without clamping the mtimes show, but the same root still gives the same bytes.
    let a3 = layer(&a, &gz());
    let a4 = layer(&a, &gz());
    let b3 = layer(&b, &gz());
    assert_eq!(a3.digest, a4.digest);
    assert_ne!(a3.digest, b3.digest);
    for z in [Compression::Zstd, Compression::None] {
        let o = LayerOptions { compression: z, mtime: Some(0), level: None };
        assert_eq!(layer(&a, &o).digest, layer(&b, &o).digest, "{z:?}");
    }
}

#[test]
fn gzip_zstd_and_plain_share_the_diff_id() {
    let s = Scratch::new();
    let a = s.root();
    populate(&a, 1_600_000_000);
    let st = store(&s);
    let mut infos = Vec::new();
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut snap = Snapshotter::new(a.try_clone().unwrap(), SnapshotMode::Full, IgnoreList::default());
        let mut changes = snap.snapshot().unwrap();
        let info =
            write_layer(&a, &mut changes, &st, &LayerOptions { compression: c, level: None, mtime: None }).unwrap();
        let bytes = blob_bytes(&st, &info.digest);
        assert_eq!(info.size, bytes.len() as u64);
        assert_eq!(Digest::of(&bytes), info.digest);
        let mut plain = Vec::new();
        open_layer(st.open_blob(&info.digest).unwrap()).unwrap().read_to_end(&mut plain).unwrap();
        assert_eq!(Digest::of(&plain), info.diff_id, "{c:?}");
        assert_eq!(plain.len() as u64, info.uncompressed_size);
        let magic: &[u8] = match c {
            Compression::None => b"",
            Compression::Gzip => &[0x1f, 0x8b],
            Compression::Zstd => &[0x28, 0xb5, 0x2f, 0xfd],
        };
        assert!(bytes.starts_with(magic));
        let b = s.other_root(&format!("root-{c:?}"));
        apply(&st, &info, &b);
        assert_same_tree(&tree(a.host_path()), &tree(b.host_path()));
        infos.push(info);
    }
    assert_eq!(infos[0].diff_id, infos[1].diff_id);
    assert_eq!(infos[1].diff_id, infos[2].diff_id);
    assert_eq!(infos[0].digest, infos[0].diff_id);
    assert!(infos[2].size < infos[0].size && infos[1].size < infos[0].size);
}

#[test]
fn gnu_tar_reads_the_layer() {
    let s = Scratch::new();
    let a = s.root();
    populate(&a, 1_600_000_000);
    let st = store(&s);
    let mut snap = Snapshotter::new(a.try_clone().unwrap(), SnapshotMode::Full, IgnoreList::default());
    snap.scan_initial().unwrap();
    // One layer with additions and whiteouts.
    fs::remove_file(a.host_path().join("etc/empty")).unwrap();
    fs::remove_dir_all(a.host_path().join("data/sub")).unwrap();
    fs::create_dir(a.host_path().join("data/sub")).unwrap();
    fs::write(a.host_path().join("data/sub/x"), b"x").unwrap();
    fs::write(a.host_path().join("bin/extra"), b"e").unwrap();
    fs::hard_link(a.host_path().join("bin/extra"), a.host_path().join("bin/extra2")).unwrap();
    let mut changes = snap.snapshot().unwrap();
    let opts = LayerOptions { compression: Compression::None, ..gz() };
    let info = write_layer(&a, &mut changes, &st, &opts).unwrap();
    let out = Command::new("tar").arg("-tvf").arg(st.path(&info.digest)).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    for needle in ["etc/.wh.empty", "data/sub/.wh..wh..opq", "data/sub/x", "bin/extra2 link to bin/extra"] {
        assert!(listing.contains(needle), "{needle} missing from:\n{listing}");
    }
    // What the re-created directory held is reported deleted, and its opaque marker alone
    // hides it: no whiteout below it.
    assert!(changes.entries.iter().any(|c| c.path == "/data/sub/lower" && c.kind == ChangeKind::Deleted));
    assert!(!listing.contains("data/sub/.wh.lower"), "{listing}");
    // The full first layer, extracted by GNU tar with xattrs, matches the tree.
    let mut snap = Snapshotter::new(a.try_clone().unwrap(), SnapshotMode::Full, IgnoreList::default());
    let mut changes = snap.snapshot().unwrap();
    let info = write_layer(&a, &mut changes, &st, &opts).unwrap();
    let dest = s.other_root("root-gnutar");
    let out = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(st.path(&info.digest))
        .arg("-C")
        .arg(dest.host_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same_tree(&tree(a.host_path()), &tree(dest.host_path()));
}

#[test]
fn file_that_grows_while_read_fails_cleanly() {
    // procfs files report size 0 but have content: exactly a file that changed after its stat.
    let s = Scratch::new();
    let st = store(&s);
    let proc = Root::open(Path::new("/proc/self")).unwrap();
    let mut changes = Changes::default();
    changes.entries = vec![Change {
        path: "/status".into(),
        kind: ChangeKind::Added,
        file_type: FileType::File,
        size: 0,
        mode: 0o444,
        uid: 0,
        gid: 0,
        mtime: 0,
        link_target: None,
        digest: None,
        opaque: false,
        previous: None,
    }];
    match write_layer(&proc, &mut changes, &st, &gz()) {
        Err(FsError::ChangedWhileReading { path, reason }) => {
            assert_eq!(path, "/status");
            assert!(reason.contains("grew"), "{reason}");
        }
        other => panic!("expected ChangedWhileReading, got {other:?}"),
    }
    // The partial blob was discarded.
    assert_eq!(fs::read_dir(s.dir.path().join("root-store/sha256")).unwrap().count(), 0);
    // A vanished file is reported the same way.
    changes.entries[0].path = "/no-such-file".into();
    assert!(matches!(write_layer(&proc, &mut changes, &st, &gz()), Err(FsError::ChangedWhileReading { .. })));
}

#[test]
fn empty_changes_make_an_empty_tar() {
    let s = Scratch::new();
    let st = store(&s);
    let mut changes = Changes::default();
    let info =
        write_layer(&s.root(), &mut changes, &st, &LayerOptions { compression: Compression::None, ..gz() }).unwrap();
    assert_eq!((info.entries, info.uncompressed_size), (0, 1024));
}

/// A layer write that is asked to give up (a build stopped) ends before its next entry or
/// within a big file's data, and leaves no blob in the store, committed or partial.
#[test]
fn a_cancelled_layer_write_stops_and_leaves_no_blob() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let s = Scratch::new();
    let a = s.root();
    fs::write(a.host_path().join("small"), b"x").unwrap();
    fs::write(a.host_path().join("big"), vec![b'y'; 4 << 20]).unwrap();
    fs::write(a.host_path().join("zz-last"), b"z").unwrap();
    let st = store(&s);
    let blobs = || {
        walkdir::WalkDir::new(s.dir.path().join("root-store"))
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .count()
    };
    let before = blobs();
    for after in [1, 3, 5] {
        let mut snap = Snapshotter::new(a.try_clone().unwrap(), SnapshotMode::Full, IgnoreList::default());
        let mut changes = snap.snapshot().unwrap();
        let looks = Arc::new(AtomicUsize::new(0));
        let counted = looks.clone();
        let cancel = Cancel::new(move || counted.fetch_add(1, Ordering::SeqCst) + 1 >= after);
        let r = write_layer_tapped(&a, &mut changes, &st, &gz(), None, Some(&cancel));
        assert!(matches!(r, Err(FsError::Cancelled)), "after {after}: {r:?}");
        assert_eq!(looks.load(Ordering::SeqCst), after, "it stopped at the first look that said so");
        assert_eq!(blobs(), before, "nothing stored");
    }
    let mut snap = Snapshotter::new(a.try_clone().unwrap(), SnapshotMode::Full, IgnoreList::default());
    let mut changes = snap.snapshot().unwrap();
    let never = Cancel::new(|| false);
    write_layer_tapped(&a, &mut changes, &st, &gz(), None, Some(&never)).unwrap();
}
