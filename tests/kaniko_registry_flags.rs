//! kaniko's last registry flags, end to end against the local registries: `--registry-client-cert`
//! with the mutual-TLS registry (`tls.clientcas`: refused without a certificate, with a message
//! that says so; pushed, cached, warmed and mirrored through with one; checked with skopeo),
//! bad certificate files refused before any pull without printing a key, and
//! `--skip-default-registry-fallback` (mirrors only, every mirror's error named; docker.io is
//! never contacted: these machines have no network beyond 127.0.0.1), and `--skip-tls-verify`
//! covering the base image's pull as it does in kaniko.

mod common;
mod faults;
#[path = "registry_util/mod.rs"]
mod util;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use trowel_engine::image::manifest::Platform;
use trowel_engine::registry::{ClientCertificate, Reference, RegistryOptions};

fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// `--registry-certificate` for the mTLS registry (its CA is the TLS registry's own).
fn trust() -> Vec<String> {
    let env = env();
    vec!["--registry-certificate".into(), format!("{}={}", env.mtls_registry, env.ca.display())]
}

fn client_cert() -> Vec<String> {
    let env = env();
    vec![
        "--registry-client-cert".into(),
        format!("{}={},{}", env.mtls_registry, env.client_cert.display(), env.client_key.display()),
    ]
}

/// Copies the test busybox to `dest` (a path on the mTLS registry) with skopeo's client cert.
fn copy_busybox_to_mtls(dest: &str) -> String {
    let env = env();
    let to = format!("{}/{dest}", env.mtls_registry);
    let cert_dir = format!("--dest-cert-dir={}", env.mtls_cert_dir.display());
    assert_ok(&run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        &cert_dir,
        &format!("docker://{}", env.busybox()),
        &format!("docker://{to}"),
    ])));
    to
}

fn skopeo_mtls(args: &[&str]) -> Output {
    let cert_dir = format!("--cert-dir={}", env().mtls_cert_dir.display());
    let mut c = Command::new("skopeo");
    c.arg(args[0]).arg(cert_dir).args(&args[1..]);
    run(&mut c)
}

fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

fn build(ctx: &Path, extra: &[String]) -> Output {
    run(trowel()
        .args(["build", "--docker-config", "/nonexistent-trowel-test", "--push-retry=0", "--image-download-retry=0"])
        .arg("--context")
        .arg(ctx)
        .args(extra))
}

#[test]
fn a_push_and_its_cache_need_the_client_certificate() {
    let env = env();
    let ctx = context(&format!("FROM {}\nRUN echo mtls > /mtls.txt\n", env.busybox()));
    let repo = format!("{}/{}", env.mtls_registry, unique_repo("mtls-push"));
    let dest = ["--destination".to_string(), format!("{repo}:1"), "--cache=true".into()];

    let refused = build(ctx.path(), &[dest.to_vec(), trust()].concat());
    assert!(!refused.status.success(), "pushed without a client certificate:\n{}", text(&refused));
    let t = text(&refused);
    assert!(
        t.contains(&format!("{} requires a client certificate (mutual TLS)", env.mtls_registry))
            && t.contains(&format!("--registry-client-cert {}=<cert.pem>,<key.pem>", env.mtls_registry)),
        "{t}"
    );
    assert!(!skopeo_mtls(&["inspect", &format!("docker://{repo}:1")]).status.success(), "a failed build pushed");

    let o = build(ctx.path(), &[dest.to_vec(), trust(), client_cert()].concat());
    assert_ok(&o);
    let inspect = skopeo_mtls(&["inspect", &format!("docker://{repo}:1")]);
    assert_ok(&inspect);
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "{v}");
    // The RUN layer went to the cache repository through the same client certificate.
    let tags = skopeo_mtls(&["list-tags", &format!("docker://{repo}/cache")]);
    assert_ok(&tags);
    let tags: serde_json::Value = serde_json::from_slice(&tags.stdout).unwrap();
    assert!(!tags["Tags"].as_array().unwrap().is_empty(), "{tags}");
    // Neither run printed the client's key.
    let key = std::fs::read_to_string(&env.client_key).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    assert!(!text(&o).contains(key_line) && !text(&refused).contains(key_line));
}

