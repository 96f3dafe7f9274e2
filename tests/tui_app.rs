//! Scenario tests of the debugger's key handling on the app state alone (no terminal): the
//! app is fed the events of real recorded builds (testdata/traces/) plus the pauses and
//! questions a live engine sends, and each test checks the state and the effects (answers to
//! the engine) that keys produce.

mod tui_support;

use std::sync::{Arc, Mutex};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use trowel::debugger::{Breakpoint, Resume};
use trowel::tui::app::{Popup, Severity, Waiting};
use trowel::tui::panes::View;
use trowel::tui::{App, Effect, Msg, Pane, Theme};
use trowel_engine::engine::controller::{Decision, ShellChoice};
use trowel_events::{Event, StepId};
use trowel_events::{PushReview, ReviewLayer, When};
use tui_support::*;

fn selected_line(app: &App) -> usize {
    app.selected_step().unwrap().line
}

/// A live session fed the tour trace's events up to (not including) the event `stop` says.
fn live_until(stop: impl Fn(&Event) -> bool) -> (App, Arc<Mutex<Vec<Breakpoint>>>) {
    let bps = Arc::new(Mutex::new(vec![Breakpoint::Failure]));
    let mut app = App::live("testdata/traces/tour/Dockerfile".into(), bps.clone());
    for e in events("tour") {
        if stop(&e.event) {
            break;
        }
        app.update(Msg::Event(Box::new(e)));
    }
    (app, bps)
}

fn started_line(e: &Event, line: usize) -> bool {
    matches!(e, Event::StepStarted { line: l, .. } if *l == line)
}

fn finished_line_13(e: &Event) -> bool {
    matches!(e, Event::StepFinished { id, .. } if *id == StepId { stage: 1, step: 1 })
}

#[test]
fn vim_keys_arrows_gg_and_pane_numbers_navigate() {
    let mut app = replay("tour");
    assert_eq!(selected_line(&app), 19, "a replay opens on the last step that wrote a layer");
    assert_eq!(app.focus, Pane::Steps);
    press(&mut app, "k k");
    assert_eq!(selected_line(&app), 16);
    press(&mut app, "down");
    assert_eq!(selected_line(&app), 17);
    press(&mut app, "g");
    assert_eq!(selected_line(&app), 17, "a single g waits for the second");
    press(&mut app, "g");
    assert_eq!(selected_line(&app), 5);
    press(&mut app, "G");
    assert_eq!(selected_line(&app), 21);
    press(&mut app, "home");
    assert_eq!(selected_line(&app), 5);
    press(&mut app, "8");
    assert_eq!((app.focus, app.detail), (Pane::Files, Pane::Files));
    press(&mut app, "6");
    assert_eq!((app.focus, app.detail), (Pane::Logs, Pane::Logs));
    press(&mut app, "tab tab tab");
    assert_eq!(app.focus, Pane::Steps, "tab wraps around");
    assert_eq!(app.detail, Pane::Files, "the right side keeps the last detail pane");
    press(&mut app, "backtab backtab backtab backtab");
    assert_eq!(app.focus, Pane::Layers);
    press(&mut app, "1 enter");
    assert_eq!(app.focus, Pane::Layers, "enter on a step focuses the detail pane shown");
    press(&mut app, "z");
    assert!(app.zoom);
    press(&mut app, "esc");
    assert!(!app.zoom, "esc leaves zoom");
}

