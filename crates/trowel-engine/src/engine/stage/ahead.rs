//! A stage's root made ahead: a cold stage's while its cache keys are planned, an edited COPY's
//! while the cache repository answers.
//!
//! A stage's first step that needs files makes its root when the cache has missed it, and the
//! cache only knows after the stage's keys are computed (the context's files hashed for each
//! COPY) and looked up in the cache repository: two registry round trips and the hashing, all
//! spent before the base's first byte is unpacked (W6: 26 ms of a cold build's critical path,
//! W1: 10 ms). When the prefetch has already found the stage cold (the cache repository has
//! no pointer tag for its first step that needs the root: these steps were never cached
//! there, see `prefetch/cold.rs`), the root will be needed, so it is made on a second thread while
//! the keys are planned and looked up on this one.
//!
//! A stage the prefetch found warm (its first file step has an entry) may still run a COPY: the
//! commonest CI rebuild edits a source file, and `COPY src/ /src/` then misses. When such a COPY
//! is kept out of the cache repository (kaniko's flags) and the local layer store has no entry
//! for its key, it runs unless another machine built the same inputs (a layer reference record in
//! the cache repository); the root is then made at once, while the cache repository answers the
//! lookups, instead of after them (W6's edit: its compile RUN starts 30 ms sooner). Only when the
//! store holds every layer of the base (a mount, no download) and nothing before the COPY but a
//! WORKDIR adds a layer (which would be applied to the root rather than mounted with it). When
//! the cache repository does serve the COPY after all, the root was made for nothing: one
//! overlay mount and its index.
//!
//! What it may not change:
//! - *What a step sees.* The root is what the first file step would have made (the same
//!   layers, the same `materialize`). Should a step before it be served from the cache after
//!   all, its layer is applied to the root as any hit's is after a miss.
//! - *Errors.* A root that could not be made is the error of the first step that needs it, as
//!   if that step had made it; a stage the cache serves whole never reports it.
//! - *A cached build's work.* Only a stage found cold, or one whose COPY the local store lacks
//!   (an unchanged rebuild finds every COPY there), and only in chroot or rootless isolation:
//!   container isolation unpacks into `/`, which another stage may still hold until its first
//!   file step claims it.

use crate::dockerfile::{Base, Instruction};
use crate::engine::context::BuildContext;
use crate::engine::error::BuildError;
use crate::engine::layer_cache::{self, StageInputs, StageKeys};
use crate::engine::prefetch::copies_alone_kept_out;
use crate::engine::root::{BuildRoot, RootFor};
use crate::engine::shared::Shared;
use crate::engine::stage::StageRunner;
use trowel_events::StepId;

impl StageRunner {
    /// Plans the stage's cache keys and starts their lookups (`layer_cache::plan`), making the
    /// root meanwhile when the stage is cold (see the module's comment).
    pub(super) fn plan_keys(&mut self, s: &mut Shared<'_, '_>, from: &Instruction, steps: &[(StepId, Instruction)]) {
        let ctx = s.ctx;
        let Some(cache) = s.cache.as_deref() else { return };
        let idx = self.index;
        let cold =
            if self.may_make_ahead(ctx) && !copies_alone_kept_out(ctx, idx, steps.iter().map(|(_, ins)| &ins.kind)) {
                ctx.cold_stage(idx)
            } else {
                None
            };
        let inputs = StageInputs {
            index: idx,
            base_digest: self.base_digest.as_ref(),
            base_ref: &self.base_ref,
            config: &self.config,
            cold: cold.clone().zip(ctx.cold_pointer_step(idx)).map(|(c, step)| (step, c)),
        };
        let stages = &mut *s.stages;
        let layers = &self.layers;
        let (keys, made): (StageKeys, Option<Result<BuildRoot, BuildError>>) = std::thread::scope(|scope| {
            let making = cold.map(|cold| {
                scope.spawn(move || {
                    ctx.rt.block_on(cold).then(|| ctx.materialize(layers, &format!("stage{idx}"), RootFor::Stage(idx)))
                })
            });
            let keys = layer_cache::plan(ctx, stages, cache, inputs, from, steps);
            // A thread that panicked made nothing: the first file step makes the root.
            (keys, making.and_then(|m| m.join().ok().flatten()))
        });
        self.keys = keys;
        match made {
            Some(made) => self.files.made_ahead(made),
            None => self.root_for_local_miss(s, steps),
        }
    }

    /// Whether this stage's root may be made before its first file step asks for it: a stage
    /// on an image, with no root yet, and not in container isolation (whose `/` another stage
    /// may still hold).
    fn may_make_ahead(&self, ctx: &BuildContext<'_>) -> bool {
        matches!(ctx.plan.stages[self.index].base, Base::Image(_))
            && ctx.slash_keep.is_none()
            && self.files.existing().is_none()
    }

    /// Makes the root of a stage found warm when a COPY of it will run after all (see the
    /// module's comment), while the cache repository is asked for the steps' entries.
    fn root_for_local_miss(&mut self, s: &Shared<'_, '_>, steps: &[(StepId, Instruction)]) {
        use crate::dockerfile::InstructionKind as K;
        let ctx = s.ctx;
        let Some(cache) = s.cache.as_deref() else { return };
        if !self.may_make_ahead(ctx) || self.layers.is_empty() {
            return;
        }
        // The stage's first step that adds files must be the COPY: what a RUN or another COPY
        // before it adds would be applied to the root rather than mounted from the store (a
        // WORKDIR's directory is worth that).
        let adds_files = |ins: &Instruction| matches!(ins.kind, K::Run { .. } | K::Copy(_) | K::Add(_));
        let Some((first, _)) = steps.iter().find(|(_, ins)| adds_files(ins)) else { return };
        if !cache.local_miss(&self.keys, *first) {
            return;
        }
        // A mount of entries the store holds, never a download or an unpack.
        if !ctx.blobs_needed(&self.layers).is_empty() {
            return;
        }
        let made = ctx.materialize(&self.layers, &format!("stage{}", self.index), RootFor::Stage(self.index));
        self.files.made_ahead(made);
    }
}
