//! A content-addressed blob store on local disk (`<root>/sha256/<hex>`).
//!
//! Pulled base-image blobs, layers trowel writes, configs and manifests all live here, so the
//! push and every output (registry, docker-archive, OCI layout) read the same verified files.
//! Blobs are written to a temporary file in the same directory and renamed into place only once
//! their digest is known (and, when one was expected, checked): a crash never leaves a partial
//! blob under a digest name.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::follow::{Counting, Following, Follows, TailWriter};
use super::tap::BlobTap;
use crate::digest::{Digest, HashingWriter};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("blob store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    // Digests boxed here: a digest's text is inline (71 bytes), and an error that carried two
    // made every `Result` through the engine twice as large.
    #[error("blob digest mismatch: expected {expected}, got {actual} ({size} bytes)")]
    DigestMismatch { expected: Box<Digest>, actual: Box<Digest>, size: u64 },
    #[error("blob size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch { digest: Box<Digest>, expected: u64, actual: u64 },
    #[error("blob {0} is not in the local store")]
    Missing(Box<Digest>),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    /// Whether a committed blob is flushed to disk before it is renamed into place.
    durable: bool,
    /// Downloads under way that a reader may follow (`image/follow.rs`).
    follows: Arc<Follows>,
}

impl BlobStore {
    /// Opens (creating if needed) a store rooted at `root` that outlives the process (the base
    /// image cache dir): every blob is on disk before it gets its name, so a crash never
    /// leaves a named but truncated blob.
    pub fn open(root: impl Into<PathBuf>) -> Result<BlobStore, StoreError> {
        let dir = root.into().join("sha256");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(BlobStore { dir, durable: true, follows: Arc::default() })
    }

    /// Opens a store that lives only as long as one build (in its work dir): no fsync. A
    /// crash loses the build and the whole work dir with it (the next build sweeps it), so
    /// flushing each layer would only make every build wait for the disk: one journal commit
    /// per blob, and the whole of a large layer's writeback.
    pub fn open_scratch(root: impl Into<PathBuf>) -> Result<BlobStore, StoreError> {
        Ok(BlobStore { durable: false, ..BlobStore::open(root)? })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Size of a stored blob.
    pub fn size(&self, digest: &Digest) -> Result<u64, StoreError> {
        let p = self.path(digest);
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::Missing(Box::new(digest.clone()))),
            Err(e) => Err(StoreError::Io { path: p, source: e }),
        }
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let p = self.path(digest);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::Missing(Box::new(digest.clone()))
            } else {
                StoreError::Io { path: p.clone(), source: e }
            }
        })
    }

    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.path(digest);
        fs::read(&p).map_err(io_err(&p))
    }

    /// Stores a small in-memory blob (configs, manifests) and returns its digest.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let mut w = self.writer()?;
        w.write_all(bytes).map_err(io_err(&self.dir))?;
        w.commit(None)
    }

    /// A writer for a blob whose digest is computed while it is written.
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        let tmp = self.partial_file()?;
        Ok(self.writer_over(Counting::unfollowed(tmp), None))
    }

    /// A writer for a download of blob `digest`, which [`BlobStore::follow`] can read while it
    /// is written (`image/follow.rs`). Its commit must expect `digest`.
    pub fn writer_for(&self, digest: &Digest) -> Result<BlobWriter, StoreError> {
        let tmp = self.partial_file()?;
        let tail = self.follows.start(digest, tmp.as_file()).map_err(io_err(&self.dir))?;
        let counting = tail.counting(tmp);
        Ok(self.writer_over(counting, Some(tail)))
    }

    fn partial_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        tempfile::Builder::new().prefix(".partial-").tempfile_in(&self.dir).map_err(io_err(&self.dir))
    }

    fn writer_over(&self, file: Counting<tempfile::NamedTempFile>, tail: Option<TailWriter>) -> BlobWriter {
        BlobWriter {
            store: self.clone(),
            inner: HashingWriter::new(io::BufWriter::with_capacity(256 * 1024, file)),
            tap: None,
            tail,
        }
    }

    /// A reader of blob `digest` while a download of it ([`BlobStore::writer_for`]) is under
    /// way: its bytes as they are written, the end once the blob is verified and stored, an
    /// error if it never will be. `None` when nothing is downloading it (it may be stored).
    pub fn follow(&self, digest: &Digest) -> Option<Following> {
        self.follows.follow(digest)
    }

    /// Waits until a download starts or ends, or `limit` passes (for a reader waiting for a
    /// download to [`follow`](BlobStore::follow)).
    pub fn wait_for_downloads(&self, limit: std::time::Duration) {
        self.follows.wait(limit)
    }

    /// Re-hashes a stored blob and deletes it if it does not match its name.
    pub fn verify(&self, digest: &Digest) -> Result<bool, StoreError> {
        let f = self.open_blob(digest)?;
        let (actual, _) = crate::digest::digest_reader(io::BufReader::new(f)).map_err(io_err(&self.dir))?;
        if &actual != digest {
            let _ = fs::remove_file(self.path(digest));
            return Ok(false);
        }
        Ok(true)
    }
}

