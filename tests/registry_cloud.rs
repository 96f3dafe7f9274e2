//! The cloud registries' compiled-in logins end to end, with no docker config: a build pushes to
//! the htpasswd registry under an ECR name and under an Artifact Registry name (both on
//! 127.0.0.1 through `/etc/hosts`, which `scripts/testenv.sh` fills; plain HTTP through
//! `--insecure-registry`).
//!
//! - ECR: moto (`tests/ecr_support/fake_ecr.py`, the s3:// tests' emulator) checks the SigV4
//!   signature and IAM policy of `GetAuthorizationToken`, as AWS does, and answers with the test
//!   registry's user and password in ECR's shape; with static keys, with IRSA's web identity
//!   (STS on the same server through `AWS_ENDPOINT_URL`); refused for a user without
//!   `ecr:GetAuthorizationToken` and for a wrong secret key (a signature that does not hold),
//!   which fail the build saying what to check.
//! - Google: a metadata server (GKE Workload Identity's shape, `GCE_METADATA_HOST`) answers
//!   `Metadata-Flavor: Google` requests with the registry's password as the access token, which
//!   the registry takes as the password of `oauth2accesstoken`; refused, the build fails saying so.
//!
//! Neither password nor key is anywhere in what trowel printed or recorded.

mod common;

use std::io::{BufRead, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::context::assert_secret_absent;
use common::*;

const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const GOOGLE_HOST: &str = "trowel-test-docker.pkg.dev";

struct FakeEcr {
    endpoint: String,
    pusher: [String; 2],
    outsider: [String; 2],
    role_arn: String,
    /// Where the fake appends the registryIds of each token request.
    ids: std::path::PathBuf,
}

fn fake_ecr() -> &'static FakeEcr {
    static F: OnceLock<FakeEcr> = OnceLock::new();
    F.get_or_init(|| {
        let root = repo_root();
        let o = Command::new(root.join("scripts/s3-emulator.sh")).stderr(Stdio::inherit()).output().unwrap();
        assert!(o.status.success(), "scripts/s3-emulator.sh failed: the ECR tests need moto from PyPI");
        let python = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let ids = env().dir.join(format!("ecr-ids-{}", std::process::id()));
        let mut child = Command::new(&python)
            .arg(root.join("tests/ecr_support/fake_ecr.py"))
            .arg(std::process::id().to_string())
            .args([&env().auth_user, &env().auth_password])
            .arg(&ids)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        // It runs on until this process ends (it watches the pid).
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            let status = child.wait().ok();
            panic!("fake_ecr.py did not start (exit {status:?}); run tests/ecr_support/fake_ecr.py by hand")
        });
        let pair = |k: &str| [v[k][0].as_str().unwrap().to_string(), v[k][1].as_str().unwrap().to_string()];
        FakeEcr {
            endpoint: v["endpoint"].as_str().unwrap().to_string(),
            pusher: pair("pusher"),
            outsider: pair("outsider"),
            role_arn: v["role_arn"].as_str().unwrap().to_string(),
            ids,
        }
    })
}

/// `name` must reach the test registries: testenv.sh maps it in /etc/hosts.
fn check_resolves(name: &str) {
    use std::net::ToSocketAddrs;
    let ok = (name, 80).to_socket_addrs().is_ok_and(|mut a| a.any(|a| a.ip().is_loopback()));
    assert!(ok, "{name} does not resolve to 127.0.0.1: scripts/testenv.sh adds it to /etc/hosts (run as root)");
}

/// The auth registry under `host`'s name.
fn cloud_dest(host: &str, prefix: &str) -> String {
    check_resolves(host);
    let port = env().auth_registry.rsplit_once(':').unwrap().1.to_string();
    format!("{host}:{port}/{}:1", unique_repo(prefix))
}

/// Builds a one-step image and pushes it to `dest` with only `vars` of the cloud variables
/// (HOME an empty directory, no docker config); returns the output and the trace.
fn build(dest: &str, vars: &[(&str, &str)]) -> (Output, String) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}\nRUN echo cloud > /cloud\n", env().busybox()))
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let trace = tempfile::NamedTempFile::new().unwrap();
    let host_port = dest.split('/').next().unwrap();
    let mut cmd = trowel();
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("GCE_") || k == "DOCKER_AUTH_CONFIG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home.path())
        .env("DOCKER_CONFIG", home.path().join(".docker"))
        .envs(vars.iter().copied())
        .args(["build", "--context"])
        .arg(ctx.path())
        .args(["--destination", dest, "--insecure-registry", host_port, "--trace"])
        .arg(trace.path());
    let o = run(&mut cmd);
    (o, std::fs::read_to_string(trace.path()).unwrap_or_default())
}

/// The pushed image, read back with the registry's own credentials.
fn check_pushed(dest: &str) {
    let o = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        &format!("{}:{}", env().auth_user, env().auth_password),
        &format!("docker://{dest}"),
    ]));
    assert_ok(&o);
}

