//! Platform rules where trowel once differed from BuildKit, end to end against the test
//! registry and checked with skopeo and umoci:
//!
//! - a base's manifest is chosen from an index as containerd's `platforms.Only` chooses it, so
//!   a platform without an exact entry builds on a compatible lower one (`amd64/v2` on `amd64`,
//!   `arm/v7` on `arm/v6`, `amd64` on `386`), and the image says the target platform;
//! - an image named by `COPY --from` or `RUN --mount from=` in a stage on another platform
//!   (`FROM --platform=$BUILDPLATFORM`) is pulled for the target platform, not the stage's;
//! - the automatic ARG `TARGETSTAGE` (BuildKit's `testTargetStageNameArg`).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The two-platform base (`busybox:multi`: Debian's busybox-static for amd64 and arm64).
fn multi() -> String {
    format!("{}/busybox:multi", env().registry)
}

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn build(ctx: &Path, dest: &str, platforms: &str) -> std::process::Output {
    run(trowel().args(["build", "--destination", dest, "--platform", platforms, "--context"]).arg(ctx))
}

/// The config of the image `reference` names, by the manifest it names (no platform choice).
fn config_of(reference: &str) -> serde_json::Value {
    let o = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--config",
        "--raw",
        &format!("docker://{reference}"),
    ]));
    assert_ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `(platform as the index writes it, manifest digest)` of each entry of the index `reference`.
fn entries(reference: &str) -> Vec<(String, String)> {
    let index = skopeo_manifest(reference);
    index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not an index: {index}"))
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut name = format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap());
            if let Some(v) = p["variant"].as_str() {
                name = format!("{name}/{v}");
            }
            (name, m["digest"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn amd64_v2_builds_on_an_index_that_only_lists_amd64_and_says_amd64_v2() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "Dockerfile", &format!("FROM {}\nRUN uname -m > /arch\n", multi()));
    let dest = format!("{}/{}:1", env().registry, unique_repo("compat-v2"));
    let o = build(ctx.path(), &dest, "linux/amd64/v2");
    assert_ok(&o);
    let config = config_of(&dest);
    // The target platform, as BuildKit's dockerfile2llb writes it over the base's.
    assert_eq!((config["architecture"].as_str(), config["variant"].as_str()), (Some("amd64"), Some("v2")), "{config}");
    // The base is the index's amd64 image.
    let o = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--override-arch",
        "amd64",
        "--config",
        "--raw",
        &format!("docker://{}", multi()),
    ]));
    assert_ok(&o);
    let base: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], base["rootfs"]["diff_ids"][0]);
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/arch").trim(), "x86_64");
}

#[test]
fn arm_v7_takes_arm_v6_and_amd64_takes_386_and_what_nothing_serves_lists_the_index() {
    // An index of linux/arm/v6 and linux/386 only, each image holding its platform's name.
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "Dockerfile", "FROM scratch\nARG TARGETPLATFORM\nCOPY ${TARGETPLATFORM}/from /from\n");
    write(ctx.path(), "linux/arm/v6/from", "arm v6\n");
    write(ctx.path(), "linux/386/from", "386\n");
    let base = format!("{}/{}:1", env().registry, unique_repo("compat-base"));
    assert_ok(&build(ctx.path(), &base, "linux/arm/v6,linux/386"));
    let listed: Vec<String> = entries(&base).into_iter().map(|(p, _)| p).collect();
    assert_eq!(listed, ["linux/arm/v6", "linux/386"]);

    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "Dockerfile", &format!("FROM {base}\nCOPY Dockerfile /Dockerfile\n"));
    let dest = format!("{}/{}:1", env().registry, unique_repo("compat-fallback"));
    let o = build(ctx.path(), &dest, "linux/arm/v7,linux/amd64");
    assert_ok(&o);
    let built = entries(&dest);
    assert_eq!(built.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["linux/arm/v7", "linux/amd64"]);
    let repo = dest.rsplit_once(':').unwrap().0;
    for ((platform, digest), (arch, variant, from)) in
        built.iter().zip([("arm", Some("v7"), "arm v6"), ("amd64", None, "386")])
    {
        let reference = format!("{repo}@{digest}");
        let config = config_of(&reference);
        assert_eq!((config["architecture"].as_str(), config["variant"].as_str()), (Some(arch), variant), "{platform}");
        let u = pull_and_unpack(&reference);
        assert_eq!(Tree::content(&u.rootfs(), "/from"), format!("{from}\n"), "{platform}");
    }

    // arm/v5 runs none of them: the error names what the index has.
    let o = build(ctx.path(), &dest, "linux/arm/v5");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("no manifest for platform linux/arm/v5 in the index (it has: linux/arm/v6, linux/386)"),
        "{err}"
    );
}

