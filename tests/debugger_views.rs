//! What the debugger's views are shown, against what the build made: a step's changes (built,
//! served from the cache, listed without a root), layer listings kept in the cache dir, the
//! Files pane at each step against the image of the Dockerfile up to it (skopeo and umoci), a
//! stage's single snapshot. The controller itself (breakpoints, stepping, shells, the push
//! gate) is `debugger.rs`.

mod common;
mod debugger_support;
mod tui_support;

use std::sync::{Arc, Mutex};

use common::*;
use debugger_support::*;
use trowel_engine::engine::{BuildOptions, CacheOptions, Emitter};
use trowel_events::Change;
use trowel_events::{Envelope, Event, EventSink};

/// Asks for what the debugger asks for (contents, listings of cached layers compared with the
/// layers below) and keeps the events; with `.1` false, for what a trace asks (the listings
/// alone).
struct Detailed(Arc<Mutex<Vec<Event>>>, bool);

impl EventSink for Detailed {
    fn event(&mut self, e: &Envelope) {
        self.0.lock().unwrap().push(e.event.clone());
    }
    fn detail(&self) -> trowel_events::Detail {
        trowel_events::Detail {
            file_contents: Some(64 * 1024),
            cached_listings: true,
            cached_diffs: self.1,
            base_listings: self.1,
            file_lists: true,
        }
    }
}

/// A context for `FROM busybox` and `rest`, and options that build it with the cache.
fn cached_build_of(rest: &str, name: &str) -> (tempfile::TempDir, BuildOptions) {
    let ctx = context(&format!("FROM {}\n{rest}", env().busybox()));
    let mut opts = options(ctx.path(), &dest(name));
    opts.cache = Some(CacheOptions::default());
    (ctx, opts)
}

/// Builds with a sink that asks what the debugger asks (`diffs`) or what a trace asks, and
/// returns the events.
fn detailed_build(opts: &BuildOptions, diffs: bool) -> Vec<Event> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let emitter = Emitter::new(vec![Box::new(Detailed(events.clone(), diffs))]);
    trowel_engine::engine::build(opts, &emitter, &mut trowel_engine::engine::Continue).unwrap();
    events.lock().unwrap().clone()
}

/// The `classified` of the snapshot reported for the step at `line` (stage 0).
fn classified_at(events: &[Event], line: usize) -> Option<bool> {
    let id = events.iter().find_map(|e| match e {
        Event::StepStarted { id, line: l, .. } if *l == line => Some(*id),
        _ => None,
    });
    events
        .iter()
        .find_map(|e| match e {
            Event::Snapshot { id: i, classified, .. } if Some(*i) == id => Some(*classified),
            _ => None,
        })
        .unwrap()
}

