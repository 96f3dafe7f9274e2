//! A pod with `hostUsers: false`, as containerd (2.x, with crun) runs one for the kubelet: its own
//! user namespace mapping ids 0–65535 to a high range of the node's, containerd's default
//! capabilities, containerd's RuntimeDefault seccomp profile (`testdata/pod-userns/
//! containerd-seccomp.json`, composed for the bounding set as containerd composes it), `/proc`
//! masked and partly read-only as the kubelet asks — and the settings a cluster admin can change:
//! added capabilities, `seccompProfile: Unconfined`, `procMount: Unmasked`. The rootfs and the
//! volumes are owned by the mapped range, as the kubelet's idmapped mounts make them look.
//! Shares the host's network (the test registries are on 127.0.0.1), as `pod_support` does.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;

/// The node's id that is root in the pod (the kubelet gives each pod a multiple of 65536).
pub const POD_BASE: u32 = 65536 * 23;
/// Ids in the pod's user namespace (KEP-127: 65536).
pub const POD_IDS: u32 = 65536;

/// containerd's default capabilities (`pkg/oci/spec.go`, `defaultUnixCaps`).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// What the kubelet masks (`procMount: Default`) and containerd passes on.
const MASKED: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
];
const READONLY: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The pod's `seccompProfile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seccomp {
    /// containerd's default profile, composed for the bounding set.
    RuntimeDefault,
    /// A profile installed on the node, read from this file of the repository (as is: a
    /// Localhost profile is not composed by capability).
    Localhost(&'static str),
    Unconfined,
}

/// The securityContext of the pod's container.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `capabilities.add` (namespaced: they are the pod's user namespace's, not the node's).
    pub add_caps: &'static [&'static str],
    pub seccomp: Seccomp,
    /// `procMount: Unmasked` (else Default).
    pub proc_unmasked: bool,
}

impl Settings {
    /// `hostUsers: false` and nothing else: what a baseline or restricted namespace gives.
    pub const DEFAULT: Settings = Settings { add_caps: &[], seccomp: Seccomp::RuntimeDefault, proc_unmasked: false };
}

/// containerd's RuntimeDefault profile for a container with `bounding` as its bounding set.
pub fn runtime_default_seccomp(bounding: &[String]) -> Value {
    let data: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("testdata/pod-userns/containerd-seccomp.json")).unwrap(),
    )
    .unwrap();
    let mut rules: Vec<Value> = data["always"].as_array().unwrap().clone();
    for cap in bounding {
        if let Some(r) = data["by_capability"][cap].as_array() {
            rules.extend(r.iter().cloned());
        }
    }
    if !bounding.iter().any(|c| c == "CAP_SYS_ADMIN") {
        rules.extend(data["without_cap_sys_admin"].as_array().unwrap().iter().cloned());
    }
    json!({
        "defaultAction": data["defaultAction"],
        "architectures": data["architectures"],
        "syscalls": rules,
    })
}

/// Rewrites an umoci bundle's config into such a pod running `args`, with `mounts` (host
/// directory, path in the pod) as its volumes. Everything mounted is chowned into the range.
pub fn userns_podify(bundle: &Path, settings: Settings, args: &[String], mounts: &[(&Path, &str)]) {
    shift_owners(&bundle.join("rootfs"));
    // The pod's root must reach its rootfs (umoci makes the bundle and tempfile its parent 0700).
    for dir in [bundle, bundle.parent().unwrap()] {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    for (src, _) in mounts {
        shift_owners(src);
    }
    let cfg_path = bundle.join("config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["args"] = json!(args);
    cfg["process"]["terminal"] = json!(false);
    // allowPrivilegeEscalation is true by default (and forced with CAP_SYS_ADMIN).
    cfg["process"]["noNewPrivileges"] = json!(false);
    cfg["process"]["user"] = json!({"uid": 0, "gid": 0});
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    caps.extend(settings.add_caps.iter().map(|c| c.to_string()));
    cfg["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": []});
    let env = cfg["process"]["env"].as_array_mut().unwrap();
    env.push(json!("KUBERNETES_SERVICE_HOST=10.96.0.1"));
    env.push(json!("HOME=/root"));
    let linux = &mut cfg["linux"];
    let ns = linux["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "network" && n["type"] != "user");
    ns.push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": POD_BASE, "size": POD_IDS}]);
    linux["uidMappings"] = map.clone();
    linux["gidMappings"] = map;
    let (masked, readonly): (&[&str], &[&str]) = if settings.proc_unmasked { (&[], &[]) } else { (&MASKED, &READONLY) };
    linux["maskedPaths"] = json!(masked);
    linux["readonlyPaths"] = json!(readonly);
    match settings.seccomp {
        Seccomp::Unconfined => {
            linux.as_object_mut().unwrap().remove("seccomp");
        }
        Seccomp::RuntimeDefault => linux["seccomp"] = runtime_default_seccomp(&caps),
        Seccomp::Localhost(file) => {
            linux["seccomp"] = serde_json::from_slice(&std::fs::read(repo_root().join(file)).unwrap()).unwrap()
        }
    }
    // The node's cgroups are not the pod's business here (crun runs without a cgroup manager).
    linux.as_object_mut().unwrap().remove("resources");
    let list = cfg["mounts"].as_array_mut().unwrap();
    // sysfs belongs to the network namespace's owner, the node's here (the pod shares the
    // host network): bind the node's read-only, as a runtime does for a user namespace.
    list.retain(|m| m["destination"] != "/sys");
    list.push(json!({"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "ro", "nosuid", "noexec", "nodev"]}));
    for (src, dst) in mounts {
        list.push(json!({"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rw"]}));
    }
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
}

/// What the idmapped mounts of the kubelet do for a pod's files: id `n` on disk is `n` in the
/// pod, that is `POD_BASE + n` on the node.
/// Everything in trowel's image and in the test's volumes is root's, so one owner is the
/// whole truth here.
fn shift_owners(dir: &Path) {
    let o = run(Command::new("chown").args(["-R", "-h", &format!("{POD_BASE}:{POD_BASE}")]).arg(dir));
    assert_ok(&o);
}

/// Runs `args` in a fresh such pod of `image` and returns (exit code, stdout and stderr).
pub fn userns_pod_run(image: &str, settings: Settings, args: Vec<String>, mounts: &[(&Path, &str)]) -> (i32, String) {
    let u = pull_and_unpack(image);
    userns_podify(&u.bundle(), settings, &args, mounts);
    let (code, out, err) = super::crun_run_raw(&u.bundle());
    (code, format!("{out}{err}"))
}
