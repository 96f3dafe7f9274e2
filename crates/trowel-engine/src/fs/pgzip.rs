//! Parallel gzip: one gzip member whose deflate stream is compressed in fixed-size chunks on
//! several threads (the pigz scheme).
//!
//! gzip is the bottleneck of writing a layer: zlib-rs at its fast levels compresses ~100 MB/s
//! on one core, while reading, tarring and hashing the same bytes runs at several
//! hundred MB/s. Each chunk of [`CHUNK`] bytes is deflated on its own, primed with the last
//! 32 KiB of the chunk before it as its dictionary (so matches may reach back across the
//! boundary and the ratio is nearly that of one stream), and ended with a sync flush, which
//! aligns it to a byte boundary without marking the end of the stream; the last chunk is
//! finished normally. The chunks' outputs, concatenated in order behind one gzip header, are
//! one valid deflate stream that any gzip reader decodes.
//!
//! The output depends only on the input, the level and [`CHUNK`] — never on the number of
//! threads or on timing — so layers stay byte-identical across runs and machines
//! (`--reproducible`, the layer cache). Memory is bounded: at most [`in_flight`] chunks (input
//! plus output) exist at a time, whatever the layer's size. A layer smaller than one chunk is
//! compressed on the calling thread and starts no threads at all.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Uncompressed bytes per chunk. Part of the output format: changing it changes every layer
/// digest (and so every layer cache entry's blob), never the decoded content.
pub const CHUNK: usize = 512 * 1024;

/// deflate's window: how much of the previous chunk primes the next one.
const DICT: usize = 32 * 1024;

/// Chunks being compressed or waiting to be written, at most.
fn in_flight(workers: usize) -> usize {
    2 * workers + 2
}

/// Compressor threads: one per core the process may use, at most 8 (beyond that the thread
/// producing the tar is the bottleneck).
fn worker_count() -> usize {
    super::cores().clamp(1, 8)
}

struct Job {
    seq: u64,
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
}

/// A compressed chunk, or why it failed, with the CRC of its input.
type Done = (u64, io::Result<(Vec<u8>, Crc)>);

struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(level: u32, workers: usize) -> io::Result<Pool> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel::<Done>();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx = Arc::clone(&jobs_rx);
            let tx = done_tx.clone();
            let t = std::thread::Builder::new().name(format!("gzip-{i}")).spawn(move || {
                let c = Chunker::new(level);
                loop {
                    // The lock is held only to take the next job, never while compressing.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let out = c.chunk(&job.data, &job.dict, job.last).map(|out| {
                        let mut crc = Crc::new();
                        crc.update(&job.data);
                        (out, crc)
                    });
                    if tx.send((job.seq, out)).is_err() {
                        return;
                    }
                }
            })?;
            threads.push(t);
        }
        Ok(Pool { jobs: Some(jobs_tx), done, threads })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the job queue ends each worker after its current chunk.
        self.jobs.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Compresses chunks, storing the ones deflate cannot shrink.
///
/// Random bytes and data that is already compressed (tarballs, images, archives) make up much
/// of many large layers. deflate spends as long on them as on text only to emit a little
/// *more* than it was given (zlib-rs's level 1 uses fixed Huffman codes: +5% on random
/// bytes). A chunk whose byte entropy is near 8 bits is stored instead, without trying; any
/// other chunk that still came out bigger than stored is redone stored. Either way the
/// decision depends only on the chunk, so the output stays deterministic.
///
/// Every chunk gets a new compressor. A reset one (`Compress::reset`, zlib-rs's
/// `deflateReset`) keeps state from the chunks it compressed before, and at level 2 that state
/// can change the output: 3 of the 444 chunks of a 230 MB layer came out 3–4 bytes longer after
/// another chunk than from a new compressor. Which worker takes which chunk is timing, so the
/// same layer got different digests in different runs. A new compressor starts from zeroed
/// tables whatever memory it is given (checked with `MALLOC_PERTURB_`), and costs nothing
/// measurable beside compressing 512 KiB (bench/README.md, "Reproducible gzip").
struct Chunker {
    level: u32,
}

/// Bits per byte above which a chunk is stored without trying deflate: random data measures
/// 7.999, gzip and JPEG data 7.99+, executables 5–6.5, text 4–5.
const STORE_ENTROPY: f64 = 7.95;

