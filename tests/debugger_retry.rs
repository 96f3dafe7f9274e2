//! Fix and retry (issue 15) through real builds: at a failed step's pause a scripted front end
//! fixes the root in a shell and re-runs the step, or edits the instruction, or re-runs it into
//! a second failure and gives up. The images are read back with skopeo and umoci: their history
//! says what was re-run or edited, the re-run's layer holds only what it did (the failed
//! attempt's leftovers are gone), and the cache never keeps a debug session's result under the
//! Dockerfile's key, while an edited step's entry is the edited text's.

mod common;
mod debugger_support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::*;
use debugger_support::dest;
use trowel::debugger::{Breakpoint, Debugger, Frontend, Pause, Resume};
use trowel_engine::engine::controller::{Checkpoint, Decision, ShellChoice};
use trowel_engine::engine::{BuildOptions, CacheOptions, Emitter};
use trowel_events::{Change, ChangeKind, Envelope, Event, EventSink, PushReview, ResumeAction, When};

/// Answers the n-th pause with `script(n, pause)`; keeps shells' changes.
struct Scripted<S> {
    pauses: Arc<Mutex<Vec<(When, usize, u32)>>>,
    script: S,
}

impl<S: FnMut(usize, &Pause<'_>) -> Resume + Send> Frontend for Scripted<S> {
    fn paused(&mut self, p: &Pause<'_>) -> Resume {
        let n = {
            let mut log = self.pauses.lock().unwrap();
            log.push((p.at.when, p.at.line, p.at.attempt));
            log.len() - 1
        };
        (self.script)(n, p)
    }
    fn shell_changes(&mut self, _at: &Checkpoint, _changes: &[Change]) -> ShellChoice {
        ShellChoice::Keep
    }
    fn review_push(&mut self, _review: &PushReview) -> Decision {
        Decision::Continue
    }
    fn gates_push(&self) -> bool {
        false
    }
}

struct Collect(Arc<Mutex<Vec<Event>>>);
impl EventSink for Collect {
    fn event(&mut self, e: &Envelope) {
        self.0.lock().unwrap().push(e.event.clone());
    }
}

struct Run {
    pauses: Vec<(When, usize, u32)>,
    events: Vec<Event>,
    result: Result<String, String>,
}

/// The shared options, with the cache (COPY layers too: a re-run's key is checked in it).
fn options(ctx: &Path, dest: &str) -> BuildOptions {
    let mut o = debugger_support::options(ctx, dest);
    o.cache = Some(CacheOptions { copy_layers: true, ..CacheOptions::default() });
    o
}

fn debug_build<S: FnMut(usize, &Pause<'_>) -> Resume + Send>(opts: &BuildOptions, script: S) -> Run {
    let pauses = Arc::new(Mutex::new(Vec::new()));
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut dbg = Debugger::new(Scripted { pauses: pauses.clone(), script }, vec![Breakpoint::Failure], false);
    let emitter = Emitter::new(vec![Box::new(Collect(events.clone()))]);
    let result = trowel_engine::engine::build(opts, &emitter, &mut dbg)
        .map(|r| r.digest().to_string())
        .map_err(|e| e.to_string());
    drop(dbg);
    let pauses = pauses.lock().unwrap().clone();
    let events = events.lock().unwrap().clone();
    Run { pauses, events, result }
}

/// A context of `dockerfile` alone (the tests write what else they copy).
fn context(dockerfile: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    d
}

/// The image's history `created_by`s, base entries left out.
fn history(reference: &str) -> Vec<String> {
    let config = skopeo_config(reference);
    let h = config["history"].as_array().unwrap();
    h.iter().map(|e| e["created_by"].as_str().unwrap_or_default().to_string()).skip(1).collect()
}

/// Line 2's starts: (attempt number, edited_from, after_shell).
fn starts(events: &[Event], line: usize) -> Vec<(u32, Option<String>, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StepStarted { line: l, attempt, .. } if *l == line => Some(match attempt {
                Some(a) => (a.number, a.edited_from.clone(), a.after_shell),
                None => (1, None, false),
            }),
            _ => None,
        })
        .collect()
}

