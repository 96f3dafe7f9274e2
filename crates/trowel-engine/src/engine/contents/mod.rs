//! Small text files' content before and after each step, for the debugger's diff view and for
//! traces (`FileContents` events).
//!
//! "After" is read from the build root once a step is snapshotted. "Before" is what an earlier
//! step of this build left (remembered here) or, for a file the base image provided, read from
//! the stage's base layers. Only the base files a step changed are looked up, in one pass over
//! the base layers per step that needs any: copying every small file of a Debian base aside
//! just in case cost seconds on each traced build. Contents are kept on disk
//! (content-addressed, in one file: `pack.rs`), so memory holds only paths and digests. Binary
//! files and files over the limit are left out: the viewer shows their metadata instead.

mod pack;

pub(crate) use pack::ContentPack;

use std::collections::HashMap;
use std::io::Read;

use crate::digest::Digest;
use crate::engine::context::BuildContext;
use crate::engine::layer::StageLayer;
use crate::fs::root::Root;
use crate::fs::{Change, ChangeKind, FileType};
use trowel_events::FileContent;
use trowel_events::{Event, StepId};

pub(crate) struct ContentCapture {
    /// Every changed path's metadata and digest before its step (asked for with contents).
    pub before: crate::engine::before::Before,
    limit: u64,
    store: ContentPack,
    /// (stage, path) → digest of the content as the build last saw it, or `None` when it was
    /// absent, binary or too large. Paths not in here are as the base image left them.
    known: HashMap<(usize, String), Option<Digest>>,
}

impl ContentCapture {
    pub fn new(limit: u64, store: ContentPack) -> ContentCapture {
        ContentCapture { before: Default::default(), limit, store, known: HashMap::new() }
    }

    /// A copy for a lane of a build for several platforms (see `engine/lanes.rs`): what the
    /// shared stages left, the same store.
    pub fn fork(&self) -> ContentCapture {
        ContentCapture {
            before: self.before.clone(),
            limit: self.limit,
            store: self.store.clone(),
            known: self.known.clone(),
        }
    }

    /// Takes back what a lane recorded.
    pub fn absorb(&mut self, lane: ContentCapture) {
        self.before.absorb(lane.before);
        self.known.extend(lane.known);
    }

    /// Records a path's content (`None`: absent, binary or too large).
    fn set(&mut self, stage: usize, path: &str, text: Option<&str>) {
        let digest = text.and_then(|t| self.store.put(t.as_bytes()).ok());
        self.known.insert((stage, path.to_string()), digest);
    }

    fn get(&self, stage: usize, path: &str) -> Option<String> {
        let d = self.known.get(&(stage, path.to_string()))?.as_ref()?;
        String::from_utf8(self.store.read(d).ok()?).ok()
    }
}

/// Text worth showing as a diff: UTF-8 without NUL bytes.
fn as_text(bytes: Vec<u8>) -> Option<String> {
    if bytes.contains(&0) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

impl ContentCapture {
    /// Reports the before/after content of the small text files step `id` of stage `stage`
    /// changed. `layers`: the stage's layers so far (its base's are read for "before");
    /// `root`: the stage's root, if it has one (read for "after").
    pub(crate) fn capture(
        &mut self,
        ctx: &BuildContext<'_>,
        stage: usize,
        layers: &[StageLayer],
        root: Option<&Root>,
        id: StepId,
        changes: &[Change],
    ) {
        let limit = self.limit;
        let relevant: Vec<&Change> = changes
            .iter()
            .filter(|c| {
                c.kind == ChangeKind::Deleted
                    || c.file_type == FileType::File && c.size <= limit
                    || c.previous.as_ref().is_some_and(|p| p.file_type == FileType::File && p.size <= limit)
            })
            .collect();
        if relevant.is_empty() {
            return;
        }
        // Files this build has not seen yet are as the base image left them.
        let from_base: Vec<String> = relevant
            .iter()
            .filter(|c| c.kind != ChangeKind::Added)
            .filter(|c| !self.known.contains_key(&(stage, c.path.clone())))
            .map(|c| c.path.clone())
            .collect();
        if !from_base.is_empty() {
            let base: Vec<StageLayer> =
                layers.iter().filter(|l| l.step().is_none_or(|id| id.stage != stage)).cloned().collect();
            self.read_base(ctx, stage, &base, &from_base);
        }
        let mut files = Vec::new();
        for c in relevant {
            let before = if c.kind == ChangeKind::Added { None } else { self.get(stage, &c.path) };
            let after = match (c.kind, root) {
                (ChangeKind::Deleted, _) | (_, None) => None,
                (_, Some(r)) if c.file_type == FileType::File && c.size <= limit => r
                    .open_file(&c.path)
                    .ok()
                    .and_then(|f| {
                        let mut buf = Vec::new();
                        f.take(limit + 1).read_to_end(&mut buf).ok().map(|_| buf)
                    })
                    .and_then(as_text),
                _ => None,
            };
            self.set(stage, &c.path, after.as_deref());
            if before.is_some() || after.is_some() {
                files.push(FileContent { path: c.path.clone(), before, after });
            }
        }
        if !files.is_empty() {
            ctx.emitter.emit(Event::FileContents { id, files });
        }
    }

    /// Records what the layers a stage started from hold at `paths`, in one pass over them.
    fn read_base(&mut self, ctx: &BuildContext<'_>, stage: usize, base: &[StageLayer], paths: &[String]) {
        let limit = self.limit;
        let wanted: std::collections::HashSet<&str> = paths.iter().map(String::as_str).collect();
        // An entry that is not a small text file (or a whiteout of the path or of a directory
        // above it) leaves no content.
        let found = crate::engine::layer_paths::read_paths(ctx, base, &wanted, |found| {
            let size = found.size;
            let content = found.content.as_mut().filter(|_| size <= limit)?;
            let mut buf = Vec::new();
            content.take(limit + 1).read_to_end(&mut buf).ok()?;
            as_text(buf)
        });
        for p in paths {
            self.set(stage, p, found.get(p.as_str()).cloned().flatten().as_deref());
        }
    }
}
