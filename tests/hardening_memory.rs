//! A pod with a memory limit (issue 20): trowel builds the large-copy workload (COPY of about
//! 200 MB in 5,000 files) and the many-files workload (a RUN creating 20,000 files) inside a
//! memory cgroup limited to 256 MiB without being OOM-killed, and the cgroup's peak is printed
//! (run with `--nocapture` to see it; the figures are in docs/hardening.md, "A pod with a memory
//! limit").
//!
//! The cgroup is made by the test (as root) under the test's own: cgroup v2's `memory.max`
//! where the unified hierarchy has the memory controller, else cgroup v1's
//! `memory.limit_in_bytes`. Swap is kept out (`memory.swap.max`, `memory.memsw.limit_in_bytes`
//! where they exist), so memory over the limit cannot hide there. Page cache counts towards the
//! limit, as in a pod: the work dir is on disk (an emptyDir), where what trowel writes can be
//! reclaimed; the context is generated once on a tmpfs outside the cgroup.
//! A machine where no memory cgroup can be made fails the test with the reason, never a pass.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_ok, run, trowel};

const LIMIT: u64 = 256 << 20;

/// A memory cgroup of this test's, removed when dropped.
struct MemCgroup {
    dir: PathBuf,
    v2: bool,
}

/// Where the hierarchy of `fs_type` (with `option` among its super options, for v1) is mounted.
fn mount_point(fs_type: &str, option: Option<&str>) -> Option<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    table.lines().find_map(|l| {
        let (mine, theirs) = l.split_once(" - ")?;
        let t: Vec<&str> = theirs.split(' ').collect();
        let ok = t.first() == Some(&fs_type)
            && option.is_none_or(|o| t.get(2).is_some_and(|s| s.split(',').any(|x| x == o)));
        ok.then(|| PathBuf::from(mine.split(' ').nth(4).unwrap()))
    })
}

/// This process's cgroup in the hierarchy whose `/proc/self/cgroup` controller list is `key`.
fn own_cgroup(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        (ctrls == key || ctrls.split(',').any(|c| c == key)).then(|| path.to_string())
    })
}

/// The cgroup v2 directory whose children may have a memory controller: this process's own
/// cgroup with `+memory` in its `cgroup.subtree_control`. A v2 cgroup holding processes cannot
/// give its children controllers (the no-internal-processes rule), so when that is refused this
/// process first moves to a leaf of its own beside them (once; every test thread goes with it,
/// harmlessly: the leaf has no limit). `None`: no v2 hierarchy with the memory controller.
fn v2_parent() -> Option<&'static Result<PathBuf, String>> {
    static PARENT: std::sync::OnceLock<Option<Result<PathBuf, String>>> = std::sync::OnceLock::new();
    PARENT
        .get_or_init(|| {
            let (root, own) = (mount_point("cgroup2", None)?, own_cgroup("")?);
            let parent = root.join(own.trim_start_matches('/'));
            let ctrls = std::fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
            if !ctrls.split_whitespace().any(|c| c == "memory") {
                return Some(Err(format!("cgroup v2 at {} has no memory controller ({ctrls:?})", parent.display())));
            }
            let enable = || std::fs::write(parent.join("cgroup.subtree_control"), "+memory");
            let enabled = enable().or_else(|_| {
                let me = parent.join(format!("trowel-tests-{}", std::process::id()));
                std::fs::create_dir_all(&me)?;
                std::fs::write(me.join("cgroup.procs"), std::process::id().to_string())?;
                enable()
            });
            Some(enabled.map(|()| parent.clone()).map_err(|e| {
                format!("cgroup v2 at {}: cannot enable the memory controller for children: {e}", parent.display())
            }))
        })
        .as_ref()
}

