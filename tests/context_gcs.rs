//! `--context gs://BUCKET/OBJECT` and kaniko's `--bucket` end to end, against real servers on
//! 127.0.0.1 that this test starts once (`tests/gcs/fake_google.py`, installed from PyPI into a
//! virtualenv under the target dir by `scripts/gcs-test-tools.sh`):
//!
//! - the GCS emulator (PyPI `gcp-storage-emulator`) through `STORAGE_EMULATOR_HOST`, the contexts
//!   put there by Google's own Python client (`google-cloud-storage`, `tests/gcs/upload.py`);
//! - the same storage behind bearer tokens (`TROWEL_GCS_ENDPOINT`), with a token endpoint that
//!   verifies a service account key's RS256 JWT with the public key of a key openssl made here,
//!   takes an `authorized_user` refresh token, and a metadata server (`GCE_METADATA_HOST`).
//!
//! Images are pushed to the local registry and checked with skopeo and umoci. The access tokens,
//! the private key and the refresh token appear in nothing trowel printed, recorded or pushed.
//! Errors (no such object, a refused key, access denied, no credentials anywhere, a hostile
//! archive) say what to check.

mod common;
mod fs_support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use common::context::{assert_secret_absent, context_origin};
use common::*;
use fs_support::TarMaker;

const EMAIL: &str = "ctx-reader@trowel-test.iam.gserviceaccount.com";
const CLIENT_SECRET: &str = "d-FL95Q19q7MQmFpd7hHD0Ty";
const REFRESH_TOKEN: &str = "1//0gRefreshTokenForTrowelTests-xyzzy42";

/// The servers, the key files and the uploaded archives, made once per test binary.
struct Google {
    dir: PathBuf,
    emulator: String,
    storage: String,
    google: String,
    /// The gzip archive at `gs://ctx/dir/ctx.tar.gz` and `gs://ctx/context.tar.gz`.
    archive: Vec<u8>,
    _server: Mutex<(Child, ChildStdin)>,
}

fn google() -> &'static Google {
    static G: OnceLock<Google> = OnceLock::new();
    G.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().to_path_buf();
        let venv = target.join("gcs-test-tools");
        let o = run(Command::new(repo_root().join("scripts/gcs-test-tools.sh")).arg(&venv));
        assert!(
            o.status.success(),
            "could not install the GCS emulator and Google's storage client from PyPI into {} \
             (scripts/gcs-test-tools.sh; is PyPI reachable?):\n{}{}",
            venv.display(),
            stdout(&o),
            stderr(&o)
        );
        let dir = tempfile::tempdir_in(&common::env().dir).unwrap().keep();
        let key = dir.join("key.pem");
        openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key.to_str().unwrap()]);
        openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout", "-out", dir.join("pub.pem").to_str().unwrap()]);
        let mut child = Command::new(venv.join("bin/python"))
            .arg(repo_root().join("tests/gcs/fake_google.py"))
            .arg("--state")
            .arg(&dir)
            .arg("--public-key")
            .arg(dir.join("pub.pem"))
            .args(["--client-email", EMAIL, "--client-secret", CLIENT_SECRET, "--refresh-token", REFRESH_TOKEN])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tests/gcs/fake_google.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let ports: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("fake_google.py did not start ({e}): {line:?}"));
        let url = |k: &str| format!("http://127.0.0.1:{}", ports[k]);
        let (emulator, storage, google) = (url("emulator"), url("storage"), url("google"));
        let archive = gzip(&context_tar());
        let hostile = TarMaker::new().file("Dockerfile", b"FROM scratch\n").file("../escaped", b"pwned").finish();
        for (bucket, object, bytes) in [
            ("ctx", "dir/ctx.tar.gz", &archive),
            ("ctx", "context.tar.gz", &archive),
            ("ctx", "hostile.tar", &hostile),
            ("forbidden", "context.tar.gz", &archive),
        ] {
            let f = dir.join("upload");
            std::fs::write(&f, bytes).unwrap();
            let o = run(Command::new(venv.join("bin/python"))
                .arg(repo_root().join("tests/gcs/upload.py"))
                .args([bucket, object])
                .arg(&f)
                .env("STORAGE_EMULATOR_HOST", &emulator));
            assert_ok(&o);
        }
        // Standard input stays open while this process lives: the server ends with it.
        let stdin = child.stdin.take().unwrap();
        Google { dir, emulator, storage, google, archive, _server: Mutex::new((child, stdin)) }
    })
}

