//! What each [`Action`] does: the app's own (quit, help, panes, zoom, debugging, popups) here;
//! a pane's go to the focused pane ([`App::dispatch`]), and what it asks for in return
//! ([`Outcome`]) is carried out here.

use super::{App, Effect, Input, Mode, Pane, Popup, Severity, Waiting};
use crate::debugger::{Breakpoint, Resume};
use crate::tui::keymap::Action;
use crate::tui::panes::Outcome;
use trowel_engine::engine::controller::{Decision, ShellChoice};

impl App {
    /// Runs an action in the current context.
    pub fn act(&mut self, action: Action) -> Vec<Effect> {
        if let Some(popup) = &self.popup {
            let popup = popup.clone();
            return self.act_in_popup(&popup, action);
        }
        match action {
            Action::Quit => {
                if self.build_running() {
                    self.popup = Some(Popup::ConfirmQuit);
                    return Vec::new();
                }
                return self.quit_now();
            }
            Action::ForceQuit => return self.quit_now(),
            Action::Help => self.popup = Some(Popup::Help { filter: String::new(), selected: 0 }),
            Action::Close => {
                if self.zoom {
                    self.zoom = false;
                } else {
                    let focus = self.focus;
                    let (ctx, panes) = self.split();
                    let outcome = panes.get_mut(focus).handle(action, &ctx);
                    if outcome == Outcome::Ignored {
                        self.message = None;
                    }
                    return self.carry_out(outcome);
                }
            }
            Action::NextPane | Action::PrevPane => {
                let i = Pane::ALL.iter().position(|p| *p == self.focus).unwrap_or(0);
                let n = Pane::ALL.len();
                let next = if action == Action::NextPane { (i + 1) % n } else { (i + n - 1) % n };
                self.focus_pane(Pane::ALL[next]);
            }
            Action::FocusSteps => self.focus_pane(Pane::Steps),
            Action::FocusChanges => self.focus_pane(Pane::Changes),
            Action::FocusFile => self.focus_pane(Pane::File),
            Action::FocusCache => self.focus_pane(Pane::Cache),
            Action::FocusLayers => self.focus_pane(Pane::Layers),
            Action::FocusLogs => self.focus_pane(Pane::Logs),
            Action::FocusBreaks => self.focus_pane(Pane::Breaks),
            Action::FocusFiles => self.focus_pane(Pane::Files),
            Action::Copy => return self.copy(),
            Action::ShowCommand => match self.selected_id() {
                Some(id) => self.popup = Some(Popup::Command { id, scroll: 0 }),
                None => self.say("no step selected", Severity::Info),
            },
            Action::Zoom => self.zoom = !self.zoom,
            Action::ShowPush => {
                if self.model.review.is_some() || !self.model.pushes.is_empty() {
                    self.popup = Some(Popup::Review { scroll: 0, decided: self.waiting != Some(Waiting::Push) });
                } else {
                    let why = if self.model.events > 0 && self.model.destinations.is_empty() {
                        "this build does not push (--no-push, or no --destination): there is no push review"
                    } else if self.model.is_over() {
                        "the build ended before its push review: nothing was pushed"
                    } else {
                        "nothing to push yet: the review appears when the image is assembled"
                    };
                    self.say(why, Severity::Info);
                }
            }
            Action::StepNext
            | Action::Continue
            | Action::RunToCursor
            | Action::Shell
            | Action::ToggleBreakpoint
            | Action::BreakOnFailure
            | Action::BreakOnCacheMiss => return self.debug(action),
            Action::Retry => return self.retry(),
            Action::EditStep => return self.open_editor(),
            Action::Yes | Action::No => {}
            _ => return self.dispatch(self.focus, action),
        }
        Vec::new()
    }

    /// Runs a pane's action in `pane`, then what the pane asks for.
    pub(crate) fn dispatch(&mut self, pane: Pane, action: Action) -> Vec<Effect> {
        // A step selected earlier in this message may have left the Changes tree to rebuild.
        self.sync();
        let before = self.panes.steps.position();
        let outcome = {
            let (ctx, panes) = self.split();
            panes.get_mut(pane).handle(action, &ctx)
        };
        self.after(before, outcome)
    }

    /// A click on a screen row of `pane`.
    pub(crate) fn click(&mut self, pane: Pane, row: u16) -> Vec<Effect> {
        self.sync();
        let before = self.panes.steps.position();
        let outcome = {
            let (ctx, panes) = self.split();
            panes.get_mut(pane).click(row, &ctx)
        };
        self.after(before, outcome)
    }

