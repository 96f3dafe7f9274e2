//! The debugger on a build for two platforms (tests/tui_support/platforms.rs: linux/amd64 and
//! linux/arm64, a `FROM --platform=$BUILDPLATFORM` stage both share, a final stage each): whole
//! screens at fixed sizes, the platform filter of the Steps pane (`t`) and what follows it
//! (the Layers pane's image), the push review of an index, breakpoints that name a platform in
//! the Breaks pane, the log, and that a build for one platform shows none of it; and the real
//! binary replaying the trace in a tmux terminal.

mod common;
mod tui_support;

use std::sync::{Arc, Mutex};

use insta::assert_snapshot;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use trowel::debugger::Breakpoint;
use trowel::tui::{App, Msg, Pane, Theme};
use trowel_events::{Event, When};
use tui_support::platforms::{self, AMD64, ARM64, id};
use tui_support::*;

fn text(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let w = buf.area.width as usize;
    let cells: Vec<&str> = buf.content.iter().map(|c| c.symbol()).collect();
    cells.chunks(w).map(|row| row.concat()).collect::<Vec<_>>().join("\n")
}

fn replayed() -> App {
    App::replay("platforms.jsonl".into(), &platforms::events())
}

/// A live session that has seen the events before the first `stop` matches.
fn live_until(bps: Arc<Mutex<Vec<Breakpoint>>>, stop: impl Fn(&Event) -> bool) -> App {
    let mut app = App::live("Dockerfile".into(), bps);
    for e in platforms::events() {
        if stop(&e.event) {
            break;
        }
        app.update(Msg::Event(Box::new(e)));
    }
    app
}

#[test]
fn two_platforms_80x24() {
    let mut app = replayed();
    let t = screen(&mut app, 80, 24, &Theme::dark());
    let s = text(&t);
    assert!(s.contains("stage 1 · linux/amd64 · FROM") && s.contains("stage 1 · linux/arm64 · FROM"), "{s}");
    assert!(s.contains("all platforms"), "the Steps title says what it shows: {s}");
    assert!(s.contains(" t platform"), "the hint bar offers the filter: {s}");
    assert_snapshot!(t.backend());
}

/// The Logs pane over every platform names each run of lines' platform (line 7 runs on both);
/// filtered to one, its title says which and the lines are that platform's alone.
#[test]
fn the_logs_name_the_platform_that_printed_them() {
    let mut app = replayed();
    press(&mut app, "6");
    let s = text(&screen(&mut app, 80, 24, &Theme::dark()));
    assert!(s.contains("L7   amd64 built for amd64") && s.contains("L7   arm64 built for arm64"), "{s}");
    press(&mut app, "1 t 6");
    let s = text(&screen(&mut app, 80, 24, &Theme::dark()));
    assert!(s.contains("all steps of linux/amd64"), "{s}");
    assert!(s.contains("L7   built for amd64") && !s.contains("built for arm64"), "{s}");
}

/// A debugger shell's changes kept in a stage built for one platform change that platform's
/// image only: the push review's warning says which (the other image is what the Dockerfile
/// makes).
#[test]
fn a_kept_shell_in_one_platforms_stage_is_said_of_that_image() {
    let mut state = trowel_events::BuildState::default();
    let mut seq = 0;
    let mut feed = |state: &mut trowel_events::BuildState, event: Event| {
        state.apply(&trowel_events::Envelope { seq, ms: seq, event });
        seq += 1;
    };
    for e in platforms::events() {
        feed(&mut state, e.event);
    }
    let arm = id(2, 3);
    feed(
        &mut state,
        Event::ShellStarted { id: arm, argv: vec!["/bin/sh".into()], interactive: true, when: Some(When::AfterStep) },
    );
    feed(&mut state, Event::ShellFinished { id: arm, exit_code: 0, changes: vec![] });
    feed(&mut state, Event::ShellResolved { id: arm, kept: true, layer: None });
    assert_eq!(
        state.deviations(),
        ["line 7: changes kept from a debugger shell (after RUN), in the linux/arm64 image only"]
    );
}

