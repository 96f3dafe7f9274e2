//! Writing a layer blob from snapshot changes.
//!
//! One streaming pass: tar → SHA-256 (diff_id) → gzip/zstd → the blob store's writer (which
//! hashes the compressed digest and renames the blob into place on commit). gzip runs on all
//! cores in fixed-size chunks ([`super::pgzip`]). Memory is fixed: file data goes through one
//! 256 KiB buffer, and at most a few compression chunks are in flight.
//!
//! The tar is deterministic: entries follow the (sorted) changes; every added or modified path
//! is preceded by its parent directories, each emitted once with its current metadata; an
//! opaque directory is followed immediately by its `.wh..wh..opq` marker; deletions become
//! `.wh.<name>` entries; a second name of an inode already in the layer becomes a hardlink
//! entry. Modes, owners and mtimes are taken from the files exactly (only clamped by
//! [`LayerOptions::mtime`]); user/group names are blank. With the same root content and the
//! same changes the blob is byte-identical.
//!
//! Each regular file is read once, here: what was read (its inode, content digest and xattr
//! hash) goes back in [`Changes`] for the snapshotter, which left hashing it to this pass
//! ([`super::Snapshotter::settle`]).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;

use serde::{Deserialize, Serialize};
use tar::EntryType;

use super::snapshot::{ChangeKind, Changes};
use super::snapshot_lazy::{FileRead, xattr_hash};
use super::tar_header::{self, EntryMeta};
use super::{FileType, FsError, ParentDirs, Root, Stat, path, sys};
use crate::digest::{Digest, Hasher, HashingWriter};
use crate::image::manifest::Compression;
use crate::image::store::{BlobStore, BlobWriter};
use crate::image::tap::BlobTap;

/// How a layer is encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerOptions {
    pub compression: Compression,
    /// gzip 0–9 (default 6), zstd 1–22 (default 3).
    pub level: Option<i32>,
    /// Clamp every mtime to at most this (`Some(0)` for `--reproducible`).
    pub mtime: Option<i64>,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions { compression: Compression::Gzip, level: None, mtime: None }
    }
}

/// The layer that was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Digest of the compressed blob (its name in the store).
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Compressed size.
    pub size: u64,
    pub uncompressed_size: u64,
    pub compression: Compression,
    /// Tar entries (PAX extension headers not counted).
    pub entries: u64,
}

/// gzip level when none is asked for: zlib-rs's fastest level with dynamic Huffman codes.
///
/// kaniko compresses at Go's `gzip.BestSpeed` (go-containerregistry's tarball layers), which
/// codes every block with its own Huffman tables, or stores it. zlib-rs's level 1 is zlib-ng's
/// `deflate_quick`: fixed Huffman codes only, 7% larger than Go's on W3's context and 13% on a
/// Debian root (bench/README.md, "Pushed size"). Level 2 (`deflate_fast`) is the first with
/// dynamic codes and comes out smaller than Go's on both, at 60–85% of level 1's speed.
pub const DEFAULT_GZIP_LEVEL: u32 = 2;

/// The compression stage of the pipeline.
enum Compressor {
    None(BlobWriter),
    Gzip(super::pgzip::ParallelGzip<BlobWriter>),
    Zstd(zstd::stream::write::Encoder<'static, BlobWriter>),
}

impl Compressor {
    fn new(w: BlobWriter, c: Compression, level: Option<i32>) -> io::Result<Compressor> {
        Ok(match c {
            Compression::None => Compressor::None(w),
            Compression::Gzip => {
                // Level 2 by default, the size of kaniko's gzip.BestSpeed (see DEFAULT_GZIP_LEVEL):
                // gzip is the bottleneck of layer writing, and level 6 costs several times the
                // time for ~5% smaller layers. `--compression-level` chooses.
                let level = level.unwrap_or(DEFAULT_GZIP_LEVEL as i32).clamp(0, 9) as u32;
                // Compressed on every core, in fixed chunks: the output does not depend on the
                // thread count, so layers stay reproducible.
                Compressor::Gzip(super::pgzip::ParallelGzip::new(w, level))
            }
            Compression::Zstd => {
                let level = level.unwrap_or(3).clamp(1, 22);
                Compressor::Zstd(zstd::stream::write::Encoder::new(w, level)?)
            }
        })
    }

    fn finish(self) -> io::Result<BlobWriter> {
        match self {
            Compressor::None(w) => Ok(w),
            Compressor::Gzip(g) => g.finish(),
            Compressor::Zstd(z) => z.finish(),
        }
    }
}

impl Write for Compressor {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(g) => g.write(buf),
            Compressor::Zstd(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(g) => g.flush(),
            Compressor::Zstd(z) => z.flush(),
        }
    }
}

