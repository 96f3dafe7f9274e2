//! Whole screens at fixed sizes (80x24, the smallest supported, and 120x40), with popups,
//! rendered from real recorded builds; plus the themes: colours where the dark theme puts
//! them, and none at all in the mono theme that `NO_COLOR` selects.

mod tui_support;

use std::sync::{Arc, Mutex};

use insta::assert_snapshot;
use ratatui::style::Color;
use trowel::tui::{App, Msg, Theme};
use trowel_engine::engine::controller::Checkpoint;
use trowel_events::Event;
use trowel_events::{PushReview, ReviewLayer, When};
use tui_support::*;

#[test]
fn tour_80x24() {
    let mut app = replay("tour");
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

#[test]
fn tour_120x40_layers() {
    let mut app = replay("tour");
    press(&mut app, "5");
    assert_snapshot!(screen(&mut app, 120, 40, &Theme::dark()).backend());
}

/// A debugger shell session before line 4 whose changes were kept (testdata/traces/shell.jsonl,
/// recorded by tests/tui_debug_e2e.rs): a row of its own in Steps, its layer `L4 shell` in
/// Layers (made by the session, not line 4's RUN), and the copy of /etc/app.conf it rewrote
/// counted as `L3 → L4 shell` waste.
#[test]
fn kept_shell_120x40_layers() {
    let mut app = replay("shell");
    press(&mut app, "5");
    let at = trowel::tui::panes::layers::layers(&app.model).iter().position(|l| l.shell.is_some()).unwrap();
    press(&mut app, &vec!["j"; at].join(" "));
    assert_snapshot!(screen(&mut app, 120, 40, &Theme::dark()).backend());
}

/// The push review of that build once pushed: each layer says what the push did with it (the
/// base layer mounted from its repository, the rest uploaded), the shell's layer is `L4 shell`.
#[test]
fn kept_shell_push_review_after_the_push() {
    let mut app = replay("shell");
    press(&mut app, "p");
    let t = screen(&mut app, 120, 40, &Theme::dark());
    let text: String = t.backend().buffer().content.iter().map(|c| c.symbol()).collect();
    assert!(text.contains("mounted") && text.contains("L4 shell"), "{text}");
    assert!(!text.contains(" upload "), "nothing is still 'to upload' once pushed");
    assert_snapshot!(t.backend());
}

#[test]
fn failed_build_80x24() {
    let mut app = replay("fail-run-exit");
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

#[test]
fn killed_build_80x24() {
    let mut app = replay("killed");
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

#[test]
fn cached_rebuild_120x40_cache() {
    let mut app = replay("cache-rebuild");
    press(&mut app, "4");
    assert_snapshot!(screen(&mut app, 120, 40, &Theme::dark()).backend());
}

#[test]
fn zoomed_logs_80x24() {
    let mut app = replay("tour");
    press(&mut app, "6 z");
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

#[test]
fn help_overlay_80x24() {
    let mut app = replay("tour");
    press(&mut app, "2 ?");
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

/// A live session of the tour build, paused after line 13.
fn live_paused() -> App {
    let mut app = App::live("testdata/traces/tour/Dockerfile".into(), Arc::new(Mutex::new(vec![])));
    let evs = events("tour");
    let mut at = None;
    for e in evs {
        let stop = matches!(&e.event, Event::StepStarted { line: 15, .. });
        if stop {
            break;
        }
        app.update(Msg::Event(Box::new(e)));
    }
    let step = app.model.steps().find(|s| s.line == 13).unwrap();
    at.get_or_insert(Checkpoint {
        when: When::AfterStep,
        id: step.id,
        line: 13,
        stage_name: None,
        keyword: "RUN".into(),
        source: step.source.clone(),
        expanded: step.expanded.clone().unwrap(),
        attempt: 1,
        report: None,
        root_dir: None,
        targets: Vec::new(),
        dockerfile_stage: None,
    });
    press(&mut app, "b");
    app.update(Msg::Paused { at: Box::new(at.unwrap()), reasons: vec!["breakpoint at line 13".into()] });
    app
}

#[test]
fn live_pause_80x24() {
    let mut app = live_paused();
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

#[test]
fn shell_changes_popup_80x24() {
    let mut app = live_paused();
    press(&mut app, "!");
    let step = app.selected_step().unwrap().clone();
    let at = app.pause.clone().map(|p| p.at);
    let at = at.unwrap_or(Checkpoint {
        when: When::AfterStep,
        id: step.id,
        line: step.line,
        stage_name: None,
        keyword: step.keyword.clone(),
        source: step.source.clone(),
        expanded: String::new(),
        attempt: 1,
        report: None,
        root_dir: None,
        targets: Vec::new(),
        dockerfile_stage: None,
    });
    // What the tour's line-19 step really changed, as if a shell had done it.
    let rm = app.model.steps().find(|s| s.line == 13).unwrap().changes.clone();
    app.update(Msg::ShellChanges { at: Box::new(at), changes: rm });
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

#[test]
fn push_review_and_progress_120x40() {
    let mut app = App::live("testdata/traces/tour/Dockerfile".into(), Arc::new(Mutex::new(vec![])));
    let evs = events("tour");
    let mut review = None;
    let mut rest = Vec::new();
    for e in evs {
        if review.is_none() {
            if let Event::ImageAssembled { manifest_digest, config_digest, media_type, layers, .. } = &e.event {
                review = Some(PushReview {
                    manifest_digest: manifest_digest.clone(),
                    config_digest: Some(config_digest.clone()),
                    media_type: media_type.clone(),
                    destinations: vec!["127.0.0.1:5000/team/tour:1".into(), "127.0.0.1:5001/mirror/tour:1".into()],
                    layers: layers
                        .iter()
                        .enumerate()
                        .map(|(i, l)| ReviewLayer {
                            digest: l.digest.clone(),
                            size: l.size,
                            uncompressed_size: l.uncompressed_size,
                            media_type: l.media_type.clone(),
                            step: l.step,
                            shell: l.shell,
                            present: vec![Some(i == 0), if i == 0 { None } else { Some(false) }],
                            mount_from: Vec::new(),
                        })
                        .collect(),
                    platforms: Vec::new(),
                });
            }
            app.update(Msg::Event(Box::new(e)));
        } else {
            rest.push(e);
        }
    }
    app.update(Msg::ReviewPush(Box::new(review.unwrap())));
    assert_snapshot!("push_review", screen(&mut app, 120, 40, &Theme::dark()).backend());
    press(&mut app, "y");
    for e in rest {
        app.update(Msg::Event(Box::new(e)));
    }
    app.update(Msg::BuildDone { error: None });
    assert_snapshot!("push_progress", screen(&mut app, 120, 40, &Theme::dark()).backend());
}

/// Build checks on the Dockerfile's lines: `!` on the instructions a check found something in
/// (in the Steps pane and the Dockerfile below it), their count in the pane's title, and the
/// selected step's findings under its line.
#[test]
fn build_checks_on_dockerfile_lines_80x24() {
    let mut app = replay("checks");
    let env = app.model.steps().position(|s| s.keyword == "ENV").unwrap();
    let at = app.step_ids().iter().position(|id| Some(*id) == app.selected_id()).unwrap();
    let moves = if env >= at { vec!["j"; env - at] } else { vec!["k"; at - env] }.join(" ");
    press(&mut app, &moves);
    assert_eq!(app.selected_step().unwrap().line, 4);
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

#[test]
fn confirm_quit_80x24() {
    let mut app = live_paused();
    press(&mut app, "q");
    assert_snapshot!(screen(&mut app, 80, 24, &Theme::dark()).backend());
}

#[test]
fn tiny_terminal_does_not_panic() {
    for (w, h) in [(20, 6), (40, 10), (1, 1), (80, 3)] {
        for name in ["tour", "fail-run-exit", "killed", "cache-rebuild"] {
            let mut app = replay(name);
            for keys in ["", "2", "3", "4", "5", "6", "?", "p", "6 z"] {
                press(&mut app, "esc esc");
                press(&mut app, keys);
                screen(&mut app, w, h, &Theme::dark());
            }
        }
    }
}

fn colours(t: &ratatui::Terminal<ratatui::backend::TestBackend>) -> Vec<Color> {
    let buf = t.backend().buffer();
    let mut v: Vec<Color> = buf.content.iter().flat_map(|c| [c.fg, c.bg]).collect();
    v.sort_by_key(|c| format!("{c:?}"));
    v.dedup();
    v
}

#[test]
fn mono_theme_uses_no_colour_and_dark_theme_does() {
    for theme in [Theme::mono(), Theme::builtin("light").unwrap(), Theme::dark()] {
        let mut app = replay("fail-run-exit");
        let t = screen(&mut app, 80, 24, &theme);
        let c = colours(&t);
        if theme.name == "mono" {
            assert_eq!(c, [Color::Reset], "mono draws with modifiers only");
        } else {
            assert!(c.len() > 4, "{} uses colour: {c:?}", theme.name);
        }
    }
    // The failed step's icon is drawn in the theme's failure colour.
    let theme = Theme::dark();
    let mut app = replay("fail-run-exit");
    let t = screen(&mut app, 80, 24, &theme);
    let buf = t.backend().buffer();
    let cell = buf.content.iter().find(|c| c.symbol() == "✗").expect("a failed icon");
    assert_eq!(cell.fg, theme.failed.fg.unwrap());
}

#[test]
fn no_color_selects_mono() {
    // SAFETY: this test binary reads NO_COLOR only here.
    unsafe { std::env::set_var("NO_COLOR", "1") };
    let t = Theme::select(Some("light")).unwrap();
    unsafe { std::env::remove_var("NO_COLOR") };
    assert_eq!(t.name, "mono");
    assert_eq!(Theme::select(Some("light")).unwrap().name, "light");
    let e = Theme::select(Some("no-such-theme")).unwrap_err().to_string();
    assert!(e.contains("no-such-theme") && e.contains("dark, light, mono"), "{e}");
    // A theme file extending a built-in one.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mine.toml");
    std::fs::write(&p, "extends = \"light\"\n[styles]\nfailed = \"magenta bold\"\n").unwrap();
    let t = Theme::select(Some(p.to_str().unwrap())).unwrap();
    assert_eq!(t.failed.fg, Some(Color::Magenta));
    assert_eq!(t.added, Theme::builtin("light").unwrap().added);
}

/// A step served from the cache in a trace: its layer was listed, not compared with the layers
/// below (a trace does not download the base for that), so the Changes pane says `±` (added or
/// modified) where older viewers said `A` for `/usr`, which the build that ran the step reported
/// modified; the File pane leaves the "before" column unknown ("?"), not absent.
#[test]
fn cached_rebuild_120x40_listed_changes() {
    let mut app = replay("cache-rebuild");
    let at = app.model.steps().position(|s| s.line == 15).unwrap();
    press(&mut app, "1 home");
    press(&mut app, &vec!["j"; at].join(" "));
    press(&mut app, "2");
    assert_snapshot!(screen(&mut app, 120, 40, &Theme::dark()).backend());
    press(&mut app, "j enter");
    let t = screen(&mut app, 120, 40, &Theme::dark());
    let text: String = t.backend().buffer().content.iter().map(|c| c.symbol()).collect();
    assert!(text.contains("± /usr/local") && text.contains("in the layer (added or modified: not known)"), "{text}");
    assert!(text.contains("type    ?") && !text.contains("link "), "before is unknown, not absent: {text}");
}

/// The Files pane at a step that deleted files, only its changes (`a`): a deleted path is
/// marked `D` with no size (it showed `0B`, as if an empty file were left where it was).
#[test]
fn a_deleted_path_has_no_size_in_the_files_pane() {
    let mut app = replay("whiteouts");
    let at = app.model.steps().position(|s| s.line == 4).unwrap();
    press(&mut app, "1 home");
    press(&mut app, &vec!["j"; at].join(" "));
    press(&mut app, "8 a +");
    let t = screen(&mut app, 120, 40, &Theme::dark());
    let rows: Vec<String> = (0..40)
        .map(|y| (0..120).map(|x| t.backend().buffer()[(x, y)].symbol().to_string()).collect::<String>())
        .collect();
    let hostname = rows
        .iter()
        .find(|r| r.contains("hostname") && r.split_whitespace().any(|w| w.ends_with("D")))
        .unwrap_or_else(|| panic!("{rows:#?}"));
    assert!(!hostname.contains("0B"), "{hostname}");
}
