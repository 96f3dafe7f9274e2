//! `RUN --mount` (bind, cache, tmpfs), `--network=none` and cache sharing, built with trowel
//! (chroot isolation) against the local registry and checked with independent tools: skopeo
//! for the pushed config, umoci for the files, crun to run the image. Secrets are in
//! `run_secrets.rs`, ssh agents in `run_ssh.rs`, container isolation in `pod/`.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// Writes a build context: `Dockerfile` plus `files` (path, content).
fn context(dockerfile: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    for (p, c) in files {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
    dir
}

/// `trowel build` of `ctx` pushed to a fresh repository; returns the destination and the log.
fn build(ctx: &Path, name: &str, extra: &[&str]) -> (String, String) {
    let dest = format!("{}/{}:latest", env().registry, unique_repo(name));
    let out = run(trowel()
        .args(["build", "--context"])
        .arg(ctx)
        .args(["--destination", &dest, "--build-arg", &format!("REGISTRY={}", env().registry)])
        .args(extra));
    assert_ok(&out);
    (dest, format!("{}{}", stdout(&out), stderr(&out)))
}

/// The paths of every `snapshot` event of a trace.
fn snapshot_paths(trace: &Path) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "snapshot")
        .flat_map(|e| e["changes"].as_array().cloned().unwrap_or_default())
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect()
}

const CACHE_DF: &str = "\
ARG REGISTRY
FROM ${REGISTRY}/busybox:1.35
ARG BUILD
RUN --mount=type=cache,target=/root/.cache/pkg,mode=0700,uid=1000 \\
    (cat /root/.cache/pkg/seen 2>/dev/null || echo nothing-cached) > /result \\
    && stat -c '%a %u' /root/.cache/pkg >> /result \\
    && echo \"$BUILD\" >> /root/.cache/pkg/seen
CMD [\"cat\", \"/result\"]
";

#[test]
fn a_cache_mount_keeps_what_one_build_wrote_for_the_next_and_stays_out_of_both_images() {
    let ctx = context(CACHE_DF, &[]);
    let caches = tempfile::tempdir().unwrap();
    let cache_flag = format!("--mount-cache-dir={}", caches.path().display());
    let trace = ctx.path().join("trace.jsonl");
    let (first, _) = build(
        ctx.path(),
        "cache-mount",
        &[&cache_flag, "--build-arg", "BUILD=one", "--trace", trace.to_str().unwrap()],
    );
    let (second, _) = build(ctx.path(), "cache-mount", &[&cache_flag, "--build-arg", "BUILD=two"]);

    let one = pull_and_unpack(&first);
    assert_eq!(one.crun(None), (0, "nothing-cached\n700 1000\n".into(), String::new()));
    let two = pull_and_unpack(&second);
    assert_eq!(two.crun(None).1, "one\n700 1000\n", "the second build sees what the first wrote");
    for image in [&one, &two] {
        let tree = image.tree();
        assert!(!tree.has("/root/.cache"), "the cache target is not left behind: {:?}", tree.paths_under("/root"));
        assert!(tree.has("/root"), "the image's own /root stays");
    }
    assert!(!snapshot_paths(&trace).iter().any(|p| p.starts_with("/root")), "{:?}", snapshot_paths(&trace));
    // The cache itself has both builds' lines, in the directory trowel owns for it.
    let seen: Vec<String> = walkdir::WalkDir::new(caches.path())
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() == "seen")
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(seen, ["one\ntwo\n"]);
}

const BIND_DF: &str = "\
ARG REGISTRY
FROM ${REGISTRY}/busybox:1.35 AS build
RUN mkdir -p /out && echo artifact-from-build > /out/app && echo other > /out/other
FROM ${REGISTRY}/busybox:1.35
WORKDIR /work
RUN --mount=type=bind,from=build,source=/out,target=/in \\
    --mount=source=src,target=src \\
    --mount=type=bind,source=src,target=/rw,rw \\
    cp /in/app /app \\
    && ls /work/src > /listing \\
    && (touch /in/x 2>/dev/null && echo writable || echo read-only) > /bind-mode \\
    && echo scribble > /rw/main.c && cat /rw/main.c > /rw-seen \\
    && echo beside > /work/beside
