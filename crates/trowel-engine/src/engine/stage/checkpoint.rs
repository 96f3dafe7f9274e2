//! Step boundaries: where the controller may pause the build, open shells, or stop it.
//!
//! A pause is reported as it starts (`paused`, with the reasons) and as it ends (`resumed`,
//! with what the person chose and how long it took), so a trace holds the whole session, and
//! the time spent paused is kept out of the step's run time.

use std::time::Instant;

use trowel_events::{Event, ResumeAction};

use crate::engine::controller::{Checkpoint, Command};
use crate::engine::error::BuildError;
use crate::engine::shared::Shared;
use crate::engine::stage::StageRunner;

impl StageRunner {
    /// Consults the controller at a checkpoint until it lets the build go on, running the shell
    /// sessions it asks for.
    pub(crate) fn checkpoint(&mut self, s: &mut Shared<'_, '_>, cp: &Checkpoint) -> Result<(), BuildError> {
        if let Some(why) = s.controller.abort_requested() {
            return Err(BuildError::Aborted(why));
        }
        if let Some(why) = s.ctx.stop.as_ref().and_then(|stop| stop.reason()) {
            return Err(BuildError::Aborted(why));
        }
        let mut cp = cp.clone();
        cp.root_dir = self.files.dir();
        let reasons = s.controller.pause_reasons(&cp);
        if reasons.is_empty() {
            return Ok(());
        }
        let ctx = s.ctx;
        ctx.emitter.emit(Event::Paused { id: cp.id, line: cp.line, when: cp.when, reasons: reasons.clone() });
        let t0 = Instant::now();
        let action = loop {
            match s.controller.paused(&cp, &reasons) {
                Command::Resume(action) => break action,
                Command::Shell(argv) => {
                    if let Err(e) = self.shell_session(s, &cp, argv) {
                        ctx.emitter.warn(format!("shell session at line {}: {e}", cp.line));
                    }
                    cp.root_dir = self.files.dir();
                }
            }
        };
        let paused = t0.elapsed();
        self.paused += paused;
        ctx.emitter.emit(Event::Resumed { id: cp.id, action: action.clone(), paused_ms: paused.as_millis() as u64 });
        match action {
            ResumeAction::Abort { reason } => Err(BuildError::Aborted(reason)),
            _ => Ok(()),
        }
    }
}
