//! Snapshots of every pane, rendered with ratatui's `TestBackend` from real recorded builds
//! (testdata/traces/, made by scripts/record-traces.sh). `cargo insta review` shows changes.

mod tui_support;

use insta::assert_snapshot;
use trowel::tui::model::FileContent;
use trowel::tui::{App, Msg, Pane};
use tui_support::*;

fn select_line(app: &mut App, line: usize) {
    let id = app.model.steps().find(|s| s.line == line).unwrap().id;
    app.select_step(id);
}

#[test]
fn steps_of_a_multistage_build_with_a_skipped_stage() {
    let mut app = replay("multistage");
    assert_snapshot!(pane(&mut app, Pane::Steps, 60, 12).backend());
}

#[test]
fn steps_with_cache_badges_sizes_and_times() {
    let mut app = replay("cache-rebuild");
    assert_snapshot!(pane(&mut app, Pane::Steps, 64, 15).backend());
}

#[test]
fn steps_narrow_keeps_the_instruction_readable() {
    let mut app = replay("cache-rebuild");
    assert_snapshot!(pane(&mut app, Pane::Steps, 34, 15).backend());
}

#[test]
fn steps_of_failed_and_killed_builds() {
    let mut app = replay("fail-run-exit");
    assert_snapshot!("steps_failed", pane(&mut app, Pane::Steps, 50, 6).backend());
    let mut app = replay("killed");
    assert_snapshot!("steps_killed", pane(&mut app, Pane::Steps, 50, 7).backend());
}

#[test]
fn changes_tree_with_sizes_and_stats() {
    let mut app = replay("tour");
    select_line(&mut app, 17);
    press(&mut app, "2");
    assert_snapshot!(pane(&mut app, Pane::Changes, 56, 10).backend());
}

#[test]
fn changes_of_a_deletion_and_of_a_copy_into_a_new_directory() {
    let mut app = replay("tour");
    assert_snapshot!("changes_deletion", pane(&mut app, Pane::Changes, 56, 8).backend());
    select_line(&mut app, 15);
    assert_snapshot!("changes_copy", pane(&mut app, Pane::Changes, 56, 10).backend());
}

#[test]
fn changes_filtered_and_sorted_by_size() {
    let mut app = replay("overwrites");
    select_line(&mut app, 9);
    press(&mut app, "2 s");
    assert_snapshot!("changes_by_size", pane(&mut app, Pane::Changes, 50, 9).backend());
    press(&mut app, "/");
    type_text(&mut app, "two");
    assert_snapshot!("changes_filter_typing", pane(&mut app, Pane::Changes, 50, 7).backend());
}

#[test]
fn changes_of_steps_without_files() {
    let mut app = replay("tour");
    select_line(&mut app, 20);
    assert_snapshot!("changes_metadata_step", pane(&mut app, Pane::Changes, 50, 4).backend());
    let mut app = replay("fail-run-exit");
    assert_snapshot!("changes_failed_step", pane(&mut app, Pane::Changes, 60, 4).backend());
}

/// The tour's config.ini before and after line 17's `sed`, made by running that sed on the
/// real file (what the live debugger reads from the build root).
fn config_contents() -> FileContent {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/traces/tour/config.ini");
    let before = std::fs::read_to_string(&src).unwrap();
    let out = std::process::Command::new("sed")
        .args(["-e", "s/^debug = true/debug = false/", "-e", "s/^workers = 2/workers = 8/"])
        .arg(&src)
        .output()
        .unwrap();
    assert!(out.status.success());
    FileContent {
        path: "/etc/app/config.ini".into(),
        before: Some(before),
        after: Some(String::from_utf8(out.stdout).unwrap()),
    }
}

