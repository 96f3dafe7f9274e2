//! The debugger's part of a build as the events describe it: pauses and what resumed them,
//! the breakpoints set, shell sessions at a pause, and the push gate's review and answer.

use super::{BuildState, Pause, PushDecision, Resume, ShellSession};
use crate::{Event, LayerSummary, When};

impl BuildState {
    /// A debugger event; `ms` is when it happened (a pause's or a shell's start and end).
    pub(super) fn apply_debugger(&mut self, event: &Event, ms: u64) {
        match event {
            Event::PushReview { review } => {
                self.review = Some((**review).clone());
                self.review_wait = Some((ms, None));
            }
            Event::PushDecided { approved, reason } => {
                self.push_decision = Some(PushDecision { approved: *approved, reason: reason.clone() });
                if let Some((shown, waited @ None)) = self.review_wait.as_mut() {
                    *waited = Some(ms.saturating_sub(*shown));
                }
            }
            Event::Paused { id, line, when, reasons } => {
                if let Some(s) = self.steps.get_mut(id) {
                    s.pauses.push(Pause {
                        when: *when,
                        line: *line,
                        reasons: reasons.clone(),
                        started_ms: ms,
                        resumed: None,
                    });
                }
            }
            Event::Resumed { id, action, paused_ms } => {
                if let Some(s) = self.steps.get_mut(id) {
                    s.paused_ms += paused_ms;
                    if let Some(p) = s.pauses.iter_mut().rev().find(|p| p.resumed.is_none()) {
                        p.resumed = Some(Resume { action: action.clone(), paused_ms: *paused_ms });
                    }
                }
            }
            Event::Breakpoints { set } => {
                for b in set {
                    if !self.breakpoints_ever.contains(b) {
                        self.breakpoints_ever.push(b.clone());
                    }
                }
                self.breakpoints = Some(set.clone());
            }
            Event::ShellStarted { id, argv, interactive, when } => {
                if let Some(s) = self.steps.get_mut(id) {
                    // Version 1 traces do not say; a step that has not finished is the best guess.
                    let before_step = when.map_or(!s.state.is_done(), |w| w == When::BeforeStep);
                    s.shells.push(ShellSession {
                        argv: argv.clone(),
                        interactive: *interactive,
                        exit_code: None,
                        changes: Vec::new(),
                        kept: None,
                        layer: None,
                        before_step,
                        started_ms: ms,
                        finished_ms: None,
                    });
                }
            }
            Event::ShellFinished { id, exit_code, changes } => {
                if let Some(sh) = self.steps.get_mut(id).and_then(|s| s.shells.last_mut()) {
                    sh.exit_code = Some(*exit_code);
                    sh.changes = changes.clone();
                    sh.finished_ms = Some(ms);
                }
            }
            Event::ShellResolved { id, kept, layer } => {
                if let Some(sh) = self.steps.get_mut(id).and_then(|s| s.shells.last_mut()) {
                    sh.kept = Some(*kept);
                    if let Some(l) = layer {
                        let when = sh.when();
                        sh.layer = Some(LayerSummary { shell: l.shell.or(Some(when)), ..l.clone() });
                    }
                }
            }
            _ => {}
        }
    }
}
