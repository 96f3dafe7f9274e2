//! The debugger's model of a build, folded from real recorded traces (testdata/traces/, made
//! by scripts/record-traces.sh): step states, cache results, failures, killed builds, output,
//! and layer waste attributed to Dockerfile lines and counted once (unlike dive#684).

mod tui_support;

use trowel::tui::model::waste::{self, Fate};
use trowel::tui::model::{Model, StepState};
use trowel_events::ChangeKind;
use tui_support::*;

fn model(name: &str) -> Model {
    Model::from_events(&events(name))
}

fn state_by_line(m: &Model) -> Vec<(usize, StepState)> {
    m.steps().map(|s| (s.line, s.state)).collect()
}

#[test]
fn a_multistage_build_skips_the_stage_the_target_does_not_need() {
    let m = model("multistage");
    assert_eq!(m.stages.len(), 3);
    assert!(!m.stages[1].needed);
    assert_eq!(
        state_by_line(&m),
        [
            (2, StepState::Metadata),
            (3, StepState::Built),
            (4, StepState::Skipped),
            (5, StepState::Skipped),
            (6, StepState::Metadata),
            (7, StepState::Built),
            (8, StepState::Built),
            (9, StepState::Built),
        ]
    );
    let img = m.image.as_ref().expect("assembled");
    assert_eq!(img.layers.len(), 4, "the base layer and three COPY layers");
    assert!(m.finished.as_ref().unwrap().pushed[0].ends_with("/traces/multistage:1"));
    assert_eq!(m.pushes.len(), 1);
    assert!(m.pushes[0].finished.is_some());
}

