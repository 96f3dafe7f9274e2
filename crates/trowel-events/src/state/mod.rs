//! The build as its events describe it: one fold that every viewer shares.
//!
//! [`BuildState::apply`] takes envelopes one at a time, in order, exactly as they arrive live or
//! as a trace recorded them, so the plain log, `trowel replay --summary` and the debugger agree
//! on what happened: which steps ran and how, what they changed and wrote, what the cache said,
//! the debugger's pauses and shell sessions, the image and where it went, and how the build
//! ended. Views that only one viewer needs (the debugger's change tree and scrollable log, say)
//! are derived from it by that viewer.
//!
//! It reads any trace this crate can parse: events of version 1 traces simply lack what version
//! 2 added (pauses, resumes, push decisions), and events it does not expect (a step id that was
//! never planned, a resume without a pause) are kept as far as they make sense, never a panic.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use crate::{CacheResult, Envelope, Event, FileContent, LayerSummary, PushReview, StagePlan, StepId, StepPlan};

mod check;
mod debugger;
pub mod maker;
mod outcome;
mod output;
mod push;
mod stage;
mod step;

pub use check::CheckView;
pub use maker::Maker;
pub use outcome::{Failure, Finished, Outcome};
pub use output::{OutputTail, TAIL_BYTES, TAIL_LINES};
pub use push::{BlobProgress, ImageView, IndexView, PushDecision, PushView};
pub use stage::{RootView, StageView};
pub use step::{CacheView, Pause, Resume, ShellSession, SourceRead, StepState, StepView};

/// The build so far: everything its events said, folded in order.
#[derive(Debug, Clone, Default)]
pub struct BuildState {
    /// The trowel that ran the build.
    pub version: String,
    pub dockerfile_path: String,
    pub dockerfile_lines: Vec<String>,
    pub context: String,
    /// Where a context that was not a local directory came from.
    pub context_origin: Option<crate::ContextOrigin>,
    pub target: Option<String>,
    pub destinations: Vec<String>,
    pub platform: String,
    /// Every target platform of a build for several (empty for one).
    pub platforms: Vec<String>,
    /// `--single-snapshot`: steps take no snapshot of their own; the snapshot and layer a
    /// stage's last step reports are the whole stage's (`StepView::stage_snapshot`).
    pub single_snapshot: bool,
    /// The build's layer cache; `None` for a trace that did not record it.
    pub layer_cache: Option<crate::LayerCacheUse>,
    /// How RUN steps are isolated (`chroot`, `container`), as the engine chose it.
    pub isolation: String,
    pub stages: Vec<StageView>,
    steps: BTreeMap<StepId, StepView>,
    /// Warnings, and events withheld because they could not be masked safely.
    pub warnings: Vec<String>,
    /// Build check findings, in the order reported.
    pub checks: Vec<CheckView>,
    /// Every layer the build wrote (steps' and kept shell sessions'), in order; cached layers
    /// are not in it.
    pub written_layers: Vec<LayerSummary>,
    pub image: Option<ImageView>,
    /// Every image assembled, one per platform in a build for several (`image` is the last).
    pub images: Vec<ImageView>,
    /// The index of a build for several platforms.
    pub index: Option<IndexView>,
    pub review: Option<PushReview>,
    pub push_decision: Option<PushDecision>,
    /// When the push review was shown, and how long it waited for its answer once answered:
    /// debugger time, like a pause, never the build's run time.
    pub review_wait: Option<(u64, Option<u64>)>,
    pub pushes: Vec<PushView>,
    /// `(hits, misses, bytes reused)`.
    pub cache_summary: Option<(usize, usize, u64)>,
    pub failure: Option<Failure>,
    pub finished: Option<Finished>,
    /// The debugger's breakpoints as last recorded (`None`: the events never said: not a
    /// debugger session, or a trace from before trowel recorded them).
    pub breakpoints: Option<Vec<String>>,
    /// Every breakpoint recorded as set at some time in the build, in the order first set
    /// (those removed later included).
    pub breakpoints_ever: Vec<String>,
    /// Time of the latest event, ms since the build started.
    pub last_ms: u64,
    /// The step that started last and has not finished.
    pub current: Option<StepId>,
    /// Events applied so far.
    pub events: usize,
    /// Changed paths, file contents and a key's files are not kept (see [`BuildState::lean`]).
    lean: bool,
}

