//! Writing a build's steps to the layer cache: each step that ran, to the cache repository (its
//! layer streamed there while it is written when it can be) or to the local layer store, in the
//! background; and the waits for those writes, by the push (a layer it mounts from the cache
//! repository) and at the end of the build.

use trowel_events::{Event, StepId};

use super::{LayerCache, PlannedStep, pointer_tag};
use crate::cache::local::{LocalEntry, LocalLayer};
use crate::digest::Digest;
use crate::engine::context::BuildContext;
use crate::image::manifest::Descriptor;
use crate::image::tap::{BlobTap, CHUNKS};
use crate::registry::{Arrival, Reference};

impl LayerCache {
    /// The cache repository, when this build writes entries there: where the upload sessions
    /// of a stage's last cached layers are opened ahead (`stage/tail.rs`).
    pub fn writes_to(&self) -> Option<&Reference> {
        (!self.opts.no_push).then(|| self.remote.repo())
    }

    /// Once a step is about to run (its entry will be written): the shared empty config the
    /// entries name is made sure of in the background, once per build. It used to be looked
    /// for beside the first layer's stream, which a push mounting that layer then waited for:
    /// in a fresh cache repository three round trips (`HEAD`, `POST`, `PUT`) on the way of
    /// every mount.
    pub fn prepare_writes(&mut self, ctx: &BuildContext<'_>) {
        if self.opts.no_push || std::mem::replace(&mut self.prepared, true) {
            return;
        }
        let (remote, store) = (self.remote.clone(), ctx.store.clone());
        ctx.rt.spawn(async move { remote.prepare_entries(&store).await });
    }

    /// For a step whose layer will be written to the cache: starts uploading it to the cache
    /// repository as it is written. Returns the tap for the layer writer and where to send the
    /// layer's digest once it is whole (not sending it cancels the upload). `spare`: the
    /// upload may take a session opened ahead ([`LayerCache::writes_to`]).
    pub fn start_stream(
        &mut self,
        ctx: &BuildContext<'_>,
        id: StepId,
        spare: bool,
    ) -> Option<(BlobTap, tokio::sync::oneshot::Sender<Digest>)> {
        if self.opts.no_push {
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS);
        let (digest_tx, digest_rx) = tokio::sync::oneshot::channel();
        let remote = self.remote.clone();
        let h = ctx.rt.spawn(async move { remote.upload_streamed(rx, digest_rx, spare).await });
        self.streamed.insert(id, h);
        Some((BlobTap::new(tx), digest_tx))
    }

