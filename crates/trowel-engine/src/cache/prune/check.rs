//! `trowel cache check`: every entry of the cache dir verified, and what is corrupt removed (or,
//! with a dry run, only reported). What a build would refuse anyway — a blob that does not hash
//! to its name, an entry whose checksum or key is wrong, an entry naming a missing or corrupt
//! blob, a torn context-digests file or layer listing — and what killed processes left.
//!
//! Blobs are re-hashed, so a check reads the whole blob store. Unpacked layers have no digest
//! of their own to check (their layer's diff_id was checked when they were made, and only root
//! can write the store: see docs/hardening.md); the check verifies their shape and locks.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::{Inventory, Kind, PruneError, err, remove_item, remove_leftover, trash};
use crate::digest::{Digest, digest_reader};

const LEFTOVER: &str = "left by a killed build, warm or prune";

/// Something found wrong.
#[derive(Debug, Clone)]
pub struct Finding {
    pub path: PathBuf,
    pub problem: String,
    /// Corruption (else a leftover of a killed process, which prunes clean up as a matter of
    /// course and which costs nothing but space).
    pub corrupt: bool,
    /// Whether it was removed (never with a dry run; not when a build holds it).
    pub removed: bool,
}

/// What hashing a blob found.
enum Blob {
    Intact,
    /// Gone since the inventory was taken (a prune, or a build that found it corrupt).
    Gone,
    /// Its content does not hash to its name (or it cannot be read); the file that was read, to
    /// remove only that one.
    Corrupt(Option<File>),
}

fn hash_blob(path: &Path, digest: &Digest) -> Blob {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Blob::Gone,
        Err(_) => return Blob::Corrupt(None),
    };
    match f.try_clone().and_then(|r| digest_reader(std::io::BufReader::new(r))) {
        Ok((d, _)) if &d == digest => Blob::Intact,
        _ => Blob::Corrupt(Some(f)),
    }
}

/// Removes the corrupt blob at `path` if it is still the file that was read: a writer may have
/// put a good copy in its place meanwhile (blobs appear by rename), which must stay.
fn remove_if_same(path: &Path, read: &File) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let same = match (read.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    };
    same && std::fs::remove_file(path).is_ok()
}

/// Verifies `cache_dir`; removes what is corrupt unless `dry_run`. Runs beside builds and
/// warms without holding them up (no GC lock): it removes only what they would refuse and
/// remove themselves — a blob that does not hash to its name, an entry naming a blob that is
/// missing (a writer puts blobs in place before the entry naming them, so a present entry
/// naming an absent blob is not one being written) — and claims unpacked entries and cache
/// mounts as a prune does.
pub fn check(cache_dir: &Path, dry_run: bool) -> Result<Vec<Finding>, PruneError> {
    let inv = Inventory::scan(cache_dir).map_err(err(cache_dir))?;
    Ok(check_scanned(cache_dir, &inv, dry_run))
}

/// [`check`] of what `inv` saw, which other processes may have changed since.
fn check_scanned(cache_dir: &Path, inv: &Inventory, dry_run: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut note = |path: &Path, problem: String, removed: bool| {
        let corrupt = !problem.starts_with(LEFTOVER);
        out.push(Finding { path: path.to_path_buf(), problem, corrupt, removed });
    };

    // One gone since the scan (a prune running beside this check took it) was not corrupt.
    for (path, why) in inv.unreadable.iter().filter(|(p, _)| p.symlink_metadata().is_ok()) {
        let removed = !dry_run && trash(cache_dir, path).is_ok();
        note(path, format!("corrupt: {why}"), removed);
    }
    for l in &inv.leftovers {
        let removed = !dry_run && remove_leftover(cache_dir, l).unwrap_or(false);
        note(&l.path(), LEFTOVER.into(), removed);
    }

    let blobs_dir = cache_dir.join("blobs/sha256");
    let mut bad_blobs: HashSet<&Digest> = HashSet::new();
    let mut gone_blobs: HashSet<&Digest> = HashSet::new();
    for d in inv.blobs.keys() {
        let path = blobs_dir.join(d.hex());
        match hash_blob(&path, d) {
            Blob::Intact => {}
            Blob::Gone => {
                gone_blobs.insert(d);
            }
            Blob::Corrupt(read) => {
                bad_blobs.insert(d);
                let removed = !dry_run && read.is_some_and(|f| remove_if_same(&path, &f));
                note(&path, "content does not match its digest".into(), removed);
            }
        }
    }

    for item in &inv.items {
        let problem = match item.kind {
            Kind::ContextDigests if !crate::engine::context_digests::file_is_intact(&item.path) => {
                Some("torn or corrupt (its trailer does not match)".to_string())
            }
            Kind::Listing if !crate::cache::listings::file_is_intact(&item.path) => {
                Some("torn or corrupt (its trailer does not match, or it names another layer)".to_string())
            }
            // A rootless store's entry is committed only after its list of hard links is
            // written (`cache/unpacked.rs`): without one, builds could not serve roots from it.
            Kind::Unpacked if in_userns_store(cache_dir, &item.path) && !links_recorded(&item.path) => {
                Some("an entry of a rootless store without its list of hard links".to_string())
            }
            _ => item.blobs.iter().find_map(|b| {
                if bad_blobs.contains(b) {
                    Some(format!("names blob {b}, which is corrupt"))
                } else if (!inv.blobs.contains_key(b) || gone_blobs.contains(b)) && !blobs_dir.join(b.hex()).is_file() {
                    // Looked at again now: the inventory lists blobs before entries, so a
                    // blob and then its entry written in between would look like this.
                    Some(format!("names blob {b}, which is missing"))
                } else {
                    None
                }
            }),
        };
        if let Some(problem) = problem {
            let removed = !dry_run && remove_item(cache_dir, item).unwrap_or(false);
            note(&item.path, problem, removed);
        }
    }
    out
}

