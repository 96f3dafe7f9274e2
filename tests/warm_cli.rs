//! `trowel warm` as a user runs it: against the real test registry, checking the printed lines,
//! the exit status, and the cache directory (through `BaseImageCache` and skopeo).

mod common;
mod warm_support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{assert_ok, env, run, stderr, trowel, unique_repo};
use trowel_engine::cache::basedir::BaseImageCache;
use trowel_engine::image::manifest::Platform;
use trowel_engine::registry::Reference;
use warm_support::*;

fn warm(cache: &Path, args: &[&str]) -> Output {
    run(trowel()
        .arg("warm")
        .arg("--cache-dir")
        .arg(cache)
        .args(["--docker-config", "/nonexistent-trowel-test"])
        .args(args))
}

fn lookup(cache: &Path, image: &str, platform: &Platform) -> Option<trowel_engine::cache::basedir::CachedBase> {
    let cache = BaseImageCache::open(cache).unwrap();
    cache.lookup(&Reference::parse(image).unwrap(), platform, None).unwrap()
}

/// The images the command said it retrieved, in order.
fn retrieved(o: &Output) -> Vec<String> {
    stderr(o).lines().filter_map(|l| l.split_once("Retrieving image ").map(|(_, rest)| rest.to_string())).collect()
}

#[test]
fn warm_then_already_cached_then_force() {
    let (_g, _, dir) = fresh_cache();
    let busybox = env().busybox();
    let (digest, layers) = skopeo_image(&busybox, None);

    let o = warm(&dir, &["-i", &busybox]);
    assert_ok(&o);
    let err = stderr(&o);
    let host = Platform::host();
    assert!(err.contains(&format!("INFO[0000] Retrieving image {busybox} for {host}")), "{err}");
    let n = layers.len();
    assert!(err.contains(&format!("Image {busybox} cached as {digest} ({n} layer")), "{err}");
    let hit = lookup(&dir, &busybox, &host).expect("cached");
    assert_eq!(hit.image.manifest_digest.to_string(), digest);
    let layer_path = dir.join("blobs/sha256").join(layers[0].trim_start_matches("sha256:"));
    let before = identity(&layer_path);

    let o = warm(&dir, &["--image", &busybox]);
    assert_ok(&o);
    assert!(stderr(&o).contains(&format!("Image {busybox} already cached as {digest}")), "{}", stderr(&o));
    assert_eq!(identity(&layer_path), before);

    let o = warm(&dir, &["-i", &busybox, "--force"]);
    assert_ok(&o);
    assert!(stderr(&o).contains(&format!("Image {busybox} cached as {digest}")), "{}", stderr(&o));
    let refreshed = lookup(&dir, &busybox, &host).unwrap();
    assert!(refreshed.written_at > hit.written_at);
}

