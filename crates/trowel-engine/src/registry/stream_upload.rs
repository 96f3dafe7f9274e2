//! Uploading a blob while it is still being written.
//!
//! A layer used to be written (tar, compressed, hashed into the store) and only then uploaded:
//! for a big layer the two phases took about as long as each other, one after the other. Here
//! the compressed bytes are sent as they are produced, in one chunked `PATCH`, and the upload is
//! committed (`PUT ?digest=`) once the writer knows the digest. The registry checks that digest
//! against what it received, so a stream that went wrong can never be stored under it.
//!
//! A *held* upload stops before that commit ([`Registry::upload_held`]): the registry has the
//! bytes in an upload session but no blob, until [`Registry::commit_held`] (the image's own
//! layers sent to the destination during the build, committed by its push) or
//! [`Registry::cancel_held`] (a build that failed). A layer of at most [`HELD_IN_MEMORY`]
//! bytes is not sent ahead at all: its session is opened, its bytes kept here and carried by
//! the commit, a `PATCH` fewer for each (most layers of a build are a few hundred bytes).
//!
//! This is an optimisation only: whoever uploads the blob afterwards first asks whether the
//! registry has it (`HEAD`), and uploads it from the store the ordinary way (with retries) when
//! the streamed attempt did not make it. So a streamed upload is never retried, and any
//! failure just ends it.

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};

use super::client::Registry;
use super::error::{Op, RegistryError};
use super::reference::Reference;
use super::session::{Ctx, location};
use super::stall::Watch;
use crate::digest::Digest;

/// A streamed upload whose every byte the registry has, not yet committed: until
/// [`Registry::commit_held`] sends its `PUT ?digest=`, no blob exists in the repository (the
/// registry keeps an upload session, which [`Registry::cancel_held`] deletes).
#[derive(Debug)]
pub struct HeldUpload {
    repo: Reference,
    url: reqwest::Url,
    /// What the bytes hash to, as their writer said.
    pub digest: Digest,
    /// Bytes the registry does not have yet, which the commit carries: a small layer's whole
    /// content, else none.
    last: Bytes,
}

/// The largest layer a held upload keeps in memory until its commit rather than sending it
/// ahead: a build may hold many such layers until its push, and at this size a hundred of them
/// stay far below the memory budget, while sending them ahead would save no time.
pub const HELD_IN_MEMORY: usize = 64 * 1024;

/// How a layer's bytes begin, once its first chunks are in.
enum Start {
    /// Its writer was done within the first chunk (or wrote nothing): all of it.
    Whole(Bytes),
    /// More than a chunk: every chunk, in order.
    Stream(tokio::sync::mpsc::Receiver<Bytes>),
}

impl HeldUpload {
    /// The repository the bytes went to.
    pub fn repo(&self) -> &Reference {
        &self.repo
    }
}

impl Registry {
    /// Uploads to `repo` the bytes arriving on `chunks` (until its senders are dropped), then
    /// commits them under the digest arriving on `digest`. A writer that fails drops `digest`
    /// without sending, and the session is cancelled.
    ///
    /// A layer whose writer is done within its first chunk (a RUN that wrote a few files: most
    /// layers of a build) goes up in the commit itself, `POST` then one `PUT` with the bytes,
    /// not `POST`, `PATCH`, `PUT`: a request fewer on the registry for each such layer.
    ///
    /// `spare`: the upload may take a session opened ahead for `repo` (`spare_uploads.rs`),
    /// as one of the last layers of a stage does.
    pub async fn upload_streamed(
        &self,
        repo: &Reference,
        chunks: tokio::sync::mpsc::Receiver<Bytes>,
        digest: tokio::sync::oneshot::Receiver<Digest>,
        spare: bool,
    ) -> Result<Digest, RegistryError> {
        let ctx = Ctx::push(Op::Push, repo);
        let held = match self.open_while_written(&ctx, chunks, spare).await? {
            (loc, Start::Whole(bytes)) => {
                let digest = self.digest_or_cancel(&ctx, &loc, digest).await?;
                return self.commit_at(&ctx, &loc, &digest, bytes).await.map(|()| digest);
            }
            // More to come: every chunk in one `PATCH`.
            (loc, Start::Stream(rest)) => self.held_at(&ctx, repo, loc, rest, digest).await?,
        };
        self.commit_held(&held).await?;
        Ok(held.digest)
    }

    /// As [`Registry::upload_streamed`], but stops before the commit: the bytes wait at the
    /// registry, invisible, until [`Registry::commit_held`] (or [`Registry::cancel_held`]).
    /// A layer done within [`HELD_IN_MEMORY`] bytes waits here instead, its session open, and
    /// goes up in the commit. `spare` as there.
    pub async fn upload_held(
        &self,
        repo: &Reference,
        chunks: tokio::sync::mpsc::Receiver<Bytes>,
        digest: tokio::sync::oneshot::Receiver<Digest>,
        spare: bool,
    ) -> Result<HeldUpload, RegistryError> {
        let ctx = Ctx::push(Op::Push, repo);
        let (loc, rest) = match self.open_while_written(&ctx, chunks, spare).await? {
            (loc, Start::Whole(bytes)) if bytes.len() <= HELD_IN_MEMORY => {
                let digest = self.digest_or_cancel(&ctx, &loc, digest).await?;
                // A copy: the tap's chunk keeps the capacity of a whole chunk.
                let last = Bytes::copy_from_slice(&bytes);
                return Ok(HeldUpload { repo: repo.clone(), url: loc, digest, last });
            }
            (loc, Start::Whole(bytes)) => {
                let (tx, rest) = tokio::sync::mpsc::channel(1);
                tx.try_send(bytes).expect("a fresh channel has room for one");
                (loc, rest)
            }
            (loc, Start::Stream(rest)) => (loc, rest),
        };
        self.held_at(&ctx, repo, loc, rest, digest).await
    }

