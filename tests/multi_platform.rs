//! A build for several platforms, end to end: one command builds linux/amd64 and linux/arm64,
//! the arm64 RUNs under QEMU user emulation, a `FROM --platform=$BUILDPLATFORM` stage that
//! does not depend on the target is built once and shared, and the destinations receive an
//! image index. Everything is checked with independent tools: skopeo (the index, each
//! platform's manifest and config), umoci (each platform's files) and crun (the arm64 image
//! runs under emulation, the amd64 one natively).

mod common;

use std::process::Command;

use common::*;

/// The two-platform base (`busybox:multi`: Debian's busybox-static for amd64 and arm64).
fn multi() -> String {
    format!("{}/busybox:multi", env().registry)
}

fn skopeo_arch_config(reference: &str, arch: &str) -> serde_json::Value {
    let o = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--override-arch",
        arch,
        "--config",
        "--raw",
        &format!("docker://{reference}"),
    ]));
    assert_ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn dockerfile() -> String {
    let b = multi();
    format!(
        "FROM --platform=$BUILDPLATFORM {b} AS tools\n\
         RUN echo \"tool built on $(uname -m)\" > /tool\n\
         FROM --platform=$BUILDPLATFORM {b} AS cross\n\
         ARG TARGETARCH BUILDPLATFORM\n\
         RUN echo \"$TARGETARCH from $BUILDPLATFORM on $(uname -m)\" > /cross\n\
         FROM {b}\n\
         ARG TARGETARCH TARGETPLATFORM\n\
         COPY --from=tools /tool /tool\n\
         COPY --from=cross /cross /cross\n\
         RUN uname -m > /arch && echo \"$TARGETPLATFORM\" > /target\n"
    )
}

