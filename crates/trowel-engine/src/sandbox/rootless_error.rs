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
}
