//! Running the `git` command line on a repository that is hostile input.
//!
//! Every command runs with no configuration but trowel's own: no system or user git config
//! (`GIT_CONFIG_NOSYSTEM`, `HOME` and `GIT_CONFIG_GLOBAL` at `/dev/null`, as BuildKit does), no
//! hooks (`core.hooksPath=/dev/null`), no terminal prompt, and only the transports trowel
//! allows (http, https, git — a `.gitmodules` naming `file://`, `ext::` or ssh is refused by git
//! itself; ssh only for a remote named over ssh, with the build's agent: see `ssh.rs`). Each command is its own process group, so a stuck or oversized one is killed with
//! every helper it started (`git-remote-https`, `index-pack`, submodule clones), dies with
//! trowel (`PR_SET_PDEATHSIG`, set by the sandbox module, the only place for `unsafe`), and a
//! watchdog kills it when the directory it writes grows past the layer size limit: a clone is
//! bounded while it downloads, not only once it is done; the same watch kills it when the build
//! is stopped ([`Git::cancel`]: a SIGTERM during a large fetch ends within a poll of it). What
//! git prints is passed through [`redact_urls_in`] before it reaches an error message.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::GitError;
use crate::dockerfile::gitref::redact_urls_in;

/// Proxy settings git may use (passed through, as BuildKit does).
const PROXY_VARS: [&str; 8] =
    ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy"];

/// Configuration every command gets, whatever the repository says.
const CONFIG: [&str; 11] = [
    // A server that stops sending is given up after 300 s, as a stalled registry is.
    "http.lowSpeedLimit=1",
    "http.lowSpeedTime=300",
    "protocol.allow=never",
    "protocol.http.allow=always",
    "protocol.https.allow=always",
    "protocol.git.allow=always",
    "core.hooksPath=/dev/null",
    "core.symlinks=true",
    "core.autocrlf=false",
    "core.fsmonitor=false",
    "advice.detachedHead=false",
];

/// How often the watchdog measures the directory a command writes.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// Runs git commands in one directory for one remote.
pub(crate) struct Git<'a> {
    /// The working directory (the repository's work tree).
    pub dir: &'a Path,
    /// The remote as given to git: masked in everything git prints.
    pub remote: &'a str,
    /// Kill a command when `dir` holds more than this many bytes.
    pub max_bytes: Option<u64>,
    /// For a remote named over ssh: the agent and host keys `ssh` uses.
    pub ssh: Option<&'a super::SshAccess>,
    /// Which git, with which PATH (the build machine's, or trowel's bundle: see `tools.rs`).
    pub tools: &'a super::Tools,
    /// Configuration given through the environment (`GIT_CONFIG_COUNT`, `GIT_CONFIG_KEY_n`,
    /// `GIT_CONFIG_VALUE_n`) rather than the command line, where every process of the machine
    /// could read it: a build context's credentials (`context.rs`).
    pub env_config: &'a [(String, String)],
    /// The build's stop: a command still running when it is asked for is killed, with every
    /// helper it started, and fails as [`GitError::Cancelled`].
    pub cancel: Option<&'a crate::fs::Cancel>,
}

impl Git<'_> {
    /// [`Git::run`] of a shallow operation (`--depth=1`), run again whole when the server cannot
    /// serve it shallow (git's "dumb" HTTP transport, some old servers), as BuildKit's `gitutil`
    /// does when git's error speaks of `shallow` or `--depth`.
    pub fn run_shallow(&self, what: &str, args: &[&str]) -> Result<String, GitError> {
        match self.run(what, args) {
            Err(e)
                if args.contains(&"--depth=1") && {
                    let m = e.to_string();
                    m.contains("shallow") || m.contains("--depth")
                } =>
            {
                let whole: Vec<&str> = args.iter().copied().filter(|a| *a != "--depth=1").collect();
                self.run(what, &whole)
            }
            r => r,
        }
    }

    /// Runs `git <args>` and returns its standard output. `what` names the operation in errors.
    pub fn run(&self, what: &str, args: &[&str]) -> Result<String, GitError> {
        let mut cmd = crate::sandbox::userns::command(&self.tools.git);
        for c in CONFIG {
            cmd.arg("-c").arg(c);
        }
        if self.ssh.is_some() {
            cmd.arg("-c").arg("protocol.ssh.allow=always");
        }
        cmd.args(args)
            .current_dir(self.dir)
            .env_clear()
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", "/dev/null")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.tools.apply(&mut cmd);
        for v in PROXY_VARS {
            if let Some(val) = std::env::var_os(v) {
                cmd.env(v, val);
            }
        }
        if !self.env_config.is_empty() {
            cmd.env("GIT_CONFIG_COUNT", self.env_config.len().to_string());
            for (i, (k, v)) in self.env_config.iter().enumerate() {
                cmd.env(format!("GIT_CONFIG_KEY_{i}"), k).env(format!("GIT_CONFIG_VALUE_{i}"), v);
            }
        }
        if let Some(ssh) = self.ssh {
            cmd.env("SSH_AUTH_SOCK", &ssh.agent).env("GIT_SSH_COMMAND", ssh.git_ssh_command());
        }
        // Its own process group: the watchdog kills git and every helper it started; and it
        // dies with trowel.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        crate::sandbox::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => GitError::NotInstalled,
            _ => GitError::Io { what: format!("start git {what}"), source: e },
        })?;
        let read = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = read(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
        let err = read(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
        let pgid = rustix::process::Pid::from_raw(child.id() as i32);
        let mut over: Option<u64> = None;
        let mut cancelled = false;
        let mut last_check = Instant::now();
        let kill = || {
            if let Some(pgid) = pgid {
                let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            }
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => return Err(GitError::Io { what: format!("wait for git {what}"), source: e }),
            }
            std::thread::sleep(Duration::from_millis(20));
            if !cancelled && self.cancel.is_some_and(|c| c.requested()) {
                // Waited for below, so no helper writes into the directory once this returns.
                cancelled = true;
                kill();
            }
            if let Some(limit) = self.max_bytes
                && over.is_none()
                && last_check.elapsed() >= WATCH_EVERY
            {
                last_check = Instant::now();
                let used = dir_bytes(self.dir);
                if used > limit {
                    over = Some(used);
                    kill();
                }
            }
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if cancelled {
            return Err(GitError::Cancelled { what: what.to_string() });
        }
        if let (Some(used), Some(limit)) = (over, self.max_bytes) {
            return Err(GitError::TooLarge { what: format!("git {what}"), size: used, limit });
        }
        if !status.success() {
            let text = String::from_utf8_lossy(&stderr);
            return Err(GitError::Command {
                what: what.to_string(),
                status: status.code(),
                stderr: summary(&redact_urls_in(text.trim(), self.remote)),
            });
        }
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    }
}