    /// Opens an upload session in `ctx`'s repository while the layer's first chunks arrive on
    /// `chunks`, so a long layer's bytes can go as they come and a short one's with the
    /// commit. The POST also settles the endpoint and the credentials, so the `PATCH` that may
    /// follow (whose body can be sent only once) normally goes through on its first try; a
    /// session opened ahead (`spare`) has settled them already and needs no POST at all.
    async fn open_while_written(
        &self,
        ctx: &Ctx<'_>,
        mut chunks: tokio::sync::mpsc::Receiver<Bytes>,
        spare: bool,
    ) -> Result<(reqwest::Url, Start), RegistryError> {
        let first_two = async {
            let first = chunks.recv().await;
            let second = if first.is_some() { chunks.recv().await } else { None };
            (first, second)
        };
        let open = async {
            match if spare { self.take_spare_upload(ctx.reference).await } else { None } {
                Some(loc) => Ok(loc),
                None => self.start_upload(ctx).await,
            }
        };
        let (loc, (first, second)) = tokio::join!(open, first_two);
        let loc = loc?;
        let start = match (first, second) {
            (first, None) => Start::Whole(first.unwrap_or_default()),
            (first, second) => {
                // The two chunks in hand, then the rest, on a channel of their own.
                let (tx, rest) = tokio::sync::mpsc::channel(crate::image::tap::CHUNKS);
                tokio::spawn(async move {
                    for c in first.into_iter().chain(second) {
                        if tx.send(c).await.is_err() {
                            return;
                        }
                    }
                    while let Some(c) = chunks.recv().await {
                        if tx.send(c).await.is_err() {
                            return;
                        }
                    }
                });
                Start::Stream(rest)
            }
        };
        Ok((loc, start))
    }

    /// The layer's digest once its writer is done; a writer that failed (the sender dropped)
    /// cancels the session `loc`.
    async fn digest_or_cancel(
        &self,
        ctx: &Ctx<'_>,
        loc: &reqwest::Url,
        digest: tokio::sync::oneshot::Receiver<Digest>,
    ) -> Result<Digest, RegistryError> {
        match digest.await {
            Ok(d) => Ok(d),
            Err(_) => {
                self.cancel(ctx, loc).await;
                Err(ctx.error("the layer was not written; upload cancelled"))
            }
        }
    }

    /// Sends `chunks` to the upload session `loc` in one `PATCH`, then waits for the digest.
    async fn held_at(
        &self,
        ctx: &Ctx<'_>,
        repo: &Reference,
        loc: reqwest::Url,
        chunks: tokio::sync::mpsc::Receiver<Bytes>,
        digest: tokio::sync::oneshot::Receiver<Digest>,
    ) -> Result<HeldUpload, RegistryError> {
        // The time the layer's writer takes to produce the next bytes is not the registry's
        // stall: only bytes ready and not taken (or no answer after the last) count.
        let watch = Watch::new(self.session.opts.stall_timeout);
        let body = std::sync::Mutex::new(Some(reqwest::Body::wrap_stream(watch.produced_body(chunks))));
        let patch = self
            .session
            .send_watched(
                ctx,
                false,
                &|ep| {
                    let body =
                        body.lock().unwrap().take().ok_or_else(|| ctx.error("a streamed upload cannot be resent"))?;
                    Ok(ep.client.patch(loc.clone()).header(CONTENT_TYPE, "application/octet-stream").body(body))
                },
                &watch,
            )
            .await;
        let resp = match patch {
            Ok(r) => r,
            Err(f) => {
                self.cancel(ctx, &loc).await;
                return Err(f.err);
            }
        };
        let next = location(&resp).unwrap_or(loc);
        let digest = self.digest_or_cancel(ctx, &next, digest).await?;
        Ok(HeldUpload { repo: repo.clone(), url: next, digest, last: Bytes::new() })
    }

    /// Commits a held upload under its digest (the registry checks the bytes against it), with
    /// the bytes it kept; a commit that fails cancels the session.
    pub async fn commit_held(&self, held: &HeldUpload) -> Result<(), RegistryError> {
        self.commit_at(&Ctx::push(Op::Push, &held.repo), &held.url, &held.digest, held.last.clone()).await
    }

    /// `PUT ?digest=` on the session `loc`, with `body` as the upload's last bytes (none for a
    /// held upload, whose bytes the registry has); a commit that fails cancels the session.
    async fn commit_at(
        &self,
        ctx: &Ctx<'_>,
        loc: &reqwest::Url,
        digest: &Digest,
        body: Bytes,
    ) -> Result<(), RegistryError> {
        let mut url = loc.clone();
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let put = self
            .session
            .send_once(ctx, false, &|ep| {
                let req = ep.client.put(url.clone()).header(CONTENT_LENGTH, body.len());
                Ok(if body.is_empty() {
                    req
                } else {
                    req.header(CONTENT_TYPE, "application/octet-stream").body(body.clone())
                })
            })
            .await;
        match put {
            Ok(r) if r.status().as_u16() == 201 => Ok(()),
            Ok(r) => {
                self.cancel(ctx, loc).await;
                Err(ctx.error(format!("committing a streamed upload: expected 201, got {}", r.status().as_u16())))
            }
            Err(f) => {
                self.cancel(ctx, loc).await;
                Err(f.err)
            }
        }
    }

    /// Deletes a held upload's session: its bytes never become a blob.
    pub async fn cancel_held(&self, held: &HeldUpload) {
        self.cancel(&Ctx::push(Op::Push, &held.repo), &held.url).await;
    }
}
