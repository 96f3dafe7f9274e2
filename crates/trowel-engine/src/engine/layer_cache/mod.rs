//! The engine's side of the layer cache (`--cache`): each stage's keys planned up front and
//! their lookups started at once ([`plan`]), a hit applied to the stage, a miss explained, and
//! new layers written to the cache repository in the background — streamed while they are
//! written when they can be ([`write`]).
//!
//! Steps that are keyed but whose layers do not go to the cache repository (COPY/ADD without
//! `--cache-copy-layers`, kaniko's default) are looked up in and written to the local layer
//! store under `--cache-dir` instead, when there is one ([`crate::cache::local`]), and, when it
//! has no entry (a fresh CI pod has no cache dir), looked up in the cache repository, where a
//! *layer reference record* ([`crate::cache::layer_ref`], written by [`refs`] once the image
//! is pushed) names the layer in the pushed image: an unchanged COPY then costs a lookup, while
//! the cache repository still never holds a COPY layer's bytes.
//!
//! The cache itself (keys, entries in a registry repository or the local store, explanations)
//! is [`crate::cache`]'s; this is the bookkeeping of one build: counters, writes in flight, which
//! steps' layers the push can mount from the cache repository.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use trowel_events::{Event, StepId};

use crate::cache::explain::{Around, Explanation, Missed, Previous, explain_in, merge};
use crate::cache::key::KeyComponents;
use crate::cache::local::{LocalLayers, local_pointer};
use crate::cache::registry::{CacheError, Lookup, RegistryCache, pointer_tag};
use crate::digest::Digest;
use crate::engine::context::BuildContext;
use crate::engine::error::BuildError;
use crate::engine::options::CacheOptions;
use crate::registry::{Arrival, Reference};

pub(crate) mod copy_from;
mod keys;
mod moved;
mod plan;
mod refs;
mod unkept;
mod write;
pub(crate) use unkept::in_pushed_image;

pub(crate) use keys::StageKeys;
use plan::dockerfile_id;
pub(crate) use plan::{StageInputs, plan};

/// Lookups running at once against the cache repository.
const PARALLEL_LOOKUPS: usize = 8;

/// A layer upload running alongside its writer.
type StreamedUpload = tokio::task::JoinHandle<Result<Digest, CacheError>>;

/// A cache entry being written in the background: the step, its key, and the task (which
/// yields the entry's reference and whether its layer was streamed).
type PendingWrite = (StepId, String, tokio::task::JoinHandle<Result<(String, bool), CacheError>>);

/// A step's cache key, planned before the stage runs.
#[derive(Debug, Clone)]
pub(crate) struct PlannedStep {
    /// Shared: a COPY's lists every file it reads (100,000 files: 20 MB), and a step's plan
    /// is handed out (`StageKeys::planned`) and kept for records and local entries.
    pub components: Arc<KeyComponents>,
    /// What the step's layer is looked up and stored by.
    pub key: String,
    /// What the steps after it chain from: `key`, except for a `--link` step (whose key does
    /// not depend on the steps before it, while the steps after it do).
    pub chain_key: String,
    /// The expanded instruction the plan saw; execution must see the same.
    pub display: String,
    /// Whether the step's layer is looked up in and stored to the cache.
    pub cacheable: bool,
    /// Whether the step (not `cacheable`: a COPY/ADD kept out of the cache repository) is looked
    /// up in the local layer store and for a layer reference record, and stored to both.
    pub local: bool,
    /// Whether the step is a COPY or ADD: its key names every file its layer holds, as a key
    /// records files (see `cache/copy_from.rs`).
    pub copies: bool,
    /// The context files the key was made from, which the step must read (`copy/seen.rs`).
    pub seen: Option<Arc<crate::engine::steps::copy::seen::Seen>>,
}

impl PlannedStep {
    /// Whether the step is looked up at all (in the cache repository or the local store).
    pub fn looked_up(&self) -> bool {
        self.cacheable || self.local
    }
}

