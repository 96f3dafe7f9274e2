//! Small text files' content before and after each step, for the debugger's diff view and for
//! traces (`FileContents` events).
//!
//! "After" is read from the build root once a step is snapshotted. "Before" is what an earlier
//! step of this build left (remembered here) or, for a file the base image provided, read from
//! the stage's base layers — indexed in one pass per stage, only the first time a step changes
//! a base file. Contents are kept on disk (content-addressed), so memory holds only paths and
//! digests. Binary files and files over the limit are left out: the viewer shows their
//! metadata instead.

use std::collections::HashMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::build::engine::Engine;
use crate::build::event::{Event, StepId};
use crate::build::stage::{StageLayer, StageState};
use crate::digest::Digest;
use crate::fs::{Change, ChangeKind, FileType};
use crate::image::store::BlobStore;

/// One file's content around a step (`None`: absent, binary, or too large).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContent {
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

pub(crate) struct ContentCapture {
    limit: u64,
    store: BlobStore,
    /// (stage, path) → digest of the content as the build last saw it.
    known: HashMap<(usize, String), Digest>,
    /// Stages whose base layers were indexed (once per stage).
    indexed: Vec<usize>,
}

impl ContentCapture {
    pub fn new(limit: u64, store: BlobStore) -> ContentCapture {
        ContentCapture { limit, store, known: HashMap::new(), indexed: Vec::new() }
    }

    fn put(&mut self, stage: usize, path: &str, text: &str) {
        if let Ok(d) = self.store.put(text.as_bytes()) {
            self.known.insert((stage, path.to_string()), d);
        }
    }

    fn get(&self, stage: usize, path: &str) -> Option<String> {
        let d = self.known.get(&(stage, path.to_string()))?;
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

impl Engine<'_> {
    /// Reports the before/after content of the small text files a step changed.
    pub(crate) fn capture_contents(&mut self, st: &StageState, id: StepId, changes: &[Change]) {
        let Some(cap) = self.contents.as_ref() else { return };
        let limit = cap.limit;
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
        // A file this build has not seen yet came from the base image: index the base once.
        let needs_base = relevant.iter().any(|c| {
            c.kind != ChangeKind::Added
                && self.contents.as_ref().is_some_and(|cap| !cap.known.contains_key(&(st.index, c.path.clone())))
        });
        if needs_base && !self.contents.as_ref().is_some_and(|c| c.indexed.contains(&st.index)) {
            self.index_base(st);
        }
        let root = st.root.as_ref().map(|r| r.root());
        let mut files = Vec::new();
        let cap = self.contents.as_mut().expect("checked above");
        for c in relevant {
            let before = if c.kind == ChangeKind::Added { None } else { cap.get(st.index, &c.path) };
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
            match &after {
                Some(t) => cap.put(st.index, &c.path, t),
                None => {
                    cap.known.remove(&(st.index, c.path.clone()));
                }
            }
            if before.is_some() || after.is_some() {
                files.push(FileContent { path: c.path.clone(), before, after });
            }
        }
        if !files.is_empty() {
            self.emitter.emit(Event::FileContents { id, files });
        }
    }

    /// Remembers the small text files of the layers a stage started from.
    fn index_base(&mut self, st: &StageState) {
        let base: Vec<StageLayer> = st
            .layers
            .iter()
            .filter(|l| !matches!(l.origin, crate::build::stage::LayerOrigin::Built(id) if id.stage == st.index))
            .cloned()
            .collect();
        if self.fetch_blobs(&base).is_err() {
            return;
        }
        let limit = self.contents.as_ref().map(|c| c.limit).unwrap_or(0);
        for l in &base {
            let Ok(file) = self.store.open_blob(&l.descriptor.digest) else { continue };
            let Ok(reader) = crate::fs::unpack::open_layer(file) else { continue };
            let mut archive = tar::Archive::new(reader);
            let Ok(entries) = archive.entries() else { continue };
            for entry in entries {
                let Ok(mut entry) = entry else { break };
                let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let path = format!("/{}", raw.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/'));
                let name = path.rsplit('/').next().unwrap_or_default().to_string();
                let cap = self.contents.as_mut().expect("capturing");
                if let Some(hidden) = name.strip_prefix(".wh.") {
                    let victim = format!("{}/{hidden}", path.rsplit_once('/').map(|(p, _)| p).unwrap_or(""));
                    cap.known.retain(|(s, p), _| {
                        !(*s == st.index && (p == &victim || p.starts_with(&format!("{victim}/"))))
                    });
                    continue;
                }
                if entry.header().entry_type() != tar::EntryType::Regular || entry.size() > limit {
                    continue;
                }
                let mut buf = Vec::new();
                if entry.read_to_end(&mut buf).is_err() {
                    break;
                }
                if let Some(t) = as_text(buf) {
                    cap.put(st.index, &path, &t);
                }
            }
        }
        if let Some(cap) = self.contents.as_mut() {
            cap.indexed.push(st.index);
        }
    }
}
