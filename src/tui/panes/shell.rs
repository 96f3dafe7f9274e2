//! After a shell session: what it changed in the build root, and the choice to keep the
//! changes (as a layer of the image, recorded in its history as a manual step) or to discard
//! them (the root is then exactly as before the session).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::{App, Popup};
use crate::tui::format;
use crate::tui::theme::Theme;
use trowel_events::{ChangeKind, FileType};

/// Draws the popup's content; returns the first change listed (the scroll, clamped).
pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) -> Option<usize> {
    let Some(Popup::ShellChanges { changes, scroll, .. }) = &app.popup else { return None };
    let width = area.width as usize;
    let where_ = app
        .selected_step()
        .map(|s| format!(" at line {} ({})", s.line, format::one_line(&s.keyword)))
        .unwrap_or_default();
    let mut lines = vec![
        Line::from(Span::styled(format!("The shell changed {} path(s){where_}.", changes.len()), theme.header)),
        Line::from(vec![
            Span::styled("y", theme.key),
            Span::styled(" keep them as a layer   ", theme.text),
            Span::styled("d", theme.key),
            Span::styled(" discard them (the root is restored exactly)", theme.text),
        ]),
        Line::default(),
    ];
    let head = lines.len();
    let height = (area.height as usize).saturating_sub(head);
    let scroll = (*scroll).min(changes.len().saturating_sub(height));
    for c in changes.iter().skip(scroll).take(height) {
        let (k, ks) = super::changes::kind(c, false, theme);
        let size = if c.file_type == FileType::File && c.kind != ChangeKind::Deleted {
            format::bytes(c.size)
        } else {
            String::new()
        };
        let path_w = width.saturating_sub(2 + 10);
        lines.push(Line::from(vec![
            Span::styled(format!("{k} "), ks),
            Span::styled(format::fit(&format::truncate_start(&format::sanitize(&c.path), path_w), path_w), theme.text),
            Span::styled(format::fit_right(&size, 10), theme.dim),
        ]));
    }
    frame.render_widget(Paragraph::new(lines), area);
    Some(scroll)
}
