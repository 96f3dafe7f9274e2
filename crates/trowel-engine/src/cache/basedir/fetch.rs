//! Warming: resolving an image and downloading it into the cache directory.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;

use super::entry::{ENTRY_VERSION, EntryFile, EntryKey, now_rfc3339, sync_dir, write_entry};
use super::{BaseImageCache, CacheDirError, CachedBase};
use crate::digest::Digest;
use crate::image::config::ImageConfig;
use crate::image::manifest::{Descriptor, Platform};
use crate::registry::{Reference, Registry, ResolvedImage};

/// How many layers download at once (the build engine uses the same).
const PARALLEL_DOWNLOADS: usize = 3;

/// What [`BaseImageCache::warm`] did.
#[derive(Debug, Clone)]
pub enum WarmOutcome {
    /// A fresh, complete entry was already there; the registry was not contacted.
    AlreadyCached(CachedBase),
    /// The image was resolved and its blobs fetched (or found intact) and the entry written.
    Warmed {
        base: CachedBase,
        /// Layer blobs that were absent from the cache and were downloaded (a present but
        /// corrupt blob is replaced too, but not counted here).
        downloaded_blobs: usize,
        downloaded_bytes: u64,
    },
}

impl WarmOutcome {
    pub fn base(&self) -> &CachedBase {
        match self {
            WarmOutcome::AlreadyCached(b) | WarmOutcome::Warmed { base: b, .. } => b,
        }
    }
}

impl BaseImageCache {
    /// Makes `r` for `platform` available offline.
    ///
    /// Unless `force`, an entry that is not older than `ttl` and whose blobs all verify is kept
    /// as is, without contacting the registry ([`WarmOutcome::AlreadyCached`]). Otherwise the
    /// image is resolved, its manifest and config are stored, every layer is downloaded into
    /// the store (blobs already present are re-hashed rather than downloaded again; corrupt
    /// ones are replaced), and only then are the entries written. `force` therefore means
    /// "re-resolve and re-verify everything", which is what a stale or suspect cache needs;
    /// re-downloading bytes that hash to the expected digest would change nothing.
    pub async fn warm(
        &self,
        registry: &Registry,
        r: &Reference,
        platform: &Platform,
        ttl: Option<Duration>,
        force: bool,
    ) -> Result<WarmOutcome, CacheDirError> {
        // From the first blob written to the entry that names it, no prune may collect blobs
        // (`cache/usage.rs`); the sweep waits at most for this one image.
        let _gc = crate::cache::usage::gc_shared(&self.dir)
            .map_err(|source| CacheDirError::Io { path: self.dir.join(crate::cache::usage::GC_LOCK), source })?;
        if !force {
            let (cache, r2, p2) = (self.clone(), r.clone(), platform.clone());
            let existing = tokio::task::spawn_blocking(move || -> Result<Option<CachedBase>, CacheDirError> {
                let Some(c) = cache.lookup(&r2, &p2, ttl)? else { return Ok(None) };
                Ok(cache.verify_layers(&c)?.is_empty().then_some(c))
            })
            .await
            .expect("cache check task")?;
            if let Some(c) = existing {
                return Ok(WarmOutcome::AlreadyCached(c));
            }
        }

        let registry_err = |source| CacheDirError::Registry {
            reference: r.to_string(),
            platform: platform.to_string(),
            source: Box::new(source),
        };
        let img = registry.resolve(r, platform).await.map_err(registry_err)?;
        check_usable(&img).map_err(|detail| CacheDirError::Invalid {
            reference: r.to_string(),
            platform: platform.to_string(),
            detail,
        })?;

        let cache = self.clone();
        let small = (img.manifest_bytes.clone(), img.config_bytes.clone());
        tokio::task::spawn_blocking(move || -> Result<(), CacheDirError> {
            for bytes in [small.0, small.1] {
                let d = cache.store.put(&bytes).map_err(|e| cache.store_err(e))?;
                cache.make_readable(&d);
            }
            Ok(())
        })
        .await
        .expect("store task")?;

        let mut seen = BTreeSet::new();
        let layers: Vec<&Descriptor> = img.manifest.layers.iter().filter(|l| seen.insert(l.digest.clone())).collect();
        let results: Vec<Result<Option<u64>, CacheDirError>> = futures_util::stream::iter(layers)
            .map(|layer| async move {
                let was_there = self.store.contains(&layer.digest);
                registry.fetch_blob(r, layer, &self.store, &|_, _| {}).await.map_err(registry_err)?;
                let cache = self.clone();
                let digest = layer.digest.clone();
                tokio::task::spawn_blocking(move || cache.make_readable(&digest)).await.expect("chmod task");
                Ok((!was_there).then_some(layer.size))
            })
            .buffer_unordered(PARALLEL_DOWNLOADS)
            .collect()
            .await;
        let mut downloaded_blobs = 0;
        let mut downloaded_bytes = 0;
        for res in results {
            if let Some(size) = res? {
                downloaded_blobs += 1;
                downloaded_bytes += size;
            }
        }

        let cache = self.clone();
        let (r2, p2, img2) = (r.clone(), platform.clone(), img.clone());
        let written_at =
            tokio::task::spawn_blocking(move || cache.write_entries(&r2, &p2, &img2)).await.expect("entry task")?;
        Ok(WarmOutcome::Warmed {
            base: CachedBase { image: img, platform: platform.clone(), warmed_reference: r.to_string(), written_at },
            downloaded_blobs,
            downloaded_bytes,
        })
    }

