//! Snapshots: what changed in a root since the previous snapshot.
//!
//! A [`Snapshotter`] keeps an index of the root (a tree of per-path metadata, no file contents)
//! and diffs the root against it: [`Snapshotter::snapshot`] walks everything (after a RUN),
//! [`Snapshotter::snapshot_paths`] only the given subtrees (after COPY or WORKDIR). Each diff
//! updates the index, so the next one is relative to this one.
//!
//! Change rules, per [`SnapshotMode`] (a path present in only one of index and disk is always
//! Added or Deleted; a type change is always Modified with the new type; a directory whose inode
//! changed was removed and re-created, so it is always reported `opaque` with all its current
//! contents Added):
//! - `Full`: type, permission bits (incl. setuid/setgid/sticky), uid, gid, size (not a
//!   directory's: see `snapshot_index/changes.rs`, `same_size`), mtime (ns),
//!   symlink target, inode and the set of xattrs are compared. When all of those are equal but
//!   a regular file's ctime changed, its content is hashed and compared with the hash taken at
//!   the previous snapshot, so a content change that preserved size and mtime is caught while a
//!   chmod-and-back or a touch to the same time is not a change. This mode hashes every regular
//!   file once at [`Snapshotter::scan_initial`] (but on a root mounted from the unpacked-layer
//!   store, [`Snapshotter::on_store`], only when a later snapshot needs a base file's hash, and
//!   on a root an unpack just made, [`Snapshotter::scan_initial_written`], only the files it
//!   did not hash as it wrote them), and
//!   new or changed files afterwards: [`Snapshotter::snapshot_deferred`] leaves those to the
//!   layer writer, which reads them anyway, and [`Snapshotter::settle`] takes its hashes.
//! - `Redo`: permission bits, size (not a directory's), mtime, uid and gid only (no hashing, no
//!   xattrs).
//! - `Time`: mtime only.
//!
//! Deletions are reported only at the top-most deleted path. Ignored paths are never walked;
//! sockets are skipped. Directories are walked in byte order of their names; the resulting
//! changes are sorted by path.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::snapshot_index::{Node, Walker};
use super::snapshot_lazy::FileRead;
use super::{Cancel, FileType, FsError, IgnoreList, Root, path};

/// Most threads an initial scan walks on: a walk is system calls on one file system, which
/// stops scaling after a few.
pub const SCAN_THREADS: usize = 4;

/// kaniko's `--snapshot-mode`; see the module documentation for the exact rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    Full,
    Redo,
    Time,
}

impl std::str::FromStr for SnapshotMode {
    type Err = String;
    /// `full`, `redo` or `time` (kaniko's `--snapshot-mode` values).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(SnapshotMode::Full),
            "redo" => Ok(SnapshotMode::Redo),
            "time" => Ok(SnapshotMode::Time),
            _ => Err(format!("invalid snapshot mode {s:?}: expected full, redo or time")),
        }
    }
}

impl std::fmt::Display for SnapshotMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SnapshotMode::Full => "full",
            SnapshotMode::Redo => "redo",
            SnapshotMode::Time => "time",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// Metadata of a path before a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrevMeta {
    pub file_type: FileType,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub link_target: Option<String>,
    /// Modification time, seconds (a directory whose entries changed differs only here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// Content digest of a regular file, when the engine was asked to find it (the debugger):
    /// the snapshot index keeps no digests, so it is looked up in the layers below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<crate::digest::Sum>,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Absolute image path, e.g. `/etc/x`.
    pub path: String,
    pub kind: ChangeKind,
    /// The current type (for `Deleted`: the type it had). `Hardlink` marks a regular file
    /// that is another name of an earlier file in the same change set (`link_target`).
    pub file_type: FileType,
    pub size: u64,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Symlink target, or for `Hardlink` the image path of the first name.
    pub link_target: Option<String>,
    /// Content digest of a regular file; filled by [`crate::fs::write_layer`].
    pub digest: Option<crate::digest::Sum>,
    /// A directory that was removed and re-created: lower-layer contents must not show through.
    pub opaque: bool,
    /// The metadata before, for `Modified` and `Deleted`.
    pub previous: Option<Box<PrevMeta>>,
}

/// Counters for one scan or snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStats {
    /// Paths stat'ed.
    pub files_walked: u64,
    /// Bytes of file content read to hash.
    pub bytes_hashed: u64,
    pub duration_ms: u64,
}

