//! One stage, start to end: the [`StageRunner`] owns everything about the stage being built —
//! its config, its layers so far, its build root and the snapshotter indexing it, the cache keys
//! of its steps, the clock its history is stamped with — and runs its steps in order.
//!
//! Around every step it does the same things, here and nowhere else: expand the instruction,
//! report it, consult the controller before and after it, serve it from the layer cache or run
//! it, snapshot what it changed into a layer with its history entry, and report the result.
//! Steps themselves ([`crate::engine::steps`]) only do their own work.
//!
//! One file per concern of the runner: `start.rs` (the base), `files.rs` (the root, made on
//! demand), `ahead.rs` (a cold stage's root, made while its keys are planned), `commit.rs`
//! (changes into a layer and a history entry, and its time), `cache.rs` (hits, misses, writing
//! back), `checkpoint.rs` (pauses), `debug_shell.rs` (shells at a pause), `link.rs` (`--link`
//! steps: made on an empty root, laid over the stage), `retry.rs` (a failed step re-run from
//! the debugger), `tail.rs` (upload sessions opened ahead for the stage's last layers); this
//! file runs the steps, each attempt of a step the same way.

use std::time::{Duration, Instant};

use trowel_events::{Event, StepId, StepStatus, When};

use crate::digest::Digest;
use crate::dockerfile::{ArgScope, Expanded, Instruction, InstructionKind};
use crate::engine::controller::{Checkpoint, StepReport};
use crate::engine::error::{BuildError, StepError};
use crate::engine::layer::StageLayer;
use crate::engine::layer_cache::StageKeys;
use crate::engine::mounts::{self, MountRoots, StepMounts};
use crate::engine::shared::Shared;
use crate::engine::stages::BuiltStage;
use crate::engine::steps::copy::seen::Seen;
use crate::engine::steps::{Changed, FileCx, FileStep, Source, Step, StepAt, StepOutcome, config, copy::stage_index};
use crate::engine::vars::StepVars;
use crate::image::config::ImageConfig;
use crate::image::manifest::ManifestFormat;
use retry::Retry;

mod ahead;
mod cache;
mod checkpoint;
mod commit;
mod debug_shell;
pub(crate) mod defer;
mod files;
mod link;
mod listing;
mod retry;
mod start;
mod tail;

pub(crate) use commit::Stamp;
pub(crate) use files::StageFiles;

/// A stage's image config and ARG scope, as its instructions change them.
#[derive(Clone)]
pub(crate) struct StageConfig {
    pub image: ImageConfig,
    pub args: ArgScope,
    /// CMD was set in this stage (an ENTRYPOINT then keeps it, as Docker does).
    pub cmd_set: bool,
}

impl StageConfig {
    /// The variables a step's text is expanded with.
    pub fn vars(&self) -> StepVars<'_> {
        StepVars { config: &self.image, args: &self.args }
    }
}

pub(crate) struct StageRunner {
    pub index: usize,
    pub config: StageConfig,
    pub format: ManifestFormat,
    pub layers: Vec<StageLayer>,
    /// The build root, made when a step first needs files.
    pub files: StageFiles,
    /// Manifest digest of the image at the bottom of the stage, for cache keys and traces.
    pub base_digest: Option<Digest>,
    /// That image as written (`busybox:1.35`), for cache explanations.
    pub base_ref: String,
    /// Cache keys of this stage's steps and their lookups (empty without `--cache`).
    pub keys: StageKeys,
    /// Paths the current step changed (for breakpoints on changed paths).
    pub last_changes: Vec<String>,
    /// When the stage's contents so far were made: the base image's `created`, then the time of
    /// the latest step that ran or came from the cache. Config-only steps are stamped with it.
    pub clock: Option<String>,
    /// History entries pushed while `clock` was unknown (config-only steps at the top of a
    /// `FROM scratch` stage); they get the time of the first step that sets it.
    pub unstamped: Vec<usize>,
    /// Time spent paused (and in debugger shells) since the current step started: it is not
    /// the step's run time.
    pub paused: Duration,
    /// The current RUN's mounts, network and security mode, resolved (also for debugger shells
    /// at its pauses).
    pub step_mounts: Option<StepMounts>,
    /// What the stage's keys were planned from (with `--cache`), to key it again for a re-run.
    pub replan: Option<retry::Replan>,
    /// A debugger shell's changes were kept: the stage is no longer what its Dockerfile steps
    /// make, and stays out of the cache (see `retry.rs`).
    pub off_dockerfile: bool,
    /// How the current step came to be re-run, for its history entry.
    pub retry_note: Option<String>,
    /// The stage's steps in the order they run (ONBUILD triggers first): what a deferred
    /// COPY's later steps are (`defer.rs`).
    pub order: Vec<defer::Later>,
    /// The COPY/ADD steps the cache missed that were not run, nothing needing their layers
    /// (`defer.rs`), in order.
    pub deferred: Vec<defer::DeferredCopy>,
    /// Whether upload sessions were opened ahead for the stage's last layers (`tail.rs`).
    pub tail_sessions: bool,
}