/// A stage run on one platform for another (its platform is not its target's) says both in
/// the top bar, as the Steps pane's header does: `linux/arm64` alone read as if it ran there.
#[test]
fn the_top_bar_says_a_stage_runs_on_one_platform_for_another() {
    let mut events = platforms::events();
    if let Event::BuildStarted { stages, .. } = &mut events[0].event {
        stages[2].platform = Some(AMD64.into());
    }
    let cut =
        events.iter().position(|e| matches!(&e.event, Event::StepFinished { id: i, .. } if *i == id(2, 3))).unwrap();
    let mut app = App::live("Dockerfile".into(), Arc::new(Mutex::new(vec![])));
    for e in &events[..cut] {
        app.update(Msg::Event(Box::new(e.clone())));
    }
    let s = text(&screen(&mut app, 120, 30, &Theme::dark()));
    assert!(s.contains("· linux/amd64 for linux/arm64"), "{s}");
    // Its output in the Logs pane over every platform is the arm64 image's, tagged so.
    press(&mut app, "6");
    let s = text(&screen(&mut app, 120, 30, &Theme::dark()));
    assert!(s.contains("L7   arm64 built for arm64"), "{s}");
}

/// `t` once: linux/amd64's stages (the shared one included), `t` again: linux/arm64's, with
/// the Layers pane showing that platform's image; a third `t` shows every platform again.
#[test]
fn the_platform_filter_cycles_and_the_layers_follow_it_120x40() {
    let mut app = replayed();
    press(&mut app, "t");
    assert_eq!(app.panes().steps.platform(), Some(AMD64));
    let s = text(&screen(&mut app, 120, 40, &Theme::dark()));
    assert!(s.contains("build · linux/amd64 (shared by all) · FROM busybox"), "{s}");
    assert!(s.contains("stage 1 · linux/amd64 · FROM") && !s.contains("stage 1 · linux/arm64"), "{s}");
    // Moving goes over the steps shown only: from the top to the bottom is amd64's last RUN.
    press(&mut app, "g g");
    assert_eq!(app.selected_id(), Some(id(0, 0)));
    press(&mut app, "G");
    assert_eq!(app.selected_id(), Some(id(1, 3)));
    // arm64: the selected line's step on arm64 is selected instead of one the filter hides.
    press(&mut app, "t");
    assert_eq!(app.panes().steps.platform(), Some(ARM64));
    assert_eq!(app.selected_id(), Some(id(2, 3)), "line 7 on linux/arm64");
    press(&mut app, "k k k k");
    assert_eq!(app.selected_id(), Some(id(0, 1)), "the shared stage is among arm64's");
    press(&mut app, "5");
    let t = screen(&mut app, 120, 40, &Theme::dark());
    let s = text(&t);
    assert!(s.contains("▸ linux/arm64") && s.contains("  linux/amd64"), "{s}");
    assert!(s.contains("index"), "{s}");
    let want = platforms::image_layers(ARM64);
    assert_eq!(trowel::tui::panes::layers::layers_for(&app.model, Some(ARM64)), want);
    assert_snapshot!(t.backend());
    press(&mut app, "1 t");
    assert_eq!(app.panes().steps.platform(), None);
    let s = text(&screen(&mut app, 120, 40, &Theme::dark()));
    assert!(s.contains("stage 1 · linux/amd64") && s.contains("stage 1 · linux/arm64"), "{s}");
}

/// The push review of the index: its digest and media type, then each platform's manifest,
/// config and layers, with what the push did with each (base layers mounted, the rest uploaded).
#[test]
fn push_review_of_an_index_120x40() {
    let mut app = replayed();
    press(&mut app, "p");
    let t = screen(&mut app, 120, 40, &Theme::dark());
    let s = text(&t);
    assert!(s.contains("index") && s.contains(platforms::INDEX_TYPE), "{s}");
    assert!(s.contains("linux/amd64 · ") && s.contains("linux/arm64 · "), "{s}");
    assert!(!s.contains("config    sha256:9"), "an index has no config: {s}");
    assert!(s.contains("pushed: 4 layer(s) uploaded (760 B), 2 mounted from another repository"), "{s}");
    assert_snapshot!(t.backend());
}

/// The live review, before the answer: what is to be mounted and uploaded, per platform, and
/// the totals (configs, manifests and the index on top).
#[test]
fn live_push_review_of_an_index_asks_first() {
    let mut app = App::live("Dockerfile".into(), Arc::new(Mutex::new(vec![])));
    for e in platforms::until_review() {
        app.update(Msg::Event(Box::new(e)));
    }
    app.update(Msg::ReviewPush(Box::new(platforms::review())));
    let s = text(&screen(&mut app, 120, 40, &Theme::dark()));
    assert!(
        s.contains(
            "to upload: 4 layer(s), 760 B (plus the configs, manifests and index); 2 to mount from another repository"
        ),
        "{s}"
    );
    assert!(s.contains("Push now?"), "{s}");
}

