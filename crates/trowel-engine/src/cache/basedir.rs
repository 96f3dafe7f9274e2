//! The local base-image cache directory (kaniko's `--cache-dir`), filled by `trowel warm` and
//! read by builds so FROM images need no registry.
//!
//! Layout:
//! ```text
//! <dir>/blobs/sha256/<hex>   manifests, configs and layers (a BlobStore: images share layers)
//! <dir>/refs/<hash>.json     one entry per (reference, platform), plus digest aliases
//! ```
//! An entry (see `entry.rs`) records what a reference resolved to: manifest digest and media
//! type, config digest, layer descriptors, the index digest if there was one, and when it was
//! written. It is found by the tag reference, by the index digest (per platform) and by the
//! manifest digest, so `FROM img:tag`, `FROM img@<index digest>` and `FROM img@<manifest
//! digest>` all hit.
//!
//! Nothing is trusted on the way out: [`BaseImageCache::lookup`] re-hashes the manifest and
//! config and checks them against the entry, and [`BaseImageCache::verify_layers`] re-hashes the
//! layers. A blob that fails is deleted so the next warm fetches it again.
//!
//! Crash safety and concurrency: every file appears by an atomic rename of a complete, synced
//! temporary file (blobs by the [`BlobStore`], entries here), and an entry is written only after
//! every blob it names is in place and the blob directory is synced. So a crash at any point
//! leaves at worst unused temporary files, never an entry pointing at a partial blob; and since
//! lookups only open exact `<hex>` / `<hash>.json` names, temporary files are never read. Two
//! warmers (or a warmer and builds) may share a directory without locks: concurrent writes of a
//! blob produce identical content and the last rename wins; concurrent writes of an entry leave
//! one complete entry; a reader holding a blob open keeps its inode if it is replaced or deleted.
//! (The one race, a corrupt blob being deleted just after another warmer replaced it with a good
//! copy, only makes the blob missing: lookups report it and the next warm fetches it again.)
//!
//! How a build uses it, per `FROM` image (with `--cache=true --cache-dir=…`):
//! 1. [`BaseImageCache::open`] once per build;
//! 2. [`BaseImageCache::lookup`] (or [`lookup_explained`](BaseImageCache::lookup_explained) to
//!    log why it missed) with the reference, the stage's platform and the build's TTL;
//! 3. on a hit, [`BaseImageCache::verify_layers`]; if it returns nothing, take
//!    `cached.image` as the [`ResolvedImage`] and call [`BaseImageCache::link_into`] to put its
//!    blobs in the build's own store: no registry request at all, even for a tag;
//! 4. on a miss (or missing layers), resolve and pull from the registry as without a cache. A
//!    build does not write to the cache; `trowel warm` does.

mod entry;
mod fetch;

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use entry::{EntryKey, platform_key};
pub use fetch::WarmOutcome;

use crate::digest::Digest;
use crate::image::manifest::{Descriptor, Manifest, Platform};
use crate::image::store::{BlobStore, StoreError};
use crate::registry::{Reference, RegistryError, ResolvedImage};
use entry::{TEMP_PREFIX, lookup_keys, read_entry, remove_stale_temps};

/// Same limits as the registry client: a manifest over 4 MiB or a config over 32 MiB is not an
/// image trowel would have cached, and must not be read into memory.
const MAX_MANIFEST: u64 = 4 << 20;
const MAX_CONFIG: u64 = 32 << 20;
/// Prefix of the [`BlobStore`]'s in-progress files.
const BLOB_TEMP_PREFIX: &str = ".partial-";

#[derive(Debug, thiserror::Error)]
pub enum CacheDirError {
    #[error("base-image cache {path}: {source}")]
    Io { path: PathBuf, source: io::Error },

    #[error("base-image cache {dir}: {source}")]
    Store {
        dir: PathBuf,
        #[source]
        source: StoreError,
    },

    /// Resolving or downloading the image failed (the registry error names the reference).
    #[error("{source} (platform {platform})")]
    Registry {
        reference: String,
        platform: String,
        // Boxed: the registry error is large and this enum travels through every cache call.
        #[source]
        source: Box<RegistryError>,
    },

