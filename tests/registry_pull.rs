//! Pull side of the registry client against real docker-registry instances: resolving OCI and
//! Docker schema2 images and multi-platform indexes, streamed and verified blob downloads,
//! error messages, mirrors.

mod common;
#[path = "registry_util/mod.rs"]
mod util;

use std::process::Command;

use trowel_engine::digest::Digest;
use trowel_engine::image::manifest::{ManifestFormat, Platform, media};
use trowel_engine::image::store::BlobStore;
use trowel_engine::registry::{Reference, RegistryError, RegistryOptions};
use util::{opts, registry, rt, tiny_image};

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

#[test]
fn resolves_oci_busybox_and_matches_skopeo() {
    let env = common::env();
    let reg = registry(opts());
    let r = Reference::parse(&env.busybox()).unwrap();
    let img = rt().block_on(reg.resolve(&r, &amd64())).unwrap();
    assert_eq!(img.media_type, media::OCI_MANIFEST);
    assert_eq!(img.reference, r);
    assert_eq!(img.manifest_digest, Digest::of(&img.manifest_bytes));
    assert_eq!(img.config_digest, img.manifest.config.digest);
    assert_eq!(img.config_digest, Digest::of(&img.config_bytes));
    assert!(!img.manifest.layers.is_empty());
    // An independent client agrees on the digest and the config.
    let inspect = common::skopeo_inspect(&env.busybox());
    assert_eq!(inspect["Digest"].as_str().unwrap(), img.manifest_digest.as_str());
    let cfg: serde_json::Value = serde_json::from_slice(&img.config_bytes).unwrap();
    assert_eq!(cfg, common::skopeo_config(&env.busybox()));
}

#[test]
fn resolves_docker_schema2() {
    let env = common::env();
    let reg = registry(opts());
    let r = Reference::parse(&format!("{}/busybox:docker", env.registry)).unwrap();
    let img = rt().block_on(reg.resolve(&r, &amd64())).unwrap();
    assert_eq!(img.media_type, media::DOCKER_MANIFEST);
    assert_eq!(img.manifest.config.media_type, media::DOCKER_CONFIG);
    assert!(img.manifest.layers.iter().all(|l| l.media_type == media::DOCKER_LAYER_GZIP));
    assert_eq!(img.index_digest, None);
    // By digest too.
    let pinned = r.with_digest(img.manifest_digest.clone());
    let again = rt().block_on(reg.resolve(&pinned, &amd64())).unwrap();
    assert_eq!(again.manifest_bytes, img.manifest_bytes);
}

