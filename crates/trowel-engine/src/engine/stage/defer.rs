//! A COPY/ADD the cache missed whose layer nothing needs is not run (its status is `deferred`).
//!
//! With kaniko's flags (`--cache=true`, no `--cache-copy-layers`) a COPY's layer never goes to
//! the cache repository, and a layer reference record only names a layer of a pushed image. A
//! COPY in a builder stage therefore misses in every fresh pod, while the steps after it hit:
//! their keys chain on the COPY's key, which is computed from the context without running it.
//! Running it then made the builder's root (its base unpacked), read the files and wrote a
//! layer that nothing used. It is left unrun when all of these hold at its miss:
//!
//! - nothing can pause the build or look at the root (a debugger), and no viewer asked for the
//!   cached layers after it to be compared with the layers below them;
//! - the step copies from the build context (no `--from`, no `--link`, no URL or git source);
//! - the stage is no image (not a target) and no stage is built `FROM` it, so its config and
//!   layers are never assembled or built on; not a build for several platforms (whose lanes
//!   share stages' roots), not `--single-snapshot`;
//! - the stage has no root yet, every step is keyed, and every later step of the stage either
//!   only changes the config or is looked up and hits (the lookups, started when the stage was
//!   planned, are waited for now: a step that would run needs the root with the COPY's files,
//!   so the COPY then runs in its place as before).
//!
//! Its key still chains the steps after it, its miss is reported (`cache_lookup`), and the
//! stage's layers and history then lack it: nothing reads them. The only readers left are a
//! later `COPY --from` or `RUN --mount=from=` of the stage that misses: `Stages::stage_files`
//! then makes the stage's whole root as the stage would have had it — the layers below the
//! COPY, the COPY run into it, the (cached) layers above applied — which is the root the stage
//! had before this existed, so those readers read the same files.

use trowel_events::StepId;

use crate::dockerfile::{Base, Expanded, ExpandedSource, Instruction, InstructionKind};
use crate::engine::context::BuildContext;
use crate::engine::error::{BuildError, Location};
use crate::engine::layer::StageLayer;
use crate::engine::layer_cache::PlannedStep;
use crate::engine::root::{BuildRoot, RootFor};
use crate::engine::shared::Shared;
use crate::engine::stage::{StageConfig, StageRunner};
use crate::engine::steps::{FileCx, Source, Step, StepAt};

/// A COPY/ADD that was not run, with what running it later needs.
#[derive(Clone)]
pub(crate) struct DeferredCopy {
    pub id: StepId,
    /// How many of the stage's layers lie below it.
    pub below: usize,
    pub instruction: Instruction,
    pub loc: Location,
    pub display: String,
    pub expanded: Expanded,
    /// The stage's config as the step found it (its WORKDIR).
    pub config: StageConfig,
    /// Its cache key: what stands for its layer where the stage's layers name its contents.
    pub key: String,
}

impl StageRunner {
    /// Whether step `id`, which the cache just missed, may be left unrun (see the module's
    /// comment).
    pub(super) fn may_defer(
        &mut self,
        s: &Shared<'_, '_>,
        id: StepId,
        expanded: &Expanded,
        planned: &PlannedStep,
    ) -> bool {
        let ctx = s.ctx;
        let stage = self.index;
        let c = match expanded {
            Expanded::Copy(c) | Expanded::Add(c) => c,
            _ => return false,
        };
        let remote = |p: &str| p.contains("://") || p.starts_with("git@");
        let from_context = c.from.is_none()
            && !c.link
            && c.sources.iter().all(|src| match src {
                ExpandedSource::Path(p) => !remote(p),
                ExpandedSource::Heredoc { .. } => true,
            });
        let viewer_compares = ctx.detail.cached_diffs || s.controller.detail().cached_diffs;
        let built_on = ctx.plan.stages.iter().any(|st| matches!(st.base, Base::Stage(p) if p == stage));
        if !planned.local
            || !from_context
            || !s.controller.defers_unneeded_steps()
            || viewer_compares
            || ctx.opts.layers.single_snapshot
            || ctx.plan.is_multi_platform()
            || ctx.plan.targets.contains(&stage)
            || built_on
            || self.off_dockerfile
            || self.files.existing().is_some()
            || self.keys.final_key.is_none()
        {
            return false;
        }
        let Some(at) = self.order.iter().position(|(sid, _)| *sid == id) else { return false };
        let rest: Vec<(StepId, bool)> = self.order[at + 1..].to_vec();
        for (sid, files) in rest {
            if self.keys.looked_up(sid) {
                if !self.keys.will_hit(&ctx.rt, sid) {
                    return false;
                }
            } else if files {
                return false;
            }
        }
        true
    }

    /// Leaves step `at` unrun: what running it later needs is kept for the stage's readers.
    pub(super) fn defer(&mut self, at: &StepAt<'_>, expanded: Expanded, planned: &PlannedStep) {
        self.deferred = Some(DeferredCopy {
            id: at.id,
            below: self.layers.len(),
            instruction: at.instruction.clone(),
            loc: at.loc.clone(),
            display: at.display.clone(),
            expanded,
            config: self.config.clone(),
            key: planned.key.clone(),
        });
    }
}

/// Whether an instruction works on files (what a step that is not looked up needs a root for).
pub(super) fn works_on_files(ins: &Instruction) -> bool {
    matches!(
        ins.kind,
        InstructionKind::Run { .. } | InstructionKind::Copy(_) | InstructionKind::Add(_) | InstructionKind::Workdir(_)
    )
}

/// The whole root of stage `stage` (`layers`: its layers, which lack `d`'s), for `step`, which
/// reads it: the layers below the deferred COPY, the COPY run into them, the layers above it
/// applied — the root the stage would have had, had the COPY run in its place.
pub(crate) fn root_with(
    ctx: &BuildContext<'_>,
    stage: usize,
    layers: &[StageLayer],
    d: DeferredCopy,
    step: StepId,
) -> Result<BuildRoot, BuildError> {
    let (below, above) = layers.split_at(d.below.min(layers.len()));
    let why = format!(
        "its {} at line {} was not run (deferred) and runs now into this root of the {} layer(s) below it, \
         then the {} cached layer(s) above it are applied",
        d.instruction.keyword(),
        d.instruction.line,
        below.len(),
        above.len()
    );
    let root_for = RootFor::Reader { step, stage: Some(stage), image: None, why: &why };
    let mut root = ctx.materialize(below, &format!("stage{stage}-copy"), root_for)?;
    let at = StepAt { id: d.id, loc: d.loc.clone(), instruction: &d.instruction, display: d.display.clone() };
    let Step::Files(copy) = Step::of(d.expanded) else {
        return Err(at.invalid("a deferred step that works on no files"));
    };
    let mut config = d.config;
    let source = Source::Context { root: &ctx.context, ignore: &ctx.dockerignore };
    copy.run(FileCx { ctx, at: &at, config: &mut config, root: &mut root, source, mounts: None })?;
    ctx.fetch_blobs(above)?;
    let opts = ctx.unpack_options();
    for l in above {
        ctx.unpack_verified(root.snap.root(), l, &opts, "apply cached")?;
    }
    Ok(root)
}
