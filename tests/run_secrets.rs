//! `RUN --mount=type=secret`: a secret given with `--secret` (a file and an environment
//! variable, buildx's syntax) is readable in the RUN that mounts it, and reaches nothing else —
//! not a layer or the config (every blob of the pushed image, pulled with skopeo), not the image
//! history, not the layer cache's entries in the registry, not the log (at debug level), not the
//! trace, not `replay --summary`. Its value is not part of the step's cache key: a changed secret
//! still hits. A value too short to be masked is refused.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use common::*;

const DF: &str = "\
ARG REGISTRY
FROM ${REGISTRY}/busybox:1.35
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc,mode=0440,uid=1000 \\
    --mount=type=secret,id=TOKEN,env=API_TOKEN,required \\
    --mount=type=secret,id=absent \\
    stat -c '%a %u' /root/.npmrc > /seen \\
    && grep -c _authToken /root/.npmrc >> /seen \\
    && echo ${#API_TOKEN} >> /seen \\
    && (test -e /run/secrets/absent && echo mounted || echo not-given) >> /seen \\
    && echo \"token=$API_TOKEN\" && cat /root/.npmrc && grep _authToken /root/.npmrc >&2
CMD [\"cat\", \"/seen\"]
";

/// Every byte a registry repository holds for its tags: manifests, configs, layers (gunzipped).
fn repository_bytes(repo: &str) -> Vec<u8> {
    let tags = run(Command::new("skopeo").args(["list-tags", "--tls-verify=false", &format!("docker://{repo}")]));
    assert_ok(&tags);
    let tags: serde_json::Value = serde_json::from_slice(&tags.stdout).unwrap();
    let mut all = Vec::new();
    for tag in tags["Tags"].as_array().unwrap() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        let o = run(Command::new("skopeo").args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{repo}:{}", tag.as_str().unwrap()),
            &format!("oci:{}:x", layout.display()),
        ]));
        assert_ok(&o);
        all.extend(layout_bytes(&layout));
    }
    all
}

fn layout_bytes(layout: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut all).unwrap();
        } else {
            all.extend(bytes);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_secret_is_readable_in_its_run_and_nowhere_else() {
    let token = format!("ghp_{}SecretTokenValue", std::process::id());
    let npm_token = format!("npm_{}AuthTokenValue", std::process::id());
    let npmrc_line = format!("//registry.npmjs.org/:_authToken={npm_token}");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), DF).unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let npmrc = secrets.path().join("npmrc");
    std::fs::write(&npmrc, format!("{npmrc_line}\nalways-auth=true\n")).unwrap();
    let repo = format!("{}/{}", env().registry, unique_repo("secret-mount"));
    let out = tempfile::tempdir().unwrap();
    let build = |token: &str, trace: &Path| {
        let o = run(trowel()
            .env("TOKEN", token)
            .args(["build", "-v", "debug", "--context"])
            .arg(ctx.path())
            .args(["--destination", &format!("{repo}:latest"), "--cache", "--cache-repo", &format!("{repo}/cache")])
            .args(["--build-arg", &format!("REGISTRY={}", env().registry)])
            .arg(format!("--secret=id=npmrc,src={}", npmrc.display()))
            .args(["--secret", "id=TOKEN"])
            .arg("--trace")
            .arg(trace));
        let summary = run(trowel().arg("replay").arg(trace).arg("--summary"));
        assert_ok(&summary);
        let text =
            format!("{}{}{}{}", stdout(&o), stderr(&o), std::fs::read_to_string(trace).unwrap(), stdout(&summary));
        (o, text)
    };
    let (o, text) = build(&token, &out.path().join("first.jsonl"));
    assert_ok(&o);
    // Readable in the RUN: the file with its owner and mode, the variable, and an optional
    // secret that was not given is simply not there.
    let image = pull_and_unpack(&format!("{repo}:latest"));
    assert_eq!(image.crun(None).1, format!("440 1000\n1\n{}\nnot-given\n", token.len()));
    let tree = image.tree();
    assert!(!tree.has("/root/.npmrc") && !tree.has("/run"), "{:?}", tree.paths_under("/r"));
    // Masked where the RUN printed it, and nowhere in what was logged or recorded.
    // (The whole file is one secret and each of its lines another: `cat` shows one mask.)
    assert!(text.contains("token=***\n***"), "{text}");
    for value in [&token, &npm_token, &npmrc_line] {
        assert!(!text.contains(value.as_str()), "{value} leaked into the log, trace or summary");
    }
    assert!(text.contains("secret absent was not given"), "an optional secret left out is said so: {text}");
    // Not in any blob of the image or of the layer cache (configs hold the history).
    let image_bytes = layout_bytes(&image.dir.path().join("layout"));
    let cache_bytes = repository_bytes(&format!("{repo}/cache"));
    assert!(!cache_bytes.is_empty(), "the RUN was cached");
    for value in [&token, &npm_token] {
        assert!(!contains(&image_bytes, value), "{value} is in the image");
        assert!(!contains(&cache_bytes, value), "{value} is in the layer cache");
    }
    // A secret's value is not part of the key: another token still hits.
    let (o, text) = build(&format!("{token}-rotated"), &out.path().join("second.jsonl"));
    assert_ok(&o);
    assert!(text.contains("Cache: 1 hit(s), 0 miss(es)"), "{text}");
}

