//! `git://…` and `https://…/REPO.git` contexts: the credentials kaniko reads from the
//! environment, then a clone by `git/context.rs` into the context directory.
//!
//! kaniko's rules (`getGitAuth`): `GIT_TOKEN`, when set, is the user name with an empty
//! password; else `GIT_USERNAME` and `GIT_PASSWORD`; else whatever the URL carries. Every
//! value that can be a secret is handed back to be masked in everything the build reports.

use std::path::Path;

use super::{ContextError, ContextKind, ContextOrigin, FetchOptions, GitSource};
use crate::git::context::{BasicAuth, ContextRequest};
use crate::git::{Limits, Tools};

pub(super) fn fetch(
    g: &GitSource,
    dir: &Path,
    opts: &FetchOptions<'_>,
) -> Result<(ContextOrigin, Vec<String>), ContextError> {
    let env = |k: &str| (opts.env)(k).filter(|v| !v.is_empty());
    // A lone user name in a URL is how tokens are written (`https://TOKEN@host/…`).
    let url_secret = g.url_auth.as_ref().map(|a| if a.password.is_empty() { &a.username } else { &a.password });
    let auth = match (env("GIT_TOKEN"), env("GIT_USERNAME"), env("GIT_PASSWORD")) {
        (Some(token), _, _) => Some(BasicAuth { username: token, password: String::new() }),
        (None, user, password) if user.is_some() || password.is_some() => {
            Some(BasicAuth { username: user.unwrap_or_default(), password: password.unwrap_or_default() })
        }
        _ => g.url_auth.clone(),
    };
    // What is masked: the password (the token), and a URL's secret even when the
    // environment's credentials are used instead.
    let mut secrets: Vec<String> = Vec::new();
    if let Some(a) = &auth {
        secrets.push(if a.password.is_empty() { a.username.clone() } else { a.password.clone() });
    }
    secrets.extend(url_secret.cloned());
    secrets.retain(|s| !s.is_empty());
    secrets.dedup();
    let git_err =
        |source: crate::git::GitError| ContextError::Git { source_: g.shown.clone(), source: Box::new(source) };
    let tools = Tools::for_build(opts.container, opts.trowel_dir).map_err(git_err)?;
    let req = ContextRequest {
        remote: g.remote.clone(),
        reference: g.reference.clone(),
        commit: g.commit.clone(),
        branch: opts.git.branch.clone(),
        single_branch: opts.git.single_branch,
        submodules: opts.git.recurse_submodules,
        depth: opts.git.depth,
        insecure_skip_tls: opts.git.insecure_skip_tls,
        auth,
    };
    let limits = Limits { max_file_size: opts.limits.max_file_size, max_total_size: opts.limits.max_total_size };
    let checkout = crate::git::context::clone(&req, dir, limits, &tools).map_err(git_err)?;
    let (digest, bytes, files) = super::tree_digest(dir).map_err(|source| ContextError::Io {
        source_: g.shown.clone(),
        what: "measure the checkout".into(),
        source,
    })?;
    let origin = ContextOrigin {
        kind: ContextKind::Git,
        source: g.shown.clone(),
        reference: checkout.reference,
        commit: Some(checkout.commit),
        digest,
        bytes,
        files,
        sub_path: None,
    };
    Ok((origin, secrets))
}
