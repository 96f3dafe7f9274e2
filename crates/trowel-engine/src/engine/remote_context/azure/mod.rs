//! `https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB` (and the other Azure clouds' hosts):
//! an archive in Azure Blob Storage, read with one Get Blob request and unpacked as it arrives
//! (`http.rs`, `tar.rs`), kaniko's `AzureBlob` context and more.
//!
//! The plain REST API, not an SDK: the one request needs a URL, two `x-ms-` headers and, for
//! Shared Key, an HMAC (`shared_key.rs`). Azure's own Rust SDK (`azure_storage_blob` 1.x)
//! authenticates with Entra ID tokens only — no Shared Key, which is kaniko's one way and what
//! emulators speak — and brings its async pipeline and `azure_core`; the older
//! `azure_storage_blobs` line is no longer maintained. Here the HTTP client, retries, TLS and
//! hostile-input rules are the ones every downloaded context shares.
//!
//! Which endpoint and credential (`config.rs`): a SAS token in the URL, kaniko's
//! `AZURE_STORAGE_ACCESS_KEY`, `AZURE_STORAGE_CONNECTION_STRING` (which can also point at an
//! emulator or another endpoint), workload identity on AKS (`registry/cloud/azure/identity.rs`), or anonymous.
//! Every key, token and signature goes back to the caller for masking; a refusal is explained
//! naming the variable to check, never quoting the service's text (Azure's authentication
//! errors quote the request's signature).

use std::path::{Path, PathBuf};

use super::{AzureSource, ContextError, ContextKind, ContextOrigin, FetchOptions, tar};
use crate::registry::cloud::http::{Client, ClientOptions, Request, Response};

mod config;
mod shared_key;

use crate::registry::cloud::azure::identity;
use config::{Credential, Plan};

/// The service version asked for: Shared Key's current string-to-sign and Bearer tokens both
/// need one at least this recent.
const VERSION: &str = "2021-08-06";

pub(super) fn fetch(
    src: &AzureSource,
    dir: &Path,
    opts: &FetchOptions<'_>,
) -> Result<(ContextOrigin, Vec<String>), ContextError> {
    let invalid = |reason: String| ContextError::Invalid { source_: src.shown.clone(), reason };
    let http = |what: &str| {
        let (s, w) = (src.shown.clone(), what.to_string());
        move |source| ContextError::Http { source_: s, what: w, source }
    };
    let given = reqwest::Url::parse(&src.url).map_err(|e| invalid(format!("not a URL: {e}")))?;
    let origin = match given.port() {
        Some(p) => format!("https://{}:{p}", given.host_str().unwrap_or_default()),
        None => format!("https://{}", given.host_str().unwrap_or_default()),
    };
    let plan = config::plan(&origin, &src.account, given.query().unwrap_or(""), opts.env).map_err(invalid)?;
    let mut secrets = plan.secrets.clone();
    let mut url = reqwest::Url::parse(&format!("{}/{}/{}", plan.endpoint, src.container, src.blob))
        .map_err(|e| invalid(format!("the blob's URL at {}: {e}", plan.endpoint_from)))?;
    url.set_fragment(None);
    // The URL's query goes as written (a SAS token, or parameters such as `versionid=`, which
    // Shared Key signs); a connection string's SAS token is added to it.
    let query = match (&plan.credential, given.query().filter(|q| !q.is_empty())) {
        (Credential::Sas { token, from: config::CONNECTION_STRING }, q) => {
            Some(q.map_or_else(|| token.clone(), |q| format!("{q}&{token}")))
        }
        (_, q) => q.map(str::to_string),
    };
    url.set_query(query.as_deref());
    let client_opts = ClientOptions {
        ca_file: (opts.env)("SSL_CERT_FILE").map(PathBuf::from),
        insecure: false,
        stall_timeout: opts.stall_timeout,
        cancel: opts.cancel(),
    };
    let client = Client::new(&client_opts).map_err(http("make an HTTP client"))?;
    let bearer = match &plan.credential {
        Credential::WorkloadIdentity(w) => match identity::access_token(&client, w, identity::STORAGE_SCOPE) {
            Ok(t) => {
                secrets.extend(t.secrets);
                Some(t.access_token)
            }
            Err(identity::TokenError::File(reason)) => return Err(invalid(reason)),
            Err(identity::TokenError::Http(source)) => {
                return Err(http(&format!(
                    "get a token for workload identity from {} (AZURE_AUTHORITY_HOST)",
                    identity::token_url(w)
                ))(source));
            }
            Err(identity::TokenError::Refused(said)) => {
                return Err(invalid(format!(
                    "Entra ID refused the workload identity's token request ({said}): check AZURE_CLIENT_ID \
                     ({}), AZURE_TENANT_ID ({}) and the identity's federated credential for this service account",
                    w.client_id, w.tenant_id
                )));
            }
        },
        _ => None,
    };
    let resp = client
        .send(&|| {
            let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            let mut headers = vec![("x-ms-version".to_string(), VERSION.to_string()), ("x-ms-date".to_string(), date)];
            match &plan.credential {
                Credential::SharedKey { key, .. } => {
                    let s = shared_key::string_to_sign(&src.account, url.path(), url.query().unwrap_or(""), &headers);
                    headers.push(("authorization".into(), shared_key::authorization(&src.account, key, &s)));
                }
                Credential::WorkloadIdentity(_) => {
                    headers.push(("authorization".into(), format!("Bearer {}", bearer.as_deref().unwrap_or(""))));
                }
                Credential::Sas { .. } | Credential::Anonymous => {}
            }
            Ok(headers.into_iter().fold(Request::get(url.as_str()), |r, (k, v)| r.header(&k, v)))
        })
        .map_err(http(&format!("download the blob from {}", shown_endpoint(&plan))))?;
    if !resp.is_success() {
        return Err(invalid(refusal(resp, src, &plan)));
    }
    let origin = tar::unpack_archive(Box::new(resp.into_reader()), ContextKind::Azure, dir, &src.shown, opts)?;
    Ok((origin, secrets))
}