    /// The registry served an image that cannot be used as a base (e.g. layers and diff_ids
    /// disagree); it is not cached.
    #[error("warming {reference} for {platform}: {detail}")]
    Invalid { reference: String, platform: String, detail: String },
}

/// Why a lookup found nothing usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No entry for this reference and platform (or only unreadable ones).
    NotCached,
    /// The entry is older than the TTL.
    Expired { age: Duration, ttl: Duration },
    /// The entry's manifest or config blob is missing, corrupt (and now deleted), or does not
    /// match the entry.
    BadBlob(Digest),
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::duration::format_go_duration as go;
        match self {
            Miss::NotCached => f.write_str("not in the cache"),
            Miss::Expired { age, ttl } => write!(
                f,
                "cached {} ago, older than the cache TTL of {}",
                go(Duration::from_secs(age.as_secs())),
                go(*ttl)
            ),
            Miss::BadBlob(d) => write!(f, "cached blob {d} is missing or corrupt"),
        }
    }
}

/// A base image found in the cache, with everything a registry resolve would have returned.
#[derive(Debug, Clone)]
pub struct CachedBase {
    /// As [`crate::registry::Registry::resolve`] would return it: `reference` is the reference
    /// looked up, `index_digest` is set only when that reference (or its tag) named an index.
    pub image: ResolvedImage,
    /// The platform the entry was warmed for.
    pub platform: Platform,
    /// The reference that was warmed (for a digest alias hit, possibly another repository).
    pub warmed_reference: String,
    /// When the entry was written.
    pub written_at: SystemTime,
}

impl CachedBase {
    pub fn layers(&self) -> &[Descriptor] {
        &self.image.manifest.layers
    }

    /// Total compressed size of the layers.
    pub fn layers_size(&self) -> u64 {
        self.layers().iter().map(|l| l.size).sum()
    }

    /// How long ago the entry was written (zero if its time is in the future).
    pub fn age(&self) -> Duration {
        SystemTime::now().duration_since(self.written_at).unwrap_or_default()
    }
}

/// A base-image cache directory. Cheap to clone; clones share nothing but the paths.
#[derive(Debug, Clone)]
pub struct BaseImageCache {
    dir: PathBuf,
    refs: PathBuf,
    store: BlobStore,
}

impl BaseImageCache {
    /// Opens the cache at `dir`, creating the directory and its layout if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<BaseImageCache, CacheDirError> {
        let dir = dir.into();
        let refs = dir.join("refs");
        fs::create_dir_all(&refs).map_err(|source| CacheDirError::Io { path: refs.clone(), source })?;
        let store =
            BlobStore::open(dir.join("blobs")).map_err(|source| CacheDirError::Store { dir: dir.clone(), source })?;
        Ok(BaseImageCache { dir, refs, store })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The blob store under `<dir>/blobs`.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// The path of the entry file for `key` (which may not exist).
    pub fn entry_path(&self, key: &EntryKey) -> PathBuf {
        self.refs.join(key.file_name())
    }

    /// Finds `r` for `platform` without any network access.
    ///
    /// `None` when there is no entry, when the entry is older than `ttl` (digest references
    /// never expire: their content cannot change), or when its manifest or config blob is
    /// missing, fails verification (the blob is then deleted) or disagrees with the entry. The
    /// layers are *not* re-hashed here: call [`verify_layers`](Self::verify_layers) before
    /// using them. Errors are I/O failures other than missing files.
    pub fn lookup(
        &self,
        r: &Reference,
        platform: &Platform,
        ttl: Option<Duration>,
    ) -> Result<Option<CachedBase>, CacheDirError> {
        Ok(self.lookup_explained(r, platform, ttl)?.ok())
    }

