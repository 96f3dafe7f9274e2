//! Which commit a git source names, and fetching just that: BuildKit's `ls-remote` rules (an
//! exact ref first, then a branch, then a tag; an annotated tag is peeled to its commit) and a
//! shallow fetch of the one ref or commit.

use super::cli::Git;
use super::{GitError, Request};
use crate::dockerfile::gitref::is_commit_sha;

/// A ref resolved against the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// What to fetch: a full ref name, or a commit id.
    pub reference: String,
    /// The object the ref names (an annotated tag's own object for such a tag).
    pub sha: String,
    /// For an annotated tag: the tag object (`sha` is then the commit it points to).
    pub tag_object: Option<String>,
    /// `?fetch-by-commit`: fetch `sha` itself and name it `reference` locally, without asking
    /// the remote what `reference` is.
    pub by_commit: bool,
}

/// Resolves `req`'s ref (or the default branch) to an object id, checking `--checksum`.
pub(crate) fn resolve(git: &Git<'_>, req: &Request) -> Result<Resolved, GitError> {
    let remote = req.git.redacted();
    let checksum = req.checksum.as_deref().map(str::to_ascii_lowercase);
    let mismatch = |got: &str| GitError::ChecksumMismatch {
        remote: remote.clone(),
        checksum: checksum.clone().unwrap_or_default(),
        got: got.to_string(),
    };
    if let Some(r) = req.git.reference.as_deref().filter(|r| is_commit_sha(r)) {
        if let Some(c) = &checksum
            && !r.starts_with(c.as_str())
        {
            return Err(mismatch(r));
        }
        return Ok(Resolved { reference: r.to_string(), sha: r.to_string(), tag_object: None, by_commit: false });
    }
    if req.git.fetch_by_commit {
        let Some(c) = checksum.clone().filter(|c| is_commit_sha(c)) else {
            return Err(GitError::Invalid(format!(
                "fetch-by-commit requires a full commit SHA checksum, got {:?}",
                checksum.unwrap_or_default()
            )));
        };
        let reference = match req.git.reference.as_deref() {
            Some(r) if r.starts_with("refs/") => r.to_string(),
            Some(r) => format!("refs/heads/{r}"),
            None => c.clone(),
        };
        return Ok(Resolved { reference, sha: c, tag_object: None, by_commit: true });
    }
    let reference = match &req.git.reference {
        Some(r) => r.clone(),
        None => default_branch(git, &req.git.remote, &remote)?,
    };
    let pattern = reference.as_str();
    let out = git
        .run("ls-remote", &["ls-remote", "--", &req.git.remote, pattern, &format!("{pattern}^{{}}")])
        .map_err(|e| not_a_repository(e, &remote))?;
    let picked = pick(&out, &reference).ok_or_else(|| GitError::NoSuchRef { remote: remote.clone(), reference })?;
    if let Some(c) = &checksum {
        let ok = picked.sha.starts_with(c.as_str()) || picked.tag_object.as_deref().is_some_and(|t| t.starts_with(c));
        if !ok {
            let got = match &picked.tag_object {
                Some(t) => format!("{} or {t}", picked.sha),
                None => picked.sha.clone(),
            };
            return Err(mismatch(&got));
        }
    }
    Ok(picked)
}

/// The remote's default branch (`ls-remote --symref … HEAD`).
pub(crate) fn default_branch(git: &Git<'_>, remote: &str, shown: &str) -> Result<String, GitError> {
    let out = git
        .run("ls-remote", &["ls-remote", "--symref", "--", remote, "HEAD"])
        .map_err(|e| not_a_repository(e, shown))?;
    out.lines()
        .find_map(|l| l.strip_prefix("ref: ")?.split_whitespace().next().map(str::to_string))
        .filter(|r| r.starts_with("refs/heads/") && !r.starts_with('-'))
        .ok_or_else(|| GitError::Invalid(format!("could not find the default branch of repository {shown}")))
}

/// A failed `ls-remote` is the first contact: say the URL does not lead to a repository —
/// unless ssh said it could not get in (a host key, a refused key), which is not the
/// repository's fault.
pub(crate) fn not_a_repository(e: GitError, remote: &str) -> GitError {
    match e {
        GitError::Command { stderr, .. } if ssh_refused(&stderr) => {
            GitError::SshRefused { remote: remote.to_string(), reason: stderr }
        }
        GitError::Command { stderr, .. } => GitError::NotARepository { remote: remote.to_string(), reason: stderr },
        other => other,
    }
}

fn ssh_refused(stderr: &str) -> bool {
    ["Host key verification failed", "Permission denied (", "ssh: "].iter().any(|p| stderr.contains(p))
}

