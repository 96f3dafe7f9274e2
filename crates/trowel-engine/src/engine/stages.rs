//! What stages leave for each other: each finished stage's result ([`BuiltStage`]), the roots
//! other stages and `COPY --from=<image>` read files from, who holds `/` in container
//! isolation, and the background deletion of roots nobody needs any more.
//!
//! Roots are large (a Debian base is tens of thousands of files), so they are handed on rather
//! than copied: a stage built `FROM` another takes its parent's root when nothing else reads
//! the parent, and a root no later stage reads is deleted on a background thread while the
//! build goes on. A stage or image read only by `COPY --from` or a RUN mount and without a root
//! is not unpacked at all: the paths its readers need are extracted from its layers
//! (`copy_source.rs`), and kept for later readers.

use std::collections::HashMap;

use trowel_events::{Event, StepId};

use crate::digest::Digest;
use crate::dockerfile::{ArgScope, Base, Dockerfile, Plan, StageOrImage};
use crate::engine::context::BuildContext;
use crate::engine::copy_source::{Need, PartialRoot};
use crate::engine::error::BuildError;
use crate::engine::known_digests::KnownDigests;
use crate::engine::layer::{LayerOrigin, StageLayer};
use crate::engine::root::{BuildRoot, RootFor};
use crate::engine::stage::defer::DeferredCopy;
use crate::fs::root::Root;
use crate::image::config::ImageConfig;
use crate::image::manifest::{ManifestFormat, Platform};

/// What a finished stage leaves: enough to build `FROM` it, copy from it, key steps after it,
/// and assemble it as the image.
pub(crate) struct BuiltStage {
    pub config: ImageConfig,
    pub format: ManifestFormat,
    pub layers: Vec<StageLayer>,
    /// Its files, while some later stage may still read them (none once released, or if the
    /// stage never needed files).
    pub root: Option<BuildRoot>,
    /// Manifest digest of the image at the bottom of it (for cache keys).
    pub base_digest: Option<Digest>,
    /// That image as written (`busybox:1.35`), for cache explanations.
    pub base_ref: String,
    /// The cache key of its last step: what `FROM <stage>` and `COPY --from` chain from.
    pub final_key: Option<String>,
    /// The end of its key chain that no entry of its own explains (a stage built on it records
    /// it: `ChainLink::stage_tail`).
    pub final_tail: Vec<crate::cache::key::ChainLink>,
    /// The COPY/ADD steps of it that were not run (`stage/defer.rs`): its `layers` (and config)
    /// lack theirs, and are never assembled or built on; a reader of its files that finds the
    /// stage without a root runs them into a root made whole (see `stage_files`). Kept once run:
    /// the root may go, and a reader's identity names them.
    pub deferred: Vec<DeferredCopy>,
    /// The keys of its COPY and ADD steps (run or hit), which name their layers' files in a
    /// copy-from record's identity (`steps/copy/from_files.rs`).
    pub copy_keys: HashMap<StepId, String>,
    /// When its contents were made (see `Stamp`).
    pub clock: Option<String>,
    /// History entries still waiting for a time (config-only steps of a `FROM scratch` stage
    /// before anything was made).
    pub unstamped: Vec<usize>,
    /// Its ARGs as they stand at its end: a stage built `FROM` it starts with them (BuildKit
    /// appends the base stage's build args).
    pub args: ArgScope,
}

impl BuiltStage {
    fn without_root(&self) -> BuiltStage {
        BuiltStage {
            config: self.config.clone(),
            format: self.format,
            layers: self.layers.clone(),
            root: None,
            base_digest: self.base_digest.clone(),
            base_ref: self.base_ref.clone(),
            final_key: self.final_key.clone(),
            final_tail: self.final_tail.clone(),
            deferred: self.deferred.clone(),
            copy_keys: self.copy_keys.clone(),
            clock: self.clock.clone(),
            unstamped: self.unstamped.clone(),
            args: self.args.clone(),
        }
    }
}

