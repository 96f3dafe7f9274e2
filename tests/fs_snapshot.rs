//! Snapshot classification in each mode, on real files.

mod fs_support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::Path;
use std::time::Instant;

use fs_support::Scratch;
use trowel_engine::fs::{ChangeKind, Changes, FileType, IgnoreList, SnapshotMode, Snapshotter};

use ChangeKind::*;

fn summary(c: &Changes) -> Vec<(String, ChangeKind, FileType)> {
    c.entries.iter().map(|e| (e.path.clone(), e.kind, e.file_type)).collect()
}

fn s(p: &str, k: ChangeKind, t: FileType) -> (String, ChangeKind, FileType) {
    (p.to_string(), k, t)
}

/// A root with a small base tree, indexed.
fn setup(mode: SnapshotMode) -> (Scratch, Snapshotter) {
    let sc = Scratch::new();
    let r = sc.root_path();
    fs::create_dir_all(r.join("etc")).unwrap();
    fs::write(r.join("etc/conf"), b"aaaa").unwrap();
    fs::create_dir_all(r.join("tree/sub/deeper")).unwrap();
    fs::write(r.join("tree/sub/deeper/f"), b"x").unwrap();
    fs::write(r.join("tree/top"), b"y").unwrap();
    symlink("/etc/conf", r.join("link")).unwrap();
    // Old times everywhere, so any change made by a test moves them whatever the clock's
    // granularity.
    let mut all: Vec<String> = fs_support::tree(&r).into_keys().collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in all {
        set_mtime(&r.join(p.trim_start_matches('/')), 1_500_000_000, 0);
    }
    let mut snap = Snapshotter::new(sc.root(), mode, IgnoreList::new(["/proc"]));
    let st = snap.scan_initial().unwrap();
    assert_eq!(st.files_walked, 9, "root + 8 paths");
    assert_eq!(snap.indexed_paths(), 9);
    if mode == SnapshotMode::Full {
        assert_eq!(st.bytes_hashed, 6);
    }
    (sc, snap)
}

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

const MODES: [SnapshotMode; 3] = [SnapshotMode::Full, SnapshotMode::Redo, SnapshotMode::Time];

#[test]
fn unchanged_root_reports_nothing() {
    for mode in MODES {
        let (_sc, mut snap) = setup(mode);
        assert!(snap.snapshot().unwrap().is_empty(), "{mode:?}");
    }
}

#[test]
fn added_file_and_its_directory() {
    for mode in MODES {
        let (sc, mut snap) = setup(mode);
        fs::write(sc.root_path().join("etc/new"), b"n").unwrap();
        let c = snap.snapshot().unwrap();
        assert_eq!(
            summary(&c),
            vec![s("/etc", Modified, FileType::Dir), s("/etc/new", Added, FileType::File)],
            "{mode:?}"
        );
        assert_eq!(c.entries[1].size, 1);
        assert!(snap.snapshot().unwrap().is_empty(), "index updated ({mode:?})");
    }
}

#[test]
fn content_change_with_preserved_mtime() {
    for mode in MODES {
        let (sc, mut snap) = setup(mode);
        let p = sc.root_path().join("etc/conf");
        let (sec, nsec) = mtime(&p);
        fs::write(&p, b"bbbb").unwrap();
        set_mtime(&p, sec, nsec);
        let c = snap.snapshot().unwrap();
        let expect = if mode == SnapshotMode::Full { vec![s("/etc/conf", Modified, FileType::File)] } else { vec![] };
        assert_eq!(summary(&c), expect, "{mode:?}");
    }
}

#[test]
fn chmod_chown_and_back() {
    for mode in MODES {
        let (sc, mut snap) = setup(mode);
        let p = sc.root_path().join("etc/conf");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o4755)).unwrap();
        let c = snap.snapshot().unwrap();
        let expect = if mode == SnapshotMode::Time { vec![] } else { vec![s("/etc/conf", Modified, FileType::File)] };
        assert_eq!(summary(&c), expect, "chmod {mode:?}");
        if mode != SnapshotMode::Time {
            let e = &c.entries[0];
            assert_eq!((e.mode, e.previous.as_ref().unwrap().mode), (0o4755, 0o644));
        }
        lchown(&p, Some(1000), Some(1000)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o4755)).unwrap();
        let c = snap.snapshot().unwrap();
        let expect = if mode == SnapshotMode::Time { vec![] } else { vec![s("/etc/conf", Modified, FileType::File)] };
        assert_eq!(summary(&c), expect, "chown {mode:?}");
        // Change and restore: ctime moves, nothing else does.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        lchown(&p, Some(0), Some(0)).unwrap();
        lchown(&p, Some(1000), Some(1000)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o4755)).unwrap();
        let (sec, nsec) = mtime(&p);
        set_mtime(&p, sec, nsec);
        assert!(snap.snapshot().unwrap().is_empty(), "chmod-and-back / touch-to-same-time {mode:?}");
    }
}

