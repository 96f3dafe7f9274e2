//! Can chroot isolation work here? Asked by doing it: one run of the real sandbox set-up (the
//! same helper, namespaces, mounts, `pivot_root`, `/proc`, `/dev` a RUN gets) in an empty root,
//! for a program that does not exist. Reaching `execve` means every step a RUN needs worked; a
//! refused step comes back as the set-up's own message ("mount proc on /proc: EPERM…").
//!
//! Why probe rather than guess: what a container allows depends on several settings that are
//! not visible from inside (a seccomp filter, an AppArmor profile, whether the masks over
//! `/proc` are locked mounts — the kernel then refuses a fresh `/proc`, `mount_too_revealing`),
//! and any one of them can refuse a different step (docs/isolation.md). One probe costs a helper start (a few
//! milliseconds) and is made only in a container, before anything is pulled.

use std::path::Path;

use super::{Isolation, Network, RunSpec, SandboxError, StdioMode, UserIds, detect::user_namespace_mapping, run};

/// What the probe found: chroot isolation works, or the step that was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChrootProbe {
    Works,
    Refused(String),
}

/// Runs the probe with `helper_exe` (normally [`DEFAULT_HELPER`]) in a scratch root under
/// `scratch` (a directory of trowel's own, removed again).
pub fn probe_chroot(helper_exe: &Path, scratch: &Path) -> ChrootProbe {
    let root = match tempfile::Builder::new().prefix("isolation-probe-").tempdir_in(scratch) {
        Ok(r) => r,
        Err(e) => return ChrootProbe::Refused(format!("cannot make a scratch root in {}: {e}", scratch.display())),
    };
    let spec = RunSpec {
        root: root.path().to_path_buf(),
        // Absolute and absent: the set-up runs to the end, then execve fails.
        argv: vec!["/.trowel-isolation-probe".into()],
        env: Vec::new(),
        cwd: "/".into(),
        user: UserIds::root(),
        hostname: "probe".into(),
        isolation: Isolation::Chroot,
        stdio: StdioMode::Piped,
        timeout: Some(std::time::Duration::from_secs(20)),
        helper_exe: helper_exe.to_path_buf(),
        extra_hosts: Vec::new(),
        mounts: Vec::new(),
        network: Network::Host,
        privileged: false,
        work_dir: None,
        stop: None,
    };
    match run(&spec, &mut |_, _| {}) {
        Err(SandboxError::ExecutableNotFound { .. } | SandboxError::Exec { .. }) => ChrootProbe::Works,
        Ok(outcome) => ChrootProbe::Refused(format!("the probe ended with status {}", outcome.exit_code)),
        Err(SandboxError::Setup { message, .. }) => ChrootProbe::Refused(message),
        Err(e) => ChrootProbe::Refused(e.to_string()),
    }
}

/// The automatic choice in a container: chroot when this is a user namespace of its own (a
/// Kubernetes pod with `hostUsers: false`: root here is nobody on the node, so the namespaces
/// and mounts chroot isolation makes are the pod's alone) and the probe says it works;
/// otherwise container isolation. The note, one line, says why container isolation had to do
/// where chroot was tried (`None` in a container that shares the node's user namespace, where
/// container isolation is the only choice and nothing needs saying).
pub fn choose_in_container(helper_exe: &Path, scratch: &Path) -> (Isolation, Option<String>) {
    let Some(mapping) = user_namespace_mapping() else {
        return (Isolation::Container, None);
    };
    match probe_chroot(helper_exe, scratch) {
        ChrootProbe::Works => (Isolation::Chroot, None),
        ChrootProbe::Refused(why) => (
            Isolation::Container,
            Some(format!(
                "container isolation, not chroot: this container has a user namespace of its own ({mapping}) \
                 but chroot isolation's set-up is refused here ({why}){}",
                hint(&why)
            )),
        ),
    }
}

/// What to change, for the refusals a pod's settings cause (docs/isolation.md has the details).
pub fn hint(why: &str) -> &'static str {
    let refused = why.contains("EPERM") || why.contains("Operation not permitted") || why.contains("EACCES");
    if !refused {
        ""
    } else if why.contains("unshare") {
        ": needs CAP_SYS_ADMIN and a seccomp profile that allows unshare and mount (see docs/isolation.md)"
    } else if why.contains("pivot_root") {
        ": the seccomp profile refuses pivot_root (RuntimeDefault does): needs seccompProfile Unconfined or a \
         Localhost profile that allows it (see docs/isolation.md)"
    } else if why.contains("mount proc") {
        ": the kernel refuses a new /proc while the masks over this container's are locked mounts (made \
         outside its user namespace): needs procMount: Unmasked (see docs/isolation.md)"
    } else {
        ": see docs/isolation.md for what a pod must allow"
    }
}
