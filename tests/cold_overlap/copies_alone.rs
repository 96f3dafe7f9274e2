//! A stage of COPYs alone (kept out of the cache repository, in no image) writes no pointer tag
//! of its own, so whether its base is worth fetching ahead is told by the stage that reads it
//! first (`engine/prefetch/cold.rs`): cold, the base is requested before the first step; in a
//! fresh pod whose reader the cache serves, the COPY is deferred and nothing fetches the base.

use super::*;
use trowel_engine::engine::Controller;

/// A controller that never pauses and lets unneeded COPYs be deferred, as `trowel build`'s,
/// but at each `FROM` holds the build until a `GET` of `layer` beyond the `before` earlier
/// ones came through `proxy`, or `wait` passed (a download begun ahead has had its chance).
struct Watching {
    proxy: Arc<FaultProxy>,
    layer: String,
    before: usize,
    wait: Duration,
    seen: Vec<bool>,
}

impl Controller for Watching {
    fn pause_reasons(&mut self, at: &Checkpoint) -> Vec<trowel_events::PauseReason> {
        if at.keyword == "FROM" && at.when == trowel_events::When::BeforeStep {
            let t0 = Instant::now();
            while gets_of(&self.proxy, &self.layer) == self.before && t0.elapsed() < self.wait {
                std::thread::sleep(Duration::from_millis(20));
            }
            self.seen.push(gets_of(&self.proxy, &self.layer) > self.before);
        }
        Vec::new()
    }
    fn defers_unneeded_steps(&self) -> bool {
        true
    }
}

/// Builds with [`Watching`]: what it saw at each `FROM`, and the events.
fn build_seeing(o: &BuildOptions, proxy: &Arc<FaultProxy>, layer: &str, wait: Duration) -> (Vec<bool>, Vec<Event>) {
    let before = gets_of(proxy, layer);
    let mut watching = Watching { proxy: proxy.clone(), layer: layer.to_string(), before, wait, seen: Vec::new() };
    let events = Arc::new(Mutex::new(Vec::new()));
    let emitter = Emitter::new(vec![Box::new(Collect(events.clone()))]);
    trowel_engine::engine::build(o, &emitter, &mut watching).unwrap_or_else(|e| panic!("build failed: {e}"));
    let events = events.lock().unwrap().clone();
    (watching.seen, events)
}

#[test]
fn a_stage_of_copies_alone_fetches_its_base_ahead_only_when_its_reader_is_cold() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("src.txt"), "src\n").unwrap();
    let layer = layer_of(&env().busybox());
    // The image's stage is on scratch: busybox's layer is src's alone to fetch.
    let proxy = Arc::new(FaultProxy::start(&env().registry));
    let dockerfile = format!(
        "FROM {}/busybox:1.35 AS src\nCOPY src.txt /src/\nFROM src AS child\nRUN cat /src/src.txt > /dist.txt\nFROM scratch\nCOPY --from=child /dist.txt /out/\n",
        proxy.addr
    );
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let cache_repo = format!("{}/{}", env().registry, unique_repo("alone-cache"));
    // Each build a fresh pod: a work dir of its own, no cache dir, the same cache repository.
    let build = |wait: Duration| {
        let work = tempfile::tempdir().unwrap();
        let dest = format!("{}/{}:1", env().registry, unique_repo("alone"));
        let mut o = options(ctx.path(), dest.clone());
        o.work_dir = work.path().to_path_buf();
        o.cache = Some(CacheOptions { repo: Some(cache_repo.clone()), ..CacheOptions::default() });
        assert!(!o.cache.as_ref().unwrap().copy_layers, "kaniko's flags: COPY layers out of the cache repository");
        let (seen, events) = build_seeing(&o, &proxy, &layer, wait);
        (seen, events, dest)
    };

    // Cold: the child's pointer is absent, so src's base is requested before its first step.
    let (seen, _, dest) = build(PATIENCE);
    assert_eq!(seen.first(), Some(&true), "cold: the base requested before the first FROM: {:?}", proxy.seen());
    let cold = gets_of(&proxy, &layer);
    let image = pull_and_unpack(&dest);
    assert_eq!(std::fs::read_to_string(image.rootfs().join("out/dist.txt")).unwrap(), "src\n");

    // A fresh pod, nothing changed: the child hits, src's COPY is deferred, and no layer of
    // src's base is asked for, though the build is held 3 s before its last stage.
    let (seen, events, dest) = build(Duration::from_secs(3));
    assert_eq!(seen, vec![false, false, false], "fresh pod: {:?}", proxy.seen());
    assert_eq!(gets_of(&proxy, &layer), cold, "fresh pod: no download of src's base: {:?}", proxy.seen());
    let deferred = events.iter().any(
        |e| matches!(e, Event::StepFinished { id, status: trowel_events::StepStatus::Deferred, .. } if id.stage == 0),
    );
    assert!(deferred, "src's COPY deferred");
    assert!(!events.iter().any(|e| matches!(e, Event::BaseUnpacked { .. })), "no root made");
    let image = pull_and_unpack(&dest);
    assert_eq!(std::fs::read_to_string(image.rootfs().join("out/dist.txt")).unwrap(), "src\n");
}
