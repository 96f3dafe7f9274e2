//! A cold build's network work overlapped with the build (issue 17), checked through a
//! recording proxy in front of the test registry, never by timing:
//! - base layers fetched ahead: a stage's base layers start downloading as soon as its base is
//!   resolved, before its first step (seen while the debugger holds the build at the pause
//!   before each `FROM`: without the prefetch no layer is requested before a step needs
//!   files), and each layer is still downloaded once;
//! - a later stage's base fetched ahead too: its layers are requested while the build is
//!   held before the first stage's `FROM`, not once the stages before it are built;
//! - the image's layers sent early: a COPY layer is streamed to the destination while it is
//!   written (a `PATCH` to an upload session, which the ordinary push never sends) and becomes
//!   a blob only when the push commits it, alongside the image's other blobs (they are asked
//!   for while the commit is held); a build that fails after it commits nothing;
//! - the layer reference record sent during the push: a COPY layer kept out of the cache
//!   repository gets its record's config uploaded there while the image is pushed (so only
//!   its two tags follow the push), and a push that fails tags no record;
//! - the push waits for no cache entry on account of a layer that is not in the cache
//!   repository (a COPY kept out of it): a RUN's entry held up at the registry does not hold
//!   up the image's push;
//! - one probe per registry: a build pulling its base from the registry it pushes to asks
//!   `/v2/` once, not once per direction;
//! - a base layer unpacked while it downloads: with the layer's body held at half its length,
//!   the root already holds its first files before the download is resumed;
//! - a stage's root made ahead: a cold stage's while its keys are planned, and an edited COPY's
//!   (a warm stage whose COPY the local layer store lacks) while the cache repository answers,
//!   both there at the pause before the stage's first step; never for an unchanged rebuild;
//! - a stage of COPYs alone told cold by the stage that reads it: its base fetched ahead in a
//!   cold build, and not at all in a fresh pod whose reader the cache serves;
//! - the upload sessions of a stage's last layers opened while its steps run: none opened
//!   after its last RUN starts, the last small RUN layer pushed without waiting for its copy
//!   in the cache repository, every session committed or cancelled; none for a stage the cache
//!   serves.

#[path = "../common/mod.rs"]
mod common;
#[path = "../faults/mod.rs"]
mod faults;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use faults::FaultProxy;
use trowel::debugger::{Debugger, Frontend, Pause, Resume};
use trowel_engine::engine::controller::{Checkpoint, Decision, ShellChoice};
use trowel_engine::engine::{BuildOptions, CacheOptions, Continue, Emitter};
use trowel_events::{BlobPushAction, Change, Envelope, Event, EventSink, PushReview};

/// How long a pause waits for a request it expects (a bound for a failing run, not a time the
/// test measures).
const PATIENCE: Duration = Duration::from_secs(60);

fn layer_of(image: &str) -> String {
    skopeo_manifest(image)["layers"][0]["digest"].as_str().unwrap().to_string()
}

