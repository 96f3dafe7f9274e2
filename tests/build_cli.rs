//! End-to-end tests of `trowel build` beyond the corpus: outputs (docker-archive, OCI layout,
//! digest files), reproducibility, `--no-push`, kaniko-style invocation, registries with auth
//! and TLS, and error reporting. Results are checked with skopeo and umoci.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn write_context(dir: &Path, dockerfile: &str) {
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
}

fn simple_dockerfile() -> String {
    format!(
        "FROM {}\nRUN echo hello > /hello.txt\nCOPY ctx.txt /ctx.txt\nCMD [\"cat\", \"/hello.txt\"]\n",
        env().busybox()
    )
}

fn context_with(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_context(dir.path(), dockerfile);
    std::fs::write(dir.path().join("ctx.txt"), "from context\n").unwrap();
    dir
}

fn build(ctx: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = trowel();
    c.arg("build").arg("--context").arg(ctx).args(extra);
    run(&mut c)
}

#[test]
fn tar_path_is_a_docker_archive_skopeo_reads() {
    let ctx = context_with(&simple_dockerfile());
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("image.tar");
    let o = build(ctx.path(), &["--no-push", "--tar-path", tar.to_str().unwrap()]);
    assert_ok(&o);
    let i = run(Command::new("skopeo").args(["inspect", &format!("docker-archive:{}", tar.display())]));
    assert_ok(&i);
    let v: serde_json::Value = serde_json::from_slice(&i.stdout).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 3);
    // Copy it into an OCI layout with skopeo and unpack with umoci: the files must be there.
    let layout = out.path().join("layout");
    assert_ok(&run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("docker-archive:{}", tar.display()),
        &format!("oci:{}:x", layout.display()),
    ])));
    let dir = tempfile::tempdir().unwrap();
    let u = unpack_layout(dir, &layout, "x");
    assert_eq!(Tree::content(&u.rootfs(), "/hello.txt"), "hello\n");
    assert_eq!(Tree::content(&u.rootfs(), "/ctx.txt"), "from context\n");
}

#[test]
fn oci_layout_path_is_unpacked_by_umoci_and_digest_files_are_written() {
    let ctx = context_with(&simple_dockerfile());
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    let repo = format!("{}/{}", env().registry, unique_repo("layout"));
    let dest = format!("{repo}:v1");
    let digest_file = out.path().join("digest");
    let name_file = out.path().join("name-digest");
    let tag_file = out.path().join("tag-digest");
    let o = build(
        ctx.path(),
        &[
            "--destination",
            &dest,
            "--oci-layout-path",
            layout.to_str().unwrap(),
            "--digest-file",
            digest_file.to_str().unwrap(),
            "--image-name-with-digest-file",
            name_file.to_str().unwrap(),
            "--image-name-tag-with-digest-file",
            tag_file.to_str().unwrap(),
        ],
    );
    assert_ok(&o);
    let digest = std::fs::read_to_string(&digest_file).unwrap();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest:?}");
    assert_eq!(std::fs::read_to_string(&name_file).unwrap(), format!("{repo}@{digest}\n"));
    assert_eq!(std::fs::read_to_string(&tag_file).unwrap(), format!("{dest}@{digest}\n"));
    // Readable by the job's other users, as kaniko writes them (0644 less the umask, not 0600).
    let umask = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Umask:").map(|v| u32::from_str_radix(v.trim(), 8).unwrap()))
        .unwrap();
    let blob = std::fs::read_dir(layout.join("blobs/sha256")).unwrap().next().unwrap().unwrap().path();
    for f in [&digest_file, &name_file, &tag_file, &layout.join("index.json"), &blob] {
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(f).unwrap().permissions()) & 0o777;
        assert_eq!(mode, 0o644 & !umask, "{}: {mode:o}", f.display());
    }
    // The pushed manifest has exactly that digest (skopeo computes it independently).
    let inspected = skopeo_inspect(&dest);
    assert_eq!(inspected["Digest"].as_str().unwrap(), digest);
    let tag = layout.file_name().unwrap();
    let _ = tag;
    let dir = tempfile::tempdir().unwrap();
    let u = unpack_layout(dir, &layout, "v1");
    assert_eq!(Tree::content(&u.rootfs(), "/hello.txt"), "hello\n");
}