/// After a hit in the cache repository for a step whose pointer tag the prefetch found absent
/// (the step `prefetch/cold.rs` reads to tell a cold stage), moves that pointer to the entry hit,
/// so the next build of the same Dockerfile does not take the stage for a cold one and fetch
/// its base. Best effort: a pointer not moved costs a download, never the lookup's result.
/// Not with `--no-push-cache` (`write` false), which writes nothing.
async fn point_if_absent(
    remote: &RegistryCache,
    found: &Result<Lookup, CacheError>,
    key: &str,
    pointer: &str,
    absent: Option<crate::engine::prefetch::Cold>,
    write: bool,
) {
    let Ok(Lookup::Hit(hit)) = found else { return };
    let Some(absent) = absent else { return };
    if write && absent.await {
        let _ = remote.point(key, pointer, hit.manifest.as_ref()).await;
    }
}

/// The layer cache's bookkeeping for one build.
pub(crate) struct LayerCache {
    remote: RegistryCache,
    /// The local layer store, for steps not written to the cache repository (see the module's
    /// doc); `None` without a usable `--cache-dir`, or when every keyed step goes to the registry.
    local: Option<LocalLayers>,
    opts: CacheOptions,
    /// Identifies the Dockerfile across builds (for pointer tags).
    dockerfile_id: String,
    /// Keys of steps of this build that missed, with their lines and why (for "parent step
    /// missed (line 3: …)").
    missed: BTreeMap<String, Missed>,
    /// Chain keys of steps of this build whose lookup found something (a hit, or earlier
    /// entries of the step's place): a step after one of them is in no first build of its chain
    /// (see [`Around::warm`]).
    found: HashSet<String>,
    /// For steps that missed: the earlier entries the entry they write will list.
    history: HashMap<StepId, Vec<String>>,
    pushes: Vec<PendingWrite>,
    /// Entries being written to the local layer store.
    local_writes: Vec<PendingWrite>,
    /// Layers being uploaded to the cache repository while they are written, by step; the
    /// step's cache write waits for its upload before it looks for the blob.
    streamed: HashMap<StepId, StreamedUpload>,
    /// Steps whose entries were written (their layers can be mounted from the cache repo).
    stored: HashSet<StepId>,
    /// COPY/ADD steps kept out of the cache repository that ran: a layer reference record is
    /// written for each once the image holding its layer is pushed.
    refs: HashMap<StepId, refs::RefCandidate>,
    /// For steps whose layers were streamed to the cache repository: whether the upload
    /// succeeded, told by the entry's write as soon as it knows, before it writes the entry.
    blob_uploads: HashMap<StepId, Arrival>,
    /// Whether [`prepare_writes`](Self::prepare_writes) has started.
    prepared: bool,
    hits: usize,
    misses: usize,
    bytes_reused: u64,
    limiter: Arc<tokio::sync::Semaphore>,
    /// What `COPY --from=<stage>` steps copy, for their keys (shared with the build's lanes).
    copy_from: copy_from::CopyFromRecords,
}

impl LayerCache {
    /// The layer cache of a build, or `None` when the build does not use one (no `--cache`,
    /// or `--single-snapshot`, where a stage has only one layer).
    pub fn new(ctx: &BuildContext<'_>) -> Result<Option<LayerCache>, BuildError> {
        let Some(c) = &ctx.opts.cache else { return Ok(None) };
        if ctx.opts.layers.single_snapshot {
            ctx.emitter.warn("--cache is ignored with --single-snapshot: a stage has only one layer");
            return Ok(None);
        }
        let repo = c.repository(&ctx.opts.output.destinations).map_err(BuildError::Options)?;
        // Where a layer reference record's layer is looked for first (an invalid destination is
        // reported by the push; it is just not looked in here).
        let destinations =
            ctx.opts.output.destinations.iter().filter_map(|d| Reference::parse(d).ok()).collect::<Vec<_>>();
        let remote = RegistryCache::new(ctx.registry.clone(), repo, c.ttl, c.ttl_text.clone(), ctx.platform.clone())
            .with_destinations(destinations);
        let limiter = Arc::new(tokio::sync::Semaphore::new(PARALLEL_LOOKUPS));
        let mut cache =
            LayerCache::empty(remote, c.clone(), dockerfile_id(&ctx.opts.dockerfile, &ctx.opts.context), limiter);
        // Only COPY/ADD layers stay out of the cache repository, and only without
        // `--cache-copy-layers`.
        if !c.copy_layers
            && let Some(dir) = &ctx.base_cache
        {
            match LocalLayers::open(dir.dir(), dir.store().clone(), c.ttl, c.ttl_text.clone()) {
                Ok(l) => cache.local = Some(l),
                Err(e) => ctx.emitter.warn(format!("COPY and ADD layers are not reused: {e}")),
            }
        }
        Ok(Some(cache))
    }

