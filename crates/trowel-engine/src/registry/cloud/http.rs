//! HTTP for the contexts that are downloaded (`s3://`, `gs://`, Azure Blob Storage, a tarball
//! over https), and for the small requests their credentials need (token endpoints, metadata
//! servers), which the registry keychain's cloud logins make too: one place that decides
//! timeouts, redirects, retries and how much of an error body is kept, so every kind treats the
//! remote side alike, as hostile input.
//!
//! The context is fetched before the build has a runtime, and the unpacker reads synchronously:
//! a request runs on its own thread with a small tokio runtime, and the body comes back through a
//! bounded channel as a [`Read`], so an archive is unpacked as it arrives (nothing is stored
//! whole, and a context larger than memory or than the work dir's free space before unpacking
//! is no problem).
//!
//! A request is retried, freshly made (a signature may carry the time), when nothing of its
//! body has been read yet and the failure may heal: a connection error, 408, 429 (after its
//! `Retry-After`, at most 30 s), 500, 502, 503, 504. Once the body has begun, a failure is an
//! error of the read: the unpacker has written part of the context, and the caller fails the
//! fetch rather than resume.
//!
//! A build stopped (SIGTERM) while its context downloads ends there: [`ClientOptions::cancel`]
//! is looked at between attempts, while the answer's head is awaited and while the reader
//! waits for the next chunk ([`WAIT_SLICE`]), so a slow or stalled server cannot hold the stop
//! for `--stall-timeout`. The download thread ends at its next chunk, finding no reader.

use std::io::Read;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use crate::fs::{Cancel, FsError};

// A reqwest error's causes without its URL (a presigned URL's query is a credential), as the
// registry client words them.
use crate::registry::transport::describe;

/// How many times a request is sent at most.
const ATTEMPTS: u32 = 4;
/// Longest error body kept (for the message); the rest is not read.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// Chunks in flight between the download thread and the reader.
const CHANNEL_CHUNKS: usize = 16;
/// How long a wait for the answer or the next chunk goes between two looks at the stop.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// How the client is made.
#[derive(Debug, Clone)]
pub(crate) struct ClientOptions {
    /// Extra CA certificates (PEM), e.g. `AWS_CA_BUNDLE` for an S3-compatible server with its
    /// own CA.
    pub ca_file: Option<PathBuf>,
    /// Do not verify the server's certificate.
    pub insecure: bool,
    /// `--stall-timeout`: connecting, waiting for the answer's head, or for the next chunk of
    /// its body, longer than this fails the attempt (as the registry client's `stall.rs`).
    pub stall_timeout: Duration,
    /// A stop of the build: the request and the reading of its body give up once it says so
    /// (the read's error holds [`FsError::Cancelled`](crate::fs::FsError::Cancelled)).
    pub cancel: Option<Cancel>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ca_file: None,
            insecure: false,
            stall_timeout: crate::registry::DEFAULT_STALL_TIMEOUT,
            cancel: None,
        }
    }
}

/// Waits for the next message on `rx`, giving up with [`FsError::Cancelled`] once `cancel`
/// says so; `None` when the sender is gone.
fn recv_unless_cancelled<T>(rx: &Receiver<T>, cancel: Option<&Cancel>) -> Result<Option<T>, FsError> {
    let Some(c) = cancel else { return Ok(rx.recv().ok()) };
    loop {
        Cancel::check(Some(c))?;
        match rx.recv_timeout(WAIT_SLICE) {
            Ok(v) => return Ok(Some(v)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
        }
    }
}

/// Sleeps `d`, or less when `cancel` asks first.
fn sleep_unless_cancelled(d: Duration, cancel: Option<&Cancel>) -> Result<(), FsError> {
    let until = std::time::Instant::now() + d;
    loop {
        Cancel::check(cancel)?;
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(WAIT_SLICE));
    }
}

/// One request, as the caller made it (made again for each attempt).
pub(crate) struct Request {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// A bound on the whole request (a metadata server that is not there must not hold the
    /// build for the client's connect timeout); none by default: a download takes what it takes.
    pub timeout: Option<Duration>,
}

impl Request {
    pub(crate) fn get(url: impl Into<String>) -> Request {
        Request { method: reqwest::Method::GET, url: url.into(), headers: Vec::new(), body: Vec::new(), timeout: None }
    }

