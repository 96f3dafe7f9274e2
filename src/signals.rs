//! `trowel build` ended by a signal: a pod deleted (SIGTERM, then SIGKILL after its grace
//! period), ctrl-c (SIGINT), a dropped session (SIGHUP). Each used to end the process there and
//! then, its build roots left in the work dir (a kept `--work-dir` on a volume filled up with
//! them). The first one now aborts the build as the debugger's quit does: a running RUN is
//! stopped (SIGTERM, SIGKILL a second later), a download, an unpack or the upload of the
//! image's blobs is given up where it is (the engine's `stopping.rs`), the build fails as
//! aborted, its roots are removed, and nothing is pushed. A second signal ends the process at
//! once, as before, for whoever cannot wait. [`Stoppable`] is also how the terminal debugger
//! stops a build the user quit. `trowel warm` takes the same signals the same way
//! (`warm.rs`): the image being downloaded is given up, and its temporary files removed.
//! `trowel debug` is watched by one registration from its start ([`DebugSignals`]): SIGTERM
//! and SIGHUP stop the fetch of a remote context before the UI starts, abort the build, and end
//! the UI as its quit does; once the UI is gone (the build already stopping, or done), a SIGTERM
//! ends the process at once, as a second signal does in `trowel build`. The read-only viewers
//! (`trowel replay`, `replay --compare`) end at SIGTERM or SIGHUP as at their quit too
//! ([`end_ui_on`]).

use std::sync::{Arc, Mutex};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use trowel_engine::engine::Stop;
use trowel_engine::engine::controller::{Checkpoint, Command, Controller, Decision, ShellChoice};
use trowel_events::{Change, Detail, PauseReason, PushReview};

/// A controller that also stops when `stop` is asked for: by a signal here, by the user's quit
/// in the terminal debugger (`tui/live.rs`).
pub struct Stoppable<C> {
    inner: C,
    stop: Stop,
}

impl<C: Controller> Stoppable<C> {
    pub fn new(inner: C, stop: Stop) -> Stoppable<C> {
        Stoppable { inner, stop }
    }
}

impl<C: Controller> Controller for Stoppable<C> {
    fn abort_requested(&mut self) -> Option<String> {
        self.stop.reason().or_else(|| self.inner.abort_requested())
    }
    fn stop_handle(&self) -> Option<Stop> {
        Some(self.stop.clone())
    }
    fn breakpoints_changed(&mut self) -> Option<Vec<String>> {
        self.inner.breakpoints_changed()
    }
    fn pause_reasons(&mut self, at: &Checkpoint) -> Vec<PauseReason> {
        self.inner.pause_reasons(at)
    }
    fn paused(&mut self, at: &Checkpoint, reasons: &[PauseReason]) -> Command {
        self.inner.paused(at, reasons)
    }
    fn shell_changes(&mut self, at: &Checkpoint, changes: &[Change]) -> ShellChoice {
        self.inner.shell_changes(at, changes)
    }
    fn review_push(&mut self, review: &PushReview) -> Decision {
        if let Some(why) = self.stop.reason() {
            return Decision::Abort(why);
        }
        self.inner.review_push(review)
    }
    fn wants_push_review(&self) -> bool {
        self.inner.wants_push_review()
    }
    fn detail(&self) -> Detail {
        self.inner.detail()
    }
    fn steps_concurrently(&self) -> bool {
        self.inner.steps_concurrently()
    }
    fn defers_unneeded_steps(&self) -> bool {
        self.inner.defers_unneeded_steps()
    }
}

/// Calls `tell` at each SIGTERM or SIGHUP until the returned handle is closed: a viewer that
/// builds nothing ends its UI as at its quit, and its terminal is restored. Their default ended
/// the process there and then, the terminal left raw (no echo, no line editing) for whoever
/// typed in it next (`kill` from another shell, a `kubectl exec` session's pod deleted). SIGINT
/// is the UI's ctrl-c key there. Registered before the terminal goes raw.
pub fn end_ui_on(mut tell: impl FnMut() + Send + 'static) -> std::io::Result<signal_hook::iterator::Handle> {
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP])?;
    let handle = signals.handle();
    std::thread::Builder::new().name("trowel-signals".into()).spawn(move || {
        for _ in signals.forever() {
            tell();
        }
    })?;
    Ok(handle)
}

