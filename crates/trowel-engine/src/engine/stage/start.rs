//! Starting a stage from its base — scratch, a registry image (or the base-image cache
//! directory `trowel warm` fills), or an earlier stage — without touching a file: the root is
//! made later, when a step first needs files.

use std::time::Duration;

use trowel_events::{BaseSource, Event, StepId};

use crate::cache::basedir::Miss;
use crate::dockerfile::Base;
use crate::engine::context::BuildContext;
use crate::engine::error::{BuildError, Location, PullError, StepError};
use crate::engine::layer::{LayerOrigin, StageLayer};
use crate::engine::layer_cache::StageKeys;
use crate::engine::shared::Shared;
use crate::engine::stage::{StageConfig, StageFiles, StageRunner};
use crate::image::config::ImageConfig;
use crate::image::manifest::{ManifestFormat, Platform};
use crate::registry::{Reference, ResolvedImage};

impl StageRunner {
    /// Resolves the stage's base and reports it (`base_resolved`).
    pub(super) fn start(s: &mut Shared<'_, '_>, idx: usize, loc: &Location) -> Result<StageRunner, BuildError> {
        let ctx = s.ctx;
        let planned = &ctx.plan.stages[idx];
        let fail = |m: String| BuildError::Step {
            location: loc.clone(),
            step: Some(StepId { stage: idx, step: 0 }),
            source: Box::new(StepError::Invalid(m)),
        };
        // A base that cannot be had is reported at its `FROM`, as BuildKit shows the line: a
        // Dockerfile may name one image in several stages, or through an ARG.
        let at_from = |e: BuildError| BuildError::Step {
            location: loc.clone(),
            step: Some(StepId { stage: idx, step: 0 }),
            source: Box::new(StepError::Build(Box::new(e))),
        };
        // A stage built on another inherits its declared ARGs (BuildKit); any other starts
        // afresh. Either way the global values are those of the stage's own target platform.
        let mut args = ctx.plan.arg_scope_for(idx);
        // A stage built on one with COPYs not run starts from layers that lack them: it carries
        // them on, each at the same place in its layers (which begin with the parent's).
        let mut deferred = Vec::new();
        let (config, format, layers, base_digest, base_ref, clock, unstamped) = match &planned.base {
            Base::Scratch => {
                ctx.emitter.emit(Event::BaseResolved {
                    stage: idx,
                    source: BaseSource::Scratch,
                    config_digest: None,
                    layers: vec![],
                });
                let config = ImageConfig::scratch(&ctx.plan.stage_platform(idx));
                (config, ManifestFormat::Oci, Vec::new(), None, "scratch".to_string(), None, Vec::new())
            }
            Base::Image(r) => {
                // `FROM --platform=…` picks that platform from an index; otherwise the target's.
                let platform = match &planned.platform {
                    Some(p) if !p.is_empty() => {
                        Platform::parse(p).map_err(|e| fail(format!("FROM --platform: {e}")))?
                    }
                    _ => ctx.plan.target_platform(idx).clone(),
                };
                let reference = crate::dockerfile::checks::base_reference(r).map_err(fail)?;
                // `miss`: pulled instead, and why (`Some(None)`: no cache dir was given).
                let (img, miss) = match from_cache_dir(ctx, &reference, r, &platform) {
                    Ok(img) => (img, None),
                    Err(why) => (ctx.resolve_once(r, Some(&platform)).map_err(at_from)?, Some(why)),
                };
                let from_cache_dir = miss.is_none();
                let config =
                    ImageConfig::from_bytes(&img.config_bytes).map_err(BuildError::pull(r.clone())).map_err(at_from)?;
                let layers = base_layers(&img, &config, r).map_err(at_from)?;
                let source = if from_cache_dir {
                    BaseSource::CacheDir {
                        reference: img.reference.to_string(),
                        manifest_digest: (&img.manifest_digest).into(),
                    }
                } else {
                    BaseSource::Registry {
                        reference: img.reference.to_string(),
                        manifest_digest: (&img.manifest_digest).into(),
                        index_digest: img.index_digest.as_ref().map(Into::into),
                        cache_dir_miss: miss.flatten(),
                    }
                };
                ctx.emitter.emit(Event::BaseResolved {
                    stage: idx,
                    source,
                    config_digest: Some((&img.config_digest).into()),
                    layers: layers.iter().map(|l| l.summary(None)).collect(),
                });
                let wanted = ctx.detail.base_listings || s.controller.detail().base_listings;
                super::listing::list_base(ctx, wanted, idx, &layers)?;
                // Build checks that depend on this base (its ENV, SHELL, platform).
                crate::engine::checks::base_resolved(ctx, idx, r, &config, &platform)?;
                // Its layers may start downloading now, while the stage's keys are computed.
                if !from_cache_dir && let Some(pointer) = ctx.cold_pointer(idx, s.cache.as_deref()) {
                    ctx.prefetch_layers(idx, &img, pointer);
                }
                let format = ManifestFormat::from_manifest_media_type(&img.media_type);
                let clock = config.created().map(str::to_string);
                (config, format, layers, Some(img.manifest_digest), r.clone(), clock, Vec::new())
            }
            Base::Stage(p) => {
                let parent = s
                    .stages
                    .get(*p)
                    .ok_or_else(|| fail(format!("{} is used before it was built", ctx.stage_label(*p))))?;
                ctx.emitter.emit(Event::BaseResolved {
                    stage: idx,
                    source: BaseSource::Stage { index: *p },
                    config_digest: None,
                    layers: parent.layers.iter().map(|l| l.summary(None)).collect(),
                });
                args.inherit(&parent.args);
                deferred = parent.deferred.clone();
                // A stage built from a stage chains from the image at the bottom of it all.
                (
                    parent.config.clone(),
                    parent.format,
                    parent.layers.clone(),
                    parent.base_digest.clone(),
                    parent.base_ref.clone(),
                    parent.clock.clone(),
                    parent.unstamped.clone(),
                )
            }
        };
        let format = format.for_compression(ctx.opts.layers.compression);
        let mut config = config;
        if config.env_var("PATH").is_none() {
            config.set_env("PATH", crate::image::config::DEFAULT_PATH);
        }
        for (k, v) in &ctx.opts.labels {
            config.set_label(k, v);
        }
        Ok(StageRunner {
            index: idx,
            config: StageConfig { image: config, args, cmd_set: false },
            format,
            layers,
            files: StageFiles::default(),
            base_digest,
            base_ref,
            keys: StageKeys::default(),
            last_changes: Vec::new(),
            clock,
            unstamped,
            paused: Duration::ZERO,
            step_mounts: None,
            replan: None,
            off_dockerfile: false,
            retry_note: None,
            order: Vec::new(),
            tail_sessions: false,
            deferred,
        })
    }
}

