//! What a build is given for `RUN --mount`: secret values (`--secret`), ssh agents (`--ssh`),
//! the directory cache mounts persist in, and the `--allow` entitlements — with buildx's flag
//! syntax, parsed here so that the CLI and tests build the same values.
//!
//! Secret values are read once, when the options are made: the redactor that masks every
//! event is built from them before the build starts, and a value that cannot be masked
//! reliably (shorter than [`Redactor::MIN_LEN`]) is refused there and then.

use std::path::{Path, PathBuf};

use crate::sandbox::Sensitive;
use crate::secrets::Redactor;

/// BuildKit's limit on one secret (`MaxSecretSize`, 500 KB).
pub const MAX_SECRET_SIZE: usize = 500 * 1024;

/// `RUN --mount` inputs of a build.
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// Where cache mounts persist (`--mount-cache-dir`); `None` until the CLI picked one (the
    /// engine then uses a directory in the work dir, gone with the build).
    pub cache_dir: Option<PathBuf>,
    /// `--secret`s, values loaded.
    pub secrets: Vec<Secret>,
    /// `--ssh` agents.
    pub ssh: Vec<SshAgent>,
    /// `--allow security.insecure`: `RUN --security=insecure` may run.
    pub allow_insecure: bool,
}

/// A secret given to the build.
#[derive(Clone)]
pub struct Secret {
    pub id: String,
    /// Where it came from, for messages (`file /path`, `environment variable X`).
    pub origin: String,
    pub value: Sensitive,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("id", &self.id)
            .field("origin", &self.origin)
            .field("value", &self.value)
            .finish()
    }
}

/// An ssh agent the build may forward (`--ssh ID=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAgent {
    pub id: String,
    pub source: SshSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshSource {
    /// A running agent's socket (`$SSH_AUTH_SOCK`).
    Socket(PathBuf),
    /// Private key files, served by an agent trowel starts for the build (`ssh-agent`).
    Keys(Vec<PathBuf>),
}

impl MountOptions {
    /// The secret `id`, if given.
    pub fn secret(&self, id: &str) -> Option<&Secret> {
        self.secrets.iter().find(|s| s.id == id)
    }

    pub fn ssh_agent(&self, id: &str) -> Option<&SshAgent> {
        self.ssh.iter().find(|a| a.id == id)
    }

    /// The strings the redactor masks for these secrets: each value, and each of its lines (a
    /// token printed from a multi-line file is masked on its own).
    pub fn secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.secrets {
            let text = String::from_utf8_lossy(&s.value.0).into_owned();
            for line in text.lines().map(str::trim) {
                if line.len() >= Redactor::MIN_LEN && line != text {
                    out.push(line.to_string());
                }
            }
            out.push(text);
        }
        out
    }
}