impl MemCgroup {
    fn new(name: &str) -> MemCgroup {
        let leaf = format!("trowel-mem-{name}-{}", std::process::id());
        let mut why = Vec::new();
        // cgroup v2, when its hierarchy has the memory controller.
        match v2_parent() {
            Some(Ok(parent)) => {
                let dir = parent.join(&leaf);
                match std::fs::create_dir(&dir).and_then(|()| std::fs::write(dir.join("memory.max"), LIMIT.to_string()))
                {
                    Ok(()) => {
                        let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                        return MemCgroup { dir, v2: true };
                    }
                    Err(e) => {
                        let _ = std::fs::remove_dir(&dir);
                        why.push(format!("cgroup v2 at {}: {e}", parent.display()));
                    }
                }
            }
            Some(Err(e)) => why.push(e.clone()),
            None => {}
        }
        if let (Some(root), Some(own)) = (mount_point("cgroup", Some("memory")), own_cgroup("memory")) {
            let dir = root.join(own.trim_start_matches('/')).join(&leaf);
            match std::fs::create_dir(&dir)
                .and_then(|()| std::fs::write(dir.join("memory.limit_in_bytes"), LIMIT.to_string()))
            {
                Ok(()) => {
                    let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), LIMIT.to_string());
                    return MemCgroup { dir, v2: false };
                }
                Err(e) => {
                    let _ = std::fs::remove_dir(&dir);
                    why.push(format!("cgroup v1 memory at {}: {e}", dir.display()));
                }
            }
        } else {
            why.push("no cgroup v1 memory hierarchy is mounted".into());
        }
        panic!("no memory cgroup can be made on this machine (run as root): {}", why.join("; "));
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
    }

    fn field(&self, file: &str, key: &str) -> u64 {
        let text = self.read(file);
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {key} in {file}:\n{text}"))
    }

    /// Highest memory use the cgroup saw (page cache included).
    fn peak(&self) -> u64 {
        let file = if self.v2 { "memory.peak" } else { "memory.max_usage_in_bytes" };
        self.read(file).trim().parse().unwrap()
    }

    /// OOM kills in the cgroup.
    fn oom_kills(&self) -> u64 {
        if self.v2 { self.field("memory.events", "oom_kill ") } else { self.field("memory.oom_control", "oom_kill ") }
    }

    /// Memory the cgroup's processes hold themselves (anonymous memory and tmpfs pages: what
    /// reclaim cannot drop), now; the rest of its charge is page cache.
    fn anon(&self) -> u64 {
        let text = std::fs::read_to_string(self.dir.join("memory.stat")).unwrap_or_default();
        let keys: &[&str] = if self.v2 { &["anon ", "shmem "] } else { &["rss ", "shmem "] };
        text.lines()
            .filter_map(|l| keys.iter().find_map(|k| l.strip_prefix(k)).and_then(|v| v.trim().parse::<u64>().ok()))
            .sum()
    }

    /// Times it hit its limit: OOM events in v2; v1's failcnt, which counts every charge that
    /// had to reclaim first (page cache at the limit makes that normal, not a failure).
    fn at_limit(&self) -> u64 {
        if self.v2 { self.field("memory.events", "oom ") } else { self.read("memory.failcnt").trim().parse().unwrap() }
    }

    /// Runs `cmd` (program and arguments) in the cgroup.
    fn run(&self, cmd: &Command) -> std::process::Output {
        let procs = self.dir.join("cgroup.procs");
        let mut sh = Command::new("sh");
        sh.arg("-c").arg("echo $$ > \"$0\" && exec \"$@\"").arg(&procs).arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        run(&mut sh)
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A tmpfs the context is generated on (outside any cgroup of the test's).
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The large-copy context: 5,000 files of 40,000 bytes (200 MB), half of each incompressible.
fn large_copy_context() -> Tmpfs {
    let dir = tempfile::Builder::new().prefix("trowel-mem-ctx-").tempdir_in("/var/tmp").unwrap().keep();
    assert_ok(&run(Command::new("mount").args(["-t", "tmpfs", "-o", "size=320m", "trowel-mem"]).arg(&dir)));
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut buf = vec![0u8; 40_000];
    for i in 0..5000 {
        for c in buf[..20_000].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
        }
        buf[20_000..].fill((i % 251) as u8);
        let sub = data.join(format!("d{:02}", i % 50));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i:04}")), &buf).unwrap();
    }
    std::fs::write(dir.join("Dockerfile"), format!("FROM {}\nCOPY data /data\n", common::env().busybox())).unwrap();
    Tmpfs(dir)
}

/// Builds `ctx` in a fresh 256 MiB cgroup, work dir on disk; returns the peak.
fn build_in_cgroup(name: &str, ctx: &Path) -> u64 {
    let cg = MemCgroup::new(name);
    let work = tempfile::Builder::new().prefix("trowel-mem-work-").tempdir_in("/var/tmp").unwrap();
    let mut cmd = trowel();
    cmd.args(["build", "--no-push", "--context"]).arg(ctx).arg("--work-dir").arg(work.path());
    cmd.args(["--cache-dir", "/nonexistent-trowel-cache"]);
    let t0 = std::time::Instant::now();
    // The peak of what trowel holds itself, sampled every 20 ms while it runs (the cgroup's
    // own peak counts page cache, which fills any limit when a build writes enough).
    let done = std::sync::atomic::AtomicBool::new(false);
    let (o, anon_peak) = std::thread::scope(|sc| {
        let sampler = sc.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(cg.anon());
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            peak
        });
        let o = cg.run(&cmd);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (o, sampler.join().unwrap())
    });
    let secs = t0.elapsed().as_secs_f64();
    assert_ok(&o);
    let (peak, kills, hits) = (cg.peak(), cg.oom_kills(), cg.at_limit());
    println!(
        "{name}: cgroup {} limit {} MiB: peak {:.1} MiB (page cache included), anonymous peak {:.1} MiB, OOM kills \
         {kills}, {} {hits}, {secs:.1} s",
        if cg.v2 { "v2" } else { "v1" },
        LIMIT >> 20,
        peak as f64 / (1 << 20) as f64,
        anon_peak as f64 / (1 << 20) as f64,
        if cg.v2 { "OOM events" } else { "failcnt (reclaims at the limit)" },
    );
    assert_eq!(kills, 0, "{name}: trowel was OOM-killed");
    if cg.v2 {
        assert_eq!(hits, 0, "{name}: the cgroup ran out of memory");
    }
    assert!(peak <= LIMIT, "{name}: peak {peak} over the limit");
    // What trowel holds must stay well inside the pod: every byte of a layer is streamed.
    assert!(anon_peak < LIMIT / 2, "{name}: trowel itself held {anon_peak} bytes");
    peak
}

#[test]
fn builds_in_a_256_mib_memory_cgroup_without_oom() {
    let ctx = large_copy_context();
    build_in_cgroup("large-copy", &ctx.0);
    let many = tempfile::tempdir().unwrap();
    std::fs::write(
        many.path().join("Dockerfile"),
        format!(
            "FROM {}\nRUN mkdir /m && cd /m && seq 1 20000 | xargs touch && test \"$(ls | wc -l)\" = 20000\n",
            common::env().busybox()
        ),
    )
    .unwrap();
    build_in_cgroup("many-files", many.path());
}
