//! What the debugger knows about a build, folded from its events.
//!
//! [`Model::apply`] takes engine events one at a time, in order, exactly as they arrive live
//! or as they were recorded in a trace, so a replay shows what the live session showed. The
//! model holds only what the views need (steps, their changes, output, cache lookups, layers,
//! the push); derived views (the change tree, layer waste, file diffs) are computed from it on
//! demand by the sibling modules.

use std::collections::BTreeMap;

use trowel_events::Digest;
use trowel_events::KeyComponents;
use trowel_events::PushReview;
use trowel_events::{
    BaseSource, BlobPushAction, CacheResult, Envelope, Event, LayerSummary, StagePlan, StepId, StepStatus,
};
use trowel_events::{Change, SnapshotStats};

pub mod diff;
pub mod logs;
pub mod tree;
pub mod waste;

pub use logs::{LogBuffer, LogLine};

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Planned, not started.
    Pending,
    Running,
    Built,
    Cached,
    /// Changed only the image config.
    Metadata,
    Failed,
    /// In a stage the target does not need.
    Skipped,
}

impl StepState {
    pub fn label(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Built => "built",
            StepState::Cached => "cached",
            StepState::Metadata => "config",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        }
    }

    pub fn is_done(self) -> bool {
        !matches!(self, StepState::Pending | StepState::Running)
    }
}

/// A step's layer-cache lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheView {
    pub key: String,
    pub components: KeyComponents,
    pub result: CacheResult,
    /// Where this build stored the step's layer afterwards (a miss that was filled).
    pub stored: Option<String>,
}

impl CacheView {
    pub fn is_hit(&self) -> bool {
        matches!(self.result, CacheResult::Hit { .. })
    }
    pub fn is_miss(&self) -> bool {
        matches!(self.result, CacheResult::Miss { .. })
    }
}

/// A small text file's content before and after a step (for the File pane's diff), as the
/// engine reports it in `FileContents` events. `None` means the file did not exist on that
/// side, or its content was not recorded (binary, too large).
pub use trowel_events::FileContent;

/// A debugger shell session at a step.
#[derive(Debug, Clone, PartialEq)]
pub struct ShellSession {
    pub argv: Vec<String>,
    pub interactive: bool,
    pub exit_code: Option<i32>,
    pub changes: Vec<Change>,
    /// `Some(true)`: kept as a layer; `Some(false)`: discarded; `None`: not decided yet.
    pub kept: Option<bool>,
    pub layer: Option<LayerSummary>,
    /// Opened at a pause before the step ran (its layer then comes before the step's).
    pub before_step: bool,
}

