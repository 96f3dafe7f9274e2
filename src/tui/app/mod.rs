//! The debugger's state, as a reducer: [`App::update`] takes one [`Msg`] (an engine event, a
//! key, a mouse event, a pause, a question from the engine, what a frame showed) and returns
//! the [`Effect`]s the session must carry out (answer the engine, open a shell, quit). It
//! touches no terminal and no thread, so every interaction can be tested by feeding messages
//! and looking at the state or at a rendered `TestBackend` buffer.
//!
//! The panes own their state and keys ([`Panes`]); the app holds what they share (the model,
//! the focus, popups, the pause, the typed line), routes actions to the focused pane and carries
//! out what a pane cannot do alone ([`Outcome`](super::panes::Outcome)), such as resetting the
//! detail panes when another step is selected.

use super::keymap::Context;
use super::model::{Model, StepView};
use super::panes::{Ctx, Panes};
use crate::debugger::{Breakpoint, Breakpoints};
use trowel_engine::engine::controller::Checkpoint;
use trowel_events::Change;
use trowel_events::{Envelope, Event, StepId, When};

mod actions;
mod breaks;
mod copy;
mod drawn;
mod editor;
mod hints;
mod keys;
mod mouse;
mod msg;
mod pane;
mod popups;

pub use drawn::{Areas, Drawn};
pub use editor::LineEditor;
pub use msg::{Effect, Msg, Waiting};
pub use pane::Pane;

/// Live debugging, or a read-only replay of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Replay,
}

#[derive(Debug, Clone)]
pub struct PauseInfo {
    pub at: Checkpoint,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warn,
    Error,
}

/// A line of text being typed (filter, search).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub target: InputTarget,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputTarget {
    ChangesFilter,
    LogSearch,
    /// A breakpoint to add, in the `--break` syntax (taken on `enter`).
    AddBreakpoint,
    FilesFilter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Popup {
    Help {
        filter: String,
        selected: usize,
    },
    /// Quit while a build runs?
    ConfirmQuit,
    /// Keep or discard what a shell session changed.
    ShellChanges {
        changes: Vec<Change>,
        scroll: usize,
        /// The step whose pause the session ran at, and on which side of it: the build waits
        /// there for the answer.
        at: (StepId, When),
    },
    /// The push review (and, once approved, the push's progress).
    Review {
        scroll: usize,
        decided: bool,
    },
    /// A step's whole expanded command, wrapped.
    Command {
        id: StepId,
        scroll: usize,
    },
    /// The failed instruction, being edited before it runs again.
    EditStep(LineEditor),
}

pub struct App {
    pub model: Model,
    pub mode: Mode,
    /// What the top bar names: the trace file or the Dockerfile.
    pub title: String,
    pub focus: Pane,
    /// The pane shown on the right (the last focused one other than Steps).
    pub detail: Pane,
    pub zoom: bool,
    /// Each pane's own state.
    panes: Panes,
    pub popup: Option<Popup>,
    pub input: Option<Input>,
    pub pause: Option<PauseInfo>,
    pub waiting: Option<Waiting>,
    /// A shell session has the terminal.
    pub shell_open: bool,
    /// Said at the next pause (a shell session that changed nothing).
    shell_note: Option<String>,
    /// Why the shell asked for could not be opened, until the pause after it says so.
    shell_failed: Option<String>,
    /// The debugger's breakpoints (live only), shared with the engine thread.
    pub breakpoints: Option<Breakpoints>,
    /// The build thread ended.
    pub build_done: bool,
    pub message: Option<(String, Severity)>,
    pub quit: bool,
    /// The first `g` of `gg` was pressed.
    pub pending_g: bool,
    /// Where the last frame put the panes (for the mouse and for page sizes).
    pub areas: Areas,
    /// Clock of the build (ms since start): live, from ticks and events; in a replay, the
    /// time of the trace's last event.
    pub now_ms: u64,
    /// `n` was pressed at a pause before this step: at the next pause its changes are shown.
    stepped_over: Option<StepId>,
}

