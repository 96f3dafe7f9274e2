//! Fix and retry in the terminal debugger (issue 15), on the app state alone: at a failed
//! step's pause `R` answers the engine with a re-run and `E` opens a one-line editor on the
//! instruction as written whose `enter` answers with the edited text; elsewhere both say why
//! they do nothing. Snapshots pin the failure pause (its hint bar offers the re-run) and the
//! editor at 80x24; the fold of a re-run (and what `replay --summary` says of it) is checked on
//! a trace with a re-run. The push review's warning is checked in tmux (`tui_debug_e2e.rs`).

mod tui_support;

use std::sync::{Arc, Mutex};

use insta::assert_snapshot;
use trowel::debugger::{Breakpoint, Resume};
use trowel::tui::app::{Popup, Waiting};
use trowel::tui::{App, Effect, Msg, Theme};
use trowel_engine::engine::controller::{Checkpoint, StepReport};
use trowel_events::{Attempt, Envelope, Event, PushReview, ResumeAction, ReviewLayer, StepId, StepStatus, When};
use tui_support::*;

const RUN: StepId = StepId { stage: 0, step: 1 };

/// A live session of the recorded failing build (line 3: `RUN echo before && exit 3`), up to the
/// failure and not past it, paused after the failed step as the engine pauses there.
fn failure_pause() -> App {
    let bps = Arc::new(Mutex::new(vec![Breakpoint::Failure]));
    let mut app = App::live("testdata/corpus/fail-run-exit/Dockerfile".into(), bps);
    for e in events("fail-run-exit") {
        if matches!(e.event, Event::BuildFailed { .. }) {
            break;
        }
        app.update(Msg::Event(Box::new(e)));
    }
    app.update(Msg::Paused {
        at: Box::new(failed_at(1, "RUN echo before && exit 3")),
        reasons: vec!["step failed".into()],
    });
    app
}

fn failed_at(attempt: u32, source: &str) -> Checkpoint {
    Checkpoint {
        when: When::AfterStep,
        id: RUN,
        line: 3,
        stage_name: None,
        keyword: "RUN".into(),
        source: source.into(),
        expanded: source.into(),
        attempt,
        report: Some(StepReport {
            status: StepStatus::Failed,
            error: Some("exit code 3".into()),
            exit_code: Some(3),
            layer_size: None,
            changed_paths: vec![],
            cache_miss: false,
        }),
        root_dir: None,
        targets: Vec::new(),
        dockerfile_stage: None,
    }
}

#[test]
fn r_re_runs_the_failed_step() {
    let mut app = failure_pause();
    assert_eq!(press(&mut app, "R"), vec![Effect::Resume(Resume::Retry(None))]);
    assert_eq!(app.waiting, None, "the pause is answered");
    // Once answered, another R has no pause to answer.
    assert_eq!(press(&mut app, "R"), vec![]);
}

#[test]
fn e_edits_the_instruction_and_enter_runs_it() {
    let mut app = failure_pause();
    assert!(press(&mut app, "E").is_empty());
    let Some(Popup::EditStep(ed)) = &app.popup else { panic!("the editor opens: {:?}", app.popup) };
    assert_eq!(ed.text, "RUN echo before && exit 3");
    // Keys are text in the editor: `q` does not quit, `n` does not step.
    press(&mut app, "backspace backspace backspace backspace backspace backspace");
    type_text(&mut app, "true; q n");
    let Some(Popup::EditStep(ed)) = &app.popup else { panic!() };
    assert_eq!(ed.text, "RUN echo before && true; q n");
    assert_eq!(app.waiting, Some(Waiting::Pause), "still paused while editing");
    let fx = press(&mut app, "enter");
    assert_eq!(fx, vec![Effect::Resume(Resume::Retry(Some("RUN echo before && true; q n".into())))]);
    assert!(app.popup.is_none());
}

