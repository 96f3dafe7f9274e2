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
//!   both there at the pause before the stage's first step; never for an unchanged rebuild.

mod common;
#[path = "faults/mod.rs"]
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

/// Builds with the debugger stepping: at the pause before each step, whether the stage's root
/// was made by then (keyword, made), and every event.
fn build_watching_roots(o: &BuildOptions, round: &str) -> (Vec<(String, bool)>, Vec<Event>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (events_at, seen_at) = (events.clone(), seen.clone());
    let fe = OnPause(move |p: &Pause<'_>| {
        if p.at.when == trowel_events::When::BeforeStep {
            let made = events_at.lock().unwrap().iter().any(|e| matches!(e, Event::BaseUnpacked { .. }));
            seen_at.lock().unwrap().push((p.at.keyword.clone(), made));
        }
    });
    let mut dbg = Debugger::new(fe, vec![], true);
    let emitter = Emitter::new(vec![Box::new(Collect(events.clone()))]);
    let r = trowel_engine::engine::build(o, &emitter, &mut dbg);
    drop(dbg);
    r.unwrap_or_else(|e| panic!("{round}: build failed: {e}"));
    let seen = seen.lock().unwrap().clone();
    let events = events.lock().unwrap().clone();
    (seen, events)
}

/// Whether the root was there at the pause before the first step of `keyword`.
fn made_before(seen: &[(String, bool)], keyword: &str) -> Option<bool> {
    seen.iter().find(|(kw, _)| kw == keyword).map(|(_, made)| *made)
}

/// The roots a build made: `base_unpacked` events, with how many layers came from the store.
fn roots(events: &[Event]) -> Vec<Option<usize>> {
    let from_store = |e: &Event| match e {
        Event::BaseUnpacked { from_store, .. } => Some(*from_store),
        _ => None,
    };
    events.iter().filter_map(from_store).collect()
}

/// A cold stage's root is made while its cache keys are planned (`engine/stage/ahead.rs`):
/// with `--cache`, at the pause before the stage's first step that needs files, the root is
/// there already (before, the step made it after its cache lookup missed). Rebuilt, the stage
/// is served from the cache and no root is made at all: a cached stage is never made ahead.
/// Both times the image is the same as an independent client reads it.
#[test]
fn a_cold_stage_s_root_is_made_while_its_keys_are_planned() {
    let ctx = tempfile::tempdir().unwrap();
    let dockerfile = format!("FROM {}\nENV A=1\nRUN echo ahead > /ahead\n", env().busybox());
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache_repo = format!("{}/{}", env().registry, unique_repo("ahead-cache"));
    for (round, cold) in [(1, true), (2, false)] {
        let dest = format!("{}/{}:1", env().registry, unique_repo("ahead"));
        let mut o = options(ctx.path(), dest.clone());
        o.cache = Some(repo_and_dir(&cache_repo, cache_dir.path()));
        let (seen, events) = build_watching_roots(&o, &format!("round {round}"));
        assert_eq!(made_before(&seen, "FROM"), Some(false), "round {round}: {seen:?}");
        assert_eq!(made_before(&seen, "RUN"), Some(cold), "round {round}: the root at the pause before RUN: {seen:?}");
        assert_eq!(roots(&events).len(), usize::from(cold), "round {round}: roots made");
        let image = pull_and_unpack(&dest);
        assert_eq!(std::fs::read_to_string(image.rootfs().join("ahead")).unwrap(), "ahead\n", "round {round}");
    }
}

/// A cache repository and a cache dir, kaniko's flags otherwise.
fn repo_and_dir(repo: &str, dir: &std::path::Path) -> CacheOptions {
    CacheOptions { repo: Some(repo.to_string()), dir: Some(dir.to_path_buf()), ..CacheOptions::default() }
}