";

#[test]
fn bind_mounts_show_another_stage_and_the_context_and_leave_nothing_behind() {
    let ctx = context(
        BIND_DF,
        &[("src/main.c", "int main(){}\n"), ("src/secret.env", "IGNORED=1\n"), (".dockerignore", "src/*.env\n")],
    );
    let out = tempfile::tempdir().unwrap();
    let trace = out.path().join("trace.jsonl");
    let (dest, _) = build(ctx.path(), "bind-mount", &["--trace", trace.to_str().unwrap()]);
    let image = pull_and_unpack(&dest);
    let tree = image.tree();
    let read = |p: &str| Tree::content(&image.rootfs(), p);
    assert_eq!(read("/app"), "artifact-from-build\n");
    assert_eq!(read("/listing"), "main.c\n", ".dockerignore applies to a bind of the context");
    assert_eq!(read("/bind-mode"), "read-only\n");
    assert_eq!(read("/rw-seen"), "scribble\n");
    assert_eq!(read("/work/beside"), "beside\n", "what the step wrote beside the mounts is kept");
    for gone in ["/in", "/rw", "/work/src"] {
        assert!(!tree.has(gone), "{gone} is a mount target, not part of the image");
    }
    assert_eq!(
        std::fs::read_to_string(ctx.path().join("src/main.c")).unwrap(),
        "int main(){}\n",
        "rw writes are discarded"
    );
    let paths = snapshot_paths(&trace);
    assert!(
        paths.iter().all(|p| ["/in", "/rw", "/work/src"].iter().all(|t| p != t && !p.starts_with(&format!("{t}/")))),
        "{paths:?}"
    );
    // The step's event names its mounts, resolved.
    let started: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "step_started" && e["mounts"].is_array())
        .collect();
    let mounts = &started[0]["mounts"];
    assert_eq!(
        mounts[0],
        serde_json::json!({"type": "bind", "target": "/in", "from": "stage build", "source": "/out", "options": ["ro"]})
    );
    assert_eq!(mounts[1]["target"], "/work/src");
    assert_eq!(mounts[2]["options"], serde_json::json!(["rw"]));
}

#[test]
fn a_tmpfs_is_empty_sized_and_gone_after_the_step() {
    let df = "ARG REGISTRY\nFROM ${REGISTRY}/busybox:1.35\n\
              RUN --mount=type=tmpfs,target=/var/scratch,size=2m \
              df -k /var/scratch | awk 'NR==2 {print $1, $2}' > /tmpfs && ls -A /var/scratch | wc -l >> /tmpfs \
              && dd if=/dev/zero of=/var/scratch/big bs=1k count=4096 2>/dev/null || echo full >> /tmpfs\n";
    let ctx = context(df, &[]);
    let (dest, _) = build(ctx.path(), "tmpfs-mount", &[]);
    let image = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&image.rootfs(), "/tmpfs"), "tmpfs 2048\n0\nfull\n");
    assert!(!image.tree().has("/var/scratch"));
    assert!(image.tree().has("/var"), "busybox has /var");
}

