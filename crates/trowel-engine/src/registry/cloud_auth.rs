//! The cloud registries' own logins, compiled in as kaniko compiles them in (`pkg/creds`:
//! `authn.NewMultiKeychain(DefaultKeychain, google.Keychain, ECR helper, ACR helper, …)`), so a
//! job on EKS or GKE pushes to its cloud's registry with the pod's identity and no
//! `config.json`. Asked only when the Docker config and the environment's variables have nothing
//! for the host (`auth.rs`, `env_auth.rs`):
//!
//! - **Amazon ECR**, hosts as the ECR credential helper matches them
//!   (`<registry id>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`): the AWS credential chain
//!   (`cloud/aws/credentials.rs`: keys, IRSA's web identity, a profile, EKS Pod Identity or ECS
//!   container credentials), then ECR `GetAuthorizationToken` for that registry id, signed
//!   with SigV4 (service `ecr`, the host's region) at `api.ecr.<region>.amazonaws.com[.cn]` or
//!   `ecr-fips.<region>.amazonaws.com`, the address `AWS_ENDPOINT_URL_ECR` or `AWS_ENDPOINT_URL`
//!   replaces, as the SDKs allow. The token is base64 `AWS:<password>`.
//! - **Google** Container Registry and Artifact Registry, hosts as go-containerregistry's google
//!   keychain matches them (`gcr.io`, `*.gcr.io`, `*.pkg.dev`, `*.google.com`): an access token
//!   from Application Default Credentials (`cloud/google/credentials.rs`) as the password of
//!   `oauth2accesstoken`.
//! - **Azure Container Registry**, hosts as the ACR helper (`docker-credential-acr-env`) matches
//!   them, anchored at the end (`*.azurecr.io`, `.cn`, `.de`, `.us`; the helper's unanchored
//!   pattern would also match `x.azurecr.io.example`, and its `mcr.microsoft.com`, a public
//!   registry, is left anonymous): an Entra token for Azure Resource Manager, of a service
//!   principal's secret (`AZURE_CLIENT_SECRET`) or of AKS's workload identity
//!   (`AZURE_FEDERATED_TOKEN_FILE`), with `AZURE_CLIENT_ID` and `AZURE_TENANT_ID`
//!   (`cloud/azure/identity.rs`), exchanged at the registry's `/oauth2/exchange` for a refresh
//!   token, which is the identity token the registry's token server takes. Unlike the helper,
//!   no managed identity through the instance metadata service.
//!
//! Both compare the host without its port (the ECR helper does; the google keychain compares
//! the name with its port, which a real registry of theirs never has).
//!
//! Where kaniko differs: its keychains swallow every error and go on anonymously, so a job whose
//! role may not call ECR fails later with a bare `unauthorized`. Here an ECR login that fails, or
//! an ECR host with no AWS credentials at all, is an error naming what was tried and what to set
//! (a private ECR registry never serves anyone anonymously). Google's registries serve public
//! images to anyone (`gcr.io/distroless/…`), so with no Google credentials at all (no file, and
//! no metadata server: `metadata.google.internal` does not resolve and `GCE_METADATA_HOST` is not
//! set, Google's own "on GCE?" test) the request goes anonymous, as kaniko's does; credentials
//! that exist but fail are an error; so for Azure (ACR may allow anonymous pulls). Unlike the AWS
//! SDK, the EC2 instance metadata service is not asked (`cloud/aws/credentials.rs` says why).
//!
//! The answer is kept for the build by the keychain's per-host cache (an ECR token lasts 12
//! hours, a Google access token one). Every secret met on the way (keys, tokens, the password)
//! goes to the build's redactor (`Registry::report_secrets`) before the credential is used, and
//! no value is ever put in a message.

use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;

use super::auth::Credential;
use super::cloud::aws::{credentials as aws_credentials, one_line, profile, sign, xml_text};
use super::cloud::google::credentials::{Credentials as GoogleCredentials, TokenError};
use super::cloud::http::{Client, ClientOptions, Request};
use super::error::RegistryError;
use super::secret::Secret;

/// The username Google's registries take an access token with.
pub(crate) const GOOGLE_USERNAME: &str = "oauth2accesstoken";
/// What go-containerregistry's google keychain asks for: pushes need more than read access.
const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// ECR's JSON 1.1 target for the call.
const ECR_TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
/// An answer of ECR's is a few kilobytes.
const MAX_ANSWER: usize = 64 * 1024;

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// A registry host that has a compiled-in login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloudRegistry {
    Ecr(EcrRegistry),
    Google,
    Acr,
}

