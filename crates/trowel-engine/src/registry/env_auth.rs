//! Registry credentials from the environment, for CI systems that hand them to a job that way.
//!
//! trowel follows the maintained kaniko fork (osscontainertools/kaniko, `pkg/creds`), which
//! follows the Docker CLI where the CLI has a rule:
//!
//! 1. `DOCKER_AUTH_CONFIG`: a Docker config's `auths` as JSON (what GitLab runners and the
//!    Docker CLI ≥ 28 read). An entry for the registry here **shadows** everything in
//!    `config.json` for it (credHelpers, credsStore, auths), as the Docker CLI's memory store in
//!    front of the file store does. As in the CLI, nothing but `auths` may be in it. Unlike the
//!    CLI, whose entries may only hold `auth`, an entry may also be as `kubectl create secret
//!    docker-registry` writes it (`username`, `password`, `email`, `auth`), so a Kubernetes
//!    Secret's `.dockerconfigjson` can be handed over as this variable; and unlike the CLI,
//!    which prints a warning and goes on without it, a malformed value is an error: a build
//!    that silently pushes anonymously (or with other credentials) is harder to debug than one
//!    that stops.
//! 2. `config.json` (see `auth.rs`).
//! 3. Only when the config had nothing for the registry: `KANIKO_<HOST>_USER` and
//!    `KANIKO_<HOST>_PASSWORD` (the fork's `env` helper): the host upper-cased with `.` and `-`
//!    as `_`, tried for the whole name, then without its first label, and so on
//!    (`KANIKO_REGISTRY_EXAMPLE_COM_…`, then `KANIKO_EXAMPLE_COM_…`, `KANIKO_COM_…`). A port
//!    is part of the name; the fork keeps its `:`, which no shell can set, so trowel also tries
//!    it as `_` (`KANIKO_127_0_0_1_5000_USER`).
//! 4. Then GitLab's predefined variables (the fork's `gitlab` helper): `CI_REGISTRY_USER` and
//!    `CI_REGISTRY_PASSWORD` for the registry named by `CI_REGISTRY`. The fork compares host
//!    names without ports; trowel compares the port too, so the job token never goes to another
//!    service of the same host.
//! 5. Only when all of those had nothing: the cloud registries' compiled-in logins, ECR's,
//!    Google's and ACR's (`cloud_auth.rs`), as kaniko's keychains after its Docker config
//!    keychain.
//!
//! Values are read when a registry is first asked for, never printed: [`EnvCredentials::secrets`]
//! hands the passwords to the build's redactor, so even a registry that echoed one back would
//! not get it into a log or trace.

use std::collections::HashMap;

use base64::Engine as _;
use serde::Deserialize;

use super::auth::Credential;
use super::error::RegistryError;
use super::options::normalise_host;
use super::secret::Secret;

/// The variable holding a Docker config's `auths` (Docker CLI, GitLab runner).
pub const DOCKER_AUTH_CONFIG: &str = "DOCKER_AUTH_CONFIG";

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Credentials the environment holds, looked up by registry host.
pub(crate) struct EnvCredentials {
    /// `DOCKER_AUTH_CONFIG`'s entries by registry host.
    auth_config: HashMap<String, Credential>,
    lookup: Box<Lookup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvConfig {
    #[serde(default)]
    auths: HashMap<String, EnvEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvEntry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// Written by `kubectl create secret docker-registry`; not a credential.
    #[serde(default, rename = "email")]
    _email: Option<String>,
}

impl EnvCredentials {
    /// From the process environment.
    pub(crate) fn from_env() -> Result<EnvCredentials, RegistryError> {
        EnvCredentials::from_lookup(Box::new(|k| std::env::var(k).ok()))
    }

    pub(crate) fn from_lookup(lookup: Box<Lookup>) -> Result<EnvCredentials, RegistryError> {
        let auth_config = match lookup(DOCKER_AUTH_CONFIG).filter(|v| !v.trim().is_empty()) {
            Some(v) => parse_auth_config(&v)?,
            None => HashMap::new(),
        };
        Ok(EnvCredentials { auth_config, lookup })
    }

    /// `DOCKER_AUTH_CONFIG`'s credential for `host`: when there is one, the config file is not
    /// consulted.
    pub(crate) fn shadowing(&self, host: &str) -> Option<Credential> {
        self.auth_config.get(&normalise_host(host)).cloned()
    }

    /// The credential of the fork's `env` and `gitlab` helpers for `host`, asked only when the
    /// Docker config had none.
    pub(crate) fn fallback(&self, host: &str) -> Option<Credential> {
        let host = normalise_host(host);
        for name in kaniko_names(&host) {
            let (Some(user), Some(pass)) =
                ((self.lookup)(&format!("{name}_USER")), (self.lookup)(&format!("{name}_PASSWORD")))
            else {
                continue;
            };
            return Some(Credential::Basic { username: user, password: Secret::new(pass) });
        }
        let ci = (self.lookup)("CI_REGISTRY").filter(|r| !r.is_empty())?;
        if normalise_host(&ci) != host {
            return None;
        }
        let user = (self.lookup)("CI_REGISTRY_USER")?;
        let pass = (self.lookup)("CI_REGISTRY_PASSWORD")?;
        Some(Credential::Basic { username: user, password: Secret::new(pass) })
    }

