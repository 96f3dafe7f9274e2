//! Crash safety: trowel stopped by SIGTERM during a RUN (a clean abort), and killed with
//! SIGKILL during a RUN, while writing a layer, during a cache
//! write, during a push (blob and manifest) and during `trowel warm`. Afterwards: no process of
//! the build and no mount survives, nothing half-written is visible (no tag in the destination
//! or the cache repository, no entry in the cache directory), and the next run with the same
//! work directory, cache directory, cache repository and destination succeeds with a complete
//! image, removing what the killed build left in the work directory.

mod common;
mod faults;
mod hardening_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_ok, env, run, trowel, unique_repo};
use faults::{Fault, FaultProxy};
use hardening_support::running::{Running, assert_no_tag, entries, mounts_below, sigterm_and_wait, tags};
use hardening_support::{context, log};

const HOLD: Fault = Fault::Hold { pause: Duration::from_secs(40) };

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) {
                out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// The image is complete in the registry: skopeo copies every blob, verifying digests, and
/// the manifest is the one trowel reported.
#[track_caller]
fn assert_complete(reference: &str, digest_file: &Path) {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:x", dir.path().join("l").display()),
    ])));
    let digest = std::fs::read_to_string(digest_file).unwrap();
    assert_eq!(common::skopeo_inspect(reference)["Digest"].as_str().unwrap(), digest.trim());
}

#[test]
fn killed_during_a_run_leaves_no_process_or_mount_and_the_next_build_cleans_up() {
    let work = tempfile::tempdir().unwrap();
    let marker = format!("sleep {}", 5000 + std::process::id() % 1000);
    let ctx = context(&format!("FROM {}\nRUN ({marker} &) ; echo started-run ; {marker}\n", env().busybox()));
    let w = work.path().to_str().unwrap();
    let mut b = Running::start(ctx.path(), &["--no-push", "--work-dir", w]);
    b.wait_for_log("started-run");
    let t0 = Instant::now();
    while processes_with(&marker).len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(10), "the RUN's processes never showed up");
        std::thread::sleep(Duration::from_millis(20));
    }
    b.kill();
    // The sandbox dies with trowel (parent-death signal, PID namespace), and its mounts with it.
    let t0 = Instant::now();
    while !processes_with(&marker).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10), "left running: {:?}", processes_with(&marker));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(mounts_below(work.path()), Vec::<String>::new());
    let left = entries(work.path());
    assert_eq!(left.len(), 1, "the killed build's directory: {left:?}");

    // The next build in the same work directory removes it, and leaves nothing itself.
    let ctx2 = context(&format!("FROM {}\nRUN echo fine > /fine\n", env().busybox()));
    let o = run(trowel().args(["build", "--no-push", "--work-dir", w, "--context"]).arg(ctx2.path()));
    assert_ok(&o);
    assert_eq!(entries(work.path()), Vec::<String>::new(), "{} was not removed", left[0]);
    assert!(!log(&o).contains("cannot remove"), "{}", log(&o));
}

