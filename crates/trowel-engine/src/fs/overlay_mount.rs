//! The one place trowel builds overlayfs mounts: which options each kind of overlay gets, how
//! they reach the kernel, and the mount-namespace rule that makes them vanish with their build.
//! Three users mount overlays, and all go through [`OverlaySpec`]:
//! - the unpacked-layer store's build roots, and a layer applied through the entries below it
//!   to make an entry (`engine/root_store/`): [`OverlayKind::LayerStack`];
//! - a debugger shell session over a build root, whose upper directory is read back and kept or
//!   thrown away (`fs/overlay.rs`), and the writable view a `RUN --mount` of another stage or
//!   the context gets (`engine/mounts/prepare.rs`, mounted detached by the sandbox in
//!   `sandbox/mounts.rs`): [`OverlayKind::View`].
//!
//! A Debian-based image has a handful of layers, a long-lived CI image sixty or more, and the
//! classic `mount(2)` takes all of an overlay's options as one string of at most a page: with
//! store paths of ~90 bytes that ends near forty layers. The new mount API (`fsopen`,
//! `fsconfig`, `fsmount`, `move_mount`) takes each lower directory as its own `lowerdir+`
//! parameter (Linux ≥ 6.8), so the number of layers is bounded only by overlayfs itself (500).
//! Older kernels get the classic string while it fits, and an error saying so when it does not
//! (the caller then unpacks the layers into a directory as it did before the store). One lower
//! directory is passed as `lowerdir`, which every kernel with the new API knows.
//!
//! Options, and why:
//! - `index=on` for a layer stack: a base file with several names (hard links) that a RUN
//!   changes through one name changes under all of them, as in a plain directory; without the
//!   index, overlayfs copies up only the name that was written and the others keep the old
//!   content. `index=off` for a view: its lower directory may itself be an overlay (a root
//!   mounted from the store), which cannot give the file handles the index needs.
//! - `xino=auto` for a layer stack: inode numbers stay stable across copy-up even when the
//!   layers and the upper directory are on different filesystems, or a snapshot could not tell
//!   a directory a step wrote into from one it re-created.
//! - `redirect_dir=off` and `metacopy=off` always, whatever the kernel's defaults: a renamed
//!   directory is copied up whole and a changed owner or mode copies the data too, so an upper
//!   directory is complete on its own. A store entry is later the lower directory of other
//!   mounts, and a shell session's upper directory is read back by `fs/overlay.rs`, which knows
//!   whiteouts and opaque directories only; neither could follow a redirect or a metacopy file.
//! - `volatile` always (Linux ≥ 5.10; left out where the kernel does not know it): overlayfs
//!   otherwise syncs the whole upper filesystem when the overlay is unmounted, and fsyncs every
//!   file it copies up. Every overlay here is scratch: a build root and a view are deleted
//!   after use, and a store entry's upper directory is renamed into place with a mark of the
//!   boot that made it, which a later build takes away after a `syncfs` (`cache/unpacked.rs`,
//!   `commit_all` and `settle`). On a
//!   journaled disk, the sync at unmount was the largest part of the time between a build's
//!   last step and its push (a RUN that wrote 20,000 files: half a second or more), and it
//!   wrote out data about to be deleted. The mark volatile leaves in the work directory
//!   (`work/incompat/volatile`, which refuses a second mount of that upper directory) never
//!   matters: every mount gets a fresh work directory.
//!
//! Every mount is detached when its [`LayerMount`] is dropped, so an error path cannot leave a
//! root mounted in the work dir.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags, fsconfig_create, fsconfig_set_string,
    fsmount, fsopen, move_mount,
};

use super::FsError;

/// How long [`LayerMount::unmount_idle`] keeps asking a busy mount to go: far longer than a
/// forked child takes to reach its `exec`, short enough that a process really left in the
/// mount is reported without a wait anyone notices.
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The most overlayfs stacks (its `OVL_MAX_STACK`).
pub const MAX_LOWERS: usize = 500;

