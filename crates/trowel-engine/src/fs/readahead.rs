//! A reader that runs its source on another thread, optionally hashing what it produces.
//!
//! Unpacking a gzip layer does three kinds of work on each buffer: inflating it (CPU), hashing
//! the result (the diff_id, CPU) and creating the files it holds (system calls, the file
//! system's journal). Inflating and hashing on a second thread, one bounded channel of buffers
//! ahead, lets them go on while the applier creates files, on a machine with two cores: the
//! applier's thread is left with nothing but parsing the tar and the system calls. Memory stays
//! fixed: at most [`DEPTH`] + 2 buffers of [`BUF`] bytes exist, handed back and forth (a fresh
//! 256 KiB buffer per read would be zeroed, and often faulted in, every time).

use std::io::{self, Read};
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::digest::{Digest, Hasher};

/// Bytes per buffer handed over.
const BUF: usize = 256 * 1024;
/// Buffers that may wait in the channel.
const DEPTH: usize = 4;

/// What the source thread sends.
enum Msg {
    Data(Vec<u8>),
    /// The source failed; nothing follows.
    Failed(io::Error),
    /// The source ended; with the digest and length of everything sent when hashing.
    End(Option<(Digest, u64)>),
}

/// Reads what a source thread produced, in order. An error of the source is returned once,
/// after the data before it. Dropping the reader stops the source thread at its next buffer.
pub struct Readahead {
    rx: Option<mpsc::Receiver<Msg>>,
    /// Empty buffers going back to the source thread.
    spare: mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    digest: Option<(Digest, u64)>,
    thread: Option<JoinHandle<()>>,
}

impl Readahead {
    /// Starts reading `src` on a new thread. Fails only when no thread can be started.
    pub fn new(src: Box<dyn Read + Send>) -> io::Result<Readahead> {
        Readahead::start(src, false)
    }

    /// Like [`Readahead::new`], and the source thread also hashes every byte it produces:
    /// [`Readahead::digest`] gives the result once the reader has returned end of stream.
    pub fn hashing(src: Box<dyn Read + Send>) -> io::Result<Readahead> {
        Readahead::start(src, true)
    }

    /// The SHA-256 and length of the whole stream (hashing readers, after end of stream).
    pub fn digest(&self) -> Option<&(Digest, u64)> {
        self.digest.as_ref()
    }

    fn start(mut src: Box<dyn Read + Send>, hash: bool) -> io::Result<Readahead> {
        let (tx, rx) = mpsc::sync_channel::<Msg>(DEPTH);
        let (spare, spares) = mpsc::channel::<Vec<u8>>();
        let thread = std::thread::Builder::new().name("readahead".into()).spawn(move || {
            let mut hasher = hash.then(Hasher::new);
            loop {
                let mut buf = spares.try_recv().unwrap_or_default();
                buf.resize(BUF, 0);
                let mut n = 0;
                // Fill whole buffers: decoders return little pieces, channels like big ones.
                let res = loop {
                    match src.read(&mut buf[n..]) {
                        Ok(0) => break Ok(()),
                        Ok(k) => {
                            n += k;
                            if n == BUF {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(n);
                let end = n < BUF;
                if let Some(h) = &mut hasher {
                    h.update(&buf);
                }
                if n > 0 && tx.send(Msg::Data(buf)).is_err() {
                    return;
                }
                if let Err(e) = res {
                    let _ = tx.send(Msg::Failed(e));
                    return;
                }
                if end {
                    let _ = tx.send(Msg::End(hasher.map(|h| {
                        let len = h.len();
                        (h.finish(), len)
                    })));
                    return;
                }
            }
        })?;
        Ok(Readahead { rx: Some(rx), spare, cur: Vec::new(), pos: 0, digest: None, thread: Some(thread) })
    }
}

impl Read for Readahead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            let Some(rx) = &self.rx else { return Ok(0) };
            match rx.recv() {
                Ok(Msg::Data(buf)) => {
                    let done = std::mem::replace(&mut self.cur, buf);
                    // The source may have ended already: then the buffer is simply dropped.
                    let _ = self.spare.send(done);
                    self.pos = 0;
                }
                Ok(Msg::Failed(e)) => {
                    self.rx = None;
                    return Err(e);
                }
                Ok(Msg::End(digest)) => {
                    self.digest = digest;
                    self.rx = None;
                    return Ok(0);
                }
                // The source thread is gone without saying so (it panicked).
                Err(_) => {
                    self.rx = None;
                    return Err(io::Error::other("the layer's reader thread stopped"));
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for Readahead {
    fn drop(&mut self) {
        // Closing the channel makes the source thread's next send fail, which ends it.
        self.rx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        fail_at: Option<usize>,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.fail_at.is_some_and(|f| self.pos >= f) {
                return Err(io::Error::other("broken source"));
            }
            // Odd-sized pieces, as a decoder returns them.
            let n = out.len().min(7919).min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn passes_every_byte_in_order() {
        for len in [0, 1, BUF - 1, BUF, BUF + 1, 3 * BUF + 17] {
            let d = data(len);
            let mut r = Readahead::new(Box::new(Trickle { data: d.clone(), pos: 0, fail_at: None })).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, d, "len {len}");
        }
    }

    #[test]
    fn a_source_error_arrives_after_the_data_before_it() {
        let d = data(BUF + 100_000);
        let mut r = Readahead::new(Box::new(Trickle { data: d.clone(), pos: 0, fail_at: Some(BUF + 50_000) })).unwrap();
        let mut out = vec![0u8; BUF];
        r.read_exact(&mut out).unwrap();
        assert_eq!(out, d[..BUF]);
        let mut rest = Vec::new();
        let err = r.read_to_end(&mut rest).unwrap_err();
        assert_eq!(err.to_string(), "broken source");
    }

    #[test]
    fn a_hashing_reader_gives_the_digest_of_the_whole_stream_at_its_end() {
        for len in [0, BUF, 3 * BUF + 17] {
            let d = data(len);
            let mut r = Readahead::hashing(Box::new(Trickle { data: d.clone(), pos: 0, fail_at: None })).unwrap();
            let mut out = vec![0u8; len.min(10)];
            r.read_exact(&mut out).unwrap();
            if len > 10 {
                assert!(r.digest().is_none(), "no digest before the end");
            }
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).unwrap();
            out.extend(rest);
            assert_eq!(out, d);
            assert_eq!(r.digest(), Some(&(Digest::of(&d), len as u64)), "len {len}");
        }
    }

    #[test]
    fn a_failed_source_gives_no_digest() {
        let d = data(2 * BUF);
        let mut r = Readahead::hashing(Box::new(Trickle { data: d, pos: 0, fail_at: Some(BUF + 1) })).unwrap();
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
        assert_eq!(r.read(&mut [0u8; 8]).unwrap(), 0);
        assert!(r.digest().is_none());
    }

    #[test]
    fn dropping_it_early_stops_the_source() {
        let r = Readahead::new(Box::new(Trickle { data: data(64 * BUF), pos: 0, fail_at: None })).unwrap();
        drop(r); // joins the thread: the test would hang if the source kept going
    }
}
