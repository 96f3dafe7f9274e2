//! The Logs pane: RUN output (and shell sessions' output), live while the build runs,
//! scrollable, searchable with `/` (`n`/`N` move between matches), for every step or only the
//! selected one. A gutter names the Dockerfile line whose step printed each run of lines.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::{App, InputTarget};
use crate::tui::format;
use crate::tui::theme::Theme;
use trowel_events::OutputStream;

const GUTTER: usize = 5;

pub fn render(frame: &mut Frame, area: Rect, app: &mut App, theme: &Theme) {
    let width = area.width as usize;
    let scope = app.log_scope();
    let mut lines: Vec<Line> = Vec::new();
    // Status row: scope, follow, search.
    let mut status = vec![Span::styled(if app.logs.step_only { "selected step" } else { "all steps" }, theme.header)];
    status.push(Span::styled(format!(" · {} lines", scope.len()), theme.dim));
    if app.logs.follow {
        status.push(Span::styled(" · following", theme.dim));
    }
    if app.model.logs.dropped() > 0 {
        status.push(Span::styled(format!(" · {} older lines dropped", app.model.logs.dropped()), theme.dim));
    }
    let editing = app.input.as_ref().filter(|i| i.target == InputTarget::LogSearch);
    if let Some(i) = editing {
        status.push(Span::styled(format!(" /{}▏", i.text), theme.search_match));
    } else if !app.logs.query.is_empty() {
        status.push(Span::styled(format!(" /{}", app.logs.query), theme.search_match));
    }
    lines.push(Line::from(status));
    let height = (area.height as usize).saturating_sub(1);
    if scope.is_empty() {
        let text = if app.model.logs.is_empty() { "no output yet" } else { "the selected step printed nothing" };
        lines.push(Line::from(Span::styled(text, theme.dim)));
        frame.render_widget(Paragraph::new(lines), area);
        return;
    }
    let max = scope.len().saturating_sub(height);
    if app.logs.follow {
        app.logs.scroll = max;
    }
    app.logs.scroll = app.logs.scroll.min(max);
    let query = app.logs.query.to_lowercase();
    let text_w = width.saturating_sub(GUTTER);
    for (pos, &i) in scope.iter().enumerate().skip(app.logs.scroll).take(height) {
        let Some(l) = app.model.logs.get(i) else { continue };
        let prev_step = i.checked_sub(1).and_then(|p| app.model.logs.get(p)).map(|p| (p.step, p.shell));
        let gutter = if prev_step != Some((l.step, l.shell)) || pos == app.logs.scroll {
            let line = app.model.step(l.step).map_or(0, |s| s.line);
            let tag = if l.shell { format!("!{line}") } else { format!("L{line}") };
            format::fit(&tag, GUTTER)
        } else {
            " ".repeat(GUTTER)
        };
        let base = match (l.shell, l.stream) {
            (_, OutputStream::Stderr) => theme.stderr,
            (true, _) => theme.dim,
            _ => theme.text,
        };
        let text = format::truncate(&format::sanitize(&l.text), text_w);
        let mut spans = vec![Span::styled(gutter, theme.step_header)];
        spans.extend(highlight(&text, &query, base, theme.search_match));
        let mut line = Line::from(spans);
        if app.logs.current == Some(pos) {
            line = line.patch_style(theme.selection);
        }
        lines.push(line);
    }
    frame.render_widget(Paragraph::new(lines), area);
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
