//! The whole file system at a step, as dive shows it: every layer up to and including the
//! step's, stacked in order (the stage's base image, the stages it is built `FROM`, the steps
//! before, kept shell sessions), whiteouts and opaque directories applied; and the image's
//! efficiency.
//!
//! Efficiency is bytes kept / bytes shipped. Bytes shipped: every regular file's content in
//! every layer of the image, base layers included (a layer carries a whole file even when only
//! its metadata changed). Bytes kept: the regular files the final file system shows. The
//! difference is each version of a file that a later layer overwrote or deleted (or hid under
//! an opaque directory or a file over its directory), counted once, in the layer that shipped
//! it. dive's score is Σ(smallest copy of each path) / Σ(every copy, and for a whiteout the size
//! of what it deleted): a file rewritten with bigger content counts its *old* size as kept and
//! a deleted file is counted twice, so it is not a byte count; `dive_score` computes it from the
//! same layers to compare (docs/debugger.md gives both for the test image).
//!
//! The base image's files are known only when the build reported its layers' listings
//! (`base_layer_listed`, which the live debugger asks for and a trace records with
//! `--trace-base-listings`), and a step served from the cache only when its layer was listed:
//! what is not known is named in [`Merged::unknown`], so the view can say what it cannot show.

use std::collections::BTreeMap;

use trowel_events::state::{BuildState, StepView};
use trowel_events::{BaseSource, Change, ChangeKind, FileType, StepId};

use super::links::HardLinks;
use super::waste::{image_stages, image_stages_for};

/// What made a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerBy {
    /// Layer `index` of stage `stage`'s base image.
    Base {
        stage: usize,
        index: usize,
    },
    Step(StepId),
    /// A kept debugger shell session at the step (its n-th).
    Shell(StepId, usize),
}

/// One layer of the stack, with what it ships and what of it is wasted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    pub by: LayerBy,
    /// `L7 RUN`, `base 2/3`, `shell at L7`.
    pub label: String,
    pub shipped: u64,
    /// Bytes of this layer a later one overwrote or deleted.
    pub wasted: u64,
}

/// A path of the merged file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its metadata as the topmost layer that has it says.
    pub change: Change,
    /// That layer (index into [`Merged::layers`]).
    pub layer: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    pub layers: Vec<LayerInfo>,
    pub entries: BTreeMap<String, Entry>,
    /// Layers whose contents are not known (why, in words).
    pub unknown: Vec<String>,
    /// The hard links among `entries`.
    links: HardLinks,
}

impl Merged {
    /// Bytes of regular files in all the layers.
    pub fn shipped(&self) -> u64 {
        self.layers.iter().map(|l| l.shipped).sum()
    }

    /// Bytes of regular files the file system shows.
    pub fn kept(&self) -> u64 {
        self.entries.values().filter(|e| e.change.file_type == FileType::File).map(|e| e.change.size).sum()
    }

    /// Kept / shipped (1 when nothing is shipped).
    pub fn efficiency(&self) -> f64 {
        let shipped = self.shipped();
        if shipped == 0 { 1.0 } else { self.kept() as f64 / shipped as f64 }
    }

    /// The paths as changes (their current metadata), for the tree.
    pub fn changes(&self) -> Vec<Change> {
        self.entries.values().map(|e| e.change.clone()).collect()
    }

    /// Stacks one layer on top.
    pub fn push(&mut self, by: LayerBy, label: String, changes: &[Change]) {
        let me = self.layers.len();
        let shipped = changes
            .iter()
            .filter(|c| c.kind != ChangeKind::Deleted && c.file_type == FileType::File)
            .map(|c| c.size)
            .sum();
        self.layers.push(LayerInfo { by, label, shipped, wasted: 0 });
        for c in changes {
            let replaces_subtree = c.kind == ChangeKind::Deleted || c.opaque || c.file_type != FileType::Dir;
            if replaces_subtree {
                let prefix = format!("{}/", c.path.trim_end_matches('/'));
                let below: Vec<String> = self
                    .entries
                    .range(prefix.clone()..)
                    .take_while(|(p, _)| p.starts_with(&prefix))
                    .map(|(p, _)| p.clone())
                    .collect();
                for p in below {
                    self.remove(&p);
                }
            }
            self.remove(&c.path);
            if c.kind != ChangeKind::Deleted {
                if c.file_type == FileType::Hardlink
                    && let Some(target) = &c.link_target
                {
                    self.links.link(&c.path, target);
                }
                self.entries.insert(c.path.clone(), Entry { change: c.clone(), layer: me });
            }
        }
    }

    /// Takes `path` out of the file system. A file that other names still link to (hard links
    /// of its layer) is not gone: the first of them becomes the file, with its bytes, and the
    /// rest link to that one; only a file no name holds any more is waste.
    fn remove(&mut self, path: &str) {
        let Some(old) = self.entries.remove(path) else { return };
        if self.links.unlink(path) || old.change.file_type != FileType::File {
            return;
        }
        match self.links.pass_on(path) {
            Some((heir, rest)) => {
                for n in &rest {
                    if let Some(e) = self.entries.get_mut(n) {
                        e.change.link_target = Some(heir.clone());
                    }
                }
                if let Some(e) = self.entries.get_mut(&heir) {
                    e.change.file_type = FileType::File;
                    e.change.link_target = None;
                    e.change.size = old.change.size;
                    e.change.digest = old.change.digest.clone();
                }
            }
            None => self.layers[old.layer].wasted += old.change.size,
        }
    }
}

