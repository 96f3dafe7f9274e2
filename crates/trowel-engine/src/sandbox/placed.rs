//! `RUN --mount` in container isolation, where there is no mount syscall: what would be mounted
//! is put in place before the command and taken away after it, leaving `/` exactly as it was
//! but for what the command itself wrote beside the mount targets.
//!
//! - Whatever the image has at a target is moved aside (renamed within its filesystem) and
//!   moved back afterwards; a target the image lacks is created, and removed again with the
//!   directories made for it unless the command put something in them.
//! - A cache directory ([`HostUse::Persist`]) is renamed into place and back when it is on the
//!   same filesystem; otherwise it is copied in and its new contents copied back out, replacing
//!   the old ones in one rename.
//! - Something trowel made for this run alone ([`HostUse::Consume`]: an ssh agent's socket, a
//!   scratch copy) is renamed into place and removed afterwards; a socket on another filesystem
//!   is reached through a symlink instead, which `connect(2)` follows.
//! - A bind mount's source ([`HostUse::Discard`]) is copied in, and the copy removed: writes
//!   are discarded, as with a mount.
//! - A tmpfs is an empty directory (mode 1777), removed with what it holds.
//! - What only a mount can enforce — a read-only mount refusing writes, a tmpfs its `size` — is
//!   checked once the command is done ([`Placed::breaches`], `placed_limits.rs`).
//! - A secret is a file written with its owner and mode and removed after the command.
//!
//! The directories whose entries this changes get their timestamps back when the command did
//! not change them itself, so the snapshot after the step sees nothing of all this.
//!
//! A stop of the build (the RUN's [`Stop`](super::Stop), as [`Cancel`]) cuts short the two
//! copies that can be long, as the chroot path's copies are cut (`fs/copy.rs`): a bind source
//! or a cache from another filesystem copied in (the partial copy is then taken away with the
//! rest, as for any failed placement), and a cache's contents copied back out (the partial
//! copy beside the cache goes; the cache keeps what it had before the stopped command). What
//! puts `/` back is never cut: the copy at a target removed, what the image had there renamed
//! back, the directories made for it removed, the swap of a cache's copy once it is whole. A
//! copy back given up or failed still lets all of that happen, so the next stage, or the
//! cleaning of `/`, finds the image's own tree. Not cut either: the read-only fingerprints and
//! the tmpfs sizes (`placed_limits.rs`), walks of metadata only, which decide whether a cache's
//! writes are kept.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Timespec, Timestamps};

use super::mounts::{HostUse, Mount, MountSource};
use super::placed_limits::{Fingerprint, bytes_used, read_only_breach, size_breach};
use crate::fs::Cancel;
use crate::fs::copy::copy_as_cancellable;

/// What is in place for one run; [`Placed::remove`] takes it all away again.
pub(super) struct Placed {
    items: Vec<Item>,
    /// Directories whose entries were changed here, with their times before and right after.
    dirs: Vec<DirTimes>,
    /// The build's stop, which the copies in and back out look at.
    cancel: Option<Cancel>,
}

struct Item {
    /// Where the mount is, as a path of `/`.
    target: PathBuf,
    /// Where what the image had at the target waits.
    aside: Option<PathBuf>,
    /// Directories made for the target, outermost first.
    made: Vec<PathBuf>,
    content: Content,
    watch: Watch,
    /// A read-only cache the command wrote to: its contents are dropped, not kept.
    drop_contents: bool,
}

/// What is checked once the command is done.
enum Watch {
    Nothing,
    /// A read-only mount: the tree as it was placed.
    ReadOnly(Fingerprint),
    /// A tmpfs with a size.
    Size(u64),
}

enum Content {
    /// Renamed in from here; renamed back afterwards.
    Moved(PathBuf),
    /// Copied in; its contents replace this directory's afterwards.
    CopiedBack(PathBuf),
    /// Made for the run (a copy, a file, a directory, a symlink): removed afterwards.
    Removable,
}

struct DirTimes {
    path: PathBuf,
    before: Timestamps,
    /// Its mtime once everything was in place: unchanged at the end means the command did not
    /// touch it.
    after: Option<Timespec>,
}

fn mtime(m: &fs::Metadata) -> Timespec {
    Timespec { tv_sec: m.mtime() as _, tv_nsec: m.mtime_nsec() as _ }
}

fn times(m: &fs::Metadata) -> Timestamps {
    Timestamps {
        last_access: Timespec { tv_sec: m.atime() as _, tv_nsec: m.atime_nsec() as _ },
        last_modification: mtime(m),
    }
}

