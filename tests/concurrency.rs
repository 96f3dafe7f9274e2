//! Many builds at once on one machine, sharing one cache dir, one cache repository and one
//! destination tag (issue 20; what makes each meeting point safe is docs/hardening.md, "Many
//! builds at once"):
//! - eight builds at once, with two `trowel warm`s filling the same cache dir, then sixteen (the
//!   eight again and eight new ones): some Dockerfiles identical, some differing in one build
//!   arg, some in one copied file. Every build exits 0; each build's own digest, pulled with
//!   skopeo and unpacked with umoci, holds what *its* inputs must produce (no stale hit);
//!   identical inputs give one digest, and the second round hits the cache for every step of
//!   the first round's inputs and gives the first round's digests; a
//!   `sharing=locked` cache mount updated by a read-sleep-write in every build lost no update;
//!   the shared tag names one of the pushed digests, and every blob of every pushed image and
//!   cache entry is in the registry; eight builds more beside `trowel cache prune --max-size 0`
//!   run over and over give the same images; `trowel cache check` finds every entry intact;
//! - a build SIGKILLed while it unpacks a layer into the unpacked-layer store (holding the
//!   entry's use, making and `tmp/` directory locks), and one SIGKILLed while it holds a
//!   `sharing=locked` cache mount, each with another build waiting for it: the waiting build
//!   proceeds at once and is correct, and `cache check` passes.
//!
//! Small busybox Dockerfiles, chroot isolation; about a minute on a loaded 2-core machine.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

/// The Dockerfile every build of the shared-cache test uses: a build arg in a RUN, a copied
/// file, a RUN that reads both (so a stale hit of any step shows in `/combined`), and a locked
/// cache mount updated by a read-sleep-write that would lose updates without the lock.
fn dockerfile() -> String {
    format!(
        "FROM {}\n\
         ARG FLAVOUR=plain\n\
         RUN echo \"$FLAVOUR\" > /flavour\n\
         COPY data.txt /data.txt\n\
         RUN --mount=type=cache,target=/counter,sharing=locked \
         n=$(cat /counter/n 2>/dev/null || echo 0); sleep 0.2; echo $((n+1)) > /counter/n; \
         echo $((n+1)) >> /counter/seen; cat /flavour /data.txt > /combined\n",
        env().busybox()
    )
}

/// One build's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Input {
    flavour: Option<&'static str>,
    data: &'static str,
}

impl Input {
    fn flavour(&self) -> &'static str {
        self.flavour.unwrap_or("plain")
    }
}

/// Eight builds: three identical, two differing from them in the build arg only, two in the
/// copied file only, one in both.
const ROUND: [Input; 8] = [
    Input { flavour: None, data: "alpha\n" },
    Input { flavour: None, data: "alpha\n" },
    Input { flavour: None, data: "alpha\n" },
    Input { flavour: Some("beta"), data: "alpha\n" },
    Input { flavour: Some("beta"), data: "alpha\n" },
    Input { flavour: None, data: "gamma gamma\n" },
    Input { flavour: None, data: "gamma gamma\n" },
    Input { flavour: Some("delta"), data: "epsilon\n" },
];

/// Eight more for round two, new to the cache: two of each of four inputs, each differing from
/// some input of round one in the build arg only or the copied file only.
const FRESH: [Input; 8] = [
    Input { flavour: None, data: "zeta\n" },
    Input { flavour: None, data: "zeta\n" },
    Input { flavour: Some("beta"), data: "zeta\n" },
    Input { flavour: Some("beta"), data: "zeta\n" },
    Input { flavour: Some("eta"), data: "alpha\n" },
    Input { flavour: Some("eta"), data: "alpha\n" },
    Input { flavour: Some("theta"), data: "iota\n" },
    Input { flavour: Some("theta"), data: "iota\n" },
];

/// Pulls `<repo>@<digest>` with skopeo, unpacks it with umoci and checks it is what `input`
/// makes.
fn check_image(repo: &str, input: &Input, digest: &str) {
    let image = pull_and_unpack(&format!("{repo}@{digest}"));
    let root = image.rootfs();
    let flavour = format!("{}\n", input.flavour());
    assert_eq!(Tree::content(&root, "/flavour"), flavour, "{input:?}");
    assert_eq!(Tree::content(&root, "/data.txt"), input.data, "{input:?}");
    assert_eq!(Tree::content(&root, "/combined"), format!("{flavour}{}", input.data), "{input:?}");
    assert!(image.tree().has("/bin/busybox"), "{input:?}: no base layer");
    assert!(!image.tree().has("/counter/n"), "{input:?}: the cache mount's files are in the image");
}

