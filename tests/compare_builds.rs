//! `trowel replay A --compare B --summary` on builds recorded here, against the local
//! registry with a cache repository, as two CI jobs would make them: the same Dockerfile with
//! a changed file and a changed build arg names exactly that file and that ARG, and the steps
//! whose keys are equal are shown equal; an unchanged rebuild is equivalent; a trace written
//! now (format 2) compares with one recorded by an earlier trowel (format 1); a child stage
//! names what changed in its base stage.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const DOCKERFILE: &str = "\
ARG REGISTRY
FROM ${REGISTRY}/busybox:1.35
ARG VERSION=1.0
WORKDIR /app
COPY keep.txt ./
COPY message.txt ./
RUN echo \"version $VERSION\" > version.txt
RUN cat message.txt keep.txt > all.txt
";

/// Builds `ctx` with the cache and a trace; returns the trace.
fn build(ctx: &Path, cache_repo: &str, dest: &str, version: &str, trace: &Path) {
    let out = run(trowel()
        .args(["build", "--cache", "--cache-copy-layers", "--cache-repo", cache_repo, "--destination", dest])
        .arg("--context")
        .arg(ctx)
        .args(["--build-arg", &format!("REGISTRY={}", env().registry)])
        .args(["--build-arg", &format!("VERSION={version}")])
        .arg("--trace")
        .arg(trace));
    assert_ok(&out);
}

fn compare(a: &Path, b: &Path) -> (Option<i32>, String) {
    let o = run(trowel().arg("replay").arg(a).arg("--compare").arg(b).arg("--summary"));
    (o.status.code(), stdout(&o))
}

/// The DIFF or same line of a Dockerfile line, and the lines under it.
fn block(summary: &str, line: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in summary.lines() {
        let head = l.starts_with("  same  ") || l.starts_with("  DIFF  ");
        if head {
            inside = l[8..].starts_with(&format!("line {line} "));
        } else if !l.starts_with("          ") {
            inside = false;
        }
        if inside {
            out.push(l);
        }
    }
    assert!(!out.is_empty(), "no step at line {line} in:\n{summary}");
    out
}

#[test]
fn a_changed_file_and_build_arg_are_named_and_equal_steps_shown_equal() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.join("keep.txt"), "kept the same\n").unwrap();
    std::fs::write(ctx.join("message.txt"), "yesterday\n").unwrap();
    let repo = unique_repo("compare");
    let cache = format!("{}/{repo}/cache", env().registry);
    let dest = format!("{}/{repo}:latest", env().registry);
    let (a, b, c): (PathBuf, PathBuf, PathBuf) =
        (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"), dir.path().join("c.jsonl"));
    build(&ctx, &cache, &dest, "1.0", &a);
    std::fs::write(ctx.join("message.txt"), "today, longer\n").unwrap();
    build(&ctx, &cache, &dest, "2.0", &b);
    // The same inputs again: every step hits B's entries.
    build(&ctx, &cache, &dest, "2.0", &c);

    let (code, s) = compare(&a, &b);
    assert_eq!(code, Some(1), "{s}");
    for line in [2, 4, 5] {
        assert!(block(&s, line)[0].starts_with("  same  "), "line {line} should be equal:\n{s}");
    }
    assert!(block(&s, 4)[0].contains("(key equal; same layer)"), "{s}");
    assert!(block(&s, 5)[0].contains("COPY keep.txt ./  (key equal; same layer)"), "{s}");
    assert_eq!(
        block(&s, 6),
        vec![
            "  DIFF  line 6       COPY message.txt ./",
            "          key: COPY message.txt: 1 file changed (message.txt)",
            "          cache: A miss, B miss",
            block(&s, 6)[3],
            "            - yesterday",
            "            + today, longer",
        ],
        "{s}"
    );
    assert!(block(&s, 6)[3].starts_with("          file /app/message.txt: content differs ("), "{s}");
    assert!(block(&s, 6)[3].ends_with(", 10 B → 14 B)"), "{s}");
    let run1 = block(&s, 7);
    assert_eq!(run1[1], "          key: ARG VERSION 1.0 → 2.0", "{s}");
    assert_eq!(run1[2], "          key: parent step changed (line 6: COPY message.txt ./)", "{s}");
    assert!(run1.iter().any(|l| l.starts_with("          file /app/version.txt: content differs")), "{s}");
    // The recorded contents of the two versions, as a diff.
    assert!(run1.ends_with(&["            - version 1.0", "            + version 2.0"]), "{s}");
    assert_eq!(run1.iter().filter(|l| l.contains(" file /")).count(), 1, "only version.txt differs:\n{s}");
    let run2 = block(&s, 8);
    assert!(run2.iter().any(|l| l.starts_with("          file /app/all.txt: content differs")), "{s}");
    // Exactly the file and the ARG are named as causes: nothing about keep.txt or other inputs.
    // The ARG line itself, from the values the keys of the steps after it recorded.
    assert_eq!(
        block(&s, 3),
        vec!["  DIFF  line 3       ARG VERSION=1.0", "          key: ARG VERSION 1.0 → 2.0"],
        "{s}"
    );
    let causes: Vec<&str> = s.lines().filter(|l| l.starts_with("          key: ")).collect();
    assert_eq!(
        causes,
        vec![
            "          key: ARG VERSION 1.0 → 2.0",
            "          key: COPY message.txt: 1 file changed (message.txt)",
            "          key: ARG VERSION 1.0 → 2.0",
            "          key: parent step changed (line 6: COPY message.txt ./)",
            "          key: ARG VERSION 1.0 → 2.0",
            "          key: parent step changed (line 6: COPY message.txt ./)",
        ],
        "{s}"
    );
    assert!(s.ends_with("Different: 4 of 7 step(s) differ (line 3, line 6, line 7, line 8)\n"), "{s}");

    // B and its cached rebuild: the same keys and layers everywhere.
    let (code, s) = compare(&b, &c);
    assert_eq!(code, Some(0), "{s}");
    assert!(!s.contains("DIFF"), "{s}");
    assert!(s.contains("  same  line 8       RUN cat message.txt keep.txt > all.txt  (key equal; same layer)"), "{s}");
    assert!(s.ends_with(
        "Equivalent: all 7 step(s) have equal keys (where recorded) and layers whose files do not differ\n"
    ));
}

