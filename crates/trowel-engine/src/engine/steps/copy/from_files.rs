//! What a `COPY --from=<stage>` contributes to its cache key: the files it copies, as a context
//! COPY's key holds them but with their owners (a stage's files keep theirs), read from the
//! stage's root when it has one, else named by a copy-from record of the cache repository, else
//! read from the stage's layers (see [`crate::cache::copy_from`]). BuildKit keys the step by
//! that content too, so a builder that ran again and made the same files leaves it a hit.

use std::sync::Arc;

use trowel_events::StepId;

use crate::cache::copy_from::{Part, Reading, identity};
use crate::cache::key::FileEntry;
use crate::dockerfile::{ExpandedCopy, ExpandedSource};
use crate::engine::context::BuildContext;
use crate::engine::copy_source::Need;
use crate::engine::error::StepError;
use crate::engine::known_digests::KnownDigests;
use crate::engine::layer_cache::copy_from::{CopyFromRecords, Found};
use crate::engine::stages::{BuiltStage, Stages};
use crate::engine::steps::copy::keyfiles::{
    Links, Walked, digest_until_cancelled, excludes_of, hash_all, walk, walk_matches,
};
use crate::engine::steps::copy::{filter, is_url};
use crate::fs::root::Root;

/// The files step `step` (`c`, a COPY or ADD) copies from finished stage `p`; `None` when they
/// cannot name the step's contents (an ADD of a URL or a git repository from a stage, read
/// from no stage at all; or a stage with no key), which is then keyed by the stage's key.
pub(crate) fn stage_files(
    ctx: &BuildContext<'_>,
    stages: &mut Stages,
    records: &CopyFromRecords,
    p: usize,
    c: &ExpandedCopy,
    is_add: bool,
    step: StepId,
) -> Result<Option<Arc<Vec<FileEntry>>>, StepError> {
    let Some(paths) = read_paths(c, is_add) else { return Ok(None) };
    let need = Need::Sources(paths.iter().map(|p| p.to_string()).collect());
    let read = |root: &Root, known: Option<&KnownDigests>| files_in(ctx, root, known, c);
    files_of(ctx, stages, records, p, (paths, &c.excludes, c.parents), need, step, &read)
}

/// The paths a COPY or ADD reads of its `--from` stage; `None` for one that reads elsewhere too
/// (an ADD of a URL or a git repository).
fn read_paths(c: &ExpandedCopy, is_add: bool) -> Option<Vec<&str>> {
    let mut paths = Vec::new();
    for s in &c.sources {
        match s {
            ExpandedSource::Path(p) if is_add && (is_url(p) || crate::dockerfile::gitref::is_git_source(p)) => {
                return None;
            }
            ExpandedSource::Path(p) => paths.push(p.as_str()),
            ExpandedSource::Heredoc { .. } => {}
        }
    }
    Some(paths)
}

/// Starts reading the copy-from record a COPY or ADD from finished stage `p` will look for, if
/// it will look for one (the stage has no root at hand, and this build does not know the files
/// yet): a stage's planning asks for all of them at once, then takes each when its step is
/// keyed (`layer_cache/plan.rs`).
pub(crate) fn ask_ahead(
    ctx: &BuildContext<'_>,
    stages: &Stages,
    records: &CopyFromRecords,
    p: usize,
    c: &ExpandedCopy,
    is_add: bool,
) {
    let Some(paths) = read_paths(c, is_add) else { return };
    if stages.root_at_hand(p).is_some() {
        return;
    }
    if let Some(id) = identity_of(stages, p, (paths, &c.excludes, c.parents)) {
        records.ask(ctx, &id);
    }
}

/// The identity of the record of what a reader named by `reading` (its sources, `--exclude`
/// and `--parents`) reads of finished stage `p`; `None` for a stage with no key.
fn identity_of(stages: &Stages, p: usize, reading: (Vec<&str>, &[String], bool)) -> Option<String> {
    let stage = stages.get(p).filter(|s| s.final_key.is_some())?;
    let (sources, excludes, parents) = reading;
    Some(identity(&Reading { layers: parts(stages, stage), sources, excludes, parents }))
}

/// The files a RUN's bind mount of `source` from finished stage `p` shows, as [`stage_files`]
/// finds a COPY's: with paths below `source` (`""` for `source` itself). `None` for a stage
/// with no key.
pub(crate) fn mount_files(
    ctx: &BuildContext<'_>,
    stages: &mut Stages,
    records: &CopyFromRecords,
    p: usize,
    source: &str,
    step: StepId,
) -> Result<Option<Arc<Vec<FileEntry>>>, StepError> {
    // Named apart from a COPY's sources: a mount follows `source` through symlinks, wildcards
    // are no wildcards to it, and it shows the whole tree.
    let named = format!("mount {source}");
    let read = |root: &Root, known: Option<&KnownDigests>| tree_in(ctx, root, known, source);
    files_of(ctx, stages, records, p, (vec![named.as_str()], &[], false), Need::Paths(vec![source.into()]), step, &read)
}

