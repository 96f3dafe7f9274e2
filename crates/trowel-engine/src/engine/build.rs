//! The build engine: plans the stages, builds the ones the target needs in order, assembles the
//! image, writes local outputs and pushes. Every step is reported as events and every step
//! boundary is a point where the [`Controller`] may pause or abort.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::digest::Digest;
use crate::dockerfile::{self, Base, DockerIgnore, Dockerfile, Instruction, Plan};
use crate::engine::controller::{Checkpoint, Command, Controller, StepReport};
use crate::engine::emit::Emitter;
use crate::engine::error::{BuildError, Location};
use crate::engine::options::BuildOptions;
use crate::engine::stage::StageState;
use crate::engine::steps::{self, StepCtx, StepOutcome};
use crate::engine::vars::StepVars;
use crate::fs::ignore::IgnoreList;
use crate::fs::root::Root;
use crate::image::manifest::Platform;
use crate::image::outputs::FinalImage;
use crate::image::store::BlobStore;
use crate::registry::Registry;
use trowel_events::When;
use trowel_events::{Event, StagePlan, StepId, StepPlan, StepStatus};

/// What a successful build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    pub image: FinalImage,
    /// Destinations pushed to (`registry/repo:tag`).
    pub pushed: Vec<String>,
}

impl BuildResult {
    pub fn digest(&self) -> &Digest {
        &self.image.manifest_digest
    }
}

/// Runs a whole build. Failures are reported as a `BuildFailed` event and returned.
pub fn build(
    opts: &BuildOptions,
    emitter: &Emitter,
    controller: &mut dyn Controller,
) -> Result<BuildResult, BuildError> {
    let started = Instant::now();
    let result = Engine::new(opts, emitter.clone(), controller).and_then(|mut e| e.run());
    match &result {
        Ok(r) => emitter.emit(Event::BuildFinished {
            duration_ms: started.elapsed().as_millis() as u64,
            digest: Some(r.image.manifest_digest.clone().into()),
            pushed: r.pushed.clone(),
        }),
        Err(e) => {
            let line = e.location().map(|l| l.line);
            emitter.emit(Event::BuildFailed {
                error: e.to_string(),
                step: None,
                line,
                aborted: matches!(e, BuildError::Aborted(_)),
            });
        }
    }
    result
}

pub(crate) struct Engine<'a> {
    pub opts: &'a BuildOptions,
    pub emitter: Emitter,
    pub controller: &'a mut dyn Controller,
    pub rt: tokio::runtime::Runtime,
    pub registry: Registry,
    pub store: BlobStore,
    /// Build roots, downloads and scratch files; removed when the build ends.
    pub work: crate::engine::workdir::WorkDir,
    pub df: Dockerfile,
    pub plan: Plan,
    pub platform: Platform,
    pub context: Root,
    pub dockerignore: DockerIgnore,
    /// Built stages by index (taken out while the stage itself is building).
    pub stages: Vec<Option<StageState>>,
    /// Roots of images used by `COPY --from=<image>`, by reference.
    pub external: HashMap<String, crate::engine::steps::copy::ExternalRoot>,
    /// For each stage, the later stages that read it (FROM or COPY --from), in build order.
    pub consumers: Vec<Vec<(usize, bool)>>,
    pub snapshot_ignore: IgnoreList,
    /// ADD URL downloads by URL (shared by the cache-key planner and the step).
    pub downloads: std::sync::Mutex<HashMap<String, crate::engine::steps::copy::Download>>,
    /// Container isolation's view of `/` (None in chroot isolation).
    pub container: Option<crate::engine::container::ContainerMode>,
    /// The base-image cache directory (`--cache-dir` with `--cache`).
    pub base_cache: Option<crate::cache::basedir::BaseImageCache>,
    /// Masks secret build-arg values in history and cache entries.
    pub redactor: crate::secrets::Redactor,
    /// Content capture for diffs, when asked for.
    pub contents: Option<crate::engine::contents::ContentCapture>,
    /// The layer cache, with `--cache`.
    pub cache: Option<crate::engine::cache::CacheCtx>,
    /// Images resolved in this build, so a reference means one digest throughout.
    pub resolved: std::sync::Mutex<HashMap<String, crate::registry::ResolvedImage>>,
    /// Threads deleting build roots no longer needed; joined before the build returns.
    pub reapers: Vec<std::thread::JoinHandle<()>>,
    /// Push permission checks still running, by destination.
    pub push_check: Vec<(String, tokio::task::JoinHandle<Result<(), String>>)>,
}

