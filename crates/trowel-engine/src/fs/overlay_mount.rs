//! Mounting an overlay of many read-only layer directories (the unpacked-layer store's entries)
//! under one writable upper directory, and taking it away again.
//!
//! A Debian-based image has a handful of layers, a long-lived CI image sixty or more, and the
//! classic `mount(2)` takes all of an overlay's options as one string of at most a page: with
//! store paths of ~90 bytes that ends near forty layers. The new mount API (`fsopen`,
//! `fsconfig`, `fsmount`, `move_mount`) takes each lower directory as its own `lowerdir+`
//! parameter (Linux ≥ 6.8), so the number of layers is bounded only by overlayfs itself (500).
//! Older kernels get the classic string while it fits, and an error saying so when it does not
//! (the caller then unpacks the layers into a directory as it did before the store).
//!
//! The mount uses `index=on`: a base file with several names (hard links) that a RUN changes
//! through one name changes under all of them, as in a plain directory; without the index,
//! overlayfs copies up only the name that was written and the others keep the old content.
//! Every mount is detached when its [`LayerMount`] is dropped, so an error path cannot leave a
//! root mounted in the work dir.

use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags, fsconfig_create, fsconfig_set_string,
    fsmount, fsopen, move_mount,
};

use super::FsError;

/// The most overlayfs stacks (its `OVL_MAX_STACK`).
pub const MAX_LOWERS: usize = 500;

/// An overlay mounted at `target`; unmounted (detached) when dropped.
#[derive(Debug)]
pub struct LayerMount {
    target: PathBuf,
    mounted: bool,
}

fn err(op: &'static str, p: &Path, e: impl Into<io::Error>) -> FsError {
    FsError::Io { op, path: p.display().to_string(), root: String::new(), source: e.into() }
}

impl LayerMount {
    /// Mounts an overlay at `target` (an existing empty directory): `lowers` from the bottom
    /// layer to the top one, read-only; `upper` and `work` (empty directories on one
    /// filesystem) take every write.
    pub fn mount(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<LayerMount, FsError> {
        if lowers.is_empty() || lowers.len() > MAX_LOWERS {
            let why = format!("an overlay takes 1 to {MAX_LOWERS} lower directories, not {}", lowers.len());
            return Err(err("mount overlay on", target, io::Error::other(why)));
        }
        match mount_new_api(lowers, upper, work, target) {
            Ok(()) => {}
            // No new mount API, or no `lowerdir+` (before 6.8): the classic option string.
            Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::INVAL => {
                mount_classic(lowers, upper, work, target)?
            }
            Err(e) => return Err(err("mount overlay on", target, e)),
        }
        Ok(LayerMount { target: target.to_path_buf(), mounted: true })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Whether inode numbers in the mount stay what they were when a file or directory is
    /// copied up: all of `dirs` (its layers and upper directory) on one filesystem, or
    /// overlayfs's `xino` in effect. Without it, a snapshot cannot tell a directory a step
    /// wrote into from one it re-created.
    pub fn stable_inodes(&self, dirs: &[&Path]) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        let devs: Option<Vec<u64>> = dirs.iter().map(|d| std::fs::metadata(d).ok().map(|m| m.dev())).collect();
        if devs.is_some_and(|d| d.windows(2).all(|w| w[0] == w[1])) {
            return true;
        }
        let target = self.target.display().to_string();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        info.lines().filter(|l| l.split(' ').nth(4) == Some(target.as_str())).any(|l| {
            l.split(" - ")
                .nth(1)
                .and_then(|rest| rest.split(' ').nth(2))
                .is_some_and(|o| o.split(',').any(|x| x == "xino=on"))
        })
    }

    /// Unmounts now, reporting a failure (a process still using the root keeps it busy).
    pub fn unmount(&mut self) -> Result<(), FsError> {
        if self.mounted {
            rustix::mount::unmount(&self.target, UnmountFlags::empty())
                .or_else(|_| rustix::mount::unmount(&self.target, UnmountFlags::DETACH))
                .map_err(|e| err("unmount", &self.target, e))?;
            self.mounted = false;
        }
        Ok(())
    }
}

impl Drop for LayerMount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = rustix::mount::unmount(&self.target, UnmountFlags::DETACH);
        }
    }
}

