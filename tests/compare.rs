//! `trowel replay A --compare B` on recorded traces (testdata/traces/, real builds): the
//! pairing of steps, the key and file verdicts, the plain summary and its exit code, a trace
//! of a killed build compared up to where it stopped, and the compare view's screens (insta
//! snapshots) and keys. Comparing builds recorded in the test against the local registry is
//! `tests/compare_builds.rs`.

mod common;
mod tui_support;

use std::path::{Path, PathBuf};

use insta::assert_snapshot;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use trowel::compare::{Comparison, FilesVerdict, KeyVerdict, Matched, Row, text};
use trowel::tui::Theme;
use trowel::tui::compare::{CompareView, Focus};
use tui_support::{key_event, trace_path};

fn compare(a: &Path, b: &Path) -> Comparison {
    Comparison::load(a, b).expect("both traces read")
}

fn row_at(c: &Comparison, line: usize) -> &Row {
    c.rows.iter().find(|r| r.step().line == line).unwrap_or_else(|| panic!("no row at line {line}"))
}

/// cache-cold and cache-rebuild: the demo built twice with `--cache`, message.txt changed in
/// between. Every step before its COPY is the same; the COPY names the file, the step after it
/// names the COPY.
#[test]
fn a_changed_file_is_named_and_the_steps_before_it_are_equal() {
    let c = compare(&trace_path("cache-cold"), &trace_path("cache-rebuild"));
    assert!(c.rows.iter().all(|r| r.matched == Matched::ByLine), "same Dockerfile: every step paired by line");
    for line in [3, 4, 5, 6, 13, 14, 15] {
        assert!(!row_at(&c, line).differs(), "line {line} should be equal: {:?}", row_at(&c, line));
    }
    assert!(matches!(row_at(&c, 5).key, KeyVerdict::Equal { .. }));
    assert!(matches!(row_at(&c, 5).files, FilesVerdict::SameLayer { .. }));
    let copy = row_at(&c, 16);
    assert_eq!(copy.key, KeyVerdict::Differ { reasons: vec!["COPY message.txt: 1 file changed (message.txt)".into()] });
    let FilesVerdict::Differ { files, unknown } = &copy.files else { panic!("files: {:?}", copy.files) };
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, "/etc/motd");
    assert!(files[0].what.starts_with("content differs ("), "{}", files[0].what);
    assert!(unknown.is_empty());
    let workdir = row_at(&c, 18);
    assert_eq!(
        workdir.key,
        KeyVerdict::Differ { reasons: vec!["parent step changed (line 16: COPY message.txt /etc/motd)".into()] }
    );
    assert!(!c.equivalent());
    assert_eq!(c.exit_code(), 1);
    assert_eq!(c.differing().map(|r| r.step().line).collect::<Vec<_>>(), vec![16, 18]);

    let summary = text::render(&c);
    assert!(summary.contains("  A: "), "{summary}");
    assert!(summary.contains("(trace format 1, started 2026-11-25T22:20:21.217Z)"), "{summary}");
    assert!(summary.contains("key: COPY message.txt: 1 file changed (message.txt)\n"), "{summary}");
    assert!(summary.contains("file /etc/motd: content differs ("), "{summary}");
    assert!(summary.contains("cache: A miss, B miss"), "{summary}");
    // Both traces recorded /etc/motd's content: its two versions, as a diff.
    assert!(
        summary.contains(
            "            - No daemon was harmed in the making of this image.\n            + This message changed"
        ),
        "{summary}"
    );
    assert!(summary.contains("  same  line 5       COPY greet.sh .  (key equal; same layer)"), "{summary}");
    assert!(summary.ends_with("Different: 2 of 11 step(s) differ (line 16, line 18)\n"), "{summary}");
}

#[test]
fn a_trace_compared_with_itself_is_equivalent() {
    for name in ["cache-rebuild", "multistage", "mounts", "killed", "fail-run-exit", "platforms"] {
        let c = compare(&trace_path(name), &trace_path(name));
        assert!(c.equivalent(), "{name}: {}", text::render(&c));
        assert_eq!(c.exit_code(), 0);
        assert!(text::render(&c).contains("\nEquivalent: all "), "{name}");
    }
}

/// A build for several platforms is compared stage instance by instance, each headed by its
/// Dockerfile stage and its platform: the unnamed final stage is `1 · linux/amd64` and `1 ·
/// linux/arm64`, not the plan's indices `1` and `2` without a platform.
#[test]
fn stages_of_a_build_for_several_platforms_are_named_with_their_platform() {
    let c = compare(&trace_path("platforms"), &trace_path("platforms"));
    let mut labels: Vec<&str> = c.rows.iter().map(|r| r.stage_label.as_str()).collect();
    labels.dedup();
    assert_eq!(labels, ["build · linux/amd64 (shared by all)", "1 · linux/amd64", "1 · linux/arm64"]);
    assert!(text::render(&c).contains("\nStage 1 · linux/arm64\n"), "{}", text::render(&c));
}

