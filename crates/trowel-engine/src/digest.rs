//! Content digests (`sha256:<hex>`) and I/O adapters that hash what passes through them.
//!
//! Every blob trowel reads or writes is hashed while it streams, never after being buffered:
//! a layer's compressed digest and its uncompressed diff_id come out of one pass.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A validated `sha256:<64 lowercase hex>` digest: the events' type (its text inline, see
/// there), with hashing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(trowel_events::Digest);

#[derive(Debug, thiserror::Error)]
#[error("invalid digest {0:?}: expected sha256:<64 hex digits>")]
pub struct InvalidDigest(pub String);

impl Digest {
    /// Digest of a byte slice.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(h: Sha256) -> Digest {
        Digest(trowel_events::Digest::from_sha256(&h.finalize().into()))
    }

    /// The digest whose SHA-256 is `sum`: what [`Digest::sha256`] gave, in half the room.
    pub fn from_sha256(sum: &[u8; 32]) -> Digest {
        Digest(trowel_events::Digest::from_sha256(sum))
    }

    /// The SHA-256 itself, 32 bytes, for structures that keep one per file.
    pub fn sha256(&self) -> [u8; 32] {
        self.0.sha256()
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The hex part, used as a file name in blob stores.
    pub fn hex(&self) -> &str {
        self.0.hex()
    }

    /// `sha256:abcdef123456` — short form for logs and the TUI.
    pub fn short(&self) -> &str {
        self.0.short()
    }
}

/// A SHA-256 as its 32 bytes: what a per-file list keeps of a content digest, where a
/// [`Digest`] (its 71-byte text) would be more than twice the room. Its JSON and `Debug` are the
/// digest's text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sum(pub [u8; 32]);

impl Sum {
    /// The digest it is the sum of.
    pub fn digest(&self) -> Digest {
        Digest::from_sha256(&self.0)
    }
}

impl From<&Digest> for Sum {
    fn from(d: &Digest) -> Sum {
        Sum(d.sha256())
    }
}

impl From<Digest> for Sum {
    fn from(d: Digest) -> Sum {
        Sum(d.sha256())
    }
}

impl fmt::Debug for Sum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.digest(), f)
    }
}

impl Serialize for Sum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.digest().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Sum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Sum, D::Error> {
        Digest::deserialize(d).map(Sum::from)
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;
    /// The rule is the event contract's: a digest trowel handles is one it can report.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<trowel_events::Digest>().map(Digest).map_err(|_| InvalidDigest(s.to_string()))
    }
}

impl TryFrom<String> for Digest {
    type Error = InvalidDigest;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0.into()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.as_str())
    }
}

/// Running SHA-256 with a byte count.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn finish(self) -> Digest {
        Digest::from_hasher(self.inner)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Hasher::new() }
    }
    pub fn get_ref(&self) -> &W {
        &self.inner
    }
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }
    pub fn finish(self) -> (W, Digest, u64) {
        let len = self.hasher.len();
        (self.inner, self.hasher.finish(), len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Hasher::new() }
    }
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }
    pub fn finish(self) -> (R, Digest, u64) {
        let len = self.hasher.len();
        (self.inner, self.hasher.finish(), len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The size of [`digest_reader`]'s chunks.
const READ_CHUNK: usize = 256 * 1024;

thread_local! {
    /// [`digest_reader`]'s buffer, one per thread and kept: a buffer this size is a fresh
    /// `mmap` from glibc's allocator, zeroed page by page as it is touched and unmapped after,
    /// for every file hashed — 13 µs a file, 30 ms of a key over 2,300 small files
    /// (bench/README, "A `COPY --from`'s key from the digests its builder's layers found").
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Hash a whole reader (streamed in 256 KiB chunks).
pub fn digest_reader<R: Read>(mut r: R) -> io::Result<(Digest, u64)> {
    let mut h = Hasher::new();
    let mut hash_with = |buf: &mut [u8]| -> io::Result<()> {
        loop {
            let n = r.read(buf)?;
            if n == 0 {
                return Ok(());
            }
            h.update(&buf[..n]);
        }
    };
    READ_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < READ_CHUNK {
                buf.resize(READ_CHUNK, 0);
            }
            hash_with(&mut buf)
        }
        // A reader that hashes another on the same thread while it is read.
        Err(_) => hash_with(&mut vec![0u8; READ_CHUNK]),
    })?;
    let len = h.len();
    Ok((h.finish(), len))
}

/// How a digest is reported in events (the contract's own type: same text, no hashing).
impl From<Sum> for trowel_events::Digest {
    fn from(s: Sum) -> trowel_events::Digest {
        trowel_events::Digest::from_sha256(&s.0)
    }
}

impl From<&Digest> for trowel_events::Digest {
    fn from(d: &Digest) -> trowel_events::Digest {
        d.0.clone()
    }
}

impl From<Digest> for trowel_events::Digest {
    fn from(d: Digest) -> trowel_events::Digest {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digest_is_well_known() {
        assert_eq!(Digest::of(b"").as_str(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    /// A sum is its digest in 32 bytes: the same JSON both ways (so a key made of files with
    /// sums is the key made of them with digests), the same `Debug`, and back to the digest.
    #[test]
    fn a_sum_is_its_digest_in_less_room() {
        let d = Digest::of(b"file content");
        let s = Sum::from(&d);
        assert_eq!(std::mem::size_of::<Option<Sum>>(), 33);
        assert_eq!(serde_json::to_string(&s).unwrap(), serde_json::to_string(&d).unwrap());
        assert_eq!(serde_json::from_str::<Sum>(&serde_json::to_string(&d).unwrap()).unwrap(), s);
        assert!(serde_json::from_str::<Sum>("\"sha256:abc\"").is_err());
        assert_eq!(format!("{s:?}"), format!("{d:?}"));
        assert_eq!(s.digest(), d);
        assert_eq!(trowel_events::Digest::from(s), trowel_events::Digest::from(&d));
    }

    #[test]
    fn parse_rejects_malformed() {
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!("md5:d41d8cd98f00b204e9800998ecf8427e".parse::<Digest>().is_err());
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(upper.parse::<Digest>().is_err());
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(ok.parse::<Digest>().unwrap().hex(), "a".repeat(64));
    }

    #[test]
    fn writer_and_reader_agree() {
        let data = b"hello layer".repeat(1000);
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (_, d1, n1) = w.finish();
        let (d2, n2) = digest_reader(&data[..]).unwrap();
        assert_eq!((d1.clone(), n1), (d2, n2));
        assert_eq!(d1, Digest::of(&data));
    }

    /// The kept buffer: readers longer than a chunk, one after another, and a reader that hashes
    /// another while it is read (the buffer is then in use) all get their own digest.
    #[test]
    fn the_kept_buffer_serves_long_and_nested_readers() {
        let long: Vec<u8> = (0..READ_CHUNK * 2 + 17).map(|i| (i % 251) as u8).collect();
        assert_eq!(digest_reader(&long[..]).unwrap(), (Digest::of(&long), long.len() as u64));
        assert_eq!(digest_reader(&b"short"[..]).unwrap(), (Digest::of(b"short"), 5));
        struct Nested<'a>(&'a [u8], Option<(Digest, u64)>);
        impl Read for Nested<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.1.is_none() {
                    self.1 = Some(digest_reader(&b"inner"[..])?);
                }
                self.0.read(buf)
            }
        }
        let mut outer = Nested(&long, None);
        let got = digest_reader(&mut outer).unwrap();
        assert_eq!(got, (Digest::of(&long), long.len() as u64));
        assert_eq!(outer.1, Some((Digest::of(b"inner"), 5)));
    }
}