/// Whether the proxy has seen a `GET` of blob `digest` within [`PATIENCE`].
fn requested(proxy: &FaultProxy, digest: &str) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < PATIENCE {
        if gets_of(proxy, digest) > 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn gets_of(proxy: &FaultProxy, digest: &str) -> usize {
    proxy.seen().iter().filter(|r| r.starts_with("GET ") && r.contains(&format!("/blobs/{digest}"))).count()
}

/// A debugger frontend that hands each pause to its closure and steps on.
struct OnPause<F>(F);

impl<F: FnMut(&Pause<'_>) + Send> Frontend for OnPause<F> {
    fn paused(&mut self, p: &Pause<'_>) -> Resume {
        (self.0)(p);
        Resume::Step
    }
    fn shell_changes(&mut self, _at: &Checkpoint, _changes: &[Change]) -> ShellChoice {
        ShellChoice::Discard
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

fn options(dir: &std::path::Path, dest: String) -> BuildOptions {
    let mut o = BuildOptions::new(dir.join("Dockerfile"), dir);
    o.output.destinations = vec![dest];
    o.run.helper_exe = env!("CARGO_BIN_EXE_trowel").into();
    o.registry.user_agent = "trowel-tests".into();
    o
}

/// A second base image, `busybox:1.35` plus a layer of its own, pushed to the test registry;
/// returns its repository (tag `base`) and its own layer's digest.
fn second_base() -> (String, String) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}\nRUN echo second > /second\n", env().busybox()))
        .unwrap();
    let repo = unique_repo("ahead-base");
    let image = format!("{}/{repo}:base", env().registry);
    let o = options(ctx.path(), image.clone());
    trowel_engine::engine::build(&o, &Emitter::new(vec![]), &mut Continue).expect("build the second base");
    let layers = skopeo_manifest(&image)["layers"].as_array().unwrap().clone();
    (repo, layers.last().unwrap()["digest"].as_str().unwrap().to_string())
}

/// Builds `dockerfile` (bases behind `proxy`) under a debugger that pauses before every step;
/// returns what the pauses before each `FROM` saw of `digests` (one per stage), and the events.
fn build_paused(proxy: &Arc<FaultProxy>, dockerfile: &str, digests: &[String]) -> (Vec<bool>, Vec<Event>) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let o = options(ctx.path(), format!("{}/{}:1", env().registry, unique_repo("ahead")));
    let seen = Arc::new(Mutex::new(Vec::new()));
    // At the pause before each `FROM` (in order): whether the registry was asked for that
    // stage's digest.
    let (proxy_at, digests_at, seen_at) = (proxy.clone(), digests.to_vec(), seen.clone());
    let fe = OnPause(move |p: &Pause<'_>| {
        if p.at.keyword == "FROM" && p.at.when == trowel_events::When::BeforeStep {
            let mut seen = seen_at.lock().unwrap();
            let n = seen.len();
            if let Some(d) = digests_at.get(n) {
                seen.push(requested(&proxy_at, d));
            }
        }
    });
    let mut dbg = Debugger::new(fe, vec![], true);
    let events = Arc::new(Mutex::new(Vec::new()));
    let emitter = Emitter::new(vec![Box::new(Collect(events.clone()))]);
    let r = trowel_engine::engine::build(&o, &emitter, &mut dbg);
    drop(dbg);
    r.unwrap_or_else(|e| panic!("build failed: {e}"));
    let seen = seen.lock().unwrap().clone();
    let events = events.lock().unwrap().clone();
    (seen, events)
}

#[test]
fn each_stage_s_base_layers_are_requested_before_its_first_step_and_downloaded_once() {
    let (second, second_layer) = second_base();
    let proxy = Arc::new(FaultProxy::start(&env().registry));
    // Two stages on two bases sharing busybox's layer; the second base has one of its own.
    let busybox_layer = layer_of(&env().busybox());
    let dockerfile = format!(
        "FROM {0}/busybox:1.35 AS build\nRUN echo built > /built\nFROM {0}/{second}:base\nCOPY --from=build /built /built\nRUN cat /built /second\n",
        proxy.addr
    );
    let (seen, events) = build_paused(&proxy, &dockerfile, &[busybox_layer.clone(), second_layer.clone()]);
    assert_eq!(seen, vec![true, true], "layers requested at the pauses before FROM: {:?}", proxy.seen());
    // Each layer went over the wire once: the stages used the downloads begun ahead, and the
    // layer both bases share was fetched for one of them.
    assert_eq!(gets_of(&proxy, &busybox_layer), 1, "{:?}", proxy.seen());
    assert_eq!(gets_of(&proxy, &second_layer), 1, "{:?}", proxy.seen());
    // And both stages were built from them.
    let unpacked: Vec<usize> = events
        .iter()
        .filter_map(|e| if let Event::BaseUnpacked { stage, .. } = e { Some(*stage) } else { None })
        .collect();
    assert_eq!(unpacked, vec![0, 1]);
}

#[test]
fn a_later_stage_s_base_downloads_while_the_earlier_stages_build() {
    let (second, second_layer) = second_base();
    let proxy = Arc::new(FaultProxy::start(&env().registry));
    // The final stage's base is asked for while the build is held before the first stage's
    // `FROM`, not once the first stage is built.
    let dockerfile = format!(
        "FROM {0}/busybox:1.35 AS build\nRUN echo built > /built\nFROM {0}/{second}:base\nCOPY --from=build /built /built\nRUN cat /built /second\n",
        proxy.addr
    );
    let (seen, events) = build_paused(&proxy, &dockerfile, std::slice::from_ref(&second_layer));
    assert_eq!(seen, vec![true], "the second base's layer requested before the first stage: {:?}", proxy.seen());
    assert_eq!(gets_of(&proxy, &second_layer), 1, "{:?}", proxy.seen());
    let unpacked = events.iter().filter(|e| matches!(e, Event::BaseUnpacked { stage: 1, .. })).count();
    assert_eq!(unpacked, 1, "the final stage was built from it");
}

/// The digests of the layers the build wrote, in order.
fn written(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::LayerWritten { layer, .. } => Some(layer.digest.to_string()),
            _ => None,
        })
        .collect()
}

fn build_collecting(o: &BuildOptions) -> (Result<String, String>, Vec<Event>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let emitter = Emitter::new(vec![Box::new(Collect(events.clone()))]);
    let r = trowel_engine::engine::build(o, &emitter, &mut Continue)
        .map(|r| r.digest().to_string())
        .map_err(|e| e.to_string());
    let events = events.lock().unwrap().clone();
    (r, events)
}

