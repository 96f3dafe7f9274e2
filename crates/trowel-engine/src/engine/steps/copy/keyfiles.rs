//! What a COPY/ADD contributes to its cache key: every source file (path, type, mode, link
//! target, content digest, xattrs, the file of the same source it is a hard link of) exactly as
//! the copy will see it — after `.dockerignore` and
//! `--exclude`, with wildcards expanded — or, for `--from`, the files it copies from the stage
//! (`from_files.rs`) or the source image's digest; for a git repository, the commit it names.
//!
//! A context file's owner is not in a COPY's key (it is recorded as 0:0): the copy gives every
//! context file 0:0 or `--chown`'s owner whoever owns it on the build machine, as BuildKit does
//! (its clients reset the owners of the context they send), so it cannot change the layer. Keyed,
//! it made the same checkout cloned by another user miss, and in rootless isolation it would read
//! as the overflow id before the namespace's maps are written and as 0 after (`sandbox/userns.rs`).
//! A RUN's bind mount of the context shows the owners as they are, so its key keeps them, read
//! once the maps are written.

use std::collections::{BTreeMap, HashMap};

use trowel_events::StepId;

use crate::cache::key::{FileEntry, UNHASHED_SOURCE};
use crate::dockerfile::gitref::is_git_source;
use crate::dockerfile::{DockerIgnore, ExpandedCopy, ExpandedSource};
use crate::engine::context::BuildContext;
use crate::engine::context_digests::identity;
use crate::engine::error::StepError;
use crate::engine::layer_cache::copy_from::CopyFromRecords;
use crate::engine::stages::Stages;
use crate::engine::steps::copy::seen::Seen;
use crate::engine::steps::copy::{add, filter, from_files, git, is_url, sources, stage_index};
use crate::fs::cancel::{Checked, is_cancelled};
use crate::fs::copy::Filter;
use crate::fs::root::Root;
use crate::fs::{Cancel, FileType, FsError, ParentDirs, Stat};

pub(crate) struct KeyInputs {
    pub files: Vec<FileEntry>,
    pub sources: BTreeMap<String, String>,
    /// The context files as the key saw them, for the copy to be checked against.
    pub seen: Seen,
}

