//! The image index of a build for several platforms, end to end below the engine: two real
//! single-platform images (amd64 and arm64, tar + gzip layers and configs in a `BlobStore`)
//! joined by `FinalIndex`, then pushed to the local registry, written as an OCI layout and as a
//! tarball, and read back with independent tools: skopeo (`--override-arch`, `--all`) and umoci.
//! Through the fault proxy, a registry's 400 to the index says what the registry said: a
//! refused media type only when its codes say so.

mod common;
mod faults;
#[path = "registry_util/mod.rs"]
mod util;

use std::path::Path;
use std::process::Command;

use trowel_engine::digest::Digest;
use trowel_engine::image::index::FinalIndex;
use trowel_engine::image::manifest::{ManifestFormat, Platform, media};
use trowel_engine::image::outputs::{self, FinalImage};
use trowel_engine::image::store::BlobStore;
use trowel_engine::registry::{BlobAction, PushIndex, Reference, RegistryError};
use util::{TinyImage, opts, registry, rt, tiny_image};

/// Two real images in `store`: `/hello.txt` says which platform each is for.
struct TwoPlatforms {
    amd64: (TinyImage, FinalImage),
    arm64: (TinyImage, FinalImage),
    index: FinalIndex,
}

fn final_image(store: &BlobStore, t: &TinyImage) -> FinalImage {
    FinalImage {
        manifest: t.manifest.clone(),
        manifest_bytes: t.push.manifest_bytes.clone(),
        manifest_digest: Digest::of(&t.push.manifest_bytes),
        config_bytes: store.read(&t.config.digest).unwrap(),
        config_digest: t.config.digest.clone(),
    }
}

fn two_platforms(store: &BlobStore, format: ManifestFormat, tag: &str) -> TwoPlatforms {
    let amd = tiny_image(store, format, &format!("amd64 image {tag}\n"), ("amd64", None), 0);
    let arm = tiny_image(store, format, &format!("arm64 image {tag}\n"), ("arm64", Some("v8")), 0);
    let (famd, farm) = (final_image(store, &amd), final_image(store, &arm));
    let index = FinalIndex::new(&[
        (Platform::parse("linux/amd64").unwrap(), &famd),
        (Platform::parse("linux/arm64").unwrap(), &farm),
    ])
    .unwrap();
    TwoPlatforms { amd64: (amd, famd), arm64: (arm, farm), index }
}

fn push_index_of(t: &TwoPlatforms) -> PushIndex {
    PushIndex {
        index_bytes: t.index.bytes.clone(),
        media_type: t.index.media_type.to_string(),
        images: vec![t.amd64.0.push.clone(), t.arm64.0.push.clone()],
    }
}

fn dest(name: &str, tag: &str) -> Reference {
    Reference::parse(&format!("{}/{}:{tag}", common::env().registry, common::unique_repo(name))).unwrap()
}

fn skopeo(args: &[&str]) -> std::process::Output {
    common::run(Command::new("skopeo").args(args))
}

