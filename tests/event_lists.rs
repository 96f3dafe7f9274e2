//! Per-file lists in events (`Detail::file_lists`): a build whose consumers keep none (one that
//! only logs) gets `snapshot` events with the number of changed paths and no list, and keys
//! without their files; a consumer that keeps them (a trace, the debugger) gets every path and
//! file, and the number a log prints is the length of the list a trace records.

mod common;
mod debugger_support;

use std::sync::{Arc, Mutex};

use common::*;
use debugger_support::*;
use serde_json::Value;
use trowel_engine::engine::{CacheOptions, Emitter};
use trowel_events::{Detail, Envelope, Event, EventSink, KeyComponents, SnapshotStats};

/// Keeps the events; `.1`: whether it keeps per-file lists.
struct Sink(Arc<Mutex<Vec<Event>>>, bool);

impl EventSink for Sink {
    fn event(&mut self, e: &Envelope) {
        self.0.lock().unwrap().push(e.event.clone());
    }
    fn detail(&self) -> Detail {
        Detail { file_lists: self.1, ..Detail::default() }
    }
}

const FILES: usize = 40;

/// `FROM busybox`, `COPY src/ /dst/` of [`FILES`] files, and a RUN, with the cache on: what a
/// step reports of its changes and its key.
fn copy_context() -> tempfile::TempDir {
    let ctx = context(&format!("FROM {}\nCOPY src/ /dst/\nRUN echo x > /dst/ran\n", env().busybox()));
    std::fs::create_dir(ctx.path().join("src")).unwrap();
    for i in 0..FILES {
        std::fs::write(ctx.path().join(format!("src/f{i:02}.txt")), format!("{i}\n")).unwrap();
    }
    ctx
}

/// For the COPY (line 2) and the RUN (line 3): its snapshot's list and counters, and the files
/// of its key, as a build whose sink keeps lists (`lists`) or not reports them.
fn reported(lists: bool) -> Vec<(Vec<trowel_events::Change>, SnapshotStats, KeyComponents)> {
    let ctx = copy_context();
    let mut opts = options(ctx.path(), &dest(if lists { "lists" } else { "nolists" }));
    opts.cache = Some(CacheOptions::default());
    let events = Arc::new(Mutex::new(Vec::new()));
    let emitter = Emitter::new(vec![Box::new(Sink(events.clone(), lists))]);
    trowel_engine::engine::build(&opts, &emitter, &mut trowel_engine::engine::Continue).unwrap();
    let events = events.lock().unwrap().clone();
    let id_at = |line: usize| {
        events
            .iter()
            .find_map(|e| match e {
                Event::StepStarted { id, line: l, .. } if *l == line => Some(*id),
                _ => None,
            })
            .unwrap()
    };
    [2, 3]
        .into_iter()
        .map(|line| {
            let step = id_at(line);
            let (changes, stats) = events
                .iter()
                .find_map(|e| match e {
                    Event::Snapshot { id, changes, stats, .. } if *id == step => Some((changes.clone(), stats.clone())),
                    _ => None,
                })
                .unwrap();
            let key = events
                .iter()
                .find_map(|e| match e {
                    Event::CacheLookup { id, components, .. } if *id == step => Some((**components).clone()),
                    _ => None,
                })
                .unwrap();
            (changes, stats, key)
        })
        .collect()
}

#[test]
fn lists_go_only_to_consumers_that_keep_them() {
    let listed = reported(true);
    let counted = reported(false);
    for ((changes, stats, key), (no_changes, counts, no_files)) in listed.iter().zip(&counted) {
        assert_eq!(stats.unlisted, None, "a listed snapshot has no count apart: {stats:?}");
        assert!(!changes.is_empty());
        assert!(no_changes.is_empty(), "{no_changes:?}");
        assert_eq!(counts.unlisted, Some(changes.len() as u64), "the count is the list's length");
        assert_eq!(counts.files_walked, stats.files_walked);
        assert!(no_files.files.is_empty(), "{:?}", no_files.files);
        // The rest of the key is reported either way, and the key is the same.
        assert_eq!(KeyComponents { files: Vec::new(), ..key.clone() }, *no_files);
    }
    // The COPY: its directory and every file; its key lists every source file.
    let (changes, _, key) = &listed[0];
    assert_eq!(changes.iter().filter(|c| c.path.starts_with("/dst/f")).count(), FILES, "{changes:?}");
    assert_eq!(key.files.iter().filter(|f| f.kind == 'f').count(), FILES, "{:?}", key.files);
}

/// The log of a build that only logs says how many paths changed; its trace (which keeps the
/// lists) lists that many.
#[test]
fn the_log_counts_the_paths_the_trace_lists() {
    let ctx = copy_context();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let traced = run(trowel()
        .args(["build", "--log-format", "text", "--context"])
        .arg(ctx.path())
        .args(["--destination", &dest("traced"), "--trace"])
        .arg(&trace));
    assert_ok(&traced);
    let lengths: Vec<usize> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "snapshot")
        .map(|e| {
            assert!(e["stats"].get("unlisted").is_none(), "a trace lists every path: {e}");
            e["changes"].as_array().unwrap().len()
        })
        .collect();
    assert!(lengths.contains(&(FILES + 1)), "{lengths:?}");
    let logged = run(trowel()
        .args(["build", "--log-format", "text", "--context"])
        .arg(ctx.path())
        .args(["--destination", &dest("logged")]));
    assert_ok(&logged);
    let counts: Vec<usize> = stderr(&logged)
        .lines()
        .filter_map(|l| l.split("Snapshot: ").nth(1))
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(counts, lengths, "{}", stderr(&logged));
}
