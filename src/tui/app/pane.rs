//! The panes by name: their order (`tab`, number keys), titles and the keymap context each one's
//! keys are looked up in.

use super::super::keymap::Context;

/// The panes. Steps is always on the left; the others share the right side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    Steps,
    Changes,
    File,
    Cache,
    Layers,
    Logs,
    /// Every breakpoint, and how often each fired.
    Breaks,
    /// The whole file system at the selected step.
    Files,
}

impl Pane {
    /// In `tab` order; the number key of each is its position + 1.
    pub const ALL: [Pane; 8] =
        [Pane::Steps, Pane::Changes, Pane::File, Pane::Cache, Pane::Layers, Pane::Logs, Pane::Breaks, Pane::Files];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Steps => "Steps",
            Pane::Changes => "Changes",
            Pane::File => "File",
            Pane::Cache => "Cache",
            Pane::Layers => "Layers",
            Pane::Logs => "Logs",
            Pane::Breaks => "Breaks",
            Pane::Files => "Files",
        }
    }

    pub fn number(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0) + 1
    }

    pub fn context(self) -> Context {
        match self {
            Pane::Steps => Context::Steps,
            Pane::Changes => Context::Changes,
            Pane::File => Context::File,
            Pane::Cache => Context::Cache,
            Pane::Layers => Context::Layers,
            Pane::Logs => Context::Logs,
            Pane::Breaks => Context::Breaks,
            Pane::Files => Context::Files,
        }
    }
}