type TarOut = tar::Builder<HashingWriter<Compressor>>;

/// Writes the layer for `changes` (read from `root`) into `store` and fills each regular
/// file's `digest`. Second names of an inode already written become `Hardlink` changes. Fails
/// with [`FsError::ChangedWhileReading`] if a file changes size or disappears while being
/// written (the partial blob is discarded).
pub fn write_layer(
    root: &Root,
    changes: &mut Changes,
    store: &BlobStore,
    opts: &LayerOptions,
) -> Result<LayerInfo, FsError> {
    write_layer_tapped(root, changes, store, opts, None, None).map(|(info, _)| info)
}

/// [`write_layer`], sending a copy of the compressed bytes to `tap` as they are produced (for
/// an upload running alongside). The flag says whether every byte went out through the tap.
/// `cancel` is looked at before every entry and every chunk of a file's data: a build stopped
/// while a big layer is written ends within a chunk ([`FsError::Cancelled`]; the blob, never
/// committed, is deleted, and an upload fed by the tap never gets its digest).
pub fn write_layer_tapped(
    root: &Root,
    changes: &mut Changes,
    store: &BlobStore,
    opts: &LayerOptions,
    tap: Option<BlobTap>,
    cancel: Option<&crate::fs::Cancel>,
) -> Result<(LayerInfo, bool), FsError> {
    let mut blob = store.writer()?;
    if let Some(t) = tap {
        blob.set_tap(t);
    }
    let comp = Compressor::new(blob, opts.compression, opts.level)
        .map_err(|source| FsError::LayerWrite { path: "(compressor)".into(), source })?;
    let mut w = LayerWriter {
        root,
        opts,
        tar: tar::Builder::new(HashingWriter::new(comp)),
        emitted: HashSet::new(),
        opaque: Vec::new(),
        links: HashMap::new(),
        entries: 0,
        buf: vec![0u8; 256 * 1024],
        reads: Vec::new(),
        dirs: ParentDirs::default(),
        cancel,
    };
    for i in 0..changes.entries.len() {
        w.cancelled()?;
        w.change(changes, i)?;
    }
    changes.reads = std::mem::take(&mut w.reads);
    let fin = |source| FsError::LayerWrite { path: "(end of archive)".into(), source };
    let hashing = w.tar.into_inner().map_err(fin)?;
    let (comp, diff_id, uncompressed_size) = hashing.finish();
    let mut blob = comp.finish().map_err(fin)?;
    let size = blob.written();
    let tapped = blob.take_tap().is_some_and(BlobTap::finish);
    let digest = blob.commit(None)?;
    let info =
        LayerInfo { digest, diff_id, size, uncompressed_size, compression: opts.compression, entries: w.entries };
    Ok((info, tapped))
}

struct LayerWriter<'a> {
    root: &'a Root,
    opts: &'a LayerOptions,
    tar: TarOut,
    /// Directories already in the tar (image paths).
    emitted: HashSet<String>,
    /// Opaque directories written so far: a deletion below one needs no whiteout (the marker
    /// hides everything the layers below had there).
    opaque: Vec<String>,
    /// (dev, ino) → (first image path, its digest, its xattr hash): later names become
    /// hardlink entries.
    links: HashMap<(u64, u64), (String, Digest, u64)>,
    entries: u64,
    buf: Vec<u8>,
    /// What was read of each regular file, for the snapshotter.
    reads: Vec<FileRead>,
    /// Whether to give up (see [`write_layer_tapped`]).
    cancel: Option<&'a crate::fs::Cancel>,
    /// The directory of the last file opened (changes come in path order).
    dirs: ParentDirs,
}

/// The tar path of an image path: relative, with a trailing `/` for directories.
fn tar_path(p: &str, dir: bool) -> String {
    let rel = p.trim_start_matches('/');
    if dir { format!("{rel}/") } else { rel.to_string() }
}