fn skopeo_json(args: &[&str]) -> serde_json::Value {
    let o = skopeo(args);
    common::assert_ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Copies one platform of `src` (any skopeo transport) into a fresh OCI layout and unpacks it
/// with umoci; returns `/hello.txt` and the config's architecture.
fn unpack_platform(src: &str, arch: &str, extra: &[&str]) -> (String, String) {
    let dir = tempfile::Builder::new().prefix("trowel-index-").tempdir().unwrap();
    let layout = dir.path().join("layout");
    let dst = format!("oci:{}:img", layout.display());
    let mut args = vec!["copy", "-q", "--src-tls-verify=false", "--override-arch", arch];
    args.extend(extra);
    args.extend([src, dst.as_str()]);
    common::assert_ok(&skopeo(&args));
    let config = skopeo_json(&["inspect", "--config", "--raw", &dst]);
    let unpacked = common::unpack_layout(dir, &layout, "img");
    (common::Tree::content(&unpacked.rootfs(), "/hello.txt"), config["architecture"].as_str().unwrap().to_string())
}

fn check_index_json(raw: &serde_json::Value, t: &TwoPlatforms, media_type: &str) {
    assert_eq!(raw["mediaType"], media_type, "{raw}");
    let m = raw["manifests"].as_array().unwrap();
    assert_eq!(m.len(), 2, "{raw}");
    assert_eq!(m[0]["digest"], t.amd64.1.manifest_digest.as_str());
    assert_eq!(m[0]["platform"], serde_json::json!({"architecture": "amd64", "os": "linux"}));
    assert_eq!(m[1]["digest"], t.arm64.1.manifest_digest.as_str());
    assert_eq!(m[1]["size"], t.arm64.1.manifest_bytes.len());
    assert_eq!(m[1]["platform"], serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"}));
}

#[test]
fn index_pushed_to_two_tags_is_read_by_skopeo_and_umoci() {
    let reg = registry(opts());
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let t = two_platforms(&store, ManifestFormat::Oci, "push");
    let push = push_index_of(&t);
    let first = dest("index", "v1");
    let second = first.with_tag("latest").unwrap();

    assert!(!rt.block_on(reg.names_digest(&first, &t.index.digest)).unwrap(), "nothing is there yet");
    let report = rt.block_on(reg.push_index(&first, &push, &store, &|_| {})).unwrap();
    assert_eq!(report.index_digest, t.index.digest);
    assert_eq!(report.images.len(), 2);
    assert_eq!(report.images[1].manifest_digest, t.arm64.1.manifest_digest);
    assert!(report.images.iter().flat_map(|r| &r.blobs).all(|(_, a, _)| *a == BlobAction::Uploaded), "{report:?}");
    // The second tag finds every blob there and only moves its tag.
    let again = rt.block_on(reg.push_index(&second, &push, &store, &|_| {})).unwrap();
    assert!(again.images.iter().flat_map(|r| &r.blobs).all(|(_, a, _)| *a == BlobAction::Existed), "{again:?}");
    assert!(rt.block_on(reg.names_digest(&first, &t.index.digest)).unwrap());
    assert!(rt.block_on(reg.names_digest(&second, &t.index.digest)).unwrap());
    assert!(!rt.block_on(reg.names_digest(&second, &t.arm64.1.manifest_digest)).unwrap());

    for r in [&first, &second] {
        let raw = common::skopeo_manifest(&r.to_string());
        check_index_json(&raw, &t, media::OCI_INDEX);
        let o = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{r}")]);
        assert_eq!(Digest::of(&o.stdout), t.index.digest, "the registry serves our exact bytes");
    }
    // A client on arm64 gets the arm64 image (skopeo's `Digest` stays the index's: the name's).
    let arm_args = ["inspect", "--tls-verify=false", "--override-arch", "arm64", "--override-variant", "v8"];
    let first_src = format!("docker://{first}");
    let arm = skopeo_json(&[&arm_args[..], &[first_src.as_str()]].concat());
    assert_eq!(arm["Digest"], t.index.digest.as_str());
    assert_eq!(arm["Architecture"], "arm64");
    let arm_config = common::run(Command::new("skopeo").args(arm_args).args(["--config", "--raw", &first_src]));
    common::assert_ok(&arm_config);
    assert_eq!(Digest::of(&arm_config.stdout), t.arm64.1.config_digest, "the arm64 config, byte for byte");
    let amd_args = ["inspect", "--tls-verify=false", "--override-arch", "amd64", "--config", "--raw", &first_src];
    assert_eq!(Digest::of(&skopeo(&amd_args).stdout), t.amd64.1.config_digest);

    // `skopeo copy --all` takes the whole index; each platform unpacks with umoci.
    let all = tempfile::tempdir().unwrap();
    let all_ref = format!("oci:{}:all", all.path().display());
    common::assert_ok(&skopeo(&[
        "copy",
        "-q",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{second}"),
        &all_ref,
    ]));
    assert_eq!(skopeo_json(&["inspect", "--raw", &all_ref])["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(unpack_platform(&all_ref, "amd64", &[]), ("amd64 image push\n".into(), "amd64".into()));
    assert_eq!(unpack_platform(&all_ref, "arm64", &[]), ("arm64 image push\n".into(), "arm64".into()));
}

#[test]
fn docker_schema2_images_are_pushed_as_a_manifest_list() {
    let reg = registry(opts());
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let t = two_platforms(&store, ManifestFormat::Docker, "list");
    assert_eq!(t.index.media_type, media::DOCKER_MANIFEST_LIST);
    let r = dest("index-list", "1");
    rt().block_on(reg.push_index(&r, &push_index_of(&t), &store, &|_| {})).unwrap();
    let raw = common::skopeo_manifest(&r.to_string());
    check_index_json(&raw, &t, media::DOCKER_MANIFEST_LIST);
    assert_eq!(raw["manifests"][1]["mediaType"], media::DOCKER_MANIFEST);
    assert_eq!(
        unpack_platform(&format!("docker://{r}"), "arm64", &["--override-variant", "v8"]),
        ("arm64 image list\n".into(), "arm64".into())
    );
}

/// `skopeo inspect` with the auth registry's credentials: does `r` name anything?
fn exists_on_auth_registry(r: &Reference) -> bool {
    let env = common::env();
    let creds = format!("{}:{}", env.auth_user, env.auth_password);
    skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &format!("docker://{r}")]).status.success()
}

#[test]
fn a_destination_that_refuses_moves_no_tag() {
    let reg = registry(opts());
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let t = two_platforms(&store, ManifestFormat::Oci, "refused");
    let push = push_index_of(&t);

    // No credentials for the auth registry: the first blob fails, the error names the
    // destination, and nothing is tagged there.
    let auth =
        Reference::parse(&format!("{}/{}:v1", common::env().auth_registry, common::unique_repo("index-auth"))).unwrap();
    let e = rt.block_on(reg.push_index(&auth, &push, &store, &|_| {})).unwrap_err();
    assert!(matches!(e, RegistryError::Registry { status: 401, .. } | RegistryError::Auth { .. }), "{e}");
    assert!(e.to_string().contains(&format!("{auth} (image manifest {}", t.amd64.1.manifest_digest)), "{e}");
    assert!(!exists_on_auth_registry(&auth), "a refused push left a tag");

    // Two destinations, the second refusing: everything is staged first, tags only after, so
    // the first destination's tag still names its previous image.
    let plain = dest("index-two", "stable");
    let old = tiny_image(&store, ManifestFormat::Oci, "previous release", ("amd64", None), 0);
    let old_digest = rt.block_on(reg.push_image(&plain, &old.push, &store, &|_| {})).unwrap().manifest_digest;
    let staged: Result<Vec<_>, _> = rt.block_on(async {
        let mut out = Vec::new();
        for d in [&plain, &auth] {
            out.push(reg.stage_index(d, &push, &store, &|_| {}).await?);
        }
        Ok::<_, RegistryError>(out)
    });
    assert!(staged.is_err());
    assert!(rt.block_on(reg.names_digest(&plain, &old_digest)).unwrap(), "the tag moved although a push failed");
    // The staged index is on the plain registry by digest, untagged, ready for a retry.
    let by_digest = plain.with_digest(t.index.digest.clone());
    let raw = common::skopeo_manifest(&format!("{}@{}", plain.repo_ref(), t.index.digest));
    check_index_json(&raw, &t, media::OCI_INDEX);
    assert_eq!(rt.block_on(reg.tag_index(&by_digest, &push)).unwrap(), t.index.digest);
    assert!(rt.block_on(reg.names_digest(&plain, &t.index.digest)).unwrap());
}

/// distribution's answer to an index naming a manifest it does not hold.
const CHILD_UNKNOWN: &str = r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}]}"#;
/// distribution's answer to a manifest of a type it will not store.
const TYPE_REFUSED: &str =
    r#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":"unknown media type"}]}"#;

