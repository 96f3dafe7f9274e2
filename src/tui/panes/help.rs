//! The help overlay: every key of the focused pane, of debugging and of everywhere (from the
//! keymap table itself), filtered as you type; `Enter` runs the selected one. Its last lines
//! are the legend of the Steps pane's marks.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::scroll_for;
use crate::tui::app::{App, Popup};
use crate::tui::format;
use crate::tui::keymap::{self, Context};
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(Popup::Help { filter, selected }) = &app.popup else { return };
    let selected = *selected;
    let rows = app.help_rows(filter);
    let width = area.width as usize;
    let mut lines = vec![Line::from(vec![
        Span::styled("filter: ", theme.dim),
        Span::styled(format!("{filter}▏"), theme.search_match),
        Span::styled("   ↑↓ select · enter run · esc close", theme.dim),
    ])];
    if rows.is_empty() {
        lines.push(Line::from(Span::styled("no key matches", theme.dim)));
    }
    // Rows with a header before each context's first binding.
    let mut items: Vec<(Option<Context>, Option<usize>)> = Vec::new();
    let mut last: Option<Context> = None;
    for (i, b) in rows.iter().enumerate() {
        if last != Some(b.context) {
            items.push((Some(b.context), None));
            last = Some(b.context);
        }
        items.push((None, Some(i)));
    }
    let cursor = items.iter().position(|(_, i)| *i == Some(selected)).unwrap_or(0);
    let legend = legend(theme, width);
    let legend_rows = if area.height as usize > legend.len() + 6 { legend.len() } else { 0 };
    let height = (area.height as usize).saturating_sub(1 + legend_rows);
    let scroll = scroll_for(cursor, 0, height, items.len());
    let key_w = 22.min(width / 3);
    for (ctx, idx) in items.iter().skip(scroll).take(height) {
        if let Some(c) = ctx {
            lines.push(Line::from(Span::styled(c.title(), theme.header)));
            continue;
        }
        let Some(i) = idx else { continue };
        let b = rows[*i];
        let mut line = Line::from(vec![
            Span::styled(format!("  {}", format::fit(&keymap::keys_label(b), key_w)), theme.key),
            Span::styled(format::truncate(b.desc, width.saturating_sub(key_w + 3)), theme.text),
        ]);
        if *i == selected {
            line = line.patch_style(theme.selection);
        }
        lines.push(line);
    }
    frame.render_widget(Paragraph::new(lines), area);
    if legend_rows > 0 {
        let at = Rect::new(area.x, area.y + area.height - legend_rows as u16, area.width, legend_rows as u16);
        frame.render_widget(Paragraph::new(legend), at);
    }
}

/// The legend of the Steps pane's marks, as many per line as fit.
fn legend<'a>(theme: &Theme, width: usize) -> Vec<Line<'a>> {
    let mut out = vec![Line::from(Span::styled("Legend", theme.header))];
    let mut spans: Vec<Span> = Vec::new();
    let mut used = 0;
    for (mark, meaning) in super::steps::LEGEND {
        let w = mark.chars().count() + meaning.chars().count() + 4;
        if used + w > width && !spans.is_empty() {
            out.push(Line::from(std::mem::take(&mut spans)));
            used = 0;
        }
        spans.push(Span::styled(format!("  {mark}"), theme.key));
        spans.push(Span::styled(format!(" {meaning}"), theme.text));
        used += w;
    }
    if !spans.is_empty() {
        out.push(Line::from(spans));
    }
    out
}
