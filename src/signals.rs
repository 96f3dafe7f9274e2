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
//! `trowel debug` is watched by one registration from its start until its UI is gone
//! ([`DebugSignals`]): SIGTERM and SIGHUP stop the fetch of a remote context before the UI
//! starts, abort the build, and end the UI as its quit does. The read-only viewers (`trowel
//! replay`, `replay --compare`) end at SIGTERM or SIGHUP as at their quit too ([`end_ui_on`]).

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

/// Where [`DebugSignals`] tells the UI of a signal, once the UI has taken them.
type Tell = Box<dyn FnMut() + Send>;

/// `trowel debug`'s SIGTERM and SIGHUP, from its start until its UI is gone, on one
/// registration. Each asks for [`DebugSignals::stop`] (a remote context's fetch is given up; a
/// build, begun or not yet, is aborted) and, once the UI has taken them
/// ([`DebugSignals::hand_to`]), ends the UI as its quit does. Not a watcher for the fetch closed
/// and the UI's registered after it: signal-hook never gives a signal its default back, even
/// once its last registration is closed (`signal_hook_registry::unregister`), so a SIGTERM
/// between the two reached a handler nobody read, and the debugger went on into its UI (a
/// debug pod deleted then waited for SIGKILL). SIGINT keeps its default until the UI makes
/// ctrl-c a key; the next build sweeps what a fetch it ended left.
pub struct DebugSignals {
    stop: Stop,
    ui: Arc<Mutex<Option<Tell>>>,
    handle: signal_hook::iterator::Handle,
}

impl DebugSignals {
    pub fn watch() -> std::io::Result<DebugSignals> {
        let stop = Stop::new()?;
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP])?;
        let handle = signals.handle();
        let ui: Arc<Mutex<Option<Tell>>> = Arc::default();
        let (asked, told) = (stop.clone(), ui.clone());
        std::thread::Builder::new().name("trowel-signals".into()).spawn(move || {
            for sig in signals.forever() {
                // Under the lock [`DebugSignals::hand_to`] takes: a signal is either asked for
                // before the UI looks or told to it after.
                let mut ui = told.lock().unwrap_or_else(|p| p.into_inner());
                asked.request(format!("{} received", name(sig)));
                if let Some(tell) = ui.as_mut() {
                    tell();
                }
            }
        })?;
        Ok(DebugSignals { stop, ui, handle })
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
        *ui = Some(Box::new(tell));
    }

    /// Stops watching, once the UI is gone.
    pub fn close(&self) {
        self.handle.close();
    }
}