/// What an ECR host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EcrRegistry {
    /// The registry id (the account's number).
    pub id: String,
    pub region: String,
    pub fips: bool,
    /// `amazonaws.com.cn`: the China partition.
    pub china: bool,
}

/// Which compiled-in login `host` (with or without a port) has, if any.
pub(crate) fn cloud_registry(host: &str) -> Option<CloudRegistry> {
    let name = super::options::strip_port(host).to_ascii_lowercase();
    if let Some(ecr) = ecr_registry(&name) {
        return Some(CloudRegistry::Ecr(ecr));
    }
    if name == "gcr.io" || [".gcr.io", ".pkg.dev", ".google.com"].iter().any(|s| name.ends_with(s)) {
        return Some(CloudRegistry::Google);
    }
    let acr = [".azurecr.io", ".azurecr.cn", ".azurecr.de", ".azurecr.us"].iter().any(|s| name.ends_with(s));
    acr.then_some(CloudRegistry::Acr)
}

/// The ECR helper's pattern:
/// `^([a-zA-Z0-9][a-zA-Z0-9-_]*)\.dkr\.ecr(-fips)?\.([a-zA-Z0-9][a-zA-Z0-9-_]*)\.amazonaws\.com(\.cn)?$`.
fn ecr_registry(name: &str) -> Option<EcrRegistry> {
    let (rest, china) = match name.strip_suffix(".amazonaws.com.cn") {
        Some(r) => (r, true),
        None => (name.strip_suffix(".amazonaws.com")?, false),
    };
    let label = |s: &str| {
        s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let (id, fips, region) = if let Some((id, region)) = rest.split_once(".dkr.ecr-fips.") {
        (id, true, region)
    } else {
        let (id, region) = rest.split_once(".dkr.ecr.")?;
        (id, false, region)
    };
    (label(id) && label(region)).then(|| EcrRegistry { id: id.into(), region: region.into(), fips, china })
}

/// ECR's API address for `r`: `AWS_ENDPOINT_URL_ECR`, `AWS_ENDPOINT_URL`, else AWS's (the SDK
/// for Go v2's endpoint rules, which the ECR helper uses).
fn ecr_endpoint(env: &Lookup, r: &EcrRegistry) -> (String, Option<&'static str>) {
    for var in ["AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL"] {
        if let Some(url) = env(var).filter(|v| !v.trim().is_empty()) {
            let url = url.trim();
            let url = if url.contains("://") { url.to_string() } else { format!("https://{url}") };
            return (url, Some(var));
        }
    }
    let url = match (r.fips, r.china) {
        (true, _) => format!("https://ecr-fips.{}.amazonaws.com", r.region),
        (false, true) => format!("https://api.ecr.{}.amazonaws.com.cn", r.region),
        (false, false) => format!("https://api.ecr.{}.amazonaws.com", r.region),
    };
    (url, None)
}

/// Who is handed the secrets a login met (the build's redactor).
pub(crate) type SecretSink = Arc<dyn Fn(Vec<String>) + Send + Sync>;

/// The compiled-in logins, and where the secrets they meet go.
pub(crate) struct CloudLogins {
    env: Arc<Lookup>,
    /// Secrets met before anyone asked for them; handed over when a sink is set.
    held: Mutex<Vec<String>>,
    sink: OnceLock<SecretSink>,
}

impl CloudLogins {
    pub(crate) fn new(env: Arc<Lookup>) -> CloudLogins {
        CloudLogins { env, held: Mutex::default(), sink: OnceLock::new() }
    }

    /// Hands every secret met, from now on and before, to `sink` (set once).
    pub(crate) fn report_secrets(&self, sink: SecretSink) {
        // Under the lock `hand_over` holds while it decides: a secret met meanwhile is either
        // held (and taken here) or finds the sink set, never neither.
        let mut held = self.held.lock().expect("cloud secrets");
        if self.sink.set(sink).is_ok() {
            let held = std::mem::take(&mut *held);
            if !held.is_empty()
                && let Some(sink) = self.sink.get()
            {
                sink(held);
            }
        }
    }

    fn hand_over(&self, secrets: Vec<String>) {
        let secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        if secrets.is_empty() {
            return;
        }
        let mut held = self.held.lock().expect("cloud secrets");
        match self.sink.get() {
            Some(sink) => {
                drop(held);
                sink(secrets)
            }
            None => held.extend(secrets),
        }
    }

    /// `host`'s credential from its cloud's login; `None` when it has none compiled in (or,
    /// for Google, when there are no Google credentials at all).
    pub(crate) async fn credential(&self, host: &str) -> Result<Option<Credential>, RegistryError> {
        let Some(kind) = cloud_registry(host) else { return Ok(None) };
        let env = self.env.clone();
        let host = host.to_string();
        // The HTTP client is synchronous (it runs each request on a thread of its own).
        let (answer, secrets) = tokio::task::spawn_blocking(move || {
            let mut secrets = Vec::new();
            let answer = match kind {
                CloudRegistry::Ecr(r) => ecr_login(&*env, &host, &r, &mut secrets).map(Some),
                CloudRegistry::Google => google_login(&*env, &host, &mut secrets),
                CloudRegistry::Acr => {
                    let exchange = format!("https://{host}");
                    acr_login(&*env, &host, &exchange, &mut secrets)
                }
            };
            (answer, secrets)
        })
        .await
        .map_err(|e| RegistryError::CloudLogin(format!("the cloud registry login stopped: {e}")))?;
        // Before the credential is used: a registry that echoed it back is masked already.
        self.hand_over(secrets);
        answer.map_err(RegistryError::CloudLogin)
    }
}

/// The client of a login; `ca_var` names a file of extra CA certificates (`AWS_CA_BUNDLE`).
fn http_client(env: &Lookup, ca_var: Option<&str>) -> Result<Client, String> {
    Client::new(&ClientOptions {
        ca_file: ca_var.and_then(env).filter(|v| !v.is_empty()).map(Into::into),
        ..ClientOptions::default()
    })
    .map_err(|e| format!("make an HTTP client: {e}"))
}

/// ECR `GetAuthorizationToken` for `r`'s registry id, with the AWS chain's credentials.
fn ecr_login(env: &Lookup, host: &str, r: &EcrRegistry, secrets: &mut Vec<String>) -> Result<Credential, String> {
    let what = format!(
        "{host} is an Amazon ECR registry and the docker config and the environment have no credentials for it, so trowel logs in to ECR as kaniko does"
    );
    let client = http_client(env, Some("AWS_CA_BUNDLE")).map_err(|e| format!("{what}: {e}"))?;
    let profile = profile::load(env).map_err(|e| format!("{what}: {e}"))?;
    let creds = aws_credentials::resolve(env, &profile, Some(&r.region), &client, secrets)
        .map_err(|e| format!("{what}, with the AWS credentials: {e}"))?;
    let Some(keys) = creds.keys else {
        return Err(format!(
            "{what}, but no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
             AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE (IRSA), AWS_PROFILE, or \
             AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod Identity); or give {host} credentials in the docker \
             config (credHelpers, auths) or DOCKER_AUTH_CONFIG"
        ));
    };
    let (endpoint, endpoint_var) = ecr_endpoint(env, r);
    let at = match endpoint_var {
        Some(var) => format!("{endpoint} ({var})"),
        None => endpoint.clone(),
    };
    let url = reqwest::Url::parse(&endpoint).map_err(|e| format!("{what}: the ECR endpoint {at} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{what}: the ECR endpoint {at}: expected http(s)://HOST[:PORT]"));
    }
    let host_header = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let path = if url.path().is_empty() { "/".to_string() } else { url.path().to_string() };
    let body = serde_json::json!({ "registryIds": [r.id] }).to_string();
    let payload_hash = sign::sha256_hex(body.as_bytes());
    // Each attempt signs afresh: the signature holds the time.
    let request = || {
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let mut headers = vec![
            ("host".to_string(), host_header.clone()),
            ("content-type".to_string(), "application/x-amz-json-1.1".to_string()),
            ("x-amz-date".to_string(), amz_date.clone()),
            ("x-amz-target".to_string(), ECR_TARGET.to_string()),
        ];
        if let Some(token) = &keys.session_token {
            headers.push(("x-amz-security-token".to_string(), token.clone()));
        }
        let auth = sign::authorization(
            &keys,
            &sign::Signing {
                method: "POST",
                path: &path,
                query: &[],
                headers: &headers,
                payload_hash: &payload_hash,
                region: &r.region,
                service: "ecr",
                amz_date: &amz_date,
            },
        );
        let mut req = Request {
            method: reqwest::Method::POST,
            url: url.to_string(),
            headers: Vec::new(),
            body: body.clone().into_bytes(),
            timeout: None,
        };
        // `host` is the one the client sends from the URL.
        for (k, v) in headers.into_iter().filter(|(k, _)| k != "host") {
            req = req.header(&k, v);
        }
        Ok(req.header("authorization", auth))
    };
    let resp = client.send(&request).map_err(|e| format!("{what}: could not reach ECR at {at}: {e}"))?;
    let status = resp.status;
    let ok = resp.is_success();
    let error_type = resp.headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()).map(str::to_string);
    let answer = resp.read_small(MAX_ANSWER).map_err(|e| format!("{what}: reading ECR's answer at {at}: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
    if !ok {
        // JSON 1.1's error document; IAM's refusals may come as XML from a front of the API.
        let text = String::from_utf8_lossy(&answer);
        let code = v["__type"].as_str().map(str::to_string).or(error_type).or_else(|| xml_text(&text, "Code"));
        let code = code.unwrap_or_default();
        let code = code.rsplit('#').next().unwrap_or_default().split(':').next().unwrap_or_default().to_string();
        let message = v["message"].as_str().or(v["Message"].as_str()).map(str::to_string);
        let message = message.or_else(|| xml_text(&text, "Message")).map(|m| one_line(&m)).unwrap_or_default();
        return Err(format!(
            "{what}: ECR at {at} refused GetAuthorizationToken for registry {} in {} (HTTP {status}{}{}): check {}, \
             and that its policy allows ecr:GetAuthorizationToken",
            r.id,
            r.region,
            if code.is_empty() { String::new() } else { format!(" {}", one_line(&code)) },
            if message.is_empty() { String::new() } else { format!(": {message}") },
            creds.origin.check()
        ));
    }
    let token = v["authorizationData"][0]["authorizationToken"]
        .as_str()
        .ok_or_else(|| format!("{what}: ECR's answer at {at} holds no authorizationData[0].authorizationToken"))?;
    secrets.push(token.to_string());
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(|| format!("{what}: ECR's authorization token at {at} is not base64 text"))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| format!("{what}: ECR's authorization token at {at} is not user:password"))?;
    secrets.push(password.to_string());
    Ok(Credential::Basic { username: user.to_string(), password: Secret::new(password) })
}