#[test]
fn deleted_tree_reports_only_the_top() {
    for mode in MODES {
        let (sc, mut snap) = setup(mode);
        fs::remove_dir_all(sc.root_path().join("tree")).unwrap();
        let c = snap.snapshot().unwrap();
        assert_eq!(summary(&c), vec![s("/tree", Deleted, FileType::Dir)], "{mode:?}");
        assert_eq!(c.entries[0].previous.as_ref().unwrap().file_type, FileType::Dir);
    }
}

#[test]
fn replaced_directory_is_opaque() {
    for mode in MODES {
        let (sc, mut snap) = setup(mode);
        let t = sc.root_path().join("tree");
        fs::remove_dir_all(&t).unwrap();
        fs::create_dir_all(t.join("sub")).unwrap();
        fs::write(t.join("sub/new"), b"n").unwrap();
        let c = snap.snapshot().unwrap();
        assert_eq!(
            summary(&c),
            vec![
                s("/tree", Modified, FileType::Dir),
                s("/tree/sub", Added, FileType::Dir),
                // What the directory held and no longer does is deleted (the layer's opaque
                // marker hides it; a viewer shows it).
                s("/tree/sub/deeper", Deleted, FileType::Dir),
                s("/tree/sub/new", Added, FileType::File),
                s("/tree/top", Deleted, FileType::File)
            ],
            "{mode:?}"
        );
        assert!(c.entries[0].opaque);
        assert!(!c.entries[1].opaque);
    }
}

#[test]
fn type_changes_are_modifications() {
    for mode in MODES {
        let (sc, mut snap) = setup(mode);
        let r = sc.root_path();
        fs::remove_file(r.join("tree/top")).unwrap();
        fs::create_dir(r.join("tree/top")).unwrap();
        fs::remove_dir_all(r.join("tree/sub")).unwrap();
        symlink("/etc", r.join("tree/sub")).unwrap();
        let c = snap.snapshot().unwrap();
        assert_eq!(
            summary(&c),
            vec![
                s("/tree", Modified, FileType::Dir),
                s("/tree/sub", Modified, FileType::Symlink),
                // What the replaced directory held is deleted, as for a re-created one (the
                // link hides it in the layer).
                s("/tree/sub/deeper", Deleted, FileType::Dir),
                s("/tree/top", Modified, FileType::Dir)
            ],
            "{mode:?}"
        );
        assert_eq!(c.entries[1].previous.as_ref().unwrap().file_type, FileType::Dir);
        assert_eq!(c.entries[1].link_target.as_deref(), Some("/etc"));
        assert_eq!(c.entries[2].previous.as_ref().unwrap().file_type, FileType::Dir);
    }
}

#[test]
fn hardlinks_and_symlink_retarget() {
    for mode in MODES {
        let (sc, mut snap) = setup(mode);
        let r = sc.root_path();
        fs::write(r.join("etc/h1"), b"same").unwrap();
        fs::hard_link(r.join("etc/h1"), r.join("etc/h2")).unwrap();
        fs::remove_file(r.join("link")).unwrap();
        symlink("/tree/top", r.join("link")).unwrap();
        let c = snap.snapshot().unwrap();
        assert_eq!(
            summary(&c),
            vec![
                s("/", Modified, FileType::Dir),
                s("/etc", Modified, FileType::Dir),
                s("/etc/h1", Added, FileType::File),
                s("/etc/h2", Added, FileType::Hardlink),
                s("/link", Modified, FileType::Symlink)
            ]
            .into_iter()
            .filter(|x| x.0 != "/")
            .collect::<Vec<_>>(),
            "{mode:?}"
        );
        assert_eq!(c.entries[2].link_target.as_deref(), Some("/etc/h1"));
        let l = &c.entries[3];
        assert_eq!(l.link_target.as_deref(), Some("/tree/top"));
        assert_eq!(l.previous.as_ref().unwrap().link_target.as_deref(), Some("/etc/conf"));
    }
}