/// The panes' view of the app ([`Ctx`]), borrowed field by field so that a pane can be borrowed
/// mutably beside it.
macro_rules! ctx {
    ($app:expr) => {{
        let step = $app.panes.steps.selected_id(&$app.model).and_then(|id| $app.model.step(id));
        let shell = match &$app.popup {
            Some(Popup::ShellChanges { changes, .. }) => Some(changes.as_slice()),
            _ => None,
        };
        Ctx {
            model: &$app.model,
            mode: $app.mode,
            step,
            changes: match (step, shell) {
                (Some(_), Some(c)) => c,
                (Some(s), None) => &s.changes,
                (None, _) => &[],
            },
            shell: shell.is_some(),
            pause: $app.pause.as_ref(),
            held: match &$app.popup {
                Some(Popup::ShellChanges { at, .. }) => Some(*at),
                _ => None,
            },
            input: $app.input.as_ref(),
            breakpoints: $app.breakpoints.as_ref(),
            now_ms: $app.now_ms,
            page: $app.page(),
            platform: $app.panes.steps.platform().map(str::to_string),
        }
    }};
}

impl App {
    fn new(mode: Mode, title: String) -> App {
        App {
            model: Model::default(),
            mode,
            title,
            focus: Pane::Steps,
            detail: Pane::Changes,
            zoom: false,
            panes: Panes::default(),
            popup: None,
            input: None,
            pause: None,
            waiting: None,
            shell_open: false,
            shell_note: None,
            shell_failed: None,
            breakpoints: None,
            build_done: false,
            message: None,
            quit: false,
            pending_g: false,
            areas: Areas::default(),
            now_ms: 0,
            stepped_over: None,
        }
    }

    /// A live debugging session over the debugger's shared breakpoints.
    pub fn live(title: String, breakpoints: Breakpoints) -> App {
        let mut app = App::new(Mode::Live, title);
        app.breakpoints = Some(breakpoints);
        app.sync();
        app
    }

    /// A read-only view of a recorded build: every event is applied, and the view starts on
    /// the failed step (if any) or the last step that ran.
    pub fn replay(title: String, events: &[Envelope]) -> App {
        let mut app = App::new(Mode::Replay, title);
        for e in events {
            app.apply_event(e);
        }
        app.build_done = true;
        app.panes.steps.set_following(false);
        if let Some(id) = app.interesting_step() {
            app.select_step(id);
        }
        if app.model.failure.is_some() {
            app.detail = Pane::Logs;
        }
        app.panes.logs.from_the_top();
        app.sync();
        app
    }

    /// Where a replay opens: the failed step, else the step a killed build was running,
    /// else (in a rebuild with hits) the first cache miss, else the last step that wrote a
    /// layer, else the last step that ran.
    fn interesting_step(&self) -> Option<StepId> {
        let m = &self.model;
        m.failed_step()
            .or(m.current)
            .or_else(|| {
                let hits = m.steps().any(|s| s.cache.as_ref().is_some_and(|c| c.is_hit()));
                m.steps().find(|s| hits && s.cache.as_ref().is_some_and(|c| c.is_miss())).map(|s| s.id)
            })
            .or_else(|| m.steps().filter(|s| s.layer.is_some() && s.state.is_done()).last().map(|s| s.id))
            .or_else(|| m.steps().filter(|s| s.state.is_done()).last().map(|s| s.id))
    }

    /// The panes' own state (read-only: keys and messages change it).
    pub fn panes(&self) -> &Panes {
        &self.panes
    }

