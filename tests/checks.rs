//! `trowel check` on the Dockerfiles in testdata/checks/: one directory per BuildKit rule, its
//! `Dockerfile` finding it and its `ok.Dockerfile` where BuildKit finds nothing, and
//! `directive/` for the options (`# check=` skip and error, experimental rules, comments above
//! an instruction, `BUILDKIT_DOCKERFILE_CHECK`, `--target`). Each `X` has `X.expected`: its
//! findings (`LINE Rule: message`), and `exit N` / `error: …` when the check fails; `X.args`
//! holds extra flags, one per line. Base images come from the local registry (`REGISTRY` in the
//! files), and the text output is checked against `docker build --check`'s layout.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// What a case expects.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    findings: Vec<String>,
    exit: i32,
    error: Option<String>,
}

fn expected(path: &Path) -> Expected {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut e = Expected::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(code) = line.strip_prefix("exit ") {
            e.exit = code.parse().unwrap();
        } else if let Some(err) = line.strip_prefix("error: ") {
            e.error = Some(err.to_string());
        } else {
            e.findings.push(line.to_string());
        }
    }
    e
}

/// Runs `trowel check --format json` on one case; what it found, as the expectations write it.
fn run_case(dockerfile: &Path) -> (Expected, serde_json::Value) {
    let env = env();
    let mut cmd = trowel();
    cmd.arg("check")
        .arg("--context")
        .arg(dockerfile.parent().unwrap())
        .arg("--dockerfile")
        .arg(dockerfile)
        .arg("--format=json")
        .arg("--build-arg")
        .arg(format!("REGISTRY={}", env.registry));
    let args = PathBuf::from(format!("{}.args", dockerfile.display()));
    if let Ok(extra) = std::fs::read_to_string(&args) {
        cmd.args(extra.lines().filter(|l| !l.is_empty()));
    }
    let out = run(&mut cmd);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}):\n{}\n{}", dockerfile.display(), stdout(&out), stderr(&out)));
    let findings = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let line = w["location"]["ranges"][0]["start"]["line"].as_u64().unwrap();
            let detail = w["detail"].as_str().unwrap().replace(&env.registry, "REGISTRY");
            format!("{line} {}: {detail}", w["ruleName"].as_str().unwrap())
        })
        .collect();
    let error = json["buildError"]["message"].as_str().map(str::to_string);
    (Expected { findings, exit: out.status.code().unwrap_or(-1), error }, json)
}

fn cases() -> Vec<PathBuf> {
    let root = repo_root().join("testdata/checks");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if name == "Dockerfile" || name.ends_with(".Dockerfile") {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_rule_found_and_not_found_and_every_option() {
    let cases = cases();
    // Every rule BuildKit has is exercised both ways.
    let rules_dir = repo_root().join("testdata/checks");
    for rule in trowel_engine::dockerfile::checks::rules::ALL {
        let kebab: String = rule
            .name
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let dash = (i > 0 && c.is_ascii_uppercase()).then_some('-');
                dash.into_iter().chain(std::iter::once(c.to_ascii_lowercase()))
            })
            .collect::<String>()
            .replace("j-s-o-n", "json");
        for file in ["Dockerfile", "ok.Dockerfile"] {
            let path = rules_dir.join(&kebab).join(file);
            assert!(path.is_file(), "{} has no {}", rule.name, path.display());
            let e = expected(&PathBuf::from(format!("{}.expected", path.display())));
            let finds = e.findings.iter().any(|f| f.split_whitespace().nth(1) == Some(&format!("{}:", rule.name)));
            assert_eq!(
                finds,
                file == "Dockerfile",
                "{}: {file} should {}find it",
                rule.name,
                if file == "Dockerfile" { "" } else { "not " }
            );
        }
    }
    let mut failures = Vec::new();
    for case in &cases {
        let want = expected(&PathBuf::from(format!("{}.expected", case.display())));
        let (got, json) = run_case(case);
        let error_matches = match (&want.error, &got.error) {
            (None, None) => true,
            (Some(w), Some(g)) => g.contains(w.as_str()),
            _ => false,
        };
        if want.findings != got.findings || want.exit != got.exit || !error_matches {
            failures.push(format!("{}:\n  want {want:?}\n  got  {got:?}\n  json {json}", case.display()));
        }
    }
    assert!(failures.is_empty(), "{} case(s) differ:\n{}", failures.len(), failures.join("\n"));
}

