//! The fold, on hand-made event sequences: what the engine emits today, what version 2 added
//! (pauses, resumes, push decisions, withheld events, aborts) before the engine emits it, and
//! what version 1 traces lack.

use super::*;
use crate::{
    BaseSource, CacheResult, Change, ChangeKind, Digest, Event, FileType, KeyComponents, LayerSummary, OutputStream,
    PauseReason, PushReview, ResumeAction, SnapshotStats, StepPlan, StepStatus, When,
};
const FROM: StepId = StepId { stage: 0, step: 0 };
const RUN: StepId = StepId { stage: 0, step: 1 };
const COPY: StepId = StepId { stage: 0, step: 2 };

fn digest(n: u8) -> Digest {
    format!("sha256:{}", format!("{n:02x}").repeat(32)).parse().unwrap()
}

fn layer(n: u8, size: u64, step: Option<StepId>) -> LayerSummary {
    LayerSummary {
        digest: digest(n),
        diff_id: None,
        size,
        uncompressed_size: None,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        step,
        shell: None,
    }
}

fn change(path: &str) -> Change {
    Change {
        path: path.into(),
        kind: ChangeKind::Added,
        file_type: FileType::File,
        size: 10,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        link_target: None,
        digest: None,
        opaque: false,
        previous: None,
    }
}

fn plan(id: StepId, line: usize, source: &str) -> StepPlan {
    StepPlan {
        id,
        line,
        end_line: line,
        keyword: source.split(' ').next().unwrap().into(),
        source: source.into(),
        onbuild: false,
    }
}

/// Envelopes numbered in order, at the given times.
#[derive(Default)]
struct Trace(Vec<Envelope>);

impl Trace {
    fn at(mut self, ms: u64, event: Event) -> Trace {
        self.0.push(Envelope { seq: self.0.len() as u64, ms, event });
        self
    }

    fn state(&self) -> BuildState {
        BuildState::from_events(&self.0)
    }
}

/// `FROM busybox` (line 1), `RUN make` (line 2), `COPY . /src` (line 3), started.
fn build() -> Trace {
    Trace::default().at(
        0,
        Event::BuildStarted {
            version: "0.1.0".into(),
            dockerfile_path: "Dockerfile".into(),
            dockerfile_text: "FROM busybox\nRUN make\nCOPY . /src\n".into(),
            context: ".".into(),
            context_origin: None,
            target: None,
            destinations: vec!["registry.example/app:1".into()],
            platform: "linux/amd64".into(),
            platforms: Vec::new(),
            isolation: "chroot".into(),
            single_snapshot: false,
            layer_cache: None,
            stages: vec![StagePlan {
                index: 0,
                name: None,
                base: "busybox".into(),
                needed: true,
                dockerfile_stage: None,
                platform: None,
                targets: Vec::new(),
                steps: vec![plan(FROM, 1, "FROM busybox"), plan(RUN, 2, "RUN make"), plan(COPY, 3, "COPY . /src")],
            }],
        },
    )
}

fn started(id: StepId, line: usize, source: &str) -> Event {
    Event::StepStarted {
        id,
        line,
        end_line: line,
        keyword: source.split(' ').next().unwrap().into(),
        source: source.into(),
        expanded: source.into(),
        mounts: Vec::new(),
        attempt: None,
    }
}

fn finished(id: StepId, status: StepStatus, duration_ms: u64, paused_ms: u64) -> Event {
    Event::StepFinished { id, status, duration_ms, paused_ms, layer: None, exit_code: None }
}

fn components() -> Box<KeyComponents> {
    Box::new(KeyComponents {
        version: 1,
        platform: "linux/amd64".into(),
        layer_format: "gzip".into(),
        ignored: None,
        parent: "p".into(),
        linked: None,
        instruction: "COPY . /src".into(),
        vars: Default::default(),
        files: Vec::new(),
        sources: Default::default(),
        user: None,
        shell: None,
        line: 3,
        chain: Vec::new(),
        base: None,
    })
}

