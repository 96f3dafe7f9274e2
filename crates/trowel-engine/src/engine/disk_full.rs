//! Full disks. A build whose work dir or cache dir runs out of space (`ENOSPC`, which is also
//! what an exhausted inode table gives) or over a quota (`EDQUOT`) fails with a
//! [`BuildError::NoSpace`] that names the directory, its file system and what to do about it,
//! instead of ending in a bare "No space left on device (os error 28)" from deep inside an
//! unpack. The error it explains stays its source, whole.
//!
//! Where: the I/O sites keep typed sources (`FsError::Io` with its root, `StoreError::Io` with
//! its path) and say what they were doing, but which of the build's directories a path belongs
//! to, and what that file system looks like while it is still full, is known only above them.
//! Sites that write into a directory other than the one their paths suggest wrap their own
//! errors with [`at`] before anything is cleaned up (an unpacked-layer store entry is filled
//! through an overlay mounted in the work dir, but its data goes to the cache dir); every other
//! failure is looked at once by [`explain`] as the build fails, before its work dir is removed.
//! A RUN whose command fails on a full disk reports only its exit code: its failure is
//! explained when the work dir's file system is full at that moment.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::fs::FsError;
use crate::image::store::StoreError;

use super::error::{BuildError, StepError};
use super::options::BuildOptions;

/// Which of the build's directories filled up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullDir {
    /// `--work-dir`: build roots, the blobs and layers of this build.
    WorkDir,
    /// `--cache-dir`: the base-image cache, the unpacked-layer store, the local layer store.
    CacheDir,
}

impl FullDir {
    fn name(self) -> &'static str {
        match self {
            FullDir::WorkDir => "work dir",
            FullDir::CacheDir => "cache dir",
        }
    }

    /// The flag that moves it elsewhere.
    pub fn flag(self) -> &'static str {
        match self {
            FullDir::WorkDir => "--work-dir",
            FullDir::CacheDir => "--cache-dir",
        }
    }
}

/// A file system as it was when the error was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsUsage {
    /// `ext4`, `tmpfs`, `xfs`…
    pub fs_type: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Its device or source (`/dev/loop3`, `tmpfs`).
    pub source: String,
    pub size: u64,
    /// Bytes an unprivileged writer may still use, when it was looked at (a write that failed
    /// may have been dropped by then, freeing what it had written).
    pub free: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

impl fmt::Display for FsUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {} mounted at {}: {} in all, {} free now",
            self.fs_type,
            self.source,
            self.mount_point.display(),
            bytes(self.size),
            bytes(self.free)
        )?;
        // A file system with no inode table (btrfs reports 0) says nothing about inodes.
        if self.inodes > 0 && self.inodes_free == 0 {
            write!(f, ", no inode free of {}", self.inodes)?;
        }
        Ok(())
    }
}

/// Why a build stopped: a directory's file system is full. `source` is what failed.
#[derive(Debug)]
pub struct NoSpace {
    pub dir: FullDir,
    /// The directory as the build was given it.
    pub path: PathBuf,
    /// `None` when the file system could not be looked at.
    pub fs: Option<FsUsage>,
    /// Over a quota (`EDQUOT`) rather than out of space.
    pub quota: bool,
    pub source: Box<BuildError>,
}

impl fmt::Display for NoSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.source, advice(self.dir, &self.path, self.fs.as_ref(), self.quota))
    }
}

/// ` — the work dir /x is full (…): free space there or point --work-dir at a larger file system`
fn advice(dir: FullDir, path: &Path, fs: Option<&FsUsage>, quota: bool) -> String {
    let full = if quota { "is over its disk quota" } else { "is full" };
    let inodes = fs.is_some_and(|u| u.inodes > 0 && u.inodes_free == 0);
    let free = if inodes { "free inodes (delete files) there" } else { "free space there" };
    let fs = fs.map(|u| format!(" ({u})")).unwrap_or_default();
    format!(
        " — the {} {} {full}{fs}: {free} or point {} at a larger file system",
        dir.name(),
        path.display(),
        dir.flag()
    )
}

/// What a full disk adds to a message about a write into `dir` (at `path`) that failed with
/// `e` and did not fail a build (the local layer store's entries, `trowel warm`'s images): the
/// same advice as [`NoSpace`]'s, or nothing when `e` is not a full disk.
pub fn note(e: &(dyn std::error::Error + 'static), dir: FullDir, path: &Path) -> String {
    match out_of_space(e) {
        Some(quota) => advice(dir, path, usage(path).as_ref(), quota),
        None => String::new(),
    }
}

impl std::error::Error for NoSpace {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// Whether `e`, or anything it was caused by, is an `ENOSPC` or `EDQUOT`; and which.
fn out_of_space(e: &(dyn std::error::Error + 'static)) -> Option<bool> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // An error a library wrapped with its path (tempfile's) keeps the kind, not the errno.
            match (io.raw_os_error(), io.kind()) {
                (Some(libc::ENOSPC), _) | (_, std::io::ErrorKind::StorageFull) => return Some(false),
                (Some(libc::EDQUOT), _) | (_, std::io::ErrorKind::QuotaExceeded) => return Some(true),
                _ => {}
            }
        }
        cur = err.source();
    }
    None
}

