//! The Logs pane: RUN output (and shell sessions' output), live while the build runs,
//! scrollable, searchable with `/` (`n`/`N` move between matches), for every step or only the
//! selected one (every step of the platform the Steps pane shows, in a build for several). A
//! gutter names the Dockerfile line whose step printed each run of lines, and its platform when
//! a build for several shows every platform's lines.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Component, Ctx, InputTarget, Motion, Outcome, Severity, View};
use crate::tui::app::Mode;
use crate::tui::format;
use crate::tui::keymap::Action;
use crate::tui::theme::Theme;
use trowel_events::OutputStream;

const GUTTER: usize = 5;

#[derive(Debug, Clone)]
pub struct LogsPane {
    /// First visible line (of the lines in scope).
    scroll: usize,
    /// Keep the newest output in view.
    follow: bool,
    query: String,
    /// The current match (line index in scope).
    current: Option<usize>,
    /// Only the selected step's output.
    step_only: bool,
}

impl Default for LogsPane {
    fn default() -> LogsPane {
        LogsPane { scroll: 0, follow: true, query: String::new(), current: None, step_only: false }
    }
}

impl LogsPane {
    pub fn query(&self) -> &str {
        &self.query
    }

    pub fn current(&self) -> Option<usize> {
        self.current
    }

    pub fn step_only(&self) -> bool {
        self.step_only
    }

    pub fn following(&self) -> bool {
        self.follow
    }

    /// Shows the output from its first line, not following it (a replay opens so).
    pub fn from_the_top(&mut self) {
        self.follow = false;
        self.scroll = 0;
    }

    /// Another step is selected: its output starts at the top.
    pub fn step_changed(&mut self) {
        if self.step_only {
            self.scroll = 0;
        }
    }

    /// Indices (into the log buffer) of the lines the pane shows (of all steps: those of the
    /// platform the Steps pane shows, in a build for several).
    pub fn scope(&self, ctx: &Ctx) -> Vec<usize> {
        let step = ctx.selected_id();
        let shown = |l: &crate::tui::model::LogLine| {
            ctx.platform.as_deref().is_none_or(|p| ctx.model.stage(l.step.stage).is_none_or(|s| s.serves(p)))
        };
        ctx.model
            .logs
            .iter()
            .enumerate()
            .filter(|(_, l)| if self.step_only { Some(l.step) == step } else { shown(l) })
            .map(|(i, _)| i)
            .collect()
    }

    /// The search typed so far: goes to the first match from where the view is.
    pub fn search(&mut self, query: String, ctx: &Ctx) -> Outcome {
        self.query = query;
        self.current = None;
        if self.query.is_empty() {
            return Outcome::Done;
        }
        self.next_match(true, true, ctx)
    }

    /// Moves to the next (or previous) line matching the search, wrapping around.
    fn next_match(&mut self, forward: bool, include_current: bool, ctx: &Ctx) -> Outcome {
        let q = self.query.to_lowercase();
        let scope = self.scope(ctx);
        let hits: Vec<usize> = scope
            .iter()
            .enumerate()
            .filter(|(_, i)| ctx.model.logs.get(**i).is_some_and(|l| l.text.to_lowercase().contains(&q)))
            .map(|(pos, _)| pos)
            .collect();
        if hits.is_empty() {
            self.current = None;
            return Outcome::Say(format!("no output matches {:?}", self.query), Severity::Warn);
        }
        let from = self.current.unwrap_or(self.scroll.min(scope.len()));
        let pick = if forward {
            hits.iter()
                .copied()
                .find(|&h| if include_current || self.current.is_none() { h >= from } else { h > from })
                .unwrap_or(hits[0])
        } else {
            hits.iter().rev().copied().find(|&h| h < from).unwrap_or(*hits.last().expect("not empty"))
        };
        let n = hits.iter().position(|&h| h == pick).unwrap_or(0) + 1;
        self.current = Some(pick);
        self.follow = false;
        self.scroll = pick.saturating_sub(ctx.page / 2);
        // The search moves between lines: it counts lines that hold the text, not occurrences
        // (`err err err` is one line, one stop).
        Outcome::Say(format!("line {n} of {} with {:?}", hits.len(), self.query), Severity::Info)
    }
}

impl Component for LogsPane {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Outcome {
        match Motion::of(action, ctx.page) {
            Some(Motion::To(pos)) => {
                self.scroll = pos;
                self.follow = pos == usize::MAX;
                return Outcome::Done;
            }
            Some(m) => {
                self.follow = false;
                let base = self.scroll.min(self.scope(ctx).len().saturating_sub(1));
                self.scroll = m.apply(base);
                return Outcome::Done;
            }
            None => {}
        }
        match action {
            Action::Filter => return Outcome::Input(InputTarget::LogSearch, self.query.clone()),
            Action::NextMatch | Action::PrevMatch if self.query.is_empty() => {
                if action == Action::NextMatch && ctx.mode == Mode::Live {
                    return Outcome::Act(Action::StepNext);
                }
                return Outcome::Say("no search: press / to search the output".into(), Severity::Info);
            }
            Action::NextMatch | Action::PrevMatch => return self.next_match(action == Action::NextMatch, false, ctx),
            Action::Follow => {
                self.follow = !self.follow;
                if self.follow {
                    self.scroll = usize::MAX;
                }
            }
            Action::Scope => {
                self.step_only = !self.step_only;
                self.scroll = if self.step_only { 0 } else { usize::MAX };
                self.current = None;
            }
            Action::Close if !self.query.is_empty() => {
                self.query.clear();
                self.current = None;
            }
            _ => return Outcome::Ignored,
        }
        Outcome::Done
    }

