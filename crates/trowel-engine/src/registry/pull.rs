//! Pulling: manifests (index → platform manifest), configs, and blobs streamed into the store.

use std::path::{Path, PathBuf};

use reqwest::header::{ACCEPT, CONTENT_RANGE, CONTENT_TYPE, RANGE};

use super::client::{Registry, ResolvedImage};
use super::error::{Op, RegistryError};
use super::options::Direction;
use super::reference::Reference;
use super::session::{Ctx, Failure, v2_url};
use super::stall::next_chunk;
use super::transport::{LimitedRead, describe, is_retryable, read_limited};
use crate::digest::Digest;
use crate::image::manifest::{Descriptor, Index, Manifest, Platform, is_index, media};
use crate::image::store::{BlobStore, BlobWriter, StoreError};

/// Manifests are small; containerd refuses more than 4 MiB too.
const MAX_MANIFEST: usize = 4 << 20;
/// Image configs are small JSON documents; a huge one is an attack, not an image.
const MAX_CONFIG: u64 = 32 << 20;
/// Downloaded bytes are handed to the blocking writer in batches of this size.
const WRITE_BATCH: usize = 1 << 20;

const SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// Told of an image's platform manifest before its config is fetched
/// ([`Registry::resolve_seeing`]).
pub type ManifestSeen<'a> = Option<Box<dyn FnOnce(&Manifest) + Send + 'a>>;

impl Registry {
    /// Resolves an image for `platform`: the manifest named by `r` (choosing from an index by
    /// os, architecture and variant), then its config. Layers are listed, not downloaded.
    /// Docker Hub images are tried on each `--registry-mirror` first.
    pub async fn resolve(&self, r: &Reference, platform: &Platform) -> Result<ResolvedImage, RegistryError> {
        self.resolve_noting(r, platform, &mut Vec::new()).await
    }

    /// [`Registry::resolve`], adding to `mirror_failures` the error of each mirror that could
    /// not serve `r` before the source that did (or before the last failure): a build's log
    /// says which mirrors were passed over and why, as kaniko's does.
    pub async fn resolve_noting(
        &self,
        r: &Reference,
        platform: &Platform,
        mirror_failures: &mut Vec<String>,
    ) -> Result<ResolvedImage, RegistryError> {
        self.resolve_seeing(r, platform, mirror_failures, None).await
    }

    /// [`Registry::resolve_noting`], telling `seen` of the platform's manifest as soon as it is
    /// read, before the config is fetched: a caller that needs only the layers' digests (the
    /// downloads begun ahead) starts on them a round trip earlier. Told once, of the first
    /// manifest read (a mirror's that then failed included: what it starts is only fetched).
    pub async fn resolve_seeing(
        &self,
        r: &Reference,
        platform: &Platform,
        mirror_failures: &mut Vec<String>,
        mut seen: ManifestSeen<'_>,
    ) -> Result<ResolvedImage, RegistryError> {
        let mut failed = Vec::new();
        for cand in self.pull_candidates(r) {
            match self.resolve_from(&cand, platform, &mut seen).await {
                Ok(mut img) => {
                    img.reference = r.clone();
                    mirror_failures.extend(failed.iter().map(ToString::to_string));
                    return Ok(img);
                }
                // A mirror that fails (down, or without the image) just means the next source.
                Err(e) => failed.push(e),
            }
        }
        // When the default registry was tried last its error is the result, and the mirrors'
        // are noted; without it (`--skip-default-registry-fallback`) the error names them all.
        let mirrors = self.session.opts.mirrors_for(&r.registry).len();
        if failed.len() > mirrors {
            mirror_failures.extend(failed[..mirrors].iter().map(ToString::to_string));
        }
        Err(self.no_candidate(Op::Pull, r, failed))
    }

