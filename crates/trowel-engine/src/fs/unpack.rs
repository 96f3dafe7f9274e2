//! Applying a layer tar to a root. This is a security boundary: layers are hostile input.
//!
//! The applier walks `tar::Archive::entries()` itself (never `Archive::unpack`, whose host-side
//! `canonicalize` check both races and rejects legitimate `lib64 -> /lib` layers). For every
//! entry it:
//! 1. refuses absolute paths and `..` components outright;
//! 2. resolves the entry's parent component by component inside the root, following symlinks
//!    as the image would, and refuses the entry if that resolution climbs above the root
//!    (instead of silently clamping it);
//! 3. performs the write through [`Root`], whose `openat2(RESOLVE_IN_ROOT)` parents and
//!    no-follow final components make an escape impossible even if step 2 were wrong.
//!
//! OCI whiteouts are applied (see `unpack_whiteout.rs`) and never written to disk. Memory does
//! not grow with the layer's size: file data is copied with one fixed buffer, and tar extension
//! headers, which the `tar` crate buffers, are bounded by `tar_guard.rs`. Memory grows only with
//! the number of entries (the set of paths this layer wrote, needed for opaque whiteouts).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};
use tar::EntryType;

use super::extract::Selection;
use super::path;
use super::readahead::Readahead;
use super::tar_guard::TarGuard;
use super::unpack_batch::{Batch, Creation, Job, SMALL_FILE, create_new};
use super::unpack_whiteout::{clear_lower, remove_respecting};
use super::{FileType, FsError, IgnoreList, NodeKind, Root, Timespec};

/// How a layer is applied.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Entries at or below these image paths are skipped, and whiteouts never delete them.
    pub ignore: IgnoreList,
    /// Create char/block device nodes (FIFOs are always allowed). When false, a device entry
    /// fails the unpack with [`FsError::DeviceNotAllowed`].
    pub allow_devices: bool,
    /// Apply the entries' uid/gid (true when running as root).
    pub preserve_owner: bool,
    /// Refuse any entry whose data is larger than this.
    pub max_entry_size: Option<u64>,
    /// Refuse the layer once the entries' data adds up to more than this.
    pub max_total_size: Option<u64>,
    /// Write only part of the layer (a `COPY --from` source, see `extract.rs`): every entry is
    /// still read, checked and hashed, but files outside the selection are not written.
    pub select: Option<Arc<Selection>>,
    /// The root is the bottom layer of an overlayfs stack (an entry of the unpacked-layer
    /// store), written directly rather than through an overlay: what overlayfs would give a
    /// meaning it does not have in the image is made what an overlay makes of it. Attributes
    /// `trusted.overlay.*` are stored escaped (`trusted.overlay.overlay.*`, read back through
    /// the overlay as written), and a character device 0:0 — a whiteout to overlayfs — is
    /// refused with [`FsError::DeviceNotAllowed`] as an overlay refuses to create one.
    pub overlay_lower: bool,
}

impl Default for UnpackOptions {
    /// Nothing ignored, devices refused, owners kept when running as root, no size limits.
    fn default() -> Self {
        UnpackOptions {
            ignore: IgnoreList::default(),
            allow_devices: false,
            preserve_owner: rustix::process::geteuid().is_root(),
            max_entry_size: None,
            max_total_size: None,
            select: None,
            overlay_lower: false,
        }
    }
}

/// What an unpack did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpackStats {
    /// Tar entries applied (whiteouts included, skipped entries not).
    pub entries: u64,
    /// Bytes of regular-file data written.
    pub bytes: u64,
    /// Whiteout entries (`.wh.<name>` and opaque markers) applied.
    pub whiteouts: u64,
    /// The top-most image paths the layer wrote, removed or cleared (resolved inside the root),
    /// sorted: what a snapshot must look at to see everything the layer changed.
    pub touched: Vec<String>,
    /// Directories no entry declared that were created (0755, owned by whoever unpacks) because
    /// entries below them needed a parent (resolved, sorted). ADD applies an archive's own
    /// directory entries to directories that exist, but not these.
    pub implied_dirs: Vec<String>,
    /// Entries read and checked but not written because a selection left them out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Wraps a layer blob in the right decompressor, sniffing the magic bytes: gzip (`1f 8b`),
/// zstd (`28 b5 2f fd`), otherwise plain tar. Decompression runs on its own thread, ahead of
/// whoever applies the tar.
pub fn open_layer(file: File) -> Result<Box<dyn Read + Send>, FsError> {
    let (compressed, r) = decoder(file)?;
    if !compressed {
        return Ok(r);
    }
    let r = Readahead::new(r).map_err(|source| FsError::Layer { entry: None, source })?;
    Ok(Box::new(r))
}

