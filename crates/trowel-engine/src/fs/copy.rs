//! Copying a tree from one root to another (COPY/ADD from the context, cross-stage copies).
//!
//! The source is walked without ever following a symlink (symlinks are copied as symlinks);
//! both sides resolve inside their roots. Hardlinks inside the copied set stay hardlinks;
//! xattrs (except the host's `security.selinux` labels) and setuid/setgid/sticky bits are
//! kept. Docker's destination rules (trailing slashes, "copy into" versus "copy as") are the
//! engine's business: this is the primitive that copies `src_path` *as* `dst_path`.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use serde::{Deserialize, Serialize};

use super::{Cancel, FileType, FsError, NodeKind, ParentDirs, Root, Stat, Timespec, copy_data, path, sys};
use crate::chmod::Chmod;

/// How [`copy_tree`] copies.
pub struct CopyOptions<'a> {
    /// Owner of everything copied and of created parents (`--chown`); `None` keeps the source
    /// owner (created parents then belong to 0:0).
    pub owner: Option<(u32, u32)>,
    /// What `--chmod` makes of each copied file's, directory's and device's mode; `None` keeps
    /// the source's.
    pub chmod: Option<&'a Chmod>,
    /// Keep the source's atime/mtime (otherwise the copies get the current time).
    pub preserve_times: bool,
    /// Called with each path relative to `src_path` (`sub/file`) to decide whether to copy it.
    pub filter: &'a dyn Fn(&str) -> Filter,
    /// An existing directory below `dst_path` takes the source directory's owner, mode, xattrs
    /// and times, as a Dockerfile COPY does in BuildKit (fsutil's `copyDirectory` copies
    /// children with `overwriteTargetMetadata`); otherwise it keeps its own (an archive's
    /// extraction, whose directories follow untar's rules, and trowel's own copies).
    pub overwrite_dirs: bool,
    /// Told of every source entry the copy reads, and may refuse it (see [`Watch`]).
    pub watch: Option<&'a dyn Watch>,
    /// Looked at before every entry and between chunks of a file's data: a stopped build gives
    /// up a big copy there ([`FsError::Cancelled`]), leaving what it wrote to the caller.
    pub cancel: Option<&'a Cancel>,
}

impl<'a> CopyOptions<'a> {
    /// A copy as exact as it can be made (owners, modes and times kept; existing directories
    /// keep their own metadata; nothing watched): trowel's own copies of trees it made.
    pub fn exact(filter: &'a dyn Fn(&str) -> Filter) -> CopyOptions<'a> {
        CopyOptions {
            owner: None,
            chmod: None,
            preserve_times: true,
            filter,
            overwrite_dirs: false,
            watch: None,
            cancel: None,
        }
    }
}

/// What checks that a copy reads the source a caller expects: a COPY's cache key is made from
/// the context's files before the copy reads them, and anything may write to the context in
/// between (`engine/steps/copy/seen.rs`). Each call may refuse what it is shown with
/// [`FsError::SourceChanged`], which ends the copy. Paths are as the copy names them in the
/// source root (cleaned, `/`-rooted).
pub trait Watch {
    /// `path` is about to be copied; `st` is its lstat (a file below a filtered-out directory
    /// that the filter walks into, [`Filter::Descend`], is shown; that directory is not).
    fn entry(&self, path: &str, st: &Stat) -> Result<(), FsError>;
    /// The target symlink `path` was read to have.
    fn link(&self, path: &str, target: &str) -> Result<(), FsError>;
    /// Regular file `path` was copied: `before` is the open file's fstat before its content
    /// was read, `after` once its content, times and xattrs were.
    fn read(&self, path: &str, before: &Stat, after: &Stat) -> Result<(), FsError>;
}

/// What [`copy_tree`] does with one path below the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Copy,
    /// Skip it and everything below it.
    Skip,
    /// Skip it, but walk a directory anyway because something below may be copied (a
    /// `.dockerignore` `!` exception under an excluded directory): the directory is created only
    /// if something inside it is.
    Descend,
}

