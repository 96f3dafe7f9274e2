//! A whole build: the stages the target needs, in plan order, then the image, its local
//! outputs and the push. [`build`] is the engine's entry point.
//!
//! `Build` holds the parts of a build by how they are used: the read-only `BuildContext`, what
//! stages share (`Stages`), the layer cache's and the recorded file contents' bookkeeping, the
//! controller, the push check. A stage gets them all as one `Shared`, and is built by its own
//! `StageRunner`.

use std::time::Instant;

use trowel_events::{Detail, Event, LayerCacheUse, StagePlan, StepId, StepPlan};

use crate::digest::Digest;
use crate::dockerfile::{Base, Instruction};
use crate::engine::contents::ContentCapture;
use crate::engine::context::BuildContext;
use crate::engine::controller::Controller;
use crate::engine::emit::Emitter;
use crate::engine::error::BuildError;
use crate::engine::layer::StageLayer;
use crate::engine::layer_cache::LayerCache;
use crate::engine::options::BuildOptions;
use crate::engine::push_check::PushCheck;
use crate::engine::shared::Shared;
use crate::engine::stages::Stages;
use crate::image::index::FinalIndex;
use crate::image::outputs::{Artifact, FinalImage};

/// What a successful build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// One image per target platform, in the order the platforms were given.
    pub images: Vec<FinalImage>,
    /// The index naming them, in a build for several platforms.
    pub index: Option<FinalIndex>,
    /// Destinations pushed to (`registry/repo:tag`).
    pub pushed: Vec<String>,
}

impl BuildResult {
    /// What the destinations name: the index of a build for several platforms, else the image.
    pub fn digest(&self) -> &Digest {
        match &self.index {
            Some(i) => &i.digest,
            None => &self.images[0].manifest_digest,
        }
    }
}

/// Runs a whole build, reporting it through `emitter` and steered by `controller`. A failure
/// is reported as a `build_failed` event and returned.
pub fn build(
    opts: &BuildOptions,
    emitter: &Emitter,
    controller: &mut dyn Controller,
) -> Result<BuildResult, BuildError> {
    let started = Instant::now();
    // Whatever emitter the caller made, this build's secrets are masked in every event: a
    // forgotten redactor must not mean secrets in clear (failing closed).
    emitter.mask_also(&opts.redactor());
    let result = Build::new(opts, emitter.clone(), &mut *controller)
        .map_err(|e| super::disk_full::explain(e, opts))
        .and_then(|mut b| b.run());
    // Changes since the last step boundary (a breakpoint removed at the last pause) are the
    // list the build ended with.
    if let Some(set) = controller.breakpoints_changed() {
        emitter.emit(Event::Breakpoints { set });
    }
    match &result {
        Ok(r) => emitter.emit(Event::BuildFinished {
            duration_ms: started.elapsed().as_millis() as u64,
            digest: Some(r.digest().into()),
            pushed: r.pushed.clone(),
        }),
        Err(e) => emitter.emit(Event::BuildFailed {
            error: e.to_string(),
            step: e.step(),
            line: e.location().map(|l| l.line),
            aborted: e.is_aborted(),
        }),
    }
    result
}

pub(crate) struct Build<'o> {
    pub ctx: BuildContext<'o>,
    pub stages: Stages,
    pub cache: Option<LayerCache>,
    pub contents: Option<ContentCapture>,
    pub controller: &'o mut dyn Controller,
    pub push_check: PushCheck,
}

