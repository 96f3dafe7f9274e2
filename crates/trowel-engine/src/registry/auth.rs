//! Registry credentials from a Docker `config.json`, the way the Docker CLI finds them.
//!
//! For a registry host the lookup is, in order (Docker CLI `GetAuthConfig`):
//! 1. `credHelpers[host]` → run `docker-credential-<helper> get`;
//! 2. `credsStore` → run `docker-credential-<store> get`;
//! 3. `auths[host]` → `auth` (base64 `user:pass`), or `username`/`password`, or `identitytoken`.
//!
//! When a helper is configured for a host its answer is final: "credentials not found" means
//! anonymous, not a fall-through to `auths` (Docker CLI's native store behaves the same).
//! Docker Hub is keyed `https://index.docker.io/v1/`; `auths` keys are also matched by host
//! name after stripping scheme and path, so `https://reg:5000/v1/` matches `reg:5000`.
//!
//! Around this lookup sit the environment's credentials (`env_auth.rs`): `DOCKER_AUTH_CONFIG`
//! before it, kaniko's and GitLab's variables after it, when it found nothing; and last, when
//! none of those had anything, ECR's, Google's and ACR's compiled-in logins (`cloud_auth.rs`).
//!
//! The `docker_credential` crate was not used: it consults `auths` before `credsStore`, which
//! differs from the Docker CLI, and runs helpers with blocking `std::process`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::cloud_auth::{CloudLogins, SecretSink};
use super::env_auth::EnvCredentials;
use super::error::RegistryError;
use super::options::normalise_host;
use super::reference::DOCKER_HUB;
use super::secret::Secret;

/// The key Docker uses for Docker Hub in `auths` and `credHelpers`, and the server URL it
/// hands to credential helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// Helpers may talk to cloud APIs; past this they are considered hung.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);
/// The username a helper returns when its secret is an identity (refresh) token.
const TOKEN_USERNAME: &str = "<token>";

/// Credentials for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Credential {
    /// Username and password, sent as HTTP Basic or to the token server.
    Basic { username: String, password: Secret },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token server.
    IdentityToken(Secret),
    /// A ready bearer token (`registrytoken`), sent as is.
    RegistryToken(Secret),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

/// Where a helper name came from, for error messages.
#[derive(Clone, Copy)]
enum HelperSource {
    CredHelpers,
    CredsStore,
}

/// Looks up and caches credentials per registry host.
pub(crate) struct Keychain {
    path: Option<PathBuf>,
    config: DockerConfig,
    /// `PATH` to search for helpers; `None` means the process environment's.
    search_path: Option<OsString>,
    /// One cell per host, so concurrent requests run a helper once, not once each.
    cache: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Option<Credential>>>>>,
    /// Credentials from the environment, consulted around the config file's.
    env: EnvCredentials,
    /// The cloud registries' compiled-in logins, consulted last.
    cloud: CloudLogins,
}

/// The `config.json` trowel reads credentials from: in `dir` if given, else the first of
/// `$DOCKER_CONFIG`, `~/.docker`, `/trowel/.docker` and `/kaniko/.docker` that has one. The
/// second value says whether it exists; when none does, the first candidate (where `docker
/// login` would write) is returned.
pub fn docker_config_file(dir: Option<&Path>) -> (PathBuf, bool) {
    let candidates = config_candidates(dir);
    match candidates.iter().find(|p| p.exists()) {
        Some(p) => (p.clone(), true),
        None => (candidates.into_iter().next().unwrap_or_else(|| PathBuf::from(".docker/config.json")), false),
    }
}

fn config_candidates(dir: Option<&Path>) -> Vec<PathBuf> {
    match dir {
        Some(d) => vec![d.join("config.json")],
        None => {
            let mut v = Vec::new();
            if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
                v.push(PathBuf::from(d).join("config.json"));
            }
            if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
                v.push(PathBuf::from(h).join(".docker/config.json"));
            }
            // trowel's own image keeps it here (kaniko's at /kaniko/.docker).
            v.push(PathBuf::from("/trowel/.docker/config.json"));
            v.push(PathBuf::from("/kaniko/.docker/config.json"));
            v
        }
    }
}

