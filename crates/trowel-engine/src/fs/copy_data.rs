//! A regular file's bytes copied into a new, empty file: in chunks that look at the stop
//! between them, and with a sparse file's holes left holes. A file of a few gigabytes that is
//! mostly holes (a disk image, a database's preallocated file) was written out in full, zeros
//! and all, into every root it was copied to: its apparent size in disk space and in time.
//! What a layer holds is unchanged (its tar entry carries the zeros, as every builder's does).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use rustix::fs::SeekFrom as RawSeek;
use rustix::io::Errno;

use super::FsError;

/// What a copy is told between chunks and how it names a failed call: `check` looks at the
/// stop, `err` makes an error that names the file.
pub(super) struct Around<'a> {
    pub check: &'a dyn Fn() -> Result<(), FsError>,
    pub err: &'a dyn Fn(io::Error) -> FsError,
}

/// How much of a file is copied between two looks at the stop: a big file given up within a
/// few milliseconds, at a few syscalls' cost per chunk.
const COPY_CHUNK: u64 = 8 << 20;

/// Below this a file is copied without looking for holes: a hole is at least a block, and the
/// two `lseek`s cost more than a small file's holes would save.
const SPARSE_MIN: u64 = 1 << 20;

/// Copies all of `from` (a regular file of `size` bytes when it was opened, its offset at 0)
/// into `to` (new and empty). `around.check` is called between chunks and ends the copy with
/// its error. Returns the copy's length (its holes counted, as its size counts them). A file
/// whose size changes meanwhile is copied as far as it reads: the caller's watch tells a
/// changed source.
pub(super) fn copy_data(from: &File, to: &mut File, size: u64, around: &Around<'_>) -> Result<u64, FsError> {
    if size >= SPARSE_MIN {
        if let Some(first_hole) = seek(from, RawSeek::Hole(0)).map_err(around.err)?
            && first_hole < size
        {
            return copy_sparse(from, to, around);
        }
        // The look for a hole moved the offset.
        let mut f = from;
        f.seek(SeekFrom::Start(0)).map_err(around.err)?;
    }
    copy_range(from, to, u64::MAX, around)
}

/// The data extents of `from` copied at their offsets, the holes between them skipped (the
/// destination's offset moved past them makes a hole), and the length set at the end so that
/// a trailing hole is kept too.
fn copy_sparse(from: &File, to: &mut File, around: &Around<'_>) -> Result<u64, FsError> {
    let err = around.err;
    let mut pos = 0;
    // ENXIO: no data at or after `pos`, which is the end or in the trailing hole.
    while let Some(data) = seek(from, RawSeek::Data(pos)).map_err(err)? {
        let Some(hole) = seek(from, RawSeek::Hole(data)).map_err(err)? else { break };
        let mut f = from;
        f.seek(SeekFrom::Start(data)).map_err(err)?;
        to.seek(SeekFrom::Start(data)).map_err(err)?;
        let n = copy_range(from, to, hole - data, around)?;
        if n < hole - data {
            // It shrank while it was read.
            pos = data + n;
            break;
        }
        pos = hole;
    }
    let end = rustix::fs::fstat(from).map_err(|e| err(e.into()))?.st_size as u64;
    let len = end.max(pos);
    to.set_len(len).map_err(err)?;
    Ok(len)
}

/// Up to `len` bytes from `from`'s offset to `to`'s, a chunk at a time. `std::io::copy`
/// between two files (a `Take` of one too) uses `copy_file_range`: no user-space buffer.
fn copy_range(from: &File, to: &mut File, len: u64, around: &Around<'_>) -> Result<u64, FsError> {
    let mut copied = 0;
    while copied < len {
        let want = (len - copied).min(COPY_CHUNK);
        let n = io::copy(&mut from.take(want), to).map_err(around.err)?;
        copied += n;
        if n < want {
            break;
        }
        (around.check)()?;
    }
    Ok(copied)
}

/// `lseek` with `SEEK_DATA`/`SEEK_HOLE`; `None` for ENXIO (no such offset: past the end, or no
/// data after it). A file system without holes answers as if the whole file were data.
fn seek(f: &File, to: RawSeek) -> io::Result<Option<u64>> {
    match rustix::fs::seek(f, to) {
        Ok(at) => Ok(Some(at)),
        Err(Errno::NXIO) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
