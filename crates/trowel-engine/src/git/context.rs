//! A git repository as the build context (`--context git://…`), with kaniko's meaning
//! (`pkg/buildcontext/git.go`): a clone, not `ADD`'s checkout of one commit.
//!
//! What differs from [`super::checkout`] and why: kaniko clones the repository into the
//! context, `.git` included, with every branch's history (`single-branch=false`), so a build
//! that runs `git describe` or copies `.git` works as it did; submodules only with
//! `recurse-submodules=true`; `#ref#commit` fetches the ref and checks out the commit. What is
//! the same: the `git` command line run by [`Git`] (no configuration but trowel's, bounded in
//! size while it downloads), the ref picked as [`resolve::pick`] picks it, the tree's limits
//! and modes (`tree.rs`).
//!
//! Credentials never go on a command line or into `.git/config`: they reach git as an
//! `http.<url>.extraHeader` through the environment (`GIT_CONFIG_KEY_n`), scoped to the
//! remote's scheme, host and port, so a submodule on another host never sees them.

use std::path::Path;

use base64::Engine as _;

use super::cli::Git;
use super::resolve::{self, Resolved};
use super::{GitError, Limits, Tools, tree};
use crate::dockerfile::gitref::is_commit_sha;

/// Basic credentials for an http(s) remote (kaniko's `GIT_USERNAME`/`GIT_PASSWORD`, or
/// `GIT_TOKEN` as the user name with no password).
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    /// Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth").field("username", &"xxxxx").field("password", &"xxxxx").finish()
    }
}

/// What to clone.
#[derive(Debug, Clone)]
pub struct ContextRequest {
    /// The remote as git is given it: no credentials in it.
    pub remote: String,
    /// `#REF`: a branch, tag or other ref (`refs/pull/1/head`), or a commit.
    pub reference: Option<String>,
    /// `#REF#COMMIT`: the commit checked out after the ref is fetched.
    pub commit: Option<String>,
    /// `--git branch=NAME`: a branch (or, failing that, a tag) instead of `#REF`.
    pub branch: Option<String>,
    /// `--git single-branch=true`: fetch only the ref, not every branch.
    pub single_branch: bool,
    /// `--git recurse-submodules=true`.
    pub submodules: bool,
    /// `--git depth=N`: history this deep (kaniko: everything).
    pub depth: Option<u32>,
    /// `--git insecure-skip-tls=true`: an https remote's certificate is not verified.
    pub insecure_skip_tls: bool,
    pub auth: Option<BasicAuth>,
    /// Every file of the checkout gets the commit's time instead of the checkout's: with
    /// `SOURCE_DATE_EPOCH` given, as BuildKit's git contexts have it, so that two builds of one
    /// commit copy the same times.
    pub mtime_commit: bool,
    /// The build's stop: a git command running when it is asked for is killed, and the clone
    /// fails as [`GitError::Cancelled`] (its directory is the caller's to remove).
    pub cancel: Option<crate::fs::Cancel>,
}

/// What was checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextCheckout {
    /// The commit checked out.
    pub commit: String,
    /// The ref fetched (`refs/heads/main`), when one was.
    pub reference: Option<String>,
    /// The commit's time (the committer's), in seconds since 1970.
    pub time: i64,
}

