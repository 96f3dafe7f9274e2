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
//! `trowel debug` fetches a remote context before its UI starts: SIGTERM and SIGHUP stop that
//! fetch too ([`stop_on_signals_until_closed`]), and the UI watches them itself after.

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
            let name = match sig {
                SIGTERM => "SIGTERM",
                SIGINT => "SIGINT",
                _ => "SIGHUP",
            };
            stop.request(format!("{name} received"));
        }
    })?;
    Ok(())
}

/// Asks `stop` to stop at SIGTERM or SIGHUP until the returned handle is closed, never exiting:
/// `trowel debug`'s fetch of a remote context (a pod deleted during a long clone), after which
/// its UI watches the same two signals itself (`tui/live.rs`), as it always did. SIGINT keeps
/// its default there (the terminal's ctrl-c, before the UI makes it a key); the next build
/// sweeps what its fetch left.
pub fn stop_on_signals_until_closed(stop: Stop) -> std::io::Result<signal_hook::iterator::Handle> {
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP])?;
    let handle = signals.handle();
    std::thread::Builder::new().name("trowel-fetch-signals".into()).spawn(move || {
        for sig in signals.forever() {
            stop.request(format!("{} received", if sig == SIGTERM { "SIGTERM" } else { "SIGHUP" }));
        }
    })?;
    Ok(handle)
}
