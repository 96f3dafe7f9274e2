//! The request core shared by pull and push: endpoints per host, authorization, retries, and
//! turning error responses into [`RegistryError`]s that name the operation and reference.
//!
//! This is written on reqwest rather than on oci-client because oci-client cannot express what
//! trowel needs here: it keeps one credential per registry (not per repository scope), swallows
//! token-server failures and then retries anonymously, exposes neither status codes nor
//! `Retry-After` for the retry policy, has no OAuth2 refresh-token grant for identity tokens,
//! requests only single-repository scopes (so cross-repository mounts fail on token
//! registries) and treats a `202` answer to a mount as an error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};

use super::auth::{Credential, Keychain};
use super::error::{Op, RegistryError};
use super::options::{Direction, Protocol, RegistryOptions, normalise_host};
use super::reference::Reference;
use super::retry::{Backoff, retry_after, retryable_status};
use super::stall::{Stalled, Watch};
use super::token::{Challenge, Token, TokenError, basic_header, bearer_header, fetch_token, parse_challenge};
use super::transport::{self, Endpoint, read_limited};

const MAX_ERROR_BODY: usize = 64 * 1024;

/// Who a request is for: the operation and reference errors name, which side of the flags
/// applies, and the token scopes it needs.
pub(crate) struct Ctx<'a> {
    pub(crate) op: Op,
    pub(crate) reference: &'a Reference,
    pub(crate) dir: Direction,
    pub(crate) scopes: Vec<String>,
}

