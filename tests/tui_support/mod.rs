//! Shared helpers for the TUI tests: load a recorded trace from testdata/traces/, drive the
//! app with keys, render it into a ratatui `TestBackend`.
#![allow(dead_code)]

use std::path::PathBuf;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use trowel::tui::{App, Effect, Msg, Pane, Theme};
use trowel_engine::engine::controller::{Checkpoint, StepReport};
use trowel_events::{Envelope, StepStatus, When};

pub fn trace_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/traces").join(format!("{name}.jsonl"))
}

pub fn events(name: &str) -> Vec<Envelope> {
    trowel::trace::read(&trace_path(name)).expect("read the trace").1
}

/// A replay of a recorded trace, as `trowel replay testdata/traces/NAME.jsonl` opens it.
pub fn replay(name: &str) -> App {
    App::replay(format!("testdata/traces/{name}.jsonl"), &events(name))
}

pub fn key_event(spec: &str) -> KeyEvent {
    let (code, mods) = match spec {
        "enter" => (KeyCode::Enter, KeyModifiers::NONE),
        "esc" => (KeyCode::Esc, KeyModifiers::NONE),
        "tab" => (KeyCode::Tab, KeyModifiers::NONE),
        "backtab" => (KeyCode::BackTab, KeyModifiers::SHIFT),
        "up" => (KeyCode::Up, KeyModifiers::NONE),
        "down" => (KeyCode::Down, KeyModifiers::NONE),
        "left" => (KeyCode::Left, KeyModifiers::NONE),
        "right" => (KeyCode::Right, KeyModifiers::NONE),
        "pgdn" => (KeyCode::PageDown, KeyModifiers::NONE),
        "home" => (KeyCode::Home, KeyModifiers::NONE),
        "end" => (KeyCode::End, KeyModifiers::NONE),
        "pgup" => (KeyCode::PageUp, KeyModifiers::NONE),
        "backspace" => (KeyCode::Backspace, KeyModifiers::NONE),
        "space" => (KeyCode::Char(' '), KeyModifiers::NONE),
        s if s.starts_with("ctrl-") => (KeyCode::Char(s.chars().last().unwrap()), KeyModifiers::CONTROL),
        s if s.chars().count() == 1 => {
            let c = s.chars().next().unwrap();
            (KeyCode::Char(c), if c.is_uppercase() { KeyModifiers::SHIFT } else { KeyModifiers::NONE })
        }
        other => panic!("unknown key {other:?}"),
    };
    KeyEvent::new(code, mods)
}

/// Presses keys, written space-separated (`"j j enter"`), returning every effect.
pub fn press(app: &mut App, keys: &str) -> Vec<Effect> {
    let mut fx = Vec::new();
    for k in keys.split_whitespace() {
        fx.extend(app.update(Msg::Key(key_event(k))));
    }
    fx
}

/// Types text into an open input line (filter, search).
pub fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)));
    }
}

/// The whole screen at a size; the app then learns what the frame showed, as in a session.
pub fn screen(app: &mut App, w: u16, h: u16, theme: &Theme) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut drawn = None;
    t.draw(|f| drawn = Some(trowel::tui::ui::draw(f, app, theme))).unwrap();
    app.update(Msg::Drawn(Box::new(drawn.unwrap())));
    t
}

/// One pane with its border, filling the backend.
pub fn pane(app: &mut App, pane: Pane, w: u16, h: u16) -> Terminal<TestBackend> {
    let theme = Theme::dark();
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut drawn = None;
    t.draw(|f| {
        let area = f.area();
        drawn = Some(trowel::tui::ui::render_pane(f, area, app, &theme, pane));
    })
    .unwrap();
    app.update(Msg::Drawn(Box::new(drawn.unwrap())));
    t
}

/// What the engine hands the debugger when it pauses at `line` (the step on it, as the model
/// knows it), for scenario tests that pause a live app without an engine.
pub fn checkpoint(app: &App, line: usize, when: When) -> Checkpoint {
    let step = app.model.steps().find(|s| s.line == line).unwrap();
    Checkpoint {
        when,
        id: step.id,
        line,
        stage_name: None,
        keyword: step.keyword.clone(),
        source: step.source.clone(),
        expanded: step.expanded.clone().unwrap_or_default(),
        attempt: 1,
        report: (when == When::AfterStep).then(|| StepReport {
            status: StepStatus::Built,
            error: None,
            exit_code: None,
            layer_size: None,
            changed_paths: vec![],
            cache_miss: false,
        }),
        root_dir: None,
        targets: Vec::new(),
        dockerfile_stage: None,
    }
}

/// Pauses the app at `line`, as the engine would for `reason`.
pub fn pause(app: &mut App, line: usize, when: When, reason: &str) {
    let at = checkpoint(app, line, when);
    app.update(Msg::Paused { at: Box::new(at), reasons: vec![reason.to_string()] });
}
pub mod platforms;
