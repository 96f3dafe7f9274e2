//! Google credentials for a `gs://` context, found where Google's client libraries find them
//! (Application Default Credentials), in their order:
//!
//! 1. `GOOGLE_APPLICATION_CREDENTIALS`: a JSON file, a service account key (`service_account`:
//!    a JWT signed with its key, `jwt.rs`, exchanged at its `token_uri`) or a user's refresh
//!    token (`authorized_user`, what `gcloud auth application-default login` writes);
//! 2. gcloud's well-known file, `$CLOUDSDK_CONFIG/application_default_credentials.json` or
//!    `~/.config/gcloud/application_default_credentials.json`;
//! 3. the metadata server (GKE Workload Identity, a GCE VM's service account):
//!    `http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token`
//!    with `Metadata-Flavor: Google`, its host replaced by `GCE_METADATA_HOST` as Google's
//!    libraries allow.
//!
//! `external_account` (workload identity federation) and `impersonated_service_account` files
//! are refused with a message saying so. Keys, refresh tokens and client secrets are returned
//! for masking ([`Credentials::secrets`]) and never appear in an error: a message names the file
//! and the variable to check, and what is wrong with the file, never its content.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::jwt::SigningKey;
use crate::registry::cloud::http::{Client, HttpError, Request};

/// Where Google's libraries send a token request when the file names none.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const METADATA_HOST: &str = "metadata.google.internal";
/// A token answer is a few hundred bytes.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;
/// The metadata server answers at once or is not there (off Google Cloud): no build waits for it.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the credentials were found: what an error tells people to check.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// `GOOGLE_APPLICATION_CREDENTIALS`.
    Variable(PathBuf),
    /// gcloud's well-known file.
    WellKnown(PathBuf),
    Metadata,
}

enum Kind {
    ServiceAccount {
        email: String,
        // Boxed: an RSA key pair is most of this enum's size otherwise.
        key: Box<SigningKey>,
        key_id: Option<String>,
        token_uri: String,
        pem: String,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        token_uri: String,
    },
    /// The metadata server's base URL (`http://HOST`).
    Metadata {
        base: String,
    },
}

/// Credentials found, not yet exchanged for a token.
pub(crate) struct Credentials {
    kind: Kind,
    origin: Origin,
}

/// Why no token could be had.
#[derive(Debug)]
pub(crate) enum TokenError {
    /// The answer, or its absence, explained: what was used and what to check.
    Refused(String),
    /// A token endpoint that could not be reached.
    Http { what: String, source: HttpError },
}

impl Credentials {
    /// The first credentials Google's lookup order finds (the metadata server last, always
    /// "found": whether it is there shows when the token is asked for).
    pub(crate) fn find(env: &dyn Fn(&str) -> Option<String>) -> Result<Credentials, String> {
        let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if let Some(path) = set("GOOGLE_APPLICATION_CREDENTIALS") {
            let origin = Origin::Variable(PathBuf::from(path));
            return Credentials::from_file(origin);
        }
        let gcloud_dir = match (set("CLOUDSDK_CONFIG"), set("HOME")) {
            (Some(d), _) => Some(PathBuf::from(d)),
            (None, Some(home)) => Some(Path::new(&home).join(".config/gcloud")),
            (None, None) => None,
        };
        if let Some(file) = gcloud_dir.map(|d| d.join("application_default_credentials.json"))
            && file.exists()
        {
            return Credentials::from_file(Origin::WellKnown(file));
        }
        let host = set("GCE_METADATA_HOST").unwrap_or_else(|| METADATA_HOST.to_string());
        Ok(Credentials { kind: Kind::Metadata { base: format!("http://{}", host.trim()) }, origin: Origin::Metadata })
    }

    fn from_file(origin: Origin) -> Result<Credentials, String> {
        let (Origin::Variable(path) | Origin::WellKnown(path)) = &origin else { unreachable!("a file") };
        let named = name_of(&origin);
        let text = std::fs::read_to_string(path).map_err(|e| format!("{named}: cannot read it: {e}"))?;
        // serde_json's message names a line and column, never the text.
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{named} is not a JSON credentials file: {e}"))?;
        let field = |k: &str| v[k].as_str().map(str::to_string).filter(|s| !s.is_empty());
        let need = |k: &str| field(k).ok_or_else(|| format!("{named}: its {:?} credentials have no {k:?}", v["type"]));
        let token_uri = || -> Result<String, String> {
            let uri = field("token_uri").unwrap_or_else(|| GOOGLE_TOKEN_URI.to_string());
            check_token_uri(&uri).map_err(|why| format!("{named}: token_uri {uri:?} {why}"))?;
            Ok(uri)
        };
        let kind = match v["type"].as_str() {
            Some("service_account") => {
                let email = need("client_email")?;
                let pem = need("private_key")?;
                let key = SigningKey::from_pem(&pem).map_err(|why| format!("{named}: {why}"))?;
                Kind::ServiceAccount {
                    email,
                    key: Box::new(key),
                    key_id: field("private_key_id"),
                    token_uri: token_uri()?,
                    pem,
                }
            }
            Some("authorized_user") => Kind::AuthorizedUser {
                client_id: need("client_id")?,
                client_secret: need("client_secret")?,
                refresh_token: need("refresh_token")?,
                token_uri: token_uri()?,
            },
            Some(t @ ("external_account" | "external_account_authorized_user")) => {
                return Err(format!(
                    "{named} is an {t} file (workload identity federation), which trowel does not support yet: \
                     use a service account key, or, on GKE, Workload Identity (the metadata server: unset \
                     GOOGLE_APPLICATION_CREDENTIALS)"
                ));
            }
            Some("impersonated_service_account") => {
                return Err(format!(
                    "{named} is an impersonated_service_account file, which trowel does not support yet: use the \
                     target service account's own key, or Workload Identity"
                ));
            }
            other => {
                return Err(format!(
                    "{named}: unknown credentials type {:?} (expected service_account or authorized_user)",
                    other.unwrap_or("(none)")
                ));
            }
        };
        Ok(Credentials { kind, origin })
    }