/// A manifest as an independent client reads it (raw: a record is no image skopeo inspects).
fn skopeo_raw(reference: &str) -> serde_json::Value {
    let o = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{reference}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo inspect --raw {reference}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Whether a directory named `name` is anywhere below `dir` (entries vanishing while the tree is
/// read are passed over: a build is writing it).
fn has_dir_named(dir: &std::path::Path, name: &str, depth: usize) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| {
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        is_dir && (e.file_name() == name || (depth > 0 && has_dir_named(&e.path(), name, depth - 1)))
    })
}

/// A base layer is unpacked while it downloads (`image/follow.rs`). The registry stops sending
/// the busybox layer at half its length and leaves the connection open; before trowel gives up
/// on that attempt (`--stall-timeout`) and resumes it with a ranged `GET`, the root already
/// holds `/bin`, the layer's first entry (before this, nothing was unpacked until the whole blob
/// was stored). The resumed download completes the same partial file under the reader, and
/// the RUN sees a whole base: the busybox binary, cut in two by the stall, hashes as the base's
/// (checked against skopeo and umoci's copy of the base). Both ways a root is made: unpacked
/// into the work dir, and with `--cache-dir` made as an entry of the unpacked-layer store, which
/// a second build then mounts, with the same result.
#[test]
fn a_base_layer_is_unpacked_while_it_downloads() {
    let manifest = skopeo_manifest(&env().busybox());
    let (layer, size) =
        (manifest["layers"][0]["digest"].as_str().unwrap(), manifest["layers"][0]["size"].as_u64().unwrap());
    let base = pull_and_unpack(&env().busybox());
    let want = sha256_hex(&std::fs::read(base.rootfs().join("bin/busybox")).unwrap());
    let check = |reference: &str| {
        let got = pull_and_unpack(reference);
        let line = std::fs::read_to_string(got.rootfs().join("sum")).unwrap();
        assert_eq!(line.split_whitespace().next(), Some(want.as_str()), "{reference}: /sum is {line:?}");
    };
    for with_store in [false, true] {
        let proxy = FaultProxy::start(&env().registry);
        proxy.inject("GET", layer, faults::Fault::StallAfter { after: size as usize / 2 }, 1);
        let ctx = tempfile::tempdir().unwrap();
        let dockerfile = format!("FROM {}/busybox:1.35\nRUN busybox sha256sum /bin/busybox > /sum\n", proxy.addr);
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
        let (work, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let dest = format!("{}/{}:1", env().registry, unique_repo("followed"));
        let mut cmd = trowel();
        cmd.args(["build", "--stall-timeout", "5s", "--destination", &dest, "--context"])
            .arg(ctx.path())
            .arg("--work-dir")
            .arg(work.path());
        if with_store {
            cmd.arg("--cache-dir").arg(cache.path());
        }
        let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        // Files first, then the request count: a count of 1 read after the files were seen
        // means they were there before the download resumed.
        let early = loop {
            if has_dir_named(work.path(), "bin", 6) || has_dir_named(cache.path(), "bin", 6) {
                break gets_of(&proxy, layer) == 1;
            }
            if gets_of(&proxy, layer) >= 2 || child.try_wait().unwrap().is_some() {
                break false;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let o = child.wait_with_output().unwrap();
        assert_ok(&o);
        assert!(early, "store {with_store}: nothing was unpacked before the stalled download resumed");
        assert_eq!(gets_of(&proxy, layer), 2, "the stalled download resumes once: {:#?}", proxy.seen());
        check(&dest);
        if with_store {
            // The store's entry, made from the followed download, serves the next build.
            let dest2 = format!("{}/{}:1", env().registry, unique_repo("followed"));
            let trace = work.path().join("trace.jsonl");
            let o = run(trowel()
                .args(["build", "--destination", &dest2, "--trace"])
                .arg(&trace)
                .arg("--context")
                .arg(ctx.path())
                .arg("--work-dir")
                .arg(work.path())
                .arg("--cache-dir")
                .arg(cache.path()));
            assert_ok(&o);
            let out = std::fs::read_to_string(&trace).unwrap();
            let unpacked = out.lines().find(|l| l.contains("base_unpacked")).unwrap_or_default();
            assert!(unpacked.contains("\"from_store\":1"), "the second build did not mount the store's entry:\n{out}");
            check(&dest2);
        }
    }
}

mod cache_entries;
mod copies_alone;
mod push_check;
mod roots_ahead;
mod sent_early;
mod tail_sessions;
