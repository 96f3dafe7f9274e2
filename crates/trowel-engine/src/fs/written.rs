//! The content hashes of the regular files an unpack wrote, for the root's first snapshot index
//! (issue 17).
//!
//! A `Full` snapshot index keeps a hash of every regular file's content (`snapshot_lazy.rs`,
//! `Content`), and a root unpacked into a plain directory (no unpacked-layer store to read a
//! base file's bytes from later) had its initial scan read every file back and hash it: all of
//! a Debian base's 116 MB, on both cores, right after the unpack, when nothing else can run. The
//! unpacker holds each file's bytes as it writes them, while it waits on the inflater anyway;
//! hashing them there and handing the scan the result leaves the scan a walk of metadata, and
//! the base is never read back (from the disk, once a pod's memory limit has pushed it out of the
//! page cache). Measured in bench/README.md ("A root's files hashed as they are unpacked"): the
//! root is ready a little sooner on a tmpfs, no sooner on a journaled ext4, where creating the
//! files is the bound.
//!
//! A hash is kept by inode with the size and ctime the file had once the unpacker was done with
//! it (content, owner, mode, times, xattrs), and the scan takes it only for the inode it finds
//! with that very size and ctime: a file changed afterwards, even linked again (a later layer's
//! hard link moves its ctime), is read as before. An inode number freed by a later layer and
//! given to a new file is recorded again when that file is written; one never written by the
//! unpacker (a directory, a link) is never asked for, as only regular files are hashed.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::Stat;
use super::snapshot_index::ns;

/// Most files kept: about 64 bytes each, so 8 MiB at most; the files of a bigger base past
/// this many are read back by the scan as before.
const MOST: usize = 1 << 17;

/// What an unpack records of each regular file it wrote (see the module comment).
#[derive(Debug, Default)]
pub struct WrittenContents {
    by_inode: Mutex<HashMap<u64, Written>>,
}

#[derive(Debug, Clone, Copy)]
struct Written {
    size: u64,
    /// Nanoseconds, as the index keeps times.
    ctime: i64,
    content: [u8; 16],
}

impl WrittenContents {
    /// Records `content` (from [`ContentHasher::finish`]) for the file open as `f`, whose
    /// writing is over: its inode, size and ctime as they are now.
    pub(crate) fn record(&self, f: &impl AsFd, content: [u8; 16]) {
        // A file that cannot be looked at is not recorded: the scan reads it. Its figures are
        // converted as the scan converts what it sees.
        let Some(st) = rustix::fs::fstat(f).ok().as_ref().and_then(Stat::from_raw) else { return };
        self.keep(st.ino, Written { size: st.size, ctime: ns(st.ctime), content });
    }

    /// Keeps `w` for `ino`, replacing what an earlier file with that inode number left (it was
    /// deleted, or the number would not be free); past [`MOST`] files, only that.
    fn keep(&self, ino: u64, w: Written) {
        let mut map = self.by_inode.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() < MOST || map.contains_key(&ino) {
            map.insert(ino, w);
        }
    }

    /// The content hash recorded for inode `ino` if it still has `size` and `ctime` (ns).
    pub(crate) fn get(&self, ino: u64, size: u64, ctime: i64) -> Option<[u8; 16]> {
        let map = self.by_inode.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&ino).filter(|w| w.size == size && w.ctime == ctime).map(|w| w.content)
    }

    /// How many files are recorded.
    pub fn len(&self) -> usize {
        self.by_inode.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The content hash the snapshot index keeps (the first 16 bytes of the content's SHA-256, as
/// `Walker::hash_content` makes it), fed as the bytes are written.
#[derive(Default)]
pub(crate) struct ContentHasher(Sha256);

impl ContentHasher {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn finish(self) -> [u8; 16] {
        let full = self.0.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// The hash of `bytes`, all at once.
    pub(crate) fn of(bytes: &[u8]) -> [u8; 16] {
        let mut h = ContentHasher::default();
        h.update(bytes);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_given_only_for_the_inode_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let w = WrittenContents::default();
        w.record(&f, ContentHasher::of(b"hello"));
        let st = Stat::from_raw(&rustix::fs::fstat(&f).unwrap()).unwrap();
        let (ino, ctime) = (st.ino, ns(st.ctime));
        assert_eq!(w.get(ino, 5, ctime), Some(ContentHasher::of(b"hello")));
        assert_eq!(w.get(ino, 6, ctime), None, "another size");
        assert_eq!(w.get(ino, 5, ctime + 1), None, "another ctime");
        assert_eq!(w.get(ino + 1, 5, ctime), None, "another inode");
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn past_the_most_files_only_a_reused_inode_number_is_kept_again() {
        let w = WrittenContents::default();
        let at = |content: u8| Written { size: 1, ctime: 7, content: [content; 16] };
        for ino in 0..MOST as u64 {
            w.keep(ino, at(1));
        }
        w.keep(MOST as u64, at(2));
        assert_eq!(w.get(MOST as u64, 1, 7), None, "a new inode past the limit is left to the scan");
        // A number freed and given to a new file must not keep the old file's hash.
        w.keep(5, at(3));
        assert_eq!(w.get(5, 1, 7), Some([3; 16]));
        assert_eq!(w.len(), MOST);
    }

    #[test]
    fn the_content_hash_is_the_truncated_sha256() {
        let full = Sha256::digest(b"abc");
        assert_eq!(&ContentHasher::of(b"abc")[..], &full[..16]);
    }
}
