//! `ADD <git repository> <dest>`: the step's side of [`crate::git`]. A source is checked out
//! once per build (the cache-key planner and the step itself share the checkout, as they share
//! URL downloads), keyed by its commit, and its tree is copied into the destination directory
//! with the confined copy: the repository's contents go *into* `dest` (a trailing slash or not),
//! owned by 0:0 unless `--chown`, with `--chmod` and `--exclude` applied as to any source.

use std::sync::Arc;

use crate::chmod::Chmod;
use crate::dockerfile::gitref::{GitRef, Transport, parse_git_ref};
use crate::dockerfile::{DockerIgnore, ExpandedCopy};
use crate::engine::context::BuildContext;
use crate::engine::error::StepError;
use crate::fs::copy::{CopyOptions, Filter, copy_tree};
use crate::fs::root::Root;
use crate::git::ssh::{Endpoint, HostTrust, host_keys, machine_known_hosts};
use crate::git::{self, Checkout, GitError, Limits, Request, SshAccess, Tools};

/// What `ADD` asks of the git source `src`: the URL's options merged with the instruction's
/// `--keep-git-dir` and `--checksum`, with BuildKit's rules for when they disagree.
pub(crate) fn request(src: &str, c: &ExpandedCopy) -> Result<Request, StepError> {
    let git = parse_git_ref(src)
        .map_err(|e| StepError::Invalid(format!("git source {}: {e}", crate::dockerfile::gitref::redact_url(src))))?
        .ok_or_else(|| StepError::Invalid(format!("{src} is not a git repository URL")))?;
    // Only an explicit `--keep-git-dir=true` can contradict the URL (`false` is the default
    // the parser cannot tell from an absent flag; the Dockerfile check sees the flag as written).
    if c.keep_git_dir && git.keep_git_dir == Some(false) {
        return Err(StepError::Invalid("inconsistent keep-git-dir configuration".into()));
    }
    let keep_git_dir = git.keep_git_dir.unwrap_or(c.keep_git_dir);
    let checksum = match (&c.checksum, &git.checksum) {
        (Some(flag), Some(url)) if flag != url => {
            return Err(StepError::Invalid(format!("checksum mismatch {flag:?} != {url:?}")));
        }
        (flag, url) => flag.clone().or_else(|| url.clone()),
    };
    if let Some(sum) = &checksum
        && (sum.is_empty() || !sum.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(StepError::Invalid(format!("invalid checksum {sum} for Git URL, expected hex commit hash")));
    }
    Ok(Request { git, keep_git_dir, checksum })
}

/// The checkout of `req`, made now or earlier in this build.
pub(crate) fn checkout(ctx: &BuildContext<'_>, req: &Request) -> Result<Arc<Checkout>, StepError> {
    let key = format!("{}\0{}\0{}", req.git.remote, req.keep_git_dir, req.checksum.as_deref().unwrap_or(""));
    let key = format!("{key}\0{}", describe(&req.git));
    if let Some(done) = ctx.git_checkout(&key) {
        return done.map_err(StepError::Git);
    }
    // In container isolation `/` is the base image: only the git of trowel's own image runs
    // (a source named through a variable gets here without `preflight::check_git`).
    let tools = Tools::for_build(ctx.slash_keep.is_some(), &ctx.opts.run.trowel_dir)?;
    let dir = ctx.scratch_dir("git")?.join("checkout");
    std::fs::create_dir(&dir).map_err(StepError::io(format!("create {}", dir.display())))?;
    let limits =
        Limits { max_file_size: ctx.opts.layers.max_file_size, max_total_size: ctx.opts.layers.max_layer_size };
    let cancel = ctx.fs_cancel();
    let result = match ssh_access(ctx, req, &tools) {
        Ok(ssh) => {
            git::checkout(req, &dir, limits, ssh.as_ref(), &tools, cancel.as_ref()).map(Arc::new).map_err(Arc::new)
        }
        Err(e) => Err(Arc::new(e)),
    };
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dir.parent().unwrap_or(&dir));
    }
    // A fetch killed for a stop did not fail: the build was aborted, and says so.
    if let Err(e) = &result
        && matches!(**e, GitError::Cancelled { .. })
        && let Some(stopped) = ctx.aborted()
    {
        return Err(StepError::Build(Box::new(stopped)));
    }
    // Once per repository: BuildKit accepts http:// and git:// but discourages them.
    if result.is_ok() && req.git.transport.is_unencrypted() && !ctx.git_fetched(&req.git.remote) {
        ctx.emitter.warn(format!(
            "{} is fetched over an unencrypted connection: nothing proves the commits come from that repository \
             (https:// would)",
            req.git.redacted()
        ));
    }
    ctx.remember_git(&key, result.clone());
    result.map_err(StepError::Git)
}