/// Builds stage `idx` (its base, then every step) and returns what it leaves.
pub(crate) fn build_stage(s: &mut Shared<'_, '_>, idx: usize) -> Result<BuiltStage, BuildError> {
    build_stage_here(s, idx).map_err(|e| e.on_platform(platform_tag(&s.ctx.plan, idx)))
}

/// Which platform stage `idx` is built for, as the log tags its lines: its target, or the
/// platform it runs as when every target shares it. `None` in a build for one platform.
fn platform_tag(plan: &crate::dockerfile::Plan, idx: usize) -> Option<String> {
    if !plan.is_multi_platform() {
        return None;
    }
    Some(match plan.target_names(idx).as_slice() {
        [one] => one.clone(),
        _ => format!("{}, shared", plan.stage_platform(idx)),
    })
}

fn build_stage_here(s: &mut Shared<'_, '_>, idx: usize) -> Result<BuiltStage, BuildError> {
    let stage_t0 = Instant::now();
    let ctx = s.ctx;
    let dockerfile_stage = &ctx.df.stages[ctx.plan.stages[idx].dockerfile_stage];
    let from = dockerfile_stage.from.clone();
    let instructions = dockerfile_stage.instructions.clone();
    let instruction_count = instructions.len();
    let from_id = StepId { stage: idx, step: 0 };
    let loc = ctx.location(&from);
    let base = base_display(s, idx);
    ctx.emitter.emit(Event::StageStarted { stage: idx, name: ctx.plan.stages[idx].name.clone(), base: base.clone() });
    ctx.emitter.emit(Event::StepStarted {
        id: from_id,
        line: from.line,
        end_line: from.end_line,
        keyword: from.keyword().to_string(),
        source: from.source.clone(),
        expanded: format!("FROM {base}"),
        mounts: Vec::new(),
        attempt: None,
    });
    // The FROM step's time starts once its step_started is out (stamped): what came before (the
    // base's name for the events, sending the event) is no part of it, so the time never
    // exceeds the span between its two events.
    let t0 = Instant::now();
    let mut runner = match StageRunner::start(s, idx, &loc) {
        Ok(r) => r,
        Err(e) => {
            finished(s, from_id, StepStatus::Failed, t0.elapsed(), Duration::ZERO, None, None);
            return Err(e);
        }
    };
    let mut cp = Checkpoint {
        when: When::BeforeStep,
        id: from_id,
        line: from.line,
        stage_name: ctx.plan.stages[idx].name.clone(),
        keyword: "FROM".into(),
        source: from.source.clone(),
        expanded: format!("FROM {base}"),
        attempt: 1,
        report: None,
        root_dir: None,
        targets: ctx.checkpoint_targets(idx),
        dockerfile_stage: ctx.checkpoint_dockerfile_stage(idx),
    };
    runner.checkpoint(s, &cp)?;
    let triggers = runner.config.image.onbuild();
    runner.config.image.set_onbuild(Vec::new());
    finished(s, from_id, StepStatus::Metadata, t0.elapsed(), runner.paused, None, None);
    cp.when = When::AfterStep;
    cp.report = Some(StepReport {
        status: StepStatus::Metadata,
        error: None,
        exit_code: None,
        layer_size: None,
        changed_paths: Vec::new(),
        cache_miss: false,
    });
    runner.checkpoint(s, &cp)?;

    // ONBUILD triggers of the base image run before the stage's own instructions.
    let mut steps: Vec<(StepId, Instruction)> = Vec::new();
    let first_trigger_id = instructions.len() + 1;
    for (i, t) in triggers.iter().enumerate() {
        let mut ins = crate::dockerfile::parse_instruction_line(&ctx.opts.dockerfile, t).map_err(|e| {
            let at = StepAt { id: from_id, loc: loc.clone(), instruction: &from, display: String::new() };
            at.invalid(format!("ONBUILD trigger {t:?} from the base image: {e}"))
        })?;
        ins.line = from.line;
        ins.end_line = from.end_line;
        steps.push((StepId { stage: idx, step: first_trigger_id + i }, ins));
    }
    if !steps.is_empty() {
        ctx.emitter.warn(format!("stage {idx}: running {} ONBUILD trigger(s) from the base image", steps.len()));
    }
    for (i, ins) in instructions.into_iter().enumerate() {
        steps.push((StepId { stage: idx, step: i + 1 }, ins));
    }
    if !steps.iter().any(|(_, ins)| matches!(ins.kind, InstructionKind::Run { .. })) {
        runner.files.run_nothing(s);
    }

    runner.order = steps.iter().map(|(id, ins)| defer::Later::of(*id, ins)).collect();
    if s.cache.is_some() {
        runner.plan_keys(s, &from, &steps);
        runner.replan = Some(retry::Replan { from: from.clone(), steps: steps.clone(), config: runner.config.clone() });
    }
    let mut stage_paused = runner.paused;
    for (id, ins) in steps {
        runner.run_step(s, id, &ins)?;
        stage_paused += runner.paused;
    }
    if ctx.opts.layers.single_snapshot {
        let last = StepId { stage: idx, step: instruction_count };
        runner.single_snapshot(s, last)?;
    }
    ctx.emitter.emit(Event::StageFinished {
        stage: idx,
        duration_ms: stage_t0.elapsed().saturating_sub(stage_paused).as_millis() as u64,
        layers: runner.layers.len(),
    });
    Ok(runner.finish())
}