#[test]
fn fetches_layers_streamed_and_verified() {
    let env = common::env();
    let reg = registry(opts());
    let rt = rt();
    let r = Reference::parse(&env.busybox()).unwrap();
    let img = rt.block_on(reg.resolve(&r, &amd64())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    for layer in &img.manifest.layers {
        let last = std::sync::Mutex::new((0u64, 0u64));
        rt.block_on(reg.fetch_blob(&r, layer, &store, &|done, total| *last.lock().unwrap() = (done, total))).unwrap();
        assert_eq!(*last.lock().unwrap(), (layer.size, layer.size));
        assert_eq!(store.size(&layer.digest).unwrap(), layer.size);
        assert!(store.verify(&layer.digest).unwrap());
    }
    // Present blobs are not downloaded again, but a corrupted one is.
    let layer = &img.manifest.layers[0];
    let path = store.path(&layer.digest);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    rt.block_on(reg.fetch_blob(&r, layer, &store, &|_, _| {})).unwrap();
    assert!(store.verify(&layer.digest).unwrap(), "corrupted local blob was fetched again");
}

#[test]
fn blob_corrupted_on_the_registry_is_rejected_after_retries() {
    let env = common::env();
    let reg = registry(opts());
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let repo = common::unique_repo("corrupt");
    // Content unique to this run: the registry's blob store is shared by every test and run.
    let img = tiny_image(&store, ManifestFormat::Oci, &format!("to be corrupted in {repo}"), ("amd64", None), 4096);
    let r = Reference::parse(&format!("{}/{repo}:1", env.registry)).unwrap();
    rt.block_on(reg.push_image(&r, &img.push, &store, &|_| {})).unwrap();
    // Damage the registry's copy in place, keeping its size: the registry serves it as is.
    let on_registry = util::registry_blob_file(&env.dir, "plain", &img.layer.digest);
    let mut bytes = std::fs::read(&on_registry).unwrap();
    bytes[10] ^= 0x55;
    std::fs::write(&on_registry, &bytes).unwrap();

    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = BlobStore::open(fresh_dir.path()).unwrap();
    let err = rt.block_on(reg.fetch_blob(&r, &img.layer, &fresh, &|_, _| {})).unwrap_err();
    assert!(matches!(err, RegistryError::BlobVerification { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("pull {r}: blob {}", img.layer.digest)), "{msg}");
    assert!(!fresh.contains(&img.layer.digest));
    let leftovers = std::fs::read_dir(fresh_dir.path().join("sha256")).unwrap().count();
    assert_eq!(leftovers, 0, "no partial file stays behind");
}

#[test]
fn not_found_errors_name_the_reference() {
    let env = common::env();
    let reg = registry(RegistryOptions { retries: 0, ..opts() });
    let rt = rt();
    let r = Reference::parse(&format!("{}/busybox:nope", env.registry)).unwrap();
    let e = rt.block_on(reg.resolve(&r, &amd64())).unwrap_err();
    assert_eq!(e.to_string(), format!("pull {}/busybox:nope: manifest unknown (404)", env.registry));
    assert!(e.is_not_found());
    let missing = Reference::parse(&format!("{}/nope:1", env.registry)).unwrap();
    let e = rt.block_on(reg.resolve(&missing, &amd64())).unwrap_err().to_string();
    assert!(e.starts_with(&format!("pull {}/nope:1: ", env.registry)) && e.ends_with("(404)"), "{e}");
    assert_eq!(rt.block_on(reg.fetch_manifest(&missing)).unwrap(), None);
    let some = rt.block_on(reg.fetch_manifest(&Reference::parse(&env.busybox()).unwrap())).unwrap().unwrap();
    assert_eq!(some.1, media::OCI_MANIFEST);
    assert_eq!(some.2, Digest::of(&some.0));
}

/// Builds an OCI layout holding an index over three tiny images (amd64, arm/v6, arm/v7) and
/// pushes it with skopeo, so the index is made by an independent tool.
fn push_index_with_skopeo(dest: &str) -> Vec<(Platform, Digest)> {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let store = BlobStore::open(layout.join("blobs")).unwrap();
    let mut entries = Vec::new();
    let mut want = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm", Some("v6")), ("arm", Some("v7"))] {
        let img = tiny_image(&store, ManifestFormat::Oci, &format!("{arch}{variant:?}"), (arch, variant), 0);
        let digest = Digest::of(&img.push.manifest_bytes);
        let mut platform = serde_json::json!({"architecture": arch, "os": "linux"});
        if let Some(v) = variant {
            platform["variant"] = serde_json::json!(v);
        }
        entries.push(serde_json::json!({
            "mediaType": media::OCI_MANIFEST, "digest": digest.to_string(),
            "size": img.push.manifest_bytes.len(), "platform": platform,
        }));
        let p = Platform {
            architecture: arch.into(),
            os: "linux".into(),
            os_version: None,
            variant: variant.map(Into::into),
        };
        want.push((p, digest));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": entries,
    }))
    .unwrap();
    let index_digest = store.put(&index).unwrap();
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": media::OCI_INDEX, "digest": index_digest.to_string(), "size": index.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"},
    }]});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let o = common::run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{dest}"),
    ]));
    common::assert_ok(&o);
    want
}

#[test]
fn index_resolves_the_requested_platform_including_variant() {
    let env = common::env();
    let dest = format!("{}/{}:multi", env.registry, common::unique_repo("index"));
    let want = push_index_with_skopeo(&dest);
    let reg = registry(opts());
    let rt = rt();
    let r = Reference::parse(&dest).unwrap();
    for (platform, digest) in &want {
        let img = rt.block_on(reg.resolve(&r, platform)).unwrap();
        assert_eq!(&img.manifest_digest, digest, "for {platform}");
        assert!(img.index_digest.is_some());
        let cfg: serde_json::Value = serde_json::from_slice(&img.config_bytes).unwrap();
        assert_eq!(cfg["architecture"], platform.architecture.as_str());
        assert_eq!(cfg["variant"].as_str(), platform.variant.as_deref());
    }
    let e = rt.block_on(reg.resolve(&r, &Platform::parse("linux/s390x").unwrap())).unwrap_err().to_string();
    assert!(e.contains("no manifest for platform linux/s390x") && e.contains("linux/arm/v7"), "{e}");
}

#[test]
fn docker_hub_images_come_from_the_mirror() {
    let env = common::env();
    // The mirror holds docker.io's "library/busybox" (copied there with skopeo).
    let o = common::run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}", env.busybox()),
        &format!("docker://{}/hubmirror/library/busybox:1.35", env.registry),
    ]));
    common::assert_ok(&o);
    // A dead mirror first: it is skipped. Docker Hub itself is never reached (no network here).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let reg = registry(RegistryOptions {
        registry_mirrors: vec![format!("127.0.0.1:{dead}"), format!("{}/hubmirror", env.registry)],
        retries: 0,
        ..opts()
    });
    let rt = rt();
    let r = Reference::parse("busybox:1.35").unwrap();
    let img = rt.block_on(reg.resolve(&r, &amd64())).unwrap();
    assert_eq!(img.reference.to_string(), "docker.io/library/busybox:1.35");
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    rt.block_on(reg.fetch_blob(&r, &img.manifest.layers[0], &store, &|_, _| {})).unwrap();
    assert!(store.verify(&img.manifest.layers[0].digest).unwrap());
}
