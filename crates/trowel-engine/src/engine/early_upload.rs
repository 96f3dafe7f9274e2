//! The image's own layers sent to the destination while they are written, committed only at
//! the push.
//!
//! Why: a layer that does not go to the cache repository (a COPY or ADD with kaniko's default
//! flags, any layer without `--cache`) used to be uploaded only once the whole build was done:
//! for W3 (one 126 MB COPY layer) that upload was a sixth of the cold build, after everything
//! else. Its compressed bytes are now streamed to the (first) destination as the layer writer
//! produces them, the way RUN layers are streamed to the cache repository. A small layer's
//! session is opened the same way, but its bytes wait in memory for the commit, which carries
//! them (`registry/stream_upload.rs`): sending a few hundred bytes ahead saves no time and costs
//! the registry a request.
//!
//! Why this pushes nothing early: the stream stops short of the registry's commit (the
//! `PUT ?digest=` that turns an upload session into a blob). Until the push commits it, the
//! destination has no new blob, let alone a manifest or a tag; a failed build, or a push
//! refused at the gate, deletes the sessions (and a session left by a killed process is only
//! an upload the registry expires). The commit is checked by the registry against the digest
//! the layer writer computed (a 201 means the destination has the blob), and a stream or a
//! commit that failed anywhere just means the ordinary upload from the store. The commits go
//! alongside the push's other blobs, not before them: a round trip less on every push.
//!
//! When: a single-platform build that pushes, for the layers of the stage the image is made
//! of, and never under a controller that reviews the push (the debugger's push gate: nothing
//! is sent before the user says so).
//!
//! The sessions for a stage's last layers are opened ahead too, while its steps run (here, in
//! the destination, and in the cache repository: `stage/tail.rs`), and so are those a small
//! RUN layer is pushed with when its copy in the cache repository is not committed yet
//! (`registry/push.rs`): see `registry/spare_uploads.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::digest::Digest;
use crate::engine::context::BuildContext;
use crate::image::tap::{BlobTap, CHUNKS};
use crate::registry::{HeldUpload, Presence, Reference, RegistryError};

type Held = tokio::task::JoinHandle<Result<HeldUpload, RegistryError>>;

/// The layers being sent ahead of the push.
#[derive(Default)]
pub(crate) struct EarlyUploads {
    /// Where they go: the first destination, when this build may send layers early.
    dest: Option<Reference>,
    held: Mutex<Vec<Held>>,
    /// Upload sessions being opened ahead for a stage's last layers (`stage/tail.rs`), here or
    /// in the cache repository, and the cancels of those no upload took: waited for at the
    /// end of the build, so that none is left open on a registry.
    sessions: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Whether the destination holds the image's base layers, asked while the steps run, by
    /// digest (`stage/tail.rs`): the push does not ask again.
    present: Mutex<HashMap<Digest, Presence>>,
}

impl EarlyUploads {
    /// Decided once the plan is known (`multi_platform`: an index's push is its own).
    pub fn new(destinations: &[String], no_push: bool, multi_platform: bool) -> EarlyUploads {
        let dest = match destinations.first() {
            Some(d) if !no_push && !multi_platform => Reference::parse(d).ok(),
            _ => None,
        };
        EarlyUploads { dest, held: Mutex::default(), sessions: Mutex::default(), present: Mutex::default() }
    }
}

impl EarlyUploads {
    /// Whether `dest` is the repository layers are sent early to.
    fn sends_to(&self, dest: &Reference) -> bool {
        self.dest.as_ref().is_some_and(|d| d.registry == dest.registry && d.repository == dest.repository)
    }
}