/// The edit-and-rebuild of CI (`engine/stage/ahead.rs`): with kaniko's flags (COPY layers kept
/// out of the cache repository, in the local layer store), a source file edited, the stage is
/// warm (its WORKDIR has an entry) but its COPY has no entry in the local store: the root is
/// mounted from the unpacked-layer store before the stage's first step, while the cache
/// repository answers, instead of once the COPY's lookup missed. The WORKDIR served from the
/// cache is applied to it, and the image (read by an independent client) has the edit and the
/// directory. An unchanged rebuild makes no root; nor is one made ahead when a RUN comes
/// before the COPY (its layer would be unpacked into the root rather than mounted with it).
#[test]
fn an_edited_copy_s_root_is_made_while_the_cache_repository_answers() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir(ctx.path().join("src")).unwrap();
    std::fs::write(ctx.path().join("src/a.c"), "one\n").unwrap();
    let dockerfile = |pre: &str| {
        format!("FROM {}\n{pre}WORKDIR /src\nCOPY src/ /src/\nRUN cat /src/a.c > /out.txt\n", env().busybox())
    };
    let cache_dir = tempfile::tempdir().unwrap();
    let cache_repo = format!("{}/{}", env().registry, unique_repo("edit-cache"));
    let build = |round: &str| {
        let dest = format!("{}/{}:1", env().registry, unique_repo("edit"));
        let mut o = options(ctx.path(), dest.clone());
        o.cache = Some(repo_and_dir(&cache_repo, cache_dir.path()));
        assert!(!o.cache.as_ref().unwrap().copy_layers, "kaniko's flags: COPY layers out of the cache repository");
        // The store as `--cache-dir` gives it (busybox is under the default size for it).
        o.layers.unpacked_store = Some(cache_dir.path().join("unpacked"));
        o.layers.unpacked_store_min_size = 0;
        let (seen, events) = build_watching_roots(&o, round);
        (seen, roots(&events), dest)
    };
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile("")).unwrap();
    let (_, cold, _) = build("cold");
    assert_eq!(cold.len(), 1, "cold: one root");
    let (seen, unchanged, _) = build("unchanged");
    assert!(unchanged.is_empty(), "an unchanged rebuild makes no root: {unchanged:?} {seen:?}");

    std::fs::write(ctx.path().join("src/a.c"), "two\n").unwrap();
    let (seen, edited, dest) = build("edited");
    assert_eq!(made_before(&seen, "WORKDIR"), Some(true), "edited: the root before the first step: {seen:?}");
    assert_eq!(edited, [Some(1)], "edited: one root, mounted from the store (the base's one layer)");
    let image = pull_and_unpack(&dest);
    assert_eq!(std::fs::read_to_string(image.rootfs().join("out.txt")).unwrap(), "two\n");
    assert_eq!(std::fs::read_to_string(image.rootfs().join("src/a.c")).unwrap(), "two\n");
    let workdir = std::fs::symlink_metadata(image.rootfs().join("src")).unwrap();
    assert!(workdir.is_dir());

    // A RUN before the COPY: cold, then edited; the root waits for the COPY's miss.
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile("RUN echo pre > /pre\n")).unwrap();
    build("cold, with a RUN first");
    std::fs::write(ctx.path().join("src/a.c"), "three\n").unwrap();
    let (seen, edited, dest) = build("edited, with a RUN first");
    assert_eq!(made_before(&seen, "COPY"), Some(false), "a RUN first: no root before the COPY: {seen:?}");
    assert_eq!(edited.len(), 1, "a RUN first: one root");
    let image = pull_and_unpack(&dest);
    assert_eq!(std::fs::read_to_string(image.rootfs().join("out.txt")).unwrap(), "three\n");
    assert_eq!(std::fs::read_to_string(image.rootfs().join("pre")).unwrap(), "pre\n");
}

/// A context whose Dockerfile COPYs a 3 MB file (several chunks of a streamed upload) onto
/// busybox behind `proxy`, then `tail`.
fn copy_context(proxy: &FaultProxy, tail: &str) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    let mut data = Vec::with_capacity(3 << 20);
    let mut x: u32 = 17;
    while data.len() < 3 << 20 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(ctx.path().join("big.bin"), data).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {}/busybox:1.35\nCOPY big.bin /big.bin\n{tail}", proxy.addr),
    )
    .unwrap();
    ctx
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