/// Reports the end of a step: its run time is the time it took minus the time it was paused.
fn finished(
    s: &Shared<'_, '_>,
    id: StepId,
    status: StepStatus,
    took: Duration,
    paused: Duration,
    layer: Option<&Digest>,
    exit_code: Option<i32>,
) {
    s.ctx.emitter.emit(Event::StepFinished {
        id,
        status,
        duration_ms: took.saturating_sub(paused).as_millis() as u64,
        paused_ms: paused.as_millis() as u64,
        layer: layer.map(Into::into),
        exit_code,
    });
}

/// How a stage's base is shown: the image as written, `scratch`, or the parent stage's name.
fn base_display(s: &Shared<'_, '_>, idx: usize) -> String {
    match &s.ctx.plan.stages[idx].base {
        crate::dockerfile::Base::Scratch => "scratch".to_string(),
        crate::dockerfile::Base::Image(r) => r.clone(),
        crate::dockerfile::Base::Stage(p) => s.ctx.stage_label(*p),
    }
}

impl StageRunner {
    /// What the stage leaves for the stages after it and for the image.
    fn finish(self) -> BuiltStage {
        let copy_keys = self.keys.copy_keys();
        BuiltStage {
            config: self.config.image,
            format: self.format,
            layers: self.layers,
            root: self.files.into_root(),
            base_digest: self.base_digest,
            base_ref: self.base_ref,
            final_key: self.keys.final_key,
            final_tail: self.keys.final_tail,
            deferred: self.deferred,
            copy_keys,
            clock: self.clock,
            unstamped: self.unstamped,
            args: self.config.args,
        }
    }

    /// Runs a step, and runs it again for as long as the controller answers its failure with a
    /// re-run. `self.paused` ends as the time paused over all its attempts.
    fn run_step(&mut self, s: &mut Shared<'_, '_>, id: StepId, ins: &Instruction) -> Result<(), BuildError> {
        let mut attempt = Retry { number: 1, instruction: ins.clone(), edited_from: None };
        let mut paused = Duration::ZERO;
        let result = loop {
            match self.attempt(s, id, ins, &attempt) {
                Ok(None) => break Ok(()),
                Ok(Some(retry)) => {
                    paused += self.paused;
                    if let Err(e) = self.prepare_retry(s, id, &retry) {
                        break Err(e);
                    }
                    attempt = retry;
                }
                Err(e) => break Err(e),
            }
        };
        self.paused += paused;
        self.retry_note = None;
        result
    }

