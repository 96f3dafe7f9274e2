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
/// right after: the caller removes the directory by then, or leaves it for next time.
pub fn is_abandoned(dir: &Path) -> bool {
    match File::open(dir.join(LOCK)) {
        Ok(f) => rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::symlink_metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > UNLOCKED_GRACE),
        Err(_) => false,
    }
}
