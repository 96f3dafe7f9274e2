//! The debugger's views that users reach for (issue 15), live and in replay: the whole file
//! system at a step (Files) with the image's efficiency, the breakpoint list, copying with OSC 52
//! and a step's whole command, the status legend and the hints, the build's state in a cut
//! header, the push review that lets the panes be looked at, and the changes of the step just
//! run shown after `n`. Scenario tests on the app state, and snapshots of the screens.

#[path = "../tui_support/mod.rs"]
mod tui_support;

use std::sync::{Arc, Mutex};

use insta::assert_snapshot;
use trowel::debugger::{Breakpoint, Resume};
use trowel::tui::app::{Popup, Severity, Waiting};
use trowel::tui::model::merged::{self, Merged};
use trowel::tui::model::{Model, StepState};
use trowel::tui::{App, Effect, Msg, Pane, Theme};
use trowel_engine::engine::controller::Decision;
use trowel_events::{Envelope, Event, PauseReason, PushReview, ResumeAction, ReviewLayer, StepId, When};
use tui_support::*;

/// A live session fed a trace's events up to (not including) the event `stop` says.
fn live_until(name: &str, stop: impl Fn(&Event) -> bool) -> (App, Arc<Mutex<Vec<Breakpoint>>>) {
    let bps = Arc::new(Mutex::new(vec![Breakpoint::Failure]));
    let mut app = App::live(format!("testdata/traces/{name}/Dockerfile"), bps.clone());
    for e in events(name) {
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

fn text(t: &ratatui::Terminal<ratatui::backend::TestBackend>) -> Vec<String> {
    let buf = t.backend().buffer();
    let w = buf.area.width as usize;
    buf.content.chunks(w).map(|row| row.iter().map(|c| c.symbol()).collect::<String>()).collect()
}

fn step_id(app: &App, line: usize) -> StepId {
    app.model.steps().find(|s| s.line == line).unwrap().id
}

// --- the header, the hints, the legend -------------------------------------------------------

// --- paused time, apart from run time -----------------------------------------------------

#[test]
fn paused_times_80x24() {
    let mut app = replay("shell");
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

#[test]
fn hints_offer_r_z_and_p_where_they_apply() {
    let (mut app, _) = live_until("tour", |e| started_line(e, 13));
    let bar = |app: &mut App| text(&screen(app, 80, 24, &Theme::dark()))[23].clone();
    let running = bar(&mut app);
    assert!(!running.contains("run to") && !running.contains(" n next"), "not paused: {running:?}");
    assert!(running.contains("z zoom"), "{running:?}");
    pause(&mut app, 13, When::BeforeStep, "step");
    let paused = bar(&mut app);
    for hint in ["n next", "c continue", "r run to", "z zoom"] {
        assert!(paused.contains(hint), "{hint:?} at a pause, 80 columns: {paused:?}");
    }
    assert!(!paused.contains("p push"), "no review yet: {paused:?}");
    // A replay offers no debugging key, but p once the trace has a push.
    let mut app = replay("tour");
    let bar = text(&screen(&mut app, 100, 24, &Theme::dark()))[23].clone();
    assert!(!bar.contains("r run to") && !bar.contains("next"), "{bar:?}");
    assert!(bar.contains("p push") && bar.contains("z zoom"), "{bar:?}");
}

#[test]
fn the_help_has_a_legend_of_every_status_icon() {
    use trowel::tui::panes::steps::LEGEND;
    let mut app = replay("tour");
    press(&mut app, "?");
    let screen = text(&screen(&mut app, 100, 40, &Theme::dark())).join("\n");
    assert!(screen.contains("Legend"), "{screen}");
    for (mark, meaning) in LEGEND {
        assert!(screen.contains(&format!("{mark} {meaning}")), "{mark} {meaning} missing:\n{screen}");
    }
    // Every icon the Steps pane draws is in the legend.
    let ctx = app.ctx();
    let theme = Theme::dark();
    for state in [
        StepState::Pending,
        StepState::Running,
        StepState::Built,
        StepState::Cached,
        StepState::Metadata,
        StepState::Failed,
        StepState::Skipped,
    ] {
        let mut step = app.model.steps().next().unwrap().clone();
        step.state = state;
        let (icon, _) = trowel::tui::panes::steps::icon(&ctx, &step, &theme);
        assert!(LEGEND.iter().any(|(m, _)| *m == icon), "{icon} ({state:?}) is not in the legend");
    }
}

// --- the breakpoint list ---------------------------------------------------------------------

fn paused_event(seq: u64, id: StepId, line: usize, spec: Option<&str>, message: &str) -> Envelope {
    Envelope {
        seq,
        ms: seq * 10,
        event: Event::Paused {
            id,
            line,
            when: When::BeforeStep,
            reasons: vec![PauseReason { breakpoint: spec.map(str::to_string), message: message.into() }],
        },
    }
}

#[test]
fn breakpoints_are_listed_added_removed_and_counted() {
    let (mut app, bps) = live_until("tour", |e| started_line(e, 13));
    *bps.lock().unwrap() = vec![Breakpoint::Failure, Breakpoint::Line(17), Breakpoint::parse("size:10MB").unwrap()];
    press(&mut app, "7");
    assert_eq!(app.focus, Pane::Breaks);
    // `a` takes the --break syntax, checked against this build.
    press(&mut app, "a");
    type_text(&mut app, "cache-miss");
    press(&mut app, "enter");
    assert!(bps.lock().unwrap().iter().any(|b| matches!(b, Breakpoint::CacheMiss)));
    for (bad, why) in
        [("99", "holds no step"), ("stage:nope", "no stage nope"), ("path:", "give a glob"), ("6", "already run")]
    {
        press(&mut app, "a");
        type_text(&mut app, bad);
        press(&mut app, "enter");
        let (msg, sev) = app.message.clone().unwrap();
        assert_eq!(sev, Severity::Error, "{bad}: {msg}");
        assert!(msg.contains(why), "{bad}: {msg}");
    }
    assert_eq!(bps.lock().unwrap().len(), 4, "nothing bad was added");
    // A line inside a multi-line instruction stops at the instruction.
    press(&mut app, "a");
    type_text(&mut app, "18");
    press(&mut app, "enter");
    assert!(bps.lock().unwrap().iter().any(|b| matches!(b, Breakpoint::Line(17))), "18 is line 17's RUN");
    assert!(app.message.as_ref().unwrap().0.contains("already set"));
    // Fired counts come from the build's pauses.
    let l17 = step_id(&app, 17);
    app.update(Msg::Event(Box::new(paused_event(1000, l17, 17, Some("17"), "breakpoint at line 17"))));
    app.update(Msg::Event(Box::new(paused_event(1001, l17, 17, None, "step"))));
    let rows = trowel::tui::panes::breaks::rows(&app.ctx());
    let row = |spec: &str| rows.iter().find(|r| r.spec == spec).unwrap().clone();
    assert_eq!((row("17").fired, row("17").last), (1, Some((l17, 17))));
    assert_eq!(row("failure").fired, 0);
    let screen = text(&screen(&mut app, 100, 30, &Theme::dark())).join("\n");
    assert!(screen.contains("line 17") && screen.contains("fired once, last at L17"), "{screen}");
    assert!(screen.contains("2 pause(s), 1 by stepping"), "{screen}");
    // `d` removes the selected one (the first: failure).
    press(&mut app, "g g d");
    assert!(!bps.lock().unwrap().iter().any(|b| matches!(b, Breakpoint::Failure)));
    // `enter` on one that fired selects the step.
    let i = trowel::tui::panes::breaks::rows(&app.ctx()).iter().position(|r| r.spec == "17").unwrap();
    press(&mut app, "g g");
    for _ in 0..i {
        press(&mut app, "j");
    }
    press(&mut app, "enter");
    assert_eq!(app.selected_step().unwrap().line, 17);
}

#[test]
fn a_replay_lists_the_breakpoints_that_fired() {
    let mut evs = events("tour");
    let id = evs
        .iter()
        .find_map(|e| match &e.event {
            Event::StepStarted { id, line: 13, .. } => Some(*id),
            _ => None,
        })
        .unwrap();
    let at = evs.iter().position(|e| started_line(&e.event, 13)).unwrap();
    let ms = evs[at].ms;
    evs.insert(at, paused_event(0, id, 13, Some("stage:1"), "stage 1 starts"));
    evs.insert(
        at + 1,
        Envelope { seq: 0, ms, event: Event::Resumed { id, action: ResumeAction::Continue, paused_ms: 5 } },
    );
    let mut app = App::replay("t.jsonl".into(), &evs);
    press(&mut app, "7");
    let rows = trowel::tui::panes::breaks::rows(&app.ctx());
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].spec.as_str(), rows[0].fired, rows[0].set), ("stage:1", 1, false));
    press(&mut app, "a");
    assert!(app.input.is_none(), "read-only");
    assert_snapshot!(pane(&mut app, Pane::Breaks, 70, 8).backend());
}