/// Gathers the key inputs of a COPY/ADD run by stage `stage`.
pub(crate) fn key_inputs(
    ctx: &BuildContext<'_>,
    stages: &mut Stages,
    records: &CopyFromRecords,
    id: StepId,
    c: &ExpandedCopy,
    is_add: bool,
) -> Result<KeyInputs, StepError> {
    let mut srcs = BTreeMap::new();
    if let Some(from) = &c.from {
        match stage_index(&ctx.plan, id.stage, from) {
            Some(p) => {
                // By the files it copies (`from_files.rs`), the stage's key only when they
                // cannot say what the step makes.
                if let Some(files) = from_files::stage_files(ctx, stages, records, p, c, is_add, id)? {
                    // The stage's key, unhashed: why the files changed, when they did.
                    if let Some(key) = stages.get(p).and_then(|s| s.final_key.clone()) {
                        srcs.insert(format!("{UNHASHED_SOURCE}{from}"), key);
                    }
                    let files = files.to_vec();
                    return Ok(KeyInputs { files, sources: srcs, seen: Seen::default() });
                }
                let key = stages
                    .get(p)
                    .and_then(|s| s.final_key.clone())
                    .ok_or_else(|| StepError::Invalid(format!("stage {from} has no cache key")))?;
                srcs.insert(format!("stage:{from}"), key);
            }
            None => {
                let img = ctx.resolve_once(from, Some(&ctx.plan.source_image_platform(id.stage)))?;
                srcs.insert(format!("image:{from}"), img.manifest_digest.to_string());
            }
        }
        return Ok(KeyInputs { files: Vec::new(), sources: srcs, seen: Seen::default() });
    }
    let excludes = excludes_of(c)?;
    let root = &ctx.context;
    let ignore = Some(&ctx.dockerignore);
    let mut w = Walked::stoppable(ctx);
    for s in &c.sources {
        match s {
            ExpandedSource::Heredoc { .. } => {}
            ExpandedSource::Path(p) if is_add && is_git_source(p) => {
                let req = git::request(p, c)?;
                let co = git::checkout(ctx, &req)?;
                let (name, commit) = git::key_source(&req, &co);
                srcs.insert(name, commit);
            }
            ExpandedSource::Path(p) if is_add && is_url(p) => {
                let dl = add::fetch_url(ctx, p, c.checksum.as_deref())?;
                w.files.push(FileEntry {
                    path: p.clone(),
                    kind: 'f',
                    mode: 0o600,
                    uid: 0,
                    gid: 0,
                    link: None,
                    digest: Some(dl.digest.into()),
                    xattrs: BTreeMap::new(),
                    hard_link: None,
                });
            }
            ExpandedSource::Path(p) => walk_matches(root, p, ignore, c.parents, excludes.as_ref(), &mut w)?,
        }
    }
    let Walked { mut files, pending, seen, .. } = w;
    hash_pending(ctx, &mut files, pending)?;
    for f in &mut files {
        (f.uid, f.gid) = (0, 0);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup();
    Ok(KeyInputs { files, sources: srcs, seen })
}

/// The `--exclude` patterns of `c`, parsed.
pub(super) fn excludes_of(c: &ExpandedCopy) -> Result<Option<DockerIgnore>, StepError> {
    if c.excludes.is_empty() {
        return Ok(None);
    }
    DockerIgnore::from_exclude_flags(&c.excludes)
        .map(Some)
        .map_err(|e| StepError::Invalid(format!("invalid --exclude: {e}")))
}

/// Walks what source argument `p` matches in `root` (the context when `ignore`, its
/// `.dockerignore`, is given; a stage's root otherwise) as the copy copies it: each match less
/// `--exclude`'s, its files left for hashing in `w`.
pub(super) fn walk_matches(
    root: &Root,
    p: &str,
    ignore: Option<&DockerIgnore>,
    parents: bool,
    excludes: Option<&DockerIgnore>,
    w: &mut Walked,
) -> Result<(), StepError> {
    for item in sources::expand(root, p, ignore, ignore.is_some(), parents)? {
        let sources::Item::Path { rel, .. } = item else { continue };
        if excludes.is_some_and(|x| x.is_excluded(&rel)) && root.lstat(&rel).ok().flatten().is_some_and(|s| !s.is_dir())
        {
            continue;
        }
        let f = filter::for_dir(&rel, excludes, ignore);
        // Each matched path is copied on its own (`copy_tree`), which keeps the hard links
        // within it: grouped per path.
        walk(root, &rel, "", &f, &mut Links::new(), w)?;
    }
    Ok(())
}

/// Every file under `rel` in the build context as a bind mount from it sees them
/// (`.dockerignore` applied), for a RUN's cache key: a bind mount's sources are covered as
/// COPY's are. With them, as the key saw them, for the RUN to be checked against.
pub(crate) fn context_tree(ctx: &BuildContext<'_>, rel: &str) -> Result<(Vec<FileEntry>, Seen), StepError> {
    // The owners are keyed: not before a rootless namespace's maps make them what RUN sees. A
    // failure to map is reported by the RUN, which cannot run without them either.
    let _ = crate::sandbox::userns::mapped();
    // A mount follows a symlinked source inside the context, as the mount itself does.
    let resolved = ctx.context.resolve(rel).map_err(StepError::fs(rel.to_string()))?;
    let rel = resolved.trim_start_matches('/');
    let mut w = Walked::stoppable(ctx);
    let f = filter::for_dir(rel, None, Some(&ctx.dockerignore));
    // The mount shows the context's hard links within the source (the context itself, or a
    // `copy_tree` of the source when a `.dockerignore` filters it): grouped as COPY groups them.
    walk(&ctx.context, rel, "", &f, &mut Links::new(), &mut w)?;
    let Walked { mut files, pending, seen, .. } = w;
    hash_pending(ctx, &mut files, pending)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, seen))
}