#[test]
fn two_platforms_make_one_index_with_a_shared_build_platform_stage() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile()).unwrap();
    let repo = format!("{}/{}", env().registry, unique_repo("multi"));
    let (one, two) = (format!("{repo}:1"), format!("{repo}:2"));
    let out = tempfile::tempdir().unwrap();
    let digest_file = out.path().join("digest");
    let layout = out.path().join("layout");
    let trace = out.path().join("trace.jsonl");
    let o = run(trowel()
        .args(["build", "--destination", &one, "--destination", &two, "--verbosity", "info"])
        .args(["--platform", "linux/amd64,linux/arm64", "--digest-file"])
        .arg(&digest_file)
        .arg("--oci-layout-path")
        .arg(&layout)
        .arg("--trace")
        .arg(&trace)
        .arg("--context")
        .arg(ctx.path()));
    assert_ok(&o);
    let log = stderr(&o);

    // The shared stage ran once; the cross-compile stage (it declares TARGETARCH) and the
    // final stage once per platform.
    assert_eq!(log.matches("RUN echo \"tool built on").count(), 1, "{log}");
    assert_eq!(log.matches("RUN echo \"$TARGETARCH from").count(), 2, "{log}");
    assert_eq!(log.matches("RUN uname -m > /arch").count(), 2, "{log}");

    // The index: both tags name it, it names both platforms, the digest file names it.
    let raw = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", "--raw", &format!("docker://{one}")]));
    assert_ok(&raw);
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json", "{index}");
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!("{}/{}", m["platform"]["os"].as_str().unwrap(), m["platform"]["architecture"].as_str().unwrap())
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let index_digest = format!("sha256:{}", sha256_hex(&raw.stdout));
    assert_eq!(std::fs::read_to_string(&digest_file).unwrap().trim(), index_digest);
    assert_eq!(skopeo_manifest(&two), index);
    // The OCI layout holds the same index and both platforms, read by skopeo.
    let local = run(Command::new("skopeo").args(["inspect", "--raw", &format!("oci:{}:1", layout.display())]));
    assert_ok(&local);
    assert_eq!(format!("sha256:{}", sha256_hex(&local.stdout)), index_digest);
    for arch in ["amd64", "arm64"] {
        let o = run(Command::new("skopeo").args([
            "inspect",
            "--override-arch",
            arch,
            "--config",
            "--raw",
            &format!("oci:{}:1", layout.display()),
        ]));
        assert_ok(&o);
        let config: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(config["architecture"], arch);
    }

    // The trace, replayed: each stage with its platform, each platform's image, the index.
    let summary = run(trowel().arg("replay").arg(&trace).arg("--summary"));
    assert_ok(&summary);
    let summary = stdout(&summary);
    assert!(summary.contains("platforms linux/amd64, linux/arm64"), "{summary}");
    assert!(summary.contains("Stage tools (linux/amd64 (shared by all))"), "{summary}");
    assert!(summary.contains("Stage cross (linux/amd64 (for linux/arm64))"), "{summary}");
    assert!(summary.contains("Image linux/arm64: sha256:"), "{summary}");
    assert!(summary.contains(&format!("Index: {index_digest} (application/vnd.oci.image.index.v1+json)")), "{summary}");

    // Each platform's config says its platform.
    for arch in ["amd64", "arm64"] {
        let config = skopeo_arch_config(&one, arch);
        assert_eq!((config["os"].as_str(), config["architecture"].as_str()), (Some("linux"), Some(arch)));
    }

    // Each platform's files, read by umoci: the arm64 RUN really ran as arm64 (emulated), the
    // cross stage ran on the build platform for each target, the shared tool is one layer.
    let amd = unpack_arch(&one, "amd64");
    let arm = unpack_arch(&one, "arm64");
    let read = |u: &Unpacked, p: &str| Tree::content(&u.rootfs(), p).trim().to_string();
    assert_eq!(read(&amd, "/arch"), "x86_64");
    assert_eq!(read(&arm, "/arch"), "aarch64");
    assert_eq!(read(&amd, "/target"), "linux/amd64");
    assert_eq!(read(&arm, "/target"), "linux/arm64");
    assert_eq!(read(&amd, "/cross"), "amd64 from linux/amd64 on x86_64");
    assert_eq!(read(&arm, "/cross"), "arm64 from linux/amd64 on x86_64");
    assert_eq!(read(&amd, "/tool"), "tool built on x86_64");
    assert_eq!(read(&arm, "/tool"), "tool built on x86_64");
    // Each platform's manifest, by the digest the index names for it.
    let layers = |arch: &str| {
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap_or_else(|| panic!("no {arch} entry in {index}"));
        let m = skopeo_manifest(&format!("{repo}@{}", entry["digest"].as_str().unwrap()));
        m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let (la, lr) = (layers("amd64"), layers("arm64"));
    // Base, COPY tool, COPY cross, RUN: the tool's layer is the same blob in both images.
    assert_eq!((la.len(), lr.len()), (4, 4));
    assert_eq!(la[1], lr[1]);
    assert_ne!(la[0], lr[0]);

    // The images run: arm64 under emulation, amd64 natively.
    let (code, out, err) = arm.crun(Some(&["uname", "-m"]));
    assert_eq!((code, out.trim()), (0, "aarch64"), "{err}");
    let (code, out, err) = amd.crun(Some(&["uname", "-m"]));
    assert_eq!((code, out.trim()), (0, "x86_64"), "{err}");
}

#[test]
fn a_base_without_one_of_the_platforms_fails_before_building_and_pushes_nothing() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile()).unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("multi-missing"));
    let o = run(trowel()
        .args(["build", "--destination", &dest, "--platform", "linux/amd64,linux/ppc64le", "--context"])
        .arg(ctx.path()));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "Dockerfile:1: FROM --platform=$BUILDPLATFORM {} AS tools: the base image for linux/ppc64le",
            multi()
        )) || err.contains(&format!("Dockerfile:6: FROM {}: the base image for linux/ppc64le", multi())),
        "{err}"
    );
    assert!(
        err.contains("no manifest for platform linux/ppc64le in the index (it has: linux/amd64, linux/arm64"),
        "{err}"
    );
    // Nothing ran: the amd64 stages were not built first.
    assert!(!err.contains("RUN echo"), "{err}");
    let inspect =
        run(Command::new("skopeo").args(["inspect", "--tls-verify=false", "--raw", &format!("docker://{dest}")]));
    assert!(!inspect.status.success(), "something was pushed");
}

#[test]
fn a_mistyped_platform_is_refused_before_anything_is_pulled() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile()).unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("multi-typo"));
    let o = run(trowel()
        .args(["build", "--destination", &dest, "--platform", "linux/amd46,linux/arm64", "--context"])
        .arg(ctx.path()));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(r#"invalid platform "linux/amd46": unknown architecture "amd46" (did you mean amd64?)"#),
        "{err}"
    );
    assert!(!err.contains("Retrieved"), "{err}");
}