#[test]
fn reproducible_builds_give_identical_digests() {
    let ctx = context_with(&simple_dockerfile());
    let repo = format!("{}/{}", env().registry, unique_repo("repro"));
    let mut digests = Vec::new();
    for i in 0..2 {
        // Touch the context file between builds: mtimes are zeroed, content is the same.
        std::fs::write(ctx.path().join("ctx.txt"), "from context\n").unwrap();
        let out = tempfile::tempdir().unwrap();
        let df = out.path().join("d");
        let o = build(
            ctx.path(),
            &["--destination", &format!("{repo}:{i}"), "--reproducible", "--digest-file", df.to_str().unwrap()],
        );
        assert_ok(&o);
        digests.push(std::fs::read_to_string(df).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(digests[0], digests[1], "--reproducible must give byte-identical images");
    let cfg = skopeo_config(&format!("{repo}:0"));
    assert_eq!(cfg["created"], "1970-01-01T00:00:00Z");
}

#[test]
fn kaniko_style_invocation_without_subcommand() {
    let ctx = context_with(&simple_dockerfile());
    let dest = format!("{}/{}:latest", env().registry, unique_repo("kaniko-style"));
    // kaniko resolves a relative --dockerfile against the working directory first.
    let elsewhere = tempfile::tempdir().unwrap();
    let o = run(trowel()
        .current_dir(elsewhere.path())
        .arg("--context")
        .arg(format!("dir://{}", ctx.path().display()))
        .arg("--dockerfile")
        .arg("Dockerfile")
        .arg("--destination")
        .arg(&dest)
        .arg("--snapshot-mode=redo"));
    assert_ok(&o);
    assert_eq!(skopeo_inspect(&dest)["Layers"].as_array().unwrap().len(), 3);
    assert!(stderr(&o).contains("Pushed"), "{}", stderr(&o));
}

/// The paths of the last layer of the image built from `ctx` with `extra` flags (to an OCI
/// layout, listed by `tar`), and the build's log.
fn last_layer_of(ctx: &Path, extra: &[&str]) -> (String, String) {
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    let o = build(ctx, &[&["--no-push", "--oci-layout-path", layout.to_str().unwrap()], extra].concat());
    assert_ok(&o);
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob =
        |d: &serde_json::Value| layout.join("blobs/sha256").join(d.as_str().unwrap().trim_start_matches("sha256:"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&index["manifests"][0]["digest"])).unwrap()).unwrap();
    let layer = blob(&manifest["layers"].as_array().unwrap().last().unwrap()["digest"]);
    let list = run(Command::new("tar").arg("-tzf").arg(layer));
    assert_ok(&list);
    (stdout(&list), stderr(&o))
}

/// In a fresh pod (no cache dir, so no unpacked-layer store: the base is unpacked into a plain
/// directory, and the unpacker hashes each file as it writes it, `fs/written.rs`), a RUN that
/// writes base files back with their size and time kept puts in its layer the one whose content
/// changed and leaves out the one written back as it was: kaniko's full snapshot mode, which
/// only those hashes tell apart.
#[test]
fn a_base_file_written_back_as_it_was_is_left_out_and_one_changed_is_in() {
    let ctx = context_with(&format!(
        "FROM {}\n\
         RUN cp -p /etc/passwd /tmp/p && cat /tmp/p > /etc/passwd && touch -r /tmp/p /etc/passwd && \\\n\
         cp -p /etc/group /tmp/g && sed s/root/ROOT/ /tmp/g > /etc/group && touch -r /tmp/g /etc/group && \\\n\
         rm /tmp/p /tmp/g\n",
        env().busybox()
    ));
    let none = tempfile::tempdir().unwrap();
    let cache_dir = none.path().join("absent");
    let (listing, log) = last_layer_of(ctx.path(), &["--cache-dir", cache_dir.to_str().unwrap()]);
    assert!(listing.lines().any(|l| l == "etc/group"), "{listing}\n{log}");
    assert!(!listing.contains("etc/passwd"), "{listing}");
}

/// kaniko's deprecated `--whitelist-var-run` is `--ignore-var-run` (default true: `/var/run` is
/// never in a layer), with kaniko's warning.
#[test]
fn whitelist_var_run_is_the_deprecated_ignore_var_run() {
    let ctx = context_with(&format!(
        "FROM {}\nRUN mkdir -p /var/run/app && echo 1 > /var/run/app/pid && echo 1 > /marker\n",
        env().busybox()
    ));
    let last_layer = |extra: &[&str]| last_layer_of(ctx.path(), extra);
    let (kept, warned) = last_layer(&["--whitelist-var-run=false"]);
    assert!(kept.contains("var/run/app/pid"), "{kept}");
    assert!(
        warned.contains("Flag --whitelist-var-run has been deprecated, Please use ignore-var-run instead."),
        "{warned}"
    );
    let (ignored, quiet) = last_layer(&[]);
    assert!(ignored.contains("marker") && !ignored.contains("var/run"), "{ignored}");
    assert!(!quiet.contains("deprecated"), "{quiet}");
}

#[test]
fn no_push_pushes_nothing() {
    let ctx = context_with(&simple_dockerfile());
    let dest = format!("{}/{}:latest", env().registry, unique_repo("nopush"));
    let o = build(ctx.path(), &["--destination", &dest, "--no-push"]);
    assert_ok(&o);
    let probe = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{dest}")]));
    assert!(!probe.status.success());
}

#[test]
fn missing_destination_is_a_usage_error() {
    let ctx = context_with(&simple_dockerfile());
    let o = build(ctx.path(), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--destination"), "{}", stderr(&o));
}

/// A docker config.json with `auths` for the htpasswd registry: pull from the plain registry,
/// push to the authenticated one; the password never shows in the output.
#[test]
fn push_to_basic_auth_registry_with_docker_config() {
    let e = env();
    let ctx = context_with(&simple_dockerfile());
    let cfg = tempfile::tempdir().unwrap();
    let auth = base64_encode(&format!("{}:{}", e.auth_user, e.auth_password));
    std::fs::write(
        cfg.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, e.auth_registry),
    )
    .unwrap();
    let dest = format!("{}/{}:1", e.auth_registry, unique_repo("auth"));
    let o = run(trowel()
        .env("DOCKER_CONFIG", cfg.path())
        .args(["build", "-v", "debug", "--context"])
        .arg(ctx.path())
        .args(["--destination", &dest]));
    assert_ok(&o);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!all.contains(&e.auth_password), "password leaked into the log");
    assert!(!all.contains(&auth), "auth string leaked into the log");
    let i = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        &format!("{}:{}", e.auth_user, e.auth_password),
        &format!("docker://{dest}"),
    ]));
    assert_ok(&i);

    // Without credentials the push check fails before anything is built, with a clear error.
    let dest2 = format!("{}/{}:1", e.auth_registry, unique_repo("noauth"));
    let empty = tempfile::tempdir().unwrap();
    let o = run(trowel()
        .env("DOCKER_CONFIG", empty.path())
        .args(["build", "--context"])
        .arg(ctx.path())
        .args(["--destination", &dest2]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&dest2) && err.to_lowercase().contains("unauthorized"), "{err}");
    assert!(!err.contains("RUN echo hello"), "the push check must fail before building: {err}");

    // With the cache on, cache lookups run alongside the check, but a step that misses waits
    // for it: nothing is built and nothing reaches the cache repository.
    let cache_repo = format!("{}/{}", e.registry, unique_repo("deniedcache"));
    let o = run(trowel().env("DOCKER_CONFIG", empty.path()).args(["build", "--context"]).arg(ctx.path()).args([
        "--destination",
        &dest2,
        "--cache=true",
        "--cache-repo",
        &cache_repo,
    ]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&dest2) && err.to_lowercase().contains("unauthorized"), "{err}");
    let tags = run(Command::new("skopeo").args(["list-tags", "--tls-verify=false", &format!("docker://{cache_repo}")]));
    assert!(!tags.status.success(), "the cache was written: {}", stdout(&tags));
}

