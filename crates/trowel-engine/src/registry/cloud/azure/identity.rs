//! Microsoft Entra ID tokens, as the Azure SDKs get them without a browser:
//!
//! - workload identity, as AKS gives it to a pod: the projected service-account token in
//!   `AZURE_FEDERATED_TOKEN_FILE` is exchanged at `AZURE_AUTHORITY_HOST/TENANT/oauth2/v2.0/token`
//!   (the OAuth 2.0 client-credentials grant with a JWT client assertion, what the Azure SDKs'
//!   `WorkloadIdentityCredential` sends);
//! - a service principal's secret (`AZURE_CLIENT_SECRET`): the same grant with `client_secret`
//!   (the SDKs' `ClientSecretCredential`).
//!
//! For a scope: Azure Storage for an Azure Blob Storage context (`engine/remote_context/azure`),
//! Azure Resource Manager for an Azure Container Registry login (`registry/cloud_auth.rs`).
//! The assertion, the secret and the token are secrets: returned for masking, never put in a
//! message.

use crate::registry::cloud::http::{Client, HttpError, Request};

/// Azure Storage's scope: what a blob context reads with.
pub(crate) const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// What AKS's workload identity webhook puts in a pod's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkloadIdentity {
    pub client_id: String,
    pub tenant_id: String,
    pub token_file: String,
    /// `AZURE_AUTHORITY_HOST`, `https://login.microsoftonline.com/` when unset.
    pub authority: String,
}

/// The token and the values to mask (the federated token, the access token).
pub(crate) struct Token {
    pub access_token: String,
    pub secrets: Vec<String>,
}

/// What went wrong, for a message that names the variable to check.
pub(crate) enum TokenError {
    /// The federated token file could not be read.
    File(String),
    Http(HttpError),
    /// Entra ID refused (its `error` and the start of its `error_description`).
    Refused(String),
}

/// The form the token endpoint is sent.
pub(crate) fn token_form(w: &WorkloadIdentity, assertion: &str, scope: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", w.client_id.clone()),
        ("scope", scope.into()),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()),
        ("client_assertion", assertion.to_string()),
    ]
}

/// The token endpoint of `w`'s tenant.
pub(crate) fn token_url(w: &WorkloadIdentity) -> String {
    tenant_token_url(&w.authority, &w.tenant_id)
}

/// The token endpoint of a tenant at an authority (`AZURE_AUTHORITY_HOST`).
pub(crate) fn tenant_token_url(authority: &str, tenant_id: &str) -> String {
    format!("{}/{tenant_id}/oauth2/v2.0/token", authority.trim_end_matches('/'))
}

/// Exchanges the federated token for an access token for `scope`.
pub(crate) fn access_token(client: &Client, w: &WorkloadIdentity, scope: &str) -> Result<Token, TokenError> {
    // Read at the time of use: the kubelet rotates the file.
    let assertion = std::fs::read_to_string(&w.token_file)
        .map_err(|e| TokenError::File(format!("read AZURE_FEDERATED_TOKEN_FILE {}: {e}", w.token_file)))?
        .trim()
        .to_string();
    let form = token_form(w, &assertion, scope);
    request_token(client, &token_url(w), &form, vec![assertion.clone()])
}

