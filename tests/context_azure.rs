//! `--context https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB` end to end against Azurite,
//! Microsoft's storage emulator (from npm, started here on a free port of 127.0.0.1 with an
//! account and key of its own, in memory, telemetry off, over https with a CA of ours trusted
//! through `SSL_CERT_FILE`), reached through `AZURE_STORAGE_CONNECTION_STRING`'s
//! `BlobEndpoint` as any Azure tool would be. Contexts are uploaded and SAS tokens signed by
//! Microsoft's Python SDK (`tests/azure_support/blob.py`); images are pushed to the local
//! registry and checked with skopeo and umoci. Covered: kaniko's `AZURE_STORAGE_ACCESS_KEY`
//! (Shared Key), the connection string's key, a SAS token in the URL, a public container read
//! anonymously, AKS workload identity (the pod's token exchanged at `AZURE_AUTHORITY_HOST`, a
//! stand-in for Entra's token endpoint, for a token Azurite's OAuth check accepts),
//! `--context-sub-path`; refusals that name what to check; a hostile archive; and
//! no key, token or signature in anything trowel printed, recorded or pushed.

mod common;
mod fs_support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::context::{assert_secret_absent, context_origin};
use common::*;
use fs_support::TarMaker;

const ACCOUNT: &str = "trowelacct";
/// base64 of "trowel-azure-key-5ecret-0123456789": the account's key in Azurite.
const KEY: &str = "dHJvd2VsLWF6dXJlLWtleS01ZWNyZXQtMDEyMzQ1Njc4OQ==";

/// The workload identity the token endpoint stand-in accepts.
const TENANT: &str = "7e7e7e7e-0000-4000-8000-000000000001";
const CLIENT_ID: &str = "c1c1c1c1-0000-4000-8000-000000000002";
const FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.ZmVkZXJhdGVkLXBvZC10b2tlbi01ZWNyZXQ.c2ln";

struct Azurite {
    /// `https://127.0.0.1:PORT/trowelacct`: the account's blob endpoint, path style.
    endpoint: String,
    /// The CA of Azurite's certificate.
    ca: PathBuf,
    /// `http://127.0.0.1:PORT`: the Entra token endpoint stand-in (`tests/azure_support/entra.py`).
    authority: String,
    /// Where `scripts/azure-test-tools.sh` installed Azurite and the Python SDK.
    tools: PathBuf,
    /// The watcher shell, kept: it ends with this process.
    _processes: std::sync::Mutex<Vec<std::process::Child>>,
}

fn openssl(dir: &std::path::Path, args: &str) {
    let o = run(Command::new("openssl").current_dir(dir).args(args.split(' ')));
    assert!(o.status.success(), "openssl {args}: {}", stderr(&o));
}

