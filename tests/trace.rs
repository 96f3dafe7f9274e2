//! Recorded traces: the format (golden files of normalised traces of testdata builds), traces of
//! killed builds, `replay --summary`, and secrets that must never reach a trace or a log.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn corpus(name: &str) -> std::path::PathBuf {
    repo_root().join("testdata/corpus").join(name)
}

/// Fields that change from run to run (times, ports, temp paths) are normalised; everything
/// else — steps, expanded instructions, changed paths, digests of reproducible layers, cache
/// keys — must stay exactly as recorded.
fn normalise(v: &mut Value, registry: &str) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                match k.as_str() {
                    "ms" | "duration_ms" | "started" | "mtime" | "created" => *x = Value::from("<t>"),
                    // Renumbered because progress events are left out.
                    "seq" => *x = Value::from("<n>"),
                    "context" | "dockerfile_path" => *x = Value::from("<path>"),
                    _ => normalise(x, registry),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| normalise(x, registry)),
        Value::String(s) => {
            *s = s.replace(registry, "{registry}");
            // Error messages name the Dockerfile by its path in this checkout.
            *s = s.replace(&format!("{}/", repo_root().display()), "<repo>/");
            // The engine's version appears in the header and BuildStarted.
            *s = s.replace(env!("CARGO_PKG_VERSION"), "<version>");
        }
        _ => {}
    }
}

fn traced_build(ctx: &Path, dest: &str, extra: &[&str]) -> (std::process::Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let o = run(trowel()
        .args(["build", "--reproducible", "--context"])
        .arg(ctx)
        .args(["--destination", dest, "--build-arg", &format!("REGISTRY={}", env().registry), "--trace"])
        .arg(&trace)
        .args(extra));
    (o, std::fs::read_to_string(&trace).unwrap())
}

/// The contents a trace recorded of `path` at step `step` of the first stage.
fn content_at(events: &[Value], step: u64, path: &str) -> Option<Value> {
    events
        .iter()
        .filter(|e| e["event"] == "file_contents" && e["id"]["step"] == step)
        .flat_map(|e| e["files"].as_array().unwrap().clone())
        .find(|f| f["path"] == path)
}

