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

/// What skopeo itself resolves for one platform of an index, independently of trowel's index
/// selection: (config digest, architecture, layers). (skopeo's own `Digest` is the index's.)
fn skopeo_for(reference: &str, arch: &str, variant: Option<&str>) -> (String, String, Vec<String>) {
    let inspect = |extra: &[&str]| {
        let mut c = std::process::Command::new("skopeo");
        c.args(["--override-os", "linux", "--override-arch", arch]);
        if let Some(v) = variant {
            c.args(["--override-variant", v]);
        }
        let o = run(c.arg("inspect").args(extra).args(["--tls-verify=false", &format!("docker://{reference}")]));
        assert_ok(&o);
        o.stdout
    };
    let v: serde_json::Value = serde_json::from_slice(&inspect(&[])).unwrap();
    let layers = v["Layers"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
    let config = format!("sha256:{}", common::sha256_hex(&inspect(&["--config", "--raw"])));
    (config, v["Architecture"].as_str().unwrap().to_string(), layers)
}

/// The cache directory's entries and blobs, and any temporary file left in it.
fn cache_files(dir: &Path) -> (Vec<String>, Vec<String>) {
    let names = |sub: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.join(sub))
            .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    (names("refs"), names("blobs/sha256"))
}

#[test]
fn several_platforms_each_get_their_manifest_and_share_blobs() {
    let (_g, _, dir) = fresh_cache();
    let reg = &env().registry;
    let multi = format!("{reg}/busybox:multi");
    // The amd64 image alone first: its layer is the index's amd64 layer, not downloaded again.
    assert_ok(&warm(&dir, &["-i", &env().busybox()]));
    let o = warm(&dir, &["-i", &multi, "--platform", "linux/amd64,linux/arm64"]);
    assert_ok(&o);
    let err = stderr(&o);
    assert_eq!(retrieved(&o), [format!("{multi} for linux/amd64"), format!("{multi} for linux/arm64")], "{err}");
    let (amd_config, amd_arch, amd_layers) = skopeo_for(&multi, "amd64", None);
    let (arm_config, arm_arch, arm_layers) = skopeo_for(&multi, "arm64", Some("v8"));
    assert_eq!((amd_arch.as_str(), arm_arch.as_str()), ("amd64", "arm64"));
    assert_ne!(amd_layers, arm_layers, "the fixture's arm64 image is a real one, not the amd64 rootfs");

    // Each platform's entry is the manifest the index names for that platform, with the config
    // and layers skopeo resolves for it; the amd64 layer came from busybox:1.35's warm.
    let (index, _) = skopeo_raw(&multi, None);
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    for (platform, config, arch, layers, said) in [
        ("linux/amd64", &amd_config, "amd64", &amd_layers, "every layer was already in the cache"),
        ("linux/arm64", &arm_config, "arm64", &arm_layers, "downloaded 1 layer"),
    ] {
        let hit = lookup(&dir, &multi, &Platform::parse(platform).unwrap()).unwrap_or_else(|| panic!("{platform}"));
        let digest = hit.image.manifest_digest.to_string();
        let entry = index["manifests"].as_array().unwrap().iter().find(|m| m["digest"] == digest.as_str());
        assert_eq!(entry.unwrap_or_else(|| panic!("{digest} not in {index}"))["platform"]["architecture"], arch);
        assert_eq!(&format!("sha256:{}", common::sha256_hex(&hit.image.config_bytes)), config, "{platform}");
        assert_eq!(&hit.layers().iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(), layers);
        let config: serde_json::Value = serde_json::from_slice(&hit.image.config_bytes).unwrap();
        assert_eq!(config["architecture"], arch);
        for l in layers {
            assert!(dir.join("blobs/sha256").join(l.trim_start_matches("sha256:")).is_file(), "{l}");
        }
        let line = err.lines().find(|l| l.contains(&format!("Image {multi} cached as {digest} (1 layer, ")));
        assert!(line.is_some_and(|l| l.contains(said)), "{platform}: {err}");
    }

    // Repeated flags, --custom-platform beside them, and a variant spelled out name the same
    // two platforms: both already cached, nothing retrieved twice.
    let o = warm(
        &dir,
        &["-i", &multi, "--platform", "linux/arm64/v8", "--platform=linux/amd64", "--custom-platform", "linux/arm64"],
    );
    assert_ok(&o);
    assert_eq!(retrieved(&o), [format!("{multi} for linux/arm64/v8"), format!("{multi} for linux/amd64")]);
    assert_eq!(stderr(&o).matches("already cached").count(), 2, "{}", stderr(&o));
}

#[test]
fn a_platform_the_index_lacks_fails_naming_image_platform_and_offer() {
    let (_g, _, dir) = fresh_cache();
    let multi = format!("{}/busybox:multi", env().registry);
    let o = warm(&dir, &["-i", &multi, "--platform", "linux/ppc64le"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("Failed to warm {multi}: ")), "{err}");
    assert!(
        err.contains("no manifest for platform linux/ppc64le in the index (it has: linux/amd64, linux/arm64/v8)"),
        "{err}"
    );
    assert_eq!(cache_files(&dir), (vec![], vec![]), "nothing may be written for a failed image");

    // With a platform it has beside one it lacks, the image failed (a build for the other
    // would): the one that worked is cached whole, the other not at all.
    let o = warm(&dir, &["-i", &multi, "--platform", "linux/arm64,linux/ppc64le"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("No image could be warmed (1 failed)"), "{}", stderr(&o));
    assert!(lookup(&dir, &multi, &Platform::parse("linux/arm64").unwrap()).is_some());
    assert!(lookup(&dir, &multi, &Platform::parse("linux/ppc64le").unwrap()).is_none());
    let (refs, blobs) = cache_files(&dir);
    assert!(refs.iter().chain(&blobs).all(|n| !n.starts_with('.')), "temporary files left: {refs:?} {blobs:?}");
    // A good image beside it: kaniko's rule, the command succeeds and says what failed.
    let o = warm(&dir, &["-i", &multi, "-i", &env().busybox(), "--platform", "linux/amd64,linux/ppc64le"]);
    assert_ok(&o);
    assert!(stderr(&o).contains("1 of 2 images could not be warmed"), "{}", stderr(&o));
}

#[test]
fn a_mistyped_platform_is_a_usage_error_before_anything_is_written() {
    let g = tempfile::tempdir().unwrap();
    let dir = g.path().join("cache");
    for (flag, value, says) in [
        ("--platform", "linux/amd64,linux/aarch64", "unknown architecture \"aarch64\" (did you mean arm64?)"),
        ("--platform", "linux/amd65", "unknown architecture \"amd65\""),
        ("--platform", "amd64", "expected os/arch[/variant]"),
        ("--custom-platform", "windows/amd64", "Linux images only"),
    ] {
        let o = warm(&dir, &["-i", &env().busybox(), flag, value]);
        assert_eq!(o.status.code(), Some(2), "{value}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(flag) && err.contains(says), "{value}: {err}");
        assert!(!err.contains("Retrieving"), "{err}");
        assert!(!dir.exists(), "{value}: the cache directory was created");
    }
}