/// SIGTERM (a pod deleted) during a RUN aborts the build as the debugger's quit does: the RUN
/// stopped, its roots removed from the work dir, nothing pushed, the reason in the log. It used
/// to end the process there and then, its roots left behind. SIGINT and SIGHUP take the same path.
#[test]
fn sigterm_during_a_run_aborts_the_build_and_removes_its_roots() {
    let work = tempfile::tempdir().unwrap();
    let marker = format!("sleep {}", 6000 + std::process::id() % 1000);
    let ctx = context(&format!("FROM {}\nRUN ({marker} &) ; echo started-run ; {marker}\n", env().busybox()));
    let dest = format!("{}/{}:1", env().registry, unique_repo("sigterm"));
    let w = work.path().to_str().unwrap();
    let mut b = Running::start(ctx.path(), &["--destination", &dest, "--work-dir", w]);
    b.wait_for_log("started-run");
    let t0 = Instant::now();
    while processes_with(&marker).len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(10), "the RUN's processes never showed up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ok(&run(Command::new("kill").args(["-TERM", &b.child.id().to_string()])));
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = b.child.try_wait().unwrap() {
            break status;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "still building 20 s after SIGTERM:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = b.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("build aborted: SIGTERM received"), "{log}");
    assert!(processes_with(&marker).is_empty(), "left running: {:?}", processes_with(&marker));
    assert_eq!(mounts_below(work.path()), Vec::<String>::new());
    assert_eq!(entries(work.path()), Vec::<String>::new(), "the build's roots are removed");
    assert_no_tag(&dest);
}

#[test]
fn killed_while_writing_a_layer_then_rebuilt() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_str().unwrap();
    let repo = unique_repo("killed-layer");
    let dest = format!("{}/{repo}:1", env().registry);
    // 150 MB of incompressible data: snapshotting and compressing it takes a while.
    let ctx = context(&format!(
        "FROM {}\nRUN head -c 150000000 /dev/urandom > /big && echo wrote''-big\nRUN echo after > /after\n",
        env().busybox()
    ));
    let trace = ctx.path().join("trace.jsonl");
    let args = ["--destination", &dest, "--work-dir", w, "--trace", trace.to_str().unwrap()];
    let mut b = Running::start(ctx.path(), &args);
    // The RUN's own output (the quotes keep its echo in the log apart from its instruction).
    b.wait_for_log("wrote-big");
    std::thread::sleep(Duration::from_millis(100));
    b.kill();
    let recorded = std::fs::read_to_string(&trace).unwrap();
    assert!(!recorded.contains("\"layer_written\""), "the kill came after the layer was written");
    assert_no_tag(&dest);

    let digest = ctx.path().join("digest");
    let o = run(trowel().args(["build", "--context"]).arg(ctx.path()).args([
        "--destination",
        &dest,
        "--work-dir",
        w,
        "--digest-file",
        digest.to_str().unwrap(),
    ]));
    assert_ok(&o);
    assert_complete(&dest, &digest);
    assert_eq!(entries(work.path()), Vec::<String>::new());
}

/// A build with the layer cache and the base-image cache directory, through a proxy whose
/// faults hold a cache write or a push until trowel is killed; then the same build again.
#[test]
fn killed_during_cache_writes_and_pushes_then_rebuilt() {
    let proxy = FaultProxy::start(&env().registry);
    let cache_dir = tempfile::tempdir().unwrap();
    let base = format!("{}/busybox:1.35", proxy.addr);
    assert_ok(&run(trowel().args(["warm", "--image", &base, "--cache-dir"]).arg(cache_dir.path())));
    let work = tempfile::tempdir().unwrap();
    let repo = unique_repo("killed-push");
    let cache_repo = format!("{}/{repo}/cache", proxy.addr);
    let dest = format!("{}/{repo}:1", proxy.addr);
    let ctx = context(&format!("FROM {base}\nRUN head -c 2000000 /dev/urandom > /data\nRUN echo second > /second\n"));
    let digest = ctx.path().join("digest");
    let cache_dir_s = cache_dir.path().to_str().unwrap().to_string();
    let work_s = work.path().to_str().unwrap().to_string();
    let args = |dest: &str| -> Vec<String> {
        let a = ["--cache", "--cache-dir", &cache_dir_s, "--cache-repo", &cache_repo, "--destination", dest];
        let b = ["--work-dir", &work_s, "--digest-file", digest.to_str().unwrap()];
        a.iter().chain(b.iter()).map(|s| s.to_string()).collect()
    };
    let real = |r: &str| r.replacen(&proxy.addr, &env().registry, 1);
    // Whatever runs got as far as writing, every cache tag names a complete entry.
    let assert_cache_complete = || {
        for t in tags(&real(&cache_repo)) {
            let dir = tempfile::tempdir().unwrap();
            assert_ok(&run(Command::new("skopeo").args([
                "copy",
                "-q",
                "--src-tls-verify=false",
                &format!("docker://{}:{t}", real(&cache_repo)),
                &format!("oci:{}:x", dir.path().join("l").display()),
            ])));
        }
    };

    // 1. Killed while a cache entry's blob is being uploaded (it waits for the cache writes
    //    before it ends).
    proxy.inject("PUT", &format!("/{repo}/cache/blobs/uploads/"), HOLD, 1);
    let b = Running::start(ctx.path(), &args(&format!("{}/{repo}:cache-kill", proxy.addr)));
    proxy.wait_applied("Hold", Duration::from_secs(60));
    let text = b.kill();
    assert!(text.contains("Found") && text.contains("in the local cache directory"), "{text}");
    assert_cache_complete();
    proxy.clear();

    // 2. Killed while the image's blobs are being uploaded: no tag. Its config is one the
    //    destination cannot have yet (a build within the same second as the first, from its
    //    cache entries, would make the same config, which the first build pushed already).
    proxy.inject("PUT", &format!("/{repo}/blobs/uploads/"), HOLD, 1);
    let mut second = args(&dest);
    second.extend(["--label".to_string(), format!("attempt={}", std::process::id())]);
    let b = Running::start(ctx.path(), &second);
    proxy.wait_applied(&format!("PUT /v2/{repo}/blobs/uploads/"), Duration::from_secs(60));
    b.kill();
    assert_no_tag(&real(&dest));
    assert_cache_complete();
    proxy.clear();

    // 3. Killed while the manifest is on its way: the registry never got it.
    proxy.inject("PUT", &format!("/{repo}/manifests/1"), HOLD, 1);
    let b = Running::start(ctx.path(), &args(&dest));
    proxy.wait_applied(&format!("PUT /v2/{repo}/manifests/1"), Duration::from_secs(60));
    b.kill();
    assert_no_tag(&real(&dest));
    assert_cache_complete();
    proxy.clear();

    // 4. The same build again: it succeeds, cleans the work directory, and the image is whole.
    let o = run(trowel().args(["build", "--context"]).arg(ctx.path()).args(args(&dest)));
    assert_ok(&o);
    assert_complete(&real(&dest), &digest);
    assert_eq!(entries(work.path()), Vec::<String>::new());
    // And once more: now every step comes from the cache.
    let o = run(trowel().args(["build", "--context"]).arg(ctx.path()).args(args(&dest)));
    assert_ok(&o);
    assert_eq!(log(&o).matches("Using cached layer").count(), 2, "{}", log(&o));
    assert_complete(&real(&dest), &digest);
}

