//! A platform is one platform however it is written or recorded, as in BuildKit (containerd's
//! `platforms.Parse` and `Normalize`): `FROM --platform=linux/x86_64`, `amd64`, `LINUX/AMD64`
//! and `linux` (on an amd64 host) all pick and run the amd64 image; and an arm64 base whose
//! config says `variant: v8` (as many on Docker Hub do) gives an image, an index entry and a
//! log for `linux/arm64`, not `linux/arm64/v8`. Images are read back with skopeo and umoci.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use common::*;

fn multi() -> String {
    format!("{}/busybox:multi", env().registry)
}

fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(bytes));
    std::fs::write(layout.join("blobs/sha256").join(&digest[7..]), bytes).unwrap();
    digest
}

fn read_json(layout: &Path, digest: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap()).unwrap()
}

/// An index in the test registry like Docker Hub's: busybox for amd64, and for arm64 with
/// `"variant": "v8"` in its config and its index entry.
fn v8_index() -> &'static str {
    static REF: OnceLock<String> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        let reg = &env().registry;
        for (tag, src) in [("amd", "busybox:latest"), ("arm", "busybox:arm64")] {
            let o = run(Command::new("skopeo")
                .args(["copy", "-q", "--src-tls-verify=false"])
                .args([format!("docker://{reg}/{src}"), format!("oci:{}:{tag}", layout.display())]));
            assert_ok(&o);
        }
        let top: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let entry = |tag: &str| {
            top["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
                .unwrap()
                .clone()
        };
        let amd = entry("amd");
        let mut manifest = read_json(&layout, entry("arm")["digest"].as_str().unwrap());
        let mut config = read_json(&layout, manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(config["architecture"], "arm64");
        config["variant"] = "v8".into();
        let config_bytes = serde_json::to_vec(&config).unwrap();
        manifest["config"]["digest"] = put_blob(&layout, &config_bytes).into();
        manifest["config"]["size"] = config_bytes.len().into();
        let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
        let arm_digest = put_blob(&layout, &manifest_bytes);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": amd["mediaType"], "digest": amd["digest"], "size": amd["size"],
                 "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": amd["mediaType"], "digest": arm_digest, "size": manifest_bytes.len(),
                 "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            ],
        });
        let index_bytes = serde_json::to_vec(&index).unwrap();
        let index_digest = put_blob(&layout, &index_bytes);
        let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest,
            "size": index_bytes.len(), "annotations": {"org.opencontainers.image.ref.name": "v8"},
        }]});
        std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
        let dest = format!("{reg}/{}:v8", unique_repo("busybox-v8"));
        let o = run(Command::new("skopeo")
            .args(["copy", "-q", "--all", "--dest-tls-verify=false"])
            .args([format!("oci:{}:v8", layout.display()), format!("docker://{dest}")]));
        assert_ok(&o);
        dest
    })
}

fn build(dockerfile: &str, dest: &str, extra: &[&str]) -> std::process::Output {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    run(trowel().args(["build", "--destination", dest]).args(extra).arg("--context").arg(ctx.path()))
}

fn config_of(reference: &str, arch: &str) -> serde_json::Value {
    let o = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", "--override-arch", arch]).args([
        "--config",
        "--raw",
        &format!("docker://{reference}"),
    ]));
    assert_ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn an_arm64_base_whose_config_says_v8_gives_a_linux_arm64_image() {
    let base = v8_index();
    let repo = format!("{}/{}", env().registry, unique_repo("v8"));
    // For several platforms: the index entry, the config and the log say linux/arm64.
    let df = format!("FROM {base}\nRUN uname -m > /m\n");
    let o = build(&df, &format!("{repo}:multi"), &["--platform", "linux/amd64,linux/arm64"]);
    assert_ok(&o);
    let log = stderr(&o);
    assert!(!log.contains("arm64/v8"), "{log}");
    let index = skopeo_manifest(&format!("{repo}:multi"));
    let platforms: Vec<&serde_json::Value> =
        index["manifests"].as_array().unwrap().iter().map(|m| &m["platform"]).collect();
    assert_eq!(
        platforms,
        [
            &serde_json::json!({"architecture": "amd64", "os": "linux"}),
            &serde_json::json!({"architecture": "arm64", "os": "linux"})
        ],
        "{index}"
    );
    let config = config_of(&format!("{repo}:multi"), "arm64");
    assert_eq!((&config["architecture"], config.get("variant")), (&"arm64".into(), None), "{config}");

    // For one: asked with --platform, or picked by FROM --platform.
    let o = build(&df, &format!("{repo}:one"), &["--platform", "linux/arm64"]);
    assert_ok(&o);
    assert!(!stderr(&o).contains("arm64/v8"), "{}", stderr(&o));
    let config = skopeo_config(&format!("{repo}:one"));
    assert_eq!((&config["architecture"], config.get("variant")), (&"arm64".into(), None), "{config}");
    let o = build(&format!("FROM --platform=linux/arm64 {base}\nRUN uname -m > /m\n"), &format!("{repo}:from"), &[]);
    assert_ok(&o);
    let config = skopeo_config(&format!("{repo}:from"));
    assert_eq!((&config["architecture"], config.get("variant")), (&"arm64".into(), None), "{config}");
    assert_eq!(Tree::content(&pull_and_unpack(&format!("{repo}:from")).rootfs(), "/m").trim(), "aarch64");
}

#[test]
fn from_platform_takes_containerds_spellings_and_runs_as_what_it_picked() {
    let m = multi();
    let spellings = ["linux/x86_64", "linux/aarch64", "arm64", "LINUX/ARM64", "amd64", "linux", "Linux/AMD64"];
    let mut df = String::new();
    for (i, p) in spellings.iter().enumerate() {
        df.push_str(&format!("FROM --platform={p} {m} AS s{i}\nRUN uname -m > /m\n"));
    }
    df.push_str(&format!("FROM {m}\n"));
    for i in 0..spellings.len() {
        df.push_str(&format!("COPY --from=s{i} /m /m{i}\n"));
    }
    let dest = format!("{}/{}:1", env().registry, unique_repo("spellings"));
    let o = build(&df, &dest, &["--platform", "linux/amd64"]);
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    let machines: Vec<String> =
        (0..spellings.len()).map(|i| Tree::content(&u.rootfs(), &format!("/m{i}")).trim().to_string()).collect();
    // `linux` alone is the host's architecture (these tests run on amd64), as in containerd.
    assert_eq!(machines, ["x86_64", "aarch64", "aarch64", "aarch64", "x86_64", "x86_64", "x86_64"], "{}", stderr(&o));

    // `armhf` is arm/v7, which busybox:multi does not have: said at the FROM, not the RUN.
    let o = build(&format!("FROM --platform=linux/armhf {m}\nRUN true\n"), &dest, &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&format!("Dockerfile:1: FROM --platform=linux/armhf {m}")), "{err}");
    assert!(err.contains("no manifest for platform linux/arm/v7"), "{err}");
    // A typo is refused at its FROM before anything runs, whatever the base.
    let o = build(&format!("FROM {m} AS a\nFROM --platform=linux/amd46 a\nRUN true\n"), &dest, &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(r#"Dockerfile:2: FROM --platform=linux/amd46 a: FROM --platform: invalid platform "linux/amd46""#),
        "{err}"
    );
    assert!(!err.contains("RUN true"), "{err}");
    // And the build's own --platform takes the same spellings.
    let o = build(&format!("FROM {m}\nRUN uname -m > /m\n"), &dest, &["--platform", "LINUX/AARCH64"]);
    assert_ok(&o);
    assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/m").trim(), "aarch64");
}
