//! Rootless isolation, as an ordinary user (issue 19): trowel run by `trowel-rl` (a user with a
//! subordinate range) and `trowel-rl1` (one without), made by `common::rootless`.
//!
//! What is proved, with independent tools: a busybox build exercising owners (COPY --chown,
//! chown in RUN, adduser), a setuid bit, a hard link and a second stage builds rootless to the
//! very image root builds with `--isolation=chroot` (same digest with `--reproducible`); skopeo,
//! umoci and crun read and run it; the layer cache round-trips (all hits, same digest), a
//! trace replays; `trowel warm` fills the user's cache dir and a build uses it; a Debian base
//! runs apt-get (which drops to `_apt`); a shell at a debugger pause works (`build --break`'s
//! prompt and `trowel debug`'s terminal debugger); the process started is the build itself, root
//! of its namespace with every capability there, and SIGTERM ends it; the single-id fallback
//! warns once and says why a chown fails; each refusal says what to change; a build goes on
//! while the helpers write its maps (a fully cached one pushes without them), and maps that come
//! late change nothing in the image.

mod common;

use std::path::Path;
use std::process::Command;

use common::rootless::{RANGE_SIZE, User, WITH_RANGE, WITHOUT_RANGE, Workspace, ok, user};
use common::*;

/// Owners, setuid, hard links and a second stage: what a user namespace could get wrong (the
/// test image's busybox has no adduser: the user is added as useradd would, then chowned to).
fn busybox_dockerfile() -> String {
    let base = env().busybox();
    format!(
        "FROM {base} AS build\n\
         RUN echo built > /artifact && chown 7:8 /artifact\n\
         FROM {base}\n\
         COPY a.txt /a.txt\n\
         COPY --chown=1234:2345 b.txt /owned/b.txt\n\
         RUN echo app:x:1000:1000::/data:/bin/sh >> /etc/passwd && echo app:x:1000: >> /etc/group \
         && mkdir /data && echo hi > /data/f && chown -R app:app /data\n\
         RUN cp /bin/busybox /usr/bin/suid && chmod 4755 /usr/bin/suid && echo linked > /l1 && ln /l1 /l2\n\
         COPY --from=build /artifact /artifact\n\
         RUN echo \"$(id -u):$(stat -c %u:%g /data/f)\" > /seen\n\
         USER app\n\
         RUN echo \"$(id -u)\" > /data/as-app\n\
         USER root\n\
         CMD [\"cat\", \"/data/f\"]\n"
    )
}

fn digest_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