#[test]
fn a_replay_lists_every_breakpoint_the_trace_recorded() {
    let mut evs = events("tour");
    let id = step_id(&replay("tour"), 13);
    let at = evs.iter().position(|e| started_line(&e.event, 13)).unwrap();
    let ms = evs[at].ms;
    let list = |specs: &[&str]| Event::Breakpoints { set: specs.iter().map(|s| s.to_string()).collect() };
    // Set at the start; at line 13's boundary line 17's was gone and a stage one added, which
    // fired there.
    evs.insert(at, Envelope { seq: 0, ms, event: list(&["17", "failure", "size:10MB"]) });
    evs.insert(at + 1, Envelope { seq: 0, ms, event: list(&["failure", "size:10MB", "stage:1"]) });
    evs.insert(at + 2, paused_event(0, id, 13, Some("stage:1"), "stage 1 starts"));
    evs.insert(
        at + 3,
        Envelope { seq: 0, ms, event: Event::Resumed { id, action: ResumeAction::Continue, paused_ms: 5 } },
    );
    let mut app = App::replay("t.jsonl".into(), &evs);
    press(&mut app, "7");
    let rows = trowel::tui::panes::breaks::rows(&app.ctx());
    let got: Vec<(&str, bool, usize)> = rows.iter().map(|r| (r.spec.as_str(), r.set, r.fired)).collect();
    assert_eq!(
        got,
        vec![("failure", true, 0), ("size:10MB", true, 0), ("stage:1", true, 1), ("17", false, 0)],
        "set at the end (in order), then removed during the build"
    );
    let shown = text(&pane(&mut app, Pane::Breaks, 70, 8)).join("\n");
    assert!(shown.contains("3 set") && !shown.contains("this trace records"), "{shown}");
    assert!(shown.contains("layer > 10MB") && shown.contains("line 17") && shown.contains("(removed)"), "{shown}");
    assert_snapshot!(pane(&mut app, Pane::Breaks, 70, 8).backend());
}

