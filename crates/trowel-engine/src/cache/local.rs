//! The local layer store under `--cache-dir`: the layers of steps that are keyed but not
//! written to the cache repository (COPY/ADD with kaniko's default `--cache-copy-layers=false`),
//! so that an unchanged COPY is reused without reading its files again, while the cache
//! repository still holds no COPY layer, as kaniko promises.
//!
//! Layout (next to the base-image cache, sharing its blob store):
//! ```text
//! <dir>/blobs/sha256/<hex>          the layers (a BlobStore, shared with base images)
//! <dir>/layers/<key>.json           one entry per cache key (64 hex digits)
//! <dir>/layers/step-<hash>.json     a copy of a step's newest entry (its "pointer")
//! ```
//! An entry is what a registry entry's config records (key, components, `created_by`, up to
//! [`HISTORY`] earlier keys of the step) plus the layer's descriptor and diff_id, and the time
//! the step's history entry got. Its first line is the SHA-256 of the rest: a torn or flipped
//! entry is refused, never used. The pointer of a step (hashed from the cache repository, the
//! Dockerfile, the stage and the step, so projects sharing a volume keep apart) lets a miss be
//! explained against the closest earlier entry of the step, exactly as a registry miss is.
//!
//! Nothing is trusted on the way out: an entry must hash to its first line and name its own key;
//! its blob is re-hashed while it is linked (or copied) into the build's own store, and a blob
//! that fails is deleted; the layer's diff_id is checked when it is unpacked, as any layer's.
//!
//! Crash safety and concurrency follow the base-image cache's conventions (see `basedir.rs`):
//! a blob is synced before it gets its name (hard-linked from the build's store after an fsync,
//! or copied and synced by the [`BlobStore`]) and its directory synced before the entry that
//! names it is renamed into place; entries are written to a temporary file, synced and renamed.
//! No locks: two builds writing the same key write the same layer, and the last rename wins.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cache::explain::{Earlier, Previous, settles};
use crate::cache::key::KeyComponents;
use crate::cache::registry::{CachedLayer, EntryInfo, EntrySource, HISTORY, Lookup, history_after};
use crate::digest::Digest;
use crate::image::manifest::Descriptor;
use crate::image::store::{BlobStore, StoreError};

/// The directory of entries under the cache dir.
pub const LAYERS_DIR: &str = "layers";
/// An entry lists every source file of its COPY: a large context makes a large entry, but not
/// one this large.
const MAX_ENTRY: u64 = 64 << 20;
/// Prefix of entries being written.
const TEMP_PREFIX: &str = ".tmp-";
/// Leftovers of interrupted writes older than this are removed when the store is opened.
const STALE_TEMP: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("local layer store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("local layer store: {0}")]
    Store(#[from] StoreError),
    /// The entry cannot be used (and the step runs again).
    #[error("local cache entry {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LocalError + '_ {
    move |source| LocalError::Io { path: path.to_path_buf(), source }
}

/// The layer of a local entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalLayer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
}

/// A local entry, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalEntry {
    pub key: String,
    /// Shared with the step's plan when this build writes the entry (serialized as the
    /// components themselves).
    pub components: std::sync::Arc<KeyComponents>,
    pub created_by: String,
    /// The time the step's history entry got (a build served from it stamps the same time);
    /// `--cache-ttl` is measured from it.
    pub created: String,
    /// `None` for a step that changed no files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<LocalLayer>,
    /// Keys of earlier entries of the same step, newest first (at most [`HISTORY`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<String>,
}

/// The local layer store of a cache dir. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalLayers {
    dir: PathBuf,
    blobs: BlobStore,
    ttl: Duration,
    ttl_text: String,
}

impl LocalLayers {
    /// Opens the store in `cache_dir` (creating `layers/`), its blobs in `blobs` (the cache
    /// dir's blob store), and removes what interrupted writes left long ago.
    pub fn open(
        cache_dir: &Path,
        blobs: BlobStore,
        ttl: Duration,
        ttl_text: String,
    ) -> Result<LocalLayers, LocalError> {
        let dir = cache_dir.join(LAYERS_DIR);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        remove_stale_temps(&dir);
        Ok(LocalLayers { dir, blobs, ttl, ttl_text })
    }

