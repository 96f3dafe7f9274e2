//! Secrets on error paths: a wrong registry password, a push that fails after authenticating, a
//! failing RUN that prints secret build args, a failing COPY whose path holds one, and a
//! credential helper with a malformed answer. In every case the log (at debug level), the trace
//! and the `replay --summary` post-mortem must not contain the secret in any form (plain,
//! base64 in a basic-auth header, JSON-escaped). (`trace.rs` checks the successful build.)

mod common;
mod faults;
mod hardening_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;
use common::{env, run, trowel, unique_repo};
use faults::{Fault, FaultProxy};
use hardening_support::{context, log};

/// A Docker config directory with basic-auth credentials for `host`.
fn docker_config(host: &str, user: &str, password: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(dir.path().join("config.json"), format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#)).unwrap();
    dir
}

/// Every form in which `secret` could leak.
fn forms(secret: &str, user: &str) -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    vec![secret.to_string(), b64(&format!("{user}:{secret}")), b64(secret), serde_json::to_string(secret).unwrap()]
}

/// Runs a traced build at debug level; returns (succeeded, everything it printed or recorded).
fn traced(ctx: &Path, config: Option<&Path>, args: &[&str]) -> (bool, String) {
    let trace = ctx.join("trace.jsonl");
    let mut cmd = trowel();
    if let Some(c) = config {
        cmd.env("DOCKER_CONFIG", c);
    }
    let o = run(cmd.args(["build", "-v", "debug", "--context"]).arg(ctx).arg("--trace").arg(&trace).args(args));
    let summary = run(trowel().arg("replay").arg(&trace).arg("--summary"));
    let all = format!(
        "{}\n--- trace\n{}\n--- summary\n{}",
        log(&o),
        std::fs::read_to_string(&trace).unwrap_or_default(),
        log(&summary)
    );
    (o.status.success(), all)
}

#[track_caller]
fn assert_absent(text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{s:?} leaked:\n{text}");
    }
}

#[test]
fn a_wrong_registry_password_is_never_printed() {
    let e = env();
    let wrong = format!("Wr0ng-{}-passw0rd", std::process::id());
    let cfg = docker_config(&e.auth_registry, &e.auth_user, &wrong);
    let ctx = context(&format!("FROM {}\nRUN true\n", e.busybox()));
    let dest = format!("{}/{}:1", e.auth_registry, unique_repo("wrongpw"));
    let (ok, text) = traced(ctx.path(), Some(cfg.path()), &["--destination", &dest]);
    assert!(!ok, "{text}");
    assert!(text.contains(&format!("check push access to {dest}: unauthorized")), "{text}");
    assert_absent(&text, &forms(&wrong, &e.auth_user));
}

/// Credentials typed into a registry name (`--destination http://user:password@reg/app`, the
/// same in `--cache-repo` and `--registry-mirror`) are refused before anything is done, the
/// message masking them: they were quoted in the error, the debug log and the trace, and a
/// mirror written so was used and named, password and all, in every warning about it.
#[test]
fn credentials_written_into_a_registry_name_are_refused_masked() {
    let e = env();
    let pw = format!("In-Url-{}-pw", std::process::id());
    let ctx = context(&format!("FROM {}\nRUN true\n", e.busybox()));
    let repo = unique_repo("urlcreds");
    let with_creds = format!("http://{}:{pw}@{}/{repo}", e.auth_user, e.auth_registry);
    let plain = format!("{}/{repo}:1", e.registry);
    let mirror = format!("{}:{pw}@{}", e.auth_user, e.registry);
    for (flag, args) in [
        ("--destination", vec!["--destination".to_string(), format!("{with_creds}:1")]),
        (
            "--cache-repo",
            vec![
                "--destination".into(),
                plain.clone(),
                "--cache=true".into(),
                "--cache-repo".into(),
                with_creds.clone(),
            ],
        ),
        ("--registry-mirror", vec!["--destination".into(), plain.clone(), "--registry-mirror".into(), mirror.clone()]),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, text) = traced(ctx.path(), None, &args);
        assert!(!ok, "{flag}: {text}");
        assert!(text.contains(&format!("error: {flag} \"")), "{flag}: {text}");
        assert!(
            text.contains("***@") && text.contains("credentials cannot be part of a registry name"),
            "{flag}: {text}"
        );
        assert_absent(&text, &forms(&pw, &e.auth_user));
    }
}