    /// A form POST (`application/x-www-form-urlencoded`), as OAuth token endpoints take them.
    pub(crate) fn post_form(url: impl Into<String>, fields: &[(&str, &str)]) -> Request {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encoded(k), percent_encoded(v)))
            .collect::<Vec<_>>()
            .join("&");
        Request {
            method: reqwest::Method::POST,
            url: url.into(),
            headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
            body: body.into_bytes(),
            timeout: None,
        }
    }

    pub(crate) fn timeout(mut self, d: Duration) -> Request {
        self.timeout = Some(d);
        self
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// Why a request failed. Never holds a URL's query (presigned URLs carry credentials there) nor
/// a request header.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Client(String),
    /// No answer (connection refused, reset, TLS failure, timeout), after the retries.
    #[error("{reason}")]
    Transport { reason: String },
    /// The build was stopped before an answer came ([`ClientOptions::cancel`]).
    #[error("given up: the build was stopped")]
    Cancelled,
}

/// A response's `Last-Modified`, in seconds since 1970, when it says one that parses.
pub(crate) fn last_modified(headers: &reqwest::header::HeaderMap) -> Option<i64> {
    let value = headers.get(reqwest::header::LAST_MODIFIED)?.to_str().ok()?;
    chrono::DateTime::parse_from_rfc2822(value).ok().map(|t| t.timestamp())
}

/// A response whose body has not been read yet.
pub(crate) struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    body: Body,
}

struct Body {
    chunks: Receiver<Result<bytes::Bytes, String>>,
    current: bytes::Bytes,
    cancel: Option<Cancel>,
}

impl Response {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as a stream of bytes. A transfer that breaks is an `io::Error` of the read.
    pub(crate) fn into_reader(self) -> impl Read + Send {
        self.body
    }

    /// A small body whole (a token, an error document), refusing more than `max` bytes.
    pub(crate) fn read_small(self, max: usize) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let n = self.body.take(max as u64 + 1).read_to_end(&mut out)?;
        if n > max {
            return Err(std::io::Error::other(format!("the answer is larger than {max} bytes")));
        }
        Ok(out)
    }

    /// The start of an error body, as text, for a message: at most [`MAX_ERROR_BODY`] bytes.
    pub(crate) fn error_text(self) -> String {
        let mut out = Vec::new();
        let _ = self.body.take(MAX_ERROR_BODY as u64).read_to_end(&mut out);
        String::from_utf8_lossy(&out).trim().to_string()
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match recv_unless_cancelled(&self.chunks, self.cancel.as_ref()).map_err(std::io::Error::other)? {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(reason)) => return Err(std::io::Error::other(reason)),
                // The sender is gone after the last chunk: the end of the body.
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// An HTTP client for one fetch.
pub(crate) struct Client {
    client: reqwest::Client,
    stall: Duration,
    cancel: Option<Cancel>,
}

impl Client {
    pub(crate) fn new(opts: &ClientOptions) -> Result<Client, HttpError> {
        // Fails only when a provider is already installed: that one is ring too.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder()
            .user_agent(format!("trowel/{}", env!("CARGO_PKG_VERSION")))
            // Lack of progress, not total time, bounds every phase (`download` watches the
            // head and each chunk): a large context on a slow link still arrives.
            .connect_timeout(opts.stall_timeout)
            .tcp_user_timeout(opts.stall_timeout)
            // Presigned and CDN URLs redirect; a redirect to plain http would drop TLS.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= 5 {
                    attempt.error("more than 5 redirects")
                } else if attempt.url().scheme() == "http"
                    && attempt.previous().last().is_some_and(|u| u.scheme() == "https")
                {
                    attempt.error("a redirect from https to plain http")
                } else {
                    attempt.follow()
                }
            }))
            .tls_danger_accept_invalid_certs(opts.insecure);
        if let Some(path) = &opts.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| HttpError::Client(format!("read the CA file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| HttpError::Client(format!("{}: not a PEM certificate bundle: {e}", path.display())))?;
            b = b.tls_certs_merge(certs);
        }
        let client = b.build().map_err(|e| HttpError::Client(format!("make an HTTP client: {e}")))?;
        Ok(Client { client, stall: opts.stall_timeout, cancel: opts.cancel.clone() })
    }

    /// Sends the request `make` makes, again for each attempt, and returns the first response
    /// that is not a transient failure (a 404 or 403 is returned, for the caller to explain).
    pub(crate) fn send(&self, make: &dyn Fn() -> Result<Request, HttpError>) -> Result<Response, HttpError> {
        let mut last = String::new();
        let cancel = self.cancel.as_ref();
        let cancelled = |_: FsError| HttpError::Cancelled;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                sleep_unless_cancelled(Duration::from_millis(100 << attempt), cancel).map_err(cancelled)?;
            }
            match self.send_once(make()?) {
                Ok(resp) if matches!(resp.status, 408 | 429 | 500 | 502 | 503 | 504) && attempt + 1 < ATTEMPTS => {
                    let wait = retry_after(&resp.headers);
                    last = format!("HTTP {}", resp.status);
                    if let Some(w) = wait {
                        sleep_unless_cancelled(w, cancel).map_err(cancelled)?;
                    }
                }
                Ok(resp) => return Ok(resp),
                Err(None) => return Err(HttpError::Cancelled),
                Err(Some(reason)) => last = reason,
            }
        }
        Err(HttpError::Transport { reason: format!("{last} (after {ATTEMPTS} attempts)") })
    }

    /// One attempt: the head comes back here, the body keeps streaming on the thread. `Err(None)`:
    /// the build was stopped while the head was awaited.
    fn send_once(&self, req: Request) -> Result<Response, Option<String>> {
        let (head_tx, head_rx) = sync_channel(1);
        let (body_tx, body_rx) = sync_channel(CHANNEL_CHUNKS);
        let (client, stall) = (self.client.clone(), self.stall);
        std::thread::Builder::new()
            .name("context-download".into())
            .spawn(move || download(client, stall, req, head_tx, body_tx))
            .map_err(|e| Some(format!("start a download thread: {e}")))?;
        let head = recv_unless_cancelled(&head_rx, self.cancel.as_ref()).map_err(|_| None)?;
        let (status, headers) =
            head.ok_or_else(|| "the download thread ended".to_string()).and_then(|h| h).map_err(Some)?;
        let body = Body { chunks: body_rx, current: bytes::Bytes::new(), cancel: self.cancel.clone() };
        Ok(Response { status, headers, body })
    }
}

