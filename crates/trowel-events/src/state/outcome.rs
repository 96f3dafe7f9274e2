//! How a build ended, if it did.

use crate::{Digest, StepId};

/// Why the build did not finish (its `build_failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    /// The step that failed: as the event says, or else the step that finished `failed`.
    pub step: Option<StepId>,
    pub line: Option<usize>,
    /// Stopped on purpose (from the debugger, or a refused push) rather than broken.
    pub aborted: bool,
}

/// The build finished (its `build_finished`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub duration_ms: u64,
    pub digest: Option<Digest>,
    pub pushed: Vec<String>,
}

/// Where the build is, as one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still going, or, in a trace, the build was killed before it could say how it ended.
    Unfinished,
    Finished,
    Failed,
    Aborted,
}