/// Breakpoints naming a platform, added in the Breaks pane: checked against the build's
/// platforms and against what has run on that platform.
#[test]
fn breakpoints_that_name_a_platform_in_the_breaks_pane() {
    let bps = Arc::new(Mutex::new(vec![]));
    // As arm64's RUN is about to start; amd64's runs.
    let mut app = live_until(bps.clone(), |e| matches!(e, Event::StepStarted { id, .. } if *id == id_arm_run()));
    let add = |app: &mut App, spec: &str| {
        press(app, "7 a");
        type_text(app, spec);
        press(app, "enter");
        app.message.clone().unwrap().0
    };
    assert_eq!(add(&mut app, "linux/arm64@7"), "breakpoint linux/arm64@7 added");
    let m = add(&mut app, "linux/s390x@7");
    assert!(m.contains("linux/s390x is not a platform of this build (it builds linux/amd64, linux/arm64)"), "{m}");
    // Line 7 runs on amd64, and is still to run on arm64.
    let m = add(&mut app, "linux/amd64@7");
    assert!(m.contains("has already run in this build on linux/amd64"), "{m}");
    assert_eq!(add(&mut app, "7"), "breakpoint 7 added", "unqualified: arm64's line 7 is still to run");
    let m = add(&mut app, "linux/arm64@stage:1");
    assert!(m.contains("stage 1 has already started on linux/arm64"), "{m}");
    let m = add(&mut app, "linux/amd64@stage:build");
    assert!(m.contains("build has already started on linux/amd64"), "{m}");
    let m = add(&mut app, "linux/arm64@stage:nope");
    assert!(m.contains("no stage nope on linux/arm64 (the stages: build, stage 1)"), "{m}");
    let specs: Vec<String> = bps.lock().unwrap().iter().map(Breakpoint::spec).collect();
    assert_eq!(specs, ["linux/arm64@7", "7"]);
    let t = pane(&mut app, Pane::Breaks, 70, 8);
    let s = text(&t);
    assert!(s.contains("line 7 on linux/arm64"), "{s}");
}

/// A live pause at arm64's line 7 for a breakpoint that names arm64: the step is marked `●`
/// in arm64's stage only, and the message line lists the breakpoint with its platform.
#[test]
fn a_pause_at_a_platform_breakpoint_80x24() {
    let bps = Arc::new(Mutex::new(vec![Breakpoint::parse("linux/arm64@7").unwrap()]));
    let mut app = live_until(bps, |e| matches!(e, Event::StepStarted { id, .. } if *id == id_arm_run()));
    // Showing amd64's steps: the pause on arm64 shows every platform again, to be seen.
    press(&mut app, "t");
    assert_eq!(app.panes().steps.platform(), Some(AMD64));
    let mut at = checkpoint(&app, 7, When::BeforeStep);
    at.id = id_arm_run();
    at.targets = vec![ARM64.into()];
    app.update(Msg::Paused { at: Box::new(at), reasons: vec!["breakpoint at line 7 on linux/arm64".into()] });
    assert_eq!(app.selected_id(), Some(id_arm_run()));
    assert_eq!(app.panes().steps.platform(), None);
    let t = screen(&mut app, 80, 24, &Theme::dark());
    let s = text(&t);
    let marked: Vec<&str> = s.lines().filter(|l| l.contains("●  7")).collect();
    assert_eq!(marked.len(), 1, "only arm64's line 7 is marked: {s}");
    assert_snapshot!(t.backend());
}

fn id_arm_run() -> trowel_events::StepId {
    id(2, 3)
}

/// A build for one platform shows none of it: no `t` hint, no `t` in help, a filter that says
/// there is nothing to filter, headers without a platform.
#[test]
fn a_build_for_one_platform_shows_no_platform() {
    let mut app = replay("tour");
    let s = text(&screen(&mut app, 120, 40, &Theme::dark()));
    assert!(!s.contains("platform"), "{s}");
    press(&mut app, "t");
    assert_eq!(app.panes().steps.platform(), None);
    assert_eq!(app.message.clone().unwrap().0, "this build is for one platform");
    press(&mut app, "?");
    assert!(!app.help_rows("").iter().any(|b| b.action == trowel::tui::keymap::Action::Platform));
    let mut two = replayed();
    press(&mut two, "1 ?");
    assert!(two.help_rows("").iter().any(|b| b.action == trowel::tui::keymap::Action::Platform));
}

