//! Times and the header: the build's state in a cut header, paused time beside run time (the
//! build's total split between them), and a live pause counted at its step as it goes.

use super::*;

#[test]
fn the_build_state_survives_a_cut_header() {
    let long = "/builds/group/some-very-long-project-name/services/backend/docker/Dockerfile.production";
    let bps = Arc::new(Mutex::new(vec![]));
    let mut app = App::live(long.into(), bps);
    for e in events("tour").into_iter().take_while(|e| !started_line(&e.event, 17)) {
        app.update(Msg::Event(Box::new(e)));
    }
    pause(&mut app, 17, When::BeforeStep, "breakpoint at line 17");
    for w in [120, 80, 60, 40] {
        let top = text(&screen(&mut app, w, 24, &Theme::dark()))[0].clone();
        assert!(top.contains("paused before L17 RUN"), "{w} columns: {top:?}");
    }
    // Running: the line is kept, the command is what gets cut.
    press(&mut app, "c");
    let e = events("tour").into_iter().find(|e| started_line(&e.event, 17)).unwrap();
    app.update(Msg::Event(Box::new(e)));
    let top = text(&screen(&mut app, 60, 24, &Theme::dark()))[0].clone();
    assert!(top.contains("▶ running L17 RUN"), "{top:?}");
    // Failed and done, in replays at 60 columns.
    let top = text(&screen(&mut replay("fail-run-exit"), 60, 24, &Theme::dark()))[0].clone();
    assert!(top.contains("✗ failed at L"), "{top:?}");
    let top = text(&screen(&mut replay("tour"), 60, 24, &Theme::dark()))[0].clone();
    assert!(top.contains("✓ built in"), "{top:?}");
}

/// The recorded `shell` build paused 98ms before line 3 (no shell) and 2628ms before line 4 (a
/// shell session in it), and its push review waited 108ms for its answer; 3473ms of wall clock
/// in all.
#[test]
fn paused_time_is_shown_beside_run_time_and_the_build_splits_its_total() {
    let mut app = replay("shell");
    let rows = text(&pane(&mut app, Pane::Steps, 60, 12));
    let row = |line: &str| rows.iter().find(|r| r.contains(line)).unwrap_or_else(|| panic!("{rows:#?}")).clone();
    assert!(row("RUN sed").contains("‖0.1s"), "a pause without a shell: {rows:#?}");
    assert!(row("RUN echo done").contains("‖2.6s"), "{rows:#?}");
    assert!(!row("COPY app.conf").contains('‖'), "never paused: {rows:#?}");
    // The run time stays the step's own (27ms, 22ms), never the pause.
    assert!(!row("RUN echo done").contains("2.6s ") && !row("RUN echo done").contains("2.7s"), "{rows:#?}");
    // The top bar: run time and paused time apart, whole even at 60 columns.
    for w in [120, 80, 60] {
        let top = text(&screen(&mut app, w, 24, &Theme::dark()))[0].clone();
        assert!(top.contains("✓ built in 0.6s run, 2.8s paused"), "{w} columns: {top:?}");
    }
    // A build that never paused says one time, as before.
    let top = text(&screen(&mut replay("tour"), 80, 24, &Theme::dark()))[0].clone();
    assert!(top.contains("✓ built in") && !top.contains("paused"), "{top:?}");
    // Narrow: the paused column goes before the run time does.
    let narrow = text(&pane(&mut app, Pane::Steps, 36, 12));
    assert!(!narrow.iter().any(|r| r.contains('‖')), "{narrow:#?}");
}

#[test]
fn a_live_pause_counts_its_time_at_its_step_as_it_goes() {
    let (mut app, _) = live_until("shell", |e| matches!(e, Event::Paused { .. }));
    pause(&mut app, 3, When::BeforeStep, "breakpoint at line 3");
    app.update(Msg::Event(Box::new(
        events("shell").into_iter().find(|e| matches!(e.event, Event::Paused { .. })).unwrap(),
    )));
    app.update(Msg::Tick { ms: 2425 });
    let rows = text(&pane(&mut app, Pane::Steps, 60, 12));
    let row = rows.iter().find(|r| r.contains("RUN sed")).unwrap();
    assert!(row.contains("‖2.0s"), "paused 2s so far: {rows:#?}");
    app.update(Msg::Tick { ms: 5425 });
    let rows = text(&pane(&mut app, Pane::Steps, 60, 12));
    assert!(rows.iter().any(|r| r.contains("RUN sed") && r.contains("‖5.0s")), "{rows:#?}");
    // Too narrow for the paused column: the step, not run yet, shows it in its time column.
    let narrow = text(&pane(&mut app, Pane::Steps, 36, 12));
    assert!(narrow.iter().any(|r| r.contains("RUN sed") && r.contains("‖5.0s")), "{narrow:#?}");
}
