//! The build controller driven through real builds: breakpoints of every kind stop where they
//! should, stepping visits every step, shell sessions kept become layers and discarded ones
//! leave the root byte-identical, and aborting at the push gate pushes nothing. What the views
//! are shown (changes, listings, the Files pane) is `debugger_views.rs`.

mod common;
mod debugger_support;

use std::sync::{Arc, Mutex};

use common::*;
use debugger_support::*;
use trowel::debugger::{Breakpoint, Debugger, Frontend, Pause, Resume};
use trowel_engine::engine::controller::{Checkpoint, Decision, ShellChoice};
use trowel_engine::engine::{BuildOptions, CacheOptions, Emitter};
use trowel_events::Change;
use trowel_events::{Envelope, Event, EventSink};
use trowel_events::{PushReview, When};

/// What the scripted front end saw and did.
#[derive(Default)]
struct Log {
    pauses: Vec<(When, usize, String, Vec<String>)>,
    shells: Vec<Vec<String>>,
    review: Option<PushReview>,
}

/// A front end that answers pauses from a script: for the n-th pause, `script(n, pause)`.
struct Scripted<S> {
    log: Arc<Mutex<Log>>,
    script: S,
    shell_choice: ShellChoice,
    push: Option<Decision>,
}

impl<S: FnMut(usize, &Pause<'_>) -> Resume + Send> Frontend for Scripted<S> {
    fn paused(&mut self, p: &Pause<'_>) -> Resume {
        let n = {
            let mut log = self.log.lock().unwrap();
            log.pauses.push((p.at.when, p.at.line, p.at.keyword.clone(), p.reasons.clone()));
            log.pauses.len() - 1
        };
        let r = (self.script)(n, p);
        if let Resume::Shell(Some(argv)) = &r {
            self.log.lock().unwrap().shells.push(argv.clone());
        }
        r
    }
    fn shell_changes(&mut self, _at: &Checkpoint, _changes: &[Change]) -> ShellChoice {
        self.shell_choice
    }
    fn review_push(&mut self, review: &PushReview) -> Decision {
        self.log.lock().unwrap().review = Some(review.clone());
        self.push.clone().unwrap_or(Decision::Continue)
    }
    fn gates_push(&self) -> bool {
        self.push.is_some()
    }
}

struct Collect(Arc<Mutex<Vec<Event>>>);
impl EventSink for Collect {
    fn event(&mut self, e: &Envelope) {
        self.0.lock().unwrap().push(e.event.clone());
    }
}

struct Run {
    log: Log,
    events: Vec<Event>,
    result: Result<String, String>,
}

fn debug_build<S: FnMut(usize, &Pause<'_>) -> Resume + Send>(
    opts: &BuildOptions,
    breakpoints: Vec<Breakpoint>,
    step_first: bool,
    shell_choice: ShellChoice,
    push: Option<Decision>,
    script: S,
) -> Run {
    let log = Arc::new(Mutex::new(Log::default()));
    let events = Arc::new(Mutex::new(Vec::new()));
    let fe = Scripted { log: log.clone(), script, shell_choice, push };
    let mut dbg = Debugger::new(fe, breakpoints, step_first);
    let emitter = Emitter::new(vec![Box::new(Collect(events.clone()))]);
    let result = trowel_engine::engine::build(opts, &emitter, &mut dbg)
        .map(|r| r.digest().to_string())
        .map_err(|e| e.to_string());
    drop(dbg);
    let log = Arc::try_unwrap(log).ok().unwrap().into_inner().unwrap();
    let events = events.lock().unwrap().clone();
    Run { log, events, result }
}

fn dockerfile() -> String {
    format!(
        "FROM {} AS base\nRUN echo one > /one\nCOPY f.txt /f.txt\nFROM base AS final\nRUN mkdir -p /etc/app && echo conf > /etc/app/conf\nRUN echo big > /big\n",
        env().busybox()
    )
}

#[test]
fn stepping_visits_every_step_before_and_after() {
    let ctx = context(&dockerfile());
    let opts = options(ctx.path(), &dest("step"));
    let r = debug_build(&opts, vec![], true, ShellChoice::Discard, None, |_, _| Resume::Step);
    r.result.unwrap();
    let befores: Vec<(usize, String)> =
        r.log.pauses.iter().filter(|p| p.0 == When::BeforeStep).map(|p| (p.1, p.2.clone())).collect();
    assert_eq!(
        befores,
        vec![
            (1, "FROM".into()),
            (2, "RUN".into()),
            (3, "COPY".into()),
            (4, "FROM".into()),
            (5, "RUN".into()),
            (6, "RUN".into())
        ]
    );
    assert!(r.log.pauses.iter().all(|p| p.3 == vec!["step".to_string()]));
}

