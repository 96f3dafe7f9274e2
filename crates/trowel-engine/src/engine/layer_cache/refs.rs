//! Writing layer reference records (see [`crate::cache::layer_ref`]) for the COPY/ADD steps of
//! this build that were kept out of the cache repository: noted as each step finishes, written
//! only once the image holding the layer was pushed to every destination, so a record never
//! names a blob that is not there, and a failed build (which never pushes) writes none.

use trowel_events::{Event, StepId};

use crate::cache::layer_ref::RefHistory;
use crate::digest::Digest;
use crate::engine::context::BuildContext;
use crate::engine::layer::{LayerOrigin, StageLayer};
use crate::engine::layer_cache::{LayerCache, PlannedStep};
use crate::image::manifest::Descriptor;
use crate::registry::Reference;

use crate::cache::registry::pointer_tag;

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
                planned: planned.clone(),
                layer: layer.clone(),
                // The key components are redacted already; the instruction is redacted here.
                history: RefHistory { created: created.to_string(), created_by: ctx.redactor.redact(&planned.display) },
                earlier: self.history.get(&id).cloned().unwrap_or_default(),
            },
        );
    }

    /// After a successful push of an image to every one of `dests`: a record for each noted
    /// layer among `layers`, naming those repositories. Failures are warnings (the image does
    /// not depend on them); each record written is reported as `cache_stored`.
    pub fn write_refs(&mut self, ctx: &BuildContext<'_>, dests: &[Reference], layers: &[StageLayer]) {
        if dests.is_empty() {
            return;
        }
        let repositories: Vec<String> = dests.iter().map(Reference::repo_ref).collect();
        let due: Vec<(StepId, RefCandidate)> = layers
            .iter()
            .filter_map(|l| match l.origin {
                LayerOrigin::Built(id) => {
                    self.refs.get(&id).filter(|c| c.layer.0.digest == l.descriptor.digest).map(|c| (id, c.clone()))
                }
                _ => None,
            })
            .collect();
        let writes = due.iter().map(|(id, c)| {
            let pointer = pointer_tag(&self.dockerfile_id, id.stage, id.step);
            let repositories = repositories.clone();
            let remote = self.remote.clone();
            let store = ctx.store.clone();
            async move {
                remote
                    .store_ref(
                        &c.key,
                        &pointer,
                        &c.planned.components,
                        (&c.layer.0, &c.layer.1),
                        c.history.clone(),
                        repositories,
                        &c.earlier,
                        &store,
                    )
                    .await
            }
        });
        let results = ctx.rt.block_on(futures_util::future::join_all(writes));
        for ((id, c), r) in due.into_iter().zip(results) {
            match r {
                Ok(_) => {
                    // Written once per build: a second image of the same layer (another
                    // platform's) has its own candidate only if it is another step.
                    self.refs.remove(&id);
                    ctx.emitter.emit(Event::CacheStored {
                        id,
                        key: c.key.clone(),
                        reference: format!("registry-ref:{}:{}", self.remote.repo(), c.key),
                        streamed: false,
                    });
                }
                Err(e) => ctx.emitter.warn(format!("step {id}: could not write the layer reference record: {e}")),
            }
        }
    }
}
