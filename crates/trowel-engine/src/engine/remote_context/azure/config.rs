//! Where an Azure Blob Storage context is fetched from and with which credential, decided from
//! the URL and the environment before anything is sent. Pure: the environment is passed in.
//!
//! The endpoint is the URL's own (`https://ACCOUNT.blob.core.windows.net`) unless
//! `AZURE_STORAGE_CONNECTION_STRING` names another for that account: its `BlobEndpoint=` (an
//! emulator such as Azurite, Azure Stack, a proxy), or `UseDevelopmentStorage=true` (the
//! emulator's well-known account and address). That variable is the one every Azure SDK and
//! the `az` CLI read, so a pipeline that already talks to an emulator needs nothing new; the
//! context URL keeps naming the account, container and blob the way it does in the cloud.
//!
//! The credential, the first that applies:
//! 1. a SAS token in the URL's query (it was made for this blob or container: nothing else is
//!    added to it);
//! 2. `AZURE_STORAGE_ACCESS_KEY`, the account's key (kaniko's one way): Shared Key;
//! 3. the connection string's `AccountKey=`, then its `SharedAccessSignature=`;
//! 4. Microsoft Entra workload identity (AKS): `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`
//!    and `AZURE_TENANT_ID` all set;
//! 5. none: a public container.

use base64::Engine as _;

use super::super::source::percent_decoded;
pub(super) use crate::registry::cloud::azure::identity::WorkloadIdentity;

/// The emulator's account and key, published by Microsoft for the Storage Emulator and Azurite
/// (`UseDevelopmentStorage=true` means them): not a secret.
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEV_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

pub(super) const CONNECTION_STRING: &str = "AZURE_STORAGE_CONNECTION_STRING";
pub(super) const ACCESS_KEY: &str = "AZURE_STORAGE_ACCESS_KEY";

/// How a request is authorised.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Credential {
    /// A SAS token (the query without its `?`), from the URL or the connection string.
    Sas {
        token: String,
        from: &'static str,
    },
    /// The account key (decoded), from the variable `from`.
    SharedKey {
        key: Vec<u8>,
        from: &'static str,
    },
    /// Entra workload identity: a token is asked for with the federated token as the assertion.
    WorkloadIdentity(WorkloadIdentity),
    Anonymous,
}

impl std::fmt::Debug for Credential {
    /// Never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Sas { from, .. } => write!(f, "Sas(from {from})"),
            Credential::SharedKey { from, .. } => write!(f, "SharedKey(from {from})"),
            Credential::WorkloadIdentity(w) => write!(f, "WorkloadIdentity(client {})", w.client_id),
            Credential::Anonymous => f.write_str("Anonymous"),
        }
    }
}

/// Where and how to fetch.
#[derive(Debug)]
pub(super) struct Plan {
    /// `scheme://host[:port][/path]` without a trailing `/`: the container follows.
    pub endpoint: String,
    /// Where the endpoint came from, for messages (`the URL`, the variable's name).
    pub endpoint_from: &'static str,
    pub credential: Credential,
    /// Values to mask: keys as given, SAS tokens and their signatures.
    pub secrets: Vec<String>,
}

/// `AZURE_STORAGE_CONNECTION_STRING`'s fields that matter here.
#[derive(Debug, Default)]
struct ConnectionString {
    account: Option<String>,
    key: Option<String>,
    sas: Option<String>,
    blob_endpoint: Option<String>,
    protocol: Option<String>,
    suffix: Option<String>,
}

/// `Key=Value;Key=Value`, keys in any case (as the SDKs read them), values holding `=` (keys
/// end in `==`).
fn parse_connection_string(s: &str) -> Result<ConnectionString, String> {
    let mut c = ConnectionString::default();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            // The part may be a key: never quote it.
            return Err(format!("{CONNECTION_STRING} holds a part that is not Key=Value"));
        };
        let v = v.trim().to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "accountname" => c.account = Some(v),
            "accountkey" => c.key = Some(v),
            "sharedaccesssignature" => c.sas = Some(v.trim_start_matches('?').to_string()),
            "blobendpoint" => c.blob_endpoint = Some(v.trim_end_matches('/').to_string()),
            "defaultendpointsprotocol" => c.protocol = Some(v),
            "endpointsuffix" => c.suffix = Some(v),
            "usedevelopmentstorage" if v.eq_ignore_ascii_case("true") => {
                c.account.get_or_insert_with(|| DEV_ACCOUNT.to_string());
                c.key.get_or_insert_with(|| DEV_KEY.to_string());
                c.blob_endpoint.get_or_insert_with(|| DEV_ENDPOINT.to_string());
            }
            // Other services' endpoints, proxies: not the blob service's business.
            _ => {}
        }
    }
    Ok(c)
}