fn normalised(trace: &str) -> String {
    trace
        .lines()
        // Progress events depend on how the network delivered the bytes.
        .filter(|l| !l.contains(r#""event":"pull_progress""#) && !l.contains(r#""event":"push_progress""#))
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            normalise(&mut v, &env().registry);
            serde_json::to_string(&v).unwrap()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Golden traces are recorded with `--no-push`: pushes run blobs in parallel, so their events'
/// order varies (push events are checked in the tests that push).
#[test]
fn golden_trace_of_a_multistage_build() {
    let dest = format!("{}/golden/multistage:1", env().registry);
    let (o, trace) = traced_build(&corpus("multistage"), &dest, &["--no-push"]);
    assert_ok(&o);
    insta::assert_snapshot!("multistage_trace", normalised(&trace));
}

#[test]
fn golden_trace_of_a_failed_build() {
    let dest = format!("{}/golden/failed:1", env().registry);
    let (o, trace) = traced_build(&corpus("fail-run-exit"), &dest, &["--no-push"]);
    assert_eq!(o.status.code(), Some(3));
    insta::assert_snapshot!("failed_trace", normalised(&trace));
}

/// The trace records the layer cache the build set up, not the flags alone: `--cache` with
/// `--single-snapshot` has none (the debugger's Cache pane says why a step has no lookup from
/// this, where it could only guess from the lookups it saw).
#[test]
fn the_trace_records_the_build_s_layer_cache() {
    let registry = &env().registry;
    let layer_cache = |extra: &[&str]| {
        let dest = format!("{registry}/trace/layer-cache:1");
        let (o, trace) = traced_build(&corpus("fail-run-exit"), &dest, &[&["--no-push"], extra].concat());
        assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
        let first: Value = trace
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .find(|v: &Value| v["event"] == "build_started")
            .unwrap();
        first["layer_cache"].clone()
    };
    let repo = format!("--cache-repo={registry}/trace/layer-cache-cache");
    assert_eq!(layer_cache(&[]), serde_json::json!({"state": "off"}));
    assert_eq!(
        layer_cache(&["--cache=true", &repo, "--cache-run-layers=false"]),
        serde_json::json!({"state": "on", "run_layers": false, "copy_layers": false})
    );
    assert_eq!(
        layer_cache(&["--cache=true", &repo, "--cache-copy-layers=true"]),
        serde_json::json!({"state": "on", "run_layers": true, "copy_layers": true})
    );
    assert_eq!(layer_cache(&["--cache=true", &repo, "--single-snapshot"]), serde_json::json!({"state": "off"}));
}

#[test]
fn trace_records_changes_contents_and_the_image() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nRUN sed -i 's/busybox-test/renamed/' /etc/hostname && echo new > /new.txt && rm /etc/group\n",
            env().busybox()
        ),
    )
    .unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("contents"));
    let (o, trace) = traced_build(ctx.path(), &dest, &[]);
    assert_ok(&o);
    let events: Vec<Value> = trace.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
    let snap = events.iter().find(|e| e["event"] == "snapshot" && e["id"]["step"] == 1).unwrap();
    let kinds: Vec<(String, String)> = snap["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap().to_string(), c["kind"].as_str().unwrap().to_string()))
        .collect();
    for want in [("/etc/group", "deleted"), ("/etc/hostname", "modified"), ("/new.txt", "added")] {
        assert!(kinds.contains(&(want.0.to_string(), want.1.to_string())), "{want:?} in {kinds:?}");
    }
    let contents = events.iter().find(|e| e["event"] == "file_contents").unwrap();
    let file = |p: &str| contents["files"].as_array().unwrap().iter().find(|f| f["path"] == p).cloned().unwrap();
    assert_eq!(file("/etc/hostname")["before"], "busybox-test\n");
    assert_eq!(file("/etc/hostname")["after"], "renamed\n");
    assert_eq!(file("/new.txt")["after"], "new\n");
    assert!(file("/etc/group")["before"].as_str().unwrap().starts_with("root:x:0:"));
    let image = events.iter().find(|e| e["event"] == "image_assembled").unwrap();
    assert_eq!(image["manifest_digest"], skopeo_inspect(&dest)["Digest"]);
    // A step's time is what passed between its start and its end (the RUN, the first step that
    // works, waits for the push check before it starts: that wait is not the step's).
    for end in events.iter().filter(|e| e["event"] == "step_finished") {
        let start = events.iter().find(|e| e["event"] == "step_started" && e["id"] == end["id"]).unwrap();
        let wall = end["ms"].as_u64().unwrap() - start["ms"].as_u64().unwrap();
        assert!(end["duration_ms"].as_u64().unwrap() <= wall + 1, "{start}\n{end}");
    }
}

/// "Before" comes from the base image as its last layer left each file, and from the build's
/// own earlier steps once they changed it.
#[test]
fn file_contents_before_come_from_the_last_base_layer_and_earlier_steps() {
    // A base of three layers in which /a.txt changes twice and /b.txt is deleted.
    let base_ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        base_ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo one > /a.txt && echo keep > /b.txt\nRUN echo two > /a.txt\nRUN rm /b.txt && echo bin > /c.txt\n",
            env().busybox()
        ),
    )
    .unwrap();
    let base = format!("{}/{}:1", env().registry, unique_repo("layered-base"));
    assert_ok(&run(trowel().args(["build", "--destination", &base, "--context"]).arg(base_ctx.path())));

    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {base}\nRUN echo three > /a.txt && echo back > /b.txt\nRUN echo four > /a.txt && rm /c.txt\n"),
    )
    .unwrap();
    let (o, trace) = traced_build(ctx.path(), "unused/x:1", &["--no-push"]);
    assert_ok(&o);
    let events: Vec<Value> = trace.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
    let file = |step: u64, p: &str| {
        content_at(&events, step, p).unwrap_or_else(|| panic!("no content of {p} at step {step}: {trace}"))
    };
    assert_eq!(file(1, "/a.txt")["before"], "two\n", "the last base layer's version");
    assert_eq!(file(1, "/a.txt")["after"], "three\n");
    assert_eq!(file(1, "/b.txt")["before"], Value::Null, "deleted in the base, so added here");
    assert_eq!(file(1, "/b.txt")["after"], "back\n");
    assert_eq!(file(2, "/a.txt")["before"], "three\n", "what the previous step left");
    assert_eq!(file(2, "/c.txt")["before"], "bin\n");
    assert_eq!(file(2, "/c.txt")["after"], Value::Null);
}

