//! Writing layer reference records (see [`crate::cache::layer_ref`]) for the COPY/ADD steps of
//! this build that were kept out of the cache repository: noted as each step finishes, tagged
//! only once the image holding the layer was pushed to every destination, so a record never
//! names a blob that is not there, and a failed build (which never pushes) tags none.
//!
//! A record is a config blob and two tags (its key, the step's pointer). The config is sent
//! while the image is pushed ([`LayerCache::stage_refs`]: it names nothing until tagged, so a
//! push that then fails leaves only an untagged blob, which no lookup finds and the registry's
//! garbage collection removes); the two tags go at once after the last destination's push
//! ([`LayerCache::tag_refs`]), which waits for them, so every record is written (or warned
//! about) before the build returns; after a failed push [`LayerCache::discard_refs`] lets the
//! configs' uploads end and tags nothing. What the push's critical path keeps is one round trip,
//! not the five of writing a record after it.

use trowel_events::{Event, StepId};

use crate::cache::layer_ref::RefHistory;
use crate::digest::Digest;
use crate::engine::context::BuildContext;
use crate::engine::layer::{LayerOrigin, StageLayer};
use crate::engine::layer_cache::{LayerCache, PlannedStep};
use crate::image::manifest::Descriptor;
use crate::registry::Reference;

use crate::cache::registry::{CacheError, pointer_tag};

/// A step whose record waits for the push.
#[derive(Debug, Clone)]
pub(crate) struct RefCandidate {
    key: String,
    planned: PlannedStep,
    layer: (Descriptor, Digest),
    history: RefHistory,
    earlier: Vec<String>,
}

impl LayerCache {
    /// Notes a COPY/ADD step kept out of the cache repository that ran and made a layer
    /// (`created`: the time its history entry got). A step that changed no files has no layer
    /// to refer to, and `--no-push` pushes nothing a record could name.
    pub fn note_ref(
        &mut self,
        ctx: &BuildContext<'_>,
        id: StepId,
        planned: &PlannedStep,
        layer: Option<&(Descriptor, Digest)>,
        created: &str,
    ) {
        let Some(layer) = layer.filter(|_| planned.local && !self.opts.no_push) else { return };
        self.refs.insert(
            id,
            RefCandidate {
                key: planned.key.clone(),
                // Not what the step read (`seen`): a record waits for the push, and a COPY's
                // lists every context path it covers.
                planned: PlannedStep { seen: None, ..planned.clone() },
                layer: layer.clone(),
                // The key components are redacted already; the instruction is redacted here.
                history: RefHistory { created: created.to_string(), created_by: ctx.redactor.redact(&planned.display) },
                earlier: self.history.get(&id).cloned().unwrap_or_default(),
            },
        );
    }

    /// When the push of `layers` (each image's) to every one of `dests` starts: the config of
    /// a record for each noted layer among them, naming those repositories, sent in the
    /// background. Nothing is tagged before [`Self::tag_refs`].
    pub fn stage_refs(
        &mut self,
        ctx: &BuildContext<'_>,
        dests: &[Reference],
        layers: &[Vec<StageLayer>],
    ) -> StagedRefs {
        if dests.is_empty() {
            return StagedRefs::default();
        }
        let repositories: Vec<String> = dests.iter().map(Reference::repo_ref).collect();
        let mut due: Vec<(StepId, RefCandidate)> = Vec::new();
        for l in layers.iter().flatten() {
            let LayerOrigin::Built(id) = l.origin else { continue };
            // Written once per build: a second image of the same layer (another platform's)
            // has its own candidate only if it is another step.
            if due.iter().any(|(d, _)| *d == id) {
                continue;
            }
            if let Some(c) = self.refs.get(&id).filter(|c| c.layer.0.digest == l.descriptor.digest) {
                due.push((id, c.clone()));
            }
        }
        let staged = due
            .into_iter()
            .map(|(id, c)| {
                self.refs.remove(&id);
                let remote = self.remote.clone();
                let store = ctx.store.clone();
                let repositories = repositories.clone();
                let (key, components, layer, history, earlier) = (
                    c.key.clone(),
                    c.planned.components.clone(),
                    c.layer.clone(),
                    c.history.clone(),
                    c.earlier.clone(),
                );
                let h = ctx.rt.spawn(async move {
                    remote
                        .stage_ref(&key, &components, (&layer.0, &layer.1), history, repositories, &earlier, &store)
                        .await
                });
                (id, c.key, h)
            })
            .collect();
        StagedRefs(staged)
    }

    /// After a successful push to every destination: tags each staged record (once its config
    /// is up) and moves its step's pointer, all at once, and waits for them. Failures are
    /// warnings (the image does not depend on them); each record written is reported as
    /// `cache_stored`. A failed push gets [`Self::discard_refs`] instead and tags nothing.
    pub fn tag_refs(&mut self, ctx: &BuildContext<'_>, staged: StagedRefs) {
        let writes = staged.0.into_iter().map(|(id, key, h)| {
            let pointer = pointer_tag(&self.dockerfile_id, id.stage, id.step);
            let (remote, store) = (self.remote.clone(), ctx.store.clone());
            async move {
                let r = match h.await {
                    Ok(Ok(manifest)) => {
                        remote.tag_ref(&key, &pointer, &manifest, &store).await.map_err(|e| e.to_string())
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("the task failed: {e}")),
                };
                (id, key, r)
            }
        });
        for (id, key, r) in ctx.rt.block_on(futures_util::future::join_all(writes)) {
            match r {
                Ok(_) => ctx.emitter.emit(Event::CacheStored {
                    id,
                    reference: format!("registry-ref:{}:{}", self.remote.repo(), key),
                    key,
                    streamed: false,
                }),
                Err(e) => ctx.emitter.warn(format!("step {id}: could not write the layer reference record: {e}")),
            }
        }
    }

    /// After a failed push: lets the staged configs' uploads end (no session is left open
    /// mid-request) and tags nothing.
    pub fn discard_refs(&mut self, ctx: &BuildContext<'_>, staged: StagedRefs) {
        for (_, _, h) in staged.0 {
            let _ = ctx.rt.block_on(h);
        }
    }
}

/// Records whose configs are being sent (step, key, the upload giving the record's manifest),
/// waiting for the push to end before they are tagged.
#[derive(Default)]
pub(crate) struct StagedRefs(Vec<(StepId, String, StagedConfig)>);

/// The upload of one record's config, giving the record's manifest.
type StagedConfig = tokio::task::JoinHandle<Result<Vec<u8>, CacheError>>;