    /// Writes a step's entry to the cache repository in the background. `created`: the time
    /// the step's history entry got (a later build served from it stamps the same time).
    pub fn store(
        &mut self,
        ctx: &BuildContext<'_>,
        id: StepId,
        planned: &PlannedStep,
        layer: Option<(Descriptor, Digest)>,
        created: String,
    ) {
        // A COPY/ADD kept out of the cache repository comes here only when it made no layer
        // (`store_in_cache` decides): no bytes to keep out, so its entry goes there as a RUN's
        // does, and a build with no local state (a fresh CI pod) finds it. Without, such a step
        // (a wildcard that matched nothing) missed in every pod, "no cache entry for this step
        // yet" forever, and made its stage's root (the base and every cached layer downloaded)
        // to copy nothing. Its local entry is written too, and takes the earlier keys after this.
        if self.opts.no_push || !(planned.cacheable || planned.local) {
            return;
        }
        let remote = self.remote.clone();
        let pointer = pointer_tag(&self.dockerfile_id, id.stage, id.step);
        let store = ctx.store.clone();
        let key = planned.key.clone();
        let components = planned.components.clone();
        let created_by = ctx.redactor.redact(&planned.display);
        let reference = format!("{}:{}", remote.repo(), key);
        let streamed = self.streamed.remove(&id);
        let earlier = match planned.local {
            true => self.history.get(&id).cloned(),
            false => self.history.remove(&id),
        }
        .unwrap_or_default();
        let blob_done = streamed.is_some().then(|| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.blob_uploads.insert(id, Arrival::new(async move { rx.await.unwrap_or(false) }));
            tx
        });
        let h = ctx.rt.spawn(async move {
            // If the layer was streamed, the blob is there by now (or the entry uploads it).
            let streamed = match streamed {
                Some(s) => matches!(s.await, Ok(Ok(_))),
                None => false,
            };
            // The push can mount the layer from now on: it need not wait for the entry.
            if let Some(tx) = blob_done {
                let _ = tx.send(streamed);
            }
            remote
                .store(
                    &key,
                    &pointer,
                    &components,
                    &created_by,
                    layer.as_ref().map(|(d, i)| (d, i)),
                    streamed,
                    &store,
                    &created,
                    &earlier,
                )
                .await
                .map(|_| (reference, streamed))
        });
        self.pushes.push((id, planned.key.clone(), h));
    }

    /// Writes a step that ran to the local layer store in the background (its blob is linked
    /// or copied from the build's store, synced, before the entry naming it).
    pub fn store_local(
        &mut self,
        ctx: &BuildContext<'_>,
        id: StepId,
        planned: &PlannedStep,
        layer: Option<(Descriptor, Digest)>,
        created: String,
    ) {
        let Some(local) = self.local.clone().filter(|_| planned.local) else { return };
        let entry = LocalEntry {
            key: planned.key.clone(),
            components: planned.components.clone(),
            created_by: ctx.redactor.redact(&planned.display),
            created,
            layer: layer.map(|(descriptor, diff_id)| LocalLayer { descriptor, diff_id }),
            earlier: self.history.remove(&id).unwrap_or_default(),
        };
        let pointer = self.local_pointer(id);
        let store = ctx.store.clone();
        let h = ctx.rt.spawn_blocking(move || {
            let path = local.store(&entry, &pointer, &store)?;
            Ok((format!("local:{}", path.display()), false))
        });
        self.local_writes.push((id, planned.key.clone(), h));
    }

    /// Waits for the local layer store's writes, reporting each. Only at the end: no push
    /// waits for them (their layers are in the build's store already, and a large layer's
    /// fsync into the cache dir is not the push's business).
    pub(super) fn await_local_writes(&mut self, ctx: &BuildContext<'_>) {
        for (id, key, h) in std::mem::take(&mut self.local_writes) {
            match ctx.rt.block_on(h) {
                Ok(Ok((reference, streamed))) => ctx.emitter.emit(Event::CacheStored { id, key, reference, streamed }),
                Ok(Err(e)) => {
                    let dir = crate::engine::disk_full::cache_dir(ctx.opts).unwrap_or(std::path::Path::new("/"));
                    let full = crate::engine::disk_full::note(&e, crate::engine::disk_full::FullDir::CacheDir, dir);
                    ctx.emitter.warn(format!("step {id}: could not write the local cache entry: {e}{full}"));
                }
                Err(e) => ctx.emitter.warn(format!("step {id}: local cache write task failed: {e}")),
            }
        }
    }

    /// Waits for the background cache writes, reporting each.
    pub(super) fn await_writes(&mut self, ctx: &BuildContext<'_>) {
        // Uploads no entry waited for (their step failed after all): let them end.
        for (_, h) in std::mem::take(&mut self.streamed) {
            let _ = ctx.rt.block_on(h);
        }
        for (id, key, h) in std::mem::take(&mut self.pushes) {
            match ctx.rt.block_on(h) {
                Ok(Ok((reference, streamed))) => {
                    self.stored.insert(id);
                    ctx.emitter.emit(Event::CacheStored { id, key, reference, streamed });
                }
                Ok(Err(e)) => ctx.emitter.warn(format!("step {id}: could not write the cache entry: {e}")),
                Err(e) => ctx.emitter.warn(format!("step {id}: cache write task failed: {e}")),
            }
        }
    }
}
