//! How the debugger copes with one step that changed 100,000 files (issue 5: "render and filter
//! without visible lag"), measured, not asserted: `cargo bench --bench tui_big_step`.
//!
//! It replays a real trace (testdata/traces/tour.jsonl) in which one step's snapshot is replaced
//! by 100,000 changed files in 1,000 directories, then times what a person does on that step:
//! open the Changes pane, draw frames, expand everything, page through, sort by size, type a
//! filter one key at a time, clear it. Every action is followed by a full 120x40 frame, as the
//! event loop would draw one. Each operation reports its median and worst time over several
//! repetitions; anything under ~50 ms per key reads as instant.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use trowel::tui::{App, Msg, Theme};
use trowel_events::{Change, ChangeKind, FileType};
use trowel_events::{Envelope, Event};

const FILES: usize = 100_000;
const DIRS: usize = 1_000;
const REPS: usize = 5;

fn main() {
    let trace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/traces/tour.jsonl");
    let (_, mut events) = trowel::trace::read(&trace).expect("read the tour trace");
    let step = inflate(&mut events);
    println!("trowel debug with one step of {FILES} changed files in {DIRS} directories (120x40 frames)\n");
    println!("{:<44} {:>10} {:>10}", "operation", "median", "worst");

    report("replay the trace (model, summaries)", || {
        let t0 = Instant::now();
        let app = App::replay("big".into(), &events);
        let d = t0.elapsed();
        drop(app);
        d
    });

    let changes: Vec<Change> = events
        .iter()
        .find_map(|e| match &e.event {
            Event::Snapshot { id, changes, .. } if *id == step => Some(changes.clone()),
            _ => None,
        })
        .unwrap();
    report("build the change tree alone", || {
        let t0 = Instant::now();
        let tree = trowel::tui::model::tree::ChangeTree::build(&changes);
        let d = t0.elapsed();
        drop(tree);
        d
    });

    let theme = Theme::dark();
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let fresh = || {
        let mut app = App::replay("big".into(), &events);
        app.select_step(step);
        app
    };
    // The tree is built when the step is selected (the reducer keeps it), so selecting is part
    // of what this times.
    report("open Changes on the step (tree + frame)", || {
        let mut app = App::replay("big".into(), &events);
        let t0 = Instant::now();
        app.select_step(step);
        let d = t0.elapsed();
        d + timed(&mut app, &mut term, &theme, "2")
    });

    let mut app = fresh();
    timed(&mut app, &mut term, &theme, "2");
    report("redraw an unchanged frame", || draw(&mut app, &mut term, &theme));
    report("expand all (+)", || {
        let mut app = fresh();
        timed(&mut app, &mut term, &theme, "2");
        timed(&mut app, &mut term, &theme, "-");
        timed(&mut app, &mut term, &theme, "+")
    });
    report("page down", || timed(&mut app, &mut term, &theme, "pgdn"));
    report("jump to the last path (G)", || {
        let d = timed(&mut app, &mut term, &theme, "G");
        timed(&mut app, &mut term, &theme, "g");
        d
    });
    report("sort by size / name (s)", || timed(&mut app, &mut term, &theme, "s"));

    let mut per_key = Vec::new();
    let mut clear = Vec::new();
    for _ in 0..REPS {
        timed(&mut app, &mut term, &theme, "/");
        for c in "file-4242".chars() {
            per_key.push(timed(&mut app, &mut term, &theme, &c.to_string()));
        }
        timed(&mut app, &mut term, &theme, "enter");
        clear.push(timed(&mut app, &mut term, &theme, "esc"));
    }
    line("filter: each typed key (tree + frame)", &mut per_key);
    line("filter: clear it again (esc)", &mut clear);
}

/// Replaces the snapshot of the tour's biggest RUN with a synthetic 100,000-file one and returns
/// that step.
fn inflate(events: &mut [Envelope]) -> trowel_events::StepId {
    let snap = events
        .iter_mut()
        .filter_map(|e| match &mut e.event {
            Event::Snapshot { id, changes, .. } => Some((*id, changes)),
            _ => None,
        })
        .max_by_key(|(_, c)| c.len())
        .expect("the trace has snapshots");
    let (id, changes) = snap;
    changes.clear();
    for d in 0..DIRS {
        changes.push(change(format!("/srv/data/dir-{d:04}"), FileType::Dir, 0));
    }
    for f in 0..FILES {
        let d = f % DIRS;
        let size = ((f * 7919) % 65_536) as u64;
        changes.push(change(format!("/srv/data/dir-{d:04}/file-{f}.bin"), FileType::File, size));
    }
    id
}

fn change(path: String, file_type: FileType, size: u64) -> Change {
    let mode = if file_type == FileType::Dir { 0o755 } else { 0o644 };
    Change {
        path,
        kind: ChangeKind::Added,
        file_type,
        size,
        mode,
        uid: 0,
        gid: 0,
        mtime: 0,
        link_target: None,
        digest: None,
        opaque: false,
        previous: None,
    }
}

fn draw(app: &mut App, term: &mut Terminal<TestBackend>, theme: &Theme) -> Duration {
    let t0 = Instant::now();
    frame(app, term, theme);
    t0.elapsed()
}

/// A frame, then what it showed back to the app (as the session does).
fn frame(app: &mut App, term: &mut Terminal<TestBackend>, theme: &Theme) {
    let mut drawn = None;
    term.draw(|f| drawn = Some(trowel::tui::ui::draw(f, app, theme))).unwrap();
    app.update(Msg::Drawn(Box::new(drawn.unwrap())));
}

/// One key and the frame after it.
fn timed(app: &mut App, term: &mut Terminal<TestBackend>, theme: &Theme, key: &str) -> Duration {
    let code = match key {
        "pgdn" => KeyCode::PageDown,
        "enter" => KeyCode::Enter,
        "esc" => KeyCode::Esc,
        k => KeyCode::Char(k.chars().next().unwrap()),
    };
    let mods = if key == "G" { KeyModifiers::SHIFT } else { KeyModifiers::NONE };
    let t0 = Instant::now();
    app.update(Msg::Key(KeyEvent::new(code, mods)));
    frame(app, term, theme);
    t0.elapsed()
}

fn report(what: &str, mut f: impl FnMut() -> Duration) {
    let mut times: Vec<Duration> = (0..REPS).map(|_| f()).collect();
    line(what, &mut times);
}

fn line(what: &str, times: &mut [Duration]) {
    times.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!("{what:<44} {:>10} {:>10}", ms(times[times.len() / 2]), ms(*times.last().unwrap()));
}
