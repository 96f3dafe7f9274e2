//! The Steps pane: every stage and instruction with its Dockerfile line, status, cache badge,
//! layer size and duration, and breakpoint markers. Narrow terminals drop the duration, then
//! the size, so the instruction text keeps room.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::scroll_for;
use crate::tui::app::App;
use crate::tui::format;
use crate::tui::model::{StepState, StepView};
use crate::tui::theme::Theme;

/// Columns the instruction keeps before optional columns are dropped.
const MIN_TEXT: usize = 14;

/// The status icon of a step and its style.
pub fn icon(app: &App, step: &StepView, theme: &Theme) -> (&'static str, Style) {
    if app.pause.as_ref().is_some_and(|p| p.at.id == step.id) {
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
    }
}

/// The step's time: its duration, or how long it has run so far.
pub fn time(app: &App, step: &StepView) -> Option<String> {
    let paused_before = app.pause.as_ref().is_some_and(|p| p.at.id == step.id && p.at.report.is_none());
    if paused_before {
        return None;
    }
    match (step.duration_ms, step.started_ms, step.state) {
        (Some(d), _, _) => Some(format::duration_ms(d)),
        (None, Some(start), StepState::Running) => Some(format::duration_ms(app.now_ms.saturating_sub(start))),
        _ => None,
    }
}

pub fn render(frame: &mut Frame, area: Rect, app: &mut App, theme: &Theme) {
    let width = area.width as usize;
    let bps = app.breakpoint_lines();
    let selected = app.selected_id();
    let stage_bp: Vec<String> =
        app.other_breakpoints().into_iter().filter_map(|d| d.strip_prefix("stage ").map(str::to_lowercase)).collect();
    // Which optional columns fit.
    let fixed = 7; // marker, line (3), space, icon, space
    let mut text_w = width.saturating_sub(fixed);
    let show_size = text_w >= MIN_TEXT + 6;
    if show_size {
        text_w -= 6;
    }
    // The cache badge column only exists when the build uses the layer cache.
    let cached_build = app.model.steps().any(|s| s.cache.is_some());
    let show_badge = cached_build && text_w >= MIN_TEXT + 5;
    if show_badge {
        text_w -= 5;
    }
    let show_time = text_w >= MIN_TEXT + 7;
    if show_time {
        text_w -= 7;
    }
    let mut lines: Vec<Line> = Vec::new();
    let mut rows: Vec<Option<trowel_events::StepId>> = Vec::new();
    let mut cursor_row = 0;
    for stage in &app.model.stages {
        let name = stage.label();
        let marker = if stage_bp.iter().any(|s| *s == name.to_lowercase() || *s == stage.index.to_string()) {
            "● "
        } else {
            ""
        };
        let style = if stage.needed { theme.header } else { theme.skipped };
        let suffix = if stage.needed { String::new() } else { " (not needed: skipped)".into() };
        let head = format!("{marker}{name} · FROM {}{suffix}", stage.base);
        lines.push(Line::from(Span::styled(format::truncate(&head, width), style)));
        rows.push(None);
        for id in &stage.steps {
            let Some(step) = app.model.step(*id) else { continue };
            if Some(*id) == selected {
                cursor_row = lines.len();
            }
            let (ic, ic_style) = icon(app, step, theme);
            let bp = if bps.contains(&step.line) { Span::styled("●", theme.breakpoint) } else { Span::raw(" ") };
            let text = format::one_line(step.expanded.as_deref().unwrap_or(&step.source));
            let text = if step.onbuild { format!("(ONBUILD) {text}") } else { text };
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
                let size = step.layer.as_ref().map(|l| format::bytes_compact(l.size)).unwrap_or_default();
                spans.push(Span::styled(format::fit_right(&size, 6), theme.dim));
            }
            if show_time {
                let t = time(app, step).unwrap_or_default();
                spans.push(Span::styled(format::fit_right(&t, 7), theme.dim));
            }
            let mut line = Line::from(spans);
            if Some(*id) == selected {
                line = line.patch_style(theme.selection);
            }
            lines.push(line);
            rows.push(Some(*id));
        }
    }
    if lines.is_empty() {
        let text = if app.model.events == 0 { "waiting for the build to start…" } else { "no steps" };
        frame.render_widget(Paragraph::new(Span::styled(text, theme.dim)), area);
        return;
    }
    let height = area.height as usize;
    app.steps_scroll = scroll_for(cursor_row, app.steps_scroll, height, lines.len());
    let scroll = app.steps_scroll;
    app.hits.steps = rows
        .iter()
        .enumerate()
        .skip(scroll)
        .take(height)
        .filter_map(|(i, id)| id.map(|id| (area.y + (i - scroll) as u16, id)))
        .collect();
    let visible: Vec<Line> = lines.into_iter().skip(scroll).take(height).collect();
    frame.render_widget(Paragraph::new(visible), area);
}
