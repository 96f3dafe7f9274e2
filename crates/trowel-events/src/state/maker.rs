//! Who made a layer of the image: the base image, a step's instruction, or a debugger shell
//! session whose changes were kept. Every view that labels layers (the debugger's Layers pane,
//! waste and push review, `replay --summary`) asks here, so a session's layer is never credited
//! to the instruction at whose pause it ran.
//!
//! The answer is a fact of the events (`LayerSummary::shell`, `ReviewLayer::shell`); for traces
//! recorded before that field existed, a layer whose digest is a kept session's is that
//! session's.

use crate::{Digest, StepId, When};

use super::{BuildState, ShellSession, StepView};

/// Who made a layer.
#[derive(Debug, Clone, Copy)]
pub enum Maker<'a> {
    /// A layer of a base image (or of a stage built `FROM` another, reported as its base).
    Base,
    /// The step's instruction.
    Step(&'a StepView),
    /// A debugger shell session at the pause on `when`'s side of `step`; `session` is `None`
    /// only when the events name a session the state never saw start.
    Shell { step: &'a StepView, when: When, session: Option<&'a ShellSession> },
}

impl Maker<'_> {
    /// A short label for tables: `base`, `L6 RUN`, `L6 shell`, `L1–6 stage` (a stage's single
    /// snapshot).
    pub fn label(&self) -> String {
        match self {
            Maker::Base => "base".into(),
            Maker::Step(s) => match s.stage_snapshot {
                Some(from) => format!("L{from}–{} stage", s.line),
                None => format!("L{} {}", s.line, s.keyword),
            },
            Maker::Shell { step, .. } => format!("L{} shell", step.line),
        }
    }

    /// In words: `the base image`, `line 6: RUN echo done`, `debug shell before line 6 (RUN
    /// echo done), kept`.
    pub fn describe(&self) -> String {
        match self {
            Maker::Base => "the base image".into(),
            Maker::Step(s) => match s.stage_snapshot {
                Some(from) => format!(
                    "the stage's single snapshot (--single-snapshot): what lines {from}–{} changed, taken after line {}",
                    s.line, s.line
                ),
                None => format!("line {}: {}", s.line, one_line(s.expanded.as_deref().unwrap_or(&s.source))),
            },
            Maker::Shell { step, when, .. } => format!(
                "debug shell {} line {} ({}), changes kept",
                side(*when),
                step.line,
                one_line(step.first_line())
            ),
        }
    }

    /// The step it is credited to, or at whose pause its session ran.
    pub fn step(&self) -> Option<&StepView> {
        match self {
            Maker::Base => None,
            Maker::Step(s) | Maker::Shell { step: s, .. } => Some(s),
        }
    }

    pub fn is_shell(&self) -> bool {
        matches!(self, Maker::Shell { .. })
    }
}

/// `before` or `after`.
pub fn side(when: When) -> &'static str {
    match when {
        When::BeforeStep => "before",
        When::AfterStep => "after",
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl BuildState {
    /// Who made the layer `digest` that the events credit to `step` (`shell`: what they say of
    /// a shell session, when they do).
    pub fn maker(&self, step: Option<StepId>, shell: Option<When>, digest: &Digest) -> Maker<'_> {
        let Some(view) = step.and_then(|id| self.step(id)) else { return Maker::Base };
        let session = view.shells.iter().rev().find(|sh| sh.layer.as_ref().is_some_and(|l| &l.digest == digest));
        match (shell, session) {
            (Some(when), session) => Maker::Shell { step: view, when, session },
            (None, Some(sh)) if sh.kept == Some(true) => {
                Maker::Shell { step: view, when: sh.when(), session: Some(sh) }
            }
            _ => Maker::Step(view),
        }
    }
}
