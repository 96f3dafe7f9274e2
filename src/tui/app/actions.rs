//! What each [`Action`] does to the app state.

use super::{App, Effect, Input, InputTarget, Mode, Pane, Popup, RowsKey, Severity, Waiting};
use crate::debugger::{Breakpoint, Resume};
use crate::tui::keymap::Action;
use std::sync::Arc;
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
            Action::Close => self.close(),
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
            Action::Zoom => self.zoom = !self.zoom,
            Action::ShowPush => {
                if self.model.review.is_some() || !self.model.pushes.is_empty() {
                    self.popup = Some(Popup::Review { scroll: 0, decided: self.waiting != Some(Waiting::Push) });
                } else {
                    self.say("nothing to push yet: the review appears when the image is assembled", Severity::Info);
                }
            }
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-(self.page() as isize)),
            Action::PageDown => self.move_by(self.page() as isize),
            Action::HalfPageUp => self.move_by(-(self.page() as isize / 2).max(1)),
            Action::HalfPageDown => self.move_by((self.page() as isize / 2).max(1)),
            Action::Top => self.move_to(0),
            Action::Bottom => self.move_to(usize::MAX),
            Action::Collapse => self.collapse(),
            Action::Expand => self.expand(),
            Action::Toggle => self.toggle_dir(),
            Action::Open => self.open(),
            Action::Filter => {
                let (target, text) = match self.focus {
                    Pane::Logs => (InputTarget::LogSearch, self.logs.query.clone()),
                    _ => (InputTarget::ChangesFilter, self.changes.filter.clone()),
                };
                self.input = Some(Input { target, text });
            }
            Action::Sort => {
                self.changes.sort = self.changes.sort.toggle();
                self.changes.cursor = 0;
                self.changes.scroll = 0;
            }
            Action::CollapseAll => {
                let dirs: Vec<String> = self.tree().directories().map(str::to_string).collect();
                self.changes.collapsed.extend(dirs);
                self.changes.cursor = 0;
                self.changes.scroll = 0;
            }
            Action::ExpandAll => self.changes.collapsed.clear(),
            Action::NextMatch | Action::PrevMatch => {
                if self.logs.query.is_empty() {
                    if action == Action::NextMatch && self.mode == Mode::Live {
                        return self.debug(Action::StepNext);
                    }
                    self.say("no search: press / to search the output", Severity::Info);
                } else {
                    self.next_match(action == Action::NextMatch, false);
                }
            }
            Action::Follow => {
                if self.focus == Pane::Logs {
                    self.logs.follow = !self.logs.follow;
                    if self.logs.follow {
                        self.logs.scroll = usize::MAX;
                    }
                } else {
                    self.follow = true;
                    if let Some(id) = self.model.current {
                        self.select_step(id);
                    }
                    self.say("following the running step", Severity::Info);
                }
            }
            Action::Scope => {
                self.logs.step_only = !self.logs.step_only;
                self.logs.scroll = if self.logs.step_only { 0 } else { usize::MAX };
                self.logs.current = None;
            }
            Action::StepNext
            | Action::Continue
            | Action::RunToCursor
            | Action::Shell
            | Action::ToggleBreakpoint
            | Action::BreakOnFailure
            | Action::BreakOnCacheMiss => return self.debug(action),
            Action::Yes | Action::No => {}
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
                self.changes.tree = None;
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
            (Popup::Review { decided, .. }, Action::Close) => {
                if *decided || self.waiting != Some(Waiting::Push) {
                    self.popup = None;
                } else {
                    self.say("the build waits for an answer: y pushes, n aborts", Severity::Warn);
                }
            }
            (Popup::Review { scroll, decided }, Action::Up | Action::Down) => {
                let scroll = if action == Action::Up { scroll.saturating_sub(1) } else { scroll + 1 };
                self.popup = Some(Popup::Review { scroll, decided: *decided });
            }
            (Popup::ShellChanges { changes, scroll }, Action::Up | Action::Down) => {
                let scroll = if action == Action::Up { scroll.saturating_sub(1) } else { scroll + 1 };
                self.popup = Some(Popup::ShellChanges { changes: changes.clone(), scroll });
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
                let added = self
                    .with_breakpoints(|b| {
                        let before = b.len();
                        b.retain(|x| !matches!(x, Breakpoint::Line(l) if *l == line));
                        if b.len() == before {
                            b.push(Breakpoint::Line(line));
                            true
                        } else {
                            false
                        }
                    })
                    .unwrap_or(false);
                let text = if added {
                    format!("breakpoint set at line {line}")
                } else {
                    format!("breakpoint at line {line} removed")
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
                self.waiting = None;
                self.pause = None;
                self.shell_open = true;
                self.say("shell session in the build root", Severity::Info);
                return vec![Effect::OpenShell];
            }
            _ => return Vec::new(),
        };
        self.waiting = None;
        self.pause = None;
        self.follow = true;
        self.message = None;
        vec![Effect::Resume(resume)]
    }

    fn close(&mut self) {
        if self.zoom {
            self.zoom = false;
        } else if self.focus == Pane::Changes && !self.changes.filter.is_empty() {
            self.changes.filter.clear();
        } else if self.focus == Pane::Logs && !self.logs.query.is_empty() {
            self.logs.query.clear();
            self.logs.current = None;
        } else if self.focus == Pane::File {
            self.focus_pane(Pane::Changes);
        } else {
            self.message = None;
        }
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

    fn move_by(&mut self, delta: isize) {
        let apply = |v: usize| -> usize {
            if delta < 0 { v.saturating_sub(delta.unsigned_abs()) } else { v.saturating_add(delta as usize) }
        };
        match self.focus {
            Pane::Steps => {
                let n = self.step_ids().len();
                let next = apply(self.selected).min(n.saturating_sub(1));
                if next != self.selected {
                    self.selected = next;
                    self.follow = false;
                    self.step_changed();
                }
            }
            Pane::Changes => {
                let n = self.change_rows().len();
                self.changes.cursor = apply(self.changes.cursor).min(n.saturating_sub(1));
            }
            Pane::File => self.file_scroll = apply(self.file_scroll),
            Pane::Cache => self.cache_scroll = apply(self.cache_scroll),
            Pane::Layers => {
                let n = self.layer_count();
                self.layer_cursor = apply(self.layer_cursor).min(n.saturating_sub(1));
            }
            Pane::Logs => {
                self.logs.follow = false;
                let base = self.logs.scroll.min(self.log_scope().len().saturating_sub(1));
                self.logs.scroll = apply(base);
            }
        }
    }

    fn move_to(&mut self, pos: usize) {
        match self.focus {
            Pane::Steps => {
                let n = self.step_ids().len();
                let next = pos.min(n.saturating_sub(1));
                if next != self.selected {
                    self.selected = next;
                    self.follow = false;
                    self.step_changed();
                }
            }
            Pane::Changes => self.changes.cursor = pos.min(self.change_rows().len().saturating_sub(1)),
            Pane::File => self.file_scroll = pos,
            Pane::Cache => self.cache_scroll = pos,
            Pane::Layers => self.layer_cursor = pos.min(self.layer_count().saturating_sub(1)),
            Pane::Logs => {
                self.logs.scroll = pos;
                self.logs.follow = pos == usize::MAX;
            }
        }
    }

    /// The visible rows of the change tree.
    pub fn change_rows(&mut self) -> Arc<Vec<crate::tui::model::tree::Row>> {
        self.tree();
        let tree_key = self.changes.tree.as_ref().map(|(k, _)| *k).expect("tree() just built it");
        if let Some((k, rows)) = &self.changes.rows
            && k.tree == tree_key
            && k.sort == self.changes.sort
            && k.filter == self.changes.filter
            && k.collapsed == self.changes.collapsed
        {
            return rows.clone();
        }
        let c = &self.changes;
        let tree = &c.tree.as_ref().expect("tree() just built it").1;
        let rows = Arc::new(tree.rows(&c.collapsed, c.sort, &c.filter));
        let key = RowsKey { tree: tree_key, sort: c.sort, filter: c.filter.clone(), collapsed: c.collapsed.clone() };
        self.changes.rows = Some((key, rows.clone()));
        rows
    }

    /// The tree row under the cursor: its node's path, whether it has children, whether
    /// they are shown, and the row's depth.
    fn cursor_row(&mut self) -> Option<(String, Option<bool>, usize, bool)> {
        let rows = self.change_rows();
        let row = *rows.get(self.changes.cursor)?;
        let node = &self.tree().nodes[row.node];
        Some((node.path.clone(), row.expanded, row.depth, node.change.is_some()))
    }

    fn collapse(&mut self) {
        match self.focus {
            Pane::Changes => {
                let Some((path, expanded, depth, _)) = self.cursor_row() else { return };
                if expanded == Some(true) {
                    self.changes.collapsed.insert(path);
                } else if depth > 0 {
                    // Go to the parent directory's row.
                    let rows = self.change_rows();
                    if let Some(i) = rows[..self.changes.cursor].iter().rposition(|r| r.depth < depth) {
                        self.changes.cursor = i;
                    }
                }
            }
            Pane::File => self.focus_pane(Pane::Changes),
            _ => {}
        }
    }

    fn expand(&mut self) {
        match self.focus {
            Pane::Changes => {
                if let Some((path, Some(false), _, _)) = self.cursor_row() {
                    self.changes.collapsed.remove(&path);
                }
            }
            Pane::Steps => self.open(),
            _ => {}
        }
    }

    fn toggle_dir(&mut self) {
        if let Some((path, Some(open), _, _)) = self.cursor_row() {
            if open {
                self.changes.collapsed.insert(path);
            } else {
                self.changes.collapsed.remove(&path);
            }
        }
    }

    fn open(&mut self) {
        match self.focus {
            Pane::Steps => {
                let target = if self.detail == Pane::Steps { Pane::Changes } else { self.detail };
                self.focus_pane(target);
            }
            Pane::Changes => {
                let Some((path, expanded, _, changed)) = self.cursor_row() else { return };
                if changed && expanded.is_none() {
                    self.file = Some(path);
                    self.file_scroll = 0;
                    self.focus_pane(Pane::File);
                } else if changed && expanded.is_some() {
                    // A changed directory: show its metadata; its children stay in the tree.
                    self.file = Some(path);
                    self.file_scroll = 0;
                    self.focus_pane(Pane::File);
                } else {
                    self.toggle_dir();
                }
            }
            Pane::Layers => {
                let step = self.layers().get(self.layer_cursor).and_then(|l| l.step);
                match step {
                    Some(id) => {
                        self.follow = false;
                        self.select_step(id);
                        self.focus_pane(Pane::Changes);
                    }
                    None => self.say("a base-image layer: no step of this Dockerfile made it", Severity::Info),
                }
            }
            _ => {}
        }
    }

    /// The layers the Layers pane lists: the image's once assembled, else those of the
    /// image's stages so far (base layers, then each step's).
    pub fn layers(&self) -> Vec<trowel_events::LayerSummary> {
        if let Some(img) = &self.model.image {
            return img.layers.clone();
        }
        let mut out = Vec::new();
        for s in crate::tui::model::waste::image_stages(&self.model) {
            let Some(stage) = self.model.stage(s) else { continue };
            if stage.source.as_ref().is_some_and(|src| !matches!(src, trowel_events::BaseSource::Stage { .. })) {
                out.extend(stage.base_layers.iter().cloned());
            }
            for id in &stage.steps {
                let Some(step) = self.model.step(*id) else { continue };
                let kept = |before: bool| {
                    step.shells
                        .iter()
                        .filter(move |s| s.kept == Some(true) && s.before_step == before)
                        .filter_map(|s| s.layer.clone())
                };
                out.extend(kept(true));
                out.extend(step.layer.clone());
                out.extend(kept(false));
            }
        }
        out
    }

    fn layer_count(&self) -> usize {
        self.layers().len()
    }

    /// Indices (into the log buffer) of the lines the Logs pane shows.
    pub fn log_scope(&self) -> Vec<usize> {
        let step = self.selected_id();
        self.model
            .logs
            .iter()
            .enumerate()
            .filter(|(_, l)| !self.logs.step_only || Some(l.step) == step)
            .map(|(i, _)| i)
            .collect()
    }

    /// Moves to the next (or previous) line matching the search, wrapping around.
    pub(crate) fn next_match(&mut self, forward: bool, include_current: bool) {
        let q = self.logs.query.to_lowercase();
        let scope = self.log_scope();
        let hits: Vec<usize> = scope
            .iter()
            .enumerate()
            .filter(|(_, i)| self.model.logs.get(**i).is_some_and(|l| l.text.to_lowercase().contains(&q)))
            .map(|(pos, _)| pos)
            .collect();
        if hits.is_empty() {
            self.logs.current = None;
            self.say(&format!("no output matches {:?}", self.logs.query), Severity::Warn);
            return;
        }
        let from = self.logs.current.unwrap_or(self.logs.scroll.min(scope.len()));
        let pick = if forward {
            hits.iter()
                .copied()
                .find(|&h| if include_current || self.logs.current.is_none() { h >= from } else { h > from })
                .unwrap_or(hits[0])
        } else {
            hits.iter().rev().copied().find(|&h| h < from).unwrap_or(*hits.last().expect("not empty"))
        };
        let n = hits.iter().position(|&h| h == pick).unwrap_or(0) + 1;
        self.logs.current = Some(pick);
        self.logs.follow = false;
        let page = self.page();
        self.logs.scroll = pick.saturating_sub(page / 2);
        self.say(&format!("match {n} of {} for {:?}", hits.len(), self.logs.query), Severity::Info);
    }
}