/// The SAS token of a URL's query, if it is one (it carries a signature, `sig=`).
fn sas_of(query: &str) -> Option<String> {
    let is_sas = query.split('&').any(|kv| kv.split_once('=').is_some_and(|(k, v)| k == "sig" && !v.is_empty()));
    is_sas.then(|| query.to_string())
}

/// The values of a SAS token that must be masked: the token, its signature as written and
/// decoded.
fn sas_secrets(token: &str) -> Vec<String> {
    let mut out = vec![token.to_string()];
    for (k, v) in token.split('&').filter_map(|kv| kv.split_once('=')) {
        if k == "sig" {
            out.push(v.to_string());
            out.push(percent_decoded(v));
        }
    }
    out
}

fn decode_key(key: &str, from: &'static str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD.decode(key.trim()).map_err(|_| {
        format!(
            "{from} is not an account key: a key is base64, as the portal and `az storage account keys list` show it"
        )
    })
}

/// Decides the endpoint and credential for the blob at `url_origin` (`https://HOST`) of
/// `account`, with `query` the URL's query (empty when none).
pub(super) fn plan(
    url_origin: &str,
    account: &str,
    query: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, String> {
    let nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let conn = match nonempty(CONNECTION_STRING) {
        Some(s) => Some(parse_connection_string(&s)?),
        None => None,
    };
    let mut secrets = Vec::new();
    let (mut endpoint, mut endpoint_from) = (url_origin.to_string(), "the URL");
    if let Some(c) = &conn {
        if let Some(k) = &c.key {
            secrets.push(k.clone());
        }
        if let Some(s) = &c.sas {
            secrets.extend(sas_secrets(s));
        }
        if let Some(a) = c.account.as_deref().filter(|a| *a != account) {
            return Err(format!(
                "{CONNECTION_STRING} is for the account {a:?}, the context URL names {account:?}: set the \
                 connection string of {account:?}, or unset it"
            ));
        }
        if let Some(e) = &c.blob_endpoint {
            if !(e.starts_with("https://") || e.starts_with("http://")) {
                return Err(format!("{CONNECTION_STRING}: BlobEndpoint={e} is not an http(s) URL"));
            }
            (endpoint, endpoint_from) = (e.clone(), CONNECTION_STRING);
        } else if c.protocol.is_some() || c.suffix.is_some() {
            let protocol = c.protocol.as_deref().unwrap_or("https");
            let suffix = c.suffix.as_deref().unwrap_or("core.windows.net");
            (endpoint, endpoint_from) = (format!("{protocol}://{account}.blob.{suffix}"), CONNECTION_STRING);
        }
    }
    let credential = if let Some(token) = sas_of(query) {
        secrets.extend(sas_secrets(&token));
        Credential::Sas { token, from: "the URL's SAS token" }
    } else if let Some(key) = nonempty(ACCESS_KEY) {
        secrets.push(key.trim().to_string());
        Credential::SharedKey { key: decode_key(&key, ACCESS_KEY)?, from: ACCESS_KEY }
    } else if let Some(key) = conn.as_ref().and_then(|c| c.key.clone()) {
        Credential::SharedKey { key: decode_key(&key, CONNECTION_STRING)?, from: CONNECTION_STRING }
    } else if let Some(token) = conn.as_ref().and_then(|c| c.sas.clone()) {
        Credential::Sas { token, from: CONNECTION_STRING }
    } else if let (Some(token_file), Some(client_id), Some(tenant_id)) =
        (nonempty("AZURE_FEDERATED_TOKEN_FILE"), nonempty("AZURE_CLIENT_ID"), nonempty("AZURE_TENANT_ID"))
    {
        let authority = nonempty("AZURE_AUTHORITY_HOST").unwrap_or_else(|| "https://login.microsoftonline.com/".into());
        Credential::WorkloadIdentity(WorkloadIdentity { client_id, tenant_id, token_file, authority })
    } else {
        Credential::Anonymous
    };
    // An empty value (`AccountKey=;`) is nothing to mask; the emulator's well-known key is masked like any.
    secrets.retain(|s| !s.is_empty());
    Ok(Plan { endpoint, endpoint_from, credential, secrets })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    const ORIGIN: &str = "https://acct.blob.core.windows.net";

    #[test]
    fn the_urls_sas_comes_first_then_kanikos_key_then_the_connection_string() {
        let key = "a2V5LWJ5dGVz"; // "key-bytes"
        let sas = "sv=2021-08-06&sr=b&sp=r&sig=abc%2Bdef%3D";
        let p = plan(ORIGIN, "acct", sas, &env_of(&[(ACCESS_KEY, key)])).unwrap();
        assert!(matches!(p.credential, Credential::Sas { ref token, .. } if token == sas));
        assert!(p.secrets.contains(&"abc%2Bdef%3D".to_string()) && p.secrets.contains(&"abc+def=".to_string()));
        // A query without a signature is not a SAS token.
        let p = plan(ORIGIN, "acct", "v=1", &env_of(&[(ACCESS_KEY, key)])).unwrap();
        assert_eq!(p.credential, Credential::SharedKey { key: b"key-bytes".to_vec(), from: ACCESS_KEY });
        assert_eq!((p.endpoint.as_str(), p.endpoint_from), (ORIGIN, "the URL"));
        assert_eq!(p.secrets, vec![key.to_string()]);
        let conn =
            format!("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};EndpointSuffix=core.windows.net");
        let p = plan(ORIGIN, "acct", "", &env_of(&[(CONNECTION_STRING, &conn)])).unwrap();
        assert_eq!(p.credential, Credential::SharedKey { key: b"key-bytes".to_vec(), from: CONNECTION_STRING });
        assert_eq!(p.endpoint, ORIGIN);
        let p = plan(
            ORIGIN,
            "acct",
            "",
            &env_of(&[(CONNECTION_STRING, "AccountName=acct;SharedAccessSignature=?sv=1&sig=zz")]),
        )
        .unwrap();
        assert!(
            matches!(p.credential, Credential::Sas { ref token, from: CONNECTION_STRING } if token == "sv=1&sig=zz")
        );
        assert!(matches!(plan(ORIGIN, "acct", "", &env_of(&[])).unwrap().credential, Credential::Anonymous));
    }

    #[test]
    fn an_emulator_or_private_endpoint_from_the_connection_string() {
        let p = plan(ORIGIN, "devstoreaccount1", "", &env_of(&[(CONNECTION_STRING, "UseDevelopmentStorage=true")]))
            .unwrap();
        assert_eq!((p.endpoint.as_str(), p.endpoint_from), (DEV_ENDPOINT, CONNECTION_STRING));
        assert!(matches!(p.credential, Credential::SharedKey { from: CONNECTION_STRING, .. }));
        let conn = "accountname=acct;blobendpoint=http://127.0.0.1:9/acct/;";
        let p = plan(ORIGIN, "acct", "", &env_of(&[(CONNECTION_STRING, conn)])).unwrap();
        assert_eq!(p.endpoint, "http://127.0.0.1:9/acct");
        let err = plan(ORIGIN, "other", "", &env_of(&[(CONNECTION_STRING, conn)])).unwrap_err();
        assert!(err.contains("is for the account \"acct\", the context URL names \"other\""), "{err}");
        let err = plan(ORIGIN, "acct", "", &env_of(&[(CONNECTION_STRING, "AccountKey")])).unwrap_err();
        assert!(err.contains("not Key=Value"), "{err}");
        let p = plan(
            ORIGIN,
            "acct",
            "",
            &env_of(&[(CONNECTION_STRING, "AccountName=acct;EndpointSuffix=core.chinacloudapi.cn")]),
        )
        .unwrap();
        assert_eq!(p.endpoint, "https://acct.blob.core.chinacloudapi.cn");
    }

    #[test]
    fn a_key_that_is_not_base64_names_its_variable_not_its_value() {
        let err = plan(ORIGIN, "acct", "", &env_of(&[(ACCESS_KEY, "not base64!")])).unwrap_err();
        assert!(err.starts_with("AZURE_STORAGE_ACCESS_KEY is not an account key") && !err.contains("not base64!"));
    }

    #[test]
    fn workload_identity_needs_all_three_variables() {
        let wi = [
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token"),
            ("AZURE_CLIENT_ID", "cid"),
            ("AZURE_TENANT_ID", "tid"),
        ];
        let p = plan(ORIGIN, "acct", "", &env_of(&wi)).unwrap();
        let Credential::WorkloadIdentity(w) = p.credential else { panic!() };
        assert_eq!(w.authority, "https://login.microsoftonline.com/");
        assert!(matches!(plan(ORIGIN, "acct", "", &env_of(&wi[..2])).unwrap().credential, Credential::Anonymous));
    }
}