/// The layer's bytes went up once, sent early: the push reports `layer` uploaded by this
/// build, and the image `repo@digest` holds `file` as the context has it (read by an
/// independent client).
fn uploaded_by_this_build_and_whole(
    events: &[Event],
    layer: &str,
    repo: &str,
    digest: &str,
    ctx: &std::path::Path,
    file: &str,
) {
    let action = events.iter().find_map(|e| match e {
        Event::BlobPushed { digest, action, .. } if digest.to_string() == layer => Some(*action),
        _ => None,
    });
    assert_eq!(action, Some(BlobPushAction::Uploaded));
    let unpacked = pull_and_unpack(&format!("{}/{repo}@{digest}", env().registry));
    assert_eq!(std::fs::read(unpacked.rootfs().join(file)).unwrap(), std::fs::read(ctx.join(file)).unwrap());
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

#[test]
fn a_copy_layer_is_sent_while_it_is_written_and_committed_by_the_push() {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = copy_context(&proxy, "");
    let repo = unique_repo("early");
    let dest = format!("{}/{repo}:1", proxy.addr);
    let (r, events) = build_collecting(&options(ctx.path(), dest));
    let digest = r.unwrap_or_else(|e| panic!("build failed: {e}"));
    let seen = proxy.seen();
    // Streamed into an upload session of the destination (the push's own uploads are one PUT).
    assert!(seen.iter().any(|s| s.starts_with(&format!("PATCH /v2/{repo}/blobs/uploads/"))), "{seen:?}");
    // The pushed image holds the layer, as an independent client reads it.
    let pushed = format!("{}/{repo}:1", env().registry);
    let manifest = skopeo_manifest(&pushed);
    let layer = manifest["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_string();
    assert_eq!(written(&events), vec![layer.clone()]);
    uploaded_by_this_build_and_whole(&events, &layer, &repo, &digest, ctx.path(), "big.bin");
}

/// The push commits a layer sent early alongside its other blobs, not before them: while the
/// commit is held at the registry, the other blobs of the image are already asked for. The
/// image is whole all the same, the layer reported uploaded by this build.
#[test]
fn a_layer_sent_early_is_committed_alongside_the_other_blobs() {
    let proxy = Arc::new(FaultProxy::start(&env().registry));
    let ctx = copy_context(&proxy, "");
    let repo = unique_repo("early-overlap");
    let dest = format!("{}/{repo}:1", proxy.addr);
    // The push's first two PUTs to an upload session are the commit and the config's upload
    // (a config this build made goes up without a HEAD): both go out as the push starts, and
    // both are held.
    let commit = format!("/v2/{repo}/blobs/uploads/");
    proxy.inject("PUT", &commit, faults::Fault::Hold { pause: Duration::from_secs(4) }, 2);
    let o = options(ctx.path(), dest);
    let build = std::thread::spawn(move || build_collecting(&o));
    proxy.wait_applied(&format!("PUT {commit}"), PATIENCE);
    // While the commit is held, the rest of the push goes on.
    let t0 = Instant::now();
    let asked = |proxy: &FaultProxy| proxy.seen().iter().any(|s| s.starts_with(&format!("HEAD /v2/{repo}/blobs/")));
    while !asked(&proxy) && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(asked(&proxy), "no other blob was asked for while the commit was held: {:?}", proxy.seen());
    let (r, events) = build.join().unwrap();
    let digest = r.unwrap_or_else(|e| panic!("build failed: {e}"));
    let layer = written(&events)[0].clone();
    uploaded_by_this_build_and_whole(&events, &layer, &repo, &digest, ctx.path(), "big.bin");
}

#[test]
fn a_build_that_fails_after_a_layer_was_sent_commits_nothing() {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = copy_context(&proxy, "RUN exit 3\n");
    let repo = unique_repo("early-failed");
    let (r, _) = build_collecting(&options(ctx.path(), format!("{}/{repo}:1", proxy.addr)));
    assert!(r.is_err(), "the build should fail");
    let seen = proxy.seen();
    // The COPY layer was streamed...
    assert!(seen.iter().any(|s| s.starts_with(&format!("PATCH /v2/{repo}/blobs/uploads/"))), "{seen:?}");
    // ...but never committed (no PUT of any upload or manifest), and its session was deleted.
    assert!(!seen.iter().any(|s| s.starts_with(&format!("PUT /v2/{repo}/"))), "{seen:?}");
    let patched: Vec<&String> = seen.iter().filter(|s| s.starts_with(&format!("PATCH /v2/{repo}/"))).collect();
    for p in patched {
        let session = p.trim_start_matches("PATCH ").split('?').next().unwrap();
        assert!(seen.iter().any(|s| s.starts_with(&format!("DELETE {session}"))), "{session} not deleted: {seen:?}");
    }
    let o = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{}/{repo}:1", env().registry)])
        .output()
        .unwrap();
    assert!(!o.status.success(), "the failed build pushed an image");
}

/// A small layer of the image (most are a few hundred bytes) is not sent ahead: its upload
/// session is opened while it is written, and the push's commit carries its bytes, with no
/// `PATCH`. The image is whole, the layer reported uploaded by this build. A build that fails
/// after such a layer commits nothing and deletes the session.
#[test]
fn a_small_layer_sent_early_goes_up_in_the_commit() {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("small.txt"), "a small layer\n").unwrap();
    let dockerfile = |tail: &str| format!("FROM {}/busybox:1.35\nCOPY small.txt /small.txt\n{tail}", proxy.addr);
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile("")).unwrap();
    let repo = unique_repo("early-small");
    let (r, events) = build_collecting(&options(ctx.path(), format!("{}/{repo}:1", proxy.addr)));
    let digest = r.unwrap_or_else(|e| panic!("build failed: {e}"));
    let seen = proxy.seen();
    assert!(!seen.iter().any(|s| s.starts_with(&format!("PATCH /v2/{repo}/"))), "{seen:?}");
    let layer = written(&events)[0].clone();
    let hex = layer.trim_start_matches("sha256:");
    let commits: Vec<&String> =
        seen.iter().filter(|s| s.starts_with(&format!("PUT /v2/{repo}/blobs/uploads/")) && s.contains(hex)).collect();
    assert_eq!(commits.len(), 1, "one commit carries the layer: {seen:?}");
    uploaded_by_this_build_and_whole(&events, &layer, &repo, &digest, ctx.path(), "small.txt");

    std::fs::write(ctx.path().join("Dockerfile"), dockerfile("RUN exit 3\n")).unwrap();
    let failed = unique_repo("early-small-failed");
    let (r, _) = build_collecting(&options(ctx.path(), format!("{}/{failed}:1", proxy.addr)));
    assert!(r.is_err(), "the build should fail");
    let seen = proxy.seen();
    assert!(!seen.iter().any(|s| s.starts_with(&format!("PUT /v2/{failed}/"))), "{seen:?}");
    assert!(!seen.iter().any(|s| s.starts_with(&format!("PATCH /v2/{failed}/"))), "{seen:?}");
    assert!(seen.iter().any(|s| s.starts_with(&format!("DELETE /v2/{failed}/blobs/uploads/"))), "{seen:?}");
}

