//! The snapshot index and the walker that diffs a root against it.
//!
//! The index is a tree mirroring the root: each directory node holds its children sorted by
//! name bytes, so a directory is diffed by merging its sorted listing with the sorted old
//! children, with no path hashing and no global map. A node costs 136 bytes plus its
//! name; no file contents are kept (only a 128-bit content hash in `Full` mode, and not even
//! that for a file whose hash nobody has needed yet: see [`Content`]).
//!
//! Beside it: `parallel.rs`, the first scan of a root on several threads, and `changes.rs`,
//! what a walk reports (whether a record changed under the mode, and the change list).

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{Mode, OFlags};

use super::snapshot::{ChangeKind, SnapshotMode, SnapshotStats};
use super::snapshot_lazy::{Content, xattr_hash};
use super::{FileType, FsError, IgnoreList, Root, Stat, path, sys};

mod changes;

pub(crate) use changes::metadata_same;
mod parallel;

use parallel::Split;

/// Recorded metadata of one path.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) kind: FileType,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) size: u64,
    /// Times as nanoseconds since the epoch (saturating; 8 bytes instead of 16 each).
    pub(crate) mtime: i64,
    pub(crate) ctime: i64,
    pub(crate) ino: u64,
    /// Birth time where the filesystem has one (0 otherwise): with the inode number it
    /// tells a re-created directory from the old one even when the inode number was reused.
    pub(crate) birth: i64,
    /// Hash of the sorted xattr list (0: none, or not tracked in this mode; meaningless while
    /// `content` is `Pending` or `Lower`).
    pub(crate) xattrs: u64,
    pub(crate) content: Content,
    pub(crate) link: Option<Box<str>>,
}

/// One path in the index; `children` (sorted by name) only for directories.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) name: Box<str>,
    pub(crate) meta: Meta,
    pub(crate) children: Vec<Node>,
}

impl Node {
    /// Number of paths in this subtree, this node included.
    pub(crate) fn count(&self) -> u64 {
        1 + self.children.iter().map(Node::count).sum::<u64>()
    }
}

/// A timestamp as nanoseconds since the epoch, saturating outside ±292 years.
pub(crate) fn ns(t: super::Timespec) -> i64 {
    t.sec.saturating_mul(1_000_000_000).saturating_add(i64::from(t.nsec))
}

/// One diff pass over (part of) a root.
pub(crate) struct Walker<'a> {
    root: &'a Root,
    mode: SnapshotMode,
    ignore: &'a IgnoreList,
    /// False for the initial scan, which only builds the index.
    record: bool,
    out: Vec<crate::fs::Change>,
    /// The inode of each changed file with more than one name (few), by path: `finish` marks
    /// the second names as hardlinks.
    multi_named: Vec<(String, (u64, u64))>,
    pub(crate) stats: SnapshotStats,
    buf: Vec<u8>,
    /// Whether birth times tell a re-created directory from the one it replaces (see
    /// [`Snapshotter::on_overlay`](super::Snapshotter::on_overlay)).
    birth: bool,
    /// Leave the hashes of files that are new or changed in a way metadata shows to the layer
    /// writer (`Content::Pending`).
    defer: bool,
    /// The lower layers of an overlay root, top first: an initial scan leaves its files'
    /// hashes to them (`Content::Lower`).
    pub(crate) lowers: &'a [Root],
    /// Whether this walk left a file `Pending`.
    pub(crate) pending: bool,
    /// The upper directory of an overlay root whose lower layers never change while it is
    /// mounted: a later snapshot then descends only into the names the upper directory holds.
    upper: Option<&'a Root>,
    /// With `upper`: the lower files with more than one link at the initial scan, and every
    /// directory above one (see [`Walker::upper`]).
    linked: Option<&'a std::collections::HashSet<String>>,
    /// Files with more than one link the initial scan saw (a recording walk keeps none).
    pub(crate) multi_linked: Vec<String>,
    /// A parallel initial scan this walker is one worker of (`parallel.rs`): the directories it
    /// meets near the top are handed to it instead of walked here.
    split: Option<&'a Split>,
    /// Looked at before every entry (see [`Walker::cancel`]).
    cancel: Option<&'a crate::fs::Cancel>,
    /// The content hashes of the files the unpack that made this root wrote: an initial scan
    /// takes a file's from there instead of reading it (`fs/written.rs`).
    written: Option<&'a crate::fs::WrittenContents>,
}

