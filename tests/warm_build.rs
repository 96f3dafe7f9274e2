//! `trowel warm` then `trowel build --cache --cache-dir`: base images come from the cache
//! directory, a tag once its registry says it still names the image warmed (or cannot be
//! asked: a warning), a corrupt entry is detected and
//! pulled again rather than used (with a warning), and an expired one is pulled again (without).

mod common;
mod warm_support;

use std::path::Path;

use common::*;
use warm_support::{PrivateRegistry, skopeo_copy};

fn build(ctx: &Path, cache_dir: &Path, dest: &str) -> std::process::Output {
    run(trowel()
        .args(["build", "--cache", "--cache-dir"])
        .arg(cache_dir)
        .args(["--destination", dest, "--context"])
        .arg(ctx))
}

/// A private registry holding busybox as `team/busybox:1.35` (the base, by tag), and a cache
/// directory `trowel warm` filled with it.
fn warmed() -> (PrivateRegistry, String, tempfile::TempDir) {
    let private = PrivateRegistry::start();
    let base = format!("{}/team/busybox:1.35", private.addr);
    skopeo_copy("busybox:1.35", &base);
    let cache = tempfile::tempdir().unwrap();
    assert_ok(&run(trowel().args(["warm", "--cache-dir"]).arg(cache.path()).args(["--image", &base])));
    (private, base, cache)
}

fn context(base: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("Dockerfile"), format!("FROM {base}\nRUN echo offline > /built-offline\n")).unwrap();
    d
}

#[test]
fn a_warm_cache_dir_builds_with_the_base_registry_down() {
    let (mut private, base, cache) = warmed();
    private.stop();

    let ctx = context(&base);
    let dest = format!("{}/{}:1", env().registry, unique_repo("offline"));
    let o = build(ctx.path(), cache.path(), &dest);
    assert_ok(&o);
    let err = stderr(&o);
    assert!(err.contains("in the local cache directory"), "{err}");
    // The tag could not be checked: said, since the registry may name another image by now.
    assert!(err.contains(&format!("{base}: cannot ask its registry what the tag names now (")), "{err}");
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/built-offline"), "offline\n");
    assert!(u.tree().has("/bin/busybox"), "the base layers came from the cache directory");
}

/// A tag warmed, then moved at its registry: the build asks the registry what the tag names
/// (as kaniko does) and builds on the new image, saying why the cache directory's was not used;
/// an unmoved tag is asked too and taken from the cache directory without a warning.
#[test]
fn a_tag_moved_since_it_was_warmed_is_pulled_not_taken_from_the_cache_dir() {
    let (_private, base, cache) = warmed();
    let ctx = context(&base);
    let dest = format!("{}/{}:1", env().registry, unique_repo("unmoved"));
    let o = build(ctx.path(), cache.path(), &dest);
    assert_ok(&o);
    assert!(stderr(&o).contains("in the local cache directory") && !stderr(&o).contains("WARN"), "{}", stderr(&o));

    // The tag moves to an image with one more file.
    let next = tempfile::tempdir().unwrap();
    std::fs::write(next.path().join("Dockerfile"), format!("FROM {base}\nRUN echo v2 > /moved\n")).unwrap();
    assert_ok(&run(trowel().args(["build", "--insecure", "--destination", &base, "--context"]).arg(next.path())));
    let dest = format!("{}/{}:1", env().registry, unique_repo("moved"));
    let o = build(ctx.path(), cache.path(), &dest);
    assert_ok(&o);
    let err = stderr(&o);
    let retrieved =
        err.lines().find(|l| l.contains(&format!("Retrieved image {base}@"))).unwrap_or_else(|| panic!("{err}"));
    assert!(retrieved.contains("not from the cache directory: the tag now names sha256:"), "{err}");
    assert!(!err.contains("WARN"), "{err}");
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/moved"), "v2\n", "built on the image the tag names now");
    assert_eq!(Tree::content(&u.rootfs(), "/built-offline"), "offline\n");
}

#[test]
fn a_corrupt_cache_dir_entry_is_pulled_again_not_used() {
    let (_private, base, cache) = warmed();
    // Flip a byte of the layer blob in the cache directory.
    let layer =
        skopeo_manifest(&base)["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let blob = cache.path().join("blobs/sha256").join(&layer);
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();

    let ctx = context(&base);
    let dest = format!("{}/{}:1", env().registry, unique_repo("corrupt"));
    let o = build(ctx.path(), cache.path(), &dest);
    assert_ok(&o);
    let err = stderr(&o);
    assert!(err.contains("missing or corrupt layer(s)); pulling it from the registry"), "{err}");
    assert!(err.contains("layers; not from the cache directory: 1 missing or corrupt layer(s))"), "{err}");
    assert!(err.contains(&format!("Retrieved image {base}")), "{err}");
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/built-offline"), "offline\n");
    assert_eq!(u.tree().get("/bin/busybox").size, std::fs::metadata("/bin/busybox").unwrap().len());
}

#[test]
fn an_expired_entry_is_pulled_again_and_said_so_without_a_warning() {
    let (_private, base, cache) = warmed();
    // Entry ages are whole seconds.
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let ctx = context(&base);
    let dest = format!("{}/{}:1", env().registry, unique_repo("expired"));
    let o = run(trowel()
        .args(["build", "--cache", "--cache-ttl", "1s", "--cache-dir"])
        .arg(cache.path())
        .args(["--destination", &dest, "--context"])
        .arg(ctx.path()));
    assert_ok(&o);
    let err = stderr(&o);
    // Expiry is the cache working as meant (kaniko logs it at debug level): the line that says
    // where the base came from says why it was not the cache directory, and nothing warns.
    let retrieved =
        err.lines().find(|l| l.contains(&format!("Retrieved image {base}@"))).unwrap_or_else(|| panic!("{err}"));
    assert!(
        retrieved.contains("not from the cache directory: cached ")
            && retrieved.contains("older than the cache TTL of 1s"),
        "{err}"
    );
    assert!(!err.contains("WARN"), "{err}");
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/built-offline"), "offline\n");
}