impl Keychain {
    /// Loads `config.json` from `dir` if given, else the first of `$DOCKER_CONFIG`, `~/.docker`
    /// and `/kaniko/.docker` that has one. No file at all means anonymous access everywhere.
    pub(crate) fn load(dir: Option<&Path>) -> Result<Keychain, RegistryError> {
        let env = EnvCredentials::from_env()?;
        for path in config_candidates(dir) {
            match std::fs::read(&path) {
                Ok(bytes) => return Keychain::from_bytes(&bytes, path, env),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(RegistryError::DockerConfig { path, reason: e.to_string() }),
            }
        }
        Ok(Keychain {
            path: None,
            config: DockerConfig::default(),
            search_path: None,
            cache: Mutex::default(),
            env,
            cloud: CloudLogins::new(Arc::new(|k| std::env::var(k).ok())),
        })
    }

    fn from_bytes(bytes: &[u8], path: PathBuf, env: EnvCredentials) -> Result<Keychain, RegistryError> {
        // serde_json's messages quote no input, so a malformed file cannot leak a secret here.
        let config: DockerConfig = serde_json::from_slice(bytes)
            .map_err(|e| RegistryError::DockerConfig { path: path.clone(), reason: e.to_string() })?;
        Ok(Keychain {
            path: Some(path),
            config,
            search_path: None,
            cache: Mutex::default(),
            env,
            cloud: CloudLogins::new(Arc::new(|k| std::env::var(k).ok())),
        })
    }

    #[cfg(test)]
    fn with_env(mut self, env: EnvCredentials) -> Keychain {
        self.env = env;
        self
    }

    /// Whether `host`'s credential is `DOCKER_AUTH_CONFIG`'s (for error messages).
    pub(crate) fn uses_docker_auth_config(&self, host: &str) -> bool {
        self.env.shadowing(host).is_some()
    }

    #[cfg(test)]
    fn env_secrets(&self) -> Vec<String> {
        self.env.secrets()
    }

    #[cfg(test)]
    fn with_search_path(mut self, p: impl Into<OsString>) -> Keychain {
        self.search_path = Some(p.into());
        self
    }

    /// The credential for a registry host, or `None` for anonymous access. Helper answers are
    /// cached for the life of the keychain (helpers can be slow cloud calls).
    pub(crate) async fn credential(&self, host: &str) -> Result<Option<Credential>, RegistryError> {
        let host = normalise_host(host);
        let cell = self.cache.lock().expect("keychain cache").entry(host.clone()).or_default().clone();
        cell.get_or_try_init(|| self.lookup(&host)).await.cloned()
    }

    async fn lookup(&self, host: &str) -> Result<Option<Credential>, RegistryError> {
        if let Some(c) = self.env.shadowing(host) {
            return Ok(Some(c));
        }
        if let Some(c) = self.lookup_config(host).await? {
            return Ok(Some(c));
        }
        if let Some(c) = self.env.fallback(host) {
            return Ok(Some(c));
        }
        self.cloud.credential(host).await
    }

    /// Hands the secrets the cloud logins meet to `sink` (the build's redactor).
    pub(crate) fn report_secrets(&self, sink: SecretSink) {
        self.cloud.report_secrets(sink);
    }

    async fn lookup_config(&self, host: &str) -> Result<Option<Credential>, RegistryError> {
        let server = if host == DOCKER_HUB { DOCKER_HUB_KEY.to_string() } else { host.to_string() };
        let helper = self
            .config
            .cred_helpers
            .get(&server)
            .or_else(|| self.config.cred_helpers.iter().find(|(k, _)| key_host(k) == host).map(|(_, v)| v))
            .map(|h| (h, HelperSource::CredHelpers))
            .or_else(|| {
                self.config.creds_store.as_ref().filter(|s| !s.is_empty()).map(|s| (s, HelperSource::CredsStore))
            });
        if let Some((name, source)) = helper {
            return self.run_helper(name, source, &server).await;
        }
        let entry = self
            .config
            .auths
            .get(&server)
            .or_else(|| self.config.auths.iter().find(|(k, _)| key_host(k) == host).map(|(_, v)| v));
        match entry {
            Some(e) => self.entry_credential(e, host),
            None => Ok(None),
        }
    }