#[test]
fn changes_tree_collapses_filters_sorts_and_opens_files() {
    let mut app = replay("tour");
    press(&mut app, "k 2"); // line 17: sed, ln -s, chmod
    let changes = &app.panes().changes;
    let paths: Vec<String> = changes.rows().iter().map(|r| changes.tree().nodes[r.node].path.clone()).collect();
    assert_eq!(paths, ["/bin", "/bin/app-link", "/etc", "/etc/app", "/etc/app/config.ini"]);
    // Collapse /bin with h on its row; l expands it again.
    press(&mut app, "h");
    assert_eq!(app.panes().changes.rows().len(), 4);
    press(&mut app, "l");
    assert_eq!(app.panes().changes.rows().len(), 5);
    // h on a child goes to its parent row.
    press(&mut app, "j h");
    assert_eq!(app.panes().changes.cursor(), 0);
    // Filter by typing after /; esc clears it.
    press(&mut app, "/");
    type_text(&mut app, "CONFIG");
    press(&mut app, "enter");
    assert_eq!(app.panes().changes.filter(), "CONFIG");
    assert_eq!(app.panes().changes.rows().len(), 3, "the match and its ancestors");
    press(&mut app, "esc");
    assert!(app.panes().changes.filter().is_empty());
    // Collapse all, expand all.
    press(&mut app, "-");
    assert_eq!(app.panes().changes.rows().len(), 2);
    press(&mut app, "+");
    assert_eq!(app.panes().changes.rows().len(), 5);
    // Sort by size: /etc (the config file) outweighs /bin (a symlink).
    press(&mut app, "s");
    let first = app.panes().changes.rows()[0];
    assert_eq!(app.panes().changes.tree().nodes[first.node].path, "/etc");
    press(&mut app, "s");
    // Enter on the file opens the File pane; h goes back.
    press(&mut app, "G enter");
    assert_eq!(app.focus, Pane::File);
    assert_eq!(app.panes().file.path(), Some("/etc/app/config.ini"));
    press(&mut app, "h");
    assert_eq!(app.focus, Pane::Changes);
    // Selecting another step resets the file.
    press(&mut app, "1 k");
    assert_eq!(app.panes().file.path(), None);
}

#[test]
fn log_search_moves_between_matches_and_scope_narrows_to_the_step() {
    let mut app = replay("tour");
    press(&mut app, "6 /");
    type_text(&mut app, "unit");
    press(&mut app, "enter");
    let line_of = |app: &App| {
        let scope = app.log_scope();
        app.model.logs.get(scope[app.panes().logs.current().unwrap()]).unwrap().text.clone()
    };
    assert_eq!(line_of(&app), "  unit 1 ok");
    press(&mut app, "n");
    assert_eq!(line_of(&app), "  unit 2 ok");
    press(&mut app, "n n");
    assert_eq!(line_of(&app), "  unit 1 ok", "search wraps around");
    press(&mut app, "N");
    assert_eq!(line_of(&app), "  unit 3 ok");
    assert!(app.message.as_ref().unwrap().0.contains("match 3 of 3"));
    press(&mut app, "esc");
    assert!(app.panes().logs.query().is_empty());
    // Without a search, n in a replay says so (there is no stepping).
    press(&mut app, "n");
    assert!(app.message.as_ref().unwrap().0.contains("no search"));
    // Scope: the selected step (line 19) printed one line.
    press(&mut app, "a");
    assert!(app.panes().logs.step_only());
    assert_eq!(app.log_scope().len(), 1);
    press(&mut app, "a");
    assert_eq!(app.log_scope().len(), app.model.logs.len());
}

#[test]
fn a_replay_is_read_only() {
    let mut app = replay("fail-run-exit");
    assert_eq!(selected_line(&app), 3, "a failed build opens on the failed step");
    assert_eq!(app.detail, Pane::Logs, "with its output");
    for k in ["c", "!", "b", "r", "F", "M"] {
        let fx = press(&mut app, k);
        assert!(fx.is_empty(), "{k} in a replay");
        assert!(app.message.as_ref().unwrap().0.contains("read-only"), "{k}");
    }
    let fx = press(&mut app, "q");
    assert_eq!(fx, vec![Effect::Quit], "a replay quits without asking");
}

#[test]
fn a_killed_build_opens_on_the_step_it_was_running() {
    let app = replay("killed");
    assert_eq!(selected_line(&app), 6);
    assert!(app.model.finished.is_none() && app.model.failure.is_none());
    assert_eq!(app.model.current, Some(app.selected_id().unwrap()));
}

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