/// What an overlay is for, which decides its options (see the module's comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayKind {
    /// Layers of the unpacked-layer store under a build root or an entry being made.
    LayerStack,
    /// A writable view of one directory, its upper directory read back or thrown away.
    View,
}

/// An overlay to mount: `lowers` from the bottom layer to the top one, read-only; `upper` and
/// `work` (empty directories on one filesystem) take every write.
#[derive(Debug, Clone, Copy)]
pub struct OverlaySpec<'a> {
    pub kind: OverlayKind,
    pub lowers: &'a [PathBuf],
    pub upper: &'a Path,
    pub work: &'a Path,
}

impl OverlaySpec<'_> {
    /// The options besides the directories, in the order they are given.
    fn options(&self) -> &'static [(&'static str, &'static str)] {
        match self.kind {
            OverlayKind::LayerStack => {
                &[("index", "on"), ("xino", "auto"), ("redirect_dir", "off"), ("metacopy", "off")]
            }
            OverlayKind::View => &[("index", "off"), ("redirect_dir", "off"), ("metacopy", "off")],
        }
    }

    fn check_count(&self) -> Result<(), String> {
        if self.lowers.is_empty() || self.lowers.len() > MAX_LOWERS {
            return Err(format!("an overlay takes 1 to {MAX_LOWERS} lower directories, not {}", self.lowers.len()));
        }
        Ok(())
    }

    /// The paths overlayfs would split or unescape in a `lowerdir`/`upperdir`/`workdir` value
    /// (`lowerdir+` takes any path, one at a time).
    fn check_separators<'p>(&self, paths: impl IntoIterator<Item = &'p Path>) -> Result<(), (PathBuf, String)> {
        for p in paths {
            if p.to_string_lossy().contains([',', ':', '\\']) {
                return Err((p.to_path_buf(), "path contains ',', ':' or '\\'".to_string()));
            }
        }
        Ok(())
    }

    /// A configured (created, not yet mounted) overlay by the new mount API.
    fn configure(&self) -> rustix::io::Result<OwnedFd> {
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
        if let [only] = self.lowers {
            fsconfig_set_string(&fs, "lowerdir", only.as_path())?;
        } else {
            // The first lower given is the top one, as in the classic `lowerdir=top:…:bottom`.
            for l in self.lowers.iter().rev() {
                fsconfig_set_string(&fs, "lowerdir+", l.as_path())?;
            }
        }
        fsconfig_set_string(&fs, "upperdir", self.upper)?;
        fsconfig_set_string(&fs, "workdir", self.work)?;
        // Root of a user namespace (rootless isolation) may not write trusted.* attributes:
        // overlayfs then keeps its opaque markers as user.overlay.* (`overlay.rs` reads both),
        // and some options change meaning (`userns_value`).
        let userns = in_user_namespace();
        if userns {
            rustix::mount::fsconfig_set_flag(&fs, "userxattr")?;
        }
        for (key, value) in self.options() {
            fsconfig_set_string(&fs, *key, userns_value(userns, key, value))?;
        }
        if volatile_known() {
            match rustix::mount::fsconfig_set_flag(&fs, "volatile") {
                Ok(()) => {}
                // A kernel before 5.10: an unknown parameter is refused alone, and the
                // context takes the others still.
                Err(rustix::io::Errno::INVAL) => VOLATILE_UNKNOWN.store(true, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
        }
        fsconfig_create(&fs)?;
        Ok(fs)
    }

    /// The overlay as a detached mount with `attrs` (the sandbox attaches it inside a root).
    /// One lower directory, whose path, like the upper and work directories', holds none of
    /// `,`, `:` and `\`.
    pub fn detached(&self, attrs: MountAttrFlags) -> Result<OwnedFd, String> {
        self.check_count()?;
        let single = self.lowers.iter().map(PathBuf::as_path).chain([self.upper, self.work]);
        self.check_separators(single).map_err(|(p, why)| format!("overlay path {}: {why}", p.display()))?;
        let fs = self.configure().map_err(|e| e.to_string())?;
        fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(|e| e.to_string())
    }

    /// Mounts the overlay at `target` (an existing empty directory).
    pub fn mount(&self, target: &Path) -> Result<LayerMount, FsError> {
        self.check_count().map_err(|why| err("mount overlay on", target, io::Error::other(why)))?;
        if let [only] = self.lowers {
            // `lowerdir` splits at `:` and unescapes `\`, even from the new API.
            let paths = [only.as_path(), self.upper, self.work];
            self.check_separators(paths).map_err(|(p, why)| err("mount overlay", &p, io::Error::other(why)))?;
        }
        let mounted = self.configure().and_then(|fs| {
            let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
            move_mount(&mnt, "", rustix::fs::CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        });
        match mounted {
            Ok(()) => {}
            // No new mount API, or no `lowerdir+` (before 6.8): the classic option string.
            Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::INVAL => self.mount_classic(target)?,
            Err(e) => return Err(err("mount overlay on", target, e)),
        }
        Ok(LayerMount { target: target.to_path_buf(), mounted: true })
    }

    fn mount_classic(&self, target: &Path) -> Result<(), FsError> {
        match self.mount_classic_with(target, volatile_known()) {
            // Which option the kernel refused, `mount(2)` does not say: once more without the
            // one an older kernel may not know.
            Err(FsError::Io { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) && volatile_known() => {
                self.mount_classic_with(target, false)?;
                VOLATILE_UNKNOWN.store(true, Ordering::Relaxed);
                Ok(())
            }
            other => other,
        }
    }

    fn mount_classic_with(&self, target: &Path, volatile: bool) -> Result<(), FsError> {
        let all = self.lowers.iter().map(PathBuf::as_path).chain([self.upper, self.work]);
        self.check_separators(all).map_err(|(p, why)| err("mount overlay", &p, io::Error::other(why)))?;
        let lowerdir: Vec<String> = self.lowers.iter().rev().map(|l| l.display().to_string()).collect();
        let mut data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowerdir.join(":"),
            self.upper.display(),
            self.work.display()
        );
        let userns = in_user_namespace();
        for (key, value) in self.options() {
            data.push_str(&format!(",{key}={}", userns_value(userns, key, value)));
        }
        if userns {
            data.push_str(",userxattr");
        }
        if volatile {
            data.push_str(",volatile");
        }
        // The kernel copies one page of options; a longer string would be cut, not refused.
        if data.len() >= 4096 {
            let why = format!(
                "{} layers make mount options longer than a page and this kernel has no lowerdir+",
                self.lowers.len()
            );
            return Err(err("mount overlay on", target, io::Error::other(why)));
        }
        let data = std::ffi::CString::new(data).map_err(|e| err("mount overlay on", target, io::Error::other(e)))?;
        rustix::mount::mount("overlay", target, "overlay", rustix::mount::MountFlags::empty(), data.as_c_str())
            .map_err(|e| err("mount overlay on", target, e))
    }
}

/// Set once a kernel refused `volatile` (before Linux 5.10): later mounts leave it out.
static VOLATILE_UNKNOWN: AtomicBool = AtomicBool::new(false);

fn volatile_known() -> bool {
    !VOLATILE_UNKNOWN.load(Ordering::Relaxed)
}

/// The value of option `key` in a user namespace (`userns`), where overlayfs takes
/// `redirect_dir=nofollow` for "off" (it refuses "off", which follows redirects it finds, with
/// `userxattr`: redirects are neither made nor followed), and has no inode index: it needs file
/// handles decoded, which takes CAP_DAC_READ_SEARCH in the initial namespace (overlayfs's
/// `ovl_can_decode_fh`), so `index=on` would be turned off with a kernel message. Said plainly
/// instead; what the index did for hard links is done by `fs/hardlinks.rs` there.
fn userns_value<'a>(userns: bool, key: &str, value: &'a str) -> &'a str {
    match (userns, key, value) {
        (true, "redirect_dir", "off") => "nofollow",
        (true, "index", _) => "off",
        _ => value,
    }
}

