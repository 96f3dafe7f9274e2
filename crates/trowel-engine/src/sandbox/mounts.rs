//! What a RUN mounts (`RUN --mount`), and how the chroot isolation mounts it inside the
//! command's mount namespace.
//!
//! The engine hands the sandbox finished [`Mount`]s: host paths it resolved and owns (a cache
//! directory, another stage's root, a scratch copy), an overlay whose upper directory it
//! discards, a tmpfs, or a file whose content only exists in memory (a secret). Everything here
//! happens in init's private mount namespace, so the mounts vanish with it: the snapshot after
//! the step never sees them, and a killed build leaves none behind.
//!
//! Two phases, because the host's filesystem is detached when init enters the root:
//! - [`detach`], before the pivot, turns each host path into a detached mount (`open_tree`, or
//!   an overlay built by `fs/overlay_mount.rs`, the one place overlay options are chosen),
//!   opening the path with `RESOLVE_NO_SYMLINKS` so that a path changed behind trowel's back
//!   cannot lead elsewhere;
//! - [`attach`], after it, puts every mount at its target, parents before children. Targets are
//!   resolved by the kernel inside the new root, so a symlink in the image cannot lead a mount
//!   out of it. A target missing from the image was created by the parent (`stubs.rs`) and is
//!   removed again after the run; one nested inside another mount is created here, inside that
//!   mount.
//!
//! Container isolation cannot mount: `placed.rs` puts the same things in place by moving,
//! copying and creating files, and takes them away again.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use nix::mount::{MsFlags, mount};
use rustix::fs::{CWD, FileType, Mode, OFlags, ResolveFlags};
use rustix::mount::{MountAttrFlags, MoveMountFlags, OpenTreeFlags};
use serde::{Deserialize, Serialize};

use super::helper::{Context, Failure, Step};
use crate::fs::overlay_mount::{OverlayKind, OverlaySpec};

/// One mount of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mount {
    /// Where it appears: an absolute, clean path inside the root (never `/`).
    pub target: String,
    pub source: MountSource,
    /// Read-only for the command.
    pub readonly: bool,
}

/// What is mounted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MountSource {
    /// A host directory, file or socket, by an absolute path without symlinks.
    Host { path: PathBuf, usage: HostUse },
    /// `lower` as the command sees it, its writes going to `upper` (which the caller throws
    /// away). Chroot isolation only.
    Overlay { lower: PathBuf, upper: PathBuf, work: PathBuf },
    /// An empty tmpfs, `size` bytes at most (the kernel's default: half the memory).
    Tmpfs { size: Option<u64> },
    /// A file with this content, owner and mode (a secret). In chroot isolation it only ever
    /// exists on the sandbox's own `/dev` tmpfs.
    File { content: Sensitive, mode: u32, uid: u32, gid: u32 },
}

/// What container isolation, which cannot mount, does with a host path (chroot isolation binds
/// it whatever this says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostUse {
    /// The command's changes belong to the source (a cache directory): it is moved into place
    /// and back, or copied in and its new contents copied back out.
    Persist,
    /// The command's changes are discarded: a copy is put in place and removed afterwards.
    Discard,
    /// Something trowel made for this run alone (a socket, a scratch copy): moved into place
    /// and removed afterwards.
    Consume,
}

/// Bytes that must never be printed: `Debug` shows only their length.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sensitive(pub Vec<u8>);

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} secret bytes>", self.0.len())
    }
}

/// The network a run sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Network {
    /// The host's (BuildKit's `default` and `host`).
    #[default]
    Host,
    /// A network namespace of its own with only a loopback interface (`--network=none`).
    None,
}

impl Mount {
    /// Whether the mount point is a directory (else a file).
    pub(super) fn is_dir_target(&self) -> Result<bool, std::io::Error> {
        match &self.source {
            MountSource::Host { path, .. } => Ok(std::fs::metadata(path)?.is_dir()),
            MountSource::Overlay { .. } | MountSource::Tmpfs { .. } => Ok(true),
            MountSource::File { .. } => Ok(false),
        }
    }