impl std::fmt::Debug for CopyOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyOptions")
            .field("owner", &self.owner)
            .field("chmod", &self.chmod)
            .field("preserve_times", &self.preserve_times)
            .finish_non_exhaustive()
    }
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Device nodes and FIFOs.
    pub specials: u64,
    /// Bytes of file content copied.
    pub bytes: u64,
}

/// Copies the file, symlink or directory at `src_path` in `src` to `dst_path` in `dst`.
///
/// - A directory is copied recursively and merged into an existing directory at `dst_path`
///   (an existing symlink to a directory, resolved inside `dst`, is merged into too, as with
///   merged-`/usr` images). With `opts.overwrite_dirs`, an existing directory below `dst_path`
///   takes the source's owner, mode, xattrs and times, as in BuildKit; `dst_path` itself keeps
///   its owner and mode and takes the source's times; one reached through a link keeps its own.
/// - Any other existing non-directory at a destination path is replaced; a directory in the
///   way of a non-directory is an error.
/// - Missing parents of `dst_path` are created with mode 0755 (an octal `opts.chmod`'s mode, as
///   BuildKit makes them), owned by `opts.owner` or 0:0.
pub fn copy_tree(
    src: &Root,
    src_path: &str,
    dst: &Root,
    dst_path: &str,
    opts: &CopyOptions<'_>,
) -> Result<CopyStats, FsError> {
    copy_tree_linking(src, src_path, dst, dst_path, opts, &mut HashMap::new())
}

/// Source (device, inode) → the first destination path written for it: files that are one
/// inode in the source are hard links in the destination.
pub type Links = HashMap<(u64, u64), String>;

/// [`copy_tree`] that recreates hard links to what earlier calls with the same `links` copied:
/// several top-level paths copied one by one (a debugger shell's changes) keep the links
/// between them.
pub fn copy_tree_linking(
    src: &Root,
    src_path: &str,
    dst: &Root,
    dst_path: &str,
    opts: &CopyOptions<'_>,
    links: &mut Links,
) -> Result<CopyStats, FsError> {
    let src_path = path::clean(src_path);
    let dst_path = path::clean(dst_path);
    let Some(st) = src.lstat(&src_path)? else {
        return Err(FsError::NotFound { path: src_path, root: src.host_path().display().to_string() });
    };
    let parent_owner = opts.owner.or_else(|| (crate::sandbox::userns::effective_ids().0 == 0).then_some((0, 0)));
    if dst_path != "/" {
        // An octal --chmod is the mode of the parents made too, as BuildKit's copy makes them
        // (fsutil's `MkdirAll(ensureDstPath, *ci.Mode)`, since fsutil#228).
        let parent_mode = opts.chmod.and_then(crate::chmod::Chmod::made_dir_mode).unwrap_or(0o755);
        dst.mkdir_all(path::parent(&dst_path), parent_mode, parent_owner)?;
    }
    let mut c = Copier {
        src,
        dst,
        opts,
        links: std::mem::take(links),
        stats: CopyStats::default(),
        dir_times: Vec::new(),
        src_dirs: ParentDirs::default(),
        dst_dirs: ParentDirs::default(),
        kernel: Cell::default(),
    };
    let copied = c.entry(&src_path, &dst_path, &st, "");
    *links = std::mem::take(&mut c.links);
    copied?;
    for (p, atime, mtime) in c.dir_times.iter().rev() {
        dst.set_times(p, *atime, *mtime)?;
    }
    Ok(c.stats)
}

/// Copies the host path `src` (a directory, file or symlink) as `dst`, everything kept (owner,
/// mode, times, xattrs): `copy_tree` between the two parent directories.
pub fn copy_as(src: &std::path::Path, dst: &std::path::Path) -> io::Result<CopyStats> {
    copy_as_cancellable(src, dst, None)
}