/// Whether a `NoSpace` is in `e`'s chain already (a site explained it).
fn explained(e: &BuildError) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if matches!(err.downcast_ref::<BuildError>(), Some(BuildError::NoSpace(_))) || err.is::<NoSpace>() {
            return true;
        }
        if let Some(StepError::Build(b)) = err.downcast_ref::<StepError>()
            && explained(b)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// A host path the failed operation named (a build root, a blob store file).
fn failed_path(e: &BuildError) -> Option<PathBuf> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(FsError::Io { root, .. }) = err.downcast_ref::<FsError>() {
            return Some(PathBuf::from(root));
        }
        if let Some(StoreError::Io { path, .. }) = err.downcast_ref::<StoreError>() {
            return Some(path.clone());
        }
        if let Some(StepError::Build(b)) = err.downcast_ref::<StepError>() {
            return failed_path(b);
        }
        cur = err.source();
    }
    None
}

/// Wraps `e` as [`BuildError::NoSpace`] of `dir` (at `path`) when it was caused by a full
/// disk, measuring the file system now; any other error is returned as it is. For sites that
/// know where their data went, called before they clean up.
pub(crate) fn at(dir: FullDir, path: &Path, e: BuildError) -> BuildError {
    if explained(&e) {
        return e;
    }
    match out_of_space(&e) {
        Some(quota) => no_space(dir, path, quota, e),
        None => e,
    }
}

fn no_space(dir: FullDir, path: &Path, quota: bool, e: BuildError) -> BuildError {
    let fs = usage(path);
    BuildError::NoSpace(Box::new(NoSpace { dir, path: path.to_path_buf(), fs, quota, source: Box::new(e) }))
}

/// Explains a failed build's error when a full disk caused it (see the module's doc); called
/// once, as the build fails, before its work dir is removed.
pub(crate) fn explain(e: BuildError, opts: &BuildOptions) -> BuildError {
    if explained(&e) {
        return e;
    }
    let work = opts.work_dir.as_path();
    let cache = cache_dir(opts);
    let Some(quota) = out_of_space(&e) else {
        // A command that failed on a full disk reports its exit code, and maybe printed why.
        if e.step_exit_code().is_some() && usage(work).is_some_and(|u| is_full(&u)) {
            return no_space(FullDir::WorkDir, work, false, e);
        }
        return e;
    };
    let path = failed_path(&e);
    let under = |dir: &Path| path.as_deref().is_some_and(|p| p.starts_with(dir));
    let full_now = |dir: &Path| usage(dir).is_some_and(|u| is_full(&u));
    let dir = match cache {
        Some(c) if under(c) => FullDir::CacheDir,
        // A path of the work dir, or none: the cache dir only when it alone is still full.
        Some(c) if full_now(c) && !full_now(work) => FullDir::CacheDir,
        _ => FullDir::WorkDir,
    };
    let path = match dir {
        FullDir::WorkDir => work,
        FullDir::CacheDir => cache.unwrap_or(work),
    };
    no_space(dir, path, quota, e)
}

/// The build's `--cache-dir`, when it has one: where the base-image cache, the local layer
/// store or the unpacked-layer store are.
pub(crate) fn cache_dir(opts: &BuildOptions) -> Option<&Path> {
    opts.cache
        .as_ref()
        .and_then(|c| c.dir.as_deref())
        .or_else(|| opts.layers.unpacked_store.as_deref().and_then(Path::parent))
}

/// Less than a MiB left, or no inode: a write of any size may fail.
fn is_full(u: &FsUsage) -> bool {
    u.free < (1 << 20) || (u.inodes > 0 && u.inodes_free == 0)
}

/// The file system holding `path` (which must exist), from `statvfs` and the mount table.
pub fn usage(path: &Path) -> Option<FsUsage> {
    let st = rustix::fs::statvfs(path).ok()?;
    let frsize = if st.f_frsize > 0 { st.f_frsize } else { st.f_bsize };
    let dev = rustix::fs::stat(path).ok()?.st_dev;
    let canonical = std::fs::canonicalize(path).ok()?;
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let (fs_type, mount_point, source) = mount_of(&table, &canonical, rustix::fs::major(dev), rustix::fs::minor(dev))
        .unwrap_or_else(|| ("?".into(), canonical.clone(), "?".into()));
    Some(FsUsage {
        fs_type,
        mount_point,
        source,
        size: st.f_blocks.saturating_mul(frsize),
        free: st.f_bavail.saturating_mul(frsize),
        inodes: st.f_files,
        inodes_free: st.f_favail,
    })
}