/// For a remote named over ssh, what git's `ssh` uses, as BuildKit's git source has it: the
/// build's `default` agent, and the host's keys, found or scanned once per build (see
/// `git/ssh.rs` for which keys are trusted; a key trusted on first sight is said in a warning,
/// with its fingerprints). With the bundled git (container isolation, where `$HOME` and `/etc`
/// are the base image's), the machine's known hosts are trowel's own,
/// `<trowel dir>/.ssh/known_hosts`, and ssh runs through the bundle's wrapper.
fn ssh_access(ctx: &BuildContext<'_>, req: &Request, tools: &Tools) -> Result<Option<SshAccess>, GitError> {
    if req.git.transport != Transport::Ssh {
        return Ok(None);
    }
    let Some(agent) = ctx.opts.run.mounts.ssh_agent("default") else {
        return Err(GitError::NoSshAgent { remote: req.git.redacted() });
    };
    let agent = ctx.mounts.agent_socket(ctx, agent).map_err(|e| GitError::Invalid(e.to_string()))?;
    let ep = Endpoint::parse(&req.git.remote)?;
    let known_hosts = ctx.mounts.ssh_known_hosts(&ep.known_hosts_name(), || {
        let dir = ctx.scratch_dir("ssh-host").map_err(|e| GitError::Invalid(e.to_string()))?;
        let (files, named) = match tools.bundle {
            Some(_) => {
                let own = ctx.opts.run.trowel_dir.join(".ssh/known_hosts");
                let named = own.display().to_string();
                (vec![own], named)
            }
            None => (machine_known_hosts(), "$HOME/.ssh/known_hosts, /etc/ssh/ssh_known_hosts".to_string()),
        };
        let (path, trust) = host_keys(&ep, &files, &dir, tools)?;
        if let HostTrust::Scanned(prints) = trust {
            ctx.emitter.warn(format!(
                "{} is not in this machine's known hosts ({named}): trusting the key it presents now, as BuildKit \
                 does ({}); add it to known_hosts to have it checked",
                ep.known_hosts_name(),
                prints.join(", ")
            ));
        }
        Ok(path)
    })?;
    let access = SshAccess { agent, known_hosts, wrapper: None };
    match &tools.bundle {
        Some(b) => {
            let dir = ctx.scratch_dir("ssh-wrapper").map_err(|e| GitError::Invalid(e.to_string()))?;
            access.with_bundle(b, &dir, std::path::Path::new("/etc/passwd")).map(Some)
        }
        None => Ok(Some(access)),
    }
}

/// Every option of the URL that changes what is checked out.
fn describe(g: &GitRef) -> String {
    format!(
        "{}#{}:{}?submodules={:?}&mtime_commit={}&fetch_by_commit={}",
        g.remote,
        g.reference.as_deref().unwrap_or(""),
        g.subdir.as_deref().unwrap_or(""),
        g.submodules,
        g.mtime_commit,
        g.fetch_by_commit
    )
}

/// What the cache key records for a git source: `git:<url#ref:subdir>` (credentials masked)
/// → the commit (an annotated tag's object with `.git` kept).
pub(crate) fn key_source(req: &Request, co: &Checkout) -> (String, String) {
    (format!("git:{}", req.git), co.key.clone())
}

/// Copies the checkout's tree (or subdir) into `dest` in `dst`. Returns nothing: the caller
/// knows the snapshot scope (`dest`).
pub(crate) fn install(
    ctx: &BuildContext<'_>,
    dst: &Root,
    co: &Checkout,
    dest: &str,
    owner: (u32, u32),
    chmod: Option<&Chmod>,
    excludes: Option<&DockerIgnore>,
) -> Result<(), StepError> {
    let src = Root::open(&co.dir).map_err(StepError::fs("open the git checkout"))?;
    let top = co.source.is_empty();
    let keep_git = co.include_git_dir;
    let filter = |rel: &str| -> Filter {
        if top && !keep_git && (rel == ".git" || rel.starts_with(".git/")) {
            return Filter::Skip;
        }
        excludes.map_or(Filter::Copy, |x| super::filter::excluded(x, rel))
    };
    let source = if top { "/".to_string() } else { format!("/{}", co.source) };
    // A big repository's tree is as long to copy as a big context: a stop gives it up and is
    // the build's abort.
    let cancel = ctx.fs_cancel();
    let opts = CopyOptions {
        owner: Some(owner),
        chmod,
        preserve_times: true,
        filter: &filter,
        overwrite_dirs: true,
        watch: None,
        cancel: cancel.as_ref(),
    };
    copy_tree(&src, &source, dst, dest, &opts)
        .map_err(ctx.step_fs_failed(format!("copy the git checkout {} into {dest}", short(&co.commit))))?;
    Ok(())
}

fn short(commit: &str) -> &str {
    &commit[..12.min(commit.len())]
}

impl From<GitError> for StepError {
    fn from(e: GitError) -> StepError {
        StepError::Git(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(keep: bool, checksum: Option<&str>) -> ExpandedCopy {
        ExpandedCopy {
            from: None,
            chown: None,
            chmod: None,
            link: false,
            parents: false,
            excludes: vec![],
            checksum: checksum.map(str::to_string),
            keep_git_dir: keep,
            unpack: None,
            sources: vec![],
            dest: "/x".into(),
        }
    }

    #[test]
    fn flags_and_url_options_merge_as_in_buildkit() {
        let r = request("https://h/r.git?keep-git-dir=true", &copy(false, None)).unwrap();
        assert!(r.keep_git_dir);
        let r = request("https://h/r.git", &copy(true, Some("abc"))).unwrap();
        assert!(r.keep_git_dir);
        assert_eq!(r.checksum.as_deref(), Some("abc"));
        assert_eq!(
            request("https://h/r.git?checksum=abc", &copy(false, None)).unwrap().checksum.as_deref(),
            Some("abc")
        );
        let err = |src: &str, c: ExpandedCopy| request(src, &c).unwrap_err().to_string();
        assert_eq!(
            err("https://h/r.git?keep-git-dir=false", copy(true, None)),
            "inconsistent keep-git-dir configuration"
        );
        assert_eq!(
            err("https://h/r.git?checksum=abc", copy(false, Some("abd"))),
            "checksum mismatch \"abd\" != \"abc\""
        );
        assert_eq!(
            err("https://h/r.git", copy(false, Some("sha256:00"))),
            "invalid checksum sha256:00 for Git URL, expected hex commit hash"
        );
        assert_eq!(
            err("https://u:p@h/r.git?mtime=x", copy(false, None)),
            "git source https://xxxxx:xxxxx@h/r.git?mtime=x: invalid mtime value: \"x\" (must be \"checkout\" or \"commit\")"
        );
    }
}