#[test]
fn killed_warm_leaves_nothing_a_build_would_use() {
    let proxy = FaultProxy::start(&env().registry);
    let cache_dir = tempfile::tempdir().unwrap();
    let base = format!("{}/busybox:1.35", proxy.addr);
    let layer = common::skopeo_manifest(&env().busybox())["layers"][0]["digest"].as_str().unwrap().to_string();
    // The layer download stalls half way (headers and half the body sent); warm is killed then.
    proxy.inject("GET", &layer, Fault::Stall { pause: Duration::from_secs(40) }, 1);
    let mut warm = trowel()
        .args(["warm", "--image", &base, "--cache-dir"])
        .arg(cache_dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    proxy.wait_applied("Stall", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    warm.kill().unwrap();
    warm.wait().unwrap();
    // The partial blob is there under a temporary name only, and no entry names the image.
    let blobs = cache_dir.path().join("blobs/sha256");
    assert!(!blobs.join(layer.trim_start_matches("sha256:")).exists(), "a partial layer under its digest");
    let refs = cache_dir.path().join("refs");
    let entries = if refs.exists() { entries(&refs) } else { Vec::new() };
    assert!(entries.iter().all(|e| e.starts_with('.')), "an entry was written: {entries:?}");

    // A build with that cache directory does not use it (not cached) and pulls instead; a new
    // warm completes the entry and the next build uses it.
    let ctx = context(&format!("FROM {base}\nRUN test -x /bin/busybox\n"));
    let o = run(trowel()
        .args(["build", "--no-push", "--cache", "--cache-repo", &format!("{}/unused/cache", proxy.addr)])
        .args(["--no-push-cache", "--cache-dir"])
        .arg(cache_dir.path())
        .arg("--context")
        .arg(ctx.path()));
    assert_ok(&o);
    // A missing entry is the cache working as meant: said where the base is retrieved, no warning.
    assert!(log(&o).contains("layers; not from the cache directory: not in the cache)"), "{}", log(&o));
    assert!(!log(&o).contains("WARN"), "{}", log(&o));
    assert_ok(&run(trowel().args(["warm", "--image", &base, "--cache-dir"]).arg(cache_dir.path())));
    let o = run(trowel()
        .args(["build", "--no-push", "--cache", "--cache-repo", &format!("{}/unused/cache", proxy.addr)])
        .args(["--no-push-cache", "--cache-dir"])
        .arg(cache_dir.path())
        .arg("--context")
        .arg(ctx.path()));
    assert_ok(&o);
    assert!(log(&o).contains("in the local cache directory"), "{}", log(&o));
}

/// The cache dir's temporaries under `dir`: partial blobs, entries not yet renamed.
fn temporaries(dir: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| [".partial-", ".tmp-"].iter().any(|p| e.file_name().to_string_lossy().starts_with(p)))
        .map(|e| e.path().display().to_string())
        .collect()
}

/// SIGTERM while the base downloads (its layer stalled half way, as a slow registry leaves it)
/// ends the build at once, aborted, its roots removed and nothing pushed. It used to wait for
/// the download (and a pod's grace period may end first, in SIGKILL).
#[test]
fn sigterm_during_a_pull_ends_the_build_at_once() {
    let proxy = FaultProxy::start(&env().registry);
    let layer = common::skopeo_manifest(&env().busybox())["layers"][0]["digest"].as_str().unwrap().to_string();
    proxy.inject("GET", &layer, Fault::Stall { pause: Duration::from_secs(40) }, 1);
    let work = tempfile::tempdir().unwrap();
    let ctx = context(&format!("FROM {}/busybox:1.35\nRUN echo ran''-it\n", proxy.addr));
    let dest = format!("{}/{}:1", env().registry, unique_repo("sigterm-pull"));
    let mut b = Running::start(ctx.path(), &["--destination", &dest, "--work-dir", work.path().to_str().unwrap()]);
    proxy.wait_applied("Stall", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    let path = b.log.clone();
    let status = sigterm_and_wait(&mut b.child, || std::fs::read_to_string(&path).unwrap_or_default());
    let log = b.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("build aborted: SIGTERM received"), "{log}");
    assert!(!log.contains("ran-it"), "{log}");
    assert_eq!(mounts_below(work.path()), Vec::<String>::new());
    assert_eq!(entries(work.path()), Vec::<String>::new(), "the build's roots are removed");
    assert_no_tag(&dest);
}

/// SIGTERM while the image's blobs go up (the layer's commit held by the registry) ends the
/// build at once, before its manifest: no tag. It used to finish the push and exit 0.
#[test]
fn sigterm_during_the_push_ends_the_build_before_the_tag() {
    let proxy = FaultProxy::start(&env().registry);
    let repo = unique_repo("sigterm-push");
    let dest = format!("{}/{repo}:1", proxy.addr);
    let work = tempfile::tempdir().unwrap();
    let ctx = context(&format!("FROM {}\nRUN head -c 2000000 /dev/urandom > /data\n", env().busybox()));
    proxy.inject("PUT", &format!("/{repo}/blobs/uploads/"), HOLD, 1);
    let mut b = Running::start(ctx.path(), &["--destination", &dest, "--work-dir", work.path().to_str().unwrap()]);
    proxy.wait_applied(&format!("PUT /v2/{repo}/blobs/uploads/"), Duration::from_secs(60));
    let path = b.log.clone();
    let status = sigterm_and_wait(&mut b.child, || std::fs::read_to_string(&path).unwrap_or_default());
    let log = b.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("build aborted: SIGTERM received"), "{log}");
    assert!(!proxy.seen().iter().any(|r| r.starts_with(&format!("PUT /v2/{repo}/manifests/"))), "{:?}", proxy.seen());
    assert_no_tag(&dest.replacen(&proxy.addr, &env().registry, 1));
    assert_eq!(entries(work.path()), Vec::<String>::new(), "the build's roots are removed");
}

