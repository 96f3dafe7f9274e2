//! The layer cache in a registry repository (`--cache-repo`, default `<destination>/cache`).
//!
//! Each entry is a small OCI artifact tagged with its key (64 hex digits): one layer (or none,
//! for a step that changed no files) and a config document that records the key's components
//! under `dev.trowel.cache`, carried in the manifest itself (see [`super::inline`]; a config
//! too large for that, and every entry an older trowel wrote, is a blob of its own). Every write
//! also moves the step's *pointer tag* (`step-<hash of Dockerfile, stage, step>`) to the new
//! entry, so a later build that misses can find the entries of the same step — with no local
//! state, as in two CI jobs — and explain the difference against the closest of them.
//!
//! A step's history is kept in its entries, not in more tags: each entry lists the keys of up
//! to [`HISTORY`] earlier entries of its step (newest first), taken from the entry the pointer
//! named when it was written. One pointer is moved per write as before (no tags to rotate, no
//! read-modify-write of several tags that two CI jobs could interleave), entries a registry
//! garbage-collected simply drop out of the list, and a miss costs one fetch per listed entry,
//! only when the pointer's entry differs from the step in more than one input (one input away,
//! no other entry can be closer: [`settles`]). Entries are pushed manifest-last (the registry only shows an entry
//! once all its blobs are there), so a failed or killed build never leaves a half-written entry.
//!
//! A tag may also hold a *layer reference record* (see [`super::layer_ref`]): a COPY/ADD layer
//! that was pushed with an image but kept out of the cache repository. A lookup that finds one
//! checks that the layer's blob still exists before it counts as a hit.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{BoxFuture, Shared};
use serde::{Deserialize, Serialize};

use crate::cache::explain::{Earlier, Previous, settles};
use crate::cache::inline::{self, ConfigAt};
use crate::cache::key::KeyComponents;
use crate::cache::layer_ref::{self, REF_FIELD, REF_MEDIA_TYPE, RefHistory, RefRecord};
use crate::digest::Digest;
use crate::image::manifest::{Descriptor, Manifest, ManifestFormat, Platform, media};
use crate::image::store::BlobStore;
use crate::registry::{PushBlob, Reference, Registry, RegistryError};

#[path = "registry_config.rs"]
mod config_doc;
#[path = "registry_copy_from.rs"]
mod copy_from_records;
#[path = "registry_inline.rs"]
mod inline_form;
#[path = "registry_locate.rs"]
mod locate;

pub(crate) use config_doc::EntryInfoRef;
use config_doc::entry_config;

/// The config field holding the key and its components.
pub(crate) const FIELD: &str = "dev.trowel.cache";

/// The largest entry config read: it lists every source file of a COPY, so it can be large,
/// but not this large.
const MAX_CONFIG: u64 = 16 << 20;

/// Earlier entries of a step each entry lists: enough to find the build a change is relative
/// to across a few alternating configurations (release and debug args, two branches), few
/// enough that a miss costs a handful of small fetches.
pub const HISTORY: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {reference}: {source}")]
    Registry { reference: String, source: RegistryError },
    #[error("cache {reference}: not a trowel cache entry: {reason}")]
    Invalid { reference: String, reason: String },
    #[error("cache: {0}")]
    Store(#[from] crate::image::store::StoreError),
    #[error(transparent)]
    Local(#[from] crate::cache::local::LocalError),
}

/// What a cache entry's config says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryInfo {
    pub key: String,
    pub components: KeyComponents,
    pub created_by: String,
    /// Keys of earlier entries of the same step, newest first (at most [`HISTORY`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<String>,
}

/// Where a cache entry was found.
#[derive(Debug, Clone)]
pub enum EntrySource {
    /// The cache repository (for fetching and cross-repository mounts).
    Registry(Reference),
    /// The local layer store's entry file (see [`super::local`]); its layer's blob is in the
    /// build's store once the lookup returns.
    Local(std::path::PathBuf),
    /// A layer reference record of the cache repository: the repository found to hold the
    /// layer's blob (fetched from, or mounted from, like a base layer's).
    RegistryRef(Reference),
}

/// A manifest as the cache repository served it: what another tag (a step's pointer) is
/// given to name the same entry, byte for byte (the digest stays the same).
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
}