impl ShellSession {
    /// Finished, and its changes are being kept (the engine is committing them).
    fn committing(&self) -> bool {
        self.exit_code.is_some() && self.kept.is_none()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepView {
    pub id: StepId,
    pub line: usize,
    pub end_line: usize,
    pub keyword: String,
    pub source: String,
    /// The instruction after variable expansion (once the step started).
    pub expanded: Option<String>,
    pub onbuild: bool,
    pub state: StepState,
    pub started_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    /// The layer the step added (written, or taken from the cache).
    pub layer: Option<LayerSummary>,
    pub exit_code: Option<i32>,
    pub changes: Vec<Change>,
    pub stats: Option<SnapshotStats>,
    pub cache: Option<CacheView>,
    pub contents: BTreeMap<String, FileContent>,
    pub shells: Vec<ShellSession>,
}

impl StepView {
    fn planned(stage: usize, p: &trowel_events::StepPlan, needed: bool) -> StepView {
        StepView {
            id: StepId { stage, step: p.id.step },
            line: p.line,
            end_line: p.end_line,
            keyword: p.keyword.clone(),
            source: p.source.clone(),
            expanded: None,
            onbuild: p.onbuild,
            state: if needed { StepState::Pending } else { StepState::Skipped },
            started_ms: None,
            duration_ms: None,
            layer: None,
            exit_code: None,
            changes: Vec::new(),
            stats: None,
            cache: None,
            contents: BTreeMap::new(),
            shells: Vec::new(),
        }
    }

    /// Bytes this step's snapshot added or rewrote (regular files).
    pub fn added_bytes(&self) -> u64 {
        self.changes
            .iter()
            .filter(|c| c.kind != trowel_events::ChangeKind::Deleted && c.file_type == trowel_events::FileType::File)
            .map(|c| c.size)
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StageView {
    pub index: usize,
    pub name: Option<String>,
    pub base: String,
    pub needed: bool,
    pub steps: Vec<StepId>,
    pub source: Option<BaseSource>,
    pub base_layers: Vec<LayerSummary>,
    pub started: bool,
    pub finished: bool,
}

impl StageView {
    /// `builder` or `stage 1`.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("stage {}", self.index))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageView {
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub layers: Vec<LayerSummary>,
    pub config: serde_json::Value,
}

/// A blob's upload to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProgress {
    pub digest: Digest,
    pub sent: u64,
    pub total: u64,
    pub done: Option<BlobPushAction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PushView {
    pub destination: String,
    pub blobs: Vec<BlobProgress>,
    /// Manifest digest and time, once pushed.
    pub finished: Option<(Digest, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub step: Option<StepId>,
    pub line: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub duration_ms: u64,
    pub digest: Option<Digest>,
    pub pushed: Vec<String>,
}

/// The build as the views see it.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub dockerfile_path: String,
    pub dockerfile_lines: Vec<String>,
    pub context: String,
    pub target: Option<String>,
    pub destinations: Vec<String>,
    pub platform: String,
    /// How RUN steps are isolated (`chroot`, `container`), as the engine chose it.
    pub isolation: String,
    pub stages: Vec<StageView>,
    steps: BTreeMap<StepId, StepView>,
    pub logs: LogBuffer,
    pub warnings: Vec<String>,
    pub image: Option<ImageView>,
    pub review: Option<PushReview>,
    pub pushes: Vec<PushView>,
    /// `(hits, misses, bytes reused)`.
    pub cache_summary: Option<(usize, usize, u64)>,
    pub failure: Option<Failure>,
    pub finished: Option<Finished>,
    /// Time of the latest event, ms since the build started.
    pub last_ms: u64,
    /// The step that started last and has not finished.
    pub current: Option<StepId>,
    /// Events applied so far.
    pub events: usize,
}

impl Model {
    /// A model of a whole recorded build.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Envelope>) -> Model {
        let mut m = Model::default();
        for e in events {
            m.apply(e);
        }
        m
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

    /// The step that failed, if any.
    pub fn failed_step(&self) -> Option<StepId> {
        self.failure
            .as_ref()
            .and_then(|f| f.step)
            .or_else(|| self.steps().find(|s| s.state == StepState::Failed).map(|s| s.id))
    }

    /// Records small files' contents for a step (the File pane's diff).
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
                dockerfile_path,
                dockerfile_text,
                context,
                target,
                destinations,
                platform,
                isolation,
                stages,
                ..
            } => {
                self.dockerfile_path = dockerfile_path.clone();
                self.dockerfile_lines = dockerfile_text.lines().map(str::to_string).collect();
                self.context = context.clone();
                self.target = target.clone();
                self.destinations = destinations.clone();
                self.platform = platform.clone();
                self.isolation = isolation.clone();
                self.plan(stages);
            }
            Event::Warning { message } => self.warnings.push(message.clone()),
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
            Event::StepStarted { id, line, end_line, keyword, source, expanded } => {
                let step = self.ensure_step(*id, *line, *end_line, keyword, source);
                step.expanded = Some(expanded.clone());
                step.state = StepState::Running;
                step.started_ms = Some(env.ms);
                self.current = Some(*id);
            }
            Event::Output { id, stream, data } => {
                let shell =
                    self.steps.get(id).is_some_and(|s| s.shells.last().is_some_and(|sh| sh.exit_code.is_none()));
                self.logs.push(*id, *stream, data, shell);
            }
            Event::Snapshot { id, changes, stats } => {
                if let Some(s) = self.steps.get_mut(id) {
                    // While a shell session's changes are committed, the snapshot is theirs.
                    match s.shells.last_mut().filter(|sh| sh.committing()) {
                        Some(sh) => sh.changes = changes.clone(),
                        None => {
                            s.changes = changes.clone();
                            s.stats = Some(stats.clone());
                        }
                    }
                }
            }
            Event::FileContents { id, files } => self.add_contents(*id, files.clone()),
            Event::LayerWritten { id, layer, .. } => {
                if let Some(s) = self.steps.get_mut(id) {
                    match s.shells.last_mut().filter(|sh| sh.committing()) {
                        Some(sh) => sh.layer = Some(layer.clone()),
                        None => s.layer = Some(layer.clone()),
                    }
                }
            }
            Event::StepFinished { id, status, duration_ms, exit_code, .. } => {
                if let Some(s) = self.steps.get_mut(id) {
                    s.state = match status {
                        StepStatus::Built => StepState::Built,
                        StepStatus::Cached => StepState::Cached,
                        StepStatus::Metadata => StepState::Metadata,
                        StepStatus::Failed => StepState::Failed,
                        StepStatus::Skipped => StepState::Skipped,
                    };
                    s.duration_ms = Some(*duration_ms);
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
                        components: (**components).clone(),
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
            Event::ImageAssembled { manifest_digest, config_digest, media_type, size, layers, config, .. } => {
                self.image = Some(ImageView {
                    manifest_digest: manifest_digest.clone(),
                    config_digest: config_digest.clone(),
                    media_type: media_type.clone(),
                    size: *size,
                    layers: layers.clone(),
                    config: config.clone(),
                });
            }
            Event::PushReview { review } => self.review = Some((**review).clone()),
            Event::ShellStarted { id, argv, interactive, .. } => {
                if let Some(s) = self.steps.get_mut(id) {
                    let before_step = !s.state.is_done();
                    s.shells.push(ShellSession {
                        argv: argv.clone(),
                        interactive: *interactive,
                        exit_code: None,
                        changes: Vec::new(),
                        kept: None,
                        layer: None,
                        before_step,
                    });
                }
            }
            Event::ShellFinished { id, exit_code, changes } => {
                if let Some(sh) = self.steps.get_mut(id).and_then(|s| s.shells.last_mut()) {
                    sh.exit_code = Some(*exit_code);
                    sh.changes = changes.clone();
                }
            }
            Event::ShellResolved { id, kept, layer } => {
                if let Some(sh) = self.steps.get_mut(id).and_then(|s| s.shells.last_mut()) {
                    sh.kept = Some(*kept);
                    if layer.is_some() {
                        sh.layer = layer.clone();
                    }
                }
            }
            Event::PushStarted { destination } => self.push_mut(destination),
            Event::PushProgress { destination, digest, sent, total } => {
                let b = self.blob_mut(destination, digest);
                b.sent = *sent;
                b.total = *total;
            }
            Event::BlobPushed { destination, digest, action, size } => {
                let b = self.blob_mut(destination, digest);
                b.done = Some(*action);
                b.total = *size;
                b.sent = *size;
            }
            Event::PushFinished { destination, digest, duration_ms, .. } => {
                self.push_mut(destination);
                if let Some(p) = self.pushes.iter_mut().find(|p| &p.destination == destination) {
                    p.finished = Some((digest.clone(), *duration_ms));
                }
            }
            Event::BuildFailed { error, step, line, .. } => {
                let step = step.or_else(|| self.steps().find(|s| s.state == StepState::Failed).map(|s| s.id));
                self.failure = Some(Failure { error: error.clone(), step, line: *line });
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
            Event::PullProgress { .. }
            | Event::BaseUnpacked { .. }
            | Event::OutputWritten { .. }
            | Event::Paused { .. }
            | Event::Resumed { .. }
            | Event::PushDecided { .. } => {}
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
                started: false,
                finished: false,
            };
            for p in &s.steps {
                let step = StepView::planned(s.index, p, s.needed);
                view.steps.push(step.id);
                self.steps.insert(step.id, step);
            }
            self.stages.push(view);
        }
    }

    fn stage_mut(&mut self, index: usize) -> Option<&mut StageView> {
        self.stages.iter_mut().find(|s| s.index == index)
    }

    /// The step, adding it if the plan did not list it (ONBUILD triggers of a base image are
    /// only known once the base is resolved).
    fn ensure_step(&mut self, id: StepId, line: usize, end_line: usize, keyword: &str, source: &str) -> &mut StepView {
        if let std::collections::btree_map::Entry::Vacant(slot) = self.steps.entry(id) {
            let plan = trowel_events::StepPlan {
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
                    started: true,
                    finished: false,
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

    fn push_mut(&mut self, destination: &str) {
        if !self.pushes.iter().any(|p| p.destination == destination) {
            self.pushes.push(PushView { destination: destination.to_string(), blobs: Vec::new(), finished: None });
        }
    }

    fn blob_mut(&mut self, destination: &str, digest: &Digest) -> &mut BlobProgress {
        self.push_mut(destination);
        let p = self.pushes.iter_mut().find(|p| p.destination == destination).expect("push exists");
        if !p.blobs.iter().any(|b| &b.digest == digest) {
            p.blobs.push(BlobProgress { digest: digest.clone(), sent: 0, total: 0, done: None });
        }
        p.blobs.iter_mut().find(|b| &b.digest == digest).expect("blob exists")
    }
}
