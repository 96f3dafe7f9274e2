//! Why rootless isolation cannot work on this machine, each said with what to change.
//!
//! The kernel answers a refused user namespace with a bare `EPERM` or `ENOSPC`; which switch
//! refused it (a sysctl, AppArmor, a seccomp profile) is found by reading the switches, so the
//! message names the one that is set and the command that changes it.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// `unshare(CLONE_NEWUSER)` was refused; `reason` names the switch and what to change.
    #[error("rootless isolation: cannot create a user namespace: {reason}")]
    UserNamespace { reason: String, source: io::Error },

    /// The namespace was made but its root cannot mount (AppArmor's restriction, mostly).
    #[error("rootless isolation: the user namespace is not usable: {reason}")]
    Restricted { reason: String, source: io::Error },

    /// The user has a subordinate range, but the setuid helper that maps it is missing.
    #[error(
        "rootless isolation: {file} gives {user} the ids {ranges}, but {tool} is not on PATH; install it \
         (Debian and Ubuntu: apt-get install uidmap; Fedora: dnf install shadow-utils), or remove {user}'s \
         lines from /etc/subuid and /etc/subgid to build with a single id (see README, \"Rootless\")"
    )]
    HelperMissing { tool: &'static str, file: &'static str, user: String, ranges: String },

    /// The helper is there but cannot do its job (not setuid root, no file capabilities), or
    /// refused the map.
    #[error("rootless isolation: {tool} {path} failed to map {user}'s ids: {reason}")]
    HelperFailed { tool: &'static str, path: PathBuf, user: String, reason: String },

    /// Reading `/etc/subuid`, `/etc/passwd`, or a `/proc` file failed.
    #[error("rootless isolation: read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },

    /// Entering the namespace broke down (a fork, a pipe, the process that runs the helpers),
    /// or the maps written did not make this process 0.
    #[error("rootless isolation: {what}: {source}")]
    Start { what: String, source: io::Error },

    /// A directory the build writes roots into refuses the namespace's owners.
    #[error(
        "rootless isolation: {dir} (a {fs} file system) cannot hold build roots, whose files are owned by the \
         user namespace's ids ({what}: {source}); use a writable directory on a local file system (ext4, xfs, \
         btrfs, tmpfs) for {flag}"
    )]
    Filesystem { dir: PathBuf, fs: String, what: String, flag: &'static str, source: io::Error },

    /// The kernel refused RUN's `/proc` (`mount_too_revealing`): in a user namespace a new
    /// `proc` needs one already mounted that is fully visible; `why` says what hides part of it.
    #[error(
        "rootless isolation: the kernel refuses to mount /proc for RUN ({source}): in a user namespace a new \
         proc may only be mounted where a proc already mounted is fully visible, and {why}. Run trowel's container with /proc unmasked (Docker: --security-opt \
         systempaths=unconfined; Podman: --security-opt unmask=ALL; Kubernetes: securityContext.procMount: \
         Unmasked, which needs hostUsers: false), or build as the container's root instead: --isolation=chroot \
         where the container allows it (a pod with hostUsers: false, SYS_ADMIN and a seccomp profile allowing \
         pivot_root), else --isolation=container (see docs/isolation.md)"
    )]
    ProcRefused { why: String, source: io::Error },

    /// What the first wait for the namespace's maps found, given again to every later caller
    /// (`userns::mapped`): the same words, once per place that needed the maps.
    #[error(transparent)]
    Earlier(std::sync::Arc<RootlessError>),
}

/// Reads a sysctl under `/proc/sys`, `None` when the kernel does not have it.
fn sysctl(name: &str) -> Option<String> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Why `unshare(CLONE_NEWUSER)` failed with `errno`.
pub(super) fn refused(errno: i32) -> RootlessError {
    refused_given(errno, &sysctl)
}