/// A service principal's secret exchanged for an access token for `scope`.
pub(crate) fn client_secret_token(
    client: &Client,
    authority: &str,
    tenant_id: &str,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> Result<Token, TokenError> {
    let form = vec![
        ("grant_type", "client_credentials".to_string()),
        ("client_id", client_id.to_string()),
        ("client_secret", secret.to_string()),
        ("scope", scope.to_string()),
    ];
    request_token(client, &tenant_token_url(authority, tenant_id), &form, vec![secret.to_string()])
}

/// One client-credentials request; `secrets` are what it was made with.
fn request_token(
    client: &Client,
    url: &str,
    form: &[(&'static str, String)],
    mut secrets: Vec<String>,
) -> Result<Token, TokenError> {
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = client.send(&|| Ok(Request::post_form(url, &fields))).map_err(TokenError::Http)?;
    let ok = resp.is_success();
    let status = resp.status;
    let body =
        resp.read_small(64 * 1024).map_err(|e| TokenError::Http(HttpError::Transport { reason: e.to_string() }))?;
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if !ok {
        let error = json["error"].as_str().unwrap_or("no error code");
        // Entra's description starts with its AADSTS code and says what is wrong; keep that
        // line, as plain text (it is the remote side's words).
        let description: String = json["error_description"]
            .as_str()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect();
        return Err(TokenError::Refused(format!("HTTP {status}, {error}: {description}")));
    }
    let Some(token) = json["access_token"].as_str().filter(|t| !t.is_empty()) else {
        return Err(TokenError::Refused("the answer holds no access_token".into()));
    };
    secrets.push(token.to_string());
    Ok(Token { access_token: token.to_string(), secrets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_request_is_a_client_assertion_for_storage() {
        let w = WorkloadIdentity {
            client_id: "cid".into(),
            tenant_id: "tid".into(),
            token_file: "/t".into(),
            authority: "https://login.microsoftonline.com/".into(),
        };
        assert_eq!(token_url(&w), "https://login.microsoftonline.com/tid/oauth2/v2.0/token");
        let form = token_form(&w, "jwt", STORAGE_SCOPE);
        assert!(form.contains(&("scope", "https://storage.azure.com/.default".to_string())));
        assert!(form.contains(&("client_assertion", "jwt".to_string())));
        assert!(form.contains(&("grant_type", "client_credentials".to_string())));
    }

    /// One HTTP exchange on 127.0.0.1: answers `status` with the JSON `body`, and returns the
    /// request as received (head and body).
    fn one_exchange(status: &'static str, body: &'static str) -> (String, std::thread::JoinHandle<String>) {
        use std::io::{Read as _, Write as _};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Until the head is in and as many body bytes as it announces.
            loop {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                let Some(i) = text.find("\r\n\r\n") else { continue };
                let len: usize = text
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .map_or(0, |v| v.parse().unwrap());
                if n == 0 || got.len() >= i + 4 + len {
                    break;
                }
            }
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(resp.as_bytes()).unwrap();
            String::from_utf8_lossy(&got).to_string()
        });
        (url, h)
    }

    fn identity_at(authority: &str, token_file: &std::path::Path) -> WorkloadIdentity {
        WorkloadIdentity {
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            tenant_id: "tenant-x".into(),
            token_file: token_file.display().to_string(),
            authority: format!("{authority}/"),
        }
    }

    #[test]
    fn the_federated_token_is_exchanged_for_an_access_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("azure-identity-token");
        std::fs::write(&file, "eyJhbGciOi.federated.jwt\n").unwrap();
        let (url, server) = one_exchange(
            "200 OK",
            "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"storage-token-123\"}",
        );
        let client = Client::new(&Default::default()).unwrap();
        let t = access_token(&client, &identity_at(&url, &file), STORAGE_SCOPE).unwrap_or_else(|_| panic!("no token"));
        assert_eq!(t.access_token, "storage-token-123");
        assert!(t.secrets.contains(&"eyJhbGciOi.federated.jwt".to_string()) && t.secrets.contains(&t.access_token));
        let req = server.join().unwrap();
        assert!(req.starts_with("POST /tenant-x/oauth2/v2.0/token HTTP/1.1"), "{req}");
        assert!(req.to_ascii_lowercase().contains("content-type: application/x-www-form-urlencoded"), "{req}");
        let body = req.split("\r\n\r\n").nth(1).unwrap();
        let mut fields: Vec<&str> = body.split('&').collect();
        fields.sort();
        assert_eq!(
            fields,
            vec![
                "client_assertion=eyJhbGciOi.federated.jwt",
                "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer",
                "client_id=11111111-2222-3333-4444-555555555555",
                "grant_type=client_credentials",
                "scope=https%3A%2F%2Fstorage.azure.com%2F.default",
            ]
        );
    }

    #[test]
    fn a_refusal_keeps_entras_code_and_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        std::fs::write(&file, "jwt").unwrap();
        let (url, _server) = one_exchange(
            "400 Bad Request",
            "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS700016: no such app.\\r\\nTrace ID: x\"}",
        );
        let client = Client::new(&Default::default()).unwrap();
        match access_token(&client, &identity_at(&url, &file), STORAGE_SCOPE) {
            Err(TokenError::Refused(said)) => {
                assert_eq!(said, "HTTP 400, invalid_client: AADSTS700016: no such app.")
            }
            _ => panic!("not a refusal"),
        }
        let gone = identity_at(&url, &dir.path().join("missing"));
        assert!(
            matches!(access_token(&client, &gone, STORAGE_SCOPE), Err(TokenError::File(m)) if m.contains("AZURE_FEDERATED_TOKEN_FILE"))
        );
    }
}
