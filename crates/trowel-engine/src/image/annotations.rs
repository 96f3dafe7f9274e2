//! `--annotation`: OCI annotations on what a build writes, with buildx's syntax and BuildKit's
//! rules (`exporter/containerimage/exptypes/annotations.go`, `writer.go`).
//!
//! `[TYPE[PLATFORM]:]KEY=VALUE`, where TYPE is where the annotation goes:
//! - `manifest` (the default, as in buildx and the kaniko fork, whose only level this is): each
//!   image manifest, or only the one for PLATFORM (`manifest[linux/arm64]:k=v`);
//! - `index`: the image index of a build for several platforms;
//! - `manifest-descriptor`: the index's entry for each manifest (or PLATFORM's).
//!
//! As in BuildKit, `index` and `manifest-descriptor` need an index, so a build for one platform
//! refuses them; a PLATFORM that is not built is refused too — both before anything is pulled.
//! BuildKit's fourth type, `index-descriptor`, only exists in its OCI-layout exporter's
//! `index.json` and is refused here. Docker schema2 manifests and manifest lists have no
//! annotations: BuildKit refuses annotations unless `oci-mediatypes` is on; trowel writes an
//! annotated build with OCI media types whatever its base (the layers are the same bytes).
//! Nothing time-dependent is added, so `--reproducible` builds stay reproducible.

use std::collections::BTreeMap;

use crate::image::manifest::Platform;

/// Where an annotation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotationLevel {
    Manifest,
    Index,
    ManifestDescriptor,
}

impl AnnotationLevel {
    fn name(self) -> &'static str {
        match self {
            AnnotationLevel::Manifest => "manifest",
            AnnotationLevel::Index => "index",
            AnnotationLevel::ManifestDescriptor => "manifest-descriptor",
        }
    }
}

/// One `--annotation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub level: AnnotationLevel,
    /// Only for this platform's manifest (or its index entry).
    pub platform: Option<Platform>,
    pub key: String,
    pub value: String,
    /// As given, for messages.
    raw: String,
}

/// Every `--annotation` of a build, in the order given (a later one for the same key and place
/// wins, as with buildx).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations(Vec<Annotation>);