    /// Bookkeeping with nothing in it yet.
    fn empty(
        remote: RegistryCache,
        opts: CacheOptions,
        dockerfile_id: String,
        limiter: Arc<tokio::sync::Semaphore>,
    ) -> LayerCache {
        LayerCache {
            copy_from: copy_from::CopyFromRecords::new(remote.clone(), !opts.no_push),
            remote,
            local: None,
            opts,
            dockerfile_id,
            missed: BTreeMap::new(),
            found: HashSet::new(),
            history: HashMap::new(),
            pushes: Vec::new(),
            local_writes: Vec::new(),
            streamed: HashMap::new(),
            stored: HashSet::new(),
            refs: HashMap::new(),
            blob_uploads: HashMap::new(),
            prepared: false,
            hits: 0,
            misses: 0,
            bytes_reused: 0,
            limiter,
        }
    }

    /// A copy for a lane of a build for several platforms (see `engine/lanes.rs`): the same
    /// cache repository and lookup limit, what missed so far (for "parent step missed"), its
    /// own bookkeeping otherwise (taken back by [`absorb`](Self::absorb)).
    pub fn fork(&self) -> LayerCache {
        let mut lane =
            LayerCache::empty(self.remote.clone(), self.opts.clone(), self.dockerfile_id.clone(), self.limiter.clone());
        lane.missed = self.missed.clone();
        lane.found = self.found.clone();
        lane.local = self.local.clone();
        lane.copy_from = self.copy_from.clone();
        lane
    }

    /// What `COPY --from=<stage>` steps copy, as this build knows it or the cache repository's
    /// records say (see [`crate::cache::copy_from`]).
    pub(crate) fn copy_from(&self) -> &copy_from::CopyFromRecords {
        &self.copy_from
    }

    /// Takes back a lane's bookkeeping: its misses, writes in flight, stored steps, counters.
    pub fn absorb(&mut self, lane: LayerCache) {
        self.missed.extend(lane.missed);
        self.found.extend(lane.found);
        self.history.extend(lane.history);
        self.pushes.extend(lane.pushes);
        self.local_writes.extend(lane.local_writes);
        self.streamed.extend(lane.streamed);
        self.stored.extend(lane.stored);
        self.refs.extend(lane.refs);
        self.blob_uploads.extend(lane.blob_uploads);
        self.hits += lane.hits;
        self.misses += lane.misses;
        self.bytes_reused += lane.bytes_reused;
    }

