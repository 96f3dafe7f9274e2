//! Copy-from records in the cache repository ([`crate::cache::copy_from`]): read by identity
//! and written, each a tag naming a manifest with no layers and the record as its config.

use super::{CacheError, MAX_CONFIG, RegistryCache};
use crate::cache::copy_from::{self, MEDIA_TYPE, Record};
use crate::image::manifest::{Descriptor, Manifest};
use crate::image::store::BlobStore;
use crate::registry::PushBlob;

impl RegistryCache {
    /// The record of `identity`, if the cache repository has a usable one. A record that is not
    /// one (another media type, too big, not valid) is an error, which the caller reports and
    /// then reads the files instead.
    pub async fn copy_from_record(&self, identity: &str, store: &BlobStore) -> Result<Option<Record>, CacheError> {
        let r = self.tagged(&copy_from::tag(identity));
        let Some((bytes, _mt, _digest)) = self.registry.fetch_manifest(&r).await.map_err(self.err(&r))? else {
            return Ok(None);
        };
        let invalid = |reason: String| CacheError::Invalid { reference: r.to_string(), reason };
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| invalid(format!("manifest: {e}")))?;
        if manifest.config.media_type != MEDIA_TYPE || !manifest.layers.is_empty() {
            return Err(invalid(format!("not a copy-from record ({:?})", manifest.config.media_type)));
        }
        if manifest.config.size > MAX_CONFIG {
            return Err(invalid(format!("record of {} bytes", manifest.config.size)));
        }
        let config = match copy_from::embedded_config(&bytes, &manifest.config) {
            Some(config) => config,
            None => {
                self.registry
                    .fetch_blob(&self.repo, &manifest.config, store, &|_, _| {})
                    .await
                    .map_err(self.err(&r))?;
                store.read(&manifest.config.digest)?
            }
        };
        copy_from::from_config(&config, identity).map(Some).map_err(invalid)
    }

    /// Writes `record` under its identity's tag. Nothing when it would be bigger than a reader
    /// takes (a copy of several hundred thousand files): such a step's files are read again.
    pub async fn put_copy_from_record(&self, record: &Record, store: &BlobStore) -> Result<(), CacheError> {
        let config = copy_from::config_json(record);
        if config.len() as u64 > MAX_CONFIG {
            return Ok(());
        }
        let r = self.tagged(&copy_from::tag(&record.identity));
        let desc = Descriptor::new(MEDIA_TYPE, store.put(&config)?, config.len() as u64);
        self.registry.push_blobs(&r, &[PushBlob::fresh(desc.clone())], store, &|_| {}).await.map_err(self.err(&r))?;
        let manifest = copy_from::manifest_json(&desc, &config);
        self.registry
            .push_manifest(&r, &manifest, crate::image::manifest::media::OCI_MANIFEST)
            .await
            .map_err(self.err(&r))?;
        Ok(())
    }
}