#[test]
fn file_with_a_word_level_diff() {
    let mut app = replay("tour");
    select_line(&mut app, 17);
    let id = app.selected_id().unwrap();
    app.update(Msg::Contents { id, files: vec![config_contents()] });
    press(&mut app, "2 G enter");
    assert_eq!(app.panes().file.path(), Some("/etc/app/config.ini"));
    let t = pane(&mut app, Pane::File, 60, 22);
    assert_snapshot!(t.backend());
    // The changed words carry the emphasis style, the rest of the line the plain one.
    let theme = trowel::tui::Theme::dark();
    let buf = t.backend().buffer();
    let row = (0..buf.area.height).find(|&y| {
        let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol().to_string()).collect();
        line.contains("+ debug = false")
    });
    let y = row.expect("the added line is shown");
    let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol().to_string()).collect();
    let x = line.find("false").unwrap();
    let x = line[..x].chars().count() as u16;
    assert_eq!(buf[(x, y)].bg, theme.diff_add_emph.bg.unwrap());
    assert_ne!(buf[(x - 3, y)].bg, theme.diff_add_emph.bg.unwrap());
}

/// A side the build did not record (binary, or over its limit: `null` in the trace) is said
/// so, never diffed as an empty file (which showed every line of the other side removed).
#[test]
fn a_side_not_recorded_is_no_empty_file() {
    for (before, after, side) in [(true, false, "after"), (false, true, "before")] {
        let mut app = replay("tour");
        select_line(&mut app, 17);
        let id = app.selected_id().unwrap();
        let mut c = config_contents();
        c.before = c.before.filter(|_| before);
        c.after = c.after.filter(|_| after);
        app.update(Msg::Contents { id, files: vec![c] });
        press(&mut app, "2 G enter");
        assert_eq!(app.panes().file.path(), Some("/etc/app/config.ini"));
        let shown = text(&pane(&mut app, Pane::File, 60, 22)).split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(shown.contains(&format!("content {side} the step not recorded")), "{shown}");
        assert!(!shown.contains("content +"), "{shown}");
    }
}

#[test]
fn file_without_recorded_content_shows_metadata() {
    let mut app = replay("tour");
    select_line(&mut app, 17);
    press(&mut app, "2 G enter");
    assert_snapshot!("file_mode_change", pane(&mut app, Pane::File, 60, 14).backend());
    press(&mut app, "2 g g j enter");
    assert_eq!(app.panes().file.path(), Some("/bin/app-link"));
    assert_snapshot!("file_symlink", pane(&mut app, Pane::File, 60, 12).backend());
    press(&mut app, "1 G k k 2 G enter");
    assert_eq!(app.panes().file.path(), Some("/var/cache/pkgs"));
    assert_snapshot!("file_deleted_directory", pane(&mut app, Pane::File, 60, 12).backend());
}

#[test]
fn cache_miss_with_its_explanation_and_key_components() {
    let mut app = replay("cache-rebuild");
    assert_eq!(app.selected_step().unwrap().line, 16, "a rebuild opens on its first miss");
    assert_snapshot!(pane(&mut app, Pane::Cache, 64, 24).backend());
}

#[test]
fn cache_hit_and_no_cache() {
    let mut app = replay("cache-rebuild");
    select_line(&mut app, 6);
    assert_snapshot!("cache_hit", pane(&mut app, Pane::Cache, 64, 14).backend());
    let mut app = replay("tour");
    assert_snapshot!("cache_none", pane(&mut app, Pane::Cache, 64, 4).backend());
}