/// SIGTERM while `trowel warm` downloads ends it at once, aborted, its partial blob removed; an
/// image it had warmed before stays warmed.
#[test]
fn sigterm_during_warm_ends_it_and_removes_its_partial_blob() {
    let proxy = FaultProxy::start(&env().registry);
    let cache_dir = tempfile::tempdir().unwrap();
    let layer = common::skopeo_manifest(&env().busybox())["layers"][0]["digest"].as_str().unwrap().to_string();
    proxy.inject("GET", &layer, Fault::Stall { pause: Duration::from_secs(40) }, 1);
    let log = cache_dir.path().with_extension("log");
    let mut warm = trowel()
        .args(["warm", "--image", &format!("{}/busybox:1.35", proxy.addr), "--cache-dir"])
        .arg(cache_dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    proxy.wait_applied("Stall", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    let status = sigterm_and_wait(&mut warm, text);
    assert_eq!(status.code(), Some(1), "{}", text());
    assert!(text().contains("warm aborted: SIGTERM received"), "{}", text());
    assert_eq!(temporaries(cache_dir.path()), Vec::<String>::new());
    assert!(!cache_dir.path().join("blobs/sha256").join(layer.trim_start_matches("sha256:")).exists());
    let _ = std::fs::remove_file(&log);
}

/// SIGTERM while a RUN's big layer is written (its 150 MB read, tarred, compressed) gives the
/// write up: no layer is written or stored, the build fails as aborted, nothing is pushed. It used
/// to write the whole layer first and abort at the next step.
#[test]
fn sigterm_while_a_layer_is_written_gives_it_up() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context(&format!(
        "FROM {}\nRUN head -c 150000000 /dev/urandom > /big && echo wrote''-big\nRUN echo after > /after\n",
        env().busybox()
    ));
    let trace = ctx.path().join("trace.jsonl");
    let dest = format!("{}/{}:1", env().registry, unique_repo("sigterm-layer"));
    let args =
        ["--destination", &dest, "--work-dir", work.path().to_str().unwrap(), "--trace", trace.to_str().unwrap()];
    let mut b = Running::start(ctx.path(), &args);
    b.wait_for_log("wrote-big");
    let path = b.log.clone();
    let status = sigterm_and_wait(&mut b.child, || std::fs::read_to_string(&path).unwrap_or_default());
    let log = b.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("build aborted: SIGTERM received"), "{log}");
    let recorded = std::fs::read_to_string(&trace).unwrap();
    assert!(!recorded.contains("\"layer_written\""), "the layer was written after the signal:\n{log}");
    assert_eq!(entries(work.path()), Vec::<String>::new(), "the build's roots are removed");
    assert_no_tag(&dest);
}

