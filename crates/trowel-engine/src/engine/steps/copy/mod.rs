//! COPY and ADD, with Docker's rules for sources and destinations:
//!
//! - sources are relative to the context (after `.dockerignore`), to another stage's root
//!   (`--from=<stage|index>`, no `.dockerignore`) or to an image (`--from=<ref>`); wildcards match
//!   per path segment; a directory source copies its *contents*;
//! - the destination is a directory when it ends with `/`, when there are several sources, or when
//!   it already is a directory in the image; relative destinations are relative to WORKDIR;
//! - without `--chown`, files from the context are owned by 0:0 and files from a stage or an
//!   image (`--from`) keep their owners, as in BuildKit; `--chown` is resolved in the destination
//!   image by BuildKit's rules (`steps/owner.rs`); files keep their mode unless `--chmod`, and
//!   their mtime;
//! - a wildcard that matches nothing copies nothing (no error, even when no source matched);
//!   `..` never leaves the root of the context or stage;
//! - `--parents` keeps each source's path (below a `/./` pivot if present), `--exclude` drops
//!   matching paths;
//! - ADD also downloads http(s) URLs (`--checksum` verified, mode 0600), checks out git
//!   repositories (`git.rs`: BuildKit's URL forms, `--keep-git-dir`, `--checksum` as a commit
//!   prefix) into the destination directory, and extracts local tar archives (plain, gzip,
//!   bzip2, xz, zstd) there — a downloaded one too with `--unpack=true`, a local one not with
//!   `--unpack=false` (BuildKit's Dockerfile syntax 1.17);
//! - `--link` (without `--chmod`, as BuildKit) copies into an empty root instead of the image:
//!   the runner makes that root's contents a layer of their own and lays it over the stage
//!   (`stage/link.rs`), so nothing below is read — a destination directory is one only when
//!   written with a trailing `/` or for several sources, `--chown` takes numeric ids (or
//!   `root`) only, and the parents it creates are 0755, owned by the `--chown` user.

use crate::chmod::Chmod;
use crate::dockerfile::gitref::is_git_source;
use crate::dockerfile::{DockerIgnore, ExpandedCopy, ExpandedSource, Plan, link_chown_error, link_chown_ids};
use crate::engine::copy_source::Need;
use crate::engine::error::{BuildError, StepError};
use crate::engine::steps::join_clean;
use crate::engine::steps::{Changed, FileCx, FileStep, Scope, Source, owner};
use crate::fs::copy::{CopyOptions, copy_tree};
use crate::fs::root::Root;

mod add;
pub(crate) mod filter;
pub(crate) mod from_files;
pub(crate) mod git;
pub(crate) mod keyfiles;
pub(crate) mod reads;
pub(crate) mod seen;
mod sources;

pub(crate) use add::Download;
pub use sources::SourceKind;

pub(crate) struct Copy {
    pub args: ExpandedCopy,
    pub is_add: bool,
}

impl FileStep for Copy {
    fn from(&self) -> Option<&str> {
        self.args.from.as_deref()
    }

    fn reads(&self) -> Need {
        let paths = self.args.sources.iter().filter_map(|s| match s {
            ExpandedSource::Path(p) if !(self.is_add && (is_git_source(p) || is_url(p))) => Some(p.clone()),
            _ => None,
        });
        Need::Sources(paths.collect())
    }

    fn linked(&self) -> bool {
        is_linked(&self.args)
    }