/// The endpoint and where it came from, for a message (never holds a credential: a SAS token
/// travels in the query, which is not part of it).
fn shown_endpoint(plan: &Plan) -> String {
    if plan.endpoint_from == "the URL" {
        plan.endpoint.clone()
    } else {
        format!("{} ({})", plan.endpoint, plan.endpoint_from)
    }
}

/// Why the service said no, and what to check. Only its error code is quoted: the text of an
/// authentication error holds the request's signature.
fn refusal(resp: Response, src: &AzureSource, plan: &Plan) -> String {
    let status = resp.status;
    let code: String = resp
        .headers
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(80)
        .collect();
    drop(resp);
    let said = if code.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status} {code}") };
    let (account, container, blob) = (&src.account, &src.container, &src.blob);
    let at = shown_endpoint(plan);
    let give = "give a credential: AZURE_STORAGE_ACCESS_KEY (the account's key), a SAS token in the URL's query, \
                AZURE_STORAGE_CONNECTION_STRING, or workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, \
                AZURE_FEDERATED_TOKEN_FILE)";
    // Azure answers a malformed or unverifiable credential with 400 InvalidAuthenticationInfo
    // as well as 401/403 (Azurite does so for a wrong key when it also takes tokens).
    let auth = matches!(status, 401 | 403) || code == "InvalidAuthenticationInfo" || code == "AuthenticationFailed";
    match (if auth { 403 } else { status }, code.as_str(), &plan.credential) {
        (404, "BlobNotFound", _) => {
            format!("no blob {blob:?} in the container {container:?} of the account {account} at {at} ({said})")
        }
        (404, "ContainerNotFound", _) => {
            format!("no container {container:?} in the account {account} at {at} ({said})")
        }
        (401 | 403 | 404, _, Credential::Anonymous) => format!(
            "the blob {blob:?} could not be read anonymously from {at} ({said}): it does not exist, or its container is \
             not public: {give}"
        ),
        (401 | 403, _, Credential::SharedKey { from, .. }) => format!(
            "the account {account} refused the key ({said}): check {from}: it must be one of the account's access keys \
             (`az storage account keys list --account-name {account}`), and the account must allow Shared Key access"
        ),
        (401 | 403, _, Credential::Sas { from, .. }) => format!(
            "the account {account} refused {} ({said}): check that it is signed for this account and blob, has not \
             expired (se=), allows reading (sp=r), and that this machine's address and clock are within what it allows",
            if *from == config::CONNECTION_STRING { format!("the SAS token of {from}") } else { from.to_string() }
        ),
        (401 | 403, _, Credential::WorkloadIdentity(w)) => format!(
            "the account {account} refused the workload identity's token ({said}): the identity AZURE_CLIENT_ID={} needs \
             a role that reads blobs (Storage Blob Data Reader) on the account or the container {container:?}",
            w.client_id
        ),
        (404, _, _) => {
            format!("the blob {blob:?} is not in the container {container:?} of the account {account} at {at} ({said})")
        }
        _ => format!("the service at {at} answered {said} to the download"),
    }
}