/// Azurite, installed (once per machine) and started (once per test binary); it stops when the
/// test process ends.
fn azurite() -> &'static Azurite {
    static A: OnceLock<Azurite> = OnceLock::new();
    A.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/azure-test-tools.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/azure-test-tools.sh");
        assert!(
            out.status.success(),
            "scripts/azure-test-tools.sh could not install Azurite (npm) and azure-storage-blob (PyPI): these tests \
             need both (see its output above; is the network to the npm registry and PyPI up?)"
        );
        let tools = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Over https (Azurite takes a bearer token only so), its certificate from a CA of ours.
        let tls = tempfile::Builder::new().prefix("trowel-azurite-tls-").tempdir_in(&common::env().dir).unwrap().keep();
        openssl(
            &tls,
            "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=trowel-azure-test-CA",
        );
        openssl(&tls, "req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1");
        std::fs::write(tls.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
        openssl(
            &tls,
            "x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext.cnf",
        );
        // In memory: nothing to clean up. No telemetry: nothing leaves 127.0.0.1. A watcher
        // shell: Azurite ends with this test process (or if it dies, so does the wait).
        let script = format!(
            "{bin} --blobHost 127.0.0.1 --blobPort {port} --inMemoryPersistence --disableTelemetry --silent \
             --skipApiVersionCheck --oauth basic --cert {tls}/srv.pem --key {tls}/srv.key & a=$!; \
             while kill -0 {me} 2>/dev/null && kill -0 $a 2>/dev/null; do sleep 0.5; done; kill $a 2>/dev/null; \
             rm -rf {tls}",
            bin = tools.join("node/node_modules/.bin/azurite-blob").display(),
            tls = tls.display(),
            me = std::process::id(),
        );
        let watcher = Command::new("bash")
            .args(["-c", &script])
            .env("AZURITE_ACCOUNTS", format!("{ACCOUNT}:{KEY}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start Azurite");
        let t0 = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed().as_secs() < 60, "Azurite did not listen on 127.0.0.1:{port} within 60 s");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let mut entra = Command::new(tools.join("venv/bin/python"))
            .arg(repo_root().join("tests/azure_support/entra.py"))
            .args([TENANT, CLIENT_ID, FEDERATED_TOKEN])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the token endpoint");
        let mut entra_port = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(entra.stdout.take().unwrap()), &mut entra_port)
            .unwrap();
        let pid = entra.id();
        let entra_watcher = Command::new("bash")
            .args(["-c", &format!("while kill -0 {} 2>/dev/null; do sleep 0.5; done; kill {pid}", std::process::id())])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Azurite {
            endpoint: format!("https://127.0.0.1:{port}/{ACCOUNT}"),
            ca: tls.join("ca.pem"),
            authority: format!("http://127.0.0.1:{}", entra_port.trim()),
            tools,
            _processes: vec![watcher, entra, entra_watcher].into(),
        }
    })
}

/// The connection string the SDK uses: with the key.
fn sdk_connection_string() -> String {
    format!(
        "DefaultEndpointsProtocol=https;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={};",
        azurite().endpoint
    )
}

/// The connection string trowel is given to find the emulator: no credential in it.
fn endpoint_only() -> String {
    format!("AccountName={ACCOUNT};BlobEndpoint={}", azurite().endpoint)
}

fn sdk(args: &[&str]) -> String {
    let a = azurite();
    let o = run(Command::new(a.tools.join("venv/bin/python"))
        .arg(repo_root().join("tests/azure_support/blob.py"))
        .arg(sdk_connection_string())
        .args(args)
        .env("REQUESTS_CA_BUNDLE", &a.ca));
    assert_ok(&o);
    stdout(&o).trim().to_string()
}

/// Uploads `bytes` as `container/name` (the container made first, public when asked).
fn upload(container: &str, name: &str, bytes: &[u8], public: bool) -> String {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    let mut args = vec!["upload", container, name, f.path().to_str().unwrap()];
    if public {
        args.push("public");
    }
    sdk(&args);
    format!("https://{ACCOUNT}.blob.core.windows.net/{container}/{name}")
}

/// `app/` holds a Dockerfile and `hello.txt`; `other.txt` is outside it. gzip-compressed.
fn context_archive() -> Vec<u8> {
    let df = format!("FROM {}\nCOPY . /ctx/\n", env().busybox());
    let tar = TarMaker::new()
        .dir("app")
        .file("app/Dockerfile", df.as_bytes())
        .file("app/hello.txt", b"hello from azure\n")
        .file("other.txt", b"not in the sub path\n")
        .finish();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&tar).unwrap();
    e.finish().unwrap()
}

/// Builds `context` with `--context-sub-path app` and only `vars` of the Azure variables set;
/// pushes when `push`. Returns the output, the destination and the trace's text.
fn build(context: &str, vars: &[(&str, &str)], push: bool) -> (Output, String, String) {
    let dest = format!("{}/{}:1", env().registry, unique_repo("ctxazure"));
    let trace = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = trowel();
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AZURE_")) {
        cmd.env_remove(k);
    }
    cmd.env("SSL_CERT_FILE", &azurite().ca);
    cmd.envs(vars.iter().copied()).args(["build", "--context", context, "--context-sub-path", "app", "--trace"]);
    cmd.arg(trace.path());
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
    assert_eq!(Tree::content(&u.rootfs(), "/ctx/hello.txt"), "hello from azure\n");
    assert!(!u.tree().has("/ctx/other.txt"), "only the sub path is the context");
}