#[test]
fn network_none_gives_a_step_only_its_own_loopback() {
    // The registry listens on the host's 127.0.0.1: reachable from a default RUN, not from one
    // with a network of its own.
    let port = env().registry.rsplit(':').next().unwrap().to_string();
    let df = format!(
        "ARG REGISTRY\nFROM ${{REGISTRY}}/busybox:1.35\n\
         RUN nc -w 2 127.0.0.1 {port} </dev/null && echo reached > /default\n\
         RUN --network=none (nc -w 2 127.0.0.1 {port} </dev/null && echo reached || echo refused) > /none \
         && ip -o link | awk '{{print $2, $3}}' >> /none\n\
         RUN --network=host nc -w 2 127.0.0.1 {port} </dev/null && echo reached > /host\n"
    );
    let ctx = context(&df, &[]);
    let (dest, _) = build(ctx.path(), "network-none", &[]);
    let image = pull_and_unpack(&dest);
    let read = |p: &str| Tree::content(&image.rootfs(), p);
    assert_eq!(read("/default"), "reached\n");
    assert_eq!(read("/none"), "refused\nlo: <LOOPBACK,UP,LOWER_UP>\n", "only a loopback interface, and it is up");
    assert_eq!(read("/host"), "reached\n");
}

const LOCKED_DF: &str = "\
ARG REGISTRY
FROM ${REGISTRY}/busybox:1.35
ARG NAME
ARG HOLD=2
RUN --mount=type=cache,id=serialised,target=/c,sharing=locked \\
    echo start $NAME >> /c/log && sleep $HOLD && echo end $NAME >> /c/log
";