/// A base file's "before" (metadata and digest, and a small text file's content) is what the
/// base holds, as an independent unpack of it (skopeo and umoci) says, whether the root is a
/// plain directory (no cache dir: the base layers are read again for it, once for both) or
/// mounted from the unpacked-layer store; a file over the content limit has its digest and no
/// content, and the next step's "before" is what this one left.
#[test]
fn before_figures_and_contents_of_base_files_agree_with_an_independent_unpack() {
    let unpacked = pull_and_unpack(&env().busybox());
    let read = |p: &str| std::fs::read(unpacked.rootfs().join(p)).unwrap();
    let (group, hostname, passwd) = (read("etc/group"), read("etc/hostname"), read("etc/passwd"));
    assert!(group.len() > 16 && passwd.len() > 16 && hostname.len() + 2 <= 16, "{hostname:?}");
    let digest = |b: &[u8]| format!("sha256:{}", sha256_hex(b));
    let hostname_x = [hostname.as_slice(), b"x\n"].concat();
    let text = |b: &[u8]| Value::from(String::from_utf8(b.to_vec()).unwrap());

    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo small > /etc/group && echo x >> /etc/hostname && rm /etc/passwd\n\
             RUN echo again > /etc/group && rm /etc/hostname\n",
            env().busybox()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let no_cache = cache.path().join("absent");
    let store = cache.path().to_str().unwrap();
    for extra in
        [vec!["--cache-dir", no_cache.to_str().unwrap()], vec!["--cache-dir", store, "--unpacked-store-min-size", "0"]]
    {
        let mut args = vec!["--no-push", "--trace-content-limit", "16"];
        args.extend(extra.iter().copied());
        let (o, trace) = traced_build(ctx.path(), "unused/x:1", &args);
        assert_ok(&o);
        let events: Vec<Value> = trace.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
        let base = events.iter().find(|e| e["event"] == "base_unpacked").unwrap();
        assert_eq!(base.get("from_store").is_some(), extra.len() > 2, "{base}");
        let change = |step: u64, p: &str| {
            let snap = events.iter().find(|e| e["event"] == "snapshot" && e["id"]["step"] == step).unwrap();
            snap["changes"].as_array().unwrap().iter().find(|c| c["path"] == p).cloned().unwrap()
        };
        let content = |step: u64, p: &str| content_at(&events, step, p);
        for (p, was) in [("/etc/group", &group), ("/etc/hostname", &hostname), ("/etc/passwd", &passwd)] {
            let prev = &change(1, p)["previous"];
            assert_eq!((&prev["digest"], &prev["size"]), (&Value::from(digest(was)), &Value::from(was.len())), "{p}");
        }
        assert_eq!(change(1, "/etc/passwd")["kind"], "deleted");
        let group1 = content(1, "/etc/group").unwrap();
        assert_eq!((&group1["before"], &group1["after"]), (&Value::Null, &Value::from("small\n")), "over the limit");
        let host1 = content(1, "/etc/hostname").unwrap();
        assert_eq!((&host1["before"], &host1["after"]), (&text(&hostname), &text(&hostname_x)));
        assert!(content(1, "/etc/passwd").is_none(), "over the limit, and gone");

        assert_eq!(change(2, "/etc/group")["previous"]["digest"], digest(b"small\n"));
        assert_eq!(change(2, "/etc/hostname")["previous"]["digest"], digest(&hostname_x));
        let group2 = content(2, "/etc/group").unwrap();
        assert_eq!((&group2["before"], &group2["after"]), (&Value::from("small\n"), &Value::from("again\n")));
        assert_eq!(content(2, "/etc/hostname").unwrap()["before"], text(&hostname_x));
    }
}

