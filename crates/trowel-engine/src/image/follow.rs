//! Blobs read while they download: a download's partial file in the [`BlobStore`] can be
//! followed by a reader that gets its bytes as they reach the file, so a base layer is
//! unpacked while the rest of it is still arriving instead of after the whole blob is stored.
//!
//! Why: a cold build's first root waited for the whole base to download before unpacking a
//! byte of it; the two are of similar length (a Debian base on the bench's loopback registry:
//! about 110 ms of download, 600 ms of unpacking; over a real network the download is often
//! the longer), and overlapping them saves the shorter.
//!
//! What a follower may rely on, and what it may not:
//! - It never sees a byte that is not in the partial file, and it reaches the end of the
//!   stream only once the writer has *committed* the blob, which checks its size and digest.
//!   So a reader that read to the end read exactly the verified blob.
//! - Until then the bytes are unverified registry content. Whoever follows a blob must treat
//!   what it made from them as provisional, keep it out of anything shared (the unpacked-layer
//!   store commits an entry only after its unpack read to the end), and throw it away on any
//!   error. The unpacker is built for hostile layers, so unverified bytes reach nothing it does
//!   not already guard.
//! - It fails ([`Broken`]) as soon as the bytes it follows can no longer become the blob: the
//!   writer was dropped without committing (a download that failed or was stopped) or its
//!   commit found a mismatch. A download that restarts from the beginning does so with a new
//!   writer, so its follower fails too; one that resumes with a `Range` request keeps its
//!   writer, and its follower simply waits for the rest. A failed follower says nothing of the
//!   download itself: the caller waits for that and reads the stored blob again.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt as _;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::digest::Digest;

/// The downloads under way in one store, by blob digest.
#[derive(Default)]
pub(crate) struct Follows {
    tails: Mutex<HashMap<Digest, Arc<Tail>>>,
    /// Signalled whenever a tail is added or ends, for [`Follows::wait`].
    changed: Condvar,
}

impl std::fmt::Debug for Follows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follows").finish_non_exhaustive()
    }
}

impl Follows {
    /// Registers the partial file of a download of `digest` (replacing an earlier one's);
    /// `file` is the file the writer writes to.
    pub(crate) fn start(self: &Arc<Self>, digest: &Digest, file: &File) -> io::Result<TailWriter> {
        let tail = Arc::new(Tail {
            file: file.try_clone()?,
            state: Mutex::new(State { written: 0, end: None }),
            cond: Condvar::new(),
        });
        self.tails.lock().unwrap_or_else(|p| p.into_inner()).insert(digest.clone(), tail.clone());
        self.changed.notify_all();
        Ok(TailWriter { follows: self.clone(), digest: digest.clone(), tail, ended: false })
    }

    /// A reader of the download of `digest` under way, from its first byte; `None` when no
    /// download of it is writing.
    pub(crate) fn follow(&self, digest: &Digest) -> Option<Following> {
        let tail = self.tails.lock().unwrap_or_else(|p| p.into_inner()).get(digest).cloned()?;
        let file = tail.file.try_clone().ok()?;
        Some(Following { tail, file, pos: 0 })
    }

    /// Waits until a download starts or ends, or `limit` passes.
    pub(crate) fn wait(&self, limit: Duration) {
        let tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.changed.wait_timeout(tails, limit);
    }

    fn end(&self, digest: &Digest, tail: &Arc<Tail>) {
        let mut tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        if tails.get(digest).is_some_and(|t| Arc::ptr_eq(t, tail)) {
            tails.remove(digest);
        }
        drop(tails);
        self.changed.notify_all();
    }
}

/// One download's partial file, as its followers see it.
struct Tail {
    /// A second handle to the partial file: followers read it at their own offsets, and keep
    /// reading the same file once it is renamed to the blob's name.
    file: File,
    state: Mutex<State>,
    cond: Condvar,
}

struct State {
    /// Bytes in the file (written through to it, not buffered in front of it).
    written: u64,
    /// `Some(true)`: committed, the blob is whole and verified; `Some(false)`: it never will be.
    end: Option<bool>,
}

impl Tail {
    fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
        self.cond.notify_all();
    }
}

/// The writer's side of a tail: counts what reaches the file, and ends the tail when the blob
/// is committed ([`TailWriter::committed`]) or, when dropped without that, as broken.
pub(crate) struct TailWriter {
    follows: Arc<Follows>,
    digest: Digest,
    tail: Arc<Tail>,
    ended: bool,
}

impl TailWriter {
    /// A writer that passes everything to `inner` (the partial file) and counts it.
    pub(crate) fn counting<W: Write>(&self, inner: W) -> Counting<W> {
        Counting { inner, tail: Some(self.tail.clone()) }
    }