    /// Starts the lookups of a stage's cacheable steps, all at once (bounded).
    /// `cold`: the stage's own cold check and the step whose pointer it reads (see
    /// [`point_if_absent`]); the prefetch's checks that downloads await are found by tag.
    fn start_lookups(
        &self,
        ctx: &BuildContext<'_>,
        keys: &mut StageKeys,
        cold: Option<(usize, crate::engine::prefetch::Cold)>,
    ) {
        let absent_of = |id: &StepId, pointer: &str| {
            ctx.pointer_check(pointer)
                .or_else(|| cold.as_ref().filter(|(step, _)| *step == id.step).map(|(_, c)| c.clone()))
        };
        for (id, p) in keys.planned.iter().filter(|(_, p)| p.cacheable) {
            let remote = self.remote.clone();
            let key = p.key.clone();
            let pointer = pointer_tag(&self.dockerfile_id, id.stage, id.step);
            let store = ctx.store.clone();
            let limiter = self.limiter.clone();
            let absent = absent_of(id, &pointer);
            // The plan's own components, shared: what a lookup compares (`settles`) are the
            // inputs, and a COPY's list every file it copies (a copy of them was 20 MB for a
            // COPY of 100,000 files).
            let current = p.components.clone();
            let write = !self.opts.no_push;
            let h = ctx.rt.spawn(async move {
                let _permit = limiter.acquire_owned().await;
                let found = remote.lookup(&key, &pointer, absent.clone(), &store, &current).await;
                point_if_absent(&remote, &found, &key, &pointer, absent, write).await;
                found
            });
            keys.lookups.insert(*id, h);
        }
        for (id, p) in keys.planned.iter().filter(|(_, p)| p.local) {
            let local = self.local.clone();
            let remote = self.remote.clone();
            let key = p.key.clone();
            let local_pointer = self.local_pointer(*id);
            let pointer = pointer_tag(&self.dockerfile_id, id.stage, id.step);
            let store = ctx.store.clone();
            let limiter = self.limiter.clone();
            let absent = absent_of(id, &pointer);
            // Shared with the blocking thread, as above.
            let current = p.components.clone();
            let write = !self.opts.no_push;
            let h = ctx.rt.spawn(async move {
                // This machine's store first: disk reads and a blob's hash, on a blocking
                // thread. Started at once like the registry's lookups, so they overlap the
                // steps before them.
                let from_local = match local {
                    Some(local) => {
                        let (k, s, c) = (key.clone(), store.clone(), current.clone());
                        match tokio::task::spawn_blocking(move || local.lookup(&k, &local_pointer, &s, &c)).await {
                            Ok(Ok(Lookup::Hit(hit))) => return Ok(Lookup::Hit(hit)),
                            Ok(Ok(miss)) => Some(miss),
                            // A corrupt local entry is reported as such (and the step runs and
                            // rewrites it), not hidden behind a record of the cache repository.
                            Ok(Err(e)) => return Err(CacheError::from(e)),
                            Err(e) => {
                                return Err(CacheError::Invalid {
                                    reference: key.clone(),
                                    reason: format!("local lookup task failed: {e}"),
                                });
                            }
                        }
                    }
                    None => None,
                };
                let _permit = limiter.acquire_owned().await;
                let found = remote.lookup(&key, &pointer, absent.clone(), &store, &current).await;
                point_if_absent(&remote, &found, &key, &pointer, absent, write).await;
                Ok(match (found?, from_local) {
                    // Nothing in the cache repository to compare with: the local store's
                    // explanation, if it had one, is the better one.
                    (Lookup::Miss { previous: Previous::None, .. }, Some(local)) => local,
                    // Both have earlier entries (the repository's are layer reference records,
                    // written only by builds that pushed): compared as one list, newest first.
                    (
                        Lookup::Miss { previous: Previous::Entries(r), history: rh },
                        Some(Lookup::Miss { previous: Previous::Entries(l), history: lh }),
                    ) => {
                        let more: Vec<String> = rh.into_iter().filter(|k| !lh.contains(k)).collect();
                        let mut history = lh;
                        history.extend(more);
                        history.truncate(crate::cache::registry::HISTORY);
                        Lookup::Miss { previous: Previous::Entries(merge(l, r)), history }
                    }
                    (other, _) => other,
                })
            });
            keys.lookups.insert(*id, h);
        }
    }

    /// Whether step `id` copies into the stage's root (a COPY/ADD without `--link`), is kept
    /// out of the cache repository and looked up in the local layer store, and is certain not
    /// to be found there (no entry for its key at all). Such a step is served only if the cache
    /// repository has a layer reference record for it (another machine built the same
    /// inputs), so, as a rule, it runs.
    pub(crate) fn local_miss(&self, keys: &StageKeys, id: StepId) -> bool {
        let Some(local) = self.local.as_ref() else { return false };
        keys.planned.get(&id).is_some_and(|p| p.local && p.chain_key == p.key && local.lacks(&p.key))
    }

    fn local_pointer(&self, id: StepId) -> String {
        local_pointer(&self.remote.repo().to_string(), &self.dockerfile_id, id.stage, id.step)
    }

    /// A lookup hit: its layer (if any) is reused.
    pub fn hit(&mut self, planned: &PlannedStep, reused: Option<u64>) {
        self.found.insert(planned.chain_key.clone());
        self.hits += 1;
        self.bytes_reused += reused.unwrap_or(0);
    }

