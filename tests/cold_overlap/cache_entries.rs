//! Cache entries written beside the push: without looking for their own blobs, again when
//! refused once for an unknown blob, never holding the push up for a layer kept out of them, and
//! each two round trips after its layer.

use super::*;

/// A cold build writes its cache entries without asking the cache repository for blobs it
/// cannot have: each entry's config rides in its manifest, and a layer streamed there was
/// committed by this build. So the only blob of the cache repository looked for with `HEAD` is
/// the empty config all entries share, once (each was one round trip on the registry's CPU per
/// entry, twice). A layer streamed
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
    // Only the empty config every entry names (bearing no key) is looked for, once.
    let heads: Vec<&String> = seen.iter().filter(|s| s.starts_with(&format!("HEAD /v2/{cache}/blobs/"))).collect();
    let empty =
        format!("HEAD /v2/{cache}/blobs/sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    assert_eq!(heads, [&empty], "blobs looked for in the cache repository\n{seen:?}");
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
    // One of the RUN entry's two tags (its key's and its pointer's, sent at once) is held at
    // the registry. The RUN's layer itself was streamed there, so the push can mount it at once.
    let hold = Duration::from_secs(10);
    proxy.inject("PUT", &format!("/v2/{cache}/manifests/"), faults::Fault::Hold { pause: hold }, 1);
    let (r, events) = build_collecting(&o);
    r.unwrap_or_else(|e| panic!("build failed: {e}"));
    assert!(proxy.unused().is_empty(), "the entry was never written: {:?}", proxy.seen());
    let seen = proxy.seen();
    let image = seen.iter().position(|s| s.starts_with(&format!("PUT /v2/{repo}/manifests/1"))).expect("pushed");
    // The cache repository's tags, in order: the RUN entry's two (one held), then the COPY's
    // reference record's two (after the push).
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
    // The push took less than the hold: it did not wait for the held entry.
    let push_ms = events
        .iter()
        .find_map(|e| match e {
            Event::PushFinished { duration_ms, .. } => Some(*duration_ms),
            _ => None,
        })
        .expect("the push finished");
    assert!(push_ms < hold.as_millis() as u64 / 2, "the push waited for the held entry ({push_ms} ms): {seen:?}");
    true
}

/// A RUN's cache entry is two round trips after its layer: the shared empty config goes into an
/// upload session opened beside the layer's stream (no `POST` once the entry's tags go; the
/// layer's own session was opened as the RUN started, `tail_sessions.rs`, so its commit may
/// well come first), then the key's tag and the pointer's go at once (the second sent while the
/// first is held). On a small cold build, the last step's entry was most of what the build
/// waited for after its push.
#[test]
fn a_run_s_entry_is_two_round_trips_after_its_layer() {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}/busybox:1.35\nRUN echo x > /x\n", proxy.addr))
        .unwrap();
    let (repo, cache) = (unique_repo("entry-trips"), unique_repo("entry-trips-cache"));
    let mut o = options(ctx.path(), format!("{}/{repo}:1", proxy.addr));
    o.cache = Some(CacheOptions { repo: Some(format!("{}/{cache}", proxy.addr)), ..CacheOptions::default() });
    let hold = Duration::from_secs(2);
    proxy.inject("PUT", &format!("/v2/{cache}/manifests/"), faults::Fault::Hold { pause: hold }, 1);
    let (r, events) = build_collecting(&o);
    r.unwrap_or_else(|e| panic!("build failed: {e}"));
    assert_eq!(events.iter().filter(|e| matches!(e, Event::CacheStored { .. })).count(), 1, "{events:?}");
    let seen = proxy.seen_at();
    let of = |prefix: String| -> Vec<(Instant, &String)> {
        seen.iter().filter(|(_, s)| s.starts_with(&prefix)).map(|(t, s)| (*t, s)).collect()
    };
    let posts = of(format!("POST /v2/{cache}/blobs/uploads/"));
    let commits = of(format!("PUT /v2/{cache}/blobs/uploads/"));
    let tags = of(format!("PUT /v2/{cache}/manifests/"));
    let all: Vec<&String> = seen.iter().map(|(_, s)| s).collect();
    assert_eq!((posts.len(), commits.len(), tags.len()), (2, 2, 2), "{all:?}");
    assert!(posts.iter().all(|p| p.0 < tags[0].0), "a session opened after the entry's first tag: {all:?}");
    let apart = tags[1].0.duration_since(tags[0].0);
    assert!(apart < hold / 2, "the second tag waited for the first ({apart:?}): {all:?}");
}
