//! The Steps pane: every stage and instruction with its Dockerfile line, status, cache badge,
//! layer size and run time, breakpoint markers, and `!` on instructions a build check found
//! something in; a debugger shell session is a row of its own, before or after its step (as it
//! ran), with what became of its changes and how long it lasted; so is the stage's build root
//! (`⤓ root`), where it was made: how (mounted from the unpacked-layer store, or unpacked) and
//! how long it took, which no step's time holds when it was made ahead of the steps. A step
//! re-run at a failure pause is marked `↻`, one run as edited there `✎` (the command popup says
//! what it was).
//! Narrow terminals drop the paused time, then the duration, then the size, so the instruction
//! text keeps room.
//!
//! Times are run times: time paused in the debugger is not in them; it has its own column
//! (`‖2.3s`, shown once the build paused anywhere; where it does not fit, a step paused before
//! it ran shows it in the time column), and a session row shows its own. A replay is frozen time: a step a trace never saw finish shows its time up to the
//! trace's last event, marked `≥` as unfinished.
//!
//! In a build for several platforms each stage instance is a stage of its own, its header
//! saying which platform its root is for and which targets it serves (a stage they share is
//! there once); `t` cycles a filter (every platform, then each target platform) that shows only
//! the stages built for that target, shared ones included.
//!
//! It owns the selection, the step every other pane is about (the app resets them when it
//! changes), the platform filter, and whether it follows the running step. Clicks on the Dockerfile drawn below it
//! (panes/source.rs) select steps too.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Component, Ctx, Motion, Outcome, Severity, View as PaneView, scroll_for};
use crate::tui::app::Mode;
use crate::tui::format;
use crate::tui::keymap::Action;
use crate::tui::model::{Model, RootView, StageView, StepState, StepView};
use crate::tui::theme::Theme;
use trowel_events::state::ShellSession;
use trowel_events::{StepId, When};

/// Columns the instruction keeps before optional columns are dropped.
const MIN_TEXT: usize = 14;

#[derive(Debug, Clone)]
pub struct StepsPane {
    /// Index of the selected step among all steps, in display order.
    selected: usize,
    /// The selection follows the running step until the user picks one.
    follow: bool,
    /// First visible row.
    scroll: usize,
    /// Screen row → step, as last drawn.
    hits: Vec<(u16, StepId)>,
    /// Screen row → Dockerfile line, as last drawn below the pane.
    source_hits: Vec<(u16, usize)>,
    /// Only the stages built for this target platform (a build for several; `None`: all).
    platform: Option<String>,
}

impl Default for StepsPane {
    fn default() -> StepsPane {
        StepsPane { selected: 0, follow: true, scroll: 0, hits: Vec::new(), source_hits: Vec::new(), platform: None }
    }
}

/// Whether the filter shows the stage.
fn shown(platform: Option<&str>, stage: &StageView) -> bool {
    platform.is_none_or(|p| stage.serves(p))
}

/// What a frame of the pane showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub scroll: usize,
    pub hits: Vec<(u16, StepId)>,
}

impl StepsPane {
    /// The selected step's position among all steps (it changes when the selection does).
    pub fn position(&self) -> usize {
        self.selected
    }

    pub fn selected_id(&self, model: &Model) -> Option<StepId> {
        model.steps().nth(self.selected).map(|s| s.id)
    }

    /// Selects a step; whether the selection changed.
    pub fn select(&mut self, id: StepId, model: &Model) -> bool {
        let Some(pos) = model.steps().position(|s| s.id == id) else { return false };
        let changed = pos != self.selected;
        self.selected = pos;
        changed
    }

    pub fn following(&self) -> bool {
        self.follow
    }

    pub fn set_following(&mut self, follow: bool) {
        self.follow = follow;
    }

    /// Screen row → step, as last drawn.
    pub fn hits(&self) -> &[(u16, StepId)] {
        &self.hits
    }

    /// Screen row → Dockerfile line, as last drawn.
    pub fn source_hits(&self) -> &[(u16, usize)] {
        &self.source_hits
    }

    /// The target platform whose stages are shown (`None`: every platform's).
    pub fn platform(&self) -> Option<&str> {
        self.platform.as_deref()
    }

    /// Whether the platform filter shows the step.
    pub fn shows(&self, id: StepId, model: &Model) -> bool {
        model.stage(id.stage).is_none_or(|st| shown(self.platform(), st))
    }