/// How a reader's files are found in a stage's root, with what its layer writer hashed.
type ReadFiles<'a> = dyn Fn(&Root, Option<&KnownDigests>) -> Result<Vec<FileEntry>, StepError> + 'a;

/// The files `read` finds in finished stage `p` for a reader named by `reading` (its sources,
/// `--exclude` and `--parents`): this build's, else its root's if it has one at hand, else a
/// copy-from record's, else those of the stage's layers extracted for `need` (kept for the step
/// itself, which reads them if it misses).
#[allow(clippy::too_many_arguments)]
fn files_of(
    ctx: &BuildContext<'_>,
    stages: &mut Stages,
    records: &CopyFromRecords,
    p: usize,
    reading: (Vec<&str>, &[String], bool),
    need: Need,
    step: StepId,
    read: &ReadFiles<'_>,
) -> Result<Option<Arc<Vec<FileEntry>>>, StepError> {
    let Some(id) = identity_of(stages, p, reading) else { return Ok(None) };
    if let Some(files) = records.known(&id) {
        return Ok(Some(files));
    }
    if let Some(root) = stages.root_at_hand(p) {
        return Ok(Some(records.made(ctx, &id, read(root, stages.known_digests(p))?)));
    }
    if let Found::Known(files) = records.find(ctx, &id)? {
        return Ok(Some(files));
    }
    let root = stages.stage_files(ctx, p, &need, step).map_err(|e| StepError::Invalid(e.to_string()))?;
    Ok(Some(records.made(ctx, &id, read(root, None)?)))
}

/// The stage's layers as a record names them, its COPYs never run in their places.
fn parts<'a>(stages: &'a Stages, stage: &'a BuiltStage) -> Vec<Part<'a>> {
    let deferred_at = |i: usize| stage.deferred.iter().filter(move |d| d.below == i).map(|d| Part::Copy(&d.key));
    let mut out = Vec::new();
    for (i, l) in stage.layers.iter().enumerate() {
        out.extend(deferred_at(i));
        // A debugger shell's layer is credited to a step but holds what the session did.
        let copy = l.made_by().filter(|_| l.shell().is_none()).and_then(|id| stages.copy_key(id));
        out.push(match copy {
            Some(key) => Part::Copy(key),
            None => Part::Layer(&l.diff_id),
        });
    }
    out.extend(deferred_at(stage.layers.len()));
    out
}

/// The files `c` copies from `root`, sorted by path: each source expanded and walked as the
/// copy expands and walks it (`--exclude` and `--parents` alike, no `.dockerignore`), a file
/// `known` holds the digest of not read again.
pub(crate) fn files_in(
    ctx: &BuildContext<'_>,
    root: &Root,
    known: Option<&KnownDigests>,
    c: &ExpandedCopy,
) -> Result<Vec<FileEntry>, StepError> {
    let excludes = excludes_of(c)?;
    let mut w = Walked::stoppable(ctx);
    for s in &c.sources {
        if let ExpandedSource::Path(p) = s {
            walk_matches(root, p, None, c.parents, excludes.as_ref(), &mut w)?;
        }
    }
    hashed(root, known, w)
}

/// Every file under `source` in `root` (followed through symlinks, as a mount follows it),
/// sorted by path, each path (and hard link's first path) below `source`: `""` is `source`.
fn tree_in(
    ctx: &BuildContext<'_>,
    root: &Root,
    known: Option<&KnownDigests>,
    source: &str,
) -> Result<Vec<FileEntry>, StepError> {
    let resolved = root.resolve(source).map_err(StepError::fs(source.to_string()))?;
    let rel = resolved.trim_start_matches('/');
    let mut w = Walked::stoppable(ctx);
    walk(root, rel, "", &filter::for_dir(rel, None, None), &mut Links::new(), &mut w)?;
    let below = |p: &str| p.strip_prefix(rel).unwrap_or(p).trim_start_matches('/').to_string();
    let files = hashed(root, known, w)?;
    Ok(files
        .into_iter()
        .map(|f| FileEntry { path: below(&f.path), hard_link: f.hard_link.as_deref().map(below), ..f })
        .collect())
}

/// What `walk` found, each regular file's digest taken from `known` when it holds the file as
/// `walk` found it (the layer writer of the step that made it hashed it), else read from
/// `root`; sorted by path.
fn hashed(root: &Root, known: Option<&KnownDigests>, w: Walked) -> Result<Vec<FileEntry>, StepError> {
    let Walked { mut files, mut pending, cancel, .. } = w;
    if let Some(known) = known {
        pending.retain(|p| match known.digest(&p.path(&files), &p.st) {
            Some(d) => {
                files[p.at].digest = Some(d.into());
                false
            }
            None => true,
        });
    }
    hash_all(&mut files, &pending, &|path, _| {
        let f = root.open_file(path).map_err(StepError::fs(path))?;
        digest_until_cancelled(&mut std::io::BufReader::new(f), path, cancel.as_ref())
    })?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup();
    Ok(files)
}

#[cfg(test)]
#[path = "from_files_tests.rs"]
mod tests;