/// The result of a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Sorted by path.
    pub entries: Vec<Change>,
    pub stats: SnapshotStats,
    /// What [`crate::fs::write_layer`] read of regular files, for [`Snapshotter::settle`].
    #[serde(skip)]
    pub(crate) reads: Vec<FileRead>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Keeps the index of a root and reports what changed since the previous snapshot.
pub struct Snapshotter {
    root: Root,
    mode: SnapshotMode,
    ignore: IgnoreList,
    /// The root directory's own node; `None` before the first scan.
    index: Option<Node>,
    /// False on an overlay root (see [`Snapshotter::on_overlay`]).
    birth_times: bool,
    /// The lower layers of a root mounted from the store, top first ([`Snapshotter::on_store`]).
    lowers: Vec<Root>,
    /// Whether the last snapshot left files for [`Snapshotter::settle`] to hash.
    pending: bool,
    /// The upper directory of a root mounted from the store ([`Snapshotter::on_store`]).
    upper: Option<Root>,
    /// The files with several links the initial scan found, and the directories above them:
    /// with `upper`, always looked at (see `Walker::upper`).
    linked: std::collections::HashSet<String>,
}

impl std::fmt::Debug for Snapshotter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshotter")
            .field("root", &self.root)
            .field("mode", &self.mode)
            .field("ignore", &self.ignore)
            .field("indexed", &self.index.as_ref().map(Node::count))
            .finish()
    }
}

impl Snapshotter {
    pub fn new(root: Root, mode: SnapshotMode, ignore: IgnoreList) -> Self {
        Snapshotter {
            root,
            mode,
            ignore,
            index: None,
            birth_times: true,
            lowers: Vec::new(),
            pending: false,
            upper: None,
            linked: Default::default(),
        }
    }

    /// A snapshotter for a root that is an overlay mount whose inode numbers survive copy-up
    /// (all layers on one filesystem, or `xino`). There a directory a step only wrote into is
    /// copied up to the upper directory: same inode number, but the birth time of the new
    /// upper inode, which would make it look removed and re-created (an opaque directory with
    /// every child in the layer). The inode number alone tells a re-created directory apart:
    /// a new one is a new upper inode while the lower one still exists, so it cannot share it.
    pub fn on_overlay(root: Root, mode: SnapshotMode, ignore: IgnoreList) -> Self {
        Snapshotter { birth_times: false, ..Snapshotter::new(root, mode, ignore) }
    }

    /// [`Snapshotter::on_overlay`] for a root mounted from the unpacked-layer store, whose
    /// lower layers are the directories `lowers` (top first) and never change while it is
    /// mounted: the initial scan reads no file contents, a later snapshot reads a base file's
    /// from there when it needs them. `upper` is the mount's upper directory: a later full
    /// snapshot walks only the paths it holds (everything else is the unchanged lower layers'),
    /// so a RUN that writes ten files on a base of thousands costs ten stats, not thousands.
    pub fn on_store(
        root: Root,
        mode: SnapshotMode,
        ignore: IgnoreList,
        lowers: Vec<Root>,
        upper: Option<Root>,
    ) -> Self {
        Snapshotter { lowers, upper, ..Snapshotter::on_overlay(root, mode, ignore) }
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    fn walker(&self, record: bool, defer: bool) -> Walker<'_> {
        Walker::new(&self.root, self.mode, &self.ignore, record)
            .birth_times(self.birth_times)
            .lazy(defer, &self.lowers)
            .upper(self.upper.as_ref(), &self.linked)
    }

    pub fn mode(&self) -> SnapshotMode {
        self.mode
    }

    /// Paths in the index (the root included); 0 before the first scan.
    pub fn indexed_paths(&self) -> u64 {
        self.index.as_ref().map(Node::count).unwrap_or(0)
    }

    /// Indexes the root as it is now (after the base image is unpacked). Reports nothing.
    /// Walks on as many threads as the machine has cores, at most [`SCAN_THREADS`].
    pub fn scan_initial(&mut self) -> Result<SnapshotStats, FsError> {
        let cores = super::cores();
        self.scan_initial_on(cores.min(SCAN_THREADS))
    }

    /// [`Snapshotter::scan_initial`] of a root an unpack just made, taking the content hashes
    /// it recorded in `written` (`fs/written.rs`) instead of reading those files: what it
    /// records of a file is taken only for that inode with the size and ctime it left it with.
    pub fn scan_initial_written(&mut self, written: &crate::fs::WrittenContents) -> Result<SnapshotStats, FsError> {
        let cores = super::cores();
        self.scan(cores.min(SCAN_THREADS), Some(written))
    }