pub(crate) struct Stages {
    built: Vec<Option<BuiltStage>>,
    /// In a lane of a build for several platforms: the roots of the shared stages, opened
    /// again read-only (the build's own `Stages` owns and deletes them), so `COPY --from` a
    /// shared stage reads its files instead of unpacking them once more per lane.
    borrowed: HashMap<usize, Root>,
    /// Roots of images used by `COPY --from=<image>`, by reference.
    external: HashMap<String, BuildRoot>,
    /// The parts of stages (by index) and images (by reference) that their readers needed,
    /// extracted from their layers. Never a stage's build root: only files under what they
    /// cover are there.
    partial: HashMap<Source, PartialRoot>,
    /// What the Dockerfile's `COPY --from` instructions read of each stage (their source
    /// arguments), for its first extraction (see `copy_source::hints`).
    hints: HashMap<usize, Vec<String>>,
    /// For each stage, the later stages that read it, and whether they copy from it (true) or
    /// are built `FROM` it (false).
    consumers: Vec<Vec<(usize, bool)>>,
    /// Container isolation: the stage whose root is `/` right now.
    slash_owner: Option<usize>,
    /// Threads deleting roots no longer needed; joined before the build returns.
    reapers: Vec<std::thread::JoinHandle<()>>,
}

impl Stages {
    pub fn new(df: &Dockerfile, plan: &Plan) -> Stages {
        Stages {
            hints: crate::engine::copy_source::hints(df, plan),
            built: (0..plan.stages.len()).map(|_| None).collect(),
            borrowed: HashMap::new(),
            external: HashMap::new(),
            partial: HashMap::new(),
            consumers: consumers_of(plan),
            slash_owner: None,
            reapers: Vec::new(),
        }
    }

    /// A finished stage (the plan builds every stage before the stages that read it).
    pub fn get(&self, idx: usize) -> Option<&BuiltStage> {
        self.built.get(idx).and_then(Option::as_ref)
    }

    pub fn finish(&mut self, idx: usize, stage: BuiltStage) {
        self.built[idx] = Some(stage);
    }

    /// The parent's root, for a stage built `FROM` it, when nothing else reads the parent and
    /// it is not the image: the child can change those files in place. With it, how many layers
    /// the parent has (the root holds those, and the parent's deferred COPYs' files).
    pub fn take_parent_root(&mut self, plan: &Plan, child: usize) -> Option<(BuildRoot, usize)> {
        let Base::Stage(p) = plan.stages[child].base else { return None };
        let only_consumer = self.consumers[p].iter().all(|(c, copies)| *c == child && !copies);
        if !only_consumer || plan.targets.contains(&p) {
            return None;
        }
        let parent = self.built[p].as_mut()?;
        let root = parent.root.take()?;
        if root.is_slash() {
            self.slash_owner = Some(child);
        }
        Some((root, parent.layers.len()))
    }

    /// Container isolation: `stage` is about to unpack its files into `/`. Whichever stage had
    /// `/` loses its root (its files are gone; a later `COPY --from` unpacks them elsewhere).
    pub fn claim_slash(&mut self, stage: usize) {
        if let Some(prev) = self.slash_owner.replace(stage)
            && prev != stage
            && let Some(p) = self.built[prev].as_mut()
        {
            p.root = None;
        }
    }

    /// The key of COPY or ADD step `id` of a finished stage, if it has one.
    pub fn copy_key(&self, id: StepId) -> Option<&str> {
        self.get(id.stage)?.copy_keys.get(&id).map(String::as_str)
    }

    /// The root of finished stage `p` when it still has one that costs nothing to read (it ran,
    /// or a lane borrows a shared stage's), never one made for the asking; not `/` (container
    /// isolation), whose files under the paths the container keeps are not the stage's.
    pub fn root_at_hand(&self, p: usize) -> Option<&Root> {
        let stage = self.built.get(p)?.as_ref()?;
        match &stage.root {
            Some(r) if !r.is_slash() => Some(r.root()),
            Some(_) => None,
            None => self.borrowed.get(&p),
        }
    }

    /// What the layer writer of finished stage `p` hashed of the files of its root at hand
    /// ([`Self::root_at_hand`]), when it kept them (`known_digests.rs`).
    pub fn known_digests(&self, p: usize) -> Option<&KnownDigests> {
        let stage = self.built.get(p)?.as_ref()?;
        stage.root.as_ref().filter(|r| !r.is_slash()).map(|r| &r.digests)
    }

