//! The debugger's views that users reach for (issue 15), live and in replay: the whole file
//! system at a step (Files) with the image's efficiency, the breakpoint list, copying with OSC 52
//! and a step's whole command, the status legend and the hints, the build's state in a cut
//! header, the push review that lets the panes be looked at, and the changes of the step just
//! run shown after `n`. Scenario tests on the app state, and snapshots of the screens.

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

// --- paused time, apart from run time -----------------------------------------------------

/// The recorded `shell` build paused 98ms before line 3 (no shell) and 2628ms before line 4 (a
/// shell session in it); 3473ms of wall clock in all.
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
        assert!(top.contains("✓ built in 0.7s run, 2.7s paused"), "{w} columns: {top:?}");
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
fn the_file_system_at_a_step_stacks_every_layer_below_it() {
    // The overwrites build: data.bin written three times (1000, 1500, 2000 bytes) then chmod'ed
    // (a fourth whole copy), a cache directory filled over two steps and removed by a third.
    let model = Model::from_events(&events("files"));
    let line = |l: usize| model.steps().find(|s| s.line == l).unwrap().id;
    let at = |l: usize| merged::at(&model, Some(line(l)));
    let size = |m: &Merged, p: &str| m.entries.get(p).map(|e| e.change.size);
    // The base image is there (busybox's /bin/sh), with the steps' files on top.
    assert!(at(6).entries.contains_key("/bin/busybox"));
    assert!(at(6).unknown.is_empty(), "{:?}", at(6).unknown);
    assert_eq!(size(&at(6), "/data.bin"), Some(1000));
    assert_eq!(size(&at(7), "/data.bin"), Some(1500));
    assert_eq!(size(&at(10), "/cache/a/three"), Some(500));
    assert_eq!(size(&at(10), "/cache/two"), Some(400));
    // Deleting the directory removes everything below it, from every layer.
    assert!(!at(11).entries.keys().any(|p| p.starts_with("/cache")));
    // Efficiency: the base's bytes are kept, every obsolete copy is wasted once.
    let img = merged::at(&model, None);
    let base: u64 = img.layers.iter().filter(|l| l.label.contains("base")).map(|l| l.shipped).sum();
    assert!(base > 0);
    assert_eq!(img.shipped(), base + 1000 + 1500 + 2000 + 300 + 400 + 500 + 2000);
    assert_eq!(img.kept(), base + 2000);
    let wasted: Vec<(String, u64)> =
        img.layers.iter().filter(|l| l.wasted > 0).map(|l| (l.label.clone(), l.wasted)).collect();
    assert_eq!(
        wasted,
        [
            ("L6 RUN".to_string(), 1000),
            ("L7 RUN".into(), 1500),
            ("L8 RUN".into(), 2000),
            ("L9 RUN".into(), 700),
            ("L10 RUN".into(), 500)
        ]
    );
}

/// A file removed while other names of it remain (hard links from its layer) is not gone: the
/// file system shows it under the remaining name, with its bytes, and they are kept, not waste.
/// The link was left naming a path that no longer existed, with no size, and the bytes counted
/// as waste.
#[test]
fn a_file_whose_first_name_is_removed_lives_on_under_its_other_names() {
    use trowel_events::{Change, ChangeKind, FileType};
    let change = |path: &str, kind: ChangeKind, file_type: FileType, size: u64, link: Option<&str>| Change {
        path: path.into(),
        kind,
        file_type,
        size,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        link_target: link.map(String::from),
        digest: (file_type != FileType::Dir).then(|| format!("sha256:{}", "a".repeat(64)).parse().unwrap()),
        opaque: false,
        previous: None,
    };
    use ChangeKind::{Added, Deleted};
    use FileType::{Dir, File, Hardlink};
    let mut m = Merged::default();
    let by = merged::LayerBy::Step(StepId { stage: 0, step: 1 });
    m.push(
        by,
        "L2 RUN".into(),
        &[
            change("/a", Added, Hardlink, 0, Some("/d/f")),
            change("/d", Added, Dir, 0, None),
            change("/d/f", Added, File, 4, None),
            change("/z", Added, Hardlink, 0, Some("/d/f")),
        ],
    );
    assert_eq!((m.kept(), m.shipped()), (4, 4));
    // The directory holding the first name goes.
    m.push(
        merged::LayerBy::Step(StepId { stage: 0, step: 2 }),
        "L3 RUN".into(),
        &[change("/d", Deleted, Dir, 0, None)],
    );
    let a = &m.entries["/a"].change;
    assert_eq!((a.file_type, a.size, a.link_target.as_deref()), (File, 4, None), "the first remaining name holds it");
    assert_eq!(a.digest, m.entries["/z"].change.digest);
    assert_eq!(m.entries["/z"].change.link_target.as_deref(), Some("/a"), "the others link to it");
    assert_eq!((m.kept(), m.layers[0].wasted), (4, 0));
    // Its last name goes: now it is waste, once.
    m.push(
        merged::LayerBy::Step(StepId { stage: 0, step: 3 }),
        "L4 RUN".into(),
        &[change("/a", Deleted, File, 0, None), change("/z", Deleted, File, 0, None)],
    );
    assert!(m.entries.is_empty());
    assert_eq!((m.kept(), m.layers[0].wasted), (0, 4));
}

