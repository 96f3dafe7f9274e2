//! What a cache dir holds, as `trowel cache prune` and `check` see it: every entry of every
//! store with its size on disk, its last use and the blobs it names, and the blobs themselves.
//!
//! Sizes are disk usage (allocated blocks, a file with several names within one entry counted
//! once), as `du` and BuildKit's `keepBytes` count them. Blobs are not entries: several entries
//! share them (images share layers), and one goes when the last entry naming it goes.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::cache::{basedir, local, unpacked, usage};
use crate::digest::Digest;

/// Which store an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `unpacked/sha256/<chain id>`: one layer kept unpacked.
    Unpacked,
    /// `refs/<hash>.json`: a base image `trowel warm` cached (or one of its aliases).
    BaseImage,
    /// `layers/<key>.json`: a COPY/ADD layer of the local layer store.
    Layer,
    /// `layers/step-<hash>.json`: a step's newest entry, kept to explain misses.
    StepPointer,
    /// `context-digests/<hash>`: a build context's file digests.
    ContextDigests,
    /// `listings/<blob digest hex>`: what a layer holds, as a viewer was shown it.
    Listing,
    /// `mounts/<hash>/<n>`: an instance of a `RUN --mount=type=cache` cache.
    CacheMount,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Unpacked => "unpacked layer",
            Kind::BaseImage => "base image",
            Kind::Layer => "local layer",
            Kind::StepPointer => "step pointer",
            Kind::ContextDigests => "context digests",
            Kind::Listing => "layer listing",
            Kind::CacheMount => "cache mount",
        }
    }
}

/// One entry of a store.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: Kind,
    /// The file or directory that is the entry.
    pub path: PathBuf,
    /// Its size on disk, blobs not included.
    pub bytes: u64,
    pub last_use: SystemTime,
    /// The file whose time `last_use` is, if it has one.
    pub marker: Option<PathBuf>,
    /// The blobs it names.
    pub blobs: Vec<Digest>,
}

/// Something a killed process left, and what shows nobody is still making it.
#[derive(Debug, Clone)]
pub enum Leftover {
    /// Abandoned already: in the trash, a temporary file long unused, an unpacked entry being
    /// made whose owner's lock is free, a making lock nobody holds.
    Path(PathBuf),
    /// A use lock whose entry is gone (`unpacked/uses/<hex>`): removed only while claimed, as
    /// a build may hold it while it makes the entry.
    UseLock { store: PathBuf, hex: String },
    /// A cache mount instance being seeded (`mounts/<hash>/.new-*`): removed only while the
    /// cache's `create.lock` is free.
    MountSeed { cache: PathBuf, path: PathBuf },
}

impl Leftover {
    pub fn path(&self) -> PathBuf {
        match self {
            Leftover::Path(p) | Leftover::MountSeed { path: p, .. } => p.clone(),
            Leftover::UseLock { store, hex } => usage::use_lock_path(store, hex),
        }
    }
}

