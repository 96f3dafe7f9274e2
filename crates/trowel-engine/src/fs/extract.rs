//! Partial extraction: a stage's or an image's layers applied into a scratch root, writing only
//! the files a reader asks for (`COPY --from=builder /out /app` wants `/out`, not the Debian
//! base under it).
//!
//! The result must read exactly as a full unpack would at the asked-for paths, so:
//! - every directory and every symlink of every layer is written (cheap: a base has a few
//!   hundred of each against thousands of files), with its metadata; the tree's *shape* is
//!   then the full one's, and any path resolves in the partial root exactly as in the full
//!   root, whatever symlinks and replaced directories lie on it;
//! - files, hard links and nodes are written when their resolved path lies at or below a
//!   selected prefix, or is an ancestor of one (a file where a directory was expected must
//!   fail the reader as it would in the full root), or replaces something already written
//!   (so no directory or symlink survives that a full unpack would have replaced);
//! - whiteouts and opaque directories are applied as always, to what is there;
//! - the layers' streams are read whole and checked as in a full unpack (the caller hashes
//!   them against their diff_ids): [`Selection`] only decides what is *written*.
//!
//! What is read may still lie outside the selection once the tree is known: a source whose
//! path crosses a symlink (`/out -> /build/out`), a wildcard's matches that are symlinks, a hard
//! link to a file left out. [`extract`] then adds those paths and applies the layers again into
//! a fresh root, a bounded number of times; past that the caller unpacks everything instead.
//!
//! Directory mtimes: a directory the selection writes into gets the same writes as in the full
//! root, so its time is the full root's; an ancestor of a prefix gets its entry's mode, owner,
//! xattrs and time, but a full unpack may later have changed its mtime by writing a file left
//! out here (it then holds the time of that unpack, which no image reader relies on).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tar::EntryType;

use super::path;
use super::unpack::{UnpackOptions, UnpackStats};
use super::{FsError, Root};

/// How many times the layers are applied before the caller is told to unpack them whole: one
/// pass, then one per round of paths found outside the selection (a symlinked directory, then
/// a hard link below it, …). Each pass reads every layer again.
pub const MAX_PASSES: usize = 4;

/// What a partial unpack writes: the image paths (resolved, cleaned, absolute) at and below
/// which files are kept, and what it found it needs besides.
#[derive(Debug)]
pub struct Selection {
    prefixes: Vec<String>,
    wants: Mutex<BTreeSet<String>>,
}

impl Selection {
    /// Keeps files at or below each of `prefixes` (cleaned here).
    pub fn new(prefixes: impl IntoIterator<Item = impl AsRef<str>>) -> Selection {
        let mut v: Vec<String> = prefixes.into_iter().map(|p| path::clean(p.as_ref())).collect();
        v.sort();
        v.dedup();
        Selection { prefixes: v, wants: Mutex::new(BTreeSet::new()) }
    }

    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    /// Whether `p` (a resolved image path) lies at or below a selected prefix: everything there
    /// is written as a full unpack writes it.
    pub fn covers(&self, p: &str) -> bool {
        self.prefixes.iter().any(|x| path::is_within(p, x))
    }

    /// Whether an entry of type `etype` landing at `target` (resolved in `root`) is written.
    pub(crate) fn writes(&self, etype: EntryType, target: &str, root: &Root) -> Result<bool, FsError> {
        match etype {
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Link
            | EntryType::Char
            | EntryType::Block
            | EntryType::Fifo => {}
            // Directories and symlinks give the tree its shape; any other kind is refused by
            // the applier, as in a full unpack.
            _ => return Ok(true),
        }
        if self.covers(target) || self.prefixes.iter().any(|x| path::is_within(x, target)) {
            return Ok(true);
        }
        // Replacing what is there (a directory, a symlink): a full unpack would.
        Ok(root.lstat(target)?.is_some())
    }

    /// Records a path the next pass must write (a hard link's file that was left out).
    pub(crate) fn want(&self, p: String) {
        self.wants.lock().unwrap_or_else(|e| e.into_inner()).insert(p);
    }

    fn take_wants(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.wants.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A finished partial extraction.
pub struct Extraction {
    /// The host directory of the root.
    pub dir: PathBuf,
    pub root: Root,
    /// What its files cover: a later reader of paths all within these can use it as it is.
    pub prefixes: Vec<String>,
    /// How many times the layers were applied.
    pub passes: usize,
    /// The last pass's counts (entries written, bytes, entries left out).
    pub stats: UnpackStats,
}

impl Extraction {
    /// Whether every one of `paths` (resolved, absolute) is covered by this extraction.
    pub fn covers_all<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> bool {
        let sel = Selection::new(&self.prefixes);
        paths.into_iter().all(|p| sel.covers(&path::clean(p)))
    }
}

/// Extracts what `prefixes` select into `scratch/pass<n>` (made here; `scratch` must exist).
/// `apply_layers` applies every layer in order with the options it is given (checking each
/// against its diff_id); `reads` says which resolved paths a reader of the result will read
/// (directories it lists, files and trees it copies). `Ok(None)`: the paths read still leave
/// the selection after [`MAX_PASSES`] passes; unpack everything instead. Roots of earlier passes
/// are removed before the next is made. `fs_err` turns this function's own failures into `E`.
pub fn extract<E>(
    scratch: &Path,
    prefixes: &[String],
    opts: &UnpackOptions,
    fs_err: impl Fn(FsError) -> E,
    mut apply_layers: impl FnMut(&Root, &UnpackOptions) -> Result<UnpackStats, E>,
    mut reads: impl FnMut(&Root) -> Result<Vec<String>, E>,
) -> Result<Option<Extraction>, E> {
    let mut prefixes: BTreeSet<String> = prefixes.iter().map(|p| path::clean(p)).collect();
    for pass in 1..=MAX_PASSES {
        let dir = scratch.join(format!("pass{pass}"));
        std::fs::create_dir(&dir).map_err(|e| fs_err(host_err("create", &dir)(e)))?;
        let root = Root::open(&dir).map_err(&fs_err)?;
        let sel = Arc::new(Selection::new(&prefixes));
        let o = UnpackOptions { select: Some(Arc::clone(&sel)), ..opts.clone() };
        let stats = apply_layers(&root, &o)?;
        let mut missing: BTreeSet<String> = sel.take_wants();
        for p in reads(&root)? {
            let p = path::clean(&p);
            if !sel.covers(&p) {
                missing.insert(p);
            }
        }
        if missing.is_empty() {
            let prefixes = sel.prefixes().to_vec();
            return Ok(Some(Extraction { dir, root, prefixes, passes: pass, stats }));
        }
        drop(root);
        super::remove::remove_tree(&dir).map_err(|e| fs_err(host_err("remove", &dir)(e)))?;
        prefixes.extend(missing);
    }
    Ok(None)
}

/// An I/O error on a scratch directory itself (no root to speak of yet).
fn host_err(op: &'static str, dir: &Path) -> impl FnOnce(std::io::Error) -> FsError {
    let path = dir.display().to_string();
    move |source| FsError::Io { op, path, root: "(host)".into(), source }
}
