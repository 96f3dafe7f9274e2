//! What a walk reports: whether a path's record changed under the snapshot mode, and the
//! change list it builds, sorted and with the second names of hard-linked files marked; and
//! the metadata comparisons behind both (`metadata_same`, `same_size`).

use std::collections::HashMap;
use std::time::Instant;

use super::{Meta, Node, Walker};
use crate::fs::snapshot::{Change, ChangeKind, Changes, PrevMeta, SnapshotMode};
use crate::fs::{FileType, path};

impl Walker<'_> {
    /// Whether two records of the same type (and, for directories, the same inode) differ
    /// under this walker's mode. See the module documentation of `snapshot` for the rules.
    pub(super) fn changed(&self, old: &Meta, new: &Meta) -> bool {
        match self.mode {
            SnapshotMode::Time => old.mtime != new.mtime,
            SnapshotMode::Redo => {
                old.mode != new.mode
                    || !same_size(old, new)
                    || old.mtime != new.mtime
                    || old.uid != new.uid
                    || old.gid != new.gid
            }
            SnapshotMode::Full => {
                if !metadata_same(old, new) || old.link != new.link {
                    return true;
                }
                if old.content.unknown() || new.content.unknown() {
                    // Neither can change without moving the ctime (`build_meta` carries them
                    // over while it stays); when it moved, an unknown one may differ.
                    return old.ctime != new.ctime;
                }
                old.xattrs != new.xattrs
                    || (new.kind == FileType::File && old.ctime != new.ctime && old.content != new.content)
            }
        }
    }

    /// Reports as deleted what `old` held under `dir` that `new` does not, looking into the
    /// directories both have (a re-created directory's earlier contents).
    pub(super) fn gone(&mut self, dir: &str, old: &[Node], new: &[Node]) {
        for o in old {
            match new.iter().find(|n| n.name == o.name) {
                None => self.deleted(dir, o),
                Some(n) if n.meta.kind == FileType::Dir && o.meta.kind == FileType::Dir => {
                    self.gone(&path::join(dir, &o.name), &o.children, &n.children)
                }
                Some(_) => {}
            }
        }
    }

    pub(super) fn deleted(&mut self, dir: &str, old: &Node) {
        let p = path::join(dir, &old.name);
        if self.ignore.is_ignored(&p) {
            return;
        }
        self.emit(&p, ChangeKind::Deleted, &old.meta, Some(&old.meta), false, None);
    }

    pub(super) fn emit(
        &mut self,
        p: &str,
        kind: ChangeKind,
        meta: &Meta,
        prev: Option<&Meta>,
        opaque: bool,
        devino: Option<(u64, u64)>,
    ) {
        if !self.record {
            return;
        }
        let previous = prev.map(|o| PrevMeta {
            file_type: o.kind,
            size: o.size,
            mode: o.mode,
            uid: o.uid,
            gid: o.gid,
            link_target: o.link.as_deref().map(str::to_string),
            mtime: Some(o.mtime.div_euclid(1_000_000_000)),
            digest: None,
        });
        let change = Change {
            path: p.to_string(),
            kind,
            file_type: meta.kind,
            // A directory's st_size is a filesystem detail, not content.
            size: if meta.kind == FileType::Dir { 0 } else { meta.size },
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime.div_euclid(1_000_000_000),
            link_target: meta.link.as_deref().map(str::to_string),
            digest: None,
            opaque,
            previous: previous.map(Box::new),
        };
        // Kept apart, not beside every change: the list is a step's biggest structure and a
        // file with several names is rare.
        if let Some(key) = devino {
            self.multi_named.push((change.path.clone(), key));
        }
        self.out.push(change);
    }

    /// Sorts the changes, marks second names of hardlinked files, and adds the timing.
    pub(crate) fn finish(self, start: Instant) -> Changes {
        let mut out = self.out;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        if !self.multi_named.is_empty() {
            let inode: HashMap<String, (u64, u64)> = self.multi_named.into_iter().collect();
            let mut first: HashMap<(u64, u64), String> = HashMap::new();
            for c in &mut out {
                let Some(key) = inode.get(&c.path) else { continue };
                match first.get(key) {
                    Some(target) => {
                        c.file_type = FileType::Hardlink;
                        c.link_target = Some(target.clone());
                    }
                    None => {
                        first.insert(*key, c.path.clone());
                    }
                }
            }
        }
        let mut stats = self.stats;
        stats.duration_ms = start.elapsed().as_millis() as u64;
        Changes { entries: out, stats, reads: Vec::new() }
    }
}

/// Whether the metadata a `Full` snapshot compares before xattrs and content is the same
/// (symlink targets aside).
pub(crate) fn metadata_same(old: &Meta, new: &Meta) -> bool {
    old.mode == new.mode
        && old.uid == new.uid
        && old.gid == new.gid
        && same_size(old, new)
        && old.mtime == new.mtime
        && old.ino == new.ino
}

/// Whether the sizes agree where a size means something. A directory's `st_size` is the file
/// system's own business, never an image's (its tar entry has none, and what it holds is
/// walked either way): tmpfs counts its entries, ext4 its blocks, and a directory overlayfs
/// copied up starts again in the upper directory. A RUN on a base without `/etc/hosts` has its
/// mount point made and removed there (mtime put back), and on a root mounted from the
/// unpacked-layer store that left `/etc` copied up with another size: the snapshot called it
/// modified, the layer carried it, and the image's digest depended on whether the store was used.
pub(super) fn same_size(old: &Meta, new: &Meta) -> bool {
    old.size == new.size || (old.kind == FileType::Dir && new.kind == FileType::Dir)
}
