//! The fold of the debugger's events: pauses and how they resumed, paused time, shell sessions
//! and the layers they kept, the push gate, the breakpoints recorded.

use super::*;

#[test]
fn pauses_shell_sessions_and_how_they_resumed() {
    let reason = PauseReason { breakpoint: Some("2".into()), message: "breakpoint at line 2".into() };
    let before = build()
        .at(10, started(RUN, 2, "RUN make"))
        .at(11, Event::Paused { id: RUN, line: 2, when: When::BeforeStep, reasons: vec![reason.clone()] });
    let s = before.state();
    let (step, pause) = s.open_pause().expect("paused");
    assert_eq!((step.id, pause.when, pause.started_ms, &pause.reasons), (RUN, When::BeforeStep, 11, &vec![reason]));
    assert_eq!(s.current, Some(RUN));

    let s = before
        .at(
            12,
            Event::ShellStarted { id: RUN, argv: vec!["sh".into()], interactive: true, when: Some(When::BeforeStep) },
        )
        .at(13, Event::Output { id: RUN, stream: OutputStream::Stdout, data: "in the shell\n".into() })
        .at(14, Event::ShellFinished { id: RUN, exit_code: 0, changes: vec![change("/tool")] })
        // Committing the session's changes: the snapshot and layer are the session's.
        .at(
            15,
            Event::Snapshot {
                id: RUN,
                changes: vec![change("/tool")],
                stats: SnapshotStats::default(),
                classified: None,
            },
        )
        .at(16, Event::LayerWritten { id: RUN, layer: layer(3, 40, Some(RUN)), entries: 1, duration_ms: 1 })
        .at(17, Event::ShellResolved { id: RUN, kept: true, layer: Some(layer(3, 40, Some(RUN))) })
        .at(2011, Event::Resumed { id: RUN, action: ResumeAction::Step, paused_ms: 2000 })
        .at(2012, Event::Output { id: RUN, stream: OutputStream::Stdout, data: "the step\n".into() })
        .at(2013, Event::LayerWritten { id: RUN, layer: layer(1, 500, Some(RUN)), entries: 1, duration_ms: 1 })
        .at(2015, finished(RUN, StepStatus::Built, 4, 2000))
        .at(2016, Event::Paused { id: RUN, line: 2, when: When::AfterStep, reasons: Vec::new() })
        .at(2516, Event::Resumed { id: RUN, action: ResumeAction::RunTo { line: 3 }, paused_ms: 500 })
        .state();
    let run = s.step(RUN).unwrap();
    assert_eq!(run.output.lines().collect::<Vec<_>>(), ["the step"], "the shell's output is not the step's");
    assert_eq!(run.layer.as_ref().unwrap().digest, digest(1));
    assert!(run.changes.is_empty(), "the step's own snapshot never came");
    let sh = &run.shells[0];
    assert_eq!((sh.before_step, sh.kept, sh.exit_code, sh.started_ms), (true, Some(true), Some(0), 12));
    assert_eq!((sh.changes.len(), sh.layer.as_ref().unwrap().digest.clone()), (1, digest(3)));
    let resumed: Vec<_> = run.pauses.iter().map(|p| (p.when, p.resumed.clone())).collect();
    assert_eq!(
        resumed,
        [
            (When::BeforeStep, Some(Resume { action: ResumeAction::Step, paused_ms: 2000 })),
            (When::AfterStep, Some(Resume { action: ResumeAction::RunTo { line: 3 }, paused_ms: 500 })),
        ]
    );
    // The run time stays the step's; the pause before it is not counted twice.
    assert_eq!((run.duration_ms, run.paused_ms, s.paused_ms()), (Some(4), 2500, 2500));
    assert!(s.open_pause().is_none());
    assert_eq!(s.written_layers.len(), 2, "the session's layer and the step's");
}

#[test]
fn paused_time_without_pause_events_is_still_counted() {
    let s = build()
        .at(1, started(RUN, 2, "RUN make"))
        .at(9, finished(RUN, StepStatus::Built, 3, 5))
        // A resume whose pause was not recorded.
        .at(20, Event::Resumed { id: RUN, action: ResumeAction::Continue, paused_ms: 7 })
        .state();
    let run = s.step(RUN).unwrap();
    assert_eq!((run.paused_ms, run.pauses.len()), (12, 0));
}