#[test]
fn line_and_stage_breakpoints_stop_before_their_step() {
    let ctx = context(&dockerfile());
    let opts = options(ctx.path(), &dest("lines"));
    let r = debug_build(
        &opts,
        vec![Breakpoint::Line(3), Breakpoint::Stage("final".into())],
        false,
        ShellChoice::Discard,
        None,
        |_, _| Resume::Continue,
    );
    r.result.unwrap();
    let got: Vec<(When, usize, Vec<String>)> = r.log.pauses.iter().map(|p| (p.0, p.1, p.3.clone())).collect();
    assert_eq!(
        got,
        vec![
            (When::BeforeStep, 3, vec!["breakpoint at line 3".to_string()]),
            (When::BeforeStep, 4, vec!["stage final starts".to_string()]),
        ]
    );
}

/// The trace records the breakpoints as set (not only those that fired): the list the build
/// started with, and the whole list again once the person changed it at a pause, before the next
/// boundary could fire one; a replay's fold keeps every one ever set and the last list.
#[test]
fn breakpoints_set_and_changed_during_the_build_are_recorded() {
    let ctx = context(&dockerfile());
    let opts = options(ctx.path(), &dest("bplist"));
    let shared: Arc<Mutex<Option<trowel::debugger::Breakpoints>>> = Arc::default();
    let at_pause = shared.clone();
    let log = Arc::new(Mutex::new(Log::default()));
    let fe = Scripted {
        log: log.clone(),
        // At the first pause (before line 3), as the Breaks pane would: remove line 5's, add
        // a path breakpoint.
        script: move |n: usize, _: &Pause<'_>| {
            if n == 0 {
                let b = at_pause.lock().unwrap().clone().unwrap();
                let mut b = b.lock().unwrap();
                b.retain(|x| !matches!(x, Breakpoint::Line(5)));
                b.push(Breakpoint::parse("path:/big").unwrap());
            }
            Resume::Continue
        },
        shell_choice: ShellChoice::Discard,
        push: None,
    };
    let start = vec![Breakpoint::Line(3), Breakpoint::Line(5), Breakpoint::parse("size:10MB").unwrap()];
    let mut dbg = Debugger::new(fe, start, false);
    *shared.lock().unwrap() = Some(dbg.breakpoints());
    let events = Arc::new(Mutex::new(Vec::new()));
    let emitter = Emitter::new(vec![Box::new(Collect(events.clone()))]);
    trowel_engine::engine::build(&opts, &emitter, &mut dbg).unwrap();
    let events = events.lock().unwrap().clone();
    let lists: Vec<(usize, Vec<String>)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::Breakpoints { set } => Some((i, set.clone())),
            _ => None,
        })
        .collect();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        lists.iter().map(|l| l.1.clone()).collect::<Vec<_>>(),
        vec![strings(&["3", "5", "size:10MB"]), strings(&["3", "size:10MB", "path:/big"])],
        "the first list, then the changed one (once: nothing changed after)"
    );
    // The first before any step starts; the change before the pause its new breakpoint caused.
    let first_step = events.iter().position(|e| matches!(e, Event::StepStarted { .. })).unwrap();
    assert!(lists[0].0 < first_step);
    let pauses: Vec<(usize, usize)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::Paused { line, .. } => Some((i, *line)),
            _ => None,
        })
        .collect();
    assert_eq!(pauses.iter().map(|p| p.1).collect::<Vec<_>>(), vec![3, 6], "line 5's was removed; /big fired");
    assert!(pauses[0].0 < lists[1].0 && lists[1].0 < pauses[1].0);
    // What a replay of the trace folds to.
    let envs: Vec<Envelope> =
        events.into_iter().enumerate().map(|(i, event)| Envelope { seq: i as u64, ms: i as u64, event }).collect();
    let state = trowel_events::BuildState::from_events(&envs);
    assert_eq!(state.breakpoints, Some(strings(&["3", "size:10MB", "path:/big"])));
    assert_eq!(state.breakpoints_ever, strings(&["3", "5", "size:10MB", "path:/big"]));
}

#[test]
fn run_to_line_then_continue() {
    let ctx = context(&dockerfile());
    let opts = options(ctx.path(), &dest("runto"));
    let r = debug_build(&opts, vec![], true, ShellChoice::Discard, None, |n, _| {
        if n == 0 { Resume::RunToLine(5) } else { Resume::Continue }
    });
    r.result.unwrap();
    let lines: Vec<usize> = r.log.pauses.iter().map(|p| p.1).collect();
    assert_eq!(lines, vec![1, 5]);
    assert_eq!(r.log.pauses[1].3, vec!["reached line 5".to_string()]);
}

