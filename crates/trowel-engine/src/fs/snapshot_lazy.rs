//! The content and xattr hashes a snapshot does not read itself (issue 17).
//!
//! A `Full` snapshot looks at a regular file's content and xattrs only when everything else of
//! it is unchanged but its ctime moved ([`Content`]). Reading them at every
//! snapshot would read each new file twice (the layer writer reads it right after) and hash a
//! store-mounted root's whole base at every build. Instead:
//! - a file a snapshot reports anyway is read by the layer writer, which reports what it read
//!   ([`FileRead`]); [`settle`] puts that in the index, and reads itself only what the writer did
//!   not (a layer not written), while the file is still as the snapshot saw it;
//! - on a root mounted from the unpacked-layer store, the initial scan records only metadata of
//!   base files: their bytes are in the store's entries, which no build writes to. A later
//!   snapshot that needs a base file's hashes reads them from the top-most entry holding its
//!   path ([`Walker::read_lower`]), which is the file overlayfs showed: a layer above it holding
//!   the path in any form (a file, a whiteout, a non-directory parent) would have hidden it.
//!
//! Whatever cannot be read this way stays unknown, and an unknown file counts as changed as
//! soon as its ctime moves: a missed read costs a larger layer, never a missed change.

use std::collections::HashMap;
use std::hash::{Hash, Hasher as _};
use std::os::fd::AsFd;

use rustix::fs::OFlags;

use super::snapshot_index::{Meta, Node, Walker, ns};
use super::{FileType, FsError, Root, Stat, sys};
use crate::digest::Digest;

/// What the index knows of a regular file's content and xattrs (`Full` mode).
///
/// A snapshot needs them only to judge a file whose inode, size, mtime, mode and owners are
/// unchanged but whose ctime moved (a rewrite to the same size and time, an xattr change, a
/// chmod-and-back, an overlay copy-up). So they are read only when they cannot be had more
/// cheaply later: a new file's are taken from the layer writer, which reads it anyway
/// (`Pending` until [`super::Snapshotter::settle`]), and a store-mounted root's base files' from
/// the store's entries, which never change, when a snapshot first needs them (`Lower`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    /// Not a regular file, or not tracked in this mode.
    None,
    /// Truncated SHA-256 of the content; the node's `xattrs` is its xattr hash.
    Known([u8; 16]),
    /// Not read yet: the layer writer reports it. Unknown until then, so a later snapshot that
    /// needs it counts the file changed whenever its ctime moved (never misses a change).
    Pending,
    /// Not read: the file is one of the lower layers' of an overlay root, where both can be
    /// read when a snapshot needs them ([`Walker::read_lower`]).
    Lower,
}

impl Content {
    /// Whether content and xattrs are not known here.
    pub(crate) fn unknown(self) -> bool {
        matches!(self, Content::Pending | Content::Lower)
    }
}

/// The hash of an xattr list as the index keeps it (0: none).
pub(crate) fn xattr_hash(attrs: &sys::Xattrs) -> u64 {
    if attrs.is_empty() {
        return 0;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    attrs.hash(&mut h);
    h.finish() | 1
}

/// What the layer writer read of one regular file: the inode as it opened it, and the hashes
/// the snapshot index keeps. Which file it was is the change it was read for (its index in the
/// change set's entries), not a copy of the path: a COPY of 100,000 files has as many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    entry: u32,
    ino: u64,
    size: u64,
    mtime: i64,
    ctime: i64,
    xattrs: u64,
    content: [u8; 16],
}

impl FileRead {
    /// `xattrs`: the file's whole xattr list (before anything is left out of the layer).
    /// `entry`: the index of its change in the change set's entries.
    pub(crate) fn new(entry: usize, st: &Stat, xattrs: u64, digest: &Digest) -> FileRead {
        FileRead {
            entry: u32::try_from(entry).unwrap_or(u32::MAX),
            ino: st.ino,
            size: st.size,
            mtime: ns(st.mtime),
            ctime: ns(st.ctime),
            xattrs,
            content: truncated(digest),
        }
    }

    /// The image path it was read at: that of its change in `entries` (the change set's).
    pub(crate) fn path<'c>(&self, entries: &'c [super::Change]) -> Option<&'c str> {
        entries.get(self.entry as usize).map(|c| c.path.as_str())
    }

    /// Whether `st` (an lstat) shows this inode unchanged since it was read: what lets a
    /// `COPY --from`'s key take its digest (`engine/known_digests.rs`).
    pub(crate) fn is_of(&self, st: &Stat) -> bool {
        self.ino == st.ino && self.size == st.size && self.mtime == ns(st.mtime) && self.ctime == ns(st.ctime)
    }

    /// Whether this is the inode, unchanged, that the index recorded.
    fn matches(&self, m: &Meta) -> bool {
        self.ino == m.ino && self.size == m.size && self.mtime == m.mtime && self.ctime == m.ctime
    }
}