#[test]
fn tls_registry_needs_its_ca() {
    let e = env();
    let ctx = context_with(&simple_dockerfile());
    let dest = format!("{}/{}:1", e.tls_registry, unique_repo("tls"));
    // Unknown CA: refused with a TLS error naming the registry.
    let o = build(ctx.path(), &["--destination", &dest]);
    assert!(!o.status.success());
    let err = stderr(&o).to_lowercase();
    assert!(err.contains("certificate") || err.contains("tls"), "{err}");
    // With --registry-certificate it works.
    let host = e.tls_registry.clone();
    let o =
        build(ctx.path(), &["--destination", &dest, "--registry-certificate", &format!("{host}={}", e.ca.display())]);
    assert_ok(&o);
    let i = run(Command::new("skopeo").args([
        "inspect",
        "--cert-dir",
        e.ca.parent().unwrap().to_str().unwrap(),
        &format!("docker://{dest}"),
    ]));
    // skopeo wants *.crt files in a cert dir; fall back to --tls-verify=false when the layout
    // does not fit, the push itself already proved trowel verified the chain.
    if !i.status.success() {
        assert_ok(&run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{dest}")])));
    }
    // --skip-tls-verify also works.
    let dest2 = format!("{}/{}:1", e.tls_registry, unique_repo("tls-skip"));
    assert_ok(&build(ctx.path(), &["--destination", &dest2, "--skip-tls-verify"]));
}

#[test]
fn failing_run_reports_location_and_pushes_nothing() {
    let df = format!("FROM {}\nRUN true\nRUN echo about to fail; exit 42\n", env().busybox());
    let ctx = context_with(&df);
    let dest = format!("{}/{}:1", env().registry, unique_repo("fail"));
    let o = build(ctx.path(), &["--destination", &dest]);
    assert_eq!(o.status.code(), Some(42));
    let err = stderr(&o);
    assert!(err.contains("Dockerfile:3: RUN echo about to fail; exit 42: exit code 42"), "{err}");
    assert!(stdout(&o).contains("about to fail"));
    let probe = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{dest}")]));
    assert!(!probe.status.success(), "nothing may be pushed after a failed step");
}

#[test]
fn every_destination_gets_the_image_and_base_layers_are_mounted() {
    let ctx = context_with(&simple_dockerfile());
    let reg = &env().registry;
    let d1 = format!("{reg}/{}:a", unique_repo("multi"));
    let d2 = format!("{reg}/{}:b", unique_repo("multi"));
    let o = build(ctx.path(), &["-v", "debug", "--destination", &d1, "--destination", &d2]);
    assert_ok(&o);
    let (i1, i2) = (skopeo_inspect(&d1), skopeo_inspect(&d2));
    assert_eq!(i1["Digest"], i2["Digest"]);
    // The busybox layer lives in another repository of the same registry: it is mounted, not
    // uploaded again.
    let base_layer = skopeo_manifest(&env().busybox())["layers"][0]["digest"].as_str().unwrap().to_string();
    let short = &base_layer[..19];
    assert!(stderr(&o).contains(&format!("{short}: mounted")), "{}", stderr(&o));
}

#[test]
fn onbuild_triggers_of_a_pushed_base_image_run_in_the_child() {
    let reg = &env().registry;
    let base_ref = format!("{reg}/{}:1", unique_repo("onbuild-base"));
    let base = context_with(&format!(
        "FROM {}\nONBUILD COPY ctx.txt /from-child-context.txt\nONBUILD RUN echo triggered > /triggered.txt\n",
        env().busybox()
    ));
    assert_ok(&build(base.path(), &["--destination", &base_ref]));
    assert_eq!(skopeo_config(&base_ref)["config"]["OnBuild"].as_array().unwrap().len(), 2);

    let child = context_with(&format!("FROM {base_ref}\nRUN cat /triggered.txt > /seen.txt\n"));
    std::fs::write(child.path().join("ctx.txt"), "child context\n").unwrap();
    let dest = format!("{reg}/{}:1", unique_repo("onbuild-child"));
    let o = build(child.path(), &["--destination", &dest]);
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/from-child-context.txt"), "child context\n");
    assert_eq!(Tree::content(&u.rootfs(), "/seen.txt"), "triggered\n");
    assert!(skopeo_config(&dest)["config"]["OnBuild"].is_null(), "triggers are not inherited");
}

/// `credHelpers` naming a `docker-credential-<name>` program on PATH that speaks the real
/// protocol (server URL on stdin, JSON on stdout).
#[test]
fn credential_helper_on_path_supplies_push_credentials() {
    let e = env();
    let ctx = context_with(&simple_dockerfile());
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("calls");
    let helper = bin.path().join("docker-credential-trowel-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho \"$server\" >> {log}\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{}\",\"Secret\":\"{}\"}}' \"$server\"\n",
            e.auth_user,
            e.auth_password,
            log = log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = tempfile::tempdir().unwrap();
    std::fs::write(
        cfg.path().join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"trowel-test"}}}}"#, e.auth_registry),
    )
    .unwrap();
    let dest = format!("{}/{}:1", e.auth_registry, unique_repo("credhelper"));
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap());
    let o = run(trowel()
        .env("DOCKER_CONFIG", cfg.path())
        .env("PATH", path)
        .args(["build", "--context"])
        .arg(ctx.path())
        .args(["--destination", &dest]));
    assert_ok(&o);
    assert!(std::fs::read_to_string(&log).unwrap().contains(&e.auth_registry), "the helper was asked");
    assert!(!format!("{}{}", stdout(&o), stderr(&o)).contains(&e.auth_password));

    // A helper that is not installed is named in the error.
    std::fs::write(cfg.path().join("config.json"), r#"{"credsStore":"ecr-login"}"#).unwrap();
    let o = run(trowel()
        .env("DOCKER_CONFIG", cfg.path())
        .args(["build", "--context"])
        .arg(ctx.path())
        .args(["--destination", &dest]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("docker-credential-ecr-login"), "{}", stderr(&o));
}

/// An ARG's line shows the value it takes, as history records it: a `--build-arg` over the
/// default written (the log, the trace and the debugger showed the default, and `replay
/// --compare` of two such builds called the lines the same), a default made of another ARG
/// resolved.
#[test]
fn an_arg_line_shows_the_value_the_build_gives_it() {
    let ctx =
        context_with(&format!("FROM {}\nARG M=644\nARG T=passwd N=x${{M}}\nRUN echo \"$M $N\"\n", env().busybox()));
    let trace = ctx.path().join("t.jsonl");
    let o = build(ctx.path(), &["--no-push", "--build-arg", "M=755", "--trace", trace.to_str().unwrap()]);
    assert_ok(&o);
    let log = stderr(&o);
    assert!(log.contains("ARG M=755") && !log.contains("ARG M=644"), "{log}");
    assert!(log.contains("ARG T=passwd N=x755"), "{log}");
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.contains(r#""expanded":"ARG M=755""#), "{text}");
}
