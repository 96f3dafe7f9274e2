//! The Files pane: the whole file system at a step, every layer below it stacked, a file whose
//! first name is removed living on under its other names, a link naming what it links to, a
//! stage's single snapshot, the image's efficiency as dive defines it, and the pane live.

use super::*;

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
    // The Files pane at such a step says that it shows the stage before that one snapshot.
    let files = text(&pane(&mut app, Pane::Files, 120, 12)).join("\n");
    assert!(
        files.contains("has no snapshot of its own; shown is the stage before its one snapshot (at L12)"),
        "{files}"
    );
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
