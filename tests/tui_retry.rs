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
use trowel_events::{Attempt, Envelope, Event, ResumeAction, StepId, StepStatus, When};
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
