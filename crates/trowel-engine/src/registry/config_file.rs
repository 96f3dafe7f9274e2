//! Writing credentials into a Docker `config.json`, as `docker login` and `docker logout` do,
//! for `trowel login` and `trowel logout`.
//!
//! The file written is the one trowel's builds read (`auth::docker_config_file`): `--docker-config`,
//! else the first of `$DOCKER_CONFIG`, `~/.docker`, `/trowel/.docker`, `/kaniko/.docker` that
//! has one, else `$DOCKER_CONFIG` or `~/.docker` — so a login is never shadowed by a file it did
//! not write. Like Docker:
//! - the entry is `auths.<key>.auth`, base64 of `user:password`, under the key Docker uses:
//!   `https://index.docker.io/v1/` for Docker Hub however it was spelt, else the host
//!   (`host[:port]`, scheme and path dropped);
//! - a registry with a credential helper (`credHelpers`, or `credsStore`) stores the secret in the
//!   helper (`docker-credential-<name> store`) and leaves an empty entry in `auths`;
//! - every other key of the file is kept, in its order;
//! - the file is replaced atomically (a temporary file in the same directory, `fsync`, rename),
//!   mode 0600, through a symlink to its target.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::options::normalise_host;
use super::reference::DOCKER_HUB;

/// The key Docker files Docker Hub's credentials under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Where a login went (or a logout came from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginEntry {
    /// The `config.json` written.
    pub path: PathBuf,
    /// The `auths` key.
    pub key: String,
    /// The credential helper that holds the secret, when one is configured for the registry.
    pub helper: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("docker config {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a JSON object (serde's position only: its message could quote a secret).
    #[error("docker config {path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    /// `docker-credential-<name> store|erase` failed.
    #[error("credential helper docker-credential-{helper} (from {origin} in {path}): {reason}")]
    Helper { helper: String, origin: String, path: PathBuf, reason: String },
}

/// The `auths` key Docker uses for a registry given as `docker login` takes it.
pub fn auth_key(server: &str) -> String {
    let host = normalise_host(server.trim());
    if host == DOCKER_HUB { DOCKER_HUB_KEY.to_string() } else { host }
}

/// Saves `username`/`password` for `server` (see the module comment for where and how).
pub fn store_login(
    dir: Option<&Path>,
    server: &str,
    username: &str,
    password: &str,
) -> Result<LoginEntry, ConfigFileError> {
    let (path, _) = super::auth::docker_config_file(dir);
    let mut config = read_object(&path)?;
    let key = auth_key(server);
    let helper = helper_for(&config, &key);
    let auths = config.entry("auths").or_insert_with(|| json!({}));
    if !auths.is_object() {
        *auths = json!({});
    }
    let auths = auths.as_object_mut().expect("an object");
    // Other spellings of the same registry would be found before the new entry by some readers.
    auths.retain(|k, _| k == &key || auth_key(k) != key);
    match &helper {
        Some((name, origin)) => {
            let body = json!({"ServerURL": key, "Username": username, "Secret": password}).to_string();
            run_helper(name, origin, &path, "store", &body)?;
            auths.insert(key.clone(), json!({}));
        }
        None => {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            auths.insert(key.clone(), json!({ "auth": auth }));
        }
    }
    write_atomically(&path, &Value::Object(config))?;
    Ok(LoginEntry { path, key, helper: helper.map(|(h, _)| h) })
}

/// Removes `server`'s credentials; `None` when there were none to remove.
pub fn forget_login(dir: Option<&Path>, server: &str) -> Result<Option<LoginEntry>, ConfigFileError> {
    let (path, exists) = super::auth::docker_config_file(dir);
    if !exists {
        return Ok(None);
    }
    let mut config = read_object(&path)?;
    let key = auth_key(server);
    let helper = helper_for(&config, &key);
    let removed = config
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .map(|auths| {
            let before = auths.len();
            auths.retain(|k, _| auth_key(k) != key);
            before != auths.len()
        })
        .unwrap_or(false);
    if let Some((name, origin)) = &helper {
        run_helper(name, origin, &path, "erase", &key)?;
    } else if !removed {
        return Ok(None);
    }
    write_atomically(&path, &Value::Object(config))?;
    Ok(Some(LoginEntry { path, key, helper: helper.map(|(h, _)| h) }))
}

/// The helper configured for `key`, and which setting named it.
fn helper_for(config: &Map<String, Value>, key: &str) -> Option<(String, String)> {
    let named = config
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|h| h.iter().find(|(k, _)| auth_key(k) == key))
        .and_then(|(k, v)| Some((v.as_str()?.to_string(), format!("credHelpers[{k:?}]"))));
    named.or_else(|| {
        let store = config.get("credsStore")?.as_str().filter(|s| !s.is_empty())?;
        Some((store.to_string(), "credsStore".to_string()))
    })
}

