//! `trowel cache prune` and `trowel cache check` on cache dirs filled by real builds and warms
//! (busybox from the test registry, chroot isolation): by age and by size what remains is
//! exactly what was used most recently, `--dry-run` removes nothing, an unpacked layer a running
//! build has mounted is never removed (and the build succeeds), a prune killed with SIGKILL in
//! the middle of deleting leaves whole entries only (the next build is correct and `cache
//! check` finds nothing corrupt), `cache check` finds and removes a corrupt blob and entry, and
//! a cache mount unused for long goes and is made again, empty, by the next build that needs it;
//! `--cache-dir-max-size` prunes at the end of a build, and nothing without it.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use common::*;

/// Two bases pushed once per test binary: busybox plus one layer each, so a cache dir gets
/// three unpacked entries (busybox's layer, and each base's layer over it).
fn bases() -> &'static (String, String) {
    static BASES: OnceLock<(String, String)> = OnceLock::new();
    BASES.get_or_init(|| {
        let make = |name: &str, file: &str| {
            let df = format!("FROM {}\nRUN head -c 300000 /dev/urandom > /{file}\n", env().busybox());
            let dest = format!("{}/{}:1", env().registry, unique_repo(name));
            let ctx = context(&df);
            let out = run(trowel()
                .args(["build", "--isolation", "chroot", "--context"])
                .arg(ctx.path())
                .args(["--destination", &dest]));
            assert_ok(&out);
            dest
        };
        (make("prune-base-a", "a"), make("prune-base-b", "b"))
    })
}

fn context(dockerfile: &str) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(ctx.path().join("file.txt"), "from the context\n").unwrap();
    ctx
}

fn cache_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("trowel-prune-cache-").tempdir_in("/var/tmp").unwrap()
}

/// A build with `--cache-dir` (its roots mounted from the unpacked-layer store); `extra` adds
/// flags. Returns its output and its image digest.
fn build(cache: &Path, dockerfile: &str, extra: &[&str]) -> (Output, String) {
    let ctx = context(dockerfile);
    let digest = ctx.path().join("digest");
    let out = run(trowel()
        .args(["build", "--reproducible", "--isolation", "chroot", "--no-push", "--context"])
        .arg(ctx.path())
        .arg("--cache-dir")
        .arg(cache)
        .arg("--digest-file")
        .arg(&digest)
        .arg("--tar-path")
        .arg(ctx.path().join("image.tar"))
        .args(extra));
    assert_ok(&out);
    let d = std::fs::read_to_string(&digest).unwrap_or_default().trim().to_string();
    (out, d)
}

fn cache_cmd(args: &[&str], cache: &Path) -> Output {
    run(trowel().arg("cache").args(args).arg("--cache-dir").arg(cache))
}

/// The chain IDs of an image's layers (bottom first): its unpacked-layer store entries.
fn chain_ids(reference: &str) -> Vec<String> {
    let cfg = skopeo_config(reference);
    let diff_ids: Vec<String> =
        cfg["rootfs"]["diff_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect();
    let mut out: Vec<String> = Vec::new();
    for d in diff_ids {
        let next = match out.last() {
            None => d,
            Some(below) => format!("sha256:{}", sha256_hex(format!("{below} {d}").as_bytes())),
        };
        out.push(next);
    }
    out.into_iter().map(|c| c.trim_start_matches("sha256:").to_string()).collect()
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Every file under `dir` with its size: what "nothing was removed" compares.
fn listing(dir: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| !e.path().starts_with(dir.join(".trash")))
        .map(|e| e.path().strip_prefix(dir).unwrap().display().to_string())
        .filter(|p| !p.ends_with(".gc.lock"))
        .collect()
}

/// Sets the times of everything under `dir` to `age` ago: every entry last used then.
fn age_everything(dir: &Path, age: Duration) {
    let t = SystemTime::now() - age;
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        let f = std::fs::File::options().write(true).open(e.path()).or_else(|_| std::fs::File::open(e.path()));
        if let Ok(f) = f {
            f.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t)).unwrap();
        }
    }
}

fn set_last_use(cache: &Path, chain: &str, ago: Duration) {
    let t = SystemTime::now() - ago;
    let f = std::fs::File::options().write(true).open(cache.join("unpacked/uses").join(chain)).unwrap();
    f.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t)).unwrap();
}

/// Disk usage as `du` counts it (allocated blocks, hard links once).
fn du(p: &Path) -> u64 {
    let mut seen = BTreeSet::new();
    walkdir::WalkDir::new(p)
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::symlink_metadata(e.path()).ok())
        .filter(|m| m.is_dir() || m.nlink() == 1 || seen.insert((m.dev(), m.ino())))
        .map(|m| m.blocks() * 512)
        .sum()
}

