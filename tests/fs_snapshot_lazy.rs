//! Content hashes a snapshot leaves to others (issue 17), on real files: a new file's hashes
//! come from the layer writer (`snapshot_deferred`, `write_layer`, `settle`), a store-mounted
//! root's base files' from the overlay's lower directories when a snapshot first needs them
//! (`Snapshotter::on_store`). Neither may miss a change a root indexed the old way sees: each
//! case runs on a plain directory indexed eagerly and on the lazy root, with the same result.

mod fs_support;

use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown};
use std::path::{Path, PathBuf};

use fs_support::Scratch;
use trowel_engine::fs::overlay_mount::LayerMount;
use trowel_engine::fs::{
    ChangeKind, Changes, FileType, IgnoreList, LayerOptions, Root, SnapshotMode, Snapshotter, write_layer,
};
use trowel_engine::image::store::BlobStore;

use ChangeKind::*;

fn summary(c: &Changes) -> Vec<(String, ChangeKind, FileType)> {
    c.entries.iter().map(|e| (e.path.clone(), e.kind, e.file_type)).collect()
}

fn s(p: &str, k: ChangeKind, t: FileType) -> (String, ChangeKind, FileType) {
    (p.to_string(), k, t)
}

const OLD: i64 = 1_500_000_000;

fn set_mtime(p: &Path, sec: i64, nsec: i64) {
    let ts = rustix::fs::Timespec { tv_sec: sec, tv_nsec: nsec };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps { last_access: ts, last_modification: ts },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn mtime(p: &Path) -> (i64, i64) {
    let st = rustix::fs::lstat(p).unwrap();
    (st.st_mtime, st.st_mtime_nsec as i64)
}

/// ctime has the clock's coarse granularity: let it tick past the files just written, so what
/// a case does moves it (as a RUN long after the base was unpacked does).
fn let_the_clock_tick() {
    std::thread::sleep(std::time::Duration::from_millis(30));
}

/// Writes `files` (path, content) under `dir` with old times.
fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (p, content) in files {
        let f = dir.join(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, content).unwrap();
        set_mtime(&f, OLD, 0);
    }
}

fn root_is_real() -> bool {
    rustix::process::geteuid().is_root()
}

/// Two lower layers as the unpacked-layer store holds them (the top one replacing a file and
/// whiting out another) mounted with an upper directory, and a plain directory with what the
/// mount shows; each indexed as a build indexes it (the mount lazily).
struct Pair {
    plain: PathBuf,
    merged: PathBuf,
    plain_snap: Snapshotter,
    store_snap: Snapshotter,
    // Fields drop in order: the mount goes before the directory it is in can be removed (the
    // other way round, every test left a mounted directory under /var/tmp behind).
    _mount: LayerMount,
    _t: tempfile::TempDir,
}

/// What the mount shows, and so the plain directory holds.
const MERGED: &[(&str, &str)] = &[
    ("etc/a", "AAAA"),
    ("etc/b", "same"),
    ("etc/c", "same"),
    ("etc/d", "dddd"),
    ("etc/d2", "dddd"),
    ("data/x", "x"),
    ("data/y", "y"),
    ("data/z", "z"),
    ("data/kept", "k"),
];

