//! The image's layers sent early: a COPY layer streamed to the destination while it is
//! written, committed by the push alongside the other blobs (or in the commit when small), never
//! by a build that fails; a COPY's reference record tagged only after the push.

use super::*;

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
