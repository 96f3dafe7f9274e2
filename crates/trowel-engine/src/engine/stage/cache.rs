//! A stage's use of the layer cache: a hit becomes a layer of the stage (unpacked into its root
//! when it has one), a miss is explained, and a step that ran is written back, streamed while
//! its layer is written when it can be. A hit from the local layer store (a COPY/ADD without
//! `--cache-copy-layers`) is used exactly as a registry hit, and so is one a layer reference
//! record names (its layer comes from the repository found to hold it, as a base layer's does). The build-wide bookkeeping is
//! `LayerCache`'s.

use crate::engine::before::Before;
use crate::fs::FileType;
use crate::fs::listing::digest_of;
use trowel_events::{CacheEntryRef, CacheResult, Event, LayerSummary, StepId, StepStatus};

use crate::cache::explain::Around;
use crate::cache::registry::{CacheError, CachedLayer, EntrySource, Lookup};
use crate::digest::Digest;
use crate::dockerfile::Base;
use crate::engine::error::BuildError;
use crate::engine::layer::{LayerOrigin, StageLayer};
use crate::engine::layer_cache::PlannedStep;
use crate::engine::report;
use crate::engine::shared::Shared;
use crate::engine::stage::{StageRunner, Stamp};
use crate::engine::steps::StepOutcome;
use crate::image::tap::BlobTap;