/// A platform given twice, in two spellings, is built once (buildx dedupes its `--platform`
/// list): one image, no index.
#[test]
fn a_platform_given_twice_is_built_once() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), "FROM scratch\nCOPY Dockerfile /\n").unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("multi-twice"));
    let o = run(trowel()
        .args(["build", "--destination", &dest, "--platform", "linux/amd64", "--platform", "linux/x86_64", "--context"])
        .arg(ctx.path()));
    assert_ok(&o);
    assert!(stderr(&o).contains(") for linux/amd64\n"), "{}", stderr(&o));
    let manifest = skopeo_manifest(&dest);
    assert!(manifest.get("manifests").is_none(), "one image, not an index: {manifest}");
}

/// Turns a binfmt_misc handler off for the length of a test, and back on when dropped (also
/// when the test fails).
struct HandlerOff(&'static str);

impl HandlerOff {
    fn new(name: &'static str) -> HandlerOff {
        let path = format!("/proc/sys/fs/binfmt_misc/{name}");
        let state = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{path}: {e} (the test command enables QEMU's handlers: scripts/enable-emulation.sh)")
        });
        assert!(state.starts_with("enabled"), "{path} is not enabled to begin with");
        std::fs::write(&path, "0").unwrap();
        HandlerOff(name)
    }
}

impl Drop for HandlerOff {
    fn drop(&mut self) {
        let _ = std::fs::write(format!("/proc/sys/fs/binfmt_misc/{}", self.0), "1");
    }
}

#[test]
fn a_platform_without_an_emulation_handler_fails_before_anything_is_pulled() {
    // s390x: a handler no other test uses, turned off in the real kernel for this test.
    let _off = HandlerOff::new("qemu-s390x");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile()).unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("multi-handler"));
    let o = run(trowel()
        .args(["build", "--destination", &dest, "--platform", "linux/amd64,linux/s390x", "--context"])
        .arg(ctx.path()));
    assert!(!o.status.success());
    let err = stderr(&o);
    // The first RUN that would run as s390x is named (the final stage's: the others run on
    // the build platform), with what to do about it.
    assert!(
        err.contains("Dockerfile:10: RUN uname -m > /arch && echo \"$TARGETPLATFORM\" > /target: cannot run for platform linux/s390x"),
        "{err}"
    );
    assert!(err.contains("qemu-s390x") && err.contains("disabled"), "{err}");
    assert!(!err.contains("Retrieved"), "something was pulled: {err}");
    let inspect =
        run(Command::new("skopeo").args(["inspect", "--tls-verify=false", "--raw", &format!("docker://{dest}")]));
    assert!(!inspect.status.success(), "something was pushed");
}

#[test]
fn each_platform_of_a_build_for_several_is_the_image_a_build_for_it_alone_makes() {
    let ctx = tempfile::tempdir().unwrap();
    let df =
        format!("FROM {}\nARG TARGETARCH\nRUN echo \"$TARGETARCH $(uname -m)\" > /t\nCOPY Dockerfile /\n", multi());
    std::fs::write(ctx.path().join("Dockerfile"), df).unwrap();
    let repo = format!("{}/{}", env().registry, unique_repo("multi-same"));
    let build = |tag: &str, platforms: &str| {
        let o = run(trowel()
            .args(["build", "--reproducible", "--destination", &format!("{repo}:{tag}"), "--platform", platforms])
            .arg("--context")
            .arg(ctx.path()));
        assert_ok(&o);
    };
    build("both", "linux/amd64,linux/arm64");
    build("arm", "linux/arm64");
    build("amd", "linux/amd64");
    let index = skopeo_manifest(&format!("{repo}:both"));
    let digest_of = |arch: &str| {
        index["manifests"].as_array().unwrap().iter().find(|m| m["platform"]["architecture"] == arch).unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let alone = |tag: &str| {
        let raw = run(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{repo}:{tag}"),
        ]));
        assert_ok(&raw);
        format!("sha256:{}", sha256_hex(&raw.stdout))
    };
    assert_eq!(digest_of("arm64"), alone("arm"));
    assert_eq!(digest_of("amd64"), alone("amd"));
}

