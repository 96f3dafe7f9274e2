//! `trowel replay FILE`: the debugger's panes over a recorded trace, read-only (no shell, no
//! push) and offline: no registry, no root, no build context needed. Traces of failed and of
//! killed builds (which end mid-step) open too. SIGTERM and SIGHUP end it as `q` does.

use std::path::Path;
use std::sync::mpsc::channel;
use std::time::Instant;

use super::app::App;
use super::error::TuiError;
use super::input::InputReader;
use super::session::{self, Incoming};
use super::terminal::Term;
use super::theme::Theme;

/// Opens the replay UI on a trace file.
pub fn run_replay(path: &Path, mouse: bool, theme: &Theme) -> Result<(), TuiError> {
    use std::io::IsTerminal;
    let (_, events) = crate::trace::read(path)?;
    if events.is_empty() {
        return Err(TuiError::EmptyTrace { path: path.to_path_buf(), message: "no events recorded".into() });
    }
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(TuiError::NoTerminal {
            what: "trowel replay",
            hint: "; use trowel replay --summary for plain text",
        });
    }
    let mut app = App::replay(path.display().to_string(), &events);
    let (tx, rx) = channel::<Incoming>();
    let to_ui = tx.clone();
    let signals = crate::signals::end_ui_on(move || {
        let _ = to_ui.send(Incoming::Signal);
    })
    .map_err(TuiError::Terminal)?;
    let mut term = Term::enter(mouse)?;
    let mut input = InputReader::spawn(tx, Incoming::input);
    let outcome = session::run(&mut term, &mut app, theme, &rx, &input, Instant::now());
    input.stop();
    signals.close();
    drop(term);
    outcome
}