/// testdata/traces/demo.jsonl was recorded by an earlier trowel (trace format 1); the same
/// Dockerfile built now writes the current format. They compare step for step.
#[test]
fn traces_of_different_format_versions_compare() {
    let dir = tempfile::tempdir().unwrap();
    let now = dir.path().join("demo.jsonl");
    let out = run(trowel()
        .args(["build", "--no-push", "--context"])
        .arg(repo_root().join("testdata/demo"))
        .args(["--build-arg", &format!("REGISTRY={}", env().registry), "--trace"])
        .arg(&now));
    assert_ok(&out);
    let old = repo_root().join("testdata/traces/demo.jsonl");
    let (code, s) = compare(&old, &now);
    assert!(s.contains("(trace format 1, "), "{s}");
    assert!(s.contains(&format!("(trace format {}, ", trowel_events::SCHEMA_VERSION)), "{s}");
    assert!(!s.contains("only in A") && !s.contains("only in B"), "every step pairs by line:\n{s}");
    // The registry's port differs between the two recordings: the FROM lines name it.
    let from = block(&s, 3);
    assert_eq!(from[0], "  DIFF  line 3       FROM ${REGISTRY}/busybox:1.35 AS builder", "{s}");
    assert!(
        from[1].starts_with("          key: base image ") && from[1].contains(" (was base image 127.0.0.1:"),
        "{s}"
    );
    // Neither build used --cache: no key is claimed, and the copied file is the same file.
    assert!(block(&s, 5).iter().any(|l| l.contains("neither build recorded a cache key")), "{s}");
    assert_eq!(code, Some(1), "{s}");
}

/// A stage the target does not need is skipped in both builds: the comparison says so, not
/// that neither build had `--cache` (both did).
#[test]
fn a_skipped_stage_is_said_skipped() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/busybox:1.35 AS unused\nRUN echo never > /n\n\
         FROM ${REGISTRY}/busybox:1.35 AS app\nRUN echo app > /a\n",
    )
    .unwrap();
    let repo = unique_repo("cmp-skipped");
    let (cache, dest) = (format!("{}/{repo}/cache", env().registry), format!("{}/{repo}:1", env().registry));
    let traces = tempfile::tempdir().unwrap();
    let (a, b) = (traces.path().join("a.jsonl"), traces.path().join("b.jsonl"));
    for t in [&a, &b] {
        let out = run(trowel()
            .args(["build", "--cache", "--cache-repo", &cache, "--destination", &dest, "--target", "app"])
            .arg("--context")
            .arg(ctx.path())
            .args(["--build-arg", &format!("REGISTRY={}", env().registry)])
            .arg("--trace")
            .arg(t));
        assert_ok(&out);
    }
    let (code, s) = compare(&a, &b);
    assert_eq!(code, Some(0), "{s}");
    assert!(s.contains("its stage was skipped in both builds (the target does not need it)"), "{s}");
    assert!(!s.contains("not resolved"), "the skipped stage's FROM too: {s}");
    assert!(!s.contains("no --cache"), "{s}");
}

