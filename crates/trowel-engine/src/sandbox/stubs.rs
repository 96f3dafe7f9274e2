//! Mount points inside the build root, prepared before a run and cleaned up after it.
//!
//! The sandbox mounts over `/proc`, `/dev`, `/sys`, `/etc/hosts` and `/etc/resolv.conf`. An
//! image may lack any of them (even `/etc`); then an empty directory or file is created for the
//! mount, and removed again after the run if it is still an empty stub, so the snapshot that
//! follows does not see a change the command never made (BuildKit does the same). When nothing
//! else touched the directory a stub was created in, its timestamps are restored too.
//!
//! The root is hostile: `/etc` may be a symlink to `/` of the *host* as far as a naive path
//! join is concerned. Every lookup therefore goes through `openat2(RESOLVE_IN_ROOT)`, which
//! resolves symlinks and `..` as if the root were `/`, and creation and removal happen relative
//! to directory descriptors held open for the whole run.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;

/// What kind of mount point a path must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File,
}

/// A directory stubs were created in.
struct ParentDir {
    fd: OwnedFd,
    dev_ino: (u64, u64),
    /// Timestamps before the first stub was created in it; put back as soon as each stub is
    /// made, so that any change the run makes to the directory moves its mtime away from them.
    before: Timestamps,
}

/// A mount point created for the run.
struct Stub {
    parent: usize,
    name: String,
    /// Path inside the root, for messages.
    path: String,
    kind: Kind,
    dev_ino: (u64, u64),
}

/// The mount points of one run; [`MountPoints::cleanup`] (or drop) removes the stubs.
pub(super) struct MountPoints {
    root: OwnedFd,
    parents: Vec<ParentDir>,
    stubs: Vec<Stub>,
}

const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

fn resolve_in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec { tv_sec: st.st_atime as _, tv_nsec: st.st_atime_nsec as _ },
        last_modification: mtime(st),
    }
}

fn mtime(st: &Stat) -> Timespec {
    Timespec { tv_sec: st.st_mtime as _, tv_nsec: st.st_mtime_nsec as _ }
}

