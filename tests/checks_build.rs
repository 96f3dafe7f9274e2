//! Build checks in `trowel build` (testdata/checks-build/): findings as warnings in the log
//! (as they come and again at its end), as `check` events in the trace and in `replay
//! --summary`, what depends on the base image reported once it is resolved; with
//! `check=error=true` (or `BUILDKIT_DOCKERFILE_CHECK=error=true`) the build fails before
//! anything is pulled, or, for a finding that depends on the base, before its layers are
//! unpacked.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn case(name: &str) -> PathBuf {
    repo_root().join("testdata/checks-build").join(name)
}

/// `trowel build --no-push --trace` of a case; the output and the trace's events.
fn build(name: &str, extra: &[&str]) -> (std::process::Output, Vec<serde_json::Value>) {
    let trace = tempfile::NamedTempFile::new().unwrap();
    let out = run(trowel()
        .arg("build")
        .arg("--context")
        .arg(case(name))
        .args(["--no-push", "--build-arg", &format!("REGISTRY={}", env().registry), "--trace"])
        .arg(trace.path())
        .args(extra));
    (out, events(trace.path()))
}

fn events(trace: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(trace).unwrap();
    text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn kinds(events: &[serde_json::Value]) -> Vec<&str> {
    events.iter().map(|e| e["event"].as_str().unwrap()).collect()
}

fn checks(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "check")
        .map(|e| {
            format!("{} {} error={}", e["line"], e["rule"].as_str().unwrap(), e["error"].as_bool().unwrap_or(false))
        })
        .collect()
}

#[test]
fn findings_are_warnings_in_the_log_the_trace_and_the_summary() {
    let (out, evs) = build("warnings", &[]);
    assert_ok(&out);
    let log = stderr(&out);
    for line in [
        "WARN[0000] StageNameCasing: Stage name 'Base' should be lowercase (line 2)",
        "WARN[0000] LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line 3)",
    ] {
        assert!(log.contains(line), "{line:?} not in\n{log}");
    }
    assert!(log.contains("UndefinedVar: Usage of undefined variable '$VERSION' (line 4)"), "{log}");
    assert!(log.contains("JSONArgsRecommended: JSON arguments recommended for CMD"), "{log}");
    // Summed up where the log ends.
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    assert!(tail[4].ends_with("] 4 build check warnings found:"), "{tail:?}");
    let last = "  - JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 6)";
    assert!(tail[0].ends_with(last), "{tail:?}");
    assert_eq!(
        checks(&evs),
        [
            "2 StageNameCasing error=false",
            "3 LegacyKeyValueFormat error=false",
            "4 UndefinedVar error=false",
            "6 JSONArgsRecommended error=false"
        ]
    );
    // What the Dockerfile alone decides comes before anything is resolved; what depends on the
    // base (its ENV, its SHELL) right after it is.
    let k = kinds(&evs);
    let pos = |pred: &dyn Fn(&serde_json::Value) -> bool| evs.iter().position(pred).unwrap();
    let resolved = pos(&|e| e["event"] == "base_resolved");
    assert!(pos(&|e| e["rule"] == "LegacyKeyValueFormat") < resolved, "{k:?}");
    assert!(pos(&|e| e["rule"] == "UndefinedVar") > resolved, "{k:?}");
    assert!(pos(&|e| e["rule"] == "JSONArgsRecommended") < pos(&|e| e["event"] == "step_started" && e["line"] == 3));
    assert_eq!(k.last(), Some(&"build_finished"));

    // replay --summary lists them.
    let trace = tempfile::NamedTempFile::new().unwrap();
    let text: Vec<String> =
        std::iter::once(r#"{"trowel_trace":2,"trowel_version":"0.1.0","started":"2026-01-01T00:00:00Z"}"#.to_string())
            .chain(evs.iter().map(|e| e.to_string()))
            .collect();
    std::fs::write(trace.path(), text.join("\n") + "\n").unwrap();
    let out = run(trowel().args(["replay", "--summary"]).arg(trace.path()));
    assert_ok(&out);
    let summary = stdout(&out);
    assert!(summary.contains("Build checks: 4 finding(s)"), "{summary}");
    assert!(
        summary.contains("  line   4  warning  UndefinedVar: Usage of undefined variable '$VERSION' (https://docs.docker.com/go/dockerfile/rule/undefined-var/)"),
        "{summary}"
    );
}

#[test]
fn error_true_fails_before_anything_is_pulled() {
    let (out, evs) = build("error", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("lint violation found for rules: MaintainerDeprecated"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ERRO[0000] MaintainerDeprecated: Maintainer instruction is deprecated"),
        "{}",
        stderr(&out)
    );
    assert_eq!(checks(&evs), ["4 MaintainerDeprecated error=true"]);
    // Nothing was resolved, pulled or run.
    assert_eq!(kinds(&evs), ["build_started", "check", "build_failed"]);

    // The build arg replaces the directive: skipping the rule, the build goes on.
    let (out, evs) = build("error", &["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=MaintainerDeprecated"]);
    assert_ok(&out);
    assert!(checks(&evs).is_empty());
    assert!(!stderr(&out).contains("BUILDKIT_DOCKERFILE_CHECK was given but not used"), "{}", stderr(&out));
}

#[test]
fn error_true_from_the_build_arg_on_what_the_base_decides() {
    // Without error=true the finding is a warning and the base's layers are pulled for the COPY.
    let (out, evs) = build("error-at-base", &[]);
    assert_ok(&out);
    assert_eq!(checks(&evs), ["3 UndefinedVar error=false"]);
    assert!(kinds(&evs).contains(&"base_unpacked"), "{:?}", kinds(&evs));
    // With it, the build fails as soon as the base is resolved, before its layers are unpacked.
    // Their download may have begun ahead (`engine/prefetch`: as soon as the base resolved) and
    // reported progress, under load before the check ran; it is stopped with the rest.
    let (out, evs) = build("error-at-base", &["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=error=true"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("lint violation found for rules: UndefinedVar"), "{}", stderr(&out));
    assert_eq!(checks(&evs), ["3 UndefinedVar error=true"]);
    let k = kinds(&evs);
    assert!(k.contains(&"base_resolved"), "{k:?}");
    assert!(!k.contains(&"base_unpacked"), "{k:?}");
    assert_eq!(k.last(), Some(&"build_failed"));
}

#[test]
fn a_base_for_another_platform() {
    // busybox:1.35 is a linux/amd64 image alone: asked for linux/arm64, it is what there is.
    let (out, evs) = build(
        "error-at-base",
        &["--custom-platform", "linux/arm64", "--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=UndefinedVar"],
    );
    assert_ok(&out);
    let check: Vec<&serde_json::Value> = evs.iter().filter(|e| e["event"] == "check").collect();
    assert_eq!(check.len(), 1, "{evs:?}");
    assert_eq!(check[0]["rule"], "InvalidBaseImagePlatform");
    assert_eq!(
        check[0]["message"].as_str().unwrap().replace(&env().registry, "REGISTRY"),
        "Base image REGISTRY/busybox:1.35 was pulled with platform \"linux/amd64\", expected \"linux/arm64\" for current build"
    );
    assert!(check[0].get("url").is_none());
}