    /// After a pane acted: if the Steps pane selected another step, the detail panes start
    /// over; then what the pane asked for.
    fn after(&mut self, position_before: usize, outcome: Outcome) -> Vec<Effect> {
        if self.panes.steps.position() != position_before {
            self.step_changed();
        }
        self.carry_out(outcome)
    }

    /// Does what a pane asked for.
    pub(super) fn carry_out(&mut self, outcome: Outcome) -> Vec<Effect> {
        match outcome {
            Outcome::Done | Outcome::Ignored => {}
            Outcome::Focus(pane) => self.focus_pane(pane),
            Outcome::ShowDetail => {
                let target = if self.detail == Pane::Steps { Pane::Changes } else { self.detail };
                self.focus_pane(target);
            }
            Outcome::OpenFile(path) => {
                self.panes.file.open(path);
                self.focus_pane(Pane::File);
            }
            Outcome::ShowStep(id) => {
                self.panes.steps.set_following(false);
                self.select_step(id);
                self.focus_pane(Pane::Changes);
            }
            Outcome::Input(target, text) => self.input = Some(Input { target, text }),
            Outcome::Act(action) => return self.act(action),
            Outcome::Say(text, severity) => self.say(&text, severity),
            Outcome::Copy(text, what) => return self.copy_text(text, &what),
            Outcome::RemoveBreakpoint(spec) => {
                let removed = self.with_breakpoints(|b| {
                    let before = b.len();
                    b.retain(|x| x.spec() != spec);
                    b.len() != before
                });
                if removed == Some(true) {
                    self.say(&format!("breakpoint {spec} removed"), Severity::Info);
                }
            }
        }
        Vec::new()
    }

    fn act_in_popup(&mut self, popup: &Popup, action: Action) -> Vec<Effect> {
        match (popup, action) {
            (_, Action::ForceQuit) => return self.quit_now(),
            (Popup::ConfirmQuit, Action::Yes) => return self.quit_now(),
            (Popup::ConfirmQuit, Action::No | Action::Close) => self.popup = None,
            (Popup::ShellChanges { .. }, Action::Yes | Action::No) => {
                let keep = action == Action::Yes;
                self.popup = None;
                self.panes.changes.invalidate();
                if self.waiting == Some(Waiting::ShellChoice) {
                    self.waiting = None;
                    let text =
                        if keep { "keeping the shell's changes as a layer" } else { "discarding the shell's changes" };
                    self.say(text, Severity::Info);
                    return vec![Effect::ShellChoice(if keep { ShellChoice::Keep } else { ShellChoice::Discard })];
                }
            }
            (Popup::Review { decided: false, .. }, Action::Yes) if self.waiting == Some(Waiting::Push) => {
                self.waiting = None;
                self.popup = Some(Popup::Review { scroll: 0, decided: true });
                self.say("pushing", Severity::Info);
                return vec![Effect::Push(Decision::Continue)];
            }
            (Popup::Review { decided: false, .. }, Action::No) if self.waiting == Some(Waiting::Push) => {
                self.waiting = None;
                self.popup = None;
                self.say("push declined: the build is aborted and nothing is pushed", Severity::Warn);
                return vec![Effect::Push(Decision::Abort("push declined in the debugger".into()))];
            }
            (Popup::Review { .. }, Action::Close) => {
                // The review is not modal: the panes can be looked at while the engine waits,
                // and `p` brings the decision back.
                self.popup = None;
                if self.waiting == Some(Waiting::Push) {
                    self.say("the build waits for your answer: p brings the push review back", Severity::Warn);
                }
            }
            (Popup::Command { .. }, Action::Close) => self.popup = None,
            (Popup::Command { .. }, Action::Copy) => return self.copy(),
            (Popup::Command { id, scroll }, Action::Up | Action::Down) => {
                let scroll = if action == Action::Up { scroll.saturating_sub(1) } else { scroll + 1 };
                self.popup = Some(Popup::Command { id: *id, scroll });
            }
            (Popup::Review { scroll, decided }, Action::Up | Action::Down) => {
                let scroll = if action == Action::Up { scroll.saturating_sub(1) } else { scroll + 1 };
                self.popup = Some(Popup::Review { scroll, decided: *decided });
            }
            (Popup::ShellChanges { changes, scroll, at }, Action::Up | Action::Down) => {
                let scroll = if action == Action::Up { scroll.saturating_sub(1) } else { scroll + 1 };
                self.popup = Some(Popup::ShellChanges { changes: changes.clone(), scroll, at: *at });
            }
            _ => {}
        }
        Vec::new()
    }

