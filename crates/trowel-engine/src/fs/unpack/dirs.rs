//! Directories of a layer: a new one made through its parent's descriptor and kept open for the
//! files that follow it; an existing one kept (or a non-directory replaced) the general way. Their
//! modification times are set once everything in them is written (`unpack_layer`).

use std::sync::Arc;

use rustix::fs::{Mode, OFlags};

use super::Applier;
use super::Meta;
use crate::fs::{FileType, FsError, path};

impl Applier<'_> {
    pub(super) fn dir(&mut self, target: &str, meta: &Meta) -> Result<(), FsError> {
        if self.new_dir(target, meta)? {
            self.dir_times.insert(target.to_string(), meta.mtime);
            return Ok(());
        }
        match self.root.lstat(target)? {
            Some(st) if st.is_dir() => {}
            Some(_) => {
                self.root.remove_all(target)?;
                self.parents.clear();
                self.dir_fds.clear();
                self.root.mkdir_all(target, meta.mode, None)?;
            }
            None => {
                self.root.mkdir_all(target, meta.mode, None)?;
            }
        }
        self.apply_meta(target, meta, FileType::Dir)?;
        self.dir_times.insert(target.to_string(), meta.mtime);
        Ok(())
    }

    /// Creates the directory `target` when nothing is there yet, through a descriptor of its
    /// parent, and gives it its owner, mode and attributes through a descriptor of its own,
    /// which then serves the files that go in it (a layer lists a directory just before its
    /// contents). Most directories of a base image are new: this takes 2 to 4 system calls
    /// where resolving the path again for each of creating, chowning and chmodding it took
    /// more than ten. `false` when the name is taken (or anything else fails): the caller then
    /// goes the general way, which replaces what is there or reports the error.
    pub(super) fn new_dir(&mut self, target: &str, meta: &Meta) -> Result<bool, FsError> {
        if target == "/" {
            return Ok(false);
        }
        let (parent, setgid) = self.dir_of(target)?;
        let name = path::file_name(target);
        if rustix::fs::mkdirat(&*parent, name, Mode::from_raw_mode(meta.mode & 0o777)).is_err() {
            return Ok(false);
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&*parent, name, flags, Mode::empty())
            .map_err(|e| self.root.io_err("open the new directory", target, e))?;
        if let Some((uid, gid)) = self.owner(meta, setgid) {
            rustix::fs::fchown(&fd, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)))
                .map_err(|e| self.root.io_err("chown", target, e))?;
        }
        // A setgid parent gives a new directory its setgid bit, and the umask takes bits.
        let made = Mode::from_raw_mode(meta.mode & 0o777 & !self.how.umask.unwrap_or(0o777));
        if setgid || meta.mode & 0o7000 != 0 || self.how.umask.is_none() || made.bits() != meta.mode & 0o7777 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
                .map_err(|e| self.root.io_err("chmod", target, e))?;
        }
        self.set_xattrs(target, meta)?;
        self.remember_dir(target.to_string(), Arc::new(fd), meta.mode & 0o2000 != 0);
        Ok(true)
    }
}
