//! `--annotation`, end to end and read back with skopeo (`inspect --raw`): on the manifest of a
//! one-platform build (from a Docker schema2 base, so the annotated image is written with OCI
//! media types), reproducible with `--reproducible`; on the index, its entries and each
//! platform's manifest of a two-platform build; and refused before any pull when the flags
//! alone show it cannot apply.

mod common;

use std::process::Command;

use common::*;

fn raw(reference: &str) -> serde_json::Value {
    skopeo_manifest(reference)
}

#[test]
fn one_platform_manifest_annotations_stay_reproducible() {
    let env = env();
    let ctx = tempfile::tempdir().unwrap();
    // busybox:docker is a Docker schema2 image: annotations need OCI's media types.
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}/busybox:docker\nCOPY f /f\n", env.registry))
        .unwrap();
    std::fs::write(ctx.path().join("f"), "annotated\n").unwrap();
    let repo = format!("{}/{}", env.registry, unique_repo("annotated"));
    let out = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for tag in ["1", "2"] {
        let digest_file = out.path().join(format!("digest-{tag}"));
        let o = run(trowel()
            .args(["build", "--context"])
            .arg(ctx.path())
            .args(["--destination", &format!("{repo}:{tag}"), "--reproducible"])
            .args(["--annotation", "org.opencontainers.image.source=https://example.com/app"])
            .args(["--annotation", "manifest:com.example.note=a b=c"])
            .args(["--annotation", "com.example.empty="])
            .arg("--digest-file")
            .arg(&digest_file));
        assert_ok(&o);
        digests.push(std::fs::read_to_string(&digest_file).unwrap());
    }
    assert_eq!(digests[0], digests[1], "two reproducible builds, two digests");
    let m = raw(&format!("{repo}:1"));
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(m["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    for l in m["layers"].as_array().unwrap() {
        assert_eq!(l["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip", "{l}");
    }
    assert_eq!(
        m["annotations"],
        serde_json::json!({
            "com.example.empty": "",
            "com.example.note": "a b=c",
            "org.opencontainers.image.source": "https://example.com/app",
        })
    );
    // The converted image is whole: skopeo copies it (every blob by its new media type).
    let layout = out.path().join("layout");
    let o = run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{repo}:1"),
        &format!("oci:{}:img", layout.display()),
    ]));
    assert_ok(&o);
}

#[test]
fn two_platforms_annotate_the_index_its_entries_and_each_manifest() {
    let env = env();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}/busybox:multi\nCOPY f /f\n", env.registry)).unwrap();
    std::fs::write(ctx.path().join("f"), "both\n").unwrap();
    let repo = format!("{}/{}", env.registry, unique_repo("annotated-multi"));
    let o = run(trowel()
        .args(["build", "--context"])
        .arg(ctx.path())
        .args(["--destination", &format!("{repo}:1"), "--platform", "linux/amd64,linux/arm64"])
        .args(["--annotation", "index:org.opencontainers.image.description=two platforms"])
        .args(["--annotation", "manifest-descriptor[linux/arm64]:com.example.entry=arm"])
        .args(["--annotation", "com.example.all=yes"])
        .args(["--annotation", "manifest[linux/amd64]:com.example.only=amd64"]));
    assert_ok(&o);
    let index = raw(&format!("{repo}:1"));
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(index["annotations"], serde_json::json!({"org.opencontainers.image.description": "two platforms"}));
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for e in entries {
        let arch = e["platform"]["architecture"].as_str().unwrap();
        let m = raw(&format!("{repo}@{}", e["digest"].as_str().unwrap()));
        match arch {
            "amd64" => {
                assert!(e.get("annotations").is_none(), "{e}");
                assert_eq!(
                    m["annotations"],
                    serde_json::json!({"com.example.all": "yes", "com.example.only": "amd64"})
                );
            }
            "arm64" => {
                assert_eq!(e["annotations"], serde_json::json!({"com.example.entry": "arm"}));
                assert_eq!(m["annotations"], serde_json::json!({"com.example.all": "yes"}));
            }
            other => panic!("unexpected platform {other}"),
        }
    }
}

#[test]
fn annotations_that_cannot_apply_are_refused_before_the_pull() {
    let ctx = tempfile::tempdir().unwrap();
    // A base nobody can pull: the error must come from the flags, not from the pull.
    std::fs::write(ctx.path().join("Dockerfile"), "FROM 127.0.0.1:9/nothing:here\n").unwrap();
    for (flags, want) in [
        (vec!["--annotation", "index:k=v"], "index annotations need an image index"),
        (
            vec!["--annotation", "manifest[linux/arm64]:k=v", "--platform", "linux/amd64"],
            "linux/arm64 is not a platform of this build",
        ),
        (vec!["--annotation", "bad key=v"], "invalid --annotation \"bad key=v\""),
        (vec!["--annotation", "index-descriptor:k=v"], "OCI layout exporter"),
    ] {
        let o = run(trowel().args(["build", "--no-push", "--context"]).arg(ctx.path()).args(&flags));
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{flags:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("nothing:here"), "{}", stderr(&o));
    }
}