impl Pair {
    fn new() -> Pair {
        let t = tempfile::Builder::new().prefix("trowel-lazy-").tempdir_in("/var/tmp").unwrap();
        let (bottom, top, upper, work, merged, plain) = (
            t.path().join("bottom"),
            t.path().join("top"),
            t.path().join("upper"),
            t.path().join("work"),
            t.path().join("merged"),
            t.path().join("plain"),
        );
        for d in [&bottom, &top, &upper, &work, &merged, &plain] {
            fs::create_dir(d).unwrap();
        }
        // The bottom layer has an older /etc/a and a file the top one deletes.
        write_files(&bottom, &[("etc/a", "old!"), ("data/gone", "g")]);
        write_files(&bottom, &MERGED[1..]);
        write_files(&top, &[("etc/a", "AAAA")]);
        fs::create_dir_all(top.join("data")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            top.join("data/gone").as_path(),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0),
            0,
        )
        .unwrap();
        write_files(&plain, MERGED);
        // A lower directory no case touches, and one a case changes one file deep inside.
        for d in [&bottom, &plain] {
            for i in 0..40 {
                write_files(d, &[(&format!("lots/f{i:02}"), "l"), (&format!("deep/a/b/f{i:02}"), "d")]);
            }
            // Two names of one file, in two directories.
            write_files(d, &[("links/one", "same inode")]);
            fs::create_dir_all(d.join("deep/other")).unwrap();
            fs::hard_link(d.join("links/one"), d.join("deep/other/two")).unwrap();
            for sub in ["lots", "deep/a/b", "deep/a", "deep/other", "deep", "links"] {
                set_mtime(&d.join(sub), OLD, 0);
            }
        }
        for d in [&bottom, &top, &plain] {
            for sub in ["etc", "data", ""] {
                set_mtime(&d.join(sub), OLD, 0);
            }
        }
        let mount = LayerMount::mount(&[bottom.clone(), top.clone()], &upper, &work, &merged).unwrap();
        assert!(!merged.join("data/gone").exists(), "the whiteout hides the bottom file");
        assert_eq!(fs::read_to_string(merged.join("etc/a")).unwrap(), "AAAA");
        let ignore = || IgnoreList::new(["/proc"]);
        let mut plain_snap = Snapshotter::new(Root::open(&plain).unwrap(), SnapshotMode::Full, ignore());
        let lowers = vec![Root::open(&top).unwrap(), Root::open(&bottom).unwrap()];
        let mut store_snap = Snapshotter::on_store(
            Root::open(&merged).unwrap(),
            SnapshotMode::Full,
            ignore(),
            lowers,
            Some(Root::open(&upper).unwrap()),
        );
        let plain_scan = plain_snap.scan_initial().unwrap();
        let store_scan = store_snap.scan_initial().unwrap();
        assert_eq!(plain_scan.files_walked, store_scan.files_walked);
        assert!(plain_scan.bytes_hashed > 0);
        assert_eq!(store_scan.bytes_hashed, 0, "the store's files are not read to index them");
        let_the_clock_tick();
        Pair { _t: t, plain, merged, plain_snap, store_snap, _mount: mount }
    }

    /// Does `op` to both roots, snapshots both, and returns the (equal) changes.
    fn both(&mut self, op: impl Fn(&Path)) -> Vec<(String, ChangeKind, FileType)> {
        self.both_walked(op).0
    }

    /// [`Pair::both`], and how many paths each snapshot looked at (plain, store-mounted).
    fn both_walked(&mut self, op: impl Fn(&Path)) -> (Vec<(String, ChangeKind, FileType)>, u64, u64) {
        op(&self.plain);
        op(&self.merged);
        let plain = self.plain_snap.snapshot().unwrap();
        let store = self.store_snap.snapshot().unwrap();
        assert_eq!(summary(&store), summary(&plain), "the store-mounted root saw something else than the plain one");
        // A second snapshot with nothing done in between finds nothing on either.
        assert_eq!(summary(&self.plain_snap.snapshot().unwrap()), vec![]);
        assert_eq!(summary(&self.store_snap.snapshot().unwrap()), vec![]);
        (summary(&store), plain.stats.files_walked, store.stats.files_walked)
    }
}

