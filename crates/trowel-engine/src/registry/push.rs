//! Pushing: blobs (existence check, cross-repository mount, monolithic upload streamed from the
//! store), then the manifest, and the early push-permission check.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};

use super::client::{BlobAction, BlobHead, PushBlob, PushImage, PushProgress, PushReport, Registry};
use super::error::{Op, RegistryError};
use super::options::Direction;
use super::reference::Reference;
use super::retry::Backoff;
use super::session::{Ctx, Failure, location, v2_url};
use super::stall::Watch;
use super::stream_upload::HELD_IN_MEMORY;
use crate::digest::Digest;
use crate::image::store::BlobStore;

/// Blobs pushed at the same time. A few streams fill a link without thrashing the registry;
/// most blobs of an image are small or already there (a HEAD, a mount), and a small build's
/// push is a handful of round trips per blob: six at once push a typical image (config, base
/// layers, a few built ones) in one round instead of two (as containers/image does; kaniko's
/// go-containerregistry uses four).
const PARALLEL_BLOBS: usize = 6;
/// Read size when streaming a blob file into an upload.
const UPLOAD_CHUNK: usize = 256 * 1024;
/// How often upload progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Retries of a manifest refused as naming a blob the registry does not know, and the first
/// wait before them (50, 100, 200 ms): see `push_manifest`.
const UNKNOWN_BLOB_RETRIES: u32 = 3;
const UNKNOWN_BLOB_WAIT: Duration = Duration::from_millis(50);
/// Why such a refusal is retried, for the retry's warning.
const BLOB_LINK_RACE: &str =
    "the manifest's blobs were all confirmed there; the registry may still be writing its link to one";

impl Registry {
    /// Pushes an image to `dest`: every blob (a few in parallel) is checked with HEAD and
    /// skipped if present (a layer this build made is mounted first and checked only if the
    /// mount is refused), else mounted from its `mount_from` repository when that is on the
    /// same registry, else uploaded from `store` in one monolithic PUT streamed from the file
    /// (downloaded from `mount_from` into the store first if it is not there).
    /// The manifest goes last, and only if every blob made it. `dest`'s tag (else its digest)
    /// names the manifest.
    pub async fn push_image(
        &self,
        dest: &Reference,
        image: &PushImage,
        store: &BlobStore,
        progress: &(dyn Fn(PushProgress) + Send + Sync),
    ) -> Result<PushReport, RegistryError> {
        let blobs = self.push_blobs(dest, &image.blobs, store, progress).await?;
        let manifest_digest = self.push_manifest(dest, &image.manifest_bytes, &image.manifest_media_type).await?;
        Ok(PushReport { manifest_digest, blobs })
    }

    /// The blob half of [`Registry::push_image`]: every blob of `blobs` into `dest`'s
    /// repository (a few in parallel), no manifest. For a writer that sends its blobs early and
    /// names them later (a layer reference record's config goes up during the image's push,
    /// its tags only after it: see `engine/layer_cache/refs.rs`). Returns each blob, in the
    /// order given, with what happened and its size.
    pub async fn push_blobs(
        &self,
        dest: &Reference,
        blobs: &[PushBlob],
        store: &BlobStore,
        progress: &(dyn Fn(PushProgress) + Send + Sync),
    ) -> Result<Vec<(Digest, BlobAction, u64)>, RegistryError> {
        let mut results: Vec<Option<BlobAction>> = vec![None; blobs.len()];
        {
            // A hand-rolled bounded pool rather than `buffer_unordered`: closures returning
            // borrowing futures there make the whole push future lose `Send`.
            let mut queue = blobs.iter().enumerate();
            let mut running = futures_util::stream::FuturesUnordered::new();
            loop {
                while running.len() < PARALLEL_BLOBS {
                    let Some((i, b)) = queue.next() else { break };
                    running.push(self.push_indexed(i, dest, b, store, progress));
                }
                // Returning on the first failure drops the other uploads in flight.
                match running.next().await {
                    Some((i, r)) => results[i] = Some(r?),
                    None => break,
                }
            }
        }
        Ok(blobs
            .iter()
            .zip(results)
            .map(|(b, a)| (b.descriptor.digest.clone(), a.expect("every blob finished"), b.descriptor.size))
            .collect())
    }

