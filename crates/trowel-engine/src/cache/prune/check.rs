//! `trowel cache check`: every entry of the cache dir verified, and what is corrupt removed (or,
//! with a dry run, only reported). What a build would refuse anyway — a blob that does not hash
//! to its name, an entry whose checksum or key is wrong, an entry naming a missing or corrupt
//! blob, a torn context-digests file — and what killed processes left.
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

fn blob_intact(path: &Path, digest: &Digest) -> bool {
    File::open(path).and_then(|f| digest_reader(std::io::BufReader::new(f))).is_ok_and(|(d, _)| &d == digest)
}

/// Verifies `cache_dir`; removes what is corrupt unless `dry_run`. Runs beside builds and
/// warms without holding them up (no GC lock): it removes only what they would refuse and
/// remove themselves — a blob that does not hash to its name, an entry naming a blob that is
/// missing (a writer puts blobs in place before the entry naming them, so a present entry
/// naming an absent blob is not one being written) — and claims unpacked entries and cache
/// mounts as a prune does.
pub fn check(cache_dir: &Path, dry_run: bool) -> Result<Vec<Finding>, PruneError> {
    let inv = Inventory::scan(cache_dir).map_err(err(cache_dir))?;
    let mut out = Vec::new();
    let mut note = |path: &Path, problem: String, removed: bool| {
        let corrupt = !problem.starts_with(LEFTOVER);
        out.push(Finding { path: path.to_path_buf(), problem, corrupt, removed });
    };

    for (path, why) in &inv.unreadable {
        let removed = !dry_run && trash(cache_dir, path).is_ok();
        note(path, format!("corrupt: {why}"), removed);
    }
    for l in &inv.leftovers {
        let removed = !dry_run && remove_leftover(cache_dir, l).unwrap_or(false);
        note(&l.path(), LEFTOVER.into(), removed);
    }

    let blobs_dir = cache_dir.join("blobs/sha256");
    let mut bad_blobs: HashSet<&Digest> = HashSet::new();
    for d in inv.blobs.keys() {
        let path = blobs_dir.join(d.hex());
        if !blob_intact(&path, d) {
            bad_blobs.insert(d);
            let removed = !dry_run && std::fs::remove_file(&path).is_ok();
            note(&path, "content does not match its digest".into(), removed);
        }
    }

    for item in &inv.items {
        let problem = match item.kind {
            Kind::ContextDigests if !crate::engine::context_digests::file_is_intact(&item.path) => {
                Some("torn or corrupt (its trailer does not match)".to_string())
            }
            _ => item.blobs.iter().find_map(|b| {
                if bad_blobs.contains(b) {
                    Some(format!("names blob {b}, which is corrupt"))
                } else if !inv.blobs.contains_key(b) {
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
    Ok(out)
}
