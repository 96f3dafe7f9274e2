//! A `.git` directory that goes into an image (`--keep-git-dir`) must not carry the URL's
//! credentials. Git writes the remote URL into more places than `remote.origin.url`: a
//! submodule's URL, resolved against the superproject's remote, lands in the superproject's
//! config (`submodule.<name>.url`) and in the submodule's own git directory (its config,
//! `FETCH_HEAD`, the `clone: from …` line of its reflogs). Every git directory of the checkout
//! gets its URLs masked, its `FETCH_HEAD` removed and its reflogs expired, as BuildKit does for
//! the top-level one; then every file is searched for the secrets, and a `.git` that still
//! holds one is refused rather than added (failing closed, like the event emitter).

use std::path::{Path, PathBuf};

use super::GitError;
use super::cli::Git;
use crate::dockerfile::gitref::redact_url;

/// Scrubs every git directory below `dir` (the checkout) of `remote`'s credentials.
pub(crate) fn scrub(git: &Git<'_>, dir: &Path) -> Result<(), GitError> {
    for gitdir in git_dirs(&dir.join(".git")) {
        let config = gitdir.join("config");
        let config_arg = config.to_string_lossy().into_owned();
        let urls = match git.run("config", &["config", "--file", &config_arg, "--get-regexp", r"url$"]) {
            Ok(out) => out,
            // Exit code 1: no key matched.
            Err(GitError::Command { status: Some(1), .. }) => String::new(),
            Err(e) => return Err(e),
        };
        for line in urls.lines() {
            let Some((key, value)) = line.split_once(' ') else { continue };
            let masked = redact_url(value);
            if masked != value {
                git.run("config", &["config", "--file", &config_arg, key, &masked])?;
            }
        }
        let gitdir_arg = gitdir.to_string_lossy().into_owned();
        git.run("reflog expire", &["--git-dir", &gitdir_arg, "reflog", "expire", "--all", "--expire=now"])?;
        match std::fs::remove_file(gitdir.join("FETCH_HEAD")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(GitError::Io { what: format!("remove {}/FETCH_HEAD", gitdir.display()), source: e });
            }
            _ => {}
        }
    }
    let secrets = crate::secrets::url_credentials(git.remote);
    if secrets.is_empty() {
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(dir.join(".git")).follow_links(false) {
        let entry = entry.map_err(|e| GitError::Io { what: "search .git".into(), source: e.into() })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path())
            .map_err(|e| GitError::Io { what: format!("read {}", entry.path().display()), source: e })?;
        if secrets.iter().any(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes())) {
            let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
            return Err(GitError::Invalid(format!(
                "the URL's credentials are still in {} after masking: refusing to keep .git (drop --keep-git-dir, \
                 or pass the credentials another way)",
                rel.display()
            )));
        }
    }
    Ok(())
}

/// The top-level git directory and those of submodules (`modules/<name>`, nested).
fn git_dirs(top: &Path) -> Vec<PathBuf> {
    let mut out = vec![top.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = std::fs::read_dir(out[i].join("modules")) {
            let mut subs: Vec<PathBuf> = rd
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            subs.sort();
            // A submodule named `a/b` lives in `modules/a/b`: descend until a git directory.
            while let Some(d) = subs.pop() {
                if d.join("HEAD").is_file() {
                    out.push(d);
                } else if let Ok(rd) = std::fs::read_dir(&d) {
                    subs.extend(
                        rd.filter_map(Result::ok).filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()),
                    );
                }
            }
        }
        i += 1;
    }
    out
}