/// A build killed half way leaves a trace cut after its last event: it compares up to there.
#[test]
fn a_killed_build_compares_up_to_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read_to_string(trace_path("multistage")).unwrap();
    // Cut during `COPY --from=0 /out/other /other` (line 26 of the trace: it started, nothing after).
    let cut: String = full.lines().take(26).map(|l| format!("{l}\n")).collect();
    let killed = dir.path().join("killed.jsonl");
    std::fs::write(&killed, cut).unwrap();
    let c = compare(&trace_path("multistage"), &killed);
    assert_eq!(
        c.ending.as_deref().map(|e| e.starts_with("A finished; B stopped without an ending during line")),
        Some(true)
    );
    let done: Vec<&Row> = c.rows.iter().filter(|r| r.progress.is_none()).collect();
    let stopped: Vec<(String, String)> =
        c.rows.iter().filter_map(|r| r.progress.clone().map(|p| (r.step().text.clone(), p))).collect();
    assert_eq!(
        stopped,
        vec![
            ("COPY --from=0 /out/other /other".to_string(), "A: built; B: running when the trace ends".to_string()),
            ("COPY --from=BUILDER /out /out-dir/".to_string(), "A: built; B: not reached".to_string()),
        ]
    );
    assert!(done.iter().all(|r| !r.differs()), "the steps both builds finished are the same");
    assert_eq!(c.exit_code(), 1);
    assert!(text::render(&c).contains("The builds ended differently: A finished; B stopped"));
}

/// The binary: `--summary` prints the comparison and exits 0 (equivalent), 1 (different) or 2
/// (a trace cannot be read).
#[test]
fn the_summary_command_exits_with_the_verdict() {
    let run = |a: &Path, b: &Path| {
        let o = common::run(common::trowel().arg("replay").arg(a).arg("--compare").arg(b).arg("--summary"));
        (o.status.code(), common::stdout(&o), common::stderr(&o))
    };
    let (code, out, _) = run(&trace_path("cache-cold"), &trace_path("cache-rebuild"));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("Comparing build A with build B\n"), "{out}");
    assert!(out.contains("key: COPY message.txt: 1 file changed (message.txt)"), "{out}");
    let (code, out, _) = run(&trace_path("cache-cold"), &trace_path("cache-cold"));
    assert_eq!(code, Some(0), "{out}");
    let (code, _, err) = run(&trace_path("cache-cold"), &PathBuf::from("/nonexistent/b.jsonl"));
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/b.jsonl"), "{err}");
    // Without a terminal the view says how to get the text.
    let o = common::run(
        common::trowel().arg("replay").arg(trace_path("cache-cold")).arg("--compare").arg(trace_path("cache-rebuild")),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("--summary"), "{}", common::stderr(&o));
}

fn screen(v: &CompareView, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| trowel::tui::compare::draw(f, v, &Theme::dark())).unwrap();
    t
}

fn press(v: &mut CompareView, keys: &str) -> bool {
    keys.split_whitespace().any(|k| v.key(key_event(k)))
}

fn rebuild_view() -> CompareView {
    // The paths as a person types them, so the snapshots do not depend on the checkout.
    let mut c = compare(&trace_path("cache-cold"), &trace_path("cache-rebuild"));
    c.a.path = "testdata/traces/cache-cold.jsonl".into();
    c.b.path = "testdata/traces/cache-rebuild.jsonl".into();
    CompareView::new(c)
}

#[test]
fn compare_view_opens_on_the_first_difference_120x40() {
    let v = rebuild_view();
    assert_eq!(v.row().unwrap().step().line, 16);
    assert_snapshot!(screen(&v, 120, 40).backend());
}

#[test]
fn compare_view_stacked_80x24() {
    let mut v = rebuild_view();
    press(&mut v, "n");
    assert_eq!(v.row().unwrap().step().line, 18);
    assert_snapshot!(screen(&v, 80, 24).backend());
}

#[test]
fn compare_view_differences_only_and_an_equal_step_80x24() {
    let mut v = rebuild_view();
    press(&mut v, "g");
    assert_eq!(v.row().unwrap().step().line, 3, "g goes to the first step");
    assert_snapshot!("compare_view_equal_step_80x24", screen(&v, 80, 24).backend());
    press(&mut v, "d");
    assert_eq!(v.visible().len(), 2, "only the two steps that differ");
    assert_eq!(v.row().unwrap().step().line, 16);
    assert_snapshot!("compare_view_differences_only_80x24", screen(&v, 80, 24).backend());
    press(&mut v, "j j j");
    assert_eq!(v.row().unwrap().step().line, 18, "the cursor stays on the list");
    press(&mut v, "d");
    assert_eq!(v.row().unwrap().step().line, 18, "the same step stays selected when all are shown again");
    press(&mut v, "N");
    assert_eq!(v.row().unwrap().step().line, 16);
    press(&mut v, "tab j");
    assert_eq!(v.focus, Focus::Detail);
    assert_eq!(v.detail_scroll, 1);
    assert_eq!(v.row().unwrap().step().line, 16, "j scrolls the focused Differences pane");
    assert!(!press(&mut v, "tab k"));
    assert!(press(&mut v, "q"));
}

#[test]
fn compare_view_of_equivalent_builds_says_so() {
    let mut c = compare(&trace_path("cache-rebuild"), &trace_path("cache-rebuild"));
    c.a.path = "a.jsonl".into();
    c.b.path = "b.jsonl".into();
    let mut v = CompareView::new(c);
    assert_eq!(v.verdict(), "equivalent");
    press(&mut v, "d");
    let text = format!("{:?}", screen(&v, 80, 24).backend());
    assert!(text.contains("no step differs (d shows them all)"), "{text}");
    assert!(text.contains("equivalent"), "{text}");
}
