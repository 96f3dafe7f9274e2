//! The end of a build as the events describe it: the image, the push gate and the pushes.

use crate::{BlobPushAction, Digest, IndexEntry, LayerSummary};

/// The image the build assembled.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageView {
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub layers: Vec<LayerSummary>,
    pub config: serde_json::Value,
    /// The platform it is for, in a build for several.
    pub platform: Option<String>,
}

/// The image index a build for several platforms assembled.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexView {
    pub digest: Digest,
    pub media_type: String,
    pub manifests: Vec<IndexEntry>,
}

/// The answer at the push gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushDecision {
    pub approved: bool,
    pub reason: Option<String>,
}

/// A blob's upload to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProgress {
    pub digest: Digest,
    pub sent: u64,
    pub total: u64,
    pub done: Option<BlobPushAction>,
}

/// The push to one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct PushView {
    pub destination: String,
    pub blobs: Vec<BlobProgress>,
    /// Manifest digest and time, once pushed.
    pub finished: Option<(Digest, u64)>,
    /// The destination already had this exact image: nothing was sent.
    pub unchanged: bool,
}
