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
            None => make(s, stage, layers)?,
        };
        Ok(self.root.insert(root))
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

fn make(s: &mut Shared<'_, '_>, stage: usize, layers: &[StageLayer]) -> Result<BuildRoot, BuildError> {
    let ctx = s.ctx;
    // A child stage may take over its parent's root when nothing else reads the parent.
    if let Base::Stage(_) = ctx.plan.stages[stage].base
        && let Some(root) = s.stages.take_parent_root(&ctx.plan, stage)
    {
        return Ok(root);
    }
    match &ctx.slash_keep {
        Some(keep) => {
            s.stages.claim_slash(stage);
            ctx.materialize_at_slash(keep, layers, stage)
        }
        None => ctx.materialize(layers, &format!("stage{stage}"), RootFor::Stage(stage)),
    }
}