#[test]
fn a_copy_s_reference_record_is_sent_during_the_push_and_tagged_only_after_it() {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("f.txt"), "kept out of the cache repository\n").unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}/busybox:1.35\nCOPY f.txt /f.txt\n", proxy.addr))
        .unwrap();
    let (repo, cache) = (unique_repo("ref-staged"), unique_repo("ref-staged-cache"));
    let mut o = options(ctx.path(), format!("{}/{repo}:1", proxy.addr));
    // kaniko's flags: no --cache-copy-layers, so the COPY's layer is found again by a record.
    o.cache = Some(CacheOptions { repo: Some(format!("{}/{cache}", proxy.addr)), ..CacheOptions::default() });
    // The destination refuses the image's manifest (a final answer, not retried): the push,
    // and so the build, fails after every blob is there.
    proxy.inject("PUT", &format!("/v2/{repo}/manifests/"), faults::Fault::Status { code: 400, retry_after: None }, 1);
    let (r, events) = build_collecting(&o);
    assert!(r.is_err(), "the build should fail at the push");
    assert!(proxy.unused().is_empty(), "the destination's manifest was never sent: {:?}", proxy.seen());
    let seen = proxy.seen();
    // The record's config went to the cache repository during the push (the COPY writes no
    // entry there: nothing else of this build uploads to it)...
    assert!(seen.iter().any(|s| s.starts_with(&format!("PUT /v2/{cache}/blobs/uploads/"))), "{seen:?}");
    // ...and nothing was tagged there: no record names a layer of an image that was not pushed.
    assert!(!seen.iter().any(|s| s.starts_with(&format!("PUT /v2/{cache}/manifests/"))), "{seen:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::CacheStored { .. })), "a record was reported written");

    // The same build again, nothing refused: the record is tagged, under its key and the
    // step's pointer, after the destination's manifest.
    proxy.clear();
    let (r, events) = build_collecting(&o);
    r.unwrap_or_else(|e| panic!("build failed: {e}"));
    let seen = proxy.seen();
    let key = events
        .iter()
        .find_map(|e| match e {
            Event::CacheStored { key, reference, .. } if reference.starts_with("registry-ref:") => Some(key.clone()),
            _ => None,
        })
        .expect("a record was reported written");
    let pos = |needle: &str| seen.iter().rposition(|s| s.starts_with(needle));
    let image = pos(&format!("PUT /v2/{repo}/manifests/1")).expect("the image's manifest was pushed");
    let record = pos(&format!("PUT /v2/{cache}/manifests/{key}")).expect("the record was tagged with its key");
    let tags = seen.iter().filter(|s| s.starts_with(&format!("PUT /v2/{cache}/manifests/"))).count();
    assert!(image < record, "{seen:?}");
    assert_eq!(tags, 2, "the key and the pointer: {seen:?}");
    let manifest = skopeo_raw(&format!("{}/{cache}:{key}", env().registry));
    assert_eq!(manifest["artifactType"], "application/vnd.dev.trowel.cache.layer-ref.v1+json");
}

