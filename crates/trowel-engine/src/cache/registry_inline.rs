//! Writing entries whose config rides in their manifest ([`crate::cache::inline`]), and the
//! older form where a registry refuses that one.
//!
//! A registry that limits the config media types it takes (Quay's `ALLOWED_OCI_ARTIFACT_TYPES`,
//! for one) refuses an OCI 1.1 artifact whose config is the empty descriptor: a 415, or a 400
//! saying `MANIFEST_INVALID` or `UNSUPPORTED`. The entry is then written the older way, its
//! config a blob of its own (an image config's media type, or a layer reference record's), and
//! so is every later entry of the build: the cache works on such a registry as it did before,
//! where a registry that takes the new form is spared the config's upload.

use std::sync::atomic::Ordering;

use super::{CacheError, RegistryCache};
use crate::cache::inline::{self, ConfigAt};
use crate::digest::Digest;
use crate::image::manifest::{Descriptor, Manifest};
use crate::image::store::BlobStore;
use crate::registry::{PushBlob, Reference, RegistryError};

impl RegistryCache {
    /// Whether this build's entries go in the older form (a registry refused the new one).
    pub(super) fn inline_refused(&self) -> bool {
        self.blob_configs.load(Ordering::Relaxed)
    }

    /// Whether a tag's `PUT` was refused for the manifest's form, not for what it names.
    pub(super) fn form_refused(r: &Result<Digest, RegistryError>) -> bool {
        match r {
            Err(RegistryError::Registry { status: 415, .. }) => true,
            Err(RegistryError::Registry { status: 400, codes, .. }) => {
                codes.iter().any(|c| c == "MANIFEST_INVALID" || c == "UNSUPPORTED")
            }
            _ => false,
        }
    }

    /// Makes sure the shared empty config the entries name is in the repository (looked for
    /// once per build, uploaded once per repository), so that an entry's write after its layer
    /// is only its two tags. Called as soon as the build knows it will write entries; a
    /// failure here is only a lost head start: the entry's write looks again.
    pub async fn prepare_entries(&self, store: &BlobStore) {
        let _ = self.ensure_empty(store).await;
    }

    /// Makes sure the repository holds the empty config inline entries name: a `HEAD` once per
    /// build, an upload once per repository.
    pub(super) async fn ensure_empty(&self, store: &BlobStore) -> Result<(), CacheError> {
        self.empty
            .get_or_try_init(|| async {
                store.put(inline::EMPTY)?;
                let blob = PushBlob::new(inline::empty_descriptor(), None);
                self.registry.push_blobs(&self.repo, &[blob], store, &|_| {}).await.map_err(self.err(&self.repo))?;
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Sends `config` to the repository as a blob of `media_type`, for the older form of an
    /// entry the registry refused, and writes this build's later entries that way; its
    /// descriptor.
    pub(super) async fn config_blob(
        &self,
        entry: &Reference,
        media_type: &str,
        config: &[u8],
        store: &BlobStore,
    ) -> Result<Descriptor, CacheError> {
        self.blob_configs.store(true, Ordering::Relaxed);
        let desc = Descriptor::new(media_type, store.put(config)?, config.len() as u64);
        self.registry
            .push_blobs(entry, &[PushBlob::fresh(desc.clone())], store, &|_| {})
            .await
            .map_err(self.err(entry))?;
        Ok(desc)
    }

    /// Tags `manifest` under `key` and under the step's pointer at once: each names the whole
    /// entry, so whichever lands alone leaves a readable state, and the write is a round trip
    /// shorter than one tag after the other.
    pub(super) async fn tag_both(
        &self,
        entry: &Reference,
        ptr: &Reference,
        manifest: &[u8],
        media_type: &str,
    ) -> (Result<Digest, RegistryError>, Result<Digest, RegistryError>) {
        futures_util::future::join(
            self.registry.push_manifest(entry, manifest, media_type),
            self.registry.push_manifest(ptr, manifest, media_type),
        )
        .await
    }
}

/// The config document an inline manifest carries, if `manifest` is one.
pub(super) fn carried(manifest: &[u8]) -> Option<Vec<u8>> {
    match inline::config_at(&serde_json::from_slice::<Manifest>(manifest).ok()?) {
        Ok(ConfigAt::Inline(doc)) => Some(doc),
        _ => None,
    }
}