    fn run(&self, cx: FileCx<'_, '_>) -> Result<Changed, BuildError> {
        let FileCx { ctx, at, config, root, source, seen, .. } = cx;
        let c = &self.args;
        let is_add = self.is_add;
        let kw = if is_add { "ADD" } else { "COPY" };
        if !is_add && (c.checksum.is_some() || c.keep_git_dir) {
            return Err(at.invalid("--checksum and --keep-git-dir are only valid for ADD"));
        }
        if c.sources.is_empty() {
            return Err(at.invalid(format!("{kw} requires at least one source and a destination")));
        }
        let dst = root.root();
        let owner = match &c.chown {
            Some(spec) if is_linked(c) => Some(link_chown_ids(spec).ok_or_else(|| at.invalid(link_chown_error(spec)))?),
            Some(spec) => Some(owner::chown(dst, at, spec)?),
            None => None,
        };
        let chmod = c.chmod.as_deref().map(Chmod::parse).transpose().map_err(|e| at.invalid(e))?;
        let chmod = chmod.as_ref();
        let excludes = if c.excludes.is_empty() {
            None
        } else {
            Some(
                DockerIgnore::from_exclude_flags(&c.excludes)
                    .map_err(|e| at.invalid(format!("invalid --exclude: {e}")))?,
            )
        };
        let workdir = config.image.working_dir().unwrap_or("/").to_string();
        let dest_raw = c.dest.clone();
        let dest = join_clean(&workdir, &dest_raw);
        let dest_has_slash = dest_raw.ends_with('/') || dest_raw.ends_with("/.") || dest_raw == ".";
        let (src_root, ignore, is_context) = match source {
            Source::Context { root, ignore } => (root, Some(ignore), true),
            Source::Root(r) => (r, None, false),
        };
        // The context files must be those the step's key was made from (`seen.rs`).
        let checker = seen.filter(|_| is_context).map(seen::Seen::checker);
        let cancel = ctx.fs_cancel();

        // Expand every source into concrete paths first, so "several sources" is known.
        let mut items: Vec<sources::Item> = Vec::new();
        for s in &c.sources {
            match s {
                ExpandedSource::Heredoc { name, content } => {
                    items.push(sources::Item::Inline { name: name.clone(), content: content.clone() })
                }
                ExpandedSource::Path(p) if is_add && is_git_source(p) => items.push(sources::Item::Git(p.clone())),
                ExpandedSource::Path(p) if is_add && is_url(p) => items.push(sources::Item::Url(p.clone())),
                ExpandedSource::Path(p) => {
                    if !is_add && is_git_source(p) {
                        return Err(at.invalid(format!("source can't be a git ref for COPY: {p} (use ADD)")));
                    }
                    if !is_add && is_url(p) {
                        return Err(at.invalid(format!("source can't be a URL for COPY: {p} (use ADD)")));
                    }
                    let found = sources::expand(src_root, p, ignore, is_context, c.parents).map_err(|e| {
                        // A source the key saw that is gone is a change, not a mistake.
                        let gone = sources::normalize(p).join("/");
                        match &checker {
                            Some(ch) if ch.knows(&gone) => at.fail(StepError::context_changed(
                                &gone,
                                "was removed after the step's cache key was made from the context",
                            )),
                            _ => at.fail(e),
                        }
                    })?;
                    if found.is_empty() {
                        ctx.emitter.warn(format!("{}: nothing matches {p:?}; nothing is copied for it", at.loc));
                    }
                    items.extend(found);
                }
            }
        }
        if let Some(sum) = &c.checksum {
            let paths: Vec<&str> = c
                .sources
                .iter()
                .filter_map(|s| match s {
                    ExpandedSource::Path(p) => Some(p.as_str()),
                    ExpandedSource::Heredoc { .. } => None,
                })
                .collect();
            crate::dockerfile::check_add_checksum(sum, &paths).map_err(|e| at.invalid(e))?;
        }
        // Heredocs are copied after every other source, wherever they are written, as BuildKit's
        // dispatchCopy does (its source paths, then its source contents): which one a
        // destination ends up holding depends on the order.
        items.sort_by_key(|i| matches!(i, sources::Item::Inline { .. }));
        if items.is_empty() {
            // Every source was a wildcard that matched nothing: BuildKit copies nothing and
            // does not even create the destination.
            return Ok(Changed::Nothing);
        }
        // Several sources onto a destination without a trailing `/` are no error, as in BuildKit
        // (the classic builder and kaniko refuse them): each source is copied in turn as a
        // single one would be — into the destination once it is a directory, as it otherwise
        // (so files replace one another: fsutil's `prepareTargetDir` for each match).
        let dest_is_dir = || -> Result<bool, BuildError> {
            Ok(dest_has_slash
                || dst.stat(&dest).map_err(|e| at.fail(StepError::fs(dest.clone())(e)))?.is_some_and(|s| s.is_dir()))
        };
        let mut written: Vec<String> = Vec::new();
        // `--exclude` patterns are relative to the copied directory (or, for a single file, to the
        // context); `.dockerignore` patterns are always relative to the context.
        let excluded_by_flag = |rel: &str| excludes.as_ref().is_some_and(|x| x.is_excluded(rel));
        for item in items {
            match item {
                sources::Item::Inline { name, content } => {
                    let target = if dest_is_dir()? {
                        format!("{}/{name}", dest.trim_end_matches('/'))
                    } else {
                        through_symlink(dst, &dest).map_err(|e| at.fail(StepError::fs(dest.clone())(e)))?
                    };
                    let scope = scope_path(dst, &target).map_err(|e| at.invalid(e))?;
                    add::write_inline(dst, &target, content.as_bytes(), chmod, owner).map_err(|e| at.fail(e))?;
                    written.push(scope);
                }
                sources::Item::Git(src) => {
                    let req = git::request(&src, c).map_err(|e| at.fail(e))?;
                    let co = git::checkout(ctx, &req).map_err(|e| at.fail(e))?;
                    let scope = scope_path(dst, &dest).map_err(|e| at.invalid(e))?;
                    git::install(ctx, dst, &co, &dest, owner.unwrap_or((0, 0)), chmod, excludes.as_ref())
                        .map_err(|e| at.fail(e))?;
                    written.push(scope);
                }
                sources::Item::Url(url) => {
                    let dl = add::fetch_url(ctx, &url, c.checksum.as_deref()).map_err(|e| at.fail(e))?;
                    // `--unpack=true` extracts a downloaded archive as a local one is; anything
                    // else it downloaded is installed as a file, as BuildKit does.
                    if c.unpack == Some(true) && add::download_is_archive(&dl).map_err(|e| at.fail(e))? {
                        let scope = scope_path(dst, &dest).map_err(|e| at.invalid(e))?;
                        add::extract_download(ctx, &dl, &url, dst, &dest, owner).map_err(|e| at.fail(e))?;
                        written.push(scope);
                        continue;
                    }
                    let target =
                        add::install_download(dst, &dl, &dest, dest_is_dir()?, chmod, owner).map_err(|e| at.fail(e))?;
                    written.push(target);
                }
                sources::Item::Path { rel, kind, name, target_rel } => {
                    // A local archive ADD extracts is read whole, not copied: its lstat before
                    // and after is checked (any write in between changes its ctime).
                    let check_whole = || -> Result<(), BuildError> {
                        let Some(ch) = &checker else { return Ok(()) };
                        let st = src_root.lstat(&rel).map_err(|e| at.fail(StepError::fs(rel.clone())(e)))?;
                        let Some(st) = st else {
                            return Err(at.fail(StepError::context_changed(
                                &rel,
                                "was removed after the step's cache key was made from the context",
                            )));
                        };
                        ch.whole(&rel, &st).map_err(|e| at.fail(StepError::copy(rel.clone())(e)))
                    };
                    if is_add && c.unpack != Some(false) && kind == SourceKind::File && {
                        check_whole()?;
                        add::is_archive(src_root, &rel).map_err(|e| at.fail(e))?
                    } {
                        let scope = scope_path(dst, &dest).map_err(|e| at.invalid(e))?;
                        add::extract(ctx, src_root, &rel, dst, &dest, owner).map_err(|e| at.fail(e))?;
                        check_whole()?;
                        written.push(scope);
                        continue;
                    }
                    let target = match (&kind, &target_rel) {
                        (_, Some(t)) => format!("{}/{t}", dest.trim_end_matches('/')),
                        // A directory onto a link to a file: the link is replaced, never the file
                        // it points to (BuildKit refuses: "cannot copy to non-directory").
                        (_, None)
                            if kind == SourceKind::Dir
                                && dst.stat(&dest).ok().flatten().is_some_and(|s| !s.is_dir()) =>
                        {
                            dest.clone()
                        }
                        (_, None) if kind == SourceKind::Dir || !dest_is_dir()? => {
                            through_symlink(dst, &dest).map_err(|e| at.fail(StepError::fs(dest.clone())(e)))?
                        }
                        (_, None) => format!("{}/{name}", dest.trim_end_matches('/')),
                    };
                    if kind != SourceKind::Dir && excluded_by_flag(&rel) {
                        continue;
                    }
                    let scope = scope_path(dst, &target).map_err(|e| at.invalid(e))?;
                    let excl = filter::for_dir(&rel, excludes.as_ref(), ignore);
                    // Without --chown, context files belong to 0:0 (BuildKit resets the owners of
                    // what it receives from the client); a stage's or an image's keep theirs.
                    let owner = owner.or(is_context.then_some((0, 0)));
                    // A directory's contents go into a destination BuildKit creates itself:
                    // 0755 (or an octal --chmod; a symbolic one has no mode of its own to give),
                    // owned by --chown or 0:0, whatever the source directory's own mode and owner.
                    if kind == SourceKind::Dir && target_rel.is_none() {
                        let missing = dst.lstat(&target).map_err(|e| at.fail(StepError::fs(target.clone())(e)))?;
                        if missing.is_none() {
                            let mode = chmod.and_then(Chmod::made_dir_mode).unwrap_or(0o755);
                            dst.mkdir_all(&target, mode, Some(owner.unwrap_or((0, 0))))
                                .map_err(|e| at.fail(StepError::fs(format!("create {target}"))(e)))?;
                        }
                    }
                    let watch = checker.as_ref().map(|c| c as &dyn crate::fs::copy::Watch);
                    let cancel = cancel.as_ref();
                    let opts = CopyOptions {
                        owner,
                        chmod,
                        preserve_times: true,
                        filter: &excl,
                        overwrite_dirs: true,
                        watch,
                        cancel,
                    };
                    copy_tree(src_root, &rel, dst, &target, &opts).map_err(|e| match (e, ctx.aborted()) {
                        // Given up for a stop: the build ends as aborted, its root removed.
                        (crate::fs::FsError::Cancelled, Some(stopped)) => stopped,
                        (e, _) => at.fail(StepError::copy(format!("copy {rel} to {target}"))(e)),
                    })?;
                    written.push(scope);
                }
            }
        }
        if let Some(ch) = &checker {
            ch.finish().map_err(|e| at.fail(StepError::copy("the build context")(e)))?;
        }
        written.sort();
        written.dedup();
        Ok(Changed::Files(Scope::Paths(written)))
    }
}