/// An access token from Application Default Credentials; `None` when there are none at all.
fn google_login(env: &Lookup, host: &str, secrets: &mut Vec<String>) -> Result<Option<Credential>, String> {
    let what = format!(
        "{host} is a Google registry and the docker config and the environment have no credentials for it, so trowel logs in with Google's Application Default Credentials as kaniko does"
    );
    let creds = GoogleCredentials::find(env).map_err(|e| format!("{what}: {e}"))?;
    secrets.extend(creds.secrets());
    if let Some(base) = creds.metadata_base()
        && env("GCE_METADATA_HOST").is_none_or(|v| v.trim().is_empty())
        && !resolves(base)
    {
        // Not on Google Cloud and no credentials: anonymous, for public images.
        return Ok(None);
    }
    let client = http_client(env, None).map_err(|e| format!("{what}: {e}"))?;
    let token = creds.access_token(&client, GOOGLE_SCOPE).map_err(|e| match e {
        TokenError::Refused(why) => format!("{what}: {why}"),
        TokenError::Http { what: doing, source } => {
            format!("{what}: could not {doing}: {source}; used {}", creds.describe())
        }
    })?;
    secrets.push(token.clone());
    Ok(Some(Credential::Basic { username: GOOGLE_USERNAME.to_string(), password: Secret::new(token) }))
}

