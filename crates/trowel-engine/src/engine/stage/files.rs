//! A stage's build root, made the first time a step needs files.
//!
//! Most of a cached rebuild never needs one (a stage served from the cache only adds layers),
//! so the root is made on demand, and the accessor that makes it is the only way to reach it:
//! a step that needs files cannot find it missing.

use std::path::PathBuf;

use crate::dockerfile::Base;
use crate::engine::error::BuildError;
use crate::engine::layer::StageLayer;
use crate::engine::root::{BuildRoot, RootFor};
use crate::engine::shared::Shared;

#[derive(Default)]
pub(crate) struct StageFiles {
    root: Option<BuildRoot>,
    /// Why the root made ahead (`ahead.rs`) could not be made: the error of the first step
    /// that needs the root, as if that step had made it.
    failed_ahead: Option<BuildError>,
    /// Container isolation: the stage runs nothing (no RUN, none among its base's ONBUILD
    /// triggers), so its root is made in the work dir and `/` stays with the stage that has it.
    /// The usual final stage (`FROM distroless`, `COPY --from=builder …`) then reads the
    /// builder's files where they are, in `/`, instead of extracting them from its layers
    /// again, and unpacks nothing into `/` only to empty it. A RUN or a debugger shell that
    /// comes anyway (a step edited at a retry) moves the root into `/` first ([`Self::at_slash`]).
    off_slash: bool,
}

impl StageFiles {
    /// The stage's root, made now if it does not exist yet: the parent stage's when this stage
    /// may take it over, else `layers` unpacked (into `/` in container isolation).
    pub fn get(
        &mut self,
        s: &mut Shared<'_, '_>,
        stage: usize,
        layers: &[StageLayer],
    ) -> Result<&mut BuildRoot, BuildError> {
        if let Some(e) = self.failed_ahead.take() {
            return Err(e);
        }
        let root = match self.root.take() {
            Some(r) => r,
            None => make(s, stage, layers, self.off_slash)?,
        };
        Ok(self.root.insert(root))
    }

    /// Container isolation: the stage runs nothing, so its root need not be `/` (see the
    /// `off_slash` field). Ignored with `--single-snapshot`, whose layers do not hold the
    /// stage's steps until its end: a root moved into `/` could not be made again from them.
    pub fn run_nothing(&mut self, s: &Shared<'_, '_>) {
        self.off_slash = s.ctx.slash_keep.is_some() && !s.ctx.opts.layers.single_snapshot;
    }

    /// The stage's root for a step that runs something (a RUN, a debugger shell): in container
    /// isolation that is `/`, so a root made in the work dir is made again there from the
    /// stage's `layers` (which hold every step so far) and the old one deleted.
    pub fn at_slash(
        &mut self,
        s: &mut Shared<'_, '_>,
        stage: usize,
        layers: &[StageLayer],
    ) -> Result<&mut BuildRoot, BuildError> {
        self.off_slash = false;
        // Made first: a root taken over from the parent stage may be one made in the work dir.
        let in_work_dir = !self.get(s, stage, layers)?.is_slash();
        if let Some(keep) = &s.ctx.slash_keep
            && in_work_dir
        {
            s.stages.claim_slash(stage);
            let fresh = s.ctx.materialize_at_slash(keep, layers, stage)?;
            if let Some(old) = self.root.replace(fresh) {
                for d in old.into_dirs() {
                    let _ = crate::fs::remove::remove_tree(&d);
                }
            }
        }
        self.get(s, stage, layers)
    }

    /// Whether the root is made in `/` (container isolation) for a step (`run`: one that runs
    /// something), as [`Self::get`] and [`Self::at_slash`] make it.
    pub fn wants_slash(&self, s: &Shared<'_, '_>, run: bool) -> bool {
        s.ctx.slash_keep.is_some() && (run || !self.off_slash)
    }

    /// Takes over the parent stage's root when this stage may (see [`make`]): `Ok(false)` when
    /// it may not, or the stage has a root already.
    pub fn take_parent(
        &mut self,
        s: &mut Shared<'_, '_>,
        stage: usize,
        layers: &[StageLayer],
    ) -> Result<bool, BuildError> {
        if self.root.is_some() {
            return Ok(false);
        }
        self.root = parent_root(s, stage, layers)?;
        Ok(self.root.is_some())
    }

    /// Takes what making the root ahead gave: the root, or the error its first user reports.
    pub(super) fn made_ahead(&mut self, made: Result<BuildRoot, BuildError>) {
        match made {
            Ok(root) => self.root = Some(root),
            Err(e) => self.failed_ahead = Some(e),
        }
    }

    /// The root, if the stage has one already (for reading what a step left, never to make it).
    pub fn existing(&self) -> Option<&BuildRoot> {
        self.root.as_ref()
    }

    pub fn existing_mut(&mut self) -> Option<&mut BuildRoot> {
        self.root.as_mut()
    }

    /// The host directory of the root, once there is one (to browse files at a pause).
    pub fn dir(&self) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.dir.clone())
    }

    /// Replaces the root (a debugger shell's discarded changes in container isolation, a failed
    /// attempt's leftovers before a re-run), returning the one it replaces.
    pub fn replace(&mut self, root: BuildRoot) -> Option<BuildRoot> {
        self.root.replace(root)
    }

    pub fn into_root(self) -> Option<BuildRoot> {
        self.root
    }
}

fn make(s: &mut Shared<'_, '_>, stage: usize, layers: &[StageLayer], off_slash: bool) -> Result<BuildRoot, BuildError> {
    let ctx = s.ctx;
    if let Some(root) = parent_root(s, stage, layers)? {
        return Ok(root);
    }
    match &ctx.slash_keep {
        Some(keep) if !off_slash => {
            s.stages.claim_slash(stage);
            ctx.materialize_at_slash(keep, layers, stage)
        }
        _ => ctx.materialize(layers, &format!("stage{stage}"), RootFor::Stage(stage)),
    }
}

/// The parent stage's root, for a child stage that may take it over (nothing else reads the
/// parent), with the child's own `layers` above the parent's applied: steps the cache served
/// before the child needed files added layers the parent's root never saw (a child whose first
/// RUN hit and second missed ran the second without the first's files).
fn parent_root(s: &mut Shared<'_, '_>, stage: usize, layers: &[StageLayer]) -> Result<Option<BuildRoot>, BuildError> {
    let ctx = s.ctx;
    let Base::Stage(_) = ctx.plan.stages[stage].base else { return Ok(None) };
    let Some((mut root, below)) = s.stages.take_parent_root(&ctx.plan, stage) else { return Ok(None) };
    let above = &layers[below.min(layers.len())..];
    let opts = match &ctx.slash_keep {
        Some(keep) if root.is_slash() => ctx.slash_unpack_options(keep),
        _ => ctx.unpack_options(),
    };
    ctx.fetch_blobs(above)?;
    let cancel = ctx.fs_cancel();
    for l in above {
        let stats = ctx.unpack_verified(root.snap.root(), l, &opts, "apply cached")?;
        // The next snapshot must hold only its step's changes; a stop gives the walk up.
        root.snap
            .snapshot_paths_cancellable(&stats.touched, cancel.as_ref())
            .map_err(ctx.fs_failed(format!("apply cached layer {}", l.descriptor.digest)))?;
    }
    Ok(Some(root))
}
