//! Bounding the cache dir: `trowel cache prune` (and, opted into, the end of a build or warm)
//! removes the least recently used entries of every store under it until what is left fits
//! `--max-size`, and every entry unused for longer than `--max-age` (BuildKit's gc policies
//! `keepBytes` and `keepDuration`; `podman system prune`'s `--filter until=`).
//!
//! Entries, oldest last use first (see `inventory.rs`): unpacked layers, base images, local
//! layers and their step pointers, context digests, layer listings, cache-mount instances. A
//! blob goes when no entry names it any more. Leftovers of killed processes always go.
//!
//! Safe beside running builds and warms on the same cache dir (`cache/usage.rs`): an unpacked
//! layer or a cache-mount instance is removed only while its lock is held exclusively, so never
//! one a build has mounted or is making; blobs are deleted only under the GC lock held
//! exclusively, so never one a build is linking or a warm has written before its entry; an
//! entry being written is a temporary file until its rename, and temporary files are left
//! alone until long unused.
//!
//! Safe if killed (SIGKILL, a node going away): an entry leaves its store by one `rename` into
//! `<cache-dir>/.trash` and is deleted from there, so a store holds whole entries or none; the
//! next prune empties the trash. Blobs are deleted after the entries that named them, so no
//! entry is ever left naming a deleted blob by a prune.

mod check;
mod inventory;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use check::{Finding, check};
pub use inventory::{Inventory, Item, Kind, Leftover, disk_usage};

use crate::cache::usage;
use crate::digest::Digest;

/// The directory entries wait in to be deleted.
pub const TRASH: &str = ".trash";

/// What to keep.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Remove the least recently used entries until the cache dir's entries and blobs take at
    /// most this many bytes on disk.
    pub max_size: Option<u64>,
    /// Remove every entry not used for longer than this.
    pub max_age: Option<Duration>,
    /// Only say what would be removed.
    pub dry_run: bool,
    /// Wait for builds that are linking or writing blobs before deleting unreferenced blobs
    /// (`trowel cache prune`); without it (a build's own prune) that step is skipped while
    /// another process is in such a window, and done by a later prune.
    pub wait_for_blobs: bool,
}

/// One thing removed (or, with `dry_run`, that would be).
#[derive(Debug, Clone)]
pub struct Removed {
    pub kind: Option<Kind>,
    pub path: PathBuf,
    pub bytes: u64,
    pub last_use: Option<SystemTime>,
}

/// What a prune did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Bytes on disk of entries and blobs before and after.
    pub before: u64,
    pub after: u64,
    /// Entries and blobs removed, oldest last use first (blobs: `kind` is `None`).
    pub removed: Vec<Removed>,
    /// Entries that would have gone but are in use by a running build (or were used while the
    /// prune ran).
    pub in_use: Vec<Item>,
    /// Leftovers of killed processes removed.
    pub leftovers: Vec<PathBuf>,
    /// Why unreferenced blobs were not collected this time, if they were not.
    pub blobs_skipped: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("prune {path}: {source}")]
pub struct PruneError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> PruneError + '_ {
    move |source| PruneError { path: path.to_path_buf(), source }
}

/// The trash of `cache_dir`, made if missing.
fn trash_dir(cache_dir: &Path) -> io::Result<PathBuf> {
    let t = cache_dir.join(TRASH);
    fs::create_dir_all(&t)?;
    Ok(t)
}

/// Moves `path` into the trash (one rename: the store no longer has it), then deletes it.
fn trash(cache_dir: &Path, path: &Path) -> io::Result<()> {
    crate::fs::remove::remove_tree(&to_trash(cache_dir, path)?)
}

/// Moves `path` into a directory of its own in the trash; returns that directory, to delete.
fn to_trash(cache_dir: &Path, path: &Path) -> io::Result<PathBuf> {
    let dir = tempfile::Builder::new().prefix("gone-").tempdir_in(trash_dir(cache_dir)?)?.keep();
    match fs::rename(path, dir.join("x")) {
        Ok(()) => Ok(dir),
        Err(e) => {
            let _ = fs::remove_dir(&dir);
            Err(e)
        }
    }
}