    /// The cache dir's GC lock, shared (`cache/usage.rs`).
    fn gc_shared(&self) -> Result<Option<File>, LocalError> {
        let cache_dir = self.dir.parent().expect("the layers directory is in the cache dir");
        crate::cache::usage::gc_shared(cache_dir).map_err(io_err(cache_dir))
    }

    /// The file of the entry for `key`.
    pub fn entry_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Whether the store has no entry for `key` at all (a hint: an entry that is there may still
    /// turn out expired or corrupt, which only [`LocalLayers::lookup`] tells).
    pub fn lacks(&self, key: &str) -> bool {
        matches!(fs::symlink_metadata(self.entry_path(key)), Err(e) if e.kind() == io::ErrorKind::NotFound)
    }

    /// The entry a pointer names, alone, as [`super::registry::RegistryCache::pointer_entry`]
    /// reads one; none when it cannot be read.
    pub fn pointer_entry(&self, pointer: &str) -> Option<Earlier> {
        read_entry(&self.pointer_path(pointer)).ok().flatten().map(|e| earlier(&e))
    }

    fn pointer_path(&self, pointer: &str) -> PathBuf {
        self.dir.join(format!("{pointer}.json"))
    }

    /// Looks `key` up. On a hit, the layer's blob is verified and made available in `build`
    /// (the build's own store); on a miss, the step's earlier entries explain it. An entry or
    /// blob that cannot be used is an error (the step runs; a corrupt blob is deleted).
    /// `current`: the step's inputs, to tell whether earlier entries are worth reading.
    pub fn lookup(
        &self,
        key: &str,
        pointer: &str,
        build: &BlobStore,
        current: &KeyComponents,
    ) -> Result<Lookup, LocalError> {
        let path = self.entry_path(key);
        // No prune collects the blob between the entry being read and the blob being linked.
        let _gc = self.gc_shared()?;
        if let Some(entry) = read_entry(&path)? {
            if entry.key != key {
                return Err(LocalError::Invalid { path, reason: "recorded key does not match the file name".into() });
            }
            if self.expired(&entry.created) {
                let previous = Previous::Expired { created: entry.created.clone(), ttl: self.ttl_text.clone() };
                let history = match read_entry(&self.pointer_path(pointer)) {
                    Ok(Some(p)) => history_after(key, &info(&p)),
                    _ => Vec::new(),
                };
                return Ok(Lookup::Miss { previous, history });
            }
            if let Some(l) = &entry.layer {
                self.link_verified(&l.descriptor, build).map_err(|e| match e {
                    LocalError::Invalid { reason, .. } => LocalError::Invalid {
                        path: path.clone(),
                        reason: format!("layer blob {}: {reason}", l.descriptor.digest),
                    },
                    other => other,
                })?;
            }
            // Its last use, for `trowel cache prune` (the TTL reads `created`, not this).
            crate::cache::usage::touch(&path);
            let layer = entry.layer.as_ref().map(|l| (l.descriptor.clone(), l.diff_id.clone()));
            let created = Some(entry.created.clone());
            let info = info(&entry);
            return Ok(Lookup::Hit(Box::new(CachedLayer {
                source: EntrySource::Local(path),
                layer,
                info,
                created,
                manifest: None,
            })));
        }
        // A broken pointer only costs the explanation (and the history).
        let newest = match read_entry(&self.pointer_path(pointer)) {
            Ok(Some(p)) => p,
            Ok(None) | Err(_) => return Ok(Lookup::Miss { previous: Previous::None, history: Vec::new() }),
        };
        let history = history_after(key, &info(&newest));
        let mut entries = vec![earlier(&newest)];
        // As in the cache repository (`registry.rs`): a newest entry one input away is the one
        // compared, whatever the others are.
        if settles(&entries[0], current) {
            return Ok(Lookup::Miss { previous: Previous::Entries(entries), history });
        }
        for k in history.iter().filter(|k| **k != newest.key) {
            if let Ok(Some(e)) = read_entry(&self.entry_path(k))
                && &e.key == k
            {
                entries.push(earlier(&e));
            }
        }
        Ok(Lookup::Miss { previous: Previous::Entries(entries), history })
    }

    /// An entry made at `created` is past the TTL (an unreadable time counts as expired).
    fn expired(&self, created: &str) -> bool {
        chrono::DateTime::parse_from_rfc3339(created)
            .map_or(true, |c| chrono::Utc::now().signed_duration_since(c).to_std().is_ok_and(|age| age > self.ttl))
    }

    /// Puts the blob of `d` into `build`, checking it against its digest and size on the way:
    /// a hard link re-hashed in place, else a copy hashed as it is written. A blob that fails
    /// is deleted from the cache dir (and from `build`).
    fn link_verified(&self, d: &Descriptor, build: &BlobStore) -> Result<(), LocalError> {
        let src = self.blobs.path(&d.digest);
        let dst = build.path(&d.digest);
        let bad = |reason: String| {
            let _ = fs::remove_file(&src);
            LocalError::Invalid { path: src.clone(), reason }
        };
        match fs::metadata(&src) {
            Ok(m) if m.len() == d.size => {}
            Ok(m) => return Err(bad(format!("{} bytes, not the {} its entry says (removed)", m.len(), d.size))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LocalError::Invalid { path: src.clone(), reason: "missing".into() });
            }
            Err(e) => return Err(LocalError::Io { path: src.clone(), source: e }),
        }
        if build.contains(&d.digest) || fs::hard_link(&src, &dst).is_ok() {
            // Same inode as the cache dir's blob (or the build's own copy): hash it where it is.
            return match build.verify(&d.digest) {
                Ok(true) => Ok(()),
                Ok(false) => Err(bad("content does not match its digest (removed)".into())),
                Err(e) => Err(LocalError::Store(e)),
            };
        }
        // Another filesystem (EXDEV), or one without hard links: copy, hashing as it goes.
        let mut from = self.blobs.open_blob(&d.digest)?;
        let mut w = build.writer()?;
        io::copy(&mut from, &mut w).map_err(io_err(&src))?;
        w.commit(Some((&d.digest, Some(d.size)))).map_err(|e| bad(format!("{e} (removed)")))?;
        Ok(())
    }