/// [`copy_as`] given up when `cancel` asks, as [`copy_tree`] is: the error then holds
/// [`FsError::Cancelled`] (see [`super::cancel::is_cancelled`]).
pub fn copy_as_cancellable(
    src: &std::path::Path,
    dst: &std::path::Path,
    cancel: Option<&Cancel>,
) -> io::Result<CopyStats> {
    let split = |p: &std::path::Path| -> io::Result<(Root, String)> {
        let parent = p.parent().ok_or_else(|| io::Error::other(format!("{} has no parent", p.display())))?;
        let name = p.file_name().ok_or_else(|| io::Error::other(format!("{} has no name", p.display())))?;
        Ok((Root::open(parent).map_err(io::Error::other)?, format!("/{}", name.to_string_lossy())))
    };
    let (src_root, src_name) = split(src)?;
    let (dst_root, dst_name) = split(dst)?;
    let all = |_: &str| Filter::Copy;
    let opts = CopyOptions { cancel, ..CopyOptions::exact(&all) };
    copy_tree(&src_root, &src_name, &dst_root, &dst_name, &opts).map_err(io::Error::other)
}

struct Copier<'a> {
    src: &'a Root,
    dst: &'a Root,
    opts: &'a CopyOptions<'a>,
    /// Source (dev, ino) → first destination path, to recreate hardlinks.
    links: Links,
    stats: CopyStats,
    /// Directory times, set after everything inside them is written.
    dir_times: Vec<(String, Timespec, Timespec)>,
    /// The directories last read from and written to, each resolved once for all the entries
    /// in it: a copy walks a directory's entries together, and resolving both parents again
    /// for every step of every file made most of a small file's cost (about 30 calls each).
    src_dirs: ParentDirs,
    dst_dirs: ParentDirs,
    /// How file data goes from the source's file system to the destination's.
    kernel: Cell<copy_data::Kernel>,
}

