//! Where AWS credentials come from (an `s3://` context's, and ECR's login): the AWS SDK for Go
//! v2's default chain, which kaniko uses (`config.LoadDefaultConfig`), in its order, as far as
//! it matters in CI jobs and Kubernetes pods:
//!
//! 1. `AWS_PROFILE` set: that profile of the shared files (`profile.rs`);
//! 2. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 3. `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`: IRSA on EKS, through STS
//!    `AssumeRoleWithWebIdentity` (an unsigned request: the token is the credential);
//! 4. the `default` profile (static keys, or `role_arn` + `web_identity_token_file`);
//! 5. container credentials: `AWS_CONTAINER_CREDENTIALS_FULL_URI` (EKS Pod Identity) or
//!    `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (ECS), with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`
//!    or `AWS_CONTAINER_AUTHORIZATION_TOKEN`;
//! 6. none: the request goes unsigned (a public bucket). Unlike the SDK, trowel does not ask
//!    the EC2 instance metadata service (IMDS): a CI pod rarely should use its node's role, and
//!    a metadata server that does not answer costs seconds of timeouts on every build.
//!
//! What the chain cannot use is an error that says so (a profile with `credential_process` or
//! SSO, half of a key pair) rather than a silent fall to anonymous. Every secret found (secret
//! key, session token, web identity token, authorization token) goes into the fetch's secrets.

use std::path::PathBuf;

use super::profile::Profile;
use super::sign::{Keys, uri_encode};
use crate::registry::cloud::http::{Client, Request};

/// Where the credentials came from: what a message tells the user to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Env { session_token: bool },
    Profile { name: String, file: Option<PathBuf> },
    WebIdentity { role_arn: String, token_file: String },
    Container { var: &'static str },
    Anonymous,
}

impl Origin {
    /// What to check, naming the variables or the file.
    pub(crate) fn check(&self) -> String {
        match self {
            Origin::Env { session_token: false } => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
            Origin::Env { session_token: true } => {
                "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN".into()
            }
            Origin::Profile { name, file } => format!(
                "the keys of the profile {name:?} in {} (AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE)",
                file.as_ref().map_or("the AWS shared files".into(), |f| f.display().to_string())
            ),
            Origin::WebIdentity { role_arn, token_file } => format!(
                "the role {role_arn} (AWS_ROLE_ARN) and its permissions, assumed with the token in {token_file} \
                 (AWS_WEB_IDENTITY_TOKEN_FILE)"
            ),
            Origin::Container { var } => format!("the role of the credentials served at {var}"),
            Origin::Anonymous => "that credentials are set: none were found (AWS_ACCESS_KEY_ID and \
                                  AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, \
                                  or AWS_CONTAINER_CREDENTIALS_FULL_URI), so the request was anonymous"
                .into(),
        }
    }
}

/// The credentials to sign with (`None`: anonymous), and where they came from.
pub(crate) struct Credentials {
    pub keys: Option<Keys>,
    pub origin: Origin,
}

/// Walks the chain. `region` picks the regional STS endpoint; `secrets` receives every secret
/// found. An `Err` is the reason, for the caller to put in a context error.
pub(crate) fn resolve(
    env: &dyn Fn(&str) -> Option<String>,
    profile: &Profile,
    region: Option<&str>,
    client: &Client,
    secrets: &mut Vec<String>,
) -> Result<Credentials, String> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    if var("AWS_PROFILE").is_some()
        && let Some(c) = from_profile(env, profile, region, client, secrets)?
    {
        return Ok(c);
    }
    let id = var("AWS_ACCESS_KEY_ID").or_else(|| var("AWS_ACCESS_KEY"));
    let secret = var("AWS_SECRET_ACCESS_KEY").or_else(|| var("AWS_SECRET_KEY"));
    match (id, secret) {
        (Some(id), Some(secret)) => {
            let token = var("AWS_SESSION_TOKEN");
            secrets.push(secret.clone());
            secrets.extend(token.clone());
            let origin = Origin::Env { session_token: token.is_some() };
            return Ok(Credentials {
                keys: Some(Keys { access_key_id: id, secret_access_key: secret, session_token: token }),
                origin,
            });
        }
        (Some(_), None) => return Err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both".into()),
        (None, Some(_)) => return Err("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both".into()),
        (None, None) => {}
    }
    if let Some(token_file) = var("AWS_WEB_IDENTITY_TOKEN_FILE") {
        let role_arn = var("AWS_ROLE_ARN")
            .ok_or("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not: set the role to assume")?;
        let session = var("AWS_ROLE_SESSION_NAME");
        return web_identity(env, &role_arn, &token_file, session, region, client, secrets);
    }
    if var("AWS_PROFILE").is_none()
        && let Some(c) = from_profile(env, profile, region, client, secrets)?
    {
        return Ok(c);
    }
    if let Some(c) = container(env, client, secrets)? {
        return Ok(c);
    }
    Ok(Credentials { keys: None, origin: Origin::Anonymous })
}