    /// Shows every platform again if the filter hides the step (a pause there must be seen).
    pub fn reveal(&mut self, id: StepId, model: &Model) {
        if !self.shows(id, model) {
            self.platform = None;
        }
    }

    /// Positions (among all steps) of the steps the filter shows.
    fn visible(&self, model: &Model) -> Vec<usize> {
        model
            .steps()
            .enumerate()
            .filter(|(_, s)| model.stage(s.id.stage).is_none_or(|st| shown(self.platform(), st)))
            .map(|(i, _)| i)
            .collect()
    }

    /// The next platform filter: every platform, then each target platform in turn. A step the
    /// filter hides is not left selected: the same line's step on that platform is, or else the
    /// first step shown.
    fn cycle_platform(&mut self, model: &Model) -> Outcome {
        if model.platforms.len() < 2 {
            return Outcome::Say("this build is for one platform".into(), Severity::Info);
        }
        let at = self.platform.as_ref().and_then(|p| model.platforms.iter().position(|x| x == p));
        self.platform = match at {
            None => model.platforms.first().cloned(),
            Some(i) => model.platforms.get(i + 1).cloned(),
        };
        let visible = self.visible(model);
        if !visible.contains(&self.selected) {
            let line = model.steps().nth(self.selected).map(|s| s.line);
            let same_line = visible.iter().copied().find(|&i| model.steps().nth(i).map(|s| s.line) == line);
            if let Some(pos) = same_line.or_else(|| visible.first().copied()) {
                self.selected = pos;
            }
        }
        Outcome::Say(
            match &self.platform {
                Some(p) => format!("showing the steps built for {p} (shared stages included): t for the next platform"),
                None => "showing every platform's steps".to_string(),
            },
            Severity::Info,
        )
    }
}

impl Component for StepsPane {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Outcome {
        if let Some(m) = Motion::of(action, ctx.page) {
            // Over the steps the platform filter shows (all of them without one).
            let visible = self.visible(ctx.model);
            let at = visible.iter().position(|&i| i >= self.selected).unwrap_or(visible.len().saturating_sub(1));
            let next = visible.get(m.clamped(at, visible.len())).copied().unwrap_or(self.selected);
            if next != self.selected {
                self.selected = next;
                self.follow = false;
            }
            return Outcome::Done;
        }
        match action {
            Action::Platform => self.cycle_platform(ctx.model),
            Action::Open | Action::Expand => Outcome::ShowDetail,
            Action::Follow => {
                self.follow = true;
                if let Some(id) = ctx.model.current {
                    self.select(id, ctx.model);
                }
                Outcome::Say("following the running step".into(), Severity::Info)
            }
            _ => Outcome::Ignored,
        }
    }

    /// A click on a step, or on a line of the Dockerfile below: selects that step.
    fn click(&mut self, row: u16, ctx: &Ctx) -> Outcome {
        let hit = self.hits.iter().find(|(r, _)| *r == row).map(|(_, id)| *id).or_else(|| {
            let line = self.source_hits.iter().find(|(r, _)| *r == row).map(|(_, l)| *l)?;
            ctx.model
                .steps()
                .filter(|s| ctx.model.stage(s.id.stage).is_none_or(|st| shown(self.platform(), st)))
                .find(|s| s.line <= line && line <= s.end_line.max(s.line))
                .map(|s| s.id)
        });
        if let Some(id) = hit {
            self.follow = false;
            self.select(id, ctx.model);
        }
        Outcome::Done
    }

