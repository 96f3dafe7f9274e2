//! Platforms as a person writes them (`--platform`, `--custom-platform`, `FROM --platform`):
//! containerd's aliases and default variants, unknown systems and architectures refused. Input:
//! one platform text. Checks: no panic; what parses prints as a platform that parses to itself
//! (normalising twice changes nothing, so a build, its trace and its index agree on the name)
//! and matches itself when an index is searched for it; what is refused says why with the text
//! it was given.
//!
//! Shared by the fuzz target `fuzz/fuzz_targets/platform.rs` and by
//! `tests/hardening_fuzz_seeds.rs`, which runs it over the committed seeds in the normal test
//! suite.

use trowel_engine::image::manifest::Platform;

/// Checks one input; panics on a finding.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Platform::parse(text) {
        Ok(p) => {
            let printed = p.to_string();
            let again = Platform::parse(&printed)
                .unwrap_or_else(|e| panic!("{text:?} → {printed:?}, which does not parse: {e}"));
            assert_eq!(again, p, "{text:?} → {printed:?} names another platform");
            assert!(p.matches(&p), "{printed:?} does not match itself");
            assert!(!printed.chars().any(|c| c.is_ascii_uppercase()), "{printed:?} is not lower case");
        }
        Err(e) => assert!(e.contains("invalid platform"), "{text:?}: unhelpful error {e:?}"),
    }
}
