//! The image index of a build for several platforms: one manifest per platform, named by one
//! index that the destinations' tags, the digest files and the local outputs point at.
//!
//! Media type: the index follows the manifests it names, as BuildKit's image exporter does
//! (`exporter/containerimage/writer.go`: an OCI index, or a Docker manifest list when
//! `oci-mediatypes=false` makes the manifests Docker schema2). trowel's manifests already follow
//! the base image (see [`ManifestFormat`]), so: OCI manifests → an OCI image index
//! (`application/vnd.oci.image.index.v1+json`), Docker schema2 manifests → a Docker manifest list
//! (`application/vnd.docker.distribution.manifest.list.v2+json`). A Docker manifest list may only
//! name Docker manifests, which is why it is used exactly when every platform's manifest is one;
//! bases of different formats per platform give an OCI index (readers accept Docker-typed entries
//! in an OCI index: containerd, containers/image and the distribution registry all do).
//! buildah defaults to an OCI index too (`buildah manifest push --format oci`).
//!
//! The bytes are deterministic: the entries keep the order of the platforms as given (the order
//! of `--platform`), fields are written in a fixed order, and nothing time-dependent is added, so
//! the same images give the same index digest.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::digest::Digest;
use crate::image::annotations::Annotations;
use crate::image::manifest::{Descriptor, ManifestFormat, Platform, media};
use crate::image::outputs::FinalImage;

/// One platform's entry of a [`FinalIndex`].
#[derive(Debug, Clone)]
pub struct IndexEntry {
    /// The platform as written in the index (the requested one, completed from the config:
    /// the variant when none was asked for, `os.version`).
    pub platform: Platform,
    /// `os.features` from the image config, if it has them.
    pub os_features: Option<Vec<String>>,
    /// The manifest's descriptor, its `platform` set.
    pub descriptor: Descriptor,
    pub image: FinalImage,
}

/// An image index over each platform's [`FinalImage`]; its blobs are the images' blobs (in the
/// build's `BlobStore`) plus [`FinalIndex::bytes`].
#[derive(Debug, Clone)]
pub struct FinalIndex {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    /// [`media::OCI_INDEX`] or [`media::DOCKER_MANIFEST_LIST`] (see the module comment).
    pub media_type: &'static str,
    pub entries: Vec<IndexEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("an image index needs at least one platform's image")]
    Empty,
    /// Two entries would name the same platform: a client could not tell which to pull.
    #[error("platform {platform} is given twice (as {first} and {second}): each platform can be built once")]
    DuplicatePlatform { platform: String, first: String, second: String },
    /// The image's config says another platform than the one it is listed for.
    #[error("the image for {platform} has a config for {config}")]
    ConfigMismatch { platform: String, config: String },
    #[error("the image config for {platform} is not a JSON object: {reason}")]
    BadConfig { platform: String, reason: String },
}

impl FinalIndex {
    /// Builds the index naming `images`, in the order given.
    pub fn new(images: &[(Platform, &FinalImage)]) -> Result<FinalIndex, IndexError> {
        FinalIndex::annotated(images, &Annotations::default())
    }

