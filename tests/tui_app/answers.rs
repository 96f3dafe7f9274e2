//! What the app answers the engine: stepping, continuing and running to the cursor at a pause,
//! breakpoints edited in the list the engine shares, a shell handed off and its changes kept or
//! discarded (or why it could not open), the push review's gate, and quitting while the engine
//! waits.

use super::*;

#[test]
fn stepping_continuing_and_run_to_cursor_answer_the_pause() {
    let (mut app, _) = live_until(|e| started_line(e, 13));
    // Keys that need a pause say so while the build runs.
    assert!(press(&mut app, "n").is_empty());
    assert!(app.message.as_ref().unwrap().0.contains("the build is running"));
    pause(&mut app, 12, When::BeforeStep, "step");
    assert_eq!(app.waiting, Some(Waiting::Pause));
    assert_eq!(selected_line(&app), 12, "the pause selects its step");
    assert_eq!(press(&mut app, "n"), vec![Effect::Resume(Resume::Step)]);
    assert_eq!(app.waiting, None);
    assert!(press(&mut app, "c").is_empty(), "answered already");
    pause(&mut app, 12, When::BeforeStep, "step");
    assert_eq!(press(&mut app, "c"), vec![Effect::Resume(Resume::Continue)]);
    // Run to cursor: pick a later step first; an earlier one is refused.
    pause(&mut app, 12, When::BeforeStep, "step");
    press(&mut app, "j j j");
    assert_eq!(selected_line(&app), 16);
    assert_eq!(press(&mut app, "r"), vec![Effect::Resume(Resume::RunToLine(16))]);
    pause(&mut app, 12, When::BeforeStep, "step");
    press(&mut app, "k");
    assert!(press(&mut app, "r").is_empty());
    assert_eq!(app.message.as_ref().unwrap().1, Severity::Warn);
    // In the Logs pane, n steps when there is no search.
    press(&mut app, "6");
    assert_eq!(press(&mut app, "n"), vec![Effect::Resume(Resume::Step)]);
}

#[test]
fn breakpoints_are_edited_in_the_shared_list() {
    let (mut app, bps) = live_until(|e| started_line(e, 13));
    press(&mut app, "k k b"); // line 7
    assert_eq!(selected_line(&app), 7);
    let lines = |b: &Arc<Mutex<Vec<Breakpoint>>>| {
        b.lock()
            .unwrap()
            .iter()
            .filter_map(|b| if let Breakpoint::Line(l) = b { Some(*l) } else { None })
            .collect::<Vec<_>>()
    };
    assert_eq!(lines(&bps), [7]);
    assert_eq!(app.breakpoint_lines(), [7]);
    press(&mut app, "b");
    assert!(lines(&bps).is_empty(), "b again removes it");
    press(&mut app, "F M");
    let kinds: Vec<String> = bps.lock().unwrap().iter().map(|b| b.describe()).collect();
    assert_eq!(kinds, ["on cache miss"], "F turned failure off, M turned cache-miss on");
}

#[test]
fn the_shell_hands_off_and_its_changes_are_kept_or_discarded() {
    let (mut app, _) = live_until(finished_line_13);
    pause(&mut app, 13, When::AfterStep, "breakpoint at line 13");
    assert_eq!(press(&mut app, "!"), vec![Effect::OpenShell]);
    assert!(app.shell_open);
    // The engine runs the shell, then reports what it changed and asks.
    let step = app.model.steps().find(|s| s.line == 13).unwrap().clone();
    let changed = step.changes.clone();
    let at = checkpoint(&app, 13, When::AfterStep);
    app.update(Msg::ShellChanges { at: Box::new(at.clone()), changes: changed.clone() });
    assert!(!app.shell_open);
    assert!(matches!(app.popup, Some(Popup::ShellChanges { .. })));
    assert_eq!(app.shown_changes().len(), changed.len(), "the Changes pane shows the shell's changes");
    assert!(press(&mut app, "q").is_empty(), "q is not an answer");
    assert_eq!(press(&mut app, "y"), vec![Effect::ShellChoice(ShellChoice::Keep)]);
    assert!(app.popup.is_none());
    app.update(Msg::ShellChanges { at: Box::new(at), changes: changed });
    assert_eq!(press(&mut app, "d"), vec![Effect::ShellChoice(ShellChoice::Discard)]);
}

/// While a shell session's changes before a step await keep or discard, the step is held
/// there as at a pause (‖, no run time): it was marked running (▶), as if it ran.
#[test]
fn a_step_whose_shell_changes_await_an_answer_is_shown_held() {
    let (mut app, _) = live_until(finished_line_13);
    pause(&mut app, 13, When::BeforeStep, "breakpoint at line 13");
    assert_eq!(press(&mut app, "!"), vec![Effect::OpenShell]);
    let at = checkpoint(&app, 13, When::BeforeStep);
    app.update(Msg::ShellChanges { at: Box::new(at), changes: Vec::new() });
    let shown = format!("{:?}", pane(&mut app, Pane::Steps, 80, 30).backend());
    let line = shown.lines().find(|l| l.contains(" 13 ")).unwrap_or_else(|| panic!("{shown}")).to_string();
    assert!(line.contains("‖") && !line.contains("▶"), "{line}");
}

