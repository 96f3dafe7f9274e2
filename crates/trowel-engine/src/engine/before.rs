//! What each path a step changed was before it (type, size, mode, owner, link, mtime and
//! content digest), for viewers that ask (the debugger, traces with contents): the File pane's
//! "before" column, and telling a cached layer's paths apart as added, modified or deleted
//! when the stage has no build root to apply it to (the layer alone cannot say).
//!
//! A path an earlier step of this build changed is remembered as that step left it; any other
//! path is as the stage's base layers left it, looked up there once per build (`base_files.rs`:
//! one pass over those layers for a step that needs paths not seen yet, hashing only the wanted
//! files, shared with the contents of the diff view). The snapshot index keeps no digests (a
//! 128-bit hash at most), so this is where the old digest comes from.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::engine::base_files::BaseFiles;
use crate::engine::context::BuildContext;
use crate::engine::layer::StageLayer;
use crate::fs::{Change, ChangeKind, FileType, PrevMeta, path};

#[derive(Clone)]
pub(crate) struct Before {
    /// (stage, path) → the path as the last step of this build that changed it left it
    /// (`None`: deleted).
    known: HashMap<(usize, String), Option<PrevMeta>>,
    /// (stage, directory) whose base contents are gone (deleted, or made opaque).
    cleared: HashSet<(usize, String)>,
    /// What the stages' base layers hold at the paths looked up so far.
    pub base: BaseFiles,
}

impl Before {
    pub fn new(base: BaseFiles) -> Before {
        Before { known: HashMap::new(), cleared: HashSet::new(), base }
    }

    /// Takes in what a lane of a build for several platforms learnt (its stages are its own;
    /// a shared stage's entries are the same in every lane).
    pub fn absorb(&mut self, other: Before) {
        self.known.extend(other.known);
        self.cleared.extend(other.cleared);
        self.base.absorb(other.base);
    }
}

/// A listed entry that is what was there before in every respect a walk compares: type, mode,
/// owner, link target, time and, for a file, size and content (known on both sides). An
/// opaque directory replaced what was under it, so it is a change whatever its metadata.
fn unchanged(c: &Change) -> bool {
    let Some(p) = &c.previous else { return false };
    let same_content = match c.file_type {
        FileType::File => p.size == c.size && p.digest.is_some() && p.digest == c.digest,
        FileType::Dir | FileType::Symlink => true,
        _ => false,
    };
    !c.opaque
        && p.file_type == c.file_type
        && (p.mode, p.uid, p.gid) == (c.mode, c.uid, c.gid)
        && p.link_target == c.link_target
        && p.mtime == Some(c.mtime)
        && same_content
}

/// What a re-created directory held before and no longer holds, as a walk of the root
/// reports it (`Snapshotter`'s `gone`): its top paths only, looking into the directories it
/// holds now as it did then.
fn gone_under(dir: &Change, before: &BTreeMap<String, PrevMeta>, listed: &[Change]) -> Vec<Change> {
    let now: HashMap<&str, &Change> =
        listed.iter().filter(|c| c.kind != ChangeKind::Deleted).map(|c| (c.path.as_str(), c)).collect();
    let is_dir_both = |d: &str| {
        d == dir.path
            || before.get(d).is_some_and(|b| b.file_type == FileType::Dir)
                && now.get(d).is_some_and(|c| c.file_type == FileType::Dir)
    };
    before
        .iter()
        .filter(|(p, _)| !now.contains_key(p.as_str()) && is_dir_both(path::parent(p)))
        .map(|(p, b)| Change {
            path: p.clone(),
            kind: ChangeKind::Deleted,
            file_type: b.file_type,
            size: b.size,
            mode: b.mode,
            uid: b.uid,
            gid: b.gid,
            mtime: b.mtime.unwrap_or(0),
            link_target: b.link_target.clone(),
            digest: None,
            opaque: false,
            previous: Some(Box::new(b.clone())),
        })
        .collect()
}

/// Whether the change's path held a directory whose contents are gone: re-created (opaque), or
/// replaced by something that is not a directory.
fn replaced_dir(c: &Change) -> bool {
    c.opaque || c.file_type != FileType::Dir && c.previous.as_ref().is_some_and(|p| p.file_type == FileType::Dir)
}