#[test]
fn shared_key_from_kanikos_variable_or_the_connection_string() {
    let bytes = context_archive();
    let url = upload("private", "dir/ctx.tar.gz", &bytes, false);
    let conn = endpoint_only();
    let (o, dest, trace) =
        build(&url, &[("AZURE_STORAGE_CONNECTION_STRING", &conn), ("AZURE_STORAGE_ACCESS_KEY", KEY)], true);
    assert_ok(&o);
    check_image(&dest);
    let got = context_origin(&trace);
    assert_eq!(got["kind"], "azure");
    assert_eq!(got["source"], url.as_str());
    assert_eq!(got["digest"], format!("sha256:{}", sha256_hex(&bytes)));
    assert_eq!(got["bytes"], bytes.len() as u64);
    assert_eq!(got["sub_path"], "app");
    assert_secret_absent(KEY, &o, &trace, Some(&dest));

    // The key in the connection string, as the SDKs and `az` take it; a query that is not a
    // SAS token is sent, and signed.
    let with_key = format!("{conn};AccountKey={KEY}");
    let (o, dest, trace) = build(&format!("{url}?timeout=30"), &[("AZURE_STORAGE_CONNECTION_STRING", &with_key)], true);
    assert_ok(&o);
    check_image(&dest);
    assert_secret_absent(KEY, &o, &trace, Some(&dest));
}

#[test]
fn a_sas_token_in_the_url_needs_no_key_and_is_never_shown() {
    let url = upload("private", "sas/ctx.tar.gz", &context_archive(), false);
    let sas = sdk(&["sas", "private", "sas/ctx.tar.gz"]);
    let sig = sas.split('&').find_map(|kv| kv.strip_prefix("sig=")).expect("a signature").to_string();
    let (o, dest, trace) =
        build(&format!("{url}?{sas}"), &[("AZURE_STORAGE_CONNECTION_STRING", &endpoint_only())], true);
    assert_ok(&o);
    check_image(&dest);
    assert_eq!(context_origin(&trace)["source"], format!("{url}?…"));
    let decoded = sig.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=");
    for secret in [sas.as_str(), sig.as_str(), decoded.as_str()] {
        assert_secret_absent(secret, &o, &trace, Some(&dest));
    }
    // A token for another blob is refused, with what to check.
    let other = upload("private", "sas/other.tar.gz", &context_archive(), false);
    let (o, _, trace) =
        build(&format!("{other}?{sas}"), &[("AZURE_STORAGE_CONNECTION_STRING", &endpoint_only())], false);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "error: build context {other}?…: the account {ACCOUNT} refused the URL's SAS token (HTTP 403"
        )),
        "{err}"
    );
    assert!(err.contains("allows reading (sp=r)"), "{err}");
    assert_secret_absent(&sig, &o, &trace, None);
}

#[test]
fn a_public_container_is_read_anonymously_a_private_one_says_what_to_set() {
    let url = upload("public", "ctx.tar.gz", &context_archive(), true);
    let (o, dest, _) = build(&url, &[("AZURE_STORAGE_CONNECTION_STRING", &endpoint_only())], true);
    assert_ok(&o);
    check_image(&dest);

    let url = upload("private", "anon/ctx.tar.gz", &context_archive(), false);
    let (o, _, _) = build(&url, &[("AZURE_STORAGE_CONNECTION_STRING", &endpoint_only())], false);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&format!("error: build context {url}: the blob \"anon/ctx.tar.gz\" could not be read anonymously from {} (AZURE_STORAGE_CONNECTION_STRING) (HTTP 403", azurite().endpoint)), "{err}");
    assert!(err.contains("give a credential: AZURE_STORAGE_ACCESS_KEY"), "{err}");
}