#[test]
fn the_push_review_gates_the_push() {
    let (mut app, _) = live_until(|e| matches!(e, Event::PushStarted { .. }));
    let r = review(&app);
    app.update(Msg::ReviewPush(Box::new(r.clone())));
    assert_eq!(app.waiting, Some(Waiting::Push));
    assert!(press(&mut app, "esc").is_empty(), "esc does not decide");
    assert!(app.popup.is_none(), "esc leaves the review to look at the panes");
    assert_eq!(app.waiting, Some(Waiting::Push), "the engine still waits");
    assert!(!press(&mut app, "y").iter().any(|e| matches!(e, Effect::Push(_))), "y outside the review pushes nothing");
    press(&mut app, "p");
    assert!(matches!(app.popup, Some(Popup::Review { decided: false, .. })));
    assert_eq!(press(&mut app, "y"), vec![Effect::Push(Decision::Continue)]);
    assert!(matches!(app.popup, Some(Popup::Review { decided: true, .. })), "progress shows in the same popup");
    press(&mut app, "esc");
    assert!(app.popup.is_none());
    // Declining aborts.
    app.update(Msg::ReviewPush(Box::new(r)));
    let fx = press(&mut app, "n");
    assert!(matches!(&fx[..], [Effect::Push(Decision::Abort(_))]), "{fx:?}");
    assert!(app.popup.is_none());
}

#[test]
fn quitting_asks_while_the_build_runs_and_aborts_what_it_waits_for() {
    let (mut app, _) = live_until(|e| started_line(e, 13));
    assert!(press(&mut app, "q").is_empty());
    assert_eq!(app.popup, Some(Popup::ConfirmQuit));
    press(&mut app, "n");
    assert!(app.popup.is_none());
    assert_eq!(press(&mut app, "q y"), vec![Effect::Quit]);
    // At a pause, quitting answers the pause with an abort first.
    let (mut app, _) = live_until(|e| started_line(e, 13));
    pause(&mut app, 12, When::BeforeStep, "step");
    let fx = press(&mut app, "q y");
    assert!(matches!(&fx[..], [Effect::Resume(Resume::Abort(_)), Effect::Quit]), "{fx:?}");
    // ctrl-c exits at once, from a popup or while typing a filter too.
    let (mut app, _) = live_until(|e| started_line(e, 13));
    press(&mut app, "2 /");
    assert!(app.input.is_some());
    assert_eq!(press(&mut app, "ctrl-c"), vec![Effect::Quit]);
    let (mut app, _) = live_until(|e| matches!(e, Event::PushStarted { .. }));
    let r = review(&app);
    app.update(Msg::ReviewPush(Box::new(r)));
    let fx = press(&mut app, "ctrl-c");
    assert!(matches!(&fx[..], [Effect::Push(Decision::Abort(_)), Effect::Quit]), "{fx:?}");
    // Once the build is over, q quits without asking.
    let (mut app, _) = live_until(|_| false);
    app.update(Msg::BuildDone { error: None });
    assert_eq!(press(&mut app, "q"), vec![Effect::Quit]);
}

/// Issue 15: `!` where no shell can be opened (a container with no /dev/pts) used to do
/// nothing visible. The engine's reason (a warning while the shell was asked for) is what the
/// pause after it says, as an error.
#[test]
fn a_shell_that_cannot_be_opened_says_why() {
    let (mut app, _) = live_until(finished_line_13);
    pause(&mut app, 13, When::AfterStep, "breakpoint at line 13");
    assert_eq!(press(&mut app, "!"), vec![Effect::OpenShell]);
    let why = "shell session at line 13: no new terminal can be opened here: this container has no devpts on \
               /dev/pts (/dev/ptmx: No such file or directory (os error 2)); run trowel in a container whose \
               runtime mounts /dev/pts";
    let warning =
        trowel_events::Envelope { seq: 10_000, ms: app.now_ms + 1, event: Event::Warning { message: why.to_string() } };
    app.update(Msg::Event(Box::new(warning)));
    assert!(!app.shell_open, "no shell is open");
    pause(&mut app, 13, When::AfterStep, "breakpoint at line 13");
    let (text, severity) = app.message.clone().unwrap();
    assert_eq!(severity, Severity::Error);
    assert_eq!(text, format!("shell not opened: {why}"));
    assert_eq!(app.waiting, Some(Waiting::Pause), "still paused: another key can be chosen");
}

#[test]
fn enter_on_a_shell_layer_names_the_session_not_the_step() {
    let mut app = replay("shell");
    press(&mut app, "1 g g");
    let before = app.selected_id();
    press(&mut app, "5");
    let layers = trowel::tui::panes::layers::layers(&app.model);
    let at = layers.iter().position(|l| l.shell.is_some()).unwrap();
    press(&mut app, &vec!["j"; at].join(" "));
    press(&mut app, "enter");
    let (text, _) = app.message.clone().unwrap();
    assert!(text.contains("debug shell before line 4"), "{text}");
    assert_eq!(app.selected_id(), before, "line 4's step was not shown as the layer's maker");
    // The next layer is line 4's own: enter selects that step.
    press(&mut app, "j enter");
    assert_eq!(selected_line(&app), 4);
}
