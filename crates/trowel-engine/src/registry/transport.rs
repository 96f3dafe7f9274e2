//! Connections: one HTTP client per registry host and direction, with that host's TLS settings,
//! and the one-time probe that decides the scheme and learns the auth challenge.
//!
//! Per-host clients are needed because `--registry-certificate`, `--registry-client-cert` and
//! `--skip-tls-verify-registry` are per host, and reqwest fixes trust roots and the client
//! certificate per client.

use std::error::Error as _;

use reqwest::header::WWW_AUTHENTICATE;
use serde::Deserialize;

use super::client_cert;
use super::error::RegistryError;
use super::options::{Protocol, RegistryOptions};
use super::stall::{Stalled, Watch, next_chunk};
use super::token::{Challenge, parse_challenge};

/// Longest error body kept from a registry (they are small JSON envelopes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// How a host is reached, once decided.
pub(crate) struct Endpoint {
    /// `https://host:port` or `http://host:port`.
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    /// `--stall-timeout`: how long an attempt may move no byte.
    pub(crate) stall: std::time::Duration,
    /// What `/v2/` answered; `None` when it allowed anonymous access.
    pub(crate) challenge: std::sync::RwLock<Option<Challenge>>,
}

/// A failed probe: the message, and whether trying again could help.
pub(crate) struct ProbeError {
    pub(crate) message: String,
    pub(crate) retryable: bool,
    /// It failed for lack of progress (its message says so; the final one adds the attempts).
    pub(crate) stalled: bool,
}