#[test]
fn warm_pulls_through_the_client_certificate() {
    let base = copy_busybox_to_mtls(&format!("{}:1.35", unique_repo("mtls-warm")));
    let cache = tempfile::tempdir().unwrap();
    let warm = |extra: &[String]| {
        run(trowel()
            .args(["warm", "--docker-config", "/nonexistent-trowel-test", "--image-download-retry=0", "--image", &base])
            .arg("--cache-dir")
            .arg(cache.path())
            .args(extra))
    };
    let refused = warm(&trust());
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("requires a client certificate"), "{}", text(&refused));
    let o = warm(&[trust(), client_cert()].concat());
    assert_ok(&o);
    let cached = trowel_engine::cache::basedir::BaseImageCache::open(cache.path()).unwrap().lookup(
        &Reference::parse(&base).unwrap(),
        &Platform::host(),
        None,
    );
    assert!(matches!(cached, Ok(Some(_))), "{base} not in the cache: {}", text(&o));
}

/// A certificate the registry does not trust (self-signed, not from its client CA) is refused
/// by the registry, and the message names the file given.
#[test]
fn a_client_certificate_the_registry_refuses_is_named() {
    let env = env();
    let base = copy_busybox_to_mtls(&format!("{}:1.35", unique_repo("mtls-untrusted")));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("self.pem"), dir.path().join("self.key"));
    assert_ok(&run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=not from the client CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)));
    let cache = tempfile::tempdir().unwrap();
    let o = run(trowel()
        .args(["warm", "--docker-config", "/nonexistent-trowel-test", "--image-download-retry=0", "--image", &base])
        .arg("--cache-dir")
        .arg(cache.path())
        .args(trust())
        .arg("--registry-client-cert")
        .arg(format!("{}={},{}", env.mtls_registry, cert.display(), key.display())));
    assert!(!o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains(&format!("refused the client certificate {}", cert.display())), "{t}");
}

#[test]
fn bad_client_certificates_are_refused_before_any_pull() {
    let env = env();
    // The base is on a port nothing listens on: an error about it would mean a pull was tried.
    let ctx = context("FROM 127.0.0.1:1/never/pulled:1\nRUN true\n");
    let host = &env.mtls_registry;
    let cert = env.client_cert.display().to_string();
    let key = env.client_key.display().to_string();
    let server_key = env.dir.join("tls.key").display().to_string();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (format!("{host}={cert}"), vec!["expected REGISTRY=CERTFILE,KEYFILE"]),
        (format!("{host}=/nonexistent/client.pem,{key}"), vec!["/nonexistent/client.pem", "No such file"]),
        (format!("{host}={cert},{server_key}"), vec![&server_key, "not the key of the certificate", &cert]),
        (format!("{host}={cert},{cert}"), vec!["no private key in the file"]),
        (format!("{host}={key},{key}"), vec!["no certificate in the file"]),
    ];
    for (value, expect) in cases {
        let o = build(ctx.path(), &["--no-push".into(), "--registry-client-cert".into(), value.clone()]);
        assert!(!o.status.success(), "{value}");
        let t = text(&o);
        for e in expect {
            assert!(t.contains(e), "{value}: expected {e:?} in:\n{t}");
        }
        assert!(!t.contains("127.0.0.1:1"), "{value}: a pull was tried:\n{t}");
        let server = std::fs::read_to_string(&server_key).unwrap();
        assert!(!t.contains(server.lines().nth(1).unwrap()), "{value}: the key was printed");
    }
}

#[test]
fn docker_hub_images_through_an_mtls_mirror_and_no_fallback() {
    let env = env();
    let mirror_repo = format!("{}/library/busybox:1.35", unique_repo("hub"));
    copy_busybox_to_mtls(&mirror_repo);
    let mirror = format!("{}/{}", env.mtls_registry, mirror_repo.split("/library/").next().unwrap());
    let empty_mirror = format!("{}/{}", env.registry, unique_repo("empty-mirror"));
    let ctx = context("FROM busybox:1.35\nRUN echo mirrored > /m.txt\n");
    let mirrors = |list: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = list.iter().flat_map(|m| ["--registry-mirror".to_string(), m.to_string()]).collect();
        v.push("--skip-default-registry-fallback".into());
        v.push("--no-push".into());
        v
    };
    // The first mirror lacks the image, the second has it (over mutual TLS): the build uses it.
    let o = build(ctx.path(), &[mirrors(&[&empty_mirror, &mirror]), trust(), client_cert()].concat());
    assert_ok(&o);
    // The log says which mirror was passed over, and why.
    let t = text(&o);
    assert!(
        t.contains(&format!(
            "docker.io/library/busybox:1.35: registry mirror passed over: pull {empty_mirror}/library/busybox:1.35: "
        )),
        "{t}"
    );
    // No mirror can serve it (the mTLS one without a client certificate): refused, every mirror
    // named with its error, and docker.io not tried.
    let o = build(ctx.path(), &[mirrors(&[&empty_mirror, &mirror]), trust()].concat());
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains(
            "every registry mirror failed, and --skip-default-registry-fallback forbids falling back to docker.io"
        ),
        "{t}"
    );
    assert!(t.contains(&format!("pull {empty_mirror}/library/busybox:1.35: ")), "{t}");
    assert!(
        t.contains(&format!("pull {mirror}/library/busybox:1.35: ")) && t.contains("requires a client certificate"),
        "{t}"
    );
    assert!(!t.contains("index.docker.io") && !t.contains("registry-1.docker.io"), "{t}");
}