    fn entry_credential(&self, e: &AuthEntry, host: &str) -> Result<Option<Credential>, RegistryError> {
        if let Some(t) = e.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken(Secret::new(t))));
        }
        if let Some(t) = e.registrytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::RegistryToken(Secret::new(t))));
        }
        if let Some(a) = e.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = |why: &str| RegistryError::DockerConfig {
                path: self.path.clone().unwrap_or_default(),
                reason: format!("auths entry for {host}: {why}"),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|_| bad("\"auth\" is not valid base64"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad("\"auth\" is not UTF-8"))?;
            let (user, pass) = decoded.split_once(':').ok_or_else(|| bad("\"auth\" is not username:password"))?;
            return Ok(Some(Credential::Basic { username: user.to_string(), password: Secret::new(pass) }));
        }
        match (&e.username, &e.password) {
            (Some(u), Some(p)) if !u.is_empty() => {
                Ok(Some(Credential::Basic { username: u.clone(), password: Secret::new(p.as_str()) }))
            }
            _ => Ok(None),
        }
    }

    /// Runs `docker-credential-<name> get` with the server URL on stdin (the real protocol).
    async fn run_helper(
        &self,
        name: &str,
        source: HelperSource,
        server: &str,
    ) -> Result<Option<Credential>, RegistryError> {
        let bin = format!("docker-credential-{name}");
        let origin = match source {
            HelperSource::CredHelpers => format!("credHelpers[{server:?}]"),
            HelperSource::CredsStore => "credsStore".to_string(),
        };
        let cfg = self.path.as_deref().map_or_else(|| "docker config".to_string(), |p| p.display().to_string());
        let not_found = || {
            RegistryError::CredentialHelper(format!(
                "credential helper {bin} not found in PATH (from {origin} in {cfg})"
            ))
        };
        let exe =
            find_in_path(&bin, self.search_path.clone().or_else(|| std::env::var_os("PATH"))).ok_or_else(not_found)?;
        let fail = |why: String| {
            RegistryError::CredentialHelper(format!(
                "credential helper {bin} (from {origin} in {cfg}) for {server}: {why}"
            ))
        };
        let mut attempt = 0;
        let mut child = loop {
            let spawned = crate::sandbox::userns::tokio_command(&exe)
                .arg("get")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn();
            match spawned {
                Ok(c) => break c,
                // A helper just installed may still be open for writing in a child forked by
                // another thread (ETXTBSY); that clears in milliseconds.
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 10 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
                Err(e) => return Err(fail(e.to_string())),
            }
        };
        let mut stdin = child.stdin.take().expect("piped stdin");
        let run = async {
            // A helper may exit without reading stdin; a broken pipe then is not our error.
            let _ = stdin.write_all(server.as_bytes()).await;
            drop(stdin);
            child.wait_with_output().await
        };
        let out = tokio::time::timeout(HELPER_TIMEOUT, run)
            .await
            .map_err(|_| fail(format!("no answer within {}s", HELPER_TIMEOUT.as_secs())))?
            .map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stdout);
            if msg.contains("credentials not found") {
                return Ok(None);
            }
            // A failing helper prints an error message, never the secret; keep it short anyway.
            let err = String::from_utf8_lossy(&out.stderr);
            let text = if msg.trim().is_empty() { err.trim().to_string() } else { msg.trim().to_string() };
            if text.is_empty() {
                return Err(fail(format!("failed without a message ({})", out.status)));
            }
            return Err(fail(format!("{} ({})", text.chars().take(300).collect::<String>(), out.status)));
        }
        #[derive(Deserialize)]
        struct HelperReply {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        // Not serde's message: it quotes the offending value, which here may be the secret.
        let reply: HelperReply = serde_json::from_slice(&out.stdout).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Io => "unreadable",
                serde_json::error::Category::Syntax => "not JSON",
                serde_json::error::Category::Data => "a value of the wrong type",
                serde_json::error::Category::Eof => "cut short",
            };
            fail(format!(
                "unreadable answer (expected JSON with Username and Secret strings; {what} at line {} column {})",
                e.line(),
                e.column()
            ))
        })?;
        if reply.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(if reply.username == TOKEN_USERNAME {
            Credential::IdentityToken(Secret::new(reply.secret))
        } else {
            Credential::Basic { username: reply.username, password: Secret::new(reply.secret) }
        }))
    }
}

