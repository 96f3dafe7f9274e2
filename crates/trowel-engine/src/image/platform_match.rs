//! Which manifest of an index serves a platform: containerd's `platforms.Only`, the matcher
//! BuildKit resolves every image with (`util/pull/pull.go`, `util/imageutil/config.go`).
//!
//! A platform accepts, besides itself, the platforms whose code it runs, in preference order
//! (containerd's `platformVector`): `amd64/v3` takes `amd64/v2`, `amd64` and `386`; `arm/v7`
//! takes `arm/v6` and `arm/v5`; `arm64` takes `arm64` and then `arm/v8` down to `arm/v5`. An
//! index without the exact platform still serves a build for it, as with BuildKit
//! (`--platform linux/amd64/v2` over an index listing `linux/amd64`). Among several matching
//! entries the most preferred wins, and among equally preferred ones the first in the index
//! (containerd's `LimitManifests` sorts stably by `Less` and keeps one).
//!
//! Not carried over: Windows' `os.version` matching and `os.features` subsets; trowel builds
//! Linux images, whose index entries name neither.

use crate::image::manifest::Platform;
use crate::image::platform::normalize;

/// The arm64 variants containerd knows, with the (major, minor) lines each one runs: `v9.x`
/// runs `v9.x`…`v9.0` and then `v8.(x+5)`…`v8.0` (capped at `v8.9`).
const ARM64_VARIANTS: &[(&str, &[(u32, u32)])] = &[
    ("v8", &[(8, 0)]),
    ("v8.0", &[(8, 0)]),
    ("v8.1", &[(8, 1)]),
    ("v8.2", &[(8, 2)]),
    ("v8.3", &[(8, 3)]),
    ("v8.4", &[(8, 4)]),
    ("v8.5", &[(8, 5)]),
    ("v8.6", &[(8, 6)]),
    ("v8.7", &[(8, 7)]),
    ("v8.8", &[(8, 8)]),
    ("v8.9", &[(8, 9)]),
    ("v9", &[(9, 0), (8, 5)]),
    ("v9.0", &[(9, 0), (8, 5)]),
    ("v9.1", &[(9, 1), (8, 6)]),
    ("v9.2", &[(9, 2), (8, 7)]),
    ("v9.3", &[(9, 3), (8, 8)]),
    ("v9.4", &[(9, 4), (8, 9)]),
    ("v9.5", &[(9, 5), (8, 9)]),
    ("v9.6", &[(9, 6), (8, 9)]),
    ("v9.7", &[(9, 7), (8, 9)]),
];

/// containerd's `platforms.Only(p)`: the platforms `p` accepts, most preferred first.
#[derive(Debug, Clone)]
pub struct Only {
    vector: Vec<Platform>,
}

impl Only {
    pub fn new(p: &Platform) -> Only {
        // Each entry is compared normalised, as containerd's `NewMatcher` normalises it.
        Only { vector: vector(&normalize(p)).iter().map(normalize).collect() }
    }

    /// How preferred `entry` is (0 = the platform itself), `None` if it is not accepted.
    pub fn rank(&self, entry: &Platform) -> Option<usize> {
        let e = normalize(entry);
        self.vector.iter().position(|m| m.os == e.os && m.architecture == e.architecture && m.variant == e.variant)
    }

    /// The index of the entry to use among `entries` (`None`: an entry with no platform, never
    /// chosen): the best ranked, the first of equals.
    pub fn best<'a>(&self, entries: impl IntoIterator<Item = Option<&'a Platform>>) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (i, p) in entries.into_iter().enumerate() {
            let Some(r) = p.and_then(|p| self.rank(p)) else { continue };
            if best.is_none_or(|(br, _)| r < br) {
                best = Some((r, i));
            }
        }
        best.map(|(_, i)| i)
    }
}