/// Everything in a cache dir.
#[derive(Debug, Default)]
pub struct Inventory {
    pub items: Vec<Item>,
    /// Every blob in `blobs/sha256`, with its size on disk.
    pub blobs: BTreeMap<Digest, u64>,
    /// What is no entry of any store: leftovers of killed builds, warms and prunes (removed by
    /// every prune once no live process owns them).
    pub leftovers: Vec<Leftover>,
    /// Entries that cannot be read as what their store holds, and why.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Leftovers of interrupted writes (a temporary file of an entry or a blob) are removed once
/// this old: a younger one may belong to a writer still running.
const STALE: std::time::Duration = std::time::Duration::from_secs(3600);

fn mtime(m: &fs::Metadata) -> SystemTime {
    m.modified().unwrap_or(SystemTime::UNIX_EPOCH)
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn stale(m: &fs::Metadata) -> bool {
    mtime(m).elapsed().is_ok_and(|a| a > STALE)
}

/// Disk usage of `path` (a file, or a directory walked without following symlinks).
pub fn disk_usage(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        if m.nlink() > 1 && !m.is_dir() && !seen.insert((m.dev(), m.ino())) {
            continue;
        }
        total += m.blocks() * 512;
        if m.is_dir()
            && let Ok(rd) = fs::read_dir(&p)
        {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
    }
    total
}

fn entries(dir: &Path) -> Vec<(String, PathBuf, fs::Metadata)> {
    let Ok(rd) = fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<_> = rd
        .flatten()
        .filter_map(|e| {
            let m = fs::symlink_metadata(e.path()).ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), e.path(), m))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

impl Inventory {
    /// Reads what `cache_dir` holds. Nothing is changed.
    pub fn scan(cache_dir: &Path) -> io::Result<Inventory> {
        if !cache_dir.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{} is not a directory", cache_dir.display())));
        }
        let mut inv = Inventory::default();
        inv.scan_blobs(&cache_dir.join("blobs/sha256"));
        inv.scan_unpacked(&cache_dir.join("unpacked"));
        // Rootless builds' stores, one per user-namespace mapping (`cache/unpacked.rs`).
        for (_, path, m) in entries(&cache_dir.join(unpacked::USERNS_STORES)) {
            if m.is_dir() {
                inv.scan_unpacked(&path);
            } else {
                inv.unreadable.push((path, "not an unpacked-layer store".into()));
            }
        }
        inv.scan_refs(&cache_dir.join("refs"));
        inv.scan_layers(&cache_dir.join(local::LAYERS_DIR));
        inv.scan_files(&cache_dir.join(crate::engine::context_digests::DIR), Kind::ContextDigests);
        inv.scan_files(&cache_dir.join(crate::cache::listings::DIR), Kind::Listing);
        inv.scan_mounts(&cache_dir.join("mounts"));
        for (_, p, _) in entries(&cache_dir.join(super::TRASH)) {
            inv.leftovers.push(Leftover::Path(p));
        }
        Ok(inv)
    }

    fn scan_blobs(&mut self, dir: &Path) {
        for (name, path, m) in entries(dir) {
            match format!("sha256:{name}").parse::<Digest>() {
                Ok(d) if is_hex64(&name) && m.is_file() => {
                    self.blobs.insert(d, m.blocks() * 512);
                }
                _ if name.starts_with(".partial-") && stale(&m) => self.leftovers.push(Leftover::Path(path)),
                _ if name.starts_with(".partial-") => {}
                _ => self.unreadable.push((path, "not a blob".into())),
            }
        }
    }

    fn scan_unpacked(&mut self, dir: &Path) {
        let uses = dir.join(usage::USES_DIR);
        let mut live = HashSet::new();
        for (name, path, m) in entries(&dir.join("sha256")) {
            if !is_hex64(&name) || !m.is_dir() {
                self.unreadable.push((path, "not an unpacked layer".into()));
                continue;
            }
            // Last use: the use lock's time (set by every build that used it), else when the
            // entry was made (by a trowel from before the locks).
            let lock = uses.join(&name);
            let (last_use, marker) = match fs::metadata(&lock) {
                Ok(u) => (mtime(&u), Some(lock)),
                Err(_) => (mtime(&m), None),
            };
            live.insert(name);
            let bytes = disk_usage(&path);
            self.items.push(Item { kind: Kind::Unpacked, bytes, path, last_use, marker, blobs: Vec::new() });
        }
        for (_, path, _) in entries(&dir.join("tmp")) {
            if crate::fs::dir_lock::is_abandoned(&path) {
                self.leftovers.push(Leftover::Path(path));
            }
        }
        // A making lock nobody holds: its maker was killed (a live one removes its own).
        for (_, path, _) in entries(&dir.join(usage::MAKING_DIR)) {
            if usage::making_abandoned(&path) {
                self.leftovers.push(Leftover::Path(path));
            }
        }
        // The kept index of an entry that is gone (its rename into place raced a prune), or a
        // temporary file of one a killed build never renamed into place.
        for (name, path, m) in entries(&dir.join(unpacked::INDEXES_DIR)) {
            let orphan = if is_hex64(&name) { !live.contains(&name) } else { stale(&m) };
            if orphan {
                self.leftovers.push(Leftover::Path(path));
            }
        }
        // A use lock whose entry is gone: removed while nobody holds it (see `prune`).
        for (name, _, _) in entries(&uses) {
            if !live.contains(&name) {
                self.leftovers.push(Leftover::UseLock { store: dir.to_path_buf(), hex: name });
            }
        }
    }

    fn scan_refs(&mut self, dir: &Path) {
        for (name, path, m) in entries(dir) {
            if name.starts_with(".tmp-") {
                if stale(&m) {
                    self.leftovers.push(Leftover::Path(path));
                }
                continue;
            }
            match basedir::entry_blobs(&path) {
                Ok(ds) => self.items.push(Item {
                    kind: Kind::BaseImage,
                    bytes: m.blocks() * 512,
                    last_use: mtime(&m),
                    marker: Some(path.clone()),
                    blobs: ds.into_iter().map(|d| d.digest).collect(),
                    path,
                }),
                Err(why) => self.unreadable.push((path, why)),
            }
        }
    }

    fn scan_layers(&mut self, dir: &Path) {
        for (name, path, m) in entries(dir) {
            if name.starts_with(".tmp-") {
                if stale(&m) {
                    self.leftovers.push(Leftover::Path(path));
                }
                continue;
            }
            let kind = if name.starts_with("step-") { Kind::StepPointer } else { Kind::Layer };
            match local::entry_blob(&path) {
                // A pointer's blob is its entry's; the pointer itself needs none of it.
                Ok(d) => self.items.push(Item {
                    kind,
                    bytes: m.blocks() * 512,
                    last_use: mtime(&m),
                    marker: Some(path.clone()),
                    blobs: d.filter(|_| kind == Kind::Layer).map(|d| d.digest).into_iter().collect(),
                    path,
                }),
                Err(why) => self.unreadable.push((path, why)),
            }
        }
    }

    /// A store of single files, each its own entry whose time is its last use; `.`-files are
    /// temporaries.
    fn scan_files(&mut self, dir: &Path, kind: Kind) {
        for (name, path, m) in entries(dir) {
            if name.starts_with('.') {
                if stale(&m) {
                    self.leftovers.push(Leftover::Path(path));
                }
                continue;
            }
            let item = Item {
                kind,
                bytes: m.blocks() * 512,
                last_use: mtime(&m),
                marker: Some(path.clone()),
                blobs: vec![],
                path,
            };
            self.items.push(item);
        }
    }

    fn scan_mounts(&mut self, dir: &Path) {
        for (_, cache, m) in entries(dir) {
            if !m.is_dir() {
                continue;
            }
            for (name, path, m) in entries(&cache) {
                if name.parse::<usize>().is_ok() && m.is_dir() {
                    let lock = cache.join(format!("{name}.lock"));
                    let (last_use, marker) = match fs::metadata(&lock) {
                        Ok(l) => (mtime(&l), Some(lock)),
                        Err(_) => (mtime(&m), None),
                    };
                    let bytes = disk_usage(&path);
                    self.items.push(Item { kind: Kind::CacheMount, path, bytes, last_use, marker, blobs: Vec::new() });
                } else if name.starts_with(".new-") {
                    self.leftovers.push(Leftover::MountSeed { cache: cache.clone(), path });
                }
            }
        }
    }

    /// Bytes on disk: entries, and every blob (named or not).
    pub fn total(&self) -> u64 {
        self.items.iter().map(|i| i.bytes).sum::<u64>() + self.blobs.values().sum::<u64>()
    }
}
