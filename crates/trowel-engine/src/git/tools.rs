//! Which `git` (and `ssh`) trowel runs, and with what environment.
//!
//! In chroot and rootless isolation the build root is a directory of its own, so the build
//! machine's `git` on PATH is trowel's to use. In container isolation `/` *is* the build root:
//! once the base image is unpacked over it, a `git` on PATH (and `/usr/lib/git-core`, `/lib`,
//! `/etc/ssl`, `/bin/sh`) would be the image's, and an image must not decide how its own
//! sources are fetched. There trowel runs only the git its own image bundles under
//! `<trowel dir>/git` (`scripts/image-context.sh`: every binary patched to its own loader and
//! libraries), with `PATH` holding nothing but that bundle (its static busybox runs
//! `git submodule`, a shell script, and the ssh wrapper), git's exec path there, the CA
//! bundle of `<trowel dir>/ssl`, and no templates.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::GitError;

/// What the bundle must hold, relative to `<trowel dir>/git`: git and its http(s) helper, the
/// shell (and the applets `git submodule` uses), OpenSSH's client tools.
const BUNDLED: [&str; 8] = [
    "libexec/git-core/git",
    "libexec/git-core/git-remote-http",
    "libexec/git-core/git-submodule",
    "bin/sh",
    "bin/sed",
    "bin/ssh",
    "bin/ssh-keygen",
    "bin/ssh-keyscan",
];

/// The git trowel runs.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The `git` executable.
    pub git: PathBuf,
    /// `PATH` for git and OpenSSH's tools.
    pub path: OsString,
    /// Set for the bundled git only: its exec path, CA bundle, and the shell that runs the ssh
    /// wrapper; `ssh` is `bin/ssh` of the bundle.
    pub bundle: Option<Bundle>,
}

/// The bundled git's own files.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub exec_path: PathBuf,
    pub ca_bundle: PathBuf,
    pub shell: PathBuf,
    pub ssh: PathBuf,
}

impl Tools {
    /// The build machine's `git`, found on PATH.
    pub fn host() -> Result<Tools, GitError> {
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        let git =
            std::env::split_paths(&path).map(|d| d.join("git")).find(|p| p.is_file()).ok_or(GitError::NotInstalled)?;
        Ok(Tools { git, path, bundle: None })
    }

    /// The git of trowel's image, under `<trowel_dir>/git`; an error names every file missing.
    pub fn bundled(trowel_dir: &Path) -> Result<Tools, GitError> {
        let dir = trowel_dir.join("git");
        let ca_bundle = trowel_dir.join("ssl/certs/ca-certificates.crt");
        let mut missing: Vec<String> =
            BUNDLED.iter().map(|f| dir.join(f)).filter(|p| !p.is_file()).map(|p| p.display().to_string()).collect();
        if !ca_bundle.is_file() {
            missing.push(ca_bundle.display().to_string());
        }
        if !missing.is_empty() {
            return Err(GitError::NotBundled { dir, missing: missing.join(", ") });
        }
        let bin = dir.join("bin");
        Ok(Tools {
            git: dir.join("libexec/git-core/git"),
            path: bin.clone().into_os_string(),
            bundle: Some(Bundle {
                exec_path: dir.join("libexec/git-core"),
                ca_bundle,
                shell: bin.join("sh"),
                ssh: bin.join("ssh"),
            }),
        })
    }

    /// The git for a build: the bundled one when `/` is the build root (container isolation).
    pub fn for_build(container: bool, trowel_dir: &Path) -> Result<Tools, GitError> {
        if container { Tools::bundled(trowel_dir) } else { Tools::host() }
    }

    /// Sets what every git command gets from the tools on `cmd` (whose environment is clear).
    pub(crate) fn apply(&self, cmd: &mut std::process::Command) {
        cmd.env("PATH", &self.path);
        if let Some(b) = &self.bundle {
            cmd.env("GIT_EXEC_PATH", &b.exec_path)
                .env("GIT_SSL_CAINFO", &b.ca_bundle)
                // An empty template directory: `git init` copies nothing of the image's.
                .env("GIT_TEMPLATE_DIR", "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_is_used_only_when_complete() {
        let t = tempfile::tempdir().unwrap();
        let err = Tools::bundled(t.path()).unwrap_err().to_string();
        let git = t.path().join("git");
        assert!(err.contains(&git.join("libexec/git-core/git").display().to_string()), "{err}");
        assert!(err.contains(&t.path().join("ssl/certs/ca-certificates.crt").display().to_string()), "{err}");
        for f in BUNDLED {
            let p = git.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let err = Tools::bundled(t.path()).unwrap_err().to_string();
        assert!(!err.contains("libexec") && err.contains("ca-certificates.crt"), "{err}");
        std::fs::create_dir_all(t.path().join("ssl/certs")).unwrap();
        std::fs::write(t.path().join("ssl/certs/ca-certificates.crt"), "").unwrap();
        let tools = Tools::bundled(t.path()).unwrap();
        assert_eq!(tools.git, git.join("libexec/git-core/git"));
        assert_eq!(tools.path, git.join("bin").into_os_string(), "nothing of the image's PATH");
    }
}
