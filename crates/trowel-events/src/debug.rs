//! The debugger's side of a build: pauses, what the person chose, shell sessions and the push
//! review. They are events like any other, so a replay shows the whole session.

use serde::{Deserialize, Serialize};

use crate::{Digest, StepId};

/// Which side of a step a pause (or a shell session) is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum When {
    BeforeStep,
    AfterStep,
}

/// One reason the build paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PauseReason {
    /// The breakpoint that fired, as the person wrote it (`12`, `stage:build`, `cache-miss`,
    /// `size:10MB`, `path:/etc/**`, `failure`); absent when stepping or running to a line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakpoint: Option<String>,
    /// What happened, in words (`breakpoint at line 12`, `step`, `cache miss`).
    pub message: String,
}

/// How a pause ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ResumeAction {
    /// Run until the next breakpoint.
    Continue,
    /// Stop before the next step.
    Step,
    /// Run until the step at this line.
    RunTo { line: usize },
    /// Stop the build.
    Abort { reason: String },
    /// Run the failed step again, as written or (`edited`) as the person rewrote it: the step
    /// starts again (`step_started` with `attempt`).
    Retry {
        /// The instruction to run instead, as typed (one logical line); absent: as written.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edited: Option<String>,
    },
}

/// A step started again after it failed, from the debugger's failure pause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Attempt {
    /// 2 for the first re-run, and so on.
    pub number: u32,
    /// The instruction as the Dockerfile has it, when the person edited it (`source` is then
    /// the edited text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_from: Option<String>,
    /// A debugger shell's changes were kept in this stage before this attempt: what the step
    /// runs on is not what the Dockerfile alone makes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_shell: bool,
}

/// The image as it is about to be pushed: one manifest, or, in a build for several platforms,
/// the image index (`manifest_digest` and `media_type` are the index's, `config_digest` is
/// `null` and `layers` empty) with each platform's manifest in `platforms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PushReview {
    pub manifest_digest: Digest,
    /// The image's config; `null` for an index, which has none.
    pub config_digest: Option<Digest>,
    pub media_type: String,
    pub destinations: Vec<String>,
    pub layers: Vec<ReviewLayer>,
    /// For an index: each platform's manifest, in the index's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformReview>,
}

/// One platform's manifest of an image index under review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlatformReview {
    /// `os/arch[/variant]`.
    pub platform: String,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub media_type: String,
    pub layers: Vec<ReviewLayer>,
}

/// One layer of the image under review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReviewLayer {
    pub digest: Digest,
    pub size: u64,
    pub uncompressed_size: Option<u64>,
    pub media_type: String,
    /// The step that made it, in this build or (taken from the cache) an earlier one (`null`: a
    /// base-image layer); for a debugger shell session's layer, the step at whose pause it ran.
    pub step: Option<StepId>,
    /// Set for a layer a debugger shell session made: which side of `step` its pause was on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<When>,
    /// Per destination (in `destinations` order): whether it already has the blob (`null`:
    /// could not be told).
    pub present: Vec<Option<bool>>,
    /// Per destination (in `destinations` order): the repository of the same registry the push
    /// will ask it to mount the blob from if it lacks it (a base image's, the cache's), instead
    /// of uploading it; `null`: uploaded. Empty in traces before it was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_from: Vec<Option<String>>,
}