impl Copier<'_> {
    fn cancelled(&self) -> Result<(), FsError> {
        Cancel::check(self.opts.cancel)
    }

    fn entry(&mut self, sp: &str, dp: &str, st: &Stat, rel: &str) -> Result<(), FsError> {
        self.cancelled()?;
        if let Some(w) = self.opts.watch {
            w.entry(sp, st)?;
        }
        match st.file_type {
            FileType::Dir => self.dir(sp, dp, st, rel),
            FileType::File => self.file(sp, dp, st),
            FileType::Symlink => {
                let target = self.src.read_link(sp)?;
                if let Some(w) = self.opts.watch {
                    w.link(sp, &target)?;
                }
                self.clear_nondir(dp)?;
                self.dst.symlink(&target, dp)?;
                let (uid, gid) = self.opts.owner.unwrap_or((st.uid, st.gid));
                self.dst.set_owner(dp, uid, gid)?;
                self.finish_nondir(sp, dp, st)?;
                self.stats.symlinks += 1;
                Ok(())
            }
            FileType::CharDevice | FileType::BlockDevice | FileType::Fifo => {
                let kind = match st.file_type {
                    FileType::CharDevice => NodeKind::CharDevice,
                    FileType::BlockDevice => NodeKind::BlockDevice,
                    _ => NodeKind::Fifo,
                };
                self.clear_nondir(dp)?;
                self.dst.mknod(dp, kind, st.mode, st.rdev)?;
                self.owner_and_mode(dp, st)?;
                self.finish_nondir(sp, dp, st)?;
                self.stats.specials += 1;
                Ok(())
            }
            // Sockets cannot be copied meaningfully; Stat never reports Hardlink.
            FileType::Socket | FileType::Hardlink => Ok(()),
        }
    }

    fn dir(&mut self, sp: &str, dp: &str, st: &Stat, rel: &str) -> Result<(), FsError> {
        self.dir_inner(sp, dp, st, rel, false)
    }

    /// Copies a directory; with `lazy`, the destination directory is made only once a child is
    /// actually copied (see [`Filter::Descend`]).
    fn dir_inner(&mut self, sp: &str, dp: &str, st: &Stat, rel: &str, lazy: bool) -> Result<(), FsError> {
        if lazy && !self.copies_something_below(sp, rel)? {
            return Ok(());
        }
        let mut created = false;
        // With `overwrite_dirs`, an existing directory below the top of the copy (not merged
        // through a link) takes the source's metadata: `COPY --chown=1000 root/ /` makes an
        // existing /usr the source's mode and 1000's. One reached only through
        // `Filter::Descend` takes its mode alone (fsutil's `createParentDirs`).
        let mut overwrite = false;
        let target = match self.dst.lstat(dp)? {
            Some(d) if d.is_dir() => {
                overwrite = self.opts.overwrite_dirs && !rel.is_empty();
                dp.to_string()
            }
            Some(l) if l.file_type == FileType::Symlink && self.dst.stat(dp)?.is_some_and(|s| s.is_dir()) => {
                self.dst.resolve(dp)?
            }
            Some(_) => {
                self.dst.remove_all(dp)?;
                self.dst_dirs.forget();
                created = true;
                dp.to_string()
            }
            None => {
                created = true;
                dp.to_string()
            }
        };
        if created {
            self.dst.mkdir_all(&target, 0o700, None)?;
            self.owner_and_mode(&target, st)?;
            self.xattrs(sp, &target)?;
            self.stats.dirs += 1;
        } else if overwrite && lazy {
            self.dst.set_mode(&target, st.mode)?;
        } else if overwrite {
            self.owner_and_mode(&target, st)?;
            self.xattrs(sp, &target)?;
        }
        for name in self.src.read_dir(sp)? {
            let child_rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            let decision = (self.opts.filter)(&child_rel);
            if decision == Filter::Skip {
                continue;
            }
            let csp = path::join(sp, &name);
            let Some(cst) = self.src.lstat_in_dirs(&csp, &mut self.src_dirs)? else { continue };
            let cdp = path::join(&target, &name);
            match decision {
                Filter::Descend if cst.is_dir() => self.dir_inner(&csp, &cdp, &cst, &child_rel, true)?,
                Filter::Descend => {}
                _ => self.entry(&csp, &cdp, &cst, &child_rel)?,
            }
        }
        // The destination itself, when it existed, keeps its owner and mode but takes the
        // source's times, as fsutil restores them on it (`restoreFileTimestamp` with the
        // source's info).
        let top = self.opts.overwrite_dirs && rel.is_empty() && !created && target == dp;
        if (created || (overwrite && !lazy) || top) && self.opts.preserve_times {
            self.dir_times.push((target, st.atime, st.mtime));
        }
        Ok(())
    }

    /// Whether the filter lets anything below directory `sp` be copied.
    fn copies_something_below(&self, sp: &str, rel: &str) -> Result<bool, FsError> {
        for name in self.src.read_dir(sp)? {
            let child_rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            match (self.opts.filter)(&child_rel) {
                Filter::Skip => {}
                Filter::Copy => return Ok(true),
                Filter::Descend => {
                    let csp = path::join(sp, &name);
                    if self.src.lstat(&csp)?.is_some_and(|s| s.is_dir())
                        && self.copies_something_below(&csp, &child_rel)?
                    {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    fn file(&mut self, sp: &str, dp: &str, st: &Stat) -> Result<(), FsError> {
        if st.nlink > 1
            && let Some(first) = self.links.get(&(st.dev, st.ino)).cloned()
        {
            self.clear_nondir(dp)?;
            self.dst.hardlink(&first, dp)?;
            self.stats.hardlinks += 1;
            return Ok(());
        }
        let (from, fst) = self.src.open_file_nofollow_in(sp, &mut self.src_dirs)?;
        let mode = self.opts.chmod.map_or(fst.mode, |c| c.apply(fst.mode, false));
        // The usual case, nothing at `dp` yet, in one call; anything there is cleared first.
        let mut to = match self.dst.create_new_in(dp, mode, &mut self.dst_dirs)? {
            Some(to) => to,
            None => {
                self.clear_nondir(dp)?;
                self.dst.create_file(dp, mode)?
            }
        };
        let around = copy_data::Around {
            check: &|| Cancel::check(self.opts.cancel),
            err: &|e| self.dst.io_err("copy into", dp, e),
            how: &self.kernel,
        };
        self.stats.bytes += copy_data::copy_data(&from, &mut to, fst.size, &around)?;
        let (uid, gid) = self.opts.owner.unwrap_or((fst.uid, fst.gid));
        rustix::fs::fchown(&to, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)))
            .map_err(|e| self.dst.io_err("chown", dp, e))?;
        // After the chown, which clears setuid/setgid.
        rustix::fs::fchmod(&to, rustix::fs::Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| self.dst.io_err("chmod", dp, e))?;
        // Xattrs and times through the two open files, after the chown (which clears a
        // `security.capability`), as `finish_nondir` sets them by path.
        self.file_xattrs(&from, sp, &to, dp)?;
        if self.opts.preserve_times {
            let ts =
                rustix::fs::Timestamps { last_access: fst.atime.to_rustix(), last_modification: fst.mtime.to_rustix() };
            rustix::fs::futimens(&to, &ts).map_err(|e| self.dst.io_err("set times of", dp, e))?;
        }
        drop(to);
        if let Some(w) = self.opts.watch {
            // After the xattrs were read too: a change to any of it changes the file's ctime.
            let after = self.src.fstat(sp, &from)?;
            w.read(sp, &fst, &after)?;
        }
        if st.nlink > 1 {
            self.links.insert((st.dev, st.ino), dp.to_string());
        }
        self.stats.files += 1;
        Ok(())
    }

    /// Makes room for a non-directory at `dp`: an existing non-directory goes, a directory is
    /// an error (silently deleting a whole tree is never what a COPY meant).
    fn clear_nondir(&mut self, dp: &str) -> Result<(), FsError> {
        match self.dst.lstat(dp)? {
            Some(st) if st.is_dir() => Err(FsError::WrongType {
                path: dp.to_string(),
                root: self.dst.host_path().display().to_string(),
                reason: "is a directory; refusing to replace it with a non-directory".into(),
            }),
            Some(_) => {
                self.dst_dirs.forget();
                self.dst.remove_all(dp)
            }
            None => Ok(()),
        }
    }

    fn owner_and_mode(&self, dp: &str, st: &Stat) -> Result<(), FsError> {
        let (uid, gid) = self.opts.owner.unwrap_or((st.uid, st.gid));
        self.dst.set_owner(dp, uid, gid)?;
        self.dst.set_mode(dp, self.opts.chmod.map_or(st.mode, |c| c.apply(st.mode, st.is_dir())))
    }

    fn finish_nondir(&self, sp: &str, dp: &str, st: &Stat) -> Result<(), FsError> {
        if st.file_type != FileType::Symlink {
            self.xattrs(sp, dp)?;
        }
        if self.opts.preserve_times {
            self.dst.set_times(dp, st.atime, st.mtime)?;
        }
        Ok(())
    }

    /// [`Copier::xattrs`] of a regular file, read from and written to the open files.
    fn file_xattrs(&self, from: &File, sp: &str, to: &File, dp: &str) -> Result<(), FsError> {
        let all = sys::fxattrs(from.as_fd()).map_err(|e| self.src.io_err("read xattrs of", sp, e))?;
        for (name, value) in all {
            if !super::is_image_xattr(&name) {
                continue;
            }
            match rustix::fs::fsetxattr(to, OsStr::from_bytes(&name), &value, rustix::fs::XattrFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOTSUP) => {}
                Err(e) => return Err(self.dst.io_err("set xattr on", dp, e)),
            }
        }
        Ok(())
    }

    fn xattrs(&self, sp: &str, dp: &str) -> Result<(), FsError> {
        for (name, value) in self.src.xattrs(sp)? {
            if !super::is_image_xattr(&name) {
                continue;
            }
            let name = String::from_utf8_lossy(&name);
            match self.dst.set_xattr(dp, &name, &value) {
                Ok(()) => {}
                Err(e) if e.is_errno(libc::EOPNOTSUPP) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