    async fn push_indexed(
        &self,
        i: usize,
        dest: &Reference,
        blob: &PushBlob,
        store: &BlobStore,
        progress: &(dyn Fn(PushProgress) + Send + Sync),
    ) -> (usize, Result<BlobAction, RegistryError>) {
        (i, self.push_blob(dest, blob, store, progress).await)
    }

    async fn push_blob(
        &self,
        dest: &Reference,
        blob: &PushBlob,
        store: &BlobStore,
        progress: &(dyn Fn(PushProgress) + Send + Sync),
    ) -> Result<BlobAction, RegistryError> {
        let desc = &blob.descriptor;
        let ctx = Ctx::push(Op::Push, dest);
        let done = |action| {
            progress(PushProgress::BlobDone { digest: desc.digest.clone(), action });
            Ok(action)
        };
        // A small layer still on its way to the repository it would be mounted from (the last
        // RUN's, streamed to the cache repository) goes up itself in a session opened ahead:
        // one round trip, where waiting for that upload's commit and then mounting took two
        // or three. Its bytes are a few kilobytes; a large layer still waits, not to be sent
        // twice.
        if let Some(a) = &blob.arrival
            && blob.spare
            && a.pending()
            && desc.size <= HELD_IN_MEMORY as u64
            && store.size(&desc.digest).is_ok_and(|n| n == desc.size)
            && self.has_spare_upload(dest)
        {
            // (`upload` takes the session, and opens a fresh one should the registry refuse it.)
            self.upload(&ctx, desc.digest.clone(), desc.size, store, None, true, progress).await?;
            return done(BlobAction::Uploaded);
        }
        // A mount source this build is still uploading the blob to: waited for here, by this
        // blob alone; never reached, it is no source.
        let source = match &blob.arrival {
            Some(a) if !a.wait().await => None,
            _ => blob.mount_from.as_ref(),
        };
        let mountable = source.filter(|src| src.registry == dest.registry && src.repository != dest.repository);
        // A layer this build made is asked about only if its mount is refused (see
        // `PushBlob::built`): on a cold push that saves a round trip per built layer.
        let look_first = !(blob.fresh || blob.built && mountable.is_some());
        if look_first {
            // Asked already during the build (one round trip off the push), else now.
            let there = match &blob.present {
                Some(p) => p.get().await,
                None => None,
            };
            let there = match there {
                Some(t) => t,
                None => self.head_blob(&ctx, &desc.digest).await?,
            };
            if there {
                return done(BlobAction::Existed);
            }
        }
        let mut session = None;
        if let Some(src) = mountable {
            match self.mount(dest, src, &desc.digest).await {
                Ok(Mount::Mounted) => return done(BlobAction::Mounted),
                Ok(Mount::Refused(upload)) => session = upload,
                // The mount is an optimisation: any failure falls back to a plain upload.
                Err(_) => {}
            }
            // A built layer's mount refused: now the question, before its bytes go up again.
            if blob.built && self.head_blob(&ctx, &desc.digest).await? {
                if let Some(loc) = session.take() {
                    self.cancel(&ctx, &loc).await;
                }
                return done(BlobAction::Existed);
            }
        }
        // Only now is the blob needed locally: a base layer the destination already has (or
        // could mount) is never downloaded.
        if !store.contains(&desc.digest)
            && let Some(src) = source
        {
            self.fetch_blob(src, desc, store, &|_, _| {}).await?;
        }
        let local = store.size(&desc.digest).map_err(|source| RegistryError::Store {
            op: Op::Push,
            reference: dest.to_string(),
            source,
        })?;
        if local != desc.size {
            return Err(
                ctx.error(format!("local blob {} is {local} bytes but its descriptor says {}", desc.digest, desc.size))
            );
        }
        self.upload(&ctx, desc.digest.clone(), desc.size, store, session, blob.spare, progress).await?;
        done(BlobAction::Uploaded)
    }

