//! Git servers on 127.0.0.1 for `ADD <git repository>` tests, with repositories made here.
//!
//! Both of git's network transports trowel takes anonymously are real: git's own protocol
//! (`git daemon --inetd`, one process per connection) and smart HTTP (`git http-backend` run as
//! a CGI program per request behind the small HTTP/1.1 server below). Nothing outlives the test
//! process: the servers are threads of it, and each connection's git process ends with it.
//!
//! The repositories (bare, under one base directory):
//! - `repo.git`: `main` (the default branch) with a directory `sub/`, an executable script, a
//!   symlink inside the tree and two pointing out of it, a 4 KiB `data.bin`, and a submodule
//!   `mod` (`../lib.git`, relative, so it is fetched from the same server); tag `v1`
//!   (lightweight) and `v1a` (annotated) on the first commit; `dev` a branch off it.
//! - `lib.git`: what the submodule holds.
//! - `hostile.git`: a submodule whose URL is a `file://` path on the build machine.
//! - repositories a test makes for itself with [`GitServer::new_repo`] (one that moves).
//!
//! `http_auth` serves the same repositories to requests with basic credentials only:
//! [`AUTH_USER`]:[`AUTH_PASSWORD`], or [`AUTH_TOKEN`] as the user with no password (how
//! kaniko sends `GIT_TOKEN`); anything else gets 401, as a private repository's host answers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub const AUTH_USER: &str = "builder";
pub const AUTH_PASSWORD: &str = "pw-5ecret-context";
pub const AUTH_TOKEN: &str = "tok-5ecret-context";

pub struct GitServer {
    /// Base directory holding the bare repositories.
    pub base: PathBuf,
    /// `http://127.0.0.1:<port>`
    pub http: String,
    /// `http://127.0.0.1:<port>`, answering only requests with the credentials above.
    pub http_auth: String,
    /// The same over TLS (`https://127.0.0.1:<port>`), with the test environment's certificate
    /// (issued by its own CA to another name: a client must not verify it to get in).
    pub https_auth: String,
    /// `git://127.0.0.1:<port>`
    pub git: String,
    /// Commits of `repo.git`.
    pub first: String,
    pub main: String,
    pub dev: String,
    /// The object of the annotated tag `v1a`.
    pub v1a_tag: String,
    /// The commit time of `main` (seconds).
    pub main_time: i64,
    pub lib: String,
}