    /// [`FinalIndex::new`] with `--annotation`s on the index and its entries. An annotated index
    /// is always an OCI index: a Docker manifest list has no annotations.
    pub fn annotated(images: &[(Platform, &FinalImage)], annotations: &Annotations) -> Result<FinalIndex, IndexError> {
        if images.is_empty() {
            return Err(IndexError::Empty);
        }
        let mut entries: Vec<IndexEntry> = Vec::with_capacity(images.len());
        for (wanted, image) in images {
            let entry = entry_for(wanted, image)?;
            if let Some(prev) = entries.iter().find(|e| same_platform(&e.platform, &entry.platform)) {
                return Err(IndexError::DuplicatePlatform {
                    platform: normalized(&entry.platform).to_string(),
                    first: prev.platform.to_string(),
                    second: entry.platform.to_string(),
                });
            }
            entries.push(entry);
        }
        for e in &mut entries {
            e.descriptor.annotations = annotations.manifest_descriptor(&e.platform);
        }
        let media_type =
            if annotations.is_empty() && entries.iter().all(|e| e.image.manifest.format() == ManifestFormat::Docker) {
                media::DOCKER_MANIFEST_LIST
            } else {
                media::OCI_INDEX
            };
        let index_annotations = annotations.index();
        let raw = RawIndex {
            schema_version: 2,
            media_type,
            manifests: entries
                .iter()
                .map(|e| RawEntry {
                    media_type: &e.descriptor.media_type,
                    digest: e.descriptor.digest.as_str(),
                    size: e.descriptor.size,
                    annotations: e.descriptor.annotations.as_ref(),
                    platform: RawPlatform {
                        architecture: &e.platform.architecture,
                        os: &e.platform.os,
                        os_version: e.platform.os_version.as_deref(),
                        os_features: e.os_features.as_deref(),
                        variant: e.platform.variant.as_deref(),
                    },
                })
                .collect(),
            annotations: index_annotations.as_ref(),
        };
        let bytes = serde_json::to_vec(&raw).expect("index serialises");
        Ok(FinalIndex { digest: Digest::of(&bytes), bytes, media_type, entries })
    }

    /// The index's own descriptor (what `index.json` and a registry tag point at).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type, self.digest.clone(), self.bytes.len() as u64)
    }

    /// The platforms, in index order.
    pub fn platforms(&self) -> impl Iterator<Item = &Platform> {
        self.entries.iter().map(|e| &e.platform)
    }
}

fn entry_for(wanted: &Platform, image: &FinalImage) -> Result<IndexEntry, IndexError> {
    let config: serde_json::Value = serde_json::from_slice(&image.config_bytes)
        .map_err(|e| IndexError::BadConfig { platform: wanted.to_string(), reason: e.to_string() })?;
    let Some(obj) = config.as_object() else {
        return Err(IndexError::BadConfig { platform: wanted.to_string(), reason: "not an object".into() });
    };
    let text = |k: &str| obj.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let have = Platform {
        os: text("os").unwrap_or_default(),
        architecture: text("architecture").unwrap_or_default(),
        os_version: text("os.version"),
        variant: text("variant"),
    };
    // The index must describe the image truthfully: a client picks by this entry and then runs
    // whatever the config says.
    let variant_conflicts = wanted.variant.is_some() && normalized(wanted).variant != normalized(&have).variant;
    if have.os != wanted.os || have.architecture != wanted.architecture || variant_conflicts {
        return Err(IndexError::ConfigMismatch { platform: wanted.to_string(), config: have.to_string() });
    }
    let platform = Platform {
        os: wanted.os.clone(),
        architecture: wanted.architecture.clone(),
        os_version: wanted.os_version.clone().or(have.os_version),
        variant: wanted.variant.clone().or(have.variant),
    };
    let os_features = obj
        .get("os.features")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect::<Vec<_>>());
    let mut descriptor =
        Descriptor::new(image.manifest_media_type(), image.manifest_digest.clone(), image.manifest_bytes.len() as u64);
    descriptor.platform = Some(platform.clone());
    Ok(IndexEntry { platform, os_features, descriptor, image: image.clone() })
}

/// The platform with containerd's default variants spelled out (`platforms.Normalize`): arm64
/// means `v8`, arm means `v7`, amd64's `v1` is no variant; `8` and `v8` are the same.
fn normalized(p: &Platform) -> Platform {
    let variant = p.variant.as_deref().map(|v| if v.starts_with('v') { v.to_string() } else { format!("v{v}") });
    let variant = match (p.architecture.as_str(), variant.as_deref()) {
        ("arm64", None | Some("v8" | "v8.0")) => Some("v8".to_string()),
        ("arm", None) => Some("v7".to_string()),
        ("amd64", Some("v1")) => None,
        _ => variant,
    };
    Platform { variant, ..p.clone() }
}

fn same_platform(a: &Platform, b: &Platform) -> bool {
    normalized(a) == normalized(b)
}

/// The serialised shape: field order as in the OCI image-index spec's examples.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RawIndex<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: Vec<RawEntry<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a BTreeMap<String, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a BTreeMap<String, String>>,
    platform: RawPlatform<'a>,
}