    /// The files of finished stage `p` that `need` reads, for `COPY --from` and RUN mounts: its
    /// root if it still has one, else those paths extracted from its layers (kept for later
    /// readers), or — when nothing says what is read, the extraction cannot settle, or the
    /// unpacked-layer store holds most of the layers ([`BuildContext::store_holds_most`]) — a
    /// root of its layers made in a scratch directory (kept too).
    pub fn stage_files(
        &mut self,
        ctx: &BuildContext,
        p: usize,
        need: &Need,
        step: StepId,
    ) -> Result<&Root, BuildError> {
        if self.built[p].as_ref().is_some_and(|s| s.root.is_none()) && self.borrowed.contains_key(&p) {
            return Ok(&self.borrowed[&p]);
        }
        let stage = self.built[p].as_mut().ok_or_else(|| not_built(ctx, p))?;
        // A COPY of it that was not run: its files are only in a root made whole with it.
        if stage.root.is_none() && !stage.deferred.is_empty() {
            stage.root = Some(crate::engine::stage::defer::root_with(ctx, p, &stage.layers, &stage.deferred, step)?);
        }
        // Container isolation: `/` holds the stage's files except at, under and above the paths
        // the container keeps (its mounts, trowel's own directory), where its layers were never
        // unpacked; a reader of any of those has them from the layers instead, and `/` is the
        // stage's no longer.
        if let (Some(keep), Some(root)) = (&ctx.slash_keep, &stage.root)
            && root.is_slash()
            && need.reads(root.root()).iter().any(|r| keep.is_ignored(r) || keep.has_ignored_below(r))
        {
            stage.root = None;
        }
        let mut why = String::new();
        if stage.root.is_none() {
            why = match whole_because(ctx, &stage.layers, need) {
                Some(w) => w.to_string(),
                None => {
                    let layers = stage.layers.clone();
                    match self.extract(ctx, Source::Stage(p), &layers, need, &format!("stage{p}-extract"), step)? {
                        Ok(()) => return Ok(self.partial[&Source::Stage(p)].root()),
                        Err(ms) => unsettled(ms),
                    }
                }
            };
        }
        let stage = self.built[p].as_mut().ok_or_else(|| not_built(ctx, p))?;
        let root = match stage.root.take() {
            Some(r) => r,
            None => {
                let root_for = RootFor::Reader { step, stage: Some(p), image: None, why: &why };
                ctx.materialize(&stage.layers, &format!("stage{p}-copy"), root_for)?
            }
        };
        Ok(stage.root.insert(root).root())
    }

    /// The files of an image that `need` reads, for `COPY --from=<image>` and RUN mounts:
    /// resolved once per build, those paths extracted from its layers (or, as for a stage, a
    /// root of them made whole), kept for later readers. `platform` is the reading stage's
    /// (`None`: the first target platform's).
    pub fn image_files(
        &mut self,
        ctx: &BuildContext,
        reference: &str,
        platform: Option<&Platform>,
        need: &Need,
        step: StepId,
    ) -> Result<&Root, BuildError> {
        let key = match platform {
            Some(p) => format!("{reference}\0{p}"),
            None => reference.to_string(),
        };
        if !self.external.contains_key(&key) {
            let img = ctx.resolve_once(reference, platform)?;
            let config = ImageConfig::from_bytes(&img.config_bytes).map_err(BuildError::pull(reference))?;
            let layers: Vec<StageLayer> = img
                .manifest
                .layers
                .iter()
                .zip(config.diff_ids())
                .map(|(d, diff_id)| StageLayer {
                    descriptor: d.clone(),
                    diff_id,
                    origin: LayerOrigin::Base(img.reference.clone()),
                    uncompressed_size: None,
                    cached_for: None,
                })
                .collect();
            let why = match whole_because(ctx, &layers, need) {
                Some(w) => w.to_string(),
                None => match self.extract(
                    ctx,
                    Source::Image(key.clone()),
                    &layers,
                    need,
                    "copy-from-image-extract",
                    step,
                )? {
                    Ok(()) => return Ok(self.partial[&Source::Image(key)].root()),
                    Err(ms) => unsettled(ms),
                },
            };
            let root_for = RootFor::Reader { step, stage: None, image: Some(reference), why: &why };
            let root = ctx.materialize(&layers, "copy-from-image", root_for)?;
            self.external.insert(key.clone(), root);
        }
        Ok(self.external[&key].root())
    }

