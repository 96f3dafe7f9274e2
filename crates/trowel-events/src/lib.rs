//! The events of a trowel build: the contract between the engine that emits them and
//! everything that shows them — the plain log, the trace recorder, the debugger, `trowel
//! replay` — live or read back from a trace years later.
//!
//! These are dedicated types: nothing here is an engine type, so an engine refactor cannot
//! change the trace format by accident. A change to them is a change to the format: additive
//! ones (a new event, a new optional field) keep [`SCHEMA_VERSION`]; a change in what an
//! existing field means bumps it, and readers keep reading older versions (version 1 traces
//! parse as today's: every later addition has a default). `docs/trace-format.md`'s reference
//! is generated from [`schema`] by [`reference_markdown`], and a test keeps the two equal.
//!
//! [`BuildState`] is the build as these events describe it: the one fold of the stream that the
//! log, the summary and the debugger share.

mod cache;
mod change;
mod debug;
mod digest;
mod event;
mod outcome;
mod plan;
mod reference;
mod sink;
pub mod state;

pub use cache::{BaseInfo, CacheEntryRef, CacheResult, ChainLink, KeyComponents, KeyFile, LayerCacheUse, Var, VarKind};
pub use change::{Change, ChangeKind, FileContent, FileType, PrevMeta, SnapshotStats};
pub use debug::{Attempt, PauseReason, PlatformReview, PushReview, ResumeAction, ReviewLayer, When};
pub use digest::{Digest, InvalidDigest};
pub use event::Event;
pub use outcome::{BaseSource, BlobPushAction, LayerSummary, OutputStream, RootIndex, StepStatus};
pub use plan::{ContextOrigin, IndexEntry, MountInfo, StagePlan, StepId, StepPlan};
pub use reference::reference_markdown;
pub use sink::{Detail, Envelope, EventSink};
pub use state::BuildState;

/// The version of the event schema (and of trace files, whose header carries it).
///
/// - 1: the first format.
/// - 2: `step_finished.duration_ms` no longer counts time paused in the debugger (that is
///   `paused_ms`); pauses, resumes, push decisions and withheld events are recorded.
/// - 3: a step may start more than once (a failed step re-run from the debugger:
///   `step_started.attempt`, `resumed` with `retry`); a later start replaces what the earlier
///   attempt left.
pub const SCHEMA_VERSION: u32 = 3;

/// The JSON Schema of one envelope (what each line of a trace after the header is).
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Envelope)).expect("a schema serialises")
}
