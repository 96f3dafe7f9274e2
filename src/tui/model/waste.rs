//! Layer waste: bytes that an earlier layer of the image carries but the final filesystem no
//! longer shows, because a later step deleted or overwrote them.
//!
//! The analysis replays the image's steps in order (the target stage and the stages it is
//! built `FROM`) and tracks, for every regular file, which step wrote its current version.
//! When a later step deletes that path (or a directory above it, or re-creates a directory
//! over it) or writes it again (new content, or only new metadata: a layer always carries the
//! whole file), the old version becomes one [`WasteItem`]: its bytes, the line that added them
//! and the line that made them dead. Each obsolete version is one item, so the total counts
//! every wasted byte exactly once; the final version of a file is never waste. (dive sums the
//! sizes of *all* copies of a path, the surviving one included, and so over-reports: dive#684.)
//!
//! Files of the base image that a step overwrites or deletes are waste too; their "added" side
//! is the base image (the stage's FROM line). When the base's layers were listed
//! (`base_layer_listed`: the live debugger, a trace with `--trace-base-listings`) the analysis
//! starts from the base's file system, so a deleted base directory's files count and a base
//! file's other hard-linked names keep it alive; otherwise only what a change itself says of
//! the path it names is known. Waste among the base's own layers is no line's doing and is not
//! listed (the Files pane's efficiency counts it).
//!
//! A file written in place (`echo more >> /one` where `/two` is a hard link to it) is one
//! overwritten version, under the name written: the layer holds the new file and its names
//! again as links, which is not a deletion of the other name.
//!
//! A debugger shell session whose changes were kept made a layer of its own: what it added or
//! hid is the session's (`shell` on either side), never the instruction's at whose pause it ran.

use std::collections::{BTreeMap, BTreeSet};

use super::links::HardLinks;
use trowel_events::state::{BuildState, StepState, StepView};
use trowel_events::{BaseSource, StepId, When};
use trowel_events::{Change, ChangeKind, FileType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Deleted,
    Overwritten,
    /// Written again with the same bytes: only its mode, owner or times changed (`chmod -R`,
    /// `chown -R`, `touch`), and the layer carries the whole file once more. Told apart
    /// because its fix differs (`COPY --chmod`/`--chown`, or the change made where the file is
    /// written); known only when both versions' digests are (a snapshot's or listing's).
    SameBytes,
}

impl Fate {
    /// The word the Layers pane's waste list shows.
    pub fn label(self) -> &'static str {
        match self {
            Fate::Deleted => "deleted",
            Fate::Overwritten => "overwritten",
            Fate::SameBytes => "same bytes",
        }
    }
}

/// Where a wasted version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// `None`: a file of the base image.
    pub step: Option<StepId>,
    pub line: usize,
    /// A debugger shell session at the pause on this side of `step` wrote it, not the step.
    pub shell: Option<When>,
    /// `step` is the last of a stage snapshotted once (`--single-snapshot`), from this line
    /// on: the layer is the stage's, not the step's.
    pub stage_from: Option<usize>,
    /// A base file: the index of the base layer whose version it is, when the base's layers
    /// were listed (else which one is not known).
    pub base_layer: Option<usize>,
}