    /// Makes `self.partial[&src]` hold what `need` reads of `layers` (reusing the extraction
    /// there when it covers it, else extracting what both read into a new one); `Err(ms)` when
    /// the extraction cannot settle (after `ms` spent trying) and the caller must unpack
    /// everything.
    fn extract(
        &mut self,
        ctx: &BuildContext,
        src: Source,
        layers: &[StageLayer],
        need: &Need,
        name: &str,
        step: StepId,
    ) -> Result<Result<(), u64>, BuildError> {
        let (need, keep) = match (self.partial.get(&src), &src) {
            (Some(old), _) if old.serves(need) => return Ok(Ok(())),
            (Some(old), _) => (need.clone(), old.extraction.prefixes.clone()),
            (None, Source::Stage(p)) => match self.hints.get(p) {
                Some(h) => (Need::Many(vec![need.clone(), Need::Sources(h.clone())]), Vec::new()),
                None => (need.clone(), Vec::new()),
            },
            (None, Source::Image(_)) => (need.clone(), Vec::new()),
        };
        let found = match ctx.extract_for(layers, name, &need, &keep)? {
            Ok(found) => found,
            Err(ms) => return Ok(Err(ms)),
        };
        let ex = &found.partial.extraction;
        ctx.emitter.emit(Event::SourceExtracted {
            for_step: Some(step),
            stage: match &src {
                Source::Stage(p) => Some(*p),
                Source::Image(_) => None,
            },
            image: match &src {
                Source::Stage(_) => None,
                Source::Image(key) => key.split('\0').next().map(str::to_string),
            },
            paths: ex.prefixes.clone(),
            layers: layers.len(),
            entries: found.stats.entries,
            skipped: found.stats.skipped,
            bytes: found.stats.bytes,
            passes: ex.passes,
            duration_ms: found.duration_ms,
        });
        if let Some(old) = self.partial.insert(src, found.partial) {
            self.reap(ctx, vec![old.scratch]);
        }
        Ok(Ok(()))
    }

    /// Frees the roots no stage after `built` reads (they can be large).
    pub fn release_after(&mut self, ctx: &BuildContext, built: usize) {
        let order = &ctx.plan.order;
        let pos = |s: usize| order.iter().position(|&x| x == s).unwrap_or(usize::MAX);
        let now = pos(built);
        let targets = &ctx.plan.targets;
        let unneeded: Vec<bool> = (0..self.built.len())
            .map(|s| !targets.contains(&s) && !self.consumers[s].iter().any(|(c, _)| pos(*c) > now))
            .collect();
        self.release(ctx, |s| unneeded[s]);
    }

    /// Frees every root: the image is assembled and nothing reads files any more.
    pub fn release_all(&mut self, ctx: &BuildContext) {
        self.release(ctx, |_| true);
        let images: Vec<_> = self.partial.drain().map(|(_, p)| p.scratch).collect();
        self.reap(ctx, images);
    }

    /// Deletes the roots of the stages `unneeded` selects on a background thread: the build
    /// goes on meanwhile (unmounting an overlay that saw tens of thousands of files evicts each
    /// of them, 30-40 ms in W2; deleting is unlink-bound kernel work, one call per file).
    fn release(&mut self, ctx: &BuildContext, unneeded: impl Fn(usize) -> bool) {
        let mut roots = Vec::new();
        let mut dirs = Vec::new();
        for (s, stage) in self.built.iter_mut().enumerate() {
            if unneeded(s)
                && let Some(st) = stage.as_mut()
                && let Some(root) = st.root.take()
                // In container isolation a stage's root may be `/` itself: it is only handed
                // over, never deleted.
                && !root.is_slash()
            {
                roots.push(root);
            }
            if unneeded(s)
                && let Some(part) = self.partial.remove(&Source::Stage(s))
            {
                dirs.push(part.scratch);
            }
        }
        self.reap_roots(ctx, roots, dirs);
    }

    /// Deletes `dirs` on a background thread.
    fn reap(&mut self, ctx: &BuildContext, dirs: Vec<std::path::PathBuf>) {
        self.reap_roots(ctx, Vec::new(), dirs);
    }