impl BuildContext<'_> {
    /// For a layer of the image being written: starts sending it to the destination. Returns
    /// the tap for the layer writer and where to send the layer's digest once it is whole
    /// (not sending it cancels the upload). `None` when the build sends nothing early.
    /// `spare`: it may take a session opened ahead (one of the stage's last layers).
    pub(crate) fn start_early_upload(&self, spare: bool) -> Option<(BlobTap, tokio::sync::oneshot::Sender<Digest>)> {
        let dest = self.early.dest.clone()?;
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS);
        let (digest_tx, digest_rx) = tokio::sync::oneshot::channel();
        let registry = self.registry.clone();
        let h = self.rt.spawn(async move { registry.upload_held(&dest, rx, digest_rx, spare).await });
        self.early.held.lock().unwrap_or_else(|p| p.into_inner()).push(h);
        Some((BlobTap::new(tx), digest_tx))
    }

    /// Where the image's layers are sent early, if they are (the first destination).
    pub(crate) fn early_dest(&self) -> Option<&Reference> {
        self.early.dest.as_ref()
    }

    /// Opens `n` upload sessions in `repo`'s repository in the background, for the uploads
    /// of a stage's last layers to take (`registry/spare_uploads.rs`).
    pub(crate) fn open_sessions_ahead(&self, repo: &Reference, n: usize) {
        let mut sessions = self.early.sessions.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..n {
            sessions.push(self.rt.spawn(self.registry.open_spare_upload(repo)));
        }
    }

    /// Asks the destination layers are sent early to (`HEAD`, in the background) whether it
    /// holds each blob of `digests` not asked about yet: the image's base layers, which its
    /// push would otherwise ask about before mounting them, one round trip on its way.
    pub(crate) fn ask_ahead(&self, digests: impl IntoIterator<Item = Digest>) {
        let Some(dest) = &self.early.dest else { return };
        let mut present = self.early.present.lock().unwrap_or_else(|p| p.into_inner());
        for d in digests {
            if present.contains_key(&d) {
                continue;
            }
            let (registry, repo, digest) = (self.registry.clone(), dest.clone(), d.clone());
            let asked = self.rt.spawn(async move { registry.blob_exists(&repo, &digest).await.ok() });
            present.insert(d, Presence::new(async move { asked.await.ok().flatten() }));
        }
    }

    /// What [`ask_ahead`](Self::ask_ahead) found of `digest` in `dest`, if it asked `dest`.
    pub(crate) fn presence(&self, dest: &Reference, digest: &Digest) -> Option<Presence> {
        if !self.early.sends_to(dest) {
            return None;
        }
        self.early.present.lock().unwrap_or_else(|p| p.into_inner()).get(digest).cloned()
    }

    /// Cancels, in the background, the upload sessions opened ahead that no upload took
    /// (`only`: in that repository alone); [`settle_sessions`](Self::settle_sessions) waits
    /// for the cancels.
    pub(crate) fn let_go_of_sessions(&self, only: Option<&Reference>) {
        let cancels = {
            let _rt = self.rt.enter();
            self.registry.release_spare_uploads(only)
        };
        self.early.sessions.lock().unwrap_or_else(|p| p.into_inner()).extend(cancels);
    }

    /// Waits for the sessions being opened ahead and for the cancels sent so far.
    pub(crate) fn settle_sessions(&self) {
        let tasks: Vec<_> = std::mem::take(&mut *self.early.sessions.lock().unwrap_or_else(|p| p.into_inner()));
        if !tasks.is_empty() {
            self.rt.block_on(futures_util::future::join_all(tasks));
        }
    }

    /// Before the push to `dest`: waits for the layers sent early to be wholly sent, cancels
    /// those not among `wanted` (a layer a re-run replaced), and returns the others, for the
    /// push to commit ([`crate::registry::Registry::commit_held`]) alongside its other blobs.
    pub(crate) fn take_early_uploads(&self, dest: &Reference, wanted: &HashSet<&Digest>) -> Vec<HeldUpload> {
        let held: Vec<Held> = std::mem::take(&mut *self.early.held.lock().unwrap_or_else(|p| p.into_inner()));
        if held.is_empty() {
            return Vec::new();
        }
        let ours = self.early.sends_to(dest);
        let registry = &self.registry;
        self.rt.block_on(async {
            let each = held.into_iter().map(|h| async move {
                // A stream that failed has cancelled itself.
                let Ok(Ok(up)) = h.await else { return None };
                if ours && wanted.contains(&up.digest) {
                    Some(up)
                } else {
                    registry.cancel_held(&up).await;
                    None
                }
            });
            futures_util::future::join_all(each).await.into_iter().flatten().collect()
        })
    }

    /// The build failed or pushes no more: every upload sent early is cancelled, so none
    /// becomes a blob.
    pub(crate) fn cancel_early_uploads(&self) {
        let held: Vec<Held> = std::mem::take(&mut *self.early.held.lock().unwrap_or_else(|p| p.into_inner()));
        if held.is_empty() {
            return;
        }
        let registry = &self.registry;
        self.rt.block_on(async {
            let each = held.into_iter().map(|h| async move {
                if let Ok(Ok(up)) = h.await {
                    registry.cancel_held(&up).await;
                }
            });
            futures_util::future::join_all(each).await;
        });
    }
}
