//! Step boundaries: where the controller may pause the build, open shells, or stop it.
//!
//! A pause is reported as it starts (`paused`, with the reasons) and as it ends (`resumed`,
//! with what the person chose and how long it took), so a trace holds the whole session, and
//! the time spent paused is kept out of the step's run time. Before the controller is asked,
//! a change to its breakpoints (made in the debugger since the last boundary) is recorded as a
//! `breakpoints` event, so the trace holds every breakpoint the build was judged by. At a failed step's end the
//! controller may also answer with a re-run (`retry.rs` gets the stage ready for it).

use std::time::Instant;

use trowel_events::{Event, ResumeAction};

use crate::dockerfile::Instruction;
use crate::engine::controller::{Checkpoint, Command, logical_line};
use crate::engine::error::BuildError;
use crate::engine::shared::Shared;
use crate::engine::stage::StageRunner;
use crate::engine::stage::retry::{Retry, parse_edit};

impl StageRunner {
    /// Consults the controller at a checkpoint until it lets the build go on, running the shell
    /// sessions it asks for.
    pub(crate) fn checkpoint(&mut self, s: &mut Shared<'_, '_>, cp: &Checkpoint) -> Result<(), BuildError> {
        self.pause(s, cp, None).map(|_| ())
    }

    /// The checkpoint after a failed attempt: as [`StageRunner::checkpoint`], and `Some` when
    /// the controller asked for a re-run (`original`: the step as the Dockerfile has it).
    pub(crate) fn failure_pause(
        &mut self,
        s: &mut Shared<'_, '_>,
        cp: &Checkpoint,
        original: &Instruction,
        current: &Retry,
    ) -> Result<Option<Retry>, BuildError> {
        self.pause(s, cp, Some((original, current)))
    }

    fn pause(
        &mut self,
        s: &mut Shared<'_, '_>,
        cp: &Checkpoint,
        failed: Option<(&Instruction, &Retry)>,
    ) -> Result<Option<Retry>, BuildError> {
        if let Some(why) = s.controller.abort_requested() {
            return Err(BuildError::Aborted(why));
        }
        if let Some(why) = s.ctx.stop.as_ref().and_then(|stop| stop.reason()) {
            return Err(BuildError::Aborted(why));
        }
        let mut cp = cp.clone();
        cp.root_dir = self.files.dir();
        // Breakpoints added or removed since the last boundary are recorded before they can
        // fire, so the trace's list is what this checkpoint was judged by.
        if let Some(set) = s.controller.breakpoints_changed() {
            s.ctx.emitter.emit(Event::Breakpoints { set });
        }
        let reasons = s.controller.pause_reasons(&cp);
        if reasons.is_empty() {
            return Ok(None);
        }
        let ctx = s.ctx;
        ctx.emitter.emit(Event::Paused { id: cp.id, line: cp.line, when: cp.when, reasons: reasons.clone() });
        let t0 = Instant::now();
        let (action, retry) = loop {
            match s.controller.paused(&cp, &reasons) {
                Command::Resume(action) => break (action, None),
                Command::Retry(text) => match retry_of(s, &cp, failed, text.as_deref())
                    .and_then(|r| self.can_run(s, cp.id, &r.instruction).map(|()| r))
                {
                    Ok(r) => {
                        let edited = r.edited_from.is_some().then(|| r.instruction.source.clone());
                        break (ResumeAction::Retry { edited }, Some(r));
                    }
                    Err(why) => ctx.emitter.warn(format!("line {}: cannot re-run the step: {why}", cp.line)),
                },
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
            _ => Ok(retry),
        }
    }
}

/// The re-run the controller asked for at `cp`, if there can be one: at a failed RUN, COPY or
/// ADD, as it ran (`text` absent or unchanged) or as `text`.
fn retry_of(
    s: &Shared<'_, '_>,
    cp: &Checkpoint,
    failed: Option<(&Instruction, &Retry)>,
    text: Option<&str>,
) -> Result<Retry, String> {
    let Some((original, current)) = failed.filter(|_| cp.can_retry()) else {
        return Err("only a failed RUN, COPY or ADD can be re-run, at the pause after it".into());
    };
    let number = current.number + 1;
    let unchanged = |t: &str| t.trim() == logical_line(&current.instruction.source);
    match text.filter(|t| !unchanged(t)) {
        None => {
            Ok(Retry { number, instruction: current.instruction.clone(), edited_from: current.edited_from.clone() })
        }
        Some(t) if t.trim() == logical_line(&original.source) => {
            Ok(Retry { number, instruction: original.clone(), edited_from: None })
        }
        Some(t) => Ok(Retry {
            number,
            instruction: parse_edit(&s.ctx.opts.dockerfile, original, t)?,
            edited_from: Some(logical_line(&original.source)),
        }),
    }
}