fn openssl(args: &[&str]) {
    let o = run(Command::new("openssl").args(args));
    assert_ok(&o);
}

/// `app/` holds a Dockerfile and `hello.txt`; `other.txt` is outside it.
fn context_tar() -> Vec<u8> {
    let df = format!("FROM {}\nCOPY . /ctx/\n", env().busybox());
    TarMaker::new()
        .dir("app")
        .file("app/Dockerfile", df.as_bytes())
        .file("app/hello.txt", b"hello from gcs\n")
        .file("Dockerfile", df.as_bytes())
        .file("other.txt", b"at the top\n")
        .finish()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// Runs `trowel build` with `args`, every Google variable of this process removed and `vars`
/// set (gcloud's directory an empty one unless `vars` say otherwise); returns the output, the
/// destination and the trace's text.
fn build(args: &[&str], vars: &[(&str, String)]) -> (Output, String, String) {
    let dest = format!("{}/{}:1", env().registry, unique_repo("ctxgcs"));
    let trace = tempfile::NamedTempFile::new().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = trowel();
    for v in ["GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "TROWEL_GCS_ENDPOINT", "GCE_METADATA_HOST"] {
        cmd.env_remove(v);
    }
    cmd.env("CLOUDSDK_CONFIG", empty.path());
    for (k, v) in vars {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    cmd.args(["build", "--destination", &dest, "--trace"]).arg(trace.path()).args(args);
    let o = run(&mut cmd);
    (o, dest, std::fs::read_to_string(trace.path()).unwrap_or_default())
}

/// The tokens the fake servers issued whose kind is `kind` (`sa`, `user`, `md`).
fn tokens(kind: &str) -> Vec<String> {
    let all = std::fs::read_to_string(google().dir.join("tokens")).unwrap_or_default();
    all.lines().filter(|t| t.starts_with(&format!("ya29.{kind}-"))).map(str::to_string).collect()
}

fn requests() -> String {
    std::fs::read_to_string(google().dir.join("requests")).unwrap_or_default()
}

#[test]
fn from_the_emulator_by_url_by_bucket_and_with_a_sub_path() {
    let g = google();
    let emu = [("STORAGE_EMULATOR_HOST", g.emulator.clone())];
    let (o, dest, trace) = build(&["--context", "gs://ctx/dir/ctx.tar.gz", "--context-sub-path", "app"], &emu);
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/ctx/hello.txt"), "hello from gcs\n");
    assert!(!u.tree().has("/ctx/other.txt"), "only the sub path is the context");
    let from = context_origin(&trace);
    assert_eq!(from["kind"], "gcs");
    assert_eq!(from["source"], "gs://ctx/dir/ctx.tar.gz");
    assert_eq!(from["digest"], format!("sha256:{}", sha256_hex(&g.archive)));
    assert_eq!(from["bytes"], g.archive.len() as u64);
    assert_eq!(from["sub_path"], "app");
    let log = stderr(&o) + &stdout(&o);
    assert!(log.contains("Build context: gcs gs://ctx/dir/ctx.tar.gz"), "{log}");

    // kaniko's --bucket NAME: gs://NAME/context.tar.gz, here as -b.
    let (o, dest, trace) = build(&["-b", "ctx"], &emu);
    assert_ok(&o);
    assert_eq!(context_origin(&trace)["source"], "gs://ctx");
    assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/ctx/other.txt"), "at the top\n");
    // And it replaces a --context URL, as in kaniko.
    let (o, _, trace) = build(&["--bucket", "gs://ctx/dir/ctx.tar.gz", "--context", "tar:///nonexistent.tar"], &emu);
    assert_ok(&o);
    assert_eq!(context_origin(&trace)["source"], "gs://ctx/dir/ctx.tar.gz");
}

#[test]
fn a_service_account_key_is_exchanged_and_never_shown() {
    let g = google();
    let pem = std::fs::read_to_string(g.dir.join("key.pem")).unwrap();
    let token_uri = format!("{}/token", g.google);
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "trowel-test",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": EMAIL,
        "token_uri": token_uri,
    });
    let file = g.dir.join("sa.json");
    std::fs::write(&file, key.to_string()).unwrap();
    let vars =
        [("GOOGLE_APPLICATION_CREDENTIALS", file.display().to_string()), ("TROWEL_GCS_ENDPOINT", g.storage.clone())];
    let before = tokens("sa").len();
    let (o, dest, trace) = build(&["--context", "gs://ctx/dir/ctx.tar.gz", "--context-sub-path", "app"], &vars);
    assert_ok(&o);
    assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/ctx/hello.txt"), "hello from gcs\n");
    let issued = tokens("sa");
    assert_eq!(issued.len(), before + 1, "one token, from the verified JWT");
    assert!(requests().contains("storage GET /storage/v1/b/ctx/o/dir%2Fctx.tar.gz?alt=media auth=Bearer"));
    assert_secret_absent(issued.last().unwrap(), &o, &trace, Some(&dest));
    let middle = pem.lines().nth(5).unwrap();
    assert_secret_absent(middle, &o, &trace, Some(&dest));

    // Another key under the same name: the endpoint refuses its signature; the message names the
    // variable and the account, and holds no part of the key.
    let other = g.dir.join("other.pem");
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", other.to_str().unwrap()]);
    let other_pem = std::fs::read_to_string(&other).unwrap();
    let mut bad = key.clone();
    bad["private_key"] = other_pem.clone().into();
    let bad_file = g.dir.join("bad.json");
    std::fs::write(&bad_file, bad.to_string()).unwrap();
    let vars = [
        ("GOOGLE_APPLICATION_CREDENTIALS", bad_file.display().to_string()),
        ("TROWEL_GCS_ENDPOINT", g.storage.clone()),
    ];
    let (o, _, trace) = build(&["--context", "gs://ctx/dir/ctx.tar.gz"], &vars);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("HTTP 400: invalid_grant: Invalid JWT Signature."), "{err}");
    assert!(err.contains(&format!("GOOGLE_APPLICATION_CREDENTIALS={}", bad_file.display())), "{err}");
    assert!(err.contains(EMAIL) && err.contains("deleted or disabled"), "{err}");
    assert_secret_absent(other_pem.lines().nth(5).unwrap(), &o, &trace, None);

    // A key file that is not JSON.
    std::fs::write(&bad_file, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let (o, _, _) = build(&["--context", "gs://ctx/x.tar.gz"], &vars);
    assert!(stderr(&o).contains("is not a JSON credentials file"), "{}", stderr(&o));
}