/// A step that changes many small text files reports their contents in several events of about
/// 1 MiB each, not one holding them all (a COPY of 2,000 text files made one 80 MB event, held in
/// memory twice over while the trace wrote it), and none is lost: every file's content is in one
/// of them (a reader adds a step's events up: `BuildState::add_contents`).
#[test]
fn many_files_contents_come_in_several_bounded_events() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir(ctx.path().join("src")).unwrap();
    // 40 files of 60,000 bytes, each under the default limit (64 KiB): 2.4 MB in all.
    let body = |i: usize| format!("file {i:02}\n").repeat(60_000 / 8);
    for i in 0..40 {
        std::fs::write(ctx.path().join(format!("src/f{i:02}.txt")), body(i)).unwrap();
    }
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}\nCOPY src/ /src/\n", env().busybox())).unwrap();
    let (o, trace) = traced_build(ctx.path(), "unused/x:1", &["--no-push"]);
    assert_ok(&o);
    let events: Vec<Value> = trace.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
    let batches: Vec<&Value> =
        events.iter().filter(|e| e["event"] == "file_contents" && e["id"]["step"] == 1).collect();
    assert!(batches.len() >= 3, "2.4 MB of contents in {} event(s)", batches.len());
    for b in &batches {
        let held: usize = b["files"].as_array().unwrap().iter().map(|f| f["after"].as_str().map_or(0, str::len)).sum();
        assert!(held <= (1 << 20) + 64 * 1024, "one event holds {held} bytes of content");
    }
    for i in 0..40 {
        let f = content_at(&events, 1, &format!("/src/f{i:02}.txt")).unwrap_or_else(|| panic!("no content of f{i:02}"));
        assert_eq!((&f["before"], &f["after"]), (&Value::Null, &Value::from(body(i))), "f{i:02}");
    }
}