#[test]
fn a_version_1_shell_session_is_placed_by_the_step_state() {
    let shell = |id| Event::ShellStarted { id, argv: vec!["sh".into()], interactive: true, when: None };
    let s = build()
        .at(1, started(RUN, 2, "RUN make"))
        .at(2, shell(RUN))
        .at(3, finished(RUN, StepStatus::Failed, 3, 0))
        .at(4, shell(RUN))
        .state();
    let sides: Vec<bool> = s.step(RUN).unwrap().shells.iter().map(|sh| sh.before_step).collect();
    assert_eq!(sides, [true, false]);
    assert_eq!(s.outcome(), Outcome::Unfinished);
    assert_eq!(s.failed_step(), Some(RUN));
}

#[test]
fn the_push_gate_an_abort_and_withheld_events() {
    let review = PushReview {
        manifest_digest: digest(7),
        config_digest: Some(digest(8)),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        destinations: vec!["registry.example/app:1".into()],
        layers: Vec::new(),
        platforms: Vec::new(),
    };
    let s = build()
        .at(1, Event::Redacted { withheld: "layer_written".into(), reason: "a secret in a digest".into() })
        .at(2, Event::PushReview { review: Box::new(review.clone()) })
        .at(3, Event::PushDecided { approved: false, reason: Some("too big".into()) })
        .at(4, Event::BuildFailed { error: "push refused: too big".into(), step: None, line: None, aborted: true })
        .state();
    assert_eq!(s.warnings, ["a layer_written event was withheld: a secret in a digest"]);
    assert_eq!(s.review, Some(review.clone()));
    assert_eq!(s.push_decision, Some(PushDecision { approved: false, reason: Some("too big".into()) }));
    // The wait for the answer is time in the debugger, not the build's run time.
    assert_eq!((s.paused_ms(), s.review_wait), (1, Some((2, Some(1)))));
    assert_eq!(s.outcome(), Outcome::Aborted);
    assert!(s.is_over());
    // Still waiting: it counts up to now.
    let waiting = build().at(2, Event::PushReview { review: Box::new(review.clone()) }).state();
    assert_eq!((waiting.paused_ms(), waiting.paused_now(9)), (0, 7));
    let broken = build().at(1, Event::BuildFailed { error: "x".into(), step: None, line: None, aborted: false });
    assert_eq!(broken.state().outcome(), Outcome::Failed);
}

/// A session before `RUN make` whose changes were kept: its layer written, as the engine
/// reports it (`shell` set) or as traces before that field did (`shell` absent).
fn kept_shell(shell_field: bool) -> BuildState {
    let shell_layer = LayerSummary { shell: shell_field.then_some(When::BeforeStep), ..layer(3, 40, Some(RUN)) };
    build()
        .at(10, started(RUN, 2, "RUN make"))
        .at(11, Event::Paused { id: RUN, line: 2, when: When::BeforeStep, reasons: Vec::new() })
        .at(
            12,
            Event::ShellStarted { id: RUN, argv: vec!["sh".into()], interactive: true, when: Some(When::BeforeStep) },
        )
        .at(4012, Event::ShellFinished { id: RUN, exit_code: 0, changes: vec![change("/tool")] })
        .at(4013, Event::LayerWritten { id: RUN, layer: shell_layer.clone(), entries: 1, duration_ms: 1 })
        .at(4014, Event::ShellResolved { id: RUN, kept: true, layer: Some(shell_layer) })
        .at(5011, Event::Resumed { id: RUN, action: ResumeAction::Step, paused_ms: 5000 })
        .at(5013, Event::LayerWritten { id: RUN, layer: layer(1, 500, Some(RUN)), entries: 1, duration_ms: 1 })
        .at(5015, finished(RUN, StepStatus::Built, 5, 5000))
        .state()
}