/// A base image from the local cache directory (`--cache-dir`, filled by `trowel warm`):
/// verified, its blobs linked into this build's store, so the build needs no registry at all
/// for it — not even to resolve a tag. Anything missing or corrupt there means the registry is
/// asked instead (the build never writes to the cache directory): `Err` says why, for the
/// `base_resolved` event (`None`: the build has no cache directory). An entry that is not
/// there, or has expired, is the cache working as meant and no warning; one that is there but
/// cannot be used (a blob missing or corrupt, the directory unreadable) is a fault and warned
/// of as well.
fn from_cache_dir(
    ctx: &BuildContext<'_>,
    r: &Reference,
    written: &str,
    platform: &Platform,
) -> Result<ResolvedImage, Option<String>> {
    let Some(dir) = ctx.base_cache.as_ref() else { return Err(None) };
    let fault = |why: String| {
        ctx.emitter
            .warn(format!("{written} is not usable from the cache directory ({why}); pulling it from the registry"));
        Some(why)
    };
    // No prune collects the blobs between the entry being read and them being linked.
    let _gc = crate::cache::usage::gc_shared(dir.dir()).map_err(|e| fault(format!("{}: {e}", dir.dir().display())))?;
    let ttl = ctx.opts.cache.as_ref().map(|c| c.ttl);
    let cached = match dir.lookup_explained(r, platform, ttl) {
        Ok(Ok(c)) => c,
        Ok(Err(miss @ (Miss::NotCached | Miss::Expired { .. }))) => return Err(Some(miss.to_string())),
        Ok(Err(miss)) => return Err(fault(miss.to_string())),
        Err(e) => return Err(fault(e.to_string())),
    };
    // A tag is asked of its registry first, as kaniko does (`cachedImage` resolves it remotely
    // and looks the digest up): the directory holds what the tag named when it was warmed, and
    // tags move. Only a registry that cannot be asked (an offline build, what the warmer is
    // also for) leaves the cached image in use, with a warning. A digest never moves.
    if r.digest.is_none() {
        let held = &cached.image.manifest_digest;
        match ctx.resolve_once(written, Some(platform)) {
            Ok(now) if &now.manifest_digest != held => {
                return Err(Some(format!(
                    "the tag now names {}, the cache directory holds {held}",
                    now.manifest_digest
                )));
            }
            Ok(_) => {}
            Err(e) => ctx.emitter.warn(format!(
                "{written}: cannot ask its registry what the tag names now ({e}); using the cache directory's {held}, \
                 which it named when warmed"
            )),
        }
    }
    match dir.verify_layers(&cached) {
        Ok(bad) if bad.is_empty() => {}
        Ok(bad) => return Err(fault(format!("{} missing or corrupt layer(s)", bad.len()))),
        Err(e) => return Err(fault(e.to_string())),
    }
    if let Err(e) = dir.link_into(&cached, &ctx.store) {
        return Err(fault(e.to_string()));
    }
    Ok(cached.image)
}

/// Pairs the manifest's layers with the config's diff_ids; they must agree.
fn base_layers(img: &ResolvedImage, config: &ImageConfig, reference: &str) -> Result<Vec<StageLayer>, BuildError> {
    let diff_ids = config.diff_ids();
    if diff_ids.len() != img.manifest.layers.len() {
        return Err(BuildError::Pull {
            reference: reference.to_string(),
            source: PullError::Inconsistent(format!(
                "manifest lists {} layers but config has {} diff_ids",
                img.manifest.layers.len(),
                diff_ids.len()
            )),
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
            cached_for: None,
        })
        .collect())
}