/// The busybox build as the user (rootless, with the layer cache) and as root (chroot): one
/// image; then its files as umoci sees them, crun running it, a cache round trip and a replay.
#[test]
fn a_rootless_build_is_the_image_root_builds() {
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write("ctx/Dockerfile", &busybox_dockerfile());
    ws.write("ctx/a.txt", "a\n");
    ws.write("ctx/b.txt", "b\n");
    let repo = unique_repo("rootless");
    let (dest, root_dest) = (format!("{}/{repo}:user", env().registry), format!("{}/{repo}:root", env().registry));
    let cache_repo = format!("{}/{repo}-cache", env().registry);
    let build = |digest_file: &str, trace: &str| {
        let o = ok(ws
            .trowel()
            .args(["build", "--reproducible", "--cache", "--cache-repo", &cache_repo, "--destination", &dest])
            .arg("--context")
            .arg(ws.path("ctx"))
            .arg("--digest-file")
            .arg(ws.path(digest_file))
            .arg("--trace")
            .arg(ws.path(trace)));
        (stderr(&o), digest_of(&ws.path(digest_file)))
    };
    let (log, digest) = build("digest1", "trace1");
    assert!(log.contains("RUN isolation: rootless"), "{log}");
    assert!(!log.contains("single id"), "a user with a range gets no single-id warning: {log}");

    // Root, chroot isolation, the same context: the same image, byte for byte.
    let root_digest = tempfile::NamedTempFile::new().unwrap();
    let o = run(trowel()
        .args(["build", "--reproducible", "--isolation=chroot", "--destination", &root_dest, "--context"])
        .arg(ws.path("ctx"))
        .arg("--digest-file")
        .arg(root_digest.path()));
    assert_ok(&o);
    assert_eq!(digest, digest_of(root_digest.path()), "rootless and root builds differ");
    assert_eq!(skopeo_inspect(&dest)["Digest"].as_str().unwrap(), digest);

    // The files as an independent unpacker sees them: the namespace's ids, not the user's.
    let unpacked = pull_and_unpack(&dest);
    let tree = unpacked.tree();
    let owner = |p: &str| (tree.get(p).uid, tree.get(p).gid);
    assert_eq!(owner("/a.txt"), (0, 0));
    assert_eq!(owner("/owned/b.txt"), (1234, 2345));
    assert_eq!(owner("/data/f"), (1000, 1000));
    assert_eq!(owner("/artifact"), (7, 8));
    assert_eq!(tree.get("/usr/bin/suid").mode & 0o7777, 0o4755, "the setuid bit survives");
    assert_eq!(tree.get("/l1").ino, tree.get("/l2").ino, "the hard link survives");
    assert_eq!(Tree::content(&unpacked.rootfs(), "/seen"), "0:1000:1000\n", "RUN ran as 0 of the namespace");
    assert_eq!(Tree::content(&unpacked.rootfs(), "/data/as-app"), "1000\n", "USER app ran as 1000");
    assert_eq!(owner("/data/as-app"), (1000, 1000));
    assert!(!tree.has(&format!("/home/{}", u.name)));
    let (code, out, err) = unpacked.crun(None);
    assert_eq!((code, out.as_str()), (0, "hi\n"), "crun: {err}");

    // The layer cache round trip: every step a hit, the same image.
    let (log2, digest2) = build("digest2", "trace2");
    assert_eq!(digest2, digest, "{log2}");
    let trace = std::fs::read_to_string(ws.path("trace2")).unwrap();
    let lookups: Vec<serde_json::Value> = trace
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "cache_lookup")
        .collect();
    assert!(!lookups.is_empty());
    assert!(lookups.iter().all(|e| e["result"]["kind"] == "hit"), "{lookups:?}");

    // The rootless trace says so, and replays as the user (no namespace needed to read it).
    let first = std::fs::read_to_string(ws.path("trace1")).unwrap();
    assert!(first.contains(r#""isolation":"rootless""#), "{first}");
    let o = ok(ws.trowel().args(["replay", "--summary"]).arg(ws.path("trace1")));
    let summary = stdout(&o);
    assert!(summary.contains(&dest), "{summary}");
}

/// The build goes on while the setuid helpers write its namespace's maps, and waits for them
/// only where it needs them (`sandbox/userns.rs`). Here the helpers are held back until the log
/// shows the build got past a point: a cold build's base pulled, a warm build's image pushed
/// (every step a cache hit needs no maps at all). A build that waited earlier would never print
/// that line (the test fails at its deadline). With the maps that late, the image is still the
/// one root builds: nothing that depends on the namespace's ids ran before them.
#[test]
fn the_build_goes_on_while_the_maps_are_written() {
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write("ctx/Dockerfile", &busybox_dockerfile());
    ws.write("ctx/a.txt", "a\n");
    ws.write("ctx/b.txt", "b\n");
    // Helpers that pass trowel's check (file capabilities on a script) and run the real ones
    // once the test lets them.
    let bin = ws.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let release = ws.path("release");
    for tool in ["newuidmap", "newgidmap"] {
        let script = format!(
            "#!/bin/sh\nwhile [ ! -e {} ]; do sleep 0.02; done\nexec /usr/bin/{tool} \"$@\"\n",
            release.display()
        );
        std::fs::write(bin.join(tool), script).unwrap();
        let mode = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
        std::fs::set_permissions(bin.join(tool), mode).unwrap();
        assert_ok(&run(Command::new("setcap").arg("cap_setuid+ep").arg(bin.join(tool))));
    }
    let repo = unique_repo("rootless-late-maps");
    let dest = format!("{}/{repo}:user", env().registry);
    let cache_repo = format!("{}/{repo}-cache", env().registry);
    // Runs the build with the helpers held until a line of its log starts with `until`; its
    // log and digest.
    let build = |name: &str, until: &str| {
        let _ = std::fs::remove_file(&release);
        let digest_file = ws.path(name);
        let mut child = ws
            .trowel()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .args(["build", "--reproducible", "--cache", "--cache-repo", &cache_repo, "--destination", &dest])
            .arg("--context")
            .arg(ws.path("ctx"))
            .arg("--digest-file")
            .arg(&digest_file)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stream = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mut log = String::new();
        let mut seen = false;
        while !seen {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    seen = line.contains(until);
                    log.push_str(&line);
                    log.push('\n');
                }
                Err(_) => break,
            }
        }
        std::fs::write(&release, "").unwrap();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        log.extend(rx.try_iter().map(|l| l + "\n"));
        assert!(seen, "the build printed no line with {until:?} before its maps were written:\n{log}");
        assert!(status.success(), "{log}");
        (log, digest_of(&digest_file))
    };
    let (log, digest) = build("digest-cold", "Retrieved image ");
    assert!(log.contains("RUN isolation: rootless"), "{log}");
    let (log, warm) = build("digest-warm", "Pushed ");
    assert_eq!(warm, digest, "{log}");
    assert!(!log.contains("Cache miss"), "every step a hit:\n{log}");

    // The image root builds from the same inputs.
    let root_digest = tempfile::NamedTempFile::new().unwrap();
    let root_dest = format!("{}/{repo}:root", env().registry);
    assert_ok(&run(trowel()
        .args(["build", "--reproducible", "--isolation=chroot", "--destination", &root_dest, "--context"])
        .arg(ws.path("ctx"))
        .arg("--digest-file")
        .arg(root_digest.path())));
    assert_eq!(digest, digest_of(root_digest.path()), "late maps changed the image");
}

