//! Registry authentication challenges and the token-server exchange.
//!
//! A registry answers `401` with `WWW-Authenticate: Basic …` (send the credentials on every
//! request) or `Bearer realm=…,service=…` (get a token from the realm for the scopes needed).
//! Tokens are fetched with `GET realm?service=…&scope=…` — with HTTP Basic credentials when
//! there are any — or, for an identity token, with the OAuth2 `refresh_token` grant (`POST`),
//! which oci-client does not implement. Several scopes can go in one request, which is what a
//! cross-repository mount needs (`pull,push` on the target and `pull` on the source).

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use super::auth::Credential;
use super::secret::Secret;

/// Tokens without `expires_in` live 60 s (distribution spec); refresh a little early.
const DEFAULT_EXPIRY: Duration = Duration::from_secs(60);
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// A token response larger than this is not a token response.
const MAX_TOKEN_RESPONSE: usize = 1 << 20;
/// The OAuth2 client id sent with refresh-token grants (registries require one, any value).
const CLIENT_ID: &str = "trowel";

/// How a registry wants to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String> },
}

/// Parses a `WWW-Authenticate` header; the first Bearer or Basic challenge wins.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    Some(Challenge::Bearer { realm: get("realm")?, service: get("service") })
}

/// `k=v, k="quoted \" value"` → pairs.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            continue;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.push((key, value));
    }
    out
}

/// A bearer token and when to stop using it.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) value: Secret,
    pub(crate) refresh_at: Instant,
}

impl Token {
    pub(crate) fn fresh(&self) -> bool {
        Instant::now() < self.refresh_at
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Why a token request failed; the caller adds the operation and reference.
#[derive(Debug)]
pub(crate) enum TokenError {
    /// The token server refused (status and its message).
    Refused { status: u16, message: String },
    /// The request did not complete; `retryable` for transient conditions.
    Transport { message: String, retryable: bool },
    /// The answer was not a token.
    Malformed(String),
}

/// Asks the token server at `realm` for a token covering `scopes`. An answer is small: the
/// request as a whole fails when no byte has moved for `stall`.
pub(crate) async fn fetch_token(
    client: &reqwest::Client,
    stall: Duration,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    credential: Option<&Credential>,
) -> Result<Token, TokenError> {
    let mut url = reqwest::Url::parse(realm).map_err(|e| TokenError::Malformed(format!("bad realm {realm:?}: {e}")))?;
    let request = match credential {
        Some(Credential::IdentityToken(refresh)) => {
            let mut form = vec![
                ("grant_type", "refresh_token".to_string()),
                ("refresh_token", refresh.expose().to_string()),
                ("client_id", CLIENT_ID.to_string()),
                ("scope", scopes.join(" ")),
            ];
            if let Some(s) = service {
                form.push(("service", s.to_string()));
            }
            client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form_encode(&form))
        }
        _ => {
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in scopes {
                    q.append_pair("scope", s);
                }
            }
            let rb = client.get(url);
            match credential {
                Some(Credential::Basic { username, password }) => {
                    rb.header(reqwest::header::AUTHORIZATION, basic_header(username, password))
                }
                _ => rb,
            }
        }
    };
    let stalled = |s: super::stall::Stalled| TokenError::Transport { message: s.to_string(), retryable: true };
    let resp = super::stall::Watch::new(stall).guard(request.send()).await.map_err(stalled)?.map_err(|e| {
        TokenError::Transport { message: super::transport::describe(&e), retryable: super::transport::is_retryable(&e) }
    })?;
    let status = resp.status().as_u16();
    let body = super::transport::read_limited(resp, MAX_TOKEN_RESPONSE, stall).await.map_err(|e| match e {
        super::transport::LimitedRead::TooLarge => TokenError::Malformed("token response too large".into()),
        super::transport::LimitedRead::Stalled(s) => stalled(s),
        super::transport::LimitedRead::Failed(e) => TokenError::Transport {
            message: super::transport::describe(&e),
            retryable: super::transport::is_retryable(&e),
        },
    })?;
    if !(200..300).contains(&status) {
        return Err(TokenError::Refused { status, message: super::transport::error_message(status, &body) });
    }
    let parsed: TokenResponse =
        serde_json::from_slice(&body).map_err(|e| TokenError::Malformed(format!("token response is not JSON: {e}")))?;
    let value = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| TokenError::Malformed("token response has no token".into()))?;
    let lifetime = parsed.expires_in.map(Duration::from_secs).unwrap_or(DEFAULT_EXPIRY);
    let refresh_at = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN).max(Duration::from_secs(1));
    Ok(Token { value: Secret::new(value), refresh_at })
}

/// `Authorization: Basic …` for a username and password.
pub(crate) fn basic_header(username: &str, password: &Secret) -> reqwest::header::HeaderValue {
    let raw = format!("{username}:{}", password.expose());
    let mut v = reqwest::header::HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ))
    .expect("base64 is a valid header value");
    v.set_sensitive(true);
    v
}

/// `Authorization: Bearer …`; `None` if the token has bytes a header cannot carry.
pub(crate) fn bearer_header(token: &Secret) -> Option<reqwest::header::HeaderValue> {
    let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose())).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// `application/x-www-form-urlencoded` (reqwest's `form` feature is not enabled).
fn form_encode(pairs: &[(&str, String)]) -> String {
    fn enc(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(k, &mut out);
        out.push('=');
        enc(v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(parse_challenge(r#"Basic realm="trowel-test""#), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer service = "a\"b" , realm=https://x/t"#),
            Some(Challenge::Bearer { realm: "https://x/t".into(), service: Some("a\"b".into()) })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn form_encoding() {
        let f = form_encode(&[("scope", "repository:a/b:pull,push repository:c:pull".into()), ("x", "a&b=c".into())]);
        assert_eq!(f, "scope=repository%3Aa%2Fb%3Apull%2Cpush+repository%3Ac%3Apull&x=a%26b%3Dc");
    }

    #[test]
    fn headers_are_sensitive() {
        let h = basic_header("u", &Secret::new("p"));
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().unwrap(), "Basic dTpw");
        assert!(bearer_header(&Secret::new("t")).unwrap().is_sensitive());
    }
}
