//! A reader that runs its source on another thread.
//!
//! Unpacking a gzip layer does two kinds of work in a row on each buffer: inflating it (CPU)
//! and creating the files it holds (system calls, the file system's journal). Inflating on a
//! second thread, one bounded channel of buffers ahead, lets both go on at once on a machine
//! with two cores. Memory stays fixed: at most [`DEPTH`] buffers of [`BUF`] bytes are in
//! flight.

use std::io::{self, Read};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Bytes per buffer handed over.
const BUF: usize = 256 * 1024;
/// Buffers that may wait in the channel.
const DEPTH: usize = 4;

/// Reads what a source thread produced, in order. An error of the source is returned once,
/// after the data before it. Dropping the reader stops the source thread at its next buffer.
pub struct Readahead {
    rx: Option<mpsc::Receiver<io::Result<Vec<u8>>>>,
    cur: Vec<u8>,
    pos: usize,
    thread: Option<JoinHandle<()>>,
}

impl Readahead {
    /// Starts reading `src` on a new thread. Fails only when no thread can be started.
    pub fn new(mut src: Box<dyn Read + Send>) -> io::Result<Readahead> {
        let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(DEPTH);
        let thread = std::thread::Builder::new().name("readahead".into()).spawn(move || {
            loop {
                let mut buf = vec![0u8; BUF];
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
                if n > 0 && tx.send(Ok(buf)).is_err() {
                    return;
                }
                if let Err(e) = res {
                    let _ = tx.send(Err(e));
                    return;
                }
                if end {
                    return;
                }
            }
        })?;
        Ok(Readahead { rx: Some(rx), cur: Vec::new(), pos: 0, thread: Some(thread) })
    }
}

impl Read for Readahead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            let Some(rx) = &self.rx else { return Ok(0) };
            match rx.recv() {
                Ok(Ok(buf)) => {
                    self.cur = buf;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.rx = None;
                    return Err(e);
                }
                // The source ended (its sender is gone after the last buffer).
                Err(_) => {
                    self.rx = None;
                    return Ok(0);
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
    fn dropping_it_early_stops_the_source() {
        let r = Readahead::new(Box::new(Trickle { data: data(64 * BUF), pos: 0, fail_at: None })).unwrap();
        drop(r); // joins the thread: the test would hang if the source kept going
    }
}