/// The mount of `path` in a `/proc/self/mountinfo` table: the longest mount point above it,
/// among those of its device when any is; its type, mount point and source.
fn mount_of(table: &str, path: &Path, major: u32, minor: u32) -> Option<(String, PathBuf, String)> {
    let dev = format!("{major}:{minor}");
    let mut best: Option<(bool, usize, (String, PathBuf, String))> = None;
    for line in table.lines() {
        let Some((mine, theirs)) = line.split_once(" - ") else { continue };
        let f: Vec<&str> = mine.split(' ').collect();
        let t: Vec<&str> = theirs.split(' ').collect();
        if f.len() < 5 || t.len() < 2 {
            continue;
        }
        let point = PathBuf::from(unescape(f[4]));
        if !path.starts_with(&point) {
            continue;
        }
        let rank = (f[2] == dev, point.as_os_str().len());
        if best.as_ref().is_none_or(|(d, l, _)| rank >= (*d, *l)) {
            best = Some((rank.0, rank.1, (t[0].to_string(), point, unescape(t[1]))));
        }
    }
    best.map(|(_, _, m)| m)
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x"), 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `8.0 MiB`, `512 B`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:45 / /tmp/full\\040disk rw,relatime shared:2 - tmpfs tmpfs rw,size=8192k
41 22 7:3 / /tmp/full\\040disk/loop rw shared:3 - ext4 /dev/loop3 rw
";

    #[test]
    fn the_mount_of_a_path_is_the_deepest_of_its_device() {
        let m = |p: &str, major, minor| mount_of(TABLE, Path::new(p), major, minor).unwrap();
        assert_eq!(m("/tmp/full disk/w", 0, 45), ("tmpfs".into(), "/tmp/full disk".into(), "tmpfs".into()));
        assert_eq!(
            m("/tmp/full disk/loop/x", 7, 3),
            ("ext4".into(), "/tmp/full disk/loop".into(), "/dev/loop3".into())
        );
        assert_eq!(m("/var/tmp", 254, 0).1, PathBuf::from("/"));
        // A bind mount of another device's directory: the device decides.
        assert_eq!(m("/tmp/full disk/loop/x", 0, 45).1, PathBuf::from("/tmp/full disk"));
    }

    #[test]
    fn a_full_disk_is_found_through_the_chain_and_explained_once() {
        let enospc = || std::io::Error::from_raw_os_error(libc::ENOSPC);
        let e = BuildError::Fs {
            what: "unpack layer sha256:ab".into(),
            source: FsError::Io {
                op: "write",
                path: "/big".into(),
                root: "/w/trowel-build-1/rootfs".into(),
                source: enospc(),
            },
        };
        assert_eq!(out_of_space(&e), Some(false));
        assert_eq!(failed_path(&e), Some(PathBuf::from("/w/trowel-build-1/rootfs")));
        let d = tempfile::tempdir().unwrap();
        let wrapped = at(FullDir::CacheDir, d.path(), e);
        let text = wrapped.to_string();
        assert!(
            text.starts_with("unpack layer sha256:ab: write /big (in root /w/trowel-build-1/rootfs): No space left on device (os error 28) — the cache dir "),
            "{text}"
        );
        assert!(text.ends_with(": free space there or point --cache-dir at a larger file system"), "{text}");
        // Explained once: a second look leaves it.
        let again = at(FullDir::WorkDir, d.path(), wrapped);
        assert_eq!(again.to_string(), text);
        let wrapped = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device at path \"/c/x\"");
        assert_eq!(out_of_space(&BuildError::Io { what: "x".into(), source: wrapped }), Some(false));
        let quota = BuildError::Io { what: "x".into(), source: std::io::Error::from_raw_os_error(libc::EDQUOT) };
        assert_eq!(out_of_space(&quota), Some(true));
        let other = BuildError::Io { what: "x".into(), source: std::io::Error::from_raw_os_error(libc::EIO) };
        assert!(matches!(at(FullDir::WorkDir, d.path(), other), BuildError::Io { .. }));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(8 << 20), "8.0 MiB");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
        assert_eq!(unescape("/a\\040b"), "/a b");
    }

    #[test]
    fn this_machines_root_has_a_usage() {
        let u = usage(Path::new("/")).unwrap();
        assert!(u.size > 0 && u.mount_point == Path::new("/"), "{u:?}");
    }
}
