//! The compare view's event loop: draw, wait for a key, until `q`. Read-only and offline, like
//! `trowel replay`: no engine thread, only the terminal's input.

use std::sync::mpsc::channel;

use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, MouseEventKind};

use super::CompareView;
use crate::compare::Comparison;
use crate::tui::error::TuiError;
use crate::tui::input::{Input, InputReader};
use crate::tui::terminal::Term;
use crate::tui::theme::Theme;

/// Opens the compare view; returns the comparison's exit code (0 equivalent, 1 different).
pub fn run_compare(comparison: Comparison, mouse: bool, theme: &Theme) -> Result<i32, TuiError> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(TuiError::NoTerminal { what: "trowel replay --compare", hint: "; add --summary for plain text" });
    }
    let code = comparison.exit_code();
    let mut view = CompareView::new(comparison);
    let (tx, rx) = channel::<Input>();
    // SIGTERM and SIGHUP end it as a hangup does: the loop below returns, the terminal restored.
    let to_ui = tx.clone();
    let signals = crate::signals::end_ui_on(move || {
        let _ = to_ui.send(Input::Gone);
    })
    .map_err(TuiError::Terminal)?;
    let mut term = Term::enter(mouse)?;
    let mut input = InputReader::spawn(tx, |i| i);
    let outcome = (|| -> Result<(), TuiError> {
        loop {
            term.draw(|f| super::draw(f, &view, theme))?;
            // Every sender gone: the input reader stopped, nothing can happen any more.
            // The terminal hung up: nobody is left to look.
            let Ok(Input::Event(ev)) = rx.recv() else { return Ok(()) };
            let key = match ev {
                TermEvent::Key(k) if k.kind != KeyEventKind::Release => k,
                // The wheel moves as j and k do (in the focused pane).
                TermEvent::Mouse(m) => match m.kind {
                    MouseEventKind::ScrollDown => KeyEvent::from(KeyCode::Down),
                    MouseEventKind::ScrollUp => KeyEvent::from(KeyCode::Up),
                    _ => continue,
                },
                _ => continue,
            };
            if view.key(key) {
                return Ok(());
            }
        }
    })();
    input.stop();
    signals.close();
    drop(term);
    outcome.map(|()| code)
}