impl<'a> Engine<'a> {
    fn new(
        opts: &'a BuildOptions,
        emitter: Emitter,
        controller: &'a mut dyn Controller,
    ) -> Result<Engine<'a>, BuildError> {
        let text = std::fs::read_to_string(&opts.dockerfile)
            .map_err(|e| BuildError::Setup(format!("read Dockerfile {}: {e}", opts.dockerfile.display())))?;
        let df = dockerfile::parse(&opts.dockerfile, &text)?;
        let platform = opts.target_platform();
        let plan = dockerfile::plan(
            &df,
            opts.target.as_deref(),
            &opts.build_args,
            &dockerfile::PlatformArgs { target: platform.clone(), build: Platform::host() },
        )?;
        let context = Root::open(&opts.context)
            .map_err(|e| BuildError::Setup(format!("open build context {}: {e}", opts.context.display())))?;
        let dockerignore = DockerIgnore::load(&opts.context, &opts.dockerfile)
            .map_err(|e| BuildError::Setup(format!("read .dockerignore: {e}")))?;
        // Removing a dead build's directory is routine housekeeping, not news for the log (and
        // would make traces depend on what ran before); only a failure to remove one is reported.
        let sweep = crate::engine::workdir::remove_stale(&opts.work_dir);
        for (d, why) in &sweep.failed {
            emitter.warn(format!("cannot remove {}, left behind by a build that did not finish: {why}", d.display()));
        }
        let work = crate::engine::workdir::WorkDir::create(&opts.work_dir)
            .map_err(|e| BuildError::Setup(format!("create work dir in {}: {e}", opts.work_dir.display())))?;
        let store = BlobStore::open_scratch(work.path().join("blobs")).map_err(|e| BuildError::Setup(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BuildError::Setup(format!("start async runtime: {e}")))?;
        let registry = Registry::new(opts.registry.clone()).map_err(|e| BuildError::Setup(e.to_string()))?;
        let container = match opts.isolation {
            crate::sandbox::Isolation::Container => {
                Some(crate::engine::container::ContainerMode::setup(opts, work.path())?)
            }
            crate::sandbox::Isolation::Chroot => None,
        };
        let snapshot_ignore = match &container {
            Some(c) => c.ignore.clone(),
            None => {
                let mut i = IgnoreList::new(opts.ignore_paths.iter().map(String::as_str));
                if opts.ignore_var_run {
                    i.add("/var/run");
                }
                i
            }
        };
        let consumers = consumers_of(&plan);
        let base_cache = match opts.cache.as_ref().and_then(|c| c.dir.as_ref()) {
            Some(dir) => match crate::cache::basedir::BaseImageCache::open(dir) {
                Ok(c) => Some(c),
                Err(e) => {
                    emitter.warn(format!("cache directory {} is not usable: {e}", dir.display()));
                    None
                }
            },
            None => None,
        };
        let contents = match opts.capture_contents {
            Some(limit) => Some(crate::engine::contents::ContentCapture::new(
                limit,
                BlobStore::open_scratch(work.path().join("contents")).map_err(|e| BuildError::Setup(e.to_string()))?,
            )),
            None => None,
        };
        let cache = match &opts.cache {
            Some(c) if opts.single_snapshot => {
                let _ = c;
                emitter.warn("--cache is ignored with --single-snapshot: a stage has only one layer");
                None
            }
            Some(c) => {
                let repo = crate::engine::cache::cache_repo(c, &opts.destinations).map_err(BuildError::Setup)?;
                let remote = crate::cache::registry::RegistryCache::new(
                    registry.clone(),
                    repo,
                    c.ttl,
                    c.ttl_text.clone(),
                    platform.clone(),
                );
                Some(crate::engine::cache::CacheCtx::new(c, remote, dockerfile_id(&opts.dockerfile, &opts.context)))
            }
            None => None,
        };
        let stages = (0..plan.stages.len()).map(|_| None).collect();
        Ok(Engine {
            opts,
            emitter,
            controller,
            rt,
            registry,
            store,
            work,
            df,
            plan,
            platform,
            context,
            dockerignore,
            stages,
            external: HashMap::new(),
            consumers,
            snapshot_ignore,
            base_cache,
            container,
            redactor: opts.redactor(),
            contents,
            cache,
            downloads: std::sync::Mutex::new(HashMap::new()),
            resolved: std::sync::Mutex::new(HashMap::new()),
            reapers: Vec::new(),
            push_check: Vec::new(),
        })
    }

