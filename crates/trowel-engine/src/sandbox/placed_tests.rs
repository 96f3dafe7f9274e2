//! Unit tests of the mounts container isolation puts in place (`placed.rs`), on paths under
//! a temporary directory (how `/` looks from `resolve` when the target starts there), and of
//! their copies given up for a stop.

use super::*;
use crate::sandbox::mounts::Sensitive;

// Container isolation works on `/` itself; these tests use paths under a temporary
// directory, which is how `/` looks from `resolve` when the target starts there.
fn tmp_target(dir: &Path, rel: &str) -> String {
    format!("{}/{rel}", dir.display())
}

fn listing(root: &Path) -> Vec<(String, u32, i64)> {
    let mut v: Vec<(String, u32, i64)> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            (e.path().strip_prefix(root).unwrap().display().to_string(), m.mode(), m.mtime_nsec())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn everything_placed_is_taken_away_and_times_come_back() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("var/cache/apt")).unwrap();
    fs::write(root.join("var/cache/apt/pkgcache"), "image's").unwrap();
    let cache = t.path().join("cache");
    fs::create_dir_all(&cache).unwrap();
    fs::write(cache.join("kept"), "from an earlier build").unwrap();
    let before = listing(&root);
    let mounts = [
        Mount {
            target: tmp_target(&root, "var/cache/apt"),
            source: MountSource::Host { path: cache.clone(), usage: HostUse::Persist },
            readonly: false,
        },
        Mount {
            target: tmp_target(&root, "run/secrets/tok"),
            source: MountSource::File { content: Sensitive(b"s3cr3t".to_vec()), mode: 0o400, uid: 0, gid: 0 },
            readonly: true,
        },
        Mount { target: tmp_target(&root, "tmp/scratch"), source: MountSource::Tmpfs { size: None }, readonly: false },
    ];
    let order: Vec<&Mount> = mounts.iter().collect();
    let mut p = Placed::place(&order, Some(t.path()), None).unwrap();
    assert_eq!(fs::read_to_string(root.join("var/cache/apt/kept")).unwrap(), "from an earlier build");
    assert!(!root.join("var/cache/apt/pkgcache").exists(), "the image's files are hidden");
    assert_eq!(fs::read_to_string(root.join("run/secrets/tok")).unwrap(), "s3cr3t");
    assert_eq!(fs::metadata(root.join("run/secrets/tok")).unwrap().mode() & 0o7777, 0o400);
    assert_eq!(fs::metadata(root.join("tmp/scratch")).unwrap().mode() & 0o7777, 0o1777);
    // The command writes into the cache and the tmpfs.
    fs::write(root.join("var/cache/apt/new"), "written by the step").unwrap();
    fs::write(root.join("tmp/scratch/x"), "gone").unwrap();
    p.remove().unwrap();
    assert_eq!(listing(&root), before, "the root is exactly as it was");
    assert_eq!(fs::read_to_string(cache.join("new")).unwrap(), "written by the step", "the cache keeps it");
}

#[test]
fn a_cache_on_another_filesystem_gets_the_new_contents_in_one_swap() {
    // What happens after the step when the cache could only be copied in.
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("cache/0");
    fs::create_dir_all(&home).unwrap();
    fs::write(home.join("old"), "from before").unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let placed = t.path().join("root/var/cache/x");
    fs::create_dir_all(&placed).unwrap();
    fs::set_permissions(&placed, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(placed.join("new"), "written by the step").unwrap();
    copy_back(&placed, &home, None).unwrap();
    let names: Vec<String> =
        fs::read_dir(&home).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["new"], "the step removed `old` (by not copying it): the cache is what the step left");
    assert_eq!(fs::metadata(&home).unwrap().mode() & 0o7777, 0o700);
    let siblings: Vec<String> =
        fs::read_dir(t.path().join("cache")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(siblings, ["0"], "no temporary copy is left beside it");
}

#[test]
fn writes_beside_a_target_are_kept() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(&root).unwrap();
    let m =
        Mount { target: tmp_target(&root, "app/cache"), source: MountSource::Tmpfs { size: None }, readonly: false };
    let mut p = Placed::place(&[&m], None, None).unwrap();
    fs::write(root.join("app/out"), "built").unwrap();
    p.remove().unwrap();
    assert_eq!(fs::read_to_string(root.join("app/out")).unwrap(), "built");
    assert!(!root.join("app/cache").exists());
}

#[test]
fn copies_of_bind_sources_are_discarded() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(&root).unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("main.go"), "package main").unwrap();
    let m = Mount {
        target: tmp_target(&root, "src"),
        source: MountSource::Host { path: src.clone(), usage: HostUse::Discard },
        readonly: false,
    };
    let mut p = Placed::place(&[&m], None, None).unwrap();
    fs::write(root.join("src/main.go"), "changed").unwrap();
    p.remove().unwrap();
    assert_eq!(fs::read_to_string(src.join("main.go")).unwrap(), "package main");
    assert!(!root.join("src").exists());
}