    /// The metadata server's base URL when these credentials are its (nothing else was found).
    pub(crate) fn metadata_base(&self) -> Option<&str> {
        match &self.kind {
            Kind::Metadata { base } => Some(base),
            _ => None,
        }
    }

    /// What must be masked: a key's PEM lines, a refresh token, a client secret.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let values: Vec<String> = match &self.kind {
            Kind::ServiceAccount { pem, .. } => {
                pem.lines().filter(|l| !l.starts_with("-----")).map(|l| l.trim().to_string()).collect()
            }
            Kind::AuthorizedUser { client_secret, refresh_token, .. } => {
                vec![client_secret.clone(), refresh_token.clone()]
            }
            Kind::Metadata { .. } => Vec::new(),
        };
        values.into_iter().filter(|s| s.len() >= 8).collect()
    }

    /// Which credentials these are, for a message: the account and where they were found.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::ServiceAccount { email, .. } => format!("the service account {email} ({})", name_of(&self.origin)),
            Kind::AuthorizedUser { .. } => format!("a user's refresh token ({})", name_of(&self.origin)),
            Kind::Metadata { base } => format!(
                "the metadata server's default service account (GKE Workload Identity or the VM's; {base}, \
                 GCE_METADATA_HOST to change)"
            ),
        }
    }

    /// An access token for `scope` (a service account's assertion asks for it; a refresh token
    /// and the metadata server give the scopes they were granted).
    pub(crate) fn access_token(&self, client: &Client, scope: &str) -> Result<String, TokenError> {
        let (what, resp) = match &self.kind {
            Kind::ServiceAccount { email, key, key_id, token_uri, .. } => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                let assertion = key
                    .assertion(key_id.as_deref(), email, token_uri, scope, now)
                    .map_err(|why| TokenError::Refused(format!("{}: {why}", name_of(&self.origin))))?;
                let send = client.send(&|| {
                    Ok(Request::post_form(
                        token_uri.as_str(),
                        &[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)],
                    ))
                });
                (format!("exchange the service account key for a token at {token_uri}"), send)
            }
            Kind::AuthorizedUser { client_id, client_secret, refresh_token, token_uri } => {
                let send = client.send(&|| {
                    Ok(Request::post_form(
                        token_uri.as_str(),
                        &[
                            ("grant_type", "refresh_token"),
                            ("client_id", client_id),
                            ("client_secret", client_secret),
                            ("refresh_token", refresh_token),
                        ],
                    ))
                });
                (format!("refresh the user's token at {token_uri}"), send)
            }
            Kind::Metadata { base } => {
                let url = format!("{base}/computeMetadata/v1/instance/service-accounts/default/token");
                let send = client.send(&|| {
                    Ok(Request::get(url.as_str()).header("metadata-flavor", "Google").timeout(METADATA_TIMEOUT))
                });
                let resp = send.map_err(|e| TokenError::Refused(no_credentials(base, &e.to_string())))?;
                let flavor = resp.headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) == Some("Google");
                if resp.is_success() && !flavor {
                    return Err(TokenError::Refused(no_credentials(
                        base,
                        "it answered without Metadata-Flavor: Google, so it is not a metadata server",
                    )));
                }
                ("ask the metadata server for a token".to_string(), Ok(resp))
            }
        };
        let resp = resp.map_err(|source| TokenError::Http { what: what.clone(), source })?;
        if !resp.is_success() {
            let status = resp.status;
            let said = super::error_message(&resp.error_text());
            let hint = match &self.kind {
                Kind::ServiceAccount { .. } => "the key may have been deleted or disabled, or the account removed",
                Kind::AuthorizedUser { .. } => "run `gcloud auth application-default login` again",
                Kind::Metadata { .. } => {
                    "on GKE, check the pod's Kubernetes service account is bound to a Google service account \
                     (Workload Identity); on a VM, that it has a service account"
                }
            };
            return Err(TokenError::Refused(format!(
                "could not {what}: HTTP {status}: {said}; used {}: {hint}",
                self.describe()
            )));
        }
        let body = resp
            .read_small(MAX_TOKEN_ANSWER)
            .map_err(|e| TokenError::Refused(format!("could not {what}: reading the answer: {e}")))?;
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["access_token"].as_str().map(str::to_string))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| TokenError::Refused(format!("could not {what}: the answer holds no access_token")))
    }
}

