//! `y` copies what the focused pane has selected (the step's expanded command, a path, a
//! layer's digest, a breakpoint) and the command popup: the app says what it sent, and the
//! session writes it to the terminal as OSC 52 ([`crate::tui::clipboard`]), which reaches the
//! clipboard of the terminal the person sits at, over `kubectl exec`, ssh and tmux alike.

use super::{App, Effect, Pane, Popup, Severity};
use crate::tui::panes::{self, Outcome};

impl App {
    /// Copies the focused pane's selection (or the command popup's command).
    pub(super) fn copy(&mut self) -> Vec<Effect> {
        let what = match (&self.popup, self.focus) {
            (Some(Popup::Command { id, .. }), _) => self
                .model
                .step(*id)
                .map(|s| (panes::command::text(s).to_string(), format!("the command of line {}", s.line))),
            (Some(_), _) => None,
            (None, Pane::Steps) => self
                .selected_step()
                .map(|s| (panes::command::text(s).to_string(), format!("the command of line {}", s.line))),
            (None, Pane::Changes) => {
                self.panes.changes.selected_path().map(|p| (p.to_string(), format!("the path {p}")))
            }
            (None, Pane::File) => self.panes.file.path().map(|p| (p.to_string(), format!("the path {p}"))),
            (None, Pane::Layers) => panes::layers::layers_for(&self.model, self.panes.steps.platform())
                .get(self.panes.layers.cursor())
                .map(|l| {
                    let d = l.digest.to_string();
                    (d.clone(), format!("the layer digest {}", crate::tui::format::digest_short(&l.digest)))
                }),
            (None, Pane::Breaks) => {
                let (ctx, panes) = self.split();
                match panes.breaks.handle_copy(&ctx) {
                    Outcome::Copy(text, what) => Some((text, what)),
                    _ => None,
                }
            }
            (None, Pane::Files) => self.panes.files.selected_path().map(|p| (p.to_string(), format!("the path {p}"))),
            (None, Pane::Cache | Pane::Logs) => None,
        };
        match what {
            Some((text, what)) => self.copy_text(text, &what),
            None => {
                self.say(
                    "nothing to copy here: y copies a step's command, a path, a layer's digest or a breakpoint",
                    Severity::Info,
                );
                Vec::new()
            }
        }
    }

    pub(super) fn copy_text(&mut self, text: String, what: &str) -> Vec<Effect> {
        if text.len() > crate::tui::clipboard::MAX_BYTES {
            self.say(
                &format!("{what} is too long to copy ({} bytes; terminals take about 74 KB)", text.len()),
                Severity::Warn,
            );
            return Vec::new();
        }
        self.say(&format!("copied {what} to the clipboard (OSC 52: in tmux, set-clipboard on)"), Severity::Info);
        vec![Effect::Copy(text)]
    }
}
