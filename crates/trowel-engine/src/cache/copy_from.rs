//! Copy-from records: what a `COPY --from=<stage>` copies, kept so that a build whose source
//! stage was served whole from the cache can key the step by its files without reading them.
//!
//! A `COPY --from=<stage>` is keyed by the files it copies (path, type, mode, owner, link target,
//! content digest, xattrs, hard links: what a context COPY's key holds, owners kept), not by the
//! source stage's key, as BuildKit keys it by the content of what it reads. So a builder that
//! ran again and made the same files (a comment edited, a rebuilt binary that is byte for byte
//! the same) leaves the step, and the steps after it, hits. The files are read from the stage's
//! root when the stage has one (it ran); a stage every step of which was a hit has none, and its
//! files are only in layers. For that case a record names the files: what a key records of the
//! stage's files is fixed by its layers in order — a COPY or ADD's by its key (which holds
//! every file it copies as a key records it, whether the step ran, hit, or was never run:
//! `engine/stage/defer.rs`), any other by its diff_id (a RUN's layer is the cached one in
//! every build that hit it) — and what a COPY reads of them by its source arguments,
//! `--exclude` and `--parents`; the [`identity`] of those is the record's name. A build that read the files tags the record in the cache repository; a later one
//! with the same identity takes the files from it (a manifest and a small config, two
//! requests), and reads them (its layers extracted) only when there is none.
//!
//! The record holds paths and digests, never file contents: it is written whatever
//! `--cache-copy-layers` says, unless the build writes nothing to the cache (`--no-push-cache`).
//! It is registry content, so it is checked before use ([`validate`]): named by the identity
//! asked for, sizes bounded, paths relative and sorted, entries well formed. A record that lies
//! can only give the step a key it would not have had: it is looked up like any key, and what
//! it finds is what the cache repository's writers put there.

use serde::{Deserialize, Serialize};

use crate::cache::key::FileEntry;
use crate::digest::Digest;
use crate::image::manifest::{Descriptor, media};

/// The artifact type of a record's manifest and the media type of its config.
pub const MEDIA_TYPE: &str = "application/vnd.dev.trowel.cache.copy-from.v1+json";
/// The config field holding the record.
pub const FIELD: &str = "dev.trowel.cache.copy-from";
/// What a record's identity is computed with; another value names other records.
const VERSION: u32 = 1;
/// The largest config a record's manifest carries in itself (a registry takes manifests of a
/// few MB; this keeps it far below).
const MAX_EMBEDDED: usize = 512 << 10;
/// The longest path or link target a record may hold.
const MAX_PATH: usize = 4096;

/// A layer of a stage, as a record's identity names it.
#[derive(Serialize)]
pub enum Part<'a> {
    /// Made by a COPY or ADD (run, hit, or never run): its key.
    Copy(&'a str),
    /// Any other: its diff_id.
    Layer(&'a Digest),
}

/// What a COPY reads of a stage, and the stage's contents, as a record is named by them.
#[derive(Serialize)]
pub struct Reading<'a> {
    /// The stage's layers, bottom first.
    pub layers: Vec<Part<'a>>,
    /// The source arguments, as written after expansion (wildcards and all).
    pub sources: Vec<&'a str>,
    pub excludes: &'a [String],
    pub parents: bool,
}

/// A record's name: the SHA-256 (hex) of what it is for.
pub fn identity(r: &Reading<'_>) -> String {
    #[derive(Serialize)]
    struct Named<'a> {
        version: u32,
        reading: &'a Reading<'a>,
    }
    let bytes = serde_json::to_vec(&Named { version: VERSION, reading: r }).expect("records serialise");
    Digest::of(&bytes).hex().to_string()
}

/// The cache repository's tag of the record with this identity.
pub fn tag(identity: &str) -> String {
    format!("copy-from-{identity}")
}

/// A record: its identity, and the files, sorted by path, as the step's key holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub identity: String,
    pub files: Vec<FileEntry>,
}

/// Checks a record read from the cache repository for `identity`; why, in words, if it cannot
/// be used.
pub fn validate(r: &Record, identity: &str) -> Result<(), String> {
    if r.identity != identity {
        return Err("it names another identity".into());
    }
    let mut prev: Option<&str> = None;
    for f in &r.files {
        let p = f.path.as_str();
        if p.len() > MAX_PATH || p.starts_with('/') || p.split('/').any(|s| s == ".." || s == ".") {
            return Err(format!("path {:?} is not a clean relative path", truncate(p)));
        }
        // Sorted; a path twice only when two sources hold it (a hard link in one, not the other).
        if prev.is_some_and(|q| q > p) {
            return Err(format!("paths not sorted at {:?}", truncate(p)));
        }
        prev = Some(p);
        if !"fdlcbps".contains(f.kind) {
            return Err(format!("{:?}: unknown kind {:?}", truncate(p), f.kind));
        }
        if (f.kind == 'f') != f.digest.is_some() {
            return Err(format!("{:?}: a digest only and always for a regular file", truncate(p)));
        }
        if (f.kind == 'l') != f.link.is_some() || f.link.as_ref().is_some_and(|l| l.len() > MAX_PATH) {
            return Err(format!("{:?}: a link target only and always for a symlink", truncate(p)));
        }
        if let Some(first) = &f.hard_link
            && (f.kind != 'f' || first.as_str() >= p)
        {
            return Err(format!("{:?}: a hard link to a later path", truncate(p)));
        }
        if f.xattrs.len() > 64 || f.xattrs.keys().any(|k| k.len() > 255) {
            return Err(format!("{:?}: xattrs out of bounds", truncate(p)));
        }
    }
    Ok(())
}

