//! The help overlay: the keys of the focused pane, of debugging and of everywhere, filtered
//! by typing; `Enter` runs the selected binding (as yazi's help does). Typing selects the best
//! match, not the first row: "zoom" selects `z` (zoom the focused pane), not `esc` (whose
//! description mentions leaving zoom).

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
        let several = self.model.platforms.len() > 1;
        keymap::bindings(&self.help_contexts())
            .into_iter()
            // The platform filter means nothing in a build for one platform.
            .filter(|b| several || b.action != keymap::Action::Platform)
            .filter(|b| {
                f.is_empty() || b.desc.to_lowercase().contains(&f) || keymap::keys_label(b).to_lowercase().contains(&f)
            })
            .collect()
    }

    /// The row a filter matches best: its key exactly, then a description that starts with
    /// it, then one with a word that starts with it, then any other; the first of the best.
    pub fn help_best(&self, filter: &str) -> usize {
        let f = filter.to_lowercase();
        let score = |b: &Binding| {
            let desc = b.desc.to_lowercase();
            // Keys as typed: `G` is not `g`.
            if b.keys.iter().any(|k| k.label() == filter) {
                0
            } else if desc.starts_with(&f) {
                1
            } else if desc.split(|c: char| !c.is_alphanumeric()).any(|w| w.starts_with(&f)) {
                2
            } else {
                3
            }
        };
        let rows = self.help_rows(filter);
        // min_by_key keeps the first of equal scores.
        rows.iter().enumerate().min_by_key(|(_, b)| score(b)).map_or(0, |(i, _)| i)
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
                let best = if f.is_empty() { 0 } else { self.help_best(&f) };
                (f, best)
            }
            KeyCode::Char(c) => {
                let f = format!("{filter}{c}");
                let best = self.help_best(&f);
                (f, best)
            }
            _ => (filter, selected),
        };
        self.popup = Some(Popup::Help { filter, selected });
        Vec::new()
    }
}
