//! Drawing the compare view: a top bar (the two traces and the verdict), the Steps pane (both
//! builds' steps, a marker per difference: `=` same, `≠` differs), the Differences pane (what
//! differs at the selected step, in words) and the key hints. Side by side from 100 columns,
//! stacked below that, so 80x24 stays readable.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{CompareView, Focus, KEYS};
use crate::compare::text::files_words;
use crate::compare::{FilesVerdict, KeyVerdict, Matched, Row, StepRef};
use crate::tui::format;
use crate::tui::theme::Theme;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, v: &CompareView, theme: &Theme) {
    let area = frame.area();
    let [top, body, hints] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3), Constraint::Length(1)]).areas(area);
    top_bar(frame, top, v, theme);
    let dir = if body.width >= 100 { Direction::Horizontal } else { Direction::Vertical };
    let [steps, detail] = Layout::default()
        .direction(dir)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .areas(body);
    steps_pane(frame, steps, v, theme);
    detail_pane(frame, detail, v, theme);
    hint_bar(frame, hints, theme);
}

fn top_bar(frame: &mut Frame, area: Rect, v: &CompareView, theme: &Theme) {
    let c = &v.comparison;
    let width = area.width as usize;
    let verdict = v.verdict();
    let style = if c.equivalent() { theme.status_ok } else { theme.status_err };
    // The file names: the paths rarely fit, and the names are what tells two traces apart.
    let name =
        |p: &str| std::path::Path::new(p).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let room = width.saturating_sub(verdict.chars().count() + 28) / 2;
    let head = format!(
        " trowel compare · A {} · B {} · ",
        format::truncate_start(&name(&c.a.path), room.max(8)),
        format::truncate_start(&name(&c.b.path), room.max(8))
    );
    let rest = width.saturating_sub(head.chars().count());
    let line = Line::from(vec![
        Span::styled(head, theme.bar),
        Span::styled(format::fit(&verdict, rest), theme.bar.patch(style)),
    ]);
    frame.render_widget(Paragraph::new(line).style(theme.bar), area);
}

fn block<'a>(title: &'a str, focused: bool, theme: &Theme) -> Block<'a> {
    let (b, t) = if focused { (theme.border_focus, theme.title_focus) } else { (theme.border, theme.title) };
    Block::default().borders(Borders::ALL).border_style(b).title(Span::styled(title, t))
}

/// `built`, `cached`, `—` (not in that build).
fn state(s: Option<&StepRef>) -> String {
    s.map(|s| s.state.label().to_string()).unwrap_or_else(|| "—".to_string())
}

fn state_style(s: Option<&StepRef>, theme: &Theme) -> Style {
    use trowel_events::state::StepState::*;
    match s.map(|s| s.state) {
        Some(Built) => theme.built,
        Some(Cached) => theme.cached,
        Some(Metadata) => theme.metadata,
        Some(Failed) => theme.failed,
        Some(Running) => theme.running,
        Some(Skipped | Deferred) => theme.skipped,
        Some(Pending) | None => theme.pending,
    }
}

fn line_label(r: &Row) -> String {
    match (&r.a, &r.b) {
        (Some(a), Some(b)) if a.line != b.line => format!("{}→{}", a.line, b.line),
        _ => r.step().line.to_string(),
    }
}

fn steps_pane(frame: &mut Frame, area: Rect, v: &CompareView, theme: &Theme) {
    let blk = block(" Steps  (A │ B) ", v.focus == Focus::Steps, theme);
    let inner = blk.inner(area);
    frame.render_widget(blk, area);
    let width = inner.width as usize;
    let rows = &v.comparison.rows;
    let mut lines: Vec<Line> = Vec::new();
    let mut selected_line = 0;
    let mut stage = None;
    for (n, i) in v.visible().into_iter().enumerate() {
        let r = &rows[i];
        if stage != Some(r.stage) {
            stage = Some(r.stage);
            lines.push(Line::from(Span::styled(format::fit(&format!("stage {}", r.stage_label), width), theme.header)));
        }
        let (marker, mstyle) = if r.differs() { ("≠", theme.status_err) } else { ("=", theme.status_ok) };
        let (sa, sb) = (state(r.a.as_ref()), state(r.b.as_ref()));
        let text_w = width.saturating_sub(2 + 8 + 8 + 3 + 8);
        let mut spans = vec![
            Span::styled(format!("{marker} "), mstyle),
            Span::styled(format::fit_right(&line_label(r), 7), theme.line_number),
            Span::raw(" "),
            Span::styled(format::fit(&format::one_line(r.text()), text_w), theme.text),
            Span::raw(" "),
            Span::styled(format::fit_right(&sa, 7), state_style(r.a.as_ref(), theme)),
            Span::styled(" │ ", theme.dim),
            Span::styled(format::fit(&sb, 7), state_style(r.b.as_ref(), theme)),
        ];
        if n == v.selected {
            selected_line = lines.len();
            for s in &mut spans {
                s.style = s.style.patch(theme.selection);
            }
        }
        lines.push(Line::from(spans));
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled("no step differs (d shows them all)", theme.dim)));
    }
    // The selected step stays in view, with the steps around it when the list scrolls.
    let height = inner.height as usize;
    let offset = if selected_line < height { 0 } else { selected_line.saturating_sub(height / 2) }
        .min(lines.len().saturating_sub(height));
    frame.render_widget(Paragraph::new(lines).scroll((offset as u16, 0)), inner);
}