impl Chunker {
    fn new(level: u32) -> Chunker {
        Chunker { level }
    }

    fn chunk(&self, data: &[u8], dict: &[u8], last: bool) -> io::Result<Vec<u8>> {
        if entropy(data) < STORE_ENTROPY {
            let out = deflate_chunk(&mut Compress::new(Compression::new(self.level), false), data, dict, last)?;
            // Stored costs 5 bytes per 64 KiB block; beyond that, deflate lost.
            if out.len() <= data.len() + data.len() / 8192 + 16 {
                return Ok(out);
            }
        }
        deflate_chunk(&mut Compress::new(Compression::none(), false), data, &[], last)
    }
}

/// Shannon entropy of the bytes of `data`, in bits per byte (0 for empty data).
fn entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    -counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n).map(|p| p * p.log2()).sum::<f64>()
}

/// Raw deflate of one chunk with a new compressor `c`, primed with `dict`; sync-flushed, or
/// finished when `last`.
fn deflate_chunk(c: &mut Compress, data: &[u8], dict: &[u8], last: bool) -> io::Result<Vec<u8>> {
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let mut pos = 0;
    loop {
        if out.capacity() - out.len() < 16 * 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let before = c.total_in();
        let status = c.compress_vec(&data[pos..], &mut out, flush).map_err(io::Error::other)?;
        pos += (c.total_in() - before) as usize;
        let room_left = out.len() < out.capacity();
        match (last, status) {
            (true, Status::StreamEnd) => return Ok(out),
            // A flush is complete once all input is taken and the output did not fill up.
            (false, _) if pos == data.len() && room_left => return Ok(out),
            _ => {}
        }
    }
}

/// A gzip writer that compresses on several threads. Call [`ParallelGzip::finish`] to write
/// the end of the stream and get the inner writer back; dropping it without finishing
/// abandons the stream.
pub struct ParallelGzip<W: Write> {
    inner: W,
    level: u32,
    header_written: bool,
    /// The chunk being filled.
    buf: Vec<u8>,
    /// The last [`DICT`] bytes of the previous chunk.
    dict: Vec<u8>,
    pool: Option<Pool>,
    workers: usize,
    next_seq: u64,
    next_write: u64,
    /// Compressed chunks that arrived before the ones ahead of them.
    ready: BTreeMap<u64, (Vec<u8>, Crc)>,
    crc: Crc,
}

impl<W: Write> ParallelGzip<W> {
    /// gzip level 0–9 (clamped).
    pub fn new(inner: W, level: u32) -> ParallelGzip<W> {
        Self::with_workers(inner, level, worker_count())
    }

    /// As [`ParallelGzip::new`] with a given number of compressor threads (the output is
    /// the same for any number).
    pub fn with_workers(inner: W, level: u32, workers: usize) -> ParallelGzip<W> {
        ParallelGzip {
            inner,
            level: level.min(9),
            header_written: false,
            buf: Vec::with_capacity(CHUNK),
            dict: Vec::new(),
            pool: None,
            workers: workers.max(1),
            next_seq: 0,
            next_write: 0,
            ready: BTreeMap::new(),
            crc: Crc::new(),
        }
    }

