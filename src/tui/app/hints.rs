//! Which key hints the bottom bar offers now: a key is hinted only where pressing it would do
//! something (`n`, `c`, `r`, `!` at a pause; `p` once there is a push review; `y` where there is
//! something to copy; `t` in a build for several platforms), so the bar never offers what the
//! state refuses.

use super::{App, Mode, Pane, Waiting};
use crate::tui::keymap::{Action, Binding, Shown};

impl App {
    /// Whether the hint bar shows this binding's hint in the current state.
    pub fn hint_applies(&self, b: &Binding) -> bool {
        let state = match b.shown {
            Shown::Always => true,
            Shown::Running => self.build_running() && !self.model.is_over(),
            Shown::Paused => self.build_running() && self.waiting == Some(Waiting::Pause),
            Shown::Asked => self.waiting == Some(Waiting::Push),
            Shown::Answered => self.waiting != Some(Waiting::Push),
        };
        state
            && match b.action {
                Action::ShowPush => {
                    self.popup.is_none() && (self.model.review.is_some() || !self.model.pushes.is_empty())
                }
                Action::Copy if self.popup.is_none() => {
                    matches!(self.focus, Pane::Steps | Pane::Layers | Pane::Breaks | Pane::Files)
                        || (self.focus == Pane::Changes && !self.shown_changes().is_empty())
                        || (self.focus == Pane::File && self.panes.file.path().is_some())
                }
                Action::Add | Action::Remove => self.mode == Mode::Live,
                Action::Retry | Action::EditStep => self.pause.as_ref().is_some_and(|p| p.at.can_retry()),
                Action::Platform => self.model.platforms.len() > 1,
                _ => true,
            }
    }

    /// Which hints go first when the bar cannot hold them all (lower first): answers to what
    /// the engine waits for and the debugging keys, then `p`, `z` and help, then the pane's own
    /// keys, then the rest.
    pub fn hint_rank(&self, b: &Binding) -> u8 {
        use crate::tui::keymap::Context;
        match (b.context, b.action) {
            (
                Context::Review
                | Context::ShellChanges
                | Context::Confirm
                | Context::Help
                | Context::Command
                | Context::Editor,
                _,
            ) => 0,
            (
                Context::Debug,
                Action::Retry
                | Action::EditStep
                | Action::StepNext
                | Action::Continue
                | Action::RunToCursor
                | Action::Shell,
            ) => 0,
            (_, Action::ShowPush | Action::Zoom | Action::Help) => 1,
            (_, Action::Quit) => 2,
            (Context::Global | Context::Debug, _) => 4,
            _ => 3,
        }
    }
}
