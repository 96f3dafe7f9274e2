//! An entry's unsynced mark (`cache/unpacked.rs`): entries are renamed in without their files
//! synced, marked with the boot that made them; an entry marked by another boot (a crash may
//! have emptied its files) is never mounted, and is made again.

use super::*;

#[test]
fn entries_marked_by_another_boot_are_never_mounted_and_are_made_again() {
    let df = CHILD.replace("BASE", layered_base());
    let cache = tempfile::Builder::new().prefix("trowel-store-cache-").tempdir_in("/var/tmp").unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let store = cache.path().join("unpacked");
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let marks = |expect: &str| {
        let entries: Vec<String> = std::fs::read_dir(store.join("sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(entries.len(), 4);
        for e in &entries {
            let mark = std::fs::read_to_string(store.join("unsynced").join(e)).unwrap();
            assert_eq!(mark.trim(), expect.trim(), "{e}");
        }
        entries
    };

    let first = Build::new(&df, None).run(&["--cache-dir", cache_dir, "--destination", &dest("unsynced-first")]);
    assert_eq!(first.unpacked[0]["from_store"].as_u64(), Some(0));
    let entries = marks(&boot);
    // Used as they are by the next build of this boot.
    let second = Build::new(&df, None).run(&["--cache-dir", cache_dir, "--destination", &dest("unsynced-second")]);
    assert_eq!(second.unpacked[0]["from_store"].as_u64(), Some(4));

    // As a crash before the kernel wrote them back leaves them: marked by a boot that is over,
    // the files of one entry lost.
    let other = "00000000-0000-0000-0000-000000000000\n";
    for e in &entries {
        std::fs::write(store.join("unsynced").join(e), other).unwrap();
    }
    let emptied = store.join("sha256").join(&entries[0]);
    for f in walk_files(&emptied) {
        std::fs::write(f, b"").unwrap();
    }
    let third = Build::new(&df, None).run(&["--cache-dir", cache_dir, "--destination", &dest("unsynced-third")]);
    let ev = &third.unpacked[0];
    assert_eq!((ev["layers"].as_u64(), ev["from_store"].as_u64()), (Some(4), Some(0)), "{ev}");
    assert_eq!(third.digest, first.digest, "an entry of another boot was used");
    marks(&boot);
    assert!(mounts_mentioning(cache.path()).is_empty());
}

/// The regular files under `dir`.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(walk_files(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}