/// The changes reported for the step at `line` (stage 0).
fn changes_at(events: &[Event], line: usize) -> Vec<Change> {
    let id = events
        .iter()
        .find_map(|e| match e {
            Event::StepStarted { id, line: l, .. } if *l == line => Some(*id),
            _ => None,
        })
        .unwrap();
    events
        .iter()
        .find_map(|e| match e {
            Event::Snapshot { id: i, changes, .. } if *i == id => Some(changes.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Issue 15: a cached step's changes are told apart as added, modified or deleted against the
/// layers below (they were all "added", read from the layer alone), and a modified file's
/// digest and a directory's time before the step are reported, for a step that ran and for one
/// served from the cache.
#[test]
fn cached_and_built_steps_report_what_changed_against_their_parent() {
    let (_ctx, opts) = cached_build_of(
        "RUN echo 'extra:x:1:1::/:/bin/sh' >> /etc/passwd && echo new > /new.txt && rm /etc/group\n",
        "before",
    );
    let build_with = |diffs: bool| detailed_build(&opts, diffs);
    let build = || build_with(true);
    let kinds = |changes: &[Change]| -> Vec<(String, trowel_events::ChangeKind)> {
        changes.iter().map(|c| (c.path.clone(), c.kind)).collect()
    };
    let ran = changes_at(&build(), 2);
    let cached_events = build();
    assert!(
        cached_events
            .iter()
            .any(|e| matches!(e, Event::CacheLookup { result: trowel_events::CacheResult::Hit { .. }, .. })),
        "the second build is served from the cache"
    );
    let cached = changes_at(&cached_events, 2);
    use trowel_events::ChangeKind::{Added, Deleted, Modified};
    let want = vec![
        ("/etc".to_string(), Modified),
        ("/etc/group".to_string(), Deleted),
        ("/etc/passwd".to_string(), Modified),
        ("/new.txt".to_string(), Added),
    ];
    assert_eq!(kinds(&ran), want, "{ran:#?}");
    assert_eq!(kinds(&cached), want, "{cached:#?}");
    for changes in [&ran, &cached] {
        let passwd = changes.iter().find(|c| c.path == "/etc/passwd").unwrap();
        let before = passwd.previous.as_ref().unwrap();
        assert!(before.digest.is_some(), "the old digest is known: {passwd:?}");
        assert_ne!(before.digest, passwd.digest);
        let group = changes.iter().find(|c| c.path == "/etc/group").unwrap();
        assert!(group.previous.as_ref().unwrap().digest.is_some(), "a deleted file's digest: {group:?}");
        let etc = changes.iter().find(|c| c.path == "/etc").unwrap();
        assert!(etc.previous.as_ref().unwrap().mtime.is_some(), "a directory's time before: {etc:?}");
    }
    let digest = |c: &[Change]| c.iter().find(|c| c.path == "/etc/passwd").unwrap().previous.clone().unwrap().digest;
    assert_eq!(digest(&ran), digest(&cached), "the same base file either way");
    // The snapshot says which it is: a walk (no `classified`), a listing compared with the
    // layers below (`true`).
    let ran_events = detailed_build(&BuildOptions { cache: None, ..opts.clone() }, true);
    assert_eq!(classified_at(&ran_events, 2), None);
    assert_eq!(classified_at(&cached_events, 2), Some(true));
    // What a trace asks for: the layer's entries alone, and the snapshot says so (a viewer must
    // not show "added" or the whiteout's type as facts); the fold marks the step.
    let listed_events = build_with(false);
    assert_eq!(classified_at(&listed_events, 2), Some(false));
    let listed = changes_at(&listed_events, 2);
    assert_eq!(
        kinds(&listed),
        vec![
            ("/etc".to_string(), Added),
            ("/etc/group".to_string(), Deleted),
            ("/etc/passwd".to_string(), Added),
            ("/new.txt".to_string(), Added),
        ]
    );
    let mut state = trowel_events::BuildState::default();
    for (i, e) in listed_events.into_iter().enumerate() {
        state.apply(&Envelope { seq: i as u64, ms: i as u64, event: e });
    }
    let step = state.steps().find(|s| s.line == 2).unwrap();
    assert!(step.unclassified, "{step:#?}");
}

/// A cached step shows what the same step showed when it ran: a layer restates the directories
/// above what it holds (`/var`, `/var/x` for a file in `/var/x/y`), and comparing its listing
/// with the layers below called them modified where the walk of the root had seen no change; a
/// `COPY --link` made without a root (the stage's first step) is compared with the layers below
/// too, not shown all "added".
#[test]
fn a_cached_step_shows_the_changes_it_showed_when_it_ran() {
    let (_ctx, opts) = cached_build_of(
        "COPY --link f.txt /etc/f.txt\nRUN mkdir -p /var/x/y && echo a > /var/x/y/a\nCOPY f.txt /var/x/y/f.txt\nRUN rm \
         /var/x/y/a\nRUN rm -rf /var/x && mkdir -p /var/x/y && echo b > /var/x/y/f.txt\nRUN rm -rf /var/x /usr && mkdir -p \
         /var/x/z /usr/bin && ln -s /bin/busybox /usr/bin/env\n",
        "same-changes",
    );
    let build = || detailed_build(&opts, true);
    let seen = |events: &[Event], line: usize| -> Vec<(String, trowel_events::ChangeKind)> {
        changes_at(events, line).iter().map(|c| (c.path.clone(), c.kind)).collect()
    };
    let ran = build();
    let cached = build();
    assert!(
        cached.iter().all(|e| !matches!(e, Event::CacheLookup { result: trowel_events::CacheResult::Miss { .. }, .. })),
        "the second build is all hits"
    );
    use trowel_events::ChangeKind::{Added, Deleted, Modified};
    let s = |p: &str| p.to_string();
    assert_eq!(seen(&ran, 2), [(s("/etc"), Modified), (s("/etc/f.txt"), Added)]);
    assert_eq!(seen(&ran, 4), [(s("/var/x/y"), Modified), (s("/var/x/y/f.txt"), Added)]);
    assert_eq!(seen(&ran, 5), [(s("/var/x/y"), Modified), (s("/var/x/y/a"), Deleted)]);
    // A re-created directory's contents are all new, whatever their names were before.
    assert_eq!(
        seen(&ran, 6),
        [(s("/var"), Modified), (s("/var/x"), Modified), (s("/var/x/y"), Added), (s("/var/x/y/f.txt"), Added)]
    );
    // What a re-created directory no longer holds is deleted, from this build's steps (/var/x/y)
    // and from the base (/usr/sbin, and each of /usr/bin's links but the one made again).
    let line7 = seen(&ran, 7);
    for want in
        [(s("/var/x/y"), Deleted), (s("/var/x/z"), Added), (s("/usr/sbin"), Deleted), (s("/usr/bin/env"), Added)]
    {
        assert!(line7.contains(&want), "{want:?} in {line7:?}");
    }
    assert!(line7.iter().filter(|(p, k)| p.starts_with("/usr/bin/") && *k == Deleted).count() > 10, "{line7:?}");
    for line in 2..=7 {
        assert_eq!(seen(&cached, line), seen(&ran, line), "line {line}");
    }
    // The image's layers are credited to the steps that made them, in the build that made them
    // or (cache hits) an earlier one; they were "base-image layers" in a cached build.
    let makers = |events: &[Event]| -> Vec<Option<trowel_events::StepId>> {
        events
            .iter()
            .find_map(|e| match e {
                Event::ImageAssembled { layers, .. } => Some(layers.iter().map(|l| l.step).collect()),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(makers(&cached), makers(&ran));
    assert_eq!(makers(&ran).iter().filter(|s| s.is_some()).count(), 6, "{:?}", makers(&ran));
    // A stage that runs nothing has no root: its `--link` step's layer is listed, and compared.
    let ctx = context(&format!("FROM {}\nCOPY --link f.txt /etc/f.txt\n", env().busybox()));
    let events = detailed_build(&options(ctx.path(), &dest("link-no-root")), true);
    assert_eq!(classified_at(&events, 2), Some(true));
    assert_eq!(seen(&events, 2), seen(&ran, 2), "as the step shows on a root");
}

/// What a viewer is shown of a layer without a root (a cached step's, the base's) is kept in the
/// cache dir: the next session is shown the same entries without downloading the blobs (a
/// traced rebuild downloaded a cached 40 MB layer each time to list it, where an untraced one
/// downloaded nothing); a listing that is not whole is not used, and `cache check` reports it.
#[test]
fn listings_kept_in_the_cache_dir_are_shown_again_without_the_blobs() {
    let (_ctx, mut opts) = cached_build_of("RUN mkdir /d && echo a > /d/a && rm /etc/group\n", "listings");
    let cache_dir = tempfile::tempdir().unwrap();
    opts.cache.as_mut().unwrap().dir = Some(cache_dir.path().to_path_buf());
    let pulled = |events: &[Event]| -> Vec<String> {
        let mut d: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                Event::PullProgress { digest, .. } => Some(digest.to_string()),
                _ => None,
            })
            .collect();
        d.dedup();
        d
    };
    let base_listed = |events: &[Event]| -> Vec<Event> {
        events.iter().filter(|e| matches!(e, Event::BaseLayerListed { .. })).cloned().collect()
    };
    // A trace's detail (`diffs: false`): a cached step's layer listed alone.
    detailed_build(&opts, false);
    let listed = detailed_build(&opts, false);
    assert_eq!(classified_at(&listed, 2), Some(false));
    let layer = listed
        .iter()
        .find_map(|e| match e {
            Event::StepFinished { id, layer: Some(l), .. } if id.step == 1 => Some(l.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(pulled(&listed), [layer.to_string()], "the first listing downloads the cached layer");
    let listing = cache_dir.path().join("listings").join(layer.to_string().trim_start_matches("sha256:"));
    assert!(listing.is_file());
    let again = detailed_build(&opts, false);
    assert_eq!(pulled(&again), Vec::<String>::new(), "nothing downloaded the second time");
    assert_eq!(changes_at(&again, 2), changes_at(&listed, 2));
    assert_eq!(classified_at(&again, 2), Some(false));
    // A listing cut short (a crash before it reached the disk) is read from the blob again, and
    // `cache check` reports it.
    let text = std::fs::read(&listing).unwrap();
    std::fs::write(&listing, &text[..text.len() / 2]).unwrap();
    let findings = trowel_engine::cache::prune::check(cache_dir.path(), true).unwrap();
    assert!(findings.iter().any(|f| f.path == listing && f.corrupt), "{findings:?}");
    let torn = detailed_build(&opts, false);
    assert_eq!(pulled(&torn), [layer.to_string()]);
    assert_eq!(changes_at(&torn, 2), changes_at(&listed, 2));
    assert_eq!(std::fs::read(&listing).unwrap(), text, "kept again, whole");
    // The debugger's detail: the base's layers are listed too (the Files pane), and kept; the
    // next session is shown the same listings of them.
    let first = base_listed(&detailed_build(&opts, true));
    assert!(!first.is_empty());
    for e in &first {
        let Event::BaseLayerListed { digest, .. } = e else { unreachable!() };
        let kept = cache_dir.path().join("listings").join(digest.to_string().trim_start_matches("sha256:"));
        assert!(kept.is_file(), "{digest}");
    }
    assert_eq!(base_listed(&detailed_build(&opts, true)), first);
    let inventory = trowel_engine::cache::prune::Inventory::scan(cache_dir.path()).unwrap();
    let kept = inventory.items.iter().filter(|i| i.kind == trowel_engine::cache::prune::Kind::Listing).count();
    assert_eq!(kept, first.len() + 1, "the base's layers and the cached step's, for prunes to bound");
}

/// `--single-snapshot`: the engine says so when the build starts, so a viewer reads the one
/// snapshot and layer the stage's last step reports as the stage's (here an `ENV` line's),
/// and `replay --summary` says so.
#[test]
fn a_single_snapshot_build_says_so_and_its_layer_is_the_stages() {
    let ctx = context(&format!("FROM {}\nRUN echo a > /a.txt\nENV X=1\n", env().busybox()));
    let mut opts = options(ctx.path(), &dest("single-snapshot"));
    opts.layers.single_snapshot = true;
    let events = detailed_build(&opts, false);
    assert!(matches!(events[0], Event::BuildStarted { single_snapshot: true, .. }));
    let envs: Vec<Envelope> =
        events.into_iter().enumerate().map(|(i, event)| Envelope { seq: i as u64, ms: 0, event }).collect();
    let state = trowel_events::BuildState::from_events(&envs);
    let env_step = state.steps().find(|s| s.line == 3).unwrap();
    assert_eq!(env_step.stage_snapshot, Some(1));
    assert!(env_step.changes.iter().any(|c| c.path == "/a.txt"), "the stage's changes: {:?}", env_step.changes);
    let image = state.images.last().unwrap();
    let labels: Vec<String> = image.layers.iter().map(|l| state.maker(l.step, l.shell, &l.digest).label()).collect();
    assert_eq!(labels, ["base", "L1–3 stage"]);
    let header = trowel::trace::Header { trowel_trace: 3, trowel_version: "0.1.0".into(), started: String::new() };
    let summary = trowel::trace::summary::summarize(&header, &state);
    assert!(summary.contains("single snapshot of lines 1–3 (--single-snapshot): layer"), "{summary}");
    assert!(!summary.lines().any(|l| l.contains("ENV X=1") && l.contains("layer")), "{summary}");
}

/// Issue 15: asked for (`Detail::base_listings`, as the debugger asks), the engine lists every
/// base-image layer (`base_layer_listed`); stacked with the steps' snapshots as the Files pane
/// stacks them (whiteouts, a directory deleted over two layers), they give the file system of
/// the pushed image, pulled and unpacked by skopeo and umoci.
#[test]
fn base_listings_and_snapshots_stack_to_the_pushed_image() {
    let df = format!(
        "FROM {}\nRUN mkdir -p /d/e && echo one > /d/e/f && echo two > /d/g\nRUN rm -rf /d /etc/group && echo hi > /hi.txt\n",
        env().busybox()
    );
    let ctx = context(&df);
    let d = dest("files");
    let opts = options(ctx.path(), &d);
    let envs: Vec<Envelope> = detailed_build(&opts, true)
        .into_iter()
        .enumerate()
        .map(|(i, event)| Envelope { seq: i as u64, ms: 0, event })
        .collect();
    assert!(envs.iter().any(|e| matches!(e.event, Event::BaseLayerListed { .. })));
    let state = trowel_events::BuildState::from_events(&envs);
    let merged = trowel::tui::model::merged::at(&state, None);
    assert!(merged.unknown.is_empty(), "{:?}", merged.unknown);
    let image = pull_and_unpack(&d).tree();
    let want: Vec<&String> = image.0.keys().filter(|p| *p != "/").collect();
    let got: Vec<&String> = merged.entries.keys().collect();
    assert_eq!(got, want, "the stacked listings are the image's paths");
    for (path, e) in &merged.entries {
        if e.change.file_type == trowel_events::FileType::File {
            assert_eq!(e.change.size, image.get(path).size, "{path}");
        }
    }
    assert!(!merged.entries.contains_key("/d") && merged.entries.contains_key("/hi.txt"));
    assert!(merged.layers.iter().find(|l| l.label == "L2 RUN").unwrap().wasted >= 8, "/d/e/f and /d/g are waste");
    // The base file the build deleted is its base layer's waste (the Layers pane's base row),
    // as big as the base's listing says it is.
    let (digest, group) = envs
        .iter()
        .find_map(|e| match &e.event {
            Event::BaseLayerListed { digest, changes, .. } => {
                changes.iter().find(|c| c.path == "/etc/group").map(|c| (digest.clone(), c.size))
            }
            _ => None,
        })
        .expect("busybox's layer lists /etc/group");
    let report = trowel::tui::model::waste::analyze(&state);
    assert_eq!(report.added_by_base(&digest), Some(group));
    assert!(group > 0);
}

/// The Files pane at every step is the file system of the image the Dockerfile cut after that
/// step makes (pulled and unpacked by skopeo and umoci): paths, types, modes, owners, sizes,
/// digests and link targets, across whiteouts, a re-created directory, hard and symbolic links,
/// a COPY with owners — when the steps ran and when the cache served them (listed and compared
/// with the layers below). Checked by hand for every corpus Dockerfile; this keeps one that has
/// each kind of change.
#[test]
fn the_files_pane_at_each_step_is_the_image_of_the_dockerfile_up_to_it() {
    let lines = [
        format!("FROM {}", env().busybox()),
        "RUN mkdir -p /d/e && echo one > /d/e/f && ln /d/e/f /d/h && ln -s e/f /d/s".to_string(),
        "RUN rm -rf /d/e && mkdir /d/e && echo two > /d/e/g && chmod 700 /d/e".to_string(),
        "COPY --chown=5:6 f.txt /d/c.txt".to_string(),
        "RUN rm /etc/group /d/h && chmod 4755 /d/c.txt && chown -h 7:8 /d/s".to_string(),
        "RUN head -c 3000 /dev/zero > /w1 && ln /w1 /w2 && rm /bin/vi".to_string(),
        "RUN echo more >> /w1".to_string(),
        "RUN rm -rf /d/e && echo f > /d/e".to_string(),
        "RUN rm -rf /bin".to_string(),
    ];
    let (ctx, opts) = cached_build_of(&lines[1..].join("\n"), "files-at-steps");
    let stack = |events: Vec<Event>| {
        let envs: Vec<Envelope> =
            events.into_iter().enumerate().map(|(i, event)| Envelope { seq: i as u64, ms: 0, event }).collect();
        trowel_events::BuildState::from_events(&envs)
    };
    let ran = stack(detailed_build(&opts, true));
    let cached = stack(detailed_build(&opts, true));
    assert!(cached.steps().skip(1).all(|s| s.state == trowel::tui::model::StepState::Cached));
    for n in 2..=lines.len() {
        // The image of the Dockerfile cut after line n, built apart.
        let cut = tempfile::tempdir().unwrap();
        std::fs::write(cut.path().join("Dockerfile"), lines[..n].join("\n") + "\n").unwrap();
        let dest = dest(&format!("files-at-{n}"));
        let mut o = options(ctx.path(), &dest);
        o.dockerfile = cut.path().join("Dockerfile");
        trowel_engine::engine::build(&o, &Emitter::new(vec![]), &mut trowel_engine::engine::Continue).unwrap();
        let image = pull_and_unpack(&dest).tree();
        let want: Vec<String> = image
            .0
            .iter()
            .filter(|(p, _)| *p != "/")
            .map(|(p, f)| {
                let size = if f.kind == 'f' { f.size } else { 0 };
                format!("{p} {} {:o} {}:{} {size} {:?} {:?}", f.kind, f.mode, f.uid, f.gid, f.sha256, f.link)
            })
            .collect();
        for (what, state) in [("ran", &ran), ("cached", &cached)] {
            let id = state.steps().find(|s| s.line == n).unwrap().id;
            let m = trowel::tui::model::merged::at(state, Some(id));
            assert!(m.unknown.is_empty(), "{what} line {n}: {:?}", m.unknown);
            let got: Vec<String> = m
                .entries
                .iter()
                .map(|(p, e)| {
                    use trowel_events::FileType::*;
                    let c = &e.change;
                    // A hard link is a file of its first name's bytes; its own entry has none.
                    let first = (c.file_type == Hardlink).then(|| m.entries.get(c.link_target.as_deref()?)).flatten();
                    let (kind, size, digest) = match c.file_type {
                        File => ('f', c.size, c.digest.clone()),
                        Hardlink => {
                            ('f', first.map_or(0, |f| f.change.size), first.and_then(|f| f.change.digest.clone()))
                        }
                        Dir => ('d', 0, None),
                        Symlink => ('l', 0, None),
                        _ => ('?', 0, None),
                    };
                    let sha = digest.map(|d| d.to_string().trim_start_matches("sha256:").to_string());
                    let link = c.link_target.clone().filter(|_| kind == 'l');
                    format!("{p} {kind} {:o} {}:{} {size} {sha:?} {link:?}", c.mode, c.uid, c.gid)
                })
                .collect();
            assert_eq!(got, want, "{what}: the Files pane at line {n}");
        }
    }
    // The waste the Layers pane lists (per obsolete version) adds up to what the Files pane's
    // efficiency counts (per layer): the hard-linked file whose first name went at line 3 is
    // waste once, at line 5, when its last name goes; a base file's other name going (/bin/vi,
    // one of busybox's names) is none; a hard-linked file written in place is one version
    // overwritten under the name written, not a deletion of its other name; a base directory
    // removed whole is its files' waste, from the base (line 1).
    for (what, state) in [("ran", &ran), ("cached", &cached)] {
        use trowel::tui::model::waste::Fate;
        let report = trowel::tui::model::waste::analyze(state);
        let stacked: u64 = trowel::tui::model::merged::at(state, None).layers.iter().map(|l| l.wasted).sum();
        assert_eq!(report.total, stacked, "{what}: {:#?}", report.items);
        let f: Vec<(usize, u64)> =
            report.items.iter().filter(|i| i.path.starts_with("/d/")).map(|i| (i.removed_line, i.bytes)).collect();
        assert!(f.contains(&(5, 4)) && !f.contains(&(3, 4)), "{what}: {:#?}", report.items);
        let of = |p: &str| -> Vec<(usize, usize, u64, Fate)> {
            let items = report.items.iter().filter(|i| i.path == p);
            items.map(|i| (i.added.line, i.removed_line, i.bytes, i.fate)).collect()
        };
        assert_eq!(of("/w1"), [(6, 7, 3000, Fate::Overwritten)], "{what}: {:#?}", report.items);
        // A chmod ships the COPY's file again, byte for byte: waste, told apart by its digests.
        let copied = std::fs::metadata(ctx.path().join("f.txt")).unwrap().len();
        assert_eq!(of("/d/c.txt"), [(4, 5, copied, Fate::SameBytes)], "{what}: {:#?}", report.items);
        assert_eq!(of("/w2"), [], "{what}");
        assert!(report.items.iter().all(|i| i.removed_line != 6), "{what}: {:#?}", report.items);
        let busybox = std::fs::metadata(pull_and_unpack(&env().busybox()).rootfs().join("bin/busybox")).unwrap().len();
        let bin: Vec<_> = report.items.iter().filter(|i| i.path.starts_with("/bin/")).collect();
        assert_eq!(bin.len(), 1, "{what}: one file, however many names: {bin:#?}");
        assert_eq!((bin[0].added.step, bin[0].added.line, bin[0].removed_line, bin[0].bytes), (None, 1, 9, busybox));
    }
    // A directory replaced by a file: what it held is deleted, in the step's changes, whether
    // the step ran (a walk) or the cache served it (its listing compared with the layers below).
    for (what, state) in [("ran", &ran), ("cached", &cached)] {
        let step = state.steps().find(|s| s.line == 8).unwrap();
        let changes: Vec<String> =
            step.changes.iter().map(|c| format!("{:?} {:?} {}", c.kind, c.file_type, c.path)).collect();
        assert_eq!(changes, ["Modified Dir /d", "Modified File /d/e", "Deleted File /d/e/g"], "{what}");
    }
}

/// A trace without the base's listing (`trowel build --trace`), on a base with a file of two
/// names (hard links): a chmod of one name puts both in the layer (the other as a link to it),
/// and that is the one file's bytes shipped again, not a copy per name deleted; a removed base
/// file is counted, with a caveat saying that another name of it, which only the base's listing
/// would show, would keep its bytes.
#[test]
fn waste_without_the_base_listing_counts_a_relinked_base_file_once() {
    use trowel::tui::model::waste::{self, Fate};
    let (_base_ctx, base) = cached_build_of(
        "RUN head -c 3000 /dev/urandom > /data && ln /data /data2 && echo solo > /solo\n",
        "waste-linked-base",
    );
    detailed_build(&base, false);
    let ctx = context(&format!("FROM {}\nRUN chmod 700 /data\nRUN rm /solo\n", base.output.destinations[0]));
    let opts = options(ctx.path(), &dest("waste-unlisted"));
    let envs: Vec<Envelope> = detailed_build(&opts, false)
        .into_iter()
        .enumerate()
        .map(|(i, event)| Envelope { seq: i as u64, ms: 0, event })
        .collect();
    let state = trowel_events::BuildState::from_events(&envs);
    let data2 = state.steps().find(|s| s.line == 2).unwrap().changes.iter().find(|c| c.path == "/data2").cloned();
    assert_eq!(data2.map(|c| c.file_type), Some(trowel_events::FileType::Hardlink), "both names are in the layer");
    let report = waste::analyze(&state);
    let items: Vec<_> = report.items.iter().map(|i| (i.path.as_str(), i.removed_line, i.bytes, i.fate)).collect();
    assert_eq!(items, [("/data", 2, 3000, Fate::SameBytes), ("/solo", 3, 5, Fate::Deleted)], "{:#?}", report.items);
    assert!(
        report.unknown.iter().any(|u| u.starts_with("1 base file(s) deleted, counted as waste: any with another name")),
        "{:?}",
        report.unknown
    );
}

/// The Cache pane shows an ARG as the build ran it (`--build-arg V=2` over `ARG V=1`): among
/// the RUN's variables, which its key holds. The chain lists no ARG line (config-only steps do
/// not chain into keys, as in BuildKit); it used to, as written (`L2 ARG V=1`).
#[test]
fn the_cache_pane_shows_an_arg_as_run() {
    let (_ctx, mut opts) = cached_build_of("ARG V=1\nRUN echo $V > /v\n", "chain-arg");
    opts.build_args.insert("V".into(), "2".into());
    let envs: Vec<Envelope> = detailed_build(&opts, false)
        .into_iter()
        .enumerate()
        .map(|(i, event)| Envelope { seq: i as u64, ms: 0, event })
        .collect();
    let mut app = trowel::tui::App::replay("chain-arg".into(), &envs);
    let run = app.model.steps().find(|s| s.line == 3).unwrap().id;
    app.select_step(run);
    let t = tui_support::pane(&mut app, trowel::tui::Pane::Cache, 100, 40);
    let shown = format!("{:?}", t.backend());
    assert!(shown.contains("ARG V=2") && !shown.contains("V=1"), "{shown}");
    assert!(!shown.contains("L2 ARG"), "no config-only step in the chain: {shown}");
}
