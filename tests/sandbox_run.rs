//! End-to-end tests of `sandbox::run` with the real helper (the trowel binary), real
//! namespaces and mounts, in tiny root filesystems made from the host's static busybox.
//! They need root, like trowel's chroot isolation itself.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant};

use trowel_engine::sandbox::{RunOutcome, RunSpec, STOP_GRACE, SandboxError, Stop, Stream, resolve_user, run};

mod sandbox_support;
use sandbox_support::{GROUP, PASSWD, busybox_root, sh, spec};

struct Output {
    outcome: RunOutcome,
    stdout: String,
    stderr: String,
}

fn run_collect(spec: &RunSpec) -> Result<Output, SandboxError> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let outcome = run(spec, &mut |s, chunk| match s {
        Stream::Stdout => stdout.extend_from_slice(chunk),
        Stream::Stderr => stderr.extend_from_slice(chunk),
    })?;
    Ok(Output {
        outcome,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

fn ok(spec: &RunSpec) -> Output {
    let out = run_collect(spec).unwrap_or_else(|e| panic!("{:?} failed: {e}", spec.argv));
    assert_eq!(out.outcome, RunOutcome { exit_code: 0, timed_out: false }, "stderr: {}", out.stderr);
    out
}

/// Host processes whose command line is exactly `args`.
fn host_processes(args: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

fn host_mounts_under(root: &Path) -> Vec<String> {
    let root = fs::canonicalize(root).unwrap();
    let root = root.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter(|l| l.contains(root)).map(String::from).collect()
}

/// Asserts two listings are equal, showing only the lines that differ.
fn assert_same_listing(before: &[String], after: &[String]) {
    let only_before: Vec<_> = before.iter().filter(|l| !after.contains(l)).collect();
    let only_after: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
    assert!(
        only_before.is_empty() && only_after.is_empty(),
        "before only: {only_before:#?}\nafter only: {only_after:#?}"
    );
}

/// Every path in the tree with its type, mode, owner and size, and the mtime of directories.
fn listing(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            let mtime = if m.is_dir() { format!("{}.{}", m.mtime(), m.mtime_nsec()) } else { String::new() };
            format!("{} {:o} {}:{} {} {mtime}", e.path().display(), m.mode(), m.uid(), m.gid(), m.len())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn stdout_and_stderr_are_streamed_separately() {
    let root = busybox_root(true);
    let out = ok(&sh(root.path(), "echo out1; echo err1 >&2; echo out2; echo err2 >&2"));
    assert_eq!(out.stdout, "out1\nout2\n");
    assert_eq!(out.stderr, "err1\nerr2\n");
}

#[test]
fn exit_codes_are_propagated() {
    let root = busybox_root(true);
    let code = |script| run_collect(&sh(root.path(), script)).unwrap().outcome;
    assert_eq!(code("exit 0"), RunOutcome { exit_code: 0, timed_out: false });
    assert_eq!(code("exit 3"), RunOutcome { exit_code: 3, timed_out: false });
    assert_eq!(code("kill -9 $$"), RunOutcome { exit_code: 128 + 9, timed_out: false });
    assert_eq!(code("kill -TERM $$"), RunOutcome { exit_code: 128 + 15, timed_out: false });
}

#[test]
fn environment_is_exactly_the_spec() {
    let root = busybox_root(true);
    let mut s = spec(root.path(), &["env"]);
    s.env = vec![("PATH".into(), "/bin:/usr/bin".into()), ("FOO".into(), "a b=c".into()), ("EMPTY".into(), "".into())];
    assert_eq!(ok(&s).stdout, "PATH=/bin:/usr/bin\nFOO=a b=c\nEMPTY=\n");
}

#[test]
fn runs_as_the_resolved_user_in_the_working_directory() {
    let root = busybox_root(true);
    let user = resolve_user("app", Some(PASSWD), Some(GROUP)).unwrap();
    let mut s = sh(root.path(), "pwd; id; touch owned-by-app; grep -E '^Cap(Eff|Bnd)' /proc/self/status");
    s.cwd = "/home/app".into();
    s.user = user.ids;
    let out = ok(&s);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "/home/app");
    assert_eq!(lines[1], "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)");
    assert_eq!(lines[2], "CapEff:\t0000000000000000");
    let file = fs::metadata(root.path().join("home/app/owned-by-app")).unwrap();
    assert_eq!((file.uid(), file.gid()), (1000, 1000));
    assert_eq!(file.mode() & 0o777, 0o644, "umask 022");
}

#[test]
fn root_keeps_only_dockers_default_capabilities() {
    let root = busybox_root(true);
    let out = ok(&sh(root.path(), "grep -E '^Cap(Inh|Eff|Bnd)' /proc/self/status; id -u; touch /tmp/by-root"));
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW
    // SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    assert_eq!(out.stdout, "CapInh:\t0000000000000000\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n0\n");
    assert_eq!(fs::metadata(root.path().join("tmp/by-root")).unwrap().uid(), 0);
}

#[test]
fn command_sees_its_own_pid_namespace() {
    let root = busybox_root(true);
    let out = ok(&sh(root.path(), "echo $$; ls /proc | grep -E '^[0-9]+$'"));
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("2"), "init is 1, the command 2");
    let pids: Vec<u32> = lines.map(|l| l.parse().unwrap()).collect();
    // init, the shell, ls and grep: nothing of the host.
    assert!(pids.len() <= 4 && pids.iter().all(|&p| p <= 4), "{pids:?}");
}

#[test]
fn hostname_and_etc_files() {
    let root = busybox_root(true);
    let mut s = sh(root.path(), "hostname; cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo x >> /etc/hosts");
    s.extra_hosts = vec![("db.internal".into(), "10.1.2.3".into())];
    let out = run_collect(&s).unwrap();
    let (head, resolv) = out.stdout.split_once("---\n").unwrap();
    assert_eq!(
        head,
        "trowel-test\n127.0.0.1\tlocalhost trowel-test\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.2.3\tdb.internal\n"
    );
    assert_eq!(resolv, fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    // Read-only bind: the command cannot change them, and the root's files stay empty stubs.
    assert_ne!(out.outcome.exit_code, 0);
    assert!(out.stderr.contains("Read-only"), "{}", out.stderr);
    assert!(!root.path().join("etc/hosts").exists());
}

#[test]
fn dev_proc_and_sys_are_usable_but_protected() {
    let root = busybox_root(true);
    let out = ok(&sh(
        root.path(),
        "ls /dev; head -c 5 /dev/urandom | wc -c; echo x > /dev/null; echo shm > /dev/shm/x && cat /dev/shm/x; \
         test -d /sys/kernel && echo sys; \
         echo x > /proc/sys/kernel/domainname 2>/dev/null || echo sysctl-ro; \
         echo 1 > /sys/kernel/uevent_helper 2>/dev/null || echo sys-ro; \
         wc -c < /proc/keys; wc -c < /proc/timer_list",
    ));
    let lines: Vec<&str> = out.stdout.lines().collect();
    for dev in ["full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"] {
        assert!(lines.contains(&dev), "/dev/{dev} missing: {lines:?}");
    }
    let tail = &lines[lines.len() - 7..];
    // /proc/keys and /proc/timer_list are masked.
    assert_eq!(tail, ["5", "shm", "sys", "sysctl-ro", "sys-ro", "0", "0"]);
}

#[test]
fn device_nodes_in_the_root_cannot_reach_host_devices() {
    let root = busybox_root(true);
    // As root with CAP_MKNOD the node can be made (debootstrap does that), but not opened.
    let out = run_collect(&sh(root.path(), "mknod /tmp/mem c 1 1 && echo made; head -c 1 /tmp/mem")).unwrap();
    assert!(out.stdout.starts_with("made"), "{}", out.stderr);
    assert_ne!(out.outcome.exit_code, 0);
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
}

#[test]
fn background_processes_do_not_survive_the_run() {
    let root = busybox_root(true);
    let started = Instant::now();
    let out = ok(&sh(root.path(), "sleep 7654321 & sleep 7654322 </dev/null >/dev/null 2>&1 & echo started"));
    assert_eq!(out.stdout, "started\n");
    assert!(started.elapsed() < Duration::from_secs(30));
    // The kernel kills the namespace's processes as init exits; give it a moment to finish.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(host_processes(&["sleep", "7654321"]).is_empty() && host_processes(&["sleep", "7654322"]).is_empty()) {
        assert!(Instant::now() < deadline, "a background sleep survived the run");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn no_mount_point_stub_or_mount_remains() {
    // No /proc, /dev, /sys, /etc at all: every mount point is a stub.
    let root = busybox_root(false);
    let before = listing(root.path());
    let mut mounts_during = None;
    let s = sh(root.path(), "ls -d /proc/1 /dev/null /etc/hosts /etc/resolv.conf /sys/kernel");
    let outcome = run(&s, &mut |_, _| {
        mounts_during.get_or_insert_with(|| host_mounts_under(root.path()));
    })
    .unwrap();
    assert!(outcome.success());
    assert_eq!(mounts_during, Some(Vec::new()), "the sandbox's mounts must not be visible on the host");
    assert!(host_mounts_under(root.path()).is_empty());
    // Also the root directory's mtime, which creating the stubs changed, is back.
    assert_same_listing(&before, &listing(root.path()));
}

#[test]
fn a_stub_directory_the_command_filled_stays() {
    let root = busybox_root(false);
    ok(&sh(root.path(), "echo hi > /etc/motd"));
    assert_eq!(fs::read_to_string(root.path().join("etc/motd")).unwrap(), "hi\n");
    assert!(!root.path().join("etc/hosts").exists());
    assert!(!root.path().join("proc").exists());
}

#[test]
fn missing_executable_is_a_clear_error() {
    let root = busybox_root(true);
    let err = run_collect(&spec(root.path(), &["no-such-tool", "--version"])).err().unwrap();
    assert_eq!(err.to_string(), "executable not found in PATH: no-such-tool");
    let err = run_collect(&spec(root.path(), &["/opt/nothing"])).err().unwrap();
    assert_eq!(err.to_string(), "cannot execute /opt/nothing: no such file or directory");
    fs::write(root.path().join("script"), "#!/bin/bash\necho hi\n").unwrap();
    fs::set_permissions(root.path().join("script"), fs::Permissions::from_mode(0o755)).unwrap();
    let err = run_collect(&spec(root.path(), &["/script"])).err().unwrap();
    assert!(err.to_string().contains("interpreter or dynamic loader is missing"), "{err}");
}

#[test]
fn missing_working_directory_is_a_setup_error() {
    let root = busybox_root(true);
    let mut s = spec(root.path(), &["true"]);
    s.cwd = "/does/not/exist".into();
    let err = run_collect(&s).err().unwrap();
    assert!(matches!(err, SandboxError::Setup { .. }), "{err}");
    assert!(err.to_string().contains("/does/not/exist"), "{err}");
}

/// Stopping (the debugger's abort) while a command runs: SIGTERM reaches the whole tree at
/// once, so a command that exits on it ends the run straight away with 143.
#[test]
fn a_stop_terminates_the_whole_tree_at_once() {
    let root = busybox_root(true);
    let mut s = sh(root.path(), "sleep 7654331 & echo started; sleep 7654332");
    let stop = Stop::new().unwrap();
    s.stop = Some(stop.clone());
    let started = Instant::now();
    let asker = std::thread::spawn(move || {
        wait_until_running("765433");
        stop.request("test");
    });
    let out = run_collect(&s).unwrap();
    asker.join().unwrap();
    let took = started.elapsed();
    assert_eq!(out.outcome.exit_code, 143, "killed by SIGTERM: {:?} {}", out.outcome, out.stderr);
    assert!(out.stdout.contains("started"));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    eprintln!("stopped in {took:?}");
    assert!(mentioning("765433").is_empty(), "the tree is gone");
}

/// Host processes whose command line mentions `marker` (busybox runs `sleep` inside its shell
/// processes, so they are not `sleep N`).
fn mentioning(marker: &str) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

/// Waits until two processes mentioning `marker` run: the shell and what it started in the
/// background (or the two sleeps, when the shell replaced itself with the last one).
fn wait_until_running(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while mentioning(marker).len() < 2 {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tree that ignores SIGTERM is killed after the grace.
#[test]
fn a_stop_kills_what_ignores_sigterm_after_the_grace() {
    let root = busybox_root(true);
    let mut s =
        sh(root.path(), "trap '' TERM; sleep 7654341 & trap '' TERM; echo started; sleep 7654342; echo survived");
    let stop = Stop::new().unwrap();
    s.stop = Some(stop.clone());
    let started = Instant::now();
    let asker = std::thread::spawn(move || {
        wait_until_running("765434");
        stop.request("test");
    });
    let out = run_collect(&s).unwrap();
    asker.join().unwrap();
    let took = started.elapsed();
    assert!(out.outcome.exit_code == 137 || out.outcome.timed_out, "killed: {:?}", out.outcome);
    assert!(!out.stdout.contains("survived"), "{}", out.stdout);
    assert!(took >= STOP_GRACE && took < Duration::from_secs(10), "took {took:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !mentioning("765434").is_empty() {
        assert!(Instant::now() < deadline, "a process survived the stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn timeout_kills_the_whole_namespace() {
    let root = busybox_root(true);
    let mut s = sh(root.path(), "sleep 7654323 & sleep 7654324");
    s.timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let out = run_collect(&s).unwrap();
    assert_eq!(out.outcome, RunOutcome { exit_code: 137, timed_out: true });
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(host_processes(&["sleep", "7654323"]).is_empty() && host_processes(&["sleep", "7654324"]).is_empty()) {
        assert!(Instant::now() < deadline, "a sleep survived the timeout");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The mount-point stubs are cleaned up after a timeout as well.
    for stub in ["proc", "dev", "sys", "etc/hosts"] {
        assert!(!root.path().join(stub).exists(), "/{stub} left behind");
    }
    assert!(host_mounts_under(root.path()).is_empty());
}

fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap()
}

#[test]
fn large_output_streams_with_bounded_memory() {
    let root = busybox_root(true);
    let total = 200_000_000u64;
    let (mut bytes, mut chunks, mut biggest) = (0u64, 0u64, 0usize);
    let outcome = run(&sh(root.path(), &format!("yes | head -c {total}")), &mut |s, chunk| {
        assert_eq!(s, Stream::Stdout);
        assert!(chunk.iter().all(|&b| b == b'y' || b == b'\n'));
        bytes += chunk.len() as u64;
        chunks += 1;
        biggest = biggest.max(chunk.len());
    })
    .unwrap();
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(bytes, total);
    assert!(chunks > 100 && biggest <= 64 * 1024, "{chunks} chunks, biggest {biggest}");
    // The whole test process, other tests included, stays far below the output size.
    let peak = peak_rss_kib();
    assert!(peak < 120 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn concurrent_runs_in_two_roots() {
    let roots = [busybox_root(true), busybox_root(true)];
    std::thread::scope(|scope| {
        let handles: Vec<_> = roots
            .iter()
            .enumerate()
            .map(|(i, root)| {
                scope.spawn(move || {
                    let mut s =
                        sh(root.path(), "for i in 1 2 3; do echo $i; sleep 0.2; done; hostname; echo $$; ls /mine*");
                    s.hostname = format!("box{i}");
                    fs::write(root.path().join(format!("mine{i}")), "").unwrap();
                    ok(&s).stdout
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), format!("1\n2\n3\nbox{i}\n2\n/mine{i}\n"));
        }
    });
}

#[test]
fn invalid_specs_are_rejected_before_anything_runs() {
    let root = busybox_root(true);
    let before = listing(root.path());
    let mut s = spec(root.path(), &[]);
    assert!(matches!(run_collect(&s), Err(SandboxError::InvalidSpec { .. })));
    s = spec(root.path(), &["true"]);
    s.hostname = "bad host".into();
    assert!(matches!(run_collect(&s), Err(SandboxError::InvalidSpec { .. })));
    s = spec(root.path(), &["true"]);
    s.extra_hosts = vec![("x\n1.1.1.1 evil".into(), "10.0.0.1".into())];
    assert!(matches!(run_collect(&s), Err(SandboxError::InvalidSpec { .. })));
    s = spec(root.path(), &["true"]);
    s.root = root.path().join("nope");
    assert!(matches!(run_collect(&s), Err(SandboxError::Root { .. })));
    assert_same_listing(&before, &listing(root.path()));
}

#[test]
fn a_large_environment_reaches_the_command() {
    let root = busybox_root(true);
    let mut s = sh(root.path(), "printf %s \"$BIG\" | wc -c");
    s.env.push(("BIG".into(), "x".repeat(100_000)));
    // More than a pipe holds (64 KiB): the spec is written while the helper reads it.
    assert_eq!(ok(&s).stdout.trim(), "100000");
}

#[test]
fn a_chatty_impostor_helper_cannot_deadlock_the_launch() {
    let root = busybox_root(true);
    let fake = root.path().join("fake-helper");
    // Writes more than a pipe holds before (never) reading its spec, which is also too big
    // for a pipe: writing the spec blockingly would deadlock.
    fs::write(&fake, "#!/bin/sh\nhead -c 1000000 /dev/zero\n").unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let mut s = spec(root.path(), &["true"]);
    s.helper_exe = fake;
    s.env.push(("BIG".into(), "x".repeat(1_000_000)));
    s.timeout = Some(Duration::from_secs(60));
    let mut seen = 0;
    let err = run(&s, &mut |_, chunk| seen += chunk.len()).err().unwrap();
    assert!(matches!(err, SandboxError::HelperDied { .. }), "{err}");
    assert_eq!(seen, 1_000_000);
}

#[test]
fn a_helper_that_is_not_trowel_is_reported() {
    let root = busybox_root(true);
    let mut s = spec(root.path(), &["true"]);
    s.helper_exe = "/bin/true".into();
    let err = run_collect(&s).err().unwrap();
    assert!(matches!(err, SandboxError::HelperDied { .. }), "{err}");
    assert!(!root.path().join("proc").exists(), "the stubs are removed on failure too");
    s.helper_exe = root.path().join("no-such-helper");
    let err = run_collect(&s).err().unwrap();
    assert!(matches!(err, SandboxError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("no-such-helper"), "{err}");
    assert!(!root.path().join("proc").exists());
}

#[test]
fn only_the_sandbox_mounts_are_visible_inside() {
    let root = busybox_root(true);
    let out = ok(&sh(root.path(), "cat /proc/self/mountinfo"));
    let allowed = ["/", "/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf"];
    for line in out.stdout.lines() {
        let mount_point = line.split(' ').nth(4).unwrap();
        assert!(
            allowed.iter().any(|a| mount_point == *a || (*a != "/" && mount_point.starts_with(&format!("{a}/")))),
            "unexpected mount {mount_point} in {}",
            out.stdout
        );
    }
}

#[test]
fn hostile_symlinks_never_lead_the_sandbox_onto_the_host() {
    let root = busybox_root(false);
    let outside = tempfile::tempdir().unwrap();
    // Joined naively, /etc/hosts would be created in a host directory.
    symlink(outside.path(), root.path().join("etc")).unwrap();
    symlink("/", root.path().join("dev")).unwrap();
    let out = run_collect(&sh(root.path(), "ls /dev/null && cat /etc/hosts")).unwrap();
    assert_ne!(out.outcome.exit_code, 0, "the image's /etc leads nowhere inside the root");
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(host_mounts_under(outside.path()).is_empty());
}