fn stored_lines(events: &[Event]) -> Vec<usize> {
    let line_of = |id| {
        events.iter().find_map(|e| match e {
            Event::StepStarted { id: i, line, .. } if *i == id => Some(*line),
            _ => None,
        })
    };
    events
        .iter()
        .filter_map(|e| match e {
            Event::CacheStored { id, .. } => line_of(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_shell_fixes_the_root_and_the_failed_run_is_re_run() {
    // The failed attempt leaves /attempt-none (and an empty /out) behind: neither may reach the
    // re-run's layer or the image.
    let df = format!(
        "FROM {}\nRUN touch /attempt-$(cat /needed || echo none) && cat /needed > /out\nRUN echo after > /after\n",
        env().busybox()
    );
    let ctx = context(&df);
    let dest = dest("retry-shell");
    let opts = options(ctx.path(), &dest);
    let run = debug_build(&opts, |n, p| match n {
        0 => {
            assert!(p.at.can_retry(), "the failed RUN's pause offers a re-run");
            Resume::Shell(Some(vec!["/bin/sh".into(), "-c".into(), "echo fixed > /needed".into()]))
        }
        1 => Resume::Retry(None),
        _ => panic!("no pause after the re-run succeeds: {n}"),
    });
    let digest = run.result.unwrap();
    assert_eq!(run.pauses, vec![(When::AfterStep, 2, 1), (When::AfterStep, 2, 1)]);
    assert_eq!(starts(&run.events, 2), vec![(1, None, false), (2, None, true)]);
    assert!(
        run.events.iter().any(|e| matches!(e, Event::Resumed { action: ResumeAction::Retry { edited: None }, .. }))
    );
    // The re-run's snapshot holds what it made, not the failed attempt's /half.
    let snapshots: Vec<Vec<String>> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Snapshot { changes, .. } => {
                Some(changes.iter().filter(|c| c.kind != ChangeKind::Deleted).map(|c| c.path.clone()).collect())
            }
            _ => None,
        })
        .collect();
    assert!(snapshots.iter().any(|s| s == &vec!["/attempt-fixed".to_string(), "/out".to_string()]), "{snapshots:?}");
    assert!(!snapshots.iter().flatten().any(|p| p == "/attempt-none"), "{snapshots:?}");
    assert!(
        run.events.iter().any(|e| matches!(e, Event::Warning { message } if message.contains("thrown away"))),
        "the leftovers of the failed attempt are said to be dropped"
    );
    // Neither the re-run after a kept shell nor anything after it is cached under the
    // Dockerfile's keys.
    assert_eq!(stored_lines(&run.events), Vec::<usize>::new());

    let h = history(&dest);
    assert_eq!(h.len(), 3, "{h:?}");
    assert_eq!(h[0], "trowel debug shell at line 2 (RUN after)");
    assert_eq!(
        h[1],
        "RUN touch /attempt-$(cat /needed || echo none) && cat /needed > /out # re-run in trowel debug at line 2 \
         after changes made in a debugger shell (attempt 2)"
    );
    assert_eq!(skopeo_inspect(&dest)["Digest"].as_str(), Some(digest.as_str()));
    let image = pull_and_unpack(&dest);
    let root = image.rootfs();
    assert_eq!(std::fs::read_to_string(root.join("out")).unwrap(), "fixed\n");
    assert_eq!(std::fs::read_to_string(root.join("after")).unwrap(), "after\n");
    assert!(root.join("attempt-fixed").exists() && !root.join("attempt-none").exists());
}

#[test]
fn an_edited_run_is_keyed_by_its_edited_text() {
    let df = format!("FROM {}\nRUN echo one > /one && \\\n    exit 3\n", env().busybox());
    let ctx = context(&df);
    let dest = dest("retry-edit");
    let opts = options(ctx.path(), &dest);
    let run = debug_build(&opts, |n, p| match n {
        0 => {
            assert_eq!(trowel_engine::engine::controller::logical_line(&p.at.source), "RUN echo one > /one && exit 3");
            Resume::Retry(Some("RUN echo edited > /one".into()))
        }
        _ => panic!("no pause after the edited step succeeds"),
    });
    run.result.unwrap();
    assert_eq!(
        starts(&run.events, 2),
        vec![(1, None, false), (2, Some("RUN echo one > /one && exit 3".into()), false)]
    );
    // The edited step's entry is what a Dockerfile with that text makes.
    assert_eq!(stored_lines(&run.events), vec![2]);
    let h = history(&dest);
    assert_eq!(
        h,
        vec!["RUN echo edited > /one # edited in trowel debug at line 2 (was: RUN echo one > /one && exit 3)"]
    );

    // A Dockerfile that says what was typed is served from that entry.
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}\nRUN echo edited > /one\n", env().busybox()))
        .unwrap();
    let again = debug_build(&options(ctx.path(), &dest), |_, _| panic!("nothing fails"));
    again.result.unwrap();
    let hit = again
        .events
        .iter()
        .any(|e| matches!(e, Event::CacheLookup { result: trowel_events::CacheResult::Hit { .. }, .. }));
    assert!(hit, "the edited text's entry serves the Dockerfile that says it");
}

#[test]
fn a_re_run_that_fails_again_pauses_again_and_giving_up_fails_the_build() {
    let df = format!("FROM {}\nRUN echo trying && exit 3\n", env().busybox());
    let ctx = context(&df);
    let dest = dest("retry-again");
    let opts = options(ctx.path(), &dest);
    let run = debug_build(&opts, |n, _| match n {
        0 => Resume::Retry(None),
        _ => Resume::Abort("gave up".into()),
    });
    // Giving up fails the build as it would have failed without the debugger: with the step's
    // error.
    let err = run.result.unwrap_err();
    assert!(err.contains("Dockerfile:2: RUN echo trying && exit 3: exit code 3"), "{err}");
    assert_eq!(run.pauses, vec![(When::AfterStep, 2, 1), (When::AfterStep, 2, 2)]);
    let finished: Vec<_> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StepFinished { id, status, exit_code, .. } if id.step == 1 && id.stage == 0 => {
                Some((*status, *exit_code))
            }
            _ => None,
        })
        .collect();
    assert_eq!(finished.len(), 2, "each attempt ends: {finished:?}");
    assert!(finished.iter().all(|(s, c)| *s == trowel_events::StepStatus::Failed && *c == Some(3)));
    // Nothing was pushed.
    let o = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{dest}")])
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn a_re_run_is_refused_where_it_cannot_be_and_the_pause_goes_on() {
    let df = format!("FROM {}\nRUN exit 4\n", env().busybox());
    let ctx = context(&df);
    let opts = options(ctx.path(), &dest("retry-refused"));
    let run = debug_build(&opts, |n, _| match n {
        // Not a RUN, COPY or ADD: refused, and the same pause asks again.
        0 => Resume::Retry(Some("ENV A=1".into())),
        // Not an instruction that parses.
        1 => Resume::Retry(Some("COPY onlyone".into())),
        // One whose variables do not expand here.
        2 => Resume::Retry(Some("COPY ${UNSET:?unset} /x".into())),
        _ => Resume::Abort("done".into()),
    });
    run.result.unwrap_err();
    let warnings: Vec<&String> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Warning { message } if message.contains("cannot re-run") => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings[0].contains("only RUN, COPY and ADD"), "{warnings:?}");
    assert!(warnings[1].contains("Dockerfile:2: COPY onlyone: COPY requires at least two arguments"), "{warnings:?}");
    assert!(warnings[2].contains("UNSET: unset"), "{warnings:?}");
    assert_eq!(starts(&run.events, 2).len(), 1, "no attempt ran");
}

