//! Starting a stage from its base (scratch, a registry image, or an earlier stage) and
//! materialising its build root only when a step first needs files.

use std::collections::HashMap;
use std::io::Read as _;
use std::time::Instant;

use futures_util::StreamExt;

use crate::digest::HashingReader;
use crate::dockerfile::{ArgScope, Base};
use crate::engine::build::Engine;
use crate::engine::error::{BuildError, Location};
use crate::engine::stage::{BuildRoot, LayerOrigin, StageLayer, StageState};
use crate::fs::ignore::IgnoreList;
use crate::fs::root::Root;
use crate::fs::snapshot::Snapshotter;
use crate::fs::unpack::{UnpackOptions, open_layer, unpack_layer};
use crate::image::config::ImageConfig;
use crate::image::manifest::{ManifestFormat, Platform};
use crate::registry::{Reference, ResolvedImage};
use trowel_events::{BaseSource, Event, LayerSummary};

/// How many blobs download at once.
const PARALLEL_PULLS: usize = 3;

impl Engine<'_> {
    /// Resolves the base and returns the stage's initial state (no root yet).
    pub(crate) fn start_stage(&mut self, idx: usize, loc: &Location) -> Result<StageState, BuildError> {
        let planned = self.plan.stages[idx].clone();
        let args: ArgScope = self.plan.arg_scope();
        let comp = self.opts.compression;
        let (config, format, layers, base_digest) = match &planned.base {
            Base::Scratch => {
                self.emitter.emit(Event::BaseResolved {
                    stage: idx,
                    source: BaseSource::Scratch,
                    config_digest: None,
                    layers: vec![],
                });
                (ImageConfig::scratch(&self.platform), ManifestFormat::Oci, Vec::new(), None)
            }
            Base::Image(r) => {
                // `FROM --platform=…` picks that platform from an index; otherwise the target's.
                let platform = match &planned.platform {
                    Some(p) if !p.is_empty() => Platform::parse(p).map_err(|e| BuildError::Step {
                        location: loc.clone(),
                        message: format!("FROM --platform: {e}"),
                        exit_code: None,
                    })?,
                    _ => self.platform.clone(),
                };
                let (img, from_cache_dir) = match self.base_from_cache_dir(r, &platform) {
                    Some(img) => (img, true),
                    None => (self.resolve_image(r, &platform, loc)?, false),
                };
                let config = ImageConfig::from_bytes(&img.config_bytes)
                    .map_err(|e| BuildError::Pull { reference: r.clone(), message: e.to_string() })?;
                let layers = base_layers(&img, &config, r)?;
                let source = if from_cache_dir {
                    BaseSource::CacheDir {
                        reference: img.reference.to_string(),
                        manifest_digest: img.manifest_digest.clone().into(),
                    }
                } else {
                    BaseSource::Registry {
                        reference: img.reference.to_string(),
                        manifest_digest: img.manifest_digest.clone().into(),
                        index_digest: img.index_digest.as_ref().map(Into::into),
                    }
                };
                self.emitter.emit(Event::BaseResolved {
                    stage: idx,
                    source,
                    config_digest: Some(img.config_digest.clone().into()),
                    layers: layers.iter().map(|l| summary(l, None)).collect(),
                });
                let format = ManifestFormat::from_manifest_media_type(&img.media_type);
                (config, format, layers, Some(img.manifest_digest))
            }
            Base::Stage(p) => {
                let parent = self.stages[*p].as_ref().expect("parent stage built first (plan order)");
                self.emitter.emit(Event::BaseResolved {
                    stage: idx,
                    source: BaseSource::Stage { index: *p },
                    config_digest: None,
                    layers: parent.layers.iter().map(|l| summary(l, None)).collect(),
                });
                (parent.config.clone(), parent.format, parent.layers.clone(), parent.base_digest.clone())
            }
        };
        let format = format.for_compression(comp);
        let mut config = config;
        if config.env_var("PATH").is_none() {
            config.set_env("PATH", crate::image::config::DEFAULT_PATH);
        }
        for (k, v) in &self.opts.labels {
            config.set_label(k, v);
        }
        let (clock, unstamped) = match &planned.base {
            Base::Scratch => (None, Vec::new()),
            Base::Image(_) => (config.created().map(str::to_string), Vec::new()),
            Base::Stage(p) => {
                let parent = self.stages[*p].as_ref().expect("parent stage built first (plan order)");
                (parent.clock.clone(), parent.unstamped.clone())
            }
        };
        Ok(StageState {
            index: idx,
            config,
            format,
            layers,
            root: None,
            args,
            cmd_set: false,
            base_digest,
            // A stage built from a stage chains from the image at the bottom of it all.
            base_ref: match &planned.base {
                Base::Scratch => "scratch".into(),
                Base::Image(r) => r.clone(),
                Base::Stage(p) => self.stages[*p].as_ref().map(|s| s.base_ref.clone()).unwrap_or_default(),
            },
            planned: HashMap::new(),
            lookups: HashMap::new(),
            final_key: None,
            last_changes: Vec::new(),
            clock,
            unstamped,
        })
    }

    /// A base image from the local cache directory (`--cache-dir`, filled by `trowel warm`):
    /// verified, its blobs linked into this build's store, so the build needs no registry at
    /// all for it — not even to resolve a tag. Anything missing or corrupt there means the
    /// registry is asked instead (the build never writes to the cache directory).
    fn base_from_cache_dir(&self, reference: &str, platform: &Platform) -> Option<ResolvedImage> {
        let dir = self.base_cache.as_ref()?;
        let r = Reference::parse(reference).ok()?;
        let ttl = self.opts.cache.as_ref().map(|c| c.ttl);
        let cached = match dir.lookup_explained(&r, platform, ttl) {
            Ok(Ok(c)) => c,
            Ok(Err(miss)) => {
                self.emitter.warn(format!("{reference} is not usable from the cache directory: {miss}"));
                return None;
            }
            Err(e) => {
                self.emitter.warn(format!("cache directory: {e}"));
                return None;
            }
        };
        match dir.verify_layers(&cached) {
            Ok(bad) if bad.is_empty() => {}
            Ok(bad) => {
                self.emitter.warn(format!(
                    "{reference} in the cache directory has {} missing or corrupt layer(s); pulling from the registry",
                    bad.len()
                ));
                return None;
            }
            Err(e) => {
                self.emitter.warn(format!("cache directory: {e}"));
                return None;
            }
        }
        if let Err(e) = dir.link_into(&cached, &self.store) {
            self.emitter.warn(format!("cache directory: {e}"));
            return None;
        }
        Some(cached.image)
    }

    /// Resolves an image reference in the registry.
    pub(crate) fn resolve_image(
        &self,
        reference: &str,
        platform: &Platform,
        loc: &Location,
    ) -> Result<ResolvedImage, BuildError> {
        let r = Reference::parse(reference).map_err(|e| BuildError::Step {
            location: loc.clone(),
            message: format!("invalid image reference {reference:?}: {e}"),
            exit_code: None,
        })?;
        self.rt
            .block_on(self.registry.resolve(&r, platform))
            .map_err(|e| BuildError::Pull { reference: reference.to_string(), message: e.to_string() })
    }

    /// Resolves an image once per build (with the target platform): the same reference means
    /// the same digest for cache keys and for the copy itself.
    pub(crate) fn resolve_cached(&self, reference: &str) -> Result<ResolvedImage, BuildError> {
        if let Some(img) = self.resolved.lock().unwrap().get(reference) {
            return Ok(img.clone());
        }
        let r = Reference::parse(reference)
            .map_err(|e| BuildError::Pull { reference: reference.to_string(), message: e.to_string() })?;
        let img = self
            .rt
            .block_on(self.registry.resolve(&r, &self.platform))
            .map_err(|e| BuildError::Pull { reference: reference.to_string(), message: e.to_string() })?;
        self.resolved.lock().unwrap().insert(reference.to_string(), img.clone());
        Ok(img)
    }

    /// Downloads every listed blob that is not already in the store, a few at a time.
    pub(crate) fn fetch_blobs(&self, layers: &[StageLayer]) -> Result<(), BuildError> {
        let missing: Vec<&StageLayer> = layers.iter().filter(|l| !self.store.contains(&l.descriptor.digest)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let registry = &self.registry;
        let store = &self.store;
        let emitter = &self.emitter;
        self.rt.block_on(async {
            let results: Vec<Result<(), BuildError>> = futures_util::stream::iter(missing)
                .map(|l| async move {
                    let LayerOrigin::Base(repo) = &l.origin else {
                        return Err(BuildError::Setup(format!(
                            "layer {} was built in this run but is missing from the local store",
                            l.descriptor.digest
                        )));
                    };
                    let last = std::sync::Mutex::new(0u64);
                    let digest = l.descriptor.digest.clone();
                    let reference = repo.to_string();
                    let progress = |done: u64, total: u64| {
                        let mut last = last.lock().unwrap();
                        // Throttle: every 4 MiB and at the end.
                        if done == total || done >= *last + (4 << 20) {
                            *last = done;
                            emitter.emit(Event::PullProgress {
                                reference: reference.clone(),
                                digest: digest.clone().into(),
                                done,
                                total,
                            });
                        }
                    };
                    registry
                        .fetch_blob(repo, &l.descriptor, store, &progress)
                        .await
                        .map_err(|e| BuildError::Pull { reference: repo.to_string(), message: e.to_string() })
                })
                .buffer_unordered(PARALLEL_PULLS)
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<()>, _>>().map(|_| ())
        })
    }

    /// Makes sure the stage has a build root with its layers unpacked and indexed.
    pub(crate) fn ensure_root(&mut self, st: &mut StageState) -> Result<(), BuildError> {
        if st.root.is_some() {
            return Ok(());
        }
        // A child stage may take over its parent's root when nothing else reads the parent.
        if let Base::Stage(p) = self.plan.stages[st.index].base {
            let only_consumer = self.consumers[p].iter().all(|(c, copies)| *c == st.index && !copies);
            if only_consumer
                && p != self.plan.target
                && let Some(parent) = self.stages[p].as_mut()
                && let Some(root) = parent.root.take()
            {
                st.root = Some(root);
                if let Some(c) = self.container.as_mut() {
                    c.owner = Some(st.index);
                }
                return Ok(());
            }
        }
        if self.container.is_some() {
            let root = self.materialize_at_slash(&st.layers, st.index)?;
            st.root = Some(root);
            return Ok(());
        }
        let root = self.materialize(&st.layers, &format!("stage{}", st.index), Some(st.index))?;
        st.root = Some(root);
        Ok(())
    }

    /// Container isolation: takes `/` from the stage that has it (its files are gone; a later
    /// `COPY --from` unpacks them elsewhere), empties it but for the ignored paths, and unpacks
    /// `layers` there.
    pub(crate) fn materialize_at_slash(
        &mut self,
        layers: &[StageLayer],
        stage: usize,
    ) -> Result<BuildRoot, BuildError> {
        let t0 = Instant::now();
        let previous = self.container.as_mut().and_then(|c| c.owner.replace(stage));
        if let Some(prev) = previous
            && prev != stage
            && let Some(p) = self.stages[prev].as_mut()
        {
            p.root = None;
        }
        self.fetch_blobs(layers)?;
        let dir = std::path::PathBuf::from("/");
        let root = Root::open(&dir).map_err(|e| BuildError::Setup(e.to_string()))?;
        let keep = self.container.as_ref().expect("container isolation").ignore.clone();
        crate::fs::clean::clean_root(&root, "/", &keep)
            .map_err(|e| BuildError::Setup(format!("empty / for stage {stage}: {e}")))?;
        let (entries, bytes) = self.unpack_all(&root, layers, &self.slash_unpack_options())?;
        let mut snap = Snapshotter::new(root, self.opts.snapshot_mode, self.snapshot_ignore.clone());
        snap.scan_initial().map_err(|e| BuildError::Setup(format!("index /: {e}")))?;
        self.emitter.emit(Event::BaseUnpacked {
            stage,
            layers: layers.len(),
            entries,
            bytes,
            duration_ms: t0.elapsed().as_millis() as u64,
        });
        Ok(BuildRoot { dir, snap })
    }

    /// Applies `layers` in order to `root`; returns (entries, bytes).
    fn unpack_all(&self, root: &Root, layers: &[StageLayer], opts: &UnpackOptions) -> Result<(u64, u64), BuildError> {
        let (mut entries, mut bytes) = (0u64, 0u64);
        for l in layers {
            let stats = self.unpack_verified(root, l, opts, "unpack")?;
            entries += stats.entries;
            bytes += stats.bytes;
        }
        Ok((entries, bytes))
    }

    /// Unpacks `layers` into a fresh directory and indexes it.
    pub(crate) fn materialize(
        &self,
        layers: &[StageLayer],
        name: &str,
        stage: Option<usize>,
    ) -> Result<BuildRoot, BuildError> {
        let t0 = Instant::now();
        self.fetch_blobs(layers)?;
        let dir = self.scratch_dir(name)?.join("rootfs");
        std::fs::create_dir(&dir).map_err(|e| BuildError::Setup(format!("create {}: {e}", dir.display())))?;
        let root = Root::open(&dir).map_err(|e| BuildError::Setup(e.to_string()))?;
        let (entries, bytes) = self.unpack_all(&root, layers, &self.unpack_options())?;
        // Roots other than `/` hold no container paths to ignore.
        let ignore = if self.container.is_some() { IgnoreList::default() } else { self.snapshot_ignore.clone() };
        let mut snap = Snapshotter::new(root, self.opts.snapshot_mode, ignore);
        snap.scan_initial().map_err(|e| BuildError::Setup(format!("index build root: {e}")))?;
        if let Some(stage) = stage {
            self.emitter.emit(Event::BaseUnpacked {
                stage,
                layers: layers.len(),
                entries,
                bytes,
                duration_ms: t0.elapsed().as_millis() as u64,
            });
        }
        Ok(BuildRoot { dir, snap })
    }

    /// Unpacks one layer from the store into `root`, checking that its uncompressed content
    /// hashes to the layer's diff_id. The registry checked the compressed digest; the diff_id
    /// comes from the image config, and a layer that does not match it is not the layer the
    /// image claims (an altered base or cache entry). Building on it would also push an image
    /// that Docker and containerd refuse to pull. `what` starts the error message.
    pub(crate) fn unpack_verified(
        &self,
        root: &Root,
        l: &StageLayer,
        opts: &UnpackOptions,
        what: &str,
    ) -> Result<crate::fs::UnpackStats, BuildError> {
        let name = match &l.origin {
            LayerOrigin::Base(r) => format!("{what} layer {} of {r}", l.descriptor.digest),
            LayerOrigin::Built(_) => format!("{what} layer {}", l.descriptor.digest),
        };
        let fail = |e: &dyn std::fmt::Display| BuildError::Setup(format!("{name}: {e}"));
        let file = self.store.open_blob(&l.descriptor.digest).map_err(|e| fail(&e))?;
        let mut reader = HashingReader::new(open_layer(file).map_err(|e| fail(&e))?);
        let stats = unpack_layer(root, &mut reader, opts).map_err(|e| fail(&e))?;
        // The tar reader stops at the end-of-archive marker; the diff_id covers the whole stream.
        let limit = opts.max_total_size.unwrap_or(u64::MAX);
        let rest = std::io::copy(&mut (&mut reader).take(limit), &mut std::io::sink())
            .map_err(|e| fail(&format!("reading after the end of the archive: {e}")))?;
        if rest >= limit {
            return Err(fail(&format!("more than {limit} bytes follow the end of the archive")));
        }
        let (_, digest, _) = reader.finish();
        if digest != l.diff_id {
            return Err(fail(&format!(
                "its content hashes to {digest}, but the image config gives diff_id {}",
                l.diff_id
            )));
        }
        Ok(stats)
    }

    /// How layers and ADD archives are unpacked into build roots.
    /// Unpacking into `/` in container isolation: what the container runtime owns is never
    /// written to.
    pub(crate) fn slash_unpack_options(&self) -> UnpackOptions {
        UnpackOptions {
            ignore: self.container.as_ref().map(|c| c.ignore.clone()).unwrap_or_default(),
            ..self.unpack_options()
        }
    }

    pub(crate) fn unpack_options(&self) -> UnpackOptions {
        UnpackOptions {
            ignore: IgnoreList::default(),
            // Build roots are private to the build (RUN mounts them nodev), and base images may
            // legitimately carry device nodes; a pod without CAP_MKNOD cannot make them.
            allow_devices: self.container.is_none() || crate::engine::container::can_mknod(),
            preserve_owner: true,
            max_entry_size: self.opts.max_file_size,
            max_total_size: self.opts.max_layer_size,
        }
    }

    /// Fails early, before building, if a destination cannot be pushed to (kaniko's
    /// CheckPushPermissions).
    /// Starts checking that every destination accepts a push (kaniko's push permission check),
    /// in the background: base resolution and cache lookups go on meanwhile, and
    /// [`Engine::finish_push_check`] waits for the answer before anything is built or pushed.
    pub(crate) fn start_push_check(&mut self) -> Result<(), BuildError> {
        let mut seen = std::collections::BTreeSet::new();
        let mut checks = Vec::new();
        for d in &self.opts.destinations {
            let r = Reference::parse(d).map_err(|e| BuildError::Setup(format!("invalid --destination {d:?}: {e}")))?;
            if !seen.insert(r.repo_ref()) {
                continue;
            }
            let registry = self.registry.clone();
            let h = self.rt.spawn(async move { registry.check_push_access(&r).await.map_err(|e| e.to_string()) });
            checks.push((d.clone(), h));
        }
        self.push_check = checks;
        Ok(())
    }

    /// Waits for the push check started by [`Engine::start_push_check`], if it is still out.
    pub(crate) fn finish_push_check(&mut self) -> Result<(), BuildError> {
        for (destination, h) in std::mem::take(&mut self.push_check) {
            match self.rt.block_on(h) {
                Ok(Ok(())) => {}
                Ok(Err(message)) => return Err(BuildError::Push { destination, message }),
                Err(e) => return Err(BuildError::Push { destination, message: format!("push check failed: {e}") }),
            }
        }
        Ok(())
    }
}

fn summary(l: &StageLayer, step: Option<trowel_events::StepId>) -> LayerSummary {
    LayerSummary {
        digest: l.descriptor.digest.clone().into(),
        diff_id: Some(l.diff_id.clone().into()),
        size: l.descriptor.size,
        uncompressed_size: l.uncompressed_size,
        media_type: l.descriptor.media_type.clone(),
        step,
    }
}

/// Pairs the manifest's layers with the config's diff_ids; they must agree.
fn base_layers(img: &ResolvedImage, config: &ImageConfig, reference: &str) -> Result<Vec<StageLayer>, BuildError> {
    let diff_ids = config.diff_ids();
    if diff_ids.len() != img.manifest.layers.len() {
        return Err(BuildError::Pull {
            reference: reference.to_string(),
            message: format!(
                "image is inconsistent: manifest lists {} layers but config has {} diff_ids",
                img.manifest.layers.len(),
                diff_ids.len()
            ),
        });
    }
    Ok(img
        .manifest
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(d, diff_id)| StageLayer {
            descriptor: d.clone(),
            diff_id,
            origin: LayerOrigin::Base(img.reference.clone()),
            uncompressed_size: None,
        })
        .collect())
}
