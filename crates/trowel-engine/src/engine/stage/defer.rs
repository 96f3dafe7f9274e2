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
//!   only changes the config, or is looked up and hits, or is a COPY that would be deferred in
//!   turn should it miss (the usual `COPY go.mod`, `RUN download`, `COPY . .`, `RUN build`: both
//!   COPYs miss in a fresh pod). The lookups, started when the stage was planned, are waited
//!   for now: a step that would run needs the root with the COPY's files, so the COPY then runs
//!   in its place as before.
//!
//! Its key still chains the steps after it, its miss is reported (`cache_lookup`), and the
//! stage's layers and history then lack it: nothing reads them. The only readers left are a
//! later `COPY --from` or `RUN --mount=from=` of the stage that misses: `Stages::stage_files`
//! then makes the stage's whole root as the stage would have had it — the layers below the
//! first deferred COPY, each deferred COPY run into it in its place, the (cached) layers between
//! and above applied — which is the root the stage had before this existed, so those readers
//! read the same files.

use trowel_events::{Event, StepId};

use crate::dockerfile::{Base, CopySource, Expanded, ExpandedSource, Instruction, InstructionKind};
use crate::engine::context::BuildContext;
use crate::engine::error::{BuildError, Location};
use crate::engine::layer::StageLayer;
use crate::engine::layer_cache::PlannedStep;
use crate::engine::root::{BuildRoot, RootFor};
use crate::engine::shared::Shared;
use crate::engine::stage::{StageConfig, StageRunner};
use crate::engine::steps::copy::seen::Seen;
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
    /// The context files the key was made from, which the copy must read when it runs
    /// (`steps/copy/seen.rs`): the context may change a long while before.
    pub seen: Option<std::sync::Arc<Seen>>,
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
        let (c, is_add) = match expanded {
            Expanded::Copy(c) => (c, false),
            Expanded::Add(c) => (c, true),
            _ => return false,
        };
        // Only an ADD fetches a URL or a git repository; a COPY's `git@x` or `a://b` is a path
        // of the context. These checks must never be stricter than `Later::deferrable`'s on the
        // instruction as written: a COPY deferred on the promise that a later one would be
        // deferred too found that one run, and the build failed (an unchanged rebuild whose
        // second COPY named `git@foo`).
        let remote = |p: &str| is_add && (p.contains("://") || p.starts_with("git@"));
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
        let Some(at) = self.order.iter().position(|l| l.id == id) else { return false };
        let rest: Vec<Later> = self.order[at + 1..].to_vec();
        for later in rest {
            if self.keys.looked_up(later.id) {
                // A COPY after it that misses is deferred in turn, by these same rules.
                if !self.keys.will_hit(&ctx.rt, later.id) && !later.deferrable {
                    return false;
                }
            } else if later.files {
                return false;
            }
        }
        true
    }

    /// Leaves step `at` unrun: what running it later needs is kept for the stage's readers.
    pub(super) fn defer(&mut self, at: &StepAt<'_>, expanded: Expanded, planned: &PlannedStep) {
        self.deferred.push(DeferredCopy {
            id: at.id,
            below: self.layers.len(),
            instruction: at.instruction.clone(),
            loc: at.loc.clone(),
            display: at.display.clone(),
            expanded,
            config: self.config.clone(),
            key: planned.key.clone(),
            seen: planned.seen.clone(),
        });
    }
}

/// A step of the stage as a deferral looks ahead at it.
#[derive(Clone, Copy)]
pub(crate) struct Later {
    pub id: StepId,
    /// It works on files (a step that is not looked up then needs the root).
    pub files: bool,
    /// A COPY/ADD that, should it miss, would be deferred too as written (no `--from`, no
    /// `--link`; an ADD naming no URL, git repository or variable that could be one): the
    /// checks of [`StageRunner::may_defer`] that do not depend on the cache, made on the
    /// instruction as written, never less strict than those made on it expanded.
    pub deferrable: bool,
}

impl Later {
    pub fn of(id: StepId, ins: &Instruction) -> Later {
        let files = matches!(
            ins.kind,
            InstructionKind::Run { .. }
                | InstructionKind::Copy(_)
                | InstructionKind::Add(_)
                | InstructionKind::Workdir(_)
        );
        let deferrable = match &ins.kind {
            InstructionKind::Copy(c) | InstructionKind::Add(c) => {
                let is_add = matches!(ins.kind, InstructionKind::Add(_));
                let flags_ok = c.flags.iter().all(|f| f.name != "from" && f.name != "link");
                let sources_ok = c.sources.iter().all(|src| match src {
                    CopySource::Path(p) => !is_add || !(p.contains("://") || p.starts_with("git@") || p.contains('$')),
                    CopySource::Heredoc(_) => true,
                });
                flags_ok && sources_ok
            }
            _ => false,
        };
        Later { id, files, deferrable }
    }
}

/// The whole root of stage `stage` (`layers`: its layers, which lack the `deferred` steps'),
/// for `step`, which reads it: the layers below the first deferred COPY, each deferred COPY run
/// into it in turn with the (cached) layers between them and after the last applied — the root
/// the stage would have had, had the COPYs run in their places.
pub(crate) fn root_with(
    ctx: &BuildContext<'_>,
    stage: usize,
    layers: &[StageLayer],
    deferred: &[DeferredCopy],
    step: StepId,
) -> Result<BuildRoot, BuildError> {
    let first = deferred.first().map_or(layers.len(), |d| d.below.min(layers.len()));
    let lines: Vec<String> =
        deferred.iter().map(|d| format!("{} at line {}", d.instruction.keyword(), d.instruction.line)).collect();
    let why = format!(
        "the stage's steps not run (deferred): {}; run now into this root of the {first} layer(s) below them, with \
         the {} cached layer(s) above applied in their places",
        lines.join(", "),
        layers.len() - first
    );
    let root_for = RootFor::Reader { step, stage: Some(stage), image: None, why: &why };
    let mut root = ctx.materialize(&layers[..first], &format!("stage{stage}-copy"), root_for)?;
    let opts = ctx.unpack_options();
    for (i, d) in deferred.iter().enumerate() {
        let started = std::time::Instant::now();
        let at = StepAt { id: d.id, loc: d.loc.clone(), instruction: &d.instruction, display: d.display.clone() };
        let Step::Files(copy) = Step::of(d.expanded.clone()) else {
            return Err(at.invalid("a deferred step that works on no files"));
        };
        let mut config = d.config.clone();
        let source = Source::Context { root: &ctx.context, ignore: &ctx.dockerignore };
        let seen = d.seen.as_deref();
        copy.run(FileCx { ctx, at: &at, config: &mut config, root: &mut root, source, mounts: None, seen })?;
        let end = deferred.get(i + 1).map_or(layers.len(), |n| n.below.min(layers.len()));
        let above = &layers[d.below.min(end)..end];
        ctx.fetch_blobs(above)?;
        for l in above {
            ctx.unpack_verified(root.snap.root(), l, &opts, "apply cached")?;
        }
        // The step said it did not run when its turn came; it did now, in `step`'s time.
        ctx.emitter.emit(Event::DeferredRun {
            id: d.id,
            for_step: step,
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }
    Ok(root)
}
