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
//! - the stage is no image (not a target), nor is any stage built `FROM` it at any remove (in
//!   the usual `FROM deps AS build`, `build` is no image either), so its config and layers are
//!   never assembled; not `--single-snapshot`;
//! - the stage has no root yet, every step is keyed, and every later step of the stage either
//!   only changes the config, or is looked up and hits, or is a COPY that would be deferred in
//!   turn should it miss (the usual `COPY go.mod`, `RUN download`, `COPY . .`, `RUN build`: both
//!   COPYs miss in a fresh pod). The lookups, started when the stage was planned, are waited
//!   for now: a step that would run needs the root with the COPY's files, so the COPY then runs
//!   in its place as before.
//!
//! Its key still chains the steps after it, its miss is reported (`cache_lookup`), and the
//! stage's layers and history then lack it: no image is made of them (`publish.rs` refuses one
//! that would be). Every reader of the stage's files gets them whole instead, as the stage would
//! have had them — the layers below the first deferred COPY, each deferred COPY run into it in
//! its place, the (cached) layers between and above applied — which is the root the stage had
//! before this existed, so it reads the same files:
//!
//! - a later `COPY --from` or `RUN --mount=from=` of the stage that misses: `Stages::stage_files`
//!   makes that root for it (`root_with`);
//! - a stage built `FROM` it starts from its layers and carries its deferred COPYs on (each at
//!   the same place: the child's layers begin with the parent's), and is read in turn as above;
//! - any step of a stage with deferred COPYs (its own or its parents') that needs the stage's
//!   root — a RUN or COPY that misses in a child — has it made whole first
//!   (`StageRunner::make_whole`), the snapshotter told of every path that touched, so the
//!   step's layer holds only its own changes, as it would have. A parent's root a child takes
//!   over is whole by the same rule.
//!
//! In a build for several platforms the same holds per stage instance. A shared stage (one every
//! target builds on, such as a `FROM --platform=$BUILDPLATFORM` one) is built before the lanes
//! start; each lane works on a fork of the stages built so far, so a shared stage with deferred
//! COPYs that a lane needs whole is made whole in that lane, once per lane that reads it (the
//! fork's root goes with the lane's), and a per-target child carries the shared parent's
//! deferred COPYs as any child does.
//!
//! The descendants are not looked ahead at, as the stage's own later steps are: their keys are
//! not planned (nor looked up) until they start, and the lazy root is sound on its own. It costs
//! them no more than deferral saved: a child that needs its root would otherwise have taken the
//! parent's, made from the same base, the same COPY and the same cached layers; now the COPY runs
//! into the child's root instead, and its layer is still never written.

use trowel_events::{Event, StepId};

use crate::dockerfile::{Base, CopySource, Expanded, ExpandedSource, Instruction, InstructionKind, Plan};
use crate::engine::context::BuildContext;
use crate::engine::error::{BuildError, Location};
use crate::engine::layer::StageLayer;
use crate::engine::layer_cache::PlannedStep;
use crate::engine::root::{BuildRoot, RootFor};
use crate::engine::shared::Shared;
use crate::engine::stage::{StageConfig, StageRunner};
use crate::engine::steps::copy::seen::Seen;
use crate::engine::steps::{Changed, FileCx, Scope, Source, Step, StepAt};

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
        // Stages built on it, at any remove, start from its layers and inherit the deferral:
        // none may be an image either.
        let image_on = built_on(&ctx.plan, stage).iter().any(|d| ctx.plan.targets.contains(d));
        if !planned.local
            || !from_context
            || !s.controller.defers_unneeded_steps()
            || viewer_compares
            || ctx.opts.layers.single_snapshot
            || ctx.plan.targets.contains(&stage)
            || image_on
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