/// The registry host an `auths`/`credHelpers` key names (`https://reg:5000/v1/` → `reg:5000`).
fn key_host(key: &str) -> String {
    normalise_host(key)
}

fn find_in_path(bin: &str, path: Option<OsString>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = path?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn keychain(dir: &Path, json: &str) -> Keychain {
        std::fs::write(dir.join("config.json"), json).unwrap();
        Keychain::load(Some(dir)).unwrap().with_search_path(dir.join("bin"))
    }

    /// A helper that answers with `user` for every server and records the URL it was asked.
    fn helper(dir: &Path, name: &str, user: &str, secret: &str) {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let p = bin.join(format!("docker-credential-{name}"));
        let log = dir.join(format!("{name}.log"));
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread url\necho \"$url\" >> {}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$url\"\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn basic(u: &str, p: &str) -> Option<Credential> {
        Some(Credential::Basic { username: u.into(), password: Secret::new(p) })
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn auths_forms_and_host_normalisation() {
        let d = tempfile::tempdir().unwrap();
        let k = keychain(
            d.path(),
            r#"{"auths":{
                "https://index.docker.io/v1/":{"auth":"aHViOmh1YnBhc3M="},
                "https://reg.example:5000/v1/":{"username":"u","password":"p"},
                "tok.example":{"identitytoken":"refresh-me"},
                "empty.example":{}
            }}"#,
        );
        let rt = rt();
        assert_eq!(rt.block_on(k.credential("index.docker.io")).unwrap(), basic("hub", "hubpass"));
        assert_eq!(rt.block_on(k.credential("docker.io")).unwrap(), basic("hub", "hubpass"));
        assert_eq!(rt.block_on(k.credential("reg.example:5000")).unwrap(), basic("u", "p"));
        assert_eq!(
            rt.block_on(k.credential("tok.example")).unwrap(),
            Some(Credential::IdentityToken(Secret::new("refresh-me")))
        );
        assert_eq!(rt.block_on(k.credential("empty.example")).unwrap(), None);
        assert_eq!(rt.block_on(k.credential("nowhere.example")).unwrap(), None);
    }

    #[test]
    fn precedence_is_cred_helpers_then_creds_store_then_auths() {
        let d = tempfile::tempdir().unwrap();
        helper(d.path(), "special", "from-cred-helpers", "s1");
        helper(d.path(), "store", "from-creds-store", "s2");
        let k = keychain(
            d.path(),
            r#"{"auths":{"a.example":{"auth":"ZnJvbS1hdXRoczpzMw=="},"b.example":{"auth":"ZnJvbS1hdXRoczpzMw=="}},
                "credsStore":"store","credHelpers":{"a.example":"special"}}"#,
        );
        let rt = rt();
        assert_eq!(rt.block_on(k.credential("a.example")).unwrap(), basic("from-cred-helpers", "s1"));
        // credsStore wins over auths, as in the Docker CLI.
        assert_eq!(rt.block_on(k.credential("b.example")).unwrap(), basic("from-creds-store", "s2"));
        assert_eq!(rt.block_on(k.credential("docker.io")).unwrap(), basic("from-creds-store", "s2"));
        let asked = std::fs::read_to_string(d.path().join("store.log")).unwrap();
        assert_eq!(asked, "b.example\nhttps://index.docker.io/v1/\n");
        // Without a store, auths is used.
        let d2 = tempfile::tempdir().unwrap();
        let k2 = keychain(d2.path(), r#"{"auths":{"b.example":{"auth":"ZnJvbS1hdXRoczpzMw=="}}}"#);
        assert_eq!(rt.block_on(k2.credential("b.example")).unwrap(), basic("from-auths", "s3"));
    }

    #[test]
    fn environment_credentials_around_the_config_file() {
        let d = tempfile::tempdir().unwrap();
        helper(d.path(), "store", "from-creds-store", "s2");
        let bin = d.path().join("bin");
        let p = bin.join("docker-credential-empty");
        std::fs::write(&p, "#!/bin/sh\ncat >/dev/null\necho 'credentials not found in native keychain'; exit 1\n")
            .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let vars: HashMap<String, String> = [
            // DOCKER_AUTH_CONFIG: "shadow:envpw" for a.example, which the file gives a helper.
            ("DOCKER_AUTH_CONFIG", r#"{"auths":{"a.example":{"auth":"c2hhZG93OmVudnB3"}}}"#),
            ("KANIKO_B_EXAMPLE_USER", "kaniko-b"),
            ("KANIKO_B_EXAMPLE_PASSWORD", "kb"),
            ("KANIKO_C_EXAMPLE_USER", "kaniko-c"),
            ("KANIKO_C_EXAMPLE_PASSWORD", "kc"),
            ("CI_REGISTRY", "d.example"),
            ("CI_REGISTRY_USER", "gitlab-ci-token"),
            ("CI_REGISTRY_PASSWORD", "jobtoken"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let env = EnvCredentials::from_lookup(Box::new(move |k| vars.get(k).cloned())).unwrap();
        let k = keychain(
            d.path(),
            r#"{"auths":{"b.example":{"auth":"ZnJvbS1hdXRoczpzMw=="}},
                "credHelpers":{"a.example":"store","c.example":"empty"}}"#,
        )
        .with_env(env);
        let rt = rt();
        // DOCKER_AUTH_CONFIG shadows the file's helper.
        assert_eq!(rt.block_on(k.credential("a.example")).unwrap(), basic("shadow", "envpw"));
        // The file's entry wins over KANIKO_ variables.
        assert_eq!(rt.block_on(k.credential("b.example")).unwrap(), basic("from-auths", "s3"));
        // A helper that has nothing leaves the host to the variables.
        assert_eq!(rt.block_on(k.credential("c.example")).unwrap(), basic("kaniko-c", "kc"));
        assert_eq!(rt.block_on(k.credential("d.example")).unwrap(), basic("gitlab-ci-token", "jobtoken"));
        assert_eq!(rt.block_on(k.credential("e.example")).unwrap(), None);
        let secrets = k.env_secrets();
        assert!(secrets.contains(&"envpw".to_string()) && secrets.contains(&"jobtoken".to_string()), "{secrets:?}");
    }

    #[test]
    fn helper_token_username_means_identity_token() {
        let d = tempfile::tempdir().unwrap();
        helper(d.path(), "tok", "<token>", "refresh");
        let k = keychain(d.path(), r#"{"credHelpers":{"r.example":"tok"}}"#);
        assert_eq!(
            rt().block_on(k.credential("r.example")).unwrap(),
            Some(Credential::IdentityToken(Secret::new("refresh")))
        );
    }

    #[test]
    fn missing_helper_is_named() {
        let d = tempfile::tempdir().unwrap();
        let k = keychain(d.path(), r#"{"credsStore":"ecr-login"}"#);
        let e = rt().block_on(k.credential("x.example")).unwrap_err().to_string();
        let want = format!(
            "credential helper docker-credential-ecr-login not found in PATH (from credsStore in {})",
            d.path().join("config.json").display()
        );
        assert_eq!(e, want);
    }

    #[test]
    fn helper_not_found_answer_is_anonymous_and_failures_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for (name, body) in [
            ("none", "echo 'credentials not found in native keychain'; exit 1"),
            ("broken", "echo 'keychain locked' >&2; exit 2"),
        ] {
            let p = bin.join(format!("docker-credential-{name}"));
            std::fs::write(&p, format!("#!/bin/sh\ncat >/dev/null\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let k = keychain(d.path(), r#"{"credHelpers":{"n.example":"none","b.example":"broken"}}"#);
        let rt = rt();
        assert_eq!(rt.block_on(k.credential("n.example")).unwrap(), None);
        let e = rt.block_on(k.credential("b.example")).unwrap_err().to_string();
        assert!(e.contains("docker-credential-broken") && e.contains("keychain locked"), "{e}");
    }

    #[test]
    fn malformed_config_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.json"), "{not json").unwrap();
        let e = Keychain::load(Some(d.path())).err().unwrap().to_string();
        assert!(e.contains(&d.path().join("config.json").display().to_string()), "{e}");
        let k = keychain(d.path(), r#"{"auths":{"x.example":{"auth":"%%%"}}}"#);
        assert!(rt().block_on(k.credential("x.example")).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = basic("user", "topsecret").unwrap();
        assert!(!format!("{c:?}").contains("topsecret"));
        let c = Credential::IdentityToken(Secret::new("topsecret"));
        assert!(!format!("{c:?}").contains("topsecret"));
    }
}