/// Where a guided walk stands in the upper directory (see [`Walker::upper`]).
#[derive(Clone, Copy)]
enum Upper<'f> {
    /// The directory's counterpart in the upper directory.
    Dir(BorrowedFd<'f>),
    /// The upper directory has none: every name in it is the lower layers'.
    Absent,
}

enum UpperOwned {
    Dir(OwnedFd),
    Absent,
}

impl UpperOwned {
    fn borrow(&self) -> Upper<'_> {
        match self {
            UpperOwned::Dir(fd) => Upper::Dir(fd.as_fd()),
            UpperOwned::Absent => Upper::Absent,
        }
    }
}

impl<'a> Walker<'a> {
    pub(crate) fn new(root: &'a Root, mode: SnapshotMode, ignore: &'a IgnoreList, record: bool) -> Walker<'a> {
        Walker {
            root,
            mode,
            ignore,
            record,
            out: Vec::new(),
            multi_named: Vec::new(),
            stats: SnapshotStats::default(),
            buf: Vec::new(),
            birth: true,
            defer: false,
            lowers: &[],
            pending: false,
            upper: None,
            linked: None,
            multi_linked: Vec::new(),
            split: None,
            cancel: None,
            written: None,
        }
    }

    /// A walk given up before its next entry ([`FsError::Cancelled`]) once `cancel` says so:
    /// a step's snapshot of a tree of millions of files in a stopped build.
    pub(crate) fn cancel(mut self, cancel: Option<&'a crate::fs::Cancel>) -> Walker<'a> {
        self.cancel = cancel;
        self
    }

    /// See the `written` field.
    pub(crate) fn written(mut self, written: Option<&'a crate::fs::WrittenContents>) -> Walker<'a> {
        self.written = written;
        self
    }

    /// See the `upper` field. Everything a step did to such a root is in its upper directory:
    /// a new or changed file is there, a deleted lower file leaves a whiteout there, a renamed
    /// or re-created directory is a new directory there, and a file that was only ever in the
    /// upper directory leaves its parent there when it goes. A name of a directory that is not
    /// in the upper directory is therefore the lower layers' own, unchanged since the previous
    /// snapshot (which saw the same lower layers), and is neither stat'ed nor descended into.
    ///
    /// Save one case: with overlayfs's inode index (`index=on`), writing to one name of a lower
    /// file with several links copies up that name only, and the other names show the copied
    /// inode from where they are. Those names (`linked`, from the initial scan) are always
    /// looked at, and the directories above them always descended into.
    pub(crate) fn upper(
        mut self,
        upper: Option<&'a Root>,
        linked: &'a std::collections::HashSet<String>,
    ) -> Walker<'a> {
        self.upper = upper;
        self.linked = Some(linked);
        self
    }

    pub(crate) fn birth_times(mut self, use_them: bool) -> Walker<'a> {
        self.birth = use_them;
        self
    }

    /// See the `defer` and `lowers` fields.
    pub(crate) fn lazy(mut self, defer: bool, lowers: &'a [Root]) -> Walker<'a> {
        self.defer = defer;
        self.lowers = lowers;
        self
    }

    pub(crate) fn root(&self) -> &'a Root {
        self.root
    }

    fn err(&self, op: &'static str, p: &str, e: impl Into<io::Error>) -> FsError {
        self.root.io_err(op, p, e)
    }

    fn convert(&self, st: &rustix::fs::Statx, p: &str) -> Result<(Stat, i64), FsError> {
        let birth = |b: Option<super::Timespec>| b.filter(|_| self.birth).map(ns).unwrap_or(0);
        Stat::from_statx(st).map(|(s, b)| (s, birth(b))).ok_or_else(|| FsError::WrongType {
            path: p.to_string(),
            root: self.root.host_path().display().to_string(),
            reason: "unknown file type".into(),
        })
    }

    /// Diffs the whole root against `old` (its root node) and returns the new root node.
    pub(crate) fn scan_root(&mut self, old: Option<Node>) -> Result<Node, FsError> {
        let fd =
            self.root.open_in_root("", OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| self.err("open", "/", e))?;
        let meta = self.root_dir_meta(fd.as_fd(), old.as_ref().map(|o| &o.meta))?;
        // Only a diff against an index of this same mount can trust the upper directory.
        let upper = match (self.upper, &old) {
            (Some(u), Some(_)) => {
                Some(u.open_in_root("", OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| u.io_err("open", "/", e))?)
            }
            _ => None,
        };
        let old = old.map(|o| o.children).unwrap_or_default();
        let children = self.diff_children(fd.as_fd(), upper.as_ref().map(|u| Upper::Dir(u.as_fd())), "/", old)?;
        Ok(Node { name: "".into(), meta, children })
    }

    /// The root directory's own metadata as an index records it, nothing below it.
    pub(crate) fn root_meta(&mut self) -> Result<Meta, FsError> {
        let fd =
            self.root.open_in_root("", OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| self.err("open", "/", e))?;
        self.root_dir_meta(fd.as_fd(), None)
    }

    fn root_dir_meta(&mut self, fd: BorrowedFd<'_>, old: Option<&Meta>) -> Result<Meta, FsError> {
        let st = sys::statx_nofollow(fd, b"").map_err(|e| self.err("stat", "/", e))?;
        let st = self.convert(&st, "/")?;
        self.stats.files_walked += 1;
        self.build_meta(fd, b".", "/", &st, FileType::Dir, old)
    }

    /// Diffs the subtree at `target` (absolute, cleaned, parents resolved), descending the
    /// index along its ancestors as long as they are unchanged directories.
    pub(crate) fn diff_path(&mut self, root_node: &mut Node, target: &str) -> Result<(), FsError> {
        if target == "/" {
            let old = std::mem::take(&mut root_node.children);
            let old_root = Node { name: "".into(), meta: root_node.meta.clone(), children: old };
            *root_node = self.scan_root(Some(old_root))?;
            return Ok(());
        }
        let comps: Vec<&str> = path::components(target).collect();
        let mut dirfd: OwnedFd =
            self.root.open_in_root("", OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| self.err("open", "/", e))?;
        let mut node = root_node;
        let mut cur = "/".to_string();
        for (i, c) in comps.iter().enumerate() {
            let child = path::join(&cur, c);
            if i + 1 < comps.len() {
                let disk = match sys::statx_nofollow(dirfd.as_fd(), c.as_bytes()) {
                    Ok(st) => Some(self.convert(&st, &child)?),
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
                    Err(e) => return Err(self.err("lstat", &child, e)),
                };
                let pos = node.children.binary_search_by(|n| n.name.as_bytes().cmp(c.as_bytes()));
                if let (Some((st, birth)), Ok(ix)) = (disk, pos)
                    && st.file_type == FileType::Dir
                    && node.children[ix].meta.kind == FileType::Dir
                    && node.children[ix].meta.ino == st.ino
                    && node.children[ix].meta.birth == birth
                {
                    self.stats.files_walked += 1;
                    let entry = &mut node.children[ix];
                    let meta = self.build_meta(
                        dirfd.as_fd(),
                        c.as_bytes(),
                        &child,
                        &(st, birth),
                        FileType::Dir,
                        Some(&entry.meta),
                    )?;
                    if self.changed(&entry.meta, &meta) {
                        self.emit(&child, ChangeKind::Modified, &meta, Some(&entry.meta), false, None);
                    }
                    entry.meta = meta;
                    dirfd = sys::open_dir_nofollow(dirfd.as_fd(), OsStr::new(c))
                        .map_err(|e| self.err("open", &child, e))?;
                    node = entry;
                    cur = child;
                    continue;
                }
            }
            // The first component that is not an unchanged directory: diff it as a subtree.
            let pos = node.children.binary_search_by(|n| n.name.as_bytes().cmp(c.as_bytes()));
            let old = pos.ok().map(|ix| node.children.remove(ix));
            if let Some(new) = self.diff_entry(dirfd.as_fd(), None, &cur, c.as_bytes(), old)? {
                let at = node.children.binary_search_by(|n| n.name.as_bytes().cmp(c.as_bytes())).unwrap_or_else(|i| i);
                node.children.insert(at, new);
            }
            return Ok(());
        }
        Ok(())
    }

    /// Merges the sorted listing of directory `dirfd` (image path `dir`) with its old children.
    /// With `upper` (the same directory in an overlay root's upper directory, see
    /// [`Walker::upper`]), an old child whose name the upper directory lacks is kept as it was.
    fn diff_children(
        &mut self,
        dirfd: BorrowedFd<'_>,
        upper: Option<Upper<'_>>,
        dir: &str,
        old: Vec<Node>,
    ) -> Result<Vec<Node>, FsError> {
        let names = sys::read_dir_fd(dirfd).map_err(|e| self.err("read directory", dir, e))?;
        let in_upper = match upper {
            Some(Upper::Dir(u)) => {
                Some(sys::read_dir_fd(u).map_err(|e| self.err("read the upper directory of", dir, e))?)
            }
            Some(Upper::Absent) => Some(Vec::new()),
            None => None,
        };
        let mut old = old.into_iter().peekable();
        let mut out = Vec::with_capacity(names.len());
        for dn in names {
            while let Some(o) = old.peek()
                && o.name.as_bytes() < dn.name.as_slice()
            {
                let o = old.next().expect("peeked");
                self.deleted(dir, &o);
            }
            let matching = match old.peek() {
                Some(o) if o.name.as_bytes() == dn.name.as_slice() => old.next(),
                _ => None,
            };
            if matching.is_some()
                && let Some(ups) = &in_upper
                && ups.binary_search_by(|u| u.name.as_slice().cmp(&dn.name)).is_err()
                && !self.linked.is_some_and(|l| {
                    !l.is_empty() && std::str::from_utf8(&dn.name).is_ok_and(|n| l.contains(&path::join(dir, n)))
                })
            {
                // The lower layers' own name, as the previous snapshot saw it.
                out.extend(matching);
                continue;
            }
            if let Some(n) = self.diff_entry(dirfd, upper, dir, &dn.name, matching)? {
                out.push(n);
            }
        }
        for o in old {
            self.deleted(dir, &o);
        }
        Ok(out)
    }

    /// Diffs one name of directory `dirfd` against its old node; returns the new node (None
    /// when it no longer exists, is ignored or is a socket).
    fn diff_entry(
        &mut self,
        dirfd: BorrowedFd<'_>,
        upper: Option<Upper<'_>>,
        dir: &str,
        name: &[u8],
        old: Option<Node>,
    ) -> Result<Option<Node>, FsError> {
        let name_str = std::str::from_utf8(name).map_err(|_| FsError::NonUtf8Name {
            parent: dir.to_string(),
            root: self.root.host_path().display().to_string(),
        })?;
        crate::fs::Cancel::check(self.cancel)?;
        let p = path::join(dir, name_str);
        if self.ignore.is_ignored(&p) {
            return Ok(None);
        }
        let st = match sys::statx_nofollow(dirfd, name) {
            Ok(st) => self.convert(&st, &p)?,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                if let Some(o) = &old {
                    self.deleted(dir, o);
                }
                return Ok(None);
            }
            Err(e) => return Err(self.err("lstat", &p, e)),
        };
        self.stats.files_walked += 1;
        let kind = match st.0.file_type {
            FileType::Socket => {
                if let Some(o) = &old {
                    self.deleted(dir, o);
                }
                return Ok(None);
            }
            k => k,
        };
        let meta = self.build_meta(dirfd, name, &p, &st, kind, old.as_ref().map(|o| &o.meta))?;
        let devino = (kind == FileType::File && st.0.nlink > 1).then_some((st.0.dev, st.0.ino));
        // Only the initial scan's are kept (`Snapshotter::scan_initial`).
        if devino.is_some() && !self.record {
            self.multi_linked.push(p.clone());
        }
        let mut children = Vec::new();
        match old {
            None => {
                self.emit(&p, ChangeKind::Added, &meta, None, false, devino);
                if kind == FileType::Dir {
                    match self.split.filter(|s| s.takes(&p)) {
                        Some(split) => self.hand_out(split, dirfd, name, &p)?,
                        None => children = self.walk_dir(dirfd, None, name, &p, Vec::new())?,
                    }
                }
            }
            Some(o) if o.meta.kind != kind => {
                self.emit(&p, ChangeKind::Modified, &meta, Some(&o.meta), false, devino);
                // A directory replaced (by a file, a link): what it held is deleted, as for a
                // re-created one. Its replacement hides it in the layer (no whiteouts).
                if o.meta.kind == FileType::Dir {
                    self.gone(&p, &o.children, &[]);
                }
                if kind == FileType::Dir {
                    children = self.walk_dir(dirfd, None, name, &p, Vec::new())?;
                }
            }
            Some(o) if kind == FileType::Dir => {
                if o.meta.ino != meta.ino || o.meta.birth != meta.birth {
                    // Removed and re-created: nothing below it survives from lower layers.
                    self.emit(&p, ChangeKind::Modified, &meta, Some(&o.meta), true, None);
                    children = self.walk_dir(dirfd, None, name, &p, Vec::new())?;
                    // What it held and holds no more is deleted, as a viewer must show it; the
                    // layer's opaque marker already hides it (its writer adds no whiteouts).
                    self.gone(&p, &o.children, &children);
                } else {
                    if self.changed(&o.meta, &meta) {
                        self.emit(&p, ChangeKind::Modified, &meta, Some(&o.meta), false, None);
                    }
                    // The same directory: its upper counterpart, if it has one, guides the walk.
                    let up = upper.map(|u| match u {
                        Upper::Dir(u) => sys::open_dir_nofollow(u, OsStr::from_bytes(name))
                            .map_or(UpperOwned::Absent, UpperOwned::Dir),
                        Upper::Absent => UpperOwned::Absent,
                    });
                    children = self.walk_dir(dirfd, up, name, &p, o.children)?;
                }
            }
            Some(mut o) => {
                if o.meta.content == Content::Lower && metadata_same(&o.meta, &meta) && o.meta.ctime != meta.ctime {
                    // Only its ctime moved: what the store's entry holds decides.
                    self.read_lower(&p, &mut o.meta)?;
                }
                if self.changed(&o.meta, &meta) {
                    self.emit(&p, ChangeKind::Modified, &meta, Some(&o.meta), false, devino);
                }
            }
        }
        Ok(Some(Node { name: name_str.into(), meta, children }))
    }

    fn walk_dir(
        &mut self,
        dirfd: BorrowedFd<'_>,
        upper: Option<UpperOwned>,
        name: &[u8],
        p: &str,
        old: Vec<Node>,
    ) -> Result<Vec<Node>, FsError> {
        let fd = match sys::open_dir_nofollow(dirfd, OsStr::from_bytes(name)) {
            Ok(fd) => fd,
            // Replaced by a non-directory since the stat: the next snapshot sees it.
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) || e.raw_os_error() == Some(libc::ELOOP) => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(self.err("open directory", p, e)),
        };
        self.diff_children(fd.as_fd(), upper.as_ref().map(UpperOwned::borrow), p, old)
    }

    /// The metadata to record for `name`; reuses the old xattr and content hashes when the
    /// inode and its ctime are unchanged (neither can change without touching ctime).
    fn build_meta(
        &mut self,
        dirfd: BorrowedFd<'_>,
        name: &[u8],
        p: &str,
        st: &(Stat, i64),
        kind: FileType,
        old: Option<&Meta>,
    ) -> Result<Meta, FsError> {
        let (st, birth) = st;
        let mut m = Meta {
            kind,
            mode: st.mode,
            uid: st.uid,
            gid: st.gid,
            size: st.size,
            mtime: ns(st.mtime),
            ctime: ns(st.ctime),
            ino: st.ino,
            birth: *birth,
            xattrs: 0,
            content: Content::None,
            link: None,
        };
        if kind == FileType::Symlink {
            let t = rustix::fs::readlinkat(dirfd, OsStr::from_bytes(name), Vec::new())
                .map_err(|e| self.err("read link", p, e))?;
            m.link = Some(String::from_utf8_lossy(t.to_bytes()).into());
        }
        if self.mode != SnapshotMode::Full {
            return Ok(m);
        }
        let same_inode = old.filter(|o| {
            o.kind == kind && o.ino == m.ino && o.ctime == m.ctime && o.size == m.size && o.mtime == m.mtime
        });
        if let Some(o) = same_inode {
            m.xattrs = o.xattrs;
            m.content = o.content;
            return Ok(m);
        }
        if kind == FileType::File {
            if !self.record && !self.lowers.is_empty() {
                m.content = Content::Lower;
                return Ok(m);
            }
            // Reported whatever its content: the layer writer reads it and reports the hashes.
            if self.record && self.defer && old.is_none_or(|o| o.kind != kind || !metadata_same(o, &m)) {
                m.content = Content::Pending;
                self.pending = true;
                return Ok(m);
            }
        }
        // A content hash the unpack recorded for this very inode (`fs/written.rs`).
        let known = self.written.filter(|_| kind == FileType::File).and_then(|w| w.get(m.ino, m.size, m.ctime));
        // A regular file is opened once for both its xattrs and its content; other types, and
        // a file whose content is known, go through the /proc path of their directory (the
        // first cannot be opened safely, the second need not be).
        let file = if kind == FileType::File && known.is_none() {
            let fd = rustix::fs::openat(
                dirfd,
                OsStr::from_bytes(name),
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.err("open", p, e))?;
            Some(std::fs::File::from(fd))
        } else {
            None
        };
        let attrs = match &file {
            Some(f) => sys::fxattrs(f.as_fd()),
            None => sys::xattrs_at(dirfd, name),
        }
        .map_err(|e| self.err("read xattrs of", p, e))?;
        m.xattrs = xattr_hash(&attrs);
        if let Some(content) = known {
            m.content = Content::Known(content);
        } else if let Some(mut f) = file {
            m.content = Content::Known(self.hash_content(&mut f, p)?);
        }
        Ok(m)
    }

    pub(crate) fn hash_content(&mut self, f: &mut std::fs::File, p: &str) -> Result<[u8; 16], FsError> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; 256 * 1024];
        }
        let mut h = crate::fs::written::ContentHasher::default();
        loop {
            let n = match f.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err("read", p, e)),
            };
            h.update(&self.buf[..n]);
            self.stats.bytes_hashed += n as u64;
        }
        Ok(h.finish())
    }
}

#[cfg(test)]
mod tests;