    fn render(&self, frame: &mut Frame, area: Rect, ctx: &Ctx, theme: &Theme) -> PaneView {
        let width = area.width as usize;
        let bps = ctx.line_breakpoints();
        let selected = ctx.selected_id();
        let stage_bp = ctx.stage_breakpoints();
        // A breakpoint limited to a platform is marked only on the stages built for it.
        let applies = |p: &Option<String>, stage: &StageView| p.as_deref().is_none_or(|p| stage.serves(p));
        // Which optional columns fit.
        let fixed = 7; // marker, line (3), space, icon, space
        let mut text_w = width.saturating_sub(fixed);
        let show_size = text_w >= MIN_TEXT + 6;
        if show_size {
            text_w -= 6;
        }
        // The cache badge column only exists when the build uses the layer cache.
        let cached_build = ctx.model.steps().any(|s| s.cache.is_some());
        let show_badge = cached_build && text_w >= MIN_TEXT + 5;
        if show_badge {
            text_w -= 5;
        }
        let show_time = text_w >= MIN_TEXT + 7;
        if show_time {
            text_w -= 7;
        }
        // The paused column only exists once the build paused somewhere.
        let any_paused = ctx.model.steps().any(|s| !s.pauses.is_empty() || s.paused_ms > 0);
        let show_paused = show_time && any_paused && text_w >= MIN_TEXT + 7;
        if show_paused {
            text_w -= 7;
        }
        let mut lines: Vec<Line> = Vec::new();
        let mut rows: Vec<Option<StepId>> = Vec::new();
        let mut cursor_row = 0;
        for stage in ctx.model.stages.iter().filter(|s| shown(self.platform(), s)) {
            let name = stage.label();
            let marker = if stage_bp
                .iter()
                .any(|(s, p)| (*s == name.to_lowercase() || *s == stage.number().to_string()) && applies(p, stage))
            {
                "● "
            } else {
                ""
            };
            let style = if stage.needed { theme.header } else { theme.skipped };
            let suffix = if stage.needed { String::new() } else { " (not needed: skipped)".into() };
            let platform = stage.platform_label(&ctx.model.platforms).map(|p| format!(" · {p}")).unwrap_or_default();
            let head = format!("{marker}{name}{platform} · FROM {}{suffix}", stage.base);
            lines.push(Line::from(Span::styled(format::truncate(&head, width), style)));
            rows.push(None);
            // The stage's root, in the steps' columns: what it wrote under size, its time under
            // time; where it was made (after the FROM, or with every step done when a later
            // stage's COPY --from needed it).
            // A row of the stage's in the steps' columns, not a step: its text, size and time.
            let side_row = |icon: &'static str, text: &str, size: String, time: Option<String>| {
                let mut spans = vec![
                    Span::raw(" ".repeat(fixed - 2)),
                    Span::styled(icon, theme.dim),
                    Span::raw(" "),
                    Span::styled(format::fit(text, text_w), theme.dim),
                ];
                if show_badge {
                    spans.push(Span::raw("     "));
                }
                if show_size {
                    spans.push(Span::styled(format::fit_right(&size, 6), theme.dim));
                }
                if let Some(t) = time.filter(|_| show_time) {
                    spans.push(Span::styled(format::fit_right(&t, 7), theme.dim));
                }
                Line::from(spans)
            };
            let root_row = |root: &RootView| {
                let size = if root.bytes > 0 { format::bytes_compact(root.bytes) } else { String::new() };
                side_row("⤓", &format!("root {}", root.summary()), size, Some(format::duration_ms(root.duration_ms)))
            };
            let root_after = |n: usize| stage.root.as_ref().filter(|r| r.after_steps.min(stage.steps.len()) == n);
            for (i, id) in stage.steps.iter().enumerate() {
                if let Some(root) = root_after(i) {
                    lines.push(root_row(root));
                    rows.push(None);
                }
                let Some(step) = ctx.model.step(*id) else { continue };
                let session_row = |sh: &ShellSession| {
                    let mut spans = vec![
                        Span::raw(" "),
                        Span::styled(format::fit_right(&step.line.to_string(), 3), theme.line_number),
                        Span::raw(" "),
                        Span::styled("$", theme.status_warn),
                        Span::raw(" "),
                    ];
                    let rest = width.saturating_sub(fixed);
                    spans.push(Span::styled(format::fit(&session_text(ctx, sh), rest), theme.dim));
                    Line::from(spans)
                };
                for sh in step.shells_on(When::BeforeStep) {
                    lines.push(session_row(sh));
                    rows.push(None);
                }
                if Some(*id) == selected {
                    cursor_row = lines.len();
                }
                let (ic, ic_style) = icon(ctx, step, theme);
                let mut checks = ctx
                    .model
                    .checks
                    .iter()
                    .filter(|c| step.line <= c.line && c.line <= step.end_line.max(step.line))
                    .peekable();
                let bp = if bps.iter().any(|(l, p)| *l == step.line && applies(p, stage)) {
                    Span::styled("●", theme.breakpoint)
                } else if checks.peek().is_some() {
                    // A build check found something in this instruction (the Dockerfile below
                    // says what when it is selected).
                    let error = checks.any(|c| c.error);
                    Span::styled("!", if error { theme.status_err } else { theme.status_warn })
                } else {
                    Span::raw(" ")
                };
                let text = format::one_line(step.expanded.as_deref().unwrap_or(&step.source));
                let text = if step.onbuild { format!("(ONBUILD) {text}") } else { text };
                let text = match attempt_mark(step) {
                    Some(mark) => format!("{mark} {text}"),
                    None => text,
                };
                let text_style = if step.state == StepState::Skipped { theme.skipped } else { theme.text };
                let mut spans = vec![
                    bp,
                    Span::styled(format::fit_right(&step.line.to_string(), 3), theme.line_number),
                    Span::raw(" "),
                    Span::styled(ic, ic_style),
                    Span::raw(" "),
                    Span::styled(format::fit(&text, text_w), text_style),
                ];
                if show_badge {
                    spans.push(Span::raw(" "));
                    spans.push(match step.cache.as_ref() {
                        Some(c) if c.is_hit() => Span::styled("hit ", theme.cache_hit),
                        Some(c) if c.is_miss() => Span::styled("miss", theme.cache_miss),
                        Some(_) => Span::styled("err ", theme.status_err),
                        None => Span::raw("    "),
                    });
                }
                if show_size {
                    // A stage's single snapshot is not this step's layer: its own row says so.
                    let size = step
                        .layer
                        .as_ref()
                        .filter(|_| step.stage_snapshot.is_none())
                        .map(|l| format::bytes_compact(l.size))
                        .unwrap_or_default();
                    spans.push(Span::styled(format::fit_right(&size, 6), theme.dim));
                }
                if show_time {
                    // Without a paused column, a step paused before it ran (no run time yet)
                    // shows how long it has been paused, so the pause is never invisible.
                    let t = time(ctx, step)
                        .or_else(|| if show_paused { None } else { paused(ctx, step) })
                        .unwrap_or_default();
                    spans.push(Span::styled(format::fit_right(&t, 7), theme.dim));
                }
                if show_paused {
                    let t = paused(ctx, step).unwrap_or_default();
                    spans.push(Span::styled(format::fit_right(&t, 7), theme.status_warn));
                }
                let mut line = Line::from(spans);
                if Some(*id) == selected {
                    line = line.patch_style(theme.selection);
                }
                lines.push(line);
                rows.push(Some(*id));
                // A RUN's mounts, one line each under it (not selectable).
                for m in &step.mounts {
                    let text = format!("⤷ {}", format::mount(m));
                    lines.push(Line::from(vec![
                        Span::raw(" ".repeat(fixed)),
                        Span::styled(format::truncate(&text, width.saturating_sub(fixed)), theme.dim),
                    ]));
                    rows.push(None);
                }
                for sh in step.shells_on(When::AfterStep) {
                    lines.push(session_row(sh));
                    rows.push(None);
                }
                // `--single-snapshot`: the stage's layer, in the steps' columns, under its last step.
                if let (Some(from), Some(layer)) = (step.stage_snapshot, &step.layer) {
                    let text = format!("single snapshot of lines {from}–{}", step.line);
                    lines.push(side_row("≡", &text, format::bytes_compact(layer.size), None));
                    rows.push(None);
                }
            }
            if let Some(root) = root_after(stage.steps.len()) {
                lines.push(root_row(root));
                rows.push(None);
            }
        }
        if lines.is_empty() {
            let text = if ctx.model.events == 0 { "waiting for the build to start…" } else { "no steps" };
            frame.render_widget(Paragraph::new(Span::styled(text, theme.dim)), area);
            return PaneView::Steps(View { scroll: self.scroll, hits: self.hits.clone() });
        }
        let height = area.height as usize;
        let scroll = scroll_for(cursor_row, self.scroll, height, lines.len());
        let hits = rows
            .iter()
            .enumerate()
            .skip(scroll)
            .take(height)
            .filter_map(|(i, id)| id.map(|id| (area.y + (i - scroll) as u16, id)))
            .collect();
        let visible: Vec<Line> = lines.into_iter().skip(scroll).take(height).collect();
        frame.render_widget(Paragraph::new(visible), area);
        PaneView::Steps(View { scroll, hits })
    }

    fn drawn(&mut self, view: PaneView) {
        match view {
            PaneView::Steps(v) => {
                self.scroll = v.scroll;
                self.hits = v.hits;
            }
            PaneView::Source(hits) => self.source_hits = hits,
            _ => {}
        }
    }
}