    fn run(&mut self) -> Result<BuildResult, BuildError> {
        let result = self.run_inner();
        // Layers of steps that succeeded are worth caching even when a later step failed.
        self.finish_cache();
        // Deleting roots must be over before the work dir itself goes.
        for r in std::mem::take(&mut self.reapers) {
            let _ = r.join();
        }
        if self.opts.cleanup
            && let Some(c) = &self.container
            && c.owner.is_some()
        {
            let r = crate::fs::Root::open(std::path::Path::new("/"))
                .and_then(|root| crate::fs::clean::clean_root(&root, "/", &c.ignore));
            if let Err(e) = r {
                self.emitter.warn(format!("--cleanup: {e}"));
            }
        }
        result
    }

    fn run_inner(&mut self) -> Result<BuildResult, BuildError> {
        self.emit_plan();
        for a in &self.plan.unused_build_args {
            self.emitter.warn(format!("build arg {a} was given but not used by any stage"));
        }
        if !self.opts.no_push && !self.opts.skip_push_permission_check {
            self.start_push_check()?;
        }
        let order = self.plan.order.clone();
        for idx in order {
            self.build_stage(idx)?;
        }
        let target = self.plan.target;
        let image = self.assemble(target)?;
        // Every layer is written and the push review has no shell: no root is needed any
        // more, and deleting them (tens of thousands of files) overlaps the push.
        self.release_roots(|_| true);
        self.finish_push_check()?;
        let pushed = self.publish(&image)?;
        Ok(BuildResult { image, pushed })
    }

    fn emit_plan(&self) {
        let stages = self
            .plan
            .stages
            .iter()
            .map(|ps| {
                let st = &self.df.stages[ps.index];
                let steps = std::iter::once(&st.from)
                    .chain(st.instructions.iter())
                    .enumerate()
                    .map(|(i, ins)| step_plan(StepId { stage: ps.index, step: i }, ins, false))
                    .collect();
                StagePlan {
                    index: ps.index,
                    name: ps.name.clone(),
                    base: match &ps.base {
                        Base::Scratch => "scratch".to_string(),
                        Base::Image(r) => r.clone(),
                        Base::Stage(i) => self.plan.stages[*i].name.clone().unwrap_or_else(|| i.to_string()),
                    },
                    needed: ps.needed,
                    steps,
                }
            })
            .collect();
        self.emitter.emit(Event::BuildStarted {
            version: env!("CARGO_PKG_VERSION").to_string(),
            dockerfile_path: self.opts.dockerfile.display().to_string(),
            dockerfile_text: self.df.text.clone(),
            context: self.opts.context.display().to_string(),
            target: self.opts.target.clone(),
            destinations: self.opts.destinations.clone(),
            platform: self.platform.to_string(),
            isolation: self.opts.isolation.to_string(),
            stages,
        });
    }