/// The prefix of overlayfs's own attributes (opaque directories, whiteouts, origins) on the
/// directories this process's overlays use: `user.overlay.` in a user namespace (`userxattr`),
/// else `trusted.overlay.`. A layer's own attributes with that prefix are stored escaped
/// (`<prefix>overlay.*`), as overlayfs itself stores them when they are written through it.
pub fn private_xattr_prefix() -> &'static str {
    if in_user_namespace() { "user.overlay." } else { "trusted.overlay." }
}

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
    /// Mounts a layer stack at `target` (an existing empty directory): `lowers` from the bottom
    /// layer to the top one, read-only; `upper` and `work` (empty directories on one
    /// filesystem) take every write.
    pub fn mount(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<LayerMount, FsError> {
        OverlaySpec { kind: OverlayKind::LayerStack, lowers, upper, work }.mount(target)
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

    /// Unmounts now, failing (and staying mounted) while a process still uses the mount: for
    /// a caller about to read the upper directory, which must not change under it.
    ///
    /// A mount can be busy for a moment with nothing using it: a child another thread has just
    /// forked holds copies of all of this process's descriptors until its `exec` closes them,
    /// and one may be in the mount (the sandbox's descriptor of the root it ran in). Parallel
    /// stages fork all the time, and under load that moment lasts milliseconds, so a refusal is
    /// asked again, for up to [`IDLE_WAIT`], before it is believed.
    pub fn unmount_idle(&mut self) -> Result<(), FsError> {
        if !self.mounted {
            return Ok(());
        }
        let start = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            match rustix::mount::unmount(&self.target, UnmountFlags::empty()) {
                Ok(()) => break,
                Err(e) if e == rustix::io::Errno::BUSY && start.elapsed() < IDLE_WAIT => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(err("unmount", &self.target, e)),
            }
        }
        self.mounted = false;
        Ok(())
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
/// killer): a killed build cannot leave a root mounted on the host. Only the calling thread
/// moves (the kernel gives it a copy of a filesystem context other threads share), so this is
/// called before the threads that mount are started: they inherit it. Fails without
/// CAP_SYS_ADMIN, and the store's probe then finds overlays unmountable too.
pub fn private_mount_namespace() -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare the mount namespace: {e}"))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .map_err(|e| format!("make the mounts of / receive-only: {e}"))
}

/// Whether this process runs in a user namespace other than the initial one (its uid map is
/// not the identity over every id). Read once: a process does not change namespaces after its
/// first thread.
pub(crate) fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        crate::sandbox::userns::effective_ids().0 == 0
    }

    /// A temporary directory holding the empty lower, upper, work and mount directories of
    /// one overlay.
    fn four_dirs() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper, work, merged) =
            (t.path().join("l"), t.path().join("u"), t.path().join("w"), t.path().join("m"));
        for d in [&lower, &upper, &work, &merged] {
            std::fs::create_dir(d).unwrap();
        }
        (t, lower, upper, work, merged)
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

    /// Whatever the kernel's defaults, a directory of a lower layer is never renamed by a
    /// redirect (its upper directory would not be complete on its own): the rename is refused
    /// with EXDEV, which `mv` answers by copying. Views and layer stacks alike.
    #[test]
    fn a_lower_directory_is_never_renamed_by_a_redirect() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        for kind in [OverlayKind::View, OverlayKind::LayerStack] {
            let (_dir, lower, upper, work, merged) = four_dirs();
            std::fs::create_dir(lower.join("dir")).unwrap();
            std::fs::write(lower.join("dir/f"), b"f").unwrap();
            let lowers = [lower.clone()];
            let m = OverlaySpec { kind, lowers: &lowers, upper: &upper, work: &work }.mount(&merged).unwrap();
            let e = std::fs::rename(merged.join("dir"), merged.join("moved")).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EXDEV), "{kind:?}: {e}");
            drop(m);
        }
    }

    /// Every overlay is volatile (no sync of the upper filesystem at unmount), where the kernel
    /// knows the option; what was written stays readable in the upper directory after the
    /// unmount, and the work directory, with the mark volatile leaves there, is deleted.
    #[test]
    fn overlays_are_volatile_and_their_upper_directory_outlives_them() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        let release: Vec<u32> = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap()
            .split(|c: char| !c.is_ascii_digit())
            .take(2)
            .map(|n| n.parse().unwrap_or(0))
            .collect();
        let knows_volatile = release.as_slice() >= [5, 10].as_slice();
        for kind in [OverlayKind::View, OverlayKind::LayerStack] {
            let (_dir, lower, upper, work, merged) = four_dirs();
            let lowers = [lower.clone()];
            let mut m = OverlaySpec { kind, lowers: &lowers, upper: &upper, work: &work }.mount(&merged).unwrap();
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            let line = info
                .lines()
                .find(|l| l.split(' ').nth(4) == Some(merged.to_str().unwrap()))
                .expect("the overlay is in mountinfo");
            let options = line.split(" - ").nth(1).and_then(|r| r.split(' ').nth(2)).unwrap();
            // Shown as `fsync=volatile` since Linux 6.12.
            let volatile = options.split(',').any(|o| o == "volatile" || o == "fsync=volatile");
            assert_eq!(volatile, knows_volatile, "{kind:?}: {options}");
            std::fs::write(merged.join("written"), b"data").unwrap();
            m.unmount().unwrap();
            assert_eq!(std::fs::read(upper.join("written")).unwrap(), b"data", "{kind:?}");
            crate::fs::remove::remove_tree(&work).unwrap();
            assert!(!work.exists());
        }
    }

    /// A descriptor in the mount held for a moment (as a child forked by another thread holds
    /// one until its `exec`) delays the idle unmount; a process that stays in the mount makes
    /// it fail, still mounted, until the process is gone.
    #[test]
    fn an_idle_unmount_waits_out_a_moment_of_use_but_not_a_process_in_the_mount() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        let (_dir, lower, upper, work, merged) = four_dirs();
        std::fs::write(lower.join("f"), b"f").unwrap();
        let lowers = [lower.clone()];
        let spec = OverlaySpec { kind: OverlayKind::View, lowers: &lowers, upper: &upper, work: &work };
        let mounted = |m: &Path| {
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            info.lines().any(|l| l.split(' ').nth(4) == Some(m.to_str().unwrap()))
        };

        let mut m = spec.mount(&merged).unwrap();
        let held = std::fs::File::open(merged.join("f")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(150));
            drop(held);
        });
        rx.recv().unwrap();
        let t0 = std::time::Instant::now();
        m.unmount_idle().expect("the mount is idle once the descriptor is closed");
        assert!(t0.elapsed() >= std::time::Duration::from_millis(100), "{:?}", t0.elapsed());
        assert!(!mounted(&merged));
        holder.join().unwrap();

        // A volatile overlay's work directory refuses a second mount: fresh directories.
        let (_dir2, lower, upper, work, merged) = four_dirs();
        let lowers = [lower.clone()];
        let spec = OverlaySpec { kind: OverlayKind::View, lowers: &lowers, upper: &upper, work: &work };
        let mut m = spec.mount(&merged).unwrap();
        let mut child = std::process::Command::new("sleep").arg("60").current_dir(&merged).spawn().unwrap();
        let t0 = std::time::Instant::now();
        let e = m.unmount_idle().expect_err("a process works in the mount");
        assert!(t0.elapsed() >= IDLE_WAIT, "{:?}", t0.elapsed());
        assert!(e.to_string().contains("busy"), "{e}");
        assert!(mounted(&merged), "a refused unmount leaves the mount in place");
        child.kill().unwrap();
        child.wait().unwrap();
        m.unmount_idle().unwrap();
        assert!(!mounted(&merged));
    }
}
