//! Small text files' content before and after each step, for the debugger's diff view and for
//! traces (`FileContents` events).
//!
//! "After" is read from the build root once a step is snapshotted. "Before" is what an earlier
//! step of this build left (remembered here) or, for a file the base image provided, read from
//! the stage's base layers. Only the base files a step changed are looked up, once per build
//! and in the same pass as their "before" metadata and digests (`base_files.rs`): copying every
//! small file of a Debian base aside just in case cost seconds on each traced build. Contents are kept on disk
//! (content-addressed, in one file: `pack.rs`), so memory holds only paths and digests, and a
//! step's contents go out in events of about [`BATCH`] each. Binary files and files over the
//! limit are left out: the viewer shows their metadata instead.

mod pack;

pub(crate) use pack::ContentPack;

use std::collections::HashMap;
use std::io::Read;

use crate::digest::Digest;
use crate::engine::base_files::BaseFiles;
use crate::engine::before::Before;
use crate::engine::context::BuildContext;
use crate::engine::layer::StageLayer;
use crate::fs::root::Root;
use crate::fs::{Change, ChangeKind, FileType};
use trowel_events::FileContent;
use trowel_events::{Event, StepId};

/// The most content one `FileContents` event holds before the next one starts (plus the file
/// that reached it). A step's contents were one event: a COPY of 2,000 text files held 80 MB of
/// them in memory at once, twice over while the trace wrote them, where a batch holds 1 MiB;
/// readers add a step's events up (`BuildState::add_contents`).
const BATCH: u64 = 1 << 20;

pub(crate) struct ContentCapture {
    /// Every changed path's metadata and digest before its step (asked for with contents).
    pub before: Before,
    limit: u64,
    store: ContentPack,
    /// (stage, path) → digest of the content as the build last saw it, or `None` when it was
    /// absent, binary or too large. Paths not in here are as the base image left them.
    known: HashMap<(usize, String), Option<Digest>>,
}

impl ContentCapture {
    pub fn new(limit: u64, store: ContentPack) -> ContentCapture {
        let before = Before::new(BaseFiles::new(store.clone(), limit));
        ContentCapture { before, limit, store, known: HashMap::new() }
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
pub(crate) fn as_text(bytes: Vec<u8>) -> Option<String> {
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
        // Files this build has not seen yet are as the base image left them. The "before"
        // metadata of the step's changes (`Before::lookup`, after this) comes from the same
        // layers: asked for in the same pass.
        let from_base: Vec<&str> = relevant
            .iter()
            .filter(|c| c.kind != ChangeKind::Added)
            .filter(|c| !self.known.contains_key(&(stage, c.path.clone())))
            .map(|c| c.path.as_str())
            .collect();
        if !from_base.is_empty() {
            let mut asked = from_base.clone();
            asked.extend(self.before.base_paths(stage, &Before::wanted(changes, false)));
            asked.sort_unstable();
            asked.dedup();
            let found = self.before.base.get(ctx, stage, layers, &asked);
            for p in from_base {
                let text = found.get(p).cloned().flatten().and_then(|f| f.text);
                self.known.insert((stage, p.to_string()), text);
            }
        }
        let mut files = Vec::new();
        let mut held = 0u64;
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
                held += before.as_ref().map_or(0, |t| t.len() as u64) + after.as_ref().map_or(0, |t| t.len() as u64);
                files.push(FileContent { path: c.path.clone(), before, after });
            }
            if held >= BATCH {
                ctx.emitter.emit(Event::FileContents { id, files: std::mem::take(&mut files) });
                held = 0;
            }
        }
        if !files.is_empty() {
            ctx.emitter.emit(Event::FileContents { id, files });
        }
    }
}
