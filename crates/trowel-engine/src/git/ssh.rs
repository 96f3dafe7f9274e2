//! Fetching a repository over ssh (`ADD git@host:org/repo.git`, `ADD ssh://…`): how git's `ssh`
//! is run and which host keys it trusts.
//!
//! As BuildKit (moby/buildkit `source/git/source.go`, `util/gitutil/git_cli.go`), git runs
//! OpenSSH's `ssh -F /dev/null` with `SSH_AUTH_SOCK` at the build's `default` agent (`--ssh
//! default`) and a known-hosts file made for the one host. No configuration, identity file or
//! known-hosts file of the machine is read by `ssh` itself (`IdentityFile none`: the agent is the
//! only key holder, as it is in BuildKit's daemon), and it never prompts (`BatchMode`).
//!
//! Host keys: BuildKit's client scans the host's key when the build is defined
//! (`sshutil.SSHKeyScan`) and trusts what it gets (without a key it turns checking off). trowel
//! first looks for the host in the machine's known hosts (`$HOME/.ssh/known_hosts`,
//! `/etc/ssh/ssh_known_hosts`): a host found there is checked strictly against those entries, so
//! a changed key fails the build where BuildKit would trust it. Only a host found nowhere has its
//! key scanned (`ssh-keyscan`) and trusted, as BuildKit does; the caller says so in a warning
//! with the key's fingerprints, so it is never silent. A host whose key cannot be read is an
//! error, never `StrictHostKeyChecking=no`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::GitError;

/// What git needs to fetch over ssh.
#[derive(Debug, Clone)]
pub struct SshAccess {
    /// The agent's socket (`--ssh default`).
    pub agent: PathBuf,
    /// The known-hosts file made for the remote's host ([`host_keys`]).
    pub known_hosts: PathBuf,
    /// With the bundled git ([`with_bundle`](SshAccess::with_bundle)): a script that runs the
    /// bundle's `ssh` under the bundle's shell, for git to run directly (not through `/bin/sh`,
    /// which is the image's in container isolation).
    pub wrapper: Option<PathBuf>,
}

/// ssh's options: no configuration, identity file or known hosts of the machine, no prompt.
fn options(known_hosts: &Path) -> String {
    format!(
        "-F /dev/null -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null \
         -o StrictHostKeyChecking=yes -o UpdateHostKeys=no -o IdentityFile=none -o BatchMode=yes \
         -o ConnectTimeout=60 -o ServerAliveInterval=30 -o ServerAliveCountMax=10 -o LogLevel=ERROR",
        shell_quote(&known_hosts.display().to_string())
    )
}

impl SshAccess {
    /// `GIT_SSH_COMMAND` (run by git through the shell, so the path is quoted).
    pub(crate) fn command(&self) -> String {
        format!("ssh {}", options(&self.known_hosts))
    }

    /// What git is given as `GIT_SSH_COMMAND`: the wrapper (one word, so git runs it without a
    /// shell), else [`command`](SshAccess::command).
    pub(crate) fn git_ssh_command(&self) -> String {
        match &self.wrapper {
            Some(w) => w.display().to_string(),
            None => self.command(),
        }
    }

    /// For the bundled git: writes `dir/ssh`, running the bundle's `ssh` with [`options`]
    /// under the bundle's shell. OpenSSH's `ssh` looks the user up and exits without an entry
    /// ("No user exists for uid 0"); in container isolation `/etc/passwd` is the base image's,
    /// so a missing one is said here, clearly, before git runs.
    pub fn with_bundle(
        mut self,
        bundle: &super::tools::Bundle,
        dir: &Path,
        passwd: &Path,
    ) -> Result<SshAccess, GitError> {
        let uid = crate::sandbox::userns::real_uid();
        if !has_user(passwd, uid) {
            return Err(GitError::Invalid(format!(
                "an ssh remote in container isolation needs an entry for this user (uid {uid}) in {}, which the \
                 base image (now /) does not have: OpenSSH's ssh refuses to run without one; use a base image \
                 with an /etc/passwd, or build in chroot isolation",
                passwd.display()
            )));
        }
        let path = dir.join("ssh");
        let plain = |p: &Path| {
            p.to_str().is_some_and(|s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b)))
        };
        if !plain(&path) || !plain(&bundle.shell) {
            return Err(GitError::Invalid(format!(
                "{} cannot be run by git without a shell: use a work directory whose path has no spaces or quotes",
                path.display()
            )));
        }
        let script = format!(
            "#!{}\nexec {} {} \"$@\"\n",
            bundle.shell.display(),
            shell_quote(&bundle.ssh.display().to_string()),
            options(&self.known_hosts)
        );
        write(&path, &script)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| GitError::Io { what: format!("make {} executable", path.display()), source: e })?;
        self.wrapper = Some(path);
        Ok(self)
    }
}

