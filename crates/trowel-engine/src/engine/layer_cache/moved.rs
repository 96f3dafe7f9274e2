//! Where a step that missed was in an earlier build, when its place in the stage held another
//! instruction: the steps' lookups find entries by place, so a step that moved up (two lines
//! swapped, a line above it removed) finds another's entries there, and reads as inserted or
//! edited unless an entry of it is found at a later place
//! ([`crate::cache::explain::Around::moved_from`]). Apart from `mod.rs`, which keeps the
//! build's bookkeeping; this only reads.

use trowel_events::StepId;

use super::{LayerCache, PlannedStep, StageKeys};
use crate::cache::explain::{Later, Previous, may_follow_removed, may_have_moved};
use crate::engine::context::BuildContext;

/// Most places past a stage's last step read for a step that may have moved up: removing more
/// lines than that above the stage's last steps leaves the move unseen (an edit, said as one).
const PAST_END: usize = 3;

impl LayerCache {
    /// The line step `id`'s instruction was at in an earlier build, when it moved up since:
    /// its place held a step after it (read from those steps' lookups), or held an instruction
    /// no step of the stage is now (a line above it removed: read from those lookups, else
    /// from the place past the stage's last step, one request that only this case costs, and
    /// the next while each holds a removed line too, up to [`PAST_END`]).
    /// None when a step before it missed in this build: that one is named as the cause.
    pub(crate) fn moved_from(
        &self,
        ctx: &BuildContext<'_>,
        keys: &mut StageKeys,
        id: StepId,
        planned: &PlannedStep,
        previous: &Previous,
        later: &[Later],
    ) -> Option<usize> {
        let cur = &planned.components;
        let written = cur.written.as_deref()?;
        if may_have_moved(previous, cur, later) {
            return keys.held_later(&ctx.rt, id, written);
        }
        let held = may_follow_removed(previous, cur, later)?;
        if cur.chain.iter().any(|l| self.missed.contains_key(&l.key)) || keys.holds(held.written.as_deref()?) {
            return None;
        }
        if let Some(line) = keys.held_later(&ctx.rt, id, written) {
            return Some(line);
        }
        // Past the stage's end: one place, and the next only while each holds a line removed
        // too (more lines removed than there are steps after this one). An edit in place finds
        // the first empty, or holding another step of the stage.
        let mut at = keys.end()?;
        for _ in 0..PAST_END {
            let entry = self.entry_at(ctx, at, planned)?;
            if entry.written.as_deref() == Some(written) {
                return Some(entry.line);
            }
            if entry.written.as_deref().is_none_or(|w| keys.holds(w)) {
                return None;
            }
            at.step += 1;
        }
        None
    }

    /// What the pointer of place `at` names (no step of this build is looked up there): this
    /// machine's layer store's first for a step it serves, as that step's lookup reads it.
    fn entry_at(
        &self,
        ctx: &BuildContext<'_>,
        at: StepId,
        planned: &PlannedStep,
    ) -> Option<crate::cache::key::KeyComponents> {
        if planned.local
            && let Some(e) = self.local.as_ref().and_then(|l| l.pointer_entry(&self.local_pointer(at)))
        {
            return Some(*e.components);
        }
        let pointer = crate::cache::registry::pointer_tag(&self.dockerfile_id, at.stage, at.step);
        // A stop during it leaves the step unexplained; the build ends at the step's checkpoint.
        let e = ctx.until_stopped(self.remote.pointer_entry(&pointer, &ctx.store)).ok()?.ok()??;
        Some(*e.components)
    }
}
