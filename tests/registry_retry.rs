//! Retries and resumption, through a fault-injecting TCP proxy in front of the real plain
//! registry: a 503 with `Retry-After` is waited out, a 404 is not retried, a blob download cut
//! off mid-stream resumes with a `Range` request, and an upload cut off mid-body restarts.

mod common;
#[path = "registry_util/mod.rs"]
mod util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use trowel_engine::image::manifest::{ManifestFormat, Platform};
use trowel_engine::image::store::BlobStore;
use trowel_engine::registry::{BlobAction, Reference, RegistryOptions};
use util::{opts, registry, rt, tiny_image};

/// What the proxy does to the next request whose head contains `matching`.
#[derive(Clone)]
enum Fault {
    /// Answer 503 with this `Retry-After`.
    Unavailable { retry_after: u32 },
    /// Forward, but relay only this many response bytes, then cut the connection.
    CutResponse { after: usize },
    /// Read this many request bytes, then cut the connection without answering (only requests
    /// with a longer body match).
    CutRequest { after: usize },
}

#[derive(Default)]
struct State {
    faults: Vec<(String, Fault)>,
    /// Request heads seen, one per connection.
    seen: Vec<String>,
}

/// A one-request-per-connection HTTP proxy to `upstream` that injects [`Fault`]s.
struct Proxy {
    addr: String,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
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
        Proxy { addr, state }
    }

    fn inject(&self, matching: &str, fault: Fault) {
        self.state.lock().unwrap().faults.push((matching.to_string(), fault));
    }

    fn seen(&self) -> Vec<String> {
        self.state.lock().unwrap().seen.clone()
    }
}

fn handle(mut client: TcpStream, upstream: &str, state: &Mutex<State>) {
    client.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).unwrap_or(0) == 0 || head.len() > 64 * 1024 {
            return;
        }
        head.push(byte[0]);
        if head.len() == 1 && byte[0] == 0x16 {
            return; // a TLS handshake: this proxy is plain HTTP only
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let fault = {
        let mut s = state.lock().unwrap();
        s.seen.push(text.clone());
        let first_line = text.lines().next().unwrap_or("").to_string();
        let length: usize = text
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // A request is only cut if it has more body than the cut point (not a small config).
        let i = s.faults.iter().position(|(m, f)| {
            first_line.contains(m.as_str()) && !matches!(f, Fault::CutRequest { after } if length <= *after)
        });
        i.map(|i| s.faults.remove(i).1)
    };
    match fault {
        Some(Fault::Unavailable { retry_after }) => {
            let _ = write!(
                client,
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        Some(Fault::CutRequest { after }) => {
            let mut buf = vec![0u8; after];
            let _ = client.read_exact(&mut buf);
            let _ = client.shutdown(std::net::Shutdown::Both);
        }
        other => {
            // One request per connection, so every request passes through the head parser.
            let head = text.replacen("\r\n", "\r\nConnection: close\r\n", 1);
            let Ok(mut up) = TcpStream::connect(upstream) else { return };
            let _ = up.write_all(head.as_bytes());
            let (mut c2, mut u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut u2);
            });
            match other {
                Some(Fault::CutResponse { after }) => {
                    let mut buf = vec![0u8; after];
                    let _ = up.read_exact(&mut buf);
                    let _ = client.write_all(&buf);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                }
                _ => {
                    let _ = std::io::copy(&mut up, &mut client);
                }
            }
        }
    }
}

fn options(proxy: &Proxy, retries: u32) -> RegistryOptions {
    RegistryOptions { insecure_registries: vec![proxy.addr.clone()], retries, ..opts() }
}