impl BuildState {
    /// A state for a consumer that prints as events come and never looks back at what a step
    /// changed (the plain log): steps' changed paths and file contents are not kept, nor the
    /// files a cache key lists, so a step that touches 100,000 files costs no memory here.
    pub fn lean() -> BuildState {
        BuildState { lean: true, ..BuildState::default() }
    }

    /// The state after a whole recorded build.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Envelope>) -> BuildState {
        let mut s = BuildState::default();
        for e in events {
            s.apply(e);
        }
        s
    }

    pub fn step(&self, id: StepId) -> Option<&StepView> {
        self.steps.get(&id)
    }

    /// Every step, in build order (stage by stage, steps in order).
    pub fn steps(&self) -> impl Iterator<Item = &StepView> {
        self.stages.iter().flat_map(|s| s.steps.iter()).filter_map(|id| self.steps.get(id))
    }

    pub fn stage(&self, index: usize) -> Option<&StageView> {
        self.stages.iter().find(|s| s.index == index)
    }

    /// The build ended (finished or failed).
    pub fn is_over(&self) -> bool {
        self.finished.is_some() || self.failure.is_some()
    }

    pub fn outcome(&self) -> Outcome {
        match (&self.failure, &self.finished) {
            (Some(f), _) if f.aborted => Outcome::Aborted,
            (Some(_), _) => Outcome::Failed,
            (None, Some(_)) => Outcome::Finished,
            (None, None) => Outcome::Unfinished,
        }
    }

    /// The step that failed, if any.
    pub fn failed_step(&self) -> Option<StepId> {
        self.failure
            .as_ref()
            .and_then(|f| f.step)
            .or_else(|| self.steps().find(|s| s.state == StepState::Failed).map(|s| s.id))
    }

    /// The build check findings about Dockerfile line `line`.
    pub fn checks_at(&self, line: usize) -> impl Iterator<Item = &CheckView> {
        self.checks.iter().filter(move |c| c.covers(line))
    }

    /// The pause the build is stopped in, with its step.
    pub fn open_pause(&self) -> Option<(&StepView, &Pause)> {
        self.steps().find_map(|s| s.open_pause().map(|p| (s, p)))
    }

    /// Why the image is not what the Dockerfile as written makes, one line each: steps edited
    /// or re-run at a failure pause, debugger shells whose changes were kept (empty: it is).
    pub fn deviations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.steps() {
            // In a build for several platforms, a stage built for some of them changes only
            // their images: said, since the others are what the Dockerfile makes.
            let only = self
                .stage(s.id.stage)
                .filter(|st| {
                    self.platforms.len() > 1 && !st.targets.is_empty() && st.targets.len() < self.platforms.len()
                })
                .map(|st| format!(", in the {} image only", st.targets.join(" and ")))
                .unwrap_or_default();
            for sh in s.shells.iter().filter(|sh| sh.kept == Some(true)) {
                let when = if sh.before_step { "before" } else { "after" };
                out.push(format!("line {}: changes kept from a debugger shell ({when} {}){only}", s.line, s.keyword));
            }
            out.extend(s.deviation().map(|d| format!("{d}{only}")));
        }
        out
    }

    /// Time paused in the debugger over the whole build, shell sessions and the wait at the
    /// push review included.
    pub fn paused_ms(&self) -> u64 {
        self.steps.values().map(|s| s.paused_ms).sum::<u64>() + self.review_wait.and_then(|(_, w)| w).unwrap_or(0)
    }

    /// [`BuildState::paused_ms`] by `now_ms`, the pause the build is stopped in so far included.
    pub fn paused_now(&self, now_ms: u64) -> u64 {
        let review = match self.review_wait {
            Some((_, Some(waited))) => waited,
            Some((shown, None)) => now_ms.saturating_sub(shown),
            None => 0,
        };
        self.steps.values().map(|s| s.paused_now(now_ms)).sum::<u64>() + review
    }

    /// Records small files' contents for a step (the debugger's file diff).
    pub fn add_contents(&mut self, id: StepId, files: Vec<FileContent>) {
        if let Some(s) = self.steps.get_mut(&id) {
            for f in files {
                s.contents.insert(f.path.clone(), f);
            }
        }
    }

    pub fn apply(&mut self, env: &Envelope) {
        self.events += 1;
        self.last_ms = self.last_ms.max(env.ms);
        match &env.event {
            Event::BuildStarted {
                version,
                dockerfile_path,
                dockerfile_text,
                context,
                context_origin,
                target,
                destinations,
                platform,
                platforms,
                isolation,
                single_snapshot,
                layer_cache,
                stages,
            } => {
                self.single_snapshot = *single_snapshot;
                self.layer_cache = *layer_cache;
                self.context_origin = context_origin.clone();
                self.version = version.clone();
                self.dockerfile_path = dockerfile_path.clone();
                self.dockerfile_lines = dockerfile_text.lines().map(str::to_string).collect();
                self.context = context.clone();
                self.target = target.clone();
                self.destinations = destinations.clone();
                self.platform = platform.clone();
                self.platforms = platforms.clone();
                self.isolation = isolation.clone();
                self.plan(stages);
            }
            Event::Warning { message } => self.warnings.push(message.clone()),
            Event::Check { rule, description, url, message, line, end_line, error } => self.checks.push(CheckView {
                rule: rule.clone(),
                description: description.clone(),
                url: url.clone(),
                message: message.clone(),
                line: *line,
                end_line: *end_line,
                error: *error,
            }),
            Event::StageStarted { stage, .. } => {
                if let Some(s) = self.stage_mut(*stage) {
                    s.started = true;
                }
            }
            Event::BaseResolved { stage, source, layers, .. } => {
                if let Some(s) = self.stage_mut(*stage) {
                    s.source = Some(source.clone());
                    s.base_layers = layers.clone();
                }
            }
            Event::StepStarted { id, line, end_line, keyword, source, expanded, mounts, attempt } => {
                let step = self.ensure_step(*id, *line, *end_line, keyword, source);
                if let Some(a) = attempt {
                    step.restart(a.clone());
                    step.keyword = keyword.clone();
                    step.source = source.clone();
                }
                step.expanded = Some(expanded.clone());
                step.mounts = mounts.clone();
                step.state = StepState::Running;
                step.started_ms = Some(env.ms);
                self.current = Some(*id);
            }
            Event::Output { id, data, .. } => {
                if let Some(s) = self.steps.get_mut(id).filter(|s| !s.in_shell()) {
                    s.output.push(data);
                }
            }
            Event::Snapshot { .. } | Event::FileContents { .. } | Event::BaseLayerListed { .. } if self.lean => {}
            Event::BaseLayerListed { stage, index, changes, .. } => {
                if let Some(s) = self.stage_mut(*stage) {
                    s.base_listings.insert(*index, changes.clone());
                }
            }
            Event::Snapshot { id, changes, stats, classified } => {
                let stage_from = self
                    .stage(id.stage)
                    .and_then(|st| st.steps.first())
                    .and_then(|first| self.step(*first))
                    .map(|from| from.line)
                    .filter(|_| self.single_snapshot);
                if let Some(s) = self.steps.get_mut(id) {
                    // While a shell session's changes are committed, the snapshot is theirs.
                    match s.shells.last_mut().filter(|sh| sh.committing()) {
                        Some(sh) => sh.changes = changes.clone(),
                        None => {
                            s.changes = changes.clone();
                            s.stats = Some(stats.clone());
                            s.stage_snapshot = stage_from;
                            s.older_listing = classified.is_none() && step::older_unclassified_listing(changes, stats);
                            let hit = s.cache.as_ref().is_some_and(|c| c.is_hit());
                            s.unclassified = classified.is_some_and(|c| !c) || (s.older_listing && hit);
                        }
                    }
                }
            }
            Event::FileContents { id, files } => self.add_contents(*id, files.clone()),
            Event::LayerWritten { id, layer, .. } => {
                let mut layer = layer.clone();
                if let Some(s) = self.steps.get_mut(id) {
                    match s.shells.last_mut().filter(|sh| sh.committing()) {
                        Some(sh) => {
                            // Traces before `shell` was recorded: the session being committed
                            // says whose layer it is.
                            layer.shell = layer.shell.or(Some(sh.when()));
                            sh.layer = Some(layer.clone());
                        }
                        // A session's layer is never its step's.
                        None if layer.shell.is_some() => {}
                        None => s.layer = Some(layer.clone()),
                    }
                }
                self.written_layers.push(layer);
            }
            Event::StepFinished { id, status, duration_ms, paused_ms, exit_code, .. } => {
                if let Some(s) = self.steps.get_mut(id) {
                    s.state = (*status).into();
                    s.unclassified |= s.older_listing && *status == crate::StepStatus::Cached;
                    s.duration_ms = Some(*duration_ms);
                    // The resumes seen so far count the same pauses; an engine that reports
                    // the time without them is counted too.
                    s.paused_ms = s.paused_ms.max(*paused_ms);
                    s.exit_code = *exit_code;
                }
                if self.current == Some(*id) {
                    self.current = None;
                }
            }
            Event::CacheLookup { id, key, components, result } => {
                if let Some(s) = self.steps.get_mut(id) {
                    if let CacheResult::Hit { layer: Some(l), .. } = result {
                        s.layer = Some(l.clone());
                    }
                    s.cache = Some(CacheView {
                        key: key.clone(),
                        // A lean state (the log) never shows the files a key lists.
                        components: if self.lean { components.without_files() } else { (**components).clone() },
                        result: result.clone(),
                        stored: None,
                    });
                }
            }
            Event::CacheStored { id, reference, .. } => {
                if let Some(c) = self.steps.get_mut(id).and_then(|s| s.cache.as_mut()) {
                    c.stored = Some(reference.clone());
                }
            }
            Event::CacheSummary { hits, misses, bytes_reused } => {
                self.cache_summary = Some((*hits, *misses, *bytes_reused));
            }
            Event::StageFinished { stage, .. } => {
                if let Some(s) = self.stage_mut(*stage) {
                    s.finished = true;
                }
            }
            e @ (Event::ImageAssembled { .. }
            | Event::IndexAssembled { .. }
            | Event::PushStarted { .. }
            | Event::PushProgress { .. }
            | Event::BlobPushed { .. }
            | Event::PushFinished { .. }) => self.apply_push(e),
            e @ (Event::PushReview { .. }
            | Event::PushDecided { .. }
            | Event::Paused { .. }
            | Event::Resumed { .. }
            | Event::Breakpoints { .. }
            | Event::ShellStarted { .. }
            | Event::ShellFinished { .. }
            | Event::ShellResolved { .. }) => self.apply_debugger(e, env.ms),
            Event::BuildFailed { error, step, line, aborted } => {
                let step = step.or_else(|| self.steps().find(|s| s.state == StepState::Failed).map(|s| s.id));
                self.failure = Some(Failure { error: error.clone(), step, line: *line, aborted: *aborted });
                self.current = None;
            }
            Event::BuildFinished { duration_ms, digest, pushed } => {
                self.finished =
                    Some(Finished { duration_ms: *duration_ms, digest: digest.clone(), pushed: pushed.clone() });
                self.current = None;
            }
            Event::Redacted { withheld, reason } => {
                self.warnings.push(format!("a {withheld} event was withheld: {reason}"))
            }
            // Progress that is over once the build moves on, and files the log names as they
            // are written.
            Event::BaseUnpacked { stage, layers, entries, bytes, duration_ms, from_store, store_unused, .. } => {
                let steps = &self.steps;
                if let Some(s) = self.stages.iter_mut().find(|s| s.index == *stage) {
                    let after_steps =
                        s.steps.iter().filter(|id| steps.get(*id).is_some_and(|st| st.state.is_done())).count();
                    s.root = Some(RootView {
                        layers: *layers,
                        entries: *entries,
                        bytes: *bytes,
                        duration_ms: *duration_ms,
                        from_store: *from_store,
                        store_unused: store_unused.clone(),
                        after_steps,
                    });
                }
            }
            Event::SourceExtracted { for_step, stage, image, paths, layers, entries, skipped, duration_ms, .. } => {
                let from = self.source_label(*stage, image.as_deref());
                let how = format!(
                    "extracted {}: {entries} entries of {} ({skipped} left out)",
                    paths.join(" "),
                    if *layers == 1 { "1 layer".to_string() } else { format!("{layers} layers") }
                );
                let read = SourceRead { from, how, why: None, duration_ms: *duration_ms };
                if let Some(s) = for_step.and_then(|id| self.steps.get_mut(&id)) {
                    s.reads.push(read);
                }
            }
            Event::SourceUnpacked { for_step, stage, image, why, layers, entries, duration_ms, from_store, .. } => {
                let from = self.source_label(*stage, image.as_deref());
                let how = stage::root_summary(*layers, *entries, *from_store);
                let read = SourceRead { from, how, why: Some(why.clone()), duration_ms: *duration_ms };
                if let Some(s) = for_step.and_then(|id| self.steps.get_mut(&id)) {
                    s.reads.push(read);
                }
            }
            Event::DeferredRun { id, for_step, duration_ms, .. } => {
                if let Some(s) = self.steps.get_mut(id) {
                    s.ran_later = Some((*for_step, *duration_ms));
                }
            }
            Event::PullProgress { .. } | Event::OutputWritten { .. } => {}
        }
    }

    fn plan(&mut self, stages: &[StagePlan]) {
        self.stages.clear();
        self.steps.clear();
        for s in stages {
            let mut view = StageView {
                index: s.index,
                name: s.name.clone(),
                base: s.base.clone(),
                needed: s.needed,
                steps: Vec::new(),
                source: None,
                base_layers: Vec::new(),
                base_listings: Default::default(),
                started: false,
                finished: false,
                dockerfile_stage: s.dockerfile_stage,
                platform: s.platform.clone(),
                targets: s.targets.clone(),
                root: None,
            };
            for p in &s.steps {
                let step = StepView::planned(s.index, p, s.needed);
                view.steps.push(step.id);
                self.steps.insert(step.id, step);
            }
            self.stages.push(view);
        }
    }

    /// `stage builder`, `stage 1` or the image: what a step read from.
    fn source_label(&self, stage: Option<usize>, image: Option<&str>) -> String {
        match (stage, image) {
            (Some(i), _) => match self.stages.iter().find(|s| s.index == i) {
                Some(s) if s.name.is_some() => format!("stage {}", s.label()),
                Some(s) => s.label(),
                None => format!("stage {i}"),
            },
            (None, Some(image)) => image.to_string(),
            (None, None) => "an image".to_string(),
        }
    }

    fn stage_mut(&mut self, index: usize) -> Option<&mut StageView> {
        self.stages.iter_mut().find(|s| s.index == index)
    }

    /// The step, adding it if the plan did not list it (ONBUILD triggers of a base image are
    /// only known once the base is resolved).
    fn ensure_step(&mut self, id: StepId, line: usize, end_line: usize, keyword: &str, source: &str) -> &mut StepView {
        if let Entry::Vacant(slot) = self.steps.entry(id) {
            let plan = StepPlan {
                id,
                line,
                end_line,
                keyword: keyword.to_string(),
                source: source.to_string(),
                onbuild: true,
            };
            slot.insert(StepView::planned(id.stage, &plan, true));
            if self.stage(id.stage).is_none() {
                self.stages.push(StageView {
                    index: id.stage,
                    name: None,
                    base: String::new(),
                    needed: true,
                    steps: Vec::new(),
                    source: None,
                    base_layers: Vec::new(),
                    base_listings: Default::default(),
                    started: true,
                    finished: false,
                    dockerfile_stage: None,
                    platform: None,
                    targets: Vec::new(),
                    root: None,
                });
            }
            // Triggers run right after FROM (and earlier triggers), before the stage's own
            // instructions.
            let steps = &self.steps;
            let stage = self.stages.iter_mut().find(|s| s.index == id.stage).expect("stage exists");
            let at = stage
                .steps
                .iter()
                .take_while(|s| s.step == 0 || (s.step < id.step && steps.get(s).is_some_and(|v| v.onbuild)))
                .count();
            stage.steps.insert(at, id);
        }
        self.steps.get_mut(&id).expect("step exists")
    }
}

#[cfg(test)]
mod tests;
