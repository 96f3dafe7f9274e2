//! Layer reference records: how a COPY/ADD layer kept out of the cache repository (kaniko's
//! default, no `--cache-copy-layers`) is found again by a build with no local state — a fresh
//! CI pod — without the cache repository ever holding the layer's bytes.
//!
//! When such a layer has been pushed with the image, the build tags a *record* under its cache
//! key in the cache repository: an OCI manifest with no layers whose `artifactType` is
//! [`REF_MEDIA_TYPE`] (so that no image tool, and no older trowel reading it as an entry, takes it
//! for a cached layer image), and whose config document rides in the manifest as an entry's does
//! ([`super::inline`]; a record an older trowel wrote, or one too large, has a config blob of
//! that media type instead): the entry's usual record (`dev.trowel.cache`: key, redacted
//! components, earlier keys) plus `dev.trowel.cache.ref`: the layer's descriptor, its diff_id,
//! its history entry and the repositories it was pushed to. The step's pointer tag moves to it, so a later miss is
//! explained against it exactly as against an entry.
//!
//! A later build that finds a record checks that the blob still exists (HEAD in its own
//! destinations, then in the record's repositories) before it counts as a hit; the layer then
//! joins the image by reference, as a base layer does: downloaded only if a later step needs
//! the root or an output needs the bytes (verified against digest and diff_id like any layer),
//! mounted or skipped at push time otherwise.
//!
//! A record is registry content, so everything in it is checked before use ([`validate`]):
//! media types known, sizes bounded, digests well-formed, repositories few and on a registry this
//! build already talks to (the cache repository's or a destination's), never an arbitrary host.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::image::manifest::{Descriptor, media};
use crate::registry::Reference;

/// The artifact type of a record's manifest and the media type of its config.
pub const REF_MEDIA_TYPE: &str = "application/vnd.dev.trowel.cache.layer-ref.v1+json";
/// The config field holding the reference itself.
pub const REF_FIELD: &str = "dev.trowel.cache.ref";
/// Repositories a record may name (one per destination of the build that wrote it).
const MAX_REPOSITORIES: usize = 16;
/// The largest layer a record may describe; anything larger is not a layer trowel wrote.
const MAX_LAYER_SIZE: u64 = 1 << 40;
/// The longest `created_by` a record may carry (an instruction, redacted).
const MAX_CREATED_BY: usize = 1 << 20;

/// The history entry the layer had in the image it was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefHistory {
    pub created: String,
    pub created_by: String,
}

/// What a record says about its layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefRecord {
    pub layer: Descriptor,
    pub diff_id: Digest,
    pub history: RefHistory,
    /// The repositories (`registry/path`, no tag) the image holding the layer was pushed to.
    pub repositories: Vec<String>,
}

/// Checks a record read from a registry; the reason, in words, if it cannot be used.
pub fn validate(r: &RefRecord) -> Result<Vec<Reference>, String> {
    let known = [media::OCI_LAYER_GZIP, media::OCI_LAYER_ZSTD, media::OCI_LAYER, media::DOCKER_LAYER_GZIP];
    if !known.contains(&r.layer.media_type.as_str()) {
        return Err(format!("unknown layer media type {:?}", truncate(&r.layer.media_type)));
    }
    if r.layer.size == 0 || r.layer.size > MAX_LAYER_SIZE {
        return Err(format!("layer size {} out of range", r.layer.size));
    }
    if r.layer.urls.is_some() {
        return Err("a layer with foreign URLs".into());
    }
    if chrono::DateTime::parse_from_rfc3339(&r.history.created).is_err() {
        return Err(format!("history time {:?} is not RFC 3339", truncate(&r.history.created)));
    }
    if r.history.created_by.len() > MAX_CREATED_BY {
        return Err("history entry too long".into());
    }
    if r.repositories.is_empty() || r.repositories.len() > MAX_REPOSITORIES {
        return Err(format!("{} repositories (1 to {MAX_REPOSITORIES} expected)", r.repositories.len()));
    }
    r.repositories
        .iter()
        .map(|s| match Reference::parse(s) {
            Ok(repo) if repo.digest.is_none() && !s.contains('@') && repo.repo_ref() == *s => Ok(repo),
            _ => Err(format!("repository {:?} is not a repository reference", truncate(s))),
        })
        .collect()
}

