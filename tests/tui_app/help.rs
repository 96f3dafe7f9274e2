//! Help and hints: the help lists the panes' keys and runs the best match of its filter, the hint
//! bar offers only what the state allows, and `p` says why there is no push review.

use super::*;

#[test]
fn help_lists_the_panes_keys_filters_and_runs_the_selection() {
    let mut app = replay("tour");
    press(&mut app, "2 ?");
    let rows = app.help_rows("");
    assert_eq!(rows[0].context, trowel::tui::keymap::Context::Changes, "the focused pane's keys come first");
    type_text(&mut app, "logs pane");
    let Some(Popup::Help { filter, .. }) = &app.popup else { panic!("help is open") };
    assert_eq!(app.help_rows(filter).len(), 1);
    press(&mut app, "enter");
    assert!(app.popup.is_none());
    assert_eq!(app.focus, Pane::Logs, "enter ran the binding");
    press(&mut app, "?");
    press(&mut app, "?");
    assert!(app.popup.is_none(), "? closes help again");
}

/// The hint bar (the screen's last row) at 200 columns, so nothing is cut.
fn hint_bar(app: &mut App) -> String {
    let t = screen(app, 200, 30, &Theme::dark());
    let buf = t.backend().buffer();
    let y = buf.area.height - 1;
    (0..buf.area.width).map(|x| buf[(x, y)].symbol().to_string()).collect()
}

#[test]
fn hints_offer_only_what_the_state_allows() {
    let (mut app, _) = live_until(|e| started_line(e, 13));
    let running = hint_bar(&mut app);
    assert!(running.contains("b break"), "{running}");
    for gone in ["n next", "c continue", "! shell"] {
        assert!(!running.contains(gone), "{gone} means nothing while the build runs: {running}");
    }
    pause(&mut app, 13, When::BeforeStep, "step");
    let paused = hint_bar(&mut app);
    for hint in ["n next", "c continue", "! shell", "b break"] {
        assert!(paused.contains(hint), "{hint} at a pause: {paused}");
    }
    // The build ends: no debugging key is offered any more.
    let (mut app, _) = live_until(|_| false);
    pause(&mut app, 13, When::AfterStep, "step");
    app.update(Msg::BuildDone { error: None });
    let over = hint_bar(&mut app);
    for gone in ["n next", "c continue", "! shell", "b break"] {
        assert!(!over.contains(gone), "{gone} after the build: {over}");
    }
    assert!(over.contains("? help") && over.contains("q quit"), "{over}");
    // The push review: y/n only while it waits for the answer; esc (back to the panes, the
    // review waits) whenever it is open.
    let (mut app, _) = live_until(|e| matches!(e, Event::PushStarted { .. }));
    app.update(Msg::ReviewPush(Box::new(review(&app))));
    let asked = hint_bar(&mut app);
    assert!(asked.contains("y push") && asked.contains("n abort") && asked.contains("esc panes"), "{asked}");
    press(&mut app, "y");
    let answered = hint_bar(&mut app);
    assert!(!answered.contains("y push") && !answered.contains("n abort"), "{answered}");
}

#[test]
fn p_says_why_there_is_no_push_review() {
    // Built with --no-push: nothing will ever be pushed.
    let mut app = replay("whiteouts");
    assert!(app.model.destinations.is_empty());
    press(&mut app, "p");
    assert!(app.popup.is_none());
    let (text, _) = app.message.clone().unwrap();
    assert!(text.contains("does not push") && text.contains("--no-push"), "{text}");
    // A build that failed before its review.
    let mut app = replay("fail-run-exit");
    app.model.destinations = vec!["127.0.0.1:5000/x:1".into()];
    press(&mut app, "p");
    let (text, _) = app.message.clone().unwrap();
    assert!(text.contains("ended before its push review"), "{text}");
    // A live build still running.
    let (mut app, _) = live_until(|e| started_line(e, 13));
    press(&mut app, "p");
    assert!(app.message.as_ref().unwrap().0.contains("nothing to push yet"));
}

#[test]
fn help_runs_the_best_match_of_the_filter() {
    let mut app = replay("tour");
    press(&mut app, "?");
    type_text(&mut app, "zoom");
    let Some(Popup::Help { filter, selected }) = app.popup.clone() else { panic!("help is open") };
    assert!(app.help_rows(&filter).len() >= 2, "esc mentions zoom too");
    assert_eq!(app.help_rows(&filter)[selected].action, trowel::tui::keymap::Action::Zoom);
    press(&mut app, "enter");
    assert!(app.popup.is_none());
    assert!(app.zoom, "enter zoomed (it did not run esc)");
    // A key typed as the filter selects its binding.
    press(&mut app, "esc ?");
    type_text(&mut app, "G");
    let Some(Popup::Help { filter, selected }) = app.popup.clone() else { panic!("help is open") };
    assert_eq!(app.help_rows(&filter)[selected].action, trowel::tui::keymap::Action::Bottom);
}
