//! Which stages' bases are worth fetching ahead, and what tells: a stage needs its base's files
//! only for a step that needs its root, and with `--cache` only when the cache repository has no
//! entry for that step, which the step's pointer tag tells before any key is computed (see the
//! parent module's comment). Kept apart from the downloads themselves: this is the plan's and
//! the Dockerfile's reading, with no registry or runtime in it.

use crate::dockerfile::{Base, InstructionKind, StageOrImage};
use crate::engine::context::BuildContext;
use crate::engine::layer_cache::LayerCache;
use crate::image::manifest::Platform;
use crate::registry::Reference;

impl BuildContext<'_> {
    /// The first stage, in build order, built on `reference` for `platform` that will need its
    /// root and whose need something tells ([`BuildContext::cold_pointer`]), with that pointer
    /// tag: what a download of that base begun ahead is for.
    pub(super) fn root_stage_on(
        &self,
        reference: &str,
        platform: &Platform,
        cache: Option<&LayerCache>,
    ) -> Option<(usize, Option<Reference>)> {
        self.plan.order.iter().copied().find_map(|j| {
            let on = matches!(&self.plan.stages[j].base, Base::Image(r) if r == reference)
                && self.base_platform(j).as_ref() == Some(platform)
                && self.needs_root(j);
            if on { self.cold_pointer(j, cache).map(|pointer| (j, pointer)) } else { None }
        })
    }

    /// What tells whether stage `idx`'s base layers are worth fetching ahead: `Some(None)`
    /// without `--cache` (they are: every step runs), `Some(Some(tag))` with it (once the cache
    /// repository is found to lack that pointer tag), `None` when nothing can tell (they are
    /// not fetched ahead; the stage's root downloads what it lacks when a step makes it).
    ///
    /// A stage of COPYs alone kept out of the cache repository, in no image, writes no pointer
    /// tag, and in a fresh pod its COPYs are deferred when nothing needs their files
    /// (`stage/defer.rs`): its base is needed only if the stage that reads it first — built
    /// `FROM` it, or copying or mounting from it — misses, so that stage's pointer tells (its
    /// own, found the same way). Before, the COPY's pointer, never written, made every such
    /// stage look cold, and a fresh pod's unchanged rebuild downloaded a base nothing unpacked.
    pub(crate) fn cold_pointer(&self, idx: usize, cache: Option<&LayerCache>) -> Option<Option<Reference>> {
        let Some(cache) = cache else { return Some(None) };
        let (stage, step) = self.cold_tell(idx)?;
        Some(Some(cache.pointer_ref(stage, step)))
    }

    /// The stage and step whose pointer tag tells stage `idx` cold (see [`Self::cold_pointer`]).
    fn cold_tell(&self, idx: usize) -> Option<(usize, usize)> {
        let stage = &self.df.stages[self.plan.stages[idx].dockerfile_stage];
        if !copies_alone_kept_out(self, idx, stage.instructions.iter().map(|ins| &ins.kind)) {
            return self.cold_pointer_step(idx).map(|step| (idx, step));
        }
        let reads = |j: usize| {
            let s = &self.plan.stages[j];
            matches!(s.base, Base::Stage(p) if p == idx)
                || s.copy_from.iter().chain(&s.mount_from).any(|f| matches!(f, StageOrImage::Stage(p) if *p == idx))
        };
        let at = self.plan.order.iter().position(|&i| i == idx)?;
        // Readers come later in the build order, so this ends.
        let reader = self.plan.order[at + 1..].iter().copied().find(|&j| reads(j))?;
        self.cold_tell(reader)
    }

    /// Whether stage `idx` has a step that needs its root unless the cache serves it.
    pub(super) fn needs_root(&self, idx: usize) -> bool {
        use crate::dockerfile::InstructionKind as K;
        let stage = &self.df.stages[self.plan.stages[idx].dockerfile_stage];
        let linked = |flags: &[crate::dockerfile::Flag]| {
            flags
                .iter()
                .rev()
                .find(|f| f.name == "link")
                .is_some_and(|f| f.value.as_deref().is_none_or(|v| v != "false"))
        };
        stage.instructions.iter().any(|ins| match &ins.kind {
            K::Run { .. } | K::Workdir(_) => true,
            K::Copy(a) | K::Add(a) => !linked(&a.flags),
            _ => false,
        })
    }

    /// The index, among stage `idx`'s instructions (1 is the first after `FROM`), of its first
    /// step that needs the root.
    pub(crate) fn first_root_step(&self, idx: usize) -> Option<usize> {
        use crate::dockerfile::InstructionKind as K;
        let stage = &self.df.stages[self.plan.stages[idx].dockerfile_stage];
        stage
            .instructions
            .iter()
            .position(|ins| matches!(ins.kind, K::Run { .. } | K::Workdir(_) | K::Copy(_) | K::Add(_)))
            .map(|i| i + 1)
    }

    /// The step whose pointer tag in the cache repository tells a cold stage (never cached
    /// there) from one built before: its first step that needs the root, passing over the
    /// COPY/ADD steps whose pointer is never there — kept out of the cache repository (no
    /// `--cache-copy-layers`) in a stage that is no image, so no layer reference record is
    /// written for them either. Before, such a stage (the usual builder: `COPY src`, then
    /// `RUN make`) looked cold to every build, and its base was downloaded and its root made
    /// ahead even when every step after the COPY hit. With no other step: the first one.
    pub(crate) fn cold_pointer_step(&self, idx: usize) -> Option<usize> {
        use crate::dockerfile::InstructionKind as K;
        let first = self.first_root_step(idx)?;
        let copies_kept_out = self.opts.cache.as_ref().is_some_and(|c| !c.copy_layers);
        if !copies_kept_out || self.plan.targets.contains(&idx) {
            return Some(first);
        }
        let stage = &self.df.stages[self.plan.stages[idx].dockerfile_stage];
        let other =
            stage.instructions.iter().position(|ins| matches!(ins.kind, K::Run { .. } | K::Workdir(_))).map(|i| i + 1);
        Some(other.unwrap_or(first))
    }
}

/// Whether the steps of stage `idx` that need a root (of `kinds`, its instructions) are all
/// COPY/ADD kept out of the cache repository (no `--cache-copy-layers`) in a stage that is in no
/// image (no target, nor a stage a target is built on): such a stage (`FROM base AS src`,
/// `COPY src/ /src/`, read by a stage built `FROM` it) writes no pointer tag that could tell it
/// cold, and its COPYs are left unrun when nothing needs their files (`stage/defer.rs`), which a
/// root made ahead (`stage/ahead.rs`) or a base fetched ahead on its own account would undo.
pub(crate) fn copies_alone_kept_out<'a>(
    ctx: &BuildContext<'_>,
    idx: usize,
    mut kinds: impl Iterator<Item = &'a InstructionKind>,
) -> bool {
    let kept_out = ctx.opts.cache.as_ref().is_some_and(|c| !c.copy_layers);
    kept_out
        && !crate::engine::layer_cache::in_pushed_image(&ctx.plan, idx)
        && !kinds.any(|k| matches!(k, InstructionKind::Run { .. } | InstructionKind::Workdir(_)))
}