/// A secret arg's default written in the Dockerfile is masked everywhere, as history already
/// masked it (the log's `ARG` line, RUN output, the trace and the cache entries showed it); a
/// secret arg's value copied into the image config (`ENV X=${GH_TOKEN}`) is warned about, naming
/// the field; a secret arg too short to mask is said to be shown as it is, or refused when
/// `--secret-arg` named it.
#[test]
fn secret_arg_defaults_values_in_the_config_and_short_values() {
    let e = env();
    let default = format!("DefaultPw-{}", std::process::id());
    let token = format!("GhToken-{}-x", std::process::id());
    let ctx = context(&format!(
        "FROM {}\nARG DB_PASSWORD={default}\nARG GH_TOKEN\nARG MY_TOKEN\nARG SUFFIX=xyz123\nARG API_KEY=sk-live-${{SUFFIX}}\n\
         RUN echo \"pw=$DB_PASSWORD t=$MY_TOKEN k=$API_KEY\"\n\
         ENV X=${{GH_TOKEN}}\nLABEL plain=1\n",
        e.busybox()
    ));
    let cache = format!("{}/{}", e.registry, unique_repo("secretdefault-cache"));
    let dest = format!("{}/{}:1", e.registry, unique_repo("secretdefault"));
    let (ok, text) = traced(
        ctx.path(),
        None,
        &[
            "--destination",
            &dest,
            "--cache=true",
            "--cache-repo",
            &cache,
            "--build-arg",
            &format!("GH_TOKEN={token}"),
            "--build-arg",
            "MY_TOKEN=q7z",
        ],
    );
    assert!(ok, "{text}");
    assert_absent(&text, std::slice::from_ref(&default));
    assert!(text.contains("pw=*** t=q7z k=***"), "{text}");
    assert_absent(&text, &["sk-live-xyz123".to_string()]);
    assert!(
        text.contains("the image config holds a secret value (a secret build arg's, or a --secret's) in ENV X:"),
        "{text}"
    );
    assert!(!text.contains("in ENV X, LABEL"), "{text}");
    assert!(
        text.contains("build arg MY_TOKEN looks secret by its name, but its value is 3 byte(s), too short to mask"),
        "{text}"
    );
    // Every cache entry's config (its chain of instructions) keeps the default masked too.
    assert_absent(&cache_configs(&cache), &[default.clone(), token.clone()]);

    // Named secret with --secret-arg, too short to mask: refused before anything is pulled.
    let (ok, text) = traced(ctx.path(), None, &["--no-push", "--secret-arg", "SHORTY", "--build-arg", "SHORTY=ab"]);
    assert!(!ok, "{text}");
    assert!(text.contains("--secret-arg SHORTY: its value is 2 byte(s), too short to mask"), "{text}");
}

/// The cache entries of every tag of `cache`, as text: each one's manifest, the config document
/// it carries (unescaped), and its config blob (the shared `{}`, or a config of its own).
fn cache_configs(cache: &str) -> String {
    let tags = run(std::process::Command::new("skopeo").args([
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{cache}"),
    ]));
    let tags: serde_json::Value = serde_json::from_slice(&tags.stdout).unwrap();
    let tags = tags["Tags"].as_array().unwrap();
    assert!(!tags.is_empty());
    let config = |t: &serde_json::Value| {
        let r = format!("docker://{cache}:{}", t.as_str().unwrap());
        let inspect = |extra: &[&str]| {
            let c = run(std::process::Command::new("skopeo")
                .args(["inspect", "--tls-verify=false", "--raw"])
                .args(extra)
                .arg(&r));
            assert!(c.status.success(), "{}", log(&c));
            String::from_utf8_lossy(&c.stdout).into_owned()
        };
        let manifest = inspect(&[]);
        let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        let carried = m["annotations"]["dev.trowel.cache.config"].as_str().unwrap_or_default().to_string();
        format!("{manifest}\n{carried}\n{}", inspect(&["--config"]))
    };
    tags.iter().map(config).collect::<Vec<_>>().join("\n")
}

