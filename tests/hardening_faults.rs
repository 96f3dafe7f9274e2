//! Whole `trowel build` runs through a fault-injecting proxy (`faults/mod.rs`) in front of the
//! real registry: base pulls, pushes, cache lookups and cache writes meet dropped connections,
//! 429/500/502/503 (with `Retry-After`), cut and stalled bodies, corrupted blobs, lost answers
//! and manifests refused as naming a blob the registry is still linking. A build either
//! succeeds — and then the image in the registry is complete, which skopeo checks by copying
//! every blob with digest verification — or fails with a clear error and pushes no manifest.
//! (`registry_retry.rs` checks the same mechanisms call by call.)

mod common;
mod faults;
mod hardening_support;

use std::process::Command;
use std::time::Duration;

use common::{assert_ok, env, run, skopeo_manifest, trowel, unique_repo};
use faults::{Fault, FaultProxy};
use hardening_support::{assert_complete, context, log};

const FOREVER: usize = usize::MAX;

fn busybox_layer() -> String {
    skopeo_manifest(&env().busybox())["layers"][0]["digest"].as_str().unwrap().to_string()
}

fn busybox_config() -> String {
    skopeo_manifest(&env().busybox())["config"]["digest"].as_str().unwrap().to_string()
}

/// A Dockerfile from the busybox base behind `proxy`, with a 3 MB layer (so cut and stalled
/// uploads happen mid-body) and a small one.
fn dockerfile(proxy: &FaultProxy) -> String {
    format!("FROM {}/busybox:1.35\nRUN head -c 3000000 /dev/urandom > /big\nRUN echo ok > /ok\n", proxy.addr)
}

fn build(ctx: &std::path::Path, args: &[&str]) -> std::process::Output {
    run(trowel().args(["build", "--context"]).arg(ctx).args(args))
}

/// No manifest is tagged `reference` on the real registry.
#[track_caller]
fn assert_no_manifest(reference: &str) {
    let o = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{reference}")]));
    assert!(!o.status.success(), "{reference} exists although the push failed");
}

#[test]
fn pull_and_push_survive_a_flaky_registry() {
    let proxy = FaultProxy::start(&env().registry);
    let repo = unique_repo("flaky");
    proxy
        .inject("GET", "/v2/", Fault::Status { code: 503, retry_after: Some(1) }, 1)
        .inject("GET", "/busybox/manifests/1.35", Fault::Status { code: 429, retry_after: Some(1) }, 1)
        .inject("GET", "/busybox/manifests/1.35", Fault::Drop, 1)
        .inject("GET", &busybox_config(), Fault::Corrupt, 1)
        .inject("GET", &busybox_layer(), Fault::Truncate { after: 300_000 }, 1)
        .inject("GET", &busybox_layer(), Fault::Stall { pause: Duration::from_secs(2) }, 1)
        .inject("HEAD", &format!("/{repo}/blobs/"), Fault::Status { code: 502, retry_after: None }, 1)
        .inject("POST", &format!("/{repo}/blobs/uploads/"), Fault::Status { code: 503, retry_after: Some(1) }, 1)
        // The COPY layer's stream to the destination while it is written is cut: the push
        // then uploads it from the store, through the faults below.
        .inject("PATCH", &format!("/{repo}/blobs/uploads/"), Fault::Drop, 1)
        .inject("PUT", &format!("/{repo}/blobs/uploads/"), Fault::CutUpload { after: 100_000 }, 1)
        .inject("PUT", &format!("/{repo}/blobs/uploads/"), Fault::LoseResponse, 1)
        .inject("PUT", &format!("/{repo}/blobs/uploads/"), Fault::Status { code: 500, retry_after: None }, 1)
        .inject("PUT", &format!("/{repo}/manifests/1"), Fault::Status { code: 502, retry_after: None }, 1)
        .inject("PUT", &format!("/{repo}/manifests/1"), Fault::LoseResponse, 1);
    let ctx = context(&dockerfile(&proxy));
    let digest_file = ctx.path().join("digest");
    let o = build(
        ctx.path(),
        &["--destination", &format!("{}/{repo}:1", proxy.addr), "--digest-file", digest_file.to_str().unwrap()],
    );
    assert_ok(&o);
    eprintln!("faults applied: {:#?}", proxy.applied());
    assert!(proxy.unused().is_empty(), "faults never triggered: {:?}", proxy.unused());
    let digest = std::fs::read_to_string(&digest_file).unwrap();
    assert_complete(&format!("{}/{repo}:1", env().registry), &digest);
}

