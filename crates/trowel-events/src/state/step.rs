//! One step as the events describe it: where it is, what it changed and wrote, what the cache
//! said, what it printed, and the debugger's pauses and shell sessions at its boundaries.

use std::collections::BTreeMap;

use crate::{
    Attempt, CacheResult, Change, ChangeKind, FileContent, FileType, KeyComponents, LayerSummary, MountInfo,
    PauseReason, ResumeAction, SnapshotStats, StepId, StepPlan, StepStatus, When,
};

use super::OutputTail;

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
    /// A COPY/ADD the cache missed whose layer nothing needed: not run (see
    /// [`StepStatus::Deferred`]).
    Deferred,
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
            StepState::Deferred => "deferred",
        }
    }

    pub fn is_done(self) -> bool {
        !matches!(self, StepState::Pending | StepState::Running)
    }
}

impl From<StepStatus> for StepState {
    fn from(s: StepStatus) -> StepState {
        match s {
            StepStatus::Built => StepState::Built,
            StepStatus::Cached => StepState::Cached,
            StepStatus::Metadata => StepState::Metadata,
            StepStatus::Failed => StepState::Failed,
            StepStatus::Skipped => StepState::Skipped,
            StepStatus::Deferred => StepState::Deferred,
        }
    }
}

/// What a step had to do before it could read from another stage or an image
/// (`source_extracted`, `source_unpacked`): that work is in the step's time.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRead {
    /// `stage builder`, `stage 1`, or the image as written.
    pub from: String,
    /// `extracted /out: 12 entries of 3 layers (284 left out)`, `mounted from the store, 1 of
    /// 5 layers unpacked into it`, `unpacked: 288 entries, 2 layers`.
    pub how: String,
    /// Why a whole root rather than the paths read (`source_unpacked`).
    pub why: Option<String>,
    pub duration_ms: u64,
}

impl SourceRead {
    /// `stage builder: extracted /out: 12 entries of 3 layers (284 left out) in 41 ms`.
    pub fn line(&self) -> String {
        let ms = self.duration_ms;
        let took = if ms < 1000 { format!("{ms} ms") } else { format!("{:.1}s", ms as f64 / 1000.0) };
        format!("{}: {} in {took}", self.from, self.how)
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
    /// When it started, ms since the build started.
    pub started_ms: u64,
    /// When it ended (`None`: still running, or the trace ends in it).
    pub finished_ms: Option<u64>,
}

impl ShellSession {
    /// Which side of its step the session's pause was on.
    pub fn when(&self) -> When {
        if self.before_step { When::BeforeStep } else { When::AfterStep }
    }

    /// How long the session lasted, or has lasted by `now_ms` (ms since the build started).
    pub fn duration_ms(&self, now_ms: u64) -> u64 {
        self.finished_ms.unwrap_or(now_ms).saturating_sub(self.started_ms)
    }

    /// Its changes were kept as a layer of the image.
    pub fn is_kept(&self) -> bool {
        self.kept == Some(true) && self.layer.is_some()
    }

    /// Finished, and its changes are being kept (the engine is committing them).
    pub(super) fn committing(&self) -> bool {
        self.exit_code.is_some() && self.kept.is_none()
    }
}

/// How a pause ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub action: ResumeAction,
    /// How long the pause lasted (shell sessions in it included).
    pub paused_ms: u64,
}

/// The build stopped at one of the step's boundaries, in the debugger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    pub when: When,
    pub line: usize,
    pub reasons: Vec<PauseReason>,
    /// When it began, ms since the build started.
    pub started_ms: u64,
    /// `None`: still paused (or the trace ends during the pause).
    pub resumed: Option<Resume>,
}

