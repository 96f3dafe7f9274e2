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
//! OCI whiteouts are applied (see `whiteout.rs`) and never written to disk. Memory does
//! not grow with the layer's size: file data is copied with one fixed buffer, and tar extension
//! headers, which the `tar` crate buffers, are bounded by `tar_guard.rs`. Memory grows only with
//! the number of entries (the set of paths this layer wrote, needed for opaque whiteouts), which
//! `max_entries` bounds, as it bounds the inodes a layer can use up.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tar::EntryType;

use super::extract::Selection;
use super::path;
use super::readahead::Readahead;
use super::tar_guard::TarGuard;

mod batch;
mod dirs;
mod files;
mod links;
mod whiteout;
use super::{FsError, IgnoreList, NodeKind, Root, Timespec, WrittenContents};
use batch::{Batch, Creation, SMALL_FILE};
use whiteout::remove_respecting;

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
    /// Refuse the layer at its entry number `max_entries + 1`, before that entry is applied
    /// (every entry counts, skipped and whiteout ones too: each is work, most are an inode).
    pub max_entries: Option<u64>,
    /// Write only part of the layer (a `COPY --from` source, see `extract.rs`): every entry is
    /// still read, checked and hashed, but files outside the selection are not written.
    pub select: Option<Arc<Selection>>,
    /// The root is the bottom layer of an overlayfs stack (an entry of the unpacked-layer
    /// store), written directly rather than through an overlay: what overlayfs would give a
    /// meaning it does not have in the image is made what an overlay makes of it. Attributes
    /// `trusted.overlay.*` (`user.overlay.*` in a user namespace, where overlays take `userxattr`)
    /// are stored escaped (`trusted.overlay.overlay.*`, read back through the overlay as written),
    /// and a character device 0:0 (an overlay whiteout) is refused as an overlay refuses it.
    pub overlay_lower: bool,
    /// Character and block devices are skipped (each listed in
    /// [`UnpackStats::devices_skipped`]) rather than made or refused: rootless isolation, where
    /// the kernel refuses `mknod` of a device to root of a user namespace. What the path held
    /// before (from a lower layer) is removed, as the device would have replaced it.
    pub skip_devices: bool,
    /// Every owner becomes 0: a single-id user namespace (rootless isolation without a
    /// subordinate range), where no other id exists and a chown to one fails. buildah's
    /// `ignore_chown_errors`, decided up front rather than per failed call.
    pub owners_to_root: bool,
    /// An `ADD` archive, not an image layer: a member name (or hard-link target) that is
    /// absolute or climbs with `..` is taken as BuildKit's untar takes it in a chroot of the
    /// destination — joined under the root, `..` stopping there (`/etc/x` and `../x` are
    /// `<root>/etc/x` and `<root>/x`) — where a layer's is refused.
    pub archive_names: bool,
    /// Looked at before every entry and every chunk of a file's data: the unpack ends with
    /// [`FsError::Cancelled`] once it says so (a build stopped while a big layer unpacks).
    pub cancel: Option<super::Cancel>,
    /// Where the content hash of every regular file written is recorded, for the root's first
    /// snapshot index to take instead of reading the files back (`fs/written.rs`): set for a
    /// build root unpacked into a plain directory and indexed in `Full` mode.
    pub written: Option<Arc<WrittenContents>>,
}

impl Default for UnpackOptions {
    /// Nothing ignored, devices refused, owners kept when running as root, no size limits.
    fn default() -> Self {
        UnpackOptions {
            ignore: IgnoreList::default(),
            allow_devices: false,
            preserve_owner: crate::sandbox::userns::effective_ids().0 == 0,
            max_entry_size: None,
            max_total_size: None,
            max_entries: None,
            select: None,
            overlay_lower: false,
            skip_devices: false,
            owners_to_root: false,
            archive_names: false,
            cancel: None,
            written: None,
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
    /// Device nodes not made ([`UnpackOptions::skip_devices`]), by path in the root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices_skipped: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Wraps a layer blob in the right decompressor, sniffing the magic bytes: gzip (`1f 8b`),
/// zstd (`28 b5 2f fd`), otherwise plain tar. Decompression runs on its own thread, ahead of
/// whoever applies the tar.
pub fn open_layer(file: impl Read + Send + 'static) -> Result<Box<dyn Read + Send>, FsError> {
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
pub fn open_layer_hashed(file: impl Read + Send + 'static) -> Result<Readahead, FsError> {
    let err = |source| FsError::Layer { entry: None, source };
    let (compressed, r) = decoder(file)?;
    let r: Box<dyn Read + Send> = if compressed { Box::new(Readahead::new(r).map_err(err)?) } else { r };
    Readahead::hashing(r).map_err(err)
}

/// The blob's decompressor (or the blob itself), and whether it is compressed.
fn decoder(file: impl Read + Send + 'static) -> Result<(bool, Box<dyn Read + Send>), FsError> {
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
        count: 0,
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
        if opts.cancel.as_ref().is_some_and(super::Cancel::requested) {
            return Err(FsError::Cancelled);
        }
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
    /// Entries seen so far (global PAX headers aside), for `max_entries`.
    count: u64,
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
/// absolute paths and `..` are refused, unless `archive` (see [`UnpackOptions::archive_names`]):
/// then they are read under the root, `..` never above it.
pub(crate) fn entry_path(raw: &[u8], entry: &str, archive: bool) -> Result<String, FsError> {
    let s = std::str::from_utf8(raw).map_err(|_| unsafe_entry(entry, "path is not UTF-8"))?;
    if s.as_bytes().contains(&0) {
        return Err(unsafe_entry(entry, "path contains a NUL byte"));
    }
    if archive {
        let mut kept: Vec<&str> = Vec::new();
        for c in path::components(s) {
            if c == ".." {
                kept.pop();
            } else {
                kept.push(c);
            }
        }
        return Ok(format!("/{}", kept.join("/")));
    }
    if s.starts_with('/') {
        return Err(unsafe_entry(entry, "absolute path"));
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
        self.count += 1;
        if let Some(limit) = self.opts.max_entries
            && self.count > limit
        {
            return Err(FsError::TooManyEntries { entry: raw_name.to_string(), count: self.count, limit });
        }
        let logical = entry_path(&entry.path_bytes(), raw_name, self.opts.archive_names)?;
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
            crate::fs::extract::check_left_out(entry, etype, self.opts, raw_name)?;
            self.stats.skipped += 1;
            return Ok(());
        }
        if matches!(etype, EntryType::Char | EntryType::Block) && self.opts.skip_devices {
            self.flush()?;
            self.clear_for_nondir(&target)?;
            self.stats.devices_skipped.push(target);
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
                    let private = crate::fs::overlay_mount::private_xattr_prefix();
                    let attr = match attr.strip_prefix(private) {
                        Some(rest) if self.opts.overlay_lower => format!("{private}overlay.{rest}"),
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
        let (uid, gid) = if self.opts.owners_to_root { (0, 0) } else { (uid, gid) };
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
                    format!("parent {} is {}, not a directory", res.path, st.file_type.noun()),
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
    fn clear_for_nondir(&mut self, target: &str) -> Result<Option<crate::fs::Stat>, FsError> {
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
mod tests;
