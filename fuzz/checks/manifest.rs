//! Manifests and indexes as a registry would serve them: the registry's media-type detection
//! (own `mediaType`, else `Content-Type`, else shape; schema1 refused), then `Index` parsing and
//! platform selection, or `Manifest` parsing. Input: a `Content-Type` line, then the body.
//! Checks: no panic; every digest that parses is a safe blob-store file name (64 lowercase hex,
//! never a path); what parses re-serialises and parses back to the same value.
//!
//! Shared by the fuzz target `fuzz/fuzz_targets/manifest.rs` and by `tests/hardening_fuzz_seeds.rs`,
//! which runs it over the committed seeds in the normal test suite.

use trowel_engine::digest::Digest;
use trowel_engine::image::manifest::{Descriptor, Index, Manifest, Platform, is_index};
use trowel_engine::registry::fuzzing::manifest_media_type;

fn check_descriptor(d: &Descriptor) {
    let hex = d.digest.hex();
    assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{hex:?}");
    assert_eq!(d.digest.as_str().parse::<Digest>().expect("a parsed digest parses again"), d.digest);
}

/// Checks one input; panics on a finding.
pub fn check(data: &[u8]) {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };
    let Ok(media_type) = manifest_media_type(body, header) else { return };
    if is_index(&media_type) {
        let Ok(index) = serde_json::from_slice::<Index>(body) else { return };
        index.manifests.iter().for_each(check_descriptor);
        for p in ["linux/amd64", "linux/arm64", "linux/arm/v7", "windows/amd64"] {
            let p = Platform::parse_exact(p).unwrap();
            if let Some(d) = index.select(&p) {
                assert!(p.matches(d.platform.as_ref().expect("selected entries have a platform")));
                let _ = d.platform.as_ref().map(ToString::to_string);
            }
        }
        let again: Index = serde_json::from_slice(&serde_json::to_vec(&index).unwrap()).unwrap();
        assert_eq!(again, index);
    } else {
        let Ok(manifest) = serde_json::from_slice::<Manifest>(body) else { return };
        check_descriptor(&manifest.config);
        manifest.layers.iter().for_each(check_descriptor);
        let _ = manifest.format();
        let again: Manifest = serde_json::from_slice(&manifest.to_bytes()).unwrap();
        assert_eq!(again, manifest);
    }
}