/// A step: as planned, then as it ran.
#[derive(Debug, Clone, PartialEq)]
pub struct StepView {
    pub id: StepId,
    pub line: usize,
    pub end_line: usize,
    pub keyword: String,
    pub source: String,
    /// The instruction after variable expansion (once the step started).
    pub expanded: Option<String>,
    /// A RUN's `--mount`s (once the step started).
    pub mounts: Vec<MountInfo>,
    pub onbuild: bool,
    pub state: StepState,
    pub started_ms: Option<u64>,
    /// How long the step ran. Pauses are not in it (they are [`StepView::paused_ms`]), except
    /// in version 1 traces, which counted the pauses before a step's end in.
    pub duration_ms: Option<u64>,
    /// Time paused in the debugger at this step's boundaries, shell sessions included.
    pub paused_ms: u64,
    /// The layer the step added (written, or taken from the cache).
    pub layer: Option<LayerSummary>,
    pub exit_code: Option<i32>,
    pub changes: Vec<Change>,
    /// `changes` are a layer's entries not compared with the layers below (see the `snapshot`
    /// event's `classified`): `added` says only that a path is in the layer, and a deleted
    /// path's type and metadata are not known. Viewers must not show them as facts.
    pub unclassified: bool,
    /// Its `changes` and `layer` are its stage's single snapshot (`--single-snapshot`): what
    /// every step of the stage changed, taken after this, its last one. The line the stage
    /// starts at (its `FROM`).
    pub stage_snapshot: Option<usize>,
    /// A snapshot without `classified` that looks like an older trace's listing: the step is
    /// unclassified once it turns out to be served from the cache (older traces put the cache
    /// lookup after the snapshot).
    pub(super) older_listing: bool,
    pub stats: Option<SnapshotStats>,
    pub cache: Option<CacheView>,
    pub contents: BTreeMap<String, FileContent>,
    pub pauses: Vec<Pause>,
    pub shells: Vec<ShellSession>,
    /// What the step itself printed (not its shell sessions), the last lines of it; a re-run's
    /// output follows the failed attempt's.
    pub output: OutputTail,
    /// Set once the step was re-run from the debugger's failure pause (the latest attempt).
    pub attempt: Option<Attempt>,
    /// What it had to do to read from other stages or images, in the order it was done.
    pub reads: Vec<SourceRead>,
    /// A deferred step run after all: the step whose time holds it, and how long it took.
    pub ran_later: Option<(StepId, u64)>,
}

impl StepView {
    pub(super) fn planned(stage: usize, p: &StepPlan, needed: bool) -> StepView {
        StepView {
            id: StepId { stage, step: p.id.step },
            line: p.line,
            end_line: p.end_line,
            keyword: p.keyword.clone(),
            source: p.source.clone(),
            expanded: None,
            mounts: Vec::new(),
            onbuild: p.onbuild,
            state: if needed { StepState::Pending } else { StepState::Skipped },
            started_ms: None,
            duration_ms: None,
            paused_ms: 0,
            layer: None,
            exit_code: None,
            changes: Vec::new(),
            unclassified: false,
            stage_snapshot: None,
            older_listing: false,
            stats: None,
            cache: None,
            contents: BTreeMap::new(),
            pauses: Vec::new(),
            shells: Vec::new(),
            output: OutputTail::default(),
            attempt: None,
            reads: Vec::new(),
            ran_later: None,
        }
    }

    /// A re-run starts: what the failed attempt left (its layer, changes, exit code, cache
    /// lookup, file contents) is no longer the step's.
    pub(super) fn restart(&mut self, attempt: Attempt) {
        self.layer = None;
        self.exit_code = None;
        self.changes.clear();
        self.unclassified = false;
        self.stage_snapshot = None;
        self.older_listing = false;
        self.stats = None;
        self.cache = None;
        self.contents.clear();
        self.duration_ms = None;
        self.attempt = Some(attempt);
    }

    /// How the step differs from the Dockerfile as written, in words (`None`: it does not):
    /// edited or re-run at the debugger's failure pause.
    pub fn deviation(&self) -> Option<String> {
        let a = self.attempt.as_ref()?;
        Some(match &a.edited_from {
            Some(was) => format!("line {}: edited in trowel debug (was: {was})", self.line),
            None if a.after_shell => format!("line {}: re-run after changes made in a debugger shell", self.line),
            None => format!("line {}: re-run in trowel debug (attempt {})", self.line, a.number),
        })
    }

    /// Bytes this step's snapshot added or rewrote (regular files).
    pub fn added_bytes(&self) -> u64 {
        self.changes
            .iter()
            .filter(|c| c.kind != ChangeKind::Deleted && c.file_type == FileType::File)
            .map(|c| c.size)
            .sum()
    }

    /// For each mount target, the paths of the step's layer at or under it: what leaked from a
    /// mount into the image (a correct build has none; empty when the step has no mounts).
    pub fn mount_leaks(&self) -> Vec<(&str, Vec<&str>)> {
        self.mounts
            .iter()
            .filter_map(|m| m.target.as_deref())
            .map(|t| {
                let under = |p: &str| p == t || p.strip_prefix(t).is_some_and(|r| r.starts_with('/'));
                (t, self.changes.iter().map(|c| c.path.as_str()).filter(|p| under(p)).collect())
            })
            .collect()
    }