    /// Gives up `roots` and deletes them and `dirs` on a background thread. Each root is
    /// unmounted there before anything of it is deleted (deleting through an overlay would
    /// only write whiteouts, and a root must never be deleted while mounted); the thread is in
    /// the build's mount namespace, which is made before the build's threads are started.
    fn reap_roots(&mut self, ctx: &BuildContext, roots: Vec<BuildRoot>, dirs: Vec<std::path::PathBuf>) {
        if roots.is_empty() && dirs.is_empty() {
            return;
        }
        let reaper = std::thread::Builder::new().name("reaper".into()).spawn(move || {
            for d in roots.into_iter().flat_map(BuildRoot::into_dirs).chain(dirs) {
                let _ = crate::fs::remove::remove_tree(&d);
            }
        });
        match reaper {
            Ok(h) => self.reapers.push(h),
            // No thread to be had: the roots went with the closure, and an overlay dropped is
            // detached; the work dir's own removal at the end deletes what is left.
            Err(e) => ctx.emitter.warn(format!("could not start a thread to delete build roots: {e}")),
        }
    }

    /// What a lane of a build for several platforms starts with (see `engine/lanes.rs`): the
    /// stages built so far without their roots (a lane never changes them), their roots
    /// opened again to be read.
    pub fn fork(&self) -> Result<Stages, BuildError> {
        let mut borrowed = HashMap::new();
        let built = self
            .built
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let b = b.as_ref()?;
                if let Some(r) = &b.root {
                    match Root::open(&r.dir) {
                        Ok(root) => {
                            borrowed.insert(i, root);
                        }
                        Err(e) => return Some(Err(BuildError::fs(format!("open {}", r.dir.display()))(e))),
                    }
                }
                Some(Ok(b.without_root()))
            })
            .map(Option::transpose)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Stages {
            built,
            borrowed,
            external: HashMap::new(),
            partial: HashMap::new(),
            hints: self.hints.clone(),
            consumers: self.consumers.clone(),
            slash_owner: None,
            reapers: Vec::new(),
        })
    }

    /// Takes back what a lane built: its stages (`mine`), and the deletions it started.
    pub fn absorb(&mut self, mut lane: Stages, mine: &[usize]) {
        for &i in mine {
            self.built[i] = lane.built[i].take();
        }
        self.reapers.append(&mut lane.reapers);
    }

    /// Waits for the roots being deleted (before the work dir itself goes).
    pub fn join_reapers(&mut self) {
        for r in std::mem::take(&mut self.reapers) {
            let _ = r.join();
        }
    }

    /// Whether trowel emptied and filled `/` for some stage (container isolation).
    pub fn used_slash(&self) -> bool {
        self.slash_owner.is_some()
    }
}

/// Whose files a partial extraction holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    Stage(usize),
    /// An image, by reference and platform.
    Image(String),
}

fn not_built(ctx: &BuildContext, p: usize) -> BuildError {
    // The plan orders every stage before its readers; reaching this is a planning bug, said
    // plainly rather than with a panic.
    BuildError::Options(format!("{} is read before it was built", ctx.stage_label(p)))
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
        // A stage mounted by a RUN is read like one copied from.
        for dep in s.copy_from.iter().chain(&s.mount_from) {
            if let StageOrImage::Stage(p) = dep {
                out[*p].push((s.index, true));
            }
        }
    }
    out
}

/// Why the reader of `layers` that reads `need` gets a whole root rather than those paths
/// extracted (`None`: they are extracted): said in its `source_unpacked` event.
fn whole_because(ctx: &BuildContext, layers: &[StageLayer], need: &Need) -> Option<&'static str> {
    if matches!(need, Need::All) {
        Some("the step reads every file of it")
    } else if ctx.store_holds_most(layers) {
        Some("the unpacked-layer store holds most of its layers")
    } else {
        None
    }
}

/// Why a reader whose extraction gave up after `ms` gets a whole root: the time is the step's
/// too, and no other event reports it.
fn unsettled(ms: u64) -> String {
    format!(
        "what the step reads led to more paths (symlinked directories, hard links) than an extraction follows: \
         it gave up after {ms} ms"
    )
}