/// Like [`open_layer`], and the uncompressed stream is also hashed, on a thread of its own
/// between the one that decompresses and the one that applies the tar (a plain tar is read and
/// hashed there): [`Readahead::digest`] is the layer's diff_id once the reader has returned end
/// of stream. Inflating is the slowest of the three, and hashing on the same thread slowed it
/// further; on the applier's thread it delayed the file system's work (measured in
/// bench/README.md, "Unpacking a base").
pub fn open_layer_hashed(file: File) -> Result<Readahead, FsError> {
    let err = |source| FsError::Layer { entry: None, source };
    let (compressed, r) = decoder(file)?;
    let r: Box<dyn Read + Send> = if compressed { Box::new(Readahead::new(r).map_err(err)?) } else { r };
    Readahead::hashing(r).map_err(err)
}

/// The blob's decompressor (or the blob itself), and whether it is compressed.
fn decoder(file: File) -> Result<(bool, Box<dyn Read + Send>), FsError> {
    let mut r = BufReader::with_capacity(256 * 1024, file);
    let head = r.fill_buf().map_err(|source| FsError::Layer { entry: None, source })?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok((true, Box::new(flate2::read::MultiGzDecoder::new(r))))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let d = zstd::stream::read::Decoder::with_buffer(r).map_err(|source| FsError::Layer { entry: None, source })?;
        Ok((true, Box::new(d)))
    } else {
        Ok((false, Box::new(r)))
    }
}

/// Applies one layer (an uncompressed tar stream; see [`open_layer`]) to `root`.
pub fn unpack_layer(root: &Root, tar_stream: impl Read, opts: &UnpackOptions) -> Result<UnpackStats, FsError> {
    let mut ap = Applier {
        root,
        opts,
        layer_paths: HashSet::new(),
        dir_times: HashMap::new(),
        parents: HashMap::new(),
        stats: UnpackStats::default(),
        removed: Vec::new(),
        total: 0,
        buf: vec![0u8; 256 * 1024],
        dir_fds: HashMap::new(),
        how: Creation::of_process(),
        batch: Batch::default(),
        pending_targets: HashSet::new(),
        pending_dirs: HashSet::new(),
        implied: Vec::new(),
    };
    let mut archive = tar::Archive::new(TarGuard::new(tar_stream));
    let entries = archive.entries().map_err(|source| FsError::Layer { entry: None, source })?;
    let mut last: Option<String> = None;
    for entry in entries {
        let mut entry = entry.map_err(|source| FsError::Layer { entry: last.clone(), source })?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        ap.apply(&mut entry, &name)?;
        last = Some(name);
    }
    ap.flush()?;
    ap.stats.touched = top_most(ap.layer_paths.iter().chain(ap.removed.iter()));
    let mut implied: Vec<String> = ap.implied.iter().filter(|d| !ap.layer_paths.contains(*d)).cloned().collect();
    implied.sort();
    implied.dedup();
    ap.stats.implied_dirs = implied;
    for (p, t) in &ap.dir_times {
        match root.set_times(p, *t, *t) {
            Ok(()) => {}
            // Removed again later in the same layer.
            Err(e) if e.is_errno(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ap.stats)
}

/// Directory descriptors an unpack keeps open at most (see [`Applier::remember_dir`]).
const MAX_DIR_FDS: usize = 512;

/// The state of one unpack.
struct Applier<'a> {
    root: &'a Root,
    opts: &'a UnpackOptions,
    /// Resolved image paths written by this layer: opaque whiteouts keep these.
    layer_paths: HashSet<String>,
    /// Directory mtimes, applied once all their children are written.
    dir_times: HashMap<String, Timespec>,
    /// Cache of parent path → resolved parent path. Cleared whenever anything is removed or
    /// replaced, the only operations that change how a path resolves (see `clear_for_nondir`).
    parents: HashMap<String, String>,
    stats: UnpackStats,
    /// Paths removed by whiteouts and directories cleared by opaque markers.
    removed: Vec<String>,
    total: u64,
    buf: Vec<u8>,
    /// Descriptors of the directories files went into or that were just made (by resolved
    /// path), and whether each is setgid. Dropped whenever a directory may have been replaced
    /// or moved, and when [`MAX_DIR_FDS`] are open.
    dir_fds: HashMap<String, (Arc<OwnedFd>, bool)>,
    /// What creating a file gives it by itself (owner, umask).
    how: Creation,
    /// Small files waiting to be created together, with their paths and directories.
    batch: Batch,
    pending_targets: HashSet<String>,
    pending_dirs: HashSet<String>,
    /// Directories created as missing parents (some may be declared by a later entry).
    implied: Vec<String>,
}

/// Metadata of an entry, gathered from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn unsafe_entry(entry: &str, reason: impl Into<String>) -> FsError {
    FsError::UnsafeEntry { entry: entry.to_string(), reason: reason.into() }
}