#[test]
fn a_cached_rebuild_knows_its_hits_misses_and_why() {
    let m = model("cache-rebuild");
    let cache: Vec<(usize, bool)> = m.steps().filter_map(|s| s.cache.as_ref().map(|c| (s.line, c.is_hit()))).collect();
    assert_eq!(cache, [(4, true), (5, true), (6, true), (15, true), (16, false), (18, false)]);
    let why = |line: usize| match &m.steps().find(|s| s.line == line).unwrap().cache.as_ref().unwrap().result {
        trowel_events::CacheResult::Miss { explanation, .. } => explanation.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(why(16), "COPY message.txt: 1 file changed (message.txt)");
    assert_eq!(why(18), "parent step missed (line 16)");
    assert_eq!(m.cache_summary.map(|c| (c.0, c.1)), Some((4, 2)));
    // Cached steps still show what they changed (the trace lists cached layers' paths).
    let cached_copy = m.steps().find(|s| s.line == 5).unwrap();
    assert_eq!(cached_copy.state, StepState::Cached);
    assert!(cached_copy.changes.iter().any(|c| c.path == "/src/greet.sh"));
    assert!(cached_copy.layer.is_some(), "the cached layer is the step's layer");
    // Its listing was not compared with the layers below: "added" is not known from "modified".
    assert!(cached_copy.unclassified);
    assert!(!m.steps().find(|s| s.line == 16).unwrap().unclassified, "a step that ran was walked");
    // The image's layer that line 15 took from the cache is line 15's, not a base layer (this
    // trace is older than the engine saying so; the fold tells it by the hit's layer).
    let makers: Vec<Option<usize>> =
        m.image.as_ref().unwrap().layers.iter().map(|l| l.step.and_then(|id| m.step(id)).map(|s| s.line)).collect();
    assert_eq!(makers, [None, Some(15), Some(16)]);
}

#[test]
fn a_failed_run_keeps_its_output_and_exit_code() {
    let m = model("fail-run-exit");
    let failed = m.step(m.failed_step().unwrap()).unwrap();
    assert_eq!((failed.line, failed.state, failed.exit_code), (3, StepState::Failed, Some(3)));
    assert_eq!(m.steps().find(|s| s.line == 4).unwrap().state, StepState::Pending);
    let f = m.failure.as_ref().unwrap();
    assert!(f.error.ends_with("RUN echo before && exit 3: exit code 3"), "{}", f.error);
    let out: Vec<&str> = m.logs.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(out, ["before"]);
}

#[test]
fn a_killed_build_ends_with_its_step_running() {
    let m = model("killed");
    assert!(m.finished.is_none() && m.failure.is_none());
    let running = m.step(m.current.unwrap()).unwrap();
    assert_eq!((running.line, running.state), (6, StepState::Running));
    assert_eq!(m.steps().find(|s| s.line == 7).unwrap().state, StepState::Pending);
    let out: Vec<&str> = m.logs.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(out, ["step output before the kill", "long step started"]);
}

#[test]
fn output_keeps_streams_apart() {
    let m = model("tour");
    let lines: Vec<(usize, String, bool)> = m
        .logs
        .iter()
        .map(|l| (m.step(l.step).unwrap().line, l.text.clone(), l.stream == trowel_events::OutputStream::Stderr))
        .collect();
    assert_eq!(
        &lines[..5],
        &[
            (8, "compiling app".to_string(), false),
            (8, "  unit 1 ok".to_string(), false),
            (8, "  unit 2 ok".to_string(), false),
            (8, "  unit 3 ok".to_string(), false),
            (8, "warning: no tests configured".to_string(), true),
        ]
    );
}

/// `(added line or 0 for the base image, removed line, path, bytes, fate)`.
type Item = (usize, usize, String, u64, Fate);

fn waste_items(name: &str) -> (u64, Vec<Item>) {
    let r = waste::analyze(&model(name));
    let mut v: Vec<_> = r
        .items
        .iter()
        .map(|i| (i.added.step.map_or(0, |_| i.added.line), i.removed_line, i.path.clone(), i.bytes, i.fate))
        .collect();
    v.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    (r.total, v)
}

#[test]
fn waste_counts_every_obsolete_copy_once_and_never_the_surviving_one() {
    let (total, items) = waste_items("overwrites");
    assert_eq!(
        items,
        [
            (6, 7, "/data.bin".to_string(), 1000, Fate::Overwritten),
            (7, 8, "/data.bin".to_string(), 1500, Fate::Overwritten),
            // A chmod rewrites the whole file into the new layer: the old copy is dead too,
            // the same bytes again (both versions' digests are in the trace).
            (8, 12, "/data.bin".to_string(), 2000, Fate::SameBytes),
            (9, 11, "/cache/a/one".to_string(), 300, Fate::Deleted),
            (9, 11, "/cache/two".to_string(), 400, Fate::Deleted),
            (10, 11, "/cache/a/three".to_string(), 500, Fate::Deleted),
        ]
    );
    // dive#684 would add the surviving 2000-byte copy as well (7700).
    assert_eq!(total, 1000 + 1500 + 2000 + 300 + 400 + 500);
    let r = waste::analyze(&model("overwrites"));
    let by_line = r.by_line();
    assert_eq!(by_line[&11], (0, 1200), "line 11 removed 1200 bytes it did not add");
    assert_eq!(by_line[&9], (700, 0));
    assert_eq!(by_line[&8], (2000, 1500), "line 8 added a copy and hid another");
    let added: u64 = by_line.values().map(|v| v.0).sum();
    let removed: u64 = by_line.values().map(|v| v.1).sum();
    assert_eq!((added, removed), (total, total), "both columns add up to the total, once");
}

#[test]
fn waste_of_the_tour_and_of_whiteouts() {
    let (total, items) = waste_items("tour");
    assert_eq!(
        items,
        [
            (13, 19, "/var/cache/pkgs/bundle.bin".to_string(), 300_000, Fate::Deleted),
            (16, 17, "/etc/app/config.ini".to_string(), 74, Fate::Overwritten),
        ]
    );
    assert_eq!(total, 300_074);
    // Only the final stage's layers count: the builder stage's files are not in the image.
    let (_, items) = waste_items("whiteouts");
    let base_hostname = items.iter().find(|i| i.2 == "/etc/hostname").unwrap();
    assert_eq!((base_hostname.0, base_hostname.1, base_hostname.4), (0, 4, Fate::Deleted), "a base-image file");
    assert!(items.iter().any(|i| (i.0, i.1, i.2.as_str()) == (3, 4, "/tree/a/b/file")));
    assert!(items.iter().any(|i| (i.0, i.1, i.2.as_str()) == (3, 6, "/tree/keep")), "a file replaced by a directory");
}

#[test]
fn the_image_stages_follow_from_parents() {
    let m = model("tour");
    assert_eq!(waste::image_stages(&m), [1], "the final stage is built FROM an image, not the builder");
    let m = Model::from_events(
        &trowel::trace::read(&std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/traces/demo.jsonl"))
            .unwrap()
            .1,
    );
    assert_eq!(waste::image_stages(&m), [1]);
    // The tour's deletions are reported at the top-most path only.
    let t = model("tour");
    let rm = t.steps().find(|s| s.line == 19).unwrap();
    let deleted: Vec<&str> =
        rm.changes.iter().filter(|c| c.kind == ChangeKind::Deleted).map(|c| c.path.as_str()).collect();
    assert_eq!(deleted, ["/var/cache/pkgs"]);
}

/// A step this build ran whose changes are a listing of its layer alone (a `COPY --link`, made
/// with no root below it) is not said to have been taken from the cache.
#[test]
fn a_built_step_listed_alone_is_not_said_cached() {
    let mut evs = events("overwrites");
    let id = evs
        .iter()
        .find_map(|e| match &e.event {
            trowel_events::Event::Snapshot { id, changes, .. } if !changes.is_empty() => Some(*id),
            _ => None,
        })
        .unwrap();
    for e in &mut evs {
        if let trowel_events::Event::Snapshot { id: i, classified, .. } = &mut e.event
            && *i == id
        {
            *classified = Some(false);
        }
    }
    let m = Model::from_events(&evs);
    let step = m.step(id).unwrap();
    assert!(step.unclassified && step.state != trowel_events::state::StepState::Cached);
    let r = waste::analyze(&m);
    let said: Vec<&String> = r.unknown.iter().filter(|u| u.starts_with(&format!("L{}:", step.line))).collect();
    assert_eq!(said.len(), 1, "{:?}", r.unknown);
    assert!(!said[0].contains("taken from the cache"), "{said:?}");
}

/// What the waste list cannot count is said, not passed over: in a trace of a rebuild the cache
/// served, whose listings were not compared with the layers below, each such step of the image.
#[test]
fn waste_says_what_it_cannot_count() {
    let m = model("cache-rebuild");
    let image = waste::image_stages(&m);
    let cached: Vec<usize> =
        m.steps().filter(|s| s.unclassified && image.contains(&s.id.stage)).map(|s| s.line).collect();
    let r = waste::analyze(&m);
    let said: Vec<&String> = r.unknown.iter().filter(|u| u.contains("taken from the cache and not compared")).collect();
    assert!(!cached.is_empty() && said.len() == cached.len(), "{cached:?} {:?}", r.unknown);
    // A trace whose steps ran, removing only directories it made, says nothing.
    assert_eq!(waste::analyze(&model("overwrites")).unknown, Vec::<String>::new());
    // An empty directory a step made, removed by a later one, is not the base's either; one
    // the build never made is (the base's files were not reported).
    let mut evs = events("overwrites");
    let mut snapshots = evs.iter_mut().filter_map(|e| match &mut e.event {
        trowel_events::Event::Snapshot { changes, .. } if !changes.is_empty() => Some(changes),
        _ => None,
    });
    let first = snapshots.next().unwrap();
    let dir = trowel_events::Change {
        file_type: trowel_events::FileType::Dir,
        size: 0,
        link_target: None,
        digest: None,
        opaque: false,
        previous: None,
        ..first[0].clone()
    };
    first.push(trowel_events::Change { path: "/made".into(), kind: ChangeKind::Added, ..dir.clone() });
    let later = snapshots.last().unwrap();
    for path in ["/made", "/opt"] {
        later.push(trowel_events::Change { path: path.into(), kind: ChangeKind::Deleted, ..dir.clone() });
    }
    let unknown = waste::analyze(&Model::from_events(&evs)).unknown;
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(unknown[0].starts_with("/opt: a directory deleted at L"), "{unknown:?}");
}