    /// The blob is stored under its digest: followers may read to the end.
    pub(crate) fn committed(mut self) {
        self.finish(true);
    }

    fn finish(&mut self, whole: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.tail.set(|s| s.end = Some(whole));
        self.follows.end(&self.digest, &self.tail);
    }
}

impl Drop for TailWriter {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// A writer in front of a partial file that tells its followers (if it has any) of every byte
/// written to it.
pub(crate) struct Counting<W> {
    inner: W,
    tail: Option<Arc<Tail>>,
}

impl<W> Counting<W> {
    /// A writer nobody follows.
    pub(crate) fn unfollowed(inner: W) -> Counting<W> {
        Counting { inner, tail: None }
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if n > 0
            && let Some(t) = &self.tail
        {
            t.set(|s| s.written += n as u64);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Why a follower stopped before the end: the bytes it followed will not become the blob.
#[derive(Debug, thiserror::Error)]
#[error("the download this layer was read from while it arrived ended without storing it")]
pub struct Broken;

/// A reader of a blob being downloaded: returns its bytes as they reach the file, end of
/// stream once it is committed, and [`Broken`] if it never will be.
pub struct Following {
    tail: Arc<Tail>,
    file: File,
    pos: u64,
}

/// How long a follower waits for news before it looks again. Every change wakes it; this only
/// bounds a wait whose wake-up was missed.
const RECHECK: Duration = Duration::from_millis(200);

impl Read for Following {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut state = self.tail.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.end == Some(false) {
                return Err(io::Error::other(Broken));
            }
            if self.pos < state.written {
                let n = (state.written - self.pos).min(buf.len() as u64) as usize;
                drop(state);
                let got = self.file.read_at(&mut buf[..n], self.pos)?;
                if got == 0 {
                    // The file is shorter than what was counted as written: it was truncated
                    // under us, which no writer of the store does.
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a downloading blob's file shrank"));
                }
                self.pos += got as u64;
                return Ok(got);
            }
            if state.end == Some(true) {
                return Ok(0);
            }
            state = self.tail.cond.wait_timeout(state, RECHECK).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::store::BlobStore;

    fn read_all(mut r: Following) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn a_follower_reads_what_arrives_and_ends_only_at_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let digest = Digest::of(&data);
        let mut w = store.writer_for(&digest).unwrap();
        w.write_all(&data[..1_000_000]).unwrap();
        w.flush().unwrap();
        let mut follower = store.follow(&digest).expect("a download is under way");
        // What was written is there at once, without waiting for the rest.
        let mut first = vec![0u8; 1_000_000];
        follower.read_exact(&mut first).unwrap();
        assert_eq!(first, data[..1_000_000]);
        let reader = std::thread::spawn(move || read_all(follower));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!reader.is_finished(), "the follower must wait for the commit, not stop at what is written");
        w.write_all(&data[1_000_000..]).unwrap();
        w.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!reader.is_finished(), "every byte is written but the blob is not committed yet");
        w.commit(Some((&digest, Some(data.len() as u64)))).unwrap();
        let rest = reader.join().unwrap().unwrap();
        assert_eq!(rest, data[1_000_000..]);
        assert!(store.follow(&digest).is_none(), "a stored blob is opened, not followed");
    }

    #[test]
    fn a_follower_fails_when_the_download_is_dropped_or_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let digest = Digest::of(b"the real blob");
        let mut w = store.writer_for(&digest).unwrap();
        w.write_all(b"the real").unwrap();
        w.flush().unwrap();
        let follower = store.follow(&digest).unwrap();
        let reader = std::thread::spawn(move || read_all(follower));
        drop(w);
        let err = reader.join().unwrap().unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<Broken>()), "{err}");

        let mut w = store.writer_for(&digest).unwrap();
        w.write_all(b"the fake blob").unwrap();
        let follower = store.follow(&digest).unwrap();
        assert!(w.commit(Some((&digest, None))).is_err());
        let err = read_all(follower).unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<Broken>()), "{err}");
        assert!(!store.contains(&digest));
    }

    #[test]
    fn a_restarted_download_breaks_the_follower_of_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let data = b"0123456789".repeat(1000);
        let digest = Digest::of(&data);
        let mut first = store.writer_for(&digest).unwrap();
        first.write_all(&data[..5000]).unwrap();
        first.flush().unwrap();
        let old = store.follow(&digest).unwrap();
        // A retry that could not resume starts a new writer; the first is dropped after it.
        let mut second = store.writer_for(&digest).unwrap();
        drop(first);
        let err = read_all(old).unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<Broken>()), "{err}");
        second.write_all(&data).unwrap();
        let new = store.follow(&digest).expect("the second download is followed");
        second.commit(Some((&digest, Some(data.len() as u64)))).unwrap();
        assert_eq!(read_all(new).unwrap(), data);
    }
}