/// The engine's own view: with the flag a Docker Hub image is only looked for on the mirrors;
/// without it the last source is docker.io itself (not contacted here: the mirror serves it).
#[test]
fn the_fallback_is_docker_hub_only_without_the_flag() {
    let env = env();
    let mirror_repo = format!("{}/library/busybox:1.35", unique_repo("hub-engine"));
    copy_busybox_to_mtls(&mirror_repo);
    let prefix = mirror_repo.split("/library/").next().unwrap();
    let opts = |skip: bool, mirror: String| RegistryOptions {
        registry_mirrors: vec![mirror],
        registry_certificates: vec![(env.mtls_registry.clone(), env.ca.clone())],
        client_certificates: vec![
            ClientCertificate::parse(&format!(
                "{}={},{}",
                env.mtls_registry,
                env.client_cert.display(),
                env.client_key.display()
            ))
            .unwrap(),
        ],
        skip_default_registry_fallback: skip,
        retries: 0,
        ..util::opts()
    };
    let rt = util::rt();
    let hub = Reference::parse("busybox:1.35").unwrap();
    let amd64 = Platform::parse("linux/amd64").unwrap();
    let reg = util::registry(opts(true, format!("{}/{prefix}", env.mtls_registry)));
    let img = rt.block_on(reg.resolve(&hub, &amd64)).unwrap();
    assert_eq!(img.reference.to_string(), "docker.io/library/busybox:1.35");
    let dir = tempfile::tempdir().unwrap();
    let store = trowel_engine::image::store::BlobStore::open(dir.path()).unwrap();
    rt.block_on(reg.fetch_blob(&hub, &img.manifest.layers[0], &store, &|_, _| {})).unwrap();
    // A mirror without the image and the flag: the error is the mirror's, docker.io untried.
    let reg = util::registry(opts(true, format!("{}/{}", env.registry, unique_repo("nothing"))));
    let e = rt.block_on(reg.resolve(&hub, &amd64)).unwrap_err().to_string();
    assert!(e.starts_with("pull docker.io/library/busybox:1.35: every registry mirror failed"), "{e}");
    assert!(e.contains("manifest unknown") || e.contains("(404)"), "{e}");
    // A non-Docker Hub image ignores mirrors and the flag.
    let other = Reference::parse(&format!("{}/busybox:1.35", env.registry)).unwrap();
    rt.block_on(reg.resolve(&other, &amd64)).unwrap();
}

/// kaniko reads `--skip-tls-verify` for pulls too (and `--skip-tls-verify-pull` not at all): a
/// base on a registry with a certificate nobody trusts is pulled with either flag.
#[test]
fn skip_tls_verify_covers_the_base_pull_as_in_kaniko() {
    let env = env();
    let base = format!("{}/{}:1.35", env.tls_registry, unique_repo("tls-base"));
    assert_ok(&run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}", env.busybox()),
        &format!("docker://{base}"),
    ])));
    let ctx = context(&format!("FROM {base}\nRUN echo pulled > /p.txt\n"));
    let refused = build(ctx.path(), &["--no-push".into()]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--registry-certificate"), "{}", text(&refused));
    for flag in ["--skip-tls-verify", "--skip-tls-verify-pull"] {
        let o = build(ctx.path(), &["--no-push".into(), flag.into()]);
        assert_ok(&o);
    }
}

