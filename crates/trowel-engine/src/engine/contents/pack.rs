//! Where the recorded file contents live during a build: one append-only file of byte strings,
//! found by their digest.
//!
//! A traced build remembers the content of every small text file a step wrote, to show it as
//! the "before" of a later step's diff. One blob file per content cost a file created, renamed
//! and later deleted for each of them: a RUN writing 20,000 small files spent longer on that
//! than on its own layer. Appended to one unlinked file (gone with the process, however it
//! ends) they cost a write each, and memory holds only each content's digest, offset and
//! length.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::digest::Digest;

/// The pack; clones share it (the lanes of a build for several platforms record into one).
#[derive(Clone)]
pub(crate) struct ContentPack {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    file: File,
    end: u64,
    /// Digest → (offset, length) in `file`.
    index: HashMap<Digest, (u64, usize)>,
}

impl ContentPack {
    /// An empty pack in `dir`, as a file without a name.
    pub(crate) fn create_in(dir: &Path) -> io::Result<ContentPack> {
        std::fs::create_dir_all(dir)?;
        let file = tempfile::tempfile_in(dir)?;
        Ok(ContentPack { inner: Arc::new(Mutex::new(Inner { file, end: 0, index: HashMap::new() })) })
    }

    /// Stores `bytes` (once per distinct content) and returns their digest.
    pub(crate) fn put(&self, bytes: &[u8]) -> io::Result<Digest> {
        let digest = Digest::of(bytes);
        let mut inner = self.inner.lock().map_err(|_| io::Error::other("content pack lock poisoned"))?;
        if inner.index.contains_key(&digest) {
            return Ok(digest);
        }
        let at = inner.end;
        inner.file.write_all_at(bytes, at)?;
        inner.end += bytes.len() as u64;
        inner.index.insert(digest.clone(), (at, bytes.len()));
        Ok(digest)
    }

    /// The bytes stored under `digest`.
    pub(crate) fn read(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        let inner = self.inner.lock().map_err(|_| io::Error::other("content pack lock poisoned"))?;
        let &(at, len) =
            inner.index.get(digest).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, digest.to_string()))?;
        let mut buf = vec![0; len];
        inner.file.read_exact_at(&mut buf, at)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_come_back_by_digest_once_each_and_clones_share_them() {
        let dir = tempfile::tempdir().unwrap();
        let pack = ContentPack::create_in(&dir.path().join("contents")).unwrap();
        let a = pack.put(b"file 0/0\n").unwrap();
        let b = pack.put(b"").unwrap();
        let c = pack.clone().put(b"another\n").unwrap();
        assert_eq!(pack.put(b"file 0/0\n").unwrap(), a);
        assert_eq!(a, Digest::of(b"file 0/0\n"));
        assert_eq!(pack.read(&a).unwrap(), b"file 0/0\n");
        assert_eq!(pack.read(&b).unwrap(), b"");
        assert_eq!(pack.read(&c).unwrap(), b"another\n");
        // Stored once: the second put of the same content added nothing.
        assert_eq!(pack.inner.lock().unwrap().end, 9 + 8);
        assert_eq!(pack.read(&Digest::of(b"never stored")).unwrap_err().kind(), io::ErrorKind::NotFound);
        // Nothing with a name is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path().join("contents")).unwrap().count(), 0);
    }
}