    /// [`lookup`](Self::lookup), saying why a miss is a miss (for build logs and events).
    pub fn lookup_explained(
        &self,
        r: &Reference,
        platform: &Platform,
        ttl: Option<Duration>,
    ) -> Result<Result<CachedBase, Miss>, CacheDirError> {
        for (i, key) in lookup_keys(r, platform).into_iter().enumerate() {
            let Some(entry) = read_entry(&self.refs, &key)? else { continue };
            let Some(written_at) = entry.written_at() else { continue };
            // A digest key must lead to that digest, whatever else the file says.
            let pinned_ok = match (&r.digest, i) {
                (Some(d), 0) => entry.index_digest.as_ref() == Some(d),
                (Some(d), _) => &entry.manifest.digest == d,
                (None, _) => true,
            };
            if !pinned_ok {
                continue;
            }
            let age = SystemTime::now().duration_since(written_at).unwrap_or_default();
            if r.digest.is_none()
                && let Some(ttl) = ttl
                && age > ttl
            {
                return Ok(Err(Miss::Expired { age, ttl }));
            }
            let Some(manifest_bytes) = self.read_verified(&entry.manifest.digest, entry.manifest.size, MAX_MANIFEST)?
            else {
                return Ok(Err(Miss::BadBlob(entry.manifest.digest)));
            };
            let manifest = match serde_json::from_slice::<Manifest>(&manifest_bytes) {
                Ok(m) if agrees(&m, &entry.config, &entry.layers) => m,
                _ => return Ok(Err(Miss::BadBlob(entry.manifest.digest))),
            };
            let Some(config_bytes) = self.read_verified(&entry.config.digest, entry.config.size, MAX_CONFIG)? else {
                return Ok(Err(Miss::BadBlob(entry.config.digest)));
            };
            // Mirror what a registry resolve of `r` returns: a manifest-digest reference did not
            // go through an index, an index-digest reference did.
            let index_digest = match (&r.digest, i) {
                (Some(_), 1) => None,
                _ => entry.index_digest.clone(),
            };
            // Its last use, for `trowel cache prune` (the TTL reads `written_at`, not this).
            crate::cache::usage::touch(&self.refs.join(key.file_name()));
            return Ok(Ok(CachedBase {
                image: ResolvedImage {
                    reference: r.clone(),
                    manifest,
                    manifest_bytes,
                    manifest_digest: entry.manifest.digest.clone(),
                    media_type: entry.manifest.media_type.clone(),
                    config_bytes,
                    config_digest: entry.config.digest.clone(),
                    index_digest,
                },
                platform: entry.platform,
                warmed_reference: entry.reference,
                written_at,
            }));
        }
        Ok(Err(Miss::NotCached))
    }

    /// Re-hashes every layer blob of `cached` and returns those that are missing or corrupt
    /// (wrong size or digest; corrupt ones are deleted). Empty means the image is complete.
    /// Reads every layer once: the cost is proportional to the image size.
    pub fn verify_layers(&self, cached: &CachedBase) -> Result<Vec<Descriptor>, CacheDirError> {
        let mut bad: Vec<Descriptor> = Vec::new();
        for layer in cached.layers() {
            if bad.iter().any(|b| b.digest == layer.digest) {
                continue;
            }
            if !self.blob_ok(&layer.digest, layer.size)? {
                bad.push(layer.clone());
            }
        }
        Ok(bad)
    }

    /// Makes the manifest, config and layer blobs of `cached` available in `dest` (the build's
    /// own store): hard links when both are on one filesystem, else streamed, verified copies.
    /// Blobs already in `dest` are left alone. Call after [`verify_layers`](Self::verify_layers)
    /// found nothing missing.
    pub fn link_into(&self, cached: &CachedBase, dest: &BlobStore) -> Result<(), CacheDirError> {
        let img = &cached.image;
        let mut blobs = vec![
            (img.manifest_digest.clone(), img.manifest_bytes.len() as u64),
            (img.config_digest.clone(), img.config_bytes.len() as u64),
        ];
        blobs.extend(cached.layers().iter().map(|l| (l.digest.clone(), l.size)));
        for (digest, size) in blobs {
            if dest.contains(&digest) {
                continue;
            }
            let src = self.store.path(&digest);
            let dst = dest.path(&digest);
            match fs::hard_link(&src, &dst) {
                Ok(()) => continue,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !src.exists() => {
                    return Err(self.store_err(StoreError::Missing(Box::new(digest))));
                }
                // Another filesystem (EXDEV), or one without hard links: copy instead.
                Err(_) => {}
            }
            let mut from = self.store.open_blob(&digest).map_err(|e| self.store_err(e))?;
            let dest_err = |source| CacheDirError::Store { dir: dst.clone(), source };
            let mut w = dest.writer().map_err(dest_err)?;
            io::copy(&mut from, &mut w).map_err(|source| CacheDirError::Io { path: src.clone(), source })?;
            w.commit(Some((&digest, Some(size)))).map_err(dest_err)?;
        }
        Ok(())
    }

