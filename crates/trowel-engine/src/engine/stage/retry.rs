//! Re-running a failed step from the debugger's failure pause ([`Command::Retry`]), as written
//! or edited, without restarting the build (buildg's "fix and retry").
//!
//! A re-run is a real step: it starts again (`step_started` with its attempt), is snapshotted
//! into a layer with a history entry and may go through the cache. What it runs on is the stage
//! as it was before the step, plus what debugger shells kept: the failed attempt's leftovers are
//! thrown away (the root is made again from the stage's layers), as BuildKit drops a failed
//! exec's snapshot, so the layer holds what the re-run did and nothing half-done.
//!
//! The cache follows what the image is. An edited step is keyed by its edited text (the stage
//! is keyed again from its inputs, so the steps after it chain from it): its entry is what a
//! Dockerfile with that text makes. A plain re-run is keyed as planned, the context read again
//! (a COPY's sources may have been fixed). But once a debugger shell's changes are kept in a
//! stage, its files are no longer a function of the Dockerfile and the context: neither the
//! re-run nor any later step of the stage is looked up in or written to the cache (BuildKit and
//! buildg never store a debug session's results under the Dockerfile's keys), and stages built
//! on it are not keyed either. The same holds when keying the stage again gives its earlier
//! steps other keys than they ran with (the context changed under a COPY that already ran).
//!
//! [`Command::Retry`]: crate::engine::controller::Command::Retry

use trowel_events::StepId;

use crate::dockerfile::{Instruction, InstructionKind};
use crate::engine::error::BuildError;
use crate::engine::layer_cache::{self, StageInputs, StageKeys};
use crate::engine::root::RootFor;
use crate::engine::shared::Shared;
use crate::engine::stage::{StageConfig, StageRunner};

/// A re-run the person asked for.
pub(crate) struct Retry {
    /// 2 for the first re-run.
    pub number: u32,
    /// What runs: the step as written, or the edited instruction (at the step's lines).
    pub instruction: Instruction,
    /// The step as the Dockerfile has it, when edited.
    pub edited_from: Option<String>,
}

/// What the stage's keys were planned from, kept to key it again when a re-run changes a step.
pub(crate) struct Replan {
    pub from: Instruction,
    pub steps: Vec<(StepId, Instruction)>,
    /// The stage's config as it started.
    pub config: StageConfig,
}

/// Parses an edited instruction: one logical line, a RUN, COPY or ADD, checked as a Dockerfile's
/// instructions are. It takes the original's lines (errors and breakpoints point there).
pub(crate) fn parse_edit(path: &std::path::Path, original: &Instruction, text: &str) -> Result<Instruction, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the edited instruction is empty".into());
    }
    if text.contains('\n') {
        return Err("the edited instruction must be one line (continuation lines joined)".into());
    }
    let mut ins = crate::dockerfile::parse_instruction_line(path, text).map_err(|e| match e {
        // The text was parsed on its own: its line 1 is the step's line.
        crate::dockerfile::DockerfileError::At { path, instruction, reason, .. } => {
            crate::dockerfile::DockerfileError::At { path, line: original.line, instruction, reason }.to_string()
        }
        other => other.to_string(),
    })?;
    if !matches!(ins.kind, InstructionKind::Run { .. } | InstructionKind::Copy(_) | InstructionKind::Add(_)) {
        return Err(format!(
            "only RUN, COPY and ADD can be re-run; {} would have to be changed in the Dockerfile",
            ins.keyword()
        ));
    }
    ins.line = original.line;
    ins.end_line = original.end_line;
    crate::dockerfile::validate::check(&ins).map_err(|e| e.to_string())?;
    Ok(ins)
}

impl StageRunner {
    /// Gets the stage ready for re-running step `id`: the failed attempt's leftovers thrown
    /// away, and its keys made to match what will run (or given up: see the module's doc).
    pub(crate) fn prepare_retry(
        &mut self,
        s: &mut Shared<'_, '_>,
        id: StepId,
        retry: &Retry,
    ) -> Result<(), BuildError> {
        self.roll_back_attempt(s, id)?;
        if let Some(slot) = self.replan.as_mut().and_then(|r| r.steps.iter_mut().find(|(i, _)| *i == id)) {
            slot.1 = retry.instruction.clone();
        }
        self.retry_note = Some(match &retry.edited_from {
            Some(was) => format!("edited in trowel debug at line {} (was: {was})", retry.instruction.line),
            None if self.off_dockerfile => format!(
                "re-run in trowel debug at line {} after changes made in a debugger shell (attempt {})",
                retry.instruction.line, retry.number
            ),
            None => format!("re-run in trowel debug at line {} (attempt {})", retry.instruction.line, retry.number),
        });
        if self.off_dockerfile {
            return Ok(());
        }
        self.key_again(s, id);
        Ok(())
    }

