//! Draws the failure pause's instruction editor (its state and keys are
//! `app/editor.rs`): the instruction on one line, the cursor shown in reverse video (the text
//! scrolls sideways to keep it in view), and what the keys do.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::LineEditor;
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, ed: &LineEditor, theme: &Theme) {
    let width = (area.width as usize).saturating_sub(2);
    let (shown, col) = ed.window(width);
    let before: String = shown.chars().take(col).collect();
    let at: String = shown.chars().nth(col).map_or(" ".to_string(), |c| c.to_string());
    let after: String = shown.chars().skip(col + 1).collect();
    let changed = ed.text.trim() != ed.original.trim();
    let state = if changed {
        "edited: the image's history will say so, and the push review will warn"
    } else {
        "as it last ran (a multi-line instruction is shown as its logical line)"
    };
    let lines = vec![
        Line::from(Span::styled(state, theme.dim)),
        Line::from(vec![
            Span::styled("> ", theme.key),
            Span::styled(before, theme.text),
            Span::styled(at, theme.text.add_modifier(Modifier::REVERSED)),
            Span::styled(after, theme.text),
        ]),
        Line::default(),
        Line::from(vec![
            Span::styled("enter", theme.key),
            Span::styled(" run it   ", theme.text),
            Span::styled("esc", theme.key),
            Span::styled(" cancel   ", theme.text),
            Span::styled("← → home end ctrl-u ctrl-k", theme.key),
            Span::styled(" edit", theme.text),
        ]),
    ];
    frame.render_widget(Paragraph::new(lines), area);
}