#[test]
fn a_push_that_cannot_complete_fails_and_tags_nothing() {
    let proxy = FaultProxy::start(&env().registry);
    // Blob uploads fail for good: the manifest must never be sent.
    let repo = unique_repo("noblobs");
    proxy.inject("PUT", &format!("/{repo}/blobs/uploads/"), Fault::Status { code: 500, retry_after: None }, FOREVER);
    let ctx = context(&dockerfile(&proxy));
    let digest_file = ctx.path().join("digest");
    let dest = format!("{}/{repo}:1", proxy.addr);
    let o = build(
        ctx.path(),
        &["--destination", &dest, "--push-retry", "1", "--digest-file", digest_file.to_str().unwrap()],
    );
    let text = log(&o);
    assert!(!o.status.success(), "{text}");
    assert!(text.contains(&format!("push {dest}")) && text.contains("(500)"), "{text}");
    assert!(!proxy.seen().iter().any(|r| r.starts_with(&format!("PUT /v2/{repo}/manifests/"))), "a manifest was sent");
    assert!(!digest_file.exists(), "a digest file was written for a failed push");
    assert_no_manifest(&format!("{}/{repo}:1", env().registry));

    // The manifest upload fails for good: the build fails (never "pushed"), nothing is tagged.
    let repo = unique_repo("nomanifest");
    proxy.inject("PUT", &format!("/{repo}/manifests/"), Fault::Status { code: 503, retry_after: None }, FOREVER);
    let dest = format!("{}/{repo}:1", proxy.addr);
    let o = build(
        ctx.path(),
        &["--destination", &dest, "--push-retry", "1", "--digest-file", digest_file.to_str().unwrap()],
    );
    let text = log(&o);
    assert!(!o.status.success(), "{text}");
    assert!(text.contains(&format!("push {dest}")) && text.contains("(503)"), "{text}");
    assert!(!text.contains("Pushed"), "{text}");
    assert!(!digest_file.exists(), "a digest file was written for a failed push");
    assert_no_manifest(&format!("{}/{repo}:1", env().registry));
}

#[test]
fn a_registry_that_misreports_an_upload_fails_the_push() {
    let proxy = FaultProxy::start(&env().registry);
    let repo = unique_repo("liar");
    proxy.inject("PUT", &format!("/{repo}/blobs/uploads/"), Fault::LieAboutDigest, FOREVER);
    let ctx = context(&dockerfile(&proxy));
    let o = build(ctx.path(), &["--destination", &format!("{}/{repo}:1", proxy.addr)]);
    let text = log(&o);
    assert!(!o.status.success(), "{text}");
    assert!(text.contains("but the registry stored sha256:0000"), "{text}");
    assert_no_manifest(&format!("{}/{repo}:1", env().registry));
}

/// What distribution 2.8 answered a manifest `PUT` in CI (eight, then sixteen builds sharing a
/// cache repository) whose check read a blob's link while another push rewrote it: empty.
const LINK_BEING_WRITTEN: &str = r#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"},{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"}]}"#;

/// The manifest `PUT`s of `repo` the proxy saw.
fn manifest_puts(proxy: &FaultProxy, repo: &str) -> usize {
    proxy.seen().iter().filter(|r| r.starts_with(&format!("PUT /v2/{repo}/manifests/"))).count()
}

