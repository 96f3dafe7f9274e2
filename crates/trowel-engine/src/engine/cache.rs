//! The engine's side of the layer cache: starting the planned lookups, using a hit, explaining
//! a miss, and writing new layers to the cache repository in the background.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cache::explain::explain;
use crate::cache::registry::{CachedLayer, Lookup, RegistryCache, pointer_tag};
use crate::digest::Digest;
use crate::engine::build::Engine;
use crate::engine::error::BuildError;
use crate::engine::options::CacheOptions;
use crate::engine::report;
use crate::engine::stage::{LayerOrigin, PlannedStep, StageLayer, StageState};
use crate::engine::steps::StepOutcome;
use crate::engine::steps::layer::{Stamp, empty_history, push_history};
use crate::fs::unpack::open_layer;
use crate::image::tap::{BlobTap, CHUNKS};
use crate::registry::Reference;
use trowel_events::{CacheResult, Event, LayerSummary, StepId, StepStatus};

/// Lookups running at once against the cache repository.
const PARALLEL_LOOKUPS: usize = 8;

/// A layer upload running alongside its writer.
pub(crate) type StreamedUpload = tokio::task::JoinHandle<Result<Digest, crate::cache::registry::CacheError>>;

/// A cache entry being written in the background: the step, its key, and the task (which
/// yields the entry's reference and whether its layer was streamed).
pub(crate) type PendingWrite = (StepId, String, tokio::task::JoinHandle<Result<(String, bool), String>>);

pub(crate) struct CacheCtx {
    pub remote: RegistryCache,
    pub opts: CacheOptions,
    /// Identifies the Dockerfile across builds (for pointer tags).
    pub dockerfile_id: String,
    /// Keys of steps of this build that missed, with their lines (for "parent step missed").
    pub missed: BTreeMap<String, usize>,
    pub pushes: Vec<PendingWrite>,
    /// Layers being uploaded to the cache repository while they are written, by step; the
    /// step's cache write waits for its upload before it looks for the blob.
    pub streamed: std::collections::HashMap<StepId, StreamedUpload>,
    /// Steps whose entries were written (their layers can be mounted from the cache repo).
    pub stored: std::collections::HashSet<StepId>,
    pub hits: usize,
    pub misses: usize,
    pub bytes_reused: u64,
    pub limiter: Arc<tokio::sync::Semaphore>,
}

impl CacheCtx {
    pub fn new(opts: &CacheOptions, remote: RegistryCache, dockerfile_id: String) -> CacheCtx {
        CacheCtx {
            remote,
            opts: opts.clone(),
            dockerfile_id,
            missed: BTreeMap::new(),
            pushes: Vec::new(),
            streamed: Default::default(),
            stored: Default::default(),
            hits: 0,
            misses: 0,
            bytes_reused: 0,
            limiter: Arc::new(tokio::sync::Semaphore::new(PARALLEL_LOOKUPS)),
        }
    }
}

/// The cache repository for these options: `--cache-repo`, else the first destination's
/// repository + `/cache` (kaniko's default).
pub(crate) fn cache_repo(opts: &CacheOptions, destinations: &[String]) -> Result<Reference, String> {
    if let Some(r) = &opts.repo {
        return Reference::parse(r).map_err(|e| format!("invalid --cache-repo {r:?}: {e}"));
    }
    let first = destinations.first().ok_or("--cache needs --cache-repo or a --destination")?;
    let d = Reference::parse(first).map_err(|e| format!("invalid --destination {first:?}: {e}"))?;
    Ok(Reference { repository: format!("{}/cache", d.repository), tag: None, digest: None, ..d })
}

