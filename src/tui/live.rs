//! `trowel debug`: the build runs on its own thread under the debugger's controller, its
//! events and questions reach the UI thread over one channel, and the UI answers.
//!
//! Quitting (or `ctrl-c`) while the build runs answers any pending question with "abort" and
//! asks the engine to stop: a running RUN's processes get SIGTERM, then SIGKILL after a short
//! grace, and the build fails as aborted. The terminal is restored at once; once the engine has
//! cleaned up its build roots, what `trowel build` would have ended with is printed (the pushed
//! image, or the failure with its line and last output lines), and the exit code is the build's.
//! SIGTERM and SIGHUP (a pod deleted, a dropped ssh or `kubectl exec` session) do the same,
//! also one that came before the UI started ([`DebugSignals`], watched since `trowel debug`
//! began); a SIGTERM while the cleanup goes on after the UI is gone ends trowel at once.

use std::path::PathBuf;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::app::App;
use super::error::TuiError;
use super::input::InputReader;
use super::session::{self, Incoming};
use super::terminal::Term;
use super::theme::Theme;
use crate::debugger::{Breakpoint, Debugger, Frontend, Pause, Resume};
use crate::signals::{DebugSignals, Stoppable};
use trowel_engine::engine::controller::{Checkpoint, Decision, ShellChoice};
use trowel_engine::engine::{self, BuildOptions, Emitter};
use trowel_events::Change;
use trowel_events::PushReview;
use trowel_events::{BuildState, Detail, Envelope, EventSink};

/// Everything `trowel debug` needs.
pub struct DebugConfig {
    pub options: BuildOptions,
    pub breakpoints: Vec<Breakpoint>,
    /// Pause before the first step.
    pub step_first: bool,
    pub mouse: bool,
    pub theme: Theme,
    /// Also record the session's events to this trace file.
    pub trace: Option<PathBuf>,
    /// SIGTERM and SIGHUP, watched since before the context was fetched: the build is stopped
    /// under their stop, and the UI takes them over.
    pub signals: DebugSignals,
}

/// Forwards engine events to the UI thread.
struct ChannelSink(Sender<Incoming>);

/// How much of a changed text file the panes show before and after a step.
const CONTENT_LIMIT: u64 = 64 * 1024;

impl EventSink for ChannelSink {
    fn event(&mut self, e: &Envelope) {
        let _ = self.0.send(Incoming::Engine(Box::new(e.clone())));
    }

    /// What the panes show: text files' content before and after each step (the engine reads
    /// the base image's side from its layers), what cached layers changed against the layers
    /// below, and every path a step changed and every file its key lists.
    fn detail(&self) -> Detail {
        Detail {
            file_contents: Some(CONTENT_LIMIT),
            cached_listings: true,
            cached_diffs: true,
            base_listings: true,
            file_lists: true,
        }
    }
}

/// Folds the build's events on the engine thread, for what is printed after the UI is gone
/// (the UI's own state stops at quitting; the build's end comes after).
struct OutcomeSink(Arc<Mutex<BuildState>>);

impl EventSink for OutcomeSink {
    fn event(&mut self, e: &Envelope) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).apply(e);
    }
}

/// The debugger's front end, on the engine thread: every question goes to the UI thread and
/// blocks until it answers (or is gone, which means abort).
struct TuiFrontend {
    tx: Sender<Incoming>,
}

impl Frontend for TuiFrontend {
    fn paused(&mut self, pause: &Pause<'_>) -> Resume {
        let (reply, answer) = channel();
        let msg = Incoming::Paused { at: Box::new(pause.at.clone()), reasons: pause.reasons.clone(), reply };
        if self.tx.send(msg).is_err() {
            return Resume::Abort("the debugger closed".into());
        }
        answer.recv().unwrap_or_else(|_| Resume::Abort("the debugger closed".into()))
    }

    fn shell_changes(&mut self, at: &Checkpoint, changes: &[Change]) -> ShellChoice {
        let (reply, answer) = channel();
        let msg = Incoming::ShellChanges { at: Box::new(at.clone()), changes: changes.to_vec(), reply };
        if self.tx.send(msg).is_err() {
            return ShellChoice::Discard;
        }
        answer.recv().unwrap_or(ShellChoice::Discard)
    }