#[test]
fn ecr_with_static_keys_pushes_and_a_refusal_says_what_to_check() {
    let f = fake_ecr();
    let dest = cloud_dest(ECR_HOST, "ecr");
    let vars = [
        ("AWS_ENDPOINT_URL_ECR", f.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", &f.pusher[0]),
        ("AWS_SECRET_ACCESS_KEY", &f.pusher[1]),
    ];
    let (o, trace) = build(&dest, &vars);
    assert_ok(&o);
    check_pushed(&dest);
    // The registry id of the host was asked for, as the ECR helper asks.
    let ids = std::fs::read_to_string(&f.ids).unwrap();
    assert!(ids.lines().any(|l| l == r#"["123456789012"]"#), "{ids}");
    assert_secret_absent(&f.pusher[1], &o, &trace, None);
    assert_secret_absent(&env().auth_password, &o, &trace, None);

    // A user whose policy does not allow ecr:GetAuthorizationToken.
    let dest = cloud_dest(ECR_HOST, "ecr-refused");
    let vars = [
        ("AWS_ENDPOINT_URL_ECR", f.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", &f.outsider[0]),
        ("AWS_SECRET_ACCESS_KEY", &f.outsider[1]),
    ];
    let (o, trace) = build(&dest, &vars);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&format!("{ECR_HOST}:")) && err.contains("is an Amazon ECR registry"), "{err}");
    assert!(err.contains("refused GetAuthorizationToken for registry 123456789012 in us-east-1 (HTTP 403"), "{err}");
    assert!(err.contains("AccessDenied"), "{err}");
    assert!(err.contains("check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), "{err}");
    assert_secret_absent(&f.outsider[1], &o, &trace, None);

    // The pusher's key id with a wrong secret: the signature does not hold, and moto says so.
    let vars = [
        ("AWS_ENDPOINT_URL_ECR", f.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", &f.pusher[0]),
        ("AWS_SECRET_ACCESS_KEY", "not-the-pushers-secret-key"),
    ];
    let (o, _) = build(&dest, &vars);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("refused GetAuthorizationToken") && err.contains("Signature"), "{err}");

    // No AWS credentials at all: what to set.
    let (o, _) = build(&dest, &[("AWS_ENDPOINT_URL_ECR", f.endpoint.as_str())]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("no AWS credentials were found: set AWS_ACCESS_KEY_ID"), "{err}");
}

/// EKS with IRSA: a role and a token file, STS and ECR both at `AWS_ENDPOINT_URL`.
#[test]
fn ecr_with_a_web_identity_pushes() {
    let f = fake_ecr();
    let dest = cloud_dest(ECR_HOST, "ecr-irsa");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.irsa-token-of-the-pod.sig\n").unwrap();
    let vars = [
        ("AWS_ENDPOINT_URL", f.endpoint.as_str()),
        ("AWS_ROLE_ARN", &f.role_arn),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap()),
    ];
    let (o, trace) = build(&dest, &vars);
    assert_ok(&o);
    check_pushed(&dest);
    assert_secret_absent("irsa-token-of-the-pod", &o, &trace, None);
    assert_secret_absent(&env().auth_password, &o, &trace, None);
}

/// A metadata server on 127.0.0.1 that gives `token` (or refuses with 403) to requests with
/// `Metadata-Flavor: Google`; returns its address and the request lines it saw.
fn metadata_server(token: Option<String>) -> (String, std::sync::mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let first = req.lines().next().unwrap_or_default().to_string();
            let flavored = req.to_ascii_lowercase().contains("metadata-flavor: google");
            let _ = tx.send(first.clone());
            let (status, body) = match &token {
                Some(t)
                    if flavored && first.contains("/computeMetadata/v1/instance/service-accounts/default/token") =>
                {
                    ("200 OK", format!(r#"{{"access_token":"{t}","expires_in":3599,"token_type":"Bearer"}}"#))
                }
                _ => ("403 Forbidden", "Unable to generate access token; IAM returned 403 Forbidden".to_string()),
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nMetadata-Flavor: Google\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, rx)
}

#[test]
fn google_workload_identity_pushes_and_a_refusal_says_so() {
    let (addr, seen) = metadata_server(Some(env().auth_password.clone()));
    let dest = cloud_dest(GOOGLE_HOST, "gar");
    let (o, trace) = build(&dest, &[("GCE_METADATA_HOST", &addr)]);
    assert_ok(&o);
    check_pushed(&dest);
    let asked: Vec<String> = seen.try_iter().collect();
    assert!(asked.iter().any(|l| l.contains("/service-accounts/default/token")), "{asked:?}");
    assert_secret_absent(&env().auth_password, &o, &trace, None);

    let (addr, _) = metadata_server(None);
    let dest = cloud_dest(GOOGLE_HOST, "gar-refused");
    let (o, _) = build(&dest, &[("GCE_METADATA_HOST", &addr)]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&format!("{GOOGLE_HOST}:")) && err.contains("is a Google registry"), "{err}");
    assert!(err.contains("HTTP 403"), "{err}");
    assert!(err.contains("Workload Identity"), "{err}");
}
