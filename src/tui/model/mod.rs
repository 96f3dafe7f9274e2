//! What the debugger knows about a build: the fold every viewer shares
//! ([`BuildState`], in the event contract) plus what only the debugger keeps, the whole RUN
//! output as scrollable, searchable lines ([`LogBuffer`]).
//!
//! [`Model::apply`] takes engine events one at a time, in order, exactly as they arrive live
//! or as they were recorded in a trace, so a replay shows what the live session showed. Derived
//! views (the change tree, layer waste, file diffs) are computed from the state on demand by the
//! sibling modules.

use std::ops::{Deref, DerefMut};

use trowel_events::{Envelope, Event};

pub mod diff;
mod links;
pub mod logs;
pub mod merged;
pub mod tree;
pub mod waste;

pub use logs::{LogBuffer, LogLine};
pub use trowel_events::state::{
    BlobProgress, BuildState, CacheView, Failure, Finished, ImageView, Outcome, Pause, PushDecision, PushView, Resume,
    RootView, ShellSession, StageView, StepState, StepView,
};

/// A small text file's content before and after a step (for the File pane's diff), as the
/// engine reports it in `FileContents` events. `None` means the file did not exist on that
/// side, or its content was not recorded (binary, too large).
pub use trowel_events::FileContent;

/// The build as the views see it: the shared [`BuildState`] (its fields and methods are the
/// model's, through `Deref`, so the views read `model.stages`, `model.step(id)` directly) and the
/// log buffer.
#[derive(Debug, Clone, Default)]
pub struct Model {
    state: BuildState,
    pub logs: LogBuffer,
}

impl Deref for Model {
    type Target = BuildState;
    fn deref(&self) -> &BuildState {
        &self.state
    }
}

impl DerefMut for Model {
    fn deref_mut(&mut self) -> &mut BuildState {
        &mut self.state
    }
}

impl Model {
    /// A model of a whole recorded build.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Envelope>) -> Model {
        let mut m = Model::default();
        for e in events {
            m.apply(e);
        }
        m
    }

    pub fn apply(&mut self, env: &Envelope) {
        match &env.event {
            Event::Output { id, stream, data } => {
                let shell = self.state.step(*id).is_some_and(StepView::in_shell);
                self.logs.push(*id, *stream, data, shell);
            }
            Event::StepStarted { id, attempt: Some(a), .. } => {
                self.logs.mark_attempt(*id, a.number, a.edited_from.is_some())
            }
            _ => {}
        }
        self.state.apply(env);
    }
}
