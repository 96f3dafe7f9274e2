//! A stage's planned cache keys and the lookups started for them ([`StageKeys`]): kept apart
//! from the build-wide bookkeeping (`super::LayerCache`) because a stage runner owns them and
//! asks them, step by step, whether a step is keyed, what with, and whether it will hit.

use std::collections::HashMap;

use trowel_events::StepId;

use crate::cache::explain::{Later, Previous};
use crate::cache::registry::{CacheError, Lookup};
use crate::engine::layer_cache::PlannedStep;

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

    /// The line an earlier build had the instruction `written` (as [`KeyComponents::written`]
    /// records it) at, when an entry of it is at the place of a step after `id` in the stage:
    /// step `id` moved up from there ([`crate::cache::explain::Around::moved_from`]). Waits
    /// for those steps' lookups, and keeps their answers for them (as [`Self::will_hit`]).
    ///
    /// [`KeyComponents::written`]: crate::cache::key::KeyComponents::written
    pub fn held_later(&mut self, rt: &tokio::runtime::Runtime, id: StepId, written: &str) -> Option<usize> {
        let mut later: Vec<StepId> = self.lookups.keys().filter(|i| i.step > id.step).copied().collect();
        later.sort_by_key(|i| i.step);
        for i in later {
            let Some(h) = self.lookups.remove(&i) else { continue };
            let reference = self.planned.get(&i).map(|p| p.key.clone()).unwrap_or_default();
            let answer = rt
                .block_on(h)
                .unwrap_or_else(|e| Err(CacheError::Invalid { reference, reason: format!("lookup task failed: {e}") }));
            let line = match &answer {
                Ok(Lookup::Miss { previous: Previous::Entries(entries), .. }) => {
                    entries.iter().find(|e| e.components.written.as_deref() == Some(written)).map(|e| e.components.line)
                }
                _ => None,
            };
            self.lookups.insert(i, rt.spawn(async move { answer }));
            if line.is_some() {
                return line;
            }
        }
        None
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