const RUN_ON: &str = "FROM BASE\nRUN echo built > /built\n";

#[test]
fn by_age_only_what_the_last_build_used_remains_and_dry_run_removes_nothing() {
    let (a, _) = bases();
    let cache = cache_dir();
    let c = cache.path();
    let cache_repo = format!("{}/{}", env().registry, unique_repo("prune-cache"));
    // A warmed base image, a local COPY layer, context digests, and unpacked layers.
    assert_ok(&run(trowel().args(["warm", "-i", &env().busybox(), "--insecure-pull", "--cache-dir"]).arg(c)));
    let copy = format!("FROM {a}\nCOPY file.txt /f\nRUN cat /f\n");
    build(c, &copy, &["--cache", "--cache-repo", &cache_repo, "--insecure", "--insecure-pull"]);
    let busybox_chain = chain_ids(&env().busybox())[0].clone();
    assert!(names(&c.join("unpacked/sha256")).len() == 2, "{:?}", names(&c.join("unpacked/sha256")));
    assert!(!names(&c.join("refs")).is_empty() && !names(&c.join("layers")).is_empty());
    assert!(!names(&c.join("blobs/sha256")).is_empty());

    // Everything was last used ten days ago; then a build on busybox alone uses one entry.
    age_everything(c, Duration::from_secs(10 * 86_400));
    build(c, &RUN_ON.replace("BASE", &env().busybox()), &[]);

    let before = listing(c);
    let dry = cache_cmd(&["prune", "--max-age", "24h", "--dry-run"], c);
    assert_ok(&dry);
    let said = stdout(&dry);
    assert!(said.contains("would remove unpacked layer") && said.contains("would remove base image"), "{said}");
    assert!(said.contains("would remove local layer") && said.contains("would remove blob"), "{said}");
    assert!(!said.contains(&busybox_chain), "the entry just used would go:\n{said}");
    assert_eq!(listing(c), before, "--dry-run removed something");

    let out = cache_cmd(&["prune", "--max-age", "24h"], c);
    assert_ok(&out);
    assert_eq!(names(&c.join("unpacked/sha256")), BTreeSet::from([busybox_chain.clone()]));
    for gone in ["refs", "layers", "blobs/sha256", "context-digests"] {
        assert!(
            names(&c.join(gone)).iter().all(|n| n.starts_with('.')),
            "{gone} not emptied: {:?}",
            names(&c.join(gone))
        );
    }
    assert!(names(&c.join(".trash")).is_empty());
    let check = cache_cmd(&["check"], c);
    assert_ok(&check);
    assert!(stdout(&check).contains("every entry intact"), "{}", stdout(&check));
    // The pruned cache dir serves the next builds.
    build(c, &copy, &["--cache", "--cache-repo", &cache_repo, "--insecure", "--insecure-pull"]);
}

#[test]
fn by_size_the_least_recently_used_go_first() {
    let (a, b) = bases();
    let cache = cache_dir();
    let c = cache.path();
    build(c, &RUN_ON.replace("BASE", a), &[]);
    build(c, &RUN_ON.replace("BASE", b), &[]);
    let (ca, cb) = (chain_ids(a), chain_ids(b));
    assert_eq!(ca[0], cb[0]);
    let entry = |chain: &str| c.join("unpacked/sha256").join(chain);
    assert_eq!(names(&c.join("unpacked/sha256")).len(), 3);
    // Each build kept its root's index under its top entry, and it goes with the entry. An
    // index whose entry is gone already (a prune raced its rename) is a leftover.
    let indexes = c.join("unpacked/indexes");
    assert!(names(&indexes).contains(&ca[1]), "{:?}", names(&indexes));
    std::fs::write(indexes.join("ab".repeat(32)), b"TRIX").unwrap();
    // Last used: A's layer longest ago, then busybox's, then B's.
    set_last_use(c, &ca[1], Duration::from_secs(3 * 3600));
    set_last_use(c, &ca[0], Duration::from_secs(2 * 3600));
    set_last_use(c, &cb[1], Duration::from_secs(3600));
    let (sa, s0, sb) = (du(&entry(&ca[1])), du(&entry(&ca[0])), du(&entry(&cb[1])));
    let others = du(&c.join("context-digests"));

    let out = cache_cmd(&["prune", "--max-size", &(s0 + sb + others).to_string()], c);
    assert_ok(&out);
    assert_eq!(names(&c.join("unpacked/sha256")), BTreeSet::from([ca[0].clone(), cb[1].clone()]), "{}", stdout(&out));
    let out = cache_cmd(&["prune", "--max-size", &(sb + others).to_string()], c);
    assert_ok(&out);
    assert_eq!(names(&c.join("unpacked/sha256")), BTreeSet::from([cb[1].clone()]), "{}", stdout(&out));
    assert!(sa > 0 && !names(&c.join("unpacked/uses")).contains(&ca[1]), "the removed entry's use lock stays");
    assert!(names(&indexes).is_subset(&names(&c.join("unpacked/sha256"))), "an index outlived its entry");
    // What is left still serves: B's build mounts busybox's layer again (made anew).
    let (out, _) = build(c, &RUN_ON.replace("BASE", b), &[]);
    assert!(stderr(&out).contains("1 there already") || stdout(&out).contains("1 there already"), "{}", stderr(&out));
    assert_ok(&cache_cmd(&["check"], c));
}