    /// Writes the entry under every key that should find it. The blob directory is synced
    /// first, so no entry can become durable before the blobs it names.
    fn write_entries(
        &self,
        r: &Reference,
        platform: &Platform,
        img: &ResolvedImage,
    ) -> Result<SystemTime, CacheDirError> {
        sync_dir(&self.blob_dir())?;
        let mut keys = Vec::new();
        if r.digest.is_none() {
            keys.push(EntryKey::tag(r, platform));
        }
        if let Some(index) = &img.index_digest {
            keys.push(EntryKey::index(index, platform));
        }
        keys.push(EntryKey::manifest(&img.manifest_digest));
        let written_at = now_rfc3339();
        let mut entry = EntryFile {
            version: ENTRY_VERSION,
            key: keys[0].clone(),
            reference: r.to_string(),
            pinned: Reference { tag: None, ..r.with_digest(img.manifest_digest.clone()) }.to_string(),
            platform: platform.clone(),
            index_digest: img.index_digest.clone(),
            manifest: Descriptor::new(
                img.media_type.clone(),
                img.manifest_digest.clone(),
                img.manifest_bytes.len() as u64,
            ),
            config: img.manifest.config.clone(),
            layers: img.manifest.layers.clone(),
            written_at,
        };
        for key in keys {
            entry.key = key;
            write_entry(&self.refs, &entry)?;
        }
        Ok(entry.written_at().unwrap_or_else(SystemTime::now))
    }

    /// The blob store creates files readable by their owner only; a cache volume is commonly
    /// written by a warmer and read by builds running as other users, and holds only public
    /// image content. Failure (e.g. not the owner) is harmless: the blob stays usable by us.
    fn make_readable(&self, digest: &Digest) {
        let path = self.store.path(digest);
        if let Ok(m) = fs::metadata(&path)
            && m.permissions().mode() & 0o044 != 0o044
        {
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o644));
        }
    }
}

/// Refuses images a build could not use, so they never look cached: the config must be an
/// image config whose diff_ids pair up with the manifest's layers.
fn check_usable(img: &ResolvedImage) -> Result<(), String> {
    let config = ImageConfig::from_bytes(&img.config_bytes).map_err(|e| format!("invalid image config: {e}"))?;
    let diff_ids = config.diff_ids();
    if diff_ids.len() != img.manifest.layers.len() {
        return Err(format!(
            "image is inconsistent: manifest lists {} layers but config has {} diff_ids",
            img.manifest.layers.len(),
            diff_ids.len()
        ));
    }
    Ok(())
}