/// Reads a variable from the environment; given as a function so tests need not set any.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Parses one `--secret` (buildx: `id=ID[,src=PATH|,env=VAR][,type=file|env]`; `id=ID` alone
/// is the environment variable `ID`, as buildx reads it) and loads its value.
pub fn parse_secret(flag: &str, env: EnvLookup<'_>) -> Result<Secret, String> {
    let bad = |why: &str| format!("invalid --secret {flag:?}: {why}");
    let (mut id, mut src, mut var, mut kind) = (None, None, None, None);
    for field in flag.split(',') {
        let (k, v) = field.split_once('=').ok_or_else(|| bad(&format!("{field:?} is not key=value")))?;
        match k.trim().to_ascii_lowercase().as_str() {
            "id" => id = Some(v.to_string()),
            "src" | "source" => src = Some(v.to_string()),
            "env" => var = Some(v.to_string()),
            "type" if matches!(v, "file" | "env") => kind = Some(v.to_string()),
            "type" => return Err(bad(&format!("type {v:?} is not file or env"))),
            other => return Err(bad(&format!("unknown key {other:?} (one of id, src, env, type)"))),
        }
    }
    let id = id.filter(|i| !i.is_empty()).ok_or_else(|| bad("id= is required"))?;
    if src.is_some() && var.is_some() {
        return Err(bad("src= and env= cannot both be set"));
    }
    let (origin, value) = match (kind.as_deref(), src, var) {
        (Some("env"), Some(v), None) | (_, None, Some(v)) => {
            let value = env(&v).ok_or_else(|| bad(&format!("environment variable {v} is not set")))?;
            (format!("environment variable {v}"), value.into_bytes())
        }
        (_, Some(path), None) => {
            let value = read_limited(Path::new(&path)).map_err(|e| bad(&format!("read {path}: {e}")))?;
            (format!("file {path}"), value)
        }
        (Some("file"), None, None) => {
            let value = read_limited(Path::new(&id)).map_err(|e| bad(&format!("read {id}: {e}")))?;
            (format!("file {id}"), value)
        }
        (_, None, None) => {
            let value = env(&id).ok_or_else(|| {
                bad(&format!("environment variable {id} is not set (give src=FILE or env=VAR to read it elsewhere)"))
            })?;
            (format!("environment variable {id}"), value.into_bytes())
        }
        (_, Some(_), Some(_)) => unreachable!("refused above"),
    };
    if value.len() > MAX_SECRET_SIZE {
        return Err(bad(&format!("the secret is {} bytes; BuildKit's limit is {MAX_SECRET_SIZE}", value.len())));
    }
    if !value.is_empty() && value.len() < Redactor::MIN_LEN {
        return Err(bad(&format!(
            "the value is {} byte(s) long: values shorter than {} bytes cannot be masked reliably in logs, traces \
             and the debugger (pass it as a --build-arg if it is not secret)",
            value.len(),
            Redactor::MIN_LEN
        )));
    }
    Ok(Secret { id, origin, value: Sensitive(value) })
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    std::fs::File::open(path)?.take(MAX_SECRET_SIZE as u64 + 1).read_to_end(&mut out)?;
    Ok(out)
}

/// Parses one `--ssh` (buildx: `default`, `ID`, `ID=SOCKET`, `ID=KEY[,KEY…]`; a bare id is the
/// agent at `$SSH_AUTH_SOCK`). Paths must exist; a socket is an agent, anything else a key.
pub fn parse_ssh(flag: &str, env: EnvLookup<'_>) -> Result<SshAgent, String> {
    let bad = |why: &str| format!("invalid --ssh {flag:?}: {why}");
    let (id, paths) = match flag.split_once('=') {
        Some((id, paths)) => (id.to_string(), paths.split(',').filter(|p| !p.is_empty()).map(PathBuf::from).collect()),
        None => (flag.to_string(), Vec::new()),
    };
    if id.is_empty() || id.contains(',') {
        return Err(bad("expected ID or ID=PATH[,PATH…]"));
    }
    let paths: Vec<PathBuf> = if paths.is_empty() {
        let sock = env("SSH_AUTH_SOCK").filter(|s| !s.is_empty()).ok_or_else(|| {
            bad("SSH_AUTH_SOCK is not set: start an ssh-agent, or name a socket or key files (ID=PATH)")
        })?;
        vec![PathBuf::from(sock)]
    } else {
        paths
    };
    use std::os::unix::fs::FileTypeExt as _;
    let mut sockets = Vec::new();
    let mut keys = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(&p).map_err(|e| bad(&format!("{}: {e}", p.display())))?;
        if meta.file_type().is_socket() { sockets.push(p) } else { keys.push(p) }
    }
    let source = match (sockets.len(), keys.is_empty()) {
        (1, true) => SshSource::Socket(sockets.remove(0)),
        (0, false) => SshSource::Keys(keys),
        _ => return Err(bad("give either one agent socket or key files")),
    };
    Ok(SshAgent { id, source })
}

