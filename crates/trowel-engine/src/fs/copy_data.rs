//! A regular file's bytes copied into a new, empty file: in chunks that look at the stop
//! between them, and with a sparse file's holes left holes. A file of a few gigabytes that is
//! mostly holes (a disk image, a database's preallocated file) was written out in full, zeros
//! and all, into every root it was copied to: its apparent size in disk space and in time.
//! What a layer holds is unchanged (its tar entry carries the zeros, as every builder's does).

use std::cell::Cell;
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
    /// The call that copies the data, kept from one file of the copy to the next.
    pub how: &'a Cell<Kernel>,
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

/// Up to `len` bytes from `from`'s offset to `to`'s, a chunk at a time, with
/// `copy_file_range`: no user-space buffer.
fn copy_range(from: &File, to: &mut File, len: u64, around: &Around<'_>) -> Result<u64, FsError> {
    let mut copied = 0;
    while copied < len {
        let want = (len - copied).min(COPY_CHUNK);
        let n = copy_chunk(from, to, want, around.how).map_err(around.err)?;
        copied += n;
        if n < want {
            break;
        }
        (around.check)()?;
    }
    Ok(copied)
}

/// The call that copies file data between the two file systems of one copy, learnt from its
/// first file: `copy_file_range` where the kernel takes it (within one file system, and
/// between some), `sendfile` where it refuses (between two file systems of most kinds: the
/// build context and a work dir on another disk), plain reads and writes where neither works.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Kernel {
    #[default]
    CopyFileRange,
    Sendfile,
    ReadWrite,
}

/// Up to `want` bytes (fewer at the end of `from`) from `from`'s offset to `to`'s, by the call
/// `how` says, which is moved on to the next kind when the kernel refuses it for these files
/// (and stays there for the rest of the copy). A small file takes two calls. `std::io::copy`
/// makes the same calls but first asks both files what they are (two `statx` per file) and
/// tries `copy_file_range` again for every file where it is refused, which for a copy of
/// thousands of small files made a third of its calls.
fn copy_chunk(from: &File, to: &mut File, want: u64, how: &Cell<Kernel>) -> io::Result<u64> {
    let mut copied = 0;
    while copied < want {
        let ask = usize::try_from(want - copied).unwrap_or(usize::MAX);
        let done = match how.get() {
            Kernel::CopyFileRange => rustix::fs::copy_file_range(from, None, &*to, None, ask),
            Kernel::Sendfile => rustix::fs::sendfile(&*to, from, None, ask),
            Kernel::ReadWrite => return Ok(copied + read_write(from, to, want - copied)?),
        };
        match done {
            Ok(0) => break,
            Ok(n) => copied += n as u64,
            Err(Errno::INTR) => {}
            Err(e) if refused(how.get(), e) => how.set(match how.get() {
                Kernel::CopyFileRange => Kernel::Sendfile,
                _ => Kernel::ReadWrite,
            }),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(copied)
}

/// Whether `e` says that the kernel does not do `how` for these two files (as `std::io::copy`
/// reads them) rather than that the copy failed (a full disk, an I/O error).
fn refused(how: Kernel, e: Errno) -> bool {
    match how {
        Kernel::CopyFileRange => {
            matches!(e, Errno::NOSYS | Errno::XDEV | Errno::INVAL | Errno::PERM | Errno::OPNOTSUPP | Errno::BADF)
        }
        Kernel::Sendfile => matches!(e, Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP),
        Kernel::ReadWrite => false,
    }
}

/// Up to `want` bytes through a buffer.
fn read_write(from: &File, to: &mut File, want: u64) -> io::Result<u64> {
    let mut from = from;
    io::copy(&mut (&mut from).take(want), &mut io::BufWriter::with_capacity(1 << 16, WriteOnly(to)))
}

/// A file seen only as a writer, so that `std::io::copy` takes the plain read-and-write path
/// rather than trying the kernel's calls again.
struct WriteOnly<'a>(&'a mut File);

impl io::Write for WriteOnly<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// A source neither kernel call takes (a pipe) is copied by reads and writes, from where
    /// it is, and the copy keeps to them from then on.
    #[test]
    fn a_source_copy_file_range_refuses_is_copied_all_the_same() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let mut w = File::from(w);
        w.write_all(b"through a pipe").unwrap();
        drop(w);
        let from = File::from(r);
        let dir = tempfile::tempdir().unwrap();
        let mut to = File::options().create_new(true).read(true).write(true).open(dir.path().join("to")).unwrap();
        let how = Cell::new(Kernel::CopyFileRange);
        assert_eq!(copy_chunk(&from, &mut to, 1 << 20, &how).unwrap(), 14);
        assert_eq!(how.get(), Kernel::ReadWrite, "neither kernel call takes a pipe to a file");
        let mut got = String::new();
        to.seek(SeekFrom::Start(0)).unwrap();
        to.read_to_string(&mut got).unwrap();
        assert_eq!(got, "through a pipe");
    }

    /// A file is copied whole, up to what was asked for, in as many calls as the kernel needs,
    /// by each of the three ways; a way the kernel takes is kept.
    #[test]
    fn a_file_is_copied_up_to_what_was_asked_each_way() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("from"), &data).unwrap();
        for way in [Kernel::CopyFileRange, Kernel::Sendfile, Kernel::ReadWrite] {
            let how = Cell::new(way);
            let from = File::open(dir.path().join("from")).unwrap();
            let to_path = dir.path().join(format!("to-{way:?}"));
            let mut to = File::create_new(&to_path).unwrap();
            assert_eq!(copy_chunk(&from, &mut to, 100_000, &how).unwrap(), 100_000, "{way:?}");
            assert_eq!(copy_chunk(&from, &mut to, 1 << 20, &how).unwrap(), 200_000, "{way:?}: the rest");
            assert_eq!(copy_chunk(&from, &mut to, 1 << 20, &how).unwrap(), 0, "{way:?}: nothing after the end");
            drop(to);
            assert_eq!(std::fs::read(&to_path).unwrap(), data, "{way:?}");
            assert_eq!(how.get(), way, "a file to a file on one file system: {way:?} is taken");
        }
    }
}
