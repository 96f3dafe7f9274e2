//! `RUN --mount=…` values as a Dockerfile may write them (BuildKit's CSV grammar). Input: one
//! mount value. Checks: no panic; a value that parses whole also passes the check made before
//! variables are expanded (a Dockerfile accepted at plan time must not be refused by the same
//! rules later, nor the other way round); what the debugger and the cache key show
//! (`canonical`) parses back to the same mount, and is a fixed point (so two spellings of one
//! mount always key the same).
//!
//! Shared by the fuzz target `fuzz/fuzz_targets/run_mount.rs` and by
//! `tests/hardening_fuzz_seeds.rs`, which runs it over the committed seeds in the normal test
//! suite.

use trowel_engine::dockerfile::mount::MountSpec;

/// Checks one input; panics on a finding.
pub fn check(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else { return };
    let parsed = MountSpec::parse(value);
    let early = MountSpec::check_unexpanded(value);
    let Ok(mount) = parsed else { return };
    if !value.contains('$') {
        // Without a variable nothing is deferred: both checks must agree.
        assert!(early.is_ok(), "{value:?} parses whole but fails before expansion: {early:?}");
    }
    let canonical = mount.canonical();
    let again = MountSpec::parse(&canonical)
        .unwrap_or_else(|e| panic!("canonical form {canonical:?} of {value:?} does not parse: {e}"));
    assert_eq!(again, mount, "{value:?} → {canonical:?} names another mount");
    assert_eq!(again.canonical(), canonical, "canonical form of {value:?} is not a fixed point");
}
