//! One stage's state while it builds: its config, its layers so far, and (once some step needs
//! files) its build root with the snapshotter that tracks it.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::cache::key::KeyComponents;
use crate::cache::registry::{CacheError, Lookup};
use crate::digest::Digest;
use crate::dockerfile::ArgScope;
use crate::fs::root::Root;
use crate::fs::snapshot::Snapshotter;
use crate::image::config::ImageConfig;
use crate::image::manifest::{Descriptor, ManifestFormat};
use crate::registry::Reference;
use trowel_events::StepId;

/// Where a layer of a stage came from.
#[derive(Debug, Clone)]
pub enum LayerOrigin {
    /// A base-image layer; the repository it can be fetched (or mounted) from.
    Base(Reference),
    /// Made by a step of this build.
    Built(StepId),
}

#[derive(Debug, Clone)]
pub struct StageLayer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    pub origin: LayerOrigin,
    pub uncompressed_size: Option<u64>,
}

/// A materialised build root: the directory and the snapshotter indexing it.
pub struct BuildRoot {
    pub dir: PathBuf,
    pub snap: Snapshotter,
}

impl BuildRoot {
    pub fn root(&self) -> &Root {
        self.snap.root()
    }
}

pub struct StageState {
    pub index: usize,
    pub config: ImageConfig,
    pub format: ManifestFormat,
    pub layers: Vec<StageLayer>,
    pub root: Option<BuildRoot>,
    pub args: ArgScope,
    /// CMD was set in this stage (an ENTRYPOINT then keeps it, as Docker does).
    pub cmd_set: bool,
    /// Manifest digest of the base image, for cache keys and traces.
    pub base_digest: Option<Digest>,
    /// The base as written (`busybox:1.35`), for cache explanations.
    pub base_ref: String,
    /// Cache keys of this stage's steps, planned when the stage starts (empty without --cache).
    pub planned: HashMap<StepId, PlannedStep>,
    /// Cache lookups started when the stage started, by step.
    pub lookups: HashMap<StepId, tokio::task::JoinHandle<Result<Lookup, CacheError>>>,
    /// The key of the stage's last step: what `FROM <stage>` and `COPY --from` chain from.
    pub final_key: Option<String>,
    /// Paths the current step changed (for breakpoints on changed paths).
    pub last_changes: Vec<String>,
    /// When the stage's contents so far were made: the base image's `created`, then the time of
    /// the latest step that ran or came from the cache. Config-only steps are stamped with it.
    pub clock: Option<String>,
    /// History entries pushed while `clock` was unknown (config-only steps at the top of a
    /// `FROM scratch` stage); they get the time of the first step that sets it.
    pub unstamped: Vec<usize>,
}

/// A step's cache key, planned ahead of execution.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    pub components: KeyComponents,
    pub key: String,
    /// The expanded instruction the plan saw; execution must see the same.
    pub display: String,
    /// Whether the step's layer is looked up in and stored to the cache.
    pub cacheable: bool,
}
