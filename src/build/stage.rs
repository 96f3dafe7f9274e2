//! One stage's state while it builds: its config, its layers so far, and (once some step needs
//! files) its build root with the snapshotter that tracks it.

use std::path::PathBuf;

use crate::build::event::StepId;
use crate::digest::Digest;
use crate::dockerfile::ArgScope;
use crate::fs::root::Root;
use crate::fs::snapshot::Snapshotter;
use crate::image::config::ImageConfig;
use crate::image::manifest::{Descriptor, ManifestFormat};
use crate::registry::Reference;

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
}