/// What each mark in the Steps pane means, as the help's legend lists it (a test checks that
/// every icon [`icon`] draws is in it).
pub const LEGEND: &[(&str, &str)] = &[
    ("·", "pending"),
    ("▶", "running"),
    ("‖", "paused here"),
    ("✓", "built"),
    ("◆", "from the cache"),
    ("○", "no layer (metadata)"),
    ("✗", "failed"),
    ("-", "skipped"),
    ("↻", "re-run"),
    ("✎", "edited, then run"),
    ("‖2.3s", "time paused (not in run times)"),
    ("⤓", "the stage's root made here"),
    ("●", "breakpoint"),
    ("!", "build check finding"),
    ("hit/miss", "layer cache"),
];

/// The status icon of a step and its style.
pub fn icon(ctx: &Ctx, step: &StepView, theme: &Theme) -> (&'static str, Style) {
    if ctx.pause.is_some_and(|p| p.at.id == step.id) || ctx.held.is_some_and(|(id, _)| id == step.id) {
        return ("‖", theme.status_warn);
    }
    match step.state {
        StepState::Pending => ("·", theme.pending),
        StepState::Running => ("▶", theme.running),
        StepState::Built => ("✓", theme.built),
        StepState::Cached => ("◆", theme.cached),
        StepState::Metadata => ("○", theme.metadata),
        StepState::Failed => ("✗", theme.failed),
        StepState::Skipped => ("-", theme.skipped),
        StepState::Deferred => ("◌", theme.skipped),
    }
}