/// Removes what `policy` says from `cache_dir`.
pub fn prune(cache_dir: &Path, policy: &Policy) -> Result<Outcome, PruneError> {
    let inv = Inventory::scan(cache_dir).map_err(err(cache_dir))?;
    let mut out = Outcome { before: inv.total(), ..Outcome::default() };
    let now = SystemTime::now();

    for l in &inv.leftovers {
        if policy.dry_run || remove_leftover(cache_dir, l).map_err(err(&l.path()))? {
            out.leftovers.push(l.path());
        }
    }

    // How many surviving entries name each blob.
    let mut refs: HashMap<&Digest, usize> = HashMap::new();
    for i in &inv.items {
        for b in &i.blobs {
            *refs.entry(b).or_default() += 1;
        }
    }
    let blob_bytes = |d: &Digest| inv.blobs.get(d).copied().unwrap_or(0);
    // Blobs no entry names are garbage already: they count as gone.
    let mut total = inv.total() - inv.blobs.iter().filter(|(d, _)| !refs.contains_key(d)).map(|(_, b)| *b).sum::<u64>();

    let mut order: Vec<&Item> = inv.items.iter().collect();
    order.sort_by_key(|i| i.last_use);
    for item in order {
        let too_old = policy.max_age.is_some_and(|max| now.duration_since(item.last_use).is_ok_and(|a| a > max));
        let too_big = policy.max_size.is_some_and(|max| total > max);
        if !too_old && !too_big {
            continue;
        }
        let removed = if policy.dry_run { available(item) } else { remove_item(cache_dir, item) };
        if !removed.map_err(err(&item.path))? {
            out.in_use.push(item.clone());
            continue;
        }
        total -= item.bytes;
        for b in &item.blobs {
            let n = refs.get_mut(b).expect("counted above");
            *n -= 1;
            if *n == 0 {
                total -= blob_bytes(b);
            }
        }
        out.removed.push(Removed {
            kind: Some(item.kind),
            path: item.path.clone(),
            bytes: item.bytes,
            last_use: Some(item.last_use),
        });
    }

    let garbage: Vec<(&Digest, u64)> =
        inv.blobs.iter().filter(|(d, _)| refs.get(d).is_none_or(|n| *n == 0)).map(|(d, b)| (d, *b)).collect();
    if !garbage.is_empty() {
        collect_blobs(cache_dir, policy, &garbage, &mut out)?;
    }
    out.after = if policy.dry_run { total } else { Inventory::scan(cache_dir).map_err(err(cache_dir))?.total() };
    Ok(out)
}

/// Deletes blobs no entry named when the inventory was taken, and no entry names now (an entry
/// written since, by a warm or a build, may name one again).
fn collect_blobs(
    cache_dir: &Path,
    policy: &Policy,
    garbage: &[(&Digest, u64)],
    out: &mut Outcome,
) -> Result<(), PruneError> {
    let blobs = cache_dir.join("blobs/sha256");
    let gone = |out: &mut Outcome, d: &Digest, bytes: u64| {
        out.removed.push(Removed { kind: None, path: blobs.join(d.hex()), bytes, last_use: None });
    };
    if policy.dry_run {
        for (d, b) in garbage {
            gone(out, d, *b);
        }
        return Ok(());
    }
    let Some(_gc) = usage::gc_exclusive(cache_dir, policy.wait_for_blobs).map_err(err(cache_dir))? else {
        out.blobs_skipped = Some("a build or warm is reading or writing blobs; a later prune collects them".into());
        return Ok(());
    };
    // Under the lock nobody is between writing blobs and their entry: what entries name now
    // is all that is named.
    let named: std::collections::HashSet<Digest> =
        Inventory::scan(cache_dir).map_err(err(cache_dir))?.items.into_iter().flat_map(|i| i.blobs).collect();
    for (d, b) in garbage {
        if named.contains(*d) {
            continue;
        }
        match fs::remove_file(blobs.join(d.hex())) {
            Ok(()) => gone(out, d, *b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(&blobs.join(d.hex()))(e)),
        }
    }
    Ok(())
}

/// For a dry run: whether `item` could be removed now (nobody holds it).
fn available(item: &Item) -> io::Result<bool> {
    Ok(claim(item)?.is_some())
}