#[test]
fn steps_layers_and_the_cache() {
    let s = build()
        .at(1, Event::StageStarted { stage: 0, name: None, base: "busybox".into() })
        .at(2, started(FROM, 1, "FROM busybox"))
        .at(
            3,
            Event::BaseResolved {
                stage: 0,
                source: BaseSource::Scratch,
                config_digest: None,
                layers: vec![layer(9, 1000, None)],
            },
        )
        .at(4, finished(FROM, StepStatus::Metadata, 2, 0))
        .at(5, started(RUN, 2, "RUN make"))
        .at(6, Event::Output { id: RUN, stream: OutputStream::Stdout, data: "compiling\nlin".into() })
        .at(7, Event::Output { id: RUN, stream: OutputStream::Stderr, data: "ked\n".into() })
        .at(
            8,
            Event::Snapshot {
                id: RUN,
                changes: vec![change("/app")],
                stats: SnapshotStats::default(),
                classified: None,
            },
        )
        .at(9, Event::LayerWritten { id: RUN, layer: layer(1, 500, Some(RUN)), entries: 1, duration_ms: 1 })
        .at(10, finished(RUN, StepStatus::Built, 5, 0))
        .at(11, started(COPY, 3, "COPY . /src"))
        .at(
            12,
            Event::CacheLookup {
                id: COPY,
                key: "k".into(),
                components: components(),
                result: CacheResult::Hit { reference: "r/cache:k".into(), layer: Some(layer(2, 70, Some(COPY))) },
            },
        )
        .at(13, finished(COPY, StepStatus::Cached, 1, 0))
        .at(14, Event::CacheSummary { hits: 1, misses: 0, bytes_reused: 70 })
        .at(15, Event::BuildFinished { duration_ms: 15, digest: Some(digest(7)), pushed: Vec::new() })
        .state();
    let states: Vec<(usize, StepState)> = s.steps().map(|s| (s.line, s.state)).collect();
    assert_eq!(states, [(1, StepState::Metadata), (2, StepState::Built), (3, StepState::Cached)]);
    assert_eq!(s.stage(0).unwrap().base_layers.len(), 1);
    let run = s.step(RUN).unwrap();
    assert_eq!(run.output.lines().collect::<Vec<_>>(), ["compiling", "linked"]);
    assert_eq!((run.layer.as_ref().unwrap().size, run.added_bytes()), (500, 10));
    let copy = s.step(COPY).unwrap();
    assert!(copy.cache.as_ref().unwrap().is_hit());
    assert_eq!(copy.layer.as_ref().unwrap().digest, digest(2), "the cached layer is the step's");
    assert_eq!(s.written_layers, [layer(1, 500, Some(RUN))], "a cached layer was not written");
    assert_eq!(s.cache_summary, Some((1, 0, 70)));
    assert_eq!((s.outcome(), s.current, s.paused_ms()), (Outcome::Finished, None, 0));
    assert_eq!(s.events, 16);
}

#[test]
fn pushes_follow_their_blobs() {
    let dest = "registry.example/app:1".to_string();
    let s = build()
        .at(1, Event::PushStarted { destination: dest.clone() })
        .at(2, Event::PushProgress { destination: dest.clone(), digest: digest(1), sent: 10, total: 500 })
        .at(
            3,
            Event::BlobPushed {
                destination: dest.clone(),
                digest: digest(1),
                action: crate::BlobPushAction::Uploaded,
                size: 500,
            },
        )
        // The same layer in the index's second image: there, since the first sent it.
        .at(
            4,
            Event::BlobPushed {
                destination: dest.clone(),
                digest: digest(1),
                action: crate::BlobPushAction::Existed,
                size: 500,
            },
        )
        .at(5, Event::PushFinished { destination: dest.clone(), digest: digest(7), duration_ms: 3, unchanged: true })
        .state();
    assert_eq!(s.pushes.len(), 1);
    let p = &s.pushes[0];
    assert_eq!((p.finished.clone(), p.unchanged), (Some((digest(7), 3)), true));
    assert_eq!((p.blobs[0].sent, p.blobs[0].total, p.blobs[0].done), (500, 500, Some(crate::BlobPushAction::Uploaded)));
}

#[test]
fn onbuild_triggers_run_after_from() {
    let trigger = StepId { stage: 0, step: 4 };
    let s = build().at(1, started(FROM, 1, "FROM busybox")).at(2, started(trigger, 1, "RUN echo trigger")).state();
    let order: Vec<StepId> = s.steps().map(|s| s.id).collect();
    assert_eq!(order, [FROM, trigger, RUN, COPY]);
    assert!(s.step(trigger).unwrap().onbuild);
    // Events about steps nobody planned are ignored, not a panic.
    let s = build()
        .at(1, Event::Output { id: StepId { stage: 5, step: 1 }, stream: OutputStream::Stdout, data: "x".into() });
    assert_eq!(s.state().steps().count(), 3);
}