#[test]
fn the_editor_shows_a_multi_line_instruction_as_its_logical_line_and_esc_keeps_the_pause() {
    let bps = Arc::new(Mutex::new(vec![Breakpoint::Failure]));
    let mut app = App::live("Dockerfile".into(), bps);
    app.update(Msg::Paused {
        at: Box::new(failed_at(1, "RUN make \\\n    -j4 \\\n    all")),
        reasons: vec!["step failed".into()],
    });
    press(&mut app, "E");
    let Some(Popup::EditStep(ed)) = &app.popup else { panic!() };
    assert_eq!(ed.text, "RUN make -j4 all");
    // Enter with nothing changed re-runs the step as it is (not as an edit).
    assert_eq!(press(&mut app, "enter"), vec![Effect::Resume(Resume::Retry(None))]);

    app.update(Msg::Paused { at: Box::new(failed_at(2, "RUN make")), reasons: vec!["step failed".into()] });
    press(&mut app, "E esc");
    assert!(app.popup.is_none());
    assert_eq!(app.waiting, Some(Waiting::Pause), "esc leaves the build paused at the failure");
}

#[test]
fn re_running_is_refused_where_there_is_nothing_to_re_run() {
    let mut app = failure_pause();
    // A pause before a step (or after one that worked) offers no re-run.
    let mut before = failed_at(1, "RUN echo before && exit 3");
    before.when = When::BeforeStep;
    before.report = None;
    app.update(Msg::Paused { at: Box::new(before), reasons: vec!["step".into()] });
    assert!(press(&mut app, "R").is_empty());
    assert!(press(&mut app, "E").is_empty());
    assert!(app.popup.is_none());
    let said = app.message.clone().unwrap().0;
    assert!(said.contains("only a failed RUN, COPY or ADD"), "{said}");
    // A replay is read-only.
    let mut replay = replay("fail-run-exit");
    assert!(press(&mut replay, "R E").is_empty());
    assert!(replay.popup.is_none());
}

