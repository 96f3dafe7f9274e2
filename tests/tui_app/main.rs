//! Scenario tests of the debugger's key handling on the app state alone (no terminal): the
//! app is fed the events of real recorded builds (testdata/traces/) plus the pauses and
//! questions a live engine sends, and each test checks the state and the effects (answers to
//! the engine) that keys produce.

#[path = "../tui_support/mod.rs"]
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
    assert!(app.message.as_ref().unwrap().0.contains("line 3 of 3"));
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

mod answers;
mod help;