/// Runs git with a fixed identity and dates, in `dir`; returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("GIT_AUTHOR_DATE", "2024-01-02T03:04:05Z")
        .env("GIT_COMMITTER_DATE", "2024-01-02T03:04:05Z")
        .env("GIT_ALLOW_PROTOCOL", "file")
        .output()
        .unwrap_or_else(|e| panic!("git {args:?}: {e}"));
    assert!(o.status.success(), "git {args:?} in {}: {}", dir.display(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn write(dir: &Path, rel: &str, content: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// The servers and repositories, made once per test binary.
pub fn server() -> &'static GitServer {
    static S: OnceLock<GitServer> = OnceLock::new();
    S.get_or_init(GitServer::start)
}

impl GitServer {
    fn start() -> GitServer {
        // Under the test environment's directory, removed with the registries.
        let root = tempfile::Builder::new().prefix("git-").tempdir_in(&crate::common::env().dir).unwrap().keep();
        let base = root.join("srv");
        let work = root.join("work");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::create_dir_all(&work).unwrap();

        // lib.git: the submodule.
        let lib_w = work.join("lib");
        std::fs::create_dir_all(&lib_w).unwrap();
        git(&lib_w, &["init", "-q", "-b", "main"]);
        write(&lib_w, "lib.txt", b"from the submodule\n");
        git(&lib_w, &["add", "-A"]);
        git(&lib_w, &["commit", "-qm", "lib"]);
        let lib = git(&lib_w, &["rev-parse", "HEAD"]);
        git(&work, &["clone", "-q", "--bare", lib_w.to_str().unwrap(), base.join("lib.git").to_str().unwrap()]);

        // repo.git
        let w = work.join("repo");
        std::fs::create_dir_all(&w).unwrap();
        git(&w, &["init", "-q", "-b", "main"]);
        write(&w, "top.txt", b"top v1\n");
        write(&w, "sub/a.txt", b"a\n");
        write(&w, "sub/deeper/b.txt", b"b\n");
        write(&w, "run.sh", b"#!/bin/sh\necho hi\n");
        write(&w, "data.bin", &[7u8; 4096]);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(w.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("sub/a.txt", w.join("link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", w.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../..", w.join("up")).unwrap();
        git(&w, &["submodule", "add", "-q", base.join("lib.git").to_str().unwrap(), "mod"]);
        // Published with a relative URL: a client resolves it against the URL it fetched the
        // superproject from, so the submodule comes from the same server.
        git(&w, &["config", "-f", ".gitmodules", "submodule.mod.url", "../lib.git"]);
        git(&w, &["add", "-A"]);
        git(&w, &["commit", "-qm", "first"]);
        let first = git(&w, &["rev-parse", "HEAD"]);
        git(&w, &["tag", "v1"]);
        git(&w, &["tag", "-a", "v1a", "-m", "annotated"]);
        let v1a_tag = git(&w, &["rev-parse", "refs/tags/v1a"]);
        git(&w, &["checkout", "-qb", "dev"]);
        write(&w, "dev.txt", b"dev\n");
        git(&w, &["add", "-A"]);
        git(&w, &["commit", "-qm", "dev"]);
        let dev = git(&w, &["rev-parse", "HEAD"]);
        git(&w, &["checkout", "-q", "main"]);
        write(&w, "top.txt", b"top v2\n");
        git(&w, &["commit", "-qam", "second"]);
        let main = git(&w, &["rev-parse", "HEAD"]);
        let main_time: i64 = git(&w, &["log", "-1", "--format=%ct"]).parse().unwrap();
        git(&work, &["clone", "-q", "--bare", w.to_str().unwrap(), base.join("repo.git").to_str().unwrap()]);

        // hostile.git: a submodule that would read a repository of the build machine.
        let h = work.join("hostile");
        std::fs::create_dir_all(&h).unwrap();
        git(&h, &["init", "-q", "-b", "main"]);
        write(&h, "x.txt", b"x\n");
        git(&h, &["submodule", "add", "-q", base.join("lib.git").to_str().unwrap(), "m"]);
        git(
            &h,
            &["config", "-f", ".gitmodules", "submodule.m.url", &format!("file://{}", base.join("lib.git").display())],
        );
        git(&h, &["add", "-A"]);
        git(&h, &["commit", "-qm", "hostile"]);
        git(&work, &["clone", "-q", "--bare", h.to_str().unwrap(), base.join("hostile.git").to_str().unwrap()]);

        let http = serve_http(base.clone(), None);
        let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
        let accepted = vec![
            format!("Basic {}", b64(&format!("{AUTH_USER}:{AUTH_PASSWORD}"))),
            format!("Basic {}", b64(&format!("{AUTH_TOKEN}:"))),
        ];
        let http_auth = serve_http(base.clone(), Some(accepted.clone()));
        let https_auth = serve_https(base.clone(), accepted);
        let gitp = serve_git(base.clone());
        GitServer { base, http, http_auth, https_auth, git: gitp, first, main, dev, v1a_tag, main_time, lib }
    }

    /// A new bare repository `name` with one commit holding `file` (`name.txt`); returns its
    /// work tree (commit there, then [`GitServer::publish`]).
    pub fn new_repo(&self, name: &str, content: &str) -> PathBuf {
        let w = self.base.parent().unwrap().join("work").join(name);
        std::fs::create_dir_all(&w).unwrap();
        git(&w, &["init", "-q", "-b", "main"]);
        write(&w, "file.txt", content.as_bytes());
        git(&w, &["add", "-A"]);
        git(&w, &["commit", "-qm", "one"]);
        let bare = self.base.join(format!("{name}.git"));
        git(&w, &["clone", "-q", "--bare", w.to_str().unwrap(), bare.to_str().unwrap()]);
        w
    }

    /// Commits a new `file.txt` in the work tree of `name` and pushes it; returns the commit.
    pub fn advance(&self, name: &str, content: &str) -> String {
        let w = self.base.parent().unwrap().join("work").join(name);
        write(&w, "file.txt", content.as_bytes());
        git(&w, &["commit", "-qam", "next"]);
        let bare = self.base.join(format!("{name}.git"));
        git(&w, &["push", "-q", bare.to_str().unwrap(), "main"]);
        git(&w, &["rev-parse", "HEAD"])
    }
}

/// `git daemon --inetd` on every connection: git's own protocol, anonymous, read-only.
fn serve_git(base: PathBuf) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("git://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            let base = base.clone();
            std::thread::spawn(move || {
                let (Ok(r), Ok(w)) = (conn.try_clone(), conn.try_clone()) else { return };
                let _ = Command::new("git")
                    .args(["daemon", "--inetd", "--export-all", "--informative-errors"])
                    .arg(format!("--base-path={}", base.display()))
                    .arg(&base)
                    .stdin(Stdio::from(std::os::fd::OwnedFd::from(r)))
                    .stdout(Stdio::from(std::os::fd::OwnedFd::from(w)))
                    .stderr(Stdio::null())
                    .status();
            });
        }
    });
    url
}

/// A tiny HTTP/1.1 server running `git http-backend` (CGI) for every request: git's smart
/// HTTP protocol, as hosting services speak it.
fn serve_http(base: PathBuf, accepted: Option<Vec<String>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            let base = base.clone();
            let accepted = accepted.clone();
            std::thread::spawn(move || {
                let mut conn = conn;
                let _ = cgi(&mut conn, &base, accepted.as_deref());
            });
        }
    });
    url
}