/// [`refused`], the sysctls read through `sysctl`.
fn refused_given(errno: i32, sysctl: &dyn Fn(&str) -> Option<String>) -> RootlessError {
    let source = io::Error::from_raw_os_error(errno);
    let reason = if sysctl("user.max_user_namespaces").as_deref() == Some("0") {
        "user namespaces are disabled (the sysctl user.max_user_namespaces is 0); ask the administrator to enable \
         them: sysctl -w user.max_user_namespaces=15000 (and in /etc/sysctl.d to keep it)"
            .to_string()
    } else if sysctl("kernel.unprivileged_userns_clone").as_deref() == Some("0") {
        "unprivileged user namespaces are disabled (the sysctl kernel.unprivileged_userns_clone is 0); ask the \
         administrator to enable them: sysctl -w kernel.unprivileged_userns_clone=1"
            .to_string()
    } else if errno == libc::ENOSPC {
        format!(
            "the limit of user namespaces (user.max_user_namespaces = {}) is reached, for this user or a namespace \
             trowel runs in; raise it or end other rootless containers",
            sysctl("user.max_user_namespaces").unwrap_or_else(|| "?".into())
        )
    } else if errno == libc::EPERM {
        "the kernel refused it (EPERM): trowel runs in a container whose seccomp profile forbids unshare (Docker's \
         and Kubernetes' RuntimeDefault do, unless the pod has its own user namespace), or in a chroot; run it on \
         the host, in a pod with hostUsers: false, or as root with --isolation=chroot"
            .to_string()
    } else {
        "unshare(CLONE_NEWUSER) failed".to_string()
    };
    RootlessError::UserNamespace { reason, source }
}

/// Why the namespace's root could not make its mounts private (`errno`).
pub(super) fn restricted(errno: i32) -> RootlessError {
    restricted_given(errno, &sysctl)
}

