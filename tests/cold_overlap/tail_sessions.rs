//! Upload sessions opened ahead for a stage's last layers: taken by the last RUN's stream to the
//! cache repository, by the last COPY's layer sent early and by the small RUN layer the push
//! sends itself rather than wait for its copy in the cache repository; every session opened is
//! committed or cancelled before the build returns. And the destination asked about the base's
//! layers while the steps run, not by the push.

use super::*;

/// Requests of `seen` that open an upload session in `repo` (a `POST` that is no mount).
fn opened(seen: &[String], repo: &str) -> usize {
    let prefix = format!("POST /v2/{repo}/blobs/uploads/");
    seen.iter().filter(|s| s.starts_with(&prefix) && !s.contains("mount=")).count()
}

fn requests(seen: &[String], method: &str, repo: &str) -> usize {
    let prefix = format!("{method} /v2/{repo}/blobs/uploads/");
    seen.iter().filter(|s| s.starts_with(&prefix)).count()
}

/// Whether the requests expected so far have reached the proxy.
type Sent = dyn Fn(&[String]) -> bool + Send;

/// Keeps the events, and how many requests the proxy had seen when the stage's last RUN
/// started: once those sent before it have reached the proxy (`sent`, waited for up to
/// [`PATIENCE`]: the first RUN's stream opens its session from another thread as its layer is
/// written, and its request may still be on its way as the next step starts).
struct Marks {
    proxy: Arc<FaultProxy>,
    events: Arc<Mutex<Vec<Event>>>,
    at_last_run: Arc<Mutex<Option<usize>>>,
    sent: Box<Sent>,
}

impl EventSink for Marks {
    fn event(&mut self, e: &Envelope) {
        if let Event::StepStarted { id, .. } = &e.event
            && id.step == 2
        {
            let t0 = Instant::now();
            while !(self.sent)(&self.proxy.seen()) && t0.elapsed() < PATIENCE {
                std::thread::sleep(Duration::from_millis(10));
            }
            *self.at_last_run.lock().unwrap() = Some(self.proxy.seen().len());
        }
        self.events.lock().unwrap().push(e.event.clone());
    }
}