/// Validates a path from a layer and returns its cleaned absolute form. `./` prefixes are fine;
/// absolute paths and `..` are refused.
pub(crate) fn entry_path(raw: &[u8], entry: &str) -> Result<String, FsError> {
    let s = std::str::from_utf8(raw).map_err(|_| unsafe_entry(entry, "path is not UTF-8"))?;
    if s.starts_with('/') {
        return Err(unsafe_entry(entry, "absolute path"));
    }
    if s.as_bytes().contains(&0) {
        return Err(unsafe_entry(entry, "path contains a NUL byte"));
    }
    if path::components(s).any(|c| c == "..") {
        return Err(unsafe_entry(entry, "path contains a \"..\" component"));
    }
    Ok(path::clean(s))
}

/// Parses a PAX time (`1700000000.123456789`, possibly negative).
fn parse_pax_time(v: &str) -> Option<Timespec> {
    let (s, frac) = v.split_once('.').unwrap_or((v, ""));
    let sec: i64 = s.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nsec: u32 = if digits.is_empty() { 0 } else { format!("{digits:0<9}").parse().ok()? };
    if sec < 0 && nsec > 0 {
        // -1.25 means 1.25 s before the epoch.
        return Some(Timespec::new(sec - 1, 1_000_000_000 - nsec));
    }
    Some(Timespec::new(sec, nsec))
}