    /// Whether `self`'s target lies inside `other`'s.
    pub(super) fn is_inside(&self, other: &Mount) -> bool {
        self.target != other.target && self.target.strip_prefix(&other.target).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// Checks what the parent can check before starting the helper.
pub(super) fn validate(mounts: &[Mount]) -> Result<(), String> {
    for m in mounts {
        let t = &m.target;
        if !t.starts_with('/') || t == "/" || t.contains('\0') || t.split('/').any(|c| c == "." || c == "..") {
            return Err(format!("invalid mount target {t:?}"));
        }
        let paths: Vec<&PathBuf> = match &m.source {
            MountSource::Host { path, .. } => vec![path],
            MountSource::Overlay { lower, upper, work } => vec![lower, upper, work],
            _ => Vec::new(),
        };
        for p in paths {
            let s = p.to_str().ok_or_else(|| format!("mount source {} is not valid UTF-8", p.display()))?;
            if !p.is_absolute() || s.contains('\0') {
                return Err(format!("mount source {s:?} is not an absolute path"));
            }
            if matches!(m.source, MountSource::Overlay { .. }) && s.contains([',', ':', '\\']) {
                return Err(format!("overlay path {s:?} contains ',', ':' or '\\'"));
            }
        }
    }
    Ok(())
}

/// The mounts in the order they are attached: a target after every target it lies inside.
pub(super) fn in_order(mounts: &[Mount]) -> Vec<&Mount> {
    let mut v: Vec<&Mount> = mounts.iter().collect();
    v.sort_by_key(|m| m.target.matches('/').count());
    v
}

/// Before the pivot: a detached mount for every host path and overlay (`None` for the rest).
pub(super) fn detach(mounts: &[&Mount]) -> Step<Vec<Option<OwnedFd>>> {
    mounts
        .iter()
        .map(|m| match &m.source {
            MountSource::Host { path, .. } => {
                let fd = rustix::fs::openat2(
                    CWD,
                    path.as_path(),
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
                )
                .context(|| format!("open mount source {} for {}", path.display(), m.target))?;
                let tree = rustix::mount::open_tree(
                    &fd,
                    "",
                    OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH,
                )
                .context(|| format!("clone {} for the mount on {}", path.display(), m.target))?;
                Ok(Some(tree))
            }
            MountSource::Overlay { lower, upper, work } => {
                let lowers = [lower.clone()];
                let spec = OverlaySpec { kind: OverlayKind::View, lowers: &lowers, upper, work };
                let tree = spec.detached(MountAttrFlags::MOUNT_ATTR_NODEV).map_err(|e| {
                    Failure(format!("overlay of {} for the mount on {}: {e}", lower.display(), m.target))
                })?;
                Ok(Some(tree))
            }
            MountSource::Tmpfs { .. } | MountSource::File { .. } => Ok(None),
        })
        .collect()
}

/// After the pivot (cwd is the new `/`): every mount at its target, in order.
pub(super) fn attach(mounts: &[&Mount], detached: Vec<Option<OwnedFd>>) -> Step<()> {
    for (i, (m, fd)) in mounts.iter().zip(detached).enumerate() {
        let target = m.target.as_str();
        let dir = match &fd {
            Some(fd) => rustix::fs::fstat(fd).map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
            None => Ok(!matches!(m.source, MountSource::File { .. })),
        }
        .context(|| format!("inspect the source of the mount on {target}"))?;
        ensure_mount_point(target, dir)?;
        let mut flags = MsFlags::MS_NODEV;
        match (&m.source, fd) {
            (MountSource::Tmpfs { size }, _) => {
                let data = size.map(|s| format!("size={s}"));
                mount(Some("tmpfs"), target, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, data.as_deref())
                    .context(|| format!("mount a tmpfs on {target}"))?;
                flags |= MsFlags::MS_NOSUID;
            }
            (MountSource::File { content, mode, uid, gid }, _) => {
                bind_file(i, target, content, *mode, *uid, *gid)?;
                flags |= MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
            }
            (_, Some(fd)) => {
                rustix::mount::move_mount(&fd, "", CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
                    .context(|| format!("mount on {target}"))?;
            }
            (_, None) => return Err(Failure(format!("no detached source for the mount on {target}"))),
        }
        if m.readonly {
            flags |= MsFlags::MS_RDONLY;
        }
        // A bind remount resets the flags it is not given: carry over the source's own.
        let current = rustix::fs::statvfs(target).context(|| format!("statvfs {target}"))?.f_flag;
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | super::chroot::preserved_flags(current),
            None::<&str>,
        )
        .context(|| format!("set the options of the mount on {target}"))?;
    }
    Ok(())
}

/// Creates a missing mount point: only nested ones get here (the parent prepared the others in
/// the root), inside the mount that holds them.
fn ensure_mount_point(target: &str, dir: bool) -> Step<()> {
    match std::fs::metadata(target) {
        Ok(m) if m.is_dir() == dir => return Ok(()),
        Ok(_) => {
            let want = if dir { "a directory" } else { "a file" };
            return Err(Failure(format!("mount target {target} exists but is not {want} (as the source is)")));
        }
        Err(_) => {}
    }
    let (parent, _) = target.rsplit_once('/').unwrap_or(("", target));
    if !parent.is_empty() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .context(|| format!("create the mount point {target}"))?;
    }
    let made = if dir {
        std::fs::DirBuilder::new().mode(0o755).create(target)
    } else {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(target)
            .map(drop)
    };
    made.context(|| format!("create the mount point {target}"))
}

/// Stages a file on the sandbox's `/dev` tmpfs with its owner and mode, binds it over `target`
/// and unlinks the staged name: the mount keeps the content alive, nothing else names it.
fn bind_file(i: usize, target: &str, content: &Sensitive, mode: u32, uid: u32, gid: u32) -> Step<()> {
    let staged = format!("/dev/.trowel-mount-{i}");
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&staged)
        .context(|| format!("stage the file for {target}"))?;
    f.write_all(&content.0).context(|| format!("stage the file for {target}"))?;
    rustix::fs::fchown(&f, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)))
        .context(|| format!("set the owner of {target}"))?;
    rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).context(|| format!("set the mode of {target}"))?;
    drop(f);
    let bound = mount(Some(staged.as_str()), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .context(|| format!("mount the file on {target}"));
    let removed = std::fs::remove_file(&staged).context(|| format!("remove {staged}"));
    bound.and(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(target: &str) -> Mount {
        Mount { target: target.into(), source: MountSource::Tmpfs { size: None }, readonly: false }
    }

    #[test]
    fn parents_are_attached_before_what_they_hold() {
        let ms = [m("/a/b/c"), m("/a"), m("/z/y"), m("/a/b")];
        let order: Vec<&str> = in_order(&ms).iter().map(|m| m.target.as_str()).collect();
        assert_eq!(order, ["/a", "/z/y", "/a/b", "/a/b/c"]);
        assert!(m("/a/b").is_inside(&m("/a")));
        assert!(!m("/ab").is_inside(&m("/a")));
        assert!(!m("/a").is_inside(&m("/a")));
    }

    #[test]
    fn bad_targets_and_paths_are_refused() {
        for t in ["relative", "/", "/a/../b", "/a/./b"] {
            assert!(validate(&[m(t)]).is_err(), "{t}");
        }
        let ov = Mount {
            target: "/x".into(),
            source: MountSource::Overlay { lower: "/a,b".into(), upper: "/u".into(), work: "/w".into() },
            readonly: false,
        };
        assert!(validate(&[ov]).unwrap_err().contains("overlay path"));
        assert!(validate(&[m("/ok/target")]).is_ok());
    }

    #[test]
    fn secret_bytes_never_print() {
        let s = Sensitive(b"hunter2-secret".to_vec());
        assert_eq!(format!("{s:?}"), "<14 secret bytes>");
        let file = MountSource::File { content: s, mode: 0o400, uid: 0, gid: 0 };
        assert!(!format!("{file:?}").contains("hunter2"));
    }
}