#[test]
fn a_store_root_indexed_lazily_sees_every_change_a_plain_root_sees() {
    if !root_is_real() {
        eprintln!("skipped: mounting an overlay needs root");
        return;
    }
    let mut p = Pair::new();

    // Opened for writing and closed: overlayfs copies it up (its ctime moves), nothing changed.
    let copied_up = p.both(|r| drop(fs::OpenOptions::new().append(true).open(r.join("data/kept")).unwrap()));
    assert_eq!(copied_up, vec![]);
    // chmod and back, chown and back: ctime moves, nothing else does.
    let and_back = p.both(|r| {
        let f = r.join("etc/b");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        lchown(&f, Some(7), Some(7)).unwrap();
        lchown(&f, Some(0), Some(0)).unwrap();
    });
    assert_eq!(and_back, vec![]);
    // Rewritten to the same size, its time put back (`touch -r`): only the content tells.
    let same_size = p.both(|r| {
        let f = r.join("etc/a");
        let (sec, nsec) = mtime(&f);
        fs::write(&f, "BBBB").unwrap();
        set_mtime(&f, sec, nsec);
    });
    assert_eq!(same_size, vec![s("/etc/a", Modified, FileType::File)]);
    // Replaced by a hard link to a file with the same content and times.
    let linked = p.both(|r| {
        fs::remove_file(r.join("etc/b")).unwrap();
        fs::hard_link(r.join("etc/c"), r.join("etc/b")).unwrap();
        set_mtime(&r.join("etc"), OLD + 1, 0);
    });
    assert_eq!(linked, vec![s("/etc", Modified, FileType::Dir), s("/etc/b", Modified, FileType::File)]);
    // Replaced by a rename of a file with the same content and times.
    let renamed = p.both(|r| {
        fs::rename(r.join("etc/d2"), r.join("etc/d")).unwrap();
        set_mtime(&r.join("etc"), OLD + 2, 0);
    });
    assert_eq!(
        renamed,
        vec![
            s("/etc", Modified, FileType::Dir),
            s("/etc/d", Modified, FileType::File),
            s("/etc/d2", Deleted, FileType::File)
        ]
    );
    // An xattr, an owner, a mode.
    let xattr =
        p.both(|r| rustix::fs::lsetxattr(r.join("data/x"), "user.k", b"v", rustix::fs::XattrFlags::empty()).unwrap());
    assert_eq!(xattr, vec![s("/data/x", Modified, FileType::File)]);
    let owner = p.both(|r| lchown(r.join("data/y"), Some(5), None).unwrap());
    assert_eq!(owner, vec![s("/data/y", Modified, FileType::File)]);
    let mode = p.both(|r| fs::set_permissions(r.join("data/z"), fs::Permissions::from_mode(0o755)).unwrap());
    assert_eq!(mode, vec![s("/data/z", Modified, FileType::File)]);
    // Once read from below, a base file is judged by its own hash: a later same-size rewrite
    // with its time put back is still seen.
    let again = p.both(|r| {
        let f = r.join("data/kept");
        fs::write(&f, "K").unwrap();
        set_mtime(&f, OLD, 0);
    });
    assert_eq!(again, vec![s("/data/kept", Modified, FileType::File)]);
}

