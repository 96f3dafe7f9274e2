//! `trowel login`/`logout` and registry credentials from the environment, against the
//! testenv's htpasswd registry: a login is checked before it is saved, saved as `docker login`
//! saves it (skopeo reads the file it wrote), and a build then pushes with it; a wrong password
//! is refused and nothing is written; CI credentials from the environment push too, in the
//! documented precedence against the config file; no password ever reaches the output or a
//! trace.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use common::*;

/// `trowel …` with HOME and DOCKER_CONFIG under `home` and none of the CI variables of the
/// machine running the tests.
fn trowel_in(home: &Path) -> Command {
    let mut c = trowel();
    c.env("HOME", home).env("DOCKER_CONFIG", home.join(".docker"));
    for k in ["DOCKER_AUTH_CONFIG", "CI_REGISTRY", "CI_REGISTRY_USER", "CI_REGISTRY_PASSWORD"] {
        c.env_remove(k);
    }
    c
}

fn login(home: &Path, user: &str, password: &str) -> Output {
    let mut child = trowel_in(home)
        .args(["login", &env().auth_registry, "-u", user, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// A one-layer build pushed to `dest` on the auth registry; returns its output and trace.
fn build_push(cmd: &mut Command, dest: &str) -> (Output, String) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}\nCOPY f /f\n", env().busybox())).unwrap();
    std::fs::write(ctx.path().join("f"), dest).unwrap();
    let trace = ctx.path().join("trace.jsonl");
    let o = run(cmd
        .args(["build", "--context"])
        .arg(ctx.path())
        .args(["--destination", dest, "--verbosity", "debug", "--trace"])
        .arg(&trace));
    (o, std::fs::read_to_string(&trace).unwrap_or_default())
}

fn no_password(o: &Output, extra: &str) {
    let pw = &env().auth_password;
    for (what, text) in [("stdout", stdout(o)), ("stderr", stderr(o)), ("trace", extra.to_string())] {
        assert!(!text.contains(pw.as_str()), "the password is in the {what}:\n{text}");
    }
}

fn dest(tag: &str) -> String {
    format!("{}/{}:{tag}", env().auth_registry, unique_repo("login"))
}

#[test]
fn login_checks_saves_and_a_build_pushes_with_it() {
    let env = env();
    let home = tempfile::tempdir().unwrap();
    let cfg_dir = home.path().join(".docker");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let cfg = cfg_dir.join("config.json");
    std::fs::write(&cfg, r#"{"psFormat":"table {{.ID}}","auths":{"other.example":{"auth":"eDp5"}}}"#).unwrap();

    let o = login(home.path(), &env.auth_user, &env.auth_password);
    assert_ok(&o);
    assert_eq!(stdout(&o), "Login Succeeded\n");
    no_password(&o, "");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    assert_eq!(saved["psFormat"], "table {{.ID}}", "other keys are kept");
    assert_eq!(saved["auths"]["other.example"]["auth"], "eDp5");
    let want = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", env.auth_user, env.auth_password));
    assert_eq!(saved["auths"][&env.auth_registry]["auth"], want.as_str());
    assert_eq!(std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777, 0o600);

    let d = dest("1");
    let (o, trace) = build_push(&mut trowel_in(home.path()), &d);
    assert_ok(&o);
    no_password(&o, &trace);
    // An independent client reads the image with the file trowel wrote.
    let o = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--authfile"])
        .arg(&cfg)
        .arg(format!("docker://{d}")));
    assert_ok(&o);

    let o = run(trowel_in(home.path()).args(["logout", &env.auth_registry]));
    assert_ok(&o);
    assert_eq!(stdout(&o), format!("Removing login credentials for {}\n", env.auth_registry));
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    assert!(saved["auths"].get(&env.auth_registry).is_none());
    assert_eq!(saved["psFormat"], "table {{.ID}}");
    let o = run(trowel_in(home.path()).args(["logout", &env.auth_registry]));
    assert_eq!(stdout(&o), format!("Not logged in to {}\n", env.auth_registry));
    // Logged out, the push is refused.
    let (o, _) = build_push(&mut trowel_in(home.path()), &dest("2"));
    assert!(!o.status.success());
}

#[test]
fn login_hands_the_secret_to_a_configured_credential_helper() {
    let env = env();
    let home = tempfile::tempdir().unwrap();
    let cfg_dir = home.path().join(".docker");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    std::fs::write(cfg_dir.join("config.json"), r#"{"credsStore":"trowel-test"}"#).unwrap();
    // A helper that keeps what it is given in a file and answers `get` with it, as real
    // helpers (pass, secretservice) do.
    let bin = home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let store = home.path().join("store.json");
    let helper = bin.join("docker-credential-trowel-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  store) cat > {s} ;;\n  get) cat >/dev/null; cat {s} ;;\n  erase) cat >/dev/null; rm -f {s} ;;\nesac\n",
            s = store.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    let mut child = trowel_in(home.path())
        .env("PATH", &path)
        .args(["login", &env.auth_registry, "-u", &env.auth_user, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(env.auth_password.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_ok(&o);
    assert!(stderr(&o).contains("saved in docker-credential-trowel-test"), "{}", stderr(&o));
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&store).unwrap()).unwrap();
    assert_eq!(stored["ServerURL"], env.auth_registry.as_str());
    assert_eq!(stored["Username"], env.auth_user.as_str());
    assert_eq!(stored["Secret"], env.auth_password.as_str());
    // The file gets an empty entry, never the secret.
    let file = std::fs::read_to_string(cfg_dir.join("config.json")).unwrap();
    assert!(!file.contains(&env.auth_password) && file.contains(&env.auth_registry), "{file}");

    // A build gets the credential back from the helper.
    let mut c = trowel_in(home.path());
    c.env("PATH", &path);
    let (o, trace) = build_push(&mut c, &dest("helper"));
    assert_ok(&o);
    no_password(&o, &trace);

    let o = run(trowel_in(home.path()).env("PATH", &path).args(["logout", &env.auth_registry]));
    assert_ok(&o);
    assert!(!store.exists(), "erase was not run");
}

#[test]
fn a_wrong_password_is_refused_and_nothing_is_written() {
    let env = env();
    let home = tempfile::tempdir().unwrap();
    let wrong = format!("{}-wrong", env.auth_password);
    let o = login(home.path(), &env.auth_user, &wrong);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("log in to {}", env.auth_registry))
            && err.contains(&format!("refused the username and password for {}", env.auth_user)),
        "{err}"
    );
    assert!(!err.contains(&wrong) && !stdout(&o).contains(&wrong), "{err}");
    assert!(!home.path().join(".docker").exists(), "nothing written");

    // -p works, with Docker's warning; the value is not echoed.
    let o = run(trowel_in(home.path()).args(["login", &env.auth_registry, "-u", &env.auth_user, "-p", &wrong]));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n"));
    assert!(!stderr(&o).contains(&wrong));
    // No password at all is a usage error.
    let o = run(trowel_in(home.path()).args(["login", &env.auth_registry, "-u", &env.auth_user]).stdin(Stdio::null()));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no password"), "{}", stderr(&o));
}

#[test]
fn ci_credentials_from_the_environment_and_their_precedence() {
    let env = env();
    let b64 = |u: &str, p: &str| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
    let wrong = format!("{}-wrong", env.auth_password);

    // GitLab's variables alone: the push works.
    let home = tempfile::tempdir().unwrap();
    let mut c = trowel_in(home.path());
    c.env("CI_REGISTRY", &env.auth_registry)
        .env("CI_REGISTRY_USER", &env.auth_user)
        .env("CI_REGISTRY_PASSWORD", &env.auth_password);
    let d = dest("gitlab");
    let (o, trace) = build_push(&mut c, &d);
    assert_ok(&o);
    no_password(&o, &trace);
    let creds = format!("{}:{}", env.auth_user, env.auth_password);
    assert_ok(&run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("docker://{d}"),
    ])));

    // The kaniko fork's variables: KANIKO_<HOST>_USER/_PASSWORD (the port's colon as `_`).
    let name = format!("KANIKO_{}", env.auth_registry.replace(['.', ':'], "_"));
    let mut c = trowel_in(home.path());
    c.env(format!("{name}_USER"), &env.auth_user).env(format!("{name}_PASSWORD"), &env.auth_password);
    let (o, trace) = build_push(&mut c, &dest("kaniko"));
    assert_ok(&o);
    no_password(&o, &trace);

    // The config file wins over those variables: its wrong password is used, and refused.
    let cfg_dir = home.path().join(".docker");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let file = serde_json::json!({"auths": {&env.auth_registry: {"auth": b64(&env.auth_user, &wrong)}}});
    std::fs::write(cfg_dir.join("config.json"), file.to_string()).unwrap();
    let mut c = trowel_in(home.path());
    c.env("CI_REGISTRY", &env.auth_registry)
        .env("CI_REGISTRY_USER", &env.auth_user)
        .env("CI_REGISTRY_PASSWORD", &env.auth_password);
    let (o, _) = build_push(&mut c, &dest("file-wins"));
    assert!(!o.status.success(), "the file's wrong password was not used");

    // DOCKER_AUTH_CONFIG shadows the file: its right password pushes despite the file's.
    let auth_config =
        serde_json::json!({"auths": {&env.auth_registry: {"auth": b64(&env.auth_user, &env.auth_password)}}});
    let mut c = trowel_in(home.path());
    c.env("DOCKER_AUTH_CONFIG", auth_config.to_string());
    let (o, trace) = build_push(&mut c, &dest("env-wins"));
    assert_ok(&o);
    no_password(&o, &trace);
    // The other way round, the refusal says where the credentials came from.
    let stale = serde_json::json!({"auths": {&env.auth_registry: {"auth": b64(&env.auth_user, &wrong)}}});
    let good = serde_json::json!({"auths": {&env.auth_registry: {"auth": b64(&env.auth_user, &env.auth_password)}}});
    std::fs::write(cfg_dir.join("config.json"), good.to_string()).unwrap();
    let mut c = trowel_in(home.path());
    c.env("DOCKER_AUTH_CONFIG", stale.to_string());
    let (o, _) = build_push(&mut c, &dest("env-stale"));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("came from DOCKER_AUTH_CONFIG, which shadows the docker config file"),
        "{}",
        stderr(&o)
    );
    no_password(&o, "");
    // trowel login says the same when it saves credentials the variable will hide.
    let mut child = trowel_in(home.path())
        .env("DOCKER_AUTH_CONFIG", stale.to_string())
        .args(["login", &env.auth_registry, "-u", &env.auth_user, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(env.auth_password.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_ok(&o);
    assert!(stderr(&o).contains("warning: DOCKER_AUTH_CONFIG has credentials for"), "{}", stderr(&o));
    let b64_pw = b64(&env.auth_user, &env.auth_password);
    assert!(!trace.contains(&b64_pw) && !stderr(&o).contains(&b64_pw));

    // A malformed DOCKER_AUTH_CONFIG stops the build before anything is pulled, quoting nothing.
    let mut c = trowel_in(home.path());
    c.env(
        "DOCKER_AUTH_CONFIG",
        format!(r#"{{"auths":{{"x":{{"auth":"{}","pass":"{}"}}}}}}"#, b64_pw, env.auth_password),
    );
    let (o, _) = build_push(&mut c, &dest("malformed"));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("DOCKER_AUTH_CONFIG: not a Docker config"), "{}", stderr(&o));
    no_password(&o, "");
}
