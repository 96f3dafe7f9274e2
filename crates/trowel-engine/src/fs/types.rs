//! Plain data types shared by the `fs` module: file types, stat results, timestamps, and the
//! one rule for which extended attributes are image content.

use serde::{Deserialize, Serialize};

/// The type of a filesystem object. `Hardlink` only appears in snapshot changes and layers (a
/// second name for a file already in the same layer); [`Stat`] never reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    File,
    Dir,
    Symlink,
    Hardlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// The type as an error message names it, with its article ("a regular file"): a message
    /// never shows the enum's own name.
    pub fn noun(self) -> &'static str {
        match self {
            FileType::File | FileType::Hardlink => "a regular file",
            FileType::Dir => "a directory",
            FileType::Symlink => "a symlink",
            FileType::CharDevice => "a character device",
            FileType::BlockDevice => "a block device",
            FileType::Fifo => "a FIFO",
            FileType::Socket => "a socket",
        }
    }

    /// The type encoded in an `st_mode` (`S_IFMT` bits); `None` for unknown bits.
    pub fn from_mode(mode: u32) -> Option<FileType> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => FileType::File,
            libc::S_IFDIR => FileType::Dir,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            _ => return None,
        })
    }
}

/// The kinds of special file [`crate::fs::Root::mknod`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    CharDevice,
    BlockDevice,
    Fifo,
}

/// Seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

impl Timespec {
    pub fn new(sec: i64, nsec: u32) -> Timespec {
        Timespec { sec, nsec }
    }
    pub(crate) fn to_rustix(self) -> rustix::fs::Timespec {
        rustix::fs::Timespec { tv_sec: self.sec, tv_nsec: self.nsec.into() }
    }
}

/// Metadata of one filesystem object (the `lstat`/`stat` of an image path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub file_type: FileType,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
    /// Device number for char/block devices.
    pub rdev: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
}

impl Stat {
    /// Converts a raw stat; `None` for an unknown file type. The casts are needed because
    /// the field types of `struct stat` differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn from_raw(st: &rustix::fs::Stat) -> Option<Stat> {
        Some(Stat {
            file_type: FileType::from_mode(st.st_mode as u32)?,
            mode: st.st_mode as u32 & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            nlink: st.st_nlink as u64,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            rdev: st.st_rdev as u64,
            atime: Timespec::new(st.st_atime as i64, st.st_atime_nsec as u32),
            mtime: Timespec::new(st.st_mtime as i64, st.st_mtime_nsec as u32),
            ctime: Timespec::new(st.st_ctime as i64, st.st_ctime_nsec as u32),
        })
    }

    /// Converts a `statx` result, with the birth time when the filesystem reports one.
    pub(crate) fn from_statx(st: &rustix::fs::Statx) -> Option<(Stat, Option<Timespec>)> {
        let t = |x: &rustix::fs::StatxTimestamp| Timespec::new(x.tv_sec, x.tv_nsec);
        let stat = Stat {
            file_type: FileType::from_mode(u32::from(st.stx_mode))?,
            mode: u32::from(st.stx_mode) & 0o7777,
            uid: st.stx_uid,
            gid: st.stx_gid,
            size: st.stx_size,
            nlink: u64::from(st.stx_nlink),
            dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            rdev: rustix::fs::makedev(st.stx_rdev_major, st.stx_rdev_minor),
            atime: t(&st.stx_atime),
            mtime: t(&st.stx_mtime),
            ctime: t(&st.stx_ctime),
        };
        let has_btime = st.stx_mask & rustix::fs::StatxFlags::BTIME.bits() != 0;
        Some((stat, has_btime.then(|| t(&st.stx_btime))))
    }

    pub fn is_dir(&self) -> bool {
        self.file_type == FileType::Dir
    }
}

/// Whether an extended attribute is image content, carried by copies, written into layers and
/// part of a COPY's cache key. Every one is but `security.selinux`: that is the host's labelling
/// of the build root, not the image's, and a key holding it would miss on every host with
/// another policy.
pub fn is_image_xattr(name: &[u8]) -> bool {
    name != b"security.selinux"
}
