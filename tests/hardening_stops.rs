//! A build stopped (SIGTERM) during the long file-system work of a COPY ends within a fraction of
//! a second, as one stopped during a pull or a push does (`hardening_crash.rs`): while it hashes
//! the context's files for the step's cache key, and while it copies them into the build root.
//! The same for a step's other long copies: the copy of the context a `RUN --mount=type=bind`
//! makes, the seeding of a cache mount from another stage, an ADD's unpack of a local archive
//! and its copy into the root (these are the step's errors: a stop there used to end the build
//! as the step's failure, not as aborted). And while a stage's planning waits for a copy-from
//! record of the cache repository (a `COPY --from` of a stage that was all hits). Each used to
//! run to its end first (the stop was looked at only at the next step), seconds or minutes for
//! a big context, which a pod's grace period may not give. Either way the build fails as
//! aborted, its roots are removed from the work dir, and nothing is pushed or cached.
//!
//! The contexts and work dirs are on the tests' scratch space (a tmpfs under `scripts/test.sh`):
//! a sparse file costs no memory there, and a partial root of many files is removed at once.

mod common;
mod faults;
mod hardening_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{assert_ok, env, run, trowel, unique_repo};
use faults::{Fault, FaultProxy};
use hardening_support::running::{Running, assert_no_tag, entries, mounts_below, stopped_as_aborted, tags};

/// How soon after SIGTERM a stopped build must be gone: far below what the work it was in
/// takes uncut (at least 8 s in both tests on a 2-core machine), with room for a busy one.
const BOUND: Duration = Duration::from_secs(3);

/// Waits until `pid` has a file or directory below `dir` open: the work under test has started.
#[track_caller]
fn wait_until_open(b: &mut Running, dir: &Path) {
    wait_until_open_where(b, &dir.display().to_string(), |t| t.starts_with(dir));
}

/// Waits until `pid` has a file or directory open whose path `wanted` accepts (`what` says
/// which in the failure): for work in a directory whose name the build makes up.
#[track_caller]
fn wait_until_open_where(b: &mut Running, what: &str, wanted: impl Fn(&Path) -> bool) {
    let fds = format!("/proc/{}/fd", b.child.id());
    let never = format!("{what} was never opened");
    b.wait_until(&never, Duration::from_secs(120), Duration::from_millis(5), |_| {
        std::fs::read_dir(&fds)
            .map(|d| d.flatten().any(|e| std::fs::read_link(e.path()).is_ok_and(|t| wanted(&t))))
            .unwrap_or(false)
    });
}

/// Signals `b` once it is under way and checks it ended as a stopped build must.
#[track_caller]
fn stop_and_check(mut b: Running, work: &Path, dest: &str) {
    stopped_as_aborted(&mut b, BOUND);
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

/// `dirs` thousand one-byte files, a thousand to a directory, below `dir`.
fn many_small_files(dir: &Path, dirs: usize) {
    for d in 0..dirs {
        let dir = dir.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            std::fs::write(dir.join(format!("f{f}")), b"x").unwrap();
        }
    }
}

/// SIGTERM while a `RUN --mount=type=bind` copies the context for its mount (`.dockerignore`
/// has patterns, so the mount sees a filtered copy; about 6 s uncut for 200,000 small files
/// here, so 300,000) ends the build between two files, as aborted rather than as a failed step.
#[test]
fn sigterm_while_a_run_mounts_copy_of_the_context_is_made_ends_the_build_at_once() {
    let scratch = tempfile::tempdir_in(common::scratch_dir()).unwrap();
    let (ctx, work) = (scratch.path().join("ctx"), scratch.path().join("work"));
    many_small_files(&ctx.join("many"), 300);
    std::fs::create_dir_all(&work).unwrap();
    // The build's own log is written into the context: the copy leaves it out.
    std::fs::write(ctx.join(".dockerignore"), "killed.log\n").unwrap();
    let df = format!("FROM {}\nRUN --mount=type=bind,target=/ctx true\n", env().busybox());
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("sigterm-mount-copy"));
    let mut b = Running::start(&ctx, &["--destination", &dest, "--work-dir", work.to_str().unwrap()]);
    // The copy's own directories: nothing else of the build writes below `context-view-*`.
    let work_abs = work.canonicalize().unwrap();
    wait_until_open_where(&mut b, "the context's copy", |t| {
        t.strip_prefix(&work_abs).is_ok_and(|r| {
            let r = r.to_string_lossy();
            r.contains("context-view-") && r.contains("/many/d")
        })
    });
    stop_and_check(b, &work, &dest);
}