/// A stop that comes after the first of two destinations was tagged does not leave the second
/// without its tag: the push goes on, says why, and the build ends as built.
#[test]
fn sigterm_after_the_first_destination_is_tagged_pushes_the_second_too() {
    let proxy = FaultProxy::start(&env().registry);
    let (one, two) = (unique_repo("sigterm-first"), unique_repo("sigterm-second"));
    let work = tempfile::tempdir().unwrap();
    let ctx = context(&format!("FROM {}\nRUN head -c 200000 /dev/urandom > /data\n", env().busybox()));
    // The second destination's first blob commit (its push's: the push check opens a session
    // at the start, which only the push sends to) is held for 3 s: the signal comes then.
    proxy.inject("PUT", &format!("/{two}/blobs/uploads/"), Fault::Hold { pause: Duration::from_secs(3) }, 1);
    let (d1, d2) = (format!("{}/{one}:1", env().registry), format!("{}/{two}:1", proxy.addr));
    let args = ["--destination", &d1, "--destination", &d2, "--work-dir", work.path().to_str().unwrap()];
    let mut b = Running::start(ctx.path(), &args);
    proxy.wait_applied(&format!("PUT /v2/{two}/blobs/uploads/"), Duration::from_secs(60));
    assert_eq!(tags(&format!("{}/{one}", env().registry)), ["1"], "the first destination is tagged first");
    assert_ok(&run(Command::new("kill").args(["-TERM", &b.child.id().to_string()])));
    let status = b.child.wait().unwrap();
    let log = b.log();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("pushed all the same: the stop came after an earlier destination was tagged"), "{log}");
    assert_eq!(tags(&format!("{}/{two}", env().registry)), ["1"]);
}