/// distribution refuses a manifest as naming an unknown blob when its check reads the blob's
/// link while another push rewrites it (see `push_manifest`): the manifest is sent again after
/// a short wait, the retry in the log with its reason, whatever `--push-retry` says.
#[test]
fn a_manifest_refused_for_a_blob_being_linked_is_sent_again() {
    let proxy = FaultProxy::start(&env().registry);
    let repo = unique_repo("linking");
    let answer = Fault::Answer { code: 400, body: LINK_BEING_WRITTEN };
    proxy.inject("PUT", &format!("/{repo}/manifests/1"), answer, 1);
    let ctx = context(&format!("FROM {}/busybox:1.35\nRUN echo ok > /ok\n", proxy.addr));
    let digest_file = ctx.path().join("digest");
    let dest = format!("{}/{repo}:1", proxy.addr);
    let o = build(
        ctx.path(),
        &["--destination", &dest, "--push-retry", "0", "--digest-file", digest_file.to_str().unwrap()],
    );
    assert_ok(&o);
    assert!(proxy.unused().is_empty(), "faults never triggered: {:?}", proxy.unused());
    assert_eq!(manifest_puts(&proxy, &repo), 2, "{:#?}", proxy.seen());
    let text = log(&o);
    let retried = format!(
        "retrying in 0.05 s (attempt 2 of 4): push {dest}: provided digest did not match uploaded content; blob \
         unknown to registry (400): the manifest's blobs were all confirmed there; the registry may still be \
         writing its link to one"
    );
    assert!(text.contains(&retried), "wanted {retried:?} in:\n{text}");
    assert_complete(&format!("{}/{repo}:1", env().registry), &std::fs::read_to_string(&digest_file).unwrap());
}

