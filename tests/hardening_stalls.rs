//! Stall timeouts (`--stall-timeout`, issue 20): whole `trowel build` runs through the fault
//! proxy (`faults/mod.rs`) when a registry stops sending or taking bytes mid-transfer without
//! closing the connection. A stalled attempt must fail after the stall timeout (1–2 s here, not
//! the 300 s per attempt trowel used to wait) and be retried, a slow transfer that keeps moving
//! must never be cut off however long it takes, and a registry that stalls on every attempt must
//! fail the build with a message naming the registry, the blob, the timeout and the attempts.
//! The remote-context client's case is a unit test of `remote_context/http.rs`.

mod common;
mod faults;
mod hardening_support;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_ok, env, run, skopeo_manifest, trowel, unique_repo};
use faults::{Fault, FaultProxy};
use hardening_support::{assert_complete, context, log};

const FOREVER: usize = usize::MAX;

/// The busybox base layer's digest and size.
fn busybox_layer() -> (String, u64) {
    let m = skopeo_manifest(&env().busybox());
    let l = &m["layers"][0];
    (l["digest"].as_str().unwrap().to_string(), l["size"].as_u64().unwrap())
}

/// A busybox build behind `proxy` with a 3 MB layer of random bytes (so an upload of it takes
/// seconds at the paces below) and a small one.
fn dockerfile(proxy: &FaultProxy) -> String {
    format!("FROM {}/busybox:1.35\nRUN head -c 3000000 /dev/urandom > /big\nRUN echo ok > /ok\n", proxy.addr)
}

fn build(ctx: &std::path::Path, args: &[&str]) -> (std::process::Output, Duration) {
    let t0 = Instant::now();
    let o = run(trowel().args(["build", "--context"]).arg(ctx).args(args));
    (o, t0.elapsed())
}

fn requests(proxy: &FaultProxy, method: &str, path: &str) -> usize {
    proxy.seen().iter().filter(|r| r.starts_with(&format!("{method} ")) && r.contains(path)).count()
}

/// A base layer whose body stops mid-way, and a layer upload the registry stops taking (and the
/// layer's stream while it is written), are each retried after 2 s; the image is complete.
#[test]
fn stalled_transfers_are_retried_after_the_stall_timeout() {
    let proxy = FaultProxy::start(&env().registry);
    let repo = unique_repo("stalled");
    let (layer, _) = busybox_layer();
    proxy
        .inject("GET", &layer, Fault::StallAfter { after: 100_000 }, 1)
        .inject("PATCH", &format!("/{repo}/blobs/uploads/"), Fault::StallUpload { after: 500_000 }, 1)
        .inject("PUT", &format!("/{repo}/blobs/uploads/"), Fault::StallUpload { after: 500_000 }, 1);
    let ctx = context(&dockerfile(&proxy));
    let digest_file = ctx.path().join("digest");
    let dest = format!("{}/{repo}:1", proxy.addr);
    let (o, took) = build(
        ctx.path(),
        &["--stall-timeout", "2s", "--destination", &dest, "--digest-file", digest_file.to_str().unwrap()],
    );
    assert_ok(&o);
    assert!(proxy.unused().is_empty(), "faults never triggered: {:?}", proxy.unused());
    // The stalled download resumed (a ranged GET), the stalled upload was made again.
    assert_eq!(requests(&proxy, "GET", &layer), 2, "{:#?}", proxy.seen());
    assert!(requests(&proxy, "PUT", &format!("/{repo}/blobs/uploads/")) >= 2, "{:#?}", proxy.seen());
    // Each retry is in the log (a `warning` event: the trace has it too), with its reason.
    let text = log(&o);
    let pulled = format!(
        "retrying in 0.5 s (attempt 2 of 4): pull {}/busybox:1.35: downloading blob {layer}: stalled: no data for 2 s",
        proxy.addr
    );
    assert!(text.contains(&pulled), "wanted {pulled:?} in:\n{text}");
    let pushed = format!("retrying in 0.5 s (attempt 2 of 4): push {dest}: uploading blob sha256:");
    assert!(
        text.lines().any(|l| l.contains(&pushed) && l.ends_with(": stalled: no data for 2 s")),
        "wanted {pushed:?}… in:\n{text}"
    );
    // Three stalls of 2 s and their backoff are seconds; one 300 s wait would be minutes. The
    // rest is a small build on a machine shared with other builds.
    assert!(took < Duration::from_secs(150), "took {took:?}");
    let digest = std::fs::read_to_string(&digest_file).unwrap();
    assert_complete(&format!("{}/{repo}:1", env().registry), &digest);
}