fn context(what: String) -> impl FnOnce(io::Error) -> (String, io::Error) {
    move |e| (what, e)
}

impl Placed {
    /// Puts every mount in place, parents first. On failure what was placed is taken away
    /// again, and the error names the path.
    /// A copy in given up for `cancel` fails the same way (its error holds
    /// [`FsError::Cancelled`](crate::fs::FsError::Cancelled)).
    pub fn place(
        mounts: &[&Mount],
        aside_dir: Option<&Path>,
        cancel: Option<Cancel>,
    ) -> Result<Placed, (String, io::Error)> {
        let mut placed = Placed { items: Vec::new(), dirs: Vec::new(), cancel };
        for (i, m) in mounts.iter().enumerate() {
            if let Err(e) = placed.place_one(i, m, aside_dir) {
                // No command ran: every directory's times were changed here alone and come back
                // too (a placement given up for a stop leaves `/` as it found it).
                placed.note_times_after();
                let _ = placed.remove();
                return Err(e);
            }
        }
        placed.note_times_after();
        for i in 0..placed.items.len() {
            if let Watch::ReadOnly(_) = placed.items[i].watch {
                let print = Fingerprint::of(&placed.items[i].target, &placed.nested(i));
                placed.items[i].watch = Watch::ReadOnly(print);
            }
        }
        Ok(placed)
    }

    /// Notes the directories' times once this is done changing them.
    fn note_times_after(&mut self) {
        for d in &mut self.dirs {
            d.after = fs::symlink_metadata(&d.path).ok().map(|m| mtime(&m));
        }
    }

    /// The targets of other mounts inside item `i`'s: theirs, not its.
    fn nested(&self, i: usize) -> Vec<PathBuf> {
        let top = &self.items[i].target;
        self.items.iter().map(|o| o.target.clone()).filter(|t| t != top && t.starts_with(top)).collect()
    }

    /// Notes the times of a directory before this changes its entries.
    fn touch_dir(&mut self, dir: &Path) {
        if self.dirs.iter().any(|d| d.path == dir) {
            return;
        }
        if let Ok(m) = fs::symlink_metadata(dir) {
            self.dirs.push(DirTimes { path: dir.to_path_buf(), before: times(&m), after: None });
        }
    }

