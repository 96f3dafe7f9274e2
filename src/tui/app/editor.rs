//! The one-line instruction editor of the failure pause ("fix and retry"): the failed RUN, COPY
//! or ADD as written (a multi-line instruction as its logical line), edited in place and run
//! with `enter`, or left with `esc`. It is a popup with its own keys, since every printable key
//! is text here.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{App, Effect, Popup, Severity, Waiting};
use crate::debugger::Resume;
use trowel_engine::engine::controller::logical_line;

/// A line being edited, with its cursor (a char index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineEditor {
    /// The Dockerfile line the instruction starts on.
    pub line: usize,
    /// The instruction as it ran last (what `enter` with no change re-runs).
    pub original: String,
    pub text: String,
    pub cursor: usize,
}

impl LineEditor {
    pub fn new(line: usize, source: &str) -> LineEditor {
        let text = logical_line(source);
        LineEditor { line, original: text.clone(), cursor: text.chars().count(), text }
    }

    fn byte(&self, char_idx: usize) -> usize {
        self.text.char_indices().nth(char_idx).map_or(self.text.len(), |(b, _)| b)
    }

    /// Applies an editing key; `false`: not an editing key.
    pub fn key(&mut self, key: &KeyEvent) -> bool {
        let n = self.text.chars().count();
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = n,
            KeyCode::Char('u') if ctrl => {
                let b = self.byte(self.cursor);
                self.text.replace_range(..b, "");
                self.cursor = 0;
            }
            KeyCode::Char('k') if ctrl => {
                let b = self.byte(self.cursor);
                self.text.truncate(b);
            }
            KeyCode::Char(c) if !ctrl => {
                let b = self.byte(self.cursor);
                self.text.insert(b, c);
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                let b = self.byte(self.cursor);
                self.text.remove(b);
            }
            KeyCode::Delete if self.cursor < n => {
                let b = self.byte(self.cursor);
                self.text.remove(b);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(n),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = n,
            KeyCode::Backspace | KeyCode::Delete => {}
            _ => return false,
        }
        true
    }

    /// The visible part of the text in `width` cells, and the cursor's column in it (the text
    /// scrolls so the cursor stays in view).
    pub fn window(&self, width: usize) -> (String, usize) {
        let width = width.max(1);
        let start = (self.cursor + 1).saturating_sub(width);
        let shown: String = self.text.chars().skip(start).take(width).collect();
        (shown, self.cursor - start)
    }
}

impl App {
    /// `E` at a failure pause: opens the editor on the failed instruction.
    pub(crate) fn open_editor(&mut self) -> Vec<Effect> {
        let Some(at) = self.retryable_pause() else { return Vec::new() };
        self.popup = Some(Popup::EditStep(LineEditor::new(at.0, &at.1)));
        Vec::new()
    }

    /// `R` at a failure pause: re-runs the step as it is.
    pub(crate) fn retry(&mut self) -> Vec<Effect> {
        if self.retryable_pause().is_none() {
            return Vec::new();
        }
        self.resume_with(Resume::Retry(None), "re-running the step")
    }

    /// The pause's line and instruction, if it is at a step that can be re-run (else says why).
    fn retryable_pause(&mut self) -> Option<(usize, String)> {
        let at = self.pause.as_ref().filter(|_| self.waiting == Some(Waiting::Pause)).map(|p| &p.at);
        match at {
            Some(at) if at.can_retry() => Some((at.line, at.source.clone())),
            Some(_) | None => {
                self.say(
                    "only a failed RUN, COPY or ADD can be re-run, at the pause after it (F breaks on failure)",
                    Severity::Info,
                );
                None
            }
        }
    }

    fn resume_with(&mut self, resume: Resume, note: &str) -> Vec<Effect> {
        self.waiting = None;
        self.pause = None;
        self.popup = None;
        self.panes.steps.set_following(true);
        self.say(note, Severity::Info);
        vec![Effect::Resume(resume)]
    }

    /// A key while the editor is open: `enter` runs the text, `esc` closes it.
    pub(crate) fn on_editor_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(Popup::EditStep(mut ed)) = self.popup.clone() else { return Vec::new() };
        match key.code {
            KeyCode::Esc => {
                self.popup = None;
                Vec::new()
            }
            KeyCode::Enter if ed.text.trim().is_empty() => {
                self.say("the instruction is empty: type one, or esc", Severity::Warn);
                Vec::new()
            }
            KeyCode::Enter => {
                let edited = (ed.text.trim() != ed.original.trim()).then(|| ed.text.trim().to_string());
                let note = if edited.is_some() { "running the edited instruction" } else { "re-running the step" };
                self.resume_with(Resume::Retry(edited), note)
            }
            _ => {
                ed.key(&key);
                self.popup = Some(Popup::EditStep(ed));
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(ed: &mut LineEditor, code: KeyCode) {
        ed.key(&KeyEvent::new(code, KeyModifiers::NONE));
    }

    #[test]
    fn edits_the_logical_line() {
        let mut ed = LineEditor::new(4, "RUN make \\\n    -j4");
        assert_eq!(ed.text, "RUN make -j4");
        press(&mut ed, KeyCode::Backspace);
        press(&mut ed, KeyCode::Backspace);
        press(&mut ed, KeyCode::Backspace);
        press(&mut ed, KeyCode::Backspace);
        assert_eq!(ed.text, "RUN make");
        press(&mut ed, KeyCode::Home);
        press(&mut ed, KeyCode::Right);
        press(&mut ed, KeyCode::Delete);
        press(&mut ed, KeyCode::Char('é'));
        assert_eq!((ed.text.as_str(), ed.cursor), ("RéN make", 2));
        let (shown, col) = ed.window(4);
        assert_eq!((shown.as_str(), col), ("RéN ", 2));
        press(&mut ed, KeyCode::End);
        let (shown, col) = ed.window(4);
        assert_eq!((shown.as_str(), col), ("ake", 3));
    }
}
