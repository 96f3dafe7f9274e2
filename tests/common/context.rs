//! What the tests of remote build contexts (`tests/context_*.rs`) share: the context's origin as
//! the trace records it, and the check that a credential reached nothing trowel wrote.

use std::process::Output;

use super::{pull_and_unpack, skopeo_config, stderr, stdout};

/// The `context_origin` of a trace's `build_started` (the trace's text).
pub fn context_origin(trace: &str) -> serde_json::Value {
    trace
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "build_started")
        .map(|v| v["context_origin"].clone())
        .expect("a build_started event")
}

/// Nothing trowel printed or recorded (`o`, `trace`), nor the image's config or files (`dest`,
/// when it was pushed), holds `secret`.
pub fn assert_secret_absent(secret: &str, o: &Output, trace: &str, dest: Option<&str>) {
    assert!(!secret.is_empty());
    assert!(!stdout(o).contains(secret) && !stderr(o).contains(secret), "{}{}", stdout(o), stderr(o));
    assert!(!trace.contains(secret), "the trace holds {secret}");
    let Some(dest) = dest else { return };
    assert!(!skopeo_config(dest).to_string().contains(secret), "the image config holds it");
    let u = pull_and_unpack(dest);
    for f in walkdir::WalkDir::new(u.rootfs()).into_iter().filter_map(Result::ok).filter(|e| e.file_type().is_file()) {
        let b = std::fs::read(f.path()).unwrap();
        assert!(!b.windows(secret.len()).any(|w| w == secret.as_bytes()), "{}", f.path().display());
    }
}