/// A cold build writes its cache entries without asking the cache repository for blobs it
/// cannot have: each entry's config names the key that just missed, and a layer streamed
/// there was committed by this build. So no blob of the cache repository is looked for with
/// `HEAD` (each was one round trip on the registry's CPU per entry, twice). A layer streamed
/// there whose writer was done within its first chunk goes up in its commit, with no `PATCH`:
/// only the 3 MB one is sent in one. The entries are whole all the same: the rebuild is served
/// from them, step for step, and gives the image an independent client reads back.
#[test]
fn cache_entries_are_written_without_looking_for_their_own_blobs() {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = tempfile::tempdir().unwrap();
    let dockerfile = format!(
        "FROM {}/busybox:1.35\nWORKDIR /app\nRUN echo one > one\nCOPY f /app/f\nRUN cat f one > both\n\
         RUN dd if=/dev/urandom of=/app/big bs=1024 count=3072\n",
        proxy.addr
    );
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(ctx.path().join("f"), "f\n").unwrap();
    let cache = unique_repo("fresh-entries-cache");
    let first_dest = unique_repo("fresh-entries");
    let mut o = options(ctx.path(), format!("{}/{first_dest}:1", proxy.addr));
    o.cache = Some(CacheOptions { repo: Some(format!("{}/{cache}", proxy.addr)), ..CacheOptions::default() });
    let (r, events) = build_collecting(&o);
    r.unwrap_or_else(|e| panic!("build failed: {e}"));
    let seen = proxy.seen();
    let stored = events.iter().filter(|e| matches!(e, Event::CacheStored { .. })).count();
    assert_eq!(stored, 5, "WORKDIR, the three RUNs and the COPY's record: {events:?}");
    let heads: Vec<&String> = seen.iter().filter(|s| s.starts_with(&format!("HEAD /v2/{cache}/blobs/"))).collect();
    assert!(heads.is_empty(), "blobs looked for in the cache repository: {heads:?}\n{seen:?}");
    let patches = seen.iter().filter(|s| s.starts_with(&format!("PATCH /v2/{cache}/blobs/uploads/"))).count();
    assert_eq!(patches, 1, "only the 3 MB layer is sent in a PATCH: {seen:?}");
    // The first file step's pointer tag was checked once, by the prefetch (absent: a cold
    // build), and its lookup's miss did not ask for it again; every other step's pointer
    // was asked for once, for its miss's explanation.
    let pointers = |method: &str| -> Vec<String> {
        let prefix = format!("{method} /v2/{cache}/manifests/step-");
        seen.iter().filter(|s| s.starts_with(&prefix)).map(|s| s[prefix.len()..].to_string()).collect()
    };
    let (checked, fetched) = (pointers("HEAD"), pointers("GET"));
    assert_eq!(checked.len(), 1, "{seen:?}");
    assert_eq!(fetched.len(), 4, "{seen:?}");
    assert!(!fetched.contains(&checked[0]), "the pointer found absent was asked for again: {seen:?}");
    // Nor is the image's config looked for in the destination: it holds the time of the steps
    // that ran. It went up all the same.
    let config =
        skopeo_raw(&format!("{}/{first_dest}:1", env().registry))["config"]["digest"].as_str().unwrap().to_string();
    assert!(!seen.iter().any(|s| s.starts_with(&format!("HEAD /v2/{first_dest}/blobs/{config}"))), "{seen:?}");
    let hex = config.trim_start_matches("sha256:");
    assert!(
        seen.iter().any(|s| s.starts_with(&format!("PUT /v2/{first_dest}/blobs/uploads/")) && s.contains(hex)),
        "{seen:?}"
    );

    let dest = format!("{}/{}:1", env().registry, unique_repo("fresh-entries"));
    o.output.destinations = vec![dest.clone()];
    let (r, events) = build_collecting(&o);
    r.unwrap_or_else(|e| panic!("rebuild failed: {e}"));
    let cached = events
        .iter()
        .filter(|e| matches!(e, Event::StepFinished { status: trowel_events::StepStatus::Cached, .. }))
        .count();
    assert_eq!(cached, 5, "every step served from the entries: {events:?}");
    let image = pull_and_unpack(&dest);
    assert_eq!(std::fs::read_to_string(image.rootfs().join("app/both")).unwrap(), "f\none\n");
    assert_eq!(std::fs::metadata(image.rootfs().join("app/big")).unwrap().len(), 3 << 20);
}

