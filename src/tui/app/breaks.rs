//! Adding a breakpoint from the Breakpoints pane (`a`, then the `--break` syntax): it is
//! checked against the build as the debugger knows it, so one that can never fire (a line that
//! holds no step, a step that already ran, a stage that does not exist or is skipped) is refused
//! with the reason, as `--break` refuses it before a build.

use super::{App, Severity};
use crate::debugger::Breakpoint;
use crate::tui::model::StepState;

impl App {
    pub(super) fn add_breakpoint(&mut self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let bp = match Breakpoint::parse(text).and_then(|b| self.check_breakpoint(b)) {
            Ok(b) => b,
            Err(e) => return self.say(&e, Severity::Error),
        };
        let spec = bp.spec();
        let added = self.with_breakpoints(|b| {
            if b.iter().any(|x| x.spec() == spec) {
                return false;
            }
            b.push(bp);
            true
        });
        match added {
            Some(true) => self.say(&format!("breakpoint {spec} added"), Severity::Info),
            Some(false) => self.say(&format!("breakpoint {spec} is already set"), Severity::Info),
            None => self.say("this is a replay of a recorded build: it is read-only", Severity::Info),
        }
    }

    /// The breakpoint as it will fire (a line inside an instruction becomes its first line),
    /// or why it never can in this build.
    fn check_breakpoint(&self, b: Breakpoint) -> Result<Breakpoint, String> {
        let m = &self.model;
        match b {
            Breakpoint::Line(l) => {
                let Some(step) = m.steps().find(|s| s.line <= l && l <= s.end_line.max(s.line)) else {
                    let lines: Vec<String> =
                        m.steps().filter(|s| s.state != StepState::Skipped).map(|s| s.line.to_string()).collect();
                    return Err(format!("line {l} holds no step of this build (its steps: {})", lines.join(", ")));
                };
                if step.state == StepState::Skipped {
                    return Err(format!("line {l} is in a stage this build skips"));
                }
                if step.state != StepState::Pending {
                    return Err(format!(
                        "line {} ({}) has already run in this build: a breakpoint there cannot fire",
                        step.line, step.keyword
                    ));
                }
                Ok(Breakpoint::Line(step.line))
            }
            Breakpoint::Stage(name) => {
                let stage = m.stages.iter().find(|s| {
                    s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&name)) || s.index.to_string() == name
                });
                match stage {
                    None => {
                        let names: Vec<String> = m.stages.iter().map(|s| s.label()).collect();
                        Err(format!("no stage {name} (the stages: {})", names.join(", ")))
                    }
                    Some(s) if !s.needed => Err(format!("{} is skipped by this build", s.label())),
                    Some(s) if s.started => Err(format!("{} has already started", s.label())),
                    Some(_) => Ok(Breakpoint::Stage(name)),
                }
            }
            other => Ok(other),
        }
    }
}