/// The first 16 bytes of a SHA-256 digest: what the index keeps of a content hash.
fn truncated(d: &Digest) -> [u8; 16] {
    let hex = d.hex().as_bytes();
    let nibble = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = (nibble(hex[2 * i]) << 4) | nibble(hex[2 * i + 1]);
    }
    out
}

/// The index node at image path `p`.
fn find<'n>(index: &'n mut Node, p: &str) -> Option<&'n mut Node> {
    let mut node = index;
    for c in super::path::components(p) {
        let ix = node.children.binary_search_by(|n| n.name.as_bytes().cmp(c.as_bytes())).ok()?;
        node = &mut node.children[ix];
    }
    Some(node)
}

/// Fills the hashes of the files of `changes` that `index` holds as `Pending` (what a deferred
/// snapshot reported without reading): from the layer writer's reads when it read the inode
/// the index recorded, else by reading the file now if it is still that inode. The changes are
/// where such files are found, not a list of their paths kept apart (a COPY of 100,000 files
/// has as many): a deferred snapshot reports every file it leaves pending, and one that is not
/// among `changes` stays unknown, which is never wrong (see the module's comment).
pub(crate) fn settle(walker: &mut Walker<'_>, index: &mut Node, changes: &super::Changes) -> Result<(), FsError> {
    let reads: HashMap<&str, &FileRead> =
        changes.reads.iter().filter_map(|r| Some((r.path(&changes.entries)?, r))).collect();
    let files = changes.entries.iter().filter(|c| matches!(c.file_type, FileType::File | FileType::Hardlink));
    for c in files {
        let p = c.path.as_str();
        let Some(node) = find(index, p) else { continue };
        if node.meta.content != Content::Pending {
            continue;
        }
        match reads.get(p) {
            Some(r) if r.matches(&node.meta) => {
                node.meta.xattrs = r.xattrs;
                node.meta.content = Content::Known(r.content);
            }
            _ => walker.read_now(p, &mut node.meta)?,
        }
    }
    Ok(())
}

/// Whether an open inode is the regular file `m` records (times, size, mode and owners).
fn same_file(st: &Stat, m: &Meta) -> bool {
    st.file_type == FileType::File
        && st.size == m.size
        && ns(st.mtime) == m.mtime
        && ns(st.ctime) == m.ctime
        && st.mode == m.mode
        && st.uid == m.uid
        && st.gid == m.gid
}

impl Walker<'_> {
    /// Reads the hashes of `p` in the root if it is still the inode `meta` records.
    fn read_now(&mut self, p: &str, meta: &mut Meta) -> Result<(), FsError> {
        let root: &Root = self.root();
        let (mut f, st) = match root.open_file_nofollow(p) {
            Ok(x) => x,
            // Gone or replaced since: it stays unknown.
            Err(_) => return Ok(()),
        };
        if st.ino != meta.ino || !same_file(&st, meta) {
            return Ok(());
        }
        let attrs = sys::fxattrs(f.as_fd()).map_err(|e| root.io_err("read xattrs of", p, e))?;
        let content = self.hash_content(&mut f, p)?;
        meta.xattrs = xattr_hash(&attrs);
        meta.content = Content::Known(content);
        Ok(())
    }

    /// Reads the hashes of base file `p` of an overlay root from its lower layers, into
    /// `meta` (its record from the initial scan); leaves them unknown (`Pending`) when the
    /// top-most layer holding `p` does not hold that very file.
    pub(crate) fn read_lower(&mut self, p: &str, meta: &mut Meta) -> Result<(), FsError> {
        meta.content = Content::Pending;
        let rel = p.trim_start_matches('/');
        for lower in self.lowers {
            let fd = match lower.open_exact(rel, OFlags::RDONLY | OFlags::NONBLOCK) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                // A whiteout, a symlink or a non-directory on the way: this layer hides the
                // path, so it is not where the scanned file came from.
                Err(_) => return Ok(()),
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| lower.io_err("stat", p, e))?;
            if !Stat::from_raw(&st).is_some_and(|st| same_file(&st, meta)) {
                return Ok(());
            }
            let mut f = std::fs::File::from(fd);
            let mut attrs = sys::fxattrs(f.as_fd()).map_err(|e| lower.io_err("read xattrs of", p, e))?;
            // overlayfs's own attributes on a layer's files are not shown in the mount.
            attrs.retain(|(n, _)| !n.starts_with(b"trusted.overlay.") && !n.starts_with(b"user.overlay."));
            let content = self.hash_content(&mut f, p)?;
            meta.xattrs = xattr_hash(&attrs);
            meta.content = Content::Known(content);
            return Ok(());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_truncated_to_its_first_bytes() {
        let d = Digest::of(b"x");
        let t = truncated(&d);
        let hex: String = t.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, d.hex()[..32]);
    }
}