#[test]
fn failure_size_and_path_breakpoints_stop_after_their_step() {
    let df = format!(
        "FROM {}\nRUN echo small > /small\nRUN head -c 300000 /dev/urandom > /big.bin\nRUN mkdir -p /etc/app && echo x > /etc/app/conf\nRUN echo before-failure && exit 4\n",
        env().busybox()
    );
    let ctx = context(&df);
    let opts = options(ctx.path(), &dest("after"));
    let r = debug_build(
        &opts,
        vec![
            Breakpoint::Failure,
            Breakpoint::parse("size:100kB").unwrap(),
            Breakpoint::parse("path:/etc/app/*").unwrap(),
        ],
        false,
        ShellChoice::Discard,
        None,
        |_, _| Resume::Continue,
    );
    let err = r.result.unwrap_err();
    assert!(err.contains("exit code 4"), "{err}");
    let got: Vec<(When, usize)> = r.log.pauses.iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(got, vec![(When::AfterStep, 3), (When::AfterStep, 4), (When::AfterStep, 5)]);
    assert!(r.log.pauses[0].3[0].starts_with("layer of ") && r.log.pauses[0].3[0].ends_with("is larger than 100kB"));
    assert_eq!(r.log.pauses[1].3, vec!["/etc/app/conf changed (matches /etc/app/*)".to_string()]);
    assert!(r.log.pauses[2].3[0].starts_with("step failed: ") && r.log.pauses[2].3[0].contains("exit code 4"));
    // Nothing was pushed.
    let probe = run(std::process::Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}", opts.output.destinations[0]),
    ]));
    assert!(!probe.status.success());
}

#[test]
fn cache_miss_and_path_breakpoints_also_work_on_cached_steps() {
    let ctx = context(&dockerfile());
    let mut opts = options(ctx.path(), &dest("cachebp"));
    opts.cache = Some(CacheOptions { copy_layers: true, ..CacheOptions::default() });
    let bps = || vec![Breakpoint::CacheMiss, Breakpoint::parse("path:/etc/app/**").unwrap()];
    let first = debug_build(&opts, bps(), false, ShellChoice::Discard, None, |_, _| Resume::Continue);
    first.result.unwrap();
    let miss_lines: Vec<usize> =
        first.log.pauses.iter().filter(|p| p.3.contains(&"cache miss".to_string())).map(|p| p.1).collect();
    assert_eq!(miss_lines, vec![2, 3, 5, 6]);
    // Second build: everything hits; the path breakpoint still stops at the cached RUN of line 5.
    let second = debug_build(&opts, bps(), false, ShellChoice::Discard, None, |_, _| Resume::Continue);
    second.result.unwrap();
    let got: Vec<(usize, Vec<String>)> = second.log.pauses.iter().map(|p| (p.1, p.3.clone())).collect();
    assert_eq!(got, vec![(5, vec!["/etc/app/conf changed (matches /etc/app/**)".to_string()])]);
}

/// Runs `sh -c script` at a pause.
fn sh(script: &str) -> Resume {
    Resume::Shell(Some(vec!["/bin/sh".into(), "-c".into(), script.into()]))
}

const LISTING: &str = "find / -xdev ! -path '/proc*' ! -path '/dev*' ! -path '/sys*' | sort | while read -r p; do stat -c '%n %f %u %g %s %Y %h' \"$p\"; [ -f \"$p\" ] && md5sum \"$p\"; done";

fn outputs_at(events: &[Event], stage: usize, step: usize) -> Vec<String> {
    // Output events of shell sessions carry the step id of their checkpoint.
    let mut out = Vec::new();
    let mut cur = String::new();
    for e in events {
        match e {
            Event::ShellStarted { id, .. } if (id.stage, id.step) == (stage, step) => cur.clear(),
            Event::Output { id, data, .. } if (id.stage, id.step) == (stage, step) => cur.push_str(data),
            Event::ShellFinished { id, .. } if (id.stage, id.step) == (stage, step) => {
                out.push(std::mem::take(&mut cur))
            }
            _ => {}
        }
    }
    out
}

