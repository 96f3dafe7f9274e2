//! Git repositories as `ADD` sources: resolving a ref, fetching one commit, checking it out
//! with BuildKit's semantics (moby/buildkit `source/git/source.go`), and nothing else.
//!
//! Debian's `git` command line does the protocol work ([`cli`] runs it with no configuration,
//! hooks or transports but trowel's, in its own process group, bounded in size). No Rust git
//! library does all of this today: submodules, shallow fetches over http(s) and git://, and the
//! exact checkout git itself makes (gitoxide checks out but does not yet clone submodules).
//! Which git runs is [`tools`]'s choice: the build machine's, or in container isolation (where
//! `/` is the base image) the one bundled in trowel's own image under `/trowel/git`.
//!
//! What is checked out, as BuildKit does:
//! - the ref is a branch, a tag or a full commit (`ls-remote` picks the exact ref; a branch
//!   wins over a tag of the same name); none means the remote's default branch;
//! - `--checksum` (or `?checksum=`) is a hex prefix of the commit, or of an annotated tag's
//!   own object, and is verified before anything is fetched;
//! - submodules are checked out too (`?submodules=false` skips them), shallow;
//! - files get mode 644, or 755 when executable, directories 755 (git under umask 022); times
//!   are the checkout's (`?mtime=commit`: the commit's); the `.git` directory is kept only with
//!   `--keep-git-dir` and no subdir, with the remote's credentials masked wherever git wrote
//!   them (`scrub.rs`);
//! - a subdir must be a directory all the way down (no symlink on the way).
//!
//! The repository is hostile input: it is fetched into trowel's work directory, the size of its
//! blobs is checked against `--max-file-size` and `--max-layer-size` before they are checked
//! out (and what submodules add, once they are), and what lands in the image is copied with
//! the confined copy (`fs::copy_tree`), symlinks as symlinks.

use std::path::{Path, PathBuf};

use crate::dockerfile::gitref::{GitRef, Transport, is_commit_sha};

pub(crate) mod cli;
pub mod context;
mod resolve;
mod scrub;
pub mod ssh;
mod tools;
mod tree;

use cli::Git;
pub use ssh::SshAccess;
pub use tools::Tools;

/// Why a git source could not be had.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("ADD of a git repository needs the `git` command, which is not on PATH (install git)")]
    NotInstalled,
    #[error(
        "ADD of a git repository in container isolation needs the git bundled in trowel's image under {}, and \
         this one lacks {missing} (the git on PATH would be the base image's own): use trowel's image as built by \
         scripts/image-context.sh, or build in chroot isolation", dir.display()
    )]
    NotBundled { dir: PathBuf, missing: String },
    #[error("{}", crate::dockerfile::gitref::ssh_needs_agent(remote))]
    NoSshAgent { remote: String },
    #[error("ssh could not get into {remote} ({reason})")]
    SshRefused { remote: String, reason: String },
    #[error("host key of {host}: {reason}")]
    HostKey { host: String, reason: String },
    /// A git command failed; `stderr` is what git said, credentials masked.
    #[error("git {what} failed{}: {stderr}", status.map(|c| format!(" (exit code {c})")).unwrap_or_default())]
    Command { what: String, status: Option<i32>, stderr: String },
    #[error("{remote} is not a git repository trowel can read ({reason})")]
    NotARepository { remote: String, reason: String },
    #[error("repository {remote} does not contain ref {reference}")]
    NoSuchRef { remote: String, reference: String },
    #[error("{remote}: expected checksum to match {checksum}, got {got}")]
    ChecksumMismatch { remote: String, checksum: String, got: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {size} bytes exceed the {limit}-byte limit (--max-layer-size)")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("file {path} of the repository is too large: {size} bytes (limit {limit}, --max-file-size)")]
    FileTooLarge { path: String, size: u64, limit: u64 },
    #[error("invalid subdir {subdir}: {reason}")]
    Subdir { subdir: String, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The build was stopped while git ran: the command was killed with its helpers.
    #[error("git {what} given up: the build was stopped")]
    Cancelled { what: String },
    #[error("{what}: {source}")]
    Fs {
        what: String,
        #[source]
        source: crate::fs::FsError,
    },
}

/// Size limits for what a repository may write (the build's `--max-file-size` and
/// `--max-layer-size`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub max_file_size: Option<u64>,
    pub max_total_size: Option<u64>,
}