    async fn resolve_from(
        &self,
        r: &Reference,
        platform: &Platform,
        seen: &mut ManifestSeen<'_>,
    ) -> Result<ResolvedImage, RegistryError> {
        let ctx = Ctx::pull(Op::Pull, r, Direction::Pull);
        let (bytes, media_type, digest) = self
            .get_manifest(&ctx, &r.manifest_ref(), r.digest.as_ref())
            .await?
            .expect("404 is an error when not accepted");
        let (bytes, media_type, digest, index_digest) = if is_index(&media_type) {
            let index: Index =
                serde_json::from_slice(&bytes).map_err(|e| ctx.error(format!("invalid image index {digest}: {e}")))?;
            let desc = index.select(platform).ok_or_else(|| {
                let have: Vec<String> =
                    index.manifests.iter().filter_map(|d| d.platform.as_ref().map(|p| p.to_string())).collect();
                ctx.error(format!("no manifest for platform {platform} in the index (it has: {})", have.join(", ")))
            })?;
            let (child, child_type, child_digest) = self
                .get_manifest(&ctx, desc.digest.as_str(), Some(&desc.digest))
                .await?
                .expect("404 is an error when not accepted");
            if child.len() as u64 != desc.size {
                return Err(ctx.error(format!(
                    "manifest {} is {} bytes, the index says {}",
                    desc.digest,
                    child.len(),
                    desc.size
                )));
            }
            if is_index(&child_type) {
                return Err(ctx.error(format!("index entry {} for {platform} is itself an index", desc.digest)));
            }
            (child, child_type, child_digest, Some(digest))
        } else {
            (bytes, media_type, digest, None)
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| ctx.error(format!("invalid manifest {digest}: {e}")))?;
        if manifest.schema_version != 2 {
            return Err(
                ctx.error(format!("manifest {digest} has unsupported schemaVersion {}", manifest.schema_version))
            );
        }
        if let Some(seen) = seen.take() {
            seen(&manifest);
        }
        let config_bytes = self.get_small_blob(&ctx, &manifest.config).await?;
        Ok(ResolvedImage {
            reference: r.clone(),
            config_digest: manifest.config.digest.clone(),
            manifest,
            manifest_bytes: bytes,
            manifest_digest: digest,
            media_type,
            config_bytes,
            index_digest,
        })
    }

    /// Fetches a manifest as raw bytes with its media type and digest; `None` if the registry
    /// does not have it (404). Uses the push-side flags: it serves cache and destination lookups.
    pub async fn fetch_manifest(&self, r: &Reference) -> Result<Option<(Vec<u8>, String, Digest)>, RegistryError> {
        let ctx = Ctx::pull(Op::Pull, r, Direction::Push);
        self.get_manifest_opt(&ctx, &r.manifest_ref(), r.digest.as_ref(), true).await
    }

