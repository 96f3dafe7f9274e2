//! The Dockerfile as written, with the line being executed (or paused at) highlighted, the
//! selected step marked, breakpoints shown, and lines a build check found something on marked
//! `!` (their messages under the selected step's lines). It scrolls to keep the interesting
//! line in the middle. It belongs to the Steps pane: a click on a line selects its step, so
//! what this draws where goes to [`StepsPane`](super::StepsPane).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::Ctx;
use crate::tui::format;
use crate::tui::theme::Theme;
use trowel_events::state::CheckView;

/// The lines of the step that is running or paused at, if any.
fn current_lines(ctx: &Ctx) -> Option<(usize, usize)> {
    if let Some(p) = ctx.pause {
        let s = ctx.model.step(p.at.id)?;
        return Some((s.line, s.end_line.max(s.line)));
    }
    let s = ctx.model.step(ctx.model.current?)?;
    Some((s.line, s.end_line.max(s.line)))
}

/// The selected step's findings, wrapped to `width`: (first row of a finding, row, error).
fn notes(ctx: &Ctx, selected: Option<(usize, usize)>, width: usize) -> Vec<(bool, String, bool)> {
    let Some((first, last)) = selected else { return Vec::new() };
    let mut rows = Vec::new();
    for c in ctx.model.checks.iter().filter(|c| first <= c.line && c.line <= last) {
        let text = format::sanitize(&format!("{}: {}", c.rule, c.message));
        for (k, row) in format::wrap(&text, width.max(1)).into_iter().enumerate() {
            rows.push((k == 0, row, c.error));
        }
    }
    rows
}

/// Draws the Dockerfile; returns the screen row of each line shown.
pub fn render(frame: &mut Frame, area: Rect, ctx: &Ctx, theme: &Theme) -> Vec<(u16, usize)> {
    let lines_src = &ctx.model.dockerfile_lines;
    if lines_src.is_empty() {
        frame.render_widget(Paragraph::new(Span::styled("no Dockerfile yet", theme.dim)), area);
        return Vec::new();
    }
    let bps = ctx.breakpoint_lines();
    let current = current_lines(ctx);
    let selected = ctx.step.map(|s| (s.line, s.end_line.max(s.line)));
    let height = area.height as usize;
    let focus_line = selected.or(current).map_or(1, |(l, _)| l);
    let len = lines_src.len();
    let num_w = len.to_string().len().max(2);
    let text_w = (area.width as usize).saturating_sub(num_w + 3);
    // What the checks said about the selected step goes under its last line, in full where
    // the view can scroll to show it (its first line staying in view).
    let notes = notes(ctx, selected, text_w);
    let mut top = focus_line.saturating_sub(1).saturating_sub(height / 3).min(len.saturating_sub(height));
    if let Some((first, last)) = selected {
        top = top.max((last + notes.len()).saturating_sub(height)).min(first.saturating_sub(1));
    }
    let indent = " ".repeat(num_w + 1);
    let mut out = Vec::new();
    let mut hits = Vec::new();
    for (i, text) in lines_src.iter().enumerate().skip(top) {
        if out.len() >= height {
            break;
        }
        let n = i + 1;
        let within = |r: Option<(usize, usize)>| r.is_some_and(|(a, b)| a <= n && n <= b);
        // Findings are marked on their first line.
        let checked: Vec<&CheckView> = ctx.model.checks.iter().filter(|c| c.line == n).collect();
        let mark = if bps.contains(&n) {
            Span::styled("●", theme.breakpoint)
        } else if !checked.is_empty() {
            Span::styled("!", if checked.iter().any(|c| c.error) { theme.status_err } else { theme.status_warn })
        } else if within(selected) {
            Span::styled("›", theme.title_focus)
        } else {
            Span::raw(" ")
        };
        // The line being executed is drawn wholly in its style (so its colours win over the
        // text's); the selected step's lines get the selection background.
        let (num_style, text_style) =
            if within(current) { (theme.current_line, theme.current_line) } else { (theme.line_number, theme.text) };
        let mut line = Line::from(vec![
            mark,
            Span::styled(format::fit_right(&n.to_string(), num_w), num_style),
            Span::styled(" ", text_style),
            Span::styled(format::fit(&format::sanitize(text), text_w), text_style),
        ]);
        if within(selected) && !within(current) {
            line = line.patch_style(theme.selection);
        }
        hits.push((area.y + out.len() as u16, n));
        out.push(line);
        if selected.is_some_and(|(_, last)| last == n) {
            for (first_row, row, error) in &notes {
                if out.len() >= height {
                    break;
                }
                let style = if *error { theme.status_err } else { theme.status_warn };
                hits.push((area.y + out.len() as u16, n));
                out.push(Line::from(vec![
                    Span::styled(if *first_row { "!" } else { " " }, style),
                    Span::raw(indent.clone()),
                    Span::styled(format::fit(row, text_w), style),
                ]));
            }
        }
    }
    frame.render_widget(Paragraph::new(out), area);
    hits
}