/// `trowel warm` into the user's own cache dir, then a build whose base comes from it.
#[test]
fn warm_fills_the_users_cache_dir_and_a_build_uses_it() {
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    let base = env().busybox();
    ws.write("ctx/Dockerfile", &format!("FROM {base}\nRUN echo warm > /warm\n"));
    ok(ws.trowel().args(["warm", "--cache-dir"]).arg(ws.path("cache")).args(["--image", &base]));
    let owner = std::fs::metadata(ws.path("cache/blobs")).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    assert_eq!(owner.unwrap(), u.uid, "warm ran as the user, outside any namespace");
    let dest = format!("{}/{}:1", env().registry, unique_repo("rootless-warm"));
    let o = ok(ws
        .trowel()
        .args(["build", "--cache", "--cache-dir"])
        .arg(ws.path("cache"))
        .args(["--destination", &dest, "--context"])
        .arg(ws.path("ctx")));
    assert!(stderr(&o).contains("in the local cache directory"), "{}", stderr(&o));
    assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/warm"), "warm\n");
}

/// apt-get in a Debian base: apt drops to `_apt` for its downloads, which needs the range.
#[test]
fn apt_get_installs_a_package_rootless() {
    let debian = debian_image("minbase");
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write(
        "ctx/Dockerfile",
        &format!(
            "FROM {debian}\n\
             RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends jq >/dev/null \
             && rm -rf /var/lib/apt/lists/* && id -u _apt > /apt-uid\n\
             CMD [\"jq\", \"-n\", \"[1,2] | add\"]\n"
        ),
    );
    let dest = format!("{}/{}:1", env().registry, unique_repo("rootless-apt"));
    let mut cmd = ws.trowel();
    for k in ["http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"] {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    let o = ok(cmd.args(["build", "--destination", &dest, "--context"]).arg(ws.path("ctx")));
    assert!(stderr(&o).contains("RUN isolation: rootless"), "{}", stderr(&o));
    let unpacked = pull_and_unpack(&dest);
    let apt_uid: u64 = Tree::content(&unpacked.rootfs(), "/apt-uid").trim().parse().unwrap();
    assert!(apt_uid > 0 && apt_uid < RANGE_SIZE, "_apt is {apt_uid}");
    assert!(unpacked.tree().has("/usr/bin/jq"));
    let (code, out, err) = unpacked.crun(None);
    assert_eq!((code, out.as_str()), (0, "3\n"), "crun: {err}");
}

/// A shell at a debugger pause, as the user, in a real terminal: it is root of the namespace,
/// and what it changes is kept as a layer.
#[test]
fn a_shell_at_a_pause_works_rootless() {
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write("ctx/Dockerfile", &format!("FROM {}\nRUN echo one > /one\nRUN echo two > /two\n", env().busybox()));
    let dest = format!("{}/{}:1", env().registry, unique_repo("rootless-shell"));
    let cmd = terminal_command(
        &u,
        &ws,
        "xterm",
        &format!("build --context {} --destination {dest} --break 3", ws.path("ctx").display()),
    );
    let t = common::tmux::Tmux::start(&cmd, 200, 50);
    t.wait_for("paused before line 3");
    t.keys("s");
    t.key("Enter");
    t.wait_for("Debug interactive shell");
    t.keys("echo \"uid=$(id -u)\"; rm /one; echo kept > /kept; exit");
    t.key("Enter");
    let s = t.wait_for("Keep them as a layer? [y/N]");
    assert!(s.contains("uid=0"), "{s}");
    t.keys("y");
    t.key("Enter");
    t.wait_for("[c]ontinue, [n]ext step, [s]hell, [a]bort?");
    t.keys("c");
    t.key("Enter");
    let s = t.wait_for("EXIT=");
    assert!(s.contains("EXIT=0"), "{s}");
    let unpacked = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&unpacked.rootfs(), "/kept"), "kept\n");
    assert!(!unpacked.tree().has("/one"), "the shell's deletion is kept too");
    assert_eq!(Tree::content(&unpacked.rootfs(), "/two"), "two\n");
}