/// With kaniko's flags (`--cache=true`, COPY layers kept out of the cache repository): a stage
/// of two RUNs and a COPY opens, when its first RUN starts, a session in the cache repository
/// for the last RUN's layer and two in the destination for its last two layers. From the last
/// RUN's start on, no session is opened in either repository: the RUN's stream, the COPY's
/// early upload and the image's config take those opened ahead (the config the push check's).
/// The cache repository is held back from committing the RUNs' layers for a while, so the push
/// finds both still on their way there: the last RUN's small layer goes up to the destination
/// itself (`uploaded`), while the first RUN's, too large to send twice (100 KiB of random
/// bytes), waits and is mounted. The destination is asked whether it holds busybox's layer as
/// the first RUN starts, and not again by the push, which mounts it. The image and the cache
/// entries are whole, and every session opened was committed or cancelled.
#[test]
fn a_stage_s_last_layers_take_upload_sessions_opened_while_its_steps_run() {
    let proxy = Arc::new(FaultProxy::start(&env().registry));
    let ctx = tempfile::tempdir().unwrap();
    // Each RUN sleeps: the sessions opened as the first starts are there well before the
    // layers that take them are written.
    let dockerfile = format!(
        "FROM {}/busybox:1.35\nRUN sleep 1 && head -c 102400 /dev/urandom > /one\nRUN sleep 1 && echo two > /two\n\
         COPY f /f\n",
        proxy.addr
    );
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(ctx.path().join("f"), "f\n").unwrap();
    let (cache, dest) = (unique_repo("tail-cache"), unique_repo("tail"));
    let cache_opts = CacheOptions { repo: Some(format!("{}/{cache}", proxy.addr)), ..CacheOptions::default() };
    // The empty config every entry names is in the cache repository already (an earlier build
    // of another Dockerfile put it there): this build's entries do not upload it.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(
        other.path().join("Dockerfile"),
        format!("FROM {}/busybox:1.35\nRUN echo seed > /seed\n", proxy.addr),
    )
    .unwrap();
    let mut first = options(other.path(), format!("{}/{}:1", proxy.addr, unique_repo("tail-other")));
    first.cache = Some(cache_opts.clone());
    build_collecting(&first).0.unwrap_or_else(|e| panic!("the earlier build failed: {e}"));
    let from = proxy.seen().len();
    // The RUN layers' commits there.
    proxy.inject("PUT", &format!("/{cache}/blobs/uploads/"), faults::Fault::Hold { pause: Duration::from_secs(3) }, 2);
    let mut o = options(ctx.path(), format!("{}/{dest}:1", proxy.addr));
    o.cache = Some(cache_opts);
    let events = Arc::new(Mutex::new(Vec::new()));
    let at_last_run = Arc::new(Mutex::new(None));
    // Sent before the last RUN: the cache repository's two sessions (below), the destination's
    // three, its question about busybox's layer.
    let base = layer_of(&env().busybox());
    let (c, d, b) = (cache.clone(), dest.clone(), base.clone());
    let sent = Box::new(move |seen: &[String]| {
        let seen = &seen[from..];
        let asked = seen.iter().any(|s| *s == format!("HEAD /v2/{d}/blobs/{b}"));
        opened(seen, &c) >= 2 && opened(seen, &d) >= 3 && asked
    });
    let marks = Marks { proxy: proxy.clone(), events: events.clone(), at_last_run: at_last_run.clone(), sent };
    let r = trowel_engine::engine::build(&o, &Emitter::new(vec![Box::new(marks)]), &mut Continue);
    let digest = r.unwrap_or_else(|e| panic!("build failed: {e}")).digest().to_string();
    let events = events.lock().unwrap().clone();
    let seen = proxy.seen().split_off(from);
    let at = at_last_run.lock().unwrap().expect("the last RUN started") - from;
    let (before, after) = seen.split_at(at);
    // Before the last RUN: the cache repository's two (the first RUN's own, the last RUN's
    // ahead), the destination's three (the push check's, two for the last layers).
    assert_eq!(opened(before, &cache), 2, "{seen:#?}");
    assert_eq!(opened(before, &dest), 3, "{seen:#?}");
    assert_eq!(
        opened(after, &cache) + opened(after, &dest),
        0,
        "a session opened after the last RUN started: {seen:#?}"
    );
    let asked = |r: &[String]| r.iter().filter(|s| **s == format!("HEAD /v2/{dest}/blobs/{base}")).count();
    assert_eq!((asked(before), asked(after)), (1, 0), "{seen:#?}");
    // The last RUN's small layer did not wait for the cache repository; the first RUN's did.
    let layers = written(&events);
    assert_eq!(layers.len(), 3, "{events:?}");
    let action = |layer: &str| {
        events.iter().find_map(|e| match e {
            Event::BlobPushed { digest, action, .. } if digest.to_string() == layer => Some(*action),
            _ => None,
        })
    };
    assert_eq!(action(&base), Some(BlobPushAction::Mounted));
    assert_eq!(action(&layers[0]), Some(BlobPushAction::Mounted));
    assert_eq!(action(&layers[1]), Some(BlobPushAction::Uploaded));
    assert_eq!(action(&layers[2]), Some(BlobPushAction::Uploaded));
    // Nothing left open: every session was committed or cancelled.
    for repo in [&cache, &dest] {
        assert_eq!(
            opened(&seen, repo),
            requests(&seen, "PUT", repo) + requests(&seen, "DELETE", repo),
            "{repo}: {seen:#?}"
        );
    }
    // The image, as an independent client reads it, and both RUNs' cache entries.
    let unpacked = pull_and_unpack(&format!("{}/{dest}@{digest}", env().registry));
    assert_eq!(std::fs::metadata(unpacked.rootfs().join("one")).unwrap().len(), 102_400);
    for (file, text) in [("two", "two\n"), ("f", "f\n")] {
        assert_eq!(std::fs::read_to_string(unpacked.rootfs().join(file)).unwrap(), text);
    }
    let stored = events.iter().filter(|e| matches!(e, Event::CacheStored { .. })).count();
    assert_eq!(stored, 3, "both RUNs' entries and the COPY's record: {events:?}");
}

/// A stage served wholly from the cache opens no session ahead: the unchanged rebuild opens
/// only the push check's, which it cancels (nothing to push). Its config-only steps (`ENV`,
/// `LABEL`, `CMD`, which run even in a rebuild) write nothing either: they neither open
/// sessions nor ask the destination about the base's layers or the cache repository about
/// the entries' empty config.
#[test]
fn a_rebuild_served_from_the_cache_opens_no_session_ahead() {
    let proxy = Arc::new(FaultProxy::start(&env().registry));
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}/busybox:1.35\nENV GREETING=hello\nLABEL bench=w1\nRUN echo one > /one\nCMD [\"cat\", \"/one\"]\n",
            proxy.addr
        ),
    )
    .unwrap();
    let (cache, dest) = (unique_repo("tail-warm-cache"), unique_repo("tail-warm"));
    let mut o = options(ctx.path(), format!("{}/{dest}:1", proxy.addr));
    o.cache = Some(CacheOptions { repo: Some(format!("{}/{cache}", proxy.addr)), ..CacheOptions::default() });
    build_collecting(&o).0.unwrap_or_else(|e| panic!("cold build failed: {e}"));
    let from = proxy.seen().len();
    let (r, events) = build_collecting(&o);
    r.unwrap_or_else(|e| panic!("rebuild failed: {e}"));
    assert!(
        events.iter().any(|e| matches!(e, Event::CacheLookup { result: trowel_events::CacheResult::Hit { .. }, .. }))
    );
    let seen = proxy.seen().split_off(from);
    assert_eq!(opened(&seen, &cache), 0, "{seen:#?}");
    assert_eq!(opened(&seen, &dest), 1, "the push check's alone: {seen:#?}");
    assert_eq!(requests(&seen, "DELETE", &dest), 1, "{seen:#?}");
    let asked = |repo: &str| seen.iter().filter(|s| s.starts_with(&format!("HEAD /v2/{repo}/blobs/"))).count();
    assert_eq!((asked(&dest), asked(&cache)), (0, 0), "{seen:#?}");
}