/// A step with no lookup says why in its own case: one not run yet will be looked up (before
/// the first lookup, "no layer cache in this build" was said of a build with one), and one
/// after a debugger shell's changes were kept is not because of them (the fallback said a RUN
/// was not looked up as only RUN … are cached).
#[test]
fn a_step_without_a_lookup_says_why() {
    let all = events("cache-cold");
    let first_lookup = all.iter().position(|e| matches!(e.event, trowel_events::Event::CacheLookup { .. })).unwrap();
    let mut app = App::replay("cache-cold.jsonl".into(), &all[..first_lookup]);
    select_line(&mut app, 6);
    let t = text(&pane(&mut app, Pane::Cache, 72, 4));
    assert!(t.contains("not looked up in the layer cache yet"), "{t}");

    // The cold build, with shell.jsonl's kept session before its RUN (stage 0, step 3), whose
    // lookup then never happens.
    use trowel_events::Event;
    let run = trowel_events::StepId { stage: 0, step: 3 };
    let shell = events("shell").into_iter().filter(|e| {
        matches!(&e.event, Event::ShellStarted { id, .. } | Event::ShellFinished { id, .. } | Event::ShellResolved { id, .. } if *id == run)
    });
    let mut with_shell: Vec<_> =
        all.into_iter().filter(|e| !matches!(&e.event, Event::CacheLookup { id, .. } if *id == run)).collect();
    let at = with_shell.iter().position(|e| matches!(&e.event, Event::StepStarted { id, .. } if *id == run)).unwrap();
    with_shell.splice(at..at, shell);
    let mut app = App::replay("cache-cold.jsonl".into(), &with_shell);
    select_line(&mut app, 6);
    let t = text(&pane(&mut app, Pane::Cache, 72, 6));
    assert!(t.contains("not looked up in the layer cache: a debugger shell's changes were kept"), "{t}");
    // Without any lookup in the build, whether it has a cache is not known: both are said.
    let mut app = replay("shell");
    let line = app.model.step(run).unwrap().line;
    select_line(&mut app, line);
    let t = text(&pane(&mut app, Pane::Cache, 72, 6));
    assert!(t.contains("not looked up in the layer cache: the build has none (--cache), or"), "{t}");
}

/// Since traces record the build's layer cache, a step without a lookup says the true one of
/// the reasons an older trace could only list: a step that makes no layer in a build with a
/// cache is keyed into what follows (it was said not to be cached "as only RUN … are"), a RUN
/// under `--cache-run-layers=false` says so, a build without a cache says that although none of
/// its steps was looked up, and a step a failed build never reached is not "not looked up yet".
#[test]
fn a_step_without_a_lookup_says_which_reason_is_true() {
    use trowel_events::{Event, LayerCacheUse, StepId};
    // A LABEL in a build with a cache: it makes no layer.
    let mut app = replay("cache-cold");
    select_line(&mut app, 14);
    let t = text(&pane(&mut app, Pane::Cache, 160, 4));
    assert!(
        t.contains(
            "this step makes no layer, so it has no cache entry of its own: the steps after it are keyed from it"
        ),
        "{t}"
    );

    // The same build as if run with --cache-run-layers=false: its RUN had no lookup.
    let run = StepId { stage: 0, step: 3 };
    let without_run: Vec<_> = events("cache-cold")
        .into_iter()
        .filter(|e| !matches!(&e.event, Event::CacheLookup { id, .. } if *id == run))
        .map(|mut e| {
            if let Event::BuildStarted { layer_cache, .. } = &mut e.event {
                *layer_cache = Some(LayerCacheUse::On { run_layers: false, copy_layers: true });
            }
            e
        })
        .collect();
    let mut app = App::replay("cache-cold.jsonl".into(), &without_run);
    let line = app.model.step(run).unwrap().line;
    select_line(&mut app, line);
    let t = text(&pane(&mut app, Pane::Cache, 160, 4));
    assert!(t.contains("RUN and WORKDIR layers are not cached (--cache-run-layers=false)"), "{t}");

    // Without a cache, and a step after the failed one.
    let mut app = replay("fail-run-exit");
    assert_eq!(app.model.layer_cache, Some(LayerCacheUse::Off));
    select_line(&mut app, 3);
    let t = text(&pane(&mut app, Pane::Cache, 160, 4));
    assert!(t.contains("no layer cache in this build (trowel build --cache)"), "{t}");
    select_line(&mut app, 4);
    let t = text(&pane(&mut app, Pane::Cache, 160, 4));
    assert!(t.contains("not looked up in the layer cache: the build ended before this step ran"), "{t}");

    // A trace of an older trowel, without the record, and no lookup in it: both are said.
    let old: Vec<_> = events("tour")
        .into_iter()
        .map(|mut e| {
            if let Event::BuildStarted { layer_cache, .. } = &mut e.event {
                *layer_cache = None;
            }
            e
        })
        .collect();
    let mut app = App::replay("tour.jsonl".into(), &old);
    let t = text(&pane(&mut app, Pane::Cache, 160, 4));
    assert!(t.contains("no layer cache in this build (trowel build --cache), or no step of it was looked up"), "{t}");
}

