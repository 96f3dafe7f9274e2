//! One file per kind of step. [`execute`] dispatches an expanded instruction to its step.

use crate::digest::Digest;
use crate::dockerfile::{Expanded, Instruction};
use crate::engine::build::Engine;
use crate::engine::error::{BuildError, Location};
use crate::engine::stage::StageState;
use trowel_events::{StepId, StepStatus};

pub mod copy;
pub mod layer;
pub(crate) mod metadata;
mod run;
mod workdir;

/// What a step is working on.
pub struct StepCtx<'a> {
    pub id: StepId,
    pub loc: Location,
    pub instruction: &'a Instruction,
    /// The expanded instruction as displayed (also the history `created_by`).
    pub display: String,
}

impl StepCtx<'_> {
    /// A step error at this instruction.
    pub fn fail(&self, message: impl Into<String>) -> BuildError {
        BuildError::Step { location: self.loc.clone(), message: message.into(), exit_code: None }
    }
}

pub struct StepOutcome {
    pub status: StepStatus,
    pub layer: Option<Digest>,
}

impl StepOutcome {
    pub fn metadata() -> StepOutcome {
        StepOutcome { status: StepStatus::Metadata, layer: None }
    }
}

pub fn execute(
    engine: &mut Engine<'_>,
    st: &mut StageState,
    ctx: &StepCtx<'_>,
    expanded: Expanded,
) -> Result<StepOutcome, BuildError> {
    match expanded {
        Expanded::Run { flags, script } => run::run(engine, st, ctx, &flags, script),
        Expanded::Copy(c) => copy::copy(engine, st, ctx, c, false),
        Expanded::Add(c) => copy::copy(engine, st, ctx, c, true),
        Expanded::Workdir(dir) => workdir::workdir(engine, st, ctx, &dir),
        other => metadata::apply(engine, st, ctx, other),
    }
}