    /// True if the registry has the blob in `dest`'s repository (HEAD; uses the push-side flags).
    pub async fn blob_exists(&self, repo: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        self.head_blob(&Ctx::pull(Op::Push, repo, Direction::Push), digest).await
    }

    /// Whether the registry has the blob in `repo`'s repository, and the size it gives for it
    /// (HEAD; uses the push-side flags). For a descriptor read from elsewhere (a cache
    /// reference record), whose size must be checked against the blob it names.
    pub async fn blob_head(&self, repo: &Reference, digest: &Digest) -> Result<BlobHead, RegistryError> {
        self.head(&Ctx::pull(Op::Push, repo, Direction::Push), digest).await
    }

    async fn head_blob(&self, ctx: &Ctx<'_>, digest: &Digest) -> Result<bool, RegistryError> {
        Ok(matches!(self.head(ctx, digest).await?, BlobHead::Present { .. }))
    }

    async fn head(&self, ctx: &Ctx<'_>, digest: &Digest) -> Result<BlobHead, RegistryError> {
        let path = format!("blobs/{digest}");
        let resp = self.session.send(ctx, true, &|ep| Ok(ep.client.head(v2_url(ep, ctx.reference, &path)))).await?;
        if !resp.status().is_success() {
            return Ok(BlobHead::Missing);
        }
        // The header itself: a response to HEAD has no body whose length reqwest could give.
        let size = resp.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        Ok(BlobHead::Present { size })
    }

    /// Asks the registry to mount `digest` from `src` into `dest`. The token covers both
    /// repositories, which a token registry needs to allow it.
    async fn mount(&self, dest: &Reference, src: &Reference, digest: &Digest) -> Result<Mount, RegistryError> {
        let mut ctx = Ctx::push(Op::Push, dest);
        ctx.scopes.push(format!("repository:{}:pull", src.repository));
        let query = format!("blobs/uploads/?mount={digest}&from={}", src.repository);
        let resp = self
            .session
            .send(&ctx, false, &|ep| Ok(ep.client.post(v2_url(ep, ctx.reference, &query)).header(CONTENT_LENGTH, "0")))
            .await?;
        match resp.status().as_u16() {
            201 => Ok(Mount::Mounted),
            // Not mounted (e.g. the source is not readable), but an upload session was opened.
            202 => Ok(Mount::Refused(location(&resp))),
            s => Err(ctx.error(format!("unexpected status {s} to a mount request"))),
        }
    }

    /// Opens an upload session (`POST …/blobs/uploads/`) and returns its location.
    pub(super) async fn start_upload(&self, ctx: &Ctx<'_>) -> Result<reqwest::Url, RegistryError> {
        let resp = self
            .session
            .send(ctx, false, &|ep| {
                Ok(ep.client.post(v2_url(ep, ctx.reference, "blobs/uploads/")).header(CONTENT_LENGTH, "0"))
            })
            .await?;
        if resp.status().as_u16() != 202 {
            return Err(ctx.error(format!("starting an upload: expected 202, got {}", resp.status().as_u16())));
        }
        location(&resp).ok_or_else(|| ctx.error("the registry opened an upload without a Location"))
    }