/// Whether `passwd` has an entry for `uid`.
fn has_user(passwd: &Path, uid: u32) -> bool {
    std::fs::read_to_string(passwd)
        .map(|t| t.lines().any(|l| l.split(':').nth(2).and_then(|u| u.parse::<u32>().ok()) == Some(uid)))
        .unwrap_or(false)
}

/// Where host keys came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTrust {
    /// Entries of the machine's known hosts, in these files.
    Known(Vec<PathBuf>),
    /// The key the host presented now (`ssh-keyscan`), trusted as BuildKit trusts it: its
    /// fingerprints, as `ssh-keygen -l` prints them.
    Scanned(Vec<String>),
}

/// The host and port of an ssh remote (`ssh://[user@]host[:port]/path` or `user@host:path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn parse(remote: &str) -> Result<Endpoint, GitError> {
        let bad = |why: &str| GitError::Invalid(format!("{}: {why}", crate::dockerfile::gitref::redact_url(remote)));
        let authority = match remote.split_once("://") {
            Some((_, rest)) => &rest[..rest.find('/').unwrap_or(rest.len())],
            // scp-like: user@host:path (no port in this form).
            None => remote.split_once(':').map(|(a, _)| a).ok_or_else(|| bad("no host"))?,
        };
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad("unclosed [ in the host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) if remote.contains("://") => (h, Some(p)),
                _ => (hostport, None),
            }
        };
        let port = match port.filter(|p| !p.is_empty()) {
            Some(p) => p.parse::<u16>().map_err(|_| bad(&format!("invalid port {p:?}")))?,
            None => 22,
        };
        if host.is_empty() || host.starts_with('-') {
            return Err(bad("invalid host"));
        }
        Ok(Endpoint { host: host.to_string(), port })
    }

    /// How known-hosts files name it: `host`, or `[host]:port` off port 22.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 { self.host.clone() } else { format!("[{}]:{}", self.host, self.port) }
    }
}

/// The machine's known-hosts files, as OpenSSH reads them by default.
pub fn machine_known_hosts() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        out.push(Path::new(&home).join(".ssh/known_hosts"));
    }
    out.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
    out
}

/// Writes `dir/known_hosts` with the keys trusted for `ep`: the entries `files` have for it, or
/// else the keys it presents now.
/// `tools` gives the PATH where `ssh-keygen` and `ssh-keyscan` are found.
pub fn host_keys(
    ep: &Endpoint,
    files: &[PathBuf],
    dir: &Path,
    tools: &super::Tools,
) -> Result<(PathBuf, HostTrust), GitError> {
    let name = ep.known_hosts_name();
    let path = dir.join("known_hosts");
    let mut entries = String::new();
    let mut from = Vec::new();
    for f in files.iter().filter(|f| f.is_file()) {
        // `ssh-keygen -F` finds hashed entries and patterns too.
        let out = tool(
            crate::sandbox::userns::command("ssh-keygen").arg("-F").arg(&name).arg("-f").arg(f),
            "ssh-keygen",
            tools,
        )?;
        let found: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).collect();
        if !found.is_empty() {
            from.push(f.clone());
            for l in found {
                entries.push_str(l);
                entries.push('\n');
            }
        }
    }
    let trust = if from.is_empty() {
        let scanned = tool(
            crate::sandbox::userns::command("ssh-keyscan")
                .args(["-T", "30", "-p", &ep.port.to_string(), "--"])
                .arg(&ep.host),
            "ssh-keyscan",
            tools,
        )?;
        entries =
            scanned.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
        if entries.is_empty() {
            return Err(GitError::HostKey {
                host: name,
                reason: "it presented no host key (ssh-keyscan found none: is an ssh server listening there?)".into(),
            });
        }
        write(&path, &entries)?;
        let prints =
            tool(crate::sandbox::userns::command("ssh-keygen").arg("-l").arg("-f").arg(&path), "ssh-keygen", tools)?;
        HostTrust::Scanned(prints.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
    } else {
        write(&path, &entries)?;
        HostTrust::Known(from)
    };
    Ok((path, trust))
}

fn write(path: &Path, text: &str) -> Result<(), GitError> {
    std::fs::write(path, text).map_err(|e| GitError::Io { what: format!("write {}", path.display()), source: e })
}