#[test]
fn gclouds_user_credentials_from_the_home_directory() {
    let g = google();
    let home = g.dir.join("home");
    std::fs::create_dir_all(home.join(".config/gcloud")).unwrap();
    let adc = |refresh: &str| {
        let v = serde_json::json!({
            "type": "authorized_user",
            "client_id": "764086051850-test.apps.googleusercontent.com",
            "client_secret": CLIENT_SECRET,
            "refresh_token": refresh,
            "token_uri": format!("{}/token", g.google),
        });
        std::fs::write(home.join(".config/gcloud/application_default_credentials.json"), v.to_string()).unwrap();
    };
    adc(REFRESH_TOKEN);
    let vars = [
        ("HOME", home.display().to_string()),
        ("CLOUDSDK_CONFIG", String::new()),
        ("TROWEL_GCS_ENDPOINT", g.storage.clone()),
    ];
    let (o, _, trace) = build(&["--context", "gs://ctx", "--no-push"], &vars);
    assert_ok(&o);
    assert_eq!(context_origin(&trace)["kind"], "gcs");
    assert_secret_absent(tokens("user").last().expect("a user token"), &o, &trace, None);
    assert_secret_absent(REFRESH_TOKEN, &o, &trace, None);
    assert_secret_absent(CLIENT_SECRET, &o, &trace, None);

    adc("1//0gRevokedToken-abcdefgh");
    let (o, _, _) = build(&["--context", "gs://ctx", "--no-push"], &vars);
    let err = stderr(&o);
    assert!(err.contains("Token has been expired or revoked.") && err.contains("application-default login"), "{err}");
    assert!(err.contains("application_default_credentials.json (gcloud's application default credentials)"), "{err}");
    assert!(!err.contains("abcdefgh"), "{err}");
}

