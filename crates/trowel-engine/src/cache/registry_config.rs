//! The config documents of cache entries and layer reference records, serialized straight
//! from borrowed records. A COPY's key components list every file it copies: a clone of them
//! made into a `serde_json::Value` on the way to bytes took 80 MB for 100,000 files, where
//! the bytes themselves are 10 MB. The documents are byte for byte what that built (pinned
//! below against it), so entries and records read as before.

use serde::Serialize;
use serde_json::json;

use super::{FIELD, KeyComponents};
use crate::digest::Digest;
use crate::image::manifest::Platform;

/// [`super::EntryInfo`] as a write makes it, borrowing the components: serialized exactly as
/// an `EntryInfo` is.
#[derive(Debug, Serialize)]
pub(crate) struct EntryInfoRef<'a> {
    pub key: &'a str,
    pub components: &'a KeyComponents,
    pub created_by: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<String>,
}

/// An entry's config document, in the order of its fields (an image config, which image
/// tools can read, with the entry's record under [`FIELD`]).
#[derive(Serialize)]
struct EntryConfig<'a> {
    created: &'a str,
    architecture: &'a str,
    os: &'a str,
    config: serde_json::Value,
    rootfs: serde_json::Value,
    history: serde_json::Value,
    #[serde(rename = "dev.trowel.cache")]
    info: &'a EntryInfoRef<'a>,
}

/// The bytes of an entry's config (see [`EntryConfig`]), written straight from the borrowed
/// record: no copy of the components, no `serde_json::Value` of them.
pub(super) fn entry_config(
    info: &EntryInfoRef<'_>,
    platform: &Platform,
    created: &str,
    diff_id: Option<&Digest>,
) -> Vec<u8> {
    let doc = EntryConfig {
        created,
        architecture: &platform.architecture,
        os: &platform.os,
        config: json!({"Labels": {FIELD: "1"}}),
        rootfs: json!({"type": "layers", "diff_ids": diff_id.iter().map(|d| d.as_str()).collect::<Vec<_>>()}),
        history: json!([{"created": created, "created_by": info.created_by, "empty_layer": diff_id.is_none()}]),
        info,
    };
    serde_json::to_vec(&doc).expect("config serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::FileEntry;
    use crate::cache::layer_ref::{RefHistory, RefRecord, config_json};
    use crate::cache::registry::EntryInfo;
    use crate::image::manifest::Descriptor;

    fn components() -> KeyComponents {
        let mut c: KeyComponents = serde_json::from_value(json!({
            "version": 3, "platform": "linux/amd64", "layer_format": "gzip", "parent": "p",
            "instruction": "COPY src/ /src/", "vars": {}, "line": 4, "chain": [],
        }))
        .unwrap();
        c.files = (0..3)
            .map(|i| FileEntry {
                path: format!("src/f{i}.c"),
                kind: 'f',
                mode: 0o644,
                uid: 0,
                gid: 0,
                link: None,
                digest: Some(Digest::of(format!("{i}").as_bytes()).into()),
                xattrs: Default::default(),
                hard_link: None,
            })
            .collect();
        c
    }

    fn owned(c: &KeyComponents, earlier: Vec<String>) -> EntryInfo {
        EntryInfo { key: "k".into(), components: c.clone(), created_by: "COPY src/ /src/".into(), earlier }
    }

    /// The entry config is what the `Value` it replaced serialized to, byte for byte.
    #[test]
    fn an_entry_config_is_the_document_it_was() {
        let c = components();
        let platform = Platform::parse("linux/amd64").unwrap();
        let diff = Digest::of(b"layer");
        for (earlier, diff_id) in [(vec![], None), (vec!["e1".to_string()], Some(&diff))] {
            let info =
                EntryInfoRef { key: "k", components: &c, created_by: "COPY src/ /src/", earlier: earlier.clone() };
            let mut was = json!({
                "created": "2026-01-01T00:00:00Z",
                "architecture": platform.architecture,
                "os": platform.os,
                "config": {"Labels": {FIELD: "1"}},
                "rootfs": {"type": "layers", "diff_ids": diff_id.iter().map(|d| d.as_str()).collect::<Vec<_>>()},
                "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "COPY src/ /src/", "empty_layer": diff_id.is_none()}],
            });
            was[FIELD] = serde_json::to_value(owned(&c, earlier)).unwrap();
            let now = entry_config(&info, &platform, "2026-01-01T00:00:00Z", diff_id);
            assert_eq!(String::from_utf8(now).unwrap(), serde_json::to_string(&was).unwrap());
        }
    }

    /// The same for a layer reference record's config.
    #[test]
    fn a_record_config_is_the_document_it_was() {
        let c = components();
        let record = RefRecord {
            layer: Descriptor::new("application/vnd.oci.image.layer.v1.tar+gzip", Digest::of(b"gz"), 2),
            diff_id: Digest::of(b"tar"),
            history: RefHistory { created: "2026-01-01T00:00:00Z".into(), created_by: "COPY src/ /src/".into() },
            repositories: vec!["127.0.0.1:5000/app".into()],
        };
        let info = EntryInfoRef { key: "k", components: &c, created_by: "COPY src/ /src/", earlier: vec!["e1".into()] };
        let was = json!({
            "created": record.history.created,
            FIELD: owned(&c, vec!["e1".into()]),
            crate::cache::layer_ref::REF_FIELD: record,
        });
        assert_eq!(String::from_utf8(config_json(&info, &record)).unwrap(), serde_json::to_string(&was).unwrap());
    }
}