    /// Stores a step's entry (its layer's blob read from `build`, the build's store) and makes
    /// it the step's newest. Returns the entry's path.
    pub fn store(&self, entry: &LocalEntry, pointer: &str, build: &BlobStore) -> Result<PathBuf, LocalError> {
        // No prune collects the blob between it being put and the entry naming it.
        let _gc = self.gc_shared()?;
        if let Some(l) = &entry.layer {
            self.put_blob(&l.descriptor, build)?;
        }
        let mut entry = entry.clone();
        entry.earlier.retain(|k| *k != entry.key);
        entry.earlier.truncate(HISTORY);
        let path = self.entry_path(&entry.key);
        write_entry(&self.dir, &path, &entry)?;
        write_entry(&self.dir, &self.pointer_path(pointer), &entry)?;
        sync_dir(&self.dir)?;
        Ok(path)
    }

    /// The blob of `d` into the cache dir's store, durable before it has its name: the build's
    /// file synced and hard-linked, else copied (and synced) by the store's writer.
    fn put_blob(&self, d: &Descriptor, build: &BlobStore) -> Result<(), LocalError> {
        let src = build.path(&d.digest);
        let dst = self.blobs.path(&d.digest);
        match self.blobs.size(&d.digest) {
            Ok(s) if s == d.size => return Ok(()),
            // A blob of the wrong size (a torn copy from outside trowel) is replaced. Only
            // then: a blob absent a moment ago may be another build's by now (blobs appear
            // whole, by link or rename), and removing it would leave that build's entry, or
            // a third build's lookup, without it.
            Ok(_) => {
                let _ = fs::remove_file(&dst);
            }
            Err(_) => {}
        }
        File::open(&src).and_then(|f| f.sync_data()).map_err(io_err(&src))?;
        match fs::hard_link(&src, &dst) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(_) => {
                let mut from = build.open_blob(&d.digest)?;
                let mut w = self.blobs.writer()?;
                io::copy(&mut from, &mut w).map_err(io_err(&src))?;
                w.commit(Some((&d.digest, Some(d.size))))?;
            }
        }
        sync_dir(dst.parent().expect("blob paths have a parent"))
    }
}

