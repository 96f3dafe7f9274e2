//! Symlinks, hard links, device nodes and FIFOs of a layer, and the metadata of what is not a
//! regular file. A hard link must name a file already in the root (never a directory, never
//! outside); devices are created only when the unpack allows them.

use rustix::fs::AtFlags;

use super::{Applier, Meta, entry_path, unsafe_entry};
use crate::fs::{FileType, FsError, NodeKind, path};

impl Applier<'_> {
    pub(super) fn symlink(&mut self, target: &str, link: &str, meta: &Meta, raw_name: &str) -> Result<(), FsError> {
        if link.is_empty() || link.as_bytes().contains(&0) {
            return Err(unsafe_entry(raw_name, "empty or invalid symlink target"));
        }
        if self.new_symlink(target, link, meta)? {
            return Ok(());
        }
        self.clear_for_nondir(target)?;
        self.root.symlink(link, target)?;
        self.apply_meta(target, meta, FileType::Symlink)
    }

    /// Creates the symlink `target` when its name is free, with its owner and times, through
    /// the descriptor of its directory (2 or 3 system calls instead of about twelve: a base
    /// image has hundreds of symlinks among its libraries). `false` when the name is taken (or
    /// the link cannot be made): the caller goes the general way.
    pub(super) fn new_symlink(&mut self, target: &str, link: &str, meta: &Meta) -> Result<bool, FsError> {
        if target == "/" {
            return Ok(false);
        }
        path::check(link)?;
        let (parent, setgid) = self.dir_of(target)?;
        let name = path::file_name(target);
        if rustix::fs::symlinkat(link, &*parent, name).is_err() {
            return Ok(false);
        }
        if let Some((uid, gid)) = self.owner(meta, setgid) {
            let (uid, gid) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
            rustix::fs::chownat(&*parent, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.root.io_err("chown", target, e))?;
        }
        self.set_xattrs(target, meta)?;
        let t = meta.mtime.to_rustix();
        let times = rustix::fs::Timestamps { last_access: t, last_modification: t };
        rustix::fs::utimensat(&*parent, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.root.io_err("set times of", target, e))?;
        Ok(true)
    }

    pub(super) fn hardlink(&mut self, target: &str, link: &[u8], raw_name: &str) -> Result<(), FsError> {
        let link_logical = entry_path(link, raw_name, self.opts.archive_names).map_err(|e| match e {
            FsError::UnsafeEntry { entry, reason } => {
                FsError::UnsafeEntry { entry, reason: format!("hardlink target: {reason}") }
            }
            e => e,
        })?;
        if self.opts.ignore.is_ignored(&link_logical) {
            return Ok(());
        }
        let parent = self.resolve_parent(&link_logical, raw_name, false)?;
        let source = path::join(&parent, path::file_name(&link_logical));
        let Some(src) = self.root.lstat(&source)? else {
            if let Some(sel) = &self.opts.select {
                let left_out = !sel.covers(&source);
                // Its file was left out, or is a link this pass left unmade for that reason
                // (a chain of links): the next pass of the extraction writes it. What stood
                // here goes, so paths resolve as in a full unpack meanwhile.
                if left_out || sel.deferred(&source) {
                    if left_out {
                        sel.want(source);
                    }
                    sel.defer(target.to_string());
                    self.clear_for_nondir(target)?;
                    return Ok(());
                }
            }
            return Err(unsafe_entry(raw_name, format!("hardlink target {link_logical} does not exist")));
        };
        if src.is_dir() {
            return Err(unsafe_entry(raw_name, format!("hardlink target {link_logical} is a directory")));
        }
        if let Some(st) = self.root.lstat(target)?
            && st.dev == src.dev
            && st.ino == src.ino
        {
            return Ok(());
        }
        self.clear_for_nondir(target)?;
        self.root.hardlink(&source, target)
    }

    pub(super) fn node(
        &mut self,
        target: &str,
        kind: NodeKind,
        rdev: u64,
        meta: &Meta,
        raw_name: &str,
    ) -> Result<(), FsError> {
        if kind == NodeKind::CharDevice && rdev == 0 && self.opts.overlay_lower {
            return Err(FsError::DeviceNotAllowed {
                entry: raw_name.to_string(),
                reason: "a character device 0:0 is a whiteout to overlayfs".into(),
            });
        }
        if kind != NodeKind::Fifo && !self.opts.allow_devices {
            return Err(FsError::DeviceNotAllowed {
                entry: raw_name.to_string(),
                reason: "device nodes are not allowed for this unpack".into(),
            });
        }
        self.clear_for_nondir(target)?;
        match self.root.mknod(target, kind, meta.mode, rdev) {
            Ok(()) => {}
            Err(e) if e.is_errno(libc::EPERM) => {
                return Err(FsError::DeviceNotAllowed {
                    entry: raw_name.to_string(),
                    reason: "mknod was refused (EPERM): not root, or inside a user namespace".into(),
                });
            }
            Err(e) => return Err(e),
        }
        self.apply_meta(target, meta, FileType::Fifo)
    }

    /// Owner, mode (not for symlinks), xattrs and times (not for directories, whose mtimes
    /// are set at the end), by path without following.
    pub(super) fn apply_meta(&mut self, target: &str, meta: &Meta, ft: FileType) -> Result<(), FsError> {
        if self.opts.preserve_owner {
            self.root.set_owner(target, meta.uid, meta.gid)?;
        }
        if ft != FileType::Symlink {
            self.root.set_mode(target, meta.mode)?;
        }
        self.set_xattrs(target, meta)?;
        if ft != FileType::Dir {
            self.root.set_times(target, meta.mtime, meta.mtime)?;
        }
        Ok(())
    }

    pub(super) fn set_xattrs(&self, target: &str, meta: &Meta) -> Result<(), FsError> {
        for (name, value) in &meta.xattrs {
            match self.root.set_xattr(target, name, value) {
                Ok(()) => {}
                // The filesystem under the root cannot store this namespace (e.g. user.* on
                // a symlink, or a tmpfs without xattr support): the layer still applies.
                Err(e) if e.is_errno(libc::EOPNOTSUPP) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
