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
    /// Its build root, once made (`base_unpacked`): a stage the cache serves whole has none.
    pub root: Option<RootView>,
}

/// A stage's build root as `base_unpacked` described it, and where it came in the stage.
#[derive(Debug, Clone, PartialEq)]
pub struct RootView {
    pub layers: usize,
    /// Entries and bytes written: of the layers unpacked now only.
    pub entries: u64,
    pub bytes: u64,
    /// From when it was asked for to when it was ready.
    pub duration_ms: u64,
    /// Mounted from the unpacked-layer store, this many of `layers` there already.
    pub from_store: Option<usize>,
    /// Why not from the store, when unpacked.
    pub store_unused: Option<String>,
    /// How many of the stage's steps had finished when it was ready: it was made after them
    /// (ahead of the next step, or by the step running then, which waited for it).
    pub after_steps: usize,
}

impl RootView {
    /// `mounted from the store (2 layers)`, `mounted, 1 of 2 layers unpacked into the store`,
    /// `unpacked: 288 entries, 2 layers`: what making it took.
    pub fn summary(&self) -> String {
        root_summary(self.layers, self.entries, self.from_store)
    }
}

/// [`RootView::summary`] of a root of `layers` layers, `from_store` of them in the
/// unpacked-layer store already when mounted from there, `entries` written.
pub(crate) fn root_summary(layers: usize, entries: u64, from_store: Option<usize>) -> String {
    let n = if layers == 1 { "1 layer".to_string() } else { format!("{layers} layers") };
    match from_store {
        Some(found) if found >= layers => format!("mounted from the store ({n})"),
        Some(found) => format!("mounted, {} of {n} unpacked into the store", layers - found),
        None => format!("unpacked: {entries} entries, {n}"),
    }
}

impl StageView {
    /// `builder` or `stage 1` (its number in the Dockerfile, also in a build for several
    /// platforms, where `index` counts every platform's stages).
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("stage {}", self.number()))
    }

    /// Its stage number in the Dockerfile (0 = the first `FROM`).
    pub fn number(&self) -> usize {
        self.dockerfile_stage.unwrap_or(self.index)
    }

    /// Whether it is built for the target platform `platform`: always in a build for one
    /// platform (no targets); in a build for several, when `targets` holds it (a shared stage
    /// serves every target).
    pub fn serves(&self, platform: &str) -> bool {
        self.targets.is_empty() || self.targets.iter().any(|t| t == platform)
    }

    /// What its header says of its platform in a build for the target platforms `all`:
    /// `linux/arm64`, or `linux/amd64 (shared by all)` for a stage every target shares (`(shared
    /// by linux/amd64, linux/arm64)` for one some of them share), or `linux/amd64 (for
    /// linux/arm64)` for a stage built on one platform for another; `None` in a build for one
    /// platform.
    pub fn platform_label(&self, all: &[String]) -> Option<String> {
        let on = self.platform.as_deref()?;
        Some(match self.targets.as_slice() {
            [] => on.to_string(),
            [one] if one == on => on.to_string(),
            [one] => format!("{on} (for {one})"),
            some if all.len() == some.len() && all.iter().all(|p| some.contains(p)) => format!("{on} (shared by all)"),
            some => format!("{on} (shared by {})", some.join(", ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(
        index: usize,
        name: Option<&str>,
        dockerfile_stage: Option<usize>,
        on: Option<&str>,
        targets: &[&str],
    ) -> StageView {
        StageView {
            index,
            name: name.map(Into::into),
            base: "busybox".into(),
            needed: true,
            steps: Vec::new(),
            source: None,
            base_layers: Vec::new(),
            base_listings: Default::default(),
            started: false,
            finished: false,
            dockerfile_stage,
            platform: on.map(Into::into),
            targets: targets.iter().map(|t| t.to_string()).collect(),
            root: None,
        }
    }

    #[test]
    fn a_stage_instance_says_its_platform_and_which_targets_it_serves() {
        let all: Vec<String> = vec!["linux/amd64".into(), "linux/arm64".into(), "linux/s390x".into()];
        let one = stage(1, None, None, None, &[]);
        assert_eq!((one.label(), one.platform_label(&[])), ("stage 1".to_string(), None));
        assert!(one.serves("linux/arm64"), "a build for one platform has no targets to tell");
        let shared = stage(0, Some("build"), Some(0), Some("linux/amd64"), &["linux/amd64", "linux/arm64"]);
        assert_eq!(shared.platform_label(&all).unwrap(), "linux/amd64 (shared by linux/amd64, linux/arm64)");
        assert_eq!(shared.platform_label(&all[..2]).unwrap(), "linux/amd64 (shared by all)");
        assert!(shared.serves("linux/amd64") && shared.serves("linux/arm64"));
        let arm = stage(2, None, Some(1), Some("linux/arm64"), &["linux/arm64"]);
        assert_eq!(
            (arm.label(), arm.number()),
            ("stage 1".to_string(), 1),
            "its Dockerfile number, not the instance's"
        );
        assert_eq!(arm.platform_label(&all).unwrap(), "linux/arm64");
        assert!(!arm.serves("linux/amd64"));
        let cross = stage(3, Some("compile"), Some(0), Some("linux/amd64"), &["linux/arm64"]);
        assert_eq!(cross.platform_label(&all).unwrap(), "linux/amd64 (for linux/arm64)");
    }
}
