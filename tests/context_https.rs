//! `--context https://HOST/PATH` (kaniko's `HTTPSTar`) end to end against a local https server
//! (`tests/https_support/server.py`: Python's http.server in TLS, its certificate issued by a CA
//! made here with openssl and trusted through `SSL_CERT_FILE`), built into images pushed to the
//! local registry and checked with skopeo and umoci: an archive of each compression trowel
//! reads (plain, gzip, zstd), basic auth from the URL and a presigned-looking query (both masked
//! in everything trowel printed, recorded or pushed), a 404, a redirect to plain http (refused,
//! nothing fetched there), and a server whose CA is not trusted.

mod common;
mod fs_support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::context::{assert_secret_absent, context_origin};
use common::*;
use fs_support::TarMaker;

const USER: &str = "ctxuser";
const PASSWORD: &str = "pw-5ecret-https-ctx";
const SIGNATURE: &str = "5ig-5ecret-0123456789abcdef";

struct Server {
    /// `https://127.0.0.1:PORT`
    url: String,
    /// The CA that issued the server's certificate.
    ca: PathBuf,
    /// Where the served files are.
    dir: PathBuf,
    /// A plain-http listener the downgrade redirect points at: nothing may reach it.
    plain: TcpListener,
    /// The server and its watcher, kept: they end with this process.
    _processes: std::sync::Mutex<Vec<std::process::Child>>,
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = run(Command::new("openssl").current_dir(dir).args(args));
    assert!(o.status.success(), "openssl {args:?}: {}", stderr(&o));
}

/// The server, with its CA, once per test binary; it stops when the test process ends.
fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("trowel-https-ctx-").tempdir_in(&common::env().dir).unwrap().keep();
        openssl(
            &dir,
            &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]
                .into_iter()
                .chain(["-subj", "/CN=trowel test context CA"])
                .collect::<Vec<_>>(),
        );
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "srv.key",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "srv.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "srv.pem",
            ]
            .into_iter()
            .chain(["-days", "2", "-extfile", "ext.cnf"])
            .collect::<Vec<_>>(),
        );
        let files = dir.join("files");
        std::fs::create_dir(&files).unwrap();
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        plain.set_nonblocking(true).unwrap();
        let plain_port = plain.local_addr().unwrap().port().to_string();
        let script = repo_root().join("tests/https_support/server.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&files)
            .args([dir.join("srv.pem"), dir.join("srv.key")])
            .args([USER, PASSWORD, SIGNATURE, &plain_port])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 (scripts/install-deps.sh installs it)");
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut port).unwrap();
        assert!(!port.trim().is_empty(), "the https server did not start (see above)");
        // A watcher ends the server, and removes its files, when this process ends.
        let pid = child.id();
        let me = std::process::id();
        let watcher = Command::new("bash")
            .args([
                "-c",
                &format!("while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill {pid}; rm -rf {}", dir.display()),
            ])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Server {
            url: format!("https://127.0.0.1:{}", port.trim()),
            ca: dir.join("ca.pem"),
            dir: files,
            plain,
            _processes: vec![child, watcher].into(),
        }
    })
}

/// `app/` holds a Dockerfile and `hello.txt`; `other.txt` is outside it.
fn context_tar() -> Vec<u8> {
    let df = format!("FROM {}\nCOPY . /ctx/\n", env().busybox());
    TarMaker::new()
        .dir("app")
        .file("app/Dockerfile", df.as_bytes())
        .file("app/hello.txt", b"hello over https\n")
        .file("other.txt", b"not in the sub path\n")
        .finish()
}

fn serve(name: &str, bytes: &[u8]) {
    std::fs::write(server().dir.join(name), bytes).unwrap();
}

/// Builds `context` with the server's CA in `SSL_CERT_FILE` (unless `trust` is false); pushes
/// when `push`. Returns the output, the destination and the trace's text.
fn build(context: &str, trust: bool, push: bool) -> (Output, String, String) {
    let dest = format!("{}/{}:1", env().registry, unique_repo("ctxhttps"));
    let trace = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = trowel();
    cmd.env_remove("SSL_CERT_FILE");
    if trust {
        cmd.env("SSL_CERT_FILE", &server().ca);
    }
    cmd.args(["build", "--context", context, "--context-sub-path", "app", "--trace"]).arg(trace.path());
    if push {
        cmd.args(["--destination", &dest]);
    } else {
        cmd.arg("--no-push");
    }
    let o = run(&mut cmd);
    (o, dest, std::fs::read_to_string(trace.path()).unwrap_or_default())
}

fn check_image(dest: &str) {
    let u = pull_and_unpack(dest);
    assert_eq!(Tree::content(&u.rootfs(), "/ctx/hello.txt"), "hello over https\n");
    assert!(!u.tree().has("/ctx/other.txt"), "only the sub path is the context");
}