type Head = Result<(u16, reqwest::header::HeaderMap), String>;

fn download(
    client: reqwest::Client,
    stall: Duration,
    req: Request,
    head: SyncSender<Head>,
    body: SyncSender<Result<bytes::Bytes, String>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = head.send(Err(format!("start a runtime: {e}")));
            return;
        }
    };
    rt.block_on(async move {
        let mut b = client.request(req.method, &req.url);
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        if !req.body.is_empty() {
            b = b.body(req.body);
        }
        if let Some(t) = req.timeout {
            b = b.timeout(t);
        }
        // A request's body is small (a form): from the first byte out to the answer's head is
        // one wait for progress.
        let resp = match crate::registry::stall::Watch::new(stall).guard(b.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let reason = match crate::registry::stall::of_error(&e, stall) {
                    Some(s) => s.to_string(),
                    None => describe(&e),
                };
                let _ = head.send(Err(reason));
                return;
            }
            Err(s) => {
                let _ = head.send(Err(s.to_string()));
                return;
            }
        };
        if head.send(Ok((resp.status().as_u16(), resp.headers().clone()))).is_err() {
            return;
        }
        let mut resp = resp;
        loop {
            let item = match crate::registry::stall::next_chunk(&mut resp, stall).await {
                Ok(Ok(Some(chunk))) => Ok(chunk),
                Ok(Ok(None)) => return,
                Ok(Err(e)) => Err(match crate::registry::stall::of_error(&e, stall) {
                    Some(s) => format!("the download broke off: {s}"),
                    None => format!("the download broke off: {}", describe(&e)),
                }),
                Err(s) => Err(format!("the download broke off: {s}")),
            };
            let failed = item.is_err();
            // The reader stopped reading (it failed, or has what it needs): stop downloading.
            if body.send(item).is_err() || failed {
                return;
            }
        }
    });
}