/// The step's time: its run time, or how long it has run so far (pauses left out); in a
/// replay, or once the build is over, a step that never finished is marked `≥`.
pub fn time(ctx: &Ctx, step: &StepView) -> Option<String> {
    let paused_before = ctx.pause.is_some_and(|p| p.at.id == step.id && p.at.report.is_none())
        || ctx.held == Some((step.id, When::BeforeStep));
    if paused_before {
        return None;
    }
    let ms = step.run_ms(ctx.now_ms)?;
    let frozen = ctx.mode == Mode::Replay || ctx.model.is_over();
    Some(if step.is_unfinished() && frozen {
        format!("≥{}", format::duration_ms(ms))
    } else {
        format::duration_ms(ms)
    })
}

/// `↻` for a step re-run at a failure pause, `✎` for one run as edited there.
pub fn attempt_mark(step: &StepView) -> Option<&'static str> {
    let a = step.attempt.as_ref()?;
    Some(if a.edited_from.is_some() { "✎" } else { "↻" })
}

/// The time the build spent paused at the step's boundaries (`‖2.3s`; an open pause counts
/// so far), or `None` when it never paused there.
pub fn paused(ctx: &Ctx, step: &StepView) -> Option<String> {
    let ms = step.paused_now(ctx.now_ms);
    (ms > 0 || step.open_pause().is_some()).then(|| format!("‖{}", format::duration_ms(ms)))
}

/// A shell session's row: `shell before · kept 1.2k · 12.0s` (what became of its changes, how
/// long it lasted: time paused, never the step's).
fn session_text(ctx: &Ctx, sh: &ShellSession) -> String {
    let side = if sh.before_step { "before" } else { "after" };
    let what = match (sh.exit_code, sh.kept, &sh.layer) {
        (None, _, _) if ctx.mode == Mode::Replay || ctx.model.is_over() => "never ended".to_string(),
        (None, _, _) => "running".to_string(),
        (Some(_), Some(true), Some(l)) => format!("kept {}", format::bytes_compact(l.size)),
        (Some(_), Some(false), _) if !sh.changes.is_empty() => format!("{} discarded", sh.changes.len()),
        (Some(_), _, _) if sh.changes.is_empty() => "no changes".to_string(),
        (Some(_), _, _) => format!("{} to keep?", sh.changes.len()),
    };
    format!("shell {side} · {what} · {}", format::duration_ms(sh.duration_ms(ctx.now_ms)))
}
