//! Directories owned by a live process, and telling those whose owner died: a build's work
//! directory (`engine/scratch.rs`) and an unpacked-layer store entry being made
//! (`cache/unpacked.rs`) are both swept by later builds when a killed one left them.
//!
//! The owner holds an exclusive `flock` on `.lock` inside the directory for as long as it uses
//! it; the kernel drops the lock when the process dies, however it dies. The lock file is
//! created and locked under a temporary name and only then renamed to `.lock`, so a directory
//! is never seen with an unlocked `.lock` while its owner lives (a sweeper could otherwise take
//! the lock in between and delete a live directory). A directory without `.lock` belongs to an
//! owner between creating it and that rename, or to one killed in that instant; only the latter
//! gets old, so such directories count as abandoned once [`UNLOCKED_GRACE`] old.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Duration;

use rustix::fs::FlockOperation;

/// The lock file's name inside an owned directory.
pub const LOCK: &str = ".lock";
const LOCK_TMP: &str = ".lock.tmp";
/// Age after which a directory that never got its lock is considered abandoned. Long, because
/// builds of trowel versions before the lock also leave no `.lock` and may share the directory.
const UNLOCKED_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Takes ownership of `dir` (freshly made by the caller): returns the locked file, to be held
/// for as long as the directory is in use.
pub fn lock(dir: &Path) -> io::Result<File> {
    let tmp = dir.join(LOCK_TMP);
    let lock = File::create(&tmp)?;
    rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive)?;
    std::fs::rename(&tmp, dir.join(LOCK))?;
    Ok(lock)
}

/// True when no live process owns `dir`. The lock taken here is released when the file closes,
/// right after: the caller removes the directory by then, or leaves it for next time. A caller
/// that removes the directory should hold [`claim_abandoned`]'s lock while it does, so two
/// sweepers never remove the same directory at once.
pub fn is_abandoned(dir: &Path) -> bool {
    match claim_abandoned(dir) {
        Claim::Locked(_) | Claim::Unlocked => true,
        Claim::Owned => false,
    }
}

/// What [`claim_abandoned`] found.
pub enum Claim {
    /// A live process owns the directory (or is removing it).
    Owned,
    /// Abandoned, and this lock on its `.lock` now keeps other sweepers out until dropped.
    Locked(File),
    /// Abandoned long ago without ever getting a `.lock` (see [`UNLOCKED_GRACE`]).
    Unlocked,
}

/// Whether `dir` is abandoned, and if it has a `.lock`, that lock, taken.
///
/// The lock taken must be on the `.lock` that is still there: an owner removing its own
/// directory unlinks `.lock` first and releases its lock when it is done, so a sweeper that
/// opened `.lock` just before the unlink gets the lock once the owner is finished, and would
/// then remove a directory its owner is removing (one of them fails with "No such file or
/// directory"). A lock on an unlinked `.lock` therefore means the owner is cleaning up.
pub fn claim_abandoned(dir: &Path) -> Claim {
    let path = dir.join(LOCK);
    match File::open(&path) {
        Ok(f) => lock_if_still_there(f, &path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let old = std::fs::symlink_metadata(dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > UNLOCKED_GRACE);
            if old { Claim::Unlocked } else { Claim::Owned }
        }
        Err(_) => Claim::Owned,
    }
}

/// Locks `f`, opened from `path` earlier: [`Claim::Locked`] only if `path` is still that file.
fn lock_if_still_there(f: File, path: &Path) -> Claim {
    if rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
        return Claim::Owned;
    }
    let still_there = match (rustix::fs::fstat(&f), rustix::fs::lstat(path)) {
        (Ok(held), Ok(now)) => held.st_nlink > 0 && held.st_ino == now.st_ino && held.st_dev == now.st_dev,
        _ => false,
    };
    if still_there { Claim::Locked(f) } else { Claim::Owned }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sweeper that opened `.lock` just before its owner, removing the directory, unlinked
    /// it gets the lock once the owner lets go; the directory is still the owner's to remove.
    #[test]
    fn a_lock_won_from_an_owner_cleaning_up_claims_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let owner = lock(dir.path()).unwrap();
        let path = dir.path().join(LOCK);
        let sweepers = File::open(&path).unwrap();
        assert!(matches!(claim_abandoned(dir.path()), Claim::Owned), "held by its owner");
        std::fs::remove_file(&path).unwrap();
        drop(owner);
        assert!(matches!(lock_if_still_there(sweepers, &path), Claim::Owned), "the owner is removing it");
        assert!(matches!(claim_abandoned(dir.path()), Claim::Owned), "young and without .lock");
    }

    /// A dead owner's directory is claimed, and while the claim is held a second sweeper
    /// is kept out.
    #[test]
    fn a_dead_owners_directory_is_claimed_by_one_sweeper_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        drop(lock(dir.path()).unwrap());
        let first = claim_abandoned(dir.path());
        assert!(matches!(first, Claim::Locked(_)));
        assert!(matches!(claim_abandoned(dir.path()), Claim::Owned), "the first sweeper holds it");
        assert!(!is_abandoned(dir.path()));
        drop(first);
        assert!(is_abandoned(dir.path()));
    }
}