#[test]
fn a_400_to_the_index_is_a_refused_media_type_only_when_the_registry_says_so() {
    let proxy = faults::FaultProxy::start(&common::env().registry);
    let reg = registry(opts());
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let t = two_platforms(&store, ManifestFormat::Oci, "codes");
    let push = push_index_of(&t);
    let dest = Reference::parse(&format!("{}/{}:1", proxy.addr, common::unique_repo("index-codes"))).unwrap();
    // Only the index's PUT (its digest is in the path); the platform manifests go through.
    let index_put = format!("/manifests/{}", t.index.digest);
    let answer = |body| faults::Fault::Answer { code: 400, body };

    proxy.inject("PUT", &index_put, answer(CHILD_UNKNOWN), usize::MAX);
    let e = rt.block_on(reg.push_index(&dest, &push, &store, &|_| {})).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RegistryError::Registry { status: 400, .. }), "{msg}");
    assert!(msg.contains("blob unknown to registry"), "{msg}");
    assert!(msg.contains(&format!("{dest} (image index {})", t.index.digest)), "{msg}");
    assert!(!msg.contains("refused a manifest of type"), "a missing child is not a refused media type: {msg}");
    assert!(proxy.applied().iter().any(|a| a.contains(&index_put)), "{:?}", proxy.seen());
    assert!(!rt.block_on(reg.names_digest(&dest, &t.index.digest)).unwrap(), "a refused index was tagged");

    // The registry's own word for a type it will not store is still said as such.
    proxy.clear();
    proxy.inject("PUT", &index_put, answer(TYPE_REFUSED), usize::MAX);
    let e = rt.block_on(reg.push_index(&dest, &push, &store, &|_| {})).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RegistryError::ManifestRefused { status: 400, .. }), "{msg}");
    assert!(msg.contains(&format!("refused a manifest of type {}", media::OCI_INDEX)), "{msg}");
}