    /// One attempt at a step (`original`: as the Dockerfile has it; `attempt.instruction` is
    /// what runs). `Some(retry)`: it failed and the person asked for a re-run.
    fn attempt(
        &mut self,
        s: &mut Shared<'_, '_>,
        id: StepId,
        original: &Instruction,
        attempt: &Retry,
    ) -> Result<Option<Retry>, BuildError> {
        let ctx = s.ctx;
        let ins = &attempt.instruction;
        self.paused = Duration::ZERO;
        let mut expanded = ins.expand(&self.config.vars(), ctx.df.escape)?;
        if let Expanded::Arg(_) = &expanded
            && let Some(effective) = self.effective_args(ctx, ins, &expanded)
        {
            // Secret ones masked before the line is shown; the line shows what each ARG is now
            // (a `--build-arg` wins over the default written, which the log, the trace and the
            // debugger used to show, as history never did).
            let secret = effective.iter().filter(|(n, _)| ctx.opts.is_secret_arg(n)).filter_map(|(_, v)| v.clone());
            ctx.emitter.add_secrets(secret.collect());
            expanded = Expanded::Arg(effective);
        }
        let display = expanded.display();
        self.step_mounts = match &expanded {
            Expanded::Run { flags, .. } => {
                let workdir = self.config.image.working_dir().unwrap_or("/");
                let resolved = mounts::resolve(flags, workdir, &ctx.plan, id.stage).map_err(|e| {
                    let at = StepAt { id, loc: ctx.location(ins), instruction: ins, display: display.clone() };
                    at.invalid(e)
                })?;
                Some(resolved)
            }
            _ => None,
        };
        let mount_info: Vec<trowel_events::MountInfo> = self
            .step_mounts
            .iter()
            .flat_map(|m| &m.mounts)
            .map(|m| crate::engine::report::mount(m, &ctx.plan))
            .collect();
        // A step that will do work waits for the push check first, so a destination that
        // refuses the push fails the build before anything is built; a step the cache may
        // serve waits only if it misses (below).
        let does_work =
            matches!(ins.kind, InstructionKind::Run { .. } | InstructionKind::Copy(_) | InstructionKind::Add(_));
        let may_be_cached = s.cache.is_some() && self.keys.looked_up(id);
        if does_work && !may_be_cached {
            s.push_check.finish(ctx)?;
        }
        // The step's time starts once its `step_started` is out: waiting for the push check
        // above is not the step's (a first RUN took the check's wait too, and its time came out
        // longer than from its start to its end in the trace), nor is sending the event.
        ctx.emitter.emit(Event::StepStarted {
            id,
            line: ins.line,
            end_line: ins.end_line,
            keyword: ins.keyword().to_string(),
            source: ins.source.clone(),
            expanded: display.clone(),
            mounts: mount_info,
            attempt: (attempt.number > 1).then(|| trowel_events::Attempt {
                number: attempt.number,
                edited_from: attempt.edited_from.clone(),
                after_shell: self.off_dockerfile,
            }),
        });
        let t0 = Instant::now();
        let mut cp = Checkpoint {
            when: When::BeforeStep,
            id,
            line: ins.line,
            stage_name: ctx.plan.stages[id.stage].name.clone(),
            keyword: ins.keyword().to_string(),
            source: ins.source.clone(),
            expanded: display.clone(),
            attempt: attempt.number,
            report: None,
            root_dir: None,
            targets: ctx.checkpoint_targets(id.stage),
            dockerfile_stage: ctx.checkpoint_dockerfile_stage(id.stage),
        };
        // A re-run was just asked for at the pause after the failed attempt: no pause before it.
        if attempt.number == 1 {
            self.checkpoint(s, &cp)?;
        }
        self.last_changes.clear();
        let at = StepAt { id, loc: ctx.location(ins), instruction: ins, display };
        // A planned key is only trusted if the plan saw exactly this instruction.
        let mut planned = self.keys.planned(id, &at.display);
        // Whether the step, should it miss, is left unrun is decided before its miss is
        // explained: such a step keeps no entry, which its explanation says.
        let defer = match &planned {
            Some(p) if p.looked_up() && !self.keys.will_hit(&ctx.rt, id) => self.may_defer(s, id, &expanded, p),
            _ => false,
        };
        let cached = match &planned {
            Some(p) if p.looked_up() => self.try_cache(s, id, p, &self.created_by(&at.display), defer)?,
            _ => None,
        };
        let cache_miss = planned.as_ref().is_some_and(|p| p.looked_up()) && cached.is_none();
        // A context file changed while the step's key was made: it is not run unchecked.
        let key_failed = match &self.keys.context_changed {
            Some((c, path, what)) if *c == id => Some(at.fail(StepError::context_changed(path, what.clone()))),
            _ => None,
        };
        let result = match (cached, key_failed) {
            (Some(outcome), _) => {
                // A cached WORKDIR still sets the working directory.
                if let Expanded::Workdir(_) = &expanded {
                    let _ = config::apply_to(&mut self.config, ins, ctx.df.escape, expanded);
                }
                Ok(outcome)
            }
            // Nothing needs its layer: not run (its key still chains the steps after it).
            (None, Some(e)) => Err(e),
            (None, None) if cache_miss && defer => {
                if let Some(p) = &planned {
                    self.defer(&at, expanded, p);
                }
                Ok(StepOutcome { status: StepStatus::Deferred, layer: None })
            }
            (None, None) => {
                s.push_check.finish(ctx)?;
                // What the uploads of the step's layer and entry need, readied while it runs:
                // only for a step that works on files. A config-only step (ENV, LABEL, CMD)
                // writes no layer and no entry, and one at the top of a stage the cache then
                // serves whole opened sessions nothing took, whose cancels the build's end
                // waited for (W1's unchanged rebuild: three sessions, 10 ms).
                if self.order.iter().any(|l| l.id == id && l.files) {
                    if let Some(c) = s.cache.as_deref_mut() {
                        c.prepare_writes(ctx);
                    }
                    self.open_tail_sessions(s, id);
                }
                // The only copy left of what the key saw: gone once the step has read the files.
                let seen = planned.as_mut().and_then(|p| p.seen.take());
                self.keys.forget_seen(id);
                let r = self.execute(s, &at, expanded, seen);
                if let (Ok(outcome), Some(p)) = (&r, &planned) {
                    self.store_in_cache(s, id, p, outcome);
                }
                r
            }
        };
        let (status, layer, exit_code) = match &result {
            Ok(StepOutcome { status, layer }) => (*status, layer.clone(), None),
            Err(e) => (StepStatus::Failed, None, e.step_exit_code()),
        };
        finished(s, id, status, t0.elapsed(), self.paused, layer.as_ref(), exit_code);
        cp.when = When::AfterStep;
        cp.report = Some(StepReport {
            status,
            error: result.as_ref().err().map(|e| e.to_string()),
            exit_code,
            layer_size: layer
                .as_ref()
                .and_then(|d| self.layers.iter().rev().find(|l| &l.descriptor.digest == d))
                .map(|l| l.descriptor.size),
            changed_paths: std::mem::take(&mut self.last_changes),
            cache_miss,
        });
        let after = match &result {
            Err(_) => self.failure_pause(s, &cp, original, attempt),
            Ok(_) => self.checkpoint(s, &cp).map(|()| None),
        };
        self.step_mounts = None;
        if let Ok(Some(retry)) = after {
            // The failure is answered by the re-run (it was reported as the attempt's end).
            return Ok(Some(retry));
        }
        result?;
        after
    }

