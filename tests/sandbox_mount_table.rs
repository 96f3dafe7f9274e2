//! The whole mount table a RUN sees in chroot isolation, pinned: every mount point, its file
//! system, its per-mount flags (read-only, nosuid, nodev, noexec) and the options that are
//! Docker's defaults (/dev's and /dev/shm's size and mode, devpts's modes and group).
//!
//! Why a table and not a few probes: the sandbox's set-up is rewritten for speed (fewer mount
//! calls, mounts prepared once per root), and a mask or a read-only flag lost on the way would
//! not make any build fail. This test fails on any change to what the command sees, masked
//! `/proc` and `/sys` paths included (those the host kernel has: the list is Docker's, and a
//! kernel without, say, `/proc/asound` has nothing to mask there).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use trowel_engine::sandbox::{RunOutcome, Stream, run};

mod sandbox_support;
use sandbox_support::{busybox_root, sh};

/// `(mount point, fs type, flags, options)` as the command reads them in `/proc/self/mountinfo`.
fn table(root: &Path, privileged: bool) -> BTreeSet<String> {
    let mut spec = sh(root, "cat /proc/self/mountinfo");
    spec.privileged = privileged;
    let mut out = Vec::new();
    let outcome = run(&spec, &mut |s, chunk| {
        if s == Stream::Stdout {
            out.extend_from_slice(chunk)
        }
    })
    .unwrap();
    assert_eq!(outcome, RunOutcome { exit_code: 0, timed_out: false });
    String::from_utf8(out).unwrap().lines().map(describe).collect()
}

/// One mountinfo line as `point type flags options`: the per-mount flags that matter for
/// isolation, and the super-block options the sandbox chooses (not those the host's kernel adds).
fn describe(line: &str) -> String {
    let (left, right) = line.split_once(" - ").unwrap();
    let fields: Vec<&str> = left.split(' ').collect();
    let (point, mount_opts) = (fields[4], fields[5]);
    let mut right = right.split(' ');
    let fstype = right.next().unwrap();
    let _source = right.next();
    let super_opts = right.next().unwrap_or("");
    let flags: Vec<&str> =
        mount_opts.split(',').filter(|o| ["ro", "rw", "nosuid", "nodev", "noexec"].contains(o)).collect();
    let chosen: Vec<&str> = super_opts
        .split(',')
        .filter(|o| ["size=", "mode=", "ptmxmode=", "gid="].iter().any(|p| o.starts_with(p)))
        .collect();
    format!("{point} {fstype} {} {}", flags.join(","), chosen.join(","))
}

fn expected(privileged: bool) -> BTreeSet<String> {
    let mut t: Vec<String> = vec![
        "/dev tmpfs rw,nosuid,nodev size=65536k,mode=755".into(),
        "/dev/pts devpts rw,nosuid,noexec gid=5,mode=620,ptmxmode=666".into(),
        // mode=1777 is tmpfs's default, which the kernel does not list.
        "/dev/shm tmpfs rw,nosuid,nodev,noexec size=65536k".into(),
        "/dev/mqueue mqueue rw,nosuid,nodev,noexec ".into(),
        "/proc proc rw,nosuid,nodev,noexec ".into(),
        "/etc/hosts tmpfs ro,nosuid,nodev,noexec size=65536k,mode=755".into(),
        "/etc/resolv.conf tmpfs ro,nosuid,nodev,noexec size=65536k,mode=755".into(),
    ];
    for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
        if Path::new("/dev").join(dev).exists() {
            t.push(format!("/dev/{dev} {} {} {}", host_null_type(), host_null_flags(), host_dev_options()));
        }
    }
    t.push(format!("/sys sysfs {} ", if privileged { "rw,nosuid,nodev,noexec" } else { "ro,nosuid,nodev,noexec" }));
    if !privileged {
        for p in ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"] {
            if Path::new(p).exists() {
                t.push(format!("{p} proc ro,nosuid,nodev,noexec "));
            }
        }
        for p in [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
            "/sys/devices/virtual/powercap",
        ] {
            let Ok(meta) = fs::metadata(p) else { continue };
            t.push(if meta.is_dir() {
                format!("{p} tmpfs ro,nosuid,nodev,noexec size=0k")
            } else {
                format!("{p} {} {} {}", host_null_type(), host_null_flags(), host_dev_options())
            });
        }
    }
    let mut set: BTreeSet<String> = t.into_iter().collect();
    set.insert(format!("/ {} rw,nodev ", root_fstype()));
    set
}

/// The host's `/dev` options the bound device nodes carry (`size=`, `mode=`), as it mounts it.
fn host_dev_options() -> String {
    host_line("/dev").map(|l| describe(&l).rsplit(' ').next().unwrap_or("").to_string()).unwrap_or_default()
}

fn host_null_type() -> String {
    host_line("/dev").map(|l| describe(&l).split(' ').nth(1).unwrap_or("").to_string()).unwrap_or_default()
}

/// Device nodes and file masks are plain binds of the host's nodes: flags as the host's `/dev`
/// has them.
fn host_null_flags() -> String {
    host_line("/dev").map(|l| describe(&l).split(' ').nth(2).unwrap_or("").to_string()).unwrap_or_default()
}

fn host_line(point: &str) -> Option<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .ok()?
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(point))
        .map(String::from)
}

/// The file system of the test's temporary directory (the build root).
fn root_fstype() -> String {
    let dir = tempfile::tempdir().unwrap();
    let st = rustix::fs::statfs(dir.path()).unwrap();
    match st.f_type as i64 {
        0x0102_1994 => "tmpfs".into(),
        0xEF53 => "ext4".into(),
        0x794c_7630 => "overlay".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        other => format!("{other:#x}"),
    }
}

fn assert_tables(got: &BTreeSet<String>, want: &BTreeSet<String>) {
    let missing: Vec<_> = want.difference(got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing: {missing:#?}\nunexpected: {extra:#?}\nall: {got:#?}");
}

#[test]
fn a_run_sees_dockers_mount_table() {
    let root = busybox_root(true);
    assert_tables(&table(root.path(), false), &expected(false));
}

#[test]
fn a_privileged_run_sees_proc_and_sys_unmasked_and_writable() {
    let root = busybox_root(true);
    assert_tables(&table(root.path(), true), &expected(true));
}

#[test]
fn consecutive_runs_in_one_root_see_the_same_table() {
    let root = busybox_root(true);
    let first = table(root.path(), false);
    assert_eq!(table(root.path(), false), first);
    assert_eq!(table(root.path(), true), expected(true));
    assert_eq!(table(root.path(), false), first);
}