impl Annotations {
    /// Parses `--annotation` values; every error names the value as given.
    pub fn parse(raw: &[String]) -> Result<Annotations, String> {
        raw.iter().map(|a| parse_one(a)).collect::<Result<Vec<_>, _>>().map(Annotations)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Refuses what cannot be applied to a build for `platforms` (in the order built).
    pub fn check(&self, platforms: &[Platform]) -> Result<(), String> {
        for a in &self.0 {
            if platforms.len() < 2 && a.level != AnnotationLevel::Manifest {
                return Err(format!(
                    "--annotation {:?}: {} annotations need an image index, and a build for one platform has none (build for several with --platform, or annotate the manifest)",
                    a.raw,
                    a.level.name()
                ));
            }
            if let Some(p) = &a.platform
                && !platforms.iter().any(|t| same(t, p))
            {
                let built: Vec<String> = platforms.iter().map(|p| p.to_string()).collect();
                return Err(format!(
                    "--annotation {:?}: {p} is not a platform of this build ({})",
                    a.raw,
                    built.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The annotations of `platform`'s image manifest.
    pub fn manifest(&self, platform: &Platform) -> Option<BTreeMap<String, String>> {
        self.collect(AnnotationLevel::Manifest, Some(platform))
    }

    /// The annotations of `platform`'s entry in the index.
    pub fn manifest_descriptor(&self, platform: &Platform) -> Option<BTreeMap<String, String>> {
        self.collect(AnnotationLevel::ManifestDescriptor, Some(platform))
    }

    /// The annotations of the index itself.
    pub fn index(&self) -> Option<BTreeMap<String, String>> {
        self.collect(AnnotationLevel::Index, None)
    }

    fn collect(&self, level: AnnotationLevel, platform: Option<&Platform>) -> Option<BTreeMap<String, String>> {
        let map: BTreeMap<String, String> = self
            .0
            .iter()
            .filter(|a| a.level == level)
            .filter(|a| match (&a.platform, platform) {
                (None, _) => true,
                (Some(want), Some(p)) => same(want, p),
                (Some(_), None) => false,
            })
            .map(|a| (a.key.clone(), a.value.clone()))
            .collect();
        (!map.is_empty()).then_some(map)
    }
}

fn same(a: &Platform, b: &Platform) -> bool {
    a.matches(b) && b.matches(a)
}

fn parse_one(raw: &str) -> Result<Annotation, String> {
    let bad = |why: &str| format!("invalid --annotation {raw:?}: {why}");
    let (left, value) = raw.split_once('=').ok_or_else(|| bad("expected [TYPE[PLATFORM]:]KEY=VALUE"))?;
    let (level, platform, key) = match split_type(left) {
        Some((ty, platform, key)) => {
            let level = match ty {
                "manifest" => AnnotationLevel::Manifest,
                "index" => AnnotationLevel::Index,
                "manifest-descriptor" => AnnotationLevel::ManifestDescriptor,
                "index-descriptor" => {
                    return Err(bad(
                        "index-descriptor annotations exist only in BuildKit's OCI layout exporter; trowel writes none",
                    ));
                }
                _ => unreachable!("split_type knows four types"),
            };
            let platform = match platform {
                Some(p) if level == AnnotationLevel::Index => {
                    return Err(bad(&format!("an index annotation is for every platform, not only {p}")));
                }
                Some(p) => Some(Platform::parse(p).map_err(|e| bad(&e))?),
                None => None,
            };
            (level, platform, key)
        }
        None => (AnnotationLevel::Manifest, None, left),
    };
    if key.is_empty() {
        return Err(bad("the key is empty"));
    }
    // BuildKit's key pattern is `\S+`; control characters are refused too.
    if let Some(c) = key.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(&format!(
            "the key {key:?} has the character {c:?}; keys are like org.opencontainers.image.source"
        )));
    }
    Ok(Annotation { level, platform, key: key.to_string(), value: value.to_string(), raw: raw.to_string() })
}

/// `TYPE[PLATFORM]:KEY` → its parts, when TYPE is one of BuildKit's four.
fn split_type(left: &str) -> Option<(&str, Option<&str>, &str)> {
    let (head, key) = left.split_once(':')?;
    let (ty, platform) = match head.split_once('[') {
        Some((ty, rest)) => (ty, Some(rest.strip_suffix(']')?)),
        None => (head, None),
    };
    matches!(ty, "manifest" | "index" | "manifest-descriptor" | "index-descriptor").then_some((ty, platform, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Annotations, String> {
        Annotations::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    fn map(kv: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn levels_platforms_and_the_last_value_wins() {
        let a = parse(&[
            "org.opencontainers.image.source=https://example.com/app",
            "manifest:com.example.level=manifest",
            "manifest[linux/arm64]:com.example.arch=arm64",
            "index:com.example.index=yes",
            "manifest-descriptor:com.example.d=all",
            "manifest-descriptor[linux/amd64]:com.example.d=amd64",
            "com.example.empty=",
            "com.example.url=a=b",
            "com.example.level=again",
        ])
        .unwrap();
        let (amd, arm) = (p("linux/amd64"), p("linux/arm64"));
        a.check(&[amd.clone(), arm.clone()]).unwrap();
        assert_eq!(
            a.manifest(&arm),
            map(&[
                ("com.example.arch", "arm64"),
                ("com.example.empty", ""),
                ("com.example.level", "again"),
                ("com.example.url", "a=b"),
                ("org.opencontainers.image.source", "https://example.com/app"),
            ])
        );
        assert!(!a.manifest(&amd).unwrap().contains_key("com.example.arch"));
        assert_eq!(a.index(), map(&[("com.example.index", "yes")]));
        assert_eq!(a.manifest_descriptor(&amd), map(&[("com.example.d", "amd64")]));
        assert_eq!(a.manifest_descriptor(&arm), map(&[("com.example.d", "all")]));
        // A key with a colon that is not a type stays a manifest key.
        let a = parse(&["com.example:thing=1"]).unwrap();
        assert_eq!(a.manifest(&amd), map(&[("com.example:thing", "1")]));
        assert!(Annotations::default().manifest(&amd).is_none());
    }

    #[test]
    fn bad_values_are_refused_naming_them() {
        for (v, want) in [
            ("novalue", "expected [TYPE[PLATFORM]:]KEY=VALUE"),
            ("=v", "the key is empty"),
            ("manifest:=v", "the key is empty"),
            ("has space=v", "the character ' '"),
            ("index-descriptor:k=v", "OCI layout exporter"),
            ("manifest[linux/amd65]:k=v", "unknown architecture"),
            ("index[linux/amd64]:k=v", "every platform"),
        ] {
            let e = parse(&[v]).unwrap_err();
            assert!(e.starts_with(&format!("invalid --annotation {v:?}")) && e.contains(want), "{v}: {e}");
        }
    }

    #[test]
    fn what_needs_an_index_or_another_platform_is_refused() {
        let one = [p("linux/amd64")];
        parse(&["k=v", "manifest[linux/amd64]:k=v"]).unwrap().check(&one).unwrap();
        let e = parse(&["index:k=v"]).unwrap().check(&one).unwrap_err();
        assert!(e.contains("index annotations need an image index"), "{e}");
        let e = parse(&["manifest-descriptor:k=v"]).unwrap().check(&one).unwrap_err();
        assert!(e.contains("manifest-descriptor annotations need an image index"), "{e}");
        let e = parse(&["manifest[linux/arm64]:k=v"]).unwrap().check(&one).unwrap_err();
        assert!(e.contains("linux/arm64") && e.contains("not a platform of this build (linux/amd64)"), "{e}");
        // arm64 and arm64/v8 are the same platform.
        parse(&["manifest[linux/arm64/v8]:k=v"]).unwrap().check(&[p("linux/arm64"), p("linux/amd64")]).unwrap();
    }
}