    /// Each name of an ARG instruction with the value the instruction gives it (`None`: it has
    /// none), worked out on a copy of the scope before the step is announced: a `--build-arg`
    /// over the default written, a default made of variables (`ARG API_KEY=sk-$SUFFIX`)
    /// resolved. `None` when the instruction does not apply (the step then fails as it must).
    fn effective_args(
        &self,
        ctx: &crate::engine::context::BuildContext<'_>,
        ins: &Instruction,
        e: &Expanded,
    ) -> Option<Vec<(String, Option<String>)>> {
        let InstructionKind::Arg(pairs) = &ins.kind else { return None };
        let mut after = self.config.clone();
        config::apply_to(&mut after, ins, ctx.df.escape, e.clone()).ok()?;
        Some(pairs.iter().map(|(n, _)| (n.clone(), after.args.value(n).map(str::to_string))).collect())
    }

    /// Runs a step that the cache did not serve.
    /// `seen`: the context files its key was made from, which it must read (see
    /// `steps/copy/seen.rs`).
    fn execute(
        &mut self,
        s: &mut Shared<'_, '_>,
        at: &StepAt<'_>,
        expanded: Expanded,
        seen: Option<std::sync::Arc<Seen>>,
    ) -> Result<StepOutcome, BuildError> {
        let ctx = s.ctx;
        let step = match Step::of(expanded) {
            Step::Config(e) => {
                let declared: Option<Vec<(String, Option<String>)>> = match &e {
                    Expanded::Arg(pairs) => Some(pairs.clone()),
                    _ => None,
                };
                let onbuild = matches!(e, Expanded::Onbuild(_));
                config::apply(&mut self.config, at, ctx.df.escape, e)?;
                // History as BuildKit records it: an ARG as each name with the value this
                // instruction gave it (`ARG V=2` after `--build-arg V=2`; just `V` when it only
                // kept one), an ONBUILD not at all (`dispatchOnbuild` commits none). A secret
                // arg's value is `***` whatever its length or origin (the log's masking leaves
                // values under four characters alone; a default in the Dockerfile is no less
                // a secret in an image's history).
                let created_by = match declared {
                    Some(pairs) => {
                        let each =
                            pairs.iter().map(|(n, default)| match self.config.args.given(n, default.as_deref()) {
                                Some(_) if ctx.is_secret_arg(n) => format!("{n}=***"),
                                Some(v) => format!("{n}={v}"),
                                None => n.clone(),
                            });
                        Some(format!("ARG {}", each.collect::<Vec<_>>().join(" ")))
                    }
                    None if onbuild => None,
                    None => Some(at.display.clone()),
                };
                if let Some(c) = created_by {
                    self.empty_history(s, &self.created_by(&c), Stamp::Inherit);
                }
                return Ok(StepOutcome::metadata());
            }
            Step::Files(step) => step,
        };
        if step.linked() {
            return self.execute_linked(s, at, step.as_ref(), seen.as_deref());
        }
        let run = matches!(at.instruction.kind, InstructionKind::Run { .. });
        // Its layers may lack deferred COPYs (its own, its parents'): the root is made whole.
        self.make_whole(s, at.id, run)?;
        let index = self.index;
        let root =
            if run { self.files.at_slash(s, index, &self.layers)? } else { self.files.get(s, index, &self.layers)? };
        // The stages and images a RUN's mounts read: after the stage's own root is made, which
        // in container isolation may take `/` from the stage a mount reads (that one is then
        // unpacked elsewhere).
        let mount_roots = match &self.step_mounts {
            Some(m) => MountRoots::gather(ctx, s.stages, m, at.id).map_err(|e| at.fail(e))?,
            None => MountRoots::default(),
        };
        let source = Self::source_of(s, index, at, step.as_ref())?;
        let mounts = self.step_mounts.as_ref().map(|m| (m, &mount_roots));
        let changed =
            step.run(FileCx { ctx, at, config: &mut self.config, root, source, mounts, seen: seen.as_deref() })?;
        drop(seen);
        match changed {
            Changed::Nothing => {
                self.empty_history(s, &self.created_by(&at.display), Stamp::Inherit);
                Ok(StepOutcome::metadata())
            }
            Changed::Files(scope) => {
                // A layer that cannot be written (a full disk) is this step's failure.
                let layer = self.commit(s, at.id, scope, &self.created_by(&at.display)).map_err(|e| at.fail(e))?;
                Ok(StepOutcome { status: StepStatus::Built, layer })
            }
        }
    }

    /// Where a step's sources are read from: the context, another stage's root or an image's.
    pub(crate) fn source_of<'s>(
        s: &'s mut Shared<'_, '_>,
        index: usize,
        at: &StepAt<'_>,
        step: &dyn FileStep,
    ) -> Result<Source<'s>, BuildError> {
        let ctx = s.ctx;
        Ok(match step.from() {
            None => Source::Context { root: &ctx.context, ignore: &ctx.dockerignore },
            Some(from) => match stage_index(&ctx.plan, index, from) {
                Some(p) => Source::Root(s.stages.stage_files(ctx, p, &step.reads(), at.id).map_err(|e| at.fail(e))?),
                None => Source::Root(
                    s.stages
                        .image_files(ctx, from, Some(&ctx.plan.source_image_platform(index)), &step.reads(), at.id)
                        .map_err(|e| at.fail(e))?,
                ),
            },
        })
    }
}