#[test]
fn a_killed_build_leaves_a_replayable_trace() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {}\nRUN echo first > /first\nRUN echo started-sleeping && sleep 60\n", env().busybox()),
    )
    .unwrap();
    let trace = ctx.path().join("killed.jsonl");
    let mut child = trowel()
        .args(["build", "--no-push", "--context"])
        .arg(ctx.path())
        .arg("--trace")
        .arg(&trace)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let sleeping = |t: &str| t.lines().any(|l| l.contains(r#""event":"output""#) && l.contains("started-sleeping"));
    while !sleeping(&std::fs::read_to_string(&trace).unwrap_or_default()) {
        assert!(t0.elapsed().as_secs() < 30, "the build never reached the sleeping RUN");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SIGKILL: no chance to write anything more.
    child.kill().unwrap();
    child.wait().unwrap();
    let o = run(trowel().arg("replay").arg(&trace).arg("--summary"));
    let s = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "a build that never finished: {s}");
    assert!(s.contains("INTERRUPTED: the trace ends at"), "{s}");
    assert!(s.contains(":3: RUN echo started-sleeping && sleep 60"), "{s}");
    assert!(s.contains("| started-sleeping"), "{s}");
    assert!(s.contains("line 2    built"), "{s}");
}

#[test]
fn replay_summary_of_a_failed_build_shows_what_failed_and_why() {
    let dest = format!("{}/{}:1", env().registry, unique_repo("summary"));
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let o = run(trowel()
        .args(["build", "--context"])
        .arg(corpus("fail-run-exit"))
        .args(["--destination", &dest, "--build-arg", &format!("REGISTRY={}", env().registry), "--trace"])
        .arg(&trace));
    assert_eq!(o.status.code(), Some(3));
    let o = run(trowel().arg("replay").arg(&trace).arg("--summary"));
    let s = stdout(&o);
    assert_eq!(o.status.code(), Some(3), "the summary exits as the build did: {s}");
    assert!(s.contains("line 3    FAILED"), "{s}");
    assert!(s.contains("FAILED: ") && s.contains("Dockerfile:3: RUN echo before && exit 3: exit code 3"), "{s}");
    assert!(s.contains("  | before"), "{s}");
}

/// Registry passwords, secret-looking build args and `--secret-arg` values appear nowhere: not
/// in the log, the trace, the cache entries in the registry, or the image.
#[test]
fn secrets_never_reach_logs_traces_or_cache_entries() {
    let e = env();
    let token = "ghp_abcdefSECRETtoken1234";
    let custom = "very-private-value-42";
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nARG GITHUB_TOKEN\nARG CUSTOM\nARG DB_PASS=abc\nRUN echo \"token=$GITHUB_TOKEN custom=$CUSTOM\" && echo $GITHUB_TOKEN | wc -c > /len\nCOPY <<EOF /note\nbuilt with ${{CUSTOM}}\nEOF\n",
            e.busybox()
        ),
    )
    .unwrap();
    let cfg = tempfile::tempdir().unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", e.auth_user, e.auth_password));
    std::fs::write(
        cfg.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, e.auth_registry),
    )
    .unwrap();
    let dest = format!("{}/{}:1", e.auth_registry, unique_repo("secrets"));
    let trace = ctx.path().join("t.jsonl");
    let o = run(trowel()
        .env("DOCKER_CONFIG", cfg.path())
        .args(["build", "-v", "debug", "--cache", "--cache-copy-layers", "--context"])
        .arg(ctx.path())
        .args(["--destination", &dest, "--build-arg", &format!("GITHUB_TOKEN={token}")])
        .args(["--build-arg", &format!("CUSTOM={custom}"), "--secret-arg", "CUSTOM", "--trace"])
        .arg(&trace));
    assert_ok(&o);
    let trace_text = std::fs::read_to_string(&trace).unwrap();
    let log = format!("{}{}", stdout(&o), stderr(&o));
    for (what, text) in [("log", &log), ("trace", &trace_text)] {
        for secret in [token, custom, e.auth_password.as_str(), auth.as_str()] {
            assert!(!text.contains(secret), "{what} contains a secret ({secret})");
        }
    }
    assert!(log.contains("token=*** custom=***"), "the RUN output is masked, not dropped: {log}");
    // Cache entries in the registry: their configs record key components.
    let creds = format!("{}:{}", e.auth_user, e.auth_password);
    let cache_repo = format!("{}/cache", dest.rsplit_once(':').unwrap().0);
    let tags = run(Command::new("skopeo").args([
        "list-tags",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("docker://{cache_repo}"),
    ]));
    assert_ok(&tags);
    let tags: Value = serde_json::from_slice(&tags.stdout).unwrap();
    let mut checked = 0;
    for t in tags["Tags"].as_array().unwrap() {
        let c = run(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            &creds,
            "--config",
            "--raw",
            &format!("docker://{cache_repo}:{}", t.as_str().unwrap()),
        ]));
        assert_ok(&c);
        let text = stdout(&c);
        assert!(!text.contains(token) && !text.contains(custom), "a cache entry holds a secret: {text}");
        checked += 1;
    }
    assert!(checked >= 2, "cache entries were written");
    // The image's history and config do not mention them either (the user never put them there).
    let img = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        "--config",
        "--raw",
        &format!("docker://{dest}"),
    ]));
    assert_ok(&img);
    let config = stdout(&img);
    assert!(!config.contains(token) && !config.contains(custom), "{config}");
    // The ARG's history entry (BuildKit writes one, with the value) is there, its value masked,
    // a short default of a secret-named ARG too (the log's masking leaves short values alone).
    assert!(config.contains("ARG GITHUB_TOKEN=***"), "{config}");
    assert!(config.contains("ARG DB_PASS=***") && !config.contains("DB_PASS=abc"), "{config}");
}
