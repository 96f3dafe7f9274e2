//! `--context s3://BUCKET/KEY` end to end against moto (an S3 + STS + IAM server on 127.0.0.1
//! that checks every signature and IAM policy, filled through boto3): credentials from the
//! environment, from a profile file, and from a web identity traded at STS; path style from an
//! IP endpoint and from `S3_FORCE_PATH_STYLE=true`; the default object `context.tar.gz`;
//! `--context-sub-path`. The images are pushed to the local registry and checked with skopeo and
//! umoci; the keys are nowhere in what trowel printed, recorded or pushed. The refusals (no such
//! object, a wrong secret key, a user without the right, a hostile archive) say what to check.

mod common;
mod fs_support;
mod s3_support;

use std::io::Write;
use std::process::Output;
use std::sync::OnceLock;

use common::context::{assert_secret_absent, context_origin};
use common::*;
use fs_support::TarMaker;
use s3_support::{BUCKET, S3Server};

struct Fixture {
    server: S3Server,
    /// The bytes of `dir/ctx.tar.gz` and `context.tar.gz` (the same archive).
    archive: Vec<u8>,
}

/// The archive: `app/` holds a Dockerfile and `hello.txt`; `other.txt` is outside it; a
/// Dockerfile at the top too (for the default object, built without a sub path).
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let df = format!("FROM {}\nCOPY . /ctx/\nRUN cat /ctx/hello.txt\n", env().busybox());
        let top = format!("FROM {}\nCOPY app/hello.txt /top/\n", env().busybox());
        let tar = TarMaker::new()
            .dir("app")
            .file("app/Dockerfile", df.as_bytes())
            .file("app/hello.txt", b"hello from s3\n")
            .file("other.txt", b"not in the sub path\n")
            .file("Dockerfile", top.as_bytes())
            .finish();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&tar).unwrap();
        let archive = e.finish().unwrap();
        let objects = s3_support::objects_dir();
        std::fs::create_dir_all(objects.join("dir")).unwrap();
        std::fs::write(objects.join("dir/ctx.tar.gz"), &archive).unwrap();
        std::fs::write(objects.join("context.tar.gz"), &archive).unwrap();
        let hostile = TarMaker::new().file("Dockerfile", df.as_bytes()).file("../canary", b"pwned").finish();
        std::fs::write(objects.join("hostile.tar"), hostile).unwrap();
        Fixture { server: s3_support::start(&objects), archive }
    })
}