#[test]
fn refusals_name_what_to_check_and_hostile_archives_are_refused() {
    let url = upload("private", "err/ctx.tar.gz", &context_archive(), false);
    let conn = endpoint_only();
    let with_key = |k: &'static str| {
        [("AZURE_STORAGE_CONNECTION_STRING", conn.clone()), ("AZURE_STORAGE_ACCESS_KEY", k.to_string())]
    };
    let vars = |v: &[(&'static str, String)]| v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let build_with = |context: &str, v: &[(&'static str, String)]| {
        let v = vars(v);
        let refs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
        build(context, &refs, false)
    };

    // A wrong key: the variable is named, the key is not shown.
    let wrong = "d3Jvbmcta2V5LW5vdC10aGUtYWNjb3VudHM=";
    let (o, _, trace) = build_with(&url, &with_key(wrong));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&format!("the account {ACCOUNT} refused the key (HTTP ")), "{err}");
    assert!(err.contains("check AZURE_STORAGE_ACCESS_KEY"), "{err}");
    assert_secret_absent(wrong, &o, &trace, None);

    // No such blob, no such container.
    let (o, _, _) = build_with(&url.replace("ctx.tar.gz", "nope.tar.gz"), &with_key(KEY));
    assert!(stderr(&o).contains("no blob \"err/nope.tar.gz\" in the container \"private\""), "{}", stderr(&o));
    let (o, _, _) = build_with(&url.replace("/private/", "/nosuch/"), &with_key(KEY));
    assert!(stderr(&o).contains(&format!("no container \"nosuch\" in the account {ACCOUNT}")), "{}", stderr(&o));

    // A connection string for another account is refused before anything is sent.
    let (o, _, _) = build_with(&url.replace(ACCOUNT, "otheracct"), &with_key(KEY));
    assert!(
        stderr(&o).contains(
            "AZURE_STORAGE_CONNECTION_STRING is for the account \"trowelacct\", the context URL names \"otheracct\""
        ),
        "{}",
        stderr(&o)
    );

    // A hostile archive: refused as for tar://, naming the entry, nothing written outside.
    let df = format!("FROM {}\n", env().busybox());
    let hostile = TarMaker::new().file("app/Dockerfile", df.as_bytes()).file("../../canary-azure", b"pwned").finish();
    let hurl = upload("private", "hostile.tar", &hostile, false);
    let (o, _, _) = build_with(&hurl, &with_key(KEY));
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!("error: build context {hurl}: refused: ")) && err.contains("../../canary-azure"),
        "{err}"
    );
}

#[test]
fn workload_identity_exchanges_the_pods_token_for_a_bearer_token() {
    let a = azurite();
    let url = upload("private", "wi/ctx.tar.gz", &context_archive(), false);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, format!("{FEDERATED_TOKEN}\n")).unwrap();
    let conn = endpoint_only();
    let wi = |client: &'static str| {
        vec![
            ("AZURE_STORAGE_CONNECTION_STRING", conn.clone()),
            ("AZURE_FEDERATED_TOKEN_FILE", token_file.display().to_string()),
            ("AZURE_CLIENT_ID", client.to_string()),
            ("AZURE_TENANT_ID", TENANT.to_string()),
            ("AZURE_AUTHORITY_HOST", format!("{}/", a.authority)),
        ]
    };
    let as_refs = |v: &[(&'static str, String)]| v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let vars = as_refs(&wi(CLIENT_ID));
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (o, dest, trace) = build(&url, &refs, true);
    assert_ok(&o);
    check_image(&dest);
    assert_secret_absent(FEDERATED_TOKEN, &o, &trace, Some(&dest));
    // The access token entra.py made starts with this JWT header (base64url of its JSON).
    assert_secret_absent("eyJ0eXAiOiAiSldUIiwgImFsZyI6ICJSUzI1NiJ9", &o, &trace, Some(&dest));

    // An identity Entra does not know: its answer, and the variables to check.
    let vars = as_refs(&wi("00000000-0000-4000-8000-00000000dead"));
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (o, _, trace) = build(&url, &refs, false);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(
            "Entra ID refused the workload identity's token request (HTTP 400, unauthorized_client: AADSTS700016"
        ),
        "{err}"
    );
    assert!(err.contains("check AZURE_CLIENT_ID (00000000-0000-4000-8000-00000000dead), AZURE_TENANT_ID"), "{err}");
    assert_secret_absent(FEDERATED_TOKEN, &o, &trace, None);
}
