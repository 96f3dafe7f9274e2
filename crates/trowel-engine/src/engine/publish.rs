//! The end of a build: assemble the target stage into an image (config, manifest), write the
//! local outputs, pass the controller's push gate, and push to every destination.

use std::time::Instant;

use trowel_events::{BlobPushAction, Event, LayerSummary, PushReview, ReviewLayer};

use crate::engine::build::Build;
use crate::engine::controller::Decision;
use crate::engine::emit::{Emitter, ProgressGate};
use crate::engine::error::{BuildError, PushError};
use crate::engine::layer::{LayerOrigin, StageLayer};
use crate::image::manifest::{Descriptor, Manifest, ManifestFormat};
use crate::image::outputs::{self, Artifact, FinalImage, OutputError};
use crate::registry::{Arrival, BlobAction, PushBlob, PushImage, PushProgress, PushReport, Reference};

impl Build<'_> {
    /// Turns the target stage into an image in the local store.
    /// `slot` is the target platform's index in the plan's platforms.
    pub(crate) fn assemble(&mut self, target: usize, slot: usize) -> Result<FinalImage, BuildError> {
        let ctx = &self.ctx;
        let st = self.stages.get(target).ok_or_else(|| BuildError::Options("the target stage was not built".into()))?;
        // Its layers and config would lack a COPY not run (`stage/defer.rs` never defers one an
        // image is built on): never a wrong image.
        if let Some(d) = st.deferred.first() {
            return Err(BuildError::Options(format!(
                "internal error: the image lacks the {} at line {}, which was not run (deferred)",
                d.instruction.keyword(),
                d.instruction.line
            )));
        }
        let mut config = st.config.clone();
        let now = ctx.now_rfc3339();
        for &i in &st.unstamped {
            config.set_history_created(i, &now);
        }
        // The image is as new as its newest history entry: a rebuild in which nothing ran keeps
        // the previous image's time (and so its digest); see `Stamp`.
        let created = if ctx.fixed_time().is_some() || !st.unstamped.is_empty() {
            now
        } else {
            config.newest_history_time().unwrap_or(now)
        };
        config.set_created(&created);
        let multi = ctx.plan.is_multi_platform();
        let platform = ctx.plan.platforms[slot].target.clone();
        if !ctx.opts.platforms.is_empty() || config.raw().get("architecture").is_none() {
            let mut p = platform.clone();
            // `--custom-platform=linux/arm64` does not drop a base's variant (BuildKit keeps
            // it for the same OS and architecture).
            let base = config.platform();
            if p.variant.is_none() && base.architecture == p.architecture {
                p.variant = base.variant;
            }
            config.set_platform(&p);
        }
        // The image says its platform as containerd normalises it, as BuildKit's result does
        // (`platforms.Normalize` in dockerfile2llb): an arm64 base whose config says `v8` (as
        // many on Docker Hub do) gives an image, and an index entry, for linux/arm64.
        let normal = config.platform().normalized();
        if config.platform() != normal {
            config.set_platform(&normal);
        }
        if ctx.opts.layers.reproducible {
            config.strip_host_fields();
        }
        let leaked = secret_fields(config.raw(), &ctx.redactor);
        if slot == 0 && !leaked.is_empty() {
            ctx.emitter.warn(format!(
                "the image config holds a secret value (a secret build arg's, or a --secret's) in {}: anyone who \
                 can pull the image reads it there, though history shows it masked; give it to the steps that \
                 need it with RUN --mount=type=secret instead",
                leaked.join(", ")
            ));
        }
        let config_bytes = config.to_bytes();
        let config_digest = ctx.store.put(&config_bytes).map_err(BuildError::store("store the image config"))?;
        // Annotations exist only in OCI's media types (see `image/annotations.rs`).
        let annotations = &ctx.opts.output.annotations;
        let format = if annotations.is_empty() { st.format } else { ManifestFormat::Oci };
        let layers: Vec<Descriptor> = st.layers.iter().map(|l| l.descriptor_in(format)).collect();
        let mut manifest = Manifest::new(
            format,
            Descriptor::new(format.config_media_type(), config_digest.clone(), config_bytes.len() as u64),
            layers,
        );
        manifest.annotations = annotations.manifest(&platform);
        let manifest_bytes = manifest.to_bytes();
        let manifest_digest = ctx.store.put(&manifest_bytes).map_err(BuildError::store("store the image manifest"))?;
        let size = config_bytes.len() as u64 + st.layers.iter().map(|l| l.descriptor.size).sum::<u64>();
        ctx.emitter.emit(Event::ImageAssembled {
            manifest_digest: (&manifest_digest).into(),
            config_digest: (&config_digest).into(),
            media_type: format.manifest_media_type().to_string(),
            size,
            layers: st
                .layers
                .iter()
                .map(|l| LayerSummary { media_type: l.descriptor_in(format).media_type, ..l.summary(l.made_by()) })
                .collect(),
            config: config.raw().clone(),
            manifest: serde_json::to_value(&manifest).expect("manifest serialises"),
            platform: multi.then(|| platform.to_string()),
        });
        Ok(FinalImage { manifest, manifest_bytes, manifest_digest, config_bytes, config_digest })
    }

    /// Local outputs, the push gate, then the pushes: of the one image, or of the index of a
    /// build for several platforms. `layers` are each image's layers as the stages left them
    /// (in index order). Returns the destinations pushed.
    pub(crate) fn publish(
        &mut self,
        artifact: Artifact<'_>,
        layers: &[Vec<StageLayer>],
    ) -> Result<Vec<String>, BuildError> {
        let out = &self.ctx.opts.output;
        if out.tar_path.is_some() || out.oci_layout_path.is_some() {
            for l in layers {
                self.ctx.fetch_blobs(l)?;
            }
        }
        let dests: Vec<Reference> = out
            .destinations
            .iter()
            .map(|d| {
                Reference::parse(d).map_err(|e| {
                    BuildError::Options(format!(
                        "invalid --destination {:?}: {e}",
                        crate::registry::reference::masked_userinfo(d)
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        if let Some(p) = &out.tar_path {
            let tags: Vec<String> = if dests.is_empty() {
                // kaniko's placeholder name when there is nothing to tag the archive with.
                vec!["unset-repo/unset-image-name:latest".to_string()]
            } else {
                dests.iter().map(|d| d.to_string()).collect()
            };
            outputs::write_docker_archive(p, artifact, &self.ctx.store, &tags).map_err(out_err("tarball", p))?;
            self.ctx.emitter.emit(Event::OutputWritten { kind: "tarball".into(), path: p.display().to_string() });
        }
        if let Some(p) = &out.oci_layout_path {
            let name = dests.first().map(|d| d.to_string());
            outputs::write_oci_layout(p, artifact, &self.ctx.store, name.as_deref())
                .map_err(out_err("OCI layout", p))?;
            self.ctx.emitter.emit(Event::OutputWritten { kind: "OCI layout".into(), path: p.display().to_string() });
        }
        let mut pushed = Vec::new();
        if !out.no_push && !dests.is_empty() {
            if let Some(why) = self.controller.abort_requested() {
                return Err(BuildError::Aborted(why));
            }
            if self.controller.wants_push_review() {
                let review = match artifact {
                    Artifact::Image(image) => self.push_review(image, &dests, &layers[0]),
                    Artifact::Index(index) => self.index_review(index, &dests, layers),
                };
                self.ctx.emitter.emit(Event::PushReview { review: Box::new(review.clone()) });
                let decision = self.controller.review_push(&review);
                let (approved, reason) = match &decision {
                    Decision::Continue => (true, None),
                    Decision::Abort(why) => (false, Some(why.clone())),
                };
                self.ctx.emitter.emit(Event::PushDecided { approved, reason });
                if let Decision::Abort(why) = decision {
                    return Err(BuildError::Aborted(why));
                }
            }
            // COPY/ADD layers kept out of the cache repository get a reference record there
            // (see `cache::layer_ref`): its config is sent alongside the push, and it is
            // tagged once every destination has every layer; after a failed push, never.
            let staged = match self.cache.as_mut() {
                Some(cache) => cache.stage_refs(&self.ctx, &dests, layers),
                None => Default::default(),
            };
            let pushes = match artifact {
                // Base layers are downloaded during the push only if a destination lacks them
                // and cannot mount them (see `Registry::push_image`).
                Artifact::Image(image) => dests.iter().zip(&out.destinations).try_for_each(|(dest, raw)| {
                    // Once a destination is tagged, the others are pushed whatever a stop says:
                    // a build tags all its destinations or none it can help.
                    self.push_one(dest, raw, image, &layers[0], pushed.is_empty())?;
                    pushed.push(raw.clone());
                    Ok(())
                }),
                Artifact::Index(index) => self.push_index(index, &dests, layers).map(|p| pushed = p),
            };
            // Every upload that could take a session opened ahead is over (the cache's entries
            // open their own): those left go now, while the cache's writes finish.
            self.ctx.let_go_of_sessions(None);
            if let Some(cache) = self.cache.as_mut() {
                match &pushes {
                    Ok(()) => cache.tag_refs(&self.ctx, staged),
                    Err(_) => cache.discard_refs(&self.ctx, staged),
                }
            }
            pushes?;
        }
        let names: Vec<(String, Option<String>)> = dests.iter().map(|d| (d.repo_ref(), d.tag.clone())).collect();
        if let Some(p) = &out.digest_file {
            outputs::write_digest_file(p, artifact).map_err(out_err("digest file", p))?;
        }
        if let Some(p) = &out.image_name_with_digest_file {
            outputs::write_image_name_with_digest_file(p, &names, artifact).map_err(out_err("digest file", p))?;
        }
        if let Some(p) = &out.image_name_tag_with_digest_file {
            outputs::write_image_name_tag_with_digest_file(p, &names, artifact).map_err(out_err("digest file", p))?;
        }
        Ok(pushed)
    }

    /// What the push gate shows: digests, destinations, and for each layer whether each
    /// destination already has it (HEAD requests, all at once).
    pub(super) fn push_review(&mut self, image: &FinalImage, dests: &[Reference], layers: &[StageLayer]) -> PushReview {
        // What the push will mount rather than upload, as `push_one` asks for it.
        let mounts: Vec<Vec<Option<String>>> = layers
            .iter()
            .map(|l| {
                dests
                    .iter()
                    .map(|d| {
                        // What the push would do: a source still being uploaded to is one once
                        // the upload is over (by the push gate, it mostly is).
                        let source = self.mount_source(d, l).and_then(|(src, arrival)| match arrival {
                            Some(a) if !self.ctx.rt.block_on(a.wait()) => None,
                            _ => Some(src),
                        });
                        source
                            .filter(|src| src.registry == d.registry && src.repository != d.repository)
                            .map(|src| src.repo_ref())
                    })
                    .collect()
            })
            .collect();
        let ctx = &self.ctx;
        let present: Vec<Vec<Option<bool>>> = ctx.rt.block_on(async {
            let mut out = Vec::new();
            for desc in &image.manifest.layers {
                let checks = dests.iter().map(|d| ctx.registry.blob_exists(d, &desc.digest));
                let r = futures_util::future::join_all(checks).await;
                out.push(r.into_iter().map(|x| x.ok()).collect());
            }
            out
        });
        PushReview {
            manifest_digest: image.manifest_digest.clone().into(),
            config_digest: Some(image.config_digest.clone().into()),
            media_type: image.manifest_media_type().to_string(),
            destinations: ctx.opts.output.destinations.clone(),
            layers: image
                .manifest
                .layers
                .iter()
                .zip(layers)
                .zip(present)
                .zip(mounts)
                .map(|(((desc, l), present), mount_from)| ReviewLayer {
                    digest: desc.digest.clone().into(),
                    size: desc.size,
                    uncompressed_size: l.uncompressed_size,
                    media_type: desc.media_type.clone(),
                    step: l.made_by(),
                    shell: l.shell(),
                    present,
                    mount_from,
                })
                .collect(),
            platforms: Vec::new(),
        }
    }

    /// The repository a layer can be mounted (or fetched) from when `dest` lacks it, and, for
    /// a layer this build is still uploading there, when it will have it.
    pub(super) fn mount_source(&mut self, dest: &Reference, l: &StageLayer) -> Option<(Reference, Option<Arrival>)> {
        match &l.origin {
            LayerOrigin::Base(src) => Some((src.clone(), None)),
            LayerOrigin::Built(id) => {
                let ctx = &self.ctx;
                self.cache.as_mut().and_then(|c| c.mountable_for(ctx, dest, *id))
            }
            // A shell session's layer is in no cache entry; a local entry's is in no registry
            // (uploaded from the build's store when the destination lacks it).
            LayerOrigin::Shell(..) | LayerOrigin::Local(_) => None,
        }
    }

    /// What a push of `image` to `dest` sends: its config, then each layer with the
    /// repository it can be mounted from.
    pub(super) fn push_image_of(&mut self, dest: &Reference, image: &FinalImage, layers: &[StageLayer]) -> PushImage {
        // The config of an image with a layer a step made in this build holds that step's
        // time: no repository has it (short of a build of the same inputs within the same
        // second, which then uploads 1-2 kB again), so it goes up without the HEAD that could
        // only answer no, one round trip less before the manifest. A build with a fixed time
        // (`--reproducible`, `SOURCE_DATE_EPOCH`) stamps none of its own: a rebuild's config may
        // well be there, and is asked for first.
        let config = image.manifest.config.clone();
        let fresh = self.ctx.fixed_time().is_none() && layers.iter().any(|l| l.step().is_some());
        let mut blobs = vec![if fresh { PushBlob::fresh(config) } else { PushBlob::new(config, None) }];
        for (l, desc) in layers.iter().zip(&image.manifest.layers) {
            let mount_from = self.mount_source(dest, l);
            blobs.push(match l.origin {
                LayerOrigin::Built(_) => PushBlob::built(desc.clone(), mount_from),
                _ => PushBlob {
                    present: self.ctx.presence(dest, &desc.digest),
                    ..PushBlob::new(desc.clone(), mount_from.map(|(src, _)| src))
                },
            });
        }
        // What the end of the build waits for: these may take the sessions opened ahead in
        // the destination (`registry/spare_uploads.rs`).
        for b in &mut blobs {
            b.spare = true;
        }
        PushImage {
            manifest_bytes: image.manifest_bytes.clone(),
            manifest_media_type: image.manifest_media_type().to_string(),
            blobs,
        }
    }

    /// A destination that already names what would be pushed (`digest`: the image's, or the
    /// index's over `images`): every blob `existed`, and the push finished unchanged.
    pub(super) fn report_unchanged(
        &self,
        raw: &str,
        images: &[&FinalImage],
        digest: &crate::digest::Digest,
        t0: Instant,
    ) {
        for image in images {
            for desc in std::iter::once(&image.manifest.config).chain(&image.manifest.layers) {
                self.ctx.emitter.emit(Event::BlobPushed {
                    destination: raw.to_string(),
                    digest: desc.digest.clone().into(),
                    action: BlobPushAction::Existed,
                    size: desc.size,
                });
            }
        }
        self.ctx.emitter.emit(Event::PushFinished {
            destination: raw.to_string(),
            digest: digest.into(),
            duration_ms: t0.elapsed().as_millis() as u64,
            unchanged: true,
        });
    }

    /// `blob_pushed` for every blob of a push to `raw`.
    pub(super) fn emit_blobs(&self, raw: &str, report: &PushReport) {
        for (digest, action, size) in &report.blobs {
            self.ctx.emitter.emit(Event::BlobPushed {
                destination: raw.to_string(),
                digest: digest.clone().into(),
                action: match action {
                    BlobAction::Uploaded => BlobPushAction::Uploaded,
                    BlobAction::Existed => BlobPushAction::Existed,
                    BlobAction::Mounted => BlobPushAction::Mounted,
                },
                size: *size,
            });
        }
    }

    /// Pushes `image` to `dest`. `stoppable`: a stop asked for gives the push up (no other
    /// destination is tagged yet), else it is said and the push goes on.
    fn push_one(
        &mut self,
        dest: &Reference,
        raw: &str,
        image: &FinalImage,
        layers: &[StageLayer],
        stoppable: bool,
    ) -> Result<(), BuildError> {
        let t0 = Instant::now();
        self.ctx.emitter.emit(Event::PushStarted { destination: raw.to_string() });
        if self.already_pushed(dest, image, layers) {
            // Nothing to upload: the push check's session goes now, beside the rest.
            self.ctx.let_go_of_sessions(Some(dest));
            self.report_unchanged(raw, &[image], &image.manifest_digest, t0);
            return Ok(());
        }
        // Layers sent while they were written are committed while the other blobs are pushed;
        // one whose commit fails is pushed as any other, from the store.
        let wanted: std::collections::HashSet<&crate::digest::Digest> =
            image.manifest.layers.iter().map(|d| &d.digest).collect();
        let held = self.ctx.take_early_uploads(dest, &wanted);
        let push = self.push_image_of(dest, image, layers);
        let progress = progress_reporter(&self.ctx.emitter, raw);
        let registry = &self.ctx.registry;
        let store = &self.ctx.store;
        // The blobs go up until a stop (`stopping.rs`): a blob without a manifest is no image.
        let blobs = async {
            let early: std::collections::HashSet<&crate::digest::Digest> = held.iter().map(|h| &h.digest).collect();
            let (sent, others): (Vec<&PushBlob>, Vec<&PushBlob>) =
                push.blobs.iter().partition(|b| early.contains(&b.descriptor.digest));
            let others: Vec<PushBlob> = others.into_iter().cloned().collect();
            let commits = futures_util::future::join_all(held.iter().map(|h| registry.commit_held(h)));
            let (committed, pushed) =
                futures_util::future::join(commits, registry.push_blobs(dest, &others, store, &progress)).await;
            let mut done: std::collections::HashMap<crate::digest::Digest, BlobAction> =
                pushed?.into_iter().map(|(d, a, _)| (d, a)).collect();
            let mut retry = Vec::new();
            for (h, c) in held.iter().zip(committed) {
                match c {
                    // This build uploaded it, ahead of the push.
                    Ok(()) => {
                        progress(PushProgress::BlobDone { digest: h.digest.clone(), action: BlobAction::Uploaded });
                        done.insert(h.digest.clone(), BlobAction::Uploaded);
                    }
                    Err(_) => {
                        retry.extend(sent.iter().filter(|b| b.descriptor.digest == h.digest).map(|b| (*b).clone()))
                    }
                }
            }
            for (d, a, _) in registry.push_blobs(dest, &retry, store, &progress).await? {
                done.insert(d, a);
            }
            Ok::<_, crate::registry::RegistryError>(done)
        };
        let blobs = if stoppable { self.ctx.until_stopped(blobs)? } else { self.ctx.rt.block_on(blobs) };
        let push_err = |e| BuildError::Push { destination: raw.to_string(), source: PushError::Registry(e) };
        let done = blobs.map_err(push_err)?;
        // The last moment a stop can keep the tag from being written: once the manifest is on
        // its way the registry may take it whatever this process does next.
        match self.ctx.aborted() {
            Some(stopped) if stoppable => return Err(stopped),
            Some(_) => self.ctx.emitter.warn(format!(
                "{raw}: pushed all the same: the stop came after an earlier destination was tagged, and a build \
                 tags all its destinations or none"
            )),
            None => {}
        }
        let report = self.ctx.rt.block_on(async {
            let manifest_digest =
                match registry.push_manifest(dest, &push.manifest_bytes, &push.manifest_media_type).await {
                    Err(e) if self.immutable_tag_kept(raw, &e) => image.manifest_digest.clone(),
                    pushed => pushed?,
                };
            let blobs = push
                .blobs
                .iter()
                .map(|b| {
                    let d = &b.descriptor.digest;
                    (d.clone(), done.get(d).copied().unwrap_or(BlobAction::Existed), b.descriptor.size)
                })
                .collect();
            Ok::<_, crate::registry::RegistryError>(PushReport { manifest_digest, blobs })
        });
        let report = report.map_err(push_err)?;
        self.emit_blobs(raw, &report);
        if report.manifest_digest != image.manifest_digest {
            return Err(BuildError::Push {
                destination: raw.to_string(),
                source: PushError::DigestMismatch {
                    reported: report.manifest_digest.to_string(),
                    pushed: image.manifest_digest.to_string(),
                },
            });
        }
        self.ctx.emitter.emit(Event::PushFinished {
            destination: raw.to_string(),
            digest: (&report.manifest_digest).into(),
            duration_ms: t0.elapsed().as_millis() as u64,
            unchanged: false,
        });
        Ok(())
    }
}

impl Build<'_> {
    /// True if `dest` already names exactly this image. Only asked when no layer was built in
    /// this build: a rebuild served entirely from the cache reproduces the previous image (see
    /// `Stamp`), and its push then has nothing to do. Any doubt means a normal push.
    fn already_pushed(&self, dest: &Reference, image: &FinalImage, layers: &[StageLayer]) -> bool {
        if layers.iter().any(|l| l.step().is_some()) {
            return false;
        }
        let named = self.ctx.rt.block_on(self.ctx.registry.manifest_digest(dest));
        matches!(named, Ok(Some(d)) if d == image.manifest_digest)
    }
}

/// What registries answer when a tag may not be moved (kaniko's `errTagImmutable`): Artifact
/// Registry's, and ECR's for a repository with immutable tags.
const IMMUTABLE_TAG_ERRORS: [&str; 2] =
    ["The repository has enabled tag immutability", "cannot be overwritten because the repository is immutable"];

impl Build<'_> {
    /// With `--push-ignore-immutable-tag-errors`, whether `e` is a registry's refusal to move an
    /// immutable tag, which then ends the push to `raw` as kaniko ends it, without error. Said
    /// in the log: the tag still names the image it named, and this image's manifest may not be
    /// in the registry at all (ECR refuses the manifest with the tag), though, as in kaniko,
    /// the digest files name it.
    pub(super) fn immutable_tag_kept(&self, raw: &str, e: &crate::registry::RegistryError) -> bool {
        let text = e.to_string();
        let kept = self.ctx.opts.output.push_ignore_immutable_tag_errors
            && IMMUTABLE_TAG_ERRORS.iter().any(|known| text.contains(known));
        if kept {
            self.ctx.emitter.warn(format!(
                "{raw}: the registry keeps this tag immutable, so it still names the image it named, and this \
                 image's manifest may not be stored there; ignored (--push-ignore-immutable-tag-errors): {text}"
            ));
        }
        kept
    }
}

/// The fields of an image config (`ENV NAME`, `LABEL key`, `User`, …) whose values hold one of
/// the build's secrets (`ENV X=${GH_TOKEN}` puts a secret build arg's value there in clear:
/// history masks it, the config cannot).
fn secret_fields(config: &serde_json::Value, redactor: &crate::secrets::Redactor) -> Vec<String> {
    let holds = |s: &str| !redactor.is_empty() && redactor.redact(s) != s;
    let Some(fields) = config.get("config").and_then(|c| c.as_object()) else { return Vec::new() };
    let mut out = Vec::new();
    for (field, value) in fields {
        match (field.as_str(), value) {
            ("Env", serde_json::Value::Array(vars)) => {
                for (name, v) in vars.iter().filter_map(|v| v.as_str()?.split_once('=')) {
                    if holds(v) {
                        out.push(format!("ENV {name}"));
                    }
                }
            }
            ("Labels", serde_json::Value::Object(labels)) => {
                for (key, v) in labels {
                    if v.as_str().is_some_and(holds) || holds(key) {
                        out.push(format!("LABEL {key}"));
                    }
                }
            }
            (_, v) if holds(&v.to_string()) => out.push(field.clone()),
            _ => {}
        }
    }
    out
}

/// `push_progress` events for a push to `raw`, every 4 MiB of a blob and once at its end
/// ([`ProgressGate`]).
pub(super) fn progress_reporter<'e>(emitter: &'e Emitter, raw: &'e str) -> impl Fn(PushProgress) + Send + Sync + 'e {
    let gates = std::sync::Mutex::new(std::collections::HashMap::<crate::digest::Digest, ProgressGate>::new());
    move |p: PushProgress| match p {
        PushProgress::Blob { digest, sent, total } => {
            let mut gates = gates.lock().unwrap_or_else(|p| p.into_inner());
            if gates.entry(digest.clone()).or_default().due(sent, total) {
                emitter.emit(Event::PushProgress { destination: raw.to_string(), digest: digest.into(), sent, total });
            }
        }
        PushProgress::BlobDone { .. } => {}
    }
}

pub(super) fn out_err<'p>(
    what: &'static str,
    path: &'p std::path::Path,
) -> impl FnOnce(OutputError) -> BuildError + 'p {
    move |source| BuildError::Output { what, path: path.to_path_buf(), source }
}