#[test]
fn an_entry_a_running_build_has_mounted_is_kept_and_the_build_succeeds() {
    let (a, _) = bases();
    let cache = cache_dir();
    let c = cache.path();
    let slow = format!("FROM {a}\nRUN sleep 6 && cat /a | wc -c > /size\n");
    let (_, expected) = build(c, &slow, &[]);
    let chains = chain_ids(a);

    let ctx = context(&slow);
    let digest = ctx.path().join("digest");
    let child = Command::new(env!("CARGO_BIN_EXE_trowel"))
        .args(["build", "--reproducible", "--isolation", "chroot", "--no-push", "--context"])
        .arg(ctx.path())
        .arg("--cache-dir")
        .arg(c)
        .arg("--digest-file")
        .arg(&digest)
        .arg("--tar-path")
        .arg(ctx.path().join("image.tar"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the build holds its entries' use locks (before it mounts them), prune everything.
    let held = |chain: &str| {
        let f = std::fs::File::open(c.join("unpacked/uses").join(chain));
        f.is_ok_and(|f| rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err())
    };
    let t0 = std::time::Instant::now();
    while !chains.iter().all(|ch| held(ch)) {
        assert!(t0.elapsed() < Duration::from_secs(60), "the build never took its entries");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = cache_cmd(&["prune", "--max-size", "0"], c);
    assert_ok(&out);
    let said = stdout(&out);
    assert!(said.contains("kept unpacked layer") && said.contains("in use by a running build"), "{said}");
    assert_eq!(names(&c.join("unpacked/sha256")), chains.iter().cloned().collect::<BTreeSet<_>>());
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(std::fs::read_to_string(&digest).unwrap().trim(), expected);
    // Released, they go.
    assert_ok(&cache_cmd(&["prune", "--max-size", "0"], c));
    assert!(names(&c.join("unpacked/sha256")).is_empty());
}

#[test]
fn a_prune_killed_while_deleting_leaves_whole_entries_only() {
    let (a, b) = bases();
    let cache = cache_dir();
    let c = cache.path();
    build(c, &RUN_ON.replace("BASE", a), &[]);
    let (_, expected_b) = build(c, &RUN_ON.replace("BASE", b), &[]);
    let snapshot = |p: &Path| -> BTreeSet<String> {
        walkdir::WalkDir::new(p)
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{} {}",
                    e.path().strip_prefix(p).unwrap().display(),
                    e.metadata().map(|m| m.len()).unwrap_or(0)
                )
            })
            .collect()
    };
    let whole: Vec<(PathBuf, BTreeSet<String>)> = names(&c.join("unpacked/sha256"))
        .into_iter()
        .map(|n| c.join("unpacked/sha256").join(n))
        .map(|p| {
            let s = snapshot(&p);
            (p, s)
        })
        .collect();
    // SIGKILL at the 40th file deleted: in the middle of deleting an entry's tree (busybox's
    // layer alone has hundreds of files).
    let out = run(Command::new("strace")
        .args([
            "-f",
            "-o",
            "/dev/null",
            "-e",
            "trace=unlinkat,unlink,rmdir",
            "-e",
            "inject=unlinkat:signal=KILL:when=40",
        ])
        .arg(env!("CARGO_BIN_EXE_trowel"))
        .args(["cache", "prune", "--max-size", "0", "--cache-dir"])
        .arg(c));
    assert!(!out.status.success(), "the prune was not killed: {}", stdout(&out));
    assert!(!names(&c.join(".trash")).is_empty(), "killed before it trashed anything");
    // Every entry still in the store is whole.
    for (p, s) in &whole {
        if p.exists() {
            assert_eq!(&snapshot(p), s, "{} was half removed", p.display());
        }
    }
    let (_, d) = build(c, &RUN_ON.replace("BASE", b), &[]);
    assert_eq!(d, expected_b);
    let check = cache_cmd(&["check"], c);
    assert_ok(&check);
    assert!(stdout(&check).contains("every entry intact"), "{}", stdout(&check));
    assert!(names(&c.join(".trash")).is_empty(), "check left the trash");
}

