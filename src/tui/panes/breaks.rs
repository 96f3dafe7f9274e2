//! The Breakpoints pane: every breakpoint of every kind (line, stage, failure, cache miss,
//! layer size, path), how often each fired and where it last did, with keys to add one (in
//! the `--break` syntax) and remove the selected one.
//!
//! What fired is read from the build's `paused` events (each names the breakpoint that fired,
//! as it was written), not kept by the UI, so a live session and a replay of its trace show
//! the same counts. Which were set is the debugger's list live, and the trace's `breakpoints`
//! events in a replay (every one set during the build, those removed on the way marked so);
//! a trace from before trowel recorded them has only those that fired, and the pane says so.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Component, Ctx, InputTarget, Motion, Outcome, Severity, View as PaneView, scroll_for};
use crate::debugger::Breakpoint;
use crate::tui::app::Mode;
use crate::tui::format;
use crate::tui::keymap::Action;
use crate::tui::model::Model;
use crate::tui::theme::Theme;
use trowel_events::StepId;

#[derive(Debug, Clone, Default)]
pub struct BreaksPane {
    cursor: usize,
    scroll: usize,
}

/// One row: a breakpoint that is set, or one that fired and is set no more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// As written on the command line (`12`, `stage:build`, `size:10MB`).
    pub spec: String,
    /// In words (`line 12`, `layer > 10MB`).
    pub describe: String,
    /// Still set (a live session); `false`: removed since it fired, or a replay.
    pub set: bool,
    /// Pauses it caused.
    pub fired: usize,
    /// The step and line where it fired last.
    pub last: Option<(StepId, usize)>,
}

/// Every pause's firing breakpoints, in the order they happened: (spec, step, line).
fn firings(model: &Model) -> Vec<(String, StepId, usize, u64)> {
    let mut out: Vec<(String, StepId, usize, u64)> = model
        .steps()
        .flat_map(|s| {
            s.pauses.iter().flat_map(move |p| {
                p.reasons.iter().filter_map(move |r| r.breakpoint.clone().map(|b| (b, s.id, p.line, p.started_ms)))
            })
        })
        .collect();
    out.sort_by_key(|f| f.3);
    out
}

/// How to describe a spec read from a trace (it parses as the CLI does; one that does not is
/// shown as written).
fn describe_spec(spec: &str) -> String {
    Breakpoint::parse(spec).map(|b| b.describe()).unwrap_or_else(|_| spec.to_string())
}

/// The rows: the breakpoints set (in the order they were set; in a replay, those the trace
/// says were set when the build ended), then those set earlier and removed, then any other that
/// fired.
pub fn rows(ctx: &Ctx) -> Vec<Row> {
    let fired = firings(ctx.model);
    let count = |spec: &str| fired.iter().filter(|f| f.0 == spec).count();
    let last = |spec: &str| fired.iter().rev().find(|f| f.0 == spec).map(|f| (f.1, f.2));
    let set: Vec<(String, String)> =
        ctx.with_breakpoints(|b| b.iter().map(|b| (b.spec(), b.describe())).collect()).unwrap_or_default();
    let mut out: Vec<Row> = set
        .into_iter()
        .map(|(spec, describe)| Row { fired: count(&spec), last: last(&spec), describe, spec, set: true })
        .collect();
    let earlier = ctx.model.breakpoints_ever.iter().cloned();
    for spec in earlier.chain(fired.iter().map(|f| f.0.clone())) {
        if out.iter().any(|r| r.spec == spec) {
            continue;
        }
        out.push(Row { describe: describe_spec(&spec), set: false, fired: count(&spec), last: last(&spec), spec });
    }
    out
}

/// Whether the build's breakpoints are known (live, or recorded in the trace), not only
/// those that fired.
fn list_known(ctx: &Ctx) -> bool {
    ctx.mode == Mode::Live || ctx.model.breakpoints.is_some()
}

impl BreaksPane {
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// `y`: the selected breakpoint as a command-line option.
    pub fn handle_copy(&self, ctx: &Ctx) -> Outcome {
        match rows(ctx).get(self.cursor) {
            Some(r) => Outcome::Copy(format!("--break {}", r.spec), format!("--break {}", r.spec)),
            None => Outcome::Ignored,
        }
    }
}

