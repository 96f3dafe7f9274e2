//! A stage's planned cache keys and the lookups started for them ([`StageKeys`]): kept apart
//! from the build-wide bookkeeping (`super::LayerCache`) because a stage runner owns them and
//! asks them, step by step, whether a step is keyed, what with, and whether it will hit.

use std::collections::HashMap;

use trowel_events::StepId;

use crate::cache::explain::{Later, Previous};
use crate::cache::registry::{CacheError, Lookup};
use crate::engine::layer_cache::PlannedStep;

/// What a place of the stage held before this build, as a step's lookup found it.
pub(crate) enum Held {
    /// The newest entry there.
    Entry(Box<crate::cache::key::KeyComponents>),
    /// No entry: no earlier build had a step there.
    Empty,
    /// Not known: the step is not looked up, hit, or its lookup failed or found only an
    /// expired or unusable entry.
    Unknown,
}

/// A lookup running against the cache repository.
pub(crate) type PendingLookup = tokio::task::JoinHandle<Result<Lookup, CacheError>>;

/// One stage's keys and the lookups started for them.
#[derive(Default)]
pub(crate) struct StageKeys {
    pub(super) planned: HashMap<StepId, PlannedStep>,
    pub(super) lookups: HashMap<StepId, PendingLookup>,
    /// The key of the stage's last step: what `FROM <stage>` and `COPY --from` chain from.
    pub final_key: Option<String>,
    /// The end of the stage's key chain no entry of its own explains, for the stages built
    /// `FROM` it ([`crate::cache::key::ChainLink::stage_tail`]).
    pub final_tail: Vec<crate::cache::key::ChainLink>,
    /// A step unkeyed as a context file changed while hashed (path, how): it fails with that.
    pub context_changed: Option<(StepId, String, String)>,
}

impl StageKeys {
    /// The planned key of a step, if the plan saw exactly this expanded instruction.
    pub fn planned(&self, id: StepId, display: &str) -> Option<PlannedStep> {
        self.planned.get(&id).filter(|p| p.display == display).cloned()
    }

    /// Lets go of what step `id`'s key saw of the context ([`PlannedStep::seen`]): the step
    /// is about to read those files, and nothing reads that record after it. A re-run of the
    /// step keys the stage again (`stage/retry.rs`), with the context as it is then.
    pub fn forget_seen(&mut self, id: StepId) {
        if let Some(p) = self.planned.get_mut(&id) {
            p.seen = None;
        }
    }

    /// The keyed steps after step `id` in the stage, in order, for telling an inserted step
    /// from an edited one ([`crate::cache::explain::Around::later`]).
    pub fn after(&self, id: StepId) -> Vec<Later> {
        let mut later: Vec<(&StepId, &PlannedStep)> = self.planned.iter().filter(|(i, _)| i.step > id.step).collect();
        later.sort_by_key(|(i, _)| i.step);
        later
            .into_iter()
            .map(|(_, p)| Later {
                line: p.components.line,
                instruction: p.components.instruction.clone(),
                written: p.components.written.clone(),
            })
            .collect()
    }

    /// Whether a step of the stage is the instruction `written` (as
    /// [`crate::cache::key::KeyComponents::written`] records it).
    pub fn holds(&self, written: &str) -> bool {
        self.planned.values().any(|p| p.components.written.as_deref() == Some(written))
    }

    /// The place past the stage's last step: where its last step's entries are after a line
    /// above it was removed.
    pub fn end(&self) -> Option<StepId> {
        self.planned.keys().max_by_key(|i| i.step).map(|i| StepId { step: i.step + 1, ..*i })
    }

    /// The keys of the stage's COPY and ADD steps (see `BuiltStage::copy_keys`).
    pub fn copy_keys(&self) -> HashMap<StepId, String> {
        self.planned.iter().filter(|(_, p)| p.copies).map(|(id, p)| (*id, p.key.clone())).collect()
    }

