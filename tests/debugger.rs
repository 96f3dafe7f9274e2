//! The build controller driven through real builds: breakpoints of every kind stop where they
//! should, stepping visits every step, shell sessions kept become layers and discarded ones
//! leave the root byte-identical, and aborting at the push gate pushes nothing.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::*;
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

fn options(ctx: &Path, dest: &str) -> BuildOptions {
    let mut o = BuildOptions::new(ctx.join("Dockerfile"), ctx);
    o.output.destinations = vec![dest.to_string()];
    o.run.helper_exe = env!("CARGO_BIN_EXE_trowel").into();
    o.registry.user_agent = "trowel-tests".into();
    o
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

fn context(dockerfile: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(d.path().join("f.txt"), "f\n").unwrap();
    d
}

fn dockerfile() -> String {
    format!(
        "FROM {} AS base\nRUN echo one > /one\nCOPY f.txt /f.txt\nFROM base AS final\nRUN mkdir -p /etc/app && echo conf > /etc/app/conf\nRUN echo big > /big\n",
        env().busybox()
    )
}

fn dest(name: &str) -> String {
    format!("{}/{}:1", env().registry, unique_repo(name))
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
        let e = refused(&[cmd, "--break", "linux@2"]);
        assert!(e.contains("expected os/arch[/variant]"), "{e}");
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
    // waste once, at line 5, when its last name goes.
    for (what, state) in [("ran", &ran), ("cached", &cached)] {
        let report = trowel::tui::model::waste::analyze(state);
        let stacked: u64 = trowel::tui::model::merged::at(state, None).layers.iter().map(|l| l.wasted).sum();
        assert_eq!(report.total, stacked, "{what}: {:#?}", report.items);
        let f: Vec<(usize, u64)> =
            report.items.iter().filter(|i| i.path.starts_with("/d/")).map(|i| (i.removed_line, i.bytes)).collect();
        assert!(f.contains(&(5, 4)) && !f.contains(&(3, 4)), "{what}: {:#?}", report.items);
    }
}