/// Builds `context` with only `vars` of the AWS and S3 variables (HOME an empty directory, so
/// no `~/.aws` of this machine is read); returns the output, the destination and the trace.
fn build(context: &str, vars: &[(&str, &str)], extra: &[&str]) -> (Output, String, String) {
    fixture();
    let dest = format!("{}/{}:1", env().registry, unique_repo("ctxs3"));
    let trace = tempfile::NamedTempFile::new().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut cmd = trowel();
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("S3_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home.path())
        .envs(vars.iter().copied())
        .args(["build", "--context", context, "--destination", &dest, "--trace"])
        .arg(trace.path())
        .args(extra);
    let o = run(&mut cmd);
    let t = std::fs::read_to_string(trace.path()).unwrap_or_default();
    (o, dest, t)
}

fn check_sub_path_image(dest: &str) {
    let u = pull_and_unpack(dest);
    assert_eq!(Tree::content(&u.rootfs(), "/ctx/hello.txt"), "hello from s3\n");
    let t = u.tree();
    assert!(t.has("/ctx/Dockerfile"));
    assert!(!t.has("/ctx/other.txt"), "only the sub path is the context");
}

fn env_keys(s: &S3Server) -> Vec<(&'static str, String)> {
    vec![
        ("S3_ENDPOINT", s.endpoint.clone()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", s.builder[0].clone()),
        ("AWS_SECRET_ACCESS_KEY", s.builder[1].clone()),
    ]
}

fn pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn env_keys_an_ip_endpoint_and_a_sub_path() {
    let f = fixture();
    let vars = env_keys(&f.server);
    let context = format!("s3://{BUCKET}/dir/ctx.tar.gz");
    let (o, dest, trace) = build(&context, &pairs(&vars), &["--context-sub-path", "app"]);
    assert_ok(&o);
    check_sub_path_image(&dest);
    let origin = context_origin(&trace);
    assert_eq!(origin["kind"], "s3");
    assert_eq!(origin["source"], context);
    assert_eq!(origin["digest"], format!("sha256:{}", sha256_hex(&f.archive)));
    assert_eq!(origin["bytes"], f.archive.len() as u64);
    assert_eq!(origin["sub_path"], "app");
    let log = stderr(&o) + &stdout(&o);
    assert!(log.contains(&format!("Build context: s3 {context}")), "{log}");
    assert_secret_absent(&f.server.builder[1], &o, &trace, Some(&dest));
}

#[test]
fn the_default_object_from_a_profile_by_host_name_with_path_style() {
    let f = fixture();
    let s = &f.server;
    let files = tempfile::tempdir().unwrap();
    let creds = files.path().join("credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n\n[ci]\naws_access_key_id = {}\n\
             aws_secret_access_key = {}\n",
            s.outsider[0], s.outsider[1], s.builder[0], s.builder[1]
        ),
    )
    .unwrap();
    let config = files.path().join("config");
    std::fs::write(&config, "[profile ci]\nregion = us-east-1\n").unwrap();
    // `localhost`, a name: without S3_FORCE_PATH_STYLE the bucket goes into the host name.
    let endpoint = s.endpoint.replace("127.0.0.1", "localhost");
    let base = vec![
        ("S3_ENDPOINT", endpoint.clone()),
        ("AWS_PROFILE", "ci".to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", creds.display().to_string()),
        ("AWS_CONFIG_FILE", config.display().to_string()),
    ];
    let mut path_style = base.clone();
    path_style.push(("S3_FORCE_PATH_STYLE", "true".into()));
    let (o, dest, trace) = build(&format!("s3://{BUCKET}"), &pairs(&path_style), &[]);
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/top/hello.txt"), "hello from s3\n");
    assert_eq!(context_origin(&trace)["digest"], format!("sha256:{}", sha256_hex(&f.archive)));
    assert_secret_absent(&s.builder[1], &o, &trace, Some(&dest));

    // Virtual-hosted: `trowel-ctx.localhost`, which no resolver here knows, and the message
    // says what to set. (Where a resolver maps every *.localhost to this machine, moto serves
    // the bucket by its host name too, and the build works.)
    let virtual_host = format!("{BUCKET}.localhost:0");
    let resolves =
        std::net::ToSocketAddrs::to_socket_addrs(&virtual_host.as_str()).is_ok_and(|mut a| a.next().is_some());
    let (o, _, _) = build(&format!("s3://{BUCKET}"), &pairs(&base), &["--no-push"]);
    if resolves {
        assert_ok(&o);
    } else {
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains(&format!("download from {}", endpoint.replace("://", &format!("://{BUCKET}."))))
                && err.contains("needs S3_FORCE_PATH_STYLE=true"),
            "{err}"
        );
    }
}

#[test]
fn a_web_identity_traded_at_sts() {
    let f = fixture();
    let s = &f.server;
    let dir = tempfile::tempdir().unwrap();
    let token = "eyJhbGciOiJSUzI1NiJ9.web-identity-5ecret.sig";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let vars = vec![
        ("S3_ENDPOINT", s.endpoint.clone()),
        ("AWS_ENDPOINT_URL_STS", s.endpoint.clone()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ROLE_ARN", s.role_arn.clone()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.display().to_string()),
    ];
    let (o, dest, trace) =
        build(&format!("s3://{BUCKET}/dir/ctx.tar.gz"), &pairs(&vars), &["--context-sub-path", "app"]);
    // No keys were given: moto, checking every signature, served the object to the role's
    // temporary keys from its STS (an anonymous request is refused: see below).
    assert_ok(&o);
    check_sub_path_image(&dest);
    assert_secret_absent(token, &o, &trace, Some(&dest));

    // The token file gone (a projected token not mounted): the refusal names the variable.
    // (moto's STS takes any token for any role, so a refused role is not tested here.)
    let mut other = vars.clone();
    other[4].1 = dir.path().join("missing").display().to_string();
    let (o, _, trace) = build(&format!("s3://{BUCKET}/dir/ctx.tar.gz"), &pairs(&other), &["--no-push"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("read the web identity token") && err.contains("(AWS_WEB_IDENTITY_TOKEN_FILE)"), "{err}");
    assert_secret_absent(token, &o, &trace, None);
}

#[test]
fn refusals_say_what_to_check_and_never_show_the_secret() {
    let f = fixture();
    let s = &f.server;
    let vars = env_keys(s);

    let (o, _, _) = build(&format!("s3://{BUCKET}/dir/nope.tar.gz"), &pairs(&vars), &["--no-push"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!("error: build context s3://{BUCKET}/dir/nope.tar.gz: the object \"dir/nope.tar.gz\" is not in the bucket \"{BUCKET}\"")),
        "{err}"
    );

    let (o, _, _) = build("s3://no-such-bucket/ctx.tar.gz", &pairs(&vars), &["--no-push"]);
    assert!(!o.status.success());
    // moto checks the policy before the bucket: the builder may read trowel-ctx only.
    let err = stderr(&o);
    assert!(err.contains("does not exist") || err.contains("access denied"), "{err}");

    let mut wrong = vars.clone();
    let wrong_secret = "wrong-5ecret-key-0123456789abcdefghijklmno";
    wrong[3].1 = wrong_secret.into();
    let (o, _, trace) = build(&format!("s3://{BUCKET}/dir/ctx.tar.gz"), &pairs(&wrong), &["--no-push"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("refused the request's signature") && err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    assert_secret_absent(wrong_secret, &o, &trace, None);

    let mut outsider = vars.clone();
    outsider[2].1 = s.outsider[0].clone();
    outsider[3].1 = s.outsider[1].clone();
    let (o, _, trace) = build(&format!("s3://{BUCKET}/dir/ctx.tar.gz"), &pairs(&outsider), &["--no-push"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!("access denied to s3://{BUCKET}/dir/ctx.tar.gz"))
            && err.contains("check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert_secret_absent(&s.outsider[1], &o, &trace, None);

    // No credentials at all: anonymous, refused, and the message lists where they are read.
    let anonymous = vec![("S3_ENDPOINT", s.endpoint.clone())];
    let (o, _, _) = build(&format!("s3://{BUCKET}/dir/ctx.tar.gz"), &pairs(&anonymous), &["--no-push"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("none were found (AWS_ACCESS_KEY_ID"), "{}", stderr(&o));
}

#[test]
fn a_hostile_archive_is_refused_naming_the_entry() {
    let f = fixture();
    let vars = env_keys(&f.server);
    let work = tempfile::tempdir().unwrap();
    let (o, _, _) = build(
        &format!("s3://{BUCKET}/hostile.tar"),
        &pairs(&vars),
        &["--no-push", "--work-dir", work.path().to_str().unwrap()],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!("error: build context s3://{BUCKET}/hostile.tar: refused: "))
            && err.contains("unsafe layer entry \"../canary\""),
        "{err}"
    );
    assert!(!work.path().join("canary").exists());
}