/// What a tag of the cache repository holds.
enum Found {
    /// A cache entry: an image of at most one layer (`ids`: the diff_ids its config lists).
    Entry { manifest: Box<Manifest>, raw: RawManifest, info: EntryInfo, created: Option<String>, ids: Vec<Digest> },
    /// A layer reference record, validated; the repositories it names, parsed.
    Ref { info: EntryInfo, record: Box<RefRecord>, repos: Vec<Reference>, raw: RawManifest },
}

impl Found {
    fn info(&self) -> &EntryInfo {
        match self {
            Found::Entry { info, .. } | Found::Ref { info, .. } => info,
        }
    }

    fn created(&self) -> Option<String> {
        match self {
            Found::Entry { created, .. } => created.clone(),
            Found::Ref { record, .. } => Some(record.history.created.clone()),
        }
    }

    fn into_earlier(self) -> Earlier {
        let created = self.created();
        let info = match self {
            Found::Entry { info, .. } | Found::Ref { info, .. } => info,
        };
        Earlier { key: info.key, components: Box::new(info.components), created }
    }
}

/// A usable cached step.
#[derive(Debug, Clone)]
pub struct CachedLayer {
    pub source: EntrySource,
    /// `None` for a step that changed no files.
    pub layer: Option<(Descriptor, Digest)>,
    pub info: EntryInfo,
    /// When the entry was made (its config's `created`).
    pub created: Option<String>,
    /// The entry's manifest as its lookup read it from the cache repository (none from the
    /// local store): what [`RegistryCache::point`] tags without fetching it again.
    pub manifest: Option<RawManifest>,
}

#[derive(Debug, Clone)]
pub enum Lookup {
    Hit(Box<CachedLayer>),
    /// `history`: what the entry this build writes for the step lists as earlier entries.
    Miss {
        previous: Previous,
        history: Vec<String>,
    },
}

#[derive(Clone)]
pub struct RegistryCache {
    registry: Registry,
    repo: Reference,
    ttl: Duration,
    ttl_text: String,
    platform: Platform,
    /// This build's destinations (repositories): where a layer a reference record names is
    /// looked for first.
    destinations: Vec<Reference>,
    /// Set once the shared empty config of inline entries is known to be in the repository
    /// (looked for once per build, shared by every clone of this cache).
    empty: Arc<tokio::sync::OnceCell<()>>,
    /// Set once the registry refused an inline entry: this build's later ones go in the older
    /// form (see `registry_inline.rs`).
    blob_configs: Arc<std::sync::atomic::AtomicBool>,
}

impl RegistryCache {
    /// `repo` is a repository reference (any tag is ignored).
    pub fn new(registry: Registry, repo: Reference, ttl: Duration, ttl_text: String, platform: Platform) -> Self {
        RegistryCache {
            registry,
            repo: Reference { tag: None, digest: None, ..repo },
            ttl,
            ttl_text,
            platform,
            destinations: Vec::new(),
            empty: Arc::default(),
            blob_configs: Arc::default(),
        }
    }

    /// The same cache, for a build pushing to `destinations`.
    pub fn with_destinations(mut self, destinations: Vec<Reference>) -> Self {
        self.destinations = destinations.into_iter().map(|d| Reference { tag: None, digest: None, ..d }).collect();
        self
    }

    pub fn repo(&self) -> &Reference {
        &self.repo
    }

    /// Uploads a layer to the cache repository while it is being written (see
    /// `Registry::upload_streamed`); the entry that later refers to it finds it there.
    /// `spare`: see `Registry::upload_streamed`. What it returns is what a push that mounts
    /// the layer from here waits for: the layer alone, not the entry's other blobs
    /// ([`RegistryCache::prepare_entries`]).
    pub async fn upload_streamed(
        &self,
        chunks: tokio::sync::mpsc::Receiver<bytes::Bytes>,
        digest: tokio::sync::oneshot::Receiver<Digest>,
        spare: bool,
    ) -> Result<Digest, CacheError> {
        self.registry.upload_streamed(&self.repo, chunks, digest, spare).await.map_err(self.err(&self.repo))
    }

    fn tagged(&self, tag: &str) -> Reference {
        Reference { tag: Some(tag.to_string()), digest: None, ..self.repo.clone() }
    }

