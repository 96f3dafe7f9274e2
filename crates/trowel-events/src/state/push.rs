//! The end of a build as the events describe it: the image, the push gate and the pushes.

use super::{BuildState, StepState};
use crate::{BlobPushAction, Digest, Event, IndexEntry, LayerSummary};

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

impl ImageView {
    /// What "N layer(s), SIZE" says: the compressed layers' bytes, as the push review adds
    /// them up (`size` also counts the config, which tipped the rounding of a 1.1 MB image's
    /// summary to 1.2 MB beside its review's 1.1 MB).
    pub fn layers_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
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

impl BuildState {
    /// The image and index assembled, and every push's progress.
    pub(super) fn apply_push(&mut self, event: &Event) {
        match event {
            Event::ImageAssembled {
                manifest_digest,
                config_digest,
                media_type,
                size,
                layers,
                config,
                platform,
                ..
            } => {
                let mut layers = layers.clone();
                // Traces before the engine credited cached layers in the image said `null`, as
                // for a base layer: the step the cache served that layer for, when just one did.
                for l in layers.iter_mut().filter(|l| l.step.is_none()) {
                    let mut served = self.steps.values().filter(|s| {
                        s.state == StepState::Cached && s.layer.as_ref().is_some_and(|sl| sl.digest == l.digest)
                    });
                    if let (Some(s), None) = (served.next(), served.next()) {
                        l.step = Some(s.id);
                    }
                }
                let view = ImageView {
                    manifest_digest: manifest_digest.clone(),
                    config_digest: config_digest.clone(),
                    media_type: media_type.clone(),
                    size: *size,
                    layers,
                    config: config.clone(),
                    platform: platform.clone(),
                };
                self.images.push(view.clone());
                self.image = Some(view);
            }
            Event::IndexAssembled { digest, media_type, manifests, .. } => {
                self.index = Some(IndexView {
                    digest: digest.clone(),
                    media_type: media_type.clone(),
                    manifests: manifests.clone(),
                });
            }
            Event::PushStarted { destination } => {
                self.push_mut(destination);
            }
            Event::PushProgress { destination, digest, sent, total } => {
                let b = self.blob_mut(destination, digest);
                b.sent = *sent;
                b.total = *total;
            }
            Event::BlobPushed { destination, digest, action, size } => {
                let b = self.blob_mut(destination, digest);
                // A layer the platforms of an index share is reported once per image: the
                // second finds it there because the first sent it. What was done is the first.
                b.done = match (b.done, action) {
                    (Some(done @ (BlobPushAction::Uploaded | BlobPushAction::Mounted)), BlobPushAction::Existed) => {
                        Some(done)
                    }
                    _ => Some(*action),
                };
                b.total = *size;
                b.sent = *size;
            }
            Event::PushFinished { destination, digest, duration_ms, unchanged } => {
                let p = self.push_mut(destination);
                p.finished = Some((digest.clone(), *duration_ms));
                p.unchanged = *unchanged;
            }
            _ => {}
        }
    }

    fn push_mut(&mut self, destination: &str) -> &mut PushView {
        let i = match self.pushes.iter().position(|p| p.destination == destination) {
            Some(i) => i,
            None => {
                self.pushes.push(PushView {
                    destination: destination.to_string(),
                    blobs: Vec::new(),
                    finished: None,
                    unchanged: false,
                });
                self.pushes.len() - 1
            }
        };
        &mut self.pushes[i]
    }

    fn blob_mut(&mut self, destination: &str, digest: &Digest) -> &mut BlobProgress {
        let p = self.push_mut(destination);
        let i = match p.blobs.iter().position(|b| &b.digest == digest) {
            Some(i) => i,
            None => {
                p.blobs.push(BlobProgress { digest: digest.clone(), sent: 0, total: 0, done: None });
                p.blobs.len() - 1
            }
        };
        &mut p.blobs[i]
    }
}