impl Engine<'_> {
    /// Starts the lookups of a stage's cacheable steps, all at once (bounded).
    pub(crate) fn start_lookups(&mut self, st: &mut StageState) {
        let Some(cache) = &self.cache else { return };
        for (id, p) in st.planned.iter().filter(|(_, p)| p.cacheable) {
            let remote = cache.remote.clone();
            let key = p.key.clone();
            let pointer = pointer_tag(&cache.dockerfile_id, id.stage, id.step);
            let store = self.store.clone();
            let limiter = cache.limiter.clone();
            let h = self.rt.spawn(async move {
                let _permit = limiter.acquire_owned().await;
                remote.lookup(&key, &pointer, &store).await
            });
            st.lookups.insert(*id, h);
        }
    }

    /// Uses the cache for a planned step if it hits. `Ok(None)`: run the step.
    pub(crate) fn try_cache(
        &mut self,
        st: &mut StageState,
        id: StepId,
        planned: &PlannedStep,
        display: &str,
    ) -> Result<Option<StepOutcome>, BuildError> {
        let Some(handle) = st.lookups.remove(&id) else { return Ok(None) };
        let result = self.rt.block_on(handle).map_err(|e| BuildError::Setup(format!("cache lookup: {e}")))?;
        let cache = self.cache.as_mut().expect("lookups imply a cache");
        let components = Box::new(crate::engine::report::key_components(&planned.components));
        match result {
            Ok(Lookup::Hit(hit)) => {
                cache.hits += 1;
                if let Some((d, _)) = &hit.layer {
                    cache.bytes_reused += d.size;
                }
                let outcome = self.apply_hit(st, id, *hit.clone(), display)?;
                let layer = hit.layer.as_ref().map(|(d, diff_id)| LayerSummary {
                    digest: d.digest.clone().into(),
                    diff_id: Some(diff_id.clone().into()),
                    size: d.size,
                    uncompressed_size: None,
                    media_type: d.media_type.clone(),
                    step: Some(id),
                });
                let reference = format!("{}:{}", hit.repo, planned.key);
                self.emitter.emit(Event::CacheLookup {
                    id,
                    key: planned.key.clone(),
                    components,
                    result: CacheResult::Hit { reference, layer },
                });
                Ok(Some(outcome))
            }
            Ok(Lookup::Miss(prev)) => {
                cache.misses += 1;
                let explanation = explain(&prev, &planned.components, &cache.missed);
                cache.missed.insert(planned.key.clone(), planned.components.line);
                self.emitter.emit(Event::CacheLookup {
                    id,
                    key: planned.key.clone(),
                    components,
                    result: CacheResult::Miss { explanation },
                });
                Ok(None)
            }
            Err(e) => {
                cache.misses += 1;
                cache.missed.insert(planned.key.clone(), planned.components.line);
                self.emitter.emit(Event::CacheLookup {
                    id,
                    key: planned.key.clone(),
                    components,
                    result: CacheResult::Error { message: e.to_string() },
                });
                Ok(None)
            }
        }
    }

    /// Applies a cached step: its layer joins the stage, and (when the stage already has a
    /// root) is unpacked into it so later steps see its files.
    fn apply_hit(
        &mut self,
        st: &mut StageState,
        id: StepId,
        hit: CachedLayer,
        display: &str,
    ) -> Result<StepOutcome, BuildError> {
        let Some((desc, diff_id)) = hit.layer else {
            empty_history(self, st, display, Stamp::At(hit.created));
            return Ok(StepOutcome { status: StepStatus::Cached, layer: None });
        };
        let layer = StageLayer {
            descriptor: desc.clone(),
            diff_id: diff_id.clone(),
            origin: LayerOrigin::Base(hit.repo.clone()),
            uncompressed_size: None,
        };
        if st.root.is_none() && (self.opts.describe_cached_layers || self.controller.wants_changed_paths()) {
            // No root to apply it to (the stage is cached so far): list the layer instead.
            self.fetch_blobs(std::slice::from_ref(&layer))?;
            let file = self.store.open_blob(&desc.digest).map_err(|e| BuildError::Setup(e.to_string()))?;
            let err = |e: crate::fs::FsError| BuildError::Setup(format!("list cached layer {}: {e}", desc.digest));
            let entries = crate::fs::listing::list_layer(open_layer(file).map_err(err)?).map_err(err)?;
            st.last_changes = entries.iter().map(|c| c.path.clone()).collect();
            self.emitter.emit(Event::Snapshot { id, changes: report::changes(&entries), stats: Default::default() });
        }
        if let Some(root) = st.root.as_mut() {
            self.fetch_blobs(std::slice::from_ref(&layer))?;
            let err = |e: crate::fs::FsError| BuildError::Setup(format!("apply cached layer {}: {e}", desc.digest));
            let opts =
                if root.dir == std::path::Path::new("/") { self.slash_unpack_options() } else { self.unpack_options() };
            let stats = self.unpack_verified(root.snap.root(), &layer, &opts, "apply cached")?;
            // What the layer changed, as a snapshot sees it; this also brings the index up to date.
            let changes = root.snap.snapshot_paths(&stats.touched).map_err(err)?;
            let paths = changes.entries.iter().map(|c| c.path.clone()).collect();
            let entries = changes.entries.clone();
            self.emitter.emit(Event::Snapshot {
                id,
                changes: report::changes(&changes.entries),
                stats: report::snapshot_stats(&changes.stats),
            });
            st.last_changes = paths;
            self.capture_contents(st, id, &entries);
        }
        st.config.push_diff_id(&diff_id);
        push_history(self, st, Stamp::At(hit.created.clone()), display, "trowel", false);
        st.layers.push(layer);
        Ok(StepOutcome { status: StepStatus::Cached, layer: Some(desc.digest) })
    }

    /// For a step whose layer will be written to the cache: starts uploading it to the cache
    /// repository as it is written. Returns the tap for the layer writer and where to send the
    /// layer's digest once it is whole (not sending it cancels the upload).
    pub(crate) fn start_streamed_upload(
        &mut self,
        st: &StageState,
        id: StepId,
    ) -> Option<(BlobTap, tokio::sync::oneshot::Sender<Digest>)> {
        let cache = self.cache.as_mut()?;
        if cache.opts.no_push || self.opts.single_snapshot || !st.planned.get(&id).is_some_and(|p| p.cacheable) {
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS);
        let (digest_tx, digest_rx) = tokio::sync::oneshot::channel();
        let remote = cache.remote.clone();
        let h = self.rt.spawn(async move { remote.upload_streamed(rx, digest_rx).await });
        cache.streamed.insert(id, h);
        Some((BlobTap::new(tx), digest_tx))
    }

    /// Writes a step that ran (and succeeded) to the cache, in the background.
    pub(crate) fn store_in_cache(&mut self, st: &StageState, id: StepId, planned: &PlannedStep, outcome: &StepOutcome) {
        let Some(cache) = &mut self.cache else { return };
        if cache.opts.no_push || !planned.cacheable {
            return;
        }
        let layer = match &outcome.layer {
            Some(d) => match st.layers.iter().rev().find(|l| &l.descriptor.digest == d) {
                Some(l) => Some((l.descriptor.clone(), l.diff_id.clone())),
                None => return,
            },
            None => None,
        };
        let remote = cache.remote.clone();
        let pointer = pointer_tag(&cache.dockerfile_id, id.stage, id.step);
        let store = self.store.clone();
        let key = planned.key.clone();
        let components = planned.components.clone();
        let created_by = self.redactor.redact(&planned.display);
        // The entry carries the time the step's history entry got, so that a later build served
        // from it stamps the same time (see `Stamp`). A reproducible build's entries still say
        // when they were made: `--cache-ttl` is measured from it.
        let created = match &st.clock {
            Some(t) if !self.opts.reproducible => t.clone(),
            _ => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let reference = format!("{}:{}", remote.repo(), key);
        let streamed = cache.streamed.remove(&id);
        let h = self.rt.spawn(async move {
            // If the layer was streamed, the blob is there by now (or the entry uploads it).
            let streamed = match streamed {
                Some(s) => matches!(s.await, Ok(Ok(_))),
                None => false,
            };
            remote
                .store(&key, &pointer, &components, &created_by, layer.as_ref().map(|(d, i)| (d, i)), &store, &created)
                .await
                .map(|_| (reference, streamed))
                .map_err(|e| e.to_string())
        });
        cache.pushes.push((id, planned.key.clone(), h));
    }

    /// Waits for the background cache writes, reporting each.
    pub(crate) fn await_cache_writes(&mut self) {
        let Some(cache) = &mut self.cache else { return };
        // Uploads no entry waited for (their step failed after all): let them end.
        for (_, h) in std::mem::take(&mut cache.streamed) {
            let _ = self.rt.block_on(h);
        }
        for (id, key, h) in std::mem::take(&mut cache.pushes) {
            match self.rt.block_on(h) {
                Ok(Ok((reference, streamed))) => {
                    cache.stored.insert(id);
                    self.emitter.emit(Event::CacheStored { id, key, reference, streamed });
                }
                Ok(Err(e)) => self.emitter.warn(format!("step {id}: could not write the cache entry: {e}")),
                Err(e) => self.emitter.warn(format!("step {id}: cache write task failed: {e}")),
            }
        }
    }

    /// The cache repository holding the layer a step of this build wrote, when a push to `dest`
    /// can mount it from there instead of uploading it again (same registry). Waits for the
    /// cache writes first: they started as each step finished, so by the push they are mostly
    /// done, and one upload of a big layer is better than two at once to the same registry.
    pub(crate) fn mountable_from_cache(&mut self, dest: &Reference, id: StepId) -> Option<Reference> {
        let cache = self.cache.as_ref()?;
        if cache.remote.repo().registry != dest.registry {
            return None;
        }
        if !cache.pushes.is_empty() {
            self.await_cache_writes();
        }
        let cache = self.cache.as_ref()?;
        cache.stored.contains(&id).then(|| cache.remote.repo().clone())
    }

    /// Waits for the background cache writes and reports the summary. Cache write failures are
    /// warnings: the image itself does not depend on them.
    pub(crate) fn finish_cache(&mut self) {
        self.await_cache_writes();
        let Some(cache) = &self.cache else { return };
        let (hits, misses, bytes) = (cache.hits, cache.misses, cache.bytes_reused);
        self.emitter.emit(Event::CacheSummary { hits, misses, bytes_reused: bytes });
    }
}