#[test]
fn ignored_paths_and_sockets_are_not_reported() {
    let (sc, mut snap) = setup(SnapshotMode::Full);
    let r = sc.root_path();
    fs::create_dir_all(r.join("proc/1")).unwrap();
    fs::write(r.join("proc/1/status"), b"x").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(r.join("etc/sock")).unwrap();
    let c = snap.snapshot().unwrap();
    assert_eq!(summary(&c), vec![s("/etc", Modified, FileType::Dir)]);
}

#[test]
fn xattr_change_is_seen_in_full_mode_only() {
    for mode in MODES {
        let (sc, mut snap) = setup(mode);
        let p = sc.root_path().join("etc/conf");
        rustix::fs::lsetxattr(&p, "user.k", b"v", rustix::fs::XattrFlags::empty()).unwrap();
        let c = snap.snapshot().unwrap();
        let expect = if mode == SnapshotMode::Full { vec![s("/etc/conf", Modified, FileType::File)] } else { vec![] };
        assert_eq!(summary(&c), expect, "{mode:?}");
    }
}

#[test]
fn snapshot_paths_looks_only_at_the_given_subtrees() {
    let (sc, mut snap) = setup(SnapshotMode::Full);
    let r = sc.root_path();
    fs::write(r.join("etc/outside"), b"not looked at").unwrap();
    fs::remove_file(r.join("tree/sub/deeper/f")).unwrap();
    fs::write(r.join("tree/sub/added"), b"a").unwrap();
    fs::create_dir_all(r.join("app/bin")).unwrap();
    fs::write(r.join("app/bin/tool"), b"t").unwrap();
    let c = snap.snapshot_paths(&["/tree/sub".to_string(), "/app/bin/tool".to_string()]).unwrap();
    assert_eq!(
        summary(&c),
        vec![
            s("/app", Added, FileType::Dir),
            s("/app/bin", Added, FileType::Dir),
            s("/app/bin/tool", Added, FileType::File),
            s("/tree/sub", Modified, FileType::Dir),
            s("/tree/sub/added", Added, FileType::File),
            s("/tree/sub/deeper", Modified, FileType::Dir),
            s("/tree/sub/deeper/f", Deleted, FileType::File),
        ]
    );
    // A path through a symlinked parent is diffed where it really lives.
    symlink("/tree", r.join("tl")).unwrap();
    fs::write(r.join("tree/viasym"), b"v").unwrap();
    let c = snap.snapshot_paths(&["/tl/viasym".to_string()]).unwrap();
    // The unchanged ancestors on the way are compared too: /tree's mtime moved.
    assert_eq!(summary(&c), vec![s("/tree", Modified, FileType::Dir), s("/tree/viasym", Added, FileType::File)]);
    // The full walk now finds only what the targeted ones skipped.
    let c = snap.snapshot().unwrap();
    assert_eq!(
        summary(&c),
        vec![
            s("/etc", Modified, FileType::Dir),
            s("/etc/outside", Added, FileType::File),
            s("/tl", Added, FileType::Symlink),
        ]
    );
}

#[test]
fn snapshot_without_initial_scan_reports_everything() {
    let sc = Scratch::new();
    fs::create_dir(sc.root_path().join("a")).unwrap();
    fs::write(sc.root_path().join("a/b"), b"b").unwrap();
    let mut snap = Snapshotter::new(sc.root(), SnapshotMode::Redo, IgnoreList::default());
    let c = snap.snapshot().unwrap();
    assert_eq!(summary(&c), vec![s("/a", Added, FileType::Dir), s("/a/b", Added, FileType::File)]);
}

