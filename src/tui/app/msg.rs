//! What the reducer takes ([`Msg`]: engine events, keys, mouse events, the engine's questions,
//! what a frame showed) and what it gives back ([`Effect`]: answers to the engine, a shell, the
//! clipboard, quitting).

use ratatui::crossterm::event::{KeyEvent, MouseEvent};

use super::Drawn;
use crate::debugger::Resume;
use crate::tui::model::FileContent;
use trowel_engine::engine::controller::{Checkpoint, Decision, ShellChoice};
use trowel_events::{Change, Envelope, PushReview, StepId};

/// What the session feeds the app.
#[derive(Debug, Clone)]
pub enum Msg {
    Event(Box<Envelope>),
    Key(KeyEvent),
    Mouse(MouseEvent),
    /// The engine paused and waits for a [`Effect::Resume`] (or [`Effect::OpenShell`]).
    Paused {
        at: Box<Checkpoint>,
        reasons: Vec<String>,
    },
    /// A shell session changed files; the engine waits for [`Effect::ShellChoice`].
    ShellChanges {
        at: Box<Checkpoint>,
        changes: Vec<Change>,
    },
    /// The engine waits for [`Effect::Push`].
    ReviewPush(Box<PushReview>),
    /// Small text files' contents before and after a step.
    Contents {
        id: StepId,
        files: Vec<FileContent>,
    },
    /// The build thread ended (`error`: how it failed).
    BuildDone {
        error: Option<String>,
    },
    /// Time passes (ms since the build started), for the running step's clock.
    Tick {
        ms: u64,
    },
    /// What the last frame showed (drawing changes nothing; the session sends this after it).
    Drawn(Box<Drawn>),
}

/// What the session must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Answer the pause.
    Resume(Resume),
    /// Leave the terminal to a shell in the build root, then answer the pause with
    /// `Resume::Shell(None)`.
    OpenShell,
    ShellChoice(ShellChoice),
    Push(Decision),
    /// Put this text on the terminal's clipboard (OSC 52).
    Copy(String),
    /// Restore the terminal and exit (aborting the build if it still runs).
    Quit,
}

/// What the engine is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    Pause,
    ShellChoice,
    Push,
}