/// [`serve_http`] behind TLS (rustls, the engine's own TLS library), for clients that must be
/// told not to verify the certificate.
fn serve_https(base: PathBuf, accepted: Vec<String>) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = &crate::common::env().dir;
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("tls.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("tls.key")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = std::sync::Arc::new(config);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            let (base, accepted, config) = (base.clone(), accepted.clone(), config.clone());
            std::thread::spawn(move || {
                let Ok(server) = rustls::ServerConnection::new(config) else { return };
                let mut tls = rustls::StreamOwned::new(server, conn);
                if cgi(&mut tls, &base, Some(&accepted)).is_ok() {
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            });
        }
    });
    url
}

fn cgi<S: Read + Write>(conn: &mut S, base: &Path, accepted: Option<&[String]>) -> std::io::Result<()> {
    let mut r = BufReader::new(&mut *conn);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("/").to_string());
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    drop(r);
    if let Some(ok) = accepted
        && !header("authorization").is_some_and(|a| ok.contains(&a))
    {
        let body = "credentials required\n";
        return conn.write_all(
            format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", base)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(t) = header("content-type") {
        cmd.env("CONTENT_TYPE", t);
    }
    if let Some(p) = header("git-protocol") {
        cmd.env("GIT_PROTOCOL", p);
    }
    if let Some(e) = header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", e);
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out)?;
    let _ = writer.join();
    let _ = child.wait();
    // CGI headers, a blank line, the body.
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let split = split.or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (head, rest) = match split {
        Some((i, n)) => (String::from_utf8_lossy(&out[..i]).into_owned(), out[i + n..].to_vec()),
        None => (String::new(), out),
    };
    let mut status = "200 OK".to_string();
    let mut resp_headers = String::new();
    for h in head.lines() {
        match h.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            Some(_) => resp_headers.push_str(&format!("{h}\r\n")),
            None => {}
        }
    }
    conn.write_all(
        format!("HTTP/1.1 {status}\r\n{resp_headers}Content-Length: {}\r\nConnection: close\r\n\r\n", rest.len())
            .as_bytes(),
    )?;
    conn.write_all(&rest)?;
    conn.flush()
}