    /// [`Snapshotter::scan_initial`] on `threads` threads (1: this one only). The index is the
    /// same whatever the number.
    pub fn scan_initial_on(&mut self, threads: usize) -> Result<SnapshotStats, FsError> {
        self.scan(threads, None)
    }

    fn scan(&mut self, threads: usize, written: Option<&crate::fs::WrittenContents>) -> Result<SnapshotStats, FsError> {
        let start = Instant::now();
        let mut w = self.walker(false, false).written(written);
        let node = if threads > 1 { w.scan_root_parallel(threads)? } else { w.scan_root(None)? };
        let mut stats = w.stats;
        let multi_linked = std::mem::take(&mut w.multi_linked);
        let mut linked = std::collections::HashSet::new();
        for f in multi_linked {
            let mut p = f.as_str();
            while p != "/" && linked.insert(p.to_string()) {
                p = super::path::parent(p);
            }
        }
        self.linked = linked;
        self.pending = false;
        self.index = Some(node);
        stats.duration_ms = start.elapsed().as_millis() as u64;
        Ok(stats)
    }

    /// The index as bytes to keep under `key` (`fs/snapshot_saved.rs`), for
    /// [`Snapshotter::restore_initial`]; `None` before the first scan.
    pub fn saved_index(&self, key: &[u8]) -> Option<Vec<u8>> {
        let index = self.index.as_ref()?;
        // Sorted: the same root gives the same bytes.
        let mut linked: Vec<&str> = self.linked.iter().map(String::as_str).collect();
        linked.sort_unstable();
        Some(super::snapshot_saved::encode(key, index, &linked))
    }

    /// Takes as its initial index one that [`Snapshotter::saved_index`] kept under `key` after
    /// [`Snapshotter::scan_initial`] of a root that showed the very same files, instead of
    /// walking this one; the root directory's own metadata is read from this root. `key` must
    /// name everything the index depends on (`engine/root_store/`). As a last check, each
    /// entry of the root directory is compared with the index (a `stat` each): any difference,
    /// like bytes that are no index under `key`, makes this return false and take nothing, and
    /// the caller walks the root instead.
    pub fn restore_initial(&mut self, key: &[u8], bytes: &[u8]) -> Result<bool, FsError> {
        let Some((mut node, linked)) = super::snapshot_saved::decode(key, bytes) else { return Ok(false) };
        if !self.children_match(&node)? {
            return Ok(false);
        }
        node.meta = self.walker(false, false).root_meta()?;
        self.linked = linked.into_iter().collect();
        self.pending = false;
        self.index = Some(node);
        Ok(true)
    }

    /// [`Snapshotter::restore_initial`] for a root of the store whose lower entries are those
    /// of a kept index (`key`, `bytes`) and `added` more on top (the first `added` of the
    /// lowers given to [`Snapshotter::on_store`], which never change): the kept index is
    /// brought up to date by diffing only the paths those entries hold, each a few files
    /// where a walk of the root reads every directory of the base. Returns how many paths
    /// that looked at, or `None` when it took nothing (bytes that are no index under `key`,
    /// an entry holding a file with several links, which the initial scan alone records,
    /// entries holding so many paths that a walk costs less, or a root directory that is not
    /// then what the index says), and the caller walks the root.
    pub fn restore_extended(&mut self, key: &[u8], bytes: &[u8], added: usize) -> Result<Option<u64>, FsError> {
        if added == 0 || self.lowers.len() < added {
            return Ok(None);
        }
        let Some((mut node, linked)) = super::snapshot_saved::decode(key, bytes) else { return Ok(None) };
        let mut targets = Vec::new();
        for entry in &self.lowers[..added] {
            if !entry_paths(entry, "/", &mut targets)? {
                return Ok(None);
            }
        }
        // Each path is diffed from the root down (a few `statx` calls), a walk costs about one
        // per path: entries holding a good part of the root are walked with it instead.
        if targets.len().saturating_mul(EXTEND_COST) > node.count() as usize {
            return Ok(None);
        }
        node.meta = self.walker(false, false).root_meta()?;
        targets.sort();
        targets.dedup();
        // Not `self.walker`: its upper directory says nothing of what the new entries change.
        let mut w = Walker::new(&self.root, self.mode, &self.ignore, true)
            .birth_times(self.birth_times)
            .lazy(false, &self.lowers);
        let mut updated = Ok(());
        for t in targets.iter().filter(|t| !self.ignore.is_ignored(t)) {
            updated = w.diff_path(&mut node, t);
            if updated.is_err() {
                break;
            }
        }
        let looked_at = w.stats.files_walked;
        if updated.is_err() || !self.children_match(&node)? {
            return Ok(None);
        }
        self.linked = linked.into_iter().collect();
        self.pending = false;
        self.index = Some(node);
        Ok(Some(looked_at))
    }