fn spawn_build(ctx: &Path, caches: &Path, name: &str, hold: u32) -> std::process::Child {
    trowel()
        .args(["build", "--no-push", "--context"])
        .arg(ctx)
        .arg(format!("--mount-cache-dir={}", caches.display()))
        .args(["--build-arg", &format!("REGISTRY={}", env().registry), "--build-arg", &format!("NAME={name}")])
        .args(["--build-arg", &format!("HOLD={hold}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn cache_log(caches: &Path) -> String {
    walkdir::WalkDir::new(caches)
        .into_iter()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name() == "log")
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .unwrap_or_default()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sharing_locked_serialises_two_builds_and_survives_a_killed_holder() {
    let ctx = context(LOCKED_DF, &[]);
    let caches = tempfile::tempdir().unwrap();
    let a = spawn_build(ctx.path(), caches.path(), "a", 2);
    wait_for("build a to hold the cache", || cache_log(caches.path()).contains("start a"));
    let b = spawn_build(ctx.path(), caches.path(), "b", 0);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_ok(&a);
    assert_ok(&b);
    assert_eq!(cache_log(caches.path()), "start a\nend a\nstart b\nend b\n", "b ran only after a was done");
    let log_b = format!("{}{}", stdout(&b), stderr(&b));
    assert!(log_b.contains("waiting for another build using it (sharing=locked)"), "{log_b}");

    // A holder killed with SIGKILL releases the lock with its descriptors.
    let mut holder = spawn_build(ctx.path(), caches.path(), "killed", 600);
    wait_for("the holder to start", || cache_log(caches.path()).contains("start killed"));
    let t0 = Instant::now();
    holder.kill().unwrap();
    holder.wait().unwrap();
    let next = spawn_build(ctx.path(), caches.path(), "after", 0).wait_with_output().unwrap();
    assert_ok(&next);
    assert!(t0.elapsed() < Duration::from_secs(60), "the next build got the cache at once");
    assert!(
        cache_log(caches.path()).ends_with("start killed\nstart after\nend after\n"),
        "{}",
        cache_log(caches.path())
    );
}

const KEY_DF: &str = "\
ARG REGISTRY
FROM ${REGISTRY}/busybox:1.35
RUN --mount=type=bind,source=src,target=/src --mount=type=cache,target=/c \\
    cat /src/a > /copied && date +%s%N >> /c/stamp
";

#[test]
fn a_runs_key_covers_what_its_bind_mounts_show_never_what_its_cache_holds() {
    let ctx = context(KEY_DF, &[("src/a", "one\n"), ("other.txt", "unrelated\n")]);
    let caches = tempfile::tempdir().unwrap();
    let repo = format!("{}/{}", env().registry, unique_repo("mount-key"));
    let build = || {
        let out = run(trowel()
            .args(["build", "--context"])
            .arg(ctx.path())
            .args(["--destination", &format!("{repo}:latest"), "--cache", "--cache-repo", &format!("{repo}/cache")])
            .args(["--build-arg", &format!("REGISTRY={}", env().registry)])
            .arg(format!("--mount-cache-dir={}", caches.path().display())));
        assert_ok(&out);
        format!("{}{}", stdout(&out), stderr(&out))
    };
    assert!(build().contains("Cache: 0 hit(s), 1 miss(es)"));
    // What the cache mount holds changed (the first build wrote to it), a file outside the
    // bound directory changed: neither is in the key.
    std::fs::write(ctx.path().join("other.txt"), "still unrelated\n").unwrap();
    let log = build();
    assert!(log.contains("Cache: 1 hit(s), 0 miss(es)"), "{log}");
    // A file the bind mount shows changed: a miss that names it.
    std::fs::write(ctx.path().join("src/a"), "two\n").unwrap();
    let log = build();
    assert!(log.contains("Cache miss: RUN") && log.contains("1 file changed (src/a)"), "{log}");
    let image = pull_and_unpack(&format!("{repo}:latest"));
    assert_eq!(Tree::content(&image.rootfs(), "/copied"), "two\n");
}

#[test]
fn security_insecure_keeps_every_capability_only_when_allowed() {
    let df = "ARG REGISTRY\nFROM ${REGISTRY}/busybox:1.35\n\
              RUN grep CapEff /proc/self/status > /sandbox && (touch /proc/sys/x 2>/dev/null; mount | grep -c ' /proc/sys ' >> /sandbox)\n\
              RUN --security=insecure grep CapEff /proc/self/status > /insecure && (mount | grep -c ' /proc/sys ' >> /insecure || true)\n";
    let ctx = context(df, &[]);
    let refused = run(trowel()
        .args(["build", "--no-push", "--context"])
        .arg(ctx.path())
        .args(["--build-arg", &format!("REGISTRY={}", env().registry)]));
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("needs the entitlement --allow security.insecure"), "{}", stderr(&refused));
    let (dest, _) = build(ctx.path(), "insecure", &["--allow", "security.insecure"]);
    let image = pull_and_unpack(&dest);
    let read = |p: &str| Tree::content(&image.rootfs(), p);
    // Docker's default set in the sandbox, with /proc/sys read-only; all of them when insecure,
    // and /proc/sys as the kernel has it.
    assert_eq!(read("/sandbox"), "CapEff:\t00000000a80425fb\n1\n");
    let all =
        u64::from_str_radix(read("/insecure").lines().next().unwrap().trim_start_matches("CapEff:\t"), 16).unwrap();
    assert!(all.count_ones() >= 38, "every capability: {:x}", all);
    assert!(read("/insecure").ends_with("\n0\n"), "{}", read("/insecure"));
}

#[test]
fn a_mount_inside_another_one_gets_its_mount_point_there() {
    // Attached parents first whatever the order written; /data/src and /data/token are made
    // inside the tmpfs, not in the image.
    let df = "ARG REGISTRY\nFROM ${REGISTRY}/busybox:1.35\n\
              RUN --mount=type=bind,source=src,target=/data/src --mount=type=tmpfs,target=/data \
              --mount=type=secret,id=tok,target=/data/token,required \
              (cat /data/src/a; wc -c < /data/token; mount | grep -c ' /data') > /nested\n";
    let ctx = context(df, &[("src/a", "inside\n")]);
    let dest = format!("{}/{}:1", env().registry, unique_repo("nested"));
    let out = run(trowel()
        .env("NESTED_TOKEN", "nested-secret-value")
        .args(["build", "--context"])
        .arg(ctx.path())
        .args(["--destination", &dest])
        .args(["--build-arg", &format!("REGISTRY={}", env().registry), "--secret", "id=tok,env=NESTED_TOKEN"]));
    assert_ok(&out);
    let image = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&image.rootfs(), "/nested"), "inside\n19\n3\n");
    assert!(!image.tree().has("/data"));
}