    /// The digest `r` (a tag or a digest) names on its registry, from a `HEAD` of the manifest;
    /// `None` when it names nothing or the registry does not say.
    pub async fn manifest_digest(&self, r: &Reference) -> Result<Option<Digest>, RegistryError> {
        let ctx = Ctx::pull(Op::Pull, r, Direction::Push);
        let accept = media::ACCEPT_MANIFESTS.join(", ");
        let path = format!("manifests/{}", r.manifest_ref());
        let resp = self
            .session
            .send(&ctx, true, &|ep| Ok(ep.client.head(v2_url(ep, ctx.reference, &path)).header(ACCEPT, &accept)))
            .await?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        Ok(resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok()))
    }

    async fn get_manifest(
        &self,
        ctx: &Ctx<'_>,
        reference: &str,
        expect: Option<&Digest>,
    ) -> Result<Option<(Vec<u8>, String, Digest)>, RegistryError> {
        self.get_manifest_opt(ctx, reference, expect, false).await
    }

    async fn get_manifest_opt(
        &self,
        ctx: &Ctx<'_>,
        reference: &str,
        expect: Option<&Digest>,
        accept_404: bool,
    ) -> Result<Option<(Vec<u8>, String, Digest)>, RegistryError> {
        let accept = media::ACCEPT_MANIFESTS.join(", ");
        let build =
            |ep: &_| Ok(self.client_get(ep, ctx.reference, &format!("manifests/{reference}")).header(ACCEPT, &accept));
        let mut backoff = self.session.backoff(ctx.dir);
        let mut unlike_its_digest: Option<Vec<u8>> = None;
        let (body, header_type) = loop {
            let resp = self.session.send(ctx, accept_404, &build).await?;
            if resp.status().as_u16() == 404 {
                return Ok(None);
            }
            let header_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or("").trim().to_string());
            let claimed = resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.starts_with("sha256:"))
                .and_then(|v| v.parse::<Digest>().ok());
            match read_limited(resp, MAX_MANIFEST, self.session.opts.stall_timeout).await {
                // A manifest asked for by tag has no digest to check but the one the registry
                // says it sent: one that differs was damaged on the way (a cache entry's config
                // rides in its manifest, so this is all that checks it), and is asked for again.
                // The same bytes twice are what the registry holds, whatever its header says.
                Ok(b)
                    if expect.is_none()
                        && claimed.as_ref().is_some_and(|c| *c != Digest::of(&b))
                        && unlike_its_digest.as_deref() != Some(&b[..]) =>
                {
                    let why = format!(
                        "manifest {reference}: the body is not the {} the registry says it sent",
                        claimed.expect("checked")
                    );
                    if backoff.retry(None, &ctx.transport(why.clone())).await {
                        unlike_its_digest = Some(b);
                        continue;
                    }
                    return Err(ctx.transport(format!("{why}{}", backoff.after())));
                }
                Ok(b) => break (b, header_type),
                Err(LimitedRead::TooLarge) => {
                    return Err(ctx.error(format!("manifest {reference} is larger than {MAX_MANIFEST} bytes")));
                }
                Err(LimitedRead::Stalled(s))
                    if backoff.retry(None, &ctx.transport(format!("reading manifest {reference}: {s}"))).await =>
                {
                    continue;
                }
                Err(LimitedRead::Stalled(s)) => {
                    return Err(ctx.transport(format!("reading manifest {reference}: {s}{}", backoff.after())));
                }
                Err(LimitedRead::Failed(e))
                    if is_retryable(&e)
                        && backoff.retry(None, &ctx.error(format!("reading manifest: {}", describe(&e)))).await =>
                {
                    continue;
                }
                Err(LimitedRead::Failed(e)) => return Err(ctx.error(format!("reading manifest: {}", describe(&e)))),
            }
        };
        let digest = Digest::of(&body);
        if let Some(want) = expect
            && want != &digest
        {
            return Err(ctx.error(format!("manifest digest mismatch: asked for {want}, got {digest}")));
        }
        let media_type = manifest_media_type(&body, header_type.as_deref())
            .map_err(|e| ctx.error(format!("manifest {reference}: {e}")))?;
        Ok(Some((body, media_type, digest)))
    }

    pub(crate) fn client_get(
        &self,
        ep: &super::transport::Endpoint,
        r: &Reference,
        rest: &str,
    ) -> reqwest::RequestBuilder {
        ep.client.get(v2_url(ep, r, rest))
    }

    /// Downloads a small blob (a config) into memory, verified against its descriptor.
    async fn get_small_blob(&self, ctx: &Ctx<'_>, desc: &Descriptor) -> Result<Vec<u8>, RegistryError> {
        if desc.size > MAX_CONFIG {
            return Err(ctx.error(format!("config {} is {} bytes, more than trowel accepts", desc.digest, desc.size)));
        }
        let path = format!("blobs/{}", desc.digest);
        let mut backoff = self.session.backoff(ctx.dir);
        loop {
            let resp = self.session.send(ctx, false, &|ep| Ok(self.client_get(ep, ctx.reference, &path))).await?;
            let failure = match read_limited(resp, desc.size as usize, self.session.opts.stall_timeout).await {
                Ok(b) if b.len() as u64 == desc.size && Digest::of(&b) == desc.digest => return Ok(b),
                Ok(b) => Failure::transient(ctx.error(format!(
                    "blob {} failed verification ({} bytes, digest {})",
                    desc.digest,
                    b.len(),
                    Digest::of(&b)
                ))),
                Err(LimitedRead::TooLarge) => {
                    Failure::transient(ctx.error(format!("blob {} is larger than its descriptor says", desc.digest)))
                }
                Err(LimitedRead::Failed(e)) => Failure::transport(
                    ctx.error(format!("reading blob {}: {}", desc.digest, describe(&e))),
                    is_retryable(&e),
                ),
                Err(LimitedRead::Stalled(s)) => {
                    Failure::stalled(ctx.transport(format!("reading blob {}: {s}", desc.digest)), s)
                }
            };
            if !(failure.retryable && backoff.retry(None, &failure.err).await) {
                return Err(failure.finish(&backoff));
            }
        }
    }

    /// Downloads a blob into `store` unless it is already there (and still hashes to its name).
    /// The body streams to disk; the digest and size are checked before the blob is stored. An
    /// interrupted download resumes with a `Range` request when the registry supports it, and
    /// a blob that fails verification is discarded and fetched again, up to the retry count.
    /// `progress(done, total)` is called as bytes arrive.
    pub async fn fetch_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        store: &BlobStore,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let store_err = |source| RegistryError::Store { op: Op::Pull, reference: repo.to_string(), source };
        if store.contains(&desc.digest) {
            let (s, d, size) = (store.clone(), desc.digest.clone(), desc.size);
            // Re-hashing reads the whole blob: keep it off the async workers.
            let ok = tokio::task::spawn_blocking(move || -> Result<bool, StoreError> {
                if s.size(&d)? != size {
                    let _ = std::fs::remove_file(s.path(&d));
                    return Ok(false);
                }
                s.verify(&d)
            })
            .await
            .expect("verify task")
            .map_err(store_err)?;
            if ok {
                progress(desc.size, desc.size);
                return Ok(());
            }
        }
        let mut failed = Vec::new();
        for cand in self.pull_candidates(repo) {
            match self.download(&cand, desc, store, progress).await {
                Ok(()) => return Ok(()),
                Err(e) => failed.push(e),
            }
        }
        Err(self.no_candidate(Op::Pull, repo, failed))
    }

    async fn download(
        &self,
        r: &Reference,
        desc: &Descriptor,
        store: &BlobStore,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let ctx = Ctx::pull(Op::Pull, r, Direction::Pull);
        let mut backoff = self.session.backoff(ctx.dir);
        let mut partial: Option<BlobWriter> = None;
        loop {
            match self.download_attempt(&ctx, desc, store, &mut partial, progress).await {
                Ok(()) => return Ok(()),
                Err(f) if f.retryable && backoff.retry(f.retry_after, &f.err).await => continue,
                Err(f) => return Err(f.finish(&backoff)),
            }
        }
    }

    /// One GET of a blob, continuing `partial` if it holds bytes from an earlier attempt.
    async fn download_attempt(
        &self,
        ctx: &Ctx<'_>,
        desc: &Descriptor,
        store: &BlobStore,
        partial: &mut Option<BlobWriter>,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<(), Failure> {
        let store_err = |source| RegistryError::Store { op: ctx.op, reference: ctx.reference.to_string(), source };
        let offset = partial.as_ref().map_or(0, |w| w.written());
        let path = format!("blobs/{}", desc.digest);
        let build = |ep: &_| {
            let rb = self.client_get(ep, ctx.reference, &path);
            Ok(if offset > 0 { rb.header(RANGE, format!("bytes={offset}-")) } else { rb })
        };
        let resp = self.session.send_once(ctx, false, &build).await.map_err(|mut f| {
            if let Some(s) = f.stalled {
                f.err = ctx.transport(format!("downloading blob {}: {s}", desc.digest));
            }
            f
        })?;
        let resumed = resp.status().as_u16() == 206
            && resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(&format!("bytes {offset}-")));
        let mut writer = match partial.take() {
            Some(w) if resumed => w,
            // Followed by whoever unpacks the layer while it arrives (`image/follow.rs`).
            _ => store.writer_for(&desc.digest).map_err(store_err)?,
        };
        let dir = store.path(&desc.digest).parent().map(PathBuf::from).unwrap_or_default();
        let mut resp = resp;
        let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
        loop {
            let limit = self.session.opts.stall_timeout;
            let failure = match next_chunk(&mut resp, limit).await {
                Ok(Ok(c)) => Ok(c),
                Ok(Err(e)) if let Some(s) = super::stall::of_error(&e, limit) => {
                    Err(Failure::stalled(ctx.transport(format!("downloading blob {}: {s}", desc.digest)), s))
                }
                Ok(Err(e)) => Err(Failure::transport(
                    ctx.transport(format!("downloading blob {}: {}", desc.digest, describe(&e))),
                    is_retryable(&e),
                )),
                Err(s) => Err(Failure::stalled(ctx.transport(format!("downloading blob {}: {s}", desc.digest)), s)),
            };
            let chunk = match failure {
                Ok(c) => c,
                Err(f) => {
                    // Keep what arrived so the next attempt can resume from there.
                    writer = flush(writer, &mut batch, &dir).await.map_err(store_err)?;
                    *partial = Some(writer);
                    return Err(f);
                }
            };
            let Some(chunk) = chunk else { break };
            if writer.written() + (batch.len() + chunk.len()) as u64 > desc.size {
                // More bytes than the descriptor allows: hostile or broken; never store them.
                return Err(Failure::transient(RegistryError::BlobVerification {
                    op: ctx.op,
                    reference: ctx.reference.to_string(),
                    expected: Box::new(desc.digest.clone()),
                    detail: format!("the registry sent more than the expected {} bytes", desc.size),
                }));
            }
            batch.extend_from_slice(&chunk);
            if batch.len() >= WRITE_BATCH {
                writer = flush(writer, &mut batch, &dir).await.map_err(store_err)?;
                progress(writer.written(), desc.size);
            }
        }
        writer = flush(writer, &mut batch, &dir).await.map_err(store_err)?;
        progress(writer.written(), desc.size);
        let (digest, size) = (desc.digest.clone(), desc.size);
        let committed =
            tokio::task::spawn_blocking(move || writer.commit(Some((&digest, Some(size))))).await.expect("commit task");
        match committed {
            Ok(_) => Ok(()),
            Err(e @ (StoreError::DigestMismatch { .. } | StoreError::SizeMismatch { .. })) => {
                Err(Failure::transient(RegistryError::BlobVerification {
                    op: ctx.op,
                    reference: ctx.reference.to_string(),
                    expected: Box::new(desc.digest.clone()),
                    detail: e.to_string(),
                }))
            }
            Err(e) => Err(Failure::fatal(store_err(e))),
        }
    }
}