#[test]
fn a_store_root_walks_only_what_its_upper_directory_holds_and_misses_nothing() {
    if !root_is_real() {
        eprintln!("skipped: mounting an overlay needs root");
        return;
    }
    let mut p = Pair::new();
    let d = FileType::Dir;
    let f = FileType::File;

    // One file deep in a lower directory: only its directories and it are looked at.
    let (deep, plain_walked, store_walked) = p.both_walked(|r| {
        fs::write(r.join("deep/a/b/f07"), "D").unwrap();
        set_mtime(&r.join("deep/a/b/f07"), OLD, 0);
    });
    assert_eq!(deep, vec![s("/deep/a/b/f07", Modified, f)]);
    assert!(plain_walked > 90, "the plain root is walked whole ({plain_walked})");
    assert!(store_walked <= 45, "the upper directory's names and deep/a/b's own listing ({store_walked})");

    // One name of a lower file with two written: overlayfs's inode index copies up that name
    // only, and the other shows the new content from the lower directory.
    let linked = p.both(|r| fs::write(r.join("links/one"), "changed through one name").unwrap());
    assert!(linked.contains(&s("/deep/other/two", Modified, f)), "{linked:?}");

    // A new tree, then the same tree removed (it never had a lower counterpart: no whiteout,
    // only its parent in the upper directory tells).
    let added = p.both(|r| write_files(r, &[("lots/new/x/one", "1"), ("lots/new/two", "2")]));
    assert_eq!(
        added,
        vec![
            s("/lots", Modified, d),
            s("/lots/new", Added, d),
            s("/lots/new/two", Added, f),
            s("/lots/new/x", Added, d),
            s("/lots/new/x/one", Added, f)
        ]
    );
    let removed = p.both(|r| {
        fs::remove_dir_all(r.join("lots/new")).unwrap();
        set_mtime(&r.join("lots"), OLD, 0);
    });
    assert_eq!(removed, vec![s("/lots", Modified, d), s("/lots/new", Deleted, d)]);
    // A lower file deleted (a whiteout) and a lower directory removed and made again (opaque).
    let whiteout = p.both(|r| {
        fs::remove_file(r.join("lots/f03")).unwrap();
        fs::remove_dir_all(r.join("deep/a")).unwrap();
        write_files(r, &[("deep/a/again", "A")]);
    });
    assert!(whiteout.contains(&s("/lots/f03", Deleted, f)), "{whiteout:?}");
    assert!(whiteout.contains(&s("/deep/a", Modified, d)), "re-created: opaque {whiteout:?}");
    assert!(whiteout.contains(&s("/deep/a/again", Added, f)), "{whiteout:?}");
    // Types swapped: a lower file becomes a directory, a lower directory a symlink, an upper
    // directory renamed.
    let swapped = p.both(|r| {
        fs::remove_file(r.join("data/x")).unwrap();
        write_files(r, &[("data/x/inner", "i")]);
        fs::remove_dir_all(r.join("lots")).unwrap();
        std::os::unix::fs::symlink("data", r.join("lots")).unwrap();
        fs::rename(r.join("deep/a"), r.join("deep/moved")).unwrap();
    });
    assert!(swapped.contains(&s("/data/x", Modified, d)), "{swapped:?}");
    assert!(swapped.contains(&s("/lots", Modified, FileType::Symlink)), "{swapped:?}");
    assert!(swapped.contains(&s("/deep/moved/again", Added, f)), "{swapped:?}");
    assert!(swapped.contains(&s("/deep/a", Deleted, d)), "{swapped:?}");
}

/// A plain root with a base tree, indexed.
fn plain_root() -> (Scratch, Snapshotter) {
    let sc = Scratch::new();
    write_files(&sc.root_path(), &[("etc/conf", "aaaa")]);
    set_mtime(&sc.root_path().join("etc"), OLD, 0);
    let mut snap = Snapshotter::new(sc.root(), SnapshotMode::Full, IgnoreList::new(["/proc"]));
    snap.scan_initial().unwrap();
    (sc, snap)
}

/// What a RUN writes: new files, one hard-linked, one with an xattr.
fn write_new(r: &Path) {
    write_files(r, &[("app/one", "1111"), ("app/two", "2222"), ("app/big", &"b".repeat(300_000))]);
    fs::hard_link(r.join("app/one"), r.join("app/one-again")).unwrap();
    rustix::fs::lsetxattr(r.join("app/two"), "user.k", b"v", rustix::fs::XattrFlags::empty()).unwrap();
    set_mtime(&r.join("app"), OLD, 0);
}