/// Clones what `req` asks for into the empty directory `dir`.
pub fn clone(req: &ContextRequest, dir: &Path, limits: Limits, tools: &Tools) -> Result<ContextCheckout, GitError> {
    let mut env_config: Vec<(String, String)> = Vec::new();
    if let Some(a) = &req.auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", a.username, a.password));
        env_config
            .push((format!("http.{}.extraHeader", url_prefix(&req.remote)), format!("Authorization: Basic {token}")));
    }
    if req.insecure_skip_tls {
        env_config.push(("http.sslVerify".into(), "false".into()));
    }
    let git = Git {
        dir,
        remote: &req.remote,
        max_bytes: limits.max_total_size,
        ssh: None,
        tools,
        env_config: &env_config,
        cancel: req.cancel.as_ref(),
    };
    let shown = crate::dockerfile::gitref::redact_url(&req.remote);
    let target = target_ref(&git, req, &shown)?;
    git.run("init", &["-c", "init.defaultBranch=master", "init", "-q", "."])?;
    git.run("remote add", &["remote", "add", "origin", &req.remote])?;
    let depth = req.depth.map(|d| format!("--depth={d}"));
    let mut fetch: Vec<String> = vec!["fetch".into(), "-q".into()];
    fetch.extend(depth.clone());
    let local = target.as_ref().map(|t| local_ref(&t.reference));
    match &target {
        Some(t) if req.single_branch => {
            fetch.extend(["origin".into(), "--".into(), format!("+{}:{}", t.reference, local_ref(&t.reference))]);
        }
        _ => {
            // As `git clone`: every branch, and the tags that point into what was fetched.
            fetch.extend(["origin".into(), "--".into(), "+refs/heads/*:refs/remotes/origin/*".into()]);
            if let Some(t) = target.as_ref().filter(|t| !t.reference.starts_with("refs/heads/")) {
                fetch.push(format!("+{}:{}", t.reference, local_ref(&t.reference)));
            }
        }
    }
    let args: Vec<&str> = fetch.iter().map(String::as_str).collect();
    git.run("fetch", &args)?;
    // `#REF#COMMIT`, or `#COMMIT` alone: that commit, whatever the ref's tip is.
    let pinned = req.commit.clone().or_else(|| req.reference.clone().filter(|r| is_commit_sha(r)));
    let commit = match (&pinned, &target) {
        (Some(c), _) => c.clone(),
        (None, Some(t)) => t.sha.clone(),
        (None, None) => return Err(GitError::Invalid(format!("{shown}: nothing to check out"))),
    };
    if !is_commit_sha(&commit) {
        return Err(GitError::Invalid(format!("{shown}: {commit:?} is not a full commit id")));
    }
    let probe = format!("{commit}^{{commit}}");
    if git.run("cat-file", &["cat-file", "-e", &probe]).is_err() {
        // A pinned commit the ref's history (as deep as fetched) does not hold: ask for it.
        let mut by_id: Vec<&str> = vec!["fetch", "-q"];
        by_id.extend(depth.as_deref());
        by_id.extend(["origin", commit.as_str()]);
        git.run("fetch", &by_id)
            .map_err(|_| GitError::Invalid(format!("{shown}: commit {commit} was not found in the repository")))?;
        git.run("cat-file", &["cat-file", "-e", &probe])
            .map_err(|_| GitError::Invalid(format!("{shown}: {commit} is not a commit")))?;
    }
    tree::check_blob_sizes(&git, &commit, limits)?;
    match (&target, &local) {
        // A branch, not pinned: on the branch, as `git clone --branch` leaves it.
        (Some(t), Some(l)) if pinned.is_none() && t.reference.starts_with("refs/heads/") => {
            let name = &t.reference["refs/heads/".len()..];
            git.run("checkout", &["checkout", "-q", "-B", name, l.as_str()])?;
        }
        _ => {
            git.run("checkout", &["checkout", "-q", "--detach", &commit])?;
        }
    }
    if req.submodules && dir.join(".gitmodules").exists() {
        let mut args = vec!["submodule", "update", "--init", "--recursive"];
        args.extend(depth.as_deref());
        git.run("submodule update", &args)?;
    }
    let _ = git.run("remote set-head", &["remote", "set-head", "origin", "--auto"]);
    let time = tree::commit_time(&git, &commit)?;
    tree::finish(dir, limits, req.mtime_commit.then_some(time), req.cancel.as_ref())?;
    Ok(ContextCheckout { commit, reference: target.map(|t| t.reference), time })
}

/// The ref to fetch: `--git branch=` (a branch, else a tag, as kaniko looks it up), else
/// `#REF` unless it is a commit, else the remote's default branch. `None`: only a commit
/// (`#COMMIT`), fetched by its id.
fn target_ref(git: &Git<'_>, req: &ContextRequest, shown: &str) -> Result<Option<Resolved>, GitError> {
    let list = |pattern: Option<&str>| -> Result<String, GitError> {
        let mut args = vec!["ls-remote", "--", git.remote];
        args.extend(pattern);
        git.run("ls-remote", &args).map_err(|e| resolve::not_a_repository(e, shown))
    };
    if let Some(b) = &req.branch {
        let out = list(None)?;
        for full in [format!("refs/heads/{b}"), format!("refs/tags/{b}")] {
            if let Some(r) = resolve::pick(&out, &full) {
                return Ok(Some(r));
            }
        }
        return Err(GitError::NoSuchRef { remote: shown.to_string(), reference: format!("branch {b}") });
    }
    let reference = match req.reference.as_deref() {
        Some(r) if is_commit_sha(r) => {
            // Kaniko clones the default branch, then checks out the commit.
            return match resolve::default_branch(git, git.remote, shown) {
                Ok(head) => Ok(resolve::pick(&list(Some(head.as_str()))?, &head)),
                Err(_) => Ok(None),
            };
        }
        Some(r) => r.to_string(),
        None => resolve::default_branch(git, git.remote, shown)?,
    };
    let out = list(None)?;
    resolve::pick(&out, &reference)
        .map(Some)
        .ok_or_else(|| GitError::NoSuchRef { remote: shown.to_string(), reference })
}

/// Where a fetched ref is kept: a branch as a remote-tracking branch (as `git clone` keeps
/// it), anything else under its own name.
fn local_ref(reference: &str) -> String {
    match reference.strip_prefix("refs/heads/") {
        Some(b) => format!("refs/remotes/origin/{b}"),
        None => reference.to_string(),
    }
}

/// `scheme://host[:port]/` of a remote: what git's `http.<url>.*` settings are matched against.
fn url_prefix(remote: &str) -> String {
    let (scheme, rest) = remote.split_once("://").unwrap_or(("https", remote));
    let host = rest.split('/').next().unwrap_or("");
    format!("{scheme}://{host}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_scoped_to_the_remote_and_never_printed() {
        assert_eq!(url_prefix("https://git.example:8443/org/repo.git"), "https://git.example:8443/");
        assert_eq!(url_prefix("http://127.0.0.1:9/r.git"), "http://127.0.0.1:9/");
        let a = BasicAuth { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{a:?}").contains("hunter2"));
        assert_eq!(local_ref("refs/heads/main"), "refs/remotes/origin/main");
        assert_eq!(local_ref("refs/pull/1/head"), "refs/pull/1/head");
    }
}