    pub fn location(&self, ins: &Instruction) -> Location {
        Location {
            file: self.opts.dockerfile.display().to_string(),
            line: ins.line,
            instruction: ins.source.lines().next().unwrap_or_default().trim().to_string(),
        }
    }

    /// Runs every step of one stage.
    fn build_stage(&mut self, idx: usize) -> Result<(), BuildError> {
        let t0 = Instant::now();
        let from = self.df.stages[idx].from.clone();
        let instructions = self.df.stages[idx].instructions.clone();
        let from_id = StepId { stage: idx, step: 0 };
        let loc = self.location(&from);
        self.emitter.emit(Event::StageStarted {
            stage: idx,
            name: self.plan.stages[idx].name.clone(),
            base: self.base_display(idx),
        });
        self.emitter.emit(Event::StepStarted {
            id: from_id,
            line: from.line,
            end_line: from.end_line,
            keyword: from.keyword.to_string(),
            source: from.source.clone(),
            expanded: format!("FROM {}", self.base_display(idx)),
        });
        let mut st = match self.start_stage(idx, &loc) {
            Ok(st) => st,
            Err(e) => {
                self.emitter.emit(Event::StepFinished {
                    id: from_id,
                    status: StepStatus::Failed,
                    duration_ms: t0.elapsed().as_millis() as u64,
                    paused_ms: 0,
                    layer: None,
                    exit_code: None,
                });
                return Err(e);
            }
        };
        let mut cp = Checkpoint {
            when: When::BeforeStep,
            id: from_id,
            line: from.line,
            stage_name: self.plan.stages[idx].name.clone(),
            keyword: "FROM".into(),
            expanded: format!("FROM {}", self.base_display(idx)),
            report: None,
            root_dir: None,
        };
        self.checkpoint(&mut st, &cp)?;
        let triggers = st.config.onbuild();
        st.config.set_onbuild(Vec::new());
        self.emitter.emit(Event::StepFinished {
            id: from_id,
            status: StepStatus::Metadata,
            duration_ms: t0.elapsed().as_millis() as u64,
            paused_ms: 0,
            layer: None,
            exit_code: None,
        });
        cp.when = When::AfterStep;
        cp.report = Some(StepReport {
            status: StepStatus::Metadata,
            error: None,
            exit_code: None,
            layer_size: None,
            changed_paths: Vec::new(),
            cache_miss: false,
        });
        self.checkpoint(&mut st, &cp)?;

        // ONBUILD triggers of the base image run before the stage's own instructions.
        let mut steps: Vec<(StepId, Instruction)> = Vec::new();
        let first_trigger_id = instructions.len() + 1;
        for (i, t) in triggers.iter().enumerate() {
            let mut ins =
                dockerfile::parse_instruction_line(&self.opts.dockerfile, t).map_err(|e| BuildError::Step {
                    location: loc.clone(),
                    message: format!("ONBUILD trigger {t:?} from the base image: {e}"),
                    exit_code: None,
                })?;
            ins.line = from.line;
            ins.end_line = from.end_line;
            steps.push((StepId { stage: idx, step: first_trigger_id + i }, ins));
        }
        if !steps.is_empty() {
            self.emitter.emit(Event::Warning {
                message: format!("stage {idx}: running {} ONBUILD trigger(s) from the base image", steps.len()),
            });
        }
        for (i, ins) in instructions.into_iter().enumerate() {
            steps.push((StepId { stage: idx, step: i + 1 }, ins));
        }

        self.plan_keys(&mut st, &from, &steps)?;
        for (id, ins) in steps {
            self.run_step(&mut st, id, &ins)?;
        }
        if self.opts.single_snapshot {
            let last = StepId { stage: idx, step: self.df.stages[idx].instructions.len() };
            steps::layer::single_snapshot(self, &mut st, last)?;
        }
        self.emitter.emit(Event::StageFinished {
            stage: idx,
            duration_ms: t0.elapsed().as_millis() as u64,
            layers: st.layers.len(),
        });
        self.stages[idx] = Some(st);
        self.release_roots_after(idx);
        Ok(())
    }