/// Everything but the unreserved characters as `%XX`: a form field, or one path segment (a
/// GCS object name, whose `/` are part of the name).
pub(crate) fn percent_encoded(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Retry-After` in seconds (the date form is rare from object stores), at most 30 s.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(30)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::net::TcpListener;

    /// A one-connection-per-answer HTTP server on 127.0.0.1 giving `answers` in turn.
    fn serve(answers: Vec<Vec<u8>>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for a in answers {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_string());
                s.write_all(&a).unwrap();
            }
            seen
        });
        (addr, h)
    }

    fn answer(status: &str, extra: &str, body: &[u8]) -> Vec<u8> {
        let mut v = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n", body.len())
            .into_bytes();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn transient_failures_are_retried_and_the_body_streams() {
        let body = vec![7u8; 300_000];
        let (url, server) = serve(vec![
            answer("503 Service Unavailable", "", b"busy"),
            answer("429 Too Many Requests", "Retry-After: 0\r\n", b""),
            answer("200 OK", "", &body),
        ]);
        let c = Client::new(&ClientOptions::default()).unwrap();
        let made = std::cell::Cell::new(0);
        let resp = c
            .send(&|| {
                made.set(made.get() + 1);
                Ok(Request::get(format!("{url}/ctx.tar")).header("x-attempt", made.get().to_string()))
            })
            .unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(made.get(), 3, "the request is made again for every attempt");
        let mut got = Vec::new();
        resp.into_reader().read_to_end(&mut got).unwrap();
        assert_eq!(got, body);
        assert_eq!(server.join().unwrap(), vec!["GET /ctx.tar HTTP/1.1"; 3]);
    }

    #[test]
    fn a_refusal_is_returned_with_its_text_and_a_small_body_is_bounded() {
        let (url, _server) = serve(vec![
            answer("403 Forbidden", "", b"<Error><Code>AccessDenied</Code></Error>"),
            answer("200 OK", "", &[1u8; 100]),
        ]);
        let c = Client::new(&ClientOptions::default()).unwrap();
        let resp = c.send(&|| Ok(Request::get(format!("{url}/x")))).unwrap();
        assert!(!resp.is_success());
        assert!(resp.error_text().contains("AccessDenied"));
        let resp = c.send(&|| Ok(Request::get(format!("{url}/y")))).unwrap();
        assert!(resp.read_small(10).unwrap_err().to_string().contains("larger than 10 bytes"));
    }

    #[test]
    fn a_transfer_that_breaks_off_is_an_error_of_the_read() {
        // Promises 1000 bytes, sends 10 and closes.
        let mut a = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n".to_vec();
        a.extend_from_slice(&[1u8; 10]);
        let (url, _server) = serve(vec![a]);
        let c = Client::new(&ClientOptions::default()).unwrap();
        let resp = c.send(&|| Ok(Request::get(format!("{url}/x")))).unwrap();
        let mut got = Vec::new();
        assert!(resp.into_reader().read_to_end(&mut got).is_err());
    }

    #[test]
    fn no_server_is_a_transport_error_after_the_attempts() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", l.local_addr().unwrap());
        drop(l);
        let c = Client::new(&ClientOptions::default()).unwrap();
        match c.send(&|| Ok(Request::get(url.clone()))) {
            Err(HttpError::Transport { reason }) => assert!(reason.contains("after 4 attempts"), "{reason}"),
            other => panic!("{:?}", other.map(|r| r.status)),
        }
    }

    /// A server that stops sending: the head waited for is retried, a body that stops fails
    /// its read, each after the stall timeout and not the minutes a total timeout would take.
    #[test]
    fn a_stalled_server_fails_after_the_stall_timeout() {
        let opts = ClientOptions { stall_timeout: Duration::from_secs(1), ..ClientOptions::default() };
        let c = Client::new(&opts).unwrap();
        // Accepts, reads the request, never answers: every attempt stalls before the head.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ctx.tar", l.local_addr().unwrap());
        let silent = std::thread::spawn(move || {
            let mut held = Vec::new();
            for _ in 0..ATTEMPTS {
                let (mut s, _) = l.accept().unwrap();
                let _ = s.read(&mut [0u8; 4096]);
                held.push(s);
            }
            std::thread::sleep(Duration::from_secs(3));
        });
        let t0 = std::time::Instant::now();
        match c.send(&|| Ok(Request::get(url.clone()))) {
            Err(HttpError::Transport { reason }) => {
                assert_eq!(reason, "stalled: no data for 1 s (after 4 attempts)");
            }
            other => panic!("{:?}", other.map(|r| r.status)),
        }
        // Four attempts of 1 s and the waits between them (0.2 + 0.4 + 0.8 s).
        assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
        silent.join().unwrap();

        // A body that stops after 10 of its 1000 bytes.
        let mut a = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n".to_vec();
        a.extend_from_slice(&[1u8; 10]);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", l.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let _ = s.read(&mut [0u8; 4096]);
            s.write_all(&a).unwrap();
            std::thread::sleep(Duration::from_secs(3));
        });
        let resp = c.send(&|| Ok(Request::get(url.clone()))).unwrap();
        let mut got = Vec::new();
        let t0 = std::time::Instant::now();
        let e = resp.into_reader().read_to_end(&mut got).unwrap_err();
        assert_eq!(e.to_string(), "the download broke off: stalled: no data for 1 s");
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        server.join().unwrap();
    }
}