#[test]
fn unavailable_is_retried_after_the_servers_delay() {
    let env = common::env();
    let proxy = Proxy::start(&env.registry);
    let r = Reference::parse(&format!("{}/busybox:1.35", proxy.addr)).unwrap();
    let amd64 = Platform::parse("linux/amd64").unwrap();
    let rt = rt();

    proxy.inject("/manifests/1.35", Fault::Unavailable { retry_after: 2 });
    let start = Instant::now();
    rt.block_on(registry(options(&proxy, 3)).resolve(&r, &amd64)).unwrap();
    // Exponential backoff alone would have waited 0.5 s.
    assert!(start.elapsed() >= Duration::from_secs(2), "{:?}", start.elapsed());

    proxy.inject("/manifests/1.35", Fault::Unavailable { retry_after: 0 });
    let e = rt.block_on(registry(options(&proxy, 0)).resolve(&r, &amd64)).unwrap_err().to_string();
    assert_eq!(e, format!("pull {r}: service unavailable (503)"));
}

#[test]
fn not_found_is_not_retried() {
    let env = common::env();
    let proxy = Proxy::start(&env.registry);
    let r = Reference::parse(&format!("{}/busybox:missing", proxy.addr)).unwrap();
    let e = rt().block_on(registry(options(&proxy, 3)).resolve(&r, &Platform::parse("linux/amd64").unwrap()));
    assert!(e.unwrap_err().is_not_found());
    let asked = proxy.seen().iter().filter(|h| h.contains("/manifests/missing")).count();
    assert_eq!(asked, 1);
}

#[test]
fn interrupted_download_resumes_with_range() {
    let env = common::env();
    let proxy = Proxy::start(&env.registry);
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let repo = common::unique_repo("resume");
    let img = tiny_image(&store, ManifestFormat::Oci, &format!("resume {repo}"), ("amd64", None), 3 << 20);
    let direct = Reference::parse(&format!("{}/{repo}:1", env.registry)).unwrap();
    let rt = rt();
    rt.block_on(registry(opts()).push_image(&direct, &img.push, &store, &|_| {})).unwrap();

    let via_proxy = Reference::parse(&format!("{}/{repo}:1", proxy.addr)).unwrap();
    // Headers plus ~1 MiB of body, then the connection drops.
    proxy.inject(&format!("GET /v2/{repo}/blobs/{}", img.layer.digest), Fault::CutResponse { after: 1 << 20 });
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = BlobStore::open(fresh_dir.path()).unwrap();
    rt.block_on(registry(options(&proxy, 2)).fetch_blob(&via_proxy, &img.layer, &fresh, &|_, _| {})).unwrap();
    assert!(fresh.verify(&img.layer.digest).unwrap());
    let blob_gets: Vec<String> =
        proxy.seen().into_iter().filter(|h| h.contains(&format!("/blobs/{}", img.layer.digest))).collect();
    assert_eq!(blob_gets.len(), 2, "{blob_gets:?}");
    let range = blob_gets[1].lines().find(|l| l.to_ascii_lowercase().starts_with("range:")).unwrap_or_default();
    assert!(range.contains("bytes=") && !range.contains("bytes=0-"), "second request resumes: {range:?}");
}

#[test]
fn interrupted_upload_restarts() {
    let env = common::env();
    let proxy = Proxy::start(&env.registry);
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let repo = common::unique_repo("reupload");
    let img = tiny_image(&store, ManifestFormat::Oci, &format!("upload {repo}"), ("amd64", None), 2 << 20);
    let r = Reference::parse(&format!("{}/{repo}:1", proxy.addr)).unwrap();
    // The first PUT of a blob is cut off after part of its body.
    proxy.inject(&format!("PUT /v2/{repo}/blobs/uploads/"), Fault::CutRequest { after: 64 * 1024 });
    let report = rt().block_on(registry(options(&proxy, 2)).push_image(&r, &img.push, &store, &|_| {})).unwrap();
    assert!(report.blobs.iter().all(|(_, a, _)| *a == BlobAction::Uploaded));
    let posts = proxy.seen().iter().filter(|h| h.starts_with(&format!("POST /v2/{repo}/blobs/uploads/"))).count();
    assert_eq!(posts, 3, "two blobs plus one restarted upload session");
    let inspect = common::skopeo_inspect(&format!("{}/{repo}:1", env.registry));
    assert_eq!(inspect["Digest"].as_str().unwrap(), report.manifest_digest.as_str());
}
