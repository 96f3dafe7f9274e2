//! Adding a breakpoint from the Breakpoints pane (`a`, then the `--break` syntax): it is
//! checked against the build as the debugger knows it, so one that can never fire (a line that
//! holds no step, a step that already ran, a stage that does not exist or is skipped, a
//! platform the build is not for) is refused with the reason, as `--break` refuses it before a
//! build.

use super::{App, Severity};
use crate::debugger::{Breakpoint, same_platform};
use crate::tui::model::{StageView, StepState, StepView};

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

    /// The breakpoint as it will fire (a line inside an instruction becomes its first line; a
    /// platform is written as the build writes it), or why it never can in this build.
    fn check_breakpoint(&self, b: Breakpoint) -> Result<Breakpoint, String> {
        let Breakpoint::OnPlatform { platform, inner } = b else { return self.check_on(b, None) };
        let m = &self.model;
        let platforms = if m.platforms.is_empty() { vec![m.platform.clone()] } else { m.platforms.clone() };
        let Some(platform) = platforms.iter().find(|p| same_platform(&platform, p)).cloned() else {
            return Err(format!("{platform} is not a platform of this build (it builds {})", platforms.join(", ")));
        };
        let inner = self.check_on(*inner, Some(&platform))?;
        Ok(Breakpoint::OnPlatform { platform, inner: Box::new(inner) })
    }

    /// [`App::check_breakpoint`] of a breakpoint without a platform, at the stages built for
    /// `platform` (all of them: `None`). In a build for several platforms a line or a stage is
    /// there once per platform: it can fire while one of them has not run it yet.
    fn check_on(&self, b: Breakpoint, platform: Option<&str>) -> Result<Breakpoint, String> {
        let m = &self.model;
        let serves = |stage: usize| platform.is_none_or(|p| m.stage(stage).is_none_or(|s| s.serves(p)));
        let on = platform.map(|p| format!(" on {p}")).unwrap_or_default();
        match b {
            Breakpoint::Line(l) => {
                let steps: Vec<&StepView> =
                    m.steps().filter(|s| serves(s.id.stage) && s.line <= l && l <= s.end_line.max(s.line)).collect();
                let Some(step) = steps.iter().find(|s| s.state == StepState::Pending).or(steps.first()) else {
                    let mut lines: Vec<usize> = m
                        .steps()
                        .filter(|s| serves(s.id.stage) && s.state != StepState::Skipped)
                        .map(|s| s.line)
                        .collect();
                    lines.dedup();
                    let lines: Vec<String> = lines.iter().map(usize::to_string).collect();
                    return Err(format!("line {l} holds no step of this build{on} (its steps: {})", lines.join(", ")));
                };
                if step.state == StepState::Skipped {
                    return Err(format!("line {l} is in a stage this build skips"));
                }
                if step.state != StepState::Pending {
                    return Err(format!(
                        "line {} ({}) has already run in this build{on}: a breakpoint there cannot fire",
                        step.line, step.keyword
                    ));
                }
                Ok(Breakpoint::Line(step.line))
            }
            Breakpoint::Stage(name) => {
                let stages: Vec<&StageView> = m
                    .stages
                    .iter()
                    .filter(|s| serves(s.index))
                    .filter(|s| {
                        s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&name))
                            || s.number().to_string() == name
                    })
                    .collect();
                match stages.iter().find(|s| !s.started).or(stages.first()) {
                    None => {
                        let mut names: Vec<String> =
                            m.stages.iter().filter(|s| serves(s.index)).map(|s| s.label()).collect();
                        names.dedup();
                        Err(format!("no stage {name}{on} (the stages: {})", names.join(", ")))
                    }
                    Some(s) if !s.needed => Err(format!("{} is skipped by this build", s.label())),
                    Some(s) if s.started => Err(format!("{} has already started{on}", s.label())),
                    Some(_) => Ok(Breakpoint::Stage(name)),
                }
            }
            other => Ok(other),
        }
    }
}
