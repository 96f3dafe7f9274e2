//! Push side of the registry client against a real docker-registry, checked with skopeo and
//! umoci: uploads, re-push (blobs exist), cross-repository mounts, schema2, manifest last.

mod common;
#[path = "registry_util/mod.rs"]
mod util;

use std::sync::Mutex;

use trowel_engine::digest::Digest;
use trowel_engine::image::manifest::{ManifestFormat, Platform, media};
use trowel_engine::image::store::BlobStore;
use trowel_engine::registry::{BlobAction, PushBlob, PushProgress, Reference, RegistryError};
use util::{opts, registry, rt, tiny_image};

fn dest(name: &str, tag: &str) -> Reference {
    Reference::parse(&format!("{}/{}:{tag}", common::env().registry, common::unique_repo(name))).unwrap()
}

#[test]
fn pushed_image_is_readable_by_independent_tools() {
    let reg = registry(opts());
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    // 6 MiB of incompressible data: more than one 4 MiB chunk, sent as one streamed PUT.
    let img = tiny_image(&store, ManifestFormat::Oci, "hello from trowel\n", ("amd64", None), 6 << 20);
    let r = dest("push", "v1");
    let events = Mutex::new(Vec::new());
    let report = rt().block_on(reg.push_image(&r, &img.push, &store, &|p| events.lock().unwrap().push(p))).unwrap();
    assert_eq!(report.manifest_digest, Digest::of(&img.push.manifest_bytes));
    assert_eq!(
        report.blobs,
        vec![
            (img.config.digest.clone(), BlobAction::Uploaded, img.config.size),
            (img.layer.digest.clone(), BlobAction::Uploaded, img.layer.size),
        ]
    );
    let events = events.into_inner().unwrap();
    assert!(events.contains(&PushProgress::Blob {
        digest: img.layer.digest.clone(),
        sent: img.layer.size,
        total: img.layer.size
    }));
    assert!(
        events.contains(&PushProgress::BlobDone { digest: img.layer.digest.clone(), action: BlobAction::Uploaded })
    );

    let inspect = common::skopeo_inspect(&r.to_string());
    assert_eq!(inspect["Digest"].as_str().unwrap(), report.manifest_digest.as_str());
    let raw = common::skopeo_manifest(&r.to_string());
    assert_eq!(raw, serde_json::from_slice::<serde_json::Value>(&img.push.manifest_bytes).unwrap());
    let unpacked = common::pull_and_unpack(&r.to_string());
    assert_eq!(common::Tree::content(&unpacked.rootfs(), "/hello.txt"), "hello from trowel\n");
    assert_eq!(std::fs::metadata(unpacked.rootfs().join("pad.bin")).unwrap().len(), 6 << 20);
}

#[test]
fn repush_finds_blobs_existing_and_pulls_back_identically() {
    let reg = registry(opts());
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let img = tiny_image(&store, ManifestFormat::Oci, "again", ("amd64", None), 0);
    let r = dest("repush", "1");
    rt.block_on(reg.push_image(&r, &img.push, &store, &|_| {})).unwrap();
    let second = rt.block_on(reg.push_image(&r.with_tag("2").unwrap(), &img.push, &store, &|_| {})).unwrap();
    assert!(second.blobs.iter().all(|(_, a, _)| *a == BlobAction::Existed), "{second:?}");
    assert!(rt.block_on(reg.blob_exists(&r, &img.layer.digest)).unwrap());
    assert!(!rt.block_on(reg.blob_exists(&r, &Digest::of(b"not there"))).unwrap());
    let back = rt.block_on(reg.resolve(&r.with_tag("2").unwrap(), &Platform::parse("linux/amd64").unwrap())).unwrap();
    assert_eq!(back.manifest_bytes, img.push.manifest_bytes);
}

#[test]
fn blobs_are_mounted_across_repositories() {
    let reg = registry(opts());
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let img = tiny_image(&store, ManifestFormat::Oci, "mount me", ("amd64", None), 1024);
    let base = dest("mount-src", "base");
    rt.block_on(reg.push_image(&base, &img.push, &store, &|_| {})).unwrap();
    let mut push = img.push.clone();
    for b in &mut push.blobs {
        b.mount_from = Some(base.clone());
    }
    let target = dest("mount-dst", "app");
    let report = rt.block_on(reg.push_image(&target, &push, &store, &|_| {})).unwrap();
    assert!(report.blobs.iter().all(|(_, a, _)| *a == BlobAction::Mounted), "{report:?}");
    assert_eq!(
        common::skopeo_inspect(&target.to_string())["Digest"].as_str().unwrap(),
        report.manifest_digest.as_str()
    );

    // A mount source that lacks the blob falls back to an upload.
    let img2 = tiny_image(&store, ManifestFormat::Oci, "not in source", ("amd64", None), 0);
    let mut push2 = img2.push.clone();
    for b in &mut push2.blobs {
        b.mount_from = Some(base.clone());
    }
    let report = rt.block_on(reg.push_image(&dest("mount-dst", "x"), &push2, &store, &|_| {})).unwrap();
    assert!(report.blobs.iter().all(|(_, a, _)| *a == BlobAction::Uploaded), "{report:?}");
}

