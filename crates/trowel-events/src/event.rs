//! The events themselves: one enum, each variant a moment of the build with everything a
//! viewer needs to show it (so a replay from a trace shows what the live session showed).
//!
//! Serialised with `"event": "<snake_case name>"` beside the variant's fields; see
//! `docs/trace-format.md`, which is generated from these types.

use serde::{Deserialize, Serialize};

use crate::{CacheResult, Digest};
use crate::{Change, FileContent, KeyComponents, PauseReason, PushReview, ResumeAction, SnapshotStats, When};

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Identifies a step: the stage index and the step's position in that stage (0 = FROM).
/// ONBUILD triggers inherited from a base image run as steps too; they come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepId {
    pub stage: usize,
    pub step: usize,
}

impl std::fmt::Display for StepId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.stage, self.step)
    }
}

/// A stage as planned, before anything runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StagePlan {
    pub index: usize,
    pub name: Option<String>,
    /// The base as written after ARG expansion (`busybox:1.35`, `scratch`, a stage name).
    pub base: String,
    /// False for stages the target does not need; they are skipped.
    pub needed: bool,
    pub steps: Vec<StepPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepPlan {
    pub id: StepId,
    /// 1-based Dockerfile lines (inclusive). ONBUILD triggers carry the FROM line.
    pub line: usize,
    pub end_line: usize,
    pub keyword: String,
    /// The instruction as written (first line for display; full text incl. heredocs).
    pub source: String,
    /// Set for ONBUILD triggers inherited from the base image.
    pub onbuild: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Ran and produced (maybe) a layer.
    Built,
    /// Served from the layer cache.
    Cached,
    /// Changed only the config.
    Metadata,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Where a base image came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BaseSource {
    Scratch,
    Registry { reference: String, manifest_digest: Digest, index_digest: Option<Digest> },
    CacheDir { reference: String, manifest_digest: Digest },
    Stage { index: usize },
}

/// A layer of the image being built (base layer or a new one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LayerSummary {
    pub digest: Digest,
    pub diff_id: Option<Digest>,
    pub size: u64,
    pub uncompressed_size: Option<u64>,
    pub media_type: String,
    /// Which step made it (None for base-image layers).
    pub step: Option<StepId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlobPushAction {
    Uploaded,
    Existed,
    Mounted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    BuildStarted {
        version: String,
        dockerfile_path: String,
        dockerfile_text: String,
        context: String,
        target: Option<String>,
        destinations: Vec<String>,
        platform: String,
        isolation: String,
        stages: Vec<StagePlan>,
    },
    Warning {
        message: String,
    },
    StageStarted {
        stage: usize,
        name: Option<String>,
        base: String,
    },
    BaseResolved {
        stage: usize,
        source: BaseSource,
        config_digest: Option<Digest>,
        layers: Vec<LayerSummary>,
    },
    PullProgress {
        reference: String,
        digest: Digest,
        done: u64,
        total: u64,
    },
    BaseUnpacked {
        stage: usize,
        layers: usize,
        entries: u64,
        bytes: u64,
        duration_ms: u64,
    },
    StepStarted {
        id: StepId,
        line: usize,
        end_line: usize,
        keyword: String,
        source: String,
        /// The instruction after variable expansion, as shown in logs and history.
        expanded: String,
    },
    Output {
        id: StepId,
        stream: OutputStream,
        data: String,
    },
    Snapshot {
        id: StepId,
        changes: Vec<Change>,
        stats: SnapshotStats,
    },
    /// Small text files' content before and after a step (see `--trace-content-limit`).
    FileContents {
        id: StepId,
        files: Vec<FileContent>,
    },
    LayerWritten {
        id: StepId,
        layer: LayerSummary,
        entries: u64,
        duration_ms: u64,
    },
    StepFinished {
        id: StepId,
        status: StepStatus,
        /// Time the step itself took: pauses and debugger shell sessions at its boundaries are
        /// not in it (they are `paused_ms`). Version 1 traces counted them in.
        duration_ms: u64,
        /// Time spent paused at this step's boundaries (and in shell sessions there).
        #[serde(default, skip_serializing_if = "is_zero")]
        paused_ms: u64,
        /// Digest of the layer this step added, if any.
        layer: Option<Digest>,
        /// For failed RUNs.
        exit_code: Option<i32>,
    },
    /// A cacheable step's lookup (with `--cache`).
    CacheLookup {
        id: StepId,
        key: String,
        components: Box<KeyComponents>,
        result: CacheResult,
    },
    /// A step's layer was written to the cache repository.
    CacheStored {
        id: StepId,
        key: String,
        reference: String,
        /// The layer was uploaded while it was being written (else after, from the store).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        streamed: bool,
    },
    /// At the end of a build with `--cache`.
    CacheSummary {
        hits: usize,
        misses: usize,
        bytes_reused: u64,
    },
    StageFinished {
        stage: usize,
        duration_ms: u64,
        layers: usize,
    },
    ImageAssembled {
        manifest_digest: Digest,
        config_digest: Digest,
        media_type: String,
        size: u64,
        layers: Vec<LayerSummary>,
        config: serde_json::Value,
        manifest: serde_json::Value,
    },
    /// The push gate's view of the image (when a controller reviews the push).
    PushReview {
        review: Box<PushReview>,
    },
    /// A debugger shell session started at a pause.
    ShellStarted {
        id: StepId,
        argv: Vec<String>,
        interactive: bool,
        /// Which side of the step the pause was on (absent in version 1 traces).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        when: Option<When>,
    },
    /// The session ended; `changes` is what it changed in the build root.
    ShellFinished {
        id: StepId,
        exit_code: i32,
        changes: Vec<Change>,
    },
    /// What happened to the session's changes.
    ShellResolved {
        id: StepId,
        kept: bool,
        layer: Option<LayerSummary>,
    },
    PushStarted {
        destination: String,
    },
    PushProgress {
        destination: String,
        digest: Digest,
        sent: u64,
        total: u64,
    },
    BlobPushed {
        destination: String,
        digest: Digest,
        action: BlobPushAction,
        size: u64,
    },
    PushFinished {
        destination: String,
        digest: Digest,
        duration_ms: u64,
        /// The destination already named this exact image (a rebuild in which nothing ran):
        /// nothing was sent.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unchanged: bool,
    },
    OutputWritten {
        kind: String,
        path: String,
    },
    BuildFailed {
        error: String,
        step: Option<StepId>,
        line: Option<usize>,
        /// The build was stopped (from the debugger, or a refused push), not broken.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        aborted: bool,
    },
    /// The build paused at a step boundary (a breakpoint fired, or the person is stepping).
    Paused {
        id: StepId,
        line: usize,
        when: When,
        reasons: Vec<PauseReason>,
    },
    /// The pause at `id` ended; `paused_ms` is how long it lasted (shell sessions included).
    Resumed {
        id: StepId,
        action: ResumeAction,
        paused_ms: u64,
    },
    /// The answer at the push gate (after `push_review`).
    PushDecided {
        approved: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An event that could not be masked safely (a secret value occurred where masking breaks
    /// the event's shape, e.g. inside a digest): it was withheld from every sink, and this
    /// stands in for it.
    Redacted {
        /// The kind of the withheld event (`layer_written`, …).
        withheld: String,
        reason: String,
    },
    BuildFinished {
        duration_ms: u64,
        digest: Option<Digest>,
        pushed: Vec<String>,
    },
}