/// `trowel debug` (the terminal debugger) as the user: a shell at a breakpoint, its changes
/// kept, the push confirmed.
#[test]
fn trowel_debug_opens_a_shell_rootless() {
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write("ctx/Dockerfile", &format!("FROM {}\nRUN echo one > /one\nRUN echo two > /two\n", env().busybox()));
    let dest = format!("{}/{}:1", env().registry, unique_repo("rootless-tui"));
    let cmd = terminal_command(
        &u,
        &ws,
        "xterm-256color",
        &format!("debug --context {} --destination {dest} --break 3", ws.path("ctx").display()),
    );
    let t = common::tmux::Tmux::start(&cmd, 110, 32);
    t.wait_for("paused before L3 RUN");
    t.keys("!");
    t.wait_for("a shell in the build root");
    t.keys("echo \"uid=$(id -u)\"; echo kept > /kept; exit");
    t.key("Enter");
    t.wait_for("Shell session changes");
    t.keys("y");
    t.wait_for("paused before L3 RUN");
    t.keys("c");
    t.wait_for("Push now?");
    let s = t.confirm_push_and_quit();
    assert!(s.contains("uid=0"), "the shell was root of the namespace: {s}");
    let unpacked = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&unpacked.rootfs(), "/kept"), "kept\n");
    assert_eq!(Tree::content(&unpacked.rootfs(), "/two"), "two\n");
}

/// No range: one id, one warning, and a chown to another id fails saying why.
#[test]
fn without_a_range_one_id_is_mapped_with_a_warning() {
    let u = user(WITHOUT_RANGE, false);
    let ws = Workspace::new(&u);
    ws.write("ctx/Dockerfile", &format!("FROM {}\nRUN echo single > /single\n", env().busybox()));
    let dest = format!("{}/{}:1", env().registry, unique_repo("rootless-single"));
    let o = ok(ws.trowel().args(["build", "--destination", &dest, "--context"]).arg(ws.path("ctx")));
    let log = stderr(&o);
    assert_eq!(log.matches("rootless isolation with a single id").count(), 1, "{log}");
    for what in ["files an image gives other owners", "chown", "_apt"] {
        assert!(log.to_lowercase().contains(&what.to_lowercase()), "the warning names {what:?}: {log}");
    }
    let unpacked = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&unpacked.rootfs(), "/single"), "single\n");
    assert_eq!((unpacked.tree().get("/single").uid, unpacked.tree().get("/single").gid), (0, 0));

    ws.write("ctx/Dockerfile", &format!("FROM {}\nRUN touch /f && chown 1000 /f\n", env().busybox()));
    let o = run(ws.trowel().args(["build", "--no-push", "--context"]).arg(ws.path("ctx")));
    assert!(!o.status.success());
    let log = stderr(&o);
    assert!(log.contains("Invalid argument"), "busybox's own words: {log}");
    assert!(log.contains("only uid and gid 0 exist, so chown to any other id"), "{log}");
    assert!(log.contains("usermod --add-subuids"), "what to change: {log}");
}

