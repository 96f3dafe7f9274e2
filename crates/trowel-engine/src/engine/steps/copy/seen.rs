//! The context files a step's cache key was made from, as the key saw them, kept until the step
//! reads them: a COPY/ADD must copy exactly those files, or fail.
//!
//! A step's key is made when its stage is planned (`layer_cache::plan`), from each source file's
//! lstat and content digest (memoised by that stat, `engine/context_digests.rs`). The copy reads
//! the files later: after the RUNs before it, or, for a deferred COPY (`stage/defer.rs`), when a
//! reader of its stage needs it, possibly after long RUNs of other stages. Anything that writes
//! to the context meanwhile (an editor saving, a CI job, a generator) gave a layer the key does
//! not describe, and its cache entry then served that layer to a later build whose context had
//! the old content again.
//!
//! So the copy shows every source entry it reads to a [`Checker`] (an [`fs::copy::Watch`]),
//! which refuses any that differs from what the key saw: a path the key did not have (added),
//! another type (a file replaced by a symlink), another mode or link target, and for a regular
//! file another [identity](crate::engine::context_digests::Identity) — device, inode, size,
//! mtime, ctime, mode — in the lstat the copy found it by and in the open file's fstat before
//! and after its content was read. Once the copy is done, a path the key had that the copy never
//! read was removed. Any write to a file sets its ctime to now, and no user can set a ctime, so
//! an identity equal to the key's means the bytes copied are the bytes hashed — without reading
//! them again: the copy uses `copy_file_range` and never sees them, so hashing while copying
//! would cost a COPY a SHA-256 of everything it copies. (A write in the same tick of the file
//! system's clock as the key's own stat leaves the ctime as it was: the limit of any stat check,
//! git's "racily clean" case.)
//!
//! [`fs::copy::Watch`]: crate::fs::copy::Watch

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use crate::engine::context_digests::{Identity, identity};
use crate::fs::copy::Watch;
use crate::fs::{FileType, FsError, Stat};

/// One context path as the key saw it.
#[derive(Clone, PartialEq)]
struct Observed {
    kind: FileType,
    mode: u32,
    link: Option<String>,
    /// A regular file's identity (what its digest was hashed, or memoised, at).
    id: Option<Identity>,
}

/// The context paths one step's key covers, relative to the context (no leading `/`).
#[derive(Default, Clone)]
pub(crate) struct Seen {
    paths: HashMap<String, Observed>,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Seen({} paths)", self.paths.len())
    }
}

/// A path as the key records it, and as [`Checker`] looks it up: no leading `/`.
fn rel(path: &str) -> &str {
    path.trim_start_matches('/')
}

impl Seen {
    /// Records `path` as its lstat `st` shows it (`link`: a symlink's target).
    pub fn record(&mut self, path: &str, st: &Stat, link: Option<String>) {
        let id = (st.file_type == FileType::File).then(|| identity(st));
        self.paths.insert(rel(path).to_string(), Observed { kind: st.file_type, mode: st.mode, link, id });
    }

    /// Adds what another key input saw (a RUN's several bind mounts).
    pub fn extend(&mut self, other: Seen) {
        self.paths.extend(other.paths);
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// A checker for one run of the step.
    pub fn checker(&self) -> Checker<'_> {
        Checker { seen: self, read: RefCell::new(HashSet::new()) }
    }
}

/// Checks one run of a step against what its key saw (see the module's comment).
pub(crate) struct Checker<'a> {
    seen: &'a Seen,
    /// The paths the copy read.
    read: RefCell<HashSet<String>>,
}

/// The error that ends a copy that read something its key did not describe.
fn changed(path: &str, what: impl Into<String>) -> FsError {
    FsError::SourceChanged { path: rel(path).to_string(), what: what.into() }
}

/// What differs between a regular file's identity when the key was made and `now`.
fn how_written(then: Identity, now: &Stat) -> String {
    let (dev, ino, size, ..) = then;
    if (dev, ino) != (now.dev, now.ino) {
        "was replaced by another file".to_string()
    } else if size != now.size {
        format!("was written to ({size} bytes when the step's cache key was made, {} now)", now.size)
    } else if then.7 != now.mode {
        format!("had its mode changed ({:o}, now {:o})", then.7, now.mode)
    } else {
        "was written to (its change time differs from when the step's cache key was made)".to_string()
    }
}

impl Checker<'_> {
    fn expected(&self, path: &str) -> Result<&Observed, FsError> {
        self.seen
            .paths
            .get(rel(path))
            .ok_or_else(|| changed(path, "was added after the step's cache key was made from the context"))
    }

    /// Whether the key saw `path`.
    pub fn knows(&self, path: &str) -> bool {
        self.seen.paths.contains_key(rel(path))
    }

    /// A source the step reads whole, not through a copy (an ADD's local archive): shown by
    /// its lstat before it is read and again after.
    pub fn whole(&self, path: &str, st: &Stat) -> Result<(), FsError> {
        self.entry(path, st)
    }

    /// Once the step read everything: the first path the key had that the step did not read.
    pub fn finish(&self) -> Result<(), FsError> {
        let read = self.read.borrow();
        let mut missing: Vec<&String> = self.seen.paths.keys().filter(|p| !read.contains(*p)).collect();
        missing.sort();
        match missing.first() {
            Some(p) => Err(changed(p, "was removed after the step's cache key was made from the context")),
            None => Ok(()),
        }
    }
}

impl Watch for Checker<'_> {
    fn entry(&self, path: &str, st: &Stat) -> Result<(), FsError> {
        let o = self.expected(path)?;
        let kind = if st.file_type == FileType::Hardlink { FileType::File } else { st.file_type };
        if kind != o.kind {
            let what = format!("is now {} (it was {} when the step's cache key was made)", kind.noun(), o.kind.noun());
            return Err(changed(path, what));
        }
        if let Some(id) = o.id
            && identity(st) != id
        {
            return Err(changed(path, how_written(id, st)));
        }
        if st.mode != o.mode {
            return Err(changed(path, format!("had its mode changed ({:o}, now {:o})", o.mode, st.mode)));
        }
        self.read.borrow_mut().insert(rel(path).to_string());
        Ok(())
    }

    fn link(&self, path: &str, target: &str) -> Result<(), FsError> {
        let o = self.expected(path)?;
        match &o.link {
            Some(t) if t == target => Ok(()),
            t => {
                Err(changed(path, format!("now points to {target:?} (it pointed to {:?})", t.as_deref().unwrap_or(""))))
            }
        }
    }

    fn read(&self, path: &str, before: &Stat, after: &Stat) -> Result<(), FsError> {
        let Some(id) = self.expected(path)?.id else {
            return Err(changed(path, "is now a regular file"));
        };
        if identity(before) != id {
            return Err(changed(path, how_written(id, before)));
        }
        if identity(after) != id {
            return Err(changed(path, format!("changed while it was copied ({})", how_written(id, after))));
        }
        Ok(())
    }
}