#[test]
fn docker_schema2_image_keeps_its_media_types() {
    let reg = registry(opts());
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let img = tiny_image(&store, ManifestFormat::Docker, "schema2", ("amd64", None), 0);
    let r = dest("schema2", "1");
    rt().block_on(reg.push_image(&r, &img.push, &store, &|_| {})).unwrap();
    let raw = common::skopeo_manifest(&r.to_string());
    assert_eq!(raw["mediaType"], media::DOCKER_MANIFEST);
    assert_eq!(raw["layers"][0]["mediaType"], media::DOCKER_LAYER_GZIP);
}

#[test]
fn manifest_is_not_pushed_when_a_blob_fails() {
    let reg = registry(opts());
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let img = tiny_image(&store, ManifestFormat::Oci, "incomplete", ("amd64", None), 0);
    let mut push = img.push.clone();
    let ghost = Digest::of(b"a blob that is nowhere");
    push.blobs.push(PushBlob::new(
        trowel_engine::image::manifest::Descriptor::new(media::OCI_LAYER_GZIP, ghost.clone(), 22),
        None,
    ));
    let r = dest("incomplete", "1");
    let e = rt.block_on(reg.push_image(&r, &push, &store, &|_| {})).unwrap_err();
    assert!(matches!(e, RegistryError::Store { .. }), "{e:?}");
    assert!(e.to_string().starts_with(&format!("push {r}: ")) && e.to_string().contains(ghost.as_str()), "{e}");
    assert_eq!(rt.block_on(reg.fetch_manifest(&r)).unwrap(), None, "manifest must not be pushed");
}

#[test]
fn push_manifest_by_digest_and_push_check() {
    let reg = registry(opts());
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let img = tiny_image(&store, ManifestFormat::Oci, "by digest", ("amd64", None), 0);
    let r = dest("bydigest", "1");
    rt.block_on(reg.check_push_access(&r)).unwrap();
    rt.block_on(reg.push_image(&r, &img.push, &store, &|_| {})).unwrap();
    let digest = Digest::of(&img.push.manifest_bytes);
    let untagged = Reference { tag: None, digest: Some(digest.clone()), ..r.clone() };
    assert_eq!(
        rt.block_on(reg.push_manifest(&untagged, &img.push.manifest_bytes, media::OCI_MANIFEST)).unwrap(),
        digest
    );
    let (bytes, mt, d) = rt.block_on(reg.fetch_manifest(&untagged)).unwrap().unwrap();
    assert_eq!((bytes, mt.as_str(), d), (img.push.manifest_bytes.clone(), media::OCI_MANIFEST, digest));
    // A digest that does not match the bytes is refused before anything is sent.
    let wrong = Reference { tag: None, digest: Some(Digest::of(b"other")), ..r };
    assert!(rt.block_on(reg.push_manifest(&wrong, &img.push.manifest_bytes, media::OCI_MANIFEST)).is_err());
}

/// A blob uploaded while it is written (one chunked PATCH, committed with the digest at the
/// end) is stored under that digest and reads back byte for byte.
#[test]
fn a_streamed_upload_is_stored_under_its_digest() {
    let reg = registry(opts());
    let r = dest("streamed", "x");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let digest = Digest::of(&data);
    assert_eq!(util::upload_streamed(&reg, &r, &data, 70_000, Some(digest.clone())).unwrap(), digest);
    assert!(rt().block_on(reg.blob_exists(&r, &digest)).unwrap());
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("blob");
    // Read back over the registry API with curl (skopeo reads images, not single blobs).
    let url = format!("http://{}/v2/{}/blobs/{digest}", common::env().registry, r.repository);
    let o = common::run(std::process::Command::new("curl").args(["-fsSL", "-o"]).arg(&file).arg(&url));
    common::assert_ok(&o);
    assert_eq!(std::fs::read(&file).unwrap(), data);
}

/// A stream the writer abandons (no digest) or commits under a digest that is not what was
/// sent leaves nothing in the registry under any name.
#[test]
fn an_abandoned_or_misdigested_streamed_upload_stores_nothing() {
    let reg = registry(opts());
    let r = dest("streamed-bad", "x");
    let data = vec![7u8; 500_000];
    let right = Digest::of(&data);
    let err = util::upload_streamed(&reg, &r, &data, 64_000, None).unwrap_err();
    assert!(err.to_string().contains("upload cancelled"), "{err}");
    let wrong = Digest::of(b"something else");
    assert!(util::upload_streamed(&reg, &r, &data, 64_000, Some(wrong.clone())).is_err());
    assert!(!rt().block_on(reg.blob_exists(&r, &right)).unwrap());
    assert!(!rt().block_on(reg.blob_exists(&r, &wrong)).unwrap());
}