#[test]
fn layers_with_waste_attributed_to_lines() {
    let mut app = replay("overwrites");
    assert_snapshot!(pane(&mut app, Pane::Layers, 80, 30).backend());
}

#[test]
fn layers_narrow() {
    let mut app = replay("tour");
    press(&mut app, "5 j");
    assert_snapshot!(pane(&mut app, Pane::Layers, 48, 24).backend());
}

#[test]
fn logs_all_steps_and_one_step() {
    let mut app = replay("tour");
    press(&mut app, "6");
    assert_snapshot!("logs_all", pane(&mut app, Pane::Logs, 60, 10).backend());
    press(&mut app, "a");
    assert_snapshot!("logs_step", pane(&mut app, Pane::Logs, 60, 4).backend());
}

#[test]
fn logs_search() {
    let mut app = replay("tour");
    press(&mut app, "6 /");
    type_text(&mut app, "unit");
    press(&mut app, "enter n");
    assert_snapshot!(pane(&mut app, Pane::Logs, 60, 10).backend());
}

#[test]
fn logs_of_a_killed_build() {
    let mut app = replay("killed");
    press(&mut app, "6");
    assert_snapshot!(pane(&mut app, Pane::Logs, 50, 5).backend());
}

/// The text of a rendered pane, row by row.
fn text(t: &ratatui::Terminal<ratatui::backend::TestBackend>) -> String {
    let buf = t.backend().buffer();
    (0..buf.area.height)
        .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect::<String>().trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_runs_mounts_in_the_steps_cache_and_changes_panes() {
    // testdata/traces/mounts: RUN --mount of every kind but ssh, with --cache and a --secret.
    let mut app = replay("mounts");
    let steps = text(&pane(&mut app, Pane::Steps, 100, 16));
    for want in [
        "⤷ cache /root/.cache/pkg · id=pkg · sharing=locked rw",
        "⤷ bind /in · from stage build:/out · ro",
        "⤷ bind /app/src · from context:/src · ro",
        "⤷ secret (environment only) · id=token",
        "⤷ tmpfs /tmp/scratch",
    ] {
        assert!(steps.contains(want), "{want:?} in\n{steps}");
    }
    select_line(&mut app, 6);
    let cache = text(&pane(&mut app, Pane::Cache, 110, 60));
    for want in [
        "mount /in → type=bind,from=build,source=/out,target=/in,ro",
        "stage-key=",
        "mount /root/.cache/pkg → type=cache,id=pkg,target=/root/.cache/pkg,sharing=locked,rw",
        "mount env TOKEN → type=secret,id=token,env=TOKEN,ro",
        "src/hello",
        "never       a cache mount's contents, a secret's value",
    ] {
        assert!(cache.contains(want), "{want:?} in\n{cache}");
    }
    assert!(!cache.contains("trace-secret-value"), "{cache}");
    let changes = text(&pane(&mut app, Pane::Changes, 110, 8));
    assert!(
        changes.contains("mounts ✓ nothing at or under /root/.cache/pkg, /in, /app/src, /tmp/scratch is in the layer"),
        "{changes}"
    );
}

#[test]
fn a_mount_target_in_the_layer_is_shown_as_a_leak() {
    use trowel_events::{Change, ChangeKind, Event, FileType, StepId};
    let mut events = events("mounts");
    // A layer that (wrongly) holds a path under the cache mount's target.
    let id = StepId { stage: 1, step: 2 };
    for e in &mut events {
        if let Event::Snapshot { id: i, changes, .. } = &mut e.event
            && *i == id
        {
            changes.push(Change {
                path: "/root/.cache/pkg/x".into(),
                kind: ChangeKind::Added,
                file_type: FileType::File,
                size: 7,
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 0,
                link_target: None,
                digest: None,
                opaque: false,
                previous: None,
            });
        }
    }
    let mut app = trowel::tui::App::replay("testdata/traces/mounts.jsonl".into(), &events);
    select_line(&mut app, 6);
    let changes = text(&pane(&mut app, Pane::Changes, 110, 8));
    assert!(changes.contains("mounts ✗ 1 path(s) under a mount target in the layer: /root/.cache/pkg/x"), "{changes}");
}

/// Issue 15: the File pane shows the digest a file had before the step (the engine now reports
/// it) and, when it changed, the time before and after: a directory whose entries changed
/// differs in nothing else. Traces recorded before the engine reported them lack both; these
/// are the tour's events with them added.
#[test]
fn file_before_digest_and_changed_time() {
    let mut events = events("tour");
    for e in &mut events {
        if let trowel_events::Event::Snapshot { changes, .. } = &mut e.event {
            for c in changes.iter_mut().filter(|c| c.path == "/etc/app/config.ini" || c.path == "/etc/app") {
                let Some(p) = c.previous.as_mut() else { continue };
                p.mtime = Some(c.mtime - 3600);
                if c.path.ends_with(".ini") {
                    p.digest = Some(format!("sha256:{}", "ab".repeat(32)).parse().unwrap());
                }
            }
        }
    }
    let mut app = App::replay("testdata/traces/tour.jsonl".into(), &events);
    select_line(&mut app, 17);
    press(&mut app, "2 G enter");
    assert_eq!(app.panes().file.path(), Some("/etc/app/config.ini"));
    assert_snapshot!("file_before_digest", pane(&mut app, Pane::File, 60, 14).backend());
    press(&mut app, "2 G k enter");
    assert_eq!(app.panes().file.path(), Some("/etc/app"));
    assert_snapshot!("file_directory_time", pane(&mut app, Pane::File, 60, 12).backend());
}

/// Issue 15: a miss says which earlier entry it was explained against, and when it was made.
#[test]
fn cache_miss_names_the_entry_it_compared_with() {
    let mut events = events("cache-rebuild");
    for e in &mut events {
        if let trowel_events::Event::CacheLookup {
            result: trowel_events::CacheResult::Miss { compared_with, .. },
            ..
        } = &mut e.event
        {
            *compared_with = Some(trowel_events::CacheEntryRef {
                key: "3f2a9c01b2d4e5f60718293a4b5c6d7e8f9012345678901234567890abcdef12".into(),
                created: Some("2026-01-30T09:15:00Z".into()),
            });
        }
    }
    let mut app = App::replay("testdata/traces/cache-rebuild.jsonl".into(), &events);
    assert_eq!(app.selected_step().unwrap().line, 16);
    assert_snapshot!("cache_miss_compared", pane(&mut app, Pane::Cache, 64, 10).backend());
}

/// What a `COPY --from` had to do before it could read (a whole root of a stage, mounted from
/// the unpacked-layer store; the paths it reads taken out of an image's layers) is shown in
/// the Cache pane of that step, and of no other. The recorded build's builder still had its
/// root, so the two events are added to it as a rebuild with a cached builder sends them.
#[test]
fn what_a_copy_from_had_to_do_to_read_is_in_its_cache_pane() {
    use trowel_events::{Envelope, Event, StepId};
    let copy = StepId { stage: 2, step: 1 };
    let mut events = events("multistage");
    let at = events
        .iter()
        .position(|e| matches!(&e.event, Event::StepStarted { id, .. } if *id == copy))
        .expect("the COPY --from started");
    let (seq, ms) = (events[at].seq, events[at].ms);
    let reads = [
        Event::SourceUnpacked {
            for_step: Some(copy),
            stage: Some(0),
            image: None,
            why: "the unpacked-layer store holds most of its layers".into(),
            layers: 2,
            entries: 3,
            bytes: 12,
            duration_ms: 41,
            from_store: Some(1),
            store_unused: None,
            index: None,
        },
        Event::SourceExtracted {
            for_step: Some(copy),
            stage: None,
            image: Some("busybox:1.35".into()),
            paths: vec!["/bin/busybox".into()],
            layers: 1,
            entries: 402,
            skipped: 2,
            bytes: 1_100_000,
            passes: 1,
            duration_ms: 95,
        },
    ];
    for (i, event) in reads.into_iter().enumerate() {
        events.insert(at + 1 + i, Envelope { seq, ms, event });
    }
    let mut app = trowel::tui::App::replay("testdata/traces/multistage.jsonl".into(), &events);
    select_line(&mut app, 7);
    assert_snapshot!(pane(&mut app, Pane::Cache, 72, 12).backend());
    select_line(&mut app, 8);
    let other = text(&pane(&mut app, Pane::Cache, 72, 40));
    assert!(!other.contains("read from"), "{other}");
}

#[test]
fn a_from_steps_cache_pane_says_where_the_base_came_from() {
    use trowel_events::{BaseSource, Event};
    // As recorded: from the registry, the build given no base-image cache directory.
    let mut app = replay("multistage");
    select_line(&mut app, 2);
    let t = text(&pane(&mut app, Pane::Cache, 72, 6));
    assert!(t.contains("base        from 127.0.0.1:41799/busybox:1.35@sha256:149350c3"), "{t}");
    assert!(!t.contains("cache dir"), "{t}");
    // The same build given a cache directory that no `trowel warm` had filled with the base.
    let mut evs = events("multistage");
    for e in &mut evs {
        if let Event::BaseResolved { source: BaseSource::Registry { cache_dir_miss, .. }, .. } = &mut e.event {
            *cache_dir_miss = Some("not in the cache".into());
        }
    }
    let mut app = App::replay("testdata/traces/multistage.jsonl".into(), &evs);
    select_line(&mut app, 2);
    assert_snapshot!("cache_from_base_not_in_the_cache_dir", pane(&mut app, Pane::Cache, 72, 6).backend());
}

/// A step the cache served with an entry of no layer changed no files when it ran: the
/// Changes pane says so, not that its paths "were not listed" (there is no layer to list); a
/// cached layer that was not listed still says that. The cache-rebuild trace with line 4's
/// entry made layer-less and line 5's listing left out.
#[test]
fn a_cached_step_without_a_layer_changed_no_files() {
    use trowel_events::{CacheResult, Event, StepId};
    let (workdir, copy) = (StepId { stage: 0, step: 1 }, StepId { stage: 0, step: 2 });
    let mut events = events("cache-rebuild");
    events.retain(|e| match &e.event {
        Event::Snapshot { id, .. } => *id != workdir && *id != copy,
        _ => true,
    });
    for e in &mut events {
        match &mut e.event {
            Event::CacheLookup { id, result: CacheResult::Hit { layer, .. }, .. } if *id == workdir => *layer = None,
            Event::StepFinished { id, layer, .. } if *id == workdir => *layer = None,
            _ => {}
        }
    }
    let mut app = App::replay("testdata/traces/cache-rebuild.jsonl".into(), &events);
    select_line(&mut app, 4);
    let changes = text(&pane(&mut app, Pane::Changes, 110, 6));
    assert!(changes.contains("served from the cache: it changed no files (no layer)"), "{changes}");
    select_line(&mut app, 5);
    let changes = text(&pane(&mut app, Pane::Changes, 110, 6));
    assert!(changes.contains("served from the cache; its paths were not listed"), "{changes}");
}

/// A step keyed by the files it read from a stage records the stage's key only to say why they
/// changed (`from:<stage>`): the Cache pane says it is not in the key, never lists it as a
/// source the key is made of.
#[test]
fn a_stage_recorded_beside_its_files_is_not_shown_as_keyed() {
    use trowel_events::{Event, StepId};
    let mut events = events("mounts");
    let id = StepId { stage: 1, step: 2 };
    for e in &mut events {
        if let Event::CacheLookup { id: i, components, .. } = &mut e.event
            && *i == id
        {
            components.sources.insert("from:build".into(), "ab".repeat(32));
        }
    }
    let mut app = trowel::tui::App::replay("testdata/traces/mounts.jsonl".into(), &events);
    select_line(&mut app, 6);
    let cache = text(&pane(&mut app, Pane::Cache, 120, 60));
    assert!(cache.contains("stage build → abababababab (not in the key: the files it gave are)"), "{cache}");
    assert!(!cache.contains("from:build"), "{cache}");
}