/// Gives this process a mount namespace of its own, receiving the host's mounts but sending
/// none back, so the overlays it mounts vanish with it however it dies (SIGKILL, the OOM
/// killer): a killed build cannot leave a root mounted on the host. To be called before any
/// thread exists (the kernel refuses to unshare a filesystem context threads share). Fails
/// without CAP_SYS_ADMIN, and the store's probe then finds overlays unmountable too.
pub fn private_mount_namespace() -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare the mount namespace: {e}"))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .map_err(|e| format!("make the mounts of / receive-only: {e}"))
}

fn mount_new_api(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> rustix::io::Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    // The first lower given is the top one, as in the classic `lowerdir=top:…:bottom`.
    for l in lowers.iter().rev() {
        fsconfig_set_string(&fs, "lowerdir+", l.as_path())?;
    }
    fsconfig_set_string(&fs, "upperdir", upper)?;
    fsconfig_set_string(&fs, "workdir", work)?;
    fsconfig_set_string(&fs, "index", "on")?;
    fsconfig_set_string(&fs, "xino", "auto")?;
    fsconfig_create(&fs)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    move_mount(&mnt, "", rustix::fs::CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
}

fn mount_classic(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<(), FsError> {
    for p in lowers.iter().map(PathBuf::as_path).chain([upper, work]) {
        if p.to_string_lossy().contains([',', ':', '\\']) {
            return Err(err("mount overlay", p, io::Error::other("path contains ',', ':' or '\\'")));
        }
    }
    let lowerdir: Vec<String> = lowers.iter().rev().map(|l| l.display().to_string()).collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={},index=on,xino=auto",
        lowerdir.join(":"),
        upper.display(),
        work.display()
    );
    // The kernel copies one page of options; a longer string would be cut, not refused.
    if data.len() >= 4096 {
        let why =
            format!("{} layers make mount options longer than a page and this kernel has no lowerdir+", lowers.len());
        return Err(err("mount overlay on", target, io::Error::other(why)));
    }
    let data = std::ffi::CString::new(data).map_err(|e| err("mount overlay on", target, io::Error::other(e)))?;
    rustix::mount::mount("overlay", target, "overlay", rustix::mount::MountFlags::empty(), data.as_c_str())
        .map_err(|e| err("mount overlay on", target, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// Sixty-five lowers (more than a page of classic options allows), the top one winning,
    /// a write landing in the upper directory only, and the mount gone when dropped.
    #[test]
    fn many_lowers_top_wins_and_writes_stay_above() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("store-with-a-long-directory-name-like-a-real-one/sha256");
        let mut lowers = Vec::new();
        for i in 0..65 {
            let d = base.join(format!("{i:064}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("which"), format!("{i}")).unwrap();
            std::fs::write(d.join(format!("only-{i}")), b"").unwrap();
            lowers.push(d);
        }
        let (upper, work, merged) = (t.path().join("u"), t.path().join("w"), t.path().join("m"));
        for d in [&upper, &work, &merged] {
            std::fs::create_dir(d).unwrap();
        }
        let m = LayerMount::mount(&lowers, &upper, &work, &merged).unwrap();
        assert_eq!(std::fs::read_to_string(merged.join("which")).unwrap(), "64");
        assert!(merged.join("only-0").exists() && merged.join("only-64").exists());
        std::fs::write(merged.join("which"), b"new").unwrap();
        std::fs::remove_file(merged.join("only-3")).unwrap();
        assert_eq!(std::fs::read_to_string(lowers[64].join("which")).unwrap(), "64");
        assert!(lowers[3].join("only-3").exists());
        assert_eq!(std::fs::read_to_string(upper.join("which")).unwrap(), "new");
        drop(m);
        let mounted = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounted.contains(merged.to_str().unwrap()), "still mounted after drop");
    }
}