    fn err(&self, r: &Reference) -> impl FnOnce(RegistryError) -> CacheError + '_ {
        let reference = r.to_string();
        move |source| CacheError::Registry { reference, source }
    }

    /// Reads what a tag holds: an entry (its manifest and its config's cache record) or a layer
    /// reference record, validated.
    async fn read_entry(&self, tag: &str, store: &BlobStore) -> Result<Option<Found>, CacheError> {
        let r = self.tagged(tag);
        let Some((bytes, media_type, _digest)) = self.registry.fetch_manifest(&r).await.map_err(self.err(&r))? else {
            return Ok(None);
        };
        let invalid = |reason: String| CacheError::Invalid { reference: r.to_string(), reason };
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| invalid(format!("manifest: {e}")))?;
        let at = inline::config_at(&manifest).map_err(invalid)?;
        let is_ref = match (&at, manifest.artifact_type.as_deref()) {
            (ConfigAt::Inline(_), Some(REF_MEDIA_TYPE)) => true,
            (ConfigAt::Inline(_), Some(inline::ENTRY_ARTIFACT_TYPE)) => false,
            (ConfigAt::Inline(_), other) => return Err(invalid(format!("artifact type {other:?}"))),
            (ConfigAt::Blob, _) => manifest.config.media_type == REF_MEDIA_TYPE,
        };
        let blob_config = [media::OCI_CONFIG, media::DOCKER_CONFIG].contains(&manifest.config.media_type.as_str());
        if matches!(at, ConfigAt::Blob) && !is_ref && !blob_config {
            return Err(invalid(format!("config media type {:?}", manifest.config.media_type)));
        }
        if manifest.layers.len() > usize::from(!is_ref) {
            return Err(invalid(format!("{} layers", manifest.layers.len())));
        }
        let config_bytes = match at {
            ConfigAt::Inline(doc) => doc,
            ConfigAt::Blob => {
                if manifest.config.size > MAX_CONFIG {
                    return Err(invalid(format!("config of {} bytes", manifest.config.size)));
                }
                let fetch = self.registry.fetch_blob(&self.repo, &manifest.config, store, &|_, _| {});
                fetch.await.map_err(self.err(&r))?;
                store.read(&manifest.config.digest)?
            }
        };
        let config: serde_json::Value =
            serde_json::from_slice(&config_bytes).map_err(|e| invalid(format!("config: {e}")))?;
        let info: EntryInfo = serde_json::from_value(config.get(FIELD).cloned().unwrap_or(serde_json::Value::Null))
            .map_err(|e| invalid(format!("{FIELD}: {e}")))?;
        if is_ref {
            let record: RefRecord =
                serde_json::from_value(config.get(REF_FIELD).cloned().unwrap_or(serde_json::Value::Null))
                    .map_err(|e| invalid(format!("layer reference record: {e}")))?;
            let repos = layer_ref::validate(&record).map_err(|e| invalid(format!("layer reference record: {e}")))?;
            let raw = RawManifest { bytes, media_type };
            return Ok(Some(Found::Ref { info, record: Box::new(record), repos, raw }));
        }
        let created = config.get("created").and_then(|c| c.as_str()).map(str::to_string);
        let raw = RawManifest { bytes, media_type };
        Ok(Some(Found::Entry { manifest: Box::new(manifest), raw, info, created, ids: diff_ids(&config) }))
    }

    /// Looks a key up. On a miss, finds the step's most recent entry to explain it, through
    /// the step's pointer tag: unless `absent`, a check of that tag already sent, found it
    /// absent (the prefetch's, which tells a cold build; it is awaited, never sent here).
    /// `current`: the step's inputs, to tell whether the earlier entries that one lists are
    /// worth fetching.
    pub async fn lookup(
        &self,
        key: &str,
        pointer: &str,
        absent: Option<Shared<BoxFuture<'static, bool>>>,
        store: &BlobStore,
        current: &KeyComponents,
    ) -> Result<Lookup, CacheError> {
        let read_pointer = move || async move {
            let known_absent = match absent {
                Some(absent) => absent.await,
                None => false,
            };
            if known_absent { Ok(None) } else { self.read_entry(pointer, store).await }
        };
        if let Some(found) = self.read_entry(key, store).await? {
            // An entry must be what its tag says: never trust a mislabelled layer. (The recorded
            // components cannot be re-hashed: secrets in them are masked.)
            if found.info().key != key {
                return Err(CacheError::Invalid {
                    reference: self.tagged(key).to_string(),
                    reason: "recorded key does not match the tag".into(),
                });
            }
            let created = found.created();
            let expired =
                created.as_deref().and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()).is_none_or(|c| {
                    let age = chrono::Utc::now().signed_duration_since(c);
                    age.to_std().is_ok_and(|a| a > self.ttl)
                });
            let unusable = if expired {
                Some(Previous::Expired {
                    created: created.clone().unwrap_or_else(|| "at an unknown time".into()),
                    ttl: self.ttl_text.clone(),
                })
            } else {
                None
            };
            let hit = match (unusable, found) {
                (Some(previous), _) => Err(previous),
                (None, Found::Entry { manifest, raw, info, created, ids: diff_ids }) => {
                    if diff_ids.len() != manifest.layers.len() {
                        return Err(CacheError::Invalid {
                            reference: self.tagged(key).to_string(),
                            reason: "diff_ids do not match the layers".into(),
                        });
                    }
                    let layer = manifest.layers.first().cloned().zip(diff_ids.into_iter().next());
                    let source = EntrySource::Registry(self.repo.clone());
                    Ok(CachedLayer { source, layer, info, created, manifest: Some(raw) })
                }
                (None, Found::Ref { info, record, repos, raw }) => match self.locate(&record, &repos).await {
                    Ok(repo) => Ok(CachedLayer {
                        source: EntrySource::RegistryRef(repo),
                        layer: Some((record.layer.clone(), record.diff_id.clone())),
                        info,
                        created: Some(record.history.created.clone()),
                        manifest: Some(raw),
                    }),
                    Err(reason) => Err(Previous::Unusable(reason)),
                },
            };
            return match hit {
                Ok(hit) => Ok(Lookup::Hit(Box::new(hit))),
                Err(previous) => {
                    let history = match read_pointer().await {
                        Ok(Some(p)) => history_after(key, p.info()),
                        _ => Vec::new(),
                    };
                    Ok(Lookup::Miss { previous, history })
                }
            };
        }
        let (newest, history) = match read_pointer().await {
            Ok(Some(found)) => {
                let history = history_after(key, found.info());
                (found.into_earlier(), history)
            }
            Ok(None) => return Ok(Lookup::Miss { previous: Previous::None, history: Vec::new() }),
            // A pointer that cannot be read only costs the explanation (and the history), which
            // says so: "no entry yet" would be a guess that reads as a fact.
            Err(e) => {
                let why = format!("the step's earlier cache entries could not be read ({e})");
                return Ok(Lookup::Miss { previous: Previous::Unusable(why), history: Vec::new() });
            }
        };
        let mut entries = vec![newest];
        if settles(&entries[0], current) {
            return Ok(Lookup::Miss { previous: Previous::Entries(entries), history });
        }
        // The earlier entries the newest lists, fetched at once; one that is gone (expired and
        // collected) or unreadable is left out.
        let listed: Vec<&String> = history.iter().filter(|k| **k != entries[0].key).collect();
        let reads = futures_util::future::join_all(listed.iter().map(|k| self.read_entry(k, store))).await;
        for (k, r) in listed.into_iter().zip(reads) {
            if let Ok(Some(found)) = r
                && &found.info().key == k
            {
                entries.push(found.into_earlier());
            }
        }
        Ok(Lookup::Miss { previous: Previous::Entries(entries), history })
    }

    /// The entry a pointer tag names, alone (not the earlier ones it lists): what a place no
    /// step of this build is looked up at held, for telling a step that moved up past removed
    /// lines from an edit ([`crate::cache::explain::Around::moved_from`]).
    pub async fn pointer_entry(&self, pointer: &str, store: &BlobStore) -> Result<Option<Earlier>, CacheError> {
        Ok(self.read_entry(pointer, store).await?.map(Found::into_earlier))
    }

    /// The first half of writing a layer reference record (see [`super::layer_ref`]): its
    /// config goes to the cache repository, which names nothing yet (an untagged blob is no
    /// entry: no lookup finds it). Sent while the image holding the layer is pushed; returns
    /// the record's manifest, which [`Self::tag_ref`] tags once that push is over.
    #[allow(clippy::too_many_arguments)]
    pub async fn stage_ref(
        &self,
        key: &str,
        components: &KeyComponents,
        layer: (&Descriptor, &Digest),
        history: RefHistory,
        repositories: Vec<String>,
        earlier: &[String],
        store: &BlobStore,
    ) -> Result<Vec<u8>, CacheError> {
        let record = RefRecord { layer: layer.0.clone(), diff_id: layer.1.clone(), history, repositories };
        let info = EntryInfoRef {
            key,
            components,
            created_by: &record.history.created_by,
            earlier: earlier.iter().filter(|k| *k != key).take(HISTORY).cloned().collect(),
        };
        let config = layer_ref::config_json(&info, &record);
        let inline = if self.inline_refused() { None } else { inline::manifest(REF_MEDIA_TYPE, &config, Vec::new()) };
        if let Some(manifest) = inline {
            self.ensure_empty(store).await?;
            return Ok(manifest);
        }
        let config_desc = Descriptor::new(REF_MEDIA_TYPE, store.put(&config)?, config.len() as u64);
        let manifest = layer_ref::manifest_json(&config_desc);
        let entry = self.tagged(key);
        self.registry
            .push_blobs(&entry, &[PushBlob::fresh(config_desc)], store, &|_| {})
            .await
            .map_err(self.err(&entry))?;
        Ok(manifest)
    }

    /// The second half: tags a staged record (`manifest`, from [`Self::stage_ref`]) under
    /// `key` and moves the step's pointer to it. Only for a layer already pushed to the
    /// record's repositories. The two tags go at once: each holds the whole record, so
    /// whichever lands alone leaves a readable state (a pointer alone explains the next miss
    /// against this record; a key tag alone is a hit without history).
    /// A registry that refuses an inline record gets the older form (`registry_inline.rs`).
    pub async fn tag_ref(
        &self,
        key: &str,
        pointer: &str,
        manifest: &[u8],
        store: &BlobStore,
    ) -> Result<Digest, CacheError> {
        let (entry, ptr) = (self.tagged(key), self.tagged(pointer));
        let (mut tagged, mut pointed) = self.tag_both(&entry, &ptr, manifest, media::OCI_MANIFEST).await;
        if (Self::form_refused(&tagged) || Self::form_refused(&pointed))
            && let Some(doc) = inline_form::carried(manifest)
        {
            let desc = self.config_blob(&entry, REF_MEDIA_TYPE, &doc, store).await?;
            let older = layer_ref::manifest_json(&desc);
            (tagged, pointed) = self.tag_both(&entry, &ptr, &older, media::OCI_MANIFEST).await;
        }
        let digest = tagged.map_err(self.err(&entry))?;
        pointed.map_err(self.err(&ptr))?;
        Ok(digest)
    }

    /// Moves the step's pointer tag to the entry already under `key`: for a step that hit an
    /// entry another step wrote (the same key reached from another stage, or by another
    /// Dockerfile), whose own pointer is absent. The prefetch reads a stage's first pointer to
    /// tell a cold build from a cached one; absent, every later unchanged build downloaded and
    /// unpacked the stage's base for steps that all hit. The entry's bytes are tagged as they
    /// are, so the pointer reads as the entry itself. `manifest`: those bytes, as the lookup
    /// that hit read them (one request then, the `PUT`); fetched by `key` only without them.
    pub async fn point(&self, key: &str, pointer: &str, manifest: Option<&RawManifest>) -> Result<(), CacheError> {
        let ptr = self.tagged(pointer);
        let fetched;
        let manifest = match manifest {
            Some(m) => m,
            None => {
                let entry = self.tagged(key);
                let Some((bytes, media_type, _)) =
                    self.registry.fetch_manifest(&entry).await.map_err(self.err(&entry))?
                else {
                    return Ok(());
                };
                fetched = RawManifest { bytes, media_type };
                &fetched
            }
        };
        self.registry.push_manifest(&ptr, &manifest.bytes, &manifest.media_type).await.map_err(self.err(&ptr))?;
        Ok(())
    }

    /// Stores a step's layer (or its absence) under `key` and moves the step's pointer to it.
    /// `layer_sent`: the layer's blob was committed to this repository already (streamed while
    /// it was written).
    #[allow(clippy::too_many_arguments)]
    pub async fn store(
        &self,
        key: &str,
        pointer: &str,
        components: &KeyComponents,
        created_by: &str,
        layer: Option<(&Descriptor, &Digest)>,
        layer_sent: bool,
        store: &BlobStore,
        created: &str,
        earlier: &[String],
    ) -> Result<Digest, CacheError> {
        let info = EntryInfoRef {
            key,
            components,
            created_by,
            earlier: earlier.iter().filter(|k| *k != key).take(HISTORY).cloned().collect(),
        };
        // The entry says the platform its key is for (one cache repository serves every
        // target of a build for several platforms).
        let platform = Platform::parse(&components.platform).unwrap_or_else(|_| self.platform.clone());
        let config_bytes = entry_config(&info, &platform, created, layer.map(|(_, d)| d));
        let format = ManifestFormat::Oci;
        let layers: Vec<Descriptor> = layer.iter().map(|(d, _)| (*d).clone()).collect();
        // The config rides in the manifest when it fits, naming the shared empty blob, which is
        // looked for once per build; else it is a blob of its own, which names the key, which
        // missed: no repository has it. A layer the stream already committed here is not looked
        // for again (the manifest's `PUT` checks it).
        let inline = match self.inline_refused() {
            true => None,
            false => inline::manifest(inline::ENTRY_ARTIFACT_TYPE, &config_bytes, layers.clone()),
        };
        let (mut manifest_bytes, mut config_desc, mut blobs) = match inline {
            Some(manifest) => {
                self.ensure_empty(store).await?;
                (manifest, inline::empty_descriptor(), Vec::new())
            }
            None => {
                let config_digest = store.put(&config_bytes)?;
                let desc = Descriptor::new(format.config_media_type(), config_digest, config_bytes.len() as u64);
                let manifest = Manifest::new(format, desc.clone(), layers.clone()).to_bytes();
                (manifest, desc.clone(), vec![PushBlob::fresh(desc)])
            }
        };
        if !layer_sent {
            blobs.extend(layers.iter().map(|d| PushBlob::new(d.clone(), None)));
        }
        let (entry, ptr) = (self.tagged(key), self.tagged(pointer));
        let media_type = format.manifest_media_type();
        self.registry.push_blobs(&entry, &blobs, store, &|_| {}).await.map_err(self.err(&entry))?;
        let (mut tagged, mut pointed) = self.tag_both(&entry, &ptr, &manifest_bytes, media_type).await;
        if config_desc.media_type == inline::EMPTY_MEDIA_TYPE
            && (Self::form_refused(&tagged) || Self::form_refused(&pointed))
        {
            config_desc = self.config_blob(&entry, format.config_media_type(), &config_bytes, store).await?;
            manifest_bytes = Manifest::new(format, config_desc.clone(), layers.clone()).to_bytes();
            (tagged, pointed) = self.tag_both(&entry, &ptr, &manifest_bytes, media_type).await;
        }
        // distribution's filesystem driver rewrites a repository's link to a blob in place
        // each time the blob is committed there: a manifest naming the blob while another
        // upload of it commits (two platforms' identical COPY layers, streamed at once) can
        // find the link empty and be refused as naming an unknown blob. Once more, every
        // blob looked for and sent if missing, after the other commit is done.
        let refused = |r: &Result<Digest, RegistryError>| matches!(r, Err(RegistryError::Registry { status: 400, .. }));
        if refused(&tagged) || refused(&pointed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            store.put(inline::EMPTY)?;
            let all: Vec<PushBlob> =
                std::iter::once(config_desc).chain(layers).map(|d| PushBlob::new(d, None)).collect();
            self.registry.push_blobs(&entry, &all, store, &|_| {}).await.map_err(self.err(&entry))?;
            (tagged, pointed) = self.tag_both(&entry, &ptr, &manifest_bytes, media_type).await;
        }
        let digest = tagged.map_err(self.err(&entry))?;
        pointed.map_err(self.err(&ptr))?;
        Ok(digest)
    }
}

/// The diff_ids a cache entry's config lists (any that do not parse left out, so that the
/// count no longer matches the layers').
fn diff_ids(config: &serde_json::Value) -> Vec<Digest> {
    config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// The history an entry replacing `pointer_entry` (for `key`) lists.
pub(crate) fn history_after(key: &str, pointer_entry: &EntryInfo) -> Vec<String> {
    let mut h: Vec<String> =
        std::iter::once(pointer_entry.key.clone()).chain(pointer_entry.earlier.iter().cloned()).collect();
    h.retain(|k| k != key);
    h.truncate(HISTORY);
    h
}

/// The pointer tag of a step: stable across builds of the same Dockerfile.
pub fn pointer_tag(dockerfile_id: &str, stage: usize, step: usize) -> String {
    let d = Digest::of(format!("{dockerfile_id}\0{stage}\0{step}").as_bytes());
    format!("step-{}", &d.hex()[..40])
}