// --- copying and the whole command ------------------------------------------------------------

#[test]
fn y_copies_the_command_the_path_the_digest() {
    let mut app = replay("tour");
    let fx = press(&mut app, "y");
    let step = app.selected_step().unwrap();
    assert_eq!(fx, vec![Effect::Copy(step.expanded.clone().unwrap())]);
    // Changes: the selected path.
    press(&mut app, "2 j");
    let fx = press(&mut app, "y");
    let [Effect::Copy(path)] = &fx[..] else { panic!("{fx:?}") };
    assert!(path.starts_with('/') && app.shown_changes().iter().any(|c| c.path.starts_with(path.as_str())), "{path}");
    // Layers: the layer's digest, whole.
    press(&mut app, "5 j");
    let fx = press(&mut app, "y");
    let [Effect::Copy(d)] = &fx[..] else { panic!("{fx:?}") };
    assert!(d.starts_with("sha256:") && d.len() == 71, "{d}");
    // The Logs pane has nothing to copy, and says so.
    press(&mut app, "6");
    assert!(press(&mut app, "y").is_empty());
    assert!(app.message.as_ref().unwrap().0.contains("nothing to copy"));
    // The sequence carries it in base64.
    let seq = trowel::tui::clipboard::osc52("sha256:ab");
    assert_eq!(seq, "\x1b]52;c;c2hhMjU2OmFi\x07");
}