    fn review_push(&mut self, review: &PushReview) -> Decision {
        let (reply, answer) = channel();
        if self.tx.send(Incoming::ReviewPush { review: Box::new(review.clone()), reply }).is_err() {
            return Decision::Abort("the debugger closed before the push was confirmed".into());
        }
        answer.recv().unwrap_or_else(|_| Decision::Abort("the debugger closed before the push was confirmed".into()))
    }

    fn gates_push(&self) -> bool {
        true
    }
}

/// Runs `trowel debug`; returns the build's exit code.
pub fn run_debug(cfg: DebugConfig) -> Result<i32, TuiError> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(TuiError::NoTerminal {
            what: "trowel debug",
            hint: "; without one, use trowel build --break … (prompts on /dev/tty) or record a trace with --trace",
        });
    }
    let (tx, rx) = channel::<Incoming>();
    let outcome_state = Arc::new(Mutex::new(BuildState::default()));
    let mut sinks: Vec<Box<dyn EventSink>> =
        vec![Box::new(ChannelSink(tx.clone())), Box::new(OutcomeSink(outcome_state.clone()))];
    if let Some(path) = &cfg.trace {
        sinks.push(Box::new(crate::trace::TraceWriter::create(path, CONTENT_LIMIT)?));
    }
    // The same masking as `trowel build`: secrets never reach the screen or the trace.
    let emitter = Emitter::with_redactor(sinks, cfg.options.redactor());
    let debugger = Debugger::new(TuiFrontend { tx: tx.clone() }, cfg.breakpoints, cfg.step_first);
    let breakpoints = debugger.breakpoints();
    let stop = cfg.signals.stop().clone();
    // The debugger plus a stop the UI asks for once the user has quit (a running RUN included),
    // and a signal too.
    let mut controller = Stoppable::new(debugger, stop.clone());
    let title = cfg.options.dockerfile.display().to_string();
    let options = cfg.options;
    let done_tx = tx.clone();
    let started = Instant::now();
    let mut term = Term::enter(cfg.mouse)?;
    let engine = std::thread::Builder::new()
        .name(super::terminal::ENGINE_THREAD.into())
        .spawn(move || {
            let run = std::panic::AssertUnwindSafe(|| engine::build(&options, &emitter, &mut controller));
            let (code, done) = match std::panic::catch_unwind(run) {
                Ok(Ok(_)) => (0, Ok(())),
                Ok(Err(e)) => (e.exit_code(), Err(e.to_string())),
                Err(payload) => {
                    // A bug, not a build failure: show it rather than losing it under the UI.
                    let what = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    let at = super::terminal::take_engine_panic().map(|a| format!(" at {a}")).unwrap_or_default();
                    (101, Err(format!("the build thread panicked{at}: {what}")))
                }
            };
            let _ = done_tx.send(Incoming::Done(done));
            code
        })
        .map_err(TuiError::Terminal)?;
    let mut input = InputReader::spawn(tx.clone(), Incoming::input);
    // Their default would end the process there and then, the terminal raw and the build's
    // roots left: the session ends as on quit instead.
    let to_ui = tx.clone();
    cfg.signals.hand_to(move || {
        let _ = to_ui.send(Incoming::Signal);
    });
    drop(tx);
    let mut app = App::live(title, breakpoints);
    let outcome = session::run(&mut term, &mut app, &cfg.theme, &rx, &input, started);
    // A build still running when the UI ends is aborted: its running RUN is stopped now.
    if !engine.is_finished() {
        stop.request("quit from the debugger");
    }
    input.stop();
    drop(term);
    cfg.signals.ui_gone();
    // A test signals it here (`tests/tui_debug_signals.rs`): the build's cleanup is often too
    // short to.
    crate::test_hook::pause("TROWEL_TEST_PAUSE_AFTER_UI");
    // Unanswered questions now fail on the engine side (their reply channels are gone).
    drop(rx);
    // After a hangup the terminal may be gone: writing to it must not panic before the engine
    // has removed its build roots.
    use std::io::Write as _;
    if !engine.is_finished() {
        let _ = writeln!(std::io::stderr(), "trowel debug: stopping the build");
    }
    let code = engine.join().map_err(|_| TuiError::EnginePanicked)?;
    outcome?;
    // What the build ended with, as `trowel build` would have said it: the UI is gone.
    let state = outcome_state.lock().unwrap_or_else(|p| p.into_inner());
    let _ = write!(std::io::stderr(), "{}", crate::trace::summary::ending(&state));
    Ok(code)
}
