//! The layer unpacker on arbitrary bytes (plain tar, or gzip/zstd as sniffed by `open_layer`)
//! into a scratch root. Whatever the layer says, nothing may change outside the root: a canary
//! directory next to the roots (reachable as `../canary` from a root and by its fixed absolute
//! path) must keep its exact files, contents, modes and link counts (a hardlink into it would
//! raise them), and nothing else may appear next to the roots.
//!
//! The root is then indexed for snapshots, as the engine does with a base image's root.
//!
//! The first input byte chooses options (devices allowed, owners kept, an ignored path); the
//! rest is the layer. Sizes are capped so the fuzzer cannot fill the disk.
//!
//! Shared by the fuzz target `fuzz/fuzz_targets/unpack.rs` and by `tests/hardening_fuzz_seeds.rs`,
//! which runs it over the committed seeds in the normal test suite.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use trowel_engine::fs::{
    IgnoreList, Root, SnapshotMode, Snapshotter, UnpackOptions, WrittenContents, open_layer, unpack_layer,
};

/// Fixed, so seeds can aim absolute symlinks and hardlinks at the canary.
const SCRATCH: &str = "/tmp/trowel-fuzz";

fn canary() -> PathBuf {
    Path::new(SCRATCH).join("canary")
}

/// path → (kind, mode, nlink, size, content)
type Snapshot = BTreeMap<String, (char, u32, u64, u64, Vec<u8>)>;

fn snapshot(dir: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read canary") {
            let p = e.expect("canary entry").path();
            let m = fs::symlink_metadata(&p).expect("stat canary");
            let kind = if m.is_dir() {
                'd'
            } else if m.file_type().is_symlink() {
                'l'
            } else {
                'f'
            };
            let content = if kind == 'f' { fs::read(&p).expect("read canary file") } else { Vec::new() };
            if kind == 'd' {
                stack.push(p.clone());
            }
            out.insert(p.display().to_string(), (kind, m.mode(), m.nlink(), m.len(), content));
        }
    }
    out
}

/// Creates the scratch directory and canary once per process; returns what the canary holds.
fn setup() -> &'static Snapshot {
    static CANARY: OnceLock<Snapshot> = OnceLock::new();
    CANARY.get_or_init(|| {
        fs::create_dir_all(canary().join("sub")).unwrap();
        fs::write(canary().join("secret"), b"do not touch").unwrap();
        fs::write(canary().join("sub/file"), b"also not").unwrap();
        snapshot(&canary())
    })
}

/// Checks one input; panics on a finding.
pub fn check(data: &[u8]) {
    let expected = setup();
    let Some((&flags, layer)) = data.split_first() else { return };
    let root_dir = Path::new(SCRATCH).join(format!("root-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root_dir);
    fs::create_dir(&root_dir).unwrap();
    let blob = Path::new(SCRATCH).join(format!("root-{}.layer", std::process::id()));
    fs::File::create(&blob).unwrap().write_all(layer).unwrap();

    let opts = UnpackOptions {
        ignore: if flags & 4 != 0 { IgnoreList::new(["/proc"]) } else { IgnoreList::default() },
        allow_devices: flags & 1 != 0,
        preserve_owner: flags & 2 != 0,
        max_entry_size: Some(8 << 20),
        max_total_size: Some(32 << 20),
        max_entries: Some(100_000),
        select: None,
        overlay_lower: flags & 8 != 0,
        // Rootless isolation's two choices: devices skipped, every owner 0 (a single id).
        skip_devices: flags & 16 != 0,
        owners_to_root: flags & 32 != 0,
        // An ADD archive's names, read under the root rather than refused.
        archive_names: flags & 64 != 0,
        cancel: None,
        // A build root's unpack, which records what it writes for the first index.
        written: (flags & 128 != 0).then(|| Arc::new(WrittenContents::default())),
    };
    let root = Root::open(&root_dir).unwrap();
    if let Ok(reader) = open_layer(fs::File::open(&blob).unwrap()) {
        let _ = unpack_layer(&root, reader, &opts);
    }
    // What the engine does next with a base's root: index it for snapshots. Whatever tree the
    // layer made, that must fail cleanly or succeed, never panic or hang.
    let mut snap = Snapshotter::new(root, SnapshotMode::Full, IgnoreList::default());
    let _ = match &opts.written {
        Some(w) => snap.scan_initial_written(w),
        None => snap.scan_initial(),
    };
    drop(snap);

    assert_eq!(&snapshot(&canary()), expected, "the canary next to the root changed");
    for e in fs::read_dir(SCRATCH).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap_or_default();
        assert!(name == "canary" || name.starts_with("root-"), "{name:?} appeared next to the root");
    }
    // Device nodes and odd modes are removed with the root.
    fs::remove_dir_all(&root_dir).unwrap();
    let _ = fs::remove_file(&blob);
}
