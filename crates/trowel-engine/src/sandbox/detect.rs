//! Is trowel running inside a container? Container isolation overwrites `/`, so it must only
//! ever be chosen where `/` belongs to a disposable container.
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
fn unescape(s: &str) -> String {
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
    fn this_machine_has_mounts() {
        assert!(mount_points().iter().any(|m| m == "/proc"));
    }
}