/// The layers that make the file system at `upto` (every step of the image when `None`), in
/// order. A stage built `FROM` another has that stage's whole file system below it.
pub fn at(model: &BuildState, upto: Option<StepId>) -> Merged {
    let mut m = Merged::default();
    let stage = match upto {
        Some(id) => Some(id.stage),
        None => image_stages(model).last().copied(),
    };
    if let Some(stage) = stage {
        stack(model, stage, upto, &mut m, 0);
    }
    m
}

/// The layers of the whole image for the target `platform` (a build for several platforms;
/// `None`: the last platform's), in order.
pub fn image(model: &BuildState, platform: Option<&str>) -> Merged {
    let mut m = Merged::default();
    if let Some(stage) = image_stages_for(model, platform).last().copied() {
        stack(model, stage, None, &mut m, 0);
    }
    m
}

fn stack(model: &BuildState, stage: usize, upto: Option<StepId>, m: &mut Merged, depth: usize) {
    let Some(view) = model.stage(stage) else { return };
    match &view.source {
        // A cycle cannot happen in a valid plan; the depth bound keeps a damaged trace harmless.
        Some(BaseSource::Stage { index }) if depth < 64 => stack(model, *index, None, m, depth + 1),
        Some(BaseSource::Stage { .. }) | Some(BaseSource::Scratch) => {}
        Some(_) => {
            let n = view.base_layers.len();
            for i in 0..n {
                let label = if n == 1 { "base".to_string() } else { format!("base {}/{n}", i + 1) };
                match view.base_listings.get(&i) {
                    Some(changes) => m.push(LayerBy::Base { stage, index: i }, label, changes),
                    None => {
                        m.unknown.push(format!("{label}: its files were not reported"));
                        m.layers.push(LayerInfo {
                            by: LayerBy::Base { stage, index: i },
                            label,
                            shipped: 0,
                            wasted: 0,
                        });
                    }
                }
            }
        }
        None => m.unknown.push(format!("{}: its base is not resolved yet", view.label())),
    }
    for id in &view.steps {
        let Some(step) = model.step(*id) else { continue };
        push_step(step, m);
        if Some(*id) == upto {
            break;
        }
    }
}

fn push_step(step: &StepView, m: &mut Merged) {
    let kept = |before: bool| {
        step.shells.iter().enumerate().filter(move |(_, s)| s.kept == Some(true) && s.before_step == before)
    };
    for (n, sh) in kept(true) {
        m.push(LayerBy::Shell(step.id, n), format!("shell at L{}", step.line), &sh.changes);
    }
    if step.layer.is_some() {
        let label = trowel_events::state::maker::Maker::Step(step).label();
        if step.changes.is_empty() && step.stats.is_none() && step.layer.as_ref().is_some_and(|l| l.size > 0) {
            // A layer taken from the cache and not listed (no `snapshot` for it).
            m.unknown.push(format!("{label}: taken from the cache, its files were not reported"));
        }
        m.push(LayerBy::Step(step.id), label, &step.changes);
    }
    for (n, sh) in kept(false) {
        m.push(LayerBy::Shell(step.id, n), format!("shell at L{}", step.line), &sh.changes);
    }
}

/// dive's efficiency score over the same layers, for comparison (see the module's comment):
/// per path, the smallest size any layer gave it over the sum of all of them, where a whiteout
/// counts the size of what it deleted (a deleted directory: all the files below it).
pub fn dive_score(layers: &[&[Change]]) -> f64 {
    let mut stacked = Merged::default();
    let mut per_path: BTreeMap<String, (u64, u64)> = BTreeMap::new(); // (min, sum)
    for (i, changes) in layers.iter().enumerate() {
        for c in changes.iter() {
            let size = if c.kind == ChangeKind::Deleted {
                let prefix = format!("{}/", c.path);
                let own = stacked.entries.get(&c.path).map_or(0, |e| e.change.size);
                let below: u64 = stacked
                    .entries
                    .range(prefix.clone()..)
                    .take_while(|(p, _)| p.starts_with(&prefix))
                    .map(|(_, e)| e.change.size)
                    .sum();
                own + below
            } else {
                c.size
            };
            let e = per_path.entry(c.path.clone()).or_insert((u64::MAX, 0));
            e.0 = e.0.min(size);
            e.1 += size;
        }
        stacked.push(LayerBy::Base { stage: 0, index: i }, String::new(), changes);
    }
    let min: u64 = per_path.values().map(|v| v.0).sum();
    let sum: u64 = per_path.values().map(|v| v.1).sum();
    if sum == 0 { 1.0 } else { min as f64 / sum as f64 }
}