/// Runs one of OpenSSH's tools with no environment but PATH (the tools'); its standard output.
fn tool(cmd: &mut Command, name: &str, tools: &super::Tools) -> Result<String, GitError> {
    // `Command` looks a bare program name up in the PATH it is given.
    let out =
        cmd.env_clear().env("PATH", &tools.path).stdin(Stdio::null()).stderr(Stdio::null()).output().map_err(|e| {
            GitError::Io { what: format!("run {name} (OpenSSH's client tools must be installed)"), source: e }
        })?;
    // `ssh-keygen -F` exits 1 when the host is not in the file: not an error.
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `s` as one word of a POSIX shell command.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_of_both_forms() {
        let ep = |r: &str| Endpoint::parse(r).unwrap();
        assert_eq!(ep("git@github.com:moby/buildkit.git"), Endpoint { host: "github.com".into(), port: 22 });
        assert_eq!(ep("ssh://git@127.0.0.1:2222/srv/r.git"), Endpoint { host: "127.0.0.1".into(), port: 2222 });
        assert_eq!(ep("ssh://host/r.git"), Endpoint { host: "host".into(), port: 22 });
        assert_eq!(ep("ssh://u:p@[::1]:2200/r.git"), Endpoint { host: "::1".into(), port: 2200 });
        assert_eq!(ep("ssh://git@127.0.0.1:2222/r.git").known_hosts_name(), "[127.0.0.1]:2222");
        assert_eq!(ep("git@gitlab.com:g/r.git").known_hosts_name(), "gitlab.com");
        assert!(Endpoint::parse("ssh://h:99999/r.git").is_err());
        assert!(Endpoint::parse("ssh://-oProxyCommand=x/r.git").is_err());
    }

    #[test]
    fn the_command_reads_nothing_of_the_machine_and_never_prompts() {
        let a = SshAccess { agent: "/a.sock".into(), known_hosts: "/w/it's/known_hosts".into(), wrapper: None };
        let c = a.command();
        assert!(c.starts_with("ssh -F /dev/null -o UserKnownHostsFile='/w/it'\\''s/known_hosts' "), "{c}");
        for o in ["GlobalKnownHostsFile=/dev/null", "StrictHostKeyChecking=yes", "IdentityFile=none", "BatchMode=yes"] {
            assert!(c.contains(o), "{c}");
        }
    }

    #[test]
    fn a_known_host_is_taken_from_the_machines_files_only() {
        let t = tempfile::tempdir().unwrap();
        let made = t.path().join("k");
        let ok = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&made).status().unwrap();
        assert!(ok.success());
        let public = std::fs::read_to_string(made.with_extension("pub")).unwrap();
        let key = public.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let file = t.path().join("known");
        std::fs::write(&file, format!("other.example {key}\n[127.0.0.1]:2222 {key}\n")).unwrap();
        let ep = Endpoint { host: "127.0.0.1".into(), port: 2222 };
        let tools = crate::git::Tools::host().unwrap();
        let (path, trust) = host_keys(&ep, &[t.path().join("absent"), file.clone()], t.path(), &tools).unwrap();
        assert_eq!(trust, HostTrust::Known(vec![file]));
        assert_eq!(std::fs::read_to_string(path).unwrap(), format!("[127.0.0.1]:2222 {key}\n"));
    }

    #[test]
    fn the_bundles_ssh_runs_through_a_wrapper_only_for_a_known_user() {
        let t = tempfile::tempdir().unwrap();
        let bundle = crate::git::tools::Bundle {
            exec_path: "/trowel/git/libexec/git-core".into(),
            ca_bundle: "/trowel/ssl/certs/ca-certificates.crt".into(),
            shell: "/trowel/git/bin/sh".into(),
            ssh: "/trowel/git/bin/ssh".into(),
        };
        let access = || SshAccess { agent: "/a.sock".into(), known_hosts: t.path().join("known_hosts"), wrapper: None };
        let uid = rustix::process::getuid().as_raw();
        let passwd = t.path().join("passwd");
        std::fs::write(&passwd, format!("nobody:x:{}:65534::/:/bin/false\n", uid + 1)).unwrap();
        let err = access().with_bundle(&bundle, t.path(), &passwd).unwrap_err().to_string();
        assert!(err.contains(&format!("an entry for this user (uid {uid}) in {}", passwd.display())), "{err}");
        let err = access().with_bundle(&bundle, t.path(), &t.path().join("absent")).unwrap_err().to_string();
        assert!(err.contains("OpenSSH's ssh refuses to run without one"), "{err}");

        std::fs::write(&passwd, format!("me:x:{uid}:{uid}::/:/bin/sh\n")).unwrap();
        let a = access().with_bundle(&bundle, t.path(), &passwd).unwrap();
        let wrapper = t.path().join("ssh");
        assert_eq!(a.git_ssh_command(), wrapper.display().to_string(), "one word: git runs it without /bin/sh");
        let script = std::fs::read_to_string(&wrapper).unwrap();
        assert!(
            script.starts_with("#!/trowel/git/bin/sh\nexec '/trowel/git/bin/ssh' -F /dev/null -o UserKnownHostsFile="),
            "{script}"
        );
        assert!(script.ends_with(" -o LogLevel=ERROR \"$@\"\n"), "{script}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&wrapper).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