impl Component for BreaksPane {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Outcome {
        let rows = rows(ctx);
        if let Some(m) = Motion::of(action, ctx.page) {
            self.cursor = m.clamped(self.cursor, rows.len());
            return Outcome::Done;
        }
        let read_only = || Outcome::Say("this is a replay of a recorded build: it is read-only".into(), Severity::Info);
        match action {
            Action::Add if ctx.mode == Mode::Replay => read_only(),
            Action::Add => Outcome::Input(InputTarget::AddBreakpoint, String::new()),
            Action::Remove if ctx.mode == Mode::Replay => read_only(),
            Action::Remove => match rows.get(self.cursor.min(rows.len().saturating_sub(1))) {
                Some(r) if r.set => Outcome::RemoveBreakpoint(r.spec.clone()),
                Some(r) => Outcome::Say(format!("{} is no longer set", r.describe), Severity::Info),
                None => Outcome::Say("no breakpoints: a adds one".into(), Severity::Info),
            },
            Action::Open => match rows.get(self.cursor).and_then(|r| r.last) {
                Some((id, _)) => Outcome::ShowStep(id),
                None => Outcome::Say("it has not fired".into(), Severity::Info),
            },
            _ => Outcome::Ignored,
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, ctx: &Ctx, theme: &Theme) -> PaneView {
        let rows = rows(ctx);
        let width = area.width as usize;
        let mut lines = Vec::new();
        let pauses: usize = ctx.model.steps().map(|s| s.pauses.len()).sum();
        let stepping = ctx
            .model
            .steps()
            .flat_map(|s| s.pauses.iter())
            .filter(|p| p.reasons.iter().all(|r| r.breakpoint.is_none()))
            .count();
        let head = if list_known(ctx) {
            format!("{} set", rows.iter().filter(|r| r.set).count())
        } else {
            format!("{} fired", rows.len())
        };
        let head = format!("{head} · {pauses} pause(s), {stepping} by stepping or run-to");
        lines.push(Line::from(Span::styled(format::truncate(&head, width), theme.header)));
        if let Some(text) = ctx.typing(InputTarget::AddBreakpoint) {
            lines.push(Line::from(vec![
                Span::styled("add: ", theme.key),
                Span::styled(format!("{text}▏"), theme.search_match),
                Span::styled(
                    format::truncate(
                        "  12 · stage:NAME · failure · cache-miss · size:10MB · path:GLOB",
                        width.saturating_sub(text.len() + 7),
                    ),
                    theme.dim,
                ),
            ]));
        }
        if !list_known(ctx) {
            lines.push(Line::from(Span::styled(
                format::truncate("this trace records the breakpoints that fired, not those set and never hit", width),
                theme.dim,
            )));
        }
        if rows.is_empty() {
            let text = match ctx.mode {
                Mode::Live => "no breakpoints: a adds one, b sets one on a step",
                Mode::Replay if list_known(ctx) => "no breakpoints were set",
                Mode::Replay => "none fired",
            };
            lines.push(Line::from(Span::styled(text, theme.dim)));
        }
        let head_rows = lines.len();
        let height = (area.height as usize).saturating_sub(head_rows);
        let cursor = self.cursor.min(rows.len().saturating_sub(1));
        let scroll = scroll_for(cursor, self.scroll, height, rows.len());
        let desc_w = 22.min(width / 2);
        for (i, r) in rows.iter().enumerate().skip(scroll).take(height) {
            let mark = if r.set { Span::styled("● ", theme.breakpoint) } else { Span::styled("○ ", theme.dim) };
            let fired = match r.fired {
                0 => "not fired".to_string(),
                1 => "fired once".to_string(),
                n => format!("fired {n}×"),
            };
            let last = r.last.map(|(_, l)| format!(", last at L{l}")).unwrap_or_default();
            let removed = if r.set || !list_known(ctx) { "" } else { " (removed)" };
            let rest = format!("{fired}{last}{removed}");
            let mut line = Line::from(vec![
                mark,
                Span::styled(format::fit(&r.describe, desc_w), theme.text),
                Span::styled(
                    format::truncate(&format!(" {rest}"), width.saturating_sub(desc_w + 2)),
                    if r.fired > 0 { theme.status_warn } else { theme.dim },
                ),
            ]);
            if i == cursor {
                line = line.patch_style(theme.selection);
            }
            lines.push(line);
        }
        frame.render_widget(Paragraph::new(lines), area);
        PaneView::Breaks(View { cursor, scroll })
    }

    fn drawn(&mut self, view: PaneView) {
        if let PaneView::Breaks(v) = view {
            self.cursor = v.cursor;
            self.scroll = v.scroll;
        }
    }
}

/// What a frame of the pane showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub cursor: usize,
    pub scroll: usize,
}
