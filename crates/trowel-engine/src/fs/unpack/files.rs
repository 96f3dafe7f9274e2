//! Regular files of a layer: small ones gathered into batches created on several threads
//! (`batch.rs`), large ones (or with extended attributes) written alone, each created through a
//! kept descriptor of its directory.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::batch::Job;
use super::{Applier, MAX_DIR_FDS, Meta};
use crate::fs::written::ContentHasher;
use crate::fs::{FsError, path};

impl Applier<'_> {
    pub(super) fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        target: &str,
        meta: &Meta,
        raw_name: &str,
    ) -> Result<(), FsError> {
        let (dir, setgid) = self.dir_of(target)?;
        let owner = self.owner(meta, setgid);
        let bits = self.how.bits(meta.mode, owner.is_some());
        let mut f = match self.root.create_new_at(&dir, path::file_name(target), target, bits)? {
            Some(f) => f,
            None => {
                self.clear_for_nondir(target)?;
                self.root.create_file(target, meta.mode)?
            }
        };
        let mut hasher = self.opts.written.as_ref().map(|_| ContentHasher::default());
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(FsError::Layer { entry: Some(raw_name.to_string()), source }),
            };
            f.write_all(&self.buf[..n]).map_err(|e| self.root.io_err("write", target, e))?;
            if let Some(h) = hasher.as_mut() {
                h.update(&self.buf[..n]);
            }
            self.stats.bytes += n as u64;
            if self.opts.cancel.as_ref().is_some_and(crate::fs::Cancel::requested) {
                return Err(FsError::Cancelled);
            }
        }
        super::batch::set_file_meta(self.root, &f, target, owner, meta.mode, meta.mtime, &self.how)?;
        // After the chown (which clears security.capability); setting xattrs leaves mtime alone.
        self.set_xattrs(target, meta)?;
        // Last: the ctime recorded is the one the file keeps.
        if let (Some(w), Some(h)) = (&self.opts.written, hasher) {
            w.record(&f, h.finish());
        }
        Ok(())
    }

    /// Keeps a directory's descriptor for the files that go in it, a bounded number of them.
    pub(super) fn remember_dir(&mut self, dir: String, fd: Arc<OwnedFd>, setgid: bool) {
        if self.dir_fds.len() >= MAX_DIR_FDS {
            self.dir_fds.clear();
        }
        self.dir_fds.insert(dir, (fd, setgid));
    }

    /// The owner to give a new file in a directory (setgid or not), `None` when owners are not
    /// preserved or creating the file already gives it that owner.
    pub(super) fn owner(&self, meta: &Meta, dir_setgid: bool) -> Option<(u32, u32)> {
        self.opts.preserve_owner.then(|| self.how.chown((meta.uid, meta.gid), dir_setgid)).flatten()
    }

    /// A descriptor of the directory `target` goes in (resolved inside the root), and whether
    /// that directory is setgid (its new files get its group). Kept while files go into the
    /// same directory: a layer's files come directory by directory, and resolving the parent
    /// inside the root for each of 100,000 files is most of the cost of unpacking them.
    pub(super) fn dir_of(&mut self, target: &str) -> Result<(Arc<OwnedFd>, bool), FsError> {
        let dir = path::parent(target);
        if let Some((fd, setgid)) = self.dir_fds.get(dir) {
            return Ok((Arc::clone(fd), *setgid));
        }
        let (fd, _) = self.root.parent(target)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.root.io_err("stat the parent directory of", target, e))?;
        let setgid = st.st_mode & libc::S_ISGID != 0;
        let fd = Arc::new(fd);
        self.remember_dir(dir.to_string(), Arc::clone(&fd), setgid);
        Ok((fd, setgid))
    }

    /// Whether an entry at `target` (in directory `parent`) must wait for the pending batch:
    /// a pending file would replace a directory on its path, it would replace or change a
    /// directory that pending files go in, or it is a directory where a file is pending.
    pub(super) fn conflicts_with_batch(&self, target: &str, parent: &str, is_dir: bool) -> bool {
        if self.batch.is_empty() {
            return false;
        }
        let mut p = parent;
        loop {
            if self.pending_targets.contains(p) {
                return true;
            }
            if p == "/" || p.is_empty() {
                break;
            }
            p = path::parent(p);
        }
        if is_dir && self.pending_targets.contains(target) {
            return true;
        }
        let below = format!("{}/", target.trim_end_matches('/'));
        self.pending_dirs.iter().any(|d| d == target || d.starts_with(&below))
    }

    /// Adds a small file to the pending batch (its content read into memory).
    pub(super) fn enqueue<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        target: &str,
        meta: &Meta,
        raw_name: &str,
    ) -> Result<(), FsError> {
        let (dir, setgid) = self.dir_of(target)?;
        let owner = self.owner(meta, setgid);
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data).map_err(|source| FsError::Layer { entry: Some(raw_name.to_string()), source })?;
        self.stats.bytes += data.len() as u64;
        let dir_path = path::parent(target).to_string();
        self.pending_targets.insert(target.to_string());
        self.pending_dirs.insert(dir_path.clone());
        self.batch.push(Job {
            dir,
            dir_path,
            name: path::file_name(target).to_string(),
            target: target.to_string(),
            data,
            mode: meta.mode,
            owner,
            mtime: meta.mtime,
        });
        if self.batch.is_full() {
            self.flush()?;
        }
        Ok(())
    }

    /// Creates the pending files; those whose name was taken are then replaced one by one, in
    /// layer order.
    pub(super) fn flush(&mut self) -> Result<(), FsError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let taken = self.batch.create_all(self.root, &self.how, self.opts.written.as_deref())?;
        self.pending_targets.clear();
        self.pending_dirs.clear();
        for job in taken {
            self.clear_for_nondir(&job.target)?;
            let f = self.root.create_file(&job.target, job.mode)?;
            super::batch::finish(self.root, f, &job, &self.how, self.opts.written.as_deref())?;
        }
        Ok(())
    }
}