/// What [`walk`] found: the files as the key records them, the regular files' digests left for
/// [`hash_pending`], and the paths as the copy will be checked against (`seen.rs`).
#[derive(Default)]
pub(super) struct Walked {
    pub files: Vec<FileEntry>,
    pub pending: Vec<Pending>,
    pub seen: Seen,
    /// Looked at before each entry: a stopped build gives up a walk of a huge tree.
    pub cancel: Option<Cancel>,
    /// The directory last walked in, resolved once for all its entries. A `Walked` is used
    /// with one root: the directory is kept by its path in it.
    dirs: ParentDirs,
}

impl Walked {
    /// A walk that gives up when the build is stopped.
    pub(super) fn stoppable(ctx: &BuildContext<'_>) -> Walked {
        Walked { cancel: ctx.fs_cancel(), ..Walked::default() }
    }

    fn cancelled(&self, path: &str) -> Result<(), StepError> {
        cancelled(self.cancel.as_ref(), path)
    }
}

/// [`FsError::Cancelled`] for `path` once `cancel` says to give up: a key that is not made
/// fails its step's planning, and the step's checkpoint then ends the build as aborted.
fn cancelled(cancel: Option<&Cancel>, path: &str) -> Result<(), StepError> {
    Cancel::check(cancel).map_err(StepError::fs(path))
}

/// The SHA-256 of what `r` reads (`path` names it in errors), given up part way once `cancel`
/// says so (looked at every MiB: [`Checked`]).
pub(super) fn digest_until_cancelled(
    r: &mut impl std::io::Read,
    path: &str,
    cancel: Option<&Cancel>,
) -> Result<crate::digest::Digest, StepError> {
    match crate::digest::digest_reader(Checked::new(r, cancel)) {
        Ok((digest, _)) => Ok(digest),
        Err(e) if is_cancelled(&e) => Err(StepError::fs(path)(FsError::Cancelled)),
        Err(e) => Err(StepError::io(format!("read {path}"))(e)),
    }
}

/// A regular file whose content digest `walk` left for [`hash_pending`]: `files[at]`, as `walk`
/// found it (`st`). Its path is that entry's, not a copy (a COPY of 100,000 files has as many).
pub(super) struct Pending {
    pub at: usize,
    /// The walk's path had a leading `/` (a source at the top of its tree) that the entry's
    /// path does not: the digests' memo knows the file by the walk's path.
    slash: bool,
    pub st: Stat,
}

impl Pending {
    /// The path `walk` found it at.
    pub fn path<'f>(&self, files: &'f [FileEntry]) -> std::borrow::Cow<'f, str> {
        let p = files[self.at].path.as_str();
        if self.slash { format!("/{p}").into() } else { p.into() }
    }
}

/// Below this many bytes to read, the files are hashed on the calling thread.
const PARALLEL_HASH_BYTES: u64 = 8 << 20;
/// Threads that hash a big source at once (a COPY of hundreds of megabytes is bound by SHA-256
/// on one core otherwise, while the others wait for its key).
const HASH_THREADS: usize = 4;