/// Asks `stop` to stop the build at the first SIGTERM, SIGINT or SIGHUP, and exits at the
/// second (with 128 + its number, as a shell reports a process a signal ended). The thread
/// lives as long as the process.
pub fn stop_on_signals(stop: Stop) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new().name("trowel-signals".into()).spawn(move || {
        let mut seen = false;
        for sig in signals.forever() {
            if seen {
                std::process::exit(128 + sig);
            }
            seen = true;
            stop.request(format!("{} received", name(sig)));
        }
    })?;
    Ok(())
}

fn name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        _ => "SIGHUP",
    }
}

/// What [`DebugSignals`] does at a signal besides asking for the stop, given its number: tell
/// the UI, or end the process once the UI is gone.
type Tell = Box<dyn FnMut(i32) + Send>;

/// `trowel debug`'s SIGTERM and SIGHUP, on one registration for the whole run. Each asks for
/// [`DebugSignals::stop`] (a remote context's fetch is given up; a build, begun or not yet, is
/// aborted); once the UI has taken them ([`DebugSignals::hand_to`]) each ends the UI as its quit
/// does, and once the UI is gone ([`DebugSignals::ui_gone`]) a SIGTERM ends the process. Never
/// closed: signal-hook never gives a signal its default back, even once its last registration
/// is closed (`signal_hook_registry::unregister`), so a signal after a closed watcher reached a
/// handler nobody read. Between a watcher for the fetch and the UI's, the debugger went on into
/// its UI; after the UI's, a SIGTERM was ignored until the build's cleanup was done (a debug pod
/// deleted then waited for SIGKILL either way). SIGINT keeps its default until the UI makes
/// ctrl-c a key, and has it again once the terminal is restored; the next build sweeps what a
/// fetch or a build ended that way left.
pub struct DebugSignals {
    stop: Stop,
    ui: Arc<Mutex<Option<Tell>>>,
}

impl DebugSignals {
    pub fn watch() -> std::io::Result<DebugSignals> {
        let stop = Stop::new()?;
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP])?;
        let ui: Arc<Mutex<Option<Tell>>> = Arc::default();
        let (asked, told) = (stop.clone(), ui.clone());
        std::thread::Builder::new().name("trowel-signals".into()).spawn(move || {
            for sig in signals.forever() {
                // Under the lock [`DebugSignals::hand_to`] takes: a signal is either asked for
                // before the UI looks or told to it after.
                let mut ui = told.lock().unwrap_or_else(|p| p.into_inner());
                asked.request(format!("{} received", name(sig)));
                if let Some(tell) = ui.as_mut() {
                    tell(sig);
                }
            }
        })?;
        Ok(DebugSignals { stop, ui })
    }

    /// What a signal asks for: the fetch's stop, then the build's.
    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    /// From now on a signal also calls `tell` (the UI ends as on quit); called at once if one
    /// came before.
    pub fn hand_to(&self, mut tell: impl FnMut() + Send + 'static) {
        let mut ui = self.ui.lock().unwrap_or_else(|p| p.into_inner());
        if self.stop.is_requested() {
            tell();
        }
        *ui = Some(Box::new(move |_| tell()));
    }

    /// The UI is gone and the terminal restored: the build is stopping (a quit or a signal asked
    /// for it) or done, and what is left is its cleanup. A SIGTERM from now on ends the process
    /// at once with 143, as a second signal does in `trowel build`, for whoever cannot wait; the
    /// build's roots are then left for the next build to sweep. Not SIGHUP: a terminal that goes
    /// away ends the UI by itself (its input fails) and then sends SIGHUP, one event seen twice,
    /// not a second request, and the cleanup goes on as it would have.
    pub fn ui_gone(&self) {
        let mut ui = self.ui.lock().unwrap_or_else(|p| p.into_inner());
        *ui = Some(Box::new(|sig| {
            if sig == SIGTERM {
                std::process::exit(128 + sig);
            }
        }));
    }
}
