//! Low-level helpers over directory file descriptors: reading directories, extended attributes
//! and permission changes on a pinned inode. Everything here takes a directory fd plus a single
//! name, so no path walk happens outside the callers' `RESOLVE_IN_ROOT` opens.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, CWD, Dir, Mode, OFlags};

/// Extended attributes as sorted (name, value) pairs.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// One directory entry: its name and the type hint from `getdents` (may be `None` when the
/// filesystem does not report types).
pub(crate) struct DirName {
    pub name: Vec<u8>,
    pub dir_hint: Option<bool>,
}

/// Reads every entry of the directory `fd` (opened for reading, not `O_PATH`), without `.` and
/// `..`, sorted by name bytes.
pub(crate) fn read_dir_fd(fd: BorrowedFd<'_>) -> io::Result<Vec<DirName>> {
    let mut dir = Dir::read_from(fd)?;
    let mut out = Vec::new();
    while let Some(ent) = dir.read() {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let ft = ent.file_type();
        let dir_hint = match ft {
            rustix::fs::FileType::Unknown => None,
            rustix::fs::FileType::Directory => Some(true),
            _ => Some(false),
        };
        out.push(DirName { name: name.to_vec(), dir_hint });
    }
    out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Opens `name` in `dirfd` as a directory for reading, refusing symlinks.
pub(crate) fn open_dir_nofollow(dirfd: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dirfd,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `/proc/self/fd/<dirfd>/<name>`: a path that reaches `name` inside an already-opened directory
/// without any further resolution of the directory's own path. Used for the `l*xattr` calls,
/// which have no `*at` form.
pub(crate) fn proc_path(dirfd: BorrowedFd<'_>, name: &[u8]) -> Vec<u8> {
    let mut p = format!("/proc/self/fd/{}/", dirfd.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    p
}

/// Sets the permission bits of the inode behind `fd` (an `O_PATH` fd is fine) through its
/// `/proc/self/fd` magic link, so a symlink swapped in after the fd was opened cannot redirect
/// the chmod.
pub(crate) fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::chmodat(CWD, p.as_str(), Mode::from_raw_mode(mode & 0o7777), AtFlags::empty())?)
}

/// `statx` of `name` in `dirfd` without following a symlink (`name` empty: `dirfd` itself),
/// asking for the birth time too.
pub(crate) fn statx_nofollow(dirfd: BorrowedFd<'_>, name: &[u8]) -> io::Result<rustix::fs::Statx> {
    let flags = if name.is_empty() { AtFlags::EMPTY_PATH } else { AtFlags::SYMLINK_NOFOLLOW };
    let mask = rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::BTIME;
    Ok(rustix::fs::statx(dirfd, OsStr::from_bytes(name), flags, mask)?)
}

/// All extended attributes of an open file, sorted by name.
pub(crate) fn fxattrs(fd: BorrowedFd<'_>) -> io::Result<Xattrs> {
    let mut buf = Vec::new();
    loop {
        let size = match rustix::fs::flistxattr_query(fd) {
            Ok(n) => n,
            Err(e) if e == rustix::io::Errno::NOTSUP => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Vec::new());
        }
        buf.resize(size, 0);
        match rustix::fs::flistxattr(fd, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                break;
            }
            Err(e) if e == rustix::io::Errno::RANGE => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let mut names: Vec<&[u8]> = buf.split(|b| *b == 0).filter(|n| !n.is_empty()).collect();
    names.sort_unstable();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let attr = OsStr::from_bytes(name);
        let mut v = Vec::new();
        loop {
            let size = match rustix::fs::fgetxattr_query(fd, attr) {
                Ok(n) => n,
                Err(e) if e == rustix::io::Errno::NODATA => break,
                Err(e) => return Err(e.into()),
            };
            v.resize(size, 0);
            match rustix::fs::fgetxattr(fd, attr, &mut v[..]) {
                Ok(n) => {
                    v.truncate(n);
                    out.push((name.to_vec(), std::mem::take(&mut v)));
                    break;
                }
                Err(e) if e == rustix::io::Errno::RANGE => continue,
                Err(e) if e == rustix::io::Errno::NODATA => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(out)
}

/// Names of the extended attributes of `name` in `dirfd` (symlinks not followed), sorted.
pub(crate) fn list_xattrs_at(dirfd: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    let p = OsStr::from_bytes(&proc_path(dirfd, name)).to_owned();
    let mut buf = Vec::new();
    loop {
        let size = match rustix::fs::llistxattr_query(&p) {
            Ok(n) => n,
            Err(e) if e == rustix::io::Errno::NOTSUP => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Vec::new());
        }
        buf.resize(size, 0);
        match rustix::fs::llistxattr(&p, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                break;
            }
            // The list grew between the two calls: ask again.
            Err(e) if e == rustix::io::Errno::RANGE => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let mut names: Vec<Vec<u8>> = buf.split(|b| *b == 0).filter(|n| !n.is_empty()).map(<[u8]>::to_vec).collect();
    names.sort_unstable();
    Ok(names)
}

/// The value of one extended attribute, `None` when it is not set.
pub(crate) fn get_xattr_at(dirfd: BorrowedFd<'_>, name: &[u8], attr: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let p = OsStr::from_bytes(&proc_path(dirfd, name)).to_owned();
    let attr = OsStr::from_bytes(attr);
    let mut buf = Vec::new();
    loop {
        let size = match rustix::fs::lgetxattr_query(&p, attr) {
            Ok(n) => n,
            Err(e) if e == rustix::io::Errno::NODATA => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        buf.resize(size, 0);
        if size == 0 {
            return Ok(Some(buf));
        }
        match rustix::fs::lgetxattr(&p, attr, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(e) if e == rustix::io::Errno::RANGE => continue,
            Err(e) if e == rustix::io::Errno::NODATA => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// All extended attributes of `name` in `dirfd` as sorted (name, value) pairs.
pub(crate) fn xattrs_at(dirfd: BorrowedFd<'_>, name: &[u8]) -> io::Result<Xattrs> {
    let mut out = Vec::new();
    for attr in list_xattrs_at(dirfd, name)? {
        if let Some(v) = get_xattr_at(dirfd, name, &attr)? {
            out.push((attr, v));
        }
    }
    Ok(out)
}

/// Sets one extended attribute on `name` in `dirfd` (symlinks not followed).
pub(crate) fn set_xattr_at(dirfd: BorrowedFd<'_>, name: &[u8], attr: &[u8], value: &[u8]) -> io::Result<()> {
    let p = OsStr::from_bytes(&proc_path(dirfd, name)).to_owned();
    Ok(rustix::fs::lsetxattr(&p, OsStr::from_bytes(attr), value, rustix::fs::XattrFlags::empty())?)
}