#[test]
fn the_whole_command_is_shown_and_copied_with_the_engines_masking() {
    // The mounts trace was recorded with a secret in the environment of the build: it never
    // reached the trace, so neither the popup nor the clipboard can have it.
    let mut app = replay("mounts");
    let secret = "trace-secret-value-1234";
    for id in app.step_ids() {
        app.select_step(id);
        press(&mut app, "1 e");
        assert!(matches!(app.popup, Some(Popup::Command { .. })));
        let screen = text(&screen(&mut app, 80, 24, &Theme::dark())).join("\n");
        assert!(!screen.contains(secret));
        for fx in press(&mut app, "y") {
            let Effect::Copy(t) = fx else { panic!() };
            assert!(!t.contains(secret));
            assert_eq!(
                t,
                app.model.step(id).unwrap().expanded.clone().unwrap_or_else(|| app
                    .model
                    .step(id)
                    .unwrap()
                    .source
                    .clone())
            );
        }
        press(&mut app, "esc");
        assert!(app.popup.is_none());
    }
    // A failed RUN's exit code is in its popup (the status line's end, which also says it, is
    // cut on a terminal narrower than the failure's message).
    let mut app = replay("fail-run-exit");
    let failed = app.model.steps().find(|s| s.exit_code.is_some_and(|c| c != 0)).map(|s| (s.id, s.exit_code));
    let (id, code) = failed.expect("the trace has a failed RUN");
    app.select_step(id);
    press(&mut app, "1 e");
    let screen_text = text(&screen(&mut app, 80, 24, &Theme::dark())).join("\n");
    assert!(screen_text.contains(&format!("failed: exit code {}", code.unwrap())), "{screen_text}");
    press(&mut app, "esc");
    // A long RUN, wrapped in the popup rather than cut.
    let mut app = replay("tour");
    let id = step_id(&app, 8);
    app.select_step(id);
    press(&mut app, "1 e");
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

// --- the push review and `n` ------------------------------------------------------------------

fn review(app: &App) -> PushReview {
    let img = app.model.image.clone().expect("the image was assembled");
    PushReview {
        manifest_digest: img.manifest_digest.clone(),
        config_digest: Some(img.config_digest.clone()),
        media_type: img.media_type.clone(),
        destinations: vec!["127.0.0.1:5000/tour:1".into()],
        layers: img
            .layers
            .iter()
            .map(|l| ReviewLayer {
                digest: l.digest.clone(),
                size: l.size,
                uncompressed_size: l.uncompressed_size,
                media_type: l.media_type.clone(),
                step: l.step,
                shell: l.shell,
                present: vec![Some(false)],
                mount_from: vec![None],
            })
            .collect(),
        platforms: Vec::new(),
    }
}

#[test]
fn the_panes_can_be_looked_at_during_the_push_review() {
    let (mut app, _) = live_until("tour", |e| matches!(e, Event::PushStarted { .. }));
    let r = review(&app);
    app.update(Msg::ReviewPush(Box::new(r)));
    assert!(press(&mut app, "esc").is_empty(), "closing decides nothing");
    assert!(app.popup.is_none());
    assert_eq!(app.waiting, Some(Waiting::Push));
    let top = text(&screen(&mut app, 80, 24, &Theme::dark()))[0].clone();
    assert!(top.contains("the image is ready"), "{top}");
    // Look around: another step, the Layers pane.
    press(&mut app, "k k 5 j");
    assert_eq!(app.focus, Pane::Layers);
    assert!(text(&screen(&mut app, 80, 24, &Theme::dark()))[23].contains("p push"));
    // And come back to the decision.
    press(&mut app, "p");
    assert!(matches!(app.popup, Some(Popup::Review { decided: false, .. })));
    assert_eq!(press(&mut app, "y"), vec![Effect::Push(Decision::Continue)]);
}

#[test]
fn after_n_the_changes_of_the_step_just_run_are_shown() {
    let (mut app, _) = live_until("tour", |e| started_line(e, 17));
    pause(&mut app, 17, When::BeforeStep, "breakpoint at line 17");
    assert_eq!(app.selected_step().unwrap().line, 17);
    assert_eq!(press(&mut app, "n"), vec![Effect::Resume(Resume::Step)]);
    // Line 17 runs, then the build pauses before line 19.
    for e in events("tour")
        .into_iter()
        .skip_while(|e| !started_line(&e.event, 17))
        .take_while(|e| !started_line(&e.event, 19))
    {
        app.update(Msg::Event(Box::new(e)));
    }
    pause(&mut app, 19, When::BeforeStep, "step");
    assert_eq!(app.selected_step().unwrap().line, 17, "the step just run");
    assert_eq!(app.detail, Pane::Changes);
    assert!(app.shown_changes().iter().any(|c| c.path == "/etc/app/config.ini"));
    assert!(app.message.as_ref().unwrap().0.contains("paused before line 19"));
    let top = text(&screen(&mut app, 80, 24, &Theme::dark()))[0].clone();
    assert!(top.contains("paused before L19"), "the pause stays in the header: {top}");
    // `c` does not do it: the pause's own step is selected.
    press(&mut app, "c");
    for e in events("tour")
        .into_iter()
        .skip_while(|e| !started_line(&e.event, 19))
        .take_while(|e| !started_line(&e.event, 20))
    {
        app.update(Msg::Event(Box::new(e)));
    }
    pause(&mut app, 20, When::BeforeStep, "breakpoint at line 20");
    assert_eq!(app.selected_step().unwrap().line, 20);
}

// --- the whole file system and the efficiency ----------------------------------------------------

#[test]
fn the_files_pane_shows_the_tree_the_toggle_and_what_it_cannot_show() {
    let mut app = replay("files");
    let id = step_id(&app, 8);
    app.select_step(id);
    press(&mut app, "8");
    assert_eq!(app.focus, Pane::Files);
    let files = &app.panes().files;
    assert!(!files.changes_only());
    assert!(files.visible().iter().any(|(_, p)| *p == "/bin/busybox"));
    assert_snapshot!("files_whole", pane(&mut app, Pane::Files, 80, 16).backend());
    press(&mut app, "a");
    let files = &app.panes().files;
    assert!(files.changes_only());
    assert_eq!(files.visible(), [(0, "/data.bin")]);
    assert_snapshot!("files_changes_only", pane(&mut app, Pane::Files, 80, 8).backend());
    // y copies the path under the cursor.
    assert_eq!(press(&mut app, "y"), vec![Effect::Copy("/data.bin".into())]);
    // Enter on a path the step changed opens it in the File pane.
    press(&mut app, "enter");
    assert_eq!(app.focus, Pane::File);
    // Back to the whole file system, filtered.
    press(&mut app, "8 a /");
    type_text(&mut app, "busyb");
    press(&mut app, "enter");
    assert_eq!(app.panes().files.visible(), [(0, "/bin"), (1, "/bin/busybox")]);
    // A path the step did not change is not opened: who wrote it is said instead.
    press(&mut app, "j enter");
    assert_eq!(app.focus, Pane::Files);
    assert!(app.message.as_ref().unwrap().0.contains("base wrote it"), "{:?}", app.message);
    // A trace without the base listings says what the view cannot show.
    let mut app = replay("overwrites");
    press(&mut app, "8");
    let screen = text(&pane(&mut app, Pane::Files, 100, 10)).join("\n");
    assert!(screen.contains("not shown") && screen.contains("--trace-base-listings"), "{screen}");
}

mod files;
mod time;

/// The Layers pane's waste says what it could not count (a cached step of the image whose
/// listing was not compared with the layers below), as the Files pane does.
#[test]
fn the_waste_list_says_what_it_cannot_count() {
    let mut app = App::replay("cache-rebuild".into(), &events("cache-rebuild"));
    let layers = text(&pane(&mut app, Pane::Layers, 120, 30)).join("\n");
    assert!(layers.contains("⚠ not counted: L15: taken from the cache and not compared"), "{layers}");
}