    /// Uploads a blob from the store in one PUT streamed from the file. A failure restarts
    /// from a fresh session and the first byte (a half-written session cannot be trusted).
    /// Without a session of its own, the upload takes one opened ahead for this repository
    /// (`spare_uploads.rs`) when `spare` says it may and one is left; if the registry refuses
    /// that one (a registry may expire an idle session during a long build), a fresh one is
    /// opened at once, without counting a retry.
    #[allow(clippy::too_many_arguments)]
    async fn upload(
        &self,
        ctx: &Ctx<'_>,
        digest: Digest,
        size: u64,
        store: &BlobStore,
        mut session: Option<reqwest::Url>,
        spare: bool,
        progress: &(dyn Fn(PushProgress) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let mut spare = if session.is_none() && spare { self.take_spare_upload(ctx.reference).await } else { None };
        let mut backoff = self.session.backoff(ctx.dir);
        loop {
            let (loc, from_spare) = match (session.take(), spare.take()) {
                (Some(l), _) => (l, false),
                (None, Some(l)) => (l, true),
                (None, None) => (self.start_upload(ctx).await?, false),
            };
            match self.put_blob(ctx, loc.clone(), &digest, size, store, progress).await {
                Ok(()) => return Ok(()),
                // The registry refused the session itself (expired, unknown): a fresh one.
                // Anything else (a stall, a dropped connection, a 5xx) is the transfer's and
                // is retried and reported as any upload's.
                Err(f) if from_spare && !f.retryable && f.err.status().is_some_and(|s| (400..500).contains(&s)) => {
                    self.cancel(ctx, &loc).await;
                    continue;
                }
                Err(f) if f.retryable && backoff.retry(f.retry_after, &f.err).await => continue,
                Err(f) => return Err(f.finish(&backoff)),
            }
        }
    }

    /// One PUT of the whole blob. The attempt stalls when the registry takes no chunk of it
    /// (or, after the last, gives no answer) for the stall timeout.
    async fn put_blob(
        &self,
        ctx: &Ctx<'_>,
        mut url: reqwest::Url,
        digest: &Digest,
        size: u64,
        store: &BlobStore,
        progress: &(dyn Fn(PushProgress) + Send + Sync),
    ) -> Result<(), Failure> {
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let sent = Arc::new(AtomicU64::new(0));
        let watch = Watch::new(self.session.opts.stall_timeout);
        let build = |ep: &super::transport::Endpoint| {
            let file = store.open_blob(digest).map_err(|source| RegistryError::Store {
                op: ctx.op,
                reference: ctx.reference.to_string(),
                source,
            })?;
            sent.store(0, Ordering::Relaxed);
            Ok(ep
                .client
                .put(url.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, size.to_string())
                .body(reqwest::Body::wrap_stream(
                    watch.body(file_stream(tokio::fs::File::from_std(file), sent.clone()), size),
                )))
        };
        let request = self.session.send_watched(ctx, false, &build, &watch);
        tokio::pin!(request);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        let resp = loop {
            tokio::select! {
                r = &mut request => break r.map_err(|mut f| {
                    if let Some(s) = f.stalled {
                        f.err = ctx.transport(format!("uploading blob {digest}: {s}"));
                    }
                    f
                })?,
                _ = tick.tick() => progress(PushProgress::Blob {
                    digest: digest.clone(),
                    sent: sent.load(Ordering::Relaxed).min(size),
                    total: size,
                }),
            }
        };
        progress(PushProgress::Blob { digest: digest.clone(), sent: size, total: size });
        if let Some(d) = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok())
            && d != digest.as_str()
        {
            return Err(Failure::fatal(ctx.error(format!("uploaded blob {digest}, but the registry stored {d}"))));
        }
        Ok(())
    }