/// A blob really missing: the manifest is refused every time, and the build fails with the
/// registry's words after three quick retries, not in a loop; nothing is tagged.
#[test]
fn a_manifest_refused_for_an_unknown_blob_every_time_fails_after_a_few_retries() {
    let proxy = FaultProxy::start(&env().registry);
    let repo = unique_repo("unlinked");
    const MISSING: &str = r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"}]}"#;
    proxy.inject("PUT", &format!("/{repo}/manifests/"), Fault::Answer { code: 400, body: MISSING }, FOREVER);
    let ctx = context(&format!("FROM {}/busybox:1.35\nRUN echo ok > /ok\n", proxy.addr));
    let digest_file = ctx.path().join("digest");
    let dest = format!("{}/{repo}:1", proxy.addr);
    let o = build(ctx.path(), &["--destination", &dest, "--digest-file", digest_file.to_str().unwrap()]);
    let text = log(&o);
    assert!(!o.status.success(), "{text}");
    assert_eq!(manifest_puts(&proxy, &repo), 4, "{:#?}", proxy.seen());
    for (attempt, wait) in [(2, "0.05"), (3, "0.1"), (4, "0.2")] {
        let retried =
            format!("retrying in {wait} s (attempt {attempt} of 4): push {dest}: blob unknown to registry (400): ");
        assert!(text.contains(&retried), "wanted {retried:?} in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| !l.contains("retrying in") && l.contains(&format!("push {dest}: blob unknown to registry (400)"))),
        "{text}"
    );
    assert!(!text.contains("Pushed"), "{text}");
    assert!(!digest_file.exists(), "a digest file was written for a failed push");
    assert_no_manifest(&format!("{}/{repo}:1", env().registry));
}

#[test]
fn a_base_blob_that_never_verifies_fails_the_build_clearly() {
    let proxy = FaultProxy::start(&env().registry);
    let layer = busybox_layer();
    proxy.inject("GET", &layer, Fault::Corrupt, FOREVER);
    let ctx = context(&dockerfile(&proxy));
    let o = build(ctx.path(), &["--no-push", "--image-download-retry", "2", "--push-retry", "0"]);
    let text = log(&o);
    assert!(!o.status.success(), "{text}");
    assert!(text.contains(&format!("blob {layer} failed verification")), "{text}");
    let gets = || proxy.seen().iter().filter(|r| r.starts_with("GET") && r.contains(&layer)).count();
    assert_eq!(gets(), 3, "one download and two retries");
    // Downloads take --image-download-retry alone: 0 is no retry, whatever --push-retry says
    // (it was raised to --push-retry's count).
    let o = build(ctx.path(), &["--no-push", "--image-download-retry", "0", "--push-retry", "3"]);
    assert!(!o.status.success(), "{}", log(&o));
    assert_eq!(gets(), 4, "one download, no retry");
}

/// A manifest asked for by tag is checked against the digest the registry says it sent: one
/// damaged on the way is asked for again (a cache entry's config rides in its manifest, so
/// nothing else would catch it), and one whose header is simply wrong (the same bytes twice) is
/// taken as it is, so that a registry's quirk does not fail every pull. On the old code the
/// damaged manifest failed the build as not JSON.
#[test]
fn a_manifest_unlike_the_digest_its_registry_gives_is_asked_for_again() {
    let proxy = FaultProxy::start(&env().registry);
    let manifest = "/busybox/manifests/1.35";
    let gets = || proxy.seen().iter().filter(|r| r.starts_with("GET") && r.ends_with(manifest)).count();
    proxy.inject("GET", manifest, Fault::Corrupt, 1);
    let ctx = context(&dockerfile(&proxy));
    let o = build(ctx.path(), &["--no-push"]);
    assert_ok(&o);
    let text = log(&o);
    assert!(text.contains("manifest 1.35: the body is not the sha256:"), "{text}");
    assert_eq!(gets(), 2, "the damaged answer and one more");
    // A registry whose header never matches: asked twice, then taken as it is.
    proxy.inject("GET", manifest, Fault::LieAboutDigest, FOREVER);
    let o = build(ctx.path(), &["--no-push"]);
    assert_ok(&o);
    assert_eq!(gets(), 4, "{}", log(&o));
}

/// The layer cache through the proxy: writes that meet faults still produce complete entries,
/// lookups that meet faults still hit, and a cache that fails for good only costs time.
#[test]
fn the_layer_cache_survives_faults_and_never_holds_partial_entries() {
    let proxy = FaultProxy::start(&env().registry);
    let repo = unique_repo("cached");
    let cache = format!("{}/{repo}/cache", proxy.addr);
    let ctx = context(&dockerfile(&proxy));
    let args = |dest: &str| -> Vec<String> {
        ["--reproducible", "--cache", "--cache-repo", &cache, "--destination", dest, "--digest-file"]
            .iter()
            .map(|s| s.to_string())
            .chain([ctx.path().join("digest").display().to_string()])
            .collect()
    };

    // 1. Cache writes meet a dropped streamed upload (the 3 MB layer, sent while it was written;
    //    the entry then uploads it from the store), cut uploads, lost answers and 503s on their
    //    manifests.
    proxy
        .inject("PATCH", &format!("/{repo}/cache/blobs/uploads/"), Fault::Drop, 1)
        .inject("PUT", &format!("/{repo}/cache/blobs/uploads/"), Fault::CutUpload { after: 100_000 }, 1)
        .inject("PUT", &format!("/{repo}/cache/blobs/uploads/"), Fault::LoseResponse, 1)
        .inject("PUT", &format!("/{repo}/cache/manifests/"), Fault::Status { code: 503, retry_after: Some(1) }, 2);
    let dest1 = format!("{}/{repo}:1", proxy.addr);
    let o = run(trowel().arg("build").arg("--context").arg(ctx.path()).args(args(&dest1)));
    assert_ok(&o);
    assert!(!log(&o).contains("could not write the cache entry"), "{}", log(&o));
    assert!(proxy.unused().is_empty(), "faults never triggered: {:?}", proxy.unused());
    let first = std::fs::read_to_string(ctx.path().join("digest")).unwrap();
    assert_cache_entries_complete(&format!("{}/{repo}/cache", env().registry), 4);

    // 2. Lookups meet a 503 with Retry-After, a dropped connection and corrupt answers (an
    //    entry's config rides in its manifest), and still hit: the same image, with no step
    //    run again.
    proxy
        .inject("GET", &format!("/{repo}/cache/manifests/"), Fault::Status { code: 503, retry_after: Some(1) }, 1)
        .inject("GET", &format!("/{repo}/cache/manifests/"), Fault::Drop, 1)
        .inject("GET", &format!("/{repo}/cache/manifests/"), Fault::Corrupt, 2);
    let dest2 = format!("{}/{repo}:2", proxy.addr);
    let o = run(trowel().arg("build").arg("--context").arg(ctx.path()).args(args(&dest2)));
    assert_ok(&o);
    let text = log(&o);
    assert_eq!(text.matches("Using cached layer").count(), 2, "{text}");
    assert!(proxy.unused().is_empty(), "faults never triggered: {:?}", proxy.unused());
    let second = std::fs::read_to_string(ctx.path().join("digest")).unwrap();
    assert_eq!(first, second, "a cached build reproduces the image");
    assert_complete(&format!("{}/{repo}:2", env().registry), &second);

    // 3. The cache fails for good (lookups and writes): the build runs every step, warns, and
    //    pushes a complete image; the cache gains no entry.
    proxy.inject("GET", &format!("/{repo}/cache/"), Fault::Status { code: 500, retry_after: None }, FOREVER);
    proxy.inject("HEAD", &format!("/{repo}/cache/"), Fault::Status { code: 500, retry_after: None }, FOREVER);
    proxy.inject("PUT", &format!("/{repo}/cache/"), Fault::Status { code: 500, retry_after: None }, FOREVER);
    let ctx3 = context(&format!("{}RUN echo changed > /changed\n", dockerfile(&proxy)));
    let dest3 = format!("{}/{repo}:3", proxy.addr);
    let digest3 = ctx3.path().join("digest");
    let o = run(trowel()
        .args(["build", "--cache", "--cache-repo", &cache, "--push-retry", "1", "--context"])
        .arg(ctx3.path())
        .args(["--destination", &dest3, "--digest-file", digest3.to_str().unwrap()]));
    assert_ok(&o);
    let text = log(&o);
    assert!(text.contains("Cache lookup failed"), "{text}");
    assert!(text.contains("could not write the cache entry"), "{text}");
    assert_complete(&format!("{}/{repo}:3", env().registry), &std::fs::read_to_string(&digest3).unwrap());
    assert_cache_entries_complete(&format!("{}/{repo}/cache", env().registry), 4);
}

/// A miss is explained against the step's earlier entry, found through its pointer tag; when
/// the registry will not answer for that tag, the explanation says so. It said "no cache entry
/// for this step yet" — a guess that reads as a fact (seen on a loaded CI machine).
#[test]
fn a_miss_whose_earlier_entries_cannot_be_read_says_so() {
    let proxy = FaultProxy::start(&env().registry);
    let repo = unique_repo("unreadable-pointer");
    let cache = format!("{}/{repo}/cache", proxy.addr);
    let df = |v: &str| format!("FROM {}/busybox:1.35\nRUN echo {v} > /v\n", proxy.addr);
    let explained = |v: &str| -> String {
        let ctx = context(&df(v));
        let trace = ctx.path().join("t.jsonl");
        let o = run(trowel()
            .args(["build", "--cache", "--cache-repo", &cache, "--no-push", "--context"])
            .arg(ctx.path())
            .arg("--trace")
            .arg(&trace));
        assert_ok(&o);
        let text = std::fs::read_to_string(&trace).unwrap();
        let lookup: serde_json::Value = text
            .lines()
            .skip(1)
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| e["event"] == "cache_lookup" && e["id"]["step"] == 1)
            .unwrap();
        lookup["result"].to_string()
    };
    explained("v1");
    // Answered: the change is named.
    assert!(explained("v2").contains("instruction changed: "));
    // The pointer tag fails for good: no guess.
    proxy.inject(
        "GET",
        &format!("/{repo}/cache/manifests/step-"),
        Fault::Status { code: 500, retry_after: None },
        FOREVER,
    );
    proxy.inject(
        "HEAD",
        &format!("/{repo}/cache/manifests/step-"),
        Fault::Status { code: 500, retry_after: None },
        FOREVER,
    );
    let result = explained("v3");
    assert!(result.contains("could not be read") && result.contains("500"), "{result}");
    assert!(!result.contains("no cache entry for this step yet"), "{result}");
}

/// Every tag of the cache repository names a complete entry (skopeo copies all its blobs), and
/// there are `expected` of them (an entry tag and a pointer tag per step).
#[track_caller]
fn assert_cache_entries_complete(cache_repo: &str, expected: usize) {
    let o = run(Command::new("skopeo").args(["list-tags", "--tls-verify=false", &format!("docker://{cache_repo}")]));
    assert_ok(&o);
    let tags: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tags = tags["Tags"].as_array().unwrap();
    assert_eq!(tags.len(), expected, "{tags:?}");
    for t in tags {
        let dir = tempfile::tempdir().unwrap();
        let o = run(Command::new("skopeo").args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{cache_repo}:{}", t.as_str().unwrap()),
            &format!("oci:{}:x", dir.path().join("l").display()),
        ]));
        assert_ok(&o);
    }
}