/// Writes the batch on a blocking thread (disk I/O must not stall the async workers).
async fn flush(mut writer: BlobWriter, batch: &mut Vec<u8>, dir: &Path) -> Result<BlobWriter, StoreError> {
    if batch.is_empty() {
        return Ok(writer);
    }
    let data = std::mem::replace(batch, Vec::with_capacity(WRITE_BATCH));
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        writer.write_all(&data).map(|()| writer).map_err(|source| StoreError::Io { path: dir, source })
    })
    .await
    .expect("write task")
}

/// The media type of a manifest: its own `mediaType` field, else the `Content-Type` the
/// registry sent, else inferred from its shape. Schema1 and unknown types are refused.
pub fn manifest_media_type(body: &[u8], header: Option<&str>) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(rename = "schemaVersion", default)]
        schema_version: Option<u32>,
    }
    let p: Probe = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let header = header.filter(|h| media::ACCEPT_MANIFESTS.contains(h) || SCHEMA1.contains(h));
    let mt = match (p.media_type, header) {
        (Some(m), _) => m,
        (None, Some(h)) => h.to_string(),
        (None, None) if p.schema_version == Some(1) => SCHEMA1[0].to_string(),
        (None, None) if p.manifests.is_some() => media::OCI_INDEX.to_string(),
        (None, None) => media::OCI_MANIFEST.to_string(),
    };
    if SCHEMA1.contains(&mt.as_str()) {
        return Err("Docker schema1 manifests are not supported (push the image again with a current client)".into());
    }
    if !media::ACCEPT_MANIFESTS.contains(&mt.as_str()) {
        return Err(format!("unsupported manifest media type {mt:?}"));
    }
    Ok(mt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_detection() {
        let oci =
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
        assert_eq!(manifest_media_type(oci, Some("application/json")).unwrap(), media::OCI_MANIFEST);
        let bare_index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(manifest_media_type(bare_index, None).unwrap(), media::OCI_INDEX);
        let bare = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert_eq!(manifest_media_type(bare, Some(media::DOCKER_MANIFEST)).unwrap(), media::DOCKER_MANIFEST);
        let s1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(manifest_media_type(s1, None).unwrap_err().contains("schema1"));
        let odd = br#"{"schemaVersion":2,"mediaType":"application/vnd.example+json"}"#;
        assert!(manifest_media_type(odd, None).is_err());
    }
}