/// The refusals that can be provoked here, each saying what to change.
#[test]
fn where_rootless_cannot_work_the_error_says_what_to_change() {
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write("ctx/Dockerfile", &format!("FROM {}\nRUN true\n", env().busybox()));
    let build = |cmd: &mut Command| {
        let o = run(cmd.args(["build", "--no-push", "--context"]).arg(ws.path("ctx")));
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        stderr(&o)
    };

    // A range, but no newuidmap on PATH.
    let err = build(ws.trowel().env("PATH", "/nonexistent"));
    assert!(err.contains("newuidmap is not on PATH"), "{err}");
    assert!(err.contains(&format!("/etc/subuid gives {WITH_RANGE} the ids")), "{err}");
    assert!(err.contains("apt-get install uidmap"), "{err}");

    // A newuidmap that is not setuid (a copy made without its mode).
    let bin = ws.path("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["newuidmap", "newgidmap"] {
        std::fs::copy(format!("/usr/bin/{tool}"), bin.join(tool)).unwrap();
        let plain = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
        std::fs::set_permissions(bin.join(tool), plain).unwrap();
    }
    let err = build(ws.trowel().env("PATH", format!("{}:/usr/bin:/bin", bin.display())));
    assert!(err.contains("neither setuid root nor has file capabilities"), "{err}");
    assert!(err.contains("setcap"), "{err}");

    // Helpers that pass for real ones (file capabilities) but do not map: both run at once, and
    // the one that failed is named with its own words; one that says it mapped but did not is
    // caught too.
    let fake = |tool: &str, script: &str| {
        std::fs::write(bin.join(tool), format!("#!/bin/sh\n{script}\n")).unwrap();
        let plain = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
        std::fs::set_permissions(bin.join(tool), plain).unwrap();
        assert_ok(&run(Command::new("setcap").arg("cap_setuid+ep").arg(bin.join(tool))));
    };
    fake("newuidmap", "exit 0");
    fake("newgidmap", "echo \"newgidmap: refused $*\" >&2; exit 3");
    let err = build(ws.trowel().env("PATH", format!("{}:/usr/bin:/bin", bin.display())));
    assert!(
        err.contains(&format!("newgidmap {} failed to map {WITH_RANGE}'s ids", bin.join("newgidmap").display())),
        "{err}"
    );
    assert!(err.contains("exit status: 3 (newgidmap: refused "), "{err}");
    fake("newgidmap", "exit 0");
    let err = build(ws.trowel().env("PATH", format!("{}:/usr/bin:/bin", bin.display())));
    assert!(err.contains("the namespace's maps did not make this process 0"), "{err}");

    // A work dir the namespace cannot write build roots into (a read-only mount stands in for
    // NFS with root squashing, which cannot be had here): refused before anything is pulled.
    let ro = ws.path("ro");
    std::fs::create_dir(&ro).unwrap();
    ws.give();
    assert_ok(&run(Command::new("mount").arg("--bind").arg(&ro).arg(&ro)));
    let mounted = run(Command::new("mount").args(["-o", "remount,bind,ro"]).arg(&ro));
    let err = build(ws.trowel().env("TMPDIR", &ro));
    assert_ok(&run(Command::new("umount").arg(&ro)));
    assert_ok(&mounted);
    assert!(err.contains(&format!("{} (a ", ro.display())), "{err}");
    assert!(err.contains("cannot hold build roots") && err.contains("--work-dir (or TMPDIR)"), "{err}");
    assert!(!err.contains("Retrieved image"), "refused before the pull: {err}");

    // User namespaces disabled: user.max_user_namespaces is 0 in a namespace trowel runs in (a
    // per-namespace limit, so the host's is left alone). Root there asks for rootless.
    let inner = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces && exec {} build --isolation=rootless --no-push --context {}",
        env!("CARGO_BIN_EXE_trowel"),
        ws.path("ctx").display()
    );
    let o = run(Command::new("unshare").args(["--user", "--map-root-user", "--mount", "sh", "-c", &inner]));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("user.max_user_namespaces is 0"), "{err}");
    assert!(err.contains("sysctl -w user.max_user_namespaces="), "{err}");
}