/// For `trowel cache prune` and `check`: the blob the entry or pointer file at `path` names
/// (`None`: a step that changed no files), or why it cannot be used (torn, flipped, or an
/// entry whose recorded key is not its file name).
pub(crate) fn entry_blob(path: &Path) -> Result<Option<Descriptor>, String> {
    let entry = read_entry(path).map_err(|e| e.to_string())?.ok_or("missing")?;
    let name = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !name.starts_with("step-") && entry.key != name {
        return Err("recorded key does not match the file name".into());
    }
    Ok(entry.layer.map(|l| l.descriptor))
}

/// What the rest of the cache reads of an entry.
fn info(e: &LocalEntry) -> EntryInfo {
    EntryInfo {
        key: e.key.clone(),
        components: (*e.components).clone(),
        created_by: e.created_by.clone(),
        earlier: e.earlier.clone(),
    }
}

fn earlier(e: &LocalEntry) -> Earlier {
    Earlier { key: e.key.clone(), components: Box::new((*e.components).clone()), created: Some(e.created.clone()) }
}

/// Reads an entry file: `None` if there is none; an error if it is corrupt.
fn read_entry(path: &Path) -> Result<Option<LocalEntry>, LocalError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LocalError::Io { path: path.to_path_buf(), source: e }),
    };
    let mut bytes = Vec::new();
    file.take(MAX_ENTRY + 1).read_to_end(&mut bytes).map_err(io_err(path))?;
    let invalid = |reason: &str| LocalError::Invalid { path: path.to_path_buf(), reason: reason.to_string() };
    if bytes.len() as u64 > MAX_ENTRY {
        return Err(invalid("too large"));
    }
    let nl = bytes.iter().position(|b| *b == b'\n').ok_or_else(|| invalid("no checksum line"))?;
    let (sum, body) = (&bytes[..nl], &bytes[nl + 1..]);
    if sum != Digest::of(body).as_str().as_bytes() {
        return Err(invalid("checksum does not match (corrupt)"));
    }
    serde_json::from_slice(body).map(Some).map_err(|e| invalid(&format!("not a trowel entry: {e}")))
}

/// Writes an entry atomically: a temporary file, synced, renamed over `path`.
fn write_entry(dir: &Path, path: &Path, entry: &LocalEntry) -> Result<(), LocalError> {
    let body = serde_json::to_vec(entry).expect("entries serialise");
    // World-readable: builds sharing a volume may run as different users; nothing is secret
    // (the components are the redacted ones a registry entry records).
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let f = tmp.as_file_mut();
    f.write_all(Digest::of(&body).as_str().as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.write_all(&body))
        .and_then(|()| f.sync_data())
        .map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| LocalError::Io { path: path.to_path_buf(), source: e.error })?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), LocalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Best effort: a leftover that cannot be removed is only wasted space.
fn remove_stale_temps(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let old = e.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
        if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) && old.is_some_and(|a| a > STALE_TEMP) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// The pointer of a step in the local store: the registry's pointer scoped by the cache
/// repository, so two projects sharing a cache volume do not explain each other's misses.
pub fn local_pointer(cache_repo: &str, dockerfile_id: &str, stage: usize, step: usize) -> String {
    let d = Digest::of(format!("{cache_repo}\0{dockerfile_id}\0{stage}\0{step}").as_bytes());
    format!("step-{}", &d.hex()[..40])
}