/// Bytes of the regular files below `dir` (what a clone has written so far). Best effort: a
/// file that disappears while it is measured counts for nothing.
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// What git said went wrong, on one line (an error message is one line of a CI log): its
/// `fatal:`/`error:` lines, each once, else its last line.
fn summary(s: &str) -> String {
    let mut picked: Vec<&str> = Vec::new();
    for l in s.lines().map(str::trim) {
        let is_error = ["fatal:", "error:", "remote error", "remote: fatal", "ssh:", "Host key verification failed"]
            .iter()
            .any(|p| l.starts_with(p))
            // What ssh says before git's own "Could not read from remote repository".
            || ["REMOTE HOST IDENTIFICATION HAS CHANGED", "host key is known for", "Permission denied ("]
                .iter()
                .any(|p| l.contains(p));
        if is_error && !picked.contains(&l) {
            picked.push(l);
        }
    }
    if picked.is_empty() {
        return s.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("").to_string();
    }
    picked.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_summarised_on_one_line() {
        let stderr = "Cloning into 'm'...\nfatal: transport 'file' not allowed\nfatal: clone of 'x' failed\n\
                      Failed to clone 'm'. Retry scheduled\nfatal: transport 'file' not allowed\n";
        assert_eq!(summary(stderr), "fatal: transport 'file' not allowed; fatal: clone of 'x' failed");
        assert_eq!(summary("warning: x\nsomething odd\n\n"), "something odd");
        let ssh = "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\n\
                   Host key verification failed.\nfatal: Could not read from remote repository.\n\nPlease make sure...";
        assert_eq!(
            summary(ssh),
            "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.; \
             Host key verification failed.; fatal: Could not read from remote repository."
        );
    }

    #[test]
    fn a_command_that_writes_too_much_is_killed_with_its_helpers() {
        let Ok(tools) = super::super::Tools::host() else { return };
        let dir = tempfile::tempdir().unwrap();
        let git = Git {
            dir: dir.path(),
            remote: "https://u:p@example.invalid/r.git",
            max_bytes: None,
            ssh: None,
            tools: &tools,
            env_config: &[],
            cancel: None,
        };
        git.run("init", &["init", "-q", "."]).unwrap();
        // `git -c alias.x='!…'` runs a shell command as git would run a helper: one that writes
        // without end stands for a clone that does.
        let writer = Git { max_bytes: Some(1 << 20), ..git };
        let t0 = Instant::now();
        let err = writer
            .run("write", &["-c", "alias.fill=!yes 0123456789abcdef > big", "fill"])
            .expect_err("stopped at the limit");
        assert!(matches!(err, GitError::TooLarge { limit, .. } if limit == 1 << 20), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(20));
        // The writer is gone: the file no longer grows.
        let size = std::fs::metadata(dir.path().join("big")).unwrap().len();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(std::fs::metadata(dir.path().join("big")).unwrap().len(), size);
    }

    #[test]
    fn failures_quote_git_with_the_remote_masked() {
        let Ok(tools) = super::super::Tools::host() else { return };
        let dir = tempfile::tempdir().unwrap();
        let remote = "http://user:s3cret@127.0.0.1:9/nothing.git";
        let git =
            Git { dir: dir.path(), remote, max_bytes: None, ssh: None, tools: &tools, env_config: &[], cancel: None };
        let err = git.run("ls-remote", &["ls-remote", "--", remote]).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("s3cret"), "{msg}");
        assert!(msg.starts_with("git ls-remote failed"), "{msg}");
    }
}