/// [`restricted`], the sysctls read through `sysctl`.
fn restricted_given(errno: i32, sysctl: &dyn Fn(&str) -> Option<String>) -> RootlessError {
    let source = io::Error::from_raw_os_error(errno);
    let reason = if sysctl("kernel.apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        "AppArmor restricts unprivileged user namespaces (the sysctl kernel.apparmor_restrict_unprivileged_userns \
         is 1), so root of the namespace has no capabilities; allow trowel with an AppArmor profile granting \
         `userns,` (see Ubuntu's apparmor.d/ for rootlesskit and buildah), or set the sysctl to 0"
            .to_string()
    } else {
        "root of the new user namespace could not change its mounts; something (an LSM, a seccomp profile) \
         denies mounts in user namespaces"
            .to_string()
    };
    RootlessError::Restricted { reason, source }
}

/// Why rootless isolation's `proc` mount for RUN failed with `errno`, when the kernel's
/// visibility rule is the likely cause: `None` in the initial user namespace (which the rule does
/// not apply to) or for another errno, so the caller keeps the kernel's bare words there. (Chroot
/// isolation in a pod meets the same rule; its probe words that, `probe::hint`.)
pub(super) fn proc_refused(errno: i32) -> Option<RootlessError> {
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    proc_refused_given(errno, &uid_map, &mountinfo)
}

/// [`proc_refused`], the process's uid map and mount table given.
fn proc_refused_given(errno: i32, uid_map: &str, mountinfo: &str) -> Option<RootlessError> {
    let initial = uid_map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
    if errno != libc::EPERM || initial {
        return None;
    }
    let covered = covered_proc_paths(mountinfo);
    let why = match (covered.procs, covered.paths.as_slice()) {
        (0, _) => "no proc is mounted in trowel's mount namespace".to_string(),
        (_, []) => {
            "the proc mounted here is not (it may be read-only, or mounted with hidepid or subset=pid)".to_string()
        }
        (_, paths) => {
            let shown: Vec<&str> = paths.iter().take(6).map(String::as_str).collect();
            let more = paths.len().saturating_sub(shown.len());
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            format!(
                "here parts of it are covered by mounts this namespace may not remove: {}{more} (a container's \
                 masked /proc paths, as Docker, Podman and Kubernetes make them)",
                shown.join(", ")
            )
        }
    };
    Some(RootlessError::ProcRefused { why, source: io::Error::from_raw_os_error(errno) })
}

/// What the mount table shows of the `proc` file systems mounted.
struct CoveredProc {
    /// How many `proc` mounts there are.
    procs: usize,
    /// Mount points inside one of them, in table order. binfmt_misc is left out: it sits on an
    /// empty directory of `/proc/sys`, which the kernel does not count as hiding anything.
    paths: Vec<String>,
}

fn covered_proc_paths(mountinfo: &str) -> CoveredProc {
    // Fields: id parent major:minor root mount-point options [optional…] - fstype source super-options.
    let mounts: Vec<(String, String)> = mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dash = f.iter().position(|x| *x == "-")?;
            Some((super::detect::unescape(f.get(4)?), (*f.get(dash + 1)?).to_string()))
        })
        .collect();
    let procs: Vec<&String> = mounts.iter().filter(|(_, t)| t == "proc").map(|(p, _)| p).collect();
    let mut paths: Vec<String> = Vec::new();
    for (point, fstype) in &mounts {
        let inside = procs.iter().any(|p| point.starts_with(&format!("{}/", p.trim_end_matches('/'))));
        if inside && fstype != "binfmt_misc" && !paths.contains(point) {
            paths.push(point.clone());
        }
    }
    CoveredProc { procs: procs.len(), paths }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each switch that can refuse a user namespace is named with the command that changes it,
    /// whichever errno the kernel gave (the ones tests/rootless.rs cannot provoke here).
    #[test]
    fn each_refusal_names_its_switch_and_the_fix() {
        let set = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let said = |e: RootlessError| e.to_string();
        let off = set(&[("user.max_user_namespaces", "0")]);
        assert!(said(refused_given(libc::ENOSPC, &off)).contains("sysctl -w user.max_user_namespaces=15000"));
        let debian = set(&[("user.max_user_namespaces", "100"), ("kernel.unprivileged_userns_clone", "0")]);
        assert!(said(refused_given(libc::EPERM, &debian)).contains("sysctl -w kernel.unprivileged_userns_clone=1"));
        let full = set(&[("user.max_user_namespaces", "100")]);
        assert!(said(refused_given(libc::ENOSPC, &full)).contains("(user.max_user_namespaces = 100) is reached"));
        assert!(said(refused_given(libc::EPERM, &full)).contains("seccomp profile forbids unshare"));
        let apparmor = set(&[("kernel.apparmor_restrict_unprivileged_userns", "1")]);
        let e = said(restricted_given(libc::EPERM, &apparmor));
        assert!(e.contains("kernel.apparmor_restrict_unprivileged_userns is 1") && e.contains("`userns,`"), "{e}");
        assert!(said(restricted_given(libc::EPERM, &full)).contains("denies mounts in user namespaces"));
    }

    /// The refused `/proc` names what covers it (Docker's masks, not binfmt_misc) and the fix,
    /// and keeps quiet where the kernel's rule cannot be the cause.
    #[test]
    fn a_refused_proc_names_the_masks_and_the_fix() {
        let userns = "         0       1000          1\n";
        let docker = "\
            20 1 0:5 / / rw - overlay overlay rw\n\
            21 20 0:6 / /proc rw,nosuid - proc proc rw\n\
            22 21 0:7 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw\n\
            23 21 0:8 /null /proc/keys rw - devtmpfs udev rw\n\
            24 21 0:9 / /proc/acpi ro - tmpfs tmpfs ro\n\
            25 20 0:10 / /proc\\040x rw - tmpfs tmpfs rw\n";
        let e = proc_refused_given(libc::EPERM, userns, docker).unwrap().to_string();
        assert!(e.starts_with("rootless isolation: the kernel refuses to mount /proc for RUN"), "{e}");
        assert!(
            e.contains("covered by mounts this namespace may not remove: /proc/keys, /proc/acpi (a container's"),
            "{e}"
        );
        for fix in ["systempaths=unconfined", "procMount: Unmasked", "--isolation=chroot", "--isolation=container"] {
            assert!(e.contains(fix), "{fix}: {e}");
        }
        let none = proc_refused_given(libc::EPERM, userns, "20 1 0:5 / / rw - ext4 /dev/sda rw\n");
        assert!(none.unwrap().to_string().contains("no proc is mounted"));
        assert!(proc_refused_given(libc::EPERM, "0 0 4294967295\n", docker).is_none(), "initial namespace");
        assert!(proc_refused_given(libc::ENOENT, userns, docker).is_none(), "another errno");
    }
}