/// The `/counter` cache mount's count, checked: every run of its step read the last one's
/// value (1, 2, … n in `seen`), which `sharing=locked` guarantees.
fn counted(counter: &Path) -> usize {
    let n: usize = std::fs::read_to_string(counter.join("n")).unwrap().trim().parse().unwrap();
    let seen = std::fs::read_to_string(counter.join("seen")).unwrap();
    let expected: String = (1..=n).map(|i| format!("{i}\n")).collect();
    assert_eq!(seen, expected, "sharing=locked let two builds in at once");
    n
}

/// What the builds share.
struct Shared {
    cache_dir: tempfile::TempDir,
    cache_repo: String,
    /// `host/name:tag`, the same for every build.
    dest: String,
}

/// One build running in the background, its output in a file.
struct Build {
    input: Input,
    ctx: tempfile::TempDir,
    child: Child,
}

impl Build {
    fn start(shared: &Shared, input: Input) -> Build {
        let ctx = tempfile::Builder::new().prefix("trowel-concur-").tempdir().unwrap();
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile()).unwrap();
        std::fs::write(ctx.path().join("data.txt"), input.data).unwrap();
        let log = std::fs::File::create(ctx.path().join("log")).unwrap();
        let mut cmd = trowel();
        cmd.args(["build", "--reproducible", "--isolation", "chroot", "--cache", "--insecure", "--insecure-pull"])
            .arg("--context")
            .arg(ctx.path())
            .arg("--cache-dir")
            .arg(shared.cache_dir.path())
            .args(["--cache-repo", &shared.cache_repo, "--destination", &shared.dest])
            .arg("--digest-file")
            .arg(ctx.path().join("digest"))
            .arg("--image-name-with-digest-file")
            .arg(ctx.path().join("name-with-digest"));
        if let Some(f) = input.flavour {
            cmd.args(["--build-arg", &format!("FLAVOUR={f}")]);
        }
        let child = cmd.stdout(log.try_clone().unwrap()).stderr(log).stdin(Stdio::null()).spawn().unwrap();
        Build { input, ctx, child }
    }

    /// Waits for it; returns its digest and log.
    fn finish(mut self) -> (Input, String, String) {
        let status = self.child.wait().unwrap();
        let log = std::fs::read_to_string(self.ctx.path().join("log")).unwrap_or_default();
        assert!(status.success(), "build of {:?} failed ({status}):\n{log}", self.input);
        let digest = std::fs::read_to_string(self.ctx.path().join("digest")).unwrap().trim().to_string();
        let named = std::fs::read_to_string(self.ctx.path().join("name-with-digest")).unwrap();
        assert!(named.trim().ends_with(&format!("@{digest}")), "{named} does not name {digest}");
        (self.input, digest, log)
    }
}