/// A cache entry's manifest the registry refuses once as naming an unknown blob (what
/// distribution answers when another upload of the entry's layer is rewriting the repository's
/// link to it: two platforms' identical layers) is sent again with its blobs looked for, and
/// the entry is written: no warning, and the rebuild is served from it.
#[test]
fn a_cache_entry_refused_once_for_an_unknown_blob_is_written_on_the_second_try() {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}/busybox:1.35\nRUN echo once > /once\n", proxy.addr))
        .unwrap();
    let cache = unique_repo("entry-retry-cache");
    proxy.inject("PUT", &format!("/v2/{cache}/manifests/"), faults::Fault::Status { code: 400, retry_after: None }, 1);
    let mut o = options(ctx.path(), format!("{}/{}:1", env().registry, unique_repo("entry-retry")));
    o.cache = Some(CacheOptions { repo: Some(format!("{}/{cache}", proxy.addr)), ..CacheOptions::default() });
    let (r, events) = build_collecting(&o);
    r.unwrap_or_else(|e| panic!("build failed: {e}"));
    assert_eq!(proxy.applied().len(), 1, "the refusal was sent: {:?}", proxy.seen());
    let warnings: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::Warning { .. })).collect();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(events.iter().any(|e| matches!(e, Event::CacheStored { .. })), "{events:?}");
    let (r, events) = build_collecting(&o);
    r.unwrap_or_else(|e| panic!("rebuild failed: {e}"));
    assert!(
        events.iter().any(|e| matches!(e, Event::StepFinished { status: trowel_events::StepStatus::Cached, .. })),
        "the rebuild was not served from the entry: {events:?}"
    );
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