#[test]
fn the_metadata_server_and_what_it_may_not_read() {
    let g = google();
    let host = g.google.trim_start_matches("http://").to_string();
    let vars = [("GCE_METADATA_HOST", host), ("TROWEL_GCS_ENDPOINT", g.storage.clone())];
    let (o, dest, trace) = build(&["--context", "gs://ctx/dir/ctx.tar.gz", "--context-sub-path", "app"], &vars);
    assert_ok(&o);
    assert!(
        requests().contains("google GET /computeMetadata/v1/instance/service-accounts/default/token flavor=Google")
    );
    assert_secret_absent(tokens("md").last().expect("a metadata token"), &o, &trace, Some(&dest));

    // A bucket this account may not read: 403, what was used and what to grant.
    let (o, _, _) = build(&["--context", "gs://forbidden"], &vars);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("error: build context gs://forbidden: HTTP 403"), "{err}");
    assert!(err.contains("used: the metadata server's default service account"), "{err}");
    assert!(err.contains("roles/storage.objectViewer"), "{err}");

    // No credentials anywhere: every place looked at, and what to set.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = closed.local_addr().unwrap().to_string();
    drop(closed);
    let (o, _, _) = build(&["--context", "gs://ctx"], &[("GCE_METADATA_HOST", host)]);
    let err = stderr(&o);
    assert!(err.contains("no Google credentials") && err.contains("set GOOGLE_APPLICATION_CREDENTIALS"), "{err}");
}

#[test]
fn missing_objects_bad_tokens_and_hostile_archives_are_refused() {
    let g = google();
    let emu = [("STORAGE_EMULATOR_HOST", g.emulator.clone())];
    let (o, _, _) = build(&["--context", "gs://ctx/nope.tar.gz"], &emu);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("HTTP 404") && err.contains("no object \"nope.tar.gz\" in the bucket \"ctx\""), "{err}");
    // The object name is one encoded path segment: its `?` is part of the name, not a query.
    let (o, _, _) = build(&["--context", "gs://ctx/dir/ctx.tar.gz?x"], &emu);
    assert!(stderr(&o).contains("no object \"dir/ctx.tar.gz?x\""), "{}", stderr(&o));

    let (o, _, _) = build(&["--context", "gs://ctx/hostile.tar"], &emu);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("build context gs://ctx/hostile.tar: refused") && err.contains("../escaped"), "{err}");

    // --bucket beside a --context directory: one of the two is a mistake.
    let (o, _, _) = build(&["--bucket", "ctx", "--context", "/"], &emu);
    assert!(stderr(&o).contains("--bucket ctx and --context / (a directory) both name the build context"));
    // A token endpoint over plain http elsewhere than this machine is refused before it is used.
    let file = g.dir.join("remote-uri.json");
    let v = serde_json::json!({"type": "authorized_user", "client_id": "c", "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN, "token_uri": "http://oauth.example/token"});
    std::fs::write(&file, v.to_string()).unwrap();
    let (o, _, _) =
        build(&["--context", "gs://ctx"], &[("GOOGLE_APPLICATION_CREDENTIALS", file.display().to_string())]);
    assert!(stderr(&o).contains("must be https://"), "{}", stderr(&o));
}