    fn render(&self, frame: &mut Frame, area: Rect, ctx: &Ctx, theme: &Theme) -> View {
        let width = area.width as usize;
        let scope = self.scope(ctx);
        let logs = &ctx.model.logs;
        let mut lines: Vec<Line> = Vec::new();
        // Status row: scope, follow, search.
        let mut status = vec![Span::styled(if self.step_only { "selected step" } else { "all steps" }, theme.header)];
        // In a build for several platforms the lines are one platform's: say which.
        if let Some(p) = ctx.platform.as_deref().filter(|_| !self.step_only) {
            status.push(Span::styled(format!(" of {p}"), theme.header));
        }
        status
            .push(Span::styled(format!(" · {} {}", scope.len(), crate::units::plural(scope.len(), "line")), theme.dim));
        if self.follow {
            status.push(Span::styled(" · following", theme.dim));
        }
        if logs.dropped() > 0 {
            status.push(Span::styled(format!(" · {} older lines dropped", logs.dropped()), theme.dim));
        }
        if let Some(text) = ctx.typing(InputTarget::LogSearch) {
            status.push(Span::styled(format!(" /{text}▏"), theme.search_match));
        } else if !self.query.is_empty() {
            status.push(Span::styled(format!(" /{}", self.query), theme.search_match));
        }
        lines.push(Line::from(status));
        let height = (area.height as usize).saturating_sub(1);
        if scope.is_empty() {
            let text = if logs.is_empty() { "no output yet" } else { "the selected step printed nothing" };
            lines.push(Line::from(Span::styled(text, theme.dim)));
            frame.render_widget(Paragraph::new(lines), area);
            return View::Logs(self.scroll);
        }
        let max = scope.len().saturating_sub(height);
        let scroll = if self.follow { max } else { self.scroll.min(max) };
        let query = self.query.to_lowercase();
        // Every platform's lines at once (a build for several, unfiltered): the same line runs
        // on each, so a run of lines also names the target platform its stage is built for (a
        // `FROM --platform=$BUILDPLATFORM` stage runs on the build platform for each target);
        // a stage the targets share, the platform it runs on.
        let platform_of = |l: &crate::tui::model::LogLine| {
            let stage = ctx.model.stage(l.step.stage);
            let p = match stage.map(|s| s.targets.as_slice()) {
                Some([one]) => one.as_str(),
                _ => stage.and_then(|s| s.platform.as_deref()).unwrap_or(""),
            };
            p.strip_prefix("linux/").unwrap_or(p).to_string()
        };
        let tag_w = if ctx.model.platforms.len() > 1 && ctx.platform.is_none() {
            scope.iter().filter_map(|&i| logs.get(i)).map(|l| platform_of(l).len() + 1).max().unwrap_or(0)
        } else {
            0
        };
        let text_w = width.saturating_sub(GUTTER + tag_w);
        for (pos, &i) in scope.iter().enumerate().skip(scroll).take(height) {
            let Some(l) = logs.get(i) else { continue };
            let prev_step = i.checked_sub(1).and_then(|p| logs.get(p)).map(|p| (p.step, p.shell));
            let starts = prev_step != Some((l.step, l.shell)) || pos == scroll;
            let gutter = if starts {
                let line = ctx.model.step(l.step).map_or(0, |s| s.line);
                let tag = if l.shell { format!("!{line}") } else { format!("L{line}") };
                format::fit(&tag, GUTTER)
            } else {
                " ".repeat(GUTTER)
            };
            let platform = match tag_w {
                0 => String::new(),
                w if starts => format::fit(&platform_of(l), w),
                w => " ".repeat(w),
            };
            let base = match (l.shell, l.stream) {
                _ if l.marker => theme.dim,
                (_, OutputStream::Stderr) => theme.stderr,
                (true, _) => theme.dim,
                _ => theme.text,
            };
            let text = format::truncate(&format::sanitize(&l.text), text_w);
            let mut spans = vec![Span::styled(gutter, theme.step_header)];
            if tag_w > 0 {
                spans.push(Span::styled(platform, theme.dim));
            }
            spans.extend(highlight(&text, &query, base, theme.search_match));
            let mut line = Line::from(spans);
            if self.current == Some(pos) {
                line = line.patch_style(theme.selection);
            }
            lines.push(line);
        }
        frame.render_widget(Paragraph::new(lines), area);
        View::Logs(scroll)
    }

    fn drawn(&mut self, view: View) {
        if let View::Logs(scroll) = view {
            self.scroll = scroll;
        }
    }
}

/// Splits `text` into spans with every case-insensitive occurrence of `query` emphasised.
fn highlight<'a>(text: &str, query: &str, base: ratatui::style::Style, hit: ratatui::style::Style) -> Vec<Span<'a>> {
    if query.is_empty() {
        return vec![Span::styled(text.to_string(), base)];
    }
    let lower = text.to_lowercase();
    // Lower-casing can change byte lengths outside ASCII; only highlight when it did not.
    if lower.len() != text.len() {
        return vec![Span::styled(text.to_string(), base)];
    }
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(off) = lower[at..].find(query) {
        let start = at + off;
        let end = start + query.len();
        if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            break;
        }
        if start > at {
            spans.push(Span::styled(text[at..start].to_string(), base));
        }
        spans.push(Span::styled(text[start..end].to_string(), hit));
        at = end;
    }
    if at < text.len() {
        spans.push(Span::styled(text[at..].to_string(), base));
    }
    spans
}