/// Fills in the digests of the files `walk` left, each taken from the build's memo or read and
/// hashed (see [`BuildContext::context_digest`]); big sources on several threads. An error is
/// the one of the first such file in walk order, whichever thread met it.
///
/// The memo keeps a digest with the stat `walk` found the file by, and the copy is checked
/// against that stat (`seen.rs`): the file is hashed only if, open, it still has that stat,
/// before and after its content is read. Otherwise it changed since `walk` saw it, and the
/// step fails (`StepError::ContextChanged`) rather than keep a digest of other bytes under it.
fn hash_pending(ctx: &BuildContext<'_>, files: &mut [FileEntry], pending: Vec<Pending>) -> Result<(), StepError> {
    let cancel = ctx.fs_cancel();
    let hash = |path: &str, st: &Stat| {
        let root = &ctx.context;
        cancelled(cancel.as_ref(), path)?;
        ctx.context_digest(path, st, || {
            let (f, opened) = root.open_file_stat(path).map_err(StepError::fs(path))?;
            let same = |f: &std::fs::File| -> Result<bool, StepError> {
                let now = root.fstat(path, f).map_err(StepError::fs(path))?;
                Ok(identity(&now) == identity(st))
            };
            if identity(&opened) != identity(st) {
                return Err(StepError::context_changed(path, "changed while the step's cache key was made"));
            }
            let mut r = std::io::BufReader::new(f);
            let digest = digest_until_cancelled(&mut r, path, cancel.as_ref())?;
            if !same(r.get_ref())? {
                return Err(StepError::context_changed(path, "changed while its digest was computed"));
            }
            Ok::<_, StepError>(digest)
        })
    };
    hash_all(files, &pending, &hash)
}

/// Pending files hashed on several threads between two fillings of their entries: what waits
/// to be filled in is bounded (a result is a hundred bytes; a COPY of 100,000 files has as many).
const HASH_BATCH: usize = 4096;

/// Fills in `files[p.at].digest` for each of `pending` with `hash`'s (of the file's path and
/// stat): big sources on several threads. An error is the one of the first such file in walk
/// order, whichever thread met it.
pub(super) fn hash_all(
    files: &mut [FileEntry],
    pending: &[Pending],
    hash: &(dyn Fn(&str, &Stat) -> Result<crate::digest::Digest, StepError> + Sync),
) -> Result<(), StepError> {
    let bytes: u64 = pending.iter().map(|p| p.st.size).sum();
    let threads = crate::fs::cores().min(HASH_THREADS).min(pending.len());
    if bytes < PARALLEL_HASH_BYTES || threads < 2 {
        for p in pending {
            let digest = hash(&p.path(files), &p.st)?;
            files[p.at].digest = Some(digest.into());
        }
        return Ok(());
    }
    for batch in pending.chunks(HASH_BATCH) {
        let shared: &[FileEntry] = files;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut done: Vec<(usize, Result<crate::digest::Digest, StepError>)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(p) = batch.get(i) else { break };
                            mine.push((i, hash(&p.path(shared), &p.st)));
                        }
                        mine
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        });
        done.sort_by_key(|(i, _)| *i);
        for (i, r) in done {
            files[batch[i].at].digest = Some(r?.into());
        }
    }
    Ok(())
}

fn entry(root: &Root, path: &str, st: &Stat, xattrs: BTreeMap<String, String>) -> Result<FileEntry, StepError> {
    let kind = match st.file_type {
        FileType::File | FileType::Hardlink => 'f',
        FileType::Dir => 'd',
        FileType::Symlink => 'l',
        FileType::CharDevice => 'c',
        FileType::BlockDevice => 'b',
        FileType::Fifo => 'p',
        FileType::Socket => 's',
    };
    let link = if kind == 'l' { Some(root.read_link(path).map_err(StepError::fs(path))?) } else { None };
    // A regular file's digest is filled in by `hash_pending`.
    Ok(FileEntry {
        path: path.trim_start_matches('/').to_string(),
        kind,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        link,
        digest: None,
        xattrs,
        hard_link: None,
    })
}

/// The xattrs `fs::copy` carries ([`crate::fs::is_image_xattr`]), each value as its SHA-256.
fn keyed_xattrs(all: Vec<(Vec<u8>, Vec<u8>)>) -> BTreeMap<String, String> {
    all.into_iter()
        .filter(|(name, _)| crate::fs::is_image_xattr(name))
        .map(|(name, value)| {
            (String::from_utf8_lossy(&name).into_owned(), crate::digest::Digest::of(&value).to_string())
        })
        .collect()
}

/// A source's regular files with more than one link: (device, inode) → the path recorded first.
pub(super) type Links = HashMap<(u64, u64), String>;