    /// The instruction's first line as written.
    pub fn first_line(&self) -> &str {
        self.source.lines().next().unwrap_or_default().trim()
    }

    /// The instruction's first line as the build ran it, once the step started (an ARG with
    /// the value the build gave it, `--from=$X` resolved), else as written: what one-line
    /// listings show. `ARG A=1` built with `--build-arg A=5` ran as `ARG A=5`; the line
    /// written would be a plausible, wrong figure. A FROM keeps its written line (the expanded
    /// one drops `AS name`, and the stage's base is said where it is resolved), and so does a
    /// heredoc (expanded, it is the whole script quoted on one line).
    pub fn ran_line(&self) -> &str {
        let written = self.first_line();
        match self.expanded.as_deref() {
            Some(e) if self.keyword != "FROM" && !written.contains("<<") => e.lines().next().unwrap_or_default().trim(),
            _ => written,
        }
    }

    /// A shell session is running at this step.
    pub fn in_shell(&self) -> bool {
        self.shells.last().is_some_and(|sh| sh.exit_code.is_none())
    }

    /// The pause the build is stopped in at this step, if any.
    pub fn open_pause(&self) -> Option<&Pause> {
        self.pauses.last().filter(|p| p.resumed.is_none())
    }

    /// How long the step has run by `now_ms` (ms since the build started; for a trace, the
    /// time of its last event): its reported run time once it finished; before that, the time
    /// since it started less the time paused at it (an open pause and its shells included), so
    /// a step's time never counts the debugger. `None`: it has not started.
    pub fn run_ms(&self, now_ms: u64) -> Option<u64> {
        if let Some(d) = self.duration_ms {
            return Some(d);
        }
        let start = self.started_ms?;
        let paused: u64 = self
            .pauses
            .iter()
            .filter(|p| p.started_ms >= start)
            .map(|p| p.resumed.as_ref().map_or(now_ms.saturating_sub(p.started_ms), |r| r.paused_ms))
            .sum();
        Some(now_ms.saturating_sub(start).saturating_sub(paused))
    }

    /// Time paused in the debugger at this step's boundaries by `now_ms` (ms since the build
    /// started): the pauses that ended, and the one the build is stopped in so far, shell
    /// sessions included.
    pub fn paused_now(&self, now_ms: u64) -> u64 {
        let open = self.open_pause().map_or(0, |p| now_ms.saturating_sub(p.started_ms));
        self.paused_ms + open
    }

    /// What the step's attempt says of it in a few words (`None`: it ran as written, once):
    /// `attempt 2, edited (was: RUN make)`, `attempt 2, re-run after a debugger shell`.
    pub fn attempt_note(&self) -> Option<String> {
        let a = self.attempt.as_ref()?;
        Some(match &a.edited_from {
            Some(was) => format!("attempt {}, edited (was: {})", a.number, one_line(was)),
            None if a.after_shell => format!("attempt {}, re-run after a debugger shell", a.number),
            None => format!("attempt {}, re-run", a.number),
        })
    }

    /// Started and never reported finished (running, or where the build or its trace ended).
    pub fn is_unfinished(&self) -> bool {
        self.started_ms.is_some() && self.duration_ms.is_none()
    }

    /// The shell sessions at the pause on one side of the step, in order.
    pub fn shells_on(&self, when: When) -> impl Iterator<Item = &ShellSession> {
        self.shells.iter().filter(move |s| s.when() == when)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a `snapshot` event of a trace older than its `classified` field, for a step the
/// cache served, is its layer's unclassified listing. Those carried all-zero stats (no walk),
/// no `previous` and no `modified`; a walk of a root with changes has walked at least those
/// paths, so its stats are never all zero. (A listing the debugger classified had zero stats
/// too; one with nothing but additions is then taken as unclassified: "not known" where it was
/// known, never the reverse.)
pub(super) fn older_unclassified_listing(changes: &[Change], stats: &SnapshotStats) -> bool {
    !changes.is_empty()
        && *stats == SnapshotStats::default()
        && changes.iter().all(|c| c.previous.is_none() && c.kind != ChangeKind::Modified)
}