/// Whether `entry` (`<store>/sha256/<hex>`) is in one of the rootless builds' stores.
fn in_userns_store(cache_dir: &Path, entry: &Path) -> bool {
    entry.starts_with(cache_dir.join(crate::cache::unpacked::USERNS_STORES))
}

/// Whether the list of hard links of `entry` (`<store>/sha256/<hex>`) exists.
fn links_recorded(entry: &Path) -> bool {
    let (Some(store), Some(hex)) = (entry.parent().and_then(Path::parent), entry.file_name()) else { return false };
    store.join(crate::cache::unpacked::LINKS_DIR).join(hex).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::local::{LocalEntry, LocalLayer, LocalLayers};
    use crate::image::manifest::Descriptor;
    use crate::image::store::BlobStore;

    /// A cache dir with one local layer entry and its blob; the entry's path and the blob's.
    fn cache_with_an_entry(cache: &Path) -> (PathBuf, PathBuf) {
        let build = tempfile::tempdir().unwrap();
        let build = BlobStore::open(build.path()).unwrap();
        let blob = build.put(b"a layer").unwrap();
        let layers = LocalLayers::open(
            cache,
            BlobStore::open(cache.join("blobs")).unwrap(),
            std::time::Duration::from_secs(3600),
            "1h".into(),
        )
        .unwrap();
        let components = serde_json::from_value(serde_json::json!({
            "version": 1, "platform": "linux/amd64", "layer_format": "gzip", "parent": "",
            "instruction": "COPY a /a", "vars": {}, "line": 2
        }))
        .unwrap();
        let entry = LocalEntry {
            key: "ab".repeat(32),
            components,
            created_by: "COPY a /a".into(),
            created: "2026-01-01T00:00:00Z".into(),
            layer: Some(LocalLayer {
                descriptor: Descriptor::new("application/vnd.oci.image.layer.v1.tar+gzip", blob.clone(), 7),
                diff_id: blob.clone(),
            }),
            earlier: Vec::new(),
        };
        let path = layers.store(&entry, "step-x", &build).unwrap();
        (path, cache.join("blobs/sha256").join(blob.hex()))
    }

    #[test]
    fn an_entry_written_after_the_blob_scan_is_left_alone() {
        let t = tempfile::tempdir().unwrap();
        let (entry, blob) = cache_with_an_entry(t.path());
        // As a check sees a writer that put the blob, then its entry, between its scan of the
        // blobs and its scan of the entries.
        let mut inv = Inventory::scan(t.path()).unwrap();
        inv.blobs.clear();
        let found = check_scanned(t.path(), &inv, false);
        assert!(found.iter().all(|f| !f.corrupt), "{found:?}");
        assert!(entry.exists() && blob.exists());
        // An entry whose blob is really gone is still found and removed.
        std::fs::remove_file(&blob).unwrap();
        let found = check(t.path(), false).unwrap();
        assert!(found.iter().any(|f| f.corrupt && f.removed && f.path == entry), "{found:?}");
    }

    #[test]
    fn a_blob_gone_since_the_scan_is_not_corruption() {
        let t = tempfile::tempdir().unwrap();
        let (entry, blob) = cache_with_an_entry(t.path());
        std::fs::remove_file(&entry).unwrap();
        let inv = Inventory::scan(t.path()).unwrap();
        // A prune collected it (no entry names it) after the scan.
        std::fs::remove_file(&blob).unwrap();
        let found = check_scanned(t.path(), &inv, false);
        assert!(found.iter().all(|f| !f.corrupt), "{found:?}");
    }
}
