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
//! link to a file left out (or to a link left unmade for that reason: a chain of links, one
//! more of it found per pass). [`extract`] then adds those paths and applies the layers again
//! into a fresh root, a bounded number of times; past that the caller unpacks everything
//! instead.
//!
//! Directory mtimes: a directory the selection writes into gets the same writes as in the full
//! root, so its time is the full root's; an ancestor of a prefix gets its entry's mode, owner,
//! xattrs and time, but a full unpack may later have changed its mtime by writing a file left
//! out here (it then holds the time of that unpack, which no image reader relies on).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tar::EntryType;

use super::path;
use super::unpack::{UnpackOptions, UnpackStats, entry_path};
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
    /// Hard links this pass left unmade because their file was left out (or was itself such a
    /// link): a link to one of them waits for the same next pass, where a full unpack would
    /// have found the file.
    deferred: Mutex<BTreeSet<String>>,
}

impl Selection {
    /// Keeps files at or below each of `prefixes` (cleaned here).
    pub fn new(prefixes: impl IntoIterator<Item = impl AsRef<str>>) -> Selection {
        let mut v: Vec<String> = prefixes.into_iter().map(|p| path::clean(p.as_ref())).collect();
        v.sort();
        v.dedup();
        Selection { prefixes: v, wants: Mutex::new(BTreeSet::new()), deferred: Mutex::new(BTreeSet::new()) }
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

    /// Records a hard link this pass left unmade (see the `deferred` field).
    pub(crate) fn defer(&self, p: String) {
        self.deferred.lock().unwrap_or_else(|e| e.into_inner()).insert(p);
    }

    /// Whether `p` is a hard link this pass left unmade.
    pub(crate) fn deferred(&self, p: &str) -> bool {
        self.deferred.lock().unwrap_or_else(|e| e.into_inner()).contains(p)
    }

    fn take_wants(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.wants.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// An entry a selection leaves out is still refused where a full unpack would refuse it for
/// what it is (a device where devices are not allowed, a hard link to an unsafe path); its
/// data is read past (and so hashed) by the archive.
pub(crate) fn check_left_out<R: Read>(
    entry: &tar::Entry<'_, R>,
    etype: EntryType,
    opts: &UnpackOptions,
    raw_name: &str,
) -> Result<(), FsError> {
    if matches!(etype, EntryType::Char | EntryType::Block) && !opts.allow_devices {
        return Err(FsError::DeviceNotAllowed {
            entry: raw_name.to_string(),
            reason: "device nodes are not allowed for this unpack".into(),
        });
    }
    if etype == EntryType::Link {
        let link = entry.link_name_bytes().ok_or_else(|| FsError::UnsafeEntry {
            entry: raw_name.to_string(),
            reason: "hardlink without a target".into(),
        })?;
        entry_path(&link, raw_name, false)?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{Digest, HashingReader};
    use crate::fs::unpack::unpack_layer;

    fn entry(b: &mut tar::Builder<Vec<u8>>, kind: EntryType, name: &str, link: &[u8], data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn scratch() -> (tempfile::TempDir, Root) {
        let d = tempfile::Builder::new().prefix("trowel-extract-").tempdir_in("/var/tmp").unwrap();
        let r = Root::open(d.path()).unwrap();
        (d, r)
    }

    fn selecting(prefix: &str, allow_devices: bool) -> UnpackOptions {
        UnpackOptions { select: Some(Arc::new(Selection::new([prefix]))), allow_devices, ..UnpackOptions::default() }
    }

    /// A chain of hard links (each a link to the one before, as a hand-written layer may have
    /// it) read at its end: each pass finds one more of it outside the selection, and the
    /// extraction settles once the file is in, with the content a full unpack gives; a longer
    /// chain than the passes allow is left to a full unpack. A link to a file that never
    /// existed is still refused.
    #[test]
    fn a_chain_of_hard_links_is_followed_one_link_per_pass() {
        let chain = |n: usize| {
            let mut b = tar::Builder::new(Vec::new());
            entry(&mut b, EntryType::Regular, "c/h0", b"", b"end\n");
            for i in 1..=n {
                entry(&mut b, EntryType::Link, &format!("c/h{i}"), format!("c/h{}", i - 1).as_bytes(), b"");
            }
            b.into_inner().unwrap()
        };
        let run = |tar: &[u8], read: &str| {
            let d = tempfile::Builder::new().prefix("trowel-extract-").tempdir_in("/var/tmp").unwrap();
            let apply = |root: &Root, o: &UnpackOptions| unpack_layer(root, tar, o);
            let found = extract(d.path(), &[read.to_string()], &UnpackOptions::default(), |e| e, apply, |_| Ok(vec![]))
                .unwrap();
            let content = found.as_ref().map(|x| std::fs::read_to_string(x.dir.join(&read[1..])).unwrap());
            (found.map(|x| x.passes), content)
        };
        assert_eq!(run(&chain(3), "/c/h3"), (Some(4), Some("end\n".to_string())));
        assert_eq!(run(&chain(1), "/c/h1"), (Some(2), Some("end\n".to_string())));
        assert_eq!(run(&chain(4), "/c/h4"), (None, None), "five passes would be needed");
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, EntryType::Link, "c/h1", b"c/nothing", b"");
        entry(&mut b, EntryType::Link, "c/h2", b"c/h1", b"");
        let tar = b.into_inner().unwrap();
        let d = tempfile::Builder::new().prefix("trowel-extract-").tempdir_in("/var/tmp").unwrap();
        let apply = |root: &Root, o: &UnpackOptions| unpack_layer(root, &tar[..], o);
        let Err(err) =
            extract(d.path(), &["/c/h2".to_string()], &UnpackOptions::default(), |e| e, apply, |_| Ok(vec![]))
        else {
            panic!("a link to a file that never existed was extracted");
        };
        assert!(err.to_string().contains("hardlink target /c/nothing does not exist"), "{err}");
    }

    /// Left-out entries are refused for what they are, as a full unpack refuses them.
    #[test]
    fn left_out_entries_are_still_checked() {
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, EntryType::Link, "elsewhere/x", b"../../etc/passwd", b"");
        let tar = b.into_inner().unwrap();
        let (_d, root) = scratch();
        let err = unpack_layer(&root, &tar[..], &selecting("/out", false)).unwrap_err();
        assert!(matches!(err, FsError::UnsafeEntry { .. }), "{err}");

        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, EntryType::Char, "dev/zero", b"", b"");
        let tar = b.into_inner().unwrap();
        let (_d, root) = scratch();
        let err = unpack_layer(&root, &tar[..], &selecting("/out", false)).unwrap_err();
        assert!(matches!(err, FsError::DeviceNotAllowed { .. }), "{err}");
    }

    /// A left-out file's data still goes through the reader, so the layer's diff_id check
    /// covers it: the digest of what the unpack read is the digest of the whole tar.
    #[test]
    fn left_out_data_is_read_and_hashed() {
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, EntryType::Regular, "big/blob", b"", &vec![7u8; 300_000]);
        entry(&mut b, EntryType::Regular, "out/kept", b"", b"kept");
        let tar = b.into_inner().unwrap();
        let (d, root) = scratch();
        let mut reader = HashingReader::new(&tar[..]);
        let stats = unpack_layer(&root, &mut reader, &selecting("/out", false)).unwrap();
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        let (_, digest, n) = reader.finish();
        assert_eq!((digest, n), (Digest::of(&tar), tar.len() as u64));
        assert_eq!((stats.skipped, stats.bytes), (1, 4));
        assert!(!d.path().join("big/blob").exists() && d.path().join("out/kept").exists());
    }
}