/// A change's own metadata, as the step after it sees it "before".
fn as_prev(c: &Change) -> PrevMeta {
    PrevMeta {
        file_type: if c.file_type == FileType::Hardlink { FileType::File } else { c.file_type },
        size: c.size,
        mode: c.mode,
        uid: c.uid,
        gid: c.gid,
        link_target: (c.file_type == FileType::Symlink).then(|| c.link_target.clone()).flatten(),
        mtime: Some(c.mtime),
        digest: c.digest,
    }
}

impl Before {
    /// What `paths` were at the top of stage `stage` before this step: known ones as this build
    /// left them, the others from the stage's layers that this build did not make.
    pub fn lookup(
        &mut self,
        ctx: &BuildContext<'_>,
        stage: usize,
        layers: &[StageLayer],
        paths: &[&str],
    ) -> HashMap<String, Option<PrevMeta>> {
        let mut out = HashMap::new();
        for &p in paths {
            if let Some(k) = self.known.get(&(stage, p.to_string())) {
                out.insert(p.to_string(), k.clone());
            } else if self.hidden(stage, p) {
                out.insert(p.to_string(), None);
            }
        }
        let from_base = self.base_paths(stage, paths);
        if !from_base.is_empty() {
            let found = self.base.get(ctx, stage, layers, &from_base);
            out.extend(found.into_iter().map(|(p, f)| (p, f.map(|f| f.meta))));
        }
        out
    }