/// Adds `text` wrapped to `width`, the first line after `lead`, the others indented as far.
fn wrapped(out: &mut Vec<Line<'static>>, lead: &str, text: &str, width: usize, style: Style) {
    let indent = lead.chars().count();
    for (i, l) in format::wrap(text, width.saturating_sub(indent).max(8)).into_iter().enumerate() {
        let pre = if i == 0 { lead.to_string() } else { " ".repeat(indent) };
        out.push(Line::from(vec![Span::styled(pre, style), Span::styled(l, style)]));
    }
}

/// The Differences pane's lines for a row.
pub fn detail_lines(r: &Row, width: usize, theme: &Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let bold = theme.text.add_modifier(Modifier::BOLD);
    wrapped(&mut out, "", &format!("{}: {}", r.lines(), format::one_line(r.text())), width, bold);
    let side = |s: Option<&StepRef>| match s {
        Some(s) => format!(
            "{}{}",
            s.state.label(),
            match (s.cache, &s.cache_said) {
                (Some(c), Some(said)) => format!(" (cache {c}: {said})"),
                (Some(c), None) => format!(" (cache {c})"),
                _ => String::new(),
            }
        ),
        None => "no such step".to_string(),
    };
    wrapped(&mut out, "A: ", &side(r.a.as_ref()), width, theme.dim);
    wrapped(&mut out, "B: ", &side(r.b.as_ref()), width, theme.dim);
    if let Some(m) = r.matched.words() {
        let style = if matches!(r.matched, Matched::ByText { .. }) { theme.status_warn } else { theme.status_err };
        wrapped(&mut out, "", &m, width, style);
    }
    if let Some(p) = &r.progress {
        wrapped(&mut out, "progress: ", p, width, theme.status_err);
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled("Cache key", theme.header)));
    match &r.key {
        KeyVerdict::Differ { reasons } => {
            for reason in reasons {
                wrapped(&mut out, "≠ ", reason, width, theme.cache_miss);
            }
        }
        KeyVerdict::Equal { key } => {
            wrapped(&mut out, "= ", &format!("equal (key {})", &key[..key.len().min(12)]), width, theme.cache_hit)
        }
        KeyVerdict::NoKey { why } => wrapped(&mut out, "· ", why, width, theme.dim),
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled("Files of the layer", theme.header)));
    match &r.files {
        FilesVerdict::Differ { files, unknown } => {
            for f in files {
                wrapped(&mut out, "≠ ", &format!("{}: {}", f.path, f.what), width, theme.modified);
                if let Some((a, b)) = &f.texts {
                    text_diff(&mut out, a, b, width, theme);
                }
            }
            for u in unknown {
                wrapped(&mut out, "? ", &format!("{u}: content not recorded, cannot tell"), width, theme.status_warn);
            }
        }
        FilesVerdict::Unknown { why } => wrapped(&mut out, "? ", why, width, theme.status_warn),
        FilesVerdict::SameLayer { .. } | FilesVerdict::SameFiles { .. } => {
            wrapped(&mut out, "= ", &files_words(r), width, theme.status_ok)
        }
        _ => wrapped(&mut out, "· ", &files_words(r), width, theme.dim),
    }
    out
}

/// A's and B's content of a file as a line diff (A's lines `-`, B's `+`), with the context the
/// File pane shows.
fn text_diff(out: &mut Vec<Line<'static>>, a: &str, b: &str, width: usize, theme: &Theme) {
    use crate::tui::model::diff::{DiffLine, diff};
    // File contents are sanitized (no control character reaches the terminal) but keep their
    // indentation.
    let clean = |t: &str| format::sanitize(t.trim_end_matches(['\n', '\r']));
    let join = |segments: &[(bool, String)]| clean(&segments.iter().map(|(_, t)| t.as_str()).collect::<String>());
    for l in diff(Some(a), Some(b)) {
        let (text, style) = match l {
            DiffLine::Context { text, .. } => (format!("    {}", clean(&text)), theme.diff_context),
            DiffLine::Removed { segments, .. } => (format!("  - {}", join(&segments)), theme.diff_del),
            DiffLine::Added { segments, .. } => (format!("  + {}", join(&segments)), theme.diff_add),
            DiffLine::Skipped { lines } => (format!("    … {lines} unchanged line(s)"), theme.dim),
        };
        out.push(Line::from(Span::styled(format::truncate(&text, width), style)));
    }
}

fn detail_pane(frame: &mut Frame, area: Rect, v: &CompareView, theme: &Theme) {
    let blk = block(" Differences ", v.focus == Focus::Detail, theme);
    let inner = blk.inner(area);
    frame.render_widget(blk, area);
    let Some(r) = v.row() else { return };
    let lines = detail_lines(r, inner.width as usize, theme);
    let max = lines.len().saturating_sub(inner.height as usize);
    let scroll = v.detail_scroll.min(max);
    frame.render_widget(Paragraph::new(lines).scroll((scroll as u16, 0)), inner);
}

fn hint_bar(frame: &mut Frame, area: Rect, theme: &Theme) {
    let width = area.width as usize;
    let mut spans = Vec::new();
    let mut used = 0;
    for (key, hint) in KEYS {
        let w = key.chars().count() + hint.chars().count() + 3;
        if used + w > width {
            break;
        }
        spans.push(Span::styled(format!(" {key}"), theme.bar.patch(theme.key)));
        spans.push(Span::styled(format!(" {hint} "), theme.bar));
        used += w;
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(theme.bar), area);
}