/// Records `rel` (+ `sub`) and, for a directory, what the copy filter lets through below it.
/// Walks `rel` in the build context; each regular file's digest is left to `hash_pending`
/// (hashed once per build, see [`BuildContext::context_digest`]). A regular file that is one
/// inode with one recorded before it in `links` names that one (`hard_link`), as
/// `fs::copy`'s `Copier::file` links it: by (device, inode) when `nlink > 1`, in the same walk
/// order (names sorted, a directory before what it holds, filtered alike).
pub(super) fn walk(
    root: &Root,
    rel: &str,
    sub: &str,
    f: &dyn Fn(&str) -> Filter,
    links: &mut Links,
    w: &mut Walked,
) -> Result<(), StepError> {
    let path = if sub.is_empty() { rel.to_string() } else { format!("{rel}/{sub}") };
    let decision = f(sub);
    if decision == Filter::Skip {
        return Ok(());
    }
    w.cancelled(&path)?;
    // A recorded path's xattrs are keyed too: read through the same open of its parent.
    let found = if decision == Filter::Copy {
        root.lstat_xattrs_in(&path, &mut w.dirs).map_err(StepError::fs(path.clone()))?
    } else {
        root.lstat_in_dirs(&path, &mut w.dirs).map_err(StepError::fs(path.clone()))?.map(|st| (st, Vec::new()))
    };
    let Some((st, xattrs)) = found else { return Ok(()) };
    if decision == Filter::Copy {
        let mut e = entry(root, &path, &st, keyed_xattrs(xattrs))?;
        w.seen.record(&e.path, &st, e.link.clone());
        if e.kind == 'f' {
            w.pending.push(Pending { at: w.files.len(), slash: path.starts_with('/'), st: st.clone() });
            if st.nlink > 1 {
                match links.get(&(st.dev, st.ino)) {
                    Some(first) => e.hard_link = Some(first.clone()),
                    None => {
                        links.insert((st.dev, st.ino), e.path.clone());
                    }
                }
            }
        }
        w.files.push(e);
    }
    if st.is_dir() {
        for name in root.read_dir(&path).map_err(StepError::fs(path.clone()))? {
            let child = if sub.is_empty() { name } else { format!("{sub}/{name}") };
            walk(root, rel, &child, f, links, w)?;
        }
    }
    Ok(())
}

/// After a RUN whose bind mounts show the context read it: each mounted context path (`rels`)
/// walked again as [`context_tree`] walked it for the key, stat only, and checked against what
/// the key saw (`seen.rs`). The RUN read the files itself, so no open file can be checked; but
/// any write sets a file's ctime to now, which nobody can set back, so a tree whose every stat
/// is still the key's was not written to while the RUN ran, nor since the key was made.
pub(crate) fn recheck_context_tree(ctx: &BuildContext<'_>, rels: &[&str], seen: &Seen) -> Result<(), StepError> {
    let checker = seen.checker();
    for rel in rels {
        let resolved = ctx.context.resolve(rel).map_err(StepError::fs(rel.to_string()))?;
        let rel = resolved.trim_start_matches('/');
        let f = filter::for_dir(rel, None, Some(&ctx.dockerignore));
        rewalk(ctx, rel, "", &f, &checker)?;
    }
    checker.finish().map_err(StepError::copy("the build context"))
}