/// The record's config document.
pub fn config_json(r: &Record) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ FIELD: r })).expect("records serialise")
}

/// The record's manifest, naming its config: with the config's bytes in it too (the OCI
/// descriptor's `data`) when they are few, so that a reader needs one request, not two.
pub fn manifest_json(config: &Descriptor, bytes: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let mut desc = serde_json::to_value(config).expect("descriptors serialise");
    if bytes.len() <= MAX_EMBEDDED {
        desc["data"] = base64::engine::general_purpose::STANDARD.encode(bytes).into();
    }
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": MEDIA_TYPE,
        "config": desc,
        "layers": [],
    });
    serde_json::to_vec(&doc).expect("manifests serialise")
}

/// The config's bytes a manifest carries (`data`), when it carries them and they are the
/// bytes its descriptor names (size and digest); `None` otherwise (they are fetched).
pub fn embedded_config(manifest: &[u8], config: &Descriptor) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let doc: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    let data = doc.get("config")?.get("data")?.as_str()?;
    if data.len() > MAX_EMBEDDED.div_ceil(3) * 4 {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).ok()?;
    (bytes.len() as u64 == config.size && Digest::of(&bytes) == config.digest).then_some(bytes)
}

/// The record in a config document, checked for `identity`.
pub fn from_config(bytes: &[u8], identity: &str) -> Result<Record, String> {
    // Straight into the record (a tree of values first would hold every file twice).
    #[derive(Deserialize)]
    struct Doc {
        #[serde(rename = "dev.trowel.cache.copy-from")]
        record: Record,
    }
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| format!("config: {e}"))?;
    validate(&doc.record, identity)?;
    Ok(doc.record)
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn file(path: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind: 'f',
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            link: None,
            digest: Some(Digest::of(path.as_bytes()).into()),
            xattrs: BTreeMap::new(),
            hard_link: None,
        }
    }

    fn record() -> Record {
        Record { identity: "abc".into(), files: vec![file("out"), file("out/app"), file("out/lib")] }
    }

    #[test]
    fn identity_names_the_layers_the_deferred_copies_and_what_is_read() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let base = || Reading {
            layers: vec![Part::Layer(&a), Part::Layer(&b)],
            sources: vec!["/out"],
            excludes: &[],
            parents: false,
        };
        let id = identity(&base());
        assert_eq!(id, identity(&base()), "a function of its inputs");
        assert_eq!(tag(&id).len(), "copy-from-".len() + 64);
        let excl = vec!["*.o".to_string()];
        let others = [
            Reading { layers: vec![Part::Layer(&b), Part::Layer(&a)], ..base() },
            Reading { layers: vec![Part::Layer(&a)], ..base() },
            Reading { layers: vec![Part::Layer(&a), Part::Copy("k"), Part::Layer(&b)], ..base() },
            Reading { sources: vec!["/out/"], ..base() },
            Reading { excludes: &excl, ..base() },
            Reading { parents: true, ..base() },
        ];
        for o in others {
            assert_ne!(identity(&o), id);
        }
    }

    #[test]
    fn the_field_is_named_as_written() {
        assert!(config_json(&record()).starts_with(format!("{{\"{FIELD}\":").as_bytes()));
    }

    #[test]
    fn a_sound_record_round_trips() {
        let r = record();
        let config = config_json(&r);
        assert_eq!(from_config(&config, "abc").unwrap(), r);
        let desc = Descriptor::new(MEDIA_TYPE, Digest::of(&config), config.len() as u64);
        let manifest = manifest_json(&desc, &config);
        let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(m["artifactType"], MEDIA_TYPE);
        assert_eq!(m["layers"], serde_json::json!([]));
        // The config travels in the manifest, and is taken from it only when it is the one named.
        assert_eq!(embedded_config(&manifest, &desc).unwrap(), config);
        let other = Descriptor::new(MEDIA_TYPE, Digest::of(b"other"), config.len() as u64);
        assert_eq!(embedded_config(&manifest, &other), None);
        let big = vec![b' '; MAX_EMBEDDED + 1];
        let big_desc = Descriptor::new(MEDIA_TYPE, Digest::of(&big), big.len() as u64);
        assert_eq!(embedded_config(&manifest_json(&big_desc, &big), &big_desc), None);
    }

    /// A change that makes a record unusable.
    type Spoil = Box<dyn Fn(&mut Record)>;

    #[test]
    fn hostile_records_are_refused() {
        let cases: Vec<(&str, Spoil)> = vec![
            ("another identity", Box::new(|r| r.identity = "abd".into())),
            ("clean relative", Box::new(|r| r.files[1].path = "/etc/passwd".into())),
            ("clean relative", Box::new(|r| r.files[1].path = "out/../../x".into())),
            ("sorted", Box::new(|r| r.files.swap(0, 2))),
            ("kind", Box::new(|r| r.files[0].kind = 'x')),
            ("digest", Box::new(|r| r.files[0].digest = None)),
            ("digest", Box::new(|r| r.files[0].kind = 'd')),
            ("link target", Box::new(|r| r.files[0].link = Some("x".into()))),
            ("later path", Box::new(|r| r.files[1].hard_link = Some("out/lib".into()))),
            ("xattrs", Box::new(|r| r.files[0].xattrs = (0..65).map(|i| (i.to_string(), String::new())).collect())),
        ];
        for (want, spoil) in cases {
            let mut r = record();
            spoil(&mut r);
            let err = validate(&r, "abc").unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
        assert!(from_config(b"{}", "abc").is_err());
        assert!(from_config(b"not json", "abc").is_err());
    }
}