#[test]
fn timing_of_a_100k_file_tree() {
    let sc = Scratch::new();
    let r = sc.root_path();
    for d in 0..100 {
        let dir = r.join(format!("d{d:03}"));
        fs::create_dir(&dir).unwrap();
        for sub in 0..10 {
            let sd = dir.join(format!("s{sub}"));
            fs::create_dir(&sd).unwrap();
            for f in 0..100 {
                let mut file = fs::File::create(sd.join(format!("f{f:03}"))).unwrap();
                file.write_all(b"content").unwrap();
            }
        }
    }
    // Baseline: a plain std stat walk of the same tree, in the same build profile.
    fn stat_walk(p: &Path) -> u64 {
        let mut n = 0;
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let md = fs::symlink_metadata(e.path()).unwrap();
            n += 1;
            if md.is_dir() {
                n += stat_walk(&e.path());
            }
        }
        n
    }
    let t = Instant::now();
    assert_eq!(stat_walk(&r), 101_100);
    println!("baseline std stat walk: {:?}", t.elapsed());
    for mode in MODES {
        let mut snap = Snapshotter::new(sc.root(), mode, IgnoreList::default());
        let t = Instant::now();
        let init = snap.scan_initial().unwrap();
        let t_init = t.elapsed();
        fs::write(r.join("d050/s5/f050"), b"changed!").unwrap();
        let t = Instant::now();
        let c = snap.snapshot().unwrap();
        let t_snap = t.elapsed();
        assert_eq!(init.files_walked, 101_101);
        assert!(c.entries.iter().any(|e| e.path == "/d050/s5/f050" && e.kind == Modified));
        println!(
            "{mode:?}: scan_initial of {} paths in {:?} ({} bytes hashed), snapshot in {:?} ({} changes)",
            init.files_walked,
            t_init,
            init.bytes_hashed,
            t_snap,
            c.entries.len()
        );
    }
}

#[test]
fn snapshot_paths_follows_a_final_symlink_to_a_directory() {
    let (sc, mut snap) = setup(SnapshotMode::Redo);
    let r = sc.root_path();
    symlink("/tree/sub", r.join("app")).unwrap();
    snap.snapshot().unwrap();
    fs::write(r.join("tree/sub/copied"), b"c").unwrap();
    let c = snap.snapshot_paths(&["/app/".to_string()]).unwrap();
    assert_eq!(
        summary(&c),
        vec![s("/tree/sub", Modified, FileType::Dir), s("/tree/sub/copied", Added, FileType::File)]
    );
}

/// The initial scan walks on several threads, each taking whole directories; the index it
/// makes is the one a single walker makes, byte for byte, and diffs against it the same way.
#[test]
fn a_parallel_initial_scan_makes_the_same_index_as_one_walker() {
    let sc = Scratch::new();
    let r = sc.root_path();
    // Deeper than the levels the scan hands out: five levels of three directories, each with
    // two files, a symlink at every level, one file hard-linked across two of the directories
    // handed out, and an ignored subtree below them.
    let mut dirs = vec![String::new()];
    for _ in 0..5 {
        dirs = dirs.iter().flat_map(|d| (0..3).map(move |i| format!("{d}/d{i}"))).collect();
        for d in &dirs {
            fs::create_dir_all(r.join(&d[1..])).unwrap();
            fs::write(r.join(format!("{}/a", &d[1..])), d.as_bytes()).unwrap();
            fs::write(r.join(format!("{}/b", &d[1..])), b"bb").unwrap();
            symlink("a", r.join(format!("{}/l", &d[1..]))).unwrap();
        }
    }
    fs::hard_link(r.join("d0/d1/a"), r.join("d2/d0/d1/linked")).unwrap();
    // More directories near the top than the scan holds waiting (the rest are walked where
    // they are met).
    for i in 0..100 {
        fs::create_dir_all(r.join(format!("wide/w{i}/x"))).unwrap();
    }
    fs::create_dir_all(r.join("d1/d1/skip/deeper")).unwrap();
    fs::write(r.join("d1/d1/skip/deeper/x"), b"x").unwrap();
    let ignore = || IgnoreList::new(["/proc", "/d1/d1/skip"]);
    // 363 directories, each with two files and a symlink, the root, one more link, and the
    // wide directory's 201.
    let paths = 1 + 363 * 4 + 1 + 201;
    for mode in MODES {
        let mut one = Snapshotter::new(sc.root(), mode, ignore());
        let mut many = Snapshotter::new(sc.root(), mode, ignore());
        let (s1, s4) = (one.scan_initial_on(1).unwrap(), many.scan_initial_on(4).unwrap());
        assert_eq!(s1.files_walked, paths, "{mode:?}");
        assert_eq!((s4.files_walked, s4.bytes_hashed), (s1.files_walked, s1.bytes_hashed), "{mode:?}");
        assert_eq!(many.indexed_paths(), paths, "{mode:?}");
        assert!(one.saved_index(b"k") == many.saved_index(b"k"), "{mode:?}: the indexes differ");
    }
    // Both diff the same changes the same way, deep in the tree and at the top.
    let mut one = Snapshotter::new(sc.root(), SnapshotMode::Full, ignore());
    let mut many = Snapshotter::new(sc.root(), SnapshotMode::Full, ignore());
    one.scan_initial_on(1).unwrap();
    many.scan_initial_on(2).unwrap();
    fs::write(r.join("d2/d2/d2/d2/d2/a"), b"changed, deep").unwrap();
    fs::remove_dir_all(r.join("d0/d2")).unwrap();
    fs::write(r.join("d1/d0/d0/new"), b"new").unwrap();
    let (c1, c2) = (one.snapshot().unwrap(), many.snapshot().unwrap());
    assert_eq!(summary(&c1), summary(&c2));
    assert!(summary(&c1).contains(&s("/d0/d2", Deleted, FileType::Dir)), "{:?}", summary(&c1));
    assert!(summary(&c1).contains(&s("/d1/d0/d0/new", Added, FileType::File)));
    assert!(summary(&c1).contains(&s("/d2/d2/d2/d2/d2/a", Modified, FileType::File)));
}