#[test]
fn discarded_shell_changes_leave_the_root_byte_identical() {
    let ctx = context(&dockerfile());
    let opts = options(ctx.path(), &dest("discard"));
    let trees: Arc<Mutex<Vec<Tree>>> = Arc::default();
    let t2 = trees.clone();
    let r = debug_build(&opts, vec![Breakpoint::Line(6)], false, ShellChoice::Discard, None, move |n, p| {
        // The build root as the host sees it, read by the test itself.
        let root = p.at.root_dir.clone().expect("a root at line 6");
        match n {
            0 => {
                t2.lock().unwrap().push(Tree::read(&root));
                sh("rm /etc/passwd; echo new > /new-file; chmod 700 /bin; echo changed > /one; rm -rf /home")
            }
            1 => {
                t2.lock().unwrap().push(Tree::read(&root));
                sh(LISTING)
            }
            _ => Resume::Continue,
        }
    });
    r.result.unwrap();
    let trees = trees.lock().unwrap();
    assert_eq!(trees.len(), 2);
    let diff: Vec<String> = trees[0]
        .0
        .iter()
        .filter(|(p, f)| trees[1].0.get(*p) != Some(f))
        .map(|(p, _)| p.clone())
        .chain(trees[1].0.keys().filter(|p| !trees[0].0.contains_key(*p)).cloned())
        .collect();
    assert!(diff.is_empty(), "the root changed after a discarded session: {diff:?}");
    assert!(trees[0].0.len() > 250, "the tree was read");
    // Inside the session, the changes were real (the listing after it ran on the restored root).
    let outs = outputs_at(&r.events, 1, 2);
    assert!(outs[1].contains("/etc/passwd") && !outs[1].contains("/new-file"));
    let changed = r.events.iter().find_map(|e| match e {
        Event::ShellFinished { changes, .. } if !changes.is_empty() => Some(changes.clone()),
        _ => None,
    });
    let paths: Vec<String> = changed.unwrap().iter().map(|c| c.path.clone()).collect();
    for p in ["/bin", "/etc/passwd", "/home", "/new-file", "/one"] {
        assert!(paths.contains(&p.to_string()), "{p} in {paths:?}");
    }
    let tree = pull_and_unpack(&opts.output.destinations[0]).tree();
    assert!(tree.has("/etc/passwd") && tree.has("/home/app") && !tree.has("/new-file"));
    assert_eq!(tree.get("/bin").mode, 0o755);
}

#[test]
fn kept_shell_changes_become_a_layer() {
    let ctx = context(&dockerfile());
    let opts = options(ctx.path(), &dest("keep"));
    let r = debug_build(&opts, vec![Breakpoint::Line(6)], false, ShellChoice::Keep, None, |n, _| match n {
        0 => sh("echo manual > /manual.txt && rm /one"),
        _ => Resume::Continue,
    });
    r.result.unwrap();
    let history = history_of(&opts.output.destinations[0]);
    assert!(history.iter().any(|h| h == "trowel debug shell at line 6 (RUN before)"), "{history:?}");
    let u = pull_and_unpack(&opts.output.destinations[0]);
    assert_eq!(Tree::content(&u.rootfs(), "/manual.txt"), "manual\n");
    assert!(!u.tree().has("/one"));
    assert!(u.tree().has("/big"), "the step after the pause still ran");
}

#[test]
fn abort_at_the_push_gate_pushes_nothing() {
    let ctx = context(&dockerfile());
    let opts = options(ctx.path(), &dest("gate"));
    let r =
        debug_build(&opts, vec![], false, ShellChoice::Discard, Some(Decision::Abort("not today".into())), |_, _| {
            Resume::Continue
        });
    assert_eq!(r.result.unwrap_err(), "build aborted: not today");
    let review = r.log.review.expect("the push was reviewed");
    assert_eq!(review.destinations, opts.output.destinations);
    assert_eq!(review.layers.len(), 5);
    // The destination is a fresh repository on the same registry: nothing is there yet.
    assert!(review.layers.iter().all(|l| l.present == vec![Some(false)]), "{:?}", review.layers);
    let probe = run(std::process::Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}", opts.output.destinations[0]),
    ]));
    assert!(!probe.status.success(), "an aborted push pushes nothing");
    // Confirming pushes.
    let r = debug_build(&opts, vec![], false, ShellChoice::Discard, Some(Decision::Continue), |_, _| Resume::Continue);
    let digest = r.result.unwrap();
    assert_eq!(skopeo_inspect(&opts.output.destinations[0])["Digest"].as_str().unwrap(), digest);
}

