//! The operations that change a build root: create, link, make and remove entries, set their
//! owner, mode, times and extended attributes. The same rule as for reading (`mod.rs`): parents
//! are opened inside the root, the last component is never followed.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::{ParentDirs, Root, errno_is};
use crate::fs::path::{self, components};
use crate::fs::sys;
use crate::fs::{FileType, FsError, NodeKind, Stat, Timespec};

impl Root {
    /// Creates (or replaces) the regular file `p` with exactly `mode` (the umask is not
    /// applied). The parent must exist. Any existing non-directory at `p` is unlinked first, so
    /// the write never goes through a symlink or into an inode shared with other hardlinks.
    pub fn create_file(&self, p: &str, mode: u32) -> Result<File, FsError> {
        let (dfd, name) = self.named_parent(p, "create a file at")?;
        match rustix::fs::unlinkat(&dfd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::ISDIR) => {
                return Err(FsError::WrongType {
                    path: path::clean(p),
                    root: self.host.display().to_string(),
                    reason: "is a directory".into(),
                });
            }
            Err(e) => return Err(self.io_err("remove", p, e)),
        }
        let fd = rustix::fs::openat(
            &dfd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        )
        .map_err(|e| self.io_err("create", p, e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777)).map_err(|e| self.io_err("chmod", p, e))?;
        Ok(File::from(fd))
    }

    /// Creates the regular file `p` where nothing is, through the parent kept in `dirs` (see
    /// [`Root::open_file_nofollow_in`]): `None` when something already is at `p` (a symlink
    /// too, never followed), which the caller clears and then creates with
    /// [`Root::create_file`]. The mode is `mode`'s permission bits less the umask: the caller
    /// sets the exact mode once the owner is set (a chown clears setuid and setgid). A copy of
    /// many files into a new directory pays one call per file here, not create_file's five.
    pub fn create_new_in(&self, p: &str, mode: u32, dirs: &mut ParentDirs) -> Result<Option<File>, FsError> {
        let (dfd, name) = self.parent_in(p, dirs)?;
        if name == "." {
            return Err(FsError::InvalidPath {
                path: p.to_string(),
                reason: "cannot create a file at the root itself".into(),
            });
        }
        self.create_new_at(dfd, name, p, mode)
    }

    /// Creates `name` in the directory `dir` of this root (no symlink followed, nothing
    /// replaced) with `mode`'s permission bits less the umask; `None` when the name is taken.
    /// `p` is the image path errors name. The one open call both [`Root::create_new_in`] and
    /// the unpacker's file batches make, each from a parent descriptor it keeps.
    pub(crate) fn create_new_at(
        &self,
        dir: impl AsFd,
        name: &str,
        p: &str,
        mode: u32,
    ) -> Result<Option<File>, FsError> {
        match rustix::fs::openat(
            dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        ) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(Errno::EXIST) => Ok(None),
            Err(e) => Err(self.io_err("create", p, e)),
        }
    }

    /// Creates `p` and its missing ancestors as directories with `mode` (exactly; no umask),
    /// owned by `owner` when given. Symlinks on the way are followed inside the root (a
    /// dangling one gets its target created); existing directories are kept untouched. Returns the image paths of the directories
    /// created, outermost first, with symlinks resolved.
    pub fn mkdir_all(&self, p: &str, mode: u32, owner: Option<(u32, u32)>) -> Result<Vec<String>, FsError> {
        path::check(p)?;
        if components(p).any(|c| c == "..") {
            return Err(FsError::InvalidPath { path: p.to_string(), reason: "\"..\" is not allowed here".into() });
        }
        // Resolve first so that a dangling symlink on the way (say `/out -> /srv/out`) gets
        // its target created, inside the root, instead of failing on the link itself.
        let resolved = self.resolve(p)?;
        let comps: Vec<&str> = components(&resolved).collect();
        let mut created = Vec::new();
        let mut parent_fd =
            self.open_in_root("", OFlags::PATH | OFlags::DIRECTORY).map_err(|e| self.io_err("open", "/", e))?;
        for i in 0..comps.len() {
            let prefix = comps[..=i].join("/");
            let shown = format!("/{prefix}");
            let fd = match self.open_in_root(&prefix, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                Err(e) if errno_is(&e, Errno::NOENT) => {
                    let name = comps[i];
                    match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(mode & 0o777)) {
                        Ok(()) => {}
                        // Someone else created it in the meantime: use theirs.
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.io_err("mkdir", &shown, e)),
                    }
                    let fd = rustix::fs::openat(
                        &parent_fd,
                        name,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| self.io_err("open", &shown, e))?;
                    if let Some((uid, gid)) = owner {
                        rustix::fs::chownat(
                            &parent_fd,
                            name,
                            Some(rustix::fs::Uid::from_raw(uid)),
                            Some(rustix::fs::Gid::from_raw(gid)),
                            AtFlags::SYMLINK_NOFOLLOW,
                        )
                        .map_err(|e| self.io_err("chown", &shown, e))?;
                    }
                    sys::chmod_fd(fd.as_fd(), mode).map_err(|e| self.io_err("chmod", &shown, e))?;
                    created.push(shown.clone());
                    fd
                }
                Err(e) if errno_is(&e, Errno::NOTDIR) => {
                    return Err(FsError::WrongType {
                        path: shown,
                        root: self.host.display().to_string(),
                        reason: "exists and is not a directory".into(),
                    });
                }
                Err(e) => return Err(self.io_err("open directory", &shown, e)),
            };
            parent_fd = fd;
        }
        Ok(created)
    }

    /// Creates the symlink `p` with `target` stored verbatim (absolute targets are fine: they
    /// are resolved inside the root whenever trowel follows them). Fails if `p` exists.
    pub fn symlink(&self, target: &str, p: &str) -> Result<(), FsError> {
        path::check(target)?;
        let (dfd, name) = self.named_parent(p, "create a symlink at")?;
        rustix::fs::symlinkat(target, &dfd, name).map_err(|e| self.io_err("symlink", p, e))
    }

    /// Creates `p` as a hardlink to `existing` (both inside this root; a symlink `existing` is
    /// linked itself, not its target). Fails if `p` exists.
    pub fn hardlink(&self, existing: &str, p: &str) -> Result<(), FsError> {
        let (efd, ename) = self.named_parent(existing, "hardlink")?;
        let (dfd, name) = self.named_parent(p, "create a hardlink at")?;
        rustix::fs::linkat(&efd, ename, &dfd, name, AtFlags::empty()).map_err(|e| self.io_err("hardlink", p, e))
    }

    /// Creates a device node or FIFO with exactly `mode`. Fails if `p` exists.
    pub fn mknod(&self, p: &str, kind: NodeKind, mode: u32, rdev: u64) -> Result<(), FsError> {
        let (dfd, name) = self.named_parent(p, "mknod")?;
        let ft = match kind {
            NodeKind::CharDevice => rustix::fs::FileType::CharacterDevice,
            NodeKind::BlockDevice => rustix::fs::FileType::BlockDevice,
            NodeKind::Fifo => rustix::fs::FileType::Fifo,
        };
        rustix::fs::mknodat(&dfd, name, ft, Mode::from_raw_mode(mode & 0o777), rdev)
            .map_err(|e| self.io_err("mknod", p, e))?;
        self.chmod_at(&dfd, name, p, mode)
    }

    /// Removes `p` and, for a directory, everything below it. Symlinks are removed, never
    /// followed. A missing `p` is not an error. `remove_all("/")` empties the root.
    pub fn remove_all(&self, p: &str) -> Result<(), FsError> {
        let Some((dfd, name)) = self.parent_if_exists(p)? else { return Ok(()) };
        if name == "." {
            let fd =
                self.open_in_root("", OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| self.io_err("open", "/", e))?;
            return remove_children(fd.as_fd()).map_err(|e| self.io_err("remove contents of", "/", e));
        }
        let st = match rustix::fs::statat(&dfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(()),
            Err(e) => return Err(self.io_err("lstat", p, e)),
        };
        remove_entry(dfd.as_fd(), OsStr::new(name), Stat::from_raw(&st).is_some_and(|s| s.is_dir()))
            .map_err(|e| self.io_err("remove", p, e))
    }

    /// Changes the owner of `p` itself (lchown semantics: a symlink's own owner).
    pub fn set_owner(&self, p: &str, uid: u32, gid: u32) -> Result<(), FsError> {
        let (dfd, name) = self.parent(p)?;
        rustix::fs::chownat(
            &dfd,
            name,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.io_err("chown", p, e))
    }

    /// Sets the permission bits of `p`, including setuid/setgid/sticky. A no-op on symlinks
    /// (Linux symlinks have no meaningful mode). Apply it after [`Root::set_owner`]: a chown
    /// clears setuid/setgid.
    pub fn set_mode(&self, p: &str, mode: u32) -> Result<(), FsError> {
        let (dfd, name) = self.parent(p)?;
        self.chmod_at(&dfd, name, p, mode)
    }

    pub(crate) fn chmod_at(&self, dfd: &OwnedFd, name: &str, p: &str, mode: u32) -> Result<(), FsError> {
        let fd = rustix::fs::openat(dfd, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| self.io_err("open", p, e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.io_err("stat", p, e))?;
        if Stat::from_raw(&st).is_some_and(|s| s.file_type == FileType::Symlink) {
            return Ok(());
        }
        sys::chmod_fd(fd.as_fd(), mode).map_err(|e| self.io_err("chmod", p, e))
    }

    /// Sets access and modification times of `p` itself (a symlink's own times).
    pub fn set_times(&self, p: &str, atime: Timespec, mtime: Timespec) -> Result<(), FsError> {
        let (dfd, name) = self.parent(p)?;
        let ts = rustix::fs::Timestamps { last_access: atime.to_rustix(), last_modification: mtime.to_rustix() };
        rustix::fs::utimensat(&dfd, name, &ts, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| self.io_err("set times of", p, e))
    }

    /// Sets an extended attribute on `p` itself (symlinks not followed).
    pub fn set_xattr(&self, p: &str, name: &str, value: &[u8]) -> Result<(), FsError> {
        let (dfd, fname) = self.parent(p)?;
        sys::set_xattr_at(dfd.as_fd(), fname.as_bytes(), name.as_bytes(), value)
            .map_err(|e| self.io_err("set xattr on", p, e))
    }
}

/// Removes `name` in `dirfd`; a directory is emptied first, through descriptors only.
fn remove_entry(dirfd: BorrowedFd<'_>, name: &OsStr, is_dir: bool) -> io::Result<()> {
    if is_dir {
        let fd = sys::open_dir_nofollow(dirfd, name)?;
        remove_children(fd.as_fd())?;
        return Ok(rustix::fs::unlinkat(dirfd, name, AtFlags::REMOVEDIR)?);
    }
    match rustix::fs::unlinkat(dirfd, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        // The type hint was stale (or missing): it is a directory after all.
        Err(Errno::ISDIR) => remove_entry(dirfd, name, true),
        Err(e) => Err(e.into()),
    }
}

/// Removes everything inside the directory `fd` (opened for reading).
fn remove_children(fd: BorrowedFd<'_>) -> io::Result<()> {
    for ent in sys::read_dir_fd(fd)? {
        let name = OsStr::from_bytes(&ent.name);
        let is_dir = match ent.dir_hint {
            Some(d) => d,
            None => match rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Stat::from_raw(&st).is_some_and(|s| s.is_dir()),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            },
        };
        remove_entry(fd, name, is_dir)?;
    }
    Ok(())
}