#[derive(Serialize)]
struct RawPlatform<'a> {
    architecture: &'a str,
    os: &'a str,
    #[serde(rename = "os.version", skip_serializing_if = "Option::is_none")]
    os_version: Option<&'a str>,
    #[serde(rename = "os.features", skip_serializing_if = "Option::is_none")]
    os_features: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::manifest::{Index, Manifest};

    fn image(format: ManifestFormat, config: serde_json::Value) -> FinalImage {
        let config_bytes = serde_json::to_vec(&config).unwrap();
        let config_digest = Digest::of(&config_bytes);
        let manifest = Manifest::new(
            format,
            Descriptor::new(format.config_media_type(), config_digest.clone(), config_bytes.len() as u64),
            vec![],
        );
        let manifest_bytes = manifest.to_bytes();
        FinalImage {
            manifest_digest: Digest::of(&manifest_bytes),
            manifest,
            manifest_bytes,
            config_bytes,
            config_digest,
        }
    }

    fn p(s: &str) -> Platform {
        Platform::parse_exact(s).unwrap()
    }

    #[test]
    fn oci_manifests_give_an_oci_index_naming_each_platform() {
        let amd = image(ManifestFormat::Oci, serde_json::json!({"os": "linux", "architecture": "amd64"}));
        let arm =
            image(ManifestFormat::Oci, serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"}));
        let idx = FinalIndex::new(&[(p("linux/amd64"), &amd), (p("linux/arm64"), &arm)]).unwrap();
        assert_eq!(idx.media_type, media::OCI_INDEX);
        assert_eq!(idx.digest, Digest::of(&idx.bytes));
        let parsed: Index = serde_json::from_slice(&idx.bytes).unwrap();
        assert_eq!(parsed.media_type.as_deref(), Some(media::OCI_INDEX));
        assert_eq!(parsed.manifests.len(), 2);
        assert_eq!(parsed.manifests[0].digest, amd.manifest_digest);
        assert_eq!(parsed.manifests[0].size, amd.manifest_bytes.len() as u64);
        assert_eq!(parsed.manifests[0].media_type, media::OCI_MANIFEST);
        // The arm64 variant comes from the config when `--platform` did not name one.
        assert_eq!(parsed.manifests[1].platform, Some(p("linux/arm64/v8")));
        assert_eq!(parsed.select(&p("linux/arm64")).unwrap().digest, arm.manifest_digest);
        // Same inputs, same bytes; another order is another index.
        let again = FinalIndex::new(&[(p("linux/amd64"), &amd), (p("linux/arm64"), &arm)]).unwrap();
        assert_eq!(again.bytes, idx.bytes);
        let swapped = FinalIndex::new(&[(p("linux/arm64"), &arm), (p("linux/amd64"), &amd)]).unwrap();
        assert_ne!(swapped.digest, idx.digest);
    }

    #[test]
    fn docker_manifests_give_a_manifest_list_and_mixed_ones_an_oci_index() {
        let amd = image(ManifestFormat::Docker, serde_json::json!({"os": "linux", "architecture": "amd64"}));
        let arm = image(ManifestFormat::Docker, serde_json::json!({"os": "linux", "architecture": "arm64"}));
        let idx = FinalIndex::new(&[(p("linux/amd64"), &amd), (p("linux/arm64"), &arm)]).unwrap();
        assert_eq!(idx.media_type, media::DOCKER_MANIFEST_LIST);
        let v: serde_json::Value = serde_json::from_slice(&idx.bytes).unwrap();
        assert_eq!(v["mediaType"], media::DOCKER_MANIFEST_LIST);
        assert_eq!(v["manifests"][1]["mediaType"], media::DOCKER_MANIFEST);
        assert!(v["manifests"][1]["platform"].get("variant").is_none());
        let oci_arm = image(ManifestFormat::Oci, serde_json::json!({"os": "linux", "architecture": "arm64"}));
        let mixed = FinalIndex::new(&[(p("linux/amd64"), &amd), (p("linux/arm64"), &oci_arm)]).unwrap();
        assert_eq!(mixed.media_type, media::OCI_INDEX);
    }

    #[test]
    fn os_version_and_features_come_from_the_config() {
        let win = image(
            ManifestFormat::Oci,
            serde_json::json!({"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1",
                               "os.features": ["win32k"]}),
        );
        let idx = FinalIndex::new(&[(p("windows/amd64"), &win)]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&idx.bytes).unwrap();
        assert_eq!(
            v["manifests"][0]["platform"],
            serde_json::json!({"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.1",
                               "os.features": ["win32k"]})
        );
        assert_eq!(idx.entries[0].os_features.as_deref(), Some(&["win32k".to_string()][..]));
    }

    #[test]
    fn annotations_go_on_the_index_and_its_entries_and_make_it_oci() {
        let amd = image(ManifestFormat::Docker, serde_json::json!({"architecture": "amd64", "os": "linux"}));
        let arm = image(ManifestFormat::Docker, serde_json::json!({"architecture": "arm64", "os": "linux"}));
        let a = Annotations::parse(&[
            "index:org.opencontainers.image.description=both".to_string(),
            "manifest-descriptor[linux/arm64]:com.example.arch=arm".to_string(),
        ])
        .unwrap();
        let idx = FinalIndex::annotated(&[(p("linux/amd64"), &amd), (p("linux/arm64"), &arm)], &a).unwrap();
        assert_eq!(idx.media_type, media::OCI_INDEX);
        let parsed: Index = serde_json::from_slice(&idx.bytes).unwrap();
        assert_eq!(parsed.annotations.unwrap()["org.opencontainers.image.description"], "both");
        assert_eq!(parsed.manifests[0].annotations, None);
        assert_eq!(parsed.manifests[1].annotations.as_ref().unwrap()["com.example.arch"], "arm");
        assert_eq!(idx.entries[1].descriptor.annotations, parsed.manifests[1].annotations);
        // Without annotations the bytes are as before: no empty fields.
        let plain = FinalIndex::new(&[(p("linux/amd64"), &amd), (p("linux/arm64"), &arm)]).unwrap();
        assert!(!String::from_utf8(plain.bytes).unwrap().contains("annotations"));
    }

    #[test]
    fn the_same_platform_twice_is_refused() {
        let a = image(ManifestFormat::Oci, serde_json::json!({"os": "linux", "architecture": "arm64"}));
        let b =
            image(ManifestFormat::Oci, serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"}));
        let e = FinalIndex::new(&[(p("linux/arm64"), &a), (p("linux/arm64/v8"), &b)]).unwrap_err();
        assert!(matches!(e, IndexError::DuplicatePlatform { .. }), "{e}");
        assert!(e.to_string().contains("linux/arm64/v8"), "{e}");
        let amd = image(ManifestFormat::Oci, serde_json::json!({"os": "linux", "architecture": "amd64"}));
        let e = FinalIndex::new(&[(p("linux/amd64"), &amd), (p("linux/amd64/v1"), &amd)]).unwrap_err();
        assert!(matches!(e, IndexError::DuplicatePlatform { .. }), "{e}");
        // Different arm variants are different platforms.
        let v6 = image(ManifestFormat::Oci, serde_json::json!({"os": "linux", "architecture": "arm", "variant": "v6"}));
        let v7 = image(ManifestFormat::Oci, serde_json::json!({"os": "linux", "architecture": "arm", "variant": "v7"}));
        FinalIndex::new(&[(p("linux/arm/v6"), &v6), (p("linux/arm/v7"), &v7)]).unwrap();
    }

    #[test]
    fn an_entry_must_describe_its_image_truthfully() {
        let amd = image(ManifestFormat::Oci, serde_json::json!({"os": "linux", "architecture": "amd64"}));
        let e = FinalIndex::new(&[(p("linux/arm64"), &amd)]).unwrap_err();
        assert_eq!(e, IndexError::ConfigMismatch { platform: "linux/arm64".into(), config: "linux/amd64".into() });
        let v6 = image(ManifestFormat::Oci, serde_json::json!({"os": "linux", "architecture": "arm", "variant": "v6"}));
        assert!(FinalIndex::new(&[(p("linux/arm/v7"), &v6)]).is_err());
        assert_eq!(FinalIndex::new(&[]).unwrap_err(), IndexError::Empty);
    }
}