/// What `ADD <git source>` asks for, once the Dockerfile's flags are merged with the URL's.
#[derive(Debug, Clone)]
pub struct Request {
    pub git: GitRef,
    pub keep_git_dir: bool,
    /// A hex prefix of the commit (`--checksum` or `?checksum=`).
    pub checksum: Option<String>,
}

/// A checked-out commit, kept for the rest of the build.
#[derive(Debug, Clone)]
pub struct Checkout {
    /// The work tree (its `.git` inside).
    pub dir: PathBuf,
    /// What is added: `""` for the whole tree, else the subdir (relative to `dir`).
    pub source: String,
    /// Whether the top-level `.git` directory is part of what is added.
    pub include_git_dir: bool,
    /// The commit checked out.
    pub commit: String,
    /// What the source names, for cache keys: the commit, or an annotated tag's own object
    /// when `.git` is kept (its tag object is then part of the result), as BuildKit keys it.
    pub key: String,
    /// The ref that was fetched (`refs/heads/main`, `refs/tags/v1`) or the commit.
    pub reference: String,
}

/// Fetches and checks out what `req` asks for into the empty directory `dir` with `tools`; an
/// ssh remote with `ssh` (the agent and the host keys, see [`ssh`]). A git command still
/// running when `cancel` asks is killed ([`GitError::Cancelled`]).
pub fn checkout(
    req: &Request,
    dir: &Path,
    limits: Limits,
    ssh: Option<&SshAccess>,
    tools: &Tools,
    cancel: Option<&crate::fs::Cancel>,
) -> Result<Checkout, GitError> {
    let remote = req.git.remote.as_str();
    let ssh = match (req.git.transport, ssh) {
        (Transport::Ssh, None) => return Err(GitError::NoSshAgent { remote: req.git.redacted() }),
        (Transport::Ssh, Some(s)) => Some(s),
        // Only the remote named over ssh gets ssh (a submodule cannot switch to it).
        _ => None,
    };
    let git = Git { dir, remote, max_bytes: limits.max_total_size, ssh, tools, env_config: &[], cancel };
    let resolved = resolve::resolve(&git, req)?;
    git.run("init", &["-c", "init.defaultBranch=master", "init", "-q", "."])?;
    git.run("remote add", &["remote", "add", "origin", remote])?;
    resolve::fetch(&git, &resolved)?;
    let commit = git.run("rev-parse", &["rev-parse", "--verify", &format!("{}^{{commit}}", resolved.sha)])?;
    let commit = commit.trim().to_string();
    if !is_commit_sha(&commit) {
        return Err(GitError::Invalid(format!("{}: {:?} is not a commit", req.git.redacted(), resolved.sha)));
    }
    tree::check_blob_sizes(&git, &commit, limits)?;
    git.run("checkout", &["checkout", "-q", "--detach", &commit])?;
    if req.git.submodules != Some(false) && dir.join(".gitmodules").exists() {
        git.run_shallow("submodule update", &["submodule", "update", "--init", "--recursive", "--depth=1"])?;
    }
    let include_git_dir = req.keep_git_dir && req.git.subdir.is_none();
    if include_git_dir {
        // What the image keeps: no credentials, no trace of how it was fetched.
        scrub::scrub(&git, dir)?;
    }
    let mtime = if req.git.mtime_commit { Some(tree::commit_time(&git, &commit)?) } else { None };
    tree::finish(dir, limits, mtime, cancel)?;
    let source = match &req.git.subdir {
        Some(s) => tree::check_subdir(dir, s)?,
        None => String::new(),
    };
    let key = match (&resolved.tag_object, req.keep_git_dir) {
        (Some(tag), true) => tag.clone(),
        _ => commit.clone(),
    };
    Ok(Checkout { dir: dir.to_path_buf(), source, include_git_dir, commit, key, reference: resolved.reference })
}