/// Builds the client for a host: user agent, timeouts, the host's CA files, verification, and
/// the client certificate it gets (sent only when the server asks for one).
pub(crate) fn build_client(opts: &RegistryOptions, host: &str, verify: bool) -> Result<reqwest::Client, RegistryError> {
    // Fails only when a provider is already installed (by an earlier client): that one is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .user_agent(opts.user_agent.clone())
        // Connecting moves no byte of the transfer: the stall timeout bounds it too. Later
        // phases are watched per attempt (`stall.rs`): reqwest's `read_timeout` would bound a
        // whole upload, not its lack of progress.
        .connect_timeout(opts.stall_timeout)
        // Bytes of an upload the kernel holds and the registry does not take (stall.rs).
        .tcp_user_timeout(opts.stall_timeout)
        .tls_danger_accept_invalid_certs(!verify);
    for (h, path) in opts.certificates_for(host) {
        let pem = std::fs::read(&path).map_err(|e| RegistryError::Certificate {
            host: h.clone(),
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| RegistryError::Certificate {
            host: h.clone(),
            path: path.clone(),
            reason: format!("not a PEM certificate bundle: {}", chain(&e)),
        })?;
        if certs.is_empty() {
            return Err(RegistryError::Certificate { host: h, path, reason: "no certificate in file".into() });
        }
        b = b.tls_certs_merge(certs);
    }
    if let Some(cc) = client_cert::for_host(&opts.client_certificates, host) {
        b = b.identity(cc.load()?);
    }
    b.build().map_err(|e| RegistryError::Options(format!("HTTP client for {host}: {}", chain(&e))))
}

/// Decides how to reach `host` and what auth it wants by calling `GET /v2/`.
pub(crate) async fn probe(opts: &RegistryOptions, host: &str, protocol: Protocol) -> Result<Endpoint, ProbeError> {
    let setup = |e: RegistryError| ProbeError { message: e.to_string(), retryable: false, stalled: false };
    match protocol {
        Protocol::Http => {
            let client = build_client(opts, host, true).map_err(setup)?;
            ping(client, format!("http://{host}"), opts.stall_timeout).await
        }
        Protocol::Https { verify } => {
            let client = build_client(opts, host, verify).map_err(setup)?;
            ping(client, format!("https://{host}"), opts.stall_timeout).await.map_err(|mut e| {
                e.message = with_hint(opts, e.message, host);
                e
            })
        }
        Protocol::PrivateProbe { verify } => {
            // kaniko's rule for private addresses: HTTPS first, plain HTTP if that fails. A
            // server that answers neither is reported with the HTTPS failure, the one to fix.
            let client = build_client(opts, host, verify).map_err(setup)?;
            match ping(client, format!("https://{host}"), opts.stall_timeout).await {
                Ok(ep) => Ok(ep),
                // A server that speaks TLS with a certificate that fails verification is not
                // a plain-HTTP registry: that failure is reported, never a reason to drop TLS
                // (it is also what a machine in the middle looks like).
                Err(tls_err) if tls_err.message.to_ascii_lowercase().contains("certificate") => {
                    Err(ProbeError { message: with_hint(opts, tls_err.message, host), ..tls_err })
                }
                Err(tls_err) => {
                    let plain = build_client(opts, host, true).map_err(setup)?;
                    match ping(plain, format!("http://{host}"), opts.stall_timeout).await {
                        Ok(ep) => Ok(ep),
                        Err(_) => Err(ProbeError { message: with_hint(opts, tls_err.message, host), ..tls_err }),
                    }
                }
            }
        }
        Protocol::LoopbackProbe => {
            // Docker's rule for loopback registries: TLS if the server speaks it (certificate
            // not checked), plain HTTP otherwise.
            let client = build_client(opts, host, false).map_err(setup)?;
            match ping(client.clone(), format!("https://{host}"), opts.stall_timeout).await {
                Ok(ep) => Ok(ep),
                Err(tls_err) => match ping(client, format!("http://{host}"), opts.stall_timeout).await {
                    Ok(ep) => Ok(ep),
                    Err(_) => Err(ProbeError {
                        message: client_cert_hint(opts, &tls_err.message, host).unwrap_or(tls_err.message),
                        retryable: tls_err.retryable,
                        stalled: tls_err.stalled,
                    }),
                },
            }
        }
    }
}

async fn ping(client: reqwest::Client, base: String, stall: std::time::Duration) -> Result<Endpoint, ProbeError> {
    let mut sent = Watch::new(stall).guard(client.get(format!("{base}/v2/")).send()).await;
    // hyper's "connection was not ready": the new connection closed before the request went out
    // (seen under load with a client certificate). Nothing was sent, so a second try is safe
    // whatever the retry flags say; it is a new connection.
    if matches!(&sent, Ok(Err(e)) if describe(e).contains("connection was not ready")) {
        sent = Watch::new(stall).guard(client.get(format!("{base}/v2/")).send()).await;
    }
    let resp = match sent {
        Ok(Err(e)) if let Some(s) = super::stall::of_error(&e, stall) => {
            return Err(ProbeError { message: format!("cannot reach {base}: {s}"), retryable: true, stalled: true });
        }
        Ok(r) => r.map_err(|e| ProbeError {
            message: format!("cannot reach {base}: {}", describe(&e)),
            retryable: is_retryable(&e),
            stalled: false,
        })?,
        Err(s) => {
            return Err(ProbeError { message: format!("cannot reach {base}: {s}"), retryable: true, stalled: true });
        }
    };
    let status = resp.status().as_u16();
    let challenge = if status == 401 {
        resp.headers().get(WWW_AUTHENTICATE).and_then(|h| h.to_str().ok()).and_then(parse_challenge)
    } else {
        None
    };
    let body = read_limited(resp, MAX_ERROR_BODY, stall).await.unwrap_or_default();
    if status == 400 {
        // Not a registry answer: most often a TLS server spoken to in plain HTTP.
        let hint = if base.starts_with("http://") { " (does it serve HTTPS? then drop --insecure for it)" } else { "" };
        return Err(ProbeError {
            message: format!("{base}/v2/: {}{hint}", error_message(status, &body)),
            retryable: false,
            stalled: false,
        });
    }
    if status >= 500 {
        return Err(ProbeError {
            message: format!("{base}/v2/: {}", error_message(status, &body)),
            retryable: super::retry::retryable_status(status),
            stalled: false,
        });
    }
    Ok(Endpoint { base, client, stall, challenge: std::sync::RwLock::new(challenge) })
}

fn with_hint(opts: &RegistryOptions, message: String, host: &str) -> String {
    if let Some(m) = client_cert_hint(opts, &message, host) {
        return m;
    }
    let lower = message.to_ascii_lowercase();
    if lower.contains("certificate") {
        format!(
            "{message} (TLS certificate of {host} not trusted: add its CA with --registry-certificate {host}=<ca.pem>, or use --skip-tls-verify-registry {host})"
        )
    } else if lower.contains("corrupt message") || lower.contains("invalidcontenttype") {
        format!("{message} ({host} does not speak TLS: use --insecure-registry {host} for plain HTTP)")
    } else {
        message
    }
}

/// What a TLS alert about the client's certificate means here. A registry with `tls.clientcas`
/// that gets no certificate ends the handshake with `certificate_required` (TLS 1.3) or
/// `bad_certificate` (TLS 1.2): without `--registry-client-cert` for the host, that is the flag
/// to add; with one, the registry refused that certificate (`bad_certificate`,
/// `unknown_ca`, `certificate_expired`…).
fn client_cert_hint(opts: &RegistryOptions, message: &str, host: &str) -> Option<String> {
    const ALERTS: &[&str] = &[
        "certificaterequired",
        "badcertificate",
        "unknownca",
        "certificateunknown",
        "certificateexpired",
        "certificaterevoked",
        "unsupportedcertificate",
        "accessdenied",
    ];
    let lower = message.to_ascii_lowercase();
    let alert = lower.contains("alert") && ALERTS.iter().any(|a| lower.contains(a));
    if !alert {
        return None;
    }
    Some(match client_cert::for_host(&opts.client_certificates, host) {
        None => format!(
            "{message} ({host} requires a client certificate (mutual TLS): give one with --registry-client-cert {host}=<cert.pem>,<key.pem>)"
        ),
        Some(cc) => format!(
            "{message} ({host} refused the client certificate {}: is it signed by a CA the registry trusts (its tls.clientcas), valid now, and made for client authentication?)",
            cc.cert.display()
        ),
    })
}

/// A reqwest error as text without the URL: the chain of causes, e.g.
/// `client error (Connect): invalid peer certificate: UnknownIssuer`.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    if e.is_timeout() {
        parts.push("timed out".into());
    }
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    if parts.is_empty() {
        parts.push(e.without_url_ref());
    }
    parts.join(": ")
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut s = self.to_string();
        if let Some(u) = self.url() {
            s = s.replace(&format!(" for url ({u})"), "");
        }
        s
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// Connection problems heal; a certificate the client rejects, or a server that does not
/// speak TLS, does not.
pub(crate) fn is_retryable(e: &reqwest::Error) -> bool {
    if e.is_builder() || e.is_redirect() {
        return false;
    }
    let text = describe(e).to_ascii_lowercase();
    !(text.contains("certificate")
        || text.contains("received fatal alert")
        || text.contains("corrupt message")
        || text.contains("invalidcontenttype"))
}