    /// A lookup missed (`prev`: the step's earlier entries, if any): why, in words, against
    /// the closest of them. `history`: what the step's new entry will list as earlier;
    /// `around`: what the stage knows of the step (why this build keeps no entry of it,
    /// [`Self::unkept`]; the steps after it; why its base stage changed, [`Self::missed_at`]).
    pub fn miss(
        &mut self,
        id: StepId,
        prev: &Previous,
        history: Vec<String>,
        planned: &PlannedStep,
        mut around: Around,
    ) -> Explanation {
        self.misses += 1;
        around.warm = planned.components.chain.iter().any(|l| self.found.contains(&l.key));
        if !matches!(prev, Previous::None) {
            self.found.insert(planned.chain_key.clone());
        }
        let explanation = explain_in(prev, &planned.components, &self.missed, &around);
        let reasons = explanation.reasons.clone();
        // A local store's miss is not named by the steps after it: their registry entries
        // record its inputs, which name what changed whether or not this machine's store had
        // an entry (a fresh CI pod's has none).
        if planned.cacheable {
            self.missed.insert(planned.chain_key.clone(), Missed { line: planned.components.line, reasons });
        }
        self.history.insert(id, history);
        explanation
    }

    /// Why the step whose chain key is `key` missed in this build, if it did (a stage's last
    /// step: why a stage built on it changed).
    pub fn missed_at(&self, key: &str) -> Option<Missed> {
        self.missed.get(key).cloned()
    }

    /// A lookup that failed: the step runs, and counts as a miss.
    pub fn lookup_failed(&mut self, planned: &PlannedStep) {
        self.misses += 1;
        // A step of the local store leaves the explanation of the steps after it to its
        // inputs, which their entries record (as when it is not looked up at all).
        if planned.cacheable {
            self.missed
                .insert(planned.chain_key.clone(), Missed { line: planned.components.line, reasons: Vec::new() });
        }
    }

    /// The cache repository holding the layer a step of this build wrote, when a push to `dest`
    /// can mount it from there instead of uploading it again (same registry). A layer streamed
    /// to the cache repository as it was written can be mounted once that upload is over: the
    /// push of that layer waits for it (the `Arrival`), not the whole push, and not for the
    /// cache entries (a config, a manifest and a pointer each, a few round trips that a small
    /// build's push would otherwise wait for). Any other layer is uploaded by its entry's write,
    /// which the push then waits for: they started as each step finished, so by the push they
    /// are mostly done, and one upload of a big layer is better than two at once to the same
    /// registry.
    pub fn mountable_for(
        &mut self,
        ctx: &BuildContext<'_>,
        dest: &Reference,
        id: StepId,
    ) -> Option<(Reference, Option<Arrival>)> {
        if self.remote.repo().registry != dest.registry {
            return None;
        }
        if let Some(arrival) = self.blob_uploads.get(&id) {
            return Some((self.remote.repo().clone(), Some(arrival.clone())));
        }
        // Only a step with an entry write in flight can get its layer there: a layer kept out
        // of the cache repository (a COPY without `--cache-copy-layers`) never will, and the
        // push must not wait for the other steps' entries on its account.
        if self.pushes.iter().any(|(p, ..)| *p == id) {
            self.await_writes(ctx);
        }
        self.stored.contains(&id).then(|| (self.remote.repo().clone(), None))
    }

    /// The cache repository's pointer tag of step `step` of stage `stage` (present once this
    /// Dockerfile's step was cached there: what tells a cold build from a cached one before any
    /// key is known, see `engine/prefetch/cold.rs`).
    pub fn pointer_ref(&self, stage: usize, step: usize) -> Reference {
        Reference {
            tag: Some(pointer_tag(&self.dockerfile_id, stage, step)),
            digest: None,
            ..self.remote.repo().clone()
        }
    }

    /// Waits for the background cache writes and reports the summary. Cache write failures are
    /// warnings: the image itself does not depend on them.
    pub fn finish(&mut self, ctx: &BuildContext<'_>) {
        self.await_writes(ctx);
        self.await_local_writes(ctx);
        self.copy_from.finish(ctx);
        ctx.emitter.emit(Event::CacheSummary { hits: self.hits, misses: self.misses, bytes_reused: self.bytes_reused });
    }
}
