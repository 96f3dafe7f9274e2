//! Is trowel running inside a container, and in a user namespace of its own? Container
//! isolation overwrites `/`, so it must only ever be chosen where `/` belongs to a disposable
//! container; a user namespace of its own (a pod with `hostUsers: false`) is where chroot
//! isolation may be possible instead (`probe.rs` asks).
//!
//! The evidence is deliberately strict: `/.dockerenv` alone is not enough (VM images built from
//! container images keep it — this very project's CI machines have one), so it counts only
//! together with an overlay root.

use std::path::Path;

/// Why trowel believes it is in a container, or `None`.
pub fn container_evidence() -> Option<String> {
    if let Ok(v) = std::env::var("container")
        && !v.is_empty()
    {
        return Some(format!("the container={v} environment variable"));
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return Some("a Kubernetes pod (KUBERNETES_SERVICE_HOST)".into());
    }
    if Path::new("/run/.containerenv").exists() {
        return Some("/run/.containerenv".into());
    }
    for f in ["/proc/1/cgroup", "/proc/self/cgroup"] {
        if let Ok(s) = std::fs::read_to_string(f)
            && let Some(m) =
                ["kubepods", "docker-", "/docker/", "containerd", "libpod", "crio-"].iter().find(|m| s.contains(*m))
        {
            return Some(format!("{f} mentions {}", m.trim_matches(['/', '-'])));
        }
    }
    if Path::new("/.dockerenv").exists() && root_is_overlay() {
        return Some("/.dockerenv and an overlay root filesystem".into());
    }
    None
}

/// The uid mapping of this process's user namespace, described, when it is not the initial one
/// (whose map is the identity `0 0 4294967295`): e.g. `uid 0 is 165536 outside, 65536 ids`.
pub fn user_namespace_mapping() -> Option<String> {
    // A rootless build's maps may still be on their way (`userns.rs`).
    let _ = super::userns::mapped();
    std::fs::read_to_string("/proc/self/uid_map").ok().and_then(|m| describe_uid_map(&m))
}

fn describe_uid_map(map: &str) -> Option<String> {
    let lines: Vec<Vec<u64>> = map
        .lines()
        .map(|l| l.split_whitespace().filter_map(|f| f.parse().ok()).collect::<Vec<u64>>())
        .filter(|f| f.len() == 3)
        .collect();
    if lines.is_empty() || lines == [vec![0, 0, 4294967295]] {
        return None;
    }
    let ids: u64 = lines.iter().map(|l| l[2]).sum();
    Some(match lines.iter().find(|l| l[0] == 0) {
        Some(l) => format!("uid 0 is {} outside, {ids} ids", l[1]),
        None => format!("no uid 0, {ids} ids"),
    })
}

fn root_is_overlay() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|s| {
        s.lines().any(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let fstype = fields.iter().position(|f| *f == "-").and_then(|i| fields.get(i + 1));
            fields.get(4) == Some(&"/") && fstype == Some(&"overlay")
        })
    })
}

/// Mount points of this process's mount namespace other than `/` (kaniko ignores all of them:
/// they are the container runtime's, not the image's — /proc, /dev, secrets, the project
/// directory and the cache volume in a GitLab job…).
pub fn mount_points() -> Vec<String> {
    let Ok(s) = std::fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    let mut out: Vec<String> =
        s.lines().filter_map(|l| l.split_whitespace().nth(4)).map(unescape).filter(|p| p != "/").collect();
    out.sort();
    out.dedup();
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub(super) fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/a\134b"), r"/a\b");
    }

    #[test]
    fn uid_maps() {
        assert_eq!(describe_uid_map("         0          0 4294967295\n"), None);
        assert_eq!(describe_uid_map(""), None);
        assert_eq!(
            describe_uid_map("         0     165536      65536\n").as_deref(),
            Some("uid 0 is 165536 outside, 65536 ids")
        );
        assert_eq!(describe_uid_map("0 1000 1\n1 100000 65536\n").as_deref(), Some("uid 0 is 1000 outside, 65537 ids"));
        assert_eq!(describe_uid_map("1000 1000 1\n").as_deref(), Some("no uid 0, 1 ids"));
    }

    #[test]
    fn this_machine_has_mounts() {
        assert!(mount_points().iter().any(|m| m == "/proc"));
    }
}
