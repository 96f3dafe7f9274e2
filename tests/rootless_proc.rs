//! Rootless isolation where `/proc` cannot be mounted (issue 19): inside a Docker-style
//! container, files and tmpfs mounted over parts of `/proc` (Docker's masked paths) make the
//! kernel refuse a new `proc` in a user namespace (`mount_too_revealing` in fs/namespace.c), and
//! the RUN's set-up got a bare EPERM. Reproduced here without a container runtime: as root, a
//! mount namespace of its own where `/dev/null` is bound over a `/proc` file and an empty
//! read-only tmpfs over a `/proc` directory — locked once the user's namespace copies them —
//! and trowel run there by the ordinary user `trowel-rl`.
//!
//! The same build in the same kind of namespace without the masks succeeds, so the masks are
//! what the message must name; what it says to change is pinned too.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::rootless::{WITH_RANGE, Workspace, user};
use common::*;

/// `trowel build --no-push` of `ws`'s context as the user, in a new mount namespace where the
/// `masks` (a file, a directory) are mounted over `/proc` first.
fn build_in_namespace(ws: &Workspace, masks: &[&str]) -> Output {
    let mut script = String::new();
    for m in masks {
        if Path::new(m).is_dir() {
            script.push_str(&format!("mount -t tmpfs -o ro,size=0 tmpfs {m} && "));
        } else {
            script.push_str(&format!("mount --bind /dev/null {m} && "));
        }
    }
    script.push_str("exec \"$@\"");
    let u = &ws.user;
    run(Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c", &script, "sh", "/usr/bin/setpriv"])
        .args(["--reuid", &u.uid.to_string(), "--regid", &u.gid.to_string(), "--init-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_trowel"))
        .args(["build", "--no-push", "--context"])
        .arg(ws.path("ctx"))
        .env_clear()
        .env("HOME", &u.home)
        .env("USER", &u.name)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("TMPDIR", ws.path("tmp")))
}

#[test]
fn a_masked_proc_is_refused_with_the_cause_and_the_fix() {
    // Docker masks these (among others); which exist depends on the kernel's configuration.
    let file = ["/proc/keys", "/proc/timer_list", "/proc/kcore", "/proc/sched_debug"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("a /proc file Docker masks");
    let dir = ["/proc/acpi", "/proc/scsi", "/proc/asound"].into_iter().find(|p| Path::new(p).is_dir());
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write("ctx/Dockerfile", &format!("FROM {}\nRUN echo ran > /ran\n", env().busybox()));

    let o = build_in_namespace(&ws, &[]);
    assert_ok(&o);
    assert!(stderr(&o).contains("RUN isolation: rootless"), "{}", stderr(&o));

    let masks: Vec<&str> = std::iter::once(file).chain(dir).collect();
    let o = build_in_namespace(&ws, &masks);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("mount proc on /proc: rootless isolation: the kernel refuses to mount /proc for RUN"),
        "{err}"
    );
    assert!(err.contains("Operation not permitted"), "the kernel's own words stay: {err}");
    let named = format!("covered by mounts this namespace may not remove: {}", masks.join(", "));
    assert!(err.contains(&named), "the masks are named ({named}): {err}");
    for fix in [
        "--security-opt systempaths=unconfined",
        "securityContext.procMount: Unmasked",
        "--isolation=chroot",
        "--isolation=container",
    ] {
        assert!(err.contains(fix), "the message says {fix:?}: {err}");
    }
    assert!(!err.contains("binfmt_misc"), "{err}");
}