    /// Those of `paths` whose "before" is what stage `stage`'s base layers hold: neither
    /// changed by this build nor below a directory it cleared.
    pub fn base_paths<'a>(&self, stage: usize, paths: &[&'a str]) -> Vec<&'a str> {
        paths
            .iter()
            .copied()
            .filter(|p| !self.known.contains_key(&(stage, p.to_string())) && !self.hidden(stage, p))
            .collect()
    }

    /// A listed layer's entries (all `Added`) told apart against what stage `stage` held before
    /// the step ([`classify`](Self::classify)), with what a re-created directory no longer holds
    /// named deleted (its marker hides it; a walk of a root that ran the step names it), and
    /// remembered for the steps after: a cached layer, or a `--link` layer made without a root.
    pub fn classify_listing(
        &mut self,
        ctx: &BuildContext<'_>,
        stage: usize,
        layers: &[StageLayer],
        entries: &mut Vec<Change>,
    ) {
        let before = self.lookup(ctx, stage, layers, &Self::wanted(entries, true));
        Self::classify(entries, &before);
        // Re-created directories, and directories something else replaced: what they held is
        // deleted, as a walk of a root that ran the step reports it.
        let renewed: Vec<Change> =
            entries.iter().filter(|c| c.kind == ChangeKind::Modified && replaced_dir(c)).cloned().collect();
        for d in &renewed {
            let held = self.under(ctx, stage, layers, &d.path);
            let gone = gone_under(d, &held, entries);
            entries.extend(gone);
        }
        if !renewed.is_empty() {
            entries.sort_by(|a, b| a.path.cmp(&b.path));
        }
        self.record(stage, entries);
    }

    /// What stage `stage` held below `dir` before this step, each path with its metadata: the
    /// stage's layers this build did not make, then what this build's earlier steps left.
    fn under(
        &self,
        ctx: &BuildContext<'_>,
        stage: usize,
        layers: &[StageLayer],
        dir: &str,
    ) -> BTreeMap<String, PrevMeta> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let mut out = BTreeMap::new();
        // The base's paths count unless `dir` (or a directory above it) lost its base contents
        // in this build (`hidden` looks at the directories above the path it is given).
        if !self.hidden(stage, &path::join(dir, "-")) {
            let base: Vec<StageLayer> =
                layers.iter().filter(|l| l.step().is_none_or(|id| id.stage != stage)).cloned().collect();
            out = crate::engine::layer_paths::paths_under(ctx, &base, dir);
            out.retain(|p, _| !self.hidden(stage, p));
        }
        // This build's own steps: a path is as the last step that changed it left it, unless a
        // directory above it was deleted since (a deletion records its top path only).
        let mine: Vec<(&String, &Option<PrevMeta>)> = self
            .known
            .iter()
            .filter(|((s, p), _)| *s == stage && p.starts_with(&prefix))
            .map(|((_, p), v)| (p, v))
            .collect();
        let gone = |p: &str| {
            let mut d = path::parent(p);
            while d.len() >= prefix.len() {
                if matches!(self.known.get(&(stage, d.to_string())), Some(None)) {
                    return true;
                }
                d = path::parent(d);
            }
            false
        };
        for (p, v) in mine {
            match v {
                Some(m) if !gone(p) => {
                    out.insert(p.clone(), m.clone());
                }
                _ => {
                    out.remove(p);
                    let below = format!("{p}/");
                    out.retain(|k, _| !k.starts_with(&below));
                }
            }
        }
        out
    }

    /// Whether a directory above `p` lost its base contents in this build.
    fn hidden(&self, stage: usize, p: &str) -> bool {
        let mut dir = path::parent(p);
        loop {
            if self.cleared.contains(&(stage, dir.to_string())) {
                return true;
            }
            if dir == "/" || dir.is_empty() {
                return false;
            }
            dir = path::parent(dir);
        }
    }

    /// Gives the modified and deleted `changes` their digest (and mtime) before the step, from
    /// what `before` found.
    pub fn fill(changes: &mut [Change], before: &HashMap<String, Option<PrevMeta>>) {
        for c in changes.iter_mut().filter(|c| c.kind != ChangeKind::Added) {
            let Some(Some(b)) = before.get(&c.path) else { continue };
            match &mut c.previous {
                Some(p) => {
                    if p.digest.is_none() && p.file_type == b.file_type {
                        p.digest = b.digest;
                    }
                    if p.mtime.is_none() {
                        p.mtime = b.mtime;
                    }
                }
                None => c.previous = Some(Box::new(b.clone())),
            }
        }
    }

    /// Classifies the entries of a listed layer (all `Added`) against what was there before:
    /// a path that existed is `Modified`, with its previous metadata; one that is exactly as it
    /// was is no change and leaves the list. A layer restates the directories above what it
    /// holds (`ADD x.tar /var/lib/` carries `/var`), and a walk of a root that ran the step
    /// would not have reported them: the debugger showed `/var` modified for a cached step and
    /// not for the same step built. A layer's times are whole seconds, so a directory whose
    /// entries changed within the second of its previous change looks the same: one that gained,
    /// lost, replaced or re-created an entry stays a change whatever its time.
    ///
    /// Below a re-created (opaque) directory everything is new, as a walk of the root reports
    /// it: a path of the same name before is not what is there now.
    pub fn classify(changes: &mut Vec<Change>, before: &HashMap<String, Option<PrevMeta>>) {
        let opaque: Vec<String> = changes.iter().filter(|c| c.opaque).map(|c| format!("{}/", c.path)).collect();
        for c in changes.iter_mut() {
            let renewed = opaque.iter().any(|d| c.path.starts_with(d.as_str()));
            if c.kind == ChangeKind::Added
                && !renewed
                && let Some(Some(_)) = before.get(&c.path)
            {
                c.kind = ChangeKind::Modified;
            }
        }
        Self::fill(changes, before);
        let entries_changed: HashSet<String> = changes
            .iter()
            .filter(|c| {
                // Added, deleted, replaced by another type, or removed and re-created (opaque).
                c.kind != ChangeKind::Modified
                    || c.opaque
                    || c.previous.as_ref().is_some_and(|p| p.file_type != c.file_type)
            })
            .map(|c| path::parent(&c.path).to_string())
            .collect();
        changes.retain(|c| {
            let kept = c.file_type == FileType::Dir && entries_changed.contains(&c.path);
            kept || !(c.kind == ChangeKind::Modified && unchanged(c))
        });
    }

    /// Paths whose "before" a step's changes need. A snapshot already says everything but the
    /// old digest, so only modified and deleted regular files are looked up (a directory's
    /// change alone never costs a pass over the base layers); a listed layer, where everything
    /// says added, needs all its paths.
    pub fn wanted(changes: &[Change], listed: bool) -> Vec<&str> {
        let file = |c: &Change| {
            c.file_type == FileType::File || c.previous.as_ref().is_some_and(|p| p.file_type == FileType::File)
        };
        changes.iter().filter(|c| listed || c.kind != ChangeKind::Added && file(c)).map(|c| c.path.as_str()).collect()
    }

    /// Remembers what a step left at the paths it changed.
    pub fn record(&mut self, stage: usize, changes: &[Change]) {
        for c in changes {
            let key = (stage, c.path.clone());
            if c.kind == ChangeKind::Deleted {
                self.known.insert(key.clone(), None);
                self.cleared.insert(key);
                continue;
            }
            if replaced_dir(c) {
                self.cleared.insert(key.clone());
            }
            self.known.insert(key, Some(as_prev(c)));
        }
    }
}