#[test]
fn efficiency_compared_with_dives_definition() {
    // The same layers, without the base image (whose files are all kept and would only dilute
    // both figures): 7700 bytes shipped, 2000 kept.
    let model = Model::from_events(&events("overwrites"));
    let img = merged::at(&model, None);
    assert_eq!((img.kept(), img.shipped()), (2000, 7700));
    assert!((img.efficiency() - 2000.0 / 7700.0).abs() < 1e-9, "25.97%");
    // dive, per path: /data.bin min 1000 of 1000+1500+2000+2000 (the old, smaller copy counts as
    // kept); the whiteout of /cache counts what it deleted (1200) with min 0; the three files
    // below it appear once each, so dive counts them as kept (min = sum) though they are gone.
    // (1000 + 300 + 400 + 500) / (6500 + 1200 + 1200) = 24.72%.
    let layers: Vec<&[trowel_events::Change]> = model.steps().map(|s| s.changes.as_slice()).collect();
    let dive = merged::dive_score(&layers);
    assert!((dive - 2200.0 / 8900.0).abs() < 1e-9, "dive's score {dive}");
}

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

/// A link has no size of its own in the Files pane: a hard link (another name of a file the
/// step wrote) was shown as `0B`, an empty file, where the image holds the file's bytes under
/// both names; a symlink's `0B` read the same way. Each says what it links to instead.
#[test]
fn the_files_pane_names_what_a_link_links_to_instead_of_a_size() {
    let mut evs = events("files");
    let line8 = evs
        .iter()
        .find_map(|e| match &e.event {
            Event::StepStarted { id, line: 8, .. } => Some(*id),
            _ => None,
        })
        .unwrap();
    for e in evs.iter_mut() {
        if let Event::Snapshot { id, changes, .. } = &mut e.event
            && *id == line8
        {
            let data = changes.iter().find(|c| c.path == "/data.bin").unwrap().clone();
            let link = trowel_events::Change {
                path: "/data.link".into(),
                file_type: trowel_events::FileType::Hardlink,
                size: 0,
                link_target: Some("/data.bin".into()),
                ..data
            };
            changes.push(link);
        }
    }
    let mut app = App::replay("files+link".into(), &evs);
    app.select_step(line8);
    press(&mut app, "8 /");
    type_text(&mut app, "data");
    press(&mut app, "enter");
    let rows = text(&pane(&mut app, Pane::Files, 80, 8));
    let row =
        |name: &str| rows.iter().find(|r| r.contains(name)).unwrap_or_else(|| panic!("{name}: {rows:#?}")).clone();
    let link = row("data.link ⇒ /data.bin");
    assert!(link.contains("L8 RUN") && !link.contains("0B"), "{rows:#?}");
    assert!(row("data.bin").contains("2.0k"), "the file keeps its size: {rows:#?}");
    press(&mut app, "esc /");
    type_text(&mut app, "bin/sh");
    press(&mut app, "enter");
    let rows = text(&pane(&mut app, Pane::Files, 80, 8));
    let sh = rows.iter().find(|r| r.contains("sh → /bin/busybox")).unwrap_or_else(|| panic!("{rows:#?}"));
    assert!(!sh.contains("0B"), "{sh}");
}

/// `--single-snapshot`: the one snapshot of a stage is reported at its last step, and was shown
/// as that step's changes and layer (`L12 RUN` credited with every file the stage wrote) while
/// the steps before it "changed no files". The Changes pane says whose changes they are, the
/// steps before say why they have none, and the layer is the stage's.
#[test]
fn a_single_snapshot_is_shown_as_the_stages() {
    let mut evs = events("files");
    let last = StepId { stage: 0, step: 7 };
    let last_layer = evs.iter().find_map(|e| match &e.event {
        Event::LayerWritten { id, layer, .. } if *id == last => Some(layer.digest.clone()),
        _ => None,
    });
    // What a build with --single-snapshot reports: no snapshot or layer before the last step.
    evs.retain(|e| match &e.event {
        Event::Snapshot { id, .. } | Event::LayerWritten { id, .. } | Event::FileContents { id, .. } => *id == last,
        _ => true,
    });
    for e in evs.iter_mut() {
        match &mut e.event {
            Event::BuildStarted { single_snapshot, .. } => *single_snapshot = true,
            Event::ImageAssembled { layers, .. } => {
                layers.retain(|l| l.step.is_none() || Some(&l.digest) == last_layer.as_ref())
            }
            _ => {}
        }
    }
    let mut app = App::replay("single".into(), &evs);
    app.select_step(last);
    let changes = text(&pane(&mut app, Pane::Changes, 90, 10)).join("\n");
    assert!(changes.contains("single snapshot") && changes.contains("lines 5–12"), "{changes}");
    app.select_step(StepId { stage: 0, step: 2 });
    let changes = text(&pane(&mut app, Pane::Changes, 90, 10)).join("\n");
    assert!(changes.contains("not snapshotted on its own"), "{changes}");
    let layers = text(&pane(&mut app, Pane::Layers, 90, 12)).join("\n");
    assert!(layers.contains("L5–12 stage") && !layers.contains("L12 RUN"), "{layers}");
    // In Steps, the layer's size is on a row of its own under the last step, not on that step's.
    let steps = text(&pane(&mut app, Pane::Steps, 90, 14));
    let last = steps.iter().find(|r| r.contains("chmod 600")).unwrap();
    let snapshot =
        steps.iter().find(|r| r.contains("single snapshot of lines 5–12")).unwrap_or_else(|| panic!("{steps:#?}"));
    assert!(!last.contains("115B"), "{steps:#?}");
    assert!(snapshot.contains("115B"), "{steps:#?}");
}

#[test]
fn the_files_pane_works_live() {
    let (mut app, _) = live_until("files", |e| started_line(e, 9));
    pause(&mut app, 9, When::BeforeStep, "step");
    press(&mut app, "8");
    let m = app.panes().files.merged();
    assert_eq!(m.entries.get("/data.bin").map(|e| e.change.size), Some(2000));
    assert!(m.entries.contains_key("/bin/busybox"));
    assert!(!m.entries.contains_key("/cache"), "line 9 has not run");
}
