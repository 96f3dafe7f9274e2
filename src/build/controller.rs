//! The controller the engine consults between steps. The plain `build` command uses
//! [`Continue`], which never pauses; the debugger's controller can pause, step and abort.

use crate::build::event::StepId;

/// What the engine should do at a decision point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Continue,
    Abort(String),
}

/// What the engine knows at a step boundary.
#[derive(Debug, Clone)]
pub struct StepContext<'a> {
    pub id: StepId,
    pub line: usize,
    pub keyword: &'a str,
    pub expanded: &'a str,
}

pub trait Controller: Send {
    /// Before a step runs.
    fn before_step(&mut self, _step: &StepContext<'_>) -> Decision {
        Decision::Continue
    }
    /// After a step finished (successfully or not).
    fn after_step(&mut self, _step: &StepContext<'_>, _failed: bool) -> Decision {
        Decision::Continue
    }
    /// Before pushing the final image; returning `Abort` pushes nothing.
    fn before_push(&mut self, _manifest_digest: &crate::digest::Digest) -> Decision {
        Decision::Continue
    }
}

/// Never pauses.
pub struct Continue;

impl Controller for Continue {}