/// SIGTERM while a cache mount is seeded from another stage's 200,000 files (its first use; the
/// copy takes about 7 s uncut here) ends the build between two files, and leaves no half-made
/// cache in the mount cache dir, which outlives the build.
#[test]
fn sigterm_while_a_cache_mount_is_seeded_ends_the_build_at_once() {
    let scratch = tempfile::tempdir_in(common::scratch_dir()).unwrap();
    let (ctx, work, caches) = (scratch.path().join("ctx"), scratch.path().join("work"), scratch.path().join("caches"));
    many_small_files(&ctx.join("many"), 200);
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&caches).unwrap();
    std::fs::write(ctx.join(".dockerignore"), "killed.log\n").unwrap();
    let df = format!(
        "FROM {b} AS build\nCOPY many /many\nFROM {b}\nRUN --mount=type=cache,target=/c,from=build,source=/many true\n",
        b = env().busybox()
    );
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("sigterm-cache-seed"));
    let cache_flag = format!("--mount-cache-dir={}", caches.display());
    let mut b = Running::start(&ctx, &["--destination", &dest, "--work-dir", work.to_str().unwrap(), &cache_flag]);
    // The seed is copied into `.new-*` in the cache's directory, then renamed.
    let caches_abs = caches.canonicalize().unwrap();
    wait_until_open_where(&mut b, "the cache's seed", |t| {
        t.strip_prefix(&caches_abs).is_ok_and(|r| r.to_string_lossy().contains("/.new-"))
    });
    stop_and_check(b, &work, &dest);
    let half_made: Vec<_> = walkdir::WalkDir::new(&caches)
        .max_depth(3)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".new-"))
        .map(|e| e.path().display().to_string())
        .collect();
    assert_eq!(half_made, Vec::<String>::new(), "a half-seeded cache was left");
}

/// A build that ADDs a local tar archive of 200,000 files to `/unpacked/` (the step takes about
/// 18 s uncut here: half the unpack into a scratch root, half the copy from it), started, in
/// `scratch`; with its work dir and destination.
fn start_add_of_many_files(scratch: &Path, name: &str) -> (Running, std::path::PathBuf, String) {
    let (ctx, work, files) = (scratch.join("ctx"), scratch.join("work"), scratch.join("files"));
    many_small_files(&files, 200);
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    assert_ok(&run(Command::new("tar").arg("-C").arg(&files).arg("-cf").arg(ctx.join("many.tar")).arg(".")));
    std::fs::remove_dir_all(&files).unwrap();
    let df = format!("FROM {}\nADD many.tar /unpacked/\n", env().busybox());
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo(name));
    let b = Running::start(&ctx, &["--destination", &dest, "--work-dir", work.to_str().unwrap()]);
    (b, work, dest)
}

/// SIGTERM while an ADD copies the files of a local archive from the root it unpacked it into
/// ends the build between two files.
#[test]
fn sigterm_while_an_add_copies_an_archive_into_the_root_ends_the_build_at_once() {
    let scratch = tempfile::tempdir_in(common::scratch_dir()).unwrap();
    let (mut b, work, dest) = start_add_of_many_files(scratch.path(), "sigterm-add-copy");
    // Past the unpack: the copy has a directory of the destination open.
    let work_abs = work.canonicalize().unwrap();
    wait_until_open_where(&mut b, "the archive's destination", |t| {
        t.starts_with(&work_abs) && t.to_string_lossy().contains("/unpacked/d")
    });
    stop_and_check(b, &work, &dest);
}

/// SIGTERM while an ADD unpacks a local archive into its scratch root: the unpack always
/// looked at the stop, but the step took its giving up for a failure of its own (an error
/// naming the archive, not the abort).
#[test]
fn sigterm_while_an_add_unpacks_an_archive_ends_the_build_as_aborted() {
    let scratch = tempfile::tempdir_in(common::scratch_dir()).unwrap();
    let (mut b, work, dest) = start_add_of_many_files(scratch.path(), "sigterm-add-unpack");
    let work_abs = work.canonicalize().unwrap();
    wait_until_open_where(&mut b, "the archive's scratch root", |t| {
        t.strip_prefix(&work_abs).is_ok_and(|r| r.to_string_lossy().contains("add-extract-"))
    });
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
