//! The controller the engine consults at every step boundary and before the push.
//!
//! The plain `build` command uses [`Continue`], which never stops. The debugger (in the
//! binary crate) pauses on breakpoints and stepping, and lets a front end (the
//! TUI, a terminal prompt, a test script) decide what happens next: continue, open a shell in
//! the build root, re-run a failed step (as written or edited), or abort.

use serde::{Deserialize, Serialize};

use crate::sandbox::Stop;
use trowel_events::{Change, Detail, PauseReason, PushReview, ResumeAction, StepId, StepStatus, When};

/// A step boundary: what the controller knows about the step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub when: When,
    pub id: StepId,
    pub line: usize,
    pub stage_name: Option<String>,
    pub keyword: String,
    /// The instruction as written (continuation lines and all); for an edited re-run, the
    /// edited text.
    pub source: String,
    pub expanded: String,
    /// 1, then 2 for the first re-run of a failed step, and so on.
    pub attempt: u32,
    /// Set after the step.
    pub report: Option<StepReport>,
    /// The build root on the host, once the stage has one (to browse files at a pause).
    pub root_dir: Option<std::path::PathBuf>,
    /// In a build for several platforms: the target platforms the step's stage is built for
    /// (all of them for a shared stage), so a breakpoint can name one. Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// In a build for several platforms: the Dockerfile stage of the step (`id.stage` is the
    /// stage's index in the plan, which counts every platform's stages). `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_stage: Option<usize>,
}

impl Checkpoint {
    /// Whether the controller may answer [`Command::Retry`] here: after a RUN, COPY or ADD
    /// that failed. Other instructions cannot fail at run time in a way a re-run would fix
    /// (their errors are in the text: a bad ENV, a WORKDIR that is not a directory…); for
    /// those an edit of the Dockerfile is the way.
    pub fn can_retry(&self) -> bool {
        self.when == When::AfterStep
            && self.report.as_ref().is_some_and(|r| r.status == StepStatus::Failed)
            && matches!(self.keyword.as_str(), "RUN" | "COPY" | "ADD")
    }
}

/// An instruction as the debugger's editor shows it and a re-run's history quotes it: its
/// logical line (continuation lines joined as the Dockerfile's parser joins them, comment lines
/// among them left out; a heredoc's body is not part of it).
pub fn logical_line(source: &str) -> String {
    let mut out = String::new();
    for l in source.lines().map(str::trim) {
        if l.starts_with('#') && !out.is_empty() {
            continue;
        }
        let (body, continues) = match l.strip_suffix('\\') {
            Some(b) => (b.trim_end(), true),
            None => (l, false),
        };
        if !body.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(body);
        }
        if !continues {
            break;
        }
    }
    out
}

/// What a finished step did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    pub status: StepStatus,
    /// The error, for a failed step.
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    /// Compressed size of the layer the step added.
    pub layer_size: Option<u64>,
    /// Paths the step added, modified or deleted (when known).
    pub changed_paths: Vec<String>,
    /// The step missed the layer cache.
    pub cache_miss: bool,
}

/// What to do at a pause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// End the pause: go on (continuing, stepping, running to a line) or abort the build.
    Resume(ResumeAction),
    /// Open a shell in the build root (as the step would run: env, user, working directory,
    /// isolation), then ask again. `Some(argv)` runs that command instead of an interactive
    /// shell.
    Shell(Option<Vec<String>>),
    /// At a failed step ([`Checkpoint::can_retry`]): run it again on the stage as it was
    /// before the step (plus what debugger shells kept), as written or, `Some(text)`, as this
    /// instruction (one logical line, same keyword family: RUN, COPY or ADD). The step's new
    /// attempt pauses again after it, like any step. Anywhere else the engine refuses it (a
    /// warning) and asks again.
    Retry(Option<String>),
}

/// What to do with what a shell session changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShellChoice {
    /// Add the changes as a layer (recorded in history as a manual step).
    Keep,
    /// Throw them away: the build root is exactly as before the session.
    Discard,
}

/// Yes or no at the push gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Continue,
    Abort(String),
}

/// How a build is steered. Every method has a default that never pauses, so a controller
/// says only what it cares about. The engine reports what the controller decides (`paused`,
/// `resumed`, `push_decided` events), so a trace shows the whole session.
pub trait Controller: Send {
    /// Asked at every checkpoint before anything else: `Some(reason)` stops the build there
    /// (the person quit the debugger).
    fn abort_requested(&mut self) -> Option<String> {
        None
    }
    /// A stop the controller may ask for while a step runs (the person aborted the build): a
    /// running RUN's processes are then stopped at once (SIGTERM, SIGKILL after a short grace)
    /// and the build fails as aborted, instead of waiting for the step to end. Asking for it
    /// also aborts at the next checkpoint, as [`Controller::abort_requested`] does.
    fn stop_handle(&self) -> Option<Stop> {
        None
    }
    /// The breakpoints as the person wrote them, when they differ from what this last returned
    /// (the first call: the list the build starts with); `None`: unchanged, or no breakpoints
    /// to speak of. The engine records each answer in the trace (`breakpoints`), so a replay
    /// lists every breakpoint, not only those that fired.
    fn breakpoints_changed(&mut self) -> Option<Vec<String>> {
        None
    }
    /// Whether to pause at this checkpoint, and why (nothing: go on).
    fn pause_reasons(&mut self, _at: &Checkpoint) -> Vec<PauseReason> {
        Vec::new()
    }
    /// The build is paused at `at`: what now. Called again after each shell session.
    fn paused(&mut self, _at: &Checkpoint, _reasons: &[PauseReason]) -> Command {
        Command::Resume(ResumeAction::Continue)
    }
    /// After a shell session, with what it changed.
    fn shell_changes(&mut self, _at: &Checkpoint, _changes: &[Change]) -> ShellChoice {
        ShellChoice::Discard
    }
    /// Before pushing; `Abort` pushes nothing.
    fn review_push(&mut self, _review: &PushReview) -> Decision {
        Decision::Continue
    }
    /// Whether the engine should prepare a push review (checking which blobs each destination
    /// has costs registry round trips).
    fn wants_push_review(&self) -> bool {
        false
    }
    /// Extra detail the controller needs, as a sink would ask for it (a breakpoint on changed
    /// paths needs the paths of steps served from the cache).
    fn detail(&self) -> Detail {
        Detail::default()
    }
    /// Whether stages may run at the same time (a build for several platforms builds each
    /// platform's own stages concurrently). A controller that pauses, or that a person watches
    /// step by step, says no: steps of two platforms interleaved at one prompt would be hard
    /// to follow, and a pause would stop only one of them.
    fn steps_concurrently(&self) -> bool {
        false
    }
    /// Whether a COPY/ADD the cache missed may be left unrun when nothing later needs its layer
    /// (see `stage/defer.rs`). A controller that pauses says no: a pause shows (and a shell
    /// changes) the stage's root, which would lack the step's files.
    fn defers_unneeded_steps(&self) -> bool {
        false
    }
}

/// Never pauses.
pub struct Continue;

impl Controller for Continue {
    fn steps_concurrently(&self) -> bool {
        true
    }
    fn defers_unneeded_steps(&self) -> bool {
        true
    }
}