/// A profile's static keys or web identity role; `None` when it has neither.
fn from_profile(
    env: &dyn Fn(&str) -> Option<String>,
    profile: &Profile,
    region: Option<&str>,
    client: &Client,
    secrets: &mut Vec<String>,
) -> Result<Option<Credentials>, String> {
    let name = &profile.name;
    if let (Some(id), Some(secret)) = (profile.get("aws_access_key_id"), profile.get("aws_secret_access_key")) {
        let token = profile.get("aws_session_token").map(str::to_string);
        secrets.push(secret.to_string());
        secrets.extend(token.clone());
        let keys = Keys { access_key_id: id.to_string(), secret_access_key: secret.to_string(), session_token: token };
        let origin = Origin::Profile { name: name.clone(), file: profile.file.clone() };
        return Ok(Some(Credentials { keys: Some(keys), origin }));
    }
    if let (Some(role), Some(file)) = (profile.get("role_arn"), profile.get("web_identity_token_file")) {
        let session = profile.get("role_session_name").map(str::to_string);
        return web_identity(env, role, file, session, region, client, secrets).map(Some);
    }
    for (key, what) in [
        ("source_profile", "role_arn with source_profile (assuming a role with other keys)"),
        ("credential_source", "role_arn with credential_source"),
        ("credential_process", "credential_process"),
        ("sso_session", "AWS IAM Identity Center (SSO)"),
        ("sso_start_url", "AWS IAM Identity Center (SSO)"),
    ] {
        if profile.get(key).is_some() {
            return Err(format!(
                "the AWS profile {name:?} uses {what}, which trowel does not support: give the build static keys \
                 (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or a web identity \
                 (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)"
            ));
        }
    }
    if env("AWS_PROFILE").is_some_and(|p| !p.is_empty()) && profile.file.is_none() {
        return Err(format!(
            "AWS_PROFILE={name} but no such profile is in the AWS shared files (AWS_SHARED_CREDENTIALS_FILE, \
             AWS_CONFIG_FILE, or ~/.aws/credentials and ~/.aws/config)"
        ));
    }
    Ok(None)
}