/// The lock that keeps builds off `item` while it is removed: `Some(None)` for entries that
/// need none, `None` when a build holds it.
fn claim(item: &Item) -> io::Result<Option<Option<File>>> {
    match item.kind {
        Kind::Unpacked => {
            let store = item.path.parent().and_then(Path::parent).expect("unpacked/sha256/<hex>");
            let hex = item.path.file_name().expect("an entry name").to_string_lossy();
            Ok(usage::claim_entry(store, &hex)?.map(Some))
        }
        Kind::CacheMount => {
            let name = item.path.file_name().expect("an instance name").to_string_lossy();
            let lock = item.path.with_file_name(format!("{name}.lock"));
            let f = match File::options().write(true).open(&lock) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(None)),
                Err(e) => return Err(e),
            };
            match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => Ok(Some(Some(f))),
                Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        _ => Ok(Some(None)),
    }
}

/// Removes `item` unless a build holds it or used it since the inventory was taken; returns
/// whether it went.
fn remove_item(cache_dir: &Path, item: &Item) -> io::Result<bool> {
    let Some(lock) = claim(item)? else { return Ok(false) };
    if used_since(item) {
        return Ok(false);
    }
    let gone = match to_trash(cache_dir, &item.path) {
        Ok(dir) => Some(dir),
        // Gone already (another prune).
        Err(e) if e.kind() == io::ErrorKind::NotFound && !item.path.exists() => None,
        Err(e) => return Err(e),
    };
    if item.kind == Kind::Unpacked {
        // While still claimed: the next user makes a new lock file (see `usage::use_entry`).
        let store = item.path.parent().and_then(Path::parent).expect("unpacked/sha256/<hex>");
        let hex = item.path.file_name().expect("an entry name").to_string_lossy();
        let _ = fs::remove_file(usage::use_lock_path(store, &hex));
        // Its list of hard links (rootless stores): the next maker of the entry writes it anew.
        let _ = fs::remove_file(store.join(crate::cache::unpacked::LINKS_DIR).join(&*hex));
        // The index of its roots names the entry's files: the entry made again is scanned.
        let _ = fs::remove_file(store.join(crate::cache::unpacked::INDEXES_DIR).join(&*hex));
        // Its unsynced mark (still claimed: no build can commit the entry anew meanwhile, whose
        // mark this would take away).
        let _ = fs::remove_file(store.join(crate::cache::unpacked::UNSYNCED_DIR).join(&*hex));
    }
    // Released before the deletion, which takes seconds for a large entry: a build that wants
    // the entry meanwhile need not wait for it (it makes the entry again), and the store has
    // no trace of it since the rename.
    drop(lock);
    if let Some(dir) = gone {
        crate::fs::remove::remove_tree(&dir)?;
    }
    Ok(true)
}

/// Whether `item`'s last-use marker is newer than when the inventory read it: a build used it
/// in between (an unpacked entry or a cache mount is checked while claimed, so no build can
/// start using it after this).
fn used_since(item: &Item) -> bool {
    let Some(marker) = &item.marker else { return false };
    fs::metadata(marker).and_then(|m| m.modified()).is_ok_and(|t| t > item.last_use)
}

/// Removes a leftover if nobody owns it; returns whether it went.
fn remove_leftover(cache_dir: &Path, l: &Leftover) -> io::Result<bool> {
    match l {
        Leftover::Path(p) => {
            if p.starts_with(cache_dir.join(TRASH)) {
                crate::fs::remove::remove_tree(p)?;
            } else {
                trash(cache_dir, p)?;
            }
            Ok(true)
        }
        Leftover::UseLock { store, hex } => {
            let Some(_claim) = usage::claim_entry(store, hex)? else { return Ok(false) };
            // Its entry may have appeared since the scan: then it is no leftover.
            if store.join("sha256").join(hex).exists() {
                return Ok(false);
            }
            fs::remove_file(usage::use_lock_path(store, hex))?;
            Ok(true)
        }
        Leftover::MountSeed { cache, path } => {
            let create = File::options().write(true).create(true).truncate(false).open(cache.join("create.lock"))?;
            match rustix::fs::flock(&create, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {
                    trash(cache_dir, path)?;
                    Ok(true)
                }
                Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
    }
}