#[test]
fn an_image_copied_or_mounted_in_a_build_platform_stage_is_the_targets() {
    let ctx = tempfile::tempdir().unwrap();
    let m = multi();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM --platform=$BUILDPLATFORM {m} AS tools\n\
             COPY --from={m} /bin/busybox /copied\n\
             RUN --mount=from={m},target=/m cp /m/bin/busybox /mounted && uname -m > /ran-on\n\
             FROM {m}\n\
             COPY --from=tools /copied /mounted /ran-on /\n"
        ),
    );
    let dest = format!("{}/{}:1", env().registry, unique_repo("compat-source"));
    let o = build(ctx.path(), &dest, "linux/amd64,linux/arm64");
    assert_ok(&o);
    // The tools stage now differs per target: it ran once for each.
    let log = stderr(&o);
    assert_eq!(log.matches("RUN --mount=from=").count(), 2, "{log}");
    let repo = dest.rsplit_once(':').unwrap().0;
    let mut sizes = Vec::new();
    for (platform, digest) in entries(&dest) {
        let u = pull_and_unpack(&format!("{repo}@{digest}"));
        let tree = u.tree();
        // The final stage is the target's busybox; what the tools stage took matches it.
        let own = std::fs::read(u.rootfs().join("bin/busybox")).unwrap();
        for path in ["/copied", "/mounted"] {
            let got = std::fs::read(u.rootfs().join(&path[1..])).unwrap();
            assert!(got == own, "{platform}: {path} is {} bytes, its busybox {}", got.len(), own.len());
        }
        // The stage itself still ran on the build platform.
        assert_eq!(Tree::content(&u.rootfs(), "/ran-on").trim(), "x86_64", "{platform}");
        assert!(tree.has("/copied"));
        sizes.push(own.len());
    }
    assert_eq!(sizes.len(), 2);
    assert_ne!(sizes[0], sizes[1], "the two platforms' busybox should differ");
}

#[test]
fn targetstage_is_the_target_stage_once_declared() {
    let ctx = tempfile::tempdir().unwrap();
    let text = format!(
        "FROM {} AS base\n\
         RUN echo -n \"value:$TARGETSTAGE\" > /first\n\
         ARG TARGETSTAGE\n\
         RUN echo -n \"value:$TARGETSTAGE\" > /second\n\
         FROM scratch AS foo\n\
         COPY --from=base /first /second /\n\
         FROM scratch\n\
         COPY --from=base /first /second /\n",
        env().busybox()
    );
    write(ctx.path(), "Dockerfile", &text);
    let repo = format!("{}/{}", env().registry, unique_repo("compat-stage"));
    let built = |target: Option<&str>, tag: &str| {
        let dest = format!("{repo}:{tag}");
        let mut cmd = trowel();
        cmd.args(["build", "--destination", &dest]);
        if let Some(t) = target {
            cmd.args(["--target", t]);
        }
        assert_ok(&run(cmd.arg("--context").arg(ctx.path())));
        let u = pull_and_unpack(&dest);
        (Tree::content(&u.rootfs(), "/first"), Tree::content(&u.rootfs(), "/second"))
    };
    assert_eq!(built(Some("foo"), "foo"), ("value:".to_string(), "value:foo".to_string()));
    assert_eq!(built(None, "default"), ("value:".to_string(), "value:default".to_string()));
    // A last stage with a name gives that name.
    write(ctx.path(), "Dockerfile", &format!("{text}FROM scratch AS final\nCOPY --from=base /first /second /\n"));
    assert_eq!(built(None, "final"), ("value:".to_string(), "value:final".to_string()));
}