/// Azure Resource Manager's scope: the Entra token ACR's exchange takes (the ACR helper's
/// resource, `ResourceManagerEndpoint`).
const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// The ACR helper's login: an Entra token of a service principal (`AZURE_CLIENT_SECRET`) or a
/// workload identity (`AZURE_FEDERATED_TOKEN_FILE`), with `AZURE_CLIENT_ID` and
/// `AZURE_TENANT_ID`, exchanged at the registry's `/oauth2/exchange` (`exchange`: its base URL)
/// for a refresh token, the identity token the registry's token server takes. `None` with no
/// Azure credentials at all: ACR may allow anonymous pulls.
fn acr_login(
    env: &Lookup,
    host: &str,
    exchange: &str,
    secrets: &mut Vec<String>,
) -> Result<Option<Credential>, String> {
    use super::cloud::azure::identity::{self, WorkloadIdentity};
    let what = format!(
        "{host} is an Azure Container Registry and the docker config and the environment have no credentials for \
         it, so trowel logs in with AZURE_CLIENT_ID and AZURE_TENANT_ID as kaniko's ACR helper does"
    );
    let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let (client_id, tenant, secret, token_file) =
        (var("AZURE_CLIENT_ID"), var("AZURE_TENANT_ID"), var("AZURE_CLIENT_SECRET"), var("AZURE_FEDERATED_TOKEN_FILE"));
    if secret.is_none() && token_file.is_none() {
        return Ok(None);
    }
    let (Some(client_id), Some(tenant)) = (client_id, tenant) else {
        let given = if secret.is_some() { "AZURE_CLIENT_SECRET" } else { "AZURE_FEDERATED_TOKEN_FILE" };
        return Err(format!("{what}: {given} is set, but AZURE_CLIENT_ID and AZURE_TENANT_ID must be set too"));
    };
    let authority = var("AZURE_AUTHORITY_HOST").unwrap_or_else(|| "https://login.microsoftonline.com/".into());
    let client = http_client(env, None).map_err(|e| format!("{what}: {e}"))?;
    let (how, token) = match (&secret, token_file) {
        (Some(secret), _) => (
            "the service principal's secret (AZURE_CLIENT_SECRET)",
            identity::client_secret_token(&client, &authority, &tenant, &client_id, secret, ARM_SCOPE),
        ),
        (None, Some(token_file)) => {
            let w = WorkloadIdentity {
                client_id: client_id.clone(),
                tenant_id: tenant.clone(),
                token_file,
                authority: authority.clone(),
            };
            ("the workload identity (AZURE_FEDERATED_TOKEN_FILE)", identity::access_token(&client, &w, ARM_SCOPE))
        }
        (None, None) => unreachable!("checked above"),
    };
    let at = identity::tenant_token_url(&authority, &tenant);
    let token = token.map_err(|e| match e {
        identity::TokenError::File(why) => format!("{what}: {why}"),
        identity::TokenError::Http(e) => format!("{what}: could not reach Entra ID at {at}: {e}"),
        identity::TokenError::Refused(said) => format!(
            "{what}: Entra ID at {at} refused {how} for client {client_id} ({said}): check AZURE_CLIENT_ID, \
             AZURE_TENANT_ID and the secret or federated credential"
        ),
    })?;
    secrets.extend(token.secrets);
    let url = format!("{}/oauth2/exchange", exchange.trim_end_matches('/'));
    let form = [
        ("grant_type", "access_token"),
        ("service", host),
        ("tenant", tenant.as_str()),
        ("access_token", token.access_token.as_str()),
    ];
    let resp = client
        .send(&|| Ok(Request::post_form(url.as_str(), &form)))
        .map_err(|e| format!("{what}: could not reach {url}: {e}"))?;
    let status = resp.status;
    let ok = resp.is_success();
    let body = resp.read_small(MAX_ANSWER).map_err(|e| format!("{what}: reading the answer of {url}: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if !ok {
        let said = v["errors"][0]["message"].as_str().or(v["error"].as_str()).map(one_line).unwrap_or_default();
        return Err(format!(
            "{what}: the registry's {url} refused the Entra token of client {client_id} (HTTP {status}{}): check that \
             the identity has a role on the registry (AcrPush to push, AcrPull to pull)",
            if said.is_empty() { String::new() } else { format!(": {said}") }
        ));
    }
    let refresh = v["refresh_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("{what}: the answer of {url} holds no refresh_token"))?;
    secrets.push(refresh.to_string());
    Ok(Some(Credential::IdentityToken(Secret::new(refresh))))
}

/// Whether the metadata server's name resolves: Google's libraries' first test of being on
/// Google Cloud, which fails at once elsewhere.
fn resolves(base: &str) -> bool {
    use std::net::ToSocketAddrs as _;
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let with_port = if super::options::strip_port(host) == host { format!("{host}:80") } else { host.to_string() };
    with_port.to_socket_addrs().is_ok_and(|mut a| a.next().is_some())
}

#[cfg(test)]
#[path = "cloud_auth_tests.rs"]
mod tests;