impl Applier<'_> {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, raw_name: &str) -> Result<(), FsError> {
        let etype = entry.header().entry_type();
        if matches!(etype, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let logical = entry_path(&entry.path_bytes(), raw_name)?;
        let size = entry.size();
        if let Some(limit) = self.opts.max_entry_size
            && size > limit
        {
            return Err(FsError::TooLarge { entry: raw_name.to_string(), size, limit });
        }
        self.total = self.total.saturating_add(size);
        if let Some(limit) = self.opts.max_total_size
            && self.total > limit
        {
            return Err(FsError::LayerTooLarge { entry: raw_name.to_string(), size: self.total, limit });
        }
        if self.opts.ignore.is_ignored(&logical) {
            return Ok(());
        }
        let name = path::file_name(&logical).to_string();
        // AUFS bookkeeping (`.wh..wh.aufs`, `.wh..wh.plnk/…`) found in old Docker layers is not
        // image content; only the opaque marker among `.wh..wh.` names means something.
        if path::components(&logical).any(|c| c.starts_with(".wh..wh.")) && name != ".wh..wh..opq"
            || path::components(path::parent(&logical)).any(|c| c.starts_with(".wh..wh."))
        {
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            self.flush()?;
            self.dir_fds.clear();
            return self.whiteout(&logical, hidden, raw_name);
        }
        let small_file = matches!(etype, EntryType::Regular | EntryType::Continuous) && size <= SMALL_FILE;
        let is_dir = etype == EntryType::Directory;
        // Small files and directories may join (or pass) the pending batch when their parent
        // is known and nothing pending is in their way; everything else waits for the batch.
        match self.parents.get(path::parent(&logical)) {
            Some(parent) if small_file || is_dir => {
                let would_be = if logical == "/" { "/".to_string() } else { path::join(parent, &name) };
                let parent = parent.clone();
                if self.conflicts_with_batch(&would_be, &parent, is_dir) {
                    self.flush()?;
                }
            }
            _ => self.flush()?,
        }
        let parent = self.resolve_parent(&logical, raw_name, true)?;
        let target = if logical == "/" { "/".to_string() } else { path::join(&parent, &name) };
        if self.opts.ignore.is_ignored(&target) {
            return Ok(());
        }
        let meta = self.meta(entry, raw_name)?;
        if let Some(sel) = &self.opts.select
            && !sel.writes(etype, &target, self.root)?
        {
            super::extract::check_left_out(entry, etype, self.opts, raw_name)?;
            self.stats.skipped += 1;
            return Ok(());
        }
        self.layer_paths.insert(target.clone());
        self.stats.entries += 1;
        match etype {
            EntryType::Directory => {
                self.dir(&target, &meta)?;
                // Its files follow: they find their parent resolved (and may be batched).
                if logical != "/" {
                    self.parents.insert(logical.clone(), target.clone());
                }
                Ok(())
            }
            EntryType::Regular | EntryType::Continuous if small_file && meta.xattrs.is_empty() => {
                self.dir_times.remove(&target);
                self.enqueue(entry, &target, &meta, raw_name)
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.flush()?;
                self.dir_times.remove(&target);
                self.file(entry, &target, &meta, raw_name)
            }
            EntryType::Symlink => {
                self.dir_times.remove(&target);
                let link = entry.link_name_bytes().ok_or_else(|| unsafe_entry(raw_name, "symlink without a target"))?;
                let link = std::str::from_utf8(&link)
                    .map_err(|_| unsafe_entry(raw_name, "symlink target is not UTF-8"))?
                    .to_string();
                self.symlink(&target, &link, &meta, raw_name)
            }
            EntryType::Link => {
                self.dir_times.remove(&target);
                let link =
                    entry.link_name_bytes().ok_or_else(|| unsafe_entry(raw_name, "hardlink without a target"))?;
                self.hardlink(&target, &link, raw_name)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.dir_times.remove(&target);
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let kind = match etype {
                    EntryType::Char => NodeKind::CharDevice,
                    EntryType::Block => NodeKind::BlockDevice,
                    _ => NodeKind::Fifo,
                };
                self.node(&target, kind, rustix::fs::makedev(major, minor), &meta, raw_name)
            }
            other => Err(FsError::UnsupportedEntry { entry: raw_name.to_string(), kind: format!("{other:?}") }),
        }
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, raw_name: &str) -> Result<Meta, FsError> {
        let h = entry.header();
        let bad = |what: &str, e: io::Error| unsafe_entry(raw_name, format!("bad {what} field: {e}"));
        let mode = h.mode().map_err(|e| bad("mode", e))? & 0o7777;
        let uid =
            u32::try_from(h.uid().map_err(|e| bad("uid", e))?).map_err(|_| unsafe_entry(raw_name, "uid too large"))?;
        let gid =
            u32::try_from(h.gid().map_err(|e| bad("gid", e))?).map_err(|_| unsafe_entry(raw_name, "gid too large"))?;
        let secs = h.mtime().map_err(|e| bad("mtime", e))?;
        let mut mtime = Timespec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0);
        let mut xattrs = Vec::new();
        if let Some(exts) =
            entry.pax_extensions().map_err(|source| FsError::Layer { entry: Some(raw_name.into()), source })?
        {
            for ext in exts {
                let ext = ext.map_err(|source| FsError::Layer { entry: Some(raw_name.into()), source })?;
                let Ok(key) = ext.key() else { continue };
                if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
                    let attr = match attr.strip_prefix("trusted.overlay.") {
                        Some(rest) if self.opts.overlay_lower => format!("trusted.overlay.overlay.{rest}"),
                        _ => attr.to_string(),
                    };
                    xattrs.push((attr, ext.value_bytes().to_vec()));
                } else if key == "mtime"
                    && let Some(t) = ext.value().ok().and_then(parse_pax_time)
                {
                    mtime = t;
                }
            }
        }
        Ok(Meta { mode, uid, gid, mtime, xattrs })
    }

    /// Resolves the parent of `logical` inside the root, refusing escapes, and makes sure it
    /// is a directory (creating missing ones: layers may omit parent entries).
    fn resolve_parent(&mut self, logical: &str, raw_name: &str, create: bool) -> Result<String, FsError> {
        let parent = path::parent(logical);
        if let Some(r) = self.parents.get(parent) {
            return Ok(r.clone());
        }
        let res = self.root.resolve_impl(parent, true, true)?;
        if let Some(why) = res.escape {
            return Err(unsafe_entry(raw_name, format!("its parent leaves the root through a symlink ({why})")));
        }
        if self.opts.ignore.is_ignored(&res.path) {
            // The caller checks the target against the ignore list and skips it.
            return Ok(res.path);
        }
        match self.root.lstat(&res.path)? {
            Some(st) if st.is_dir() => {}
            Some(st) => {
                return Err(unsafe_entry(
                    raw_name,
                    format!("parent {} is a {:?}, not a directory", res.path, st.file_type),
                ));
            }
            None if create => {
                let made = self.root.mkdir_all(&res.path, 0o755, None)?;
                self.implied.extend(made);
            }
            None => return Ok(res.path),
        }
        self.parents.insert(parent.to_string(), res.path.clone());
        Ok(res.path)
    }

    /// Clears what is at `target` so a non-directory can be created there. This is where a link
    /// or node replaces a directory or a symlink, the only way (with whiteouts and a directory
    /// replacing a non-directory) that how paths resolve can change: the caches of resolved
    /// parents and of directory descriptors are dropped here whenever anything was replaced. A
    /// link or node made under a name that was free changes how nothing resolves (a cached
    /// resolution went only through names that existed), so the caches stay.
    fn clear_for_nondir(&mut self, target: &str) -> Result<Option<super::Stat>, FsError> {
        let existing = self.root.lstat(target)?;
        if let Some(st) = &existing {
            if st.is_dir() {
                remove_respecting(self.root, target, &self.opts.ignore)?;
                if self.root.lstat(target)?.is_some() {
                    return Err(FsError::WrongType {
                        path: target.to_string(),
                        root: self.root.host_path().display().to_string(),
                        reason: "a directory holding ignored paths cannot be replaced by a non-directory".into(),
                    });
                }
            } else {
                self.root.remove_all(target)?;
            }
            self.parents.clear();
            self.dir_fds.clear();
        }
        Ok(existing)
    }

    fn dir(&mut self, target: &str, meta: &Meta) -> Result<(), FsError> {
        if self.new_dir(target, meta)? {
            self.dir_times.insert(target.to_string(), meta.mtime);
            return Ok(());
        }
        match self.root.lstat(target)? {
            Some(st) if st.is_dir() => {}
            Some(_) => {
                self.root.remove_all(target)?;
                self.parents.clear();
                self.dir_fds.clear();
                self.root.mkdir_all(target, meta.mode, None)?;
            }
            None => {
                self.root.mkdir_all(target, meta.mode, None)?;
            }
        }
        self.apply_meta(target, meta, FileType::Dir)?;
        self.dir_times.insert(target.to_string(), meta.mtime);
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        target: &str,
        meta: &Meta,
        raw_name: &str,
    ) -> Result<(), FsError> {
        let (dir, setgid) = self.dir_of(target)?;
        let owner = self.owner(meta, setgid);
        let bits = self.how.bits(meta.mode, owner.is_some());
        let mut f = match create_new(self.root, &dir, path::file_name(target), target, bits)? {
            Some(f) => f,
            None => {
                self.clear_for_nondir(target)?;
                self.root.create_file(target, meta.mode)?
            }
        };
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(FsError::Layer { entry: Some(raw_name.to_string()), source }),
            };
            f.write_all(&self.buf[..n]).map_err(|e| self.root.io_err("write", target, e))?;
            self.stats.bytes += n as u64;
        }
        super::unpack_batch::set_file_meta(self.root, &f, target, owner, meta.mode, meta.mtime, &self.how)?;
        // After the chown (which clears security.capability); setting xattrs leaves mtime alone.
        self.set_xattrs(target, meta)
    }

    /// Creates the directory `target` when nothing is there yet, through a descriptor of its
    /// parent, and gives it its owner, mode and attributes through a descriptor of its own,
    /// which then serves the files that go in it (a layer lists a directory just before its
    /// contents). Most directories of a base image are new: this takes 2 to 4 system calls
    /// where resolving the path again for each of creating, chowning and chmodding it took
    /// more than ten. `false` when the name is taken (or anything else fails): the caller then
    /// goes the general way, which replaces what is there or reports the error.
    fn new_dir(&mut self, target: &str, meta: &Meta) -> Result<bool, FsError> {
        if target == "/" {
            return Ok(false);
        }
        let (parent, setgid) = self.dir_of(target)?;
        let name = path::file_name(target);
        if rustix::fs::mkdirat(&*parent, name, Mode::from_raw_mode(meta.mode & 0o777)).is_err() {
            return Ok(false);
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&*parent, name, flags, Mode::empty())
            .map_err(|e| self.root.io_err("open the new directory", target, e))?;
        if let Some((uid, gid)) = self.owner(meta, setgid) {
            rustix::fs::fchown(&fd, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)))
                .map_err(|e| self.root.io_err("chown", target, e))?;
        }
        // A setgid parent gives a new directory its setgid bit, and the umask takes bits.
        let made = Mode::from_raw_mode(meta.mode & 0o777 & !self.how.umask.unwrap_or(0o777));
        if setgid || meta.mode & 0o7000 != 0 || self.how.umask.is_none() || made.bits() != meta.mode & 0o7777 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
                .map_err(|e| self.root.io_err("chmod", target, e))?;
        }
        self.set_xattrs(target, meta)?;
        self.remember_dir(target.to_string(), Arc::new(fd), meta.mode & 0o2000 != 0);
        Ok(true)
    }

    /// Keeps a directory's descriptor for the files that go in it, a bounded number of them.
    fn remember_dir(&mut self, dir: String, fd: Arc<OwnedFd>, setgid: bool) {
        if self.dir_fds.len() >= MAX_DIR_FDS {
            self.dir_fds.clear();
        }
        self.dir_fds.insert(dir, (fd, setgid));
    }

    /// The owner to give a new file in a directory (setgid or not), `None` when owners are not
    /// preserved or creating the file already gives it that owner.
    fn owner(&self, meta: &Meta, dir_setgid: bool) -> Option<(u32, u32)> {
        self.opts.preserve_owner.then(|| self.how.chown((meta.uid, meta.gid), dir_setgid)).flatten()
    }

    /// A descriptor of the directory `target` goes in (resolved inside the root), and whether
    /// that directory is setgid (its new files get its group). Kept while files go into the
    /// same directory: a layer's files come directory by directory, and resolving the parent
    /// inside the root for each of 100,000 files is most of the cost of unpacking them.
    fn dir_of(&mut self, target: &str) -> Result<(Arc<OwnedFd>, bool), FsError> {
        let dir = path::parent(target);
        if let Some((fd, setgid)) = self.dir_fds.get(dir) {
            return Ok((Arc::clone(fd), *setgid));
        }
        let (fd, _) = self.root.parent(target)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.root.io_err("stat the parent directory of", target, e))?;
        let setgid = st.st_mode & libc::S_ISGID != 0;
        let fd = Arc::new(fd);
        self.remember_dir(dir.to_string(), Arc::clone(&fd), setgid);
        Ok((fd, setgid))
    }

    /// Whether an entry at `target` (in directory `parent`) must wait for the pending batch:
    /// a pending file would replace a directory on its path, it would replace or change a
    /// directory that pending files go in, or it is a directory where a file is pending.
    fn conflicts_with_batch(&self, target: &str, parent: &str, is_dir: bool) -> bool {
        if self.batch.is_empty() {
            return false;
        }
        let mut p = parent;
        loop {
            if self.pending_targets.contains(p) {
                return true;
            }
            if p == "/" || p.is_empty() {
                break;
            }
            p = path::parent(p);
        }
        if is_dir && self.pending_targets.contains(target) {
            return true;
        }
        let below = format!("{}/", target.trim_end_matches('/'));
        self.pending_dirs.iter().any(|d| d == target || d.starts_with(&below))
    }

    /// Adds a small file to the pending batch (its content read into memory).
    fn enqueue<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        target: &str,
        meta: &Meta,
        raw_name: &str,
    ) -> Result<(), FsError> {
        let (dir, setgid) = self.dir_of(target)?;
        let owner = self.owner(meta, setgid);
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data).map_err(|source| FsError::Layer { entry: Some(raw_name.to_string()), source })?;
        self.stats.bytes += data.len() as u64;
        let dir_path = path::parent(target).to_string();
        self.pending_targets.insert(target.to_string());
        self.pending_dirs.insert(dir_path.clone());
        self.batch.push(Job {
            dir,
            dir_path,
            name: path::file_name(target).to_string(),
            target: target.to_string(),
            data,
            mode: meta.mode,
            owner,
            mtime: meta.mtime,
        });
        if self.batch.is_full() {
            self.flush()?;
        }
        Ok(())
    }

    /// Creates the pending files; those whose name was taken are then replaced one by one, in
    /// layer order.
    fn flush(&mut self) -> Result<(), FsError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let taken = self.batch.create_all(self.root, &self.how)?;
        self.pending_targets.clear();
        self.pending_dirs.clear();
        for job in taken {
            self.clear_for_nondir(&job.target)?;
            let f = self.root.create_file(&job.target, job.mode)?;
            super::unpack_batch::finish(self.root, f, &job, &self.how)?;
        }
        Ok(())
    }

    fn symlink(&mut self, target: &str, link: &str, meta: &Meta, raw_name: &str) -> Result<(), FsError> {
        if link.is_empty() || link.as_bytes().contains(&0) {
            return Err(unsafe_entry(raw_name, "empty or invalid symlink target"));
        }
        if self.new_symlink(target, link, meta)? {
            return Ok(());
        }
        self.clear_for_nondir(target)?;
        self.root.symlink(link, target)?;
        self.apply_meta(target, meta, FileType::Symlink)
    }

    /// Creates the symlink `target` when its name is free, with its owner and times, through
    /// the descriptor of its directory (2 or 3 system calls instead of about twelve: a base
    /// image has hundreds of symlinks among its libraries). `false` when the name is taken (or
    /// the link cannot be made): the caller goes the general way.
    fn new_symlink(&mut self, target: &str, link: &str, meta: &Meta) -> Result<bool, FsError> {
        if target == "/" {
            return Ok(false);
        }
        path::check(link)?;
        let (parent, setgid) = self.dir_of(target)?;
        let name = path::file_name(target);
        if rustix::fs::symlinkat(link, &*parent, name).is_err() {
            return Ok(false);
        }
        if let Some((uid, gid)) = self.owner(meta, setgid) {
            let (uid, gid) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
            rustix::fs::chownat(&*parent, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.root.io_err("chown", target, e))?;
        }
        self.set_xattrs(target, meta)?;
        let t = meta.mtime.to_rustix();
        let times = rustix::fs::Timestamps { last_access: t, last_modification: t };
        rustix::fs::utimensat(&*parent, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.root.io_err("set times of", target, e))?;
        Ok(true)
    }

    fn hardlink(&mut self, target: &str, link: &[u8], raw_name: &str) -> Result<(), FsError> {
        let link_logical = entry_path(link, raw_name).map_err(|e| match e {
            FsError::UnsafeEntry { entry, reason } => {
                FsError::UnsafeEntry { entry, reason: format!("hardlink target: {reason}") }
            }
            e => e,
        })?;
        if self.opts.ignore.is_ignored(&link_logical) {
            return Ok(());
        }
        let parent = self.resolve_parent(&link_logical, raw_name, false)?;
        let source = path::join(&parent, path::file_name(&link_logical));
        let Some(src) = self.root.lstat(&source)? else {
            if let Some(sel) = &self.opts.select
                && !sel.covers(&source)
            {
                // Its file was left out: the next pass of the extraction writes it too. What
                // stood here goes, so paths resolve as in a full unpack meanwhile.
                sel.want(source);
                self.clear_for_nondir(target)?;
                return Ok(());
            }
            return Err(unsafe_entry(raw_name, format!("hardlink target {link_logical} does not exist")));
        };
        if src.is_dir() {
            return Err(unsafe_entry(raw_name, format!("hardlink target {link_logical} is a directory")));
        }
        if let Some(st) = self.root.lstat(target)?
            && st.dev == src.dev
            && st.ino == src.ino
        {
            return Ok(());
        }
        self.clear_for_nondir(target)?;
        self.root.hardlink(&source, target)
    }

    fn node(&mut self, target: &str, kind: NodeKind, rdev: u64, meta: &Meta, raw_name: &str) -> Result<(), FsError> {
        if kind == NodeKind::CharDevice && rdev == 0 && self.opts.overlay_lower {
            return Err(FsError::DeviceNotAllowed {
                entry: raw_name.to_string(),
                reason: "a character device 0:0 is a whiteout to overlayfs".into(),
            });
        }
        if kind != NodeKind::Fifo && !self.opts.allow_devices {
            return Err(FsError::DeviceNotAllowed {
                entry: raw_name.to_string(),
                reason: "device nodes are not allowed for this unpack".into(),
            });
        }
        self.clear_for_nondir(target)?;
        match self.root.mknod(target, kind, meta.mode, rdev) {
            Ok(()) => {}
            Err(e) if e.is_errno(libc::EPERM) => {
                return Err(FsError::DeviceNotAllowed {
                    entry: raw_name.to_string(),
                    reason: "mknod was refused (EPERM): not root, or inside a user namespace".into(),
                });
            }
            Err(e) => return Err(e),
        }
        self.apply_meta(target, meta, FileType::Fifo)
    }

    /// Owner, mode (not for symlinks), xattrs and times (not for directories, whose mtimes
    /// are set at the end), by path without following.
    fn apply_meta(&mut self, target: &str, meta: &Meta, ft: FileType) -> Result<(), FsError> {
        if self.opts.preserve_owner {
            self.root.set_owner(target, meta.uid, meta.gid)?;
        }
        if ft != FileType::Symlink {
            self.root.set_mode(target, meta.mode)?;
        }
        self.set_xattrs(target, meta)?;
        if ft != FileType::Dir {
            self.root.set_times(target, meta.mtime, meta.mtime)?;
        }
        Ok(())
    }

    fn set_xattrs(&self, target: &str, meta: &Meta) -> Result<(), FsError> {
        for (name, value) in &meta.xattrs {
            match self.root.set_xattr(target, name, value) {
                Ok(()) => {}
                // The filesystem under the root cannot store this namespace (e.g. user.* on
                // a symlink, or a tmpfs without xattr support): the layer still applies.
                Err(e) if e.is_errno(libc::EOPNOTSUPP) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn whiteout(&mut self, logical: &str, hidden: &str, raw_name: &str) -> Result<(), FsError> {
        let opaque = hidden == ".wh..opq";
        if !opaque && (hidden.is_empty() || hidden == "." || hidden == "..") {
            return Err(unsafe_entry(raw_name, format!("invalid whiteout name {hidden:?}")));
        }
        self.stats.whiteouts += 1;
        self.stats.entries += 1;
        // Unlike other entries, a whiteout whose parent is gone or no longer a directory is
        // fine (umoci writes `d` as a file, then `d/.wh.x`): there is nothing left to hide.
        let res = self.root.resolve_impl(path::parent(logical), true, true)?;
        if let Some(why) = res.escape {
            return Err(unsafe_entry(raw_name, format!("its parent leaves the root through a symlink ({why})")));
        }
        if !self.root.lstat(&res.path)?.is_some_and(|st| st.is_dir()) {
            return Ok(());
        }
        let parent = res.path;
        self.parents.clear();
        if opaque {
            self.removed.push(parent.clone());
            return clear_lower(self.root, &parent, &self.layer_paths, &self.opts.ignore);
        }
        let victim = path::join(&parent, hidden);
        self.removed.push(victim.clone());
        if self.opts.ignore.is_ignored(&victim) {
            return Ok(());
        }
        if self.layer_paths.contains(&victim) {
            // Whiteouts only hide lower layers: this layer's own entry stays.
            if self.root.lstat(&victim)?.is_some_and(|s| s.is_dir()) {
                return clear_lower(self.root, &victim, &self.layer_paths, &self.opts.ignore);
            }
            return Ok(());
        }
        self.dir_times.retain(|p, _| !path::is_within(p, &victim));
        remove_respecting(self.root, &victim, &self.opts.ignore)
    }
}

/// The paths of `all` that have no ancestor (or themselves) earlier in the set, sorted.
fn top_most<'a>(all: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut v: Vec<&String> = all.collect();
    v.sort();
    v.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in v {
        if out.last().is_some_and(|last| path::is_within(p, last)) {
            continue;
        }
        out.push(p.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unpacked as the bottom layer of an overlay stack, a layer cannot give overlayfs
    /// metadata: its `trusted.overlay.*` attributes are stored escaped, as an overlay stores
    /// them, and a character device 0:0 (a whiteout to overlayfs) is refused.
    #[test]
    fn an_overlay_lower_gets_overlay_attributes_escaped_and_no_whiteout_devices() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let header = |path: &str, kind: EntryType| {
            let mut h = tar::Header::new_ustar();
            h.set_path(path).unwrap();
            h.set_entry_type(kind);
            h.set_size(0);
            h.set_mode(0o755);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            h
        };
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..])]).unwrap();
        b.append(&header("d/", EntryType::Directory), &[][..]).unwrap();
        let with_attr = b.into_inner().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&header("wh", EntryType::Char), &[][..]).unwrap();
        let device = b.into_inner().unwrap();
        let opts = UnpackOptions { overlay_lower: true, allow_devices: true, ..UnpackOptions::default() };

        let t = tempfile::tempdir().unwrap();
        let root = Root::open(t.path()).unwrap();
        unpack_layer(&root, &with_attr[..], &opts).unwrap();
        assert_eq!(root.get_xattr("/d", "trusted.overlay.opaque").unwrap(), None);
        assert_eq!(root.get_xattr("/d", "trusted.overlay.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]));
        let err = unpack_layer(&root, &device[..], &opts).unwrap_err();
        assert!(matches!(err, FsError::DeviceNotAllowed { .. }), "{err}");
        assert!(root.lstat("/wh").unwrap().is_none());
        // Anywhere else both are what the layer says.
        let plain = UnpackOptions { overlay_lower: false, ..opts };
        unpack_layer(&root, &device[..], &plain).unwrap();
        unpack_layer(&root, &with_attr[..], &plain).unwrap();
        assert_eq!(root.get_xattr("/d", "trusted.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]));
    }

    #[test]
    fn top_most_paths() {
        let v: Vec<String> = ["/a/b", "/a", "/c/d", "/c/d/e", "/ab"].iter().map(|s| s.to_string()).collect();
        assert_eq!(top_most(v.iter()), vec!["/a", "/ab", "/c/d"]);
    }

    #[test]
    fn entry_paths() {
        assert_eq!(entry_path(b"./etc/passwd", "x").unwrap(), "/etc/passwd");
        assert_eq!(entry_path(b"./", "x").unwrap(), "/");
        assert_eq!(entry_path(b"usr/bin/", "x").unwrap(), "/usr/bin");
        assert!(matches!(entry_path(b"/etc/passwd", "x"), Err(FsError::UnsafeEntry { .. })));
        assert!(matches!(entry_path(b"a/../../b", "x"), Err(FsError::UnsafeEntry { .. })));
        assert!(matches!(entry_path(b"..", "x"), Err(FsError::UnsafeEntry { .. })));
        assert!(matches!(entry_path(b"a\xffb", "x"), Err(FsError::UnsafeEntry { .. })));
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time("1700000000"), Some(Timespec::new(1_700_000_000, 0)));
        assert_eq!(parse_pax_time("1700000000.5"), Some(Timespec::new(1_700_000_000, 500_000_000)));
        assert_eq!(parse_pax_time("1.123456789123"), Some(Timespec::new(1, 123_456_789)));
        assert_eq!(parse_pax_time("-1.25"), Some(Timespec::new(-2, 750_000_000)));
        assert_eq!(parse_pax_time("x"), None);
    }
}