/// `--allow` entitlements (buildx's names). `network.host` is accepted: RUN already uses the
/// host's network by default.
pub fn parse_allow(values: &[String]) -> Result<bool, String> {
    let mut insecure = false;
    for v in values.iter().flat_map(|v| v.split(',')) {
        match v.trim() {
            "security.insecure" => insecure = true,
            "network.host" => {}
            other => return Err(format!("invalid --allow {other:?}: one of security.insecure, network.host")),
        }
    }
    Ok(insecure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "TOKEN" => Some("ghp_token_from_env".into()),
            "NPM_TOKEN" => Some("npm_0123456789".into()),
            "SHORT" => Some("on".into()),
            "SSH_AUTH_SOCK" => None,
            _ => None,
        }
    }

    #[test]
    fn secrets_in_buildx_syntax() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("npmrc");
        std::fs::write(&f, "//registry.npmjs.org/:_authToken=abcd-1234\nalways-auth=true\n").unwrap();
        let s = parse_secret(&format!("id=npmrc,src={}", f.display()), &env).unwrap();
        assert_eq!((s.id.as_str(), s.value.0.len()), ("npmrc", 60));
        assert!(s.origin.starts_with("file "));
        let s = parse_secret("id=tok,env=NPM_TOKEN", &env).unwrap();
        assert_eq!(s.value.0, b"npm_0123456789");
        let s = parse_secret("id=TOKEN", &env).unwrap();
        assert_eq!(
            (s.value.0.as_slice(), s.origin.as_str()),
            (&b"ghp_token_from_env"[..], "environment variable TOKEN")
        );
        let s = parse_secret("type=env,id=x,src=TOKEN", &env).unwrap();
        assert_eq!(s.value.0, b"ghp_token_from_env");
        assert!(!format!("{s:?}").contains("ghp_"), "Debug never shows a value");
        let opts = MountOptions {
            secrets: vec![parse_secret(&format!("id=n,src={}", f.display()), &env).unwrap()],
            ..Default::default()
        };
        let values = opts.secret_values();
        assert!(values.contains(&"//registry.npmjs.org/:_authToken=abcd-1234".to_string()), "{values:?}");
        assert!(values.contains(&"always-auth=true".to_string()));
    }

    #[test]
    fn bad_secrets_say_why() {
        for (flag, want) in [
            ("src=/x", "id= is required"),
            ("id=a,src=/nonexistent/x", "read /nonexistent/x"),
            ("id=a,env=UNSET_VAR", "UNSET_VAR is not set"),
            ("id=UNSET", "environment variable UNSET is not set"),
            ("id=a,colour=red", "unknown key \"colour\""),
            ("id=a,src=/x,env=Y", "cannot both be set"),
            ("id=a,env=SHORT", "cannot be masked reliably"),
            ("id", "is not key=value"),
        ] {
            let e = parse_secret(flag, &env).unwrap_err();
            assert!(e.contains(want), "{flag}: {e}");
        }
    }

    #[test]
    fn ssh_in_buildx_syntax() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
        let with_sock = |k: &str| if k == "SSH_AUTH_SOCK" { Some(sock.display().to_string()) } else { None };
        assert_eq!(parse_ssh("default", &with_sock).unwrap().source, SshSource::Socket(sock.clone()));
        let a = parse_ssh(&format!("gh={}", key.display()), &env).unwrap();
        assert_eq!((a.id.as_str(), a.source), ("gh", SshSource::Keys(vec![key.clone()])));
        assert!(parse_ssh("default", &env).unwrap_err().contains("SSH_AUTH_SOCK is not set"));
        assert!(parse_ssh("x=/nonexistent", &env).unwrap_err().contains("/nonexistent"));
        assert!(parse_ssh(&format!("x={},{}", sock.display(), key.display()), &env).unwrap_err().contains("either"));
    }

    #[test]
    fn entitlements() {
        assert!(parse_allow(&["security.insecure".into()]).unwrap());
        assert!(!parse_allow(&["network.host".into()]).unwrap());
        assert!(parse_allow(&["device".into()]).is_err());
    }
}