#[test]
fn a_lean_state_keeps_no_changed_paths() {
    let t = build()
        .at(1, started(RUN, 2, "RUN make"))
        .at(
            2,
            Event::Snapshot {
                id: RUN,
                changes: vec![change("/a"), change("/b")],
                stats: Default::default(),
                classified: None,
            },
        )
        .at(
            3,
            Event::FileContents {
                id: RUN,
                files: vec![crate::FileContent { path: "/a".into(), before: None, after: Some("x".into()) }],
            },
        )
        .at(4, finished(RUN, StepStatus::Built, 5, 0));
    let full = t.state();
    assert_eq!(full.step(RUN).unwrap().changes.len(), 2);
    assert_eq!(full.step(RUN).unwrap().contents.len(), 1);
    let mut lean = BuildState::lean();
    for e in &t.0 {
        lean.apply(e);
    }
    let step = lean.step(RUN).unwrap();
    assert!(step.changes.is_empty() && step.contents.is_empty());
    assert_eq!((step.state, step.duration_ms), (StepState::Built, Some(5)));
}

/// A step's contents may come in several events (the engine sends about 1 MiB in each): the
/// state adds them up, a later event's file replacing nothing but its own path.
#[test]
fn a_step_s_contents_in_several_events_add_up() {
    let content = |p: &str, after: &str| crate::FileContent { path: p.into(), before: None, after: Some(after.into()) };
    let s = build()
        .at(1, started(RUN, 2, "RUN make"))
        .at(2, Event::FileContents { id: RUN, files: vec![content("/a", "1"), content("/b", "2")] })
        .at(3, Event::FileContents { id: RUN, files: vec![content("/c", "3")] })
        .at(4, finished(RUN, StepStatus::Built, 5, 0))
        .state();
    let got = &s.step(RUN).unwrap().contents;
    assert_eq!(got.len(), 3);
    assert_eq!((got["/a"].after.as_deref(), got["/c"].after.as_deref()), (Some("1"), Some("3")));
}

/// The log's lean state keeps a lookup's key, result and components but for the files a COPY's
/// key lists (100,000 of them for a big COPY), which the log never shows; a full state keeps all.
#[test]
fn a_lean_state_keeps_no_key_files() {
    let mut c = components();
    c.files = (0..3)
        .map(|i| crate::KeyFile {
            path: format!("f{i}"),
            kind: 'f',
            mode: 0o644,
            uid: 0,
            gid: 0,
            link: None,
            digest: Some(digest(i)),
            xattrs: Default::default(),
            hard_link: None,
        })
        .collect();
    let lookup = Event::CacheLookup {
        id: COPY,
        key: "k".into(),
        components: c.clone(),
        result: CacheResult::Miss { explanation: "no cache entry for this step yet".into(), compared_with: None },
    };
    let t = build().at(1, started(COPY, 3, "COPY . /src")).at(2, lookup);
    assert_eq!(t.state().step(COPY).unwrap().cache.as_ref().unwrap().components, *c);
    let mut lean = BuildState::lean();
    for e in &t.0 {
        lean.apply(e);
    }
    let kept = &lean.step(COPY).unwrap().cache.as_ref().unwrap().components;
    assert!(kept.files.is_empty());
    assert_eq!(KeyComponents { files: c.files.clone(), ..kept.clone() }, *c, "everything else is kept");
}

#[test]
fn build_check_findings_are_kept_by_line() {
    let check = |rule: &str, line: usize, end_line: usize| Event::Check {
        rule: rule.into(),
        description: "d".into(),
        url: Some(format!("https://docs.docker.com/go/dockerfile/rule/{rule}/")),
        message: format!("{rule} says"),
        line,
        end_line,
        error: false,
    };
    let s = build().at(1, check("A", 2, 2)).at(2, check("B", 2, 3)).at(3, check("C", 1, 1)).state();
    assert_eq!(s.checks.len(), 3);
    let at = |line| s.checks_at(line).map(|c| c.rule.as_str()).collect::<Vec<_>>();
    assert_eq!(at(2), ["A", "B"]);
    assert_eq!(at(3), ["B"]);
    assert_eq!(at(1), ["C"]);
    assert_eq!(s.checks[0].short(), "A: A says (line 2)");
    // A line of JSON as a trace holds it: `error` and `url` may be absent.
    let env: Envelope = serde_json::from_str(
        r#"{"seq":9,"ms":4,"event":"check","rule":"R","description":"d","message":"m","line":5,"end_line":5}"#,
    )
    .unwrap();
    let mut s = build().state();
    s.apply(&env);
    assert_eq!((s.checks[0].error, s.checks[0].url.as_deref()), (false, None));
}