/// Picks the ref `reference` names from `ls-remote` output, as BuildKit: the exact ref
/// (`refs/…`), else the branch, else the tag (peeled when annotated).
pub(crate) fn pick(ls_remote: &str, reference: &str) -> Option<Resolved> {
    let bare = reference.strip_prefix("refs/").unwrap_or(reference);
    let partial = format!("refs/{bare}");
    let head = format!("refs/heads/{}", reference.strip_prefix("refs/heads/").unwrap_or(reference));
    let tag = format!("refs/tags/{}", reference.strip_prefix("refs/tags/").unwrap_or(reference));
    let peeled = format!("{tag}^{{}}");
    let (mut exact, mut head_sha, mut tag_sha, mut peeled_sha) = (None, None, None, None);
    for line in ls_remote.lines() {
        let Some((sha, name)) = line.split_once('\t') else { continue };
        let sha = sha.trim().to_string();
        if name == head {
            head_sha = Some(sha.clone());
        }
        if name == tag {
            tag_sha = Some(sha.clone());
        }
        if name == peeled {
            peeled_sha = Some(sha.clone());
        }
        if name == partial {
            exact = Some(sha);
        }
    }
    let found = if let Some(sha) = exact {
        let is_tag = partial == tag;
        Resolved {
            reference: partial,
            sha: if is_tag { peeled_sha.clone().unwrap_or_else(|| sha.clone()) } else { sha.clone() },
            tag_object: if is_tag && peeled_sha.is_some() { Some(sha) } else { None },
            by_commit: false,
        }
    } else if let Some(sha) = head_sha {
        Resolved { reference: head, sha, tag_object: None, by_commit: false }
    } else if let Some(sha) = tag_sha {
        match peeled_sha {
            Some(commit) => Resolved { reference: tag, sha: commit, tag_object: Some(sha), by_commit: false },
            None => Resolved { reference: tag, sha, tag_object: None, by_commit: false },
        }
    } else {
        return None;
    };
    is_commit_sha(&found.sha).then_some(found)
}

/// Fetches what `r` names, one commit deep, into the repository in `git.dir`.
pub(crate) fn fetch(git: &Git<'_>, r: &Resolved) -> Result<(), GitError> {
    if is_commit_sha(&r.reference) || r.by_commit {
        // Servers speaking protocol v2 (git's default) hand out any commit they have; older
        // ones only what a ref points at, so fall back to fetching every branch and tag.
        let shallow = git.run("fetch", &["fetch", "-q", "--depth=1", "--no-tags", "origin", &r.sha]);
        if shallow.is_err() {
            git.run("fetch", &["fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"])?;
        }
        let probe = format!("{}^{{commit}}", r.sha);
        git.run("cat-file", &["cat-file", "-e", &probe]).map_err(|_| {
            GitError::Invalid(format!("{}: commit {} was not found in the repository", git_remote(git), r.sha))
        })?;
        if r.reference != r.sha {
            git.run("update-ref", &["update-ref", "--no-deref", &r.reference, &r.sha])?;
        }
        return Ok(());
    }
    let refspec = format!("+{}:{}", r.reference, r.reference);
    git.run_shallow("fetch", &["fetch", "-q", "--depth=1", "--no-tags", "origin", "--", &refspec])?;
    // The ref may have moved since it was resolved (the cache key has the old commit): take
    // the commit that was resolved, as BuildKit does, or fail.
    let now = git.run("rev-parse", &["rev-parse", "--verify", &format!("{}^{{commit}}", r.reference)])?;
    if now.trim() != r.sha {
        let got = git.run_shallow("fetch", &["fetch", "-q", "--depth=1", "--no-tags", "origin", &r.sha]);
        if got.is_err() {
            return Err(GitError::Invalid(format!(
                "{}: {} moved to {} while it was fetched, and {} can no longer be fetched",
                git_remote(git),
                r.reference,
                now.trim(),
                r.sha
            )));
        }
        git.run("update-ref", &["update-ref", "--no-deref", &r.reference, &r.sha])?;
    }
    Ok(())
}

fn git_remote(git: &Git<'_>) -> String {
    crate::dockerfile::gitref::redact_url(git.remote)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const C: &str = "3333333333333333333333333333333333333333";

    #[test]
    fn ls_remote_picks_like_buildkit() {
        let out = format!(
            "{A}\trefs/heads/v1\n{B}\trefs/tags/v1\n{C}\trefs/tags/v1^{{}}\n{A}\trefs/heads/main\n{B}\trefs/tags/light\n"
        );
        // A branch wins over a tag of the same name.
        assert_eq!(
            pick(&out, "v1").unwrap(),
            Resolved { reference: "refs/heads/v1".into(), sha: A.into(), tag_object: None, by_commit: false }
        );
        // A full tag ref: the annotated tag, peeled.
        assert_eq!(
            pick(&out, "refs/tags/v1").unwrap(),
            Resolved { reference: "refs/tags/v1".into(), sha: C.into(), tag_object: Some(B.into()), by_commit: false }
        );
        assert_eq!(
            pick(&out, "light").unwrap(),
            Resolved { reference: "refs/tags/light".into(), sha: B.into(), tag_object: None, by_commit: false }
        );
        assert_eq!(pick(&out, "main").unwrap().reference, "refs/heads/main");
        assert_eq!(pick(&out, "heads/main").unwrap().reference, "refs/heads/main");
        assert!(pick(&out, "nope").is_none());
        // `ls-remote` matches tails: `feature/main` is not `main`.
        assert!(pick(&format!("{A}\trefs/heads/feature/x\n"), "x").is_none());
        assert!(pick("zzz\trefs/heads/main\n", "main").is_none());
    }
}