    /// Debugger commands: only at a pause (stepping, shell) or in a live session.
    fn debug(&mut self, action: Action) -> Vec<Effect> {
        if self.mode == Mode::Replay {
            self.say("this is a replay of a recorded build: it is read-only", Severity::Info);
            return Vec::new();
        }
        match action {
            Action::ToggleBreakpoint => {
                let Some(step) = self.selected_step() else { return Vec::new() };
                let line = step.line;
                // While the Steps pane shows one target platform, the breakpoint is that
                // platform's (`linux/arm64@12`).
                let platform = self.panes.steps.platform().map(str::to_string);
                let bp = match &platform {
                    Some(p) => Breakpoint::OnPlatform { platform: p.clone(), inner: Box::new(Breakpoint::Line(line)) },
                    None => Breakpoint::Line(line),
                };
                let spec = bp.spec();
                let added = self
                    .with_breakpoints(|b| {
                        let before = b.len();
                        b.retain(|x| x.spec() != spec);
                        if b.len() == before {
                            b.push(bp);
                            true
                        } else {
                            false
                        }
                    })
                    .unwrap_or(false);
                let on = platform.map(|p| format!(" on {p}")).unwrap_or_default();
                let text = if added {
                    format!("breakpoint set at line {line}{on}")
                } else {
                    format!("breakpoint at line {line}{on} removed")
                };
                self.say(&text, Severity::Info);
                return Vec::new();
            }
            Action::BreakOnFailure | Action::BreakOnCacheMiss => {
                let failure = action == Action::BreakOnFailure;
                let on = self
                    .with_breakpoints(|b| {
                        let is = |x: &Breakpoint| {
                            if failure { matches!(x, Breakpoint::Failure) } else { matches!(x, Breakpoint::CacheMiss) }
                        };
                        let had = b.iter().any(is);
                        b.retain(|x| !is(x));
                        if !had {
                            b.push(if failure { Breakpoint::Failure } else { Breakpoint::CacheMiss });
                        }
                        !had
                    })
                    .unwrap_or(false);
                let what = if failure { "break on failure" } else { "break on cache miss" };
                self.say(&format!("{what}: {}", if on { "on" } else { "off" }), Severity::Info);
                return Vec::new();
            }
            _ => {}
        }
        if self.waiting != Some(Waiting::Pause) {
            let why = if self.build_done {
                "the build has ended"
            } else {
                "the build is running: it stops at breakpoints (b sets one on the selected step)"
            };
            self.say(why, Severity::Info);
            return Vec::new();
        }
        let resume = match action {
            Action::StepNext => Resume::Step,
            Action::Continue => Resume::Continue,
            Action::RunToCursor => {
                let Some(line) = self.selected_step().map(|s| s.line) else { return Vec::new() };
                let at = self.pause.as_ref().map_or(0, |p| p.at.line);
                if line <= at {
                    self.say(
                        &format!("line {line} is not after the pause (line {at}): pick a later step"),
                        Severity::Warn,
                    );
                    return Vec::new();
                }
                Resume::RunToLine(line)
            }
            Action::Shell => {
                // The shell is at the pause, whatever step was selected since (after `n`, the
                // one that just ran).
                if let Some(id) = self.pause.as_ref().map(|p| p.at.id) {
                    self.select_step(id);
                }
                self.waiting = None;
                self.pause = None;
                self.shell_open = true;
                self.say("shell session in the build root", Severity::Info);
                return vec![Effect::OpenShell];
            }
            _ => return Vec::new(),
        };
        // After `n` from a pause before a step, the next pause shows what that step did.
        self.stepped_over = match (&resume, &self.pause) {
            (Resume::Step, Some(p)) if p.at.when == trowel_events::When::BeforeStep => Some(p.at.id),
            _ => None,
        };
        self.waiting = None;
        self.pause = None;
        self.panes.steps.set_following(true);
        self.message = None;
        vec![Effect::Resume(resume)]
    }

    pub(crate) fn focus_pane(&mut self, pane: Pane) {
        self.focus = pane;
        if pane != Pane::Steps {
            self.detail = pane;
        }
    }

    /// Rows a page of the focused pane holds.
    pub(crate) fn page(&self) -> usize {
        let area = if self.focus == Pane::Steps { self.areas.steps } else { self.areas.detail };
        (area.height as usize).saturating_sub(3).max(1)
    }
}