    /// The 10-byte member header: no name, mtime 0, constant, as flate2's `GzBuilder` writes it.
    fn header(&mut self) -> io::Result<()> {
        if !self.header_written {
            let xfl = match self.level {
                9 => 2,
                0 | 1 => 4,
                _ => 0,
            };
            self.inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 0xff])?;
            self.header_written = true;
        }
        Ok(())
    }

    fn pool(&mut self) -> io::Result<&Pool> {
        if self.pool.is_none() {
            self.pool = Some(Pool::start(self.level, self.workers)?);
        }
        Ok(self.pool.as_ref().expect("started above"))
    }

    /// Hands the full buffer to the pool as a non-final chunk.
    fn dispatch(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let dict = std::mem::replace(&mut self.dict, data[data.len().saturating_sub(DICT)..].to_vec());
        let seq = self.next_seq;
        self.next_seq += 1;
        let job = Job { seq, data, dict, last: false };
        self.pool()?.jobs.as_ref().expect("open until drop").send(job).map_err(|_| dead())?;
        // Bounded memory: wait while too many chunks are out.
        while self.next_seq - self.next_write >= in_flight(self.workers) as u64 {
            self.collect(true)?;
        }
        self.collect(false)
    }

    /// Writes every chunk that is next in order; with `block`, waits for at least one result.
    fn collect(&mut self, block: bool) -> io::Result<()> {
        if let Some(pool) = &self.pool {
            let mut wait = block;
            loop {
                let got = if wait {
                    pool.done.recv().map_err(|_| dead())?
                } else {
                    match pool.done.try_recv() {
                        Ok(d) => d,
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => return Err(dead()),
                    }
                };
                wait = false;
                let (seq, res) = got;
                self.ready.insert(seq, res?);
            }
        }
        self.header()?;
        while let Some((out, crc)) = self.ready.remove(&self.next_write) {
            self.inner.write_all(&out)?;
            self.crc.combine(&crc);
            self.next_write += 1;
        }
        Ok(())
    }

    /// Compresses what is left, writes the trailer (CRC-32 and length) and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let data = std::mem::take(&mut self.buf);
        let dict = std::mem::take(&mut self.dict);
        if self.pool.is_none() {
            // Everything fit in one chunk: no threads for a small layer.
            let out = Chunker::new(self.level).chunk(&data, &dict, true)?;
            let mut crc = Crc::new();
            crc.update(&data);
            self.ready.insert(self.next_seq, (out, crc));
        } else {
            let job = Job { seq: self.next_seq, data, dict, last: true };
            self.pool()?.jobs.as_ref().expect("open until drop").send(job).map_err(|_| dead())?;
        }
        self.next_seq += 1;
        self.collect(false)?;
        while self.next_write < self.next_seq {
            self.collect(true)?;
        }
        let (sum, amount) = (self.crc.sum(), self.crc.amount());
        self.inner.write_all(&sum.to_le_bytes())?;
        self.inner.write_all(&amount.to_le_bytes())?;
        self.pool.take();
        Ok(self.inner)
    }
}