/// [`walk`]'s order and filter, each recorded path shown to `checker`.
fn rewalk(
    ctx: &BuildContext<'_>,
    rel: &str,
    sub: &str,
    f: &dyn Fn(&str) -> Filter,
    checker: &crate::engine::steps::copy::seen::Checker<'_>,
) -> Result<(), StepError> {
    use crate::fs::copy::Watch;
    let path = if sub.is_empty() { rel.to_string() } else { format!("{rel}/{sub}") };
    let decision = f(sub);
    if decision == Filter::Skip {
        return Ok(());
    }
    let root = &ctx.context;
    let Some(st) = root.lstat(&path).map_err(StepError::fs(path.clone()))? else { return Ok(()) };
    if decision == Filter::Copy {
        checker.entry(&path, &st).map_err(StepError::copy(path.clone()))?;
        if st.file_type == FileType::Symlink {
            let target = root.read_link(&path).map_err(StepError::fs(path.clone()))?;
            checker.link(&path, &target).map_err(StepError::copy(path.clone()))?;
        }
    }
    if st.is_dir() {
        for name in root.read_dir(&path).map_err(StepError::fs(path.clone()))? {
            let child = if sub.is_empty() { name } else { format!("{sub}/{name}") };
            rewalk(ctx, rel, &child, f, checker)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A big source is hashed with a look at the stop every MiB (not every read), and given up
    /// at the first look after the stop; not stopped, its digest is the plain one.
    #[test]
    fn hashing_looks_at_the_stop_between_chunks() {
        let data = || std::io::repeat(7).take(8 << 20);
        let looks = Arc::new(AtomicUsize::new(0));
        let counted = looks.clone();
        let never = Cancel::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            false
        });
        let d = digest_until_cancelled(&mut data(), "big", Some(&never)).unwrap();
        assert_eq!(d, crate::digest::Digest::of(&vec![7u8; 8 << 20]));
        assert_eq!(looks.load(Ordering::Relaxed), 8, "one look per MiB");
        let now = Cancel::new(|| true);
        let r = digest_until_cancelled(&mut data(), "big", Some(&now));
        assert!(matches!(r, Err(StepError::Fs { source: FsError::Cancelled, .. })), "{r:?}");
    }
}

#[cfg(test)]
mod hash_tests {
    use super::*;
    use crate::digest::Digest;
    use crate::fs::Timespec;

    fn stat(size: u64) -> Stat {
        let t = Timespec::default();
        let (mode, nlink) = (0o644, 1);
        Stat {
            file_type: FileType::File,
            mode,
            uid: 0,
            gid: 0,
            size,
            nlink,
            dev: 0,
            ino: 0,
            rdev: 0,
            atime: t,
            mtime: t,
            ctime: t,
        }
    }

    /// `n` pending files, every other one walked with a leading `/`, each big enough that they
    /// are hashed on several threads (the hash below reads nothing).
    fn pending_files(n: usize) -> (Vec<FileEntry>, Vec<Pending>) {
        let files = (0..n).map(|i| FileEntry::regular(&format!("d/f{i}"), None)).collect();
        let pending = (0..n).map(|at| Pending { at, slash: at % 2 == 1, st: stat(PARALLEL_HASH_BYTES) }).collect();
        (files, pending)
    }

    fn walked(i: usize) -> String {
        if i % 2 == 1 { format!("/d/f{i}") } else { format!("d/f{i}") }
    }

    #[test]
    fn every_pending_file_gets_the_digest_of_what_its_walk_found() {
        let n = 2 * HASH_BATCH + 7;
        let (mut files, pending) = pending_files(n);
        hash_all(&mut files, &pending, &|path, _| Ok(Digest::of(path.as_bytes()))).unwrap();
        for (i, f) in files.iter().enumerate() {
            assert_eq!(f.digest, Some(Digest::of(walked(i).as_bytes()).into()), "file {i}");
        }
    }

    #[test]
    fn an_error_is_the_first_file_s_in_walk_order_whichever_batch_or_thread() {
        let n = 2 * HASH_BATCH + 7;
        let (mut files, pending) = pending_files(n);
        let bad = [walked(2 * HASH_BATCH + 1), walked(HASH_BATCH + 3)];
        let err = hash_all(&mut files, &pending, &|path, _| match bad.iter().any(|b| b == path) {
            true => Err(StepError::context_changed(path, "changed")),
            false => Ok(Digest::of(path.as_bytes())),
        })
        .unwrap_err();
        // (The message names it relative to the context.)
        assert!(err.to_string().contains(&format!(" d/f{} ", HASH_BATCH + 3)), "{err}");
        assert!(files[..HASH_BATCH].iter().all(|f| f.digest.is_some()), "the batch before it is filled in");
    }
}