    /// Whether `ins` can run here as far as its text shows (its variables expand, a RUN's
    /// mounts resolve): an edit that cannot is refused at the pause, rather than ending the build.
    pub(crate) fn can_run(&self, s: &Shared<'_, '_>, id: StepId, ins: &Instruction) -> Result<(), String> {
        let ctx = s.ctx;
        let expanded = ins.expand(&self.config.vars(), ctx.df.escape).map_err(|e| e.to_string())?;
        if let crate::dockerfile::Expanded::Run { flags, .. } = &expanded {
            let workdir = self.config.image.working_dir().unwrap_or("/");
            crate::engine::mounts::resolve(flags, workdir, &ctx.plan, id.stage).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The stage's files stop being what its Dockerfile steps make (a debugger shell's changes
    /// were kept): nothing more of it goes through the cache, and no later stage chains from it.
    pub(crate) fn leave_dockerfile(&mut self) {
        self.off_dockerfile = true;
        self.keys = StageKeys::default();
    }

    /// A step's history `created_by`: its instruction, and how a re-run came about.
    pub(crate) fn created_by(&self, display: &str) -> String {
        match &self.retry_note {
            Some(note) => format!("{display} # {note}"),
            None => display.to_string(),
        }
    }

    /// Keys the stage again from its inputs with the step as it will now run. Earlier steps
    /// must keep the keys they ran with; if they do not, the stage leaves the cache.
    fn key_again(&mut self, s: &mut Shared<'_, '_>, id: StepId) {
        let (Some(cache), Some(r)) = (s.cache.as_deref(), self.replan.as_ref()) else { return };
        let inputs = StageInputs {
            index: self.index,
            base_digest: self.base_digest.as_ref(),
            base_ref: &self.base_ref,
            config: &r.config,
            // Its lookups ran once; the pointer was moved then if it was to be.
            cold: None,
        };
        let fresh = layer_cache::plan(s.ctx, s.stages, cache, inputs, &r.from, &r.steps);
        let earlier: Vec<StepId> = r.steps.iter().map(|(i, _)| *i).take_while(|i| *i != id).collect();
        if earlier.iter().all(|i| self.keys.same_key(&fresh, *i)) {
            self.keys = fresh;
            for i in earlier {
                self.keys.cancel_lookup(i);
            }
        } else {
            s.ctx.emitter.warn(format!(
                "line {}: the steps before it would be keyed differently now (their sources changed): \
                 the re-run and the rest of the stage are not cached",
                r.steps.iter().find(|(i, _)| *i == id).map_or(0, |(_, ins)| ins.line)
            ));
            self.leave_dockerfile();
        }
    }

    /// Makes the root again from the stage's layers when the failed attempt changed it. With
    /// `--single-snapshot` the layers do not hold the stage's earlier steps, so the re-run
    /// runs on the root as the failed attempt left it.
    fn roll_back_attempt(&mut self, s: &mut Shared<'_, '_>, id: StepId) -> Result<(), BuildError> {
        let ctx = s.ctx;
        if ctx.opts.layers.single_snapshot {
            return Ok(());
        }
        let Some(root) = self.files.existing_mut() else { return Ok(()) };
        let left =
            root.snap.snapshot().map_err(BuildError::fs(format!("what the failed attempt of step {id} left")))?;
        if left.entries.is_empty() {
            return Ok(());
        }
        let at_slash = root.is_slash();
        let fresh = match &ctx.slash_keep {
            Some(keep) if at_slash => ctx.materialize_at_slash(keep, &self.layers, self.index)?,
            _ => ctx.materialize(&self.layers, &format!("stage{}-retry", self.index), RootFor::StageAgain)?,
        };
        if let Some(old) = self.files.replace(fresh).filter(|old| !old.is_slash()) {
            for d in old.into_dirs() {
                let _ = crate::fs::remove::remove_tree(&d);
            }
        }
        ctx.emitter.warn(format!(
            "step {id}: the failed attempt's {} change(s) were thrown away; the re-run starts from the stage as \
             it was before the step",
            left.entries.len()
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::controller::logical_line;
    use std::path::Path;

    fn original() -> Instruction {
        let mut ins = crate::dockerfile::parse_instruction_line(Path::new("Dockerfile"), "RUN make -j").unwrap();
        ins.line = 12;
        ins.end_line = 14;
        ins
    }

    #[test]
    fn an_edit_is_one_run_copy_or_add_at_the_original_lines() {
        let ins = parse_edit(Path::new("Dockerfile"), &original(), "  RUN make  ").unwrap();
        assert_eq!((ins.keyword().to_string(), ins.line, ins.end_line), ("RUN".to_string(), 12, 14));
        let copy = parse_edit(Path::new("Dockerfile"), &original(), "COPY --chmod=755 a.sh /usr/bin/").unwrap();
        assert_eq!(copy.keyword().to_string(), "COPY");
        for (text, why) in [
            ("", "empty"),
            ("ENV A=1", "only RUN, COPY and ADD"),
            ("RUN a\nRUN b", "one line"),
            ("COPY onlyone", "COPY"),
            ("RUN --network=sideways true", "sideways"),
        ] {
            let e = parse_edit(Path::new("Dockerfile"), &original(), text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_editor_shows_the_logical_line() {
        assert_eq!(
            logical_line("RUN apt-get update && \\\n    apt-get install -y \\\n    make"),
            "RUN apt-get update && apt-get install -y make"
        );
        assert_eq!(logical_line("RUN a \\\n# a comment among continuations\n    b"), "RUN a b");
        assert_eq!(logical_line("RUN <<EOF\necho hi\nEOF"), "RUN <<EOF");
        assert_eq!(logical_line("COPY a /b"), "COPY a /b");
    }
}