fn layout_and_tar(t: &TwoPlatforms, store: &BlobStore, out: &Path) {
    let name = format!("{}/app:v1", common::env().registry);
    outputs::write_oci_layout(&out.join("layout"), &t.index, store, Some(&name)).unwrap();
    outputs::write_docker_archive(&out.join("image.tar"), &t.index, store, &[name]).unwrap();
}

#[test]
fn oci_layout_holds_every_platform_and_names_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path().join("store")).unwrap();
    let t = two_platforms(&store, ManifestFormat::Oci, "layout");
    layout_and_tar(&t, &store, dir.path());
    let layout = dir.path().join("layout");
    let index_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index_json["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index_json}");
    assert_eq!(entries[0]["mediaType"], media::OCI_INDEX);
    assert_eq!(entries[0]["digest"], t.index.digest.as_str());
    assert_eq!(entries[0]["annotations"]["org.opencontainers.image.ref.name"], "v1");

    let src = format!("oci:{}:v1", layout.display());
    check_index_json(&skopeo_json(&["inspect", "--raw", &src]), &t, media::OCI_INDEX);
    assert_eq!(unpack_platform(&src, "arm64", &[]), ("arm64 image layout\n".into(), "arm64".into()));
    assert_eq!(unpack_platform(&src, "amd64", &[]), ("amd64 image layout\n".into(), "amd64".into()));
    // Every blob is content-addressed correctly (what `umoci` and skopeo verified for the two
    // platforms they read, checked here for all).
    for f in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let f = f.unwrap();
        assert_eq!(common::sha256_hex(&std::fs::read(f.path()).unwrap()), f.file_name().to_str().unwrap());
    }
}

#[test]
fn tarball_loads_every_platform_as_an_oci_archive_and_the_first_as_a_docker_archive() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path().join("store")).unwrap();
    let t = two_platforms(&store, ManifestFormat::Oci, "tar");
    layout_and_tar(&t, &store, dir.path());
    let tar = dir.path().join("image.tar");

    // As an OCI archive: the whole index.
    let oci = format!("oci-archive:{}", tar.display());
    check_index_json(&skopeo_json(&["inspect", "--raw", &oci]), &t, media::OCI_INDEX);
    assert_eq!(unpack_platform(&oci, "arm64", &[]), ("arm64 image tar\n".into(), "arm64".into()));
    assert_eq!(unpack_platform(&oci, "amd64", &[]), ("amd64 image tar\n".into(), "amd64".into()));

    // As a docker archive (`docker load`'s view): one image per platform, the tag on the first.
    let name = format!("{}/app:v1", common::env().registry);
    let tagged = skopeo_json(&["inspect", "--raw", &format!("docker-archive:{}:{name}", tar.display())]);
    assert_eq!(tagged["config"]["digest"], t.amd64.1.config_digest.as_str());
    let second = format!("docker-archive:{}:@1", tar.display());
    assert_eq!(skopeo_json(&["inspect", "--config", "--raw", &second])["architecture"], "arm64");
    assert_eq!(unpack_platform(&second, "arm64", &[]), ("arm64 image tar\n".into(), "arm64".into()));

    // No member twice, although both platforms' blobs and the index are in one tar.
    let mut names = Vec::new();
    for e in tar::Archive::new(std::fs::File::open(&tar).unwrap()).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    assert!(names.contains(&format!("blobs/sha256/{}", t.index.digest.hex())));
}

#[test]
fn digest_files_name_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path().join("store")).unwrap();
    let t = two_platforms(&store, ManifestFormat::Oci, "digests");
    let names =
        vec![("127.0.0.1:5000/app".to_string(), Some("v1".to_string())), ("127.0.0.1:5000/b".to_string(), None)];
    let (d, n, nt) = (dir.path().join("digest"), dir.path().join("name"), dir.path().join("name-tag"));
    outputs::write_digest_file(&d, &t.index).unwrap();
    outputs::write_image_name_with_digest_file(&n, &names, &t.index).unwrap();
    outputs::write_image_name_tag_with_digest_file(&nt, &names, &t.index).unwrap();
    let x = &t.index.digest;
    assert_eq!(std::fs::read_to_string(d).unwrap(), x.as_str());
    assert_eq!(std::fs::read_to_string(n).unwrap(), format!("127.0.0.1:5000/app@{x}\n127.0.0.1:5000/b@{x}\n"));
    assert_eq!(std::fs::read_to_string(nt).unwrap(), format!("127.0.0.1:5000/app:v1@{x}\n127.0.0.1:5000/b@{x}\n"));
}
