//! `trowel replay FILE --summary` on hand-written traces of what version 2 records and the
//! engine does not emit yet (pauses and how they ended, shell sessions, the push decision,
//! aborted builds), and how it exits: as the build did.

mod common;

use std::path::PathBuf;

use common::{run, stdout, trowel};
use serde_json::{Value, json};

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn layer(c: char, size: u64, step: usize) -> Value {
    json!({"digest": digest(c), "diff_id": null, "size": size, "uncompressed_size": null,
           "media_type": "application/vnd.oci.image.layer.v1.tar+gzip", "step": {"stage": 0, "step": step}})
}

fn id(step: usize) -> Value {
    json!({"stage": 0, "step": step})
}

/// A trace file: the header, then `(ms, event)` lines numbered in order.
fn trace(events: &[(u64, Value)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let mut text = String::from(r#"{"trowel_trace":2,"trowel_version":"0.1.0","started":"2026-01-01T00:00:00.000Z"}"#);
    text.push('\n');
    for (seq, (ms, e)) in events.iter().enumerate() {
        let mut line = json!({"seq": seq, "ms": ms});
        line.as_object_mut().unwrap().extend(e.as_object().unwrap().clone());
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// `FROM busybox` (line 1) and `RUN make` (line 2), pushed to registry.example/app:1; the FROM
/// done, the RUN started at 10 ms.
fn started() -> Vec<(u64, Value)> {
    let plan = |step: usize, line: usize, source: &str| {
        json!({"id": id(step), "line": line, "end_line": line, "keyword": source.split(' ').next().unwrap(),
               "source": source, "onbuild": false})
    };
    let step_started = |step: usize, line: usize, source: &str| {
        json!({"event": "step_started", "id": id(step), "line": line, "end_line": line,
               "keyword": source.split(' ').next().unwrap(), "source": source, "expanded": source})
    };
    vec![
        (
            0,
            json!({"event": "build_started", "version": "0.1.0", "dockerfile_path": "Dockerfile",
                   "dockerfile_text": "FROM busybox\nRUN make\n", "context": ".", "target": null,
                   "destinations": ["registry.example/app:1"], "platform": "linux/amd64", "isolation": "chroot",
                   "stages": [{"index": 0, "name": null, "base": "busybox", "needed": true,
                               "steps": [plan(0, 1, "FROM busybox"), plan(1, 2, "RUN make")]}]}),
        ),
        (1, json!({"event": "stage_started", "stage": 0, "name": null, "base": "busybox"})),
        (2, step_started(0, 1, "FROM busybox")),
        (
            3,
            json!({"event": "step_finished", "id": id(0), "status": "metadata", "duration_ms": 1, "layer": null,
                   "exit_code": null}),
        ),
        (10, step_started(1, 2, "RUN make")),
    ]
}

fn paused_before(ms: u64) -> (u64, Value) {
    (
        ms,
        json!({"event": "paused", "id": id(1), "line": 2, "when": "before_step",
               "reasons": [{"breakpoint": "2", "message": "breakpoint at line 2"}]}),
    )
}

/// (summary, exit code) through the command line.
fn replay(events: &[(u64, Value)]) -> (String, i32) {
    let (_dir, path) = trace(events);
    let o = run(trowel().arg("replay").arg(&path).arg("--summary"));
    (stdout(&o), o.status.code().expect("exited"))
}

#[test]
fn pauses_shell_sessions_and_the_push_decision_are_in_the_summary() {
    let mut events = started();
    events.extend([
        paused_before(11),
        (100, json!({"event": "shell_started", "id": id(1), "argv": ["sh"], "interactive": true, "when": "before_step"})),
        (
            900,
            json!({"event": "shell_finished", "id": id(1), "exit_code": 0, "changes": [
                {"path": "/tool", "kind": "added", "file_type": "file", "size": 10, "mode": 420, "uid": 0, "gid": 0,
                 "mtime": 0, "link_target": null, "digest": null, "opaque": false, "previous": null}]}),
        ),
        (950, json!({"event": "layer_written", "id": id(1), "layer": layer('a', 512, 1), "entries": 1, "duration_ms": 1})),
        (1000, json!({"event": "shell_resolved", "id": id(1), "kept": true, "layer": layer('a', 512, 1)})),
        (2011, json!({"event": "resumed", "id": id(1), "action": {"kind": "step"}, "paused_ms": 2000})),
        (2100, json!({"event": "output", "id": id(1), "stream": "stdout", "data": "compiled\n"})),
        (3000, json!({"event": "layer_written", "id": id(1), "layer": layer('b', 1500, 1), "entries": 3, "duration_ms": 5})),
        (
            3011,
            json!({"event": "step_finished", "id": id(1), "status": "built", "duration_ms": 1000, "paused_ms": 2000,
                   "layer": digest('b'), "exit_code": null}),
        ),
        (3012, json!({"event": "paused", "id": id(1), "line": 2, "when": "after_step", "reasons": [{"message": "step"}]})),
        (3512, json!({"event": "resumed", "id": id(1), "action": {"kind": "continue"}, "paused_ms": 500})),
        (3513, json!({"event": "redacted", "withheld": "cache_stored", "reason": "a secret in a digest"})),
        (
            3600,
            json!({"event": "image_assembled", "manifest_digest": digest('c'), "config_digest": digest('d'),
                   "media_type": "application/vnd.oci.image.manifest.v1+json", "size": 2400,
                   "layers": [layer('a', 512, 1), layer('b', 1500, 1)], "config": {}, "manifest": {}}),
        ),
        (
            3601,
            json!({"event": "push_review", "review": {"manifest_digest": digest('c'), "config_digest": digest('d'),
                   "media_type": "application/vnd.oci.image.manifest.v1+json",
                   "destinations": ["registry.example/app:1"], "layers": []}}),
        ),
        (4000, json!({"event": "push_decided", "approved": true})),
        (4001, json!({"event": "push_started", "destination": "registry.example/app:1"})),
        (
            4200,
            json!({"event": "push_finished", "destination": "registry.example/app:1", "digest": digest('c'),
                   "duration_ms": 199}),
        ),
        (4300, json!({"event": "build_finished", "duration_ms": 4300, "digest": digest('c'), "pushed": ["registry.example/app:1"]})),
    ]);
    let (summary, code) = replay(&events);
    let want = [
        "trowel trace (format 2, trowel 0.1.0, started 2026-01-01T00:00:00.000Z)",
        "Dockerfile: Dockerfile (1 stage(s)), platform linux/amd64, destinations: registry.example/app:1",
        "Stage 0: FROM busybox",
        "  line 1    config     0.0s  FROM busybox",
        // The session is an entry of its own, with its own time, before the step it ran ahead of.
        "  line 2    shell      0.8s  debug shell before line 2: sh (interactive), exit 0, changed 1 path(s), kept as layer sha256:aaaaaaaaaaaa (512 B)",
        "  line 2    built      1.0s  RUN make                                          layer 1.5 kB  paused 2.5s",
        "    paused before the step (breakpoint at line 2 [2]) for 2.0s, then stepped",
        "    paused after the step (step) for 0.5s, then continued",
        "warning: a cache_stored event was withheld: a secret in a digest",
        &format!("Image: {}, 2 layer(s), 2.0 kB", digest('c')),
        "Push approved",
        &format!("Pushed registry.example/app@{}", digest('c')),
        // The 2.5s paused at the step and the 0.4s the push review waited for its answer.
        "Built in 4.3s (2.9s of it paused in the debugger)",
    ];
    assert_eq!(summary.lines().collect::<Vec<_>>(), want, "{summary}");
    assert_eq!(code, 0);
}

#[test]
fn an_aborted_build_says_aborted_and_exits_non_zero() {
    // Aborted at the pause before the RUN: the step never ran.
    let mut events = started();
    events.extend([
        paused_before(11),
        (311, json!({"event": "resumed", "id": id(1), "action": {"kind": "abort", "reason": "wrong base"}, "paused_ms": 300})),
        (312, json!({"event": "build_failed", "error": "build aborted: wrong base", "step": null, "line": 2, "aborted": true})),
    ]);
    let (summary, code) = replay(&events);
    let lines: Vec<&str> = summary.lines().skip(3).collect();
    assert_eq!(
        lines,
        [
            "  line 1    config     0.0s  FROM busybox",
            "  line 2    stopped   ≥0.0s  RUN make                                          paused 0.3s",
            "    paused before the step (breakpoint at line 2 [2]) for 0.3s, then aborted: wrong base",
            "ABORTED: build aborted: wrong base",
        ],
        "{summary}"
    );
    assert_eq!(code, 1);

    // A refused push.
    let mut events = started();
    events.extend([
        (20, json!({"event": "step_finished", "id": id(1), "status": "built", "duration_ms": 10, "layer": null, "exit_code": null})),
        (30, json!({"event": "push_decided", "approved": false, "reason": "not today"})),
        (31, json!({"event": "build_failed", "error": "push refused: not today", "step": null, "line": null, "aborted": true})),
    ]);
    let (summary, code) = replay(&events);
    assert!(summary.ends_with("Push refused: not today\nABORTED: push refused: not today\n"), "{summary}");
    assert!(!summary.contains("FAILED"), "{summary}");
    assert_eq!(code, 1);
}

#[test]
fn a_failed_build_exits_with_the_failed_run_s_code() {
    let mut events = started();
    events.extend([
        (11, json!({"event": "output", "id": id(1), "stream": "stderr", "data": "make: *** no rule\n"})),
        (20, json!({"event": "step_finished", "id": id(1), "status": "failed", "duration_ms": 9, "layer": null, "exit_code": 2})),
        (21, json!({"event": "build_failed", "error": "Dockerfile:2: RUN make: exit code 2", "step": null, "line": 2})),
    ]);
    let (summary, code) = replay(&events);
    assert!(
        summary.ends_with("FAILED: Dockerfile:2: RUN make: exit code 2\n  output:\n  | make: *** no rule\n"),
        "{summary}"
    );
    assert_eq!(code, 2, "as `trowel build` exited");
}

#[test]
fn a_killed_build_exits_non_zero_and_says_where_it_stopped() {
    let mut events = started();
    events.push((500, json!({"event": "output", "id": id(1), "stream": "stdout", "data": "working\n"})));
    let (summary, code) = replay(&events);
    assert!(summary.contains("INTERRUPTED: the trace ends at 0.5s"), "{summary}");
    assert!(
        summary
            .contains("It was running Dockerfile:2: RUN make (started at 0.0s, ran ≥0.5s)\n  output:\n  | working\n"),
        "{summary}"
    );
    // Its time is frozen at the trace's last event, marked unfinished.
    assert!(summary.contains("  line 2    unfinished  ≥0.5s  RUN make\n"), "{summary}");
    assert_eq!(code, 1);

    // Killed while paused.
    let mut events = started();
    events.push(paused_before(1500));
    let (summary, code) = replay(&events);
    assert!(
        summary.contains("    paused before the step (breakpoint at line 2 [2]): still paused when the trace ends\n"),
        "{summary}"
    );
    assert!(summary.contains("It was paused before Dockerfile:2: RUN make (since 1.5s)"), "{summary}");
    assert_eq!(code, 1);
}

#[test]
fn a_runs_mounts_are_listed_under_it() {
    // testdata/traces/mounts: a real build with RUN --mount of every kind but ssh.
    let trace = common::repo_root().join("testdata/traces/mounts.jsonl");
    let o = run(trowel().arg("replay").arg(trace).arg("--summary"));
    let text = stdout(&o);
    assert!(o.status.success(), "{text}");
    for want in [
        "    mount cache /root/.cache/pkg · id=pkg · sharing=locked rw\n",
        "    mount bind /in · from stage build:/out · ro\n",
        "    mount secret (environment only) · id=token · env=TOKEN\n",
        "    mount tmpfs /tmp/scratch\n",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    assert!(!text.contains("LEAKED") && !text.contains("trace-secret-value"), "{text}");
}

/// A real debugger session (testdata/traces/shell.jsonl, recorded by tests/tui_debug_e2e.rs): the
/// shell kept before line 4 is an entry of its own, with its own time, before line 4's step,
/// whose time leaves the pause out.
#[test]
fn a_kept_shell_session_is_an_entry_of_its_own() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/traces/shell.jsonl");
    let o = run(trowel().arg("replay").arg(&path).arg("--summary"));
    let summary = stdout(&o);
    let line4: Vec<&str> = summary.lines().filter(|l| l.starts_with("  line 4 ")).collect();
    assert_eq!(line4.len(), 2, "{summary}");
    assert!(line4[0].starts_with("  line 4    shell "), "{summary}");
    assert!(line4[0].contains("debug shell before line 4: /bin/sh (interactive), exit 0"), "{summary}");
    assert!(line4[0].contains("kept as layer sha256:"), "{summary}");
    assert!(line4[1].starts_with("  line 4    built ") && line4[1].contains("paused "), "{summary}");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn the_breakpoints_the_trace_recorded_are_listed_with_those_removed() {
    let mut events = started();
    // Set at the start; line 2's removed at the build's end (after it fired).
    events.insert(1, (0, json!({"event": "breakpoints", "set": ["2", "size:10MB"]})));
    events.extend([
        paused_before(11),
        (500, json!({"event": "resumed", "id": id(1), "action": {"kind": "continue"}, "paused_ms": 489})),
        (
            520,
            json!({"event": "step_finished", "id": id(1), "status": "built", "duration_ms": 20, "paused_ms": 489,
                   "layer": null, "exit_code": null}),
        ),
        (521, json!({"event": "breakpoints", "set": ["size:10MB"]})),
        (522, json!({"event": "build_finished", "duration_ms": 522, "digest": null, "pushed": []})),
    ]);
    let (s, code) = replay(&events);
    assert_eq!(code, 0, "{s}");
    assert!(s.contains("\nBreakpoints: size:10MB (removed during the build: 2)\n"), "{s}");
    // A trace without the event says nothing of breakpoints it does not know.
    let (s, _) = replay(&started());
    assert!(!s.contains("Breakpoints"), "{s}");
}

#[path = "tui_support/platforms.rs"]
mod platforms;

/// Issue 16: a build for two platforms (the hand-made trace of tests/tui_support/platforms.rs):
/// the platforms, each stage instance with its platform (the shared one once), each platform's
/// image with its digest, layers and size, then the index.
#[test]
fn a_build_for_two_platforms_reports_each_platform_and_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platforms.jsonl");
    std::fs::write(&path, platforms::trace_text()).unwrap();
    let o = run(trowel().arg("replay").arg(&path).arg("--summary"));
    let summary = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{summary}");
    assert!(summary.contains("(2 stage(s)), platforms linux/amd64, linux/arm64, destinations: "), "{summary}");
    assert!(summary.contains("Stage build (linux/amd64 (shared by all)): FROM busybox:1.35\n"), "{summary}");
    assert!(summary.contains("Stage 1 (linux/amd64): FROM busybox:1.35\n"), "{summary}");
    assert!(summary.contains("Stage 1 (linux/arm64): FROM busybox:1.35\n"), "{summary}");
    assert_eq!(summary.matches("line 2 ").count(), 1, "the shared stage ran once: {summary}");
    assert_eq!(summary.matches("line 7 ").count(), 2, "the final stage ran once per platform: {summary}");
    let amd = format!("Image linux/amd64: {}, 3 layer(s), 900.4 kB", "sha256:".to_string() + &"7".repeat(64));
    let arm = format!("Image linux/arm64: {}, 3 layer(s), 800.4 kB", "sha256:".to_string() + &"8".repeat(64));
    let index =
        format!("Index: sha256:{} (application/vnd.oci.image.index.v1+json): linux/amd64, linux/arm64", "9".repeat(64));
    let at = |s: &str| summary.find(s).unwrap_or_else(|| panic!("{s:?} not in {summary}"));
    assert!(at(&amd) < at(&arm) && at(&arm) < at(&index), "{summary}");
    assert!(summary.contains(&format!("Pushed 127.0.0.1:5000/app@sha256:{}", "9".repeat(64))), "{summary}");
}

/// What a step did to read from another stage or an image (here: a whole root of stage 0
/// mounted from the unpacked-layer store, and a path taken out of an image's layers) is
/// listed under it, with how long it took, which the step's time holds.
#[test]
fn what_a_step_did_to_read_from_a_stage_or_an_image_is_listed_under_it() {
    let mut events = started();
    events.extend([
        (
            11,
            json!({"event": "source_unpacked", "for_step": id(1), "stage": 0, "layers": 5, "entries": 12,
                   "bytes": 4096, "duration_ms": 41, "from_store": 4,
                   "why": "the unpacked-layer store holds most of its layers"}),
        ),
        (
            12,
            json!({"event": "source_extracted", "for_step": id(1), "image": "busybox", "paths": ["/bin/busybox"],
                   "layers": 1, "entries": 400, "skipped": 3, "bytes": 1000000, "passes": 1, "duration_ms": 1250}),
        ),
        (
            1400,
            json!({"event": "step_finished", "id": id(1), "status": "built", "duration_ms": 1390, "layer": null,
                   "exit_code": null}),
        ),
    ]);
    let (text, _) = replay(&events);
    let want = "  line 2    built      1.4s  RUN make\n\
                \x20   read from stage 0: mounted, 1 of 5 layers unpacked into the store in 41 ms (a whole root: \
                the unpacked-layer store holds most of its layers)\n\
                \x20   read from busybox: extracted /bin/busybox: 400 entries of 1 layer (3 left out) in 1.2s\n";
    assert!(text.contains(want), "{want}\nin\n{text}");
}

/// An ONBUILD trigger runs at its stage's FROM line, and the summary marks it as the Steps pane
/// does rather than list it as an instruction of that line.
#[test]
fn an_onbuild_trigger_is_marked() {
    let mut events = started();
    events[0].1["stages"][0]["steps"][1]["onbuild"] = json!(true);
    events.push((
        20,
        json!({"event": "step_finished", "id": id(1), "status": "built", "duration_ms": 10, "layer": null,
               "exit_code": null}),
    ));
    let (summary, _) = replay(&events);
    assert!(
        summary.lines().any(|l| l.starts_with("  line 2    built") && l.contains("(ONBUILD) RUN make")),
        "{summary}"
    );
}

/// An ARG's line is listed with the value the build gave it (`--build-arg A=5` over `ARG A=1`),
/// as the Steps pane shows it: the line as written would be a plausible, wrong figure. A FROM
/// keeps its line as written (`AS name` included).
#[test]
fn an_arg_is_listed_with_the_value_the_build_gave_it() {
    let plan = |step: usize, line: usize, source: &str| {
        json!({"id": id(step), "line": line, "end_line": line, "keyword": source.split(' ').next().unwrap(),
               "source": source, "onbuild": false})
    };
    let started = |step: usize, line: usize, source: &str, expanded: &str| {
        json!({"event": "step_started", "id": id(step), "line": line, "end_line": line,
               "keyword": source.split(' ').next().unwrap(), "source": source, "expanded": expanded})
    };
    let finished = |step: usize| {
        json!({"event": "step_finished", "id": id(step), "status": "metadata", "duration_ms": 1, "layer": null,
               "exit_code": null})
    };
    let events = vec![
        (
            0,
            json!({"event": "build_started", "version": "0.1.0", "dockerfile_path": "Dockerfile",
                   "dockerfile_text": "FROM $B AS app\nARG A=1\n", "context": ".", "target": null,
                   "destinations": [], "platform": "linux/amd64", "isolation": "chroot",
                   "stages": [{"index": 0, "name": "app", "base": "busybox", "needed": true,
                               "steps": [plan(0, 1, "FROM $B AS app"), plan(1, 2, "ARG A=1")]}]}),
        ),
        (1, json!({"event": "stage_started", "stage": 0, "name": "app", "base": "busybox"})),
        (2, started(0, 1, "FROM $B AS app", "FROM busybox")),
        (3, finished(0)),
        (4, started(1, 2, "ARG A=1", "ARG A=5")),
        (5, finished(1)),
    ];
    let (summary, _) = replay(&events);
    assert!(summary.contains("ARG A=5") && !summary.contains("ARG A=1"), "{summary}");
    assert!(summary.contains("FROM $B AS app"), "{summary}");
}