#[test]
fn a_shell_at_a_runs_pause_has_the_runs_mounts_in_place() {
    let df = format!(
        "FROM {b} AS build\nRUN mkdir /out && echo built > /out/app\nFROM {b}\n\
         RUN --mount=type=bind,from=build,source=/out,target=/in --mount=type=cache,target=/c \
         --mount=type=secret,id=tok,env=TOK --mount=type=secret,id=tok --network=none \
         cat /c/from-shell > /seen-by-run\n",
        b = env().busybox()
    );
    let ctx = context(&df);
    let caches = tempfile::tempdir().unwrap();
    let mut opts = options(ctx.path(), &dest("shell-mounts"));
    opts.run.mounts.cache_dir = Some(caches.path().to_path_buf());
    opts.run.mounts.secrets = vec![
        trowel_engine::engine::mounts::options::parse_secret("id=tok,env=SHELL_TEST_TOKEN", &|_| {
            Some("shell-secret-value".into())
        })
        .unwrap(),
    ];
    let r = debug_build(&opts, vec![Breakpoint::Line(4)], false, ShellChoice::Discard, None, |n, _| match n {
        0 => sh(
            "cat /in/app; cat /run/secrets/tok; echo; echo ${#TOK}; ip -o link | wc -l; echo from-shell > /c/from-shell",
        ),
        _ => Resume::Continue,
    });
    r.result.unwrap();
    let outs = outputs_at(&r.events, 1, 1);
    let warnings: Vec<_> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Warning { message } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        outs,
        ["built\n***\n18\n1\n"],
        "the bind, the secret (masked), its variable, the network; warnings: {warnings:?}"
    );
    // The shell changed nothing of the root: the mounts were not its changes.
    let changes: Vec<_> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ShellFinished { changes, .. } => Some(changes.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(changes, [vec![]], "{changes:?}");
    let u = pull_and_unpack(&opts.output.destinations[0]);
    assert_eq!(Tree::content(&u.rootfs(), "/seen-by-run"), "from-shell\n", "the shell wrote into the RUN's cache");
    assert!(!u.tree().has("/in") && !u.tree().has("/c") && !u.tree().has("/run"));
}

/// Issue 15: breakpoints that can never fire, and a Dockerfile that does not parse, are refused
/// before the build (and the debugger's UI) starts, with the file and line.
#[test]
fn impossible_breakpoints_and_bad_dockerfiles_are_refused_before_the_build() {
    let ctx = context(&format!(
        "FROM {} AS base\nRUN echo one\n\nFROM base AS final\nRUN echo two \\\n  three\n",
        env().busybox()
    ));
    let refused = |args: &[&str]| {
        let o = run(trowel().args(args).arg("--no-push").arg("--context").arg(ctx.path()));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        stderr(&o)
    };
    for cmd in ["build", "debug"] {
        let e = refused(&[cmd, "--break", "99"]);
        assert!(e.contains("--break 99:") && e.contains("has 6 lines"), "{e}");
        let e = refused(&[cmd, "--break", "3"]);
        assert!(e.contains("line 3") && e.contains("holds no instruction"), "{e}");
        let e = refused(&[cmd, "--break", "stage:nope"]);
        assert!(e.contains("has no stage nope (its stages: base, final)"), "{e}");
        let e = refused(&[cmd, "--break", "path:"]);
        assert!(e.contains("give a glob"), "{e}");
        let e = refused(&[cmd, "--break", "2", "--target", "base", "--break", "5"]);
        assert!(e.contains("line 5 is in stage final, which is not built (the target is base)"), "{e}");
        // Issue 16: a platform the build is not for, a mistyped one, and a qualified
        // breakpoint that could not fire on any platform.
        let e = refused(&[cmd, "--custom-platform", "linux/amd64", "--break", "linux/arm64@2"]);
        assert!(
            e.contains("--break linux/arm64@2: linux/arm64 is not a platform of this build (it builds linux/amd64)"),
            "{e}"
        );
        let e = refused(&[cmd, "--break", "amd46@2"]);
        assert!(e.contains("did you mean amd64"), "{e}");
        let e = refused(&[cmd, "--custom-platform", "linux/amd64", "--break", "linux/amd64@99"]);
        assert!(e.contains("--break linux/amd64@99: ") && e.contains("has 6 lines"), "{e}");
    }
    // A Dockerfile that does not parse: the error with file and line, before any UI (here
    // without a terminal, which the UI would need first).
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}\nRUN\nFROBNICATE x\n", env().busybox())).unwrap();
    let o = run(trowel().args(["debug", "--no-push", "--context"]).arg(ctx.path()).stdin(std::process::Stdio::null()));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("Dockerfile:2") || e.contains("Dockerfile:3"), "{e}");
    assert!(!e.contains("needs a terminal"), "the error comes before the UI: {e}");
}
