//! Traces of every format version this trowel reads: the recorded traces in testdata/traces/ are
//! version 1 (made by scripts/record-traces.sh before version 2) but for those recorded since
//! (checks.jsonl), and must still read, fold and summarise; a trace of a newer version is refused
//! with a message saying so.

mod common;

use std::collections::BTreeMap;

use common::{repo_root, run, stderr, trowel};
use trowel::trace::summary::summarize;
use trowel_events::state::{BuildState, Outcome, StepState};
use trowel_events::{Event, StepId};

#[test]
fn every_recorded_version_1_trace_reads_folds_and_summarises() {
    let mut read = 0;
    let mut version_1 = 0;
    for entry in std::fs::read_dir(repo_root().join("testdata/traces")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (header, events) = trowel::trace::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            (1..=trowel_events::SCHEMA_VERSION).contains(&header.trowel_trace),
            "{name} is a version {} trace",
            header.trowel_trace
        );
        version_1 += usize::from(header.trowel_trace == 1);
        let state = BuildState::from_events(&events);

        // Every step the trace plans or starts is in the state, with the status it finished with.
        let mut want: BTreeMap<StepId, Option<StepState>> = BTreeMap::new();
        for e in &events {
            match &e.event {
                Event::BuildStarted { stages, .. } => {
                    want.extend(stages.iter().flat_map(|s| &s.steps).map(|p| (p.id, None)));
                }
                Event::StepStarted { id, .. } => {
                    want.entry(*id).or_insert(None);
                }
                Event::StepFinished { id, status, .. } => {
                    want.insert(*id, Some((*status).into()));
                }
                _ => {}
            }
        }
        assert!(!want.is_empty(), "{name} has steps");
        for (id, status) in &want {
            let step = state.step(*id).unwrap_or_else(|| panic!("{name}: step {id} was lost"));
            if let Some(status) = status {
                assert_eq!(step.state, *status, "{name}: step {id}");
            }
        }
        assert_eq!(state.steps().count(), want.len(), "{name}: every step once");

        // The summary lists every step that ran and ends as the build did.
        let summary = summarize(&header, &state);
        for s in state.steps().filter(|s| s.started_ms.is_some()) {
            assert!(summary.contains(&format!("  line {:<4} ", s.line)), "{name}: line {} missing:\n{summary}", s.line);
        }
        let ending = match state.outcome() {
            Outcome::Finished => "\nBuilt in ",
            Outcome::Failed => "\nFAILED: ",
            Outcome::Aborted => "\nABORTED: ",
            Outcome::Unfinished => "\nINTERRUPTED: ",
        };
        assert!(summary.contains(ending), "{name}: {ending:?} missing:\n{summary}");
        read += 1;
    }
    assert!(read >= 9, "only {read} traces in testdata/traces");
    assert!(version_1 >= 9, "only {version_1} version 1 traces in testdata/traces");
}

#[test]
fn a_trace_newer_than_this_trowel_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.jsonl");
    // One version past this trowel's.
    let future = trowel_events::SCHEMA_VERSION + 1;
    std::fs::write(
        &path,
        format!(
            "{{\"trowel_trace\":{future},\"trowel_version\":\"9.0.0\",\"started\":\"2030-01-01T00:00:00.000Z\"}}\n{}\n",
            r#"{"seq":0,"ms":0,"event":"warning","message":"from the future"}"#
        ),
    )
    .unwrap();
    let err = trowel::trace::read(&path).unwrap_err().to_string();
    let want = format!(
        "written in trace format {future}, newer than this trowel reads (1 to {}): replay it with a newer trowel",
        trowel_events::SCHEMA_VERSION
    );
    assert!(err.ends_with(&want) && err.contains("future.jsonl:1:"), "{err}");
    let o = run(trowel().arg("replay").arg(&path).arg("--summary"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
}
