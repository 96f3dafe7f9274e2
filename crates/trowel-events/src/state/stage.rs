//! One stage as the events describe it: its plan, its base and whether it ran.

use crate::{BaseSource, LayerSummary, StepId};

/// A stage: as planned, then as it ran.
#[derive(Debug, Clone, PartialEq)]
pub struct StageView {
    pub index: usize,
    pub name: Option<String>,
    /// The base as written after ARG expansion (`busybox:1.35`, `scratch`, a stage name).
    pub base: String,
    /// False for stages the target does not need; they are skipped.
    pub needed: bool,
    /// Its steps in the order they run (FROM, ONBUILD triggers, then its instructions).
    pub steps: Vec<StepId>,
    /// Where its base came from, once resolved.
    pub source: Option<BaseSource>,
    pub base_layers: Vec<LayerSummary>,
    /// The entries of each base layer (by its index in `base_layers`), when the build
    /// reported them (`base_layer_listed`, an opt-in detail).
    pub base_listings: std::collections::BTreeMap<usize, Vec<crate::Change>>,
    pub started: bool,
    pub finished: bool,
    /// The Dockerfile stage this is, in a build for several platforms (`None`: `index`).
    pub dockerfile_stage: Option<usize>,
    /// The platform its root is for, in a build for several platforms.
    pub platform: Option<String>,
    /// The target platforms it is built for, in a build for several (all of them: shared).
    pub targets: Vec<String>,
}

impl StageView {
    /// `builder` or `stage 1`.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("stage {}", self.index))
    }
}
