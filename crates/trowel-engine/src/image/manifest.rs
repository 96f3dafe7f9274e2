//! Manifests, indexes and descriptors, in both Docker schema2 and OCI flavours.
//!
//! These are trowel's own serde types rather than oci-spec's: a pushed manifest's digest is the
//! hash of its exact bytes, and the Docker media types must round-trip untouched, so the
//! serialisation is kept under our control (field order, no nulls, no defaults added).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::image::platform_match::Only;

pub mod media {
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_NONDIST_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

    /// Every manifest type trowel can read, for the registry `Accept` header.
    pub const ACCEPT_MANIFESTS: &[&str] = &[OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
}

/// Compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Compression implied by a layer media type (`None` for unknown types).
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        if mt.ends_with("+zstd") || mt.ends_with(".zstd") {
            Some(Compression::Zstd)
        } else if mt.ends_with("+gzip") || mt.ends_with(".gzip") {
            Some(Compression::Gzip)
        } else if mt.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }
}

/// Which family of media types an image uses. trowel follows the base image: a Docker schema2
/// base gives a Docker schema2 result, an OCI base (or `scratch`, or zstd layers) an OCI one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestFormat {
    Docker,
    Oci,
}

impl ManifestFormat {
    pub fn from_manifest_media_type(mt: &str) -> ManifestFormat {
        if mt == media::DOCKER_MANIFEST { ManifestFormat::Docker } else { ManifestFormat::Oci }
    }
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Docker => media::DOCKER_MANIFEST,
            ManifestFormat::Oci => media::OCI_MANIFEST,
        }
    }
    pub fn config_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Docker => media::DOCKER_CONFIG,
            ManifestFormat::Oci => media::OCI_CONFIG,
        }
    }
    /// Layer media type for a compression. Docker schema2 has no zstd or uncompressed layer type,
    /// so those force the OCI format (see [`ManifestFormat::for_compression`]).
    pub fn layer_media_type(self, c: Compression) -> &'static str {
        match (self, c) {
            (ManifestFormat::Docker, Compression::Gzip) => media::DOCKER_LAYER_GZIP,
            (_, Compression::Gzip) => media::OCI_LAYER_GZIP,
            (_, Compression::Zstd) => media::OCI_LAYER_ZSTD,
            (_, Compression::None) => media::OCI_LAYER,
        }
    }
    /// The format to produce given the base's format and the requested compression.
    pub fn for_compression(self, c: Compression) -> ManifestFormat {
        if c == Compression::Gzip { self } else { ManifestFormat::Oci }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parses a platform as a person writes it (`--platform`, `--custom-platform`, `FROM
    /// --platform`): checked and normalised as containerd's `platforms.Parse` and `Normalize`
    /// do, so `linux/x86_64`, `AMD64` and `linux/amd64` are one platform wherever written (see
    /// `image/platform.rs`).
    pub fn parse(s: &str) -> Result<Platform, String> {
        crate::image::platform::parse(s)
    }

    /// Parses `os/arch[/variant]` as written (`linux/arm64/v8` keeps its `v8`), unchecked: for
    /// platforms a registry lists, or a test names exactly.
    pub fn parse_exact(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!("invalid platform {s:?}: expected os/arch[/variant]"));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            os_version: None,
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }

    /// The platform trowel runs on (what `RUN` can execute).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        let variant = if arch == "arm64" { Some("v8".to_string()) } else { None };
        Platform { os: "linux".into(), architecture: arch.into(), os_version: None, variant }
    }

    /// Whether an index entry for `other` can serve a request for this platform: the same
    /// platform once normalised, or one it runs the code of (see [`Only`]).
    pub fn matches(&self, other: &Platform) -> bool {
        Only::new(self).rank(other).is_some()
    }

    /// This platform as containerd normalises it (aliases, default variants made explicit or
    /// dropped: `aarch64` is `arm64`, `arm` is `arm/v7`, `amd64/v1` is `amd64`).
    pub fn normalized(&self) -> Platform {
        crate::image::platform::normalize(self)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor { media_type: media_type.into(), digest, size, urls: None, annotations: None, platform: None }
    }
}

/// An image manifest (Docker schema2 or OCI; the field layout is the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// What an artifact (not an image) holds: OCI 1.1's field, kept when a manifest is read
    /// and written again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Manifest {
    pub fn new(format: ManifestFormat, config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(format.manifest_media_type().to_string()),
            artifact_type: None,
            config,
            layers,
            annotations: None,
        }
    }

    pub fn format(&self) -> ManifestFormat {
        match self.media_type.as_deref() {
            Some(mt) => ManifestFormat::from_manifest_media_type(mt),
            None if self.config.media_type == media::DOCKER_CONFIG => ManifestFormat::Docker,
            None => ManifestFormat::Oci,
        }
    }

    /// Canonical bytes trowel pushes (compact JSON, stable field order).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifest serialises")
    }
}

/// A manifest list / image index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Index {
    /// Picks the manifest for `platform` as BuildKit does (containerd's `platforms.Only`): the
    /// platform itself, else the most preferred one it can run (see [`Only`]).
    pub fn select(&self, platform: &Platform) -> Option<&Descriptor> {
        let at = Only::new(platform).best(self.manifests.iter().map(|d| d.platform.as_ref()))?;
        Some(&self.manifests[at])
    }
}

/// True if a manifest media type denotes an index / manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == media::OCI_INDEX || media_type == media::DOCKER_MANIFEST_LIST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_matching() {
        let want = Platform::parse("linux/arm64").unwrap();
        let v8 = Platform::parse_exact("linux/arm64/v8").unwrap();
        assert!(want.matches(&v8));
        let arm7 = Platform::parse("linux/arm/v7").unwrap();
        let arm6 = Platform::parse("linux/arm/v6").unwrap();
        // arm/v7 runs arm/v6 code, not the other way round.
        assert!(arm7.matches(&arm6));
        assert!(!arm6.matches(&arm7));
        assert!(Platform::parse_exact("linux").is_err());
        assert_eq!(Platform::parse("linux/arm64/v8").unwrap(), want);
        assert_eq!(Platform::parse("linux/arm/v7").unwrap().to_string(), "linux/arm/v7");
    }

    #[test]
    fn manifest_round_trip_keeps_docker_types() {
        let raw = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;
        let m: Manifest = serde_json::from_str(raw).unwrap();
        assert_eq!(m.format(), ManifestFormat::Docker);
        assert_eq!(String::from_utf8(m.to_bytes()).unwrap(), raw);
    }
}