#[test]
fn a_kept_shell_layer_is_the_sessions_never_the_steps() {
    for shell_field in [true, false] {
        let s = kept_shell(shell_field);
        let run = s.step(RUN).unwrap();
        assert_eq!(run.layer.as_ref().unwrap().digest, digest(1), "the step's layer is its own");
        let sh = &run.shells[0];
        assert!(sh.is_kept());
        assert_eq!((sh.when(), sh.duration_ms(99_999)), (When::BeforeStep, 4000));
        let shells: Vec<_> = s.written_layers.iter().map(|l| l.shell).collect();
        assert_eq!(shells, [Some(When::BeforeStep), None], "the fold says whose layer it is ({shell_field})");
        // As the image lists them (without the field in old traces): who made each.
        let m = s.maker(Some(RUN), shell_field.then_some(When::BeforeStep), &digest(3));
        assert!(m.is_shell(), "{m:?}");
        assert_eq!(m.label(), "L2 shell");
        assert_eq!(m.describe(), "debug shell before line 2 (RUN make), changes kept");
        assert!(std::ptr::eq(m.step().unwrap(), run));
        let m = s.maker(Some(RUN), None, &digest(1));
        assert_eq!((m.is_shell(), m.label()), (false, "L2 RUN".to_string()));
        assert_eq!(s.maker(None, None, &digest(9)).label(), "base");
    }
}

#[test]
fn an_open_pause_counts_as_paused_time_until_it_ends() {
    let t = build()
        .at(10, started(RUN, 2, "RUN make"))
        .at(10, Event::Paused { id: RUN, line: 2, when: When::BeforeStep, reasons: vec![] });
    let s = t.state();
    let run = s.step(RUN).unwrap();
    assert_eq!((run.paused_ms, run.paused_now(1510), s.paused_now(1510)), (0, 1500, 1500));
    let s = t.at(1510, Event::Resumed { id: RUN, action: ResumeAction::Continue, paused_ms: 1500 }).state();
    // Once it ended, later clocks add nothing.
    assert_eq!(s.step(RUN).unwrap().paused_now(9000), 1500);
}

#[test]
fn the_breakpoints_recorded_are_the_last_list_and_every_one_ever_set() {
    let list = |specs: &[&str]| Event::Breakpoints { set: specs.iter().map(|s| s.to_string()).collect() };
    // A trace from before trowel recorded them knows none.
    assert_eq!(build().state().breakpoints, None);
    let s = build().at(1, list(&["2", "failure"])).at(5, list(&["failure", "path:/etc/*"])).at(9, list(&[])).state();
    assert_eq!(s.breakpoints, Some(vec![]));
    assert_eq!(s.breakpoints_ever, ["2", "failure", "path:/etc/*"].map(String::from).to_vec());
    // As a trace line.
    let line = r#"{"seq":3,"ms":1,"event":"breakpoints","set":["12","size:10MB"]}"#;
    let env: Envelope = serde_json::from_str(line).unwrap();
    assert_eq!(env.event, list(&["12", "size:10MB"]));
}

#[test]
fn a_steps_time_is_its_run_time_whatever_the_clock_says() {
    // Paused before it ran, for 5 s (a shell inside): still paused at 3 s into the pause, then
    // running 0.5 s after the pause ended, then finished.
    let paused = build()
        .at(10, started(RUN, 2, "RUN make"))
        .at(11, Event::Paused { id: RUN, line: 2, when: When::BeforeStep, reasons: Vec::new() });
    let s = paused.state();
    assert_eq!(s.step(RUN).unwrap().run_ms(3011), Some(1), "an open pause is not run time");
    let s = paused.at(5011, Event::Resumed { id: RUN, action: ResumeAction::Step, paused_ms: 5000 }).state();
    let run = s.step(RUN).unwrap();
    assert_eq!(run.run_ms(5511), Some(501));
    assert!(run.is_unfinished());
    let s = kept_shell(true);
    let run = s.step(RUN).unwrap();
    assert_eq!((run.run_ms(999_999), run.paused_ms, run.is_unfinished()), (Some(5), 5000, false));
    assert_eq!(s.step(COPY).unwrap().run_ms(999_999), None, "not started");
}