#[test]
fn tiny_terminals_do_not_panic() {
    for (w, h) in [(20, 6), (40, 10), (1, 1), (80, 3)] {
        let mut app = replayed();
        for keys in ["", "t", "5", "t", "p", "7", "t"] {
            press(&mut app, "esc esc");
            press(&mut app, keys);
            screen(&mut app, w, h, &Theme::dark());
        }
    }
}

/// The build log of a build for two platforms: the platforms at the start, a stage's and its
/// steps' lines tagged with their platform (the stages run at the same time), each image with
/// its platform, the index, and the push review naming the index's platforms.
#[test]
fn the_log_says_which_platform_each_line_is_for() {
    let mut state = trowel_events::state::BuildState::default();
    let mut log = Vec::new();
    for e in platforms::events() {
        state.apply(&e);
        log.extend(trowel::log::lines(&state, &e.event).into_iter().map(|(_, l)| l));
    }
    let has = |s: &str| assert!(log.iter().any(|l| l == s), "{s:?} not in {log:#?}");
    has("Building Dockerfile (context .) for linux/amd64, linux/arm64");
    has("[linux/amd64, shared] Stage 0 (build): FROM busybox:1.35");
    has("[linux/arm64] Stage 1: FROM busybox:1.35");
    has("[linux/arm64] RUN uname -m > /srv/arch && echo \"built for arm64\"");
    has("[linux/amd64] RUN uname -m > /srv/arch && echo \"built for amd64\"");
    has(&format!("Image sha256:{} (linux/arm64): 3 layers, 800.4 kB", "8".repeat(64)));
    has(&format!("Image index sha256:{}: linux/amd64, linux/arm64", "9".repeat(64)));
    has(&format!(
        "Push review: sha256:{} (an index of linux/amd64, linux/arm64) to 127.0.0.1:5000/app:1",
        "9".repeat(64)
    ));
    assert!(!log.iter().any(|l| l.starts_with("[") && l.contains("Image")), "images are not a stage's");
}

/// testdata/traces/platforms.jsonl is this fixture as a trace file (`trowel replay` opens it;
/// tests/trace_versions.rs reads, folds and summarises it with the recorded ones). After a
/// change to the fixture: `TROWEL_UPDATE_TRACES=1 cargo test --test tui_platforms`.
#[test]
fn the_testdata_trace_is_the_fixture() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/traces/platforms.jsonl");
    let want = platforms::trace_text();
    if std::env::var_os("TROWEL_UPDATE_TRACES").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is not the fixture: TROWEL_UPDATE_TRACES=1 cargo test --test tui_platforms",
        path.display()
    );
    let (_, events) = trowel::trace::read(&path).unwrap();
    assert_eq!(events, platforms::events());
}

/// `b` while Steps shows one platform sets that platform's breakpoint; showing all, a plain one.
#[test]
fn b_sets_the_shown_platforms_breakpoint() {
    let bps = Arc::new(Mutex::new(vec![]));
    let mut app = live_until(bps.clone(), |e| matches!(e, Event::StageStarted { stage: 2, .. }));
    press(&mut app, "t t");
    assert_eq!(app.panes().steps.platform(), Some(ARM64));
    press(&mut app, "G b");
    assert_eq!(app.selected_id(), Some(id_arm_run()));
    assert_eq!(app.message.clone().unwrap().0, "breakpoint set at line 7 on linux/arm64");
    press(&mut app, "t b");
    let specs: Vec<String> = bps.lock().unwrap().iter().map(Breakpoint::spec).collect();
    assert_eq!(specs, ["linux/arm64@7", "7"]);
    press(&mut app, "t t b");
    let specs: Vec<String> = bps.lock().unwrap().iter().map(Breakpoint::spec).collect();
    assert_eq!(specs, ["7"], "toggled off on arm64");
}

