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

/// Pulls the `arch` image of the index at `reference` with skopeo and unpacks it with umoci.
fn unpack_arch(reference: &str, arch: &str) -> Unpacked {
    let dir = tempfile::Builder::new().prefix("trowel-unpack-").tempdir().unwrap();
    let layout = dir.path().join("layout");
    let o = run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--override-arch",
        arch,
        &format!("docker://{reference}"),
        &format!("oci:{}:img", layout.display()),
    ]));
    assert_ok(&o);
    unpack_layout(dir, &layout, "img")
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
    let o = run(trowel()
        .args(["build", "--destination", &one, "--destination", &two, "--verbosity", "info"])
        .args(["--platform", "linux/amd64,linux/arm64", "--digest-file"])
        .arg(&digest_file)
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
    let layers = |arch: &str| {
        let o = run(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            arch,
            "--raw",
            &format!("docker://{one}"),
        ]));
        assert_ok(&o);
        let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
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
        .args(["build", "--destination", &dest, "--platform", "linux/amd64,linux/s390x", "--context"])
        .arg(ctx.path()));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "Dockerfile:1: FROM --platform=$BUILDPLATFORM {} AS tools: the base image for linux/s390x",
            multi()
        )) || err.contains(&format!("Dockerfile:6: FROM {}: the base image for linux/s390x", multi())),
        "{err}"
    );
    assert!(
        err.contains("no manifest for platform linux/s390x in the index (it has: linux/amd64, linux/arm64"),
        "{err}"
    );
    // Nothing ran: the amd64 stages were not built first.
    assert!(!err.contains("RUN "), "{err}");
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
        .args(["build", "--destination", &dest, "--platform", "linux/amd64,linux/arm46", "--context"])
        .arg(ctx.path()));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(r#"invalid platform "linux/arm46": unknown architecture "arm46" (did you mean arm64?)"#),
        "{err}"
    );
    assert!(!err.contains("Retrieved"), "{err}");
    let o = run(trowel()
        .args(["build", "--destination", &dest, "--platform", "linux/amd64", "--platform", "linux/x86_64", "--context"])
        .arg(ctx.path()));
    assert!(stderr(&o).contains("is the same platform as linux/amd64"), "{}", stderr(&o));
}