/// An in-progress blob. Dropping it without [`BlobWriter::commit`] deletes the partial file.
pub struct BlobWriter {
    store: BlobStore,
    inner: HashingWriter<io::BufWriter<Counting<tempfile::NamedTempFile>>>,
    tap: Option<BlobTap>,
    /// Its followers' end of it, for a download (dropped uncommitted: they fail).
    tail: Option<TailWriter>,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.inner.len()
    }

    /// Sends a copy of everything written from now on to `tap`.
    pub fn set_tap(&mut self, tap: BlobTap) {
        self.tap = Some(tap);
    }

    /// The tap, for its [`BlobTap::finish`] once the blob is whole.
    pub fn take_tap(&mut self) -> Option<BlobTap> {
        self.tap.take()
    }

    /// Finishes the blob: checks it against `expected` (if given), fsyncs (durable stores)
    /// and renames it into place. On a mismatch the partial file is removed and nothing is stored.
    pub fn commit(self, expected: Option<(&Digest, Option<u64>)>) -> Result<Digest, StoreError> {
        let (buf, digest, size) = self.inner.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| StoreError::Io { path: self.store.dir.clone(), source: e.into_error() })?
            .into_inner();
        if let Some((want, want_size)) = expected {
            if let Some(ws) = want_size
                && ws != size
            {
                return Err(StoreError::SizeMismatch { digest: Box::new(want.clone()), expected: ws, actual: size });
            }
            if want != &digest {
                return Err(StoreError::DigestMismatch {
                    expected: Box::new(want.clone()),
                    actual: Box::new(digest),
                    size,
                });
            }
        }
        if self.store.durable {
            tmp.as_file().sync_data().map_err(io_err(&self.store.dir))?;
        }
        let dest = self.store.path(&digest);
        tmp.persist(&dest).map_err(|e| StoreError::Io { path: dest.clone(), source: e.error })?;
        if let Some(t) = self.tail {
            t.committed();
        }
        Ok(digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(t) = &mut self.tap {
            t.push(&buf[..n]);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let d = s.put(b"{}").unwrap();
        assert_eq!(d, Digest::of(b"{}"));
        assert_eq!(s.read(&d).unwrap(), b"{}");
        assert!(s.verify(&d).unwrap());
    }

    #[test]
    fn mismatch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let mut w = s.writer().unwrap();
        w.write_all(b"abc").unwrap();
        let wrong = Digest::of(b"xyz");
        assert!(matches!(w.commit(Some((&wrong, None))), Err(StoreError::DigestMismatch { .. })));
        assert_eq!(fs::read_dir(dir.path().join("sha256")).unwrap().count(), 0);
    }

    #[test]
    fn corrupted_blob_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let d = s.put(b"good").unwrap();
        fs::write(s.path(&d), b"evil").unwrap();
        assert!(!s.verify(&d).unwrap());
        assert!(!s.contains(&d));
    }
}
