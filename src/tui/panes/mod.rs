//! One file per pane or popup. Each draws into the area it is given (inside the border that
//! [`crate::tui::ui`] draws) from the [`App`](crate::tui::app::App) state, and records where
//! its rows went for the mouse.

pub mod cache;
pub mod changes;
pub mod file;
pub mod help;
pub mod layers;
pub mod logs;
pub mod review;
pub mod shell;
pub mod source;
pub mod steps;

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::format;

/// The first row to show so that `cursor` is visible in `height` rows, keeping the previous
/// scroll position when possible.
pub fn scroll_for(cursor: usize, scroll: usize, height: usize, len: usize) -> usize {
    if height == 0 {
        return 0;
    }
    let max = len.saturating_sub(height);
    let s = if cursor < scroll {
        cursor
    } else if cursor >= scroll + height {
        cursor + 1 - height
    } else {
        scroll
    };
    s.min(max)
}

/// A label/value row for detail views: the label padded to `label_width`.
pub fn field<'a>(label: &str, label_width: usize, value: Vec<Span<'a>>, label_style: Style) -> Line<'a> {
    let mut spans = vec![Span::styled(format::fit(label, label_width), label_style)];
    spans.extend(value);
    Line::from(spans)
}

/// Wraps plain text into lines of at most `width` columns (on spaces where possible).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    use unicode_width::UnicodeWidthStr;
    let width = width.max(8);
    let mut out = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split(' ') {
            let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
            if candidate.width() <= width {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            // A word longer than the width is cut into pieces.
            let mut rest = word.to_string();
            while rest.width() > width {
                let cut: String = rest.chars().take(width).collect();
                rest = rest.chars().skip(width).collect();
                out.push(cut);
            }
            line = rest;
        }
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrolling_keeps_the_cursor_visible() {
        assert_eq!(scroll_for(0, 0, 5, 20), 0);
        assert_eq!(scroll_for(7, 0, 5, 20), 3);
        assert_eq!(scroll_for(4, 3, 5, 20), 3);
        assert_eq!(scroll_for(1, 3, 5, 20), 1);
        assert_eq!(scroll_for(19, 30, 5, 20), 15);
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap("one two three four", 9), ["one two", "three", "four"]);
        assert_eq!(wrap("abcdefghijkl", 8), ["abcdefgh", "ijkl"]);
    }
}
