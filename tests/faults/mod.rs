//! A fault-injecting HTTP proxy on 127.0.0.1 in front of a real registry, for driving whole
//! `trowel build` runs through a flaky network and a misbehaving registry.
//!
//! Every connection carries one request (`Connection: close` is added towards the registry, so
//! every request passes through the head parser). Rules match a request by method and a
//! substring of its path, apply to the next `times` matching requests, and are tried in the order
//! added. Faults cover what registries and proxies really do: drop the connection, answer
//! 429/500/502/503 with or without `Retry-After`, cut a response body short, stall in the middle
//! of a body, corrupt a body (a wrong digest), lie in `Docker-Content-Digest`, and cut an upload
//! short; and for stall timeouts: stop sending a body (or reading an upload) after some bytes
//! without closing, and move a body (or an upload) at a set pace.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What happens to a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Close the connection without answering.
    Drop,
    /// Answer with this status and this JSON body without asking the registry (a registry's
    /// own refusal, e.g. ECR's of an immutable tag).
    Answer { code: u16, body: &'static str },
    /// Answer with this status (and `Retry-After: n` when given) without asking the registry.
    Status { code: u16, retry_after: Option<u32> },
    /// Forward, but cut the response off after this many bytes of its body.
    Truncate { after: usize },
    /// Forward; send half the body, pause, then the rest.
    Stall { pause: Duration },
    /// Forward with one body byte flipped (a blob that no longer matches its digest).
    Corrupt,
    /// Forward with `Docker-Content-Digest` replaced by a different digest.
    LieAboutDigest,
    /// Forward (the registry acts on the request), then close without relaying the answer.
    LoseResponse,
    /// Hold the request this long before forwarding it (a registry that hangs; tests kill
    /// trowel while it waits).
    Hold { pause: Duration },
    /// Read this many bytes of the request body, then close (an upload cut off). Only requests
    /// whose body is longer match.
    CutUpload { after: usize },
    /// Forward; send this many bytes of the body, then nothing more, the connection left open
    /// (a registry that stopped answering mid-transfer). Held for [`STALL_HOLD`].
    StallAfter { after: usize },
    /// Read this many bytes of the request body, then read nothing more, the connection left
    /// open (an upload the registry stopped taking). Only requests whose body is longer match.
    StallUpload { after: usize },
    /// Forward, sending the response body at this many bytes per second (in tenths).
    Throttle { bytes_per_sec: usize },
    /// Forward, reading the request body at this many bytes per second (in tenths).
    ThrottleUpload { bytes_per_sec: usize },
}

/// How long a stalled connection is held open before the proxy lets go of it: far longer than
/// any stall timeout a test sets.
pub const STALL_HOLD: Duration = Duration::from_secs(120);

struct Rule {
    method: String,
    path: String,
    fault: Fault,
    times: usize,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// `METHOD path` of every request, in arrival order.
    seen: Vec<String>,
    /// When each request of `seen` arrived (its head read): which waited for another's answer.
    arrived: Vec<std::time::Instant>,
    /// `METHOD path -> fault` of every fault applied.
    applied: Vec<String>,
}

/// The proxy; it runs until the test process ends.
pub struct FaultProxy {
    /// `127.0.0.1:port`
    pub addr: String,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let (st, up) = (state.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let (st, up) = (st.clone(), up.clone());
                std::thread::spawn(move || handle(conn, &up, &st));
            }
        });
        FaultProxy { addr, state }
    }

    /// Applies `fault` to the next `times` requests with this method whose path contains `path`.
    pub fn inject(&self, method: &str, path: &str, fault: Fault, times: usize) -> &Self {
        self.state.lock().unwrap().rules.push(Rule { method: method.into(), path: path.into(), fault, times });
        self
    }

    /// Removes every rule that has not been used up.
    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// `METHOD path` of every request so far.
    pub fn seen(&self) -> Vec<String> {
        self.state.lock().unwrap().seen.clone()
    }

    /// When each request of [`Self::seen`] arrived, with it.
    pub fn seen_at(&self) -> Vec<(std::time::Instant, String)> {
        let s = self.state.lock().unwrap();
        s.arrived.iter().copied().zip(s.seen.iter().cloned()).collect()
    }

    /// The faults applied so far, as `METHOD path -> Fault`.
    pub fn applied(&self) -> Vec<String> {
        self.state.lock().unwrap().applied.clone()
    }

    /// Waits until a fault whose description contains `needle` has been applied.
    #[track_caller]
    pub fn wait_applied(&self, needle: &str, timeout: Duration) {
        let t0 = std::time::Instant::now();
        while !self.applied().iter().any(|a| a.contains(needle)) {
            assert!(t0.elapsed() < timeout, "no fault {needle:?} applied within {timeout:?}: {:?}", self.seen());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Rules that never matched as often as asked (a test whose faults were not exercised
    /// proves nothing).
    pub fn unused(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .rules
            .iter()
            .filter(|r| r.times > 0 && r.times < usize::MAX / 2)
            .map(|r| format!("{} {} -> {:?} ({} left)", r.method, r.path, r.fault, r.times))
            .collect()
    }
}

/// Reads up to the end of an HTTP head (`\r\n\r\n`), byte by byte so nothing of the body is
/// consumed.
fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.push(byte[0]);
        if head.len() == 1 && byte[0] == 0x16 {
            return None; // a TLS handshake: trowel probes loopback registries for TLS first
        }
    }
    Some(head)
}

fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn handle(mut client: TcpStream, upstream: &str, state: &Mutex<State>) {
    client.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let Some(head) = read_head(&mut client) else { return };
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut first = text.lines().next().unwrap_or("").split(' ');
    let (method, path) = (first.next().unwrap_or("").to_string(), first.next().unwrap_or("").to_string());
    let body_len: usize = header_value(&text, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    // A chunked body (a layer streamed while it is written) has no length to compare.
    let chunked = header_value(&text, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let longer_than = |after: usize| chunked || body_len > after;
    let fault = {
        let mut s = state.lock().unwrap();
        s.seen.push(format!("{method} {path}"));
        s.arrived.push(std::time::Instant::now());
        let i = s.rules.iter().position(|r| {
            r.times > 0
                && r.method == method
                && path.contains(&r.path)
                && !matches!(r.fault, Fault::CutUpload { after } | Fault::StallUpload { after } if !longer_than(after))
        });
        let fault = i.map(|i| {
            s.rules[i].times -= 1;
            s.rules[i].fault.clone()
        });
        if let Some(f) = &fault {
            s.applied.push(format!("{method} {path} -> {f:?}"));
        }
        fault
    };
    match fault {
        Some(Fault::Drop) => {
            let _ = client.shutdown(Shutdown::Both);
        }
        Some(Fault::Status { code, retry_after }) => {
            let reason = match code {
                429 => "Too Many Requests",
                500 => "Internal Server Error",
                502 => "Bad Gateway",
                503 => "Service Unavailable",
                _ => "Error",
            };
            let retry = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
            // Drain the request body first so the client sees the answer, not a reset.
            let mut sink = vec![0u8; body_len.min(64 << 20)];
            let _ = client.read_exact(&mut sink);
            let _ = write!(
                client,
                "HTTP/1.1 {code} {reason}\r\n{retry}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reason}",
                reason.len()
            );
        }
        Some(Fault::Answer { code, body }) => {
            let mut sink = vec![0u8; body_len.min(64 << 20)];
            let _ = client.read_exact(&mut sink);
            let _ = write!(
                client,
                "HTTP/1.1 {code} Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Some(Fault::CutUpload { after }) => {
            let mut buf = vec![0u8; after];
            let _ = client.read_exact(&mut buf);
            let _ = client.shutdown(Shutdown::Both);
        }
        Some(Fault::StallUpload { after }) => {
            let mut buf = vec![0u8; after];
            let _ = client.read_exact(&mut buf);
            std::thread::sleep(STALL_HOLD);
        }
        Some(Fault::Hold { pause }) => {
            std::thread::sleep(pause);
            forward(client, upstream, &text, None);
        }
        other => forward(client, upstream, &text, other),
    }
}

fn forward(mut client: TcpStream, upstream: &str, head: &str, fault: Option<Fault>) {
    let head = head.replacen("\r\n", "\r\nConnection: close\r\n", 1);
    let Ok(mut up) = TcpStream::connect(upstream) else { return };
    if up.write_all(head.as_bytes()).is_err() {
        return;
    }
    let (mut c2, mut u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
    let upload_pace = match fault {
        Some(Fault::ThrottleUpload { bytes_per_sec }) => Some(bytes_per_sec),
        _ => None,
    };
    std::thread::spawn(move || match upload_pace {
        Some(rate) => paced_copy(&mut c2, &mut u2, rate),
        None => {
            let _ = std::io::copy(&mut c2, &mut u2);
        }
    });
    let Some(resp_head) = read_head(&mut up) else { return };
    let mut resp_text = String::from_utf8_lossy(&resp_head).into_owned();
    if let Some(Fault::LieAboutDigest) = fault
        && let Some(d) = header_value(&resp_text, "docker-content-digest")
    {
        let liar = format!("sha256:{}", "0".repeat(64));
        resp_text = resp_text.replace(&d, &liar);
    }
    let body_len: Option<usize> = header_value(&resp_text, "content-length").and_then(|v| v.parse().ok());
    if matches!(fault, Some(Fault::LoseResponse)) {
        let _ = std::io::copy(&mut up, &mut std::io::sink());
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if client.write_all(resp_text.as_bytes()).is_err() {
        return;
    }
    match fault {
        Some(Fault::Truncate { after }) => {
            let mut buf = vec![0u8; after];
            let n = read_up_to(&mut up, &mut buf);
            let _ = client.write_all(&buf[..n]);
            let _ = client.shutdown(Shutdown::Both);
        }
        Some(Fault::Stall { pause }) => {
            let mut buf = vec![0u8; body_len.unwrap_or(0) / 2];
            let n = read_up_to(&mut up, &mut buf);
            let _ = client.write_all(&buf[..n]);
            let _ = client.flush();
            std::thread::sleep(pause);
            let _ = std::io::copy(&mut up, &mut client);
        }
        Some(Fault::StallAfter { after }) => {
            let mut buf = vec![0u8; after];
            let n = read_up_to(&mut up, &mut buf);
            let _ = client.write_all(&buf[..n]);
            let _ = client.flush();
            std::thread::sleep(STALL_HOLD);
        }
        Some(Fault::Throttle { bytes_per_sec }) => paced_copy(&mut up, &mut client, bytes_per_sec),
        Some(Fault::Corrupt) => {
            let mut buf = vec![0u8; 1];
            if read_up_to(&mut up, &mut buf) == 1 {
                buf[0] ^= 0xff;
                let _ = client.write_all(&buf);
            }
            let _ = std::io::copy(&mut up, &mut client);
        }
        _ => {
            let _ = std::io::copy(&mut up, &mut client);
        }
    }
}

/// Copies `from` to `to` at most at `rate` bytes per second: what has arrived of a tenth of it,
/// every 100 ms.
fn paced_copy(from: &mut TcpStream, to: &mut TcpStream, rate: usize) {
    let mut buf = vec![0u8; (rate / 10).max(1)];
    loop {
        let t0 = std::time::Instant::now();
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(t0.elapsed()));
    }
}

fn read_up_to(r: &mut TcpStream, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}