#[test]
fn cache_ttl_expiry_refreshes_a_tag() {
    let (_g, _, dir) = fresh_cache();
    let busybox = env().busybox();
    assert_ok(&warm(&dir, &["-i", &busybox, "--cache-ttl", "1s"]));
    std::thread::sleep(Duration::from_millis(1100));
    let o = warm(&dir, &["-i", &busybox, "--cache-ttl", "1s"]);
    assert_ok(&o);
    assert!(stderr(&o).contains(&format!("Image {busybox} cached as")), "{}", stderr(&o));
    let o = warm(&dir, &["-i", &busybox, "--cache-ttl=1h30m"]);
    assert!(stderr(&o).contains("already cached"), "{}", stderr(&o));
    let o = warm(&dir, &["-i", &busybox, "--cache-ttl", "14d"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("14d"), "{}", stderr(&o));
}

#[test]
fn dockerfile_base_images_with_global_args_aliases_scratch_and_copy_from() {
    let reg = &env().registry;
    let tools = format!("{reg}/{}:2", unique_repo("warm-tools"));
    skopeo_copy("busybox:1.35", &tools);
    let (tools_repo, _) = tools.rsplit_once(':').unwrap();
    let tools_name = tools_repo.rsplit_once('/').unwrap().1;
    let (_g, _, dir) = fresh_cache();
    let dockerfile = dir.parent().unwrap().join("Dockerfile");
    std::fs::write(
        &dockerfile,
        format!(
            "ARG REGISTRY\nARG TAG=1.35\n\
             FROM ${{REGISTRY}}/busybox:${{TAG}} AS builder\nRUN echo build\n\
             FROM builder AS test\nRUN echo test\n\
             FROM scratch AS empty\n\
             FROM ${{REGISTRY}}/busybox:docker\n\
             ARG REGISTRY\n\
             COPY --from=builder /bin/busybox /bb\n\
             COPY --from=${{REGISTRY}}/{tools_name}:2 /bin/sh /sh\n"
        ),
    )
    .unwrap();
    let o = warm(&dir, &["-d", dockerfile.to_str().unwrap(), "--build-arg", &format!("REGISTRY={reg}")]);
    assert_ok(&o);
    let host = Platform::host();
    assert_eq!(
        retrieved(&o),
        [
            format!("{reg}/busybox:1.35 for {host}"),
            format!("{reg}/busybox:docker for {host}"),
            format!("{tools} for {host}"),
        ],
        "{}",
        stderr(&o)
    );
    for image in [format!("{reg}/busybox:1.35"), format!("{reg}/busybox:docker"), tools.clone()] {
        let hit = lookup(&dir, &image, &host).unwrap_or_else(|| panic!("{image} not cached"));
        assert_eq!(hit.image.manifest_digest.to_string(), skopeo_image(&image, None).0, "{image}");
    }
    // --build-arg overrides a global default; --image adds to the Dockerfile's images.
    let o = warm(
        &dir,
        &[
            "-d",
            dockerfile.to_str().unwrap(),
            "--build-arg",
            &format!("REGISTRY={reg}"),
            "--build-arg",
            "TAG=latest",
            "-i",
            &format!("{reg}/busybox:multi"),
        ],
    );
    assert_ok(&o);
    assert_eq!(
        retrieved(&o),
        [
            format!("{reg}/busybox:multi for {host}"),
            format!("{reg}/busybox:latest for {host}"),
            format!("{reg}/busybox:docker for {host}"),
            format!("{tools} for {host}"),
        ]
    );
    assert!(stderr(&o).contains(&format!("Image {reg}/busybox:docker already cached")), "{}", stderr(&o));
}

#[test]
fn index_for_host_and_custom_platform() {
    let (_g, _, dir) = fresh_cache();
    let multi = format!("{}/busybox:multi", env().registry);
    assert_ok(&warm(&dir, &["-i", &multi]));
    let o = warm(&dir, &["-i", &multi, "--custom-platform", "linux/arm64"]);
    assert_ok(&o);
    assert!(stderr(&o).contains(&format!("Retrieving image {multi} for linux/arm64")), "{}", stderr(&o));
    // kaniko's camelCase spelling works too.
    let o = warm(&dir, &["-i", &multi, "--customPlatform=linux/arm64"]);
    assert!(stderr(&o).contains("already cached"), "{}", stderr(&o));

    let (index, _) = skopeo_raw(&multi, None);
    let index_digest = format!("sha256:{}", common::sha256_hex(&index));
    for (platform, arch) in
        [(Platform::parse("linux/amd64").unwrap(), "amd64"), (Platform::parse("linux/arm64").unwrap(), "arm64")]
    {
        let (manifest, _) = skopeo_image(&multi, Some(arch));
        let by_tag = lookup(&dir, &multi, &platform).expect("by tag");
        assert_eq!(by_tag.image.manifest_digest.to_string(), manifest);
        let by_index =
            lookup(&dir, &format!("{}/busybox@{index_digest}", env().registry), &platform).expect("by index");
        assert_eq!(by_index.image.manifest_digest.to_string(), manifest);
        let by_manifest =
            lookup(&dir, &format!("{}/busybox@{manifest}", env().registry), &platform).expect("by manifest");
        assert_eq!(by_manifest.image.manifest_digest.to_string(), manifest);
    }
}

#[test]
fn one_bad_image_among_good_ones_still_succeeds() {
    let (_g, _, dir) = fresh_cache();
    let missing = format!("{}/{}:1", env().registry, unique_repo("warm-missing"));
    let o = warm(&dir, &["-i", &env().busybox(), "-i", &missing, "-i", "Not/A/Valid:Ref"]);
    assert_ok(&o);
    let err = stderr(&o);
    assert!(err.contains(&format!("ERRO[0000] Failed to warm {missing}: pull {missing}: manifest unknown")), "{err}");
    assert!(err.contains("Failed to warm Not/A/Valid:Ref: invalid reference"), "{err}");
    assert!(err.contains("2 of 3 images could not be warmed"), "{err}");
    assert!(lookup(&dir, &env().busybox(), &Platform::host()).is_some());
}

#[test]
fn all_images_failing_is_an_error() {
    let (_g, _, dir) = fresh_cache();
    let missing = format!("{}/{}:1", env().registry, unique_repo("warm-missing"));
    let down = "127.0.0.1:1/nothing-listens:1";
    let o = warm(&dir, &["-i", &missing, "-i", down, "--image-download-retry", "0"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("Failed to warm {missing}")), "{err}");
    assert!(err.contains(&format!("Failed to warm {down}: pull {down}")), "{err}");
    assert!(err.contains("No image could be warmed (2 failed)"), "{err}");

    // Nothing to warm at all is a usage error too, as in kaniko.
    let o = warm(&dir, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--image"), "{}", stderr(&o));
}

#[test]
fn invoked_as_kaniko_warmer() {
    let (g, _, dir) = fresh_cache();
    let link = g.path().join("warmer");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_trowel"), &link).unwrap();
    let o = run(std::process::Command::new(&link)
        .args(["--image", &env().busybox(), "--cache-dir", dir.to_str().unwrap()])
        .args(["--docker-config", "/nonexistent-trowel-test"]));
    assert_ok(&o);
    assert!(lookup(&dir, &env().busybox(), &Platform::host()).is_some(), "{}", stderr(&o));
}