/// A step's snapshot in a stopped build gives its walk up before the next entry, whole tree
/// or subtrees; not stopped, it looks at the stop once per entry and reports the same changes.
#[test]
fn a_cancelled_snapshot_gives_up_its_walk() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use trowel_engine::fs::{Cancel, FsError};
    let counting = |after: usize| {
        let looks = Arc::new(AtomicUsize::new(0));
        let counted = looks.clone();
        (Cancel::new(move || counted.fetch_add(1, Ordering::Relaxed) + 1 >= after), looks)
    };
    let (sc, mut snap) = setup(SnapshotMode::Redo);
    for i in 0..50 {
        fs::write(sc.root_path().join(format!("tree/n{i}")), b"n").unwrap();
    }
    let (now, _) = counting(1);
    assert!(matches!(snap.snapshot_deferred(Some(&now)), Err(FsError::Cancelled)));
    // The index went with the walk: the next snapshot walks everything again, all Added.
    let (never, looks) = counting(usize::MAX);
    let c = snap.snapshot_deferred(Some(&never)).unwrap();
    assert_eq!(c.entries.iter().filter(|e| e.kind == Added).count(), 58, "{:?}", summary(&c));
    assert!(looks.load(Ordering::Relaxed) >= 58, "one look per entry: {looks:?}");
    fs::write(sc.root_path().join("tree/later"), b"l").unwrap();
    let (soon, _) = counting(1);
    let r = snap.snapshot_paths_deferred(&["/tree".to_string()], Some(&soon));
    assert!(matches!(r, Err(FsError::Cancelled)), "{r:?}");
}

/// The walks that put no layer of their own (a `--link` step's root, what a layer laid over a
/// root touched) are given up as a step's are, and report the same changes when not stopped.
#[test]
fn a_cancelled_plain_snapshot_gives_up_its_walk() {
    use trowel_engine::fs::{Cancel, FsError};
    let (sc, mut snap) = setup(SnapshotMode::Redo);
    let stopped = Cancel::new(|| true);
    let running = Cancel::new(|| false);
    fs::write(sc.root_path().join("tree/a-new"), b"n").unwrap();
    assert!(matches!(snap.snapshot_cancellable(Some(&stopped)), Err(FsError::Cancelled)));
    let c = snap.snapshot_cancellable(Some(&running)).unwrap();
    assert!(summary(&c).contains(&s("/tree/a-new", Added, FileType::File)), "{:?}", summary(&c));
    fs::write(sc.root_path().join("tree/later"), b"l").unwrap();
    let r = snap.snapshot_paths_cancellable(&["/tree".to_string()], Some(&stopped));
    assert!(matches!(r, Err(FsError::Cancelled)), "{r:?}");
    let c = snap.snapshot_paths_cancellable(&["/tree".to_string()], None).unwrap();
    assert!(summary(&c).contains(&s("/tree/later", Added, FileType::File)), "{:?}", summary(&c));
}