    fn run_step(&mut self, st: &mut StageState, id: StepId, ins: &Instruction) -> Result<(), BuildError> {
        let loc = self.location(ins);
        let t0 = Instant::now();
        let expanded = {
            let vars = StepVars { config: &st.config, args: &st.args };
            ins.expand(&vars, self.df.escape)?
        };
        let display = expanded.display();
        // A step that will do work waits for the push check first, so a destination that
        // refuses the push fails the build before anything is built; a step the cache may
        // serve waits only if it misses (below).
        let does_work = matches!(ins.keyword, "RUN" | "COPY" | "ADD");
        let may_be_cached = self.cache.is_some() && st.planned.get(&id).is_some_and(|p| p.cacheable);
        if does_work && !may_be_cached {
            self.finish_push_check()?;
        }
        self.emitter.emit(Event::StepStarted {
            id,
            line: ins.line,
            end_line: ins.end_line,
            keyword: ins.keyword.to_string(),
            source: ins.source.clone(),
            expanded: display.clone(),
        });
        let mut cp = Checkpoint {
            when: When::BeforeStep,
            id,
            line: ins.line,
            stage_name: self.plan.stages[id.stage].name.clone(),
            keyword: ins.keyword.to_string(),
            expanded: display.clone(),
            report: None,
            root_dir: None,
        };
        self.checkpoint(st, &cp)?;
        st.last_changes.clear();
        let ctx = StepCtx { id, loc: loc.clone(), instruction: ins, display: display.clone() };
        // A planned key is only trusted if the plan saw exactly this instruction.
        let planned = st.planned.get(&id).filter(|p| p.display == display).cloned();
        let cached = match &planned {
            Some(p) if p.cacheable => self.try_cache(st, id, p, &display)?,
            _ => None,
        };
        let cache_miss = planned.as_ref().is_some_and(|p| p.cacheable) && cached.is_none();
        let result = match cached {
            Some(outcome) => {
                // A cached WORKDIR still sets the working directory.
                if let crate::dockerfile::Expanded::Workdir(_) = &expanded {
                    let _ = crate::engine::steps::metadata::apply_to_state(
                        &mut st.config,
                        &mut st.args,
                        &mut st.cmd_set,
                        ins,
                        self.df.escape,
                        expanded,
                    );
                }
                Ok(outcome)
            }
            None => {
                self.finish_push_check()?;
                let r = steps::execute(self, st, &ctx, expanded);
                if let (Ok(outcome), Some(p)) = (&r, &planned) {
                    self.store_in_cache(st, id, p, outcome);
                }
                r
            }
        };
        let (status, layer, exit_code) = match &result {
            Ok(StepOutcome { status, layer }) => (*status, layer.clone(), None),
            Err(e) => (
                StepStatus::Failed,
                None,
                match e {
                    BuildError::Step { exit_code, .. } => *exit_code,
                    _ => None,
                },
            ),
        };
        self.emitter.emit(Event::StepFinished {
            id,
            status,
            duration_ms: t0.elapsed().as_millis() as u64,
            paused_ms: 0,
            layer: layer.as_ref().map(Into::into),
            exit_code,
        });
        cp.when = When::AfterStep;
        cp.report = Some(StepReport {
            status,
            error: result.as_ref().err().map(|e| e.to_string()),
            exit_code,
            layer_size: layer
                .as_ref()
                .and_then(|d| st.layers.iter().rev().find(|l| &l.descriptor.digest == d))
                .map(|l| l.descriptor.size),
            changed_paths: std::mem::take(&mut st.last_changes),
            cache_miss,
        });
        let after = self.checkpoint(st, &cp);
        result?;
        after
    }