/// STS `AssumeRoleWithWebIdentity`: the token file's content traded for temporary keys.
fn web_identity(
    env: &dyn Fn(&str) -> Option<String>,
    role_arn: &str,
    token_file: &str,
    session: Option<String>,
    region: Option<&str>,
    client: &Client,
    secrets: &mut Vec<String>,
) -> Result<Credentials, String> {
    let token = std::fs::read_to_string(token_file)
        .map_err(|e| format!("read the web identity token {token_file} (AWS_WEB_IDENTITY_TOKEN_FILE): {e}"))?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(format!("the web identity token {token_file} (AWS_WEB_IDENTITY_TOKEN_FILE) is empty"));
    }
    secrets.push(token.clone());
    let session = session.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!("trowel-{}", now.as_nanos())
    });
    let endpoint = sts_endpoint(env, region);
    let form = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", role_arn),
        ("RoleSessionName", session.as_str()),
        ("WebIdentityToken", token.as_str()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", uri_encode(v, true)))
    .collect::<Vec<_>>()
    .join("&");
    let origin = Origin::WebIdentity { role_arn: role_arn.to_string(), token_file: token_file.to_string() };
    let resp = client
        .send(&|| {
            Ok(Request {
                method: reqwest::Method::POST,
                url: endpoint.clone(),
                headers: vec![
                    ("content-type".into(), "application/x-www-form-urlencoded; charset=utf-8".into()),
                    ("accept".into(), "application/xml".into()),
                ],
                body: form.clone().into_bytes(),
                timeout: None,
            })
        })
        .map_err(|e| format!("reach STS at {endpoint} for the web identity role: {e}"))?;
    let status = resp.status;
    let ok = resp.is_success();
    let body = String::from_utf8_lossy(&resp.read_small(64 * 1024).map_err(|e| format!("read STS's answer: {e}"))?)
        .into_owned();
    if !ok {
        let code = super::xml_text(&body, "Code").unwrap_or_default();
        let message = super::xml_text(&body, "Message").unwrap_or_default();
        return Err(format!(
            "STS at {endpoint} refused AssumeRoleWithWebIdentity (HTTP {status} {}{}): check {}, and that the role \
             trusts the token's issuer",
            super::one_line(&code),
            if message.is_empty() { String::new() } else { format!(": {}", super::one_line(&message)) },
            origin.check()
        ));
    }
    let field =
        |tag: &str| super::xml_text(&body, tag).ok_or_else(|| format!("STS's answer at {endpoint} has no {tag}"));
    let keys = Keys {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: field("SecretAccessKey")?,
        session_token: Some(field("SessionToken")?),
    };
    secrets.push(keys.secret_access_key.clone());
    secrets.extend(keys.session_token.clone());
    Ok(Credentials { keys: Some(keys), origin })
}

/// STS's address: `AWS_ENDPOINT_URL_STS` or `AWS_ENDPOINT_URL` (the SDKs' endpoint variables),
/// else the region's own endpoint (the SDK for Go v2's default), or the global one when there is
/// no region or `AWS_STS_REGIONAL_ENDPOINTS=legacy`.
pub(crate) fn sts_endpoint(env: &dyn Fn(&str) -> Option<String>, region: Option<&str>) -> String {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(url) = var("AWS_ENDPOINT_URL_STS").or_else(|| var("AWS_ENDPOINT_URL")) {
        return if url.contains("://") { url } else { format!("https://{url}") };
    }
    let legacy = var("AWS_STS_REGIONAL_ENDPOINTS").is_some_and(|v| v.eq_ignore_ascii_case("legacy"));
    match region {
        Some(r) if r.starts_with("cn-") => format!("https://sts.{r}.amazonaws.com.cn/"),
        Some(r) if !legacy => format!("https://sts.{r}.amazonaws.com/"),
        _ => "https://sts.amazonaws.com/".into(),
    }
}

