//! The help overlay: the keys of the focused pane, of debugging and of everywhere, filtered
//! by typing; `Enter` runs the selected binding (as yazi's help does).

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::{App, Effect, Mode, Popup};
use crate::tui::keymap::{self, Binding, Context};

impl App {
    /// The contexts the help lists: those that apply when no popup is open.
    pub fn help_contexts(&self) -> Vec<Context> {
        let mut v = vec![self.focus.context()];
        if self.mode == Mode::Live {
            v.push(Context::Debug);
        }
        v.push(Context::Global);
        v
    }

    /// The help's rows for a filter.
    pub fn help_rows(&self, filter: &str) -> Vec<&'static Binding> {
        let f = filter.to_lowercase();
        keymap::bindings(&self.help_contexts())
            .into_iter()
            .filter(|b| {
                f.is_empty() || b.desc.to_lowercase().contains(&f) || keymap::keys_label(b).to_lowercase().contains(&f)
            })
            .collect()
    }

    pub(crate) fn on_help_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(Popup::Help { filter, selected }) = self.popup.clone() else { return Vec::new() };
        let n = self.help_rows(&filter).len();
        let (filter, selected) = match key.code {
            KeyCode::Esc => {
                self.popup = None;
                return Vec::new();
            }
            KeyCode::Char('?') if filter.is_empty() => {
                self.popup = None;
                return Vec::new();
            }
            KeyCode::Enter => {
                let Some(b) = self.help_rows(&filter).get(selected).copied() else { return Vec::new() };
                self.popup = None;
                return self.act(b.action);
            }
            KeyCode::Up => (filter, selected.saturating_sub(1)),
            KeyCode::Down => (filter, (selected + 1).min(n.saturating_sub(1))),
            KeyCode::Backspace => {
                let mut f = filter;
                f.pop();
                (f, 0)
            }
            KeyCode::Char(c) => (format!("{filter}{c}"), 0),
            _ => (filter, selected),
        };
        self.popup = Some(Popup::Help { filter, selected });
        Vec::new()
    }
}