    /// Whether the step's layer goes through the cache.
    pub fn cacheable(&self, id: StepId) -> bool {
        self.planned.get(&id).is_some_and(|p| p.cacheable)
    }

    /// Whether the step is looked up (in the cache repository or the local store).
    pub fn looked_up(&self, id: StepId) -> bool {
        self.planned.get(&id).is_some_and(PlannedStep::looked_up)
    }

    /// Whether `other` keys step `id` as this plan does (both keyed, same key).
    pub fn same_key(&self, other: &StageKeys, id: StepId) -> bool {
        match (self.planned.get(&id), other.planned.get(&id)) {
            (Some(a), Some(b)) => a.key == b.key && a.chain_key == b.chain_key,
            (None, None) => true,
            _ => false,
        }
    }

    /// Stops the lookup of a step that will not be looked up (keyed again for a re-run, the
    /// steps before it already ran).
    pub fn cancel_lookup(&mut self, id: StepId) {
        if let Some(h) = self.lookups.remove(&id) {
            h.abort();
        }
    }

    /// The lookup started for a step (taken: a step is looked up once).
    pub fn take_lookup(&mut self, id: StepId) -> Option<PendingLookup> {
        self.lookups.remove(&id)
    }

    /// The places of the steps after `id` in the stage, in order.
    pub fn places_after(&self, id: StepId) -> Vec<StepId> {
        let mut later: Vec<StepId> = self.planned.keys().filter(|i| i.step > id.step).copied().collect();
        later.sort_by_key(|i| i.step);
        later
    }

    /// What step `i`'s place held before this build, as its lookup found it ([`Held`]), for
    /// telling where a step before it was in an earlier build
    /// ([`crate::cache::explain::Around::moved_from`]). Waits for the lookup, and keeps its
    /// answer for the step (as [`Self::will_hit`]).
    pub fn held_at(&mut self, rt: &tokio::runtime::Runtime, i: StepId) -> Held {
        let Some(h) = self.lookups.remove(&i) else { return Held::Unknown };
        let reference = self.planned.get(&i).map(|p| p.key.clone()).unwrap_or_default();
        let answer = rt
            .block_on(h)
            .unwrap_or_else(|e| Err(CacheError::Invalid { reference, reason: format!("lookup task failed: {e}") }));
        let held = match &answer {
            Ok(Lookup::Miss { previous: Previous::Entries(entries), .. }) => {
                entries.first().map_or(Held::Empty, |e| Held::Entry(e.components.clone()))
            }
            Ok(Lookup::Miss { previous: Previous::None, .. }) => Held::Empty,
            _ => Held::Unknown,
        };
        self.lookups.insert(i, rt.spawn(async move { answer }));
        held
    }

    /// How many steps from `id` on in the stage are the instruction `written`.
    pub fn copies_from(&self, id: StepId, written: &str) -> usize {
        self.planned
            .iter()
            .filter(|(i, p)| i.step >= id.step && p.components.written.as_deref() == Some(written))
            .count()
    }

    /// Whether step `id`'s lookup finds an entry: waits for its answer and keeps it for the
    /// step (`take_lookup` then has it at once). False for a step not looked up, a miss and a
    /// lookup that failed.
    pub fn will_hit(&mut self, rt: &tokio::runtime::Runtime, id: StepId) -> bool {
        let Some(h) = self.lookups.remove(&id) else { return false };
        let reference = self.planned.get(&id).map(|p| p.key.clone()).unwrap_or_default();
        let answer = rt
            .block_on(h)
            .unwrap_or_else(|e| Err(CacheError::Invalid { reference, reason: format!("lookup task failed: {e}") }));
        let hit = matches!(answer, Ok(Lookup::Hit(_)));
        // Kept as a task that is already done: the step takes it as any lookup.
        self.lookups.insert(id, rt.spawn(async move { answer }));
        hit
    }
}
