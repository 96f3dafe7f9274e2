//! Keys: `ctrl-c` first (it always exits), then a text input line if one is open, then the
//! help overlay, then the keymap for the current contexts; `gg` is a two-key chord.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::{App, Effect, Input, InputTarget, Popup, Waiting};
use crate::debugger::Resume;
use crate::tui::keymap::Action;
use trowel_engine::engine::controller::{Decision, ShellChoice};

impl App {
    pub(super) fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            return self.quit_now();
        }
        if self.input.is_some() {
            self.on_input_key(key);
            return Vec::new();
        }
        if matches!(self.popup, Some(Popup::Help { .. })) {
            return self.on_help_key(key);
        }
        if matches!(self.popup, Some(Popup::EditStep(_))) {
            return self.on_editor_key(key);
        }
        let contexts = self.contexts();
        let Some(action) = crate::tui::keymap::lookup(&contexts, &key) else {
            self.pending_g = false;
            return Vec::new();
        };
        // `gg` goes to the top; a single `g` waits for the second.
        if action == Action::Top && key.code == KeyCode::Char('g') && !std::mem::take(&mut self.pending_g) {
            self.pending_g = true;
            return Vec::new();
        }
        self.pending_g = false;
        self.act(action)
    }

    fn on_input_key(&mut self, key: KeyEvent) {
        let Some(input) = self.input.as_mut() else { return };
        match key.code {
            KeyCode::Esc => {
                let target = input.target;
                self.input = None;
                self.set_query(target, String::new());
            }
            KeyCode::Enter => {
                let input = self.input.take();
                if let Some(Input { target: InputTarget::AddBreakpoint, text }) = input {
                    self.add_breakpoint(&text);
                }
            }
            KeyCode::Backspace => {
                input.text.pop();
                let (t, q) = (input.target, input.text.clone());
                self.set_query(t, q);
            }
            KeyCode::Char(c) => {
                input.text.push(c);
                let (t, q) = (input.target, input.text.clone());
                self.set_query(t, q);
            }
            _ => {}
        }
    }

    /// The typed line so far goes to the pane it filters or searches.
    fn set_query(&mut self, target: InputTarget, q: String) {
        match target {
            InputTarget::ChangesFilter => self.panes.changes.set_filter(q),
            // Taken as a whole on `enter`.
            InputTarget::AddBreakpoint => {}
            InputTarget::FilesFilter => self.panes.files.set_filter(q),
            InputTarget::LogSearch => {
                let (ctx, panes) = self.split();
                let outcome = panes.logs.search(q, &ctx);
                self.carry_out(outcome);
            }
        }
    }

    /// Exits now: answers whatever the engine waits for with "abort", then quits.
    pub(crate) fn quit_now(&mut self) -> Vec<Effect> {
        self.quit = true;
        let mut fx = Vec::new();
        match self.waiting.take() {
            Some(Waiting::Pause) => fx.push(Effect::Resume(Resume::Abort("quit from the debugger".into()))),
            Some(Waiting::ShellChoice) => fx.push(Effect::ShellChoice(ShellChoice::Discard)),
            Some(Waiting::Push) => fx.push(Effect::Push(Decision::Abort("quit from the debugger".into()))),
            None => {}
        }
        fx.push(Effect::Quit);
        fx
    }
}