impl<'o> Build<'o> {
    fn new(
        opts: &'o BuildOptions,
        emitter: Emitter,
        controller: &'o mut dyn Controller,
    ) -> Result<Build<'o>, BuildError> {
        let detail: Detail = emitter.detail().union(controller.detail());
        let mut ctx = BuildContext::new(opts, emitter, detail)?;
        ctx.stop = controller.stop_handle();
        ctx.watch_stop();
        let stages = Stages::new(&ctx.df, &ctx.plan);
        let contents = match detail.file_contents {
            Some(limit) => {
                let store = crate::engine::contents::ContentPack::create_in(&ctx.work.path().join("contents"))
                    .map_err(BuildError::io("open the store of recorded file contents".to_string()))?;
                Some(ContentCapture::new(limit, store))
            }
            None => None,
        };
        let cache = LayerCache::new(&ctx)?;
        Ok(Build { ctx, stages, cache, contents, controller, push_check: PushCheck::default() })
    }

    /// The state stages share, lent to a stage.
    pub(crate) fn shared(&mut self) -> Shared<'_, 'o> {
        Shared {
            ctx: &self.ctx,
            stages: &mut self.stages,
            cache: self.cache.as_mut(),
            contents: self.contents.as_mut(),
            controller: &mut *self.controller,
            push_check: &mut self.push_check,
        }
    }

    fn run(&mut self) -> Result<BuildResult, BuildError> {
        // A full disk is looked at while it is still full: before anything below frees space.
        let result = self.run_stages_and_publish().map_err(|e| super::disk_full::explain(e, self.ctx.opts));
        // Layers sent ahead that no push committed (a failed build, a refused push) never
        // become blobs.
        self.ctx.cancel_early_uploads();
        // Layers of steps that succeeded are worth caching even when a later step failed.
        if let Some(c) = self.cache.as_mut() {
            c.finish(&self.ctx);
        }
        // Upload sessions opened ahead that no upload took (the push check's, those of the
        // stages' last layers) are cancelled, and the build waits for the cancels: nothing of
        // it is left open on a registry. Most went right after the push (`publish.rs`), while
        // the cache's writes finished. Sessions still being opened are waited for first, or
        // one could open after this and stay.
        self.ctx.settle_sessions();
        self.ctx.let_go_of_sessions(None);
        self.ctx.settle_sessions();
        // Digests of files this build read are right whether or not it succeeded.
        self.ctx.save_context_digests();
        // Roots a failed build left are unmounted and deleted too (a no-op after a success),
        // and deleting roots must be over before the work dir itself goes.
        self.stages.release_all(&self.ctx);
        self.stages.join_reapers();
        if self.ctx.opts.run.cleanup
            && self.stages.used_slash()
            && let Some(keep) = &self.ctx.slash_keep
        {
            let r = crate::fs::Root::open(std::path::Path::new("/"))
                .and_then(|root| crate::fs::clean::clean_root(&root, "/", keep));
            if let Err(e) = r {
                self.ctx.emitter.warn(format!("--cleanup: {e}"));
            }
        }
        result
    }

    fn run_stages_and_publish(&mut self) -> Result<BuildResult, BuildError> {
        self.emit_plan();
        // The breakpoints the build starts with, before any step can hit one.
        if let Some(set) = self.controller.breakpoints_changed() {
            self.ctx.emitter.emit(Event::Breakpoints { set });
        }
        for a in &self.ctx.plan.unused_build_args {
            self.ctx.emitter.warn(format!("build arg {a} was given but not used by any stage"));
        }
        // Build checks: what the Dockerfile alone decides, before anything is pulled.
        crate::engine::checks::before_build(&self.ctx)?;
        let out = &self.ctx.opts.output;
        if !out.no_push && !out.skip_push_permission_check {
            self.push_check = PushCheck::start(&self.ctx)?;
        }
        if self.ctx.plan.is_multi_platform() {
            self.resolve_bases()?;
        }
        // Every base's layers start downloading now, not when its stage first needs files.
        self.ctx.start_prefetch(self.cache.as_ref());
        // RUN's sandbox namespace is made while the base downloads, not by the first RUN.
        let runs = self.ctx.df.stages.iter().flat_map(|s| &s.instructions);
        if runs.into_iter().any(|i| matches!(i.kind, crate::dockerfile::InstructionKind::Run { .. })) {
            crate::sandbox::prepare(self.ctx.opts.run.isolation, &self.ctx.opts.run.helper_exe);
        }
        let built = self.build_stages();
        self.ctx.stop_prefetch();
        crate::sandbox::release();
        built?;
        let targets = self.ctx.plan.targets.clone();
        let images: Vec<FinalImage> =
            targets.iter().enumerate().map(|(slot, &t)| self.assemble(t, slot)).collect::<Result<_, _>>()?;
        // Every layer is written and the push review has no shell: no root is needed any
        // more, and deleting them (tens of thousands of files) overlaps the push.
        self.stages.release_all(&self.ctx);
        self.push_check.finish(&self.ctx)?;
        let layers: Vec<Vec<StageLayer>> = targets
            .iter()
            .map(|&t| self.stages.get(t).map(|s| s.layers.clone()))
            .collect::<Option<_>>()
            .ok_or_else(|| BuildError::Options("the target stage was not built".into()))?;
        if self.ctx.plan.is_multi_platform() {
            let index = self.assemble_index(&images)?;
            let pushed = self.publish(Artifact::Index(&index), &layers)?;
            return Ok(BuildResult { images, index: Some(index), pushed });
        }
        let pushed = self.publish(Artifact::Image(&images[0]), &layers)?;
        Ok(BuildResult { images, index: None, pushed })
    }

    /// A build for several platforms resolves every base for its platform before building
    /// anything: a base that lacks one of the platforms fails the build at once, not after the
    /// other platforms were built. (The stages then find them resolved; a base the cache
    /// directory has is left to it.)
    fn resolve_bases(&self) -> Result<(), BuildError> {
        let ctx = &self.ctx;
        for &idx in &ctx.plan.order {
            let Base::Image(r) = &ctx.plan.stages[idx].base else { continue };
            let platform = ctx.plan.stage_platform(idx);
            let cached = ctx.base_cache.as_ref().is_some_and(|dir| {
                let ttl = ctx.opts.cache.as_ref().map(|c| c.ttl);
                crate::registry::Reference::parse(r)
                    .is_ok_and(|reference| matches!(dir.lookup_explained(&reference, &platform, ttl), Ok(Ok(_))))
            });
            if cached {
                continue;
            }
            if let Err(e) = ctx.resolve_once(r, Some(&platform)) {
                let from = &ctx.df.stages[ctx.plan.stages[idx].dockerfile_stage].from;
                return Err(BuildError::Step {
                    location: ctx.location(from),
                    step: Some(StepId { stage: idx, step: 0 }),
                    source: Box::new(crate::engine::error::StepError::Invalid(format!(
                        "the base image for {platform}: {e}"
                    ))),
                });
            }
        }
        Ok(())
    }

    /// `build_started`: the whole plan, so a viewer can show every step before it runs.
    fn emit_plan(&self) {
        let ctx = &self.ctx;
        let multi = ctx.plan.is_multi_platform();
        let stages = ctx
            .plan
            .stages
            .iter()
            .map(|ps| {
                let st = &ctx.df.stages[ps.dockerfile_stage];
                let steps = std::iter::once(&st.from)
                    .chain(st.instructions.iter())
                    .enumerate()
                    .map(|(i, ins)| step_plan(StepId { stage: ps.index, step: i }, ins))
                    .collect();
                StagePlan {
                    index: ps.index,
                    name: ps.name.clone(),
                    base: match &ps.base {
                        Base::Scratch => "scratch".to_string(),
                        Base::Image(r) => r.clone(),
                        Base::Stage(i) => ctx.plan.stages[*i].name.clone().unwrap_or_else(|| i.to_string()),
                    },
                    needed: ps.needed,
                    dockerfile_stage: multi.then_some(ps.dockerfile_stage),
                    platform: multi.then(|| ctx.plan.stage_platform(ps.index).to_string()),
                    targets: if multi { ctx.plan.target_names(ps.index) } else { Vec::new() },
                    steps,
                }
            })
            .collect();
        ctx.emitter.emit(Event::BuildStarted {
            version: env!("CARGO_PKG_VERSION").to_string(),
            dockerfile_path: ctx.opts.dockerfile.display().to_string(),
            dockerfile_text: ctx.df.text.clone(),
            context: ctx.opts.context.display().to_string(),
            context_origin: ctx.opts.remote_context.as_ref().map(|c| crate::engine::report::context_origin(&c.origin)),
            target: ctx.opts.target.clone(),
            destinations: ctx.opts.output.destinations.clone(),
            platform: ctx.platform.to_string(),
            platforms: if multi {
                ctx.plan.platforms.iter().map(|p| p.target.to_string()).collect()
            } else {
                Vec::new()
            },
            isolation: ctx.opts.run.isolation.to_string(),
            single_snapshot: ctx.opts.layers.single_snapshot,
            // What the build set up, not what the flags asked for: `--single-snapshot` turns
            // `--cache` off.
            layer_cache: Some(match (&self.cache, &ctx.opts.cache) {
                (Some(_), Some(c)) => LayerCacheUse::On { run_layers: c.run_layers, copy_layers: c.copy_layers },
                _ => LayerCacheUse::Off,
            }),
            stages,
        });
        if let Some(note) = &ctx.opts.run.isolation_note {
            ctx.emitter.warn(note.clone());
        }
    }
}

fn step_plan(id: StepId, ins: &Instruction) -> StepPlan {
    StepPlan {
        id,
        line: ins.line,
        end_line: ins.end_line,
        keyword: ins.keyword().to_string(),
        source: ins.source.clone(),
        onbuild: false,
    }
}