#[test]
fn read_only_mounts_written_to_and_tmpfs_over_size_are_breaches() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(&root).unwrap();
    let (cache, src) = (t.path().join("cache"), t.path().join("src"));
    fs::create_dir_all(&cache).unwrap();
    fs::write(cache.join("kept"), "from an earlier build").unwrap();
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("main.go"), "package main").unwrap();
    let mounts = [
        Mount {
            target: tmp_target(&root, "ro-cache"),
            source: MountSource::Host { path: cache.clone(), usage: HostUse::Persist },
            readonly: true,
        },
        Mount {
            target: tmp_target(&root, "src"),
            source: MountSource::Host { path: src.clone(), usage: HostUse::Discard },
            readonly: true,
        },
        Mount { target: tmp_target(&root, "small"), source: MountSource::Tmpfs { size: Some(4096) }, readonly: false },
    ];
    let order: Vec<&Mount> = mounts.iter().collect();

    // Only reading, and a tmpfs within its size: nothing to say, the cache as it was.
    let mut p = Placed::place(&order, Some(t.path()), None).unwrap();
    assert_eq!(fs::read_to_string(root.join("ro-cache/kept")).unwrap(), "from an earlier build");
    fs::write(root.join("small/x"), vec![1u8; 4096]).unwrap();
    assert_eq!(p.breaches(), Vec::<String>::new());
    p.remove().unwrap();
    assert!(cache.join("kept").exists());

    // Writes to both read-only mounts, a tmpfs over its size: each said, the cache emptied.
    let mut p = Placed::place(&order, Some(t.path()), None).unwrap();
    fs::write(root.join("ro-cache/new"), "must not persist").unwrap();
    fs::write(root.join("src/main.go"), "changed").unwrap();
    fs::write(root.join("small/x"), vec![1u8; 4097]).unwrap();
    let b = p.breaches();
    assert_eq!(b.len(), 3, "{b:?}");
    assert!(b[0].contains("ro-cache, a read-only mount (changed: ., new)") && b[0].ends_with("dropped"), "{}", b[0]);
    assert!(b[1].contains("src, a read-only mount (changed: main.go)") && !b[1].contains("dropped"), "{}", b[1]);
    assert!(b[2].contains("left 4097 bytes in the tmpfs mount") && b[2].contains("size=4096"), "{}", b[2]);
    p.remove().unwrap();
    assert!(cache.is_dir() && fs::read_dir(&cache).unwrap().next().is_none(), "the written cache is dropped");
    assert_eq!(fs::read_to_string(src.join("main.go")).unwrap(), "package main");
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0, "the root is as it was");
}

/// A stop asked for after `looks` looks at it: a copy given up part way.
fn stop_after(looks: usize) -> Cancel {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Cancel::new(move || n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= looks)
}

fn files(dir: &Path, n: usize, text: &str) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        fs::write(dir.join(format!("f{i}")), text).unwrap();
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn a_bind_copy_given_up_for_a_stop_leaves_the_target_as_the_image_had_it() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("src")).unwrap();
    fs::write(root.join("src/image.txt"), "the image's").unwrap();
    let src = t.path().join("ctx");
    files(&src, 500, "context");
    let m = Mount {
        target: tmp_target(&root, "src"),
        source: MountSource::Host { path: src.clone(), usage: HostUse::Discard },
        readonly: true,
    };
    let before = listing(&root);
    let err = Placed::place(&[&m], Some(t.path()), Some(stop_after(20))).err().expect("given up");
    assert!(crate::fs::cancel::is_cancelled(&err.1), "{err:?}");
    assert_eq!(listing(&root), before, "the partial copy went and the image's src came back");
    assert_eq!(names(t.path()), ["ctx", "root"], "nothing left aside");
    assert_eq!(names(&src).len(), 500, "the source is untouched");
}

#[test]
fn a_cache_copy_back_given_up_for_a_stop_keeps_the_cache_and_still_restores_the_target() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(&root).unwrap();
    // As placed: the image's `/cache` aside, the cache's copy at the target, which the command
    // filled; the cache itself (on another filesystem) as it was.
    let (target, aside, home) = (root.join("cache"), root.join(".aside"), t.path().join("home"));
    files(&aside, 1, "the image's");
    files(&target, 500, "written by the stopped command");
    files(&home, 3, "kept");
    let item = Item {
        target: target.clone(),
        aside: Some(aside.clone()),
        made: Vec::new(),
        content: Content::CopiedBack(home.clone()),
        watch: Watch::Nothing,
        drop_contents: false,
    };
    let err = take_away(&item, Some(&stop_after(20))).expect_err("given up");
    assert!(crate::fs::cancel::is_cancelled(&err.1), "{err:?}");
    assert_eq!(names(&home), ["f0", "f1", "f2"], "the cache keeps what it had");
    assert_eq!(fs::read_to_string(home.join("f0")).unwrap(), "kept");
    assert_eq!(names(t.path()), ["home", "root"], "no partial copy beside the cache");
    assert_eq!(names(&root), ["cache"], "the copy went, the image's entry came back");
    assert_eq!(fs::read_to_string(target.join("f0")).unwrap(), "the image's");
    assert_eq!(names(&target), ["f0"]);
}