    /// Uploads a manifest under `dest`'s tag (else its digest) and returns the manifest digest.
    pub async fn push_manifest(
        &self,
        dest: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let ctx = Ctx::push(Op::Push, dest);
        let digest = Digest::of(bytes);
        if let Some(d) = &dest.digest
            && d != &digest
        {
            return Err(ctx.error(format!("manifest hashes to {digest}, not to the destination's digest {d}")));
        }
        let target = dest.tag.clone().unwrap_or_else(|| digest.to_string());
        let body = Bytes::copy_from_slice(bytes);
        let path = format!("manifests/{target}");
        let build = |ep: &super::transport::Endpoint| {
            Ok(ep.client.put(v2_url(ep, ctx.reference, &path)).header(CONTENT_TYPE, media_type).body(body.clone()))
        };
        let mut backoff = self.session.backoff(ctx.dir);
        let mut unknown_blob = Backoff::new(UNKNOWN_BLOB_RETRIES)
            .starting_at(UNKNOWN_BLOB_WAIT)
            .reporting(self.session.notice.get().cloned());
        let resp = loop {
            match self.session.send_once(&ctx, false, &build).await {
                Ok(r) => break r,
                Err(f) if f.retryable && backoff.retry(f.retry_after, &f.err).await => continue,
                // Every caller sends a manifest only after its blobs were confirmed in the
                // repository (uploaded, mounted, or found by HEAD). distribution before 3.1
                // (Debian's docker-registry is 2.8) rewrites a repository's link to a blob in
                // place, truncating it first, each time the blob is committed there
                // (distribution #2077; the filesystem driver's fix is #4624, for #4478): a
                // manifest checked while another push commits the same blob can read the link
                // empty and be refused as naming an unknown blob (`DIGEST_INVALID` with
                // `MANIFEST_BLOB_UNKNOWN`, seen in CI with concurrent builds sharing a cache
                // repository), the blob there all along. A few quick retries find the link
                // written; a blob really missing fails after them with the registry's words.
                // Counted apart from `--push-retry`: this waits for the registry's own write,
                // not for a network to heal.
                Err(f)
                    if f.err.status() == Some(400)
                        && f.err.codes().iter().any(|c| c == "MANIFEST_BLOB_UNKNOWN" || c == "BLOB_UNKNOWN")
                        && unknown_blob.retry(None, &format!("{}: {BLOB_LINK_RACE}", f.err)).await =>
                {
                    continue;
                }
                Err(f) => return Err(f.finish(&backoff)),
            }
        };
        if let Some(d) = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok())
            && d != digest.as_str()
        {
            return Err(ctx.error(format!("pushed manifest {digest}, but the registry says it stored {d}")));
        }
        Ok(digest)
    }

    /// Fails early when `dest` cannot be pushed to, as kaniko's `CheckPushPermissions` does:
    /// opens a blob upload (which needs push rights). kaniko cancels it; here it is kept for
    /// an upload that takes a session opened ahead (usually the image's config:
    /// `spare_uploads.rs`), which then needs no `POST` of its own, and the registry deletes no
    /// session in the middle of the build. [`Registry::release_spare_uploads`] cancels one no
    /// upload took.
    pub async fn check_push_access(&self, dest: &Reference) -> Result<(), RegistryError> {
        let ctx = Ctx::push(Op::CheckPush, dest);
        let loc = self.start_upload(&ctx).await?;
        self.keep_spare_open(dest, loc);
        Ok(())
    }

    /// Cancels an upload session. A courtesy: an upload left open expires on the registry by
    /// itself, so failures are ignored.
    pub(super) async fn cancel(&self, ctx: &Ctx<'_>, loc: &reqwest::Url) {
        let _ = self.session.send_once(ctx, true, &|ep| Ok(ep.client.delete(loc.clone()))).await;
    }
}

enum Mount {
    Mounted,
    /// Refused; carries the upload session the registry opened instead, if any.
    Refused(Option<reqwest::Url>),
}

/// A file as a stream of chunks, counting the bytes read into `sent`.
fn file_stream(
    file: tokio::fs::File,
    sent: Arc<AtomicU64>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(Some(file), move |state| {
        let sent = sent.clone();
        async move {
            use tokio::io::AsyncReadExt as _;
            let mut file = state?;
            let mut buf = bytes::BytesMut::with_capacity(UPLOAD_CHUNK);
            match file.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                    Some((Ok(buf.freeze()), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}