/// The record's config document: the entry's usual record plus the reference, written
/// straight from them (no `serde_json::Value` of the components, which list every file).
pub(crate) fn config_json(info: &super::registry::EntryInfoRef<'_>, record: &RefRecord) -> Vec<u8> {
    #[derive(Serialize)]
    struct Doc<'a> {
        created: &'a str,
        #[serde(rename = "dev.trowel.cache")]
        info: &'a super::registry::EntryInfoRef<'a>,
        #[serde(rename = "dev.trowel.cache.ref")]
        record: &'a RefRecord,
    }
    serde_json::to_vec(&Doc { created: &record.history.created, info, record }).expect("records serialise")
}

/// The record's manifest, naming its config.
pub fn manifest_json(config: &Descriptor) -> Vec<u8> {
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": REF_MEDIA_TYPE,
        "config": config,
        "layers": [],
    });
    serde_json::to_vec(&doc).expect("manifests serialise")
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RefRecord {
        RefRecord {
            layer: Descriptor::new(media::OCI_LAYER_GZIP, Digest::of(b"layer"), 123),
            diff_id: Digest::of(b"tar"),
            history: RefHistory { created: "2026-01-02T03:04:05Z".into(), created_by: "COPY a /a".into() },
            repositories: vec!["127.0.0.1:5000/app".into()],
        }
    }

    #[test]
    fn a_sound_record_names_its_repositories() {
        let repos = validate(&record()).unwrap();
        assert_eq!(repos.len(), 1);
        assert_eq!(repos[0].registry, "127.0.0.1:5000");
        assert_eq!(repos[0].repository, "app");
    }

    /// A change that makes a record unusable.
    type Spoil = Box<dyn Fn(&mut RefRecord)>;

    #[test]
    fn hostile_records_are_refused() {
        let cases: Vec<(&str, Spoil)> = vec![
            ("media type", Box::new(|r| r.layer.media_type = "text/html".into())),
            ("size", Box::new(|r| r.layer.size = 0)),
            ("size", Box::new(|r| r.layer.size = u64::MAX)),
            ("URLs", Box::new(|r| r.layer.urls = Some(vec!["http://elsewhere/x".into()]))),
            ("RFC 3339", Box::new(|r| r.history.created = "yesterday".into())),
            ("repositories", Box::new(|r| r.repositories.clear())),
            ("repositories", Box::new(|r| r.repositories = vec!["127.0.0.1:5000/a".into(); 17])),
            ("not a repository", Box::new(|r| r.repositories = vec!["127.0.0.1:5000/app:tag".into()])),
            (
                "not a repository",
                Box::new(|r| r.repositories = vec![format!("127.0.0.1:5000/app@{}", Digest::of(b""))]),
            ),
            ("not a repository", Box::new(|r| r.repositories = vec!["../../etc".into()])),
        ];
        for (want, mutate) in cases {
            let mut r = record();
            mutate(&mut r);
            let err = validate(&r).unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn a_malformed_digest_does_not_parse() {
        let mut v = serde_json::to_value(record()).unwrap();
        v["layer"]["digest"] = "sha256:zz".into();
        assert!(serde_json::from_value::<RefRecord>(v.clone()).is_err());
        v["layer"]["digest"] = serde_json::to_value(Digest::of(b"x")).unwrap();
        v["diff_id"] = "md5:abc".into();
        assert!(serde_json::from_value::<RefRecord>(v).is_err());
    }

    #[test]
    fn the_manifest_is_marked_as_a_record() {
        let m: serde_json::Value =
            serde_json::from_slice(&manifest_json(&Descriptor::new(REF_MEDIA_TYPE, Digest::of(b"c"), 1))).unwrap();
        assert_eq!(m["artifactType"], REF_MEDIA_TYPE);
        assert_eq!(m["config"]["mediaType"], REF_MEDIA_TYPE);
        assert_eq!(m["layers"], serde_json::json!([]));
    }
}