#[test]
fn a_registry_pulled_from_and_pushed_to_is_probed_once() {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}/busybox:1.35\nRUN echo probed > /p\n", proxy.addr))
        .unwrap();
    let repo = unique_repo("probed-once");
    let (r, _) = build_collecting(&options(ctx.path(), format!("{}/{repo}:1", proxy.addr)));
    r.unwrap_or_else(|e| panic!("build failed: {e}"));
    let seen = proxy.seen();
    // Both directions were used (the base pulled, the image pushed)...
    assert!(seen.iter().any(|s| s.starts_with("GET /v2/library/busybox/") || s.starts_with("GET /v2/busybox/")));
    assert!(seen.iter().any(|s| s.starts_with(&format!("PUT /v2/{repo}/manifests/1"))), "{seen:?}");
    // ...over one endpoint, probed once.
    assert_eq!(seen.iter().filter(|s| *s == "GET /v2/").count(), 1, "{seen:?}");
}

#[test]
fn the_push_does_not_wait_for_cache_entries_on_account_of_a_copy_layer_kept_out_of_them() {
    // The test means something only when the RUN's entry is already being written (and held)
    // as the push starts; on a loaded machine the entry write may start after the push instead.
    // So a build where it did not is tried again, a few times, before the test gives up.
    for attempt in 1..=4 {
        if the_push_went_while_an_entry_was_held() {
            return;
        }
        eprintln!("attempt {attempt}: the entry write began after the push; the order proves nothing, again");
    }
    panic!("in four builds the RUN's cache entry was never being written when the push began");
}

/// One build whose RUN entry is held at the registry. Returns false when the held write began
/// only after the image's manifest went (nothing shown either way); panics when the push waited.
fn the_push_went_while_an_entry_was_held() -> bool {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = tempfile::tempdir().unwrap();
    // 4 MiB that do not compress: the COPY's layer takes a while to write and send, which
    // gives the RUN's entry write (begun when the RUN ended) time to reach its held manifest.
    let mut noise = Vec::with_capacity(4 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while noise.len() < 4 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(ctx.path().join("f.bin"), noise).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {}/busybox:1.35\nRUN echo cached > /r\nCOPY f.bin /f.bin\n", proxy.addr),
    )
    .unwrap();
    let (repo, cache) = (unique_repo("no-wait"), unique_repo("no-wait-cache"));
    let mut o = options(ctx.path(), format!("{}/{repo}:1", proxy.addr));
    o.cache = Some(CacheOptions { repo: Some(format!("{}/{cache}", proxy.addr)), ..CacheOptions::default() });
    // The RUN's entry is held at the registry (its manifest, then its pointer, come after the
    // hold). The RUN's layer itself was streamed there, so the push can mount it at once.
    proxy.inject("PUT", &format!("/v2/{cache}/manifests/"), faults::Fault::Hold { pause: Duration::from_secs(10) }, 1);
    let (r, _) = build_collecting(&o);
    r.unwrap_or_else(|e| panic!("build failed: {e}"));
    assert!(proxy.unused().is_empty(), "the entry was never written: {:?}", proxy.seen());
    let seen = proxy.seen();
    let image = seen.iter().position(|s| s.starts_with(&format!("PUT /v2/{repo}/manifests/1"))).expect("pushed");
    // The cache repository's tags, in order: the RUN entry's key (held), its pointer (sent
    // after the hold), then the COPY's reference record (after the push).
    let tags: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.starts_with(&format!("PUT /v2/{cache}/manifests/")))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(tags.len(), 4, "{seen:?}");
    if tags[0] > image {
        return false;
    }
    // The image's manifest went while the RUN's entry was held, before its pointer.
    assert!(image < tags[1], "the push waited for the held entry: {seen:?}");
    true
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