#[test]
fn failure_pause_offers_the_re_run_80x24() {
    let mut app = failure_pause();
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

#[test]
fn instruction_editor_80x24() {
    let mut app = failure_pause();
    press(&mut app, "E backspace");
    type_text(&mut app, "0");
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

/// The state a replay of a build with a re-run folds to: the step's latest attempt, the choice,
/// and why the image is not the Dockerfile's.
#[test]
fn a_re_run_is_folded_as_the_steps_latest_attempt() {
    let mut evs: Vec<Envelope> =
        events("fail-run-exit").into_iter().filter(|e| !matches!(e.event, Event::BuildFailed { .. })).collect();
    let mut seq = evs.last().unwrap().seq;
    let mut push = |event: Event| {
        seq += 1;
        evs.push(Envelope { seq, ms: 200 + seq, event });
    };
    push(Event::Paused { id: RUN, line: 3, when: When::AfterStep, reasons: vec![] });
    push(Event::Resumed {
        id: RUN,
        action: ResumeAction::Retry { edited: Some("RUN echo fixed".into()) },
        paused_ms: 40,
    });
    push(Event::StepStarted {
        id: RUN,
        line: 3,
        end_line: 3,
        keyword: "RUN".into(),
        source: "RUN echo fixed".into(),
        expanded: "RUN echo fixed".into(),
        mounts: vec![],
        attempt: Some(Attempt { number: 2, edited_from: Some("RUN echo before && exit 3".into()), after_shell: false }),
    });
    push(Event::StepFinished {
        id: RUN,
        status: StepStatus::Built,
        duration_ms: 5,
        paused_ms: 0,
        layer: None,
        exit_code: None,
    });
    let state = trowel_events::BuildState::from_events(&evs);
    let step = state.step(RUN).unwrap();
    assert_eq!(step.exit_code, None, "the failed attempt's exit code is not the step's any more");
    assert_eq!(step.source, "RUN echo fixed");
    assert_eq!(state.deviations(), vec!["line 3: edited in trowel debug (was: RUN echo before && exit 3)".to_string()]);
    // `replay --summary` says it under the step, with the choice made at the pause.
    let header = trowel::trace::Header { trowel_trace: 3, trowel_version: "0.1.0".into(), started: "t".into() };
    let summary = trowel::trace::summary::summarize(&header, &state);
    assert!(summary.contains("\n    line 3: edited in trowel debug (was: RUN echo before && exit 3)\n"), "{summary}");
    assert!(summary.contains("then ran it edited: RUN echo fixed"), "{summary}");
}

// --- the marks of a re-run or edited step ----------------------------------------------------

const RERUN_LAYER: &str = "sha256:5c3f1f2e9a0b4d7c8e6f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";

/// The recorded failing build, then a re-run of its failed step from the failure pause
/// (`edited`: the text it ran as, or `None` for as written) that worked and made a layer.
fn retried(edited: Option<&str>) -> Vec<Envelope> {
    let mut evs: Vec<Envelope> =
        events("fail-run-exit").into_iter().filter(|e| !matches!(e.event, Event::BuildFailed { .. })).collect();
    let mut seq = evs.last().unwrap().seq;
    let mut push = |ms: u64, event: Event| {
        seq += 1;
        evs.push(Envelope { seq, ms, event });
    };
    let source = edited.unwrap_or("RUN echo before && exit 3");
    push(103, Event::Paused { id: RUN, line: 3, when: When::AfterStep, reasons: vec![] });
    push(
        1603,
        Event::Resumed { id: RUN, action: ResumeAction::Retry { edited: edited.map(str::to_string) }, paused_ms: 1500 },
    );
    push(
        1603,
        Event::StepStarted {
            id: RUN,
            line: 3,
            end_line: 3,
            keyword: "RUN".into(),
            source: source.into(),
            expanded: source.into(),
            mounts: vec![],
            attempt: Some(Attempt {
                number: 2,
                edited_from: edited.map(|_| "RUN echo before && exit 3".into()),
                after_shell: false,
            }),
        },
    );
    let layer = trowel_events::LayerSummary {
        digest: RERUN_LAYER.parse().unwrap(),
        diff_id: None,
        size: 120,
        uncompressed_size: Some(1536),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        step: Some(RUN),
        shell: None,
    };
    push(1650, Event::LayerWritten { id: RUN, layer, entries: 1, duration_ms: 2 });
    push(
        1650,
        Event::StepFinished {
            id: RUN,
            status: StepStatus::Built,
            duration_ms: 47,
            paused_ms: 0,
            layer: Some(RERUN_LAYER.parse().unwrap()),
            exit_code: None,
        },
    );
    evs
}

fn text(t: &ratatui::Terminal<ratatui::backend::TestBackend>) -> Vec<String> {
    let buf = t.backend().buffer();
    let w = buf.area.width as usize;
    buf.content.chunks(w).map(|row| row.iter().map(|c| c.symbol()).collect::<String>()).collect()
}

fn retried_replay(edited: Option<&str>) -> App {
    App::replay("retried.jsonl".into(), &retried(edited))
}

#[test]
fn an_edited_step_is_marked_in_steps_and_layers_and_its_detail_says_what_it_was() {
    let mut app = retried_replay(Some("RUN echo fixed"));
    let steps = text(&pane(&mut app, trowel::tui::Pane::Steps, 60, 8));
    let row = steps.iter().find(|l| l.contains("echo fixed")).expect("the step's row");
    assert!(row.contains("✎ RUN echo fixed"), "{steps:#?}");
    // The failed attempt's pause is time paused, beside (not in) the re-run's run time.
    assert!(row.contains("0.0s"), "{row}");
    assert!(row.contains("‖1.5s"), "{row}");
    // Layers: the step that made the layer is marked, and its details say the attempt and
    // what the Dockerfile had.
    press(&mut app, "5 j");
    let layers = text(&pane(&mut app, trowel::tui::Pane::Layers, 90, 16)).join("\n");
    assert!(layers.contains("L3 RUN ✎"), "{layers}");
    assert!(layers.contains("attempt 2, edited (was: RUN echo before && exit 3)"), "{layers}");
    // The command popup (`e`): the run and paused times apart, the attempt, the original.
    press(&mut app, "1 g g j e");
    let popup = text(&screen(&mut app, 100, 30, &Theme::dark())).join("\n");
    assert!(popup.contains("paused 1.5s in the debugger (not in the run time)"), "{popup}");
    assert!(popup.contains("attempt 2, edited (was: RUN echo before && exit 3)"), "{popup}");
}

#[test]
fn a_re_run_as_written_is_marked_as_a_re_run_live_and_in_replay() {
    let evs = retried(None);
    let mut replay = App::replay("retried.jsonl".into(), &evs);
    let bps = Arc::new(Mutex::new(vec![Breakpoint::Failure]));
    let mut live = App::live("Dockerfile".into(), bps);
    for e in &evs {
        live.update(Msg::Event(Box::new(e.clone())));
    }
    for app in [&mut replay, &mut live] {
        let steps = text(&pane(app, trowel::tui::Pane::Steps, 60, 8));
        assert!(steps.iter().any(|l| l.contains("↻ RUN echo before && exit 3")), "{steps:#?}");
        assert!(!steps.iter().any(|l| l.contains('✎')), "{steps:#?}");
        press(app, "5 j");
        let layers = text(&pane(app, trowel::tui::Pane::Layers, 90, 16)).join("\n");
        assert!(layers.contains("L3 RUN ↻"), "{layers}");
        assert!(layers.contains("(attempt 2, re-run)"), "{layers}");
    }
    // A step that ran once, as written, has no mark.
    let plain = text(&pane(&mut replay, trowel::tui::Pane::Steps, 60, 8));
    assert!(plain.iter().any(|l| l.contains("FROM") && !l.contains('↻')), "{plain:#?}");
}

#[test]
fn edited_step_80x24() {
    let mut app = retried_replay(Some("RUN echo fixed"));
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

#[test]
fn edited_step_layers_100x30() {
    let mut app = retried_replay(Some("RUN echo fixed"));
    press(&mut app, "5 j");
    assert_snapshot!(screen(&mut app, 100, 30, &Theme::dark()).backend());
}

/// The push review names an edited or re-run step's layer as the Layers pane does (`L3 RUN ✎`),
/// not as the step as written (`L3 RUN`).
#[test]
fn the_push_review_marks_an_edited_or_re_run_steps_layer() {
    for (edited, mark) in [(Some("RUN echo fixed"), "L3 RUN ✎"), (None, "L3 RUN ↻")] {
        let bps = Arc::new(Mutex::new(vec![Breakpoint::Failure]));
        let mut app = App::live("Dockerfile".into(), bps);
        for e in retried(edited) {
            app.update(Msg::Event(Box::new(e)));
        }
        let layer = ReviewLayer {
            digest: RERUN_LAYER.parse().unwrap(),
            size: 120,
            uncompressed_size: Some(1536),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            step: Some(RUN),
            shell: None,
            present: vec![Some(false)],
            mount_from: vec![None],
        };
        let review = PushReview {
            manifest_digest: RERUN_LAYER.parse().unwrap(),
            config_digest: Some(RERUN_LAYER.parse().unwrap()),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            destinations: vec!["127.0.0.1:5000/team/app:1".into()],
            layers: vec![layer],
            platforms: Vec::new(),
        };
        app.update(Msg::ReviewPush(Box::new(review)));
        let s = text(&screen(&mut app, 100, 30, &Theme::dark())).join("\n");
        let row = s.lines().find(|l| l.contains("120 B")).unwrap_or_else(|| panic!("the layer's row: {s}"));
        assert!(row.contains(mark), "{mark} in {row}\n{s}");
    }
}