    /// Whether each entry of the root directory that `node` lists is, by `lstat`, what it says.
    fn children_match(&self, node: &Node) -> Result<bool, FsError> {
        for child in &node.children {
            let Some(st) = self.root.lstat(&path::join("/", &child.name))? else { return Ok(false) };
            let m = &child.meta;
            let same = m.kind == st.file_type
                && (m.mode, m.uid, m.gid, m.size, m.ino) == (st.mode, st.uid, st.gid, st.size, st.ino)
                && (m.mtime, m.ctime) == (super::snapshot_index::ns(st.mtime), super::snapshot_index::ns(st.ctime));
            if !same {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Walks the whole root and reports every change since the previous snapshot (or since
    /// [`Snapshotter::scan_initial`]; without one, everything is Added).
    pub fn snapshot(&mut self) -> Result<Changes, FsError> {
        self.snapshot_impl(false, None)
    }

    /// [`Snapshotter::snapshot`] given up when `cancel` asks, as
    /// [`Snapshotter::snapshot_deferred`] is: for the walks a build makes of a tree it cannot
    /// tell the size of (a `--link` step's root).
    pub fn snapshot_cancellable(&mut self, cancel: Option<&Cancel>) -> Result<Changes, FsError> {
        self.snapshot_impl(false, cancel)
    }

    /// [`Snapshotter::snapshot`] for changes that go into a layer: the files it reports are
    /// not read here but by the layer writer; call [`Snapshotter::settle`] after writing it.
    /// `cancel` is looked at before every entry: a build stopped while a step's huge tree is
    /// walked gives the walk up ([`FsError::Cancelled`]; the index goes, as on any error).
    pub fn snapshot_deferred(&mut self, cancel: Option<&Cancel>) -> Result<Changes, FsError> {
        self.snapshot_impl(true, cancel)
    }

    fn snapshot_impl(&mut self, defer: bool, cancel: Option<&Cancel>) -> Result<Changes, FsError> {
        let start = Instant::now();
        // Without a previous index everything is reported as Added.
        let old = self.index.take();
        let mut w = self.walker(true, defer).cancel(cancel);
        let scanned = w.scan_root(old);
        let pending = w.pending;
        let changes = w.finish(start);
        self.pending = pending;
        match scanned {
            Ok(node) => self.index = Some(node),
            // The old index was consumed; force a clean rescan next time rather than diff
            // against a half-updated tree.
            Err(e) => return Err(e),
        }
        Ok(changes)
    }

    /// Gives the index the content hashes the last (deferred) snapshot left unread, from what
    /// [`crate::fs::write_layer`] read of its changes (else by reading the files now). Call it
    /// before anything changes the root again: a file left unread counts as changed whenever
    /// its ctime moves, which is never wrong but can make a later layer larger.
    pub fn settle(&mut self, changes: &Changes) -> Result<(), FsError> {
        if !std::mem::take(&mut self.pending) {
            return Ok(());
        }
        let Some(mut index) = self.index.take() else { return Ok(()) };
        let mut w = self.walker(false, false);
        let done = super::snapshot_lazy::settle(&mut w, &mut index, changes);
        self.index = Some(index);
        done
    }

    /// Diffs only the subtrees at `paths` (image paths; symlinks in their parents are
    /// followed inside the root). A final symlink is diffed as itself and, when it leads to a
    /// directory, that directory's subtree is diffed too. No full walk happens, and deletions
    /// are found only inside these subtrees. Ancestors of a path are compared too (a new
    /// parent directory makes the diff start there).
    pub fn snapshot_paths(&mut self, paths: &[String]) -> Result<Changes, FsError> {
        self.snapshot_paths_impl(paths, false, None)
    }

    /// [`Snapshotter::snapshot_paths`] given up when `cancel` asks (the index goes, as on any
    /// error): for what a layer laid over a root touched, as long to walk as the layer is big.
    pub fn snapshot_paths_cancellable(
        &mut self,
        paths: &[String],
        cancel: Option<&Cancel>,
    ) -> Result<Changes, FsError> {
        self.snapshot_paths_impl(paths, false, cancel)
    }

    /// [`Snapshotter::snapshot_paths`] leaving the files it reports to the layer writer, as
    /// [`Snapshotter::snapshot_deferred`] does, and given up as it is.
    pub fn snapshot_paths_deferred(&mut self, paths: &[String], cancel: Option<&Cancel>) -> Result<Changes, FsError> {
        self.snapshot_paths_impl(paths, true, cancel)
    }

    fn snapshot_paths_impl(
        &mut self,
        paths: &[String],
        defer: bool,
        cancel: Option<&Cancel>,
    ) -> Result<Changes, FsError> {
        let start = Instant::now();
        if self.index.is_none() {
            return self.snapshot_impl(defer, cancel);
        }
        let mut targets = Vec::new();
        for p in paths {
            path::check(p)?;
            let cleaned = path::clean(p);
            let target = if cleaned == "/" {
                cleaned
            } else {
                let parent = self.root.resolve(path::parent(&cleaned))?;
                path::join(&parent, path::file_name(&cleaned))
            };
            if self.ignore.is_ignored(&target) {
                continue;
            }
            // A symlink to a directory (COPY into `/app/` where `/app -> /srv/app`): the link
            // itself and the directory it leads to are both looked at.
            if target != "/" && self.root.lstat(&target)?.is_some_and(|st| st.file_type == FileType::Symlink) {
                let resolved = self.root.resolve(&target)?;
                if resolved != target
                    && !self.ignore.is_ignored(&resolved)
                    && self.root.lstat(&resolved)?.is_some_and(|st| st.is_dir())
                {
                    targets.push(resolved);
                }
            }
            targets.push(target);
        }
        targets.sort();
        targets.dedup();
        let mut kept: Vec<String> = Vec::new();
        for t in targets {
            if !kept.iter().any(|k| path::is_within(&t, k)) {
                kept.push(t);
            }
        }
        let mut index = self.index.take().expect("checked above");
        let mut w = self.walker(true, defer).cancel(cancel);
        for t in &kept {
            // On an error the index is left out: the next snapshot rescans.
            w.diff_path(&mut index, t)?;
        }
        let pending = w.pending;
        let changes = w.finish(start);
        self.pending = pending;
        self.index = Some(index);
        Ok(changes)
    }
}

/// How many times a path of the entries above a kept index costs, diffed on its own, what a
/// path of the root costs in a walk (see [`Snapshotter::restore_extended`]).
const EXTEND_COST: usize = 4;

/// The paths an entry of the unpacked-layer store (`entry`, an overlay lower directory) holds
/// below image directory `dir` that a diff must look at for the root to show them: every
/// file, link, device and whiteout, every directory it empties (opaque) and every directory it
/// holds nothing in; a directory with contents is looked at on the way to them. False when
/// it holds a file with several links (see [`Snapshotter::restore_extended`]).
fn entry_paths(entry: &Root, dir: &str, out: &mut Vec<String>) -> Result<bool, FsError> {
    for name in entry.read_dir(dir)? {
        let p = path::join(dir, &name);
        let Some(st) = entry.lstat(&p)? else { continue };
        match st.file_type {
            FileType::Dir => {
                if super::overlay::is_opaque(entry, &p)? {
                    out.push(p);
                    continue;
                }
                let before = out.len();
                if !entry_paths(entry, &p, out)? {
                    return Ok(false);
                }
                if out.len() == before {
                    out.push(p);
                }
            }
            FileType::File if st.nlink > 1 => return Ok(false),
            _ => out.push(p),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in [SnapshotMode::Full, SnapshotMode::Redo, SnapshotMode::Time] {
            assert_eq!(m.to_string().parse::<SnapshotMode>().unwrap(), m);
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
        }
        assert!("fast".parse::<SnapshotMode>().is_err());
    }

    #[test]
    fn changes_serialize_for_traces() {
        let c = Change {
            path: "/etc/x".into(),
            kind: ChangeKind::Modified,
            file_type: FileType::Symlink,
            size: 3,
            mode: 0o777,
            uid: 0,
            gid: 0,
            mtime: 1,
            link_target: Some("/y".into()),
            digest: None,
            opaque: false,
            previous: Some(Box::new(PrevMeta {
                file_type: FileType::File,
                size: 1,
                mode: 0o644,
                uid: 0,
                gid: 0,
                link_target: None,
                mtime: Some(7),
                digest: Some(crate::digest::Digest::of(b"x").into()),
            })),
        };
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"kind\":\"modified\"") && json.contains("\"file_type\":\"symlink\""), "{json}");
        assert_eq!(serde_json::from_str::<Change>(&json).unwrap(), c);
    }
}