/// Requests of `seen` that start with `method path-prefix` and have no `?mount=`.
fn sessions(seen: &[String], method: &str, repo: &str) -> usize {
    let prefix = format!("{method} /v2/{repo}/blobs/uploads/");
    seen.iter().filter(|s| s.starts_with(&prefix) && !s.contains("mount=")).count()
}

/// The push check's upload session is the push's first upload, not opened and deleted for
/// nothing: every session the build opened in the destination was committed, none deleted,
/// and the image is whole as an independent client reads it.
#[test]
fn the_push_check_s_upload_session_carries_the_first_upload() {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}/busybox:1.35\nRUN echo hi > /x\n", proxy.addr))
        .unwrap();
    let repo = unique_repo("spare-session");
    let (r, _) = build_collecting(&options(ctx.path(), format!("{}/{repo}:1", proxy.addr)));
    r.unwrap_or_else(|e| panic!("build failed: {e}"));
    let seen = proxy.seen();
    assert_eq!(sessions(&seen, "DELETE", &repo), 0, "{seen:?}");
    let opened = sessions(&seen, "POST", &repo);
    assert!(opened >= 1, "the push check opens one: {seen:?}");
    assert_eq!(opened, sessions(&seen, "PUT", &repo), "a session opened and not committed: {seen:?}");
    let unpacked = pull_and_unpack(&format!("{}/{repo}:1", env().registry));
    assert_eq!(std::fs::read_to_string(unpacked.rootfs().join("x")).unwrap(), "hi\n");
}

/// A build that fails leaves the push check's session cancelled, and commits nothing.
#[test]
fn a_failed_build_cancels_the_push_check_s_upload_session() {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}/busybox:1.35\nRUN exit 3\n", proxy.addr)).unwrap();
    let repo = unique_repo("spare-failed");
    let (r, _) = build_collecting(&options(ctx.path(), format!("{}/{repo}:1", proxy.addr)));
    assert!(r.is_err(), "the build should fail");
    let seen = proxy.seen();
    assert_eq!(sessions(&seen, "POST", &repo), 1, "{seen:?}");
    assert_eq!(sessions(&seen, "DELETE", &repo), 1, "{seen:?}");
    assert!(!seen.iter().any(|s| s.starts_with(&format!("PUT /v2/{repo}/"))), "{seen:?}");
}

/// A registry that refuses the push check's session when the push comes to use it (an idle
/// session expired during a long build): the upload opens a fresh one and the push succeeds.
/// No layer is built, so the config's is the only upload (the one `PUT` the fault answers).
#[test]
fn a_refused_push_check_session_is_replaced_by_a_fresh_one() {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}/busybox:1.35\nENV SPARE=refused\n", proxy.addr))
        .unwrap();
    let repo = unique_repo("spare-expired");
    proxy.inject(
        "PUT",
        &format!("/v2/{repo}/blobs/uploads/"),
        faults::Fault::Status { code: 404, retry_after: None },
        1,
    );
    let (r, _) = build_collecting(&options(ctx.path(), format!("{}/{repo}:1", proxy.addr)));
    r.unwrap_or_else(|e| panic!("build failed: {e}"));
    let seen = proxy.seen();
    assert_eq!(sessions(&seen, "DELETE", &repo), 1, "the refused session is let go: {seen:?}");
    assert_eq!(sessions(&seen, "POST", &repo), 2, "the check's, then a fresh one: {seen:?}");
    let config = skopeo_config(&format!("{}/{repo}:1", env().registry));
    assert!(config["config"]["Env"].as_array().unwrap().iter().any(|e| e == "SPARE=refused"), "{config}");
}
