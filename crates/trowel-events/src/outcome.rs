//! How steps and their parts turned out, as the events after a step's start report it: its
//! status, its output, the root it ran in and where that root's base came from, the layers it
//! wrote and how each was pushed.

use serde::{Deserialize, Serialize};

use crate::{Digest, StepId, When};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Ran and produced (maybe) a layer.
    Built,
    /// Served from the layer cache.
    Cached,
    /// Changed only the image config (`ENV`, `WORKDIR`, `FROM`, …).
    Metadata,
    /// The build stops here.
    Failed,
    /// Not run. (Steps of stages the target does not need get no events at all: the plan in
    /// `build_started` marks those stages.)
    Skipped,
    /// A COPY/ADD that missed the cache and was not run, because nothing needed its layer: every
    /// later step of its stage hit (or was such a COPY, not run either), and the stage is
    /// neither an image nor a base of another stage (its key still chained the steps after it). No layer was written. A later `COPY
    /// --from` or `RUN --mount=from=` of the stage that runs makes its whole root, and this step
    /// runs then into that root (`source_unpacked` says so). Absent in older traces.
    Deferred,
}

/// Which of a RUN's output streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// How a build root mounted from the unpacked-layer store got its first snapshot index: the
/// record of every path of the root that the first snapshot compares with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "how")]
pub enum RootIndex {
    /// Read back as a build before kept it for the very same layers (a few milliseconds).
    Kept,
    /// The one kept for the layers under the top `layers` ones, brought up to date with what
    /// those hold (`paths` looked at) instead of a walk of the root; kept for the next build.
    Extended { layers: usize, paths: u64 },
    /// A walk of the whole root (`paths` looked at); kept for the next build when it can be.
    Walked { paths: u64 },
}

/// Where a base image came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BaseSource {
    /// `FROM scratch`: no base layers.
    Scratch,
    /// Pulled from a registry; `index_digest` is the multi-platform index it was chosen from.
    Registry {
        reference: String,
        manifest_digest: Digest,
        index_digest: Option<Digest>,
        /// Why the base-image cache directory (`--cache-dir`) did not serve it: `not in the
        /// cache`, an expired entry, a corrupt one. Absent when the build was given no cache
        /// directory. An entry that is simply not there is not a warning (kaniko logs it at
        /// debug level): most CI jobs name a cache directory that only a warmer fills.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_dir_miss: Option<String>,
    },
    /// Read from the base-image cache directory (`--cache-dir`, filled by `trowel warm`).
    CacheDir { reference: String, manifest_digest: Digest },
    /// An earlier stage of this build.
    Stage { index: usize },
}

/// A layer of the image being built (base layer or a new one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LayerSummary {
    /// The compressed blob's digest (what the manifest lists).
    pub digest: Digest,
    /// The uncompressed tar's digest (what the image config lists), when known.
    pub diff_id: Option<Digest>,
    /// Compressed bytes.
    pub size: u64,
    pub uncompressed_size: Option<u64>,
    pub media_type: String,
    /// Which step made it (`null` for base-image layers), in this build or, for a layer taken
    /// from the cache, an earlier one (older traces said `null` for those in `image_assembled`);
    /// for a layer of a debugger shell session, the step at whose pause the session ran.
    pub step: Option<StepId>,
    /// Set when a debugger shell session made it (its changes were kept), not the step's
    /// instruction: which side of `step` the session's pause was on. Absent in traces before
    /// trowel recorded it (the fold then tells by the session being committed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<When>,
}

/// What pushing one blob to a destination took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlobPushAction {
    /// Sent.
    Uploaded,
    /// The destination already had it.
    Existed,
    /// Mounted from another repository of the same registry (the cache repository, a base).
    Mounted,
}
