//! The end of a build for several platforms: the image index over each platform's image, what
//! the push gate shows of it, and its push to every destination.
//!
//! The push has two phases across destinations (see `registry/push_index.rs`): every
//! destination first receives every platform's image and the index by digest, and only when all
//! of them have it are the tags moved — a destination that fails (a refused credential, a
//! registry that will not store the index's media type) leaves every tag where it was.

use std::time::Instant;

use trowel_events::{Event, PlatformReview, PushReview};

use crate::engine::build::Build;
use crate::engine::error::{BuildError, PushError};
use crate::engine::layer::StageLayer;
use crate::engine::publish::progress_reporter;
use crate::image::index::FinalIndex;
use crate::image::outputs::FinalImage;
use crate::registry::{PushIndex, Reference};

impl Build<'_> {
    /// The index naming `images` (one per target platform, in the order given), reported as
    /// `index_assembled`.
    pub(crate) fn assemble_index(&mut self, images: &[FinalImage]) -> Result<FinalIndex, BuildError> {
        let ctx = &self.ctx;
        let pairs: Vec<_> = ctx.plan.platforms.iter().map(|p| p.target.clone()).zip(images.iter()).collect();
        let index = FinalIndex::annotated(&pairs, &ctx.opts.output.annotations)
            .map_err(|e| BuildError::Options(format!("the image index: {e}")))?;
        ctx.emitter.emit(Event::IndexAssembled {
            digest: (&index.digest).into(),
            media_type: index.media_type.to_string(),
            manifests: index
                .entries
                .iter()
                .map(|e| trowel_events::IndexEntry {
                    platform: e.platform.to_string(),
                    digest: (&e.descriptor.digest).into(),
                    size: e.descriptor.size,
                })
                .collect(),
            index: serde_json::from_slice(&index.bytes).unwrap_or(serde_json::Value::Null),
        });
        Ok(index)
    }

    /// What the push gate shows of an index: the index itself, then each platform's manifest
    /// with its layers as the single-image review shows them.
    pub(super) fn index_review(
        &mut self,
        index: &FinalIndex,
        dests: &[Reference],
        layers: &[Vec<StageLayer>],
    ) -> PushReview {
        let platforms = index
            .entries
            .iter()
            .zip(layers)
            .map(|(e, l)| {
                let one = self.push_review(&e.image, dests, l);
                PlatformReview {
                    platform: e.platform.to_string(),
                    manifest_digest: one.manifest_digest,
                    config_digest: (&e.image.config_digest).into(),
                    media_type: one.media_type,
                    layers: one.layers,
                }
            })
            .collect();
        PushReview {
            manifest_digest: (&index.digest).into(),
            config_digest: None,
            media_type: index.media_type.to_string(),
            destinations: self.ctx.opts.output.destinations.clone(),
            layers: Vec::new(),
            platforms,
        }
    }

    /// Pushes the index to every destination: everything by digest everywhere, then the tags.
    /// Returns the destinations pushed.
    pub(super) fn push_index(
        &mut self,
        index: &FinalIndex,
        dests: &[Reference],
        layers: &[Vec<StageLayer>],
    ) -> Result<Vec<String>, BuildError> {
        let raws = self.ctx.opts.output.destinations.clone();
        // A rebuild in which no step ran reproduces the previous index (see `Stamp`): a
        // destination that already names it has nothing to receive.
        let nothing_built = layers.iter().flatten().all(|l| l.step().is_none());
        let mut started = Vec::with_capacity(dests.len());
        let mut pushed = Vec::with_capacity(dests.len());
        for (dest, raw) in dests.iter().zip(&raws) {
            let t0 = Instant::now();
            self.ctx.emitter.emit(Event::PushStarted { destination: raw.clone() });
            if nothing_built
                && matches!(self.ctx.rt.block_on(self.ctx.registry.names_digest(dest, &index.digest)), Ok(true))
            {
                let images: Vec<&FinalImage> = index.entries.iter().map(|e| &e.image).collect();
                self.report_unchanged(raw, &images, &index.digest, t0);
                pushed.push(raw.clone());
                continue;
            }
            let push = PushIndex {
                index_bytes: index.bytes.clone(),
                media_type: index.media_type.to_string(),
                images: index.entries.iter().zip(layers).map(|(e, l)| self.push_image_of(dest, &e.image, l)).collect(),
            };
            let progress = progress_reporter(&self.ctx.emitter, raw);
            // Stopped while staging: manifests by digest, no tag (`stopping.rs`).
            let report = self
                .ctx
                .until_stopped(self.ctx.registry.stage_index(dest, &push, &self.ctx.store, &progress))?
                .map_err(|e| BuildError::Push { destination: raw.clone(), source: PushError::Registry(e) })?;
            for image in &report.images {
                self.emit_blobs(raw, image);
            }
            if report.index_digest != index.digest {
                return Err(BuildError::Push {
                    destination: raw.clone(),
                    source: PushError::DigestMismatch {
                        reported: report.index_digest.to_string(),
                        pushed: index.digest.to_string(),
                    },
                });
            }
            started.push((dest, raw, push, t0));
        }
        // Every destination staged its index before any is tagged: the last moment a stop keeps
        // every tag from being written.
        if let Some(stopped) = self.ctx.aborted() {
            return Err(stopped);
        }
        for (dest, raw, push, t0) in started {
            match self.ctx.rt.block_on(self.ctx.registry.tag_index(dest, &push)) {
                Err(e) if self.immutable_tag_kept(raw, &e) => {}
                tagged => {
                    tagged
                        .map_err(|e| BuildError::Push { destination: raw.clone(), source: PushError::Registry(e) })?;
                }
            }
            self.ctx.emitter.emit(Event::PushFinished {
                destination: raw.clone(),
                digest: (&index.digest).into(),
                duration_ms: t0.elapsed().as_millis() as u64,
                unchanged: false,
            });
            pushed.push(raw.clone());
        }
        pushed.sort_by_key(|p| raws.iter().position(|r| r == p));
        Ok(pushed)
    }
}