    /// Deletes temporary files of interrupted writes (blob downloads, entries) older than
    /// `min_age`; younger ones may belong to a warmer still running. Returns how many went.
    pub fn remove_stale_temporaries(&self, min_age: Duration) -> Result<usize, CacheDirError> {
        let blob_dir = self.blob_dir();
        let blobs = remove_stale_temps(&blob_dir, &[BLOB_TEMP_PREFIX], min_age)?;
        let refs = remove_stale_temps(&self.refs, &[TEMP_PREFIX], min_age)?;
        Ok(blobs + refs)
    }

    fn blob_dir(&self) -> PathBuf {
        self.store.path(&Digest::of(b"")).parent().expect("blob paths have a parent").to_path_buf()
    }

    fn store_err(&self, source: StoreError) -> CacheDirError {
        CacheDirError::Store { dir: self.dir.clone(), source }
    }

    /// True if the blob exists with `size` bytes and hashes to its name; a blob that does not
    /// is deleted.
    fn blob_ok(&self, digest: &Digest, size: u64) -> Result<bool, CacheDirError> {
        let path = self.store.path(digest);
        match fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() == size => {}
            Ok(_) => {
                remove_quietly(&path);
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(CacheDirError::Io { path, source }),
        }
        match self.store.verify(digest) {
            Ok(ok) => Ok(ok),
            // Deleted by someone else between the two checks.
            Err(StoreError::Missing(_)) => Ok(false),
            Err(e) => Err(self.store_err(e)),
        }
    }

    /// Reads a small blob if it exists, has `size` bytes (at most `limit`) and hashes to its
    /// name; a blob that fails is deleted and `None` returned.
    fn read_verified(&self, digest: &Digest, size: u64, limit: u64) -> Result<Option<Vec<u8>>, CacheDirError> {
        if size > limit {
            return Ok(None);
        }
        let path = self.store.path(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheDirError::Io { path, source }),
        };
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(size + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| CacheDirError::Io { path: path.clone(), source })?;
        if bytes.len() as u64 != size || &Digest::of(&bytes) != digest {
            remove_quietly(&path);
            return Ok(None);
        }
        Ok(Some(bytes))
    }
}

/// For `trowel cache prune` and `check`: the blobs the entry file at `path` names (manifest,
/// config, layers), or why it is not a usable entry (garbage, another version, a key that does
/// not match its file name).
pub(crate) fn entry_blobs(path: &Path) -> Result<Vec<Descriptor>, String> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|f| f.take(entry::MAX_ENTRY + 1).read_to_end(&mut bytes)).map_err(|e| e.to_string())?;
    let e: entry::EntryFile = serde_json::from_slice(&bytes).map_err(|e| format!("not an entry: {e}"))?;
    if e.version != entry::ENTRY_VERSION {
        return Err(format!("entry version {} (this trowel writes {})", e.version, entry::ENTRY_VERSION));
    }
    if path.file_name().is_none_or(|n| *n != *e.key.file_name()) {
        return Err("its key does not match its file name".into());
    }
    let mut out = vec![e.manifest, e.config];
    out.extend(e.layers);
    Ok(out)
}

/// The manifest names the same config and layers as the entry.
fn agrees(manifest: &Manifest, config: &Descriptor, layers: &[Descriptor]) -> bool {
    let same = |a: &Descriptor, b: &Descriptor| a.digest == b.digest && a.size == b.size;
    manifest.schema_version == 2
        && same(&manifest.config, config)
        && manifest.layers.len() == layers.len()
        && manifest.layers.iter().zip(layers).all(|(a, b)| same(a, b))
}

/// A corrupt blob is removed so the next warm fetches it again; if removing fails (read-only
/// volume), lookups keep rejecting it, which is still safe.
fn remove_quietly(path: &Path) {
    let _ = fs::remove_file(path);
}