/// Only a part every key shares changed (`--ignore-path`): every step's key differs, the chain's
/// included, but no line of the Dockerfile is a cause. The comparison names the flag, never an
/// unchanged ARG line as a changed parent step (which it quoted with the Dockerfile's default,
/// not the value the build used).
#[test]
fn a_build_wide_change_blames_no_unchanged_line() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    let df = format!("FROM {}\nARG VERSION=1.0\nWORKDIR /app\nRUN echo \"$VERSION\" > v.txt\n", env().busybox());
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let repo = unique_repo("compare-wide");
    let cache = format!("{}/{repo}/cache", env().registry);
    let dest = format!("{}/{repo}:latest", env().registry);
    let traced = |trace: &Path, extra: &[&str]| {
        let out = run(trowel()
            .args(["build", "--cache", "--cache-repo", &cache, "--destination", &dest])
            .args(["--build-arg", "VERSION=2.0", "--context"])
            .arg(&ctx)
            .arg("--trace")
            .arg(trace)
            .args(extra));
        assert_ok(&out);
    };
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    traced(&a, &[]);
    traced(&b, &["--ignore-path", "/tmp"]);
    let (code, s) = compare(&a, &b);
    assert_eq!(code, Some(1), "{s}");
    assert!(!s.contains("parent step changed"), "{s}");
    assert!(!s.contains("VERSION=1.0"), "{s}");
    for line in [3, 4] {
        let keys: Vec<&str> = block(&s, line).into_iter().filter(|l| l.starts_with("          key: ")).collect();
        assert_eq!(keys, vec!["          key: snapshots now leave out /tmp (--ignore-path, --ignore-var-run)"], "{s}");
    }
}

/// A step without a key (a LABEL) whose text differs says what it was and is, as a cache miss
/// of an edited instruction does: `instruction changed: LABEL tier=one → LABEL tier=two`.
#[test]
fn an_edited_step_without_a_key_says_what_it_was_and_is() {
    let dir = tempfile::tempdir().unwrap();
    let traces: Vec<PathBuf> = ["one", "two"]
        .iter()
        .map(|tier| {
            let ctx = dir.path().join(tier);
            std::fs::create_dir(&ctx).unwrap();
            std::fs::write(ctx.join("Dockerfile"), format!("FROM scratch\nLABEL tier={tier}\n")).unwrap();
            let trace = dir.path().join(format!("{tier}.jsonl"));
            assert_ok(&run(trowel().args(["build", "--no-push", "--context"]).arg(&ctx).arg("--trace").arg(&trace)));
            trace
        })
        .collect();
    let (code, s) = compare(&traces[0], &traces[1]);
    assert_eq!(code, Some(1), "{s}");
    assert!(block(&s, 2).iter().any(|l| l.contains("instruction changed: LABEL tier=one → LABEL tier=two")), "{s}");
}

/// kaniko's defaults: a child stage `FROM base` whose base ends with an uncached COPY of a file
/// that changed names that COPY and the file (the base stage's first step whose key differs,
/// as a build names its base stage's miss), not only `base stage changed (FROM base)`: the
/// trace's chain records no inputs of the COPY, its own row does.
#[test]
fn a_child_of_a_stage_ending_with_an_uncached_copy_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    let df = format!(
        "FROM {} AS base\nCOPY app.conf /etc/app.conf\nFROM base\nRUN cat /etc/app.conf > /copy\n",
        env().busybox()
    );
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let repo = unique_repo("compare-tail");
    let cache = format!("{}/{repo}/cache", env().registry);
    let dest = format!("{}/{repo}:latest", env().registry);
    let traced = |trace: &Path| {
        let out = run(trowel()
            .args(["build", "--cache", "--cache-repo", &cache, "--destination", &dest, "--reproducible"])
            .arg("--context")
            .arg(&ctx)
            .arg("--trace")
            .arg(trace));
        assert_ok(&out);
    };
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    std::fs::write(ctx.join("app.conf"), "a\n").unwrap();
    traced(&a);
    std::fs::write(ctx.join("app.conf"), "bb\n").unwrap();
    traced(&b);
    let (code, s) = compare(&a, &b);
    assert_eq!(code, Some(1), "{s}");
    let keys: Vec<&str> = block(&s, 4).into_iter().filter(|l| l.starts_with("          key: ")).collect();
    assert_eq!(
        keys,
        vec!["          key: base stage \"base\" changed (line 2: COPY app.conf: 1 file changed (app.conf))"],
        "{s}"
    );
}