/// The text output: each finding as `docker build --check` prints it.
#[test]
fn text_output_as_docker_prints_it() {
    let dir = repo_root().join("testdata/checks/json-args-recommended");
    let out = run(trowel().args(["check", "--context", "."]).current_dir(&dir));
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        "
WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/
JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals
Dockerfile:2
--------------------
   1 |     FROM scratch
   2 | >>> ENTRYPOINT /usr/bin/app --serve
   3 |     CMD serve --port 8080
   4 |     
--------------------

WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/
JSON arguments recommended for CMD to prevent unintended behavior related to OS signals
Dockerfile:3
--------------------
   1 |     FROM scratch
   2 |     ENTRYPOINT /usr/bin/app --serve
   3 | >>> CMD serve --port 8080
   4 |     
--------------------
Check complete, 2 warnings have been found!
"
    );
    // With error=true they are errors, and the check fails saying which rules.
    let dir = repo_root().join("testdata/checks/directive");
    let out = run(trowel().args(["check", "--dockerfile", "error.Dockerfile"]).current_dir(&dir));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("\nERROR: JSONArgsRecommended - "), "{}", stdout(&out));
    assert!(stdout(&out).ends_with("Check complete, 1 error has been found!\n"), "{}", stdout(&out));
    assert_eq!(stderr(&out), "ERROR: error.Dockerfile: lint violation found for rules: JSONArgsRecommended\n");
}

/// Offline, what depends on a base image is not checked, and the output says so.
#[test]
fn offline_says_what_it_did_not_check() {
    let dir = repo_root().join("testdata/checks/undefined-var");
    let out = run(trowel().args(["check", "--offline", "--format=json"]).current_dir(&dir));
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["warnings"], serde_json::json!([]));
    let unchecked = json["unchecked"][0].as_str().unwrap();
    assert!(
        unchecked.starts_with("Dockerfile:2: FROM ${REGISTRY}/busybox:1.35: the base image was not read"),
        "{unchecked}"
    );
}

/// Values of secret build args never reach the output.
#[test]
fn secrets_are_masked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nARG NPM_TOKEN\nWORKDIR $NPM_TOKEN\n").unwrap();
    let out = run(trowel().args(["check", "--build-arg", "NPM_TOKEN=tok-3f9a81c2"]).arg("--context").arg(dir.path()));
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.contains("WorkdirRelativePath"), "{text}");
    assert!(text.contains("Relative workdir \"***\""), "{text}");
    assert!(!text.contains("3f9a81c2"), "{text}");
}

/// WORKDIR's path is absolute by the stage's OS, as BuildKit's `system.IsAbs` reads it: for a
/// Windows stage `C:\app` is absolute (no WorkdirRelativePath), `app` is not.
#[test]
fn a_windows_workdir_with_its_drive_is_absolute() {
    let dir = tempfile::tempdir().unwrap();
    for (workdir, warns) in [("C:\\\\app", false), ("c:/app", false), ("app", true)] {
        std::fs::write(dir.path().join("Dockerfile"), format!("FROM scratch\nWORKDIR {workdir}\n")).unwrap();
        let out = run(trowel()
            .args(["check", "--offline", "--platform", "windows/amd64", "--format=json", "--context"])
            .arg(dir.path()));
        assert_ok(&out);
        let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let rules: Vec<&str> =
            json["warnings"].as_array().unwrap().iter().filter_map(|w| w["ruleName"].as_str()).collect();
        assert_eq!(rules.contains(&"WorkdirRelativePath"), warns, "{workdir}: {rules:?}");
    }
}