#[test]
fn the_stages_root_is_placed_after_the_steps_done_when_it_was_ready() {
    let unpacked = |from_store, duration_ms| Event::BaseUnpacked {
        stage: 0,
        layers: 2,
        entries: 288,
        bytes: 2_000_000,
        duration_ms,
        from_store,
        store_unused: None,
        index: None,
    };
    let ahead = build()
        .at(1, Event::StageStarted { stage: 0, name: None, base: "busybox".into() })
        .at(2, started(FROM, 1, "FROM busybox"))
        .at(3, finished(FROM, StepStatus::Metadata, 1, 0))
        .at(4, unpacked(None, 40))
        .state();
    let root = ahead.stage(0).unwrap().root.clone().unwrap();
    assert_eq!((root.after_steps, root.duration_ms), (1, 40), "made after FROM, before the RUN");
    assert_eq!(root.summary(), "unpacked: 288 entries, 2 layers");
    // Made by the RUN, which waited for it: still before the RUN, which is not done.
    let waited = build()
        .at(1, Event::StageStarted { stage: 0, name: None, base: "busybox".into() })
        .at(2, started(FROM, 1, "FROM busybox"))
        .at(3, finished(FROM, StepStatus::Metadata, 1, 0))
        .at(4, started(RUN, 2, "RUN make"))
        .at(5, unpacked(Some(1), 12))
        .state();
    let root = waited.stage(0).unwrap().root.clone().unwrap();
    assert_eq!(root.after_steps, 1);
    assert_eq!(root.summary(), "mounted, 1 of 2 layers unpacked into the store");
    let stored = RootView { from_store: Some(2), ..root };
    assert_eq!(stored.summary(), "mounted from the store (2 layers)");
    let none = build().at(1, Event::StageStarted { stage: 0, name: None, base: "busybox".into() }).state();
    assert_eq!(none.stage(0).unwrap().root, None, "a stage the cache serves whole has no root");
}

#[test]
fn what_a_step_read_from_another_stage_or_an_image_is_the_steps() {
    let whole = Event::SourceUnpacked {
        for_step: Some(COPY),
        stage: Some(0),
        image: None,
        why: "the unpacked-layer store holds most of its layers".into(),
        layers: 5,
        entries: 12,
        bytes: 4096,
        duration_ms: 30,
        from_store: Some(4),
        store_unused: None,
        index: None,
    };
    let extracted = Event::SourceExtracted {
        for_step: Some(COPY),
        stage: None,
        image: Some("busybox".into()),
        paths: vec!["/bin/busybox".into()],
        layers: 1,
        entries: 400,
        skipped: 3,
        bytes: 1_000_000,
        passes: 1,
        duration_ms: 80,
    };
    let s = build().at(1, started(COPY, 3, "COPY . /src")).at(2, whole).at(3, extracted).state();
    let reads = &s.step(COPY).unwrap().reads;
    assert_eq!(
        reads,
        &vec![
            SourceRead {
                from: "stage 0".into(),
                how: "mounted, 1 of 5 layers unpacked into the store".into(),
                why: Some("the unpacked-layer store holds most of its layers".into()),
                duration_ms: 30,
            },
            SourceRead {
                from: "busybox".into(),
                how: "extracted /bin/busybox: 400 entries of 1 layer (3 left out)".into(),
                why: None,
                duration_ms: 80,
            },
        ]
    );
    assert!(s.step(RUN).unwrap().reads.is_empty());
    // A trace from before the events named their step: nothing is placed.
    let line = r#"{"seq":3,"ms":1,"event":"source_extracted","stage":0,"paths":["/out"],"layers":2,"entries":3,"skipped":4,"bytes":5,"passes":1,"duration_ms":6}"#;
    let env: Envelope = serde_json::from_str(line).unwrap();
    let old = build().at(1, started(COPY, 3, "COPY . /src")).at(2, env.event).state();
    assert!(old.step(COPY).unwrap().reads.is_empty());
}

