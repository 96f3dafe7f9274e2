//! A copy of a blob's bytes as they are written, for an upload running alongside the writer
//! (`Registry::upload_streamed`).
//!
//! The tap never fails or slows down the write for long: bytes go out in chunks over a bounded
//! channel; when the upload has gone away (or has not taken a chunk for [`STALL`], say a
//! registry that stopped reading), the tap lets go and the blob is finished locally as if there
//! had been no tap. Whether every byte went out is what [`BlobTap::finish`] says.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::{Sender, error::TrySendError};

/// Bytes per chunk sent: big enough that the channel is not the cost, small enough that the
/// upload starts early and little is held in memory.
pub const CHUNK: usize = 1 << 20;

/// Chunks in flight between the writer and the upload (so at most about `CHUNKS + 1` MiB held).
pub const CHUNKS: usize = 4;

/// How long the writer waits for the upload to take a chunk before it lets the tap go.
pub const STALL: Duration = Duration::from_secs(60);

pub struct BlobTap {
    tx: Option<Sender<Bytes>>,
    buf: Vec<u8>,
}

impl BlobTap {
    pub fn new(tx: Sender<Bytes>) -> BlobTap {
        BlobTap { tx: Some(tx), buf: Vec::with_capacity(CHUNK) }
    }

    /// Takes a copy of bytes just written.
    pub fn push(&mut self, data: &[u8]) {
        if self.tx.is_none() {
            return;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send();
        }
    }

    fn send(&mut self) {
        let Some(tx) = &self.tx else { return };
        let mut chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        let start = Instant::now();
        loop {
            match tx.try_send(chunk) {
                Ok(()) => return,
                Err(TrySendError::Full(c)) if start.elapsed() < STALL => {
                    chunk = c;
                    // The upload is slower than the writer: wait for it (this is the
                    // backpressure), polling, since this thread is not async.
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(_) => {
                    self.tx = None;
                    return;
                }
            }
        }
    }

    /// Sends what is left and closes the stream. True if every byte went out.
    pub fn finish(mut self) -> bool {
        if !self.buf.is_empty() {
            self.send();
        }
        self.tx.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_goes_out_in_order() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(CHUNKS);
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Some(b) = rx.blocking_recv() {
                got.extend_from_slice(&b);
            }
            got
        });
        let data: Vec<u8> = (0..5 * CHUNK + 123).map(|i| (i * 7 % 251) as u8).collect();
        let mut tap = BlobTap::new(tx);
        for piece in data.chunks(10_000) {
            tap.push(piece);
        }
        assert!(tap.finish());
        assert_eq!(reader.join().unwrap(), data);
    }

    #[test]
    fn a_reader_that_goes_away_releases_the_writer() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        drop(rx);
        let mut tap = BlobTap::new(tx);
        tap.push(&vec![0u8; 3 * CHUNK]);
        assert!(!tap.finish(), "the tap says not everything went out");
    }
}