fn warm(cache_dir: &Path, force: bool) -> Child {
    let mut c = trowel();
    c.args(["warm", "--insecure-pull", "-i", &env().busybox(), "-i", &format!("{}/busybox:latest", env().registry)])
        .arg("--cache-dir")
        .arg(cache_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if force {
        c.arg("--force");
    }
    c.spawn().unwrap()
}

/// Runs `inputs` at once (with `warms` alongside); each build's input, digest and log.
fn round(shared: &Shared, inputs: &[Input], warms: bool) -> Vec<(Input, String, String)> {
    let warmers: Vec<Child> =
        if warms { vec![warm(shared.cache_dir.path(), false), warm(shared.cache_dir.path(), true)] } else { vec![] };
    let builds: Vec<Build> = inputs.iter().map(|i| Build::start(shared, *i)).collect();
    let done: Vec<_> = builds.into_iter().map(Build::finish).collect();
    for w in warmers {
        let o = w.wait_with_output().unwrap();
        assert!(o.status.success(), "warm failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    done
}

/// `HEAD /v2/<repo>/blobs/<digest>` on the plain test registry: whether it has the blob.
fn blob_present(repo_path: &str, digest: &str) -> bool {
    let (host, repo) = repo_path.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "HEAD /v2/{repo}/blobs/{digest} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer.starts_with("HTTP/1.1 200")
}

/// The digests of every blob a manifest names.
fn blobs_of(manifest: &serde_json::Value) -> Vec<String> {
    let mut out = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for l in manifest["layers"].as_array().into_iter().flatten() {
        out.push(l["digest"].as_str().unwrap().to_string());
    }
    out
}

/// The one instance of the cache mount `/counter` under the shared cache dir.
fn counter_dir(cache_dir: &Path) -> PathBuf {
    let caches: Vec<PathBuf> = std::fs::read_dir(cache_dir.join("mounts"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("0").is_dir())
        .collect();
    assert_eq!(caches.len(), 1, "one cache mount, {caches:?}");
    caches[0].join("0")
}

#[test]
fn eight_then_sixteen_builds_share_one_cache_dir_cache_repo_and_tag() {
    let shared = Shared {
        cache_dir: tempfile::Builder::new().prefix("trowel-concur-cache-").tempdir_in("/var/tmp").unwrap(),
        cache_repo: format!("{}/{}", env().registry, unique_repo("concur-cache")),
        dest: format!("{}/{}:shared", env().registry, unique_repo("concur-dest")),
    };

    // Round one: eight builds and two warms at once, on an empty cache dir and repository.
    let first = round(&shared, &ROUND, true);
    let mut digest_of: BTreeMap<Input, String> = BTreeMap::new();
    for (input, digest, log) in &first {
        let known = digest_of.entry(*input).or_insert_with(|| digest.clone());
        assert_eq!(known, digest, "identical inputs {input:?} gave two images (--reproducible):\n{log}");
    }
    let distinct: BTreeSet<&String> = digest_of.values().collect();
    assert_eq!(distinct.len(), digest_of.len(), "different inputs gave the same image: {digest_of:?}");

    // Each image, pulled and unpacked by independent tools, is what its own inputs make.
    let dest_repo = shared.dest.rsplit_once(':').unwrap().0.to_string();
    for (input, digest) in &digest_of {
        check_image(&dest_repo, input, digest);
    }
    let counter = counter_dir(shared.cache_dir.path());
    let n = counted(&counter);
    assert!(n >= digest_of.len(), "the step ran {n} times for {} different inputs", digest_of.len());

    // Round two: sixteen builds, round one's eight again (every step a hit, the same images)
    // and eight new to the cache, which get images of their own.
    let inputs: Vec<Input> = ROUND.iter().chain(FRESH.iter()).copied().collect();
    let mut fresh: BTreeMap<Input, String> = BTreeMap::new();
    for (input, digest, log) in round(&shared, &inputs, false) {
        if let Some(known) = digest_of.get(&input) {
            assert_eq!(&digest, known, "{input:?} changed on a cache hit:\n{log}");
            assert!(log.contains(" 0 miss(es)"), "{input:?} missed the cache in round two:\n{log}");
        } else {
            let known = fresh.entry(input).or_insert_with(|| digest.clone());
            assert_eq!(known, &digest, "identical inputs {input:?} gave two images (--reproducible):\n{log}");
        }
    }
    assert_eq!(fresh.len(), 4, "{fresh:?}");
    for (input, digest) in &fresh {
        check_image(&dest_repo, input, digest);
    }
    let n2 = counted(&counter);
    assert!(n2 >= n + fresh.len(), "the step ran {} times for {} new inputs", n2 - n, fresh.len());
    digest_of.extend(fresh);
    let distinct: BTreeSet<&String> = digest_of.values().collect();
    assert_eq!(distinct.len(), digest_of.len(), "different inputs gave the same image: {digest_of:?}");

    // The shared tag: the last writer's image, complete.
    let tagged = skopeo_manifest(&shared.dest);
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{}", shared.dest)));
    assert_ok(&raw);
    let tag_digest = format!("sha256:{}", sha256_hex(&raw.stdout));
    assert!(distinct.contains(&tag_digest), "the tag names {tag_digest}, which no build pushed: {digest_of:?}");
    for b in blobs_of(&tagged) {
        assert!(blob_present(&dest_repo, &b), "the tagged image's blob {b} is missing");
    }
    for digest in distinct {
        let m = skopeo_manifest(&format!("{dest_repo}@{digest}"));
        for b in blobs_of(&m) {
            assert!(blob_present(&dest_repo, &b), "blob {b} of {digest} is missing");
        }
    }
    // Every cache entry (and layer reference record) names blobs the registry has.
    let entries = tagged_manifests(&shared.cache_repo);
    assert!(entries.len() >= 4, "the cache repository has {} tags", entries.len());
    for (tag, m) in entries {
        for b in blobs_of(&m) {
            assert!(blob_present(&shared.cache_repo, &b), "cache tag {tag} names the missing blob {b}");
        }
    }

    // Round three: the eight builds again while `trowel cache prune --max-size 0` removes
    // everything of the cache dir no build holds, over and over: every build still gives its
    // image (what went is fetched, unpacked or copied again), and nothing is left corrupt.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pruner = {
        let (stop, dir) = (stop.clone(), shared.cache_dir.path().to_path_buf());
        std::thread::spawn(move || {
            let mut prunes = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let out = run(trowel().args(["cache", "prune", "--max-size", "0", "--cache-dir"]).arg(&dir));
                assert_ok(&out);
                prunes += 1;
            }
            prunes
        })
    };
    let third = round(&shared, &ROUND, false);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let prunes = pruner.join().expect("a prune failed beside the builds");
    assert!(prunes >= 2, "only {prunes} prune(s) ran beside the builds");
    eprintln!("round three: {} builds beside {prunes} prunes", third.len());
    for (input, digest, log) in third {
        assert_eq!(&digest, &digest_of[&input], "{input:?} changed beside a prune:\n{log}");
    }

    let check = run(trowel().args(["cache", "check", "--cache-dir"]).arg(shared.cache_dir.path()));
    assert_ok(&check);
    assert!(stdout(&check).contains("every entry intact"), "{}", stdout(&check));
}

/// A base whose top layer has thousands of files: unpacking it into the store takes long
/// enough to be killed in the middle. Pushed once per test binary.
fn many_files_base() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let ctx = tempfile::tempdir().unwrap();
        let df = format!(
            "FROM {}\nRUN mkdir /many && cd /many && i=0; while [ $i -lt 6000 ]; do echo $i > f$i; i=$((i+1)); done\n",
            env().busybox()
        );
        std::fs::write(ctx.path().join("Dockerfile"), df).unwrap();
        let dest = format!("{}/{}:1", env().registry, unique_repo("concur-many"));
        assert_ok(&run(trowel()
            .args(["build", "--isolation", "chroot", "--context"])
            .arg(ctx.path())
            .args(["--destination", &dest])));
        dest
    })
}