fn run_helper(name: &str, origin: &str, path: &Path, action: &str, stdin: &str) -> Result<(), ConfigFileError> {
    let fail = |reason: String| ConfigFileError::Helper {
        helper: name.to_string(),
        origin: origin.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    let mut child = crate::sandbox::userns::command(format!("docker-credential-{name}"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    // A helper may exit without reading; its status says whether it worked.
    let _ = child.stdin.take().expect("piped").write_all(stdin.as_bytes());
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        return Ok(());
    }
    // Helpers print an error message, never the secret; keep it short anyway.
    let msg = String::from_utf8_lossy(if out.stdout.is_empty() { &out.stderr } else { &out.stdout }).trim().to_string();
    Err(fail(format!("{action} failed ({}): {}", out.status, msg.chars().take(300).collect::<String>())))
}

fn read_object(path: &Path) -> Result<Map<String, Value>, ConfigFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(source) => return Err(ConfigFileError::Io { path: path.to_path_buf(), source }),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ConfigFileError::Malformed { path: path.to_path_buf(), reason: "not a JSON object".into() }),
        Err(e) => Err(ConfigFileError::Malformed {
            path: path.to_path_buf(),
            reason: format!("not JSON (line {} column {})", e.line(), e.column()),
        }),
    }
}

/// Replaces the file (its target, when it is a symlink) with `value`, mode 0600.
fn write_atomically(path: &Path, value: &Value) -> Result<(), ConfigFileError> {
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(path).map_err(|source| ConfigFileError::Io { path: path.to_path_buf(), source })?
        }
        _ => path.to_path_buf(),
    };
    let io = |source| ConfigFileError::Io { path: target.clone(), source };
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    }
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "config.json".into());
    // A random name made with O_EXCL, not one made of the PID: two `trowel login`s in pods that
    // share this directory can have the same PID (each is PID 1 there), and a killed one's
    // leftover would then be another's file. The temporary file is removed if anything fails.
    let mut f = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(io)?;
    let written = (|| {
        // The umask may have narrowed the mode, never widened it; set it exactly.
        f.as_file().set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let mut text = serde_json::to_vec_pretty(value).expect("JSON serialises");
        text.push(b'\n');
        f.write_all(&text)?;
        f.as_file().sync_all()
    })();
    written.map_err(io)?;
    f.persist(&target).map_err(|e| io(e.error))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    #[test]
    fn keys_as_docker_writes_them() {
        for s in ["docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"] {
            assert_eq!(auth_key(s), DOCKER_HUB_KEY, "{s}");
        }
        assert_eq!(auth_key("https://reg.example:5000/v2/"), "reg.example:5000");
        assert_eq!(auth_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn login_keeps_other_keys_replaces_other_spellings_and_is_0600() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"proxies":{"default":{"httpProxy":"http://p:3128"}},"auths":{"https://reg.example:5000/v1/":{"auth":"b2xkOm9sZA=="},"other.example":{"auth":"eDp5"}},"credHelpers":{"ecr.example":"ecr-login"}}"#,
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = store_login(Some(d.path()), "reg.example:5000", "u", "p:w").unwrap();
        assert_eq!(e, LoginEntry { path: p.clone(), key: "reg.example:5000".into(), helper: None });
        let v = read(&p);
        assert_eq!(v["proxies"]["default"]["httpProxy"], "http://p:3128");
        assert_eq!(v["credHelpers"]["ecr.example"], "ecr-login");
        assert_eq!(v["auths"]["other.example"]["auth"], "eDp5");
        assert_eq!(v["auths"]["reg.example:5000"]["auth"], "dTpwOnc=");
        assert!(v["auths"].get("https://reg.example:5000/v1/").is_none());
        // Key order is kept: proxies first, as it was.
        assert!(
            std::fs::read_to_string(&p).unwrap().find("proxies") < std::fs::read_to_string(&p).unwrap().find("auths")
        );
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "no temporary file left");

        let gone = forget_login(Some(d.path()), "https://reg.example:5000").unwrap().unwrap();
        assert_eq!(gone.key, "reg.example:5000");
        assert!(read(&p)["auths"].get("reg.example:5000").is_none());
        assert_eq!(forget_login(Some(d.path()), "reg.example:5000").unwrap(), None);
    }

    #[test]
    fn login_creates_the_file_and_writes_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("new/.docker");
        store_login(Some(&cfg), "docker.io", "hub", "pw").unwrap();
        assert_eq!(read(&cfg.join("config.json"))["auths"][DOCKER_HUB_KEY]["auth"], "aHViOnB3");
        assert_eq!(std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777, 0o700);

        let real = d.path().join("real.json");
        std::fs::write(&real, "{}").unwrap();
        let linked = d.path().join("linked");
        std::fs::create_dir(&linked).unwrap();
        std::os::unix::fs::symlink(&real, linked.join("config.json")).unwrap();
        store_login(Some(&linked), "r.example", "a", "b").unwrap();
        assert!(std::fs::symlink_metadata(linked.join("config.json")).unwrap().file_type().is_symlink());
        assert_eq!(read(&real)["auths"]["r.example"]["auth"], "YTpi");
    }

    #[test]
    fn malformed_file_is_refused_untouched_and_quoted_nowhere() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        std::fs::write(&p, r#"{"auths":{"x":{"auth":"hunter2"}}"#).unwrap();
        let e = store_login(Some(d.path()), "r.example", "a", "b").unwrap_err().to_string();
        assert!(e.contains("not JSON") && e.contains(&p.display().to_string()) && !e.contains("hunter2"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), r#"{"auths":{"x":{"auth":"hunter2"}}"#);
        std::fs::write(&p, "[]").unwrap();
        assert!(store_login(Some(d.path()), "r.example", "a", "b").is_err());
    }
}