/// chmod and back on every new file; then, on `app/two`, a same-size rewrite with its time put
/// back. Returns the changes of each.
fn touch_and_rewrite(sc: &Scratch, snap: &mut Snapshotter) -> (Changes, Changes) {
    let_the_clock_tick();
    for f in ["app/one", "app/two", "app/big"] {
        let p = sc.root_path().join(f);
        let m = fs::metadata(&p).unwrap().permissions().mode();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(m)).unwrap();
    }
    let back = snap.snapshot().unwrap();
    let p = sc.root_path().join("app/two");
    fs::write(&p, "2223").unwrap();
    set_mtime(&p, OLD, 0);
    (back, snap.snapshot().unwrap())
}

fn store() -> (tempfile::TempDir, BlobStore) {
    let d = tempfile::tempdir().unwrap();
    let st = BlobStore::open(d.path()).unwrap();
    (d, st)
}

#[test]
fn new_files_are_read_once_by_the_layer_writer_and_their_hashes_kept() {
    let (sc, mut snap) = plain_root();
    write_new(&sc.root_path());
    let mut changes = snap.snapshot_deferred(None).unwrap();
    assert_eq!(changes.stats.bytes_hashed, 0, "the snapshot read no new file");
    assert_eq!(changes.entries.len(), 5, "{:?}", summary(&changes));
    let (_d, st) = store();
    let deferred = write_layer(&sc.root(), &mut changes, &st, &LayerOptions::default()).unwrap();
    snap.settle(&changes).unwrap();
    let (back, rewrite) = touch_and_rewrite(&sc, &mut snap);
    assert!(back.stats.bytes_hashed >= 300_000, "the files whose ctime moved are hashed to compare");
    assert_eq!(summary(&back), vec![], "the hashes the writer took decide: nothing changed");
    assert_eq!(summary(&rewrite), vec![s("/app/two", Modified, FileType::File)]);

    // The same files in another root, snapshotted the old way (every file hashed by the
    // snapshot): the same layer, byte for byte.
    let (sc2, mut snap2) = plain_root();
    write_new(&sc2.root_path());
    set_mtime(&sc2.root_path().join("app"), OLD, 0);
    let mut eager = snap2.snapshot().unwrap();
    assert!(eager.stats.bytes_hashed >= 300_008);
    let eager = write_layer(&sc2.root(), &mut eager, &st, &LayerOptions::default()).unwrap();
    assert_eq!(deferred.digest, eager.digest);
}

#[test]
fn settling_without_a_layer_reads_the_files_itself() {
    let (sc, mut snap) = plain_root();
    write_new(&sc.root_path());
    let changes = snap.snapshot_deferred(None).unwrap();
    snap.settle(&changes).unwrap();
    let (back, rewrite) = touch_and_rewrite(&sc, &mut snap);
    assert_eq!(summary(&back), vec![]);
    assert_eq!(summary(&rewrite), vec![s("/app/two", Modified, FileType::File)]);
}

#[test]
fn a_file_left_unread_counts_as_changed_rather_than_be_missed() {
    // Not settled at all.
    let (sc, mut snap) = plain_root();
    write_new(&sc.root_path());
    snap.snapshot_deferred(None).unwrap();
    let (back, _) = touch_and_rewrite(&sc, &mut snap);
    assert_eq!(
        summary(&back).into_iter().map(|c| c.0).collect::<Vec<_>>(),
        vec!["/app/big", "/app/one", "/app/one-again", "/app/two"],
        "unknown hashes and a moved ctime: changed"
    );

    // Changed between the snapshot and settling (same size, time put back): settling does not
    // take its new content for the old one.
    let (sc, mut snap) = plain_root();
    write_new(&sc.root_path());
    let changes = snap.snapshot_deferred(None).unwrap();
    let_the_clock_tick();
    let p = sc.root_path().join("app/one");
    fs::write(&p, "1112").unwrap();
    set_mtime(&p, OLD, 0);
    snap.settle(&changes).unwrap();
    let c = snap.snapshot().unwrap();
    assert!(summary(&c).contains(&s("/app/one", Modified, FileType::File)), "{:?}", summary(&c));
}