#[test]
fn a_copy_re_run_reads_the_fixed_context_and_is_keyed_by_it() {
    // The context lacks the file at first; the person adds it while the build is paused.
    let df = format!("FROM {}\nCOPY conf/app.ini /etc/app.ini\nRUN cat /etc/app.ini > /seen\n", env().busybox());
    let ctx = context(&df);
    let dest = dest("retry-copy");
    let opts = options(ctx.path(), &dest);
    let dir = ctx.path().to_path_buf();
    let run = debug_build(&opts, move |n, p| match n {
        0 => {
            assert_eq!((p.at.keyword.as_str(), p.at.line, p.at.can_retry()), ("COPY", 2, true));
            std::fs::create_dir_all(dir.join("conf")).unwrap();
            std::fs::write(dir.join("conf/app.ini"), "fixed = yes\n").unwrap();
            Resume::Retry(None)
        }
        _ => panic!("the re-run works"),
    });
    run.result.unwrap();
    assert_eq!(starts(&run.events, 2), vec![(1, None, false), (2, None, false)]);
    // No shell touched the root: the re-run is what the Dockerfile makes from this context,
    // so it is cached (under the key of the file's new content), and so is the RUN after it.
    assert_eq!(stored_lines(&run.events), vec![2, 3]);
    let h = history(&dest);
    assert_eq!(h[0], "COPY conf/app.ini /etc/app.ini # re-run in trowel debug at line 2 (attempt 2)");
    let image = pull_and_unpack(&dest);
    assert_eq!(std::fs::read_to_string(image.rootfs().join("seen")).unwrap(), "fixed = yes\n");

    // The same Dockerfile and context, built again without the debugger: both hit.
    let again = debug_build(&options(ctx.path(), &dest), |_, _| panic!("nothing fails"));
    again.result.unwrap();
    let hits = again
        .events
        .iter()
        .filter(|e| matches!(e, Event::CacheLookup { result: trowel_events::CacheResult::Hit { .. }, .. }))
        .count();
    assert_eq!(hits, 2);
}