impl Origin {
    /// `base`, `L4`, `L6 shell`, `L1–6 stage` (a stage's single snapshot, as `Maker` labels
    /// its layer: no one line of it added or removed the file).
    pub fn label(&self) -> String {
        match (self.step, self.shell, self.stage_from) {
            (None, _, _) => "base".into(),
            (Some(_), None, Some(from)) => format!("L{from}–{} stage", self.line),
            (Some(_), None, None) => format!("L{}", self.line),
            (Some(_), Some(_), _) => format!("L{} shell", self.line),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasteItem {
    pub path: String,
    pub bytes: u64,
    pub added: Origin,
    /// The step (and its line) that deleted or overwrote it.
    pub removed_by: StepId,
    pub removed_line: usize,
    /// A debugger shell session at that step's pause deleted or overwrote it, not the step.
    pub removed_shell: Option<When>,
    /// The removing step's stage was snapshotted once from this line on (see [`Origin`]).
    pub removed_stage_from: Option<usize>,
    pub fate: Fate,
}

impl WasteItem {
    /// Who deleted or overwrote it, labelled as [`Origin::label`] does.
    pub fn removed(&self) -> Origin {
        Origin {
            step: Some(self.removed_by),
            line: self.removed_line,
            shell: self.removed_shell,
            stage_from: self.removed_stage_from,
            base_layer: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WasteReport {
    /// Largest first.
    pub items: Vec<WasteItem>,
    pub total: u64,
    /// What the events do not tell, so the items leave out (in words): a step the cache
    /// served whose listing was not compared with the layers below, a base directory deleted
    /// whole when the base's files were not reported.
    pub unknown: Vec<String>,
    /// The digests of the image's base layers whose files are known (listed), in order: what
    /// [`Origin::base_layer`] indexes.
    pub base_layers: Vec<trowel_events::Digest>,
}

impl WasteReport {
    /// Bytes wasted per Dockerfile line, as `(added here, made dead here)`. A line's two sums
    /// are views of the same items: adding either column over all lines gives `total`, less
    /// what debugger shell sessions added or hid (no line of the Dockerfile did that).
    pub fn by_line(&self) -> BTreeMap<usize, (u64, u64)> {
        let mut m: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
        for i in &self.items {
            if i.added.shell.is_none() {
                m.entry(i.added.line).or_default().0 += i.bytes;
            }
            if i.removed_shell.is_none() {
                m.entry(i.removed_line).or_default().1 += i.bytes;
            }
        }
        m
    }

    /// Bytes a layer carries that the final image hides: the layer of `step` (`shell`: of the
    /// debugger shell sessions on that side of it).
    pub fn added_by(&self, step: StepId, shell: Option<When>) -> u64 {
        self.items.iter().filter(|i| i.added.step == Some(step) && i.added.shell == shell).map(|i| i.bytes).sum()
    }

    /// Bytes of the image's base layer `digest` that the final image hides (files of it a step
    /// overwrote or deleted), when the base's layers were listed; `None` when it is not one of
    /// them or its files are not known.
    pub fn added_by_base(&self, digest: &trowel_events::Digest) -> Option<u64> {
        let index = self.base_layers.iter().position(|d| d == digest)?;
        Some(
            self.items
                .iter()
                .filter(|i| i.added.step.is_none() && i.added.base_layer == Some(index))
                .map(|i| i.bytes)
                .sum(),
        )
    }
}

/// A live version of a file.
#[derive(Debug, Clone)]
struct Version {
    bytes: u64,
    origin: Origin,
    /// The content's SHA-256, when the listing or snapshot read it.
    digest: Option<trowel_events::Digest>,
}

/// The regular files the file system shows so far, each with the version it holds, and the
/// hard links among their names.
#[derive(Default)]
struct Live {
    files: BTreeMap<String, Version>,
    links: HardLinks,
}

/// What taking a path out of the file system did to the file it named.
enum Taken {
    /// It was the file's last name: the version is dead.
    Dead(Version),
    /// It was a link: the file lives on under its other names.
    Lives,
    /// It held the file, which passes to this other name (a hard link of its layer).
    Passed(String),
    /// No regular file of this build's layers was there.
    Unknown,
}

impl Live {
    /// The files and links below `dir`.
    fn below(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let files = self.files.range(prefix.clone()..).map(|(p, _)| p).take_while(|p| p.starts_with(&prefix));
        files.chain(self.links.below(&prefix)).cloned().collect()
    }

    fn take(&mut self, path: &str) -> Taken {
        if self.links.unlink(path) {
            return Taken::Lives;
        }
        let Some(v) = self.files.remove(path) else { return Taken::Unknown };
        match self.links.pass_on(path) {
            Some((heir, _)) => {
                self.files.insert(heir.clone(), v);
                Taken::Passed(heir)
            }
            None => Taken::Dead(v),
        }
    }
}

/// The stages whose layers make up the image, root ancestor first (in a build for several
/// platforms, the last platform's image).
pub fn image_stages(model: &BuildState) -> Vec<usize> {
    image_stages_for(model, None)
}

/// The stages whose layers make up the image for the target `platform` (a build for several;
/// `None`: the last platform's), root ancestor first.
pub fn image_stages_for(model: &BuildState, platform: Option<&str>) -> Vec<usize> {
    let Some(last) = target_stage(model, platform) else { return Vec::new() };
    let mut chain = vec![last];
    let mut cur = last;
    while let Some(parent) = parent_stage(model, cur, platform) {
        if chain.contains(&parent) {
            break;
        }
        chain.push(parent);
        cur = parent;
    }
    chain.reverse();
    chain
}

fn target_stage(model: &BuildState, platform: Option<&str>) -> Option<usize> {
    let stages = model.stages.iter().filter(|s| platform.is_none_or(|p| s.serves(p)));
    match &model.target {
        Some(t) => stages
            .filter(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)) || s.number().to_string() == *t)
            .map(|s| s.index)
            .max(),
        None => stages.map(|s| s.index).max(),
    }
}

fn parent_stage(model: &BuildState, stage: usize, platform: Option<&str>) -> Option<usize> {
    let s = model.stage(stage)?;
    if let Some(BaseSource::Stage { index }) = &s.source {
        return Some(*index);
    }
    model
        .stages
        .iter()
        .filter(|p| p.index < stage && platform.is_none_or(|t| p.serves(t)))
        .rfind(|p| p.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&s.base)))
        .map(|p| p.index)
}

/// Computes the waste of the image the model's build produces (as far as it got).
pub fn analyze(model: &BuildState) -> WasteReport {
    analyze_for(model, None)
}

/// Computes the waste of the image for the target `platform` (a build for several; `None`: the
/// last platform's).
pub fn analyze_for(model: &BuildState, platform: Option<&str>) -> WasteReport {
    let mut live = Live::default();
    let mut items = Vec::new();
    let stages = image_stages_for(model, platform);
    let from_line = stages
        .first()
        .and_then(|&s| model.stage(s))
        .and_then(|s| s.steps.first())
        .and_then(|&id| model.step(id))
        .map_or(0, |s| s.line);
    let mut base_layers = Vec::new();
    let seeded = stages.first().is_some_and(|&root| {
        let base = Origin { step: None, line: from_line, shell: None, stage_from: None, base_layer: None };
        let seeded = seed_base(model, root, base, &mut live);
        if seeded && let Some(view) = model.stage(root) {
            base_layers = view.base_layers.iter().map(|l| l.digest.clone()).collect();
        }
        seeded
    });
    let mut unknown = Vec::new();
    // Directories this build's layers made, so a removed one is known not to be the base's.
    let mut made: BTreeSet<&str> = BTreeSet::new();
    for stage in stages {
        let Some(view) = model.stage(stage) else { continue };
        for id in &view.steps {
            let Some(step) = model.step(*id) else { continue };
            if step.unclassified {
                // A listing made from the layer alone: one the cache served, or a `--link` step,
                // which is written with no root below it.
                let why = if step.state == StepState::Cached {
                    "taken from the cache"
                } else if step.source.split_whitespace().any(|w| w == "--link" || w == "--link=true") {
                    "written on its own (--link)"
                } else {
                    "listed from its layer alone"
                };
                unknown.push(format!(
                    "L{}: {why} and not compared with the layers below (what it hid of them)",
                    step.line
                ));
            }
            if !seeded {
                // Not from this build's own layers (`live` would have it): the base's.
                let base_dirs = step.changes.iter().filter(|c| {
                    c.kind == ChangeKind::Deleted
                        && c.file_type == FileType::Dir
                        && !made.contains(c.path.as_str())
                        && live.below(&c.path).is_empty()
                });
                for c in base_dirs {
                    unknown.push(format!(
                        "{}: a directory deleted at L{} whose files the base's listing would tell (not reported)",
                        c.path, step.line
                    ));
                }
            }
            let dirs = step.changes.iter().chain(step.shells.iter().flat_map(|sh| &sh.changes));
            made.extend(
                dirs.filter(|c| c.kind == ChangeKind::Added && c.file_type == FileType::Dir).map(|c| c.path.as_str()),
            );
            // A kept shell session's changes are a layer too, before or after the step's.
            let kept =
                |before: bool| step.shells.iter().filter(move |s| s.kept == Some(true) && s.before_step == before);
            for sh in kept(true) {
                apply_step(step, Some(When::BeforeStep), &sh.changes, from_line, &mut live, &mut items);
            }
            apply_step(step, None, &step.changes, from_line, &mut live, &mut items);
            for sh in kept(false) {
                apply_step(step, Some(When::AfterStep), &sh.changes, from_line, &mut live, &mut items);
            }
        }
    }
    // Without the base's listing a deleted base file's other names are not known: its bytes
    // are counted, as the change says of the path it names, and said to be so.
    let base_deleted = items.iter().filter(|i| i.added.step.is_none() && i.fate == Fate::Deleted).count();
    if !seeded && base_deleted > 0 {
        unknown.push(format!(
            "{base_deleted} base file(s) deleted, counted as waste: any with another name (a hard link) still holds \
             its bytes, which the base's listing would tell (--trace-base-listings)"
        ));
    }
    items.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    let total = items.iter().map(|i| i.bytes).sum();
    WasteReport { items, total, unknown, base_layers }
}

/// The base image's file system of stage `root` (the image's root ancestor), when every one of
/// its layers was listed: its regular files as versions `base` added, and its hard links.
/// Whether the base's files are known (a stage on `scratch` has none to know).
fn seed_base(model: &BuildState, root: usize, base: Origin, live: &mut Live) -> bool {
    let Some(view) = model.stage(root) else { return false };
    match view.source {
        Some(BaseSource::Registry { .. } | BaseSource::CacheDir { .. }) => {}
        Some(BaseSource::Scratch) => return true,
        _ => return false,
    }
    let n = view.base_layers.len();
    if n == 0 || (0..n).any(|i| !view.base_listings.contains_key(&i)) {
        return false;
    }
    let mut fs = super::merged::Merged::default();
    for i in 0..n {
        fs.push(super::merged::LayerBy::Base { stage: root, index: i }, String::new(), &view.base_listings[&i]);
    }
    for (path, e) in &fs.entries {
        let layer = match fs.layers.get(e.layer).map(|l| l.by) {
            Some(super::merged::LayerBy::Base { index, .. }) => Some(index),
            _ => None,
        };
        match (e.change.file_type, &e.change.link_target) {
            (FileType::File, _) => {
                let origin = Origin { base_layer: layer, ..base };
                let digest = e.change.digest.clone();
                live.files.insert(path.clone(), Version { bytes: e.change.size, origin, digest });
            }
            (FileType::Hardlink, Some(target)) => live.links.link(path, target),
            _ => {}
        }
    }
    true
}

/// Applies one layer's changes: the step's (`shell` `None`) or a kept shell session's.
fn apply_step(
    step: &StepView,
    shell: Option<When>,
    changes: &[Change],
    from_line: usize,
    live: &mut Live,
    items: &mut Vec<WasteItem>,
) {
    let stage_from = step.stage_snapshot.filter(|_| shell.is_none());
    let origin = Origin { step: Some(step.id), line: step.line, shell, stage_from, base_layer: None };
    let base = Origin { step: None, line: from_line, shell: None, stage_from: None, base_layer: None };
    let dead = |path: &str, v: Version, fate: Fate, items: &mut Vec<WasteItem>| {
        if v.bytes > 0 {
            items.push(WasteItem {
                path: path.to_string(),
                bytes: v.bytes,
                added: v.origin,
                removed_by: step.id,
                removed_line: step.line,
                removed_shell: shell,
                removed_stage_from: stage_from,
                fate,
            });
        }
    };
    // Paths a directory's removal or re-creation already took out in this layer: a walk of a
    // root reports a re-created directory's old contents as deleted too, after it.
    let mut taken: BTreeSet<String> = BTreeSet::new();
    // The names this layer links to a file: a file written in place names them all again.
    let relinked: BTreeMap<&str, &str> = changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Deleted && c.file_type == FileType::Hardlink)
        .filter_map(|c| Some((c.path.as_str(), c.link_target.as_deref()?)))
        .collect();
    for c in changes {
        let removes_subtree = c.kind == ChangeKind::Deleted || c.opaque || c.file_type != FileType::Dir;
        if removes_subtree {
            for p in live.below(&c.path) {
                if let Taken::Dead(v) = live.take(&p) {
                    dead(&p, v, Fate::Deleted, items);
                }
                taken.insert(p);
            }
        }
        let mut replaced = live.take(&c.path);
        // Written in place: the name the file passed to links to it again in this layer, so
        // the old version is dead, overwritten here, and that name is a link once more.
        if let Taken::Passed(heir) = &replaced
            && c.kind != ChangeKind::Deleted
            && c.file_type == FileType::File
            && relinked.get(heir.as_str()) == Some(&c.path.as_str())
        {
            let heir = heir.clone();
            replaced = live.files.remove(&heir).map_or(Taken::Unknown, Taken::Dead);
            live.links.link(&heir, &c.path);
        }
        match c.kind {
            ChangeKind::Deleted => match replaced {
                Taken::Dead(v) => dead(&c.path, v, Fate::Deleted, items),
                Taken::Lives | Taken::Passed(_) => {}
                Taken::Unknown if taken.contains(&c.path) => {}
                Taken::Unknown => {
                    if let Some(prev) = base_file(c) {
                        dead(&c.path, Version { bytes: prev, origin: base, digest: None }, Fate::Deleted, items);
                    }
                }
            },
            ChangeKind::Added | ChangeKind::Modified => {
                // Same bytes only when both digests say so: a version without one is counted
                // as overwritten, never guessed equal.
                let fate = |old: Option<&trowel_events::Digest>| match (c.file_type, old, &c.digest) {
                    (FileType::File, Some(old), Some(new)) if old == new => Fate::SameBytes,
                    (FileType::File, _, _) => Fate::Overwritten,
                    _ => Fate::Deleted,
                };
                let previous = c.previous.as_ref().and_then(|p| p.digest.clone());
                match replaced {
                    Taken::Dead(v) => {
                        let f = fate(v.digest.as_ref().or(previous.as_ref()));
                        dead(&c.path, v, f, items)
                    }
                    // A base file's other name written again as a link to the name this layer
                    // changed (`chmod` of a file with two names: both are in the layer, one as a
                    // hard link): one file, whose old version the changed name's own change
                    // counts. Same bytes before on both names is what tells it (the base's
                    // listing, when there is one, knows its links and never gets here).
                    Taken::Unknown if relinked_base(c, changes) => {}
                    Taken::Unknown if c.kind == ChangeKind::Modified => {
                        if let Some(prev) = base_file(c) {
                            let f = fate(previous.as_ref());
                            dead(&c.path, Version { bytes: prev, origin: base, digest: previous }, f, items);
                        }
                    }
                    Taken::Lives | Taken::Passed(_) | Taken::Unknown => {}
                }
                match (c.file_type, &c.link_target) {
                    (FileType::File, _) => {
                        let digest = c.digest.clone();
                        live.files.insert(c.path.clone(), Version { bytes: c.size, origin, digest });
                    }
                    (FileType::Hardlink, Some(target)) => live.links.link(&c.path, target),
                    _ => {}
                }
            }
        }
    }
}

/// Whether `c` re-expresses a base file's name as a hard link to another name this layer
/// changed, both names having held the same bytes before: the same file, not a replaced one.
fn relinked_base(c: &Change, changes: &[Change]) -> bool {
    let (FileType::Hardlink, Some(target), Some(before)) = (c.file_type, &c.link_target, &c.previous) else {
        return false;
    };
    let target_before = changes.iter().find(|t| &t.path == target).and_then(|t| t.previous.as_ref());
    before.file_type == FileType::File
        && before.digest.is_some()
        && target_before.is_some_and(|t| t.file_type == FileType::File && t.digest == before.digest)
}

/// The size of the regular file a change replaced, when it was one.
fn base_file(c: &Change) -> Option<u64> {
    match &c.previous {
        Some(p) if p.file_type == FileType::File => Some(p.size),
        Some(_) => None,
        None if c.kind == ChangeKind::Deleted && c.file_type == FileType::File => Some(c.size),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage snapshotted once is one layer: what it added or removed is the stage's, labelled
    /// as the Layers table labels that layer, never its last line's.
    #[test]
    fn a_single_snapshots_side_is_labelled_as_the_stage() {
        let step = Some(StepId { stage: 0, step: 7 });
        let label = |stage_from, shell| Origin { step, line: 12, shell, stage_from, base_layer: None }.label();
        assert_eq!(label(Some(5), None), "L5–12 stage");
        assert_eq!(label(None, None), "L12");
        assert_eq!(label(None, Some(When::AfterStep)), "L12 shell");
        assert_eq!(Origin { step: None, line: 2, shell: None, stage_from: None, base_layer: Some(1) }.label(), "base");
    }
}
