//! Upload sessions opened ahead of the uploads that take them.
//!
//! Every upload to a registry starts with a `POST …/blobs/uploads/` that opens a session, one
//! round trip before the first byte can go. For most layers of a build that trip is spent while
//! later steps run; for the layers written last it is on the way to the end of the build: the
//! last layer's session is opened only once the layer is being written, and the push waits for
//! it, as it waits for the cache repository's copy of a RUN layer to be committed before
//! mounting it. On a registry that syncs every write to disk (distribution on ext4: 5–30 ms a
//! request) or sits across a network (tens of milliseconds a round trip), those trips are most
//! of the time between a small build's last step and its end.
//!
//! So sessions are opened ahead, while the steps run, and kept here by repository: the push
//! check's (`push.rs`, `check_push_access`), which the image's config usually takes, and those
//! the engine asks for when a stage starts running steps, for its last layers
//! (`engine/stage/tail.rs`). An upload allowed to take one (the image's config in `upload`, a
//! last layer's streamed or held upload in `stream_upload.rs`, a small layer the push sends
//! itself) takes one when there is one, and opens its own otherwise. A session still being
//! opened is taken as well, and waited for: its `POST` went out before the upload's own
//! could, so it is there sooner (a RUN of a few milliseconds is over before the session opened
//! as it started is). A session left over is cancelled ([`Registry::release_spare_uploads`]);
//! one a registry expired meanwhile is replaced by a fresh one, or, for a streamed upload,
//! ends it, and the push then uploads the layer from the store as usual.

use tokio::sync::oneshot;

use super::client::Registry;
use super::error::Op;
use super::reference::Reference;
use super::session::Ctx;

/// A session opened ahead: open, or its `POST` still on its way (the sender dropped if it
/// failed).
pub(crate) enum Spare {
    Open(reqwest::Url),
    Opening(oneshot::Receiver<reqwest::Url>),
}

impl Spare {
    /// The session's location, once open; `None` if it could not be opened.
    async fn open(self) -> Option<reqwest::Url> {
        match self {
            Spare::Open(loc) => Some(loc),
            Spare::Opening(rx) => rx.await.ok(),
        }
    }
}

impl Registry {
    /// A session opened ahead for `repo`'s repository, if any is left (each once), waited for
    /// if it is still being opened; `None` also when it could not be opened.
    pub(super) async fn take_spare_upload(&self, repo: &Reference) -> Option<reqwest::Url> {
        let spare = {
            let mut all = self.session.spare_uploads.lock().unwrap_or_else(|p| p.into_inner());
            let spares = all.get_mut(&repo.repo_ref())?;
            // The oldest first: the likeliest to be open.
            let (_, spare) = spares.remove(0);
            if spares.is_empty() {
                all.remove(&repo.repo_ref());
            }
            spare
        };
        spare.open().await
    }

    /// Whether a session opened ahead (or being opened) is left for `repo`'s repository.
    pub(super) fn has_spare_upload(&self, repo: &Reference) -> bool {
        let all = self.session.spare_uploads.lock().unwrap_or_else(|p| p.into_inner());
        all.get(&repo.repo_ref()).is_some_and(|v| !v.is_empty())
    }

    fn keep_spare(&self, repo: &Reference, spare: Spare) {
        let mut all = self.session.spare_uploads.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(repo.repo_ref()).or_default().push((repo.clone(), spare));
    }

    /// Keeps `loc`, a session just opened in `repo`'s repository, for an upload that takes a
    /// spare one.
    pub(super) fn keep_spare_open(&self, repo: &Reference, loc: reqwest::Url) {
        self.keep_spare(repo, Spare::Open(loc));
    }

    /// Opens an upload session in `repo`'s repository for the next upload there that takes a
    /// spare one: counted at once (an upload that comes while it opens takes it and waits),
    /// opened by the future returned, which the caller spawns. A failure is only a session
    /// fewer: the upload that took it opens its own.
    pub fn open_spare_upload(&self, repo: &Reference) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        self.keep_spare(repo, Spare::Opening(rx));
        let (me, repo) = (self.clone(), repo.clone());
        async move {
            let ctx = Ctx::push(Op::Push, &repo);
            if let Ok(loc) = me.start_upload(&ctx).await
                && let Err(loc) = tx.send(loc)
            {
                // Taken by nothing and let go of meanwhile: cancelled here.
                me.cancel(&ctx, &loc).await;
            }
        }
    }

    /// Cancels, in the background, the upload sessions opened ahead that no upload took (a
    /// build that failed, or pushed nothing new); `only`: just that repository's (its push
    /// found nothing to upload). One still being opened is cancelled once open. Call from
    /// within the runtime; the caller may wait for the returned tasks or not (a session left
    /// open expires on the registry by itself).
    pub fn release_spare_uploads(&self, only: Option<&Reference>) -> Vec<tokio::task::JoinHandle<()>> {
        let spare: Vec<(Reference, Spare)> = {
            let mut all = self.session.spare_uploads.lock().unwrap_or_else(|p| p.into_inner());
            match only {
                Some(r) => all.remove(&r.repo_ref()).into_iter().flatten().collect(),
                None => all.drain().flat_map(|(_, v)| v).collect(),
            }
        };
        spare
            .into_iter()
            .map(|(r, spare)| {
                let me = self.clone();
                tokio::spawn(async move {
                    if let Some(loc) = spare.open().await {
                        me.cancel(&Ctx::push(Op::CheckPush, &r), &loc).await;
                    }
                })
            })
            .collect()
    }
}
