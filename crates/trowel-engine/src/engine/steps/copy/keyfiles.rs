//! What a COPY/ADD contributes to its cache key: every source file (path, type, mode, link
//! target, content digest) exactly as the copy will see it — after `.dockerignore` and
//! `--exclude`, with wildcards expanded — or, for `--from`, the source stage's key or the
//! source image's digest; for a git repository, the commit it names.
//!
//! A context file's owner is not in a COPY's key (it is recorded as 0:0): the copy gives every
//! context file 0:0 or `--chown`'s owner whoever owns it on the build machine, as BuildKit does
//! (its clients reset the owners of the context they send), so it cannot change the layer. Keyed,
//! it made the same checkout cloned by another user miss, and in rootless isolation it would read
//! as the overflow id before the namespace's maps are written and as 0 after (`sandbox/userns.rs`).
//! A RUN's bind mount of the context shows the owners as they are, so its key keeps them, read
//! once the maps are written.

use std::collections::BTreeMap;

use crate::cache::key::FileEntry;
use crate::digest::digest_reader;
use crate::dockerfile::gitref::is_git_source;
use crate::dockerfile::{DockerIgnore, ExpandedCopy, ExpandedSource};
use crate::engine::context::BuildContext;
use crate::engine::error::StepError;
use crate::engine::stages::Stages;
use crate::engine::steps::copy::{add, filter, git, is_url, sources, stage_index};
use crate::fs::copy::Filter;
use crate::fs::{FileType, Stat};

pub(crate) struct KeyInputs {
    pub files: Vec<FileEntry>,
    pub sources: BTreeMap<String, String>,
}

/// Gathers the key inputs of a COPY/ADD run by stage `stage`.
pub(crate) fn key_inputs(
    ctx: &BuildContext<'_>,
    stages: &Stages,
    stage: usize,
    c: &ExpandedCopy,
    is_add: bool,
) -> Result<KeyInputs, StepError> {
    let mut files = Vec::new();
    let mut srcs = BTreeMap::new();
    if let Some(from) = &c.from {
        match stage_index(&ctx.plan, stage, from) {
            Some(p) => {
                let key = stages
                    .get(p)
                    .and_then(|s| s.final_key.clone())
                    .ok_or_else(|| StepError::Invalid(format!("stage {from} has no cache key")))?;
                srcs.insert(format!("stage:{from}"), key);
            }
            None => {
                let img = ctx.resolve_once(from, Some(&ctx.plan.stage_platform(stage)))?;
                srcs.insert(format!("image:{from}"), img.manifest_digest.to_string());
            }
        }
        return Ok(KeyInputs { files, sources: srcs });
    }
    let excludes = if c.excludes.is_empty() {
        None
    } else {
        Some(
            DockerIgnore::from_patterns(&c.excludes)
                .map_err(|e| StepError::Invalid(format!("invalid --exclude: {e}")))?,
        )
    };
    let root = &ctx.context;
    let ignore = Some(&ctx.dockerignore);
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
                files.push(FileEntry {
                    path: p.clone(),
                    kind: 'f',
                    mode: 0o600,
                    uid: 0,
                    gid: 0,
                    link: None,
                    digest: Some(dl.digest),
                });
            }
            ExpandedSource::Path(p) => {
                for item in sources::expand(root, p, ignore, true, c.parents)? {
                    let sources::Item::Path { rel, .. } = item else { continue };
                    if excludes.as_ref().is_some_and(|x| x.is_excluded(&rel))
                        && root.lstat(&rel).ok().flatten().is_some_and(|s| !s.is_dir())
                    {
                        continue;
                    }
                    let f = filter::for_dir(&rel, excludes.as_ref(), ignore);
                    walk(ctx, &rel, "", &f, &mut files)?;
                }
            }
        }
    }
    for f in &mut files {
        (f.uid, f.gid) = (0, 0);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup();
    Ok(KeyInputs { files, sources: srcs })
}

/// Every file under `rel` in the build context as a bind mount from it sees them
/// (`.dockerignore` applied), for a RUN's cache key: a bind mount's sources are covered as
/// COPY's are.
pub(crate) fn context_tree(ctx: &BuildContext<'_>, rel: &str) -> Result<Vec<FileEntry>, StepError> {
    // The owners are keyed: not before a rootless namespace's maps make them what RUN sees. A
    // failure to map is reported by the RUN, which cannot run without them either.
    let _ = crate::sandbox::userns::mapped();
    // A mount follows a symlinked source inside the context, as the mount itself does.
    let resolved = ctx.context.resolve(rel).map_err(StepError::fs(rel.to_string()))?;
    let rel = resolved.trim_start_matches('/');
    let mut files = Vec::new();
    let f = filter::for_dir(rel, None, Some(&ctx.dockerignore));
    walk(ctx, rel, "", &f, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn entry(ctx: &BuildContext<'_>, path: &str, st: &Stat) -> Result<FileEntry, StepError> {
    let root = &ctx.context;
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
    let digest = if kind == 'f' {
        Some(ctx.context_digest(path, st, || {
            let f = root.open_file(path).map_err(StepError::fs(path))?;
            Ok::<_, StepError>(
                digest_reader(std::io::BufReader::new(f)).map_err(StepError::io(format!("read {path}")))?.0,
            )
        })?)
    } else {
        None
    };
    Ok(FileEntry {
        path: path.trim_start_matches('/').to_string(),
        kind,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        link,
        digest,
    })
}

/// Records `rel` (+ `sub`) and, for a directory, what the copy filter lets through below it.
/// Walks `rel` in the build context, each file's content hashed once per build (see
/// [`BuildContext::context_digest`]).
fn walk(
    ctx: &BuildContext<'_>,
    rel: &str,
    sub: &str,
    f: &dyn Fn(&str) -> Filter,
    out: &mut Vec<FileEntry>,
) -> Result<(), StepError> {
    let path = if sub.is_empty() { rel.to_string() } else { format!("{rel}/{sub}") };
    let decision = f(sub);
    if decision == Filter::Skip {
        return Ok(());
    }
    let root = &ctx.context;
    let Some(st) = root.lstat(&path).map_err(StepError::fs(path.clone()))? else { return Ok(()) };
    if decision == Filter::Copy {
        out.push(entry(ctx, &path, &st)?);
    }
    if st.is_dir() {
        for name in root.read_dir(&path).map_err(StepError::fs(path.clone()))? {
            let child = if sub.is_empty() { name } else { format!("{sub}/{name}") };
            walk(ctx, rel, &child, f, out)?;
        }
    }
    Ok(())
}