    /// Consults the controller at a checkpoint until it lets the build go on, running the shell
    /// sessions it asks for.
    pub(crate) fn checkpoint(&mut self, st: &mut StageState, cp: &Checkpoint) -> Result<(), BuildError> {
        let mut cp = cp.clone();
        loop {
            cp.root_dir = st.root.as_ref().map(|r| r.dir.clone());
            let cp = &cp;
            match self.controller.checkpoint(cp) {
                Command::Continue => return Ok(()),
                Command::Abort(why) => return Err(BuildError::Aborted(why)),
                Command::Shell(argv) => {
                    if let Err(e) = self.shell_session(st, cp, argv) {
                        self.emitter.warn(format!("shell session at line {}: {e}", cp.line));
                    }
                }
            }
        }
    }

    fn base_display(&self, idx: usize) -> String {
        match &self.plan.stages[idx].base {
            Base::Scratch => "scratch".to_string(),
            Base::Image(r) => r.clone(),
            Base::Stage(p) => self.plan.stages[*p].name.clone().unwrap_or_else(|| format!("stage {p}")),
        }
    }

    /// Frees build roots no later stage needs any more (they can be large).
    fn release_roots_after(&mut self, built: usize) {
        let (order, target, consumers) = (self.plan.order.clone(), self.plan.target, self.consumers.clone());
        let pos = |s: usize| order.iter().position(|&x| x == s).unwrap_or(usize::MAX);
        let now = pos(built);
        self.release_roots(|s| s != target && !consumers[s].iter().any(|(c, _)| pos(*c) > now));
    }

    /// Deletes the roots of the stages `unneeded` selects on a background thread: the build
    /// goes on meanwhile (deleting a root is unlink-bound kernel work, one call per file).
    fn release_roots(&mut self, unneeded: impl Fn(usize) -> bool) {
        let mut dirs = Vec::new();
        for s in 0..self.stages.len() {
            if unneeded(s)
                && let Some(st) = self.stages[s].as_mut()
                && let Some(root) = st.root.take()
            {
                // In container isolation a stage's root may be `/` itself: it is only handed
                // over, never deleted.
                if root.dir != std::path::Path::new("/") {
                    dirs.push(root.dir.clone());
                }
            }
        }
        if dirs.is_empty() {
            return;
        }
        let reaper = std::thread::Builder::new().name("reaper".into()).spawn(move || {
            for d in dirs {
                let _ = crate::fs::remove::remove_tree(&d);
            }
        });
        match reaper {
            Ok(h) => self.reapers.push(h),
            // No thread to be had: the work dir's own removal at the end deletes them.
            Err(e) => self.emitter.warn(format!("could not start a thread to delete build roots: {e}")),
        }
    }

    /// A fresh directory under the work dir.
    pub fn scratch_dir(&self, name: &str) -> Result<PathBuf, BuildError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(self.work.path())
            .map_err(|e| BuildError::Setup(format!("create {name} dir: {e}")))?
            .keep();
        Ok(dir)
    }
}

/// Identifies a Dockerfile across builds: its path inside the context, else its file name.
fn dockerfile_id(dockerfile: &std::path::Path, context: &std::path::Path) -> String {
    let abs = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match abs(dockerfile).strip_prefix(abs(context)) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => dockerfile.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    }
}

fn step_plan(id: StepId, ins: &Instruction, onbuild: bool) -> StepPlan {
    StepPlan {
        id,
        line: ins.line,
        end_line: ins.end_line,
        keyword: ins.keyword.to_string(),
        source: ins.source.clone(),
        onbuild,
    }
}

/// For every stage, which stages read it and whether they only use it as `FROM` (false) or
/// copy from it (true).
fn consumers_of(plan: &Plan) -> Vec<Vec<(usize, bool)>> {
    let mut out = vec![Vec::new(); plan.stages.len()];
    for s in &plan.stages {
        if !s.needed {
            continue;
        }
        if let Base::Stage(p) = s.base {
            out[p].push((s.index, false));
        }
        for dep in &s.copy_from {
            if let dockerfile::StageOrImage::Stage(p) = dep {
                out[*p].push((s.index, true));
            }
        }
    }
    out
}
