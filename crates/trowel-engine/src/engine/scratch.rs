//! A build's private work directory (`trowel-build-*` under `--work-dir`, default TMPDIR), and
//! the removal of those that killed builds left behind.
//!
//! A build normally removes its directory when it ends. One killed with SIGKILL (a CI job
//! cancelled, the OOM killer) cannot, and its build roots and blobs would pile up run after
//! run in the same place. So each live build owns its directory by a lock the kernel drops when
//! the process dies (`fs/dir_lock.rs`). Every build start looks at its siblings and removes each
//! one whose owner is gone, detaching any mount left inside it first (a debugger shell's
//! overlay). Builds sharing a work directory never touch each other's live directories.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::fs::dir_lock;

const PREFIX: &str = "trowel-build-";

/// The live build's directory; removed (with its lock) when dropped.
pub(crate) struct WorkDir {
    dir: tempfile::TempDir,
    /// Held for the build's lifetime; declared after `dir` so the directory goes first.
    _lock: File,
}

impl WorkDir {
    /// Creates a fresh, locked `trowel-build-*` directory in `parent` (created if needed), mode
    /// 0700. Build roots below it hold the base image's files as the registry sent them:
    /// set-user-ID binaries and device nodes (made when running as root) that any local user
    /// could run or open by path while the build lasts, were the directory open to them, and
    /// context files and what RUN writes, which are not theirs to read. A RUN never walks this
    /// path (it runs in its root), so nothing inside needs it open.
    pub(crate) fn create(parent: &Path) -> io::Result<WorkDir> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(parent)?;
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)?;
        let lock = dir_lock::lock(dir.path())?;
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
        // Held while removing: another build sweeping at the same time skips this directory.
        let _claim = match dir_lock::claim_abandoned(&dir) {
            dir_lock::Claim::Owned => continue,
            claim => claim,
        };
        // Its files are owned by a rootless namespace's ids: removing them needs the maps.
        let _ = crate::sandbox::userns::mapped();
        match remove_dir(&dir) {
            Ok(()) => sweep.removed.push(dir),
            Err(err) => sweep.failed.push((dir, err.to_string())),
        }
    }
    sweep
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
        std::fs::write(dead.join(dir_lock::LOCK), b"").unwrap();
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

    #[test]
    fn only_its_owner_may_enter_a_build_directory() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let dir = WorkDir::create(parent.path()).unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o700, "{mode:o}");
    }
}