/// A build in the background, killed if the test ends before it does (a failed assertion must
/// not leave a stopped build holding its locks and mounts).
struct Bg(Child);

impl std::ops::Deref for Bg {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Bg {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_build(ctx: &Path, cache_dir: &Path, extra: &[&str]) -> Bg {
    let log = std::fs::File::create(ctx.join("log")).unwrap();
    let child = trowel()
        .args(["build", "--isolation", "chroot", "--no-push", "--context"])
        .arg(ctx)
        .arg("--cache-dir")
        .arg(cache_dir)
        .arg("--tar-path")
        .arg(ctx.join("image.tar"))
        .args(extra)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Bg(child)
}

fn log_of(ctx: &Path) -> String {
    std::fs::read_to_string(ctx.join("log")).unwrap_or_default()
}

/// Waits until `cond` holds, failing after `limit` or when `child` ends first.
#[track_caller]
fn wait_until(child: &mut Child, ctx: &Path, limit: Duration, what: &str, cond: &dyn Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(child.try_wait().unwrap().is_none(), "the build ended before {what}:\n{}", log_of(ctx));
        assert!(t0.elapsed() < limit, "{what} never happened:\n{}", log_of(ctx));
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for `child` for at most `limit`; its log.
#[track_caller]
fn finish_within(mut child: Bg, ctx: &Path, limit: Duration) -> String {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "build failed ({status}):\n{}", log_of(ctx));
            return log_of(ctx);
        }
        if t0.elapsed() > limit {
            // Killed when dropped.
            panic!("the build was still running after {limit:?} (blocked?):\n{}", log_of(ctx));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cache_check(cache_dir: &Path) -> String {
    let out = run(trowel().args(["cache", "check", "--cache-dir"]).arg(cache_dir));
    assert_ok(&out);
    assert!(stdout(&out).contains("every entry intact"), "{}", stdout(&out));
    stdout(&out)
}

#[test]
fn a_build_killed_while_unpacking_into_the_store_blocks_nobody() {
    let base = many_files_base();
    let cache = tempfile::Builder::new().prefix("trowel-concur-kill-").tempdir_in("/var/tmp").unwrap();
    let c = cache.path();
    let df = format!("FROM {base}\nRUN ls /many | wc -l > /count\n");
    let (holder, next) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for ctx in [&holder, &next] {
        std::fs::write(ctx.path().join("Dockerfile"), &df).unwrap();
    }
    let entries = |d: &str| -> usize { std::fs::read_dir(c.join(d)).map(|rd| rd.count()).unwrap_or(0) };

    // The first build is making the top layer's entry in `unpacked/tmp/` (files are there, the
    // entry is not) when a second build comes for the same entries and waits for it.
    let mut killed = start_build(holder.path(), c, &[]);
    let making = || -> bool {
        let Ok(rd) = std::fs::read_dir(c.join("unpacked/tmp")) else { return false };
        rd.flatten().any(|e| std::fs::read_dir(e.path().join("upper/many")).is_ok_and(|d| d.count() > 100))
    };
    wait_until(&mut killed, holder.path(), Duration::from_secs(120), "the unpack into the store", &making);
    // Frozen there, so the second build finds it making the entries however fast this machine
    // unpacks; SIGKILL ends a stopped process all the same.
    let pid = nix::unistd::Pid::from_raw(killed.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let mut waiting = start_build(next.path(), c, &[]);
    let waits = || log_of(next.path()).contains("waiting for another build unpacking it");
    wait_until(&mut waiting, next.path(), Duration::from_secs(120), "the wait for the entry", &waits);
    assert!(killed.try_wait().unwrap().is_none(), "the first build ended:\n{}", log_of(holder.path()));
    // Entries are renamed into place once the root is mounted: none can be there yet.
    assert_eq!(entries("unpacked/sha256"), 0, "the kill comes too late: the entries were made");
    killed.kill().unwrap();
    killed.wait().unwrap();

    // The waiting build goes on at once: it makes the entries itself and is right.
    finish_within(waiting, next.path(), Duration::from_secs(180));
    assert_eq!(entries("unpacked/sha256"), 2, "the next build did not make the entries");
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    assert_ok(&run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("docker-archive:{}", next.path().join("image.tar").display()))
        .arg(format!("oci:{}:img", layout.display()))));
    let image = unpack_layout(dir, &layout, "img");
    assert_eq!(Tree::content(&image.rootfs(), "/count"), "6000\n");
    assert_eq!(image.tree().paths_under("/many/").len(), 6000);

    // What the killed build left is a leftover, not corruption; the check removes it.
    let found = cache_check(c);
    assert!(found.contains("left by a killed build"), "{found}");
    assert_eq!(entries("unpacked/tmp"), 0, "the check left the half-made entries");
    assert_eq!(entries("unpacked/making"), 0, "a making lock stayed");
    let again = cache_check(c);
    assert!(!again.contains("left by"), "{again}");
}

#[test]
fn a_build_killed_holding_a_locked_cache_mount_blocks_nobody() {
    let cache = tempfile::Builder::new().prefix("trowel-concur-mount-").tempdir_in("/var/tmp").unwrap();
    let c = cache.path();
    let mount = "--mount=type=cache,id=shared-state,target=/state,sharing=locked";
    let holder = tempfile::tempdir().unwrap();
    std::fs::write(
        holder.path().join("Dockerfile"),
        format!("FROM {}\nRUN {mount} echo half > /state/written && sleep 600\n", env().busybox()),
    )
    .unwrap();
    let waiter = tempfile::tempdir().unwrap();
    std::fs::write(
        waiter.path().join("Dockerfile"),
        format!("FROM {}\nRUN {mount} cat /state/written > /found && echo next > /state/written\n", env().busybox()),
    )
    .unwrap();

    let mut killed = start_build(holder.path(), c, &[]);
    let written = || -> bool {
        std::fs::read_dir(c.join("mounts")).is_ok_and(|rd| rd.flatten().any(|e| e.path().join("0/written").is_file()))
    };
    wait_until(&mut killed, holder.path(), Duration::from_secs(120), "the locked RUN", &written);
    // A second build comes for the cache and waits for the holder.
    let mut waiting = start_build(waiter.path(), c, &[]);
    let waits = || log_of(waiter.path()).contains("waiting for another build using it");
    wait_until(&mut waiting, waiter.path(), Duration::from_secs(120), "the wait for the lock", &waits);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let log = finish_within(waiting, waiter.path(), Duration::from_secs(120));
    assert!(log.contains("waited"), "{log}");

    // It saw what the killed build had written (a cache mount is not transactional, as in
    // BuildKit), and its own write is there for the next build.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    assert_ok(&run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("docker-archive:{}", waiter.path().join("image.tar").display()))
        .arg(format!("oci:{}:img", layout.display()))));
    let image = unpack_layout(dir, &layout, "img");
    assert_eq!(Tree::content(&image.rootfs(), "/found"), "half\n");
    // No process of the killed build still holds the lock: a third build takes it at once.
    let third = tempfile::tempdir().unwrap();
    std::fs::write(
        third.path().join("Dockerfile"),
        format!("FROM {}\nRUN {mount} grep next /state/written\n", env().busybox()),
    )
    .unwrap();
    let log3 = finish_within(start_build(third.path(), c, &[]), third.path(), Duration::from_secs(120));
    assert!(!log3.contains("waiting for another build"), "{log3}");
    cache_check(c);
}
