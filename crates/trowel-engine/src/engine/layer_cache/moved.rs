//! Where a step that missed was in an earlier build, when its place in the stage held another
//! instruction: the steps' lookups find entries by place, so a step that moved up (two lines
//! swapped, lines above it removed) finds another's entries there, and reads as inserted or
//! edited unless an entry of it is found at a later place
//! ([`crate::cache::explain::Around::moved_from`]). The stage as the last build ran it is read
//! from its place on (the lookups of the steps after it, then the places past its end), so
//! that a duplicate line inserted is not taken for the other copy moved, and every line
//! removed is named. Apart from `mod.rs`, which keeps the build's bookkeeping; this only reads.

use trowel_events::StepId;

use super::keys::Held;
use super::{LayerCache, PlannedStep, StageKeys};
use crate::cache::explain::{Later, Previous, Whence, may_follow_removed, may_have_moved, whence};
use crate::cache::key::KeyComponents;
use crate::engine::context::BuildContext;

/// Most places past a stage's last step read for a step that may have moved up: each is one
/// request, made only for a step whose place held another instruction (the first alone, the
/// others together when it chains on: see [`LayerCache::held_from`]). More lines removed
/// than that above the stage's last steps leave it unknown whether the step moved up or was
/// edited, and the explanation says neither ([`crate::cache::explain::Around::unsure`]).
const PAST_END: usize = 16;

impl LayerCache {
    /// Where step `id`'s instruction was in an earlier build, when it moved up since: its
    /// place held a step after it (two lines swapped), or an instruction no step of the stage
    /// is now (lines above it removed). Read from the stage as the last build ran it, from
    /// this place on: the newest entry of each later place that the one before it chains to
    /// (the lookups of the steps after it, then the places past the stage's end, one request
    /// each, up to [`PAST_END`], in two round trips at most). An insertion is no move: when
    /// the stage has more copies of the instruction from this place on than that build had,
    /// one was inserted (the first to miss is this one). Nothing when a step before it missed
    /// in this build: that one is named as the cause.
    pub(crate) fn moved_from(
        &self,
        ctx: &BuildContext<'_>,
        keys: &mut StageKeys,
        id: StepId,
        planned: &PlannedStep,
        previous: &Previous,
        later: &[Later],
    ) -> Whence {
        let cur = &planned.components;
        let Some(written) = cur.written.as_deref() else { return Whence::default() };
        let swapped = may_have_moved(previous, cur, later);
        let first = if swapped {
            let Previous::Entries(e) = previous else { return Whence::default() };
            let Some(first) = e.first() else { return Whence::default() };
            &*first.components
        } else {
            let Some(held) = may_follow_removed(previous, cur, later) else { return Whence::default() };
            if cur.chain.iter().any(|l| self.missed.contains_key(&l.key))
                || held.written.as_deref().is_none_or(|w| keys.holds(w))
            {
                return Whence::default();
            }
            held
        };
        let copies = keys.copies_from(id, written);
        let (old, whole) = self.held_from(ctx, keys, id, planned, first, written, copies > 1);
        whence(&old, whole, written, copies, swapped, &|w| keys.holds(w))
    }

    /// The stage as the last build that ran step `id`'s place ran it, from that place (which
    /// held `first`) on: each later place's newest entry while it chains from the one before
    /// ([`continues`]: an entry a build of a longer stage left past where the last build's
    /// stage ended does not). Stops at an empty place, at one holding an entry that does not
    /// chain on, and once an entry of `written` is read unless `all` (its copies are counted).
    /// Whether it was read to its end (false when all [`PAST_END`] places past the stage's end
    /// read held it: it may go on).
    #[allow(clippy::too_many_arguments)]
    fn held_from(
        &self,
        ctx: &BuildContext<'_>,
        keys: &mut StageKeys,
        id: StepId,
        planned: &PlannedStep,
        first: &KeyComponents,
        written: &str,
        all: bool,
    ) -> (Vec<KeyComponents>, bool) {
        let mut old = vec![first.clone()];
        let done =
            |old: &[KeyComponents]| !all && old.len() > 1 && old.last().unwrap().written.as_deref() == Some(written);
        for i in keys.places_after(id) {
            match keys.held_at(&ctx.rt, i) {
                Held::Entry(e) if continues(old.last().unwrap(), &e) => old.push(*e),
                Held::Entry(_) | Held::Empty => return (old, true),
                // A step not looked up: its place is passed over, the next chains all the same.
                Held::Unknown => {}
            }
            if done(&old) {
                return (old, true);
            }
        }
        let Some(end) = keys.end() else { return (old, true) };
        // The first place past the end alone: most often nothing is there, one request. When
        // it chains on, the rest all at once: a registry far away costs two round trips, not
        // one per line removed (read and not needed past where the stage ended is the price).
        let mut read = self.entries_at(ctx, end, 1, planned).into_iter();
        for n in 0..PAST_END {
            if n == 1 {
                read = self.entries_at(ctx, StepId { step: end.step + 1, ..end }, PAST_END - 1, planned).into_iter();
            }
            match read.next().flatten() {
                Some(e) if continues(old.last().unwrap(), &e) => old.push(e),
                _ => return (old, true),
            }
            if done(&old) {
                return (old, true);
            }
        }
        (old, false)
    }

    /// What the pointers of the `n` places from `from` on name (no step of this build is looked
    /// up there), in order: this machine's layer store's first for a step it serves, as that
    /// step's lookup reads it (a file each, read here), else the cache repository's, those
    /// requests sent together. Nothing for any of them when a stop comes first: the step is
    /// left unexplained, and the build ends at the step's checkpoint.
    fn entries_at(
        &self,
        ctx: &BuildContext<'_>,
        from: StepId,
        n: usize,
        planned: &PlannedStep,
    ) -> Vec<Option<KeyComponents>> {
        let places: Vec<StepId> = (0..n).map(|i| StepId { step: from.step + i, ..from }).collect();
        let local: Vec<Option<KeyComponents>> = places
            .iter()
            .map(|at| {
                let local = self.local.as_ref().filter(|_| planned.local)?;
                Some(*local.pointer_entry(&self.local_pointer(*at))?.components)
            })
            .collect();
        let remote = places.iter().zip(&local).map(|(at, l)| async move {
            if l.is_some() {
                return None;
            }
            let pointer = crate::cache::registry::pointer_tag(&self.dockerfile_id, at.stage, at.step);
            let e = self.remote.pointer_entry(&pointer, &ctx.store).await.ok()??;
            Some(*e.components)
        });
        let Ok(remote) = ctx.until_stopped(futures_util::future::join_all(remote)) else { return vec![None; n] };
        local.into_iter().zip(remote).map(|(l, r)| l.or(r)).collect()
    }
}

/// Whether entry `next`, at a later place than `prev`, was made in a stage that ran `prev`'s
/// steps up to it: its chain (the steps before it, each by key) starts with `prev`'s, then
/// `prev` itself when that chains; and it is further down. An entry a build of a longer stage
/// left past where the last build's stage ended follows other steps.
fn continues(prev: &KeyComponents, next: &KeyComponents) -> bool {
    next.line > prev.line
        && next.chain.len() >= prev.chain.len()
        && prev.chain.iter().zip(&next.chain).all(|(a, b)| a.key == b.key)
        && next.chain.get(prev.chain.len()).is_none_or(|l| l.line != prev.line || l.instruction == prev.instruction)
}
