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
    let (auth, secrets) = credentials(opts.env, g.url_auth.as_ref());
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
        mtime_commit: opts.source_date_epoch,
        cancel: opts.cancel(),
    };
    let limits = Limits { max_file_size: opts.limits.max_file_size, max_total_size: opts.limits.max_total_size };
    let checkout = crate::git::context::clone(&req, dir, limits, &tools).map_err(git_err)?;
    let (digest, bytes, files) = super::tree_digest(dir, req.cancel.as_ref()).map_err(|source| ContextError::Io {
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
        time: Some(checkout.time),
    };
    Ok((origin, secrets))
}

/// The credentials git is given, and the values to mask: `GIT_TOKEN` (the user name, no
/// password), else `GIT_USERNAME`/`GIT_PASSWORD`, else the URL's; masked are the password (or
/// the token), and a URL's secret even when the environment's credentials win over it.
fn credentials(env: &dyn Fn(&str) -> Option<String>, url_auth: Option<&BasicAuth>) -> (Option<BasicAuth>, Vec<String>) {
    let env = |k: &str| env(k).filter(|v| !v.is_empty());
    // A lone user name in a URL is how tokens are written (`https://TOKEN@host/…`).
    let secret_of = |a: &BasicAuth| if a.password.is_empty() { a.username.clone() } else { a.password.clone() };
    let auth = match (env("GIT_TOKEN"), env("GIT_USERNAME"), env("GIT_PASSWORD")) {
        (Some(token), _, _) => Some(BasicAuth { username: token, password: String::new() }),
        (None, user, password) if user.is_some() || password.is_some() => {
            Some(BasicAuth { username: user.unwrap_or_default(), password: password.unwrap_or_default() })
        }
        _ => url_auth.cloned(),
    };
    let mut secrets: Vec<String> = auth.iter().chain(url_auth).map(secret_of).filter(|s| !s.is_empty()).collect();
    secrets.dedup();
    (auth, secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn basic(u: &str, p: &str) -> BasicAuth {
        BasicAuth { username: u.into(), password: p.into() }
    }

    #[test]
    fn credentials_as_kaniko_reads_them() {
        let url = basic("urluser", "urlpw");
        // GIT_TOKEN wins, as the user name with no password.
        let e = env(&[("GIT_TOKEN", "tok"), ("GIT_USERNAME", "u"), ("GIT_PASSWORD", "pw")]);
        assert_eq!(credentials(&e, Some(&url)), (Some(basic("tok", "")), vec!["tok".into(), "urlpw".into()]));
        // Then the user name and password.
        let e = env(&[("GIT_USERNAME", "u"), ("GIT_PASSWORD", "pw"), ("GIT_TOKEN", "")]);
        assert_eq!(credentials(&e, None), (Some(basic("u", "pw")), vec!["pw".into()]));
        // Then the URL's; a lone user name there is a token.
        assert_eq!(credentials(&env(&[]), Some(&url)), (Some(url.clone()), vec!["urlpw".into()]));
        let token_url = basic("t0ken", "");
        assert_eq!(credentials(&env(&[]), Some(&token_url)), (Some(token_url.clone()), vec!["t0ken".into()]));
        assert_eq!(credentials(&env(&[]), None), (None, vec![]));
    }
}
