//! A layer of a stage and where it came from: what the push needs to mount it, the cache to
//! reuse it, and the debugger to credit it to a step.

use trowel_events::{LayerSummary, StepId, When};

use crate::digest::Digest;
use crate::image::manifest::{Descriptor, ManifestFormat, media};
use crate::registry::Reference;

/// Where a layer of a stage came from.
#[derive(Debug, Clone)]
pub(crate) enum LayerOrigin {
    /// A base-image layer (or a cached one); the repository it can be fetched or mounted from.
    Base(Reference),
    /// A cached layer from the local layer store under `--cache-dir` (the entry's path): its
    /// blob is in the build's store, and no registry holds it for a mount.
    Local(std::path::PathBuf),
    /// Made by a step of this build.
    Built(StepId),
    /// Made by a debugger shell session at the pause on this side of a step (its changes were
    /// kept): credited to the session, never to the step's instruction.
    Shell(StepId, When),
}

#[derive(Debug, Clone)]
pub(crate) struct StageLayer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    pub origin: LayerOrigin,
    pub uncompressed_size: Option<u64>,
    /// The step of this build a layer taken from the cache stands for (its origin says where
    /// its bytes are; the step made it in an earlier build).
    pub cached_for: Option<StepId>,
}

impl StageLayer {
    /// The step that made it (or at whose pause a shell session made it), for a layer made in
    /// this build.
    pub fn step(&self) -> Option<StepId> {
        match self.origin {
            LayerOrigin::Built(id) | LayerOrigin::Shell(id, _) => Some(id),
            LayerOrigin::Base(_) | LayerOrigin::Local(_) => None,
        }
    }

    /// For a layer a debugger shell session made: which side of its step the pause was on.
    pub fn shell(&self) -> Option<When> {
        match self.origin {
            LayerOrigin::Shell(_, when) => Some(when),
            LayerOrigin::Built(_) | LayerOrigin::Base(_) | LayerOrigin::Local(_) => None,
        }
    }

    /// The step of this Dockerfile that made it, in this build or (a cache hit) an earlier one:
    /// what viewers credit it to. `None` for base-image layers. Not [`step`](Self::step), which
    /// says what this build made (what the push must upload, what is new).
    pub fn made_by(&self) -> Option<StepId> {
        self.step().or(self.cached_for)
    }

    /// How events describe it (`step`: the step it is credited to, if any; a layer reported
    /// as a base, with no step, is no shell's either).
    pub fn summary(&self, step: Option<StepId>) -> LayerSummary {
        LayerSummary {
            digest: (&self.descriptor.digest).into(),
            diff_id: Some((&self.diff_id).into()),
            size: self.descriptor.size,
            uncompressed_size: self.uncompressed_size,
            media_type: self.descriptor.media_type.clone(),
            step,
            shell: step.and(self.shell()),
        }
    }

    /// Its descriptor in the output format: Docker and OCI gzip layers are the same bytes under
    /// different media types, so a Docker base's layers are relabelled when the result is OCI.
    pub fn descriptor_in(&self, format: ManifestFormat) -> Descriptor {
        let mut d = self.descriptor.clone();
        d.media_type = match (format, d.media_type.as_str()) {
            (ManifestFormat::Oci, media::DOCKER_LAYER_GZIP) => media::OCI_LAYER_GZIP.to_string(),
            (ManifestFormat::Oci, media::DOCKER_LAYER_FOREIGN) => media::OCI_LAYER_NONDIST_GZIP.to_string(),
            (ManifestFormat::Docker, media::OCI_LAYER_GZIP) => media::DOCKER_LAYER_GZIP.to_string(),
            (_, other) => other.to_string(),
        };
        d
    }
}
