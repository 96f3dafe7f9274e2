//! A build stopped (SIGTERM) during the long file-system work of a COPY ends within a fraction of
//! a second, as one stopped during a pull or a push does (`hardening_crash.rs`): while it hashes
//! the context's files for the step's cache key, and while it copies them into the build root.
//! And while a stage's planning waits for a copy-from record of the cache repository (a
//! `COPY --from` of a stage that was all hits). Each used to run to its end first (the stop was looked at only at the next step), seconds
//! or minutes for a big context, which a pod's grace period may not give. Either way the build
//! fails as aborted, its roots are removed from the work dir, and nothing is pushed or cached.
//!
//! The contexts and work dirs are on the tests' scratch space (a tmpfs under `scripts/test.sh`):
//! a sparse file costs no memory there, and a partial root of many files is removed at once.

mod common;
mod faults;
mod hardening_support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{assert_ok, env, run, trowel, unique_repo};
use faults::{Fault, FaultProxy};
use hardening_support::running::{Running, assert_no_tag, entries, mounts_below, sigterm_and_wait_within, tags};

/// How soon after SIGTERM a stopped build must be gone: far below what the work it was in
/// takes uncut (at least 8 s in both tests on a 2-core machine), with room for a busy one.
const BOUND: Duration = Duration::from_secs(3);

/// Waits until `pid` has a file or directory below `dir` open: the work under test has started.
#[track_caller]
fn wait_until_open(b: &mut Running, dir: &Path) {
    let fds = format!("/proc/{}/fd", b.child.id());
    let t0 = Instant::now();
    loop {
        let open = std::fs::read_dir(&fds)
            .map(|d| d.flatten().any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(dir))))
            .unwrap_or(false);
        if open {
            return;
        }
        assert!(b.child.try_wait().unwrap().is_none(), "the build ended early:\n{}", b.log());
        assert!(t0.elapsed() < Duration::from_secs(60), "{} was never opened:\n{}", dir.display(), b.log());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Signals `b` once it is under way and checks it ended as a stopped build must.
#[track_caller]
fn stop_and_check(mut b: Running, work: &Path, dest: &str) {
    // Well inside the work: the files are open, the first chunks read.
    std::thread::sleep(Duration::from_millis(500));
    let path = b.log.clone();
    let t0 = Instant::now();
    let status = sigterm_and_wait_within(&mut b.child, || std::fs::read_to_string(&path).unwrap_or_default(), BOUND);
    let log = b.log();
    eprintln!("ended {:?} after SIGTERM", t0.elapsed());
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("build aborted: SIGTERM received"), "{log}");
    assert_eq!(mounts_below(work), Vec::<String>::new());
    assert_eq!(entries(work), Vec::<String>::new(), "the build's roots are removed");
    assert_no_tag(dest);
}

/// SIGTERM while a COPY's cache key hashes a 16 GiB context file (sparse: its holes read at
/// once, but SHA-256 over them takes about 15 s here) ends the build within a chunk of it; no
/// cache entry is written.
#[test]
fn sigterm_while_a_copys_key_is_hashed_ends_the_build_at_once() {
    let scratch = tempfile::tempdir_in(common::scratch_dir()).unwrap();
    let (ctx, work) = (scratch.path().join("ctx"), scratch.path().join("work"));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {}\nCOPY big /big\n", env().busybox())).unwrap();
    std::fs::File::create(ctx.join("big")).unwrap().set_len(16 << 30).unwrap();
    let repo = unique_repo("sigterm-hash");
    let (dest, cache_repo) = (format!("{}/{repo}:1", env().registry), format!("{}/{repo}/cache", env().registry));
    let args = ["--destination", &dest, "--cache", "--cache-repo", &cache_repo, "--work-dir", work.to_str().unwrap()];
    let mut b = Running::start(&ctx, &args);
    wait_until_open(&mut b, &ctx.join("big"));
    stop_and_check(b, &work, &dest);
    assert_eq!(tags(&cache_repo), Vec::<String>::new(), "a cache entry was written");
}

/// SIGTERM while a COPY copies 200,000 small files into the build root (about 10 s uncut here;
/// no cache, so no key is made first) ends the build between two of them.
#[test]
fn sigterm_while_a_copy_writes_the_root_ends_the_build_at_once() {
    let scratch = tempfile::tempdir_in(common::scratch_dir()).unwrap();
    let (ctx, work) = (scratch.path().join("ctx"), scratch.path().join("work"));
    for d in 0..200 {
        let dir = ctx.join(format!("many/d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            std::fs::write(dir.join(format!("f{f}")), b"x").unwrap();
        }
    }
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {}\nCOPY many /many\n", env().busybox())).unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("sigterm-copy"));
    let mut b = Running::start(&ctx, &["--destination", &dest, "--work-dir", work.to_str().unwrap()]);
    wait_until_open(&mut b, &ctx.join("many"));
    stop_and_check(b, &work, &dest);
}

/// SIGTERM while the planning of a `COPY --from` waits for its copy-from record (the builder
/// stage all hits, so the record names its files; the registry holds the answer for 40 s) ends
/// the build at once. The wait went through the runtime outside the build's stop.
#[test]
fn sigterm_while_a_copy_from_record_is_awaited_ends_the_build_at_once() {
    let proxy = FaultProxy::start(&env().registry);
    let repo = unique_repo("sigterm-record");
    let cache_repo = format!("{}/{repo}/cache", proxy.addr);
    let scratch = tempfile::tempdir_in(common::scratch_dir()).unwrap();
    let ctx = scratch.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let df = format!(
        "FROM {b} AS build\nRUN mkdir -p /out && echo same > /out/app\nFROM {b}\nCOPY --from=build /out /app\n",
        b = env().busybox()
    );
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    // Every build in a fresh work dir with no cache dir: the first writes the record.
    let first = scratch.path().join("first");
    let o = run(trowel()
        .args(["build", "--no-push", "--cache", "--cache-repo", &cache_repo, "--work-dir"])
        .arg(&first)
        .arg("--context")
        .arg(&ctx));
    assert_ok(&o);
    assert!(
        tags(&format!("{}/{repo}/cache", env().registry)).iter().any(|t| t.starts_with("copy-from-")),
        "no record was written"
    );

    proxy.inject(
        "GET",
        &format!("/{repo}/cache/manifests/copy-from-"),
        Fault::Hold { pause: Duration::from_secs(40) },
        1,
    );
    let work = scratch.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let dest = format!("{}/{repo}:1", env().registry);
    let args = ["--destination", &dest, "--cache", "--cache-repo", &cache_repo, "--work-dir", work.to_str().unwrap()];
    let b = Running::start(&ctx, &args);
    proxy.wait_applied(&format!("GET /v2/{repo}/cache/manifests/copy-from-"), Duration::from_secs(60));
    stop_and_check(b, &work, &dest);
}