#[test]
fn check_finds_and_removes_a_corrupt_blob_and_entry() {
    let (a, _) = bases();
    let cache = cache_dir();
    let c = cache.path();
    let cache_repo = format!("{}/{}", env().registry, unique_repo("check-cache"));
    assert_ok(&run(trowel().args(["warm", "-i", a, "--insecure-pull", "--cache-dir"]).arg(c)));
    let copy = format!("FROM {a}\nCOPY file.txt /f\n");
    let flags = ["--cache", "--cache-repo", &cache_repo, "--insecure", "--insecure-pull"];
    let (_, expected) = build(c, &copy, &flags);
    let clean = cache_cmd(&["check"], c);
    assert_ok(&clean);

    // A layer blob of the base image with one byte flipped, and the COPY's entry torn.
    let blobs = c.join("blobs/sha256");
    let biggest = names(&blobs).into_iter().max_by_key(|n| std::fs::metadata(blobs.join(n)).unwrap().len()).unwrap();
    let mut bytes = std::fs::read(blobs.join(&biggest)).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(blobs.join(&biggest), &bytes).unwrap();
    let entry = names(&c.join("layers")).into_iter().find(|n| !n.starts_with("step-") && n.ends_with(".json")).unwrap();
    let text = std::fs::read(c.join("layers").join(&entry)).unwrap();
    std::fs::write(c.join("layers").join(&entry), &text[..text.len() / 2]).unwrap();

    let dry = cache_cmd(&["check", "--dry-run"], c);
    assert_eq!(dry.status.code(), Some(1), "{}", stdout(&dry));
    assert!(blobs.join(&biggest).exists(), "--dry-run removed the blob");
    let found = cache_cmd(&["check"], c);
    assert_eq!(found.status.code(), Some(1), "{}", stdout(&found));
    let said = stdout(&found);
    assert!(said.contains(&biggest) && said.contains("does not match its digest"), "{said}");
    assert!(said.contains(&entry) && said.contains("corrupt"), "{said}");
    assert!(!blobs.join(&biggest).exists() && !c.join("layers").join(&entry).exists());
    let again = cache_cmd(&["check"], c);
    assert_ok(&again);
    // The build is still right: the base comes from the registry, the COPY runs again.
    let (_, d) = build(c, &copy, &flags);
    assert_eq!(d, expected);
}

#[test]
fn an_unused_cache_mount_goes_and_is_made_again_when_next_needed() {
    let cache = cache_dir();
    let c = cache.path();
    let df = format!(
        "FROM {}\nRUN --mount=type=cache,target=/var/cache/app test ! -e /var/cache/app/seen && echo 1 > /var/cache/app/seen\n",
        env().busybox()
    );
    build(c, &df, &[]);
    let instances = || -> Vec<PathBuf> {
        names(&c.join("mounts"))
            .into_iter()
            .map(|h| c.join("mounts").join(h).join("0"))
            .filter(|p| p.is_dir())
            .collect()
    };
    assert_eq!(instances().len(), 1);
    assert!(instances()[0].join("seen").exists());
    age_everything(c, Duration::from_secs(3 * 86_400));
    let out = cache_cmd(&["prune", "--max-age", "48h"], c);
    assert_ok(&out);
    assert!(stdout(&out).contains("removed cache mount"), "{}", stdout(&out));
    assert!(instances().is_empty(), "the cache mount stayed");
    // The RUN fails if it finds its old content: the cache is made again, empty.
    build(c, &df, &[]);
    assert_eq!(instances().len(), 1);
    assert_ok(&cache_cmd(&["check"], c));
}

#[test]
fn cache_dir_max_size_prunes_at_the_end_of_a_build_and_is_off_by_default() {
    let (a, _) = bases();
    let cache = cache_dir();
    let c = cache.path();
    build(c, &RUN_ON.replace("BASE", a), &[]);
    assert_eq!(names(&c.join("unpacked/sha256")).len(), 2, "a build without the flag pruned");
    let before = du(&c.join("unpacked/sha256"));
    // A bound above what is there removes nothing; one below it removes the least recently
    // used, the build's own entries no longer held once it is over.
    let (out, _) = build(c, &RUN_ON.replace("BASE", a), &["--cache-dir-max-size", &(before * 4).to_string()]);
    assert!(stderr(&out).contains("after removing 0 entries"), "{}", stderr(&out));
    assert_eq!(names(&c.join("unpacked/sha256")).len(), 2);
    let (out, _) = build(c, &RUN_ON.replace("BASE", a), &["--cache-dir-max-size", "1"]);
    assert!(stderr(&out).contains("after removing 2 entries"), "{}", stderr(&out));
    assert!(names(&c.join("unpacked/sha256")).is_empty());
}
