//! The events a build emits.
//!
//! Events are the only way the engine talks to the outside world: the plain log, the trace
//! recorder and the TUI all consume this one stream, so a live session, a CI log and a replay
//! always agree. Each event carries everything a viewer needs (changed paths, sizes, digests,
//! timings) so that a recorded trace can show what the live session showed.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::fs::snapshot::{Change, SnapshotStats};

/// Identifies a step: the stage index and the step's position in that stage (0 = FROM).
/// ONBUILD triggers inherited from a base image run as steps too; they come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagePlan {
    pub index: usize,
    pub name: Option<String>,
    /// The base as written after ARG expansion (`busybox:1.35`, `scratch`, a stage name).
    pub base: String,
    /// False for stages the target does not need; they are skipped.
    pub needed: bool,
    pub steps: Vec<StepPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Where a base image came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BaseSource {
    Scratch,
    Registry { reference: String, manifest_digest: Digest, index_digest: Option<Digest> },
    CacheDir { reference: String, manifest_digest: Digest },
    Stage { index: usize },
}

/// A layer of the image being built (base layer or a new one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSummary {
    pub digest: Digest,
    pub diff_id: Option<Digest>,
    pub size: u64,
    pub uncompressed_size: Option<u64>,
    pub media_type: String,
    /// Which step made it (None for base-image layers).
    pub step: Option<StepId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobPushAction {
    Uploaded,
    Existed,
    Mounted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        files: Vec<crate::engine::contents::FileContent>,
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
        duration_ms: u64,
        /// Digest of the layer this step added, if any.
        layer: Option<Digest>,
        /// For failed RUNs.
        exit_code: Option<i32>,
    },
    /// A cacheable step's lookup (with `--cache`).
    CacheLookup {
        id: StepId,
        key: String,
        components: Box<crate::cache::key::KeyComponents>,
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
        review: Box<crate::engine::controller::PushReview>,
    },
    /// A debugger shell session started at a pause.
    ShellStarted {
        id: StepId,
        argv: Vec<String>,
        interactive: bool,
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
    },
    BuildFinished {
        duration_ms: u64,
        digest: Option<Digest>,
        pushed: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CacheResult {
    /// The cached layer was used (`layer` is `None` for a step that changed no files).
    Hit { reference: String, layer: Option<LayerSummary> },
    /// Not in the cache; `explanation` says why.
    Miss { explanation: String },
    /// The lookup itself failed; the step ran normally.
    Error { message: String },
}

/// An event with its sequence number and time since the build started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub seq: u64,
    pub ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// A consumer of events. Sinks are called on the engine's thread, in order; they must be quick
/// (hand work to another thread if needed).
pub trait EventSink: Send {
    fn event(&mut self, e: &Envelope);
}

impl<F: FnMut(&Envelope) + Send> EventSink for F {
    fn event(&mut self, e: &Envelope) {
        self(e)
    }
}

/// Fans events out to every sink. Cheap to clone; shared by the engine and its worker threads.
#[derive(Clone)]
pub struct Emitter {
    inner: Arc<Mutex<EmitterInner>>,
}

struct EmitterInner {
    sinks: Vec<Box<dyn EventSink>>,
    seq: u64,
    start: Instant,
    redactor: crate::secrets::Redactor,
}

impl Emitter {
    pub fn new(sinks: Vec<Box<dyn EventSink>>) -> Emitter {
        Emitter::with_redactor(sinks, crate::secrets::Redactor::default())
    }

    /// An emitter that masks secret values in every event before any sink sees it, so no log,
    /// trace or viewer ever holds them.
    pub fn with_redactor(sinks: Vec<Box<dyn EventSink>>, redactor: crate::secrets::Redactor) -> Emitter {
        Emitter { inner: Arc::new(Mutex::new(EmitterInner { sinks, seq: 0, start: Instant::now(), redactor })) }
    }

    /// How many trailing bytes of streamed output to hold back so a secret split across two
    /// chunks is still masked.
    pub fn holdback(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.redactor.max_len().saturating_sub(1)
    }

    pub fn emit(&self, event: Event) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let event = if inner.redactor.is_empty() {
            event
        } else {
            let mut v = serde_json::to_value(&event).expect("events serialise");
            inner.redactor.redact_json(&mut v);
            serde_json::from_value(v).unwrap_or(event)
        };
        let env = Envelope { seq: inner.seq, ms: inner.start.elapsed().as_millis() as u64, event };
        inner.seq += 1;
        for s in inner.sinks.iter_mut() {
            s.event(&env);
        }
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.emit(Event::Warning { message: message.into() });
    }
}
