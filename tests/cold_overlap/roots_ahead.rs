//! A cold stage's root made while its cache keys are planned, and an edited COPY's root while
//! the cache repository answers: the root is ready (or being made) before the step needs it; a
//! cold base's layers downloading before its config is in.

use super::*;

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

/// A cold build's base layers start downloading with the base's manifest, before its config is
/// in, when the unpacked-layer store can hold none of them (here: empty): the config's `GET` is
/// held, and the layer's `GET` comes meanwhile. (With entries in the store, the config's
/// diff_ids tell which layers it holds, and the downloads wait for them: the edited rebuild
/// above mounts its root from the store.)
#[test]
fn a_cold_base_s_layers_download_before_its_config_is_in() {
    let proxy = FaultProxy::start(&env().registry);
    let manifest = skopeo_manifest(&env().busybox());
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}/busybox:1.35\nRUN echo x > /x\n", proxy.addr))
        .unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache_repo = format!("{}/{}", proxy.addr, unique_repo("config-held-cache"));
    let mut o = options(ctx.path(), format!("{}/{}:1", proxy.addr, unique_repo("config-held")));
    o.cache = Some(repo_and_dir(&cache_repo, cache_dir.path()));
    o.layers.unpacked_store = Some(cache_dir.path().join("unpacked"));
    o.layers.unpacked_store_min_size = 0;
    let hold = Duration::from_secs(3);
    proxy.inject("GET", &format!("/blobs/{config}"), faults::Fault::Hold { pause: hold }, 1);
    let (r, _) = build_collecting(&o);
    r.unwrap_or_else(|e| panic!("build failed: {e}"));
    let seen = proxy.seen_at();
    let at = |digest: &str| {
        seen.iter().find(|(_, s)| s.starts_with("GET ") && s.contains(&format!("/blobs/{digest}"))).map(|(t, _)| *t)
    };
    let all: Vec<&String> = seen.iter().map(|(_, s)| s).collect();
    let (config_at, layer_at) = (at(&config).expect("config fetched"), at(&layer).expect("layer fetched"));
    assert!(
        layer_at < config_at + hold / 2,
        "the layer waited for the config ({:?} after its GET): {all:?}",
        layer_at.saturating_duration_since(config_at)
    );
}