    /// What the panes see of the app.
    pub fn ctx(&self) -> Ctx<'_> {
        ctx!(self)
    }

    /// The panes, and what they see of the rest of the app.
    fn split(&mut self) -> (Ctx<'_>, &mut Panes) {
        let ctx = ctx!(self);
        (ctx, &mut self.panes)
    }

    /// Every step in display order.
    pub fn step_ids(&self) -> Vec<StepId> {
        self.model.steps().map(|s| s.id).collect()
    }

    pub fn selected_id(&self) -> Option<StepId> {
        self.panes.steps.selected_id(&self.model)
    }

    pub fn selected_step(&self) -> Option<&StepView> {
        self.selected_id().and_then(|id| self.model.step(id))
    }

    /// The changes the Changes pane shows: the selected step's, or, when a shell session
    /// at that step changed files, the last session's.
    pub fn shown_changes(&self) -> &[Change] {
        self.ctx().changes
    }

    /// Indices (into the log buffer) of the lines the Logs pane shows.
    pub fn log_scope(&self) -> Vec<usize> {
        self.panes.logs.scope(&self.ctx())
    }

    /// The contexts whose keys apply now, most specific first.
    pub fn contexts(&self) -> Vec<Context> {
        if let Some(p) = &self.popup {
            return vec![match p {
                Popup::Help { .. } => Context::Help,
                Popup::ConfirmQuit => Context::Confirm,
                Popup::ShellChanges { .. } => Context::ShellChanges,
                Popup::Review { .. } => Context::Review,
                Popup::Command { .. } => Context::Command,
                Popup::EditStep(_) => Context::Editor,
            }];
        }
        // Debugging keys are looked up in a replay too, to say that it is read-only.
        vec![self.focus.context(), Context::Debug, Context::Global]
    }

    /// Line breakpoints currently set.
    pub fn breakpoint_lines(&self) -> Vec<usize> {
        self.ctx().breakpoint_lines()
    }

    /// Descriptions of the other breakpoints (failure, cache miss, size, path, stage).
    pub fn other_breakpoints(&self) -> Vec<String> {
        self.ctx().other_breakpoints()
    }

    pub(crate) fn with_breakpoints<T>(&self, f: impl FnOnce(&mut Vec<Breakpoint>) -> T) -> Option<T> {
        let b = self.breakpoints.as_ref()?;
        let mut guard = b.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut guard))
    }

    /// Whether quitting would abort a build.
    pub fn build_running(&self) -> bool {
        self.mode == Mode::Live && !self.build_done
    }

    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        let effects = self.reduce(msg);
        self.sync();
        effects
    }

    fn reduce(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Event(e) => {
                self.apply_event(&e);
                Vec::new()
            }
            Msg::Key(k) => self.on_key(k),
            Msg::Mouse(m) => {
                self.on_mouse(m);
                Vec::new()
            }
            Msg::Paused { at, reasons } => {
                self.on_paused(*at, reasons);
                Vec::new()
            }
            Msg::ShellChanges { at, changes } => {
                self.shell_open = false;
                self.select_step(at.id);
                self.focus = Pane::Changes;
                self.detail = Pane::Changes;
                self.panes.changes.to_top();
                self.panes.changes.invalidate();
                let n = changes.len();
                self.popup = Some(Popup::ShellChanges { changes, scroll: 0, at: (at.id, at.when) });
                self.waiting = Some(Waiting::ShellChoice);
                self.say(&format!("the shell changed {n} path(s): keep them (y) or discard them (d)"), Severity::Warn);
                Vec::new()
            }
            Msg::ReviewPush(review) => {
                self.model.review = Some(*review);
                self.popup = Some(Popup::Review { scroll: 0, decided: false });
                self.waiting = Some(Waiting::Push);
                self.say("review the image before it is pushed: y pushes, n aborts", Severity::Warn);
                Vec::new()
            }
            Msg::Contents { id, files } => {
                self.model.add_contents(id, files);
                Vec::new()
            }
            Msg::BuildDone { error } => {
                self.build_done = true;
                self.shell_open = false;
                self.waiting = None;
                self.pause = None;
                match error {
                    Some(e) => self.say(&format!("build failed: {e}"), Severity::Error),
                    None => self.say("build finished", Severity::Info),
                }
                Vec::new()
            }
            Msg::Tick { ms } => {
                // A replay is frozen time: its clock is the trace's (its last event), never
                // the wall clock of the person reading it.
                if self.mode == Mode::Live {
                    self.now_ms = self.now_ms.max(ms);
                }
                Vec::new()
            }
            Msg::Drawn(d) => {
                self.drawn(*d);
                Vec::new()
            }
        }
    }

    /// Brings what the panes derive from the rest of the app up to date (the Changes pane's
    /// tree, when the shown changes are no longer those it was built from).
    fn sync(&mut self) {
        let files = self.detail == Pane::Files;
        let (ctx, panes) = self.split();
        panes.changes.sync(&ctx);
        // Stacking every layer costs: only while the Files pane is shown.
        if files {
            panes.files.sync(&ctx);
        }
    }

    pub fn say(&mut self, text: &str, severity: Severity) {
        self.message = Some((text.to_string(), severity));
    }

    fn apply_event(&mut self, e: &Envelope) {
        self.model.apply(e);
        self.now_ms = self.now_ms.max(e.ms);
        match &e.event {
            // Following the running steps of the platform the Steps pane shows.
            Event::StepStarted { id, .. }
                if self.panes.steps.following() && self.panes.steps.shows(*id, &self.model) =>
            {
                self.select_step(*id)
            }
            Event::ShellStarted { .. } => self.shell_open = true,
            // While a shell is asked for, the engine is in the session: a warning now is why it
            // could not be had (no terminal in the container, say). It must not go unseen.
            Event::Warning { message } if self.shell_open => {
                self.shell_open = false;
                self.shell_failed = Some(message.clone());
            }
            Event::ShellFinished { changes, exit_code, .. } => {
                self.shell_open = false;
                if changes.is_empty() {
                    self.shell_note = Some(format!("the shell (exit {exit_code}) changed nothing"));
                }
            }
            Event::BuildFailed { .. } => {
                if let Some(id) = self.model.failed_step() {
                    self.select_step(id);
                }
            }
            // A live build says so as it happens; the markers on the Dockerfile stay.
            Event::Check { rule, line, error, .. } if self.mode == Mode::Live => {
                let (what, severity) = if *error { ("error", Severity::Error) } else { ("warning", Severity::Warn) };
                let n = self.model.checks.len();
                self.say(
                    &format!("build check {what}: {rule} on line {line} ({n} in all, marked ! in the Dockerfile)"),
                    severity,
                );
            }
            _ => {}
        }
    }

    fn on_paused(&mut self, at: Checkpoint, reasons: Vec<String>) {
        self.shell_open = false;
        // After `n`, what matters is what the step just run did: its changes are shown (the
        // pause itself stays in the top bar and on the step's icon).
        let stepped = self.stepped_over.take().filter(|id| {
            at.when == trowel_events::When::BeforeStep
                && *id != at.id
                && self.model.step(*id).is_some_and(|s| s.state.is_done())
        });
        self.panes.steps.reveal(at.id, &self.model);
        self.select_step(stepped.unwrap_or(at.id));
        if stepped.is_some() && at.report.is_none() {
            self.detail = Pane::Changes;
        }
        let failed = at.report.as_ref().is_some_and(|r| r.error.is_some());
        if failed && self.focus == Pane::Steps {
            self.detail = Pane::Logs;
        }
        let when = match at.when {
            trowel_events::When::BeforeStep => "before",
            trowel_events::When::AfterStep => "after",
        };
        let mut text = format!("paused {when} line {} ({}): {}", at.line, at.keyword, reasons.join(", "));
        if at.can_retry() {
            // What can be done comes first: the failure's text is long and the line is cut.
            let attempt = if at.attempt > 1 { format!(", attempt {}", at.attempt) } else { String::new() };
            text = format!(
                "line {} ({}{attempt}) failed · ! to fix, R re-runs, E edits · {}",
                at.line,
                at.keyword,
                reasons.join(", ")
            );
        } else if let Some(s) = stepped.and_then(|id| self.model.step(id)) {
            text.push_str(&format!(" · the changes of line {} ({}) are shown", s.line, s.keyword));
        }
        if let Some(note) = self.shell_note.take() {
            text = format!("{note} · {text}");
        }
        if let Some(why) = self.shell_failed.take() {
            // Paused again with no shell: the reason comes first, in full.
            self.say(&format!("shell not opened: {why}"), Severity::Error);
            self.pause = Some(PauseInfo { at, reasons });
            self.waiting = Some(Waiting::Pause);
            return;
        }
        self.say(&text, if failed { Severity::Error } else { Severity::Warn });
        self.pause = Some(PauseInfo { at, reasons });
        self.waiting = Some(Waiting::Pause);
    }

    /// Selects a step, resetting what the detail panes show for the previous one.
    pub fn select_step(&mut self, id: StepId) {
        if self.panes.steps.select(id, &self.model) {
            self.step_changed();
        }
        self.sync();
    }

    /// Another step is selected: the detail panes start over.
    pub(crate) fn step_changed(&mut self) {
        self.panes.changes.step_changed();
        self.panes.file.step_changed();
        self.panes.cache.step_changed();
        self.panes.logs.step_changed();
    }
}
