//! `trowel login`'s check: are these credentials good for this registry? Asked before they are
//! saved, as `docker login` asks, so a typo fails now and not at the end of the next build.
//!
//! What is asked is what `docker login` asks (`registry/auth.go` of docker's CLI and daemon):
//! `GET /v2/`; a registry that wants Basic auth gets the username and password on that request,
//! one with a token server is asked for a token with no scope (its answer proves the credentials
//! without touching a repository). A registry that lets everyone in has nothing to check.

use super::client::Registry;
use super::error::{Op, RegistryError};
use super::options::{Direction, normalise_host};
use super::retry::{Backoff, retryable_status};
use super::secret::Secret;
use super::token::{Challenge, TokenError, basic_header, bearer_header, fetch_token};
use super::transport::{self, error_codes, error_message, read_limited};
use crate::registry::auth::Credential;

/// What a successful check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginCheck {
    /// The registry accepted the credentials.
    Accepted,
    /// The registry asks for no credentials at all (`/v2/` answered without a challenge); they
    /// could not be checked.
    NotRequired,
}

impl Registry {
    /// Checks `username`/`password` against `host`'s registry (reached per the push-side
    /// options: `--insecure-registry`, certificates…). A refusal is [`RegistryError::Auth`]
    /// with the registry's own message; the password appears in no error.
    pub async fn check_login(&self, host: &str, username: &str, password: &str) -> Result<LoginCheck, RegistryError> {
        let host = normalise_host(host);
        let opts = &self.session.opts;
        let failed = |detail: String| RegistryError::Auth { op: Op::Login, reference: host.clone(), detail };
        let transport_err =
            |detail: String| RegistryError::Transport { op: Op::Login, reference: host.clone(), detail };
        let mut backoff = Backoff::new(opts.retries);
        let ep = loop {
            match transport::probe(opts, &host, opts.protocol(&host, Direction::Push)).await {
                Ok(ep) => break ep,
                Err(e) if e.retryable && backoff.wait(None).await => continue,
                Err(e) => return Err(transport_err(e.message)),
            }
        };
        let challenge = ep.challenge.read().expect("challenge").clone();
        let password = Secret::new(password);
        let header = match challenge {
            None => return Ok(LoginCheck::NotRequired),
            Some(Challenge::Basic) => basic_header(username, &password),
            Some(Challenge::Bearer { realm, service }) => {
                let cred = Credential::Basic { username: username.to_string(), password };
                let token = fetch_token(&ep.client, ep.stall, &realm, service.as_deref(), &[], Some(&cred))
                    .await
                    .map_err(|e| match e {
                        TokenError::Refused { message, .. } => failed(format!("the token server refused: {message}")),
                        TokenError::Transport { message, .. } => transport_err(format!("token server: {message}")),
                        TokenError::Malformed(m) => failed(format!("token server: {m}")),
                    })?;
                bearer_header(&token.value).ok_or_else(|| failed("the token server sent an unusable token".into()))?
            }
        };
        let mut backoff = Backoff::new(opts.retries);
        loop {
            let send = ep.client.get(format!("{}/v2/", ep.base)).header(reqwest::header::AUTHORIZATION, header.clone());
            let resp = match super::stall::Watch::new(ep.stall).guard(send.send()).await {
                Ok(r) => r,
                Err(_) if backoff.wait(None).await => continue,
                Err(s) => return Err(transport_err(format!("{s} after {} attempts", backoff.attempts()))),
            };
            let resp = match resp {
                Ok(r) => r,
                Err(e) if transport::is_retryable(&e) && backoff.wait(None).await => continue,
                Err(e) => return Err(transport_err(transport::describe(&e))),
            };
            let status = resp.status().as_u16();
            if status < 300 {
                return Ok(LoginCheck::Accepted);
            }
            if retryable_status(status) && backoff.wait(None).await {
                continue;
            }
            let body = read_limited(resp, 64 * 1024, ep.stall).await.unwrap_or_default();
            let msg = error_message(status, &body);
            let codes = error_codes(&body);
            return Err(if status == 401 || status == 403 {
                failed(format!("the registry refused the username and password for {username}: {msg}"))
            } else {
                RegistryError::Registry { op: Op::Login, reference: host.clone(), status, detail: msg, codes }
            });
        }
    }
}