fn review(app: &App) -> PushReview {
    let img = events("tour")
        .into_iter()
        .find_map(|e| match e.event {
            Event::ImageAssembled { manifest_digest, config_digest, media_type, layers, .. } => {
                Some((manifest_digest, config_digest, media_type, layers))
            }
            _ => None,
        })
        .unwrap();
    let _ = app;
    PushReview {
        manifest_digest: img.0,
        config_digest: Some(img.1),
        media_type: img.2,
        destinations: vec!["127.0.0.1:5000/tour:1".into()],
        layers: img
            .3
            .iter()
            .enumerate()
            .map(|(i, l)| ReviewLayer {
                digest: l.digest.clone(),
                size: l.size,
                uncompressed_size: l.uncompressed_size,
                media_type: l.media_type.clone(),
                step: l.step,
                shell: l.shell,
                present: vec![Some(i == 0)],
                mount_from: Vec::new(),
            })
            .collect(),
        platforms: Vec::new(),
    }
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

#[test]
fn the_selection_follows_the_running_step_until_the_user_moves() {
    let (mut app, _) = live_until(|e| started_line(e, 15));
    assert_eq!(selected_line(&app), 13);
    press(&mut app, "k");
    assert!(!app.panes().steps.following());
    let rest: Vec<_> = events("tour").into_iter().skip_while(|e| !started_line(&e.event, 15)).take(1).collect();
    app.update(Msg::Event(Box::new(rest[0].clone())));
    assert_eq!(selected_line(&app), 12, "the user's selection stays");
    press(&mut app, "f");
    assert!(app.panes().steps.following());
    assert_eq!(selected_line(&app), 15, "f jumps back to the running step");
}

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

#[test]
fn the_mouse_selects_rows_and_tabs_and_scrolls() {
    let mut app = replay("tour");
    let theme = Theme::dark();
    screen(&mut app, 100, 30, &theme);
    let click = |x: u16, y: u16| {
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: x,
            row: y,
            modifiers: KeyModifiers::NONE,
        })
    };
    let (row, id) = app
        .panes()
        .steps
        .hits()
        .iter()
        .find(|(_, id)| app.model.step(*id).unwrap().line == 8)
        .copied()
        .unwrap_or_else(|| panic!("line 8 in {:?}", app.panes().steps.hits()));
    app.update(click(5, row));
    assert_eq!(app.selected_id(), Some(id));
    assert!(!app.panes().steps.following());
    let (rect, _) = app.areas.tabs.iter().find(|(_, p)| *p == Pane::Logs).copied().unwrap();
    app.update(click(rect.x + 1, rect.y));
    assert_eq!(app.focus, Pane::Logs);
    // The wheel over the Steps pane moves the selection without moving the focus.
    let steps = app.areas.steps;
    app.update(Msg::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: steps.x + 2,
        row: steps.y + 2,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(selected_line(&app), 15);
    assert_eq!(app.focus, Pane::Logs);
    // Clicking a Dockerfile line selects its step.
    screen(&mut app, 100, 30, &theme);
    let (row, _) = app.panes().steps.source_hits().iter().find(|(_, l)| *l == 14).copied().unwrap();
    app.update(click(app.areas.source.x + 3, row));
    assert_eq!(selected_line(&app), 13, "line 14 is a continuation of the RUN at line 13");
}