/// Where the destination as written lands: BuildKit resolves it inside the root, a symlink as
/// its last component included (fsutil's `copy.Copy` through `fs.RootPath`), so a file copied
/// onto a symlink (`COPY localtime /etc/localtime`) is written where the link points — made
/// there when the link dangles — and the link stays. Only the destination as written: a name
/// below a copied directory, or the one `dest/` gives a source, replaces a symlink it meets
/// (fsutil's `ensureEmptyFileTarget`). A `--link` step copies into an empty root, which has
/// no symlink to follow.
pub(super) fn through_symlink(dst: &Root, dest: &str) -> Result<String, crate::fs::FsError> {
    match dst.lstat(dest)? {
        Some(st) if st.file_type == crate::fs::FileType::Symlink => dst.resolve(dest),
        _ => Ok(dest.to_string()),
    }
}

pub(crate) fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Whether the step is made on an empty root and laid over the stage (`--link`). BuildKit
/// links only without `--chmod`: with it, `--link` changes nothing.
pub(crate) fn is_linked(c: &ExpandedCopy) -> bool {
    c.link && c.chmod.is_none()
}

/// For a `--link` step, its destination as the key records it: resolved against the stage's
/// WORKDIR, with the trailing `/` that makes it a directory kept.
pub(crate) fn link_destination(config: &crate::image::config::ImageConfig, c: &ExpandedCopy) -> Option<String> {
    if !is_linked(c) {
        return None;
    }
    let dest = join_clean(config.working_dir().unwrap_or("/"), &c.dest);
    let dir = c.dest.ends_with('/') || c.dest.ends_with("/.") || c.dest == ".";
    Some(if dir && dest != "/" { format!("{dest}/") } else { dest })
}

/// The path a snapshot must cover after writing `target`: its highest ancestor that does not
/// exist yet (those get created), or `target` itself.
fn scope_path(root: &Root, target: &str) -> Result<String, String> {
    let clean = join_clean("/", target);
    let mut scope = clean.clone();
    let mut cur = clean.as_str();
    while let Some((parent, _)) = cur.rsplit_once('/') {
        let parent = if parent.is_empty() { "/" } else { parent };
        if parent == "/" {
            break;
        }
        match root.lstat(parent).map_err(|e| format!("{parent}: {e}"))? {
            Some(_) => break,
            None => scope = parent.to_string(),
        }
        cur = parent;
    }
    Ok(scope)
}

/// The stage `--from` names: any other stage by name (the plan builds it first), or an earlier
/// stage by index; `None` for an image reference.
pub(crate) fn stage_index(plan: &Plan, current: usize, from: &str) -> Option<usize> {
    let mine = plan.stages[current].dockerfile_stage;
    let j = match plan.dockerfile_stage_named(from) {
        Some(j) if j != mine => j,
        _ => from.parse::<usize>().ok().filter(|&i| i < mine)?,
    };
    plan.instance_of(j, current)
}