/// The file as a message names it: the variable that named it, or gcloud's file.
fn name_of(origin: &Origin) -> String {
    match origin {
        Origin::Variable(p) => format!("GOOGLE_APPLICATION_CREDENTIALS={}", p.display()),
        Origin::WellKnown(p) => format!("{} (gcloud's application default credentials)", p.display()),
        Origin::Metadata => "the metadata server".into(),
    }
}

/// Nothing found anywhere: every place looked, and what to set.
fn no_credentials(base: &str, why: &str) -> String {
    format!(
        "no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set, there is no gcloud \
         application_default_credentials.json, and the metadata server {base} gave no token ({why}); set \
         GOOGLE_APPLICATION_CREDENTIALS to a service account key file, run `gcloud auth application-default \
         login`, or run on GKE with Workload Identity (for an emulator, set STORAGE_EMULATOR_HOST)"
    )
}

/// A token endpoint receives the signed assertion or the refresh token: https, or plain http
/// on this machine's loopback only.
fn check_token_uri(uri: &str) -> Result<(), &'static str> {
    let url = reqwest::Url::parse(uri).map_err(|_| "is not a URL")?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if super::is_loopback(&url) => Ok(()),
        _ => Err("must be https:// (a key or refresh token is sent there)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_with(vars: Vec<(&'static str, String)>) -> Result<Credentials, String> {
        Credentials::find(&move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn the_lookup_order_is_googles() {
        let d = tempfile::tempdir().unwrap();
        let user = r#"{"type":"authorized_user","client_id":"cid","client_secret":"csecret-1234","refresh_token":"rt-abcdefgh"}"#;
        std::fs::create_dir_all(d.path().join("home/.config/gcloud")).unwrap();
        std::fs::write(d.path().join("home/.config/gcloud/application_default_credentials.json"), user).unwrap();
        let home = d.path().join("home").display().to_string();
        // The well-known file, when no variable names one.
        let c = find_with(vec![("HOME", home.clone())]).unwrap();
        assert!(
            matches!(&c.origin, Origin::WellKnown(p) if p.ends_with("gcloud/application_default_credentials.json"))
        );
        assert_eq!(c.secrets(), vec!["csecret-1234".to_string(), "rt-abcdefgh".to_string()]);
        assert!(c.describe().contains("gcloud's application default credentials"), "{}", c.describe());
        // The variable wins, and a missing file is an error naming it.
        let e = find_with(vec![("HOME", home.clone()), ("GOOGLE_APPLICATION_CREDENTIALS", "/nope.json".into())])
            .err()
            .unwrap();
        assert!(e.starts_with("GOOGLE_APPLICATION_CREDENTIALS=/nope.json: cannot read it"), "{e}");
        // Neither: the metadata server, at GCE_METADATA_HOST when set.
        let c = find_with(vec![("HOME", "/nonexistent".into())]).unwrap();
        assert!(matches!(&c.kind, Kind::Metadata { base } if base == "http://metadata.google.internal"));
        let c = find_with(vec![("GCE_METADATA_HOST", "127.0.0.1:8080".into())]).unwrap();
        assert!(matches!(&c.kind, Kind::Metadata { base } if base == "http://127.0.0.1:8080"));
    }

    #[test]
    fn bad_files_say_what_is_wrong_never_their_content() {
        let d = tempfile::tempdir().unwrap();
        let check = |content: &str, expect: &str| {
            let p = d.path().join("key.json");
            std::fs::write(&p, content).unwrap();
            let e = find_with(vec![("GOOGLE_APPLICATION_CREDENTIALS", p.display().to_string())]).err().unwrap();
            assert!(e.contains(expect), "{e}");
            assert!(!e.contains("s3cr3tmaterial"), "{e}");
        };
        check("{not json s3cr3tmaterial", "is not a JSON credentials file");
        check(r#"{"type":"service_account","client_email":"a@b","private_key":"s3cr3tmaterial"}"#, "not a PEM");
        check(r#"{"type":"service_account","private_key":"x"}"#, "no \"client_email\"");
        check(r#"{"type":"external_account","audience":"s3cr3tmaterial"}"#, "workload identity federation");
        check(r#"{"type":"impersonated_service_account"}"#, "does not support yet");
        check(r#"{"type":"api_key","key":"s3cr3tmaterial"}"#, "unknown credentials type \"api_key\"");
        check(
            r#"{"type":"authorized_user","client_id":"c","client_secret":"s3cr3tmaterial","refresh_token":"r","token_uri":"http://evil.example/t"}"#,
            "must be https://",
        );
    }
}