/// containerd's `platformVector` of a normalised platform.
fn vector(p: &Platform) -> Vec<Platform> {
    let with = |architecture: &str, variant: Option<String>| Platform {
        os: p.os.clone(),
        architecture: architecture.to_string(),
        os_version: p.os_version.clone(),
        variant,
    };
    let number = |v: Option<&str>| v.and_then(|v| v.strip_prefix('v').unwrap_or(v).parse::<u32>().ok());
    let mut out = vec![p.clone()];
    match p.architecture.as_str() {
        "amd64" => {
            if let Some(n) = number(p.variant.as_deref()).filter(|&n| n > 1) {
                out.extend((1..n).rev().map(|k| with("amd64", Some(format!("v{k}")))));
            }
            out.push(with("386", None));
        }
        "arm" => {
            if let Some(n) = number(p.variant.as_deref()).filter(|&n| n > 5) {
                out.extend((5..n).rev().map(|k| with("arm", Some(format!("v{k}")))));
            }
        }
        "arm64" => {
            let variant = p.variant.clone().unwrap_or_else(|| "v8".to_string());
            out.clear();
            // An arm64 variant containerd does not know accepts nothing, itself included.
            let Some((_, lines)) = ARM64_VARIANTS.iter().find(|(v, _)| *v == variant) else { return out };
            for &(major, top) in *lines {
                for minor in (0..=top).rev() {
                    let v = if minor == 0 { format!("v{major}") } else { format!("v{major}.{minor}") };
                    out.push(with("arm64", Some(v)));
                }
            }
            // Every arm64 runs 32-bit arm code up to arm/v8.
            let arm = if variant.starts_with("v8") || variant.starts_with("v9") { "v8".to_string() } else { variant };
            out.extend(vector(&with("arm", Some(arm))));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse_exact(s).unwrap()
    }

    fn names(wanted: &str) -> Vec<String> {
        Only::new(&p(wanted)).vector.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn each_platform_accepts_what_containerd_accepts_in_its_order() {
        assert_eq!(names("linux/amd64"), ["linux/amd64", "linux/386"]);
        assert_eq!(names("linux/amd64/v1"), ["linux/amd64", "linux/386"]);
        assert_eq!(names("linux/amd64/v3"), ["linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"]);
        assert_eq!(names("linux/arm/v7"), ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]);
        assert_eq!(names("linux/arm"), ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]);
        assert_eq!(names("linux/arm/v5"), ["linux/arm/v5"]);
        assert_eq!(
            names("linux/arm64"),
            ["linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
        );
        assert_eq!(names("linux/aarch64/v8.2")[..3], ["linux/arm64/v8.2", "linux/arm64/v8.1", "linux/arm64"]);
        let v9 = names("linux/arm64/v9.1");
        assert_eq!(v9[..4], ["linux/arm64/v9.1", "linux/arm64/v9", "linux/arm64/v8.6", "linux/arm64/v8.5"]);
        assert_eq!(v9[8..], ["linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]);
        assert!(names("linux/arm64/v7").is_empty());
        assert_eq!(names("linux/riscv64"), ["linux/riscv64"]);
        assert_eq!(names("linux/386"), ["linux/386"]);
    }

    #[test]
    fn entries_match_once_normalised() {
        let only = Only::new(&p("linux/arm64"));
        assert_eq!(only.rank(&p("linux/arm64/v8")), Some(0));
        assert_eq!(only.rank(&p("linux/aarch64")), Some(0));
        assert_eq!(only.rank(&p("linux/arm64/v8.2")), None);
        assert_eq!(only.rank(&p("linux/arm")), Some(2));
        assert_eq!(Only::new(&p("linux/arm/v7")).rank(&p("linux/armhf")), Some(0));
        // A plain request takes no higher variant.
        assert_eq!(Only::new(&p("linux/amd64")).rank(&p("linux/amd64/v2")), None);
        assert_eq!(Only::new(&p("linux/arm/v6")).rank(&p("linux/arm/v7")), None);
        assert_eq!(Only::new(&p("linux/amd64")).rank(&p("windows/amd64")), None);
    }

    #[test]
    fn the_best_entry_wins_and_the_first_of_equals() {
        let entries = [p("linux/386"), p("linux/amd64/v2"), p("linux/amd64"), p("linux/amd64/v1")];
        let at = |wanted: &str| Only::new(&p(wanted)).best(entries.iter().map(Some));
        assert_eq!(at("linux/amd64/v3"), Some(1));
        assert_eq!(at("linux/amd64"), Some(2));
        assert_eq!(at("linux/386"), Some(0));
        assert_eq!(at("linux/arm64"), None);
        let only = Only::new(&p("linux/arm/v7"));
        assert_eq!(only.best([None, Some(&p("linux/arm/v5")), Some(&p("linux/arm/v6"))]), Some(2));
    }
}