impl<'a> Ctx<'a> {
    /// A read of `reference`'s repository.
    pub(crate) fn pull(op: Op, reference: &'a Reference, dir: Direction) -> Ctx<'a> {
        Ctx { op, reference, dir, scopes: vec![format!("repository:{}:pull", reference.repository)] }
    }

    /// A write to `reference`'s repository.
    pub(crate) fn push(op: Op, reference: &'a Reference) -> Ctx<'a> {
        Ctx {
            op,
            reference,
            dir: Direction::Push,
            scopes: vec![format!("repository:{}:pull,push", reference.repository)],
        }
    }

    pub(crate) fn error(&self, detail: impl Into<String>) -> RegistryError {
        RegistryError::Protocol { op: self.op, reference: self.reference.to_string(), detail: detail.into() }
    }

    pub(crate) fn transport(&self, detail: impl Into<String>) -> RegistryError {
        RegistryError::Transport { op: self.op, reference: self.reference.to_string(), detail: detail.into() }
    }
}

/// A failed attempt, with what the retry policy needs to know about it.
pub(crate) struct Failure {
    pub(crate) err: RegistryError,
    pub(crate) retryable: bool,
    pub(crate) retry_after: Option<Duration>,
    /// The attempt moved no byte for the stall timeout; its message says so.
    pub(crate) stalled: Option<Stalled>,
}

impl Failure {
    pub(crate) fn fatal(err: RegistryError) -> Failure {
        Failure { err, retryable: false, retry_after: None, stalled: None }
    }
    pub(crate) fn transient(err: RegistryError) -> Failure {
        Failure { err, retryable: true, retry_after: None, stalled: None }
    }
    /// A connection failure, retried when it may heal.
    pub(crate) fn transport(err: RegistryError, retryable: bool) -> Failure {
        Failure { err, retryable, retry_after: None, stalled: None }
    }
    /// An attempt that stalled: retried. `err` names what stalled and says for how long.
    pub(crate) fn stalled(err: RegistryError, s: Stalled) -> Failure {
        Failure { err, retryable: true, retry_after: None, stalled: Some(s) }
    }

    /// The error of the last attempt, once no more are made: a stall says after how many
    /// attempts (each waited the whole stall timeout, which is what the user waited for).
    pub(crate) fn finish(self, backoff: &Backoff) -> RegistryError {
        if self.stalled.is_none() {
            return self.err;
        }
        let after = backoff.after();
        match self.err {
            RegistryError::Transport { op, reference, detail } => {
                RegistryError::Transport { op, reference, detail: format!("{detail}{after}") }
            }
            other => other,
        }
    }
}

impl From<RegistryError> for Failure {
    fn from(err: RegistryError) -> Failure {
        Failure::fatal(err)
    }
}

/// Builds one attempt's request from the endpoint (called again for every attempt, so bodies
/// are fresh).
pub(crate) type Build<'b> = dyn Fn(&Endpoint) -> Result<reqwest::RequestBuilder, RegistryError> + Send + Sync + 'b;

type EndpointCell = Arc<tokio::sync::OnceCell<Arc<Endpoint>>>;

pub(crate) struct Session {
    pub(crate) opts: RegistryOptions,
    pub(crate) keychain: Keychain,
    /// Keyed by host and protocol, not direction: an endpoint is its host, its scheme and its
    /// client, all fixed by the protocol the direction's flags give (`RegistryOptions::protocol`),
    /// so a build pulling from and pushing to one registry with the same flags probes it once.
    endpoints: Mutex<HashMap<(String, Protocol), EndpointCell>>,
    tokens: Mutex<HashMap<(String, String), Token>>,
    /// Who is told of retries (set once, by the engine).
    pub(crate) notice: std::sync::OnceLock<super::retry::RetryNotice>,
    /// Upload sessions opened ahead of the uploads that take them, by repository (see
    /// `Registry::check_push_access`).
    pub(crate) spare_uploads: Mutex<HashMap<String, Vec<(super::reference::Reference, super::spare_uploads::Spare)>>>,
}

impl Session {
    pub(crate) fn new(opts: RegistryOptions) -> Result<Session, RegistryError> {
        let keychain = Keychain::load(opts.docker_config.as_deref())?;
        Ok(Session {
            opts,
            keychain,
            endpoints: Mutex::default(),
            tokens: Mutex::default(),
            notice: std::sync::OnceLock::new(),
            spare_uploads: Mutex::default(),
        })
    }

    /// The retry schedule of one operation in direction `dir` (`--image-download-retry` for
    /// what is read, `--push-retry` for what is written), reporting its retries.
    pub(crate) fn backoff(&self, dir: Direction) -> Backoff {
        Backoff::new(self.opts.retries_for(dir)).reporting(self.notice.get().cloned())
    }

    /// The endpoint for the context's registry and direction: probed on first use (with
    /// retries), then cached. A failed probe is not cached, so a later call probes again.
    pub(crate) async fn endpoint(&self, ctx: &Ctx<'_>) -> Result<Arc<Endpoint>, RegistryError> {
        let host = ctx.reference.registry.clone();
        let protocol = self.opts.protocol(&host, ctx.dir);
        let cell = self.endpoints.lock().expect("endpoint cache").entry((host.clone(), protocol)).or_default().clone();
        cell.get_or_try_init(|| async {
            let mut backoff = self.backoff(ctx.dir);
            loop {
                match transport::probe(&self.opts, &host, protocol).await {
                    Ok(ep) => return Ok(Arc::new(ep)),
                    Err(e) if e.retryable && backoff.retry(None, &ctx.transport(&e.message)).await => continue,
                    Err(e) if e.stalled => return Err(ctx.transport(format!("{}{}", e.message, backoff.after()))),
                    Err(e) => return Err(ctx.transport(e.message)),
                }
            }
        })
        .await
        .cloned()
    }

    /// Sends a request, retrying transient failures per the options; see [`Session::send_once`].
    pub(crate) async fn send(
        &self,
        ctx: &Ctx<'_>,
        accept_404: bool,
        build: &Build<'_>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut backoff = self.backoff(ctx.dir);
        loop {
            match self.send_once(ctx, accept_404, build).await {
                Ok(r) => return Ok(r),
                Err(f) if f.retryable && backoff.retry(f.retry_after, &f.err).await => continue,
                Err(f) => return Err(f.finish(&backoff)),
            }
        }
    }

    /// [`Session::send_once`] with a fresh progress clock: only the answer's head counts as
    /// progress (the request has no body, or a small one).
    pub(crate) async fn send_once(
        &self,
        ctx: &Ctx<'_>,
        accept_404: bool,
        build: &Build<'_>,
    ) -> Result<reqwest::Response, Failure> {
        let watch = Watch::new(self.opts.stall_timeout);
        self.send_watched(ctx, accept_404, build, &watch).await
    }

    /// Sends one request with authorization. Answers below 400 (and 404 when `accept_404`) are
    /// returned; anything else becomes an error carrying the registry's message. A 401 is
    /// answered once by re-authenticating (expired token, or a repository that wants
    /// credentials although `/v2/` did not) before it counts as a failure.
    ///
    /// The attempt fails as stalled when `watch` (touched by a request body built with
    /// [`Watch::body`] as the network takes it) sees no progress for the stall timeout before
    /// the answer's head.
    pub(crate) async fn send_watched(
        &self,
        ctx: &Ctx<'_>,
        accept_404: bool,
        build: &Build<'_>,
        watch: &Watch,
    ) -> Result<reqwest::Response, Failure> {
        // `endpoint` has already retried what was worth retrying.
        let ep = self.endpoint(ctx).await.map_err(Failure::fatal)?;
        let mut reauthenticated = false;
        loop {
            let auth = self.authorization(&ep, ctx).await?;
            let mut req =
                build(&ep)?.build().map_err(|e| ctx.error(format!("bad request: {}", transport::describe(&e))))?;
            // Credentials go only to the registry itself, never to a host a Location header
            // or a blob URL points at (CVE-2020-15157).
            if let Some(a) = auth
                && same_origin(req.url(), &ep.base)
            {
                req.headers_mut().insert(AUTHORIZATION, a);
            }
            // What stalled, for the message: the method and path (never the query: a
            // redirect's presigned URL carries credentials there).
            let what = format!("{} {}", req.method(), req.url().path());
            let resp = match watch.guard(ep.client.execute(req)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) if let Some(s) = super::stall::of_error(&e, ep.stall) => {
                    return Err(Failure::stalled(ctx.transport(format!("{what}: {s}")), s));
                }
                Ok(Err(e)) => {
                    return Err(Failure::transport(
                        ctx.transport(transport::describe(&e)),
                        transport::is_retryable(&e),
                    ));
                }
                Err(s) => return Err(Failure::stalled(ctx.transport(format!("{what}: {s}")), s)),
            };
            let status = resp.status().as_u16();
            if status < 400 || (status == 404 && accept_404) {
                return Ok(resp);
            }
            if status == 401 && !reauthenticated {
                reauthenticated = true;
                let fresh =
                    resp.headers().get(WWW_AUTHENTICATE).and_then(|h| h.to_str().ok()).and_then(parse_challenge);
                if let Some(ch) = fresh {
                    *ep.challenge.write().expect("challenge") = Some(ch);
                }
                self.tokens.lock().expect("token cache").remove(&token_key(ctx));
                continue;
            }
            let wait = retry_after(resp.headers());
            let body = read_limited(resp, MAX_ERROR_BODY, ep.stall).await.unwrap_or_default();
            let codes = transport::error_codes(&body);
            let mut detail = transport::error_message(status, &body);
            if status == 401 {
                let host = &ctx.reference.registry;
                if self.credential(ctx).await?.is_none() {
                    detail.push_str(&format!(" (no credentials for {host} in the docker config or the environment)"));
                } else if self.keychain.uses_docker_auth_config(host) {
                    // The kaniko fork warns the same way: a stale variable hides a good file.
                    detail.push_str(&format!(
                        " (the credentials for {host} came from {}, which shadows the docker config file)",
                        super::env_auth::DOCKER_AUTH_CONFIG
                    ));
                }
            }
            let err =
                RegistryError::Registry { op: ctx.op, reference: ctx.reference.to_string(), status, detail, codes };
            return Err(Failure { err, retryable: retryable_status(status), retry_after: wait, stalled: None });
        }
    }

    async fn credential(&self, ctx: &Ctx<'_>) -> Result<Option<Credential>, Failure> {
        self.keychain.credential(&normalise_host(&ctx.reference.registry)).await.map_err(Failure::fatal)
    }

    /// The `Authorization` header for a request, per the host's challenge.
    async fn authorization(&self, ep: &Endpoint, ctx: &Ctx<'_>) -> Result<Option<HeaderValue>, Failure> {
        let challenge = ep.challenge.read().expect("challenge").clone();
        let Some(challenge) = challenge else { return Ok(None) };
        let cred = self.credential(ctx).await?;
        let auth_err =
            |detail: String| RegistryError::Auth { op: ctx.op, reference: ctx.reference.to_string(), detail };
        match (challenge, cred) {
            (_, Some(Credential::RegistryToken(t))) => Ok(bearer_header(&t)),
            (Challenge::Basic, Some(Credential::Basic { username, password })) => {
                Ok(Some(basic_header(&username, &password)))
            }
            (Challenge::Basic, Some(Credential::IdentityToken(_))) => Err(Failure::fatal(auth_err(format!(
                "{} asks for username and password, but the docker config has an identity token for it",
                ctx.reference.registry
            )))),
            (Challenge::Basic, None) => Ok(None),
            (Challenge::Bearer { realm, service }, cred) => {
                let key = token_key(ctx);
                if let Some(t) = self.tokens.lock().expect("token cache").get(&key).filter(|t| t.fresh()) {
                    return Ok(bearer_header(&t.value));
                }
                let realm_host = reqwest::Url::parse(&realm)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string))
                    .unwrap_or_else(|| realm.clone());
                let token = fetch_token(&ep.client, ep.stall, &realm, service.as_deref(), &ctx.scopes, cred.as_ref())
                    .await
                    .map_err(|e| match e {
                        TokenError::Refused { status, message } => Failure {
                            err: auth_err(format!("token server {realm_host} refused: {message}")),
                            retryable: retryable_status(status),
                            retry_after: None,
                            stalled: None,
                        },
                        TokenError::Transport { message, retryable } => Failure::transport(
                            ctx.transport(format!("token server {realm_host}: {message}")),
                            retryable,
                        ),
                        TokenError::Malformed(m) => Failure::fatal(auth_err(format!("token server {realm_host}: {m}"))),
                    })?;
                let header = bearer_header(&token.value);
                self.tokens.lock().expect("token cache").insert(key, token);
                Ok(header)
            }
        }
    }
}

fn token_key(ctx: &Ctx<'_>) -> (String, String) {
    let mut scopes = ctx.scopes.clone();
    scopes.sort();
    (ctx.reference.registry.clone(), scopes.join(" "))
}

fn same_origin(url: &reqwest::Url, base: &str) -> bool {
    reqwest::Url::parse(base).is_ok_and(|b| b.origin() == url.origin())
}

/// `{base}/v2/{repository}/{rest}`
pub(crate) fn v2_url(ep: &Endpoint, r: &Reference, rest: &str) -> String {
    format!("{}/v2/{}/{}", ep.base, r.repository, rest)
}

/// Resolves a `Location` header against the URL of the response that carried it.
pub(crate) fn location(resp: &reqwest::Response) -> Option<reqwest::Url> {
    let loc = resp.headers().get(reqwest::header::LOCATION)?.to_str().ok()?;
    resp.url().join(loc).ok()
}