/// A registry on a private name or address (`*.local`, RFC 1918) is tried over HTTPS, then plain
/// HTTP, with no flag, as kaniko's registry client reaches it (go-containerregistry's
/// `Registry.Scheme`): an in-house plain-HTTP registry pulled from and pushed to by a kaniko job
/// works unchanged. One that answers neither is reported with the HTTPS failure.
#[test]
fn a_private_registry_is_reached_over_plain_http_as_kaniko_does() {
    let e = env();
    let port = |r: &str| r.rsplit_once(':').unwrap().1.to_string();
    let private = format!("registry.trowel.local:{}", port(&e.registry));
    let ctx = context(&format!("FROM {private}/busybox:1.35\nRUN echo private > /p\n"));
    let dest = format!("{private}/{}:1", unique_repo("privatehttp"));
    let o = build(ctx.path(), &["--destination".into(), dest.clone()]);
    assert_ok(&o);
    let local = dest.replace(&private, &e.registry);
    let u = pull_and_unpack(&local);
    assert_eq!(Tree::content(&u.rootfs(), "/p"), "private\n");

    // The TLS registry under that name: its certificate names registry.trowel.test, so HTTPS
    // fails verification, which is reported, never a reason to try plain HTTP.
    let tls = format!("registry.trowel.local:{}", port(&e.tls_registry));
    let ctx = context(&format!("FROM {tls}/busybox:1.35\n"));
    let o = build(ctx.path(), &["--no-push".into()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(&format!("cannot reach https://{tls}")), "{}", text(&o));
    assert!(text(&o).to_lowercase().contains("certificate"), "the certificate is what fails: {}", text(&o));
}

/// kaniko ≥ 1.21's `--registry-map` (and `KANIKO_REGISTRY_MAP`): an image of any registry is
/// pulled from its mirror, a repository prefix included; with
/// `--skip-default-registry-fallback` never from the registry itself (here one that does not
/// exist), and a mirror without the image is named in the error.
#[test]
fn registry_map_mirrors_any_registry_as_kaniko_does() {
    let e = env();
    let mirror = format!("{}/{}", e.registry, unique_repo("regmap"));
    let o = run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}", e.busybox()),
        &format!("docker://{mirror}/tools/busybox:1.35"),
    ]));
    assert_ok(&o);
    let ctx = context("FROM nowhere.invalid/tools/busybox:1.35\nRUN echo mapped > /m\n");
    let map = format!("nowhere.invalid={mirror}");
    let o = build(
        ctx.path(),
        &["--no-push".into(), "--skip-default-registry-fallback".into(), "--registry-map".into(), map.clone()],
    );
    assert_ok(&o);
    assert!(text(&o).contains("RUN echo mapped"), "{}", text(&o));
    let o = run(trowel()
        .env("KANIKO_REGISTRY_MAP", format!("ghcr.io=elsewhere.invalid;{map}"))
        .args([
            "build",
            "--docker-config",
            "/nonexistent-trowel-test",
            "--no-push",
            "--skip-default-registry-fallback",
            "--context",
        ])
        .arg(ctx.path()));
    assert_ok(&o);
    // A mirror that lacks the image: named in the error, the registry itself never tried.
    let ctx = context("FROM nowhere.invalid/tools/absent:1\n");
    let o = build(
        ctx.path(),
        &["--no-push".into(), "--skip-default-registry-fallback".into(), "--registry-map".into(), map],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains(&format!("{mirror}/tools/absent:1")), "{}", text(&o));
}

/// kaniko ≥ 1.21's `--push-ignore-immutable-tag-errors`: ECR's refusal to move an immutable
/// tag fails the push without it, and with it ends the push without error, the log saying
/// that the tag still names the image it named.
#[test]
fn an_immutable_tag_refusal_is_ignored_only_when_asked() {
    let e = env();
    let proxy = faults::FaultProxy::start(&e.registry);
    let repo = unique_repo("immutable");
    const ECR: &str = r#"{"errors":[{"code":"TAG_INVALID","message":"The image tag '1' already exists in the 'app' repository and cannot be overwritten because the repository is immutable."}]}"#;
    proxy.inject("PUT", &format!("/{repo}/manifests/"), faults::Fault::Answer { code: 400, body: ECR }, usize::MAX);
    let ctx = context(&format!("FROM {}\nRUN echo x > /x\n", e.busybox()));
    let dest = format!("{}/{repo}:1", proxy.addr);
    let o = build(ctx.path(), &["--destination".into(), dest.clone(), "--skip-push-permission-check".into()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("cannot be overwritten because the repository is immutable"), "{}", text(&o));
    let o = build(
        ctx.path(),
        &[
            "--destination".into(),
            dest.clone(),
            "--skip-push-permission-check".into(),
            "--push-ignore-immutable-tag-errors".into(),
        ],
    );
    assert_ok(&o);
    assert!(
        text(&o).contains(&format!(
            "{dest}: the registry keeps this tag immutable, so it still names the image it named, and this"
        )),
        "{}",
        text(&o)
    );
}