#[test]
fn drawing_changes_nothing_and_says_what_it_showed() {
    let mut app = replay("tour");
    press(&mut app, "k 2 G");
    let theme = Theme::dark();
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(80, 24)).unwrap();
    let mut frames = Vec::new();
    for _ in 0..2 {
        let mut drawn = None;
        t.draw(|f| drawn = Some(trowel::tui::ui::draw(f, &app, &theme))).unwrap();
        frames.push((drawn.unwrap(), t.backend().buffer().clone()));
    }
    assert_eq!(frames[0], frames[1], "the same app draws the same frame");
    let (drawn, _) = frames.remove(0);
    let shown = drawn.views.iter().find_map(|v| match v {
        View::Changes(c) => Some(c.clone()),
        _ => None,
    });
    let shown = shown.expect("the Changes pane was drawn");
    assert_eq!(shown.cursor, 4, "G went to the last of the five rows");
    assert_eq!(shown.hits.len(), 5, "every row is on screen, where the mouse finds it");
    assert!(app.panes().changes.hits().is_empty(), "nothing is stored until the app is told");
    app.update(Msg::Drawn(Box::new(drawn)));
    assert_eq!(app.panes().changes.hits(), shown.hits);
}

#[test]
fn key_release_events_are_ignored() {
    let mut app = replay("tour");
    let mut release = KeyEvent::new(KeyCode::Char('k'), KeyModifiers::NONE);
    release.kind = ratatui::crossterm::event::KeyEventKind::Release;
    app.update(Msg::Key(release));
    assert_eq!(selected_line(&app), 19);
}

#[test]
fn a_live_build_says_what_its_checks_found() {
    let mut app = App::live("testdata/traces/checks/Dockerfile".into(), Arc::new(Mutex::new(vec![])));
    for e in events("checks") {
        let check = matches!(&e.event, Event::Check { line: 4, .. });
        app.update(Msg::Event(Box::new(e)));
        if check {
            break;
        }
    }
    let (text, severity) = app.message.clone().unwrap();
    assert_eq!(text, "build check warning: LegacyKeyValueFormat on line 4 (2 in all, marked ! in the Dockerfile)");
    assert_eq!(severity, Severity::Warn);
    // A replay of the same build shows the markers, not a message.
    assert!(replay("checks").message.is_none());
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

/// The Steps pane's row of a Dockerfile line.
fn steps_row(app: &mut App, line: usize) -> String {
    let t = pane(app, Pane::Steps, 70, 20);
    let buf = t.backend().buffer();
    let rows: Vec<String> = (0..buf.area.height)
        .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>())
        .collect();
    let needle = format!("{line:>3} ");
    rows.into_iter().find(|r| r.contains(&needle) && !r.contains('$')).unwrap_or_default()
}

#[test]
fn a_replay_is_frozen_time() {
    let mut app = replay("killed");
    let killed = events("killed");
    let last = killed.last().unwrap().ms;
    let started = app.model.steps().find(|s| s.line == 6).unwrap().started_ms.unwrap();
    let before = steps_row(&mut app, 6);
    let want = format!("≥{}", trowel::tui::format::duration_ms(last - started));
    assert!(before.contains(&want), "the time up to the last event, marked unfinished: {before}");
    // Minutes of wall-clock time later, nothing has moved.
    app.update(Msg::Tick { ms: last + 600_000 });
    assert_eq!(steps_row(&mut app, 6), before);
}

#[test]
fn a_running_steps_time_leaves_out_its_pause() {
    let (mut app, _) =
        live_until(|e| matches!(e, Event::StepFinished { id, .. } if *id == StepId { stage: 1, step: 1 }));
    let id = StepId { stage: 1, step: 1 };
    let started = app.model.step(id).unwrap().started_ms.unwrap();
    // Paused before the step for 300 s (a shell in it), then running for 2 s.
    let env = |ms, event| Msg::Event(Box::new(trowel_events::Envelope { seq: 0, ms, event }));
    app.update(env(started + 1, Event::Paused { id, line: 13, when: When::BeforeStep, reasons: Vec::new() }));
    app.update(env(
        started + 300_001,
        Event::Resumed { id, action: trowel_events::ResumeAction::Step, paused_ms: 300_000 },
    ));
    app.update(Msg::Tick { ms: started + 302_001 });
    let row = steps_row(&mut app, 13);
    assert!(row.contains(" 2.0s"), "2 s of run time, not 302 s: {row}");
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