impl LayerWriter<'_> {
    fn werr(p: &str) -> impl FnOnce(io::Error) -> FsError + '_ {
        move |source| FsError::LayerWrite { path: p.to_string(), source }
    }

    fn mtime(&self, st: &Stat) -> u64 {
        let mut m = st.mtime.sec;
        if let Some(c) = self.opts.mtime {
            m = m.min(c);
        }
        m.max(0) as u64
    }

    fn cancelled(&self) -> Result<(), FsError> {
        super::Cancel::check(self.cancel)
    }

    fn change(&mut self, changes: &mut Changes, i: usize) -> Result<(), FsError> {
        let p = changes.entries[i].path.clone();
        if p == "/" {
            // The root directory itself is never part of a layer.
            return Ok(());
        }
        let parent = path::parent(&p);
        if changes.entries[i].kind == ChangeKind::Deleted {
            if self.opaque.iter().any(|d| p.strip_prefix(d.as_str()).is_some_and(|rest| rest.starts_with('/'))) {
                return Ok(());
            }
            if !self.parents(parent, true)? {
                // The parent is no longer a directory: its replacement already hides `p`.
                return Ok(());
            }
            let wh = path::join(parent, &format!(".wh.{}", path::file_name(&p)));
            return self.whiteout(&wh);
        }
        self.parents(parent, false)?;
        // A regular file, as the snapshot saw it, is opened at once and its fstat decides: its
        // path is resolved once, not twice (an lstat, then the open), which is most of the
        // system calls of a layer of many small files. The open neither follows a link nor
        // blocks (`O_NOFOLLOW`, `O_NONBLOCK`), and nothing runs in the root between the snapshot
        // and this; whatever else the path is now, the lstat below says.
        let mut opened = None;
        if changes.entries[i].file_type == FileType::File {
            opened = self.root.open_file_nofollow_in(&p, &mut self.dirs).ok();
        }
        let st = match &opened {
            Some((_, st)) => st.clone(),
            None => match self.root.lstat(&p)? {
                Some(st) => st,
                None => return Err(FsError::ChangedWhileReading { path: p, reason: "it no longer exists".into() }),
            },
        };
        let c = &mut changes.entries[i];
        c.mode = st.mode;
        c.uid = st.uid;
        c.gid = st.gid;
        c.mtime = self.mtime(&st) as i64;
        match st.file_type {
            FileType::Dir => {
                if self.emitted.insert(p.clone()) {
                    self.simple(&p, &st, EntryType::Directory, None)?;
                }
                if c.opaque {
                    self.whiteout(&path::join(&p, ".wh..wh..opq"))?;
                    self.opaque.push(p.clone());
                }
                c.file_type = FileType::Dir;
                c.size = 0;
            }
            FileType::File => {
                if st.nlink > 1
                    && let Some((first, digest, xattrs)) = self.links.get(&(st.dev, st.ino)).cloned()
                {
                    self.simple(&p, &st, EntryType::Link, Some(&tar_path(&first, false)))?;
                    self.reads.push(FileRead::new(i, &st, xattrs, &digest));
                    c.file_type = FileType::Hardlink;
                    c.link_target = Some(first);
                    c.digest = Some(digest.into());
                    c.size = st.size;
                    return Ok(());
                }
                let (digest, read, xattrs) = self.file(&p, &st, opened)?;
                let size = read.size;
                self.reads.push(FileRead::new(i, &read, xattrs, &digest));
                if st.nlink > 1 {
                    self.links.insert((st.dev, st.ino), (p.clone(), digest.clone(), xattrs));
                }
                c.file_type = FileType::File;
                c.link_target = None;
                c.digest = Some(digest.into());
                c.size = size;
            }
            FileType::Symlink => {
                let target = self.root.read_link(&p)?;
                self.simple(&p, &st, EntryType::Symlink, Some(&target))?;
                c.file_type = FileType::Symlink;
                c.size = st.size;
                c.link_target = Some(target);
            }
            FileType::CharDevice | FileType::BlockDevice | FileType::Fifo => {
                let kind = match st.file_type {
                    FileType::CharDevice => EntryType::Char,
                    FileType::BlockDevice => EntryType::Block,
                    _ => EntryType::Fifo,
                };
                self.simple(&p, &st, kind, None)?;
                c.file_type = st.file_type;
                c.size = 0;
            }
            // Sockets are runtime artefacts, never image content.
            FileType::Socket | FileType::Hardlink => {}
        }
        Ok(())
    }

    /// Emits the not-yet-emitted ancestors of `dir` (inclusive), outermost first. Returns
    /// false when one of them is not a directory (only allowed for whiteouts, `lenient`).
    fn parents(&mut self, dir: &str, lenient: bool) -> Result<bool, FsError> {
        let mut todo = Vec::new();
        let mut d = dir;
        while d != "/" && !self.emitted.contains(d) {
            todo.push(d.to_string());
            d = path::parent(d);
        }
        for d in todo.into_iter().rev() {
            match self.root.lstat(&d)? {
                Some(st) if st.is_dir() => {
                    self.simple(&d, &st, EntryType::Directory, None)?;
                    self.emitted.insert(d);
                }
                _ if lenient => return Ok(false),
                _ => {
                    return Err(FsError::ChangedWhileReading {
                        path: d,
                        reason: "a parent directory of a changed path is gone or no longer a directory".into(),
                    });
                }
            }
        }
        Ok(true)
    }

    /// The xattrs that belong in a layer ([`super::is_image_xattr`]).
    fn xattrs(&self, p: &str) -> Result<super::sys::Xattrs, FsError> {
        let mut x = self.root.xattrs(p)?;
        x.retain(|(name, _)| super::is_image_xattr(name));
        Ok(x)
    }

    /// An entry without data (directory, symlink, hardlink, device, FIFO).
    fn simple(&mut self, p: &str, st: &Stat, kind: EntryType, link: Option<&str>) -> Result<(), FsError> {
        let xattrs = if kind == EntryType::Link { Vec::new() } else { self.xattrs(p)? };
        let dev = matches!(kind, EntryType::Char | EntryType::Block)
            .then(|| (rustix::fs::major(st.rdev), rustix::fs::minor(st.rdev)));
        let tp = tar_path(p, kind == EntryType::Directory);
        let entry = tar_header::build(&EntryMeta {
            kind,
            path: &tp,
            link,
            mode: st.mode,
            uid: st.uid,
            gid: st.gid,
            mtime: self.mtime(st),
            size: 0,
            dev,
            xattrs: &xattrs,
        })
        .map_err(Self::werr(p))?;
        tar_header::write_header(&mut self.tar, &entry).map_err(Self::werr(p))?;
        self.entries += 1;
        Ok(())
    }

    fn whiteout(&mut self, p: &str) -> Result<(), FsError> {
        let tp = tar_path(p, false);
        let entry = tar_header::build(&EntryMeta {
            kind: EntryType::Regular,
            path: &tp,
            link: None,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            dev: None,
            xattrs: &[],
        })
        .map_err(Self::werr(p))?;
        tar_header::write_header(&mut self.tar, &entry).map_err(Self::werr(p))?;
        self.entries += 1;
        Ok(())
    }

    /// A regular file: header with the size of the opened inode, then exactly that many bytes,
    /// hashed on the way. `lst` is its lstat, or the fstat of `opened` when the caller already
    /// opened it. Returns the content digest, the opened inode's metadata and the hash of all
    /// its xattrs (as the snapshot index keeps it).
    fn file(&mut self, p: &str, lst: &Stat, opened: Option<(File, Stat)>) -> Result<(Digest, Stat, u64), FsError> {
        let (mut f, st) = match opened {
            Some(o) => o,
            None => self.root.open_file_nofollow_in(p, &mut self.dirs)?,
        };
        if st.ino != lst.ino || st.dev != lst.dev {
            return Err(FsError::ChangedWhileReading { path: p.to_string(), reason: "it was replaced".into() });
        }
        let mut xattrs = sys::fxattrs(f.as_fd()).map_err(|e| self.root.io_err("read xattrs of", p, e))?;
        let all_xattrs = xattr_hash(&xattrs);
        xattrs.retain(|(name, _)| super::is_image_xattr(name));
        let tp = tar_path(p, false);
        let entry = tar_header::build(&EntryMeta {
            kind: EntryType::Regular,
            path: &tp,
            link: None,
            mode: st.mode,
            uid: st.uid,
            gid: st.gid,
            mtime: self.mtime(&st),
            size: st.size,
            dev: None,
            xattrs: &xattrs,
        })
        .map_err(Self::werr(p))?;
        tar_header::write_header(&mut self.tar, &entry).map_err(Self::werr(p))?;
        self.entries += 1;
        let mut hasher = Hasher::new();
        let mut remaining = st.size;
        while remaining > 0 {
            let want = remaining.min(self.buf.len() as u64) as usize;
            let n = match f.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(FsError::ChangedWhileReading {
                        path: p.to_string(),
                        reason: format!("it shrank while being read ({} of {} bytes)", st.size - remaining, st.size),
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.root.io_err("read", p, e)),
            };
            hasher.update(&self.buf[..n]);
            self.tar.get_mut().write_all(&self.buf[..n]).map_err(Self::werr(p))?;
            remaining -= n as u64;
            self.cancelled()?;
        }
        let mut probe = [0u8; 1];
        if f.read(&mut probe).map_err(|e| self.root.io_err("read", p, e))? > 0 {
            return Err(FsError::ChangedWhileReading {
                path: p.to_string(),
                reason: format!("it grew beyond {} bytes while being read", st.size),
            });
        }
        tar_header::write_padding(self.tar.get_mut(), st.size).map_err(Self::werr(p))?;
        Ok((hasher.finish(), st, all_xattrs))
    }
}