/// A URL's credentials in a build arg or ENV of any name (`DB_URL=postgres://admin:pw@db`) are
/// only fingerprinted in the cache entries, which outlive them: after the password is rotated,
/// the next build's miss explanation would quote the old one, which that build was never given
/// and so could not mask.
#[test]
fn url_credentials_in_any_variable_are_only_fingerprinted_in_cache_entries() {
    let e = env();
    let old = format!("old-pw-{}", std::process::id());
    let new = format!("new-pw-{}", std::process::id());
    let ctx = context(&format!(
        "FROM {}\nARG PLAIN\nENV MIRROR=http://mirror:${{PLAIN}}@127.0.0.1/x\nRUN echo \"$PLAIN\" >/dev/null\n",
        e.busybox()
    ));
    let cache = format!("{}/{}", e.registry, unique_repo("urlcred-cache"));
    let build = |pw: &str| {
        let arg = format!("PLAIN=https://user:{pw}@example.com/x");
        traced(ctx.path(), None, &["--no-push", "--cache=true", "--cache-repo", &cache, "--build-arg", &arg])
    };
    let (ok, text) = build(&old);
    assert!(ok, "{text}");
    assert_absent(&text, std::slice::from_ref(&old));
    let entries = cache_configs(&cache);
    assert_absent(&entries, std::slice::from_ref(&old));
    assert!(entries.contains(r#""PLAIN":{"kind":"ARG","value":"sha256:"#), "{entries}");
    assert!(entries.contains(r#""MIRROR":{"kind":"ENV","value":"sha256:"#), "{entries}");
    let (ok, text) = build(&new);
    assert!(ok, "{text}");
    assert_absent(&text, &[old.clone(), new.clone()]);
    assert!(text.contains("Cache miss: ENV MIRROR sha256:") && text.contains("ARG PLAIN sha256:"), "{text}");
    assert_absent(&cache_configs(&cache), &[old, new]);
}

#[test]
fn a_push_failing_after_authentication_does_not_print_the_credentials() {
    let e = env();
    let proxy = FaultProxy::start(&e.auth_registry);
    let repo = unique_repo("failpush");
    proxy.inject("PUT", &format!("/{repo}/manifests/"), Fault::Status { code: 500, retry_after: None }, usize::MAX);
    let cfg = docker_config(&proxy.addr, &e.auth_user, &e.auth_password);
    let ctx = context(&format!("FROM {}\nRUN echo x > /x\n", e.busybox()));
    let dest = format!("{}/{repo}:1", proxy.addr);
    let (ok, text) = traced(ctx.path(), Some(cfg.path()), &["--destination", &dest, "--push-retry", "0"]);
    assert!(!ok, "{text}");
    assert!(text.contains(&format!("push {dest}")) && text.contains("(500)"), "{text}");
    assert_absent(&text, &forms(&e.auth_password, &e.auth_user));
}

#[test]
fn a_failing_run_that_prints_secret_build_args_is_masked() {
    let token = "ghp_FAILtoken0123456789";
    let custom = "custom-secret-value-77";
    let ctx = context(&format!(
        "FROM {}\nARG GITHUB_TOKEN\nARG CUSTOM\nRUN echo \"t=$GITHUB_TOKEN c=$CUSTOM\" && echo \"$GITHUB_TOKEN\" >&2 && exit 7\n",
        env().busybox()
    ));
    let (ok, text) = traced(
        ctx.path(),
        None,
        &["--no-push", "--build-arg", &format!("GITHUB_TOKEN={token}"), "--build-arg", &format!("CUSTOM={custom}")]
            .into_iter()
            .chain(["--secret-arg", "CUSTOM"])
            .collect::<Vec<_>>(),
    );
    assert!(!ok, "{text}");
    assert!(text.contains("t=*** c=***"), "the output is masked, not dropped:\n{text}");
    assert!(text.contains("exit code 7"), "{text}");
    assert_absent(&text, &[token.to_string(), custom.to_string()]);
}

#[test]
fn a_failing_copy_naming_a_secret_is_masked() {
    let key = "deploy-key-Zk39sLq0";
    let ctx = context(&format!("FROM {}\nARG DEPLOY_KEY\nCOPY ${{DEPLOY_KEY}}/id_rsa /root/.ssh/\n", env().busybox()));
    let (ok, text) = traced(ctx.path(), None, &["--no-push", "--build-arg", &format!("DEPLOY_KEY={key}")]);
    assert!(!ok, "{text}");
    assert!(text.contains("***/id_rsa"), "{text}");
    assert_absent(&text, &[key.to_string()]);
}

#[test]
fn a_credential_helper_with_a_malformed_answer_is_not_quoted() {
    let e = env();
    let bin = tempfile::tempdir().unwrap();
    // A broken helper answering with the secret as a JSON number: a parser error message would
    // quote it.
    let secret = "73198264501928374";
    let helper = bin.path().join("docker-credential-broken");
    std::fs::write(&helper, format!("#!/bin/sh\ncat >/dev/null\necho '{{\"Username\":\"u\",\"Secret\":{secret}}}'\n"))
        .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = tempfile::tempdir().unwrap();
    std::fs::write(cfg.path().join("config.json"), format!(r#"{{"credHelpers":{{"{}":"broken"}}}}"#, e.auth_registry))
        .unwrap();
    let ctx = context(&format!("FROM {}\nRUN true\n", e.busybox()));
    let dest = format!("{}/{}:1", e.auth_registry, unique_repo("helper"));
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let trace = ctx.path().join("trace.jsonl");
    let o = run(trowel()
        .env("DOCKER_CONFIG", cfg.path())
        .env("PATH", &path)
        .args(["build", "-v", "debug", "--context"])
        .arg(ctx.path())
        .args(["--destination", &dest, "--trace"])
        .arg(&trace));
    let text = format!("{}{}", log(&o), std::fs::read_to_string(&trace).unwrap_or_default());
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("credential helper docker-credential-broken") && text.contains("unreadable answer"),
        "{text}"
    );
    assert_absent(&text, &[secret.to_string()]);
}