#[test]
fn archives_of_each_compression_through_a_private_ca() {
    let plain = context_tar();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    for (name, bytes) in [("ctx.tar", &plain), ("ctx.tar.gz", &gz), ("ctx.tar.zst", &zst)] {
        serve(name, bytes);
        let url = format!("{}/{name}", server().url);
        let (o, dest, trace) = build(&url, true, true);
        assert_ok(&o);
        check_image(&dest);
        let got = context_origin(&trace);
        assert_eq!(got["kind"], "https", "{name}");
        assert_eq!(got["source"], url.as_str());
        assert_eq!(got["digest"], format!("sha256:{}", sha256_hex(bytes)), "{name}");
        assert_eq!(got["bytes"], bytes.len() as u64);
        assert_eq!(got["sub_path"], "app");
    }
    // Without the CA the server is not trusted: refused, saying why.
    let (o, _, _) = build(&format!("{}/ctx.tar", server().url), false, false);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&format!("error: build context {}/ctx.tar: download the archive:", server().url)), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

/// `SOURCE_DATE_EPOCH=context` with an archive over https, as BuildKit resolves it: the
/// server's `Last-Modified` when it says one, else the newest regular file in the archive (a
/// directory's time, newer still, does not count); what RUN sees as `$SOURCE_DATE_EPOCH` is
/// the number, and the image is dated by it.
#[test]
fn source_date_epoch_context_is_the_archives_last_modified_else_its_newest_file() {
    let df = format!("FROM {}\nARG SOURCE_DATE_EPOCH\nRUN echo \"[$SOURCE_DATE_EPOCH]\" > /sde\n", env().busybox());
    let archive = TarMaker::new()
        .dir_with("app", 0o755, 1_750_000_000)
        .file_with("app/Dockerfile", df.as_bytes(), 0o644, 0, 0, 1_600_000_000)
        .file_with("app/newest.txt", b"n\n", 0o644, 0, 0, 1_650_000_000)
        .file_with("other.txt", b"o\n", 0o644, 0, 0, 1_640_000_000)
        .finish();
    serve("dated.tar", &archive);
    // 2024-01-02T03:04:05Z, as the server says (`https_support/server.py`).
    for (path, seconds, created) in [
        ("dated.tar", 1_650_000_000, "2022-04-15T05:20:00Z"),
        ("dated/dated.tar", 1_704_164_645, "2024-01-02T03:04:05Z"),
    ] {
        let dest = format!("{}/{}:1", env().registry, unique_repo("ctxhttps-sde"));
        let trace = tempfile::NamedTempFile::new().unwrap();
        let o = run(trowel()
            .env("SSL_CERT_FILE", &server().ca)
            .args(["build", "--context", &format!("{}/{path}", server().url), "--context-sub-path", "app"])
            .args(["--build-arg", "SOURCE_DATE_EPOCH=context", "--destination", &dest, "--trace"])
            .arg(trace.path()));
        assert_ok(&o);
        let origin = context_origin(&std::fs::read_to_string(trace.path()).unwrap());
        assert_eq!(origin["time"], seconds, "{path}");
        let config = skopeo_config(&dest);
        assert_eq!(config["created"], created, "{path}");
        assert!(config["history"].as_array().unwrap().iter().any(|h| h["created"] == created), "{config}");
        assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/sde"), format!("[{seconds}]\n"), "{path}");
    }
}

#[test]
fn credentials_in_the_url_and_a_presigned_query_are_used_and_never_shown() {
    serve("auth.tar", &context_tar());
    let s = server();
    let host = s.url.trim_start_matches("https://");
    let (o, dest, trace) = build(&format!("https://{USER}:{PASSWORD}@{host}/private/auth.tar"), true, true);
    assert_ok(&o);
    check_image(&dest);
    assert_eq!(context_origin(&trace)["source"], format!("https://xxxxx:xxxxx@{host}/private/auth.tar"));
    assert_secret_absent(PASSWORD, &o, &trace, Some(&dest));
    // Without them: the server's 401, stated.
    let (o, _, _) = build(&format!("{}/private/auth.tar", s.url), true, false);
    assert!(
        stderr(&o).contains("the server answered HTTP 401 to the download: authentication required"),
        "{}",
        stderr(&o)
    );
    // A wrong password: refused, and not shown either.
    let (o, _, trace) = build(&format!("https://{USER}:wrong-pw-4242@{host}/private/auth.tar"), true, false);
    assert!(stderr(&o).contains("HTTP 401"), "{}", stderr(&o));
    assert_secret_absent("wrong-pw-4242", &o, &trace, None);

    let query = format!("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=300&X-Amz-Signature={SIGNATURE}");
    let (o, dest, trace) = build(&format!("{}/signed/auth.tar?{query}", s.url), true, true);
    assert_ok(&o);
    check_image(&dest);
    assert_eq!(context_origin(&trace)["source"], format!("{}/signed/auth.tar?…", s.url));
    assert_secret_absent(SIGNATURE, &o, &trace, Some(&dest));
}

#[test]
fn a_missing_archive_and_a_redirect_to_plain_http_are_refused() {
    let s = server();
    let (o, _, _) = build(&format!("{}/missing.tar.gz", s.url), true, false);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "error: build context {}/missing.tar.gz: the server answered HTTP 404 to the download: no such file here",
            s.url
        )),
        "{}",
        stderr(&o)
    );
    serve("down.tar", &context_tar());
    let (o, _, _) = build(&format!("{}/to-http/down.tar", s.url), true, false);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("a redirect from https to plain http"), "{}", stderr(&o));
    assert!(s.plain.accept().is_err(), "trowel followed the redirect to plain http");
}