pub(crate) enum LimitedRead {
    TooLarge,
    Failed(reqwest::Error),
    /// No byte of the body came for the stall timeout.
    Stalled(Stalled),
}

/// Reads a whole (small) response body, refusing one larger than `max`: registry content is
/// hostile input and must not be able to exhaust memory. A body that stops arriving for `stall`
/// fails.
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    max: usize,
    stall: std::time::Duration,
) -> Result<Vec<u8>, LimitedRead> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(LimitedRead::TooLarge);
    }
    let mut out = Vec::new();
    while let Some(chunk) = next_chunk(&mut resp, stall).await.map_err(LimitedRead::Stalled)?.transpose() {
        let chunk = chunk.map_err(LimitedRead::Failed)?;
        if out.len() + chunk.len() > max {
            return Err(LimitedRead::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct Envelope {
    errors: Vec<EnvelopeError>,
}

#[derive(Deserialize)]
struct EnvelopeError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The codes of a distribution error body (`MANIFEST_BLOB_UNKNOWN`, `DENIED`…), in its order;
/// none when the body is not one. For decisions: the messages are the registry's prose.
pub(crate) fn error_codes(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<Envelope>(body)
        .map(|env| env.errors.into_iter().map(|e| e.code).collect())
        .unwrap_or_default()
}

/// The registry's own explanation of an error status, e.g. `manifest unknown (404)`,
/// `unauthorized: authentication required`, `denied: requested access to the resource is denied`.
pub(crate) fn error_message(status: u16, body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Envelope>(body) {
        Ok(env) if !env.errors.is_empty() => {
            env.errors
                .iter()
                .map(|e| {
                    let words = if e.message.is_empty() {
                        e.code.to_ascii_lowercase().replace('_', " ")
                    } else {
                        e.message.clone()
                    };
                    // A hostile registry's words: no escapes for the terminal, no forged log lines.
                    super::cloud::one_line(&words)
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
        _ => {
            // Not the distribution error format (a proxy page, a token server): keep a short,
            // printable excerpt.
            let s = super::cloud::one_line(&String::from_utf8_lossy(body));
            if s.is_empty() || s.starts_with('<') {
                // HEAD answers have no body; say what the registry would have said.
                match status {
                    401 => "authentication required".to_string(),
                    403 => "requested access to the resource is denied".to_string(),
                    _ => reqwest::StatusCode::from_u16(status)
                        .ok()
                        .and_then(|c| c.canonical_reason())
                        .unwrap_or("error")
                        .to_ascii_lowercase(),
                }
            } else {
                s
            }
        }
    };
    match status {
        401 => format!("unauthorized: {text}"),
        403 => format!("denied: {text}"),
        _ => format!("{text} ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"1"}}]}"#;
        assert_eq!(error_message(404, body), "manifest unknown (404)");
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        assert_eq!(error_message(401, body), "unauthorized: authentication required");
        assert_eq!(error_message(403, br#"{"errors":[{"code":"DENIED"}]}"#), "denied: denied");
        assert_eq!(error_message(502, b"<html>bad gateway</html>"), "bad gateway (502)");
        assert_eq!(error_message(500, b"boom\n"), "boom (500)");
        assert_eq!(error_message(401, b""), "unauthorized: authentication required");
        assert_eq!(error_message(404, b""), "not found (404)");
        // Hostile words: a terminal's escapes and a forged log line become spaces, letters stay.
        let body = "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"no\\u001b[2J\\u001b]0;t\\u0007\\nINFO[0000] Pushed\\r \\u202eé\"}]}";
        assert_eq!(error_message(403, body.as_bytes()), "denied: no [2J ]0;t INFO[0000] Pushed é");
        let long = format!("{{\"errors\":[{{\"code\":\"X\",\"message\":\"{}\"}}]}}", "a".repeat(5000));
        assert_eq!(error_message(500, long.as_bytes()), format!("{} (500)", "a".repeat(200)));
    }

    #[test]
    fn error_codes_come_from_the_body() {
        // What distribution 2.8 answered a manifest PUT that read an empty blob link (CI).
        let body = br#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"},{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:ab"}]}"#;
        assert_eq!(error_codes(body), ["DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN"]);
        assert_eq!(
            error_message(400, body),
            "provided digest did not match uploaded content; blob unknown to registry (400)"
        );
        assert!(error_codes(b"<html>bad gateway</html>").is_empty());
        assert!(error_codes(b"").is_empty());
        assert_eq!(error_codes(br#"{"errors":[{"message":"no code"}]}"#), [""]);
    }

    #[test]
    fn client_certificate_alerts_say_what_to_do() {
        let none = RegistryOptions::default();
        let alert = "cannot reach https://reg.example:5000: received fatal alert: CertificateRequired";
        let m = with_hint(&none, alert.into(), "reg.example:5000");
        assert!(
            m.ends_with("(reg.example:5000 requires a client certificate (mutual TLS): give one with --registry-client-cert reg.example:5000=<cert.pem>,<key.pem>)"),
            "{m}"
        );
        let given = RegistryOptions {
            client_certificates: vec![client_cert::ClientCertificate::parse("reg.example=/c.pem,/k.pem").unwrap()],
            ..Default::default()
        };
        let m = with_hint(&given, "received fatal alert: UnknownCA".into(), "reg.example:5000");
        assert!(m.contains("refused the client certificate /c.pem"), "{m}");
        // A server certificate problem keeps its own hint.
        let m = with_hint(&given, "invalid peer certificate: UnknownIssuer".into(), "reg.example:5000");
        assert!(m.contains("--registry-certificate"), "{m}");
    }
}