fn dead() -> io::Error {
    io::Error::other("a gzip compressor thread stopped")
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.dispatch()?;
        }
        Ok(n)
    }

    /// Writes what is already compressed; a partial chunk stays buffered, because flushing it
    /// early would change the output.
    fn flush(&mut self) -> io::Result<()> {
        self.collect(false)?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Half pseudo-random bytes (incompressible), half repetitive text, like a real layer.
    fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            if (v.len() / 70_000) % 2 == 0 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.extend_from_slice(&x.to_le_bytes());
            } else {
                v.extend_from_slice(format!("line {} of some text file\n", v.len() % 977).as_bytes());
            }
        }
        v.truncate(len);
        v
    }

    fn gzip(data: &[u8], level: u32, workers: usize, write_size: usize) -> Vec<u8> {
        let mut g = ParallelGzip::with_workers(Vec::new(), level, workers);
        for piece in data.chunks(write_size.max(1)) {
            g.write_all(piece).unwrap();
        }
        if data.is_empty() {
            g.write_all(&[]).unwrap();
        }
        g.finish().unwrap()
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut out).unwrap();
        out
    }

    /// A tar-like stream of text files (a header naming each, lines of text padded to 512
    /// bytes), as in bench W3's context, where a reused zlib-rs compressor was seen to differ.
    fn text_tar(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 64 * 1024);
        let mut i = 0usize;
        while v.len() < len {
            let mut h = [0u8; 512];
            let name = format!("app/d{}/f{}", i % 50, i);
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..108].copy_from_slice(b"0000644\0");
            h[257..263].copy_from_slice(b"ustar\0");
            v.extend_from_slice(&h);
            let (start, n) = (v.len(), 20_000 + (i * 7919) % 42_000);
            let mut j = 0;
            while v.len() - start < n {
                v.extend_from_slice(format!("line {j} of file {i} with some text\n").as_bytes());
                j += 1;
            }
            v.resize(v.len().next_multiple_of(512), 0);
            i += 50;
        }
        v
    }

    /// Which worker takes which chunk is timing, so a chunk's output must not depend on what
    /// the worker compressed before. With one zlib-rs compressor reset between chunks it did:
    /// on this stream, 3 of the 8 KiB pieces checked came out longer after an earlier piece
    /// (the layer digests of bench W3 differed between runs).
    #[test]
    fn a_chunk_compresses_the_same_whatever_its_worker_did_before() {
        let data = text_tar(1_400_000);
        let (before_dict, before) = (b"abc ".repeat(DICT / 4), b"x".repeat(1024));
        let mut offset = DICT;
        let mut checked = 0;
        while offset + 8192 <= data.len() {
            let (dict, piece) = (&data[offset - DICT..offset], &data[offset..offset + 8192]);
            let fresh = Chunker::new(2).chunk(piece, dict, false).unwrap();
            let worker = Chunker::new(2);
            worker.chunk(&before, &before_dict, false).unwrap();
            assert_eq!(worker.chunk(piece, dict, false).unwrap(), fresh, "the piece at {offset}");
            offset += 4096;
            checked += 1;
        }
        assert!(checked > 300, "{checked}");
        // The other levels, on a few chunk-sized inputs.
        for level in [1, 6] {
            let worker = Chunker::new(level);
            for piece in data.chunks(CHUNK) {
                worker.chunk(&before, &before_dict, false).unwrap();
                assert_eq!(
                    worker.chunk(piece, &[], false).unwrap(),
                    Chunker::new(level).chunk(piece, &[], false).unwrap()
                );
            }
        }
    }

    #[test]
    fn decodes_to_the_input_at_every_chunk_boundary_and_level() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12_345] {
            for level in [0, 1, 2, 6, 9] {
                let data = sample(len, len as u64 + 7);
                let gz = gzip(&data, level, 2, 100_003);
                assert_eq!(gunzip(&gz), data, "len {len} level {level}");
            }
        }
    }

    #[test]
    fn output_does_not_depend_on_threads_or_write_sizes() {
        let data = sample(5 * CHUNK + 999, 42);
        let one = gzip(&data, 1, 1, 512);
        assert_eq!(gzip(&data, 1, 2, 1 << 20), one);
        assert_eq!(gzip(&data, 1, 7, 65_536), one);
    }

    #[test]
    fn the_dictionary_keeps_the_ratio_of_one_stream() {
        // Text repeated across chunk boundaries compresses as well as in a single stream.
        let data: Vec<u8> = b"abcdefghij0123456789".iter().cycle().take(4 * CHUNK).copied().collect();
        let gz = gzip(&data, 6, 2, 1 << 16);
        assert!(gz.len() < 40_000, "{} bytes", gz.len());
    }

    #[test]
    fn incompressible_chunks_are_stored_not_expanded() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random: Vec<u8> = (0..3 * CHUNK + 5)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert!(entropy(&random) > STORE_ENTROPY);
        let gz = gzip(&random, 1, 2, 1 << 16);
        // Stored blocks: 5 bytes per 64 KiB, plus header and trailer.
        assert!(gz.len() <= random.len() + random.len() / 8192 + 64, "{} > {}", gz.len(), random.len());
        assert_eq!(gunzip(&gz), random);
        // Text in between still compresses.
        let text: Vec<u8> = (0..).flat_map(|i| format!("line {i} of a log\n").into_bytes()).take(CHUNK).collect();
        assert!(entropy(&text) < STORE_ENTROPY);
        let mixed = [&random[..CHUNK], &text[..]].concat();
        let gz = gzip(&mixed, 1, 2, 1 << 16);
        assert!(gz.len() < CHUNK + CHUNK / 4, "{}", gz.len());
        assert_eq!(gunzip(&gz), mixed);
    }

    #[test]
    fn an_independent_gzip_reads_it() {
        // The system's gzip (or busybox's) must accept the stream, CRC and length included.
        let Some(tool) = ["gzip", "busybox"].into_iter().find(|t| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {t}"))
                .output()
                .is_ok_and(|o| o.status.success())
        }) else {
            panic!("neither gzip nor busybox is installed");
        };
        let data = sample(2 * CHUNK + 77, 9);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.gz");
        std::fs::write(&f, gzip(&data, 1, 2, 4096)).unwrap();
        let mut cmd = std::process::Command::new(tool);
        if tool == "busybox" {
            cmd.arg("gzip");
        }
        let out = cmd.arg("-dc").arg(&f).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, data);
    }
}