// The widths of st_dev and st_ino differ between architectures.
#[allow(clippy::unnecessary_cast)]
fn dev_ino(st: &Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

fn is_kind(st: &Stat, kind: Kind) -> bool {
    let t = FileType::from_raw_mode(st.st_mode);
    match kind {
        Kind::Dir => t == FileType::Directory,
        Kind::File => t == FileType::RegularFile,
    }
}

impl MountPoints {
    /// Opens the build root.
    pub fn open(root: &Path) -> io::Result<MountPoints> {
        let root = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(MountPoints { root, parents: Vec::new(), stubs: Vec::new() })
    }

    /// Makes `path` (absolute inside the root) usable as a mount point of `kind`, creating it
    /// (and a missing parent directory) if it does not exist. Returns `false` when the image
    /// has something unusable there: the wrong type, or a symlink that leads nowhere.
    pub fn ensure(&mut self, path: &str, kind: Kind) -> io::Result<bool> {
        let rel = path.trim_start_matches('/');
        let (parent_rel, name) = match rel.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", rel),
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad mount point {path:?}")));
        }
        if !parent_rel.is_empty() && !self.ensure(&format!("/{parent_rel}"), Kind::Dir)? {
            return Ok(false);
        }
        let parent = rustix::fs::openat2(
            &self.root,
            if parent_rel.is_empty() { "." } else { parent_rel },
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            resolve_in_root(),
        )?;
        match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                // The mount will follow the link inside the root; it is usable if it leads to
                // the right kind of thing. Dangling links are left alone rather than creating
                // files wherever they point.
                match rustix::fs::openat2(
                    &self.root,
                    rel,
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                    resolve_in_root(),
                ) {
                    Ok(fd) => Ok(is_kind(&rustix::fs::fstat(&fd)?, kind)),
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
            Ok(st) => Ok(is_kind(&st, kind)),
            Err(Errno::NOENT) => {
                self.create(parent, name, path, kind)?;
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn create(&mut self, parent: OwnedFd, name: &str, path: &str, kind: Kind) -> io::Result<()> {
        let pst = rustix::fs::fstat(&parent)?;
        let index = match self.parents.iter().position(|p| p.dev_ino == dev_ino(&pst)) {
            Some(i) => i,
            None => {
                self.parents.push(ParentDir { fd: parent, dev_ino: dev_ino(&pst), before: times(&pst) });
                self.parents.len() - 1
            }
        };
        let dir = &self.parents[index].fd;
        // Explicit chmod: the process umask (which this multi-threaded process must not change)
        // would otherwise decide the mode of a stub a RUN may end up filling.
        let st = match kind {
            Kind::Dir => {
                rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(DIR_MODE))?;
                let fd = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(DIR_MODE))?;
                rustix::fs::fstat(&fd)?
            }
            Kind::File => {
                let fd = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(FILE_MODE),
                )?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(FILE_MODE))?;
                rustix::fs::fstat(&fd)?
            }
        };
        // The stub's own creation is undone in the directory's times right away. Comparing with
        // its mtime just after the stub was made instead would be a race: file systems stamp
        // times from a clock that moves once per tick (1-4 ms on tmpfs and ext4), so a command
        // that changed the directory within that tick (`RUN rm /etc/hostname` on an image
        // without /etc/hosts) left the same mtime, the change was taken for the stub's and put
        // back, and whether a snapshot saw `/etc` modified (and the layer's `/etc` time) varied
        // from build to build.
        rustix::fs::futimens(dir, &self.parents[index].before)?;
        self.stubs.push(Stub {
            parent: index,
            name: name.to_string(),
            path: path.to_string(),
            kind,
            dev_ino: dev_ino(&st),
        });
        Ok(())
    }

    /// Removes every stub that is still an empty stub, newest first, then restores the
    /// timestamps of directories nothing but the stubs touched. Call it only once the mount
    /// namespace is gone, when the stubs are no longer mount points. Returns the path of the
    /// first stub that could not be removed, with the error.
    pub fn cleanup(&mut self) -> Result<(), (String, io::Error)> {
        let untouched: Vec<bool> = self
            .parents
            .iter()
            .map(|p| rustix::fs::fstat(&p.fd).map(|st| mtime(&st) == p.before.last_modification).unwrap_or(false))
            .collect();
        let mut all_removed = vec![true; self.parents.len()];
        let mut first_error = None;
        for stub in std::mem::take(&mut self.stubs).into_iter().rev() {
            let dir = &self.parents[stub.parent].fd;
            match remove_stub(dir.as_fd(), &stub) {
                Ok(true) => {}
                Ok(false) => all_removed[stub.parent] = false,
                Err(e) => {
                    all_removed[stub.parent] = false;
                    first_error.get_or_insert((stub.path.clone(), e));
                }
            }
        }
        for (i, parent) in std::mem::take(&mut self.parents).into_iter().enumerate() {
            if untouched[i] && all_removed[i] {
                // Best effort: the directory may itself have been a removed stub.
                let _ = rustix::fs::futimens(&parent.fd, &parent.before);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for MountPoints {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

/// Removes one stub if it is still what was created: the same inode, and an empty directory
/// or an empty file. `Ok(false)` means it was kept (the command put something there).
fn remove_stub(dir: rustix::fd::BorrowedFd<'_>, stub: &Stub) -> io::Result<bool> {
    let st = match rustix::fs::statat(dir, stub.name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(true),
        Err(e) => return Err(e.into()),
    };
    if dev_ino(&st) != stub.dev_ino || !is_kind(&st, stub.kind) {
        return Ok(false);
    }
    let result = match stub.kind {
        Kind::Dir => rustix::fs::unlinkat(dir, stub.name.as_str(), AtFlags::REMOVEDIR),
        Kind::File if st.st_size == 0 => rustix::fs::unlinkat(dir, stub.name.as_str(), AtFlags::empty()),
        Kind::File => return Ok(false),
    };
    match result {
        Ok(()) | Err(Errno::NOENT) => Ok(true),
        Err(Errno::NOTEMPTY | Errno::EXIST) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn listing(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = walkdir::WalkDir::new(root)
            .into_iter()
            .map(|e| e.unwrap().path().strip_prefix(root).unwrap().display().to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn missing_mount_points_are_created_and_removed_again() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir(root.join("bin")).unwrap();
        let before = listing(root);
        let root_mtime = fs::metadata(root).unwrap().mtime_nsec();
        let mut mp = MountPoints::open(root).unwrap();
        assert!(mp.ensure("/proc", Kind::Dir).unwrap());
        assert!(mp.ensure("/etc/hosts", Kind::File).unwrap());
        assert!(mp.ensure("/etc/resolv.conf", Kind::File).unwrap());
        assert!(root.join("etc/hosts").is_file());
        assert_eq!(fs::metadata(root.join("proc")).unwrap().permissions().mode() & 0o7777, 0o755);
        assert_eq!(fs::metadata(root.join("etc/hosts")).unwrap().permissions().mode() & 0o7777, 0o644);
        mp.cleanup().unwrap();
        assert_eq!(listing(root), before);
        assert_eq!(fs::metadata(root).unwrap().mtime_nsec(), root_mtime);
    }

    #[test]
    fn stubs_the_command_filled_are_kept() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let mut mp = MountPoints::open(root).unwrap();
        assert!(mp.ensure("/etc/hosts", Kind::File).unwrap());
        assert!(mp.ensure("/sys", Kind::Dir).unwrap());
        fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        mp.cleanup().unwrap();
        assert!(root.join("etc/passwd").exists());
        assert!(!root.join("etc/hosts").exists());
        assert!(!root.join("sys").exists());
    }

    /// A command that changes a stub's directory at once (within the file system clock's tick
    /// of the stub's creation, as `RUN rm /etc/hostname` does on an image without /etc/hosts)
    /// keeps its change: the directory's time is not put back.
    #[test]
    fn a_change_in_the_stubs_directory_made_at_once_is_kept() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir(root.join("etc")).unwrap();
        fs::write(root.join("etc/hostname"), "box\n").unwrap();
        let old = Timespec { tv_sec: 1_704_067_200, tv_nsec: 0 };
        let stamp = Timestamps { last_access: old, last_modification: old };
        rustix::fs::utimensat(rustix::fs::CWD, root.join("etc"), &stamp, AtFlags::empty()).unwrap();
        let mut mp = MountPoints::open(root).unwrap();
        assert!(mp.ensure("/etc/hosts", Kind::File).unwrap());
        assert_eq!(fs::metadata(root.join("etc")).unwrap().mtime(), 1_704_067_200, "the stub leaves no trace");
        fs::remove_file(root.join("etc/hostname")).unwrap();
        mp.cleanup().unwrap();
        assert!(!root.join("etc/hosts").exists());
        assert_ne!(fs::metadata(root.join("etc")).unwrap().mtime(), 1_704_067_200, "the command's change is kept");

        // Untouched, the directory gets its time back.
        fs::write(root.join("etc/hostname"), "box\n").unwrap();
        rustix::fs::utimensat(rustix::fs::CWD, root.join("etc"), &stamp, AtFlags::empty()).unwrap();
        let mut mp = MountPoints::open(root).unwrap();
        assert!(mp.ensure("/etc/hosts", Kind::File).unwrap());
        mp.cleanup().unwrap();
        assert_eq!(fs::metadata(root.join("etc")).unwrap().mtime(), 1_704_067_200);
    }

    #[test]
    fn existing_paths_are_used_and_kept() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(root.join("proc")).unwrap();
        fs::write(root.join("etc/hosts"), "").unwrap();
        let mut mp = MountPoints::open(root).unwrap();
        assert!(mp.ensure("/proc", Kind::Dir).unwrap());
        assert!(mp.ensure("/etc/hosts", Kind::File).unwrap());
        mp.cleanup().unwrap();
        assert!(root.join("proc").is_dir());
        assert!(root.join("etc/hosts").is_file());
    }

    #[test]
    fn wrong_kinds_and_dangling_links_are_unusable() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::write(root.join("proc"), "not a dir").unwrap();
        fs::create_dir(root.join("etc")).unwrap();
        symlink("/nowhere/hosts", root.join("etc/hosts")).unwrap();
        let mut mp = MountPoints::open(root).unwrap();
        assert!(!mp.ensure("/proc", Kind::Dir).unwrap());
        assert!(!mp.ensure("/etc/hosts", Kind::File).unwrap());
        assert!(!root.join("nowhere").exists());
    }

    #[test]
    fn symlinks_resolve_inside_the_root_never_on_the_host() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = t.path();
        // An absolute link that would point at a host directory if joined naively.
        symlink(outside.path(), root.join("etc")).unwrap();
        let mut mp = MountPoints::open(root).unwrap();
        let usable = mp.ensure("/etc/hosts", Kind::File).unwrap();
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0, "nothing may be created on the host");
        // The link's target does not exist inside the root, so /etc is unusable.
        assert!(!usable);
        mp.cleanup().unwrap();

        // A relative link inside the root is followed.
        fs::remove_file(root.join("etc")).unwrap();
        fs::create_dir(root.join("real-etc")).unwrap();
        symlink("real-etc", root.join("etc")).unwrap();
        let mut mp = MountPoints::open(root).unwrap();
        assert!(mp.ensure("/etc/hosts", Kind::File).unwrap());
        assert!(root.join("real-etc/hosts").is_file());
        mp.cleanup().unwrap();
        assert!(!root.join("real-etc/hosts").exists());
        assert!(root.join("real-etc").is_dir());
    }
}
