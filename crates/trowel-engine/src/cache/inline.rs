//! Cache entries (and layer reference records) whose config rides in their manifest.
//!
//! An entry used to be a manifest naming a config blob of its own. To a distribution registry
//! that blob costs an upload session and a commit (a `POST` and a `PUT`, about 15 ms of its CPU,
//! the most of any request a small cold build sends), and a lookup that finds the entry a second
//! `GET`. A small cold build is bound by the registry's CPU on the same cores (bench/README,
//! "The floors"), so each entry's config now goes into its manifest instead: the manifest is an
//! OCI 1.1 artifact whose config is the shared empty descriptor (`{}`, the same blob for every
//! entry, looked for once per build and uploaded once per repository) and whose
//! [`CONFIG_ANNOTATION`] holds the config document, byte for byte what the blob would have held.
//! An entry is then written with its layer (if any) and two manifest `PUT`s, and read with one
//! `GET`.
//!
//! A config too large for a manifest (a COPY of thousands of files lists every one) keeps its
//! own blob, as every entry did before; readers take both forms, so a cache repository written
//! by an older trowel stays usable. A config read either way goes through the same checks.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::image::manifest::{Descriptor, Manifest, media};

/// OCI 1.1's empty descriptor: the config of an artifact with nothing to configure.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The empty descriptor's content.
pub const EMPTY: &[u8] = b"{}";
/// The artifact type of an inline entry (a layer reference record keeps its own,
/// [`super::layer_ref::REF_MEDIA_TYPE`]).
pub const ENTRY_ARTIFACT_TYPE: &str = "application/vnd.dev.trowel.cache.entry.v1+json";
/// The manifest annotation holding the config document.
pub const CONFIG_ANNOTATION: &str = "dev.trowel.cache.config";
/// The largest manifest an entry is written as: far under the 4 MiB that distribution, ECR and
/// Docker Hub accept, so that a registry with a lower limit is unlikely to refuse one. A larger
/// config goes into a blob.
pub const MAX_INLINE: usize = 256 << 10;

/// The shared config blob's descriptor.
pub fn empty_descriptor() -> Descriptor {
    Descriptor::new(EMPTY_MEDIA_TYPE, Digest::of(EMPTY), EMPTY.len() as u64)
}

/// The manifest of an entry of `artifact_type` whose config is `config`, with `layers`; `None`
/// when it would be larger than [`MAX_INLINE`] (or the config is not text).
pub fn manifest(artifact_type: &str, config: &[u8], layers: Vec<Descriptor>) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(config).ok()?;
    if text.len() > MAX_INLINE {
        return None;
    }
    let m = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_string()),
        artifact_type: Some(artifact_type.to_string()),
        config: empty_descriptor(),
        layers,
        annotations: Some(BTreeMap::from([(CONFIG_ANNOTATION.to_string(), text.to_string())])),
    };
    let bytes = m.to_bytes();
    (bytes.len() <= MAX_INLINE).then_some(bytes)
}

/// Where a manifest read from the cache repository keeps its config.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigAt {
    /// In its annotation: the document's bytes.
    Inline(Vec<u8>),
    /// In the blob its config descriptor names (the older form, and large configs).
    Blob,
}

/// Tells where `m`'s config is. An empty config with no document, or anything but the empty
/// blob under the empty media type, is not a form trowel writes: `Err` says why.
pub fn config_at(m: &Manifest) -> Result<ConfigAt, String> {
    if m.config.media_type != EMPTY_MEDIA_TYPE {
        return Ok(ConfigAt::Blob);
    }
    if m.config.digest != Digest::of(EMPTY) || m.config.size != EMPTY.len() as u64 {
        return Err(format!("an empty config that is not {{}} ({}, {} bytes)", m.config.digest, m.config.size));
    }
    match m.annotations.as_ref().and_then(|a| a.get(CONFIG_ANNOTATION)) {
        Some(doc) => Ok(ConfigAt::Inline(doc.as_bytes().to_vec())),
        None => Err(format!("an empty config and no {CONFIG_ANNOTATION} annotation")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> Descriptor {
        Descriptor::new(media::OCI_LAYER_GZIP, Digest::of(b"layer"), 5)
    }

    #[test]
    fn the_config_comes_back_byte_for_byte() {
        let config = br#"{"created":"2026-01-01T00:00:00Z","dev.trowel.cache":{"key":"k \"quoted\""}}"#;
        let bytes = manifest(ENTRY_ARTIFACT_TYPE, config, vec![layer()]).unwrap();
        let m: Manifest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some(ENTRY_ARTIFACT_TYPE));
        assert_eq!(m.config, empty_descriptor());
        assert_eq!(m.layers, vec![layer()]);
        assert_eq!(config_at(&m).unwrap(), ConfigAt::Inline(config.to_vec()));
    }

    #[test]
    fn the_empty_descriptor_is_oci_s() {
        let d = empty_descriptor();
        assert_eq!(d.digest.to_string(), "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
        assert_eq!(d.size, 2);
    }

    #[test]
    fn a_config_too_large_for_a_manifest_is_not_inlined() {
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_INLINE));
        assert!(manifest(ENTRY_ARTIFACT_TYPE, big.as_bytes(), vec![]).is_none());
        // Escaping can take a config under the limit over it: the manifest's size decides.
        let quotes = format!("{{\"x\":\"{}\"}}", "\\\"".repeat(MAX_INLINE / 2 - 8));
        assert!(quotes.len() <= MAX_INLINE);
        assert!(manifest(ENTRY_ARTIFACT_TYPE, quotes.as_bytes(), vec![]).is_none());
    }

    #[test]
    fn a_blob_config_is_read_as_before_and_a_malformed_empty_one_is_refused() {
        let old = Manifest::new(
            crate::image::manifest::ManifestFormat::Oci,
            Descriptor::new(media::OCI_CONFIG, Digest::of(b"c"), 1),
            vec![],
        );
        assert_eq!(config_at(&old).unwrap(), ConfigAt::Blob);
        let mut no_doc = old.clone();
        no_doc.config = empty_descriptor();
        assert!(config_at(&no_doc).unwrap_err().contains(CONFIG_ANNOTATION));
        let mut other = no_doc.clone();
        other.config.digest = Digest::of(b"{ }");
        assert!(config_at(&other).unwrap_err().contains("not {}"));
    }
}
