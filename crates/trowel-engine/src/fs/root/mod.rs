//! [`Root`]: every file operation trowel performs inside a build root.
//!
//! A `Root` holds an `O_PATH` descriptor of the root directory. Parents of the paths it acts on
//! are opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so symlinks (absolute or
//! with `..`) resolve as they would inside the image and can never reach the host; the final
//! component is then handled by an `*at` syscall that does not follow symlinks. No operation
//! that writes ever joins host path strings. Requires Linux 5.6+ (openat2) and a mounted `/proc`
//! (for the no-follow chmod and xattr calls, which go through `/proc/self/fd`).

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::path::{self, components};
use super::sys;
use super::{FileType, FsError, Stat};

mod write;

/// Symlinks followed in one resolution before giving up with `ELOOP` (the kernel's limit).
const MAX_SYMLINKS: usize = 40;

/// A build root: a host directory whose contents are addressed by image paths.
pub struct Root {
    fd: OwnedFd,
    host: PathBuf,
}

/// The parent directory [`Root::open_file_nofollow_in`] opened last (its in-root path and an
/// `O_PATH` descriptor).
#[derive(Default)]
pub struct ParentDirs {
    last: Option<(String, OwnedFd)>,
}

impl ParentDirs {
    /// Drops the directory kept: after an entry was removed or replaced, a path may name
    /// another directory than the one kept for it.
    pub fn forget(&mut self) {
        self.last = None;
    }
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Root").field("host", &self.host).finish()
    }
}

/// The outcome of resolving an image path component by component.
pub(crate) struct Resolved {
    /// The logical image path after following symlinks (absolute, cleaned).
    pub path: String,
    /// Set when the path tried to climb above the root (a `..` at the root, possibly via a
    /// symlink target). In strict mode resolution stops there.
    pub escape: Option<String>,
}