/// The container credentials endpoint (ECS task role, EKS Pod Identity), when one is set.
fn container(
    env: &dyn Fn(&str) -> Option<String>,
    client: &Client,
    secrets: &mut Vec<String>,
) -> Result<Option<Credentials>, String> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    let (url, name) = if let Some(rel) = var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        (format!("http://169.254.170.2{rel}"), "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    } else if let Some(full) = var("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        check_container_url(&full)?;
        (full, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
    } else {
        return Ok(None);
    };
    let token = match var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(f) => Some(
            std::fs::read_to_string(&f)
                .map_err(|e| format!("read {f} (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE): {e}"))?
                .trim()
                .to_string(),
        ),
        None => var("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    };
    secrets.extend(token.clone());
    let resp = client
        .send(&|| {
            let mut r = Request::get(url.clone()).header("accept", "application/json");
            if let Some(t) = &token {
                r = r.header("authorization", t.clone());
            }
            Ok(r)
        })
        .map_err(|e| format!("reach the container credentials endpoint ({name}): {e}"))?;
    let status = resp.status;
    if !resp.is_success() {
        return Err(format!(
            "the container credentials endpoint ({name}) answered HTTP {status}: check {name} and \
             AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (or AWS_CONTAINER_AUTHORIZATION_TOKEN)"
        ));
    }
    let body = resp.read_small(64 * 1024).map_err(|e| format!("read the container credentials ({name}): {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| format!("the container credentials endpoint ({name}) did not answer JSON: {e}"))?;
    let field = |k: &str| {
        v.get(k)
            .and_then(|s| s.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("the container credentials ({name}) have no {k}"))
    };
    let keys = Keys {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: field("SecretAccessKey")?,
        session_token: v.get("Token").and_then(|s| s.as_str()).map(str::to_string),
    };
    secrets.push(keys.secret_access_key.clone());
    secrets.extend(keys.session_token.clone());
    Ok(Some(Credentials { keys: Some(keys), origin: Origin::Container { var: name } }))
}

/// The SDKs take a full URI only over https, or over http to this machine or to the ECS and
/// EKS agents' link-local addresses: credentials must not travel in clear elsewhere.
fn check_container_url(url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL ({e})"))?;
    let host = u.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let agent = matches!(host, "169.254.170.2" | "169.254.170.23" | "fd00:ec2::23");
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback || agent => Ok(()),
        _ => Err(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI {}://{host}…: only https, or http to this machine or to the \
             ECS/EKS agent (169.254.170.2, 169.254.170.23, fd00:ec2::23), is taken",
            u.scheme()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::cloud::http::ClientOptions;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let v: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| v.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn resolve_with(pairs: &[(&str, &str)]) -> (Result<Credentials, String>, Vec<String>) {
        let env = env_of(pairs);
        let profile = super::super::profile::load(&env).unwrap();
        let client = Client::new(&ClientOptions::default()).unwrap();
        let mut secrets = Vec::new();
        (resolve(&env, &profile, Some("us-east-1"), &client, &mut secrets), secrets)
    }

    #[test]
    fn env_keys_first_then_profiles_and_half_a_pair_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let creds = d.path().join("credentials");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id=AKIDFILE\naws_secret_access_key=file-secret\n\n[other]\n\
                                aws_access_key_id=AKIDOTHER\naws_secret_access_key=other-secret\n",
        )
        .unwrap();
        let f = creds.to_str().unwrap();
        let home = d.path().to_str().unwrap();
        let env_keys = [
            ("HOME", home),
            ("AWS_SHARED_CREDENTIALS_FILE", f),
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_SESSION_TOKEN", "env-token"),
        ];
        let (c, secrets) = resolve_with(&env_keys);
        let c = c.unwrap();
        assert_eq!(c.keys.unwrap().access_key_id, "AKIDENV");
        assert_eq!(c.origin, Origin::Env { session_token: true });
        assert_eq!(secrets, ["env-secret", "env-token"]);
        // AWS_PROFILE, set, wins over the environment's keys (the SDK for Go v2's order).
        let mut with_profile = env_keys.to_vec();
        with_profile.push(("AWS_PROFILE", "other"));
        let c = resolve_with(&with_profile).0.unwrap();
        assert_eq!(c.keys.unwrap().access_key_id, "AKIDOTHER");
        assert!(c.origin.check().contains("profile \"other\""), "{}", c.origin.check());
        // No keys in the environment: the default profile.
        let (c, secrets) = resolve_with(&[("HOME", home), ("AWS_SHARED_CREDENTIALS_FILE", f)]);
        assert_eq!(c.unwrap().keys.unwrap().access_key_id, "AKIDFILE");
        assert_eq!(secrets, ["file-secret"]);
        let err = resolve_with(&[("AWS_ACCESS_KEY_ID", "AKID")]).0.err().unwrap();
        assert!(err.contains("AWS_SECRET_ACCESS_KEY is not"), "{err}");
        let err = resolve_with(&[("HOME", home), ("AWS_PROFILE", "nope")]).0.err().unwrap();
        assert!(err.contains("AWS_PROFILE=nope but no such profile"), "{err}");
        let err = resolve_with(&[("AWS_WEB_IDENTITY_TOKEN_FILE", f)]).0.err().unwrap();
        assert!(err.contains("AWS_ROLE_ARN is not"), "{err}");
        // Nothing: anonymous.
        let c = resolve_with(&[("HOME", "/nonexistent")]).0.unwrap();
        assert!(c.keys.is_none() && c.origin == Origin::Anonymous);
    }

    #[test]
    fn unsupported_profiles_say_so() {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("config");
        std::fs::write(&cfg, "[profile sso]\nsso_session = corp\n[default]\ncredential_process = /bin/creds\n")
            .unwrap();
        let c = cfg.to_str().unwrap();
        let err = resolve_with(&[("AWS_CONFIG_FILE", c), ("AWS_PROFILE", "sso")]).0.err().unwrap();
        assert!(err.contains("uses AWS IAM Identity Center (SSO), which trowel does not support"), "{err}");
        let err = resolve_with(&[("AWS_CONFIG_FILE", c)]).0.err().unwrap();
        assert!(err.contains("credential_process"), "{err}");
    }

    /// EKS Pod Identity's shape: a full URI on this machine, the token read from its file and
    /// sent as `Authorization`, the keys and token from the JSON answer; all secrets kept.
    #[test]
    fn container_credentials_with_a_token_file() {
        use std::io::{Read as _, Write as _};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/credentials", l.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let body = r#"{"AccessKeyId":"ASIAPOD","SecretAccessKey":"pod-secret","Token":"pod-token","Expiration":"2030-01-01T00:00:00Z"}"#;
            write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
            String::from_utf8_lossy(&buf[..n]).to_string()
        });
        let d = tempfile::tempdir().unwrap();
        let token = d.path().join("token");
        std::fs::write(&token, "pod-identity-token\n").unwrap();
        let (c, secrets) = resolve_with(&[
            ("HOME", "/nonexistent"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token.to_str().unwrap()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "not-this-one"),
        ]);
        let c = c.unwrap();
        let keys = c.keys.unwrap();
        assert_eq!((keys.access_key_id.as_str(), keys.session_token.as_deref()), ("ASIAPOD", Some("pod-token")));
        assert_eq!(c.origin, Origin::Container { var: "AWS_CONTAINER_CREDENTIALS_FULL_URI" });
        assert_eq!(secrets, ["pod-identity-token", "pod-secret", "pod-token"]);
        let request = server.join().unwrap().to_ascii_lowercase();
        assert!(request.starts_with("get /v1/credentials ") && request.contains("authorization: pod-identity-token"));
    }

    #[test]
    fn sts_endpoints_and_container_urls() {
        let e = env_of(&[]);
        assert_eq!(sts_endpoint(&e, Some("eu-west-1")), "https://sts.eu-west-1.amazonaws.com/");
        assert_eq!(sts_endpoint(&e, Some("cn-north-1")), "https://sts.cn-north-1.amazonaws.com.cn/");
        assert_eq!(sts_endpoint(&e, None), "https://sts.amazonaws.com/");
        let legacy = env_of(&[("AWS_STS_REGIONAL_ENDPOINTS", "legacy")]);
        assert_eq!(sts_endpoint(&legacy, Some("eu-west-1")), "https://sts.amazonaws.com/");
        let custom = env_of(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"), ("AWS_ENDPOINT_URL_STS", "sts.local")]);
        assert_eq!(sts_endpoint(&custom, Some("eu-west-1")), "https://sts.local");
        assert!(check_container_url("http://169.254.170.23/v1/credentials").is_ok());
        assert!(check_container_url("http://127.0.0.1:9/creds").is_ok());
        assert!(check_container_url("https://creds.example/x").is_ok());
        assert!(check_container_url("http://creds.example/x").unwrap_err().contains("only https"));
    }
}