impl StageRunner {
    /// Uses the cache for a planned step if it hits. `Ok(None)`: run the step (or, when
    /// `deferred`, leave it unrun: its miss then says that no entry of it is kept).
    pub(crate) fn try_cache(
        &mut self,
        s: &mut Shared<'_, '_>,
        id: StepId,
        planned: &PlannedStep,
        display: &str,
        deferred: bool,
    ) -> Result<Option<StepOutcome>, BuildError> {
        let ctx = s.ctx;
        let Some(handle) = self.keys.take_lookup(id) else { return Ok(None) };
        let Some(cache) = s.cache.as_deref_mut() else { return Ok(None) };
        // A lookup task that died is a lookup that failed: the step runs.
        let result = ctx.until_stopped(handle)?.unwrap_or_else(|e| {
            Err(CacheError::Invalid { reference: planned.key.clone(), reason: format!("lookup task failed: {e}") })
        });
        let components = Box::new(report::key_components(&planned.components, ctx.detail.file_lists));
        match result {
            Ok(Lookup::Hit(hit)) => {
                cache.hit(planned, hit.layer.as_ref().map(|(d, _)| d.size));
                // Where the layer came from, as the log, traces and the debugger say it.
                let reference = match &hit.source {
                    EntrySource::Registry(repo) => format!("{repo}:{}", planned.key),
                    EntrySource::Local(entry) => format!("local:{}", entry.display()),
                    EntrySource::RegistryRef(repo) => match &hit.layer {
                        Some((d, _)) => format!("registry-ref:{}@{}", repo.repo_ref(), d.digest),
                        None => format!("registry-ref:{}", repo.repo_ref()),
                    },
                };
                let layer = hit.layer.as_ref().map(|(d, diff_id)| LayerSummary {
                    digest: (&d.digest).into(),
                    diff_id: Some(diff_id.into()),
                    size: d.size,
                    uncompressed_size: None,
                    media_type: d.media_type.clone(),
                    step: Some(id),
                    shell: None,
                });
                let outcome = self.apply_hit(s, id, *hit, display)?;
                ctx.emitter.emit(Event::CacheLookup {
                    id,
                    key: planned.key.clone(),
                    components,
                    result: CacheResult::Hit { reference, layer },
                });
                Ok(Some(outcome))
            }
            Ok(Lookup::Miss { previous, history }) => {
                let later = self.keys.after(id);
                // Looked for only when the step may have moved up: it waits for the lookups
                // of the steps after it (and may read one place more).
                let whence = cache.moved_from(ctx, &mut self.keys, id, planned, &previous, &later);
                let around = Around {
                    unkept: cache.unkept(ctx, self.index, planned, deferred),
                    later,
                    moved_from: whence.from,
                    removed: whence.removed,
                    unsure: whence.unsure,
                    base: match &ctx.plan.stages[self.index].base {
                        Base::Stage(p) => {
                            s.stages.get(*p).and_then(|b| b.final_key.as_deref()).and_then(|k| cache.missed_at(k))
                        }
                        _ => None,
                    },
                    ..Around::default()
                };
                let e = cache.miss(id, &previous, history, planned, around);
                let compared_with = e.compared.clone().map(|(key, created)| CacheEntryRef { key, created });
                ctx.emitter.emit(Event::CacheLookup {
                    id,
                    key: planned.key.clone(),
                    components,
                    result: CacheResult::Miss { explanation: e.text(), compared_with },
                });
                Ok(None)
            }
            Err(e) => {
                cache.lookup_failed(planned);
                ctx.emitter.emit(Event::CacheLookup {
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
        s: &mut Shared<'_, '_>,
        id: StepId,
        hit: CachedLayer,
        display: &str,
    ) -> Result<StepOutcome, BuildError> {
        let ctx = s.ctx;
        let Some((desc, diff_id)) = hit.layer else {
            self.empty_history(s, display, Stamp::At(hit.created));
            return Ok(StepOutcome { status: StepStatus::Cached, layer: None });
        };
        let layer = StageLayer {
            descriptor: desc.clone(),
            diff_id: diff_id.clone(),
            origin: match &hit.source {
                // A layer a reference record names is had like a base layer: fetched from (or
                // mounted from) the repository found to hold it, only when needed.
                EntrySource::Registry(repo) | EntrySource::RegistryRef(repo) => LayerOrigin::Base(repo.clone()),
                EntrySource::Local(entry) => LayerOrigin::Local(entry.clone()),
            },
            uncompressed_size: None,
            cached_for: Some(id),
        };
        let what = format!("apply cached layer {}", desc.digest);
        let applied = match self.files.existing_mut() {
            Some(root) => {
                ctx.fetch_blobs(std::slice::from_ref(&layer))?;
                let opts = match &ctx.slash_keep {
                    Some(keep) if root.is_slash() => ctx.slash_unpack_options(keep),
                    _ => ctx.unpack_options(),
                };
                let stats = ctx.unpack_verified(root.snap.root(), &layer, &opts, "apply cached")?;
                // What the layer changed, as a snapshot sees it; this also brings the index up
                // to date.
                // As long to walk as the layer is big: a stop gives it up.
                let cancel = ctx.fs_cancel();
                let mut changes = root
                    .snap
                    .snapshot_paths_cancellable(&stats.touched, cancel.as_ref())
                    .map_err(ctx.fs_failed(what))?;
                if let Some(cap) = s.contents.as_deref_mut() {
                    // Old digests from the layers below, new ones from the root.
                    let before =
                        cap.before.lookup(ctx, self.index, &self.layers, &Before::wanted(&changes.entries, false));
                    Before::fill(&mut changes.entries, &before);
                    for c in changes.entries.iter_mut().filter(|c| c.file_type == FileType::File) {
                        c.digest = root
                            .snap
                            .root()
                            .open_file(&c.path)
                            .ok()
                            .and_then(|mut f| digest_of(&mut f).ok())
                            .map(Into::into);
                    }
                    cap.before.record(self.index, &changes.entries);
                }
                let (listed, stats) = report::snapshot_listed(
                    &changes.entries,
                    report::snapshot_stats(&changes.stats),
                    ctx.detail.file_lists,
                );
                ctx.emitter.emit(Event::Snapshot { id, changes: listed, stats, classified: None });
                Some(changes.entries)
            }
            None if ctx.detail.cached_listings || s.controller.detail().cached_listings => {
                // No root to apply it to (the stage is cached so far): list the layer instead.
                let mut entries = super::listing::listings(ctx, std::slice::from_ref(&layer), "cached layer")?
                    .pop()
                    .unwrap_or_default();
                // The layer alone says "added" for everything: tell added from modified (and
                // give deleted paths their old metadata) with what the layers below hold.
                let diffs = ctx.detail.cached_diffs || s.controller.detail().cached_diffs;
                let mut classified = false;
                if let Some(cap) = s.contents.as_deref_mut().filter(|_| diffs) {
                    cap.before.classify_listing(ctx, self.index, &self.layers, &mut entries);
                    classified = true;
                }
                self.last_changes = Self::changed_paths(ctx, &entries);
                let (listed, stats) = report::snapshot_listed(&entries, Default::default(), ctx.detail.file_lists);
                ctx.emitter.emit(Event::Snapshot { id, changes: listed, stats, classified: Some(classified) });
                None
            }
            None => None,
        };
        if let Some(entries) = applied {
            self.last_changes = Self::changed_paths(ctx, &entries);
            if let Some(cap) = s.contents.as_deref_mut() {
                let root = self.files.existing().map(|r| r.root());
                cap.capture(s.ctx, self.index, &self.layers, root, id, &entries);
            }
        }
        self.config.image.push_diff_id(&diff_id);
        self.push_history(s, Stamp::At(hit.created.clone()), display, "trowel", false);
        self.layers.push(layer);
        Ok(StepOutcome { status: StepStatus::Cached, layer: Some(desc.digest) })
    }

    /// For a step whose layer will be written to the cache: starts uploading it to the cache
    /// repository as it is written (see `LayerCache::start_stream`).
    pub(crate) fn start_streamed_upload(
        &self,
        s: &mut Shared<'_, '_>,
        id: StepId,
    ) -> Option<(BlobTap, tokio::sync::oneshot::Sender<Digest>)> {
        if !self.keys.cacheable(id) {
            return None;
        }
        let spare = self.in_tail(id);
        s.cache.as_deref_mut()?.start_stream(s.ctx, id, spare)
    }

    /// Writes a step that ran (and succeeded) to the cache, in the background.
    pub(crate) fn store_in_cache(
        &self,
        s: &mut Shared<'_, '_>,
        id: StepId,
        planned: &PlannedStep,
        outcome: &StepOutcome,
    ) {
        let ctx = s.ctx;
        let Some(cache) = s.cache.as_deref_mut() else { return };
        let layer = match &outcome.layer {
            Some(d) => match self.layers.iter().rev().find(|l| &l.descriptor.digest == d) {
                Some(l) => Some((l.descriptor.clone(), l.diff_id.clone())),
                None => return,
            },
            None => None,
        };
        // The entry carries the time the step's history entry got, so that a later build served
        // from it stamps the same time (see `Stamp`). The entries of a build with a fixed time
        // (`--reproducible`, `SOURCE_DATE_EPOCH`) still say when they were made: `--cache-ttl`
        // is measured from it.
        let created = match &self.clock {
            Some(t) if ctx.fixed_time().is_none() => t.clone(),
            _ => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        if planned.local {
            // The record's history comes first: writing the local entry takes it.
            cache.note_ref(ctx, id, planned, layer.as_ref(), &created);
            if layer.is_none() {
                // Nothing kept out of the cache repository: an entry there (see `store`).
                cache.store(ctx, id, planned, None, created.clone());
            }
            cache.store_local(ctx, id, planned, layer, created);
        } else {
            cache.store(ctx, id, planned, layer, created);
        }
    }
}