impl StageRunner {
    /// Makes the stage's root for step `step` (`run`: a RUN) when its layers lack deferred
    /// COPYs, its own or its parents': whole, as the stage would have had it (see the module's
    /// comment). The parent's root, when the stage takes it over, is whole by this same rule.
    /// The root [`StageFiles`](super::StageFiles) then hands out is this one.
    pub(super) fn make_whole(&mut self, s: &mut Shared<'_, '_>, step: StepId, run: bool) -> Result<(), BuildError> {
        let ctx = s.ctx;
        let idx = self.index;
        if self.deferred.is_empty() {
            return Ok(());
        }
        self.files.take_parent(s, idx, &self.layers)?;
        let slash = self.files.wants_slash(s, run);
        if self.files.existing().is_some_and(|r| !slash || r.is_slash()) {
            return Ok(());
        }
        // No root, or one in the work dir that a RUN needs in `/` (container isolation), where
        // `StageFiles::at_slash` would make it again from the layers alone.
        let below = &self.layers[..first_below(&self.layers, &self.deferred)];
        let mut root = match &ctx.slash_keep {
            Some(keep) if slash => {
                s.stages.claim_slash(idx);
                ctx.materialize_at_slash(keep, below, idx)?
            }
            _ => ctx.materialize(below, &format!("stage{idx}"), RootFor::Stage(idx))?,
        };
        run_into(ctx, &mut root, &self.layers, &self.deferred, step, None)?;
        if let Some(old) = self.files.replace(root).filter(|old| !old.is_slash()) {
            for d in old.into_dirs() {
                let _ = crate::fs::remove::remove_tree(&d);
            }
        }
        Ok(())
    }
}

/// The stages built `FROM` stage `stage`, and those built from them, at any remove.
fn built_on(plan: &Plan, stage: usize) -> Vec<usize> {
    let mut found = vec![stage];
    let mut i = 0;
    while let Some(&p) = found.get(i) {
        found.extend(plan.stages.iter().filter(|st| matches!(st.base, Base::Stage(b) if b == p)).map(|st| st.index));
        i += 1;
    }
    found.split_off(1)
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
    let first = first_below(layers, deferred);
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
    run_into(ctx, &mut root, layers, deferred, step, Some(stage))?;
    Ok(root)
}

/// How many of `layers` lie below the first of `deferred`.
fn first_below(layers: &[StageLayer], deferred: &[DeferredCopy]) -> usize {
    deferred.first().map_or(layers.len(), |d| d.below.min(layers.len()))
}

/// Runs each of `deferred` into `root` (which holds the layers below the first) in its place,
/// with the layers between them and above the last applied. `reading`: the stage whose files
/// `step` reads from this root, made for it; `None`: the root is `step`'s own stage's, whose
/// next snapshot must hold that step's changes only, so the snapshotter is told of every path
/// these touched (as a cached layer applied to a root is, `cache.rs`).
fn run_into(
    ctx: &BuildContext<'_>,
    root: &mut BuildRoot,
    layers: &[StageLayer],
    deferred: &[DeferredCopy],
    step: StepId,
    reading: Option<usize>,
) -> Result<(), BuildError> {
    let index = reading.is_none();
    let opts = match &ctx.slash_keep {
        Some(keep) if root.is_slash() => ctx.slash_unpack_options(keep),
        _ => ctx.unpack_options(),
    };
    for (i, d) in deferred.iter().enumerate() {
        let started = std::time::Instant::now();
        let at = StepAt { id: d.id, loc: d.loc.clone(), instruction: &d.instruction, display: d.display.clone() };
        let Step::Files(copy) = Step::of(d.expanded.clone()) else {
            return Err(at.invalid("a deferred step that works on no files"));
        };
        let mut config = d.config.clone();
        let source = Source::Context { root: &ctx.context, ignore: &ctx.dockerignore };
        let seen = d.seen.as_deref();
        let changed = copy.run(FileCx { ctx, at: &at, config: &mut config, root, source, mounts: None, seen })?;
        let index_err = |e| ctx.fs_failed(format!("index what the deferred step {} wrote", d.id))(e);
        // Each walk is as long as what the step or a layer wrote: a stop gives it up.
        let cancel = ctx.fs_cancel();
        let cancel = cancel.as_ref();
        if index {
            match changed {
                Changed::Files(Scope::Paths(p)) => {
                    drop(root.snap.snapshot_paths_cancellable(&p, cancel).map_err(index_err)?)
                }
                Changed::Files(Scope::Full) => drop(root.snap.snapshot_cancellable(cancel).map_err(index_err)?),
                Changed::Nothing => {}
            }
        }
        let end = deferred.get(i + 1).map_or(layers.len(), |n| n.below.min(layers.len()));
        let above = &layers[d.below.min(end)..end];
        ctx.fetch_blobs(above)?;
        for l in above {
            let stats = ctx.unpack_verified(root.snap.root(), l, &opts, "apply cached")?;
            if index {
                root.snap.snapshot_paths_cancellable(&stats.touched, cancel).map_err(index_err)?;
            }
        }
        // The step said it did not run when its turn came; it did now, in `step`'s time.
        ctx.emitter.emit(Event::DeferredRun {
            id: d.id,
            for_step: step,
            duration_ms: started.elapsed().as_millis() as u64,
            reading,
        });
    }
    Ok(())
}
