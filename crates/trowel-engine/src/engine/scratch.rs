//! A build's private work directory (`trowel-build-*` under `--work-dir`, default TMPDIR), and
//! the removal of those that killed builds left behind.
//!
//! A build normally removes its directory when it ends. One killed with SIGKILL (a CI job
//! cancelled, the OOM killer) cannot, and its build roots and blobs would pile up run after
//! run in the same place. So each live build holds an exclusive `flock` on `.lock` in its
//! directory for as long as it runs: the kernel drops the lock when the process dies, however
//! it dies. Every build start looks at its siblings and removes each one whose lock it can take
//! (its owner is gone), detaching any mount left inside it first (a debugger shell's overlay).
//! Builds sharing a work directory never touch each other's live directories.
//!
//! The lock file is created and locked under a temporary name and only then renamed to `.lock`,
//! so a directory is never seen with an unlocked `.lock` while its build is alive. A directory
//! without `.lock` belongs to a build between `mkdtemp` and that rename, or to one killed in that
//! instant; only the latter gets old, so such directories are removed once they are a day old.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::FlockOperation;

const PREFIX: &str = "trowel-build-";
const LOCK: &str = ".lock";
const LOCK_TMP: &str = ".lock.tmp";
/// Age after which a directory that never got its lock is considered abandoned. Long, because
/// builds of trowel versions before the lock also leave no `.lock` and may share the directory.
const UNLOCKED_GRACE: Duration = Duration::from_secs(24 * 3600);

/// The live build's directory; removed (with its lock) when dropped.
pub(crate) struct WorkDir {
    dir: tempfile::TempDir,
    /// Held for the build's lifetime; declared after `dir` so the directory goes first.
    _lock: File,
}

impl WorkDir {
    /// Creates a fresh, locked `trowel-build-*` directory in `parent` (created if needed).
    pub(crate) fn create(parent: &Path) -> io::Result<WorkDir> {
        std::fs::create_dir_all(parent)?;
        let dir = tempfile::Builder::new().prefix(PREFIX).tempdir_in(parent)?;
        let tmp = dir.path().join(LOCK_TMP);
        let lock = File::create(&tmp)?;
        rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive)?;
        std::fs::rename(&tmp, dir.path().join(LOCK))?;
        Ok(WorkDir { dir, _lock: lock })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// What [`remove_stale`] did.
#[derive(Debug, Default)]
pub(crate) struct Sweep {
    /// Directories of dead builds that were removed.
    pub removed: Vec<PathBuf>,
    /// Directories of dead builds that could not be removed, with why.
    pub failed: Vec<(PathBuf, String)>,
}

/// Removes the `trowel-build-*` directories in `parent` whose builds are no longer running.
pub(crate) fn remove_stale(parent: &Path) -> Sweep {
    let mut sweep = Sweep::default();
    let Ok(entries) = std::fs::read_dir(parent) else { return sweep };
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with(PREFIX) || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = e.path();
        if !is_abandoned(&dir) {
            continue;
        }
        match remove_dir(&dir) {
            Ok(()) => sweep.removed.push(dir),
            Err(err) => sweep.failed.push((dir, err.to_string())),
        }
    }
    sweep
}

/// True when no live build owns `dir`. The lock taken here is released when the file closes,
/// right after: the directory is removed by then, or left to the next build.
fn is_abandoned(dir: &Path) -> bool {
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

/// Detaches every mount at or below `dir` (deepest first), then removes the tree.
fn remove_dir(dir: &Path) -> io::Result<()> {
    let mut mounts = mounts_below(dir)?;
    mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    for m in mounts {
        rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH)
            .map_err(|e| io::Error::other(format!("unmount {}: {e}", m.display())))?;
    }
    crate::fs::remove::remove_tree(dir)
}

/// Mount points at or below `dir`.
fn mounts_below(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = std::fs::canonicalize(dir)?;
    Ok(crate::sandbox::detect::mount_points().into_iter().map(PathBuf::from).filter(|p| p.starts_with(&dir)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_directories_are_kept_and_dead_ones_removed() {
        let parent = tempfile::tempdir().unwrap();
        let live = WorkDir::create(parent.path()).unwrap();
        std::fs::write(live.path().join("blob"), b"x").unwrap();
        // A dead build: its lock file exists but nobody holds it.
        let dead = parent.path().join("trowel-build-dead");
        std::fs::create_dir_all(dead.join("stage0/rootfs/etc")).unwrap();
        std::fs::write(dead.join(LOCK), b"").unwrap();
        // A directory that is not trowel's, and one still waiting for its lock.
        std::fs::create_dir(parent.path().join("other")).unwrap();
        std::fs::create_dir(parent.path().join("trowel-build-young")).unwrap();

        let sweep = remove_stale(parent.path());
        assert_eq!(sweep.removed, vec![dead.clone()]);
        assert!(sweep.failed.is_empty(), "{:?}", sweep.failed);
        assert!(!dead.exists());
        assert!(live.path().join("blob").exists(), "a live build's directory was touched");
        assert!(parent.path().join("other").exists());
        assert!(parent.path().join("trowel-build-young").exists());
        let live_path = live.path().to_path_buf();
        drop(live);
        assert!(!live_path.exists());
    }
}