fn errno_is(e: &io::Error, errno: Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

impl Root {
    /// Opens a root directory on the host.
    pub fn open(host_path: &Path) -> Result<Root, FsError> {
        let fd = rustix::fs::open(host_path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| FsError::Io {
                op: "open root",
                path: "/".into(),
                root: host_path.display().to_string(),
                source: e.into(),
            })?;
        Ok(Root { fd, host: host_path.to_path_buf() })
    }

    /// A second handle on the same root (duplicated descriptor).
    pub fn try_clone(&self) -> Result<Root, FsError> {
        let fd = self.fd.try_clone().map_err(|e| self.io_err("dup root", "/", e))?;
        Ok(Root { fd, host: self.host.clone() })
    }

    /// The directory this handle was opened on, as (device, inode, birth time in ns since the
    /// epoch), read through the handle: a rename of the directory since it was opened does
    /// not change the answer. `None` when the filesystem keeps no birth time.
    pub fn identity(&self) -> io::Result<Option<(u64, u64, i128)>> {
        let st = super::sys::statx_nofollow(self.fd.as_fd(), b"")?;
        if st.stx_mask & rustix::fs::StatxFlags::BTIME.bits() == 0 {
            return Ok(None);
        }
        let dev = rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor);
        let born = i128::from(st.stx_btime.tv_sec) * 1_000_000_000 + i128::from(st.stx_btime.tv_nsec);
        Ok(Some((dev, st.stx_ino, born)))
    }

    /// The root's directory on the host (for messages and for handing to sandboxes).
    pub fn host_path(&self) -> &Path {
        &self.host
    }

    pub(crate) fn io_err(&self, op: &'static str, path: &str, e: impl Into<io::Error>) -> FsError {
        FsError::Io { op, path: path::clean(path), root: self.host.display().to_string(), source: e.into() }
    }

    /// `openat2` from the root with in-root resolution. `rel` may be empty (the root itself).
    pub(crate) fn open_in_root(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let rel = if rel.is_empty() { "." } else { rel };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        // openat2 with RESOLVE_IN_ROOT returns EAGAIN when a concurrent rename could have made
        // `..` resolution unsafe; the kernel's advice is to retry.
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.fd, rel, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                r => return r.map_err(Into::into),
            }
        }
    }

    /// `openat2` from the root that follows no symlink at all, the final component included
    /// (`ELOOP`): for reading a path exactly as a directory tree holds it.
    pub(crate) fn open_exact(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.fd, rel, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty(), resolve)
            {
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                r => return r.map_err(Into::into),
            }
        }
    }

    /// Opens the directory containing `p` and returns it with the final component. For the root
    /// itself the name is `.`.
    pub(crate) fn parent<'p>(&self, p: &'p str) -> Result<(OwnedFd, &'p str), FsError> {
        let (rel, name) = path::split_parent(p)?;
        let fd = self
            .open_in_root(&rel, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(|e| self.io_err("open parent directory of", p, e))?;
        Ok((fd, if name.is_empty() { "." } else { name }))
    }

    /// Like [`Root::parent`] but `Ok(None)` when the parent does not exist or is not a directory.
    fn parent_if_exists<'p>(&self, p: &'p str) -> Result<Option<(OwnedFd, &'p str)>, FsError> {
        match self.parent(p) {
            Ok(x) => Ok(Some(x)),
            Err(e) if e.is_errno(libc::ENOENT) || e.is_errno(libc::ENOTDIR) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn named_parent<'p>(&self, p: &'p str, op: &'static str) -> Result<(OwnedFd, &'p str), FsError> {
        let (fd, name) = self.parent(p)?;
        if name == "." {
            return Err(FsError::InvalidPath { path: p.to_string(), reason: format!("cannot {op} the root itself") });
        }
        Ok((fd, name))
    }

    /// The logical image path of `p` after following every symlink inside the root (`..` at the
    /// root is clamped, as in the kernel's chroot semantics). Missing components are kept as
    /// given, so the result names where `p` would be created.
    pub fn resolve(&self, p: &str) -> Result<String, FsError> {
        Ok(self.resolve_impl(p, true, false)?.path)
    }

    /// Component-wise resolution. `follow_final`: follow a symlink in the last component.
    /// `strict`: stop and report an escape instead of clamping `..` at the root.
    pub(crate) fn resolve_impl(&self, p: &str, follow_final: bool, strict: bool) -> Result<Resolved, FsError> {
        path::check(p)?;
        let mut todo: Vec<String> = components(p).rev().map(str::to_string).collect();
        let mut stack: Vec<String> = Vec::new();
        // Open descriptors of the directories in `stack` (shorter than `stack` once a
        // component is missing and the rest is handled lexically).
        let mut fds: Vec<OwnedFd> = Vec::new();
        let mut missing = false;
        let mut links = 0;
        let joined = |stack: &[String]| {
            if stack.is_empty() { "/".to_string() } else { format!("/{}", stack.join("/")) }
        };
        while let Some(c) = todo.pop() {
            if c == ".." {
                if stack.pop().is_none() {
                    if strict {
                        return Ok(Resolved {
                            path: "/".into(),
                            escape: Some(format!("{p:?} resolves above the root")),
                        });
                    }
                    continue;
                }
                if fds.len() > stack.len() {
                    fds.pop();
                }
                continue;
            }
            if missing {
                stack.push(c);
                continue;
            }
            let is_last = todo.is_empty();
            let cur = fds.last().map(|f| f.as_fd()).unwrap_or(self.fd.as_fd());
            let st = match rustix::fs::statat(cur, c.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => {
                    missing = true;
                    stack.push(c);
                    continue;
                }
                Err(e) => return Err(self.io_err("stat", &joined(&stack), e)),
            };
            let ft = Stat::from_raw(&st).map(|s| s.file_type);
            if ft == Some(FileType::Symlink) && (!is_last || follow_final) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(self.io_err("resolve", p, Errno::LOOP));
                }
                let target = rustix::fs::readlinkat(cur, c.as_str(), Vec::new())
                    .map_err(|e| self.io_err("read link", &format!("{}/{c}", joined(&stack)), e))?;
                let target = target.to_bytes();
                let target = std::str::from_utf8(target).map_err(|_| FsError::NonUtf8Name {
                    parent: joined(&stack),
                    root: self.host.display().to_string(),
                })?;
                if target.starts_with('/') {
                    stack.clear();
                    fds.clear();
                }
                todo.extend(components(target).rev().map(str::to_string));
                continue;
            }
            if ft == Some(FileType::Dir) && !is_last {
                let fd = rustix::fs::openat(
                    cur,
                    c.as_str(),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.io_err("open directory", &format!("{}/{c}", joined(&stack)), e))?;
                fds.push(fd);
            } else if !is_last {
                // A non-directory in the middle: nothing below it can exist. Keep the rest
                // lexically; operations on the result fail with ENOTDIR.
                missing = true;
            }
            stack.push(c);
        }
        Ok(Resolved { path: joined(&stack), escape: None })
    }

    /// Metadata of `p` without following a final symlink; `None` if it does not exist.
    pub fn lstat(&self, p: &str) -> Result<Option<Stat>, FsError> {
        let Some((dfd, name)) = self.parent_if_exists(p)? else { return Ok(None) };
        self.lstat_in(&dfd, name, p)
    }

    /// `name` in the open directory `dfd` (`p` in the root), not followed.
    fn lstat_in(&self, dfd: &OwnedFd, name: &str, p: &str) -> Result<Option<Stat>, FsError> {
        match rustix::fs::statat(dfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => self.convert_stat(p, &st).map(Some),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
            Err(e) => Err(self.io_err("lstat", p, e)),
        }
    }

    /// Metadata of `p`, following symlinks inside the root; `None` if it (or a symlink's target)
    /// does not exist.
    pub fn stat(&self, p: &str) -> Result<Option<Stat>, FsError> {
        path::check(p)?;
        let rel = path::clean(p);
        let fd = match self.open_in_root(&rel[1..], OFlags::PATH) {
            Ok(fd) => fd,
            Err(e) if errno_is(&e, Errno::NOENT) || errno_is(&e, Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(self.io_err("stat", p, e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| self.io_err("stat", p, e))?;
        self.convert_stat(p, &st).map(Some)
    }

    fn convert_stat(&self, p: &str, st: &rustix::fs::Stat) -> Result<Stat, FsError> {
        Stat::from_raw(st).ok_or_else(|| FsError::WrongType {
            path: path::clean(p),
            root: self.host.display().to_string(),
            reason: format!("unknown file type (mode {:o})", st.st_mode),
        })
    }

    /// The target of the symlink `p`, verbatim.
    pub fn read_link(&self, p: &str) -> Result<String, FsError> {
        let (dfd, name) = self.parent(p)?;
        let t = rustix::fs::readlinkat(&dfd, name, Vec::new()).map_err(|e| self.io_err("read link", p, e))?;
        String::from_utf8(t.into_bytes())
            .map_err(|_| FsError::InvalidPath { path: path::clean(p), reason: "symlink target is not UTF-8".into() })
    }

    /// Opens a regular file for reading, following symlinks inside the root.
    pub fn open_file(&self, p: &str) -> Result<File, FsError> {
        self.open_file_stat(p).map(|(f, _)| f)
    }

    /// [`Root::open_file`] with the metadata of the opened inode.
    pub fn open_file_stat(&self, p: &str) -> Result<(File, Stat), FsError> {
        path::check(p)?;
        let rel = path::clean(p);
        // O_NONBLOCK keeps a FIFO from blocking the open; non-regular files are refused below.
        let fd = self.open_in_root(&rel[1..], OFlags::RDONLY | OFlags::NONBLOCK).map_err(|e| {
            if errno_is(&e, Errno::NOENT) {
                FsError::NotFound { path: rel.clone(), root: self.host.display().to_string() }
            } else {
                self.io_err("open", p, e)
            }
        })?;
        self.regular_file(p, fd)
    }

    /// The metadata of `f`, a file opened at `p` in this root (for errors).
    pub fn fstat(&self, p: &str, f: &File) -> Result<Stat, FsError> {
        let st = rustix::fs::fstat(f).map_err(|e| self.io_err("stat", p, e))?;
        self.convert_stat(p, &st)
    }

    /// Opens a regular file for reading without following a final symlink, returning the
    /// metadata of the opened inode.
    pub fn open_file_nofollow(&self, p: &str) -> Result<(File, Stat), FsError> {
        self.open_file_nofollow_in(p, &mut ParentDirs::default())
    }

    /// [`Root::open_file_nofollow`] for a caller opening many files in directory order: the
    /// parent directory last opened is kept in `dirs` and reused while the next file is in the
    /// same directory, so a directory of a hundred files is resolved once, not a hundred times
    /// (a layer of 20,000 small files spent more in those path walks than in reading). For a
    /// root nothing changes in while `dirs` is used: a directory renamed meanwhile would still
    /// be read through the descriptor kept.
    pub fn open_file_nofollow_in(&self, p: &str, dirs: &mut ParentDirs) -> Result<(File, Stat), FsError> {
        let (dfd, name) = self.parent_in(p, dirs)?;
        let opened = rustix::fs::openat(
            dfd,
            name,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        );
        self.regular_file(p, opened.map_err(|e| self.io_err("open", p, e))?)
    }

    /// [`Root::lstat`] through the parent kept in `dirs` (see [`Root::open_file_nofollow_in`]).
    pub fn lstat_in_dirs(&self, p: &str, dirs: &mut ParentDirs) -> Result<Option<Stat>, FsError> {
        let Some((dfd, name)) = self.parent_in_if_exists(p, dirs)? else { return Ok(None) };
        self.lstat_in(dfd, name, p)
    }

    /// [`Root::parent_in`], `Ok(None)` when the parent does not exist or is not a directory.
    fn parent_in_if_exists<'d, 'p>(
        &self,
        p: &'p str,
        dirs: &'d mut ParentDirs,
    ) -> Result<Option<(&'d OwnedFd, &'p str)>, FsError> {
        match self.parent_in(p, dirs) {
            Ok(x) => Ok(Some(x)),
            Err(e) if e.is_errno(libc::ENOENT) || e.is_errno(libc::ENOTDIR) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The parent directory of `p`, the one kept in `dirs` when it is the same, else opened
    /// (and then kept), with `p`'s final component (`.` for the root itself).
    pub(crate) fn parent_in<'d, 'p>(
        &self,
        p: &'p str,
        dirs: &'d mut ParentDirs,
    ) -> Result<(&'d OwnedFd, &'p str), FsError> {
        let (rel, name) = path::split_parent(p)?;
        let name = if name.is_empty() { "." } else { name };
        let fd = match dirs.last.take() {
            Some((r, fd)) if r == rel => fd,
            _ => self
                .open_in_root(&rel, OFlags::PATH | OFlags::DIRECTORY)
                .map_err(|e| self.io_err("open parent directory of", p, e))?,
        };
        let (_, fd) = dirs.last.insert((rel, fd));
        Ok((fd, name))
    }

    fn regular_file(&self, p: &str, fd: OwnedFd) -> Result<(File, Stat), FsError> {
        let st = rustix::fs::fstat(&fd).map_err(|e| self.io_err("stat", p, e))?;
        let st = self.convert_stat(p, &st)?;
        if st.file_type != FileType::File {
            return Err(FsError::WrongType {
                path: path::clean(p),
                root: self.host.display().to_string(),
                reason: format!("not a regular file ({})", st.file_type.noun()),
            });
        }
        // The O_NONBLOCK the open took (for a FIFO) stays: it has no effect on a regular file
        // (open(2)), and clearing it cost two calls for every file a copy or a key read.
        Ok((File::from(fd), st))
    }

    /// The contents of a text file (`/etc/passwd`, `/etc/group`); `None` if it does not exist.
    /// Bytes that are not UTF-8 (a Latin-1 name in a comment field) become U+FFFD, so the lines
    /// around them still parse, as the byte-wise parsers of BuildKit and kaniko read them: one
    /// such byte failed every later RUN. A base image's file is hostile input: at most
    /// [`Root::MAX_TEXT`] bytes are read.
    pub fn read_to_string(&self, p: &str) -> Result<Option<String>, FsError> {
        let mut f = match self.open_file(p) {
            Ok(f) => f,
            Err(FsError::NotFound { .. }) => return Ok(None),
            Err(e) if e.is_errno(libc::ENOENT) || e.is_errno(libc::ENOTDIR) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        (&mut f).take(Self::MAX_TEXT + 1).read_to_end(&mut bytes).map_err(|e| self.io_err("read", p, e))?;
        if bytes.len() as u64 > Self::MAX_TEXT {
            let why = format!("larger than {} MiB, too large for a text file the build reads", Self::MAX_TEXT >> 20);
            return Err(self.io_err("read", p, io::Error::other(why)));
        }
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The largest text file [`Root::read_to_string`] reads.
    pub const MAX_TEXT: u64 = 16 << 20;

    /// Names in directory `p` (symlinks followed inside the root), sorted; `.`/`..` excluded.
    pub fn read_dir(&self, p: &str) -> Result<Vec<String>, FsError> {
        path::check(p)?;
        let rel = path::clean(p);
        let fd = self
            .open_in_root(&rel[1..], OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| self.io_err("open directory", p, e))?;
        let names = sys::read_dir_fd(fd.as_fd()).map_err(|e| self.io_err("read directory", p, e))?;
        names
            .into_iter()
            .map(|n| {
                String::from_utf8(n.name)
                    .map_err(|_| FsError::NonUtf8Name { parent: rel.clone(), root: self.host.display().to_string() })
            })
            .collect()
    }

    /// Names of the extended attributes of `p` itself, sorted.
    pub fn list_xattrs(&self, p: &str) -> Result<Vec<String>, FsError> {
        let (dfd, fname) = self.parent(p)?;
        let names =
            sys::list_xattrs_at(dfd.as_fd(), fname.as_bytes()).map_err(|e| self.io_err("list xattrs of", p, e))?;
        Ok(names.into_iter().map(|n| String::from_utf8_lossy(&n).into_owned()).collect())
    }

    /// One extended attribute of `p` itself; `None` when not set.
    pub fn get_xattr(&self, p: &str, name: &str) -> Result<Option<Vec<u8>>, FsError> {
        let (dfd, fname) = self.parent(p)?;
        sys::get_xattr_at(dfd.as_fd(), fname.as_bytes(), name.as_bytes()).map_err(|e| self.io_err("get xattr of", p, e))
    }

    /// All extended attributes of `p` itself as sorted (name, value) pairs.
    pub(crate) fn xattrs(&self, p: &str) -> Result<super::sys::Xattrs, FsError> {
        let (dfd, fname) = self.parent(p)?;
        sys::xattrs_at(dfd.as_fd(), fname.as_bytes()).map_err(|e| self.io_err("read xattrs of", p, e))
    }

    /// [`Root::lstat`] and [`Root::xattrs`] of `p` through one open of its parent, the one kept
    /// in `dirs` when it is the same (see [`Root::open_file_nofollow_in`]): a walk that needs
    /// both for every path, a COPY's cache key, resolves a directory of many files once. A file
    /// system without xattrs gives none.
    pub(crate) fn lstat_xattrs_in(
        &self,
        p: &str,
        dirs: &mut ParentDirs,
    ) -> Result<Option<(Stat, super::sys::Xattrs)>, FsError> {
        let Some((dfd, name)) = self.parent_in_if_exists(p, dirs)? else { return Ok(None) };
        let Some(st) = self.lstat_in(dfd, name, p)? else { return Ok(None) };
        let xattrs = match sys::xattrs_at(dfd.as_fd(), name.as_bytes()) {
            Ok(x) => x,
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Vec::new(),
            Err(e) => return Err(self.io_err("read xattrs of", p, e)),
        };
        Ok(Some((st, xattrs)))
    }
}