#[test]
fn a_secret_too_short_to_mask_is_refused() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let o = run(trowel()
        .env("SHORT_SECRET", "on")
        .args(["build", "--no-push", "--context"])
        .arg(ctx.path())
        .args(["--secret", "id=flag,env=SHORT_SECRET"]));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "invalid --secret \"id=flag,env=SHORT_SECRET\": the value is 2 byte(s) long: values shorter than 4 bytes \
             cannot be masked reliably"
        ),
        "{}",
        stderr(&o)
    );
}

/// Optional mounts that were not given, as BuildKit runs them: an `env=` secret's variable is
/// set and empty (its `loadSecretEnv`), so `set -u` scripts and `${VAR-…}` take the branch
/// they take there; `SSH_AUTH_SOCK` names the first ssh mount's target, given or not
/// (`client/llb/exec.go`). Two mounts at one target: the later one is seen (`dedupMounts`);
/// `env=` on a cache mount is read and ignored.
#[test]
fn optional_mounts_not_given_and_repeated_targets_run_as_in_buildkit() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("a.txt"), "first\n").unwrap();
    std::fs::create_dir(ctx.path().join("b")).unwrap();
    std::fs::write(ctx.path().join("b/a.txt"), "second\n").unwrap();
    let df = format!(
        "FROM {}\n\
         RUN --mount=type=secret,id=NPM_TOKEN,env=NPM_TOKEN sh -euc 'if [ -n \"$NPM_TOKEN\" ]; then echo tok; else echo \"anon[${{NPM_TOKEN-unset}}]\"; fi' > /secret-env\n\
         RUN --mount=type=ssh,id=absent sh -c 'echo \"[$SSH_AUTH_SOCK]\"' > /ssh-sock\n\
         RUN --mount=type=bind,target=/m --mount=type=bind,source=b,target=/m,env=IGNORED --mount=type=cache,target=/c,env=X cat /m/a.txt > /seen\n",
        env().busybox()
    );
    std::fs::write(ctx.path().join("Dockerfile"), df).unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("optmounts"));
    let o = run(trowel().args(["build", "--destination", &dest, "--context"]).arg(ctx.path()));
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    let root = u.rootfs();
    assert_eq!(Tree::content(&root, "/secret-env"), "anon[]\n");
    assert_eq!(Tree::content(&root, "/ssh-sock"), "[/run/buildkit/ssh_agent.0]\n");
    assert_eq!(Tree::content(&root, "/seen"), "second\n");
}