/// The real binary in a real terminal: `trowel replay` of the two-platform trace, `t` through
/// the platforms, the Layers pane following, `q` exits 0.
#[test]
fn replay_of_a_two_platform_build_in_a_terminal() {
    let trace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/traces/platforms.jsonl");
    let t = common::tmux::Tmux::start(&format!("{} replay {}", env!("CARGO_BIN_EXE_trowel"), trace.display()), 120, 32);
    let s = t.wait_for("1 Steps 10/10 · all platforms");
    assert!(s.contains("stage 1 · linux/amd64 · FROM") && s.contains("stage 1 · linux/arm64 · FROM"), "{s}");
    t.keys("t");
    let s = t.wait_for("1 Steps 6/6 · linux/amd64");
    assert!(!s.contains("stage 1 · linux/arm64"), "{s}");
    t.keys("t5");
    let s = t.wait_for("▸ linux/arm64");
    assert!(s.contains("Steps 6/6 · linux/arm64") && s.contains("L7 RUN"), "{s}");
    t.keys("q");
    t.wait_for("EXIT=0");
}

/// The Files pane's image efficiency is of the selected step's platform's image (the shown
/// platform's for a step of a shared stage), not always the last platform's.
#[test]
fn the_files_panes_image_is_the_selected_steps_platforms() {
    use trowel::tui::model::merged::LayerBy;
    let base = |app: &App| app.panes().files.image().layers.first().map(|l| l.by);
    let mut app = replayed();
    press(&mut app, "8");
    assert_eq!(app.selected_id(), Some(id(2, 3)));
    assert_eq!(base(&app), Some(LayerBy::Base { stage: 2, index: 0 }), "arm64's image");
    // amd64's line 7: amd64's image.
    press(&mut app, "1 t 8");
    assert_eq!(app.selected_id(), Some(id(1, 3)));
    assert_eq!(base(&app), Some(LayerBy::Base { stage: 1, index: 0 }), "amd64's image");
    // The shared stage's RUN while arm64 is shown: arm64's image.
    press(&mut app, "1 t g g j 8");
    assert_eq!(app.selected_id(), Some(id(0, 1)));
    assert_eq!(app.panes().steps.platform(), Some(ARM64));
    assert_eq!(base(&app), Some(LayerBy::Base { stage: 2, index: 0 }));
}

/// The Logs pane's "all steps" shows the output of the steps the Steps pane shows.
#[test]
fn the_logs_of_all_steps_follow_the_platform_shown() {
    let mut app = replayed();
    press(&mut app, "6");
    let s = text(&pane(&mut app, Pane::Logs, 60, 8));
    assert!(s.contains("all steps") && s.contains("built for amd64") && s.contains("built for arm64"), "{s}");
    press(&mut app, "1 t t 6");
    assert_eq!(app.panes().steps.platform(), Some(ARM64));
    let s = text(&pane(&mut app, Pane::Logs, 60, 8));
    assert!(s.contains("all steps") && s.contains("built for arm64") && !s.contains("built for amd64"), "{s}");
}

/// A platform's image that was never assembled is "not assembled yet" only while the build can
/// still make it: a failed build's Layers pane said "yet" of both platforms for good.
#[test]
fn an_image_a_failed_build_never_assembled_is_not_said_to_come_yet() {
    let until_images: Vec<_> =
        platforms::events().into_iter().take_while(|e| !matches!(e.event, Event::ImageAssembled { .. })).collect();
    let layers_text = |app: &mut App| {
        press(app, "5");
        text(&screen(app, 120, 40, &Theme::dark()))
    };
    let mut live = live_until(Arc::default(), |e| matches!(e, Event::ImageAssembled { .. }));
    let s = layers_text(&mut live);
    assert!(s.contains("linux/amd64 not assembled yet") && s.contains("linux/arm64 not assembled yet"), "{s}");

    let mut failed = until_images.clone();
    let last = failed.last().unwrap().clone();
    failed.push(trowel_events::Envelope {
        seq: last.seq + 1,
        ms: last.ms + 1,
        event: Event::BuildFailed { error: "pushing: refused".into(), step: None, line: None, aborted: false },
    });
    let mut app = App::replay("platforms.jsonl".into(), &failed);
    let s = layers_text(&mut app);
    assert!(s.contains("linux/amd64 not assembled: the build failed"), "{s}");
    assert!(!s.contains("yet"), "{s}");
    // A trace that ends first (a killed build) says so.
    let mut app = App::replay("platforms.jsonl".into(), &until_images);
    let s = layers_text(&mut app);
    assert!(s.contains("linux/arm64 not assembled: the trace ends before"), "{s}");
}