/// A base layer downloaded and a 3 MB layer uploaded at a pace that takes several times the 1 s
/// stall timeout, but never stops: no attempt is cut off. With no retries allowed, one cut-off
/// attempt would fail the build.
#[test]
fn a_slow_transfer_that_keeps_moving_is_never_cut_off() {
    let proxy = FaultProxy::start(&env().registry);
    let repo = unique_repo("slow");
    let (layer, size) = busybox_layer();
    // The base layer in about 4 s.
    let down = (size / 4).max(50_000) as usize;
    proxy
        .inject("GET", &layer, Fault::Throttle { bytes_per_sec: down }, FOREVER)
        // The layer's stream while it is written is cut, so the push uploads the 3 MB layer
        // from the store in one PUT: at 1.5 MB/s, 2 s.
        .inject("PATCH", &format!("/{repo}/blobs/uploads/"), Fault::Drop, FOREVER)
        .inject("PUT", &format!("/{repo}/blobs/uploads/"), Fault::ThrottleUpload { bytes_per_sec: 1_500_000 }, FOREVER);
    let ctx = context(&dockerfile(&proxy));
    let digest_file = ctx.path().join("digest");
    let dest = format!("{}/{repo}:1", proxy.addr);
    let t0 = Instant::now();
    let (o, _) = build(
        ctx.path(),
        &[
            "--stall-timeout",
            "1s",
            "--image-download-retry",
            "0",
            "--push-retry",
            "0",
            "--destination",
            &dest,
            "--digest-file",
            digest_file.to_str().unwrap(),
        ],
    );
    assert_ok(&o);
    assert!(!log(&o).contains("stalled"), "{}", log(&o));
    assert_eq!(requests(&proxy, "GET", &layer), 1, "{:#?}", proxy.seen());
    assert!(proxy.applied().iter().any(|a| a.contains("ThrottleUpload")), "{:#?}", proxy.applied());
    // It was slow: longer in total than the stall timeout, for the download alone.
    assert!(t0.elapsed() > Duration::from_secs(3));
    let digest = std::fs::read_to_string(&digest_file).unwrap();
    assert_complete(&format!("{}/{repo}:1", env().registry), &digest);
}

/// A registry that stalls on every attempt: the build fails, naming the registry, the blob, the
/// timeout and the attempts, within about attempts × timeout; a push that stalls pushes nothing.
/// (One retry count serves pulls and pushes: the larger of the two flags.)
#[test]
fn a_registry_that_always_stalls_fails_clearly() {
    let proxy = FaultProxy::start(&env().registry);
    let (layer, _) = busybox_layer();
    proxy.inject("GET", &layer, Fault::StallAfter { after: 50_000 }, FOREVER);
    let ctx = context(&dockerfile(&proxy));
    let (o, took) =
        build(ctx.path(), &["--no-push", "--stall-timeout", "1s", "--image-download-retry", "2", "--push-retry", "2"]);
    let text = log(&o);
    assert!(!o.status.success(), "{text}");
    let want = format!(
        "pull {}/busybox:1.35: downloading blob {layer}: stalled: no data for 1 s after 3 attempts",
        proxy.addr
    );
    assert!(text.contains(&want), "wanted {want:?} in:\n{text}");
    assert!(took < Duration::from_secs(90), "took {took:?}");

    let repo = unique_repo("stuck");
    proxy.clear();
    proxy.inject("PATCH", &format!("/{repo}/blobs/uploads/"), Fault::StallUpload { after: 100_000 }, FOREVER);
    proxy.inject("PUT", &format!("/{repo}/blobs/uploads/"), Fault::StallUpload { after: 100_000 }, FOREVER);
    let dest = format!("{}/{repo}:1", proxy.addr);
    let (o, _) = build(
        ctx.path(),
        &["--destination", &dest, "--stall-timeout", "1s", "--push-retry", "1", "--image-download-retry", "1"],
    );
    let text = log(&o);
    assert!(!o.status.success(), "{text}");
    let re_start = format!("push {dest}: uploading blob sha256:");
    let re_end = ": stalled: no data for 1 s after 2 attempts";
    assert!(
        text.lines().any(|l| l.contains(&re_start) && l.contains(re_end)),
        "wanted {re_start}…{re_end} in:\n{text}"
    );
    assert!(!proxy.seen().iter().any(|r| r.starts_with(&format!("PUT /v2/{repo}/manifests/"))), "a manifest was sent");
    let o = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/{repo}:1", env().registry),
    ]));
    assert!(!o.status.success(), "the image exists although its push stalled");
}