    /// Every secret value these sources hold, for the build's redactor.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .auth_config
            .values()
            .filter_map(|c| match c {
                Credential::Basic { password, .. } => Some(password.expose().to_string()),
                _ => None,
            })
            .collect();
        if let Some(v) = (self.lookup)(DOCKER_AUTH_CONFIG) {
            out.push(v);
        }
        if let Some(v) = (self.lookup)("CI_REGISTRY_PASSWORD") {
            out.push(v);
        }
        out.retain(|s| !s.is_empty());
        out
    }
}

/// The registry secrets the process environment holds (`DOCKER_AUTH_CONFIG` and its passwords,
/// `CI_REGISTRY_PASSWORD`, `KANIKO_*_PASSWORD`), for a build's redactor. A malformed
/// `DOCKER_AUTH_CONFIG` still gives its whole value: masking fails closed.
pub fn env_secrets() -> Vec<String> {
    let mut out = match EnvCredentials::from_env() {
        Ok(e) => e.secrets(),
        Err(_) => [DOCKER_AUTH_CONFIG, "CI_REGISTRY_PASSWORD"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .filter(|v| !v.is_empty())
            .collect(),
    };
    out.extend(
        std::env::vars()
            .filter(|(k, v)| k.starts_with("KANIKO_") && k.ends_with("_PASSWORD") && !v.is_empty())
            .map(|(_, v)| v),
    );
    out
}

/// Whether `DOCKER_AUTH_CONFIG` has credentials for `host`, which builds then use before the
/// config file's (`trowel login` warns about it, as the kaniko fork does at a refused push).
pub fn shadowed_by_docker_auth_config(host: &str) -> bool {
    EnvCredentials::from_env().is_ok_and(|e| e.shadowing(host).is_some())
}

/// The `KANIKO_<…>` prefixes to try for a host, most specific first.
fn kaniko_names(host: &str) -> Vec<String> {
    let upper = host.to_ascii_uppercase().replace('-', "_");
    let labels: Vec<&str> = upper.split('.').collect();
    let mut out = Vec::new();
    for i in 0..labels.len() {
        let fork = format!("KANIKO_{}", labels[i..].join("_"));
        let shell = fork.replace(':', "_");
        if shell != fork {
            out.push(shell);
        }
        out.push(fork);
    }
    out
}

/// `DOCKER_AUTH_CONFIG`'s entries. Messages name keys, never values: serde's own would quote
/// the offending input, which here is a credential.
fn parse_auth_config(raw: &str) -> Result<HashMap<String, Credential>, RegistryError> {
    let bad = |why: String| RegistryError::EnvCredentials(format!("{DOCKER_AUTH_CONFIG}: {why}"));
    let parsed: EnvConfig = serde_json::from_str(raw).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => {
                "not a Docker config of only \"auths\" entries (with \"auth\", or \"username\" and \"password\")"
                    .to_string()
            }
            _ => format!("not JSON (line {} column {})", e.line(), e.column()),
        };
        bad(what)
    })?;
    let mut out = HashMap::new();
    for (key, entry) in parsed.auths {
        if entry.auth.is_empty() {
            if entry.username.is_empty() || entry.password.is_empty() {
                return Err(bad(format!("the entry for {key} has no \"auth\" (nor \"username\" and \"password\")")));
            }
            out.insert(
                normalise_host(&key),
                Credential::Basic { username: entry.username, password: Secret::new(entry.password) },
            );
            continue;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(entry.auth.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| bad(format!("the \"auth\" of {key} is not base64 of username:password")))?;
        let (user, pass) = decoded
            .split_once(':')
            .filter(|(u, _)| !u.is_empty())
            .ok_or_else(|| bad(format!("the \"auth\" of {key} is not base64 of username:password")))?;
        out.insert(
            normalise_host(&key),
            Credential::Basic { username: user.to_string(), password: Secret::new(pass.trim_end_matches('\0')) },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<EnvCredentials, RegistryError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        EnvCredentials::from_lookup(Box::new(move |k| map.get(k).cloned()))
    }

    fn basic(u: &str, p: &str) -> Option<Credential> {
        Some(Credential::Basic { username: u.into(), password: Secret::new(p) })
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn docker_auth_config_entries_by_host() {
        let v = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"reg.example:5000":{{"auth":"{}"}}}}}}"#,
            b64("hub:hubpw"),
            b64("u:p:with:colons")
        );
        let e = env(&[(DOCKER_AUTH_CONFIG, &v)]).unwrap();
        assert_eq!(e.shadowing("docker.io"), basic("hub", "hubpw"));
        assert_eq!(e.shadowing("reg.example:5000"), basic("u", "p:with:colons"));
        assert_eq!(e.shadowing("reg.example"), None);
        assert!(e.secrets().contains(&"p:with:colons".to_string()));
        // A Kubernetes Secret's .dockerconfigjson, as kubectl writes it.
        let v = format!(
            r#"{{"auths":{{"k.example":{{"username":"ku","password":"kp","email":"a@b","auth":"{}"}},"l.example":{{"username":"lu","password":"lp"}}}}}}"#,
            b64("ku:kp")
        );
        let e = env(&[(DOCKER_AUTH_CONFIG, &v)]).unwrap();
        assert_eq!(e.shadowing("k.example"), basic("ku", "kp"));
        assert_eq!(e.shadowing("l.example"), basic("lu", "lp"));
    }

    #[test]
    fn malformed_docker_auth_config_is_an_error_that_quotes_no_secret() {
        for (v, want) in [
            (r#"{"auths":{"r.example":{"auth":"c2VjcmV0LXZhbHVl","token":"hunter2"}}}"#.to_string(), "only"),
            (r#"{"auths":{"r.example":{"username":"u"}}}"#.to_string(), "has no \"auth\""),
            (r#"{"credsStore":"x","auths":{}}"#.to_string(), "only"),
            (r#"{"auths":{"r.example":{}}}"#.to_string(), "has no \"auth\""),
            (format!(r#"{{"auths":{{"r.example":{{"auth":"{}"}}}}}}"#, b64("hunter2")), "not base64 of username"),
            ("{hunter2".to_string(), "not JSON"),
        ] {
            let e = env(&[(DOCKER_AUTH_CONFIG, &v)]).err().unwrap().to_string();
            assert!(e.starts_with("DOCKER_AUTH_CONFIG: ") && e.contains(want), "{e}");
            assert!(!e.contains("hunter2") && !e.contains("c2VjcmV0"), "{e}");
        }
        assert!(env(&[(DOCKER_AUTH_CONFIG, "  ")]).unwrap().shadowing("x").is_none());
    }

    #[test]
    fn kaniko_variables_from_the_most_specific_name_down() {
        let e = env(&[
            ("KANIKO_EXAMPLE_COM_USER", "wide"),
            ("KANIKO_EXAMPLE_COM_PASSWORD", "wpw"),
            ("KANIKO_MY_REG_EXAMPLE_COM_USER", "narrow"),
            ("KANIKO_MY_REG_EXAMPLE_COM_PASSWORD", "npw"),
            ("KANIKO_127_0_0_1_5000_USER", "local"),
            ("KANIKO_127_0_0_1_5000_PASSWORD", "lpw"),
            ("KANIKO_HALF_EXAMPLE_COM_USER", "no-password"),
        ])
        .unwrap();
        assert_eq!(e.fallback("my-reg.example.com"), basic("narrow", "npw"));
        assert_eq!(e.fallback("other.example.com"), basic("wide", "wpw"));
        // A user without a password is skipped, as in the fork.
        assert_eq!(e.fallback("half.example.com"), basic("wide", "wpw"));
        assert_eq!(e.fallback("127.0.0.1:5000"), basic("local", "lpw"));
        assert_eq!(e.fallback("127.0.0.1:5001"), None);
        assert_eq!(e.fallback("example.org"), None);
        // The fork's own spelling, with the port's colon, works too.
        let e = env(&[("KANIKO_REG_EXAMPLE:5000_USER", "u"), ("KANIKO_REG_EXAMPLE:5000_PASSWORD", "p")]).unwrap();
        assert_eq!(e.fallback("reg.example:5000"), basic("u", "p"));
        assert_eq!(kaniko_names(&normalise_host("docker.io"))[..2], ["KANIKO_INDEX_DOCKER_IO", "KANIKO_DOCKER_IO"]);
    }

    #[test]
    fn gitlab_variables_only_for_ci_registry_with_its_port() {
        let e = env(&[
            ("CI_REGISTRY", "gitlab.example.com:5050"),
            ("CI_REGISTRY_USER", "gitlab-ci-token"),
            ("CI_REGISTRY_PASSWORD", "job-token"),
        ])
        .unwrap();
        assert_eq!(e.fallback("gitlab.example.com:5050"), basic("gitlab-ci-token", "job-token"));
        assert_eq!(e.fallback("gitlab.example.com"), None);
        assert_eq!(e.fallback("docker.io"), None);
        assert_eq!(e.secrets(), vec!["job-token".to_string()]);
        // KANIKO_ variables come first.
        let e = env(&[
            ("CI_REGISTRY", "r.example"),
            ("CI_REGISTRY_USER", "ci"),
            ("CI_REGISTRY_PASSWORD", "cipw"),
            ("KANIKO_R_EXAMPLE_USER", "k"),
            ("KANIKO_R_EXAMPLE_PASSWORD", "kpw"),
        ])
        .unwrap();
        assert_eq!(e.fallback("r.example"), basic("k", "kpw"));
    }
}