/// A cached step's snapshot that lists its layer without the layers below is marked, so viewers
/// show "added or modified" and not "added"; traces older than `classified` are read the same
/// way when their listing looks like one (a cache hit, all-zero stats, nothing modified).
#[test]
fn a_listed_cached_layer_is_unclassified_and_older_traces_are_read_alike() {
    let fold = |classified: Option<bool>, stats: SnapshotStats, hit: bool| {
        let mut t = build().at(1, started(COPY, 3, "COPY . /src"));
        if hit {
            t = t.at(
                2,
                Event::CacheLookup {
                    id: COPY,
                    key: "k".into(),
                    components: components(),
                    result: CacheResult::Hit { reference: "r/cache:k".into(), layer: Some(layer(2, 70, Some(COPY))) },
                },
            );
        }
        let s = t.at(3, Event::Snapshot { id: COPY, changes: vec![change("/etc")], stats, classified }).state();
        s.step(COPY).unwrap().unclassified
    };
    let walked = SnapshotStats { files_walked: 3, bytes_hashed: 10, duration_ms: 1, unlisted: None };
    assert!(fold(Some(false), SnapshotStats::default(), true));
    assert!(!fold(Some(true), SnapshotStats::default(), true), "compared with the layers below");
    assert!(!fold(None, walked.clone(), true), "a walk of a root");
    assert!(fold(None, SnapshotStats::default(), true), "an older trace's listing");
    assert!(!fold(None, SnapshotStats::default(), false), "no cache hit: not a listing");
    // Older traces could put the lookup after the snapshot: the step's end settles it.
    let listed_then_hit = |status: StepStatus| {
        let s = build()
            .at(1, started(COPY, 3, "COPY . /src"))
            .at(
                2,
                Event::Snapshot {
                    id: COPY,
                    changes: vec![change("/etc")],
                    stats: Default::default(),
                    classified: None,
                },
            )
            .at(3, finished(COPY, status, 1, 0))
            .state();
        s.step(COPY).unwrap().unclassified
    };
    assert!(listed_then_hit(StepStatus::Cached));
    assert!(!listed_then_hit(StepStatus::Built));
}

/// `--single-snapshot`: the snapshot and layer the stage's last step reports are the whole
/// stage's; the fold marks them so, and the layer is labelled for the stage, not for that
/// step's instruction (an `ENV` credited with every file the stage wrote). Without the flag
/// (one snapshot per step, or an older trace) the same events read as before.
#[test]
fn a_stages_single_snapshot_is_the_stages_not_its_last_steps() {
    let fold = |single: bool| {
        let mut t = build();
        if let Event::BuildStarted { single_snapshot, .. } = &mut t.0[0].event {
            *single_snapshot = single;
        }
        let stats = SnapshotStats { files_walked: 3, bytes_hashed: 10, duration_ms: 1, unlisted: None };
        t.at(1, started(RUN, 2, "RUN make"))
            .at(2, finished(RUN, StepStatus::Built, 1, 0))
            .at(3, started(COPY, 3, "COPY . /src"))
            .at(4, finished(COPY, StepStatus::Built, 1, 0))
            .at(5, Event::Snapshot { id: COPY, changes: vec![change("/a"), change("/src")], stats, classified: None })
            .at(6, Event::LayerWritten { id: COPY, layer: layer(1, 100, Some(COPY)), entries: 2, duration_ms: 1 })
            .state()
    };
    let s = fold(true);
    assert!(s.single_snapshot);
    let copy = s.step(COPY).unwrap();
    assert_eq!(copy.stage_snapshot, Some(1), "from the stage's FROM line");
    assert_eq!(s.step(RUN).unwrap().stage_snapshot, None);
    let maker = s.maker(Some(COPY), None, &digest(1));
    assert_eq!(maker.label(), "L1–3 stage");
    assert!(
        maker.describe().contains("single snapshot") && maker.describe().contains("lines 1–3"),
        "{}",
        maker.describe()
    );
    let s = fold(false);
    assert_eq!(s.step(COPY).unwrap().stage_snapshot, None);
    assert_eq!(s.maker(Some(COPY), None, &digest(1)).label(), "L3 COPY");
}

mod debugger;