    fn place_one(&mut self, i: usize, m: &Mount, aside_dir: Option<&Path>) -> Result<(), (String, io::Error)> {
        let (target, made) = self.resolve(&m.target)?;
        let parent = target.parent().unwrap_or(Path::new("/")).to_path_buf();
        self.touch_dir(&parent);
        let mut item = Item {
            target: target.clone(),
            aside: None,
            made,
            content: Content::Removable,
            watch: Watch::Nothing,
            drop_contents: false,
        };
        if fs::symlink_metadata(&target).is_ok() {
            let aside = self.put_aside(&target, i, aside_dir)?;
            item.aside = Some(aside);
        }
        // From here on, `remove` can undo this item.
        self.items.push(item);
        let content = match &m.source {
            MountSource::Host { path, usage } => self.place_host(path, *usage, &target)?,
            MountSource::Tmpfs { .. } => {
                fs::DirBuilder::new()
                    .mode(0o1777)
                    .create(&target)
                    .map_err(context(format!("create {}", target.display())))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(0o1777))
                    .map_err(context(format!("chmod {}", target.display())))?;
                Content::Removable
            }
            MountSource::File { content, mode, uid, gid } => {
                write_file(&target, &content.0, *mode, *uid, *gid)
                    .map_err(context(format!("write {}", target.display())))?;
                Content::Removable
            }
            MountSource::Overlay { .. } => {
                let e = io::Error::new(io::ErrorKind::Unsupported, "overlays need a mount");
                return Err((format!("mount on {}", target.display()), e));
            }
        };
        let watch = match &m.source {
            // A socket (an ssh agent's) is only connected to.
            MountSource::Host { usage, .. } if m.readonly && *usage != HostUse::Consume => {
                // Read once every mount is in place (see `place`).
                Watch::ReadOnly(Fingerprint::default())
            }
            MountSource::Tmpfs { size: Some(size) } => Watch::Size(*size),
            _ => Watch::Nothing,
        };
        if let Some(last) = self.items.last_mut() {
            last.content = content;
            last.watch = watch;
        }
        Ok(())
    }

    /// What the command did that the mounts it had would have refused (a write to a read-only
    /// mount, a tmpfs over its size), one message each. Call it once the command is done and
    /// before [`remove`](Self::remove): a read-only cache that was written to then has its
    /// contents dropped instead of kept.
    pub fn breaches(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..self.items.len() {
            let nested = self.nested(i);
            let item = &mut self.items[i];
            match &item.watch {
                Watch::Nothing => {}
                Watch::ReadOnly(before) => {
                    let changed = before.changed(&Fingerprint::of(&item.target, &nested));
                    if !changed.is_empty() {
                        let is_cache = matches!(item.content, Content::Moved(_) | Content::CopiedBack(_));
                        out.push(read_only_breach(&item.target, &changed, is_cache));
                        item.drop_contents = is_cache;
                    }
                }
                Watch::Size(size) => {
                    let used = bytes_used(&item.target, &nested);
                    if used > *size {
                        out.push(size_breach(&item.target, used, *size));
                    }
                }
            }
        }
        out
    }

    /// The target as a path of `/` with its existing directories' symlinks followed (as a mount
    /// would follow them), and the directories made for it.
    fn resolve(&mut self, target: &str) -> Result<(PathBuf, Vec<PathBuf>), (String, io::Error)> {
        let mut existing = PathBuf::from("/");
        let comps: Vec<&str> = target.split('/').filter(|c| !c.is_empty()).collect();
        let mut made = Vec::new();
        for (n, c) in comps.iter().enumerate() {
            let next = existing.join(c);
            let last = n + 1 == comps.len();
            match fs::metadata(&next) {
                Ok(meta) if meta.is_dir() && !last => {
                    existing = fs::canonicalize(&next).map_err(context(format!("resolve {}", next.display())))?;
                }
                Ok(_) if last => {
                    // An existing target (or a symlink to one) is replaced where it really is.
                    let real = fs::canonicalize(&next).unwrap_or(next);
                    return Ok((real, made));
                }
                Ok(_) => {
                    let e = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
                    return Err((format!("mount target {target}: {}", next.display()), e));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && last => {
                    // A dangling symlink at the target is put aside like any other entry.
                    return Ok((next, made));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if fs::symlink_metadata(&next).is_ok() {
                        let e = io::Error::new(io::ErrorKind::NotFound, "a symlink that leads nowhere");
                        return Err((format!("mount target {target}: {}", next.display()), e));
                    }
                    self.touch_dir(&existing);
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&next)
                        .map_err(context(format!("create {}", next.display())))?;
                    fs::set_permissions(&next, fs::Permissions::from_mode(0o755))
                        .map_err(context(format!("chmod {}", next.display())))?;
                    made.push(next.clone());
                    existing = next;
                }
                Err(e) => return Err((format!("mount target {target}: {}", next.display()), e)),
            }
        }
        Ok((existing, made))
    }

    /// Renames what is at `target` out of the way: into `aside_dir` when it is on the same
    /// filesystem, else beside the target.
    fn put_aside(&mut self, target: &Path, i: usize, aside_dir: Option<&Path>) -> Result<PathBuf, (String, io::Error)> {
        let name = format!(".trowel-mount-aside-{}-{i}", std::process::id());
        if let Some(dir) = aside_dir {
            let to = dir.join(&name);
            if fs::rename(target, &to).is_ok() {
                return Ok(to);
            }
        }
        let to = target.with_file_name(&name);
        fs::rename(target, &to).map_err(context(format!("move {} aside", target.display())))?;
        Ok(to)
    }

    fn place_host(&mut self, source: &Path, usage: HostUse, target: &Path) -> Result<Content, (String, io::Error)> {
        let what = || format!("put {} at {}", source.display(), target.display());
        if matches!(usage, HostUse::Persist | HostUse::Consume) {
            if let Some(p) = source.parent() {
                self.touch_dir(p);
            }
            match fs::rename(source, target) {
                Ok(()) if usage == HostUse::Persist => return Ok(Content::Moved(source.to_path_buf())),
                Ok(()) => return Ok(Content::Removable),
                Err(e) if e.raw_os_error() != Some(libc::EXDEV) => return Err((what(), e)),
                Err(_) => {}
            }
            let meta = fs::symlink_metadata(source).map_err(context(what()))?;
            if usage == HostUse::Consume && meta.file_type().is_socket_like() {
                std::os::unix::fs::symlink(source, target).map_err(context(what()))?;
                return Ok(Content::Removable);
            }
        }
        // Given up for a stop, the partial copy is the item's (still `Removable`): `place`
        // takes it away with everything placed before it.
        copy_as_cancellable(source, target, self.cancel.as_ref()).map(drop).map_err(context(what()))?;
        Ok(match usage {
            HostUse::Persist => Content::CopiedBack(source.to_path_buf()),
            HostUse::Discard | HostUse::Consume => Content::Removable,
        })
    }

    /// Takes everything away again, newest first, and gives untouched directories their times
    /// back. Returns the first failure after trying everything.
    pub fn remove(&mut self) -> Result<(), (String, io::Error)> {
        let untouched: Vec<bool> = self
            .dirs
            .iter()
            .map(|d| d.after.is_some() && fs::symlink_metadata(&d.path).ok().map(|m| mtime(&m)) == d.after)
            .collect();
        let mut first: Option<(String, io::Error)> = None;
        for item in std::mem::take(&mut self.items).into_iter().rev() {
            if let Err(e) = take_away(&item, self.cancel.as_ref()) {
                first.get_or_insert(e);
            }
        }
        for (d, untouched) in std::mem::take(&mut self.dirs).into_iter().zip(untouched).rev() {
            if untouched {
                let _ =
                    rustix::fs::utimensat(rustix::fs::CWD, &d.path, &d.before, rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

fn take_away(item: &Item, cancel: Option<&Cancel>) -> Result<(), (String, io::Error)> {
    let t = &item.target;
    // A command that removed the target itself (a mount point could not be removed) emptied
    // the cache: it comes back empty rather than not at all.
    if matches!(item.content, Content::Moved(_) | Content::CopiedBack(_)) && fs::symlink_metadata(t).is_err() {
        fs::DirBuilder::new().mode(0o755).create(t).map_err(context(format!("re-create {}", t.display())))?;
    }
    // A copy back given up for a stop (or failed) is reported last: `/` is put back first.
    let mut copied = Ok(());
    match &item.content {
        Content::Moved(home) => {
            fs::rename(t, home).map_err(context(format!("move {} back to {}", t.display(), home.display())))?;
            if item.drop_contents {
                empty_dir(home).map_err(context(format!("empty {}", home.display())))?;
            }
        }
        Content::CopiedBack(home) => {
            // A read-only cache written to (`drop_contents`) was never touched: only the copy goes.
            if !item.drop_contents {
                copied = copy_back(t, home, cancel).map_err(context(format!(
                    "copy {} back to {}",
                    t.display(),
                    home.display()
                )));
            }
            crate::fs::remove::remove_tree(t).map_err(context(format!("remove {}", t.display())))?;
        }
        Content::Removable => crate::fs::remove::remove_tree(t).map_err(context(format!("remove {}", t.display())))?,
    }
    if let Some(aside) = &item.aside {
        fs::rename(aside, t).map_err(context(format!("put {} back", t.display())))?;
    }
    for d in item.made.iter().rev() {
        // Kept when the command wrote into it: that is the command's own change.
        match fs::remove_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTEMPTY) => {}
            Err(e) => return Err((format!("remove {}", d.display()), e)),
        }
    }
    copied
}

/// Removes everything in `dir`, keeping `dir` itself (its owner and mode are the cache's).
fn empty_dir(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        crate::fs::remove::remove_tree(&e?.path())?;
    }
    Ok(())
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}

impl SocketLike for fs::FileType {
    fn is_socket_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_socket(self)
    }
}

/// Replaces the contents of `home` (a cache directory on another filesystem) with `from`'s: a
/// fresh copy beside it, then two renames, so a crash leaves the old or the new contents. The
/// copy is given up when `cancel` asks: the partial one is removed and `home` keeps what it had;
/// once the copy is whole, the swap is not cut.
fn copy_back(from: &Path, home: &Path, cancel: Option<&Cancel>) -> io::Result<()> {
    let name = home.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let fresh = home.with_file_name(format!(".{name}.new"));
    let old = home.with_file_name(format!(".{name}.old"));
    crate::fs::remove::remove_tree(&fresh)?;
    crate::fs::remove::remove_tree(&old)?;
    if let Err(e) = copy_as_cancellable(from, &fresh, cancel) {
        let _ = crate::fs::remove::remove_tree(&fresh);
        return Err(e);
    }
    fs::rename(home, &old)?;
    fs::rename(&fresh, home)?;
    crate::fs::remove::remove_tree(&old)
}

fn write_file(path: &Path, content: &[u8], mode: u32, uid: u32, gid: u32) -> io::Result<()> {
    let mut f =
        fs::OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path)?;
    f.write_all(content)?;
    std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(test)]
#[path = "placed_tests.rs"]
mod tests;