#[test]
fn an_unchanged_rebuild_from_the_cache_pushes_nothing_again() {
    let ctx = tempfile::tempdir().unwrap();
    let df = format!("FROM {}\nARG TARGETARCH\nRUN echo \"$TARGETARCH\" > /t\nCOPY Dockerfile /\n", multi());
    std::fs::write(ctx.path().join("Dockerfile"), df).unwrap();
    let repo = format!("{}/{}", env().registry, unique_repo("multi-again"));
    let build = || {
        let o = run(trowel()
            .args(["build", "--destination", &format!("{repo}:1"), "--platform", "linux/amd64,linux/arm64"])
            .args(["--cache=true", "--cache-copy-layers=true", "--cache-repo", &format!("{repo}-cache")])
            .arg("--context")
            .arg(ctx.path()));
        assert_ok(&o);
        stderr(&o)
    };
    let first = build();
    assert!(!first.contains("unchanged"), "{first}");
    let again = build();
    assert!(again.contains("Cache: 4 hit(s), 0 miss(es)"), "first build:\n{first}\nsecond:\n{again}");
    assert!(again.contains("(unchanged: the registry already had it)"), "{again}");
    // Every hit was the platform's own entry: a key carries the platform of its stage's root,
    // here the target's.
    let index = skopeo_manifest(&format!("{repo}:1"));
    for arch in ["amd64", "arm64"] {
        let entry =
            index["manifests"].as_array().unwrap().iter().find(|m| m["platform"]["architecture"] == arch).unwrap();
        let u = pull_and_unpack(&format!("{repo}@{}", entry["digest"].as_str().unwrap()));
        assert_eq!(Tree::content(&u.rootfs(), "/t").trim(), arch);
    }
    assert_eq!(skopeo_manifest(&format!("{repo}:1"))["manifests"].as_array().unwrap().len(), 2);
}

/// A `FROM --platform=$BUILDPLATFORM` stage that does not depend on the target is one cache
/// entry whatever the build's targets: reordered `--platform`s, or one of them alone, hit it.
/// Its key held the first target's platform: both rebuilds missed it and ran it again.
#[test]
fn a_build_platform_stage_hits_whatever_the_targets_and_their_order() {
    let ctx = tempfile::tempdir().unwrap();
    let df = format!(
        "FROM --platform=$BUILDPLATFORM {b} AS tools\n\
         RUN echo \"tool built on $(uname -m)\" > /tool\n\
         FROM scratch\n\
         COPY --from=tools /tool /tool\n",
        b = multi()
    );
    std::fs::write(ctx.path().join("Dockerfile"), df).unwrap();
    let repo = format!("{}/{}", env().registry, unique_repo("multi-order"));
    let build = |platforms: &str| {
        let o = run(trowel()
            .args(["build", "--destination", &format!("{repo}:1"), "--platform", platforms])
            .args(["--cache=true", "--cache-repo", &format!("{repo}-cache")])
            .arg("--context")
            .arg(ctx.path()));
        assert_ok(&o);
        stderr(&o)
    };
    let first = build("linux/arm64,linux/amd64");
    assert!(first.contains("Cache miss: no cache entry"), "{first}");
    for platforms in ["linux/amd64,linux/arm64", "linux/amd64", "linux/arm64"] {
        let again = build(platforms);
        assert!(again.contains("Using cached layer"), "{platforms}:\n{again}");
        assert!(!again.contains("Cache miss"), "{platforms}: first build:\n{first}\nthis one:\n{again}");
    }
}

#[test]
fn run_output_says_which_platform_each_line_is_from() {
    // The platforms' RUNs run at the same time: every line of their output carries its
    // platform, a last line without a newline too.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {}\nRUN printf 'one\\ntwo' && uname -m >&2\n", multi()),
    )
    .unwrap();
    let o = run(trowel()
        .args(["build", "--no-push", "--platform", "linux/amd64,linux/arm64", "--context"])
        .arg(ctx.path()));
    assert_ok(&o);
    let (out, err) = (stdout(&o), stderr(&o));
    // The two lanes' lines may interleave; each platform's own lines come whole and in order.
    for p in ["linux/amd64", "linux/arm64"] {
        let tag = format!("[{p}] ");
        let mine: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix(tag.as_str())).collect();
        assert_eq!(mine, ["one", "two"], "{out}");
    }
    assert!(err.contains("[linux/amd64] x86_64\n") && err.contains("[linux/arm64] aarch64\n"), "{err}");
}