/// A shell command line (for tmux) running trowel with `args` as `u`, with a clean environment
/// and a terminal of type `term`.
fn terminal_command(u: &User, ws: &Workspace, term: &str, args: &str) -> String {
    format!(
        "setpriv --reuid {} --regid {} --init-groups -- env -i HOME={} PATH=/usr/bin:/bin TMPDIR={} TERM={term} {} {args}",
        u.uid,
        u.gid,
        u.home.display(),
        ws.path("tmp").display(),
        env!("CARGO_BIN_EXE_trowel"),
    )
}

/// The build is the process the user started, with no relay in front of it: that pid is root
/// of its own user namespace (the user as 0, the range after it) with every capability there,
/// and SIGTERM to it aborts the build, the RUN it was running included.
#[test]
fn the_process_started_is_the_build_and_sigterm_ends_it() {
    use std::os::unix::process::ExitStatusExt;
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write("ctx/Dockerfile", &format!("FROM {}\nRUN sleep 3600\n", env().busybox()));
    let log = std::fs::File::create(ws.path("log")).unwrap();
    // Killed if the test fails before it ends the build itself (it would sleep for an hour).
    struct Build(std::process::Child);
    impl Drop for Build {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut build = ws
        .trowel()
        .args(["build", "--no-push", "--context"])
        .arg(ws.path("ctx"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(Build)
        .unwrap();
    let pid = build.0.id() as i32;
    let sleep = wait_until(|| descendants(pid).into_iter().find(|(_, cmd)| cmd == "sleep 3600").map(|(p, _)| p))
        .unwrap_or_else(|| panic!("the RUN never started: {}", std::fs::read_to_string(ws.path("log")).unwrap()));

    let uid_map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let lines: Vec<Vec<u64>> =
        uid_map.lines().map(|l| l.split_whitespace().map(|f| f.parse().unwrap()).collect()).collect();
    assert_eq!(lines.len(), 2, "{uid_map}");
    assert_eq!((lines[0][0], lines[0][1], lines[0][2]), (0, u64::from(u.uid), 1), "{uid_map}");
    assert_eq!((lines[1][0], lines[1][2]), (1, RANGE_SIZE), "{uid_map}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let cap = |name: &str| {
        let v = status.lines().find_map(|l| l.strip_prefix(name)).unwrap().trim();
        u64::from_str_radix(v, 16).unwrap()
    };
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").unwrap().trim().parse().unwrap();
    let all = (1u64 << (last + 1)) - 1;
    for name in ["CapPrm:", "CapEff:", "CapBnd:"] {
        assert_eq!(cap(name), all, "{name} of the build: {status}");
    }
    for name in ["CapInh:", "CapAmb:"] {
        assert_eq!(cap(name), 0, "{name} of the build: {status}");
    }

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM).unwrap();
    let ended = build.0.wait().unwrap();
    // SIGTERM aborts the build cleanly (`src/signals.rs`): the RUN stopped, the build failed.
    let log = std::fs::read_to_string(ws.path("log")).unwrap();
    assert_eq!((ended.code(), ended.signal()), (Some(1), None), "{ended:?}: {log}");
    assert!(log.contains("build aborted: SIGTERM received"), "{log}");
    let gone = wait_until(|| (!Path::new(&format!("/proc/{sleep}/cmdline")).exists()).then_some(()));
    assert!(gone.is_some(), "the RUN's sleep outlived the build");
}

/// Waits (polling) for `f` to give something, for at most two minutes of a loaded machine.
fn wait_until<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

/// Every live process below `pid`, with its command line (arguments joined by spaces).
fn descendants(pid: i32) -> Vec<(i32, String)> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // The fields after the command name, which may hold spaces: state, then the parent.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        if let Some(ppid) = after.split(' ').nth(1).and_then(|v| v.parse::<i32>().ok()) {
            parent.insert(p, ppid);
        }
    }
    let below = |mut p: i32| {
        while let Some(&pp) = parent.get(&p) {
            if pp == pid {
                return true;
            }
            p = pp;
        }
        false
    };
    let cmdline = |p: i32| {
        let raw = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    parent.keys().copied().filter(|&p| below(p)).map(|p| (p, cmdline(p))).collect()
}
