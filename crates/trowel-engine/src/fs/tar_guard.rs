//! A pass-through reader that bounds tar extension headers before the `tar` crate sees them.
//!
//! The `tar` crate reads PAX (`x`), GNU long-name (`L`) and long-link (`K`) extension entries
//! wholly into memory. A hostile layer can declare such an entry of gigabytes, and since the
//! data compresses to almost nothing, a small blob would exhaust memory. This reader follows
//! the tar framing as the bytes stream past (header blocks, GNU sparse extension blocks, data
//! rounded up to 512 bytes, the PAX `size` override of the next entry) and fails the stream as
//! soon as an extension header declares more than [`EXTENSION_LIMIT`] bytes. It never alters
//! the bytes. After the first all-zero block (end of archive) it stops inspecting.

use std::io::{self, Read};

/// Largest extension entry accepted (PAX records, GNU long names). Real ones are a few KiB:
/// a path is at most 4 KiB and xattr values at most 64 KiB.
pub(crate) const EXTENSION_LIMIT: u64 = 1 << 20;

const BLOCK: usize = 512;

enum State {
    /// Collecting a 512-byte header block.
    Header,
    /// Collecting GNU sparse extension blocks; then `remaining` data bytes follow.
    SparseExt,
    /// Inside entry data (including padding).
    Data,
    /// Past the end-of-archive marker.
    Done,
}

pub(crate) struct TarGuard<R> {
    inner: R,
    state: State,
    block: [u8; BLOCK],
    fill: usize,
    /// Bytes of data plus padding left in the current entry.
    remaining: u64,
    /// Captured contents of a PAX `x` entry, and how many bytes of it are real data.
    capture: Option<Vec<u8>>,
    capture_len: u64,
    /// A PAX `size` record waiting for the next non-extension header.
    pax_size: Option<u64>,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Parses a tar numeric field: octal text, or GNU base-256 when the top bit is set.
fn parse_num(field: &[u8]) -> io::Result<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] == 0xff {
            return Err(invalid("negative size in tar header".into()));
        }
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(*b)))
                .ok_or_else(|| invalid("tar size overflows".into()))?;
        }
        return Ok(v);
    }
    let text: Vec<u8> = field.iter().copied().filter(|b| *b != 0 && *b != b' ').collect();
    if text.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&text).map_err(|_| invalid("non-ASCII size in tar header".into()))?;
    u64::from_str_radix(s, 8).map_err(|_| invalid(format!("invalid size {s:?} in tar header")))
}

impl<R: Read> TarGuard<R> {
    pub(crate) fn new(inner: R) -> TarGuard<R> {
        TarGuard {
            inner,
            state: State::Header,
            block: [0; BLOCK],
            fill: 0,
            remaining: 0,
            capture: None,
            capture_len: 0,
            pax_size: None,
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if self.block.iter().all(|b| *b == 0) {
            self.state = State::Done;
            return Ok(());
        }
        let typeflag = self.block[156];
        let size = parse_num(&self.block[124..136])?;
        let is_ext = matches!(typeflag, b'x' | b'g' | b'L' | b'K');
        if is_ext && size > EXTENSION_LIMIT {
            return Err(invalid(format!(
                "tar extension header (type {:?}) of {size} bytes exceeds the {EXTENSION_LIMIT}-byte limit",
                typeflag as char
            )));
        }
        let data = if is_ext { size } else { self.pax_size.take().unwrap_or(size) };
        if typeflag == b'x' {
            self.capture = Some(Vec::with_capacity(size as usize));
            self.capture_len = size;
        }
        self.remaining = data.div_ceil(BLOCK as u64) * BLOCK as u64;
        self.state = if typeflag == b'S' && self.block[482] != 0 { State::SparseExt } else { State::Data };
        self.after_data_check();
        Ok(())
    }

    /// Moves on to the next header once the current entry's data is consumed.
    fn after_data_check(&mut self) {
        if matches!(self.state, State::Data) && self.remaining == 0 {
            if let Some(data) = self.capture.take() {
                for ext in tar::PaxExtensions::new(&data).flatten() {
                    if ext.key() == Ok("size")
                        && let Some(v) = ext.value().ok().and_then(|v| v.parse().ok())
                    {
                        self.pax_size = Some(v);
                    }
                }
            }
            self.state = State::Header;
        }
    }

    /// Follows the framing over `bytes`, which just passed through.
    fn inspect(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.state {
                State::Done => return Ok(()),
                State::Header | State::SparseExt => {
                    let take = (BLOCK - self.fill).min(bytes.len());
                    self.block[self.fill..self.fill + take].copy_from_slice(&bytes[..take]);
                    self.fill += take;
                    bytes = &bytes[take..];
                    if self.fill == BLOCK {
                        self.fill = 0;
                        if matches!(self.state, State::Header) {
                            self.header()?;
                        } else if self.block[504] == 0 {
                            self.state = State::Data;
                            self.after_data_check();
                        }
                    }
                }
                State::Data => {
                    let take = (self.remaining.min(bytes.len() as u64)) as usize;
                    if let Some(c) = &mut self.capture {
                        let want = (self.capture_len as usize).saturating_sub(c.len()).min(take);
                        c.extend_from_slice(&bytes[..want]);
                    }
                    self.remaining -= take as u64;
                    bytes = &bytes[take..];
                    self.after_data_check();
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.inspect(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_num(b"00000001750\0").unwrap(), 0o1750);
        assert_eq!(parse_num(b"          \0\0").unwrap(), 0);
        let mut b256 = [0u8; 12];
        b256[0] = 0x80;
        b256[11] = 1;
        b256[10] = 2;
        assert_eq!(parse_num(&b256).unwrap(), 513);
        assert!(parse_num(b"0000000999x\0").is_err());
    }

    #[test]
    fn oversized_extension_is_refused_and_normal_data_passes() {
        let mut b = tar::Builder::new(Vec::new());
        let big = vec![b'a'; 3 << 20];
        let mut h = tar::Header::new_gnu();
        h.set_size(big.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, "big-but-normal", &big[..]).unwrap();
        let ok = b.into_inner().unwrap();
        let mut out = Vec::new();
        TarGuard::new(&ok[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, ok);

        let mut b = tar::Builder::new(Vec::new());
        let value = vec![b'v'; 2 << 20];
        b.append_pax_extensions([("SCHILY.xattr.user.x", &value[..])]).unwrap();
        let bad = b.into_inner().unwrap();
        let err = TarGuard::new(&bad[..]).read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }
}
