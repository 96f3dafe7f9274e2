//! The event loop: one channel brings everything the UI reacts to (terminal input from the
//! reader thread, events and questions from the engine thread); the loop feeds it to the
//! [`App`] reducer, carries out the effects (answers to the engine, handing the terminal to a
//! shell and taking it back) and redraws. The engine is never kept waiting on drawing: its
//! events queue in the channel and are applied in batches between frames.

use std::io::Write;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::Event as TermEvent;

use super::app::{App, Effect, Msg};
use super::error::TuiError;
use super::input::{Input, InputReader};
use super::terminal::Term;
use super::theme::Theme;
use super::ui;
use crate::debugger::Resume;
use trowel_engine::engine::controller::{Checkpoint, Decision, ShellChoice};
use trowel_events::Change;
use trowel_events::PushReview;
use trowel_events::{Envelope, Event};

/// How often the screen refreshes without input (the running step's clock).
const TICK: Duration = Duration::from_millis(250);
/// Messages applied before the next frame is drawn.
const BATCH: usize = 512;

/// Everything that reaches the UI thread.
pub enum Incoming {
    Input(TermEvent),
    Engine(Box<Envelope>),
    Paused {
        at: Box<Checkpoint>,
        reasons: Vec<String>,
        reply: Sender<Resume>,
    },
    ShellChanges {
        at: Box<Checkpoint>,
        changes: Vec<Change>,
        reply: Sender<ShellChoice>,
    },
    ReviewPush {
        review: Box<PushReview>,
        reply: Sender<Decision>,
    },
    /// The build thread ended (`Err`: its error message).
    Done(Result<(), String>),
    /// SIGTERM or SIGHUP (a pod deleted, an ssh or `kubectl exec` session dropped): the
    /// session ends as on `q`, so the build is aborted, its roots removed and the terminal
    /// restored, not left raw with a build root behind.
    Signal,
}

impl Incoming {
    /// What the input reader sends; a terminal that hung up ends the session as SIGHUP does.
    pub fn input(i: Input) -> Incoming {
        match i {
            Input::Event(e) => Incoming::Input(e),
            Input::Gone => Incoming::Signal,
        }
    }
}

/// Answers the engine is waiting for.
#[derive(Default)]
struct Replies {
    pause: Option<Sender<Resume>>,
    shell: Option<Sender<ShellChoice>>,
    push: Option<Sender<Decision>>,
}

/// Runs the UI until the user quits (or until every sender is gone).
pub fn run(
    term: &mut Term,
    app: &mut App,
    theme: &Theme,
    rx: &Receiver<Incoming>,
    input: &InputReader,
    started: Instant,
) -> Result<(), TuiError> {
    let mut replies = Replies::default();
    loop {
        if !term.is_suspended() {
            let mut drawn = None;
            term.draw(|f| drawn = Some(ui::draw(f, app, theme)))?;
            if let Some(d) = drawn {
                app.update(Msg::Drawn(Box::new(d)));
            }
        }
        let first = match rx.recv_timeout(TICK) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            // The engine and the input reader are both gone: nothing can happen any more.
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let mut batch: Vec<Incoming> = first.into_iter().collect();
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        app.update(Msg::Tick { ms: started.elapsed().as_millis() as u64 });
        for m in batch {
            let effects = handle(term, app, input, &mut replies, m)?;
            for e in effects {
                if apply(term, app, input, &mut replies, e)? {
                    return Ok(());
                }
            }
        }
    }
}

fn handle(
    term: &mut Term,
    app: &mut App,
    input: &InputReader,
    replies: &mut Replies,
    m: Incoming,
) -> Result<Vec<Effect>, TuiError> {
    if term.is_suspended() && ends_shell(&m) {
        term.resume()?;
        input.resume();
    }
    Ok(match m {
        Incoming::Input(TermEvent::Key(k)) => app.update(Msg::Key(k)),
        Incoming::Input(TermEvent::Mouse(mo)) => app.update(Msg::Mouse(mo)),
        Incoming::Input(_) => Vec::new(),
        Incoming::Engine(e) => app.update(Msg::Event(e)),
        Incoming::Paused { at, reasons, reply } => {
            replies.pause = Some(reply);
            app.update(Msg::Paused { at, reasons })
        }
        Incoming::ShellChanges { at, changes, reply } => {
            replies.shell = Some(reply);
            app.update(Msg::ShellChanges { at, changes })
        }
        Incoming::ReviewPush { review, reply } => {
            replies.push = Some(reply);
            app.update(Msg::ReviewPush(review))
        }
        Incoming::Done(r) => app.update(Msg::BuildDone { error: r.err() }),
        Incoming::Signal => vec![Effect::Quit],
    })
}

/// Whether `m` says the shell session the terminal was handed to is over, so the UI may take
/// the terminal back. Only the engine's own word counts: the session's end, or a question or
/// the build's end (which come only once the engine has left the session, also when the shell
/// could not be opened). Anything else can arrive while the shell runs — the stage's root made
/// for it (after `n` over cached steps there was none), a download's progress, a warning — and
/// taking the terminal back then put it in raw mode under the shell, the UI drawing over it
/// and reading its keys.
fn ends_shell(m: &Incoming) -> bool {
    match m {
        Incoming::Engine(e) => matches!(e.event, Event::ShellFinished { .. }),
        Incoming::Input(_) => false,
        Incoming::Paused { .. }
        | Incoming::ShellChanges { .. }
        | Incoming::ReviewPush { .. }
        | Incoming::Done(_)
        | Incoming::Signal => true,
    }
}

/// Carries out one effect; `true` means quit.
fn apply(term: &mut Term, app: &App, input: &InputReader, replies: &mut Replies, e: Effect) -> Result<bool, TuiError> {
    match e {
        Effect::Resume(r) => {
            if let Some(tx) = replies.pause.take() {
                let _ = tx.send(r);
            }
        }
        Effect::OpenShell => {
            // The shell inherits the terminal: stop reading it and give it back first.
            input.park();
            term.suspend();
            let at = app.selected_step().map(|s| format!("line {} ({})", s.line, s.keyword)).unwrap_or_default();
            let mut out = std::io::stdout();
            let _ = writeln!(
                out,
                "\ntrowel debug: a shell in the build root at {at}. What you change can be kept as a layer.\nExit the shell (exit or ctrl-d) to return to the debugger.\n"
            );
            let _ = out.flush();
            if let Some(tx) = replies.pause.take() {
                let _ = tx.send(Resume::Shell(None));
            }
        }
        Effect::ShellChoice(c) => {
            if let Some(tx) = replies.shell.take() {
                let _ = tx.send(c);
            }
        }
        Effect::Push(d) => {
            if let Some(tx) = replies.push.take() {
                let _ = tx.send(d);
            }
        }
        Effect::Copy(text) => {
            // Between frames, straight to the terminal: the sequence draws nothing.
            let _ = super::clipboard::copy(&mut std::io::stdout(), &text);
        }
        Effect::Quit => return Ok(true),
    }
    Ok(false)
}
