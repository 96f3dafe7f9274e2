//! The registry probed once when pulled from and pushed to, and the push check's upload
//! session: it carries the first upload, a failed build cancels it, a refused one is replaced.

use super::*;

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

/// Requests of `seen` that start with `method path-prefix` and have no `?mount=`.
fn sessions(seen: &[String], method: &str, repo: &str) -> usize {
    let prefix = format!("{method} /v2/{repo}/blobs/uploads/");
    seen.iter().filter(|s| s.starts_with(&prefix) && !s.contains("mount=")).count()
}

/// The push check's upload session is the push's first upload, not opened and deleted for
/// nothing: every session the build opened in the destination was committed, none deleted,
/// and the image is whole as an independent client reads it. (Two: the check's, which the
/// config takes, and the one opened for the RUN's layer as the RUN started, `tail_sessions.rs`;
/// the RUN sleeps so that it is open before the layer is written.)
#[test]
fn the_push_check_s_upload_session_carries_the_first_upload() {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {}/busybox:1.35\nRUN sleep 1 && echo hi > /x\n", proxy.addr),
    )
    .unwrap();
    let repo = unique_repo("spare-session");
    let (r, _) = build_collecting(&options(ctx.path(), format!("{}/{repo}:1", proxy.addr)));
    r.unwrap_or_else(|e| panic!("build failed: {e}"));
    let seen = proxy.seen();
    assert_eq!(sessions(&seen, "DELETE", &repo), 0, "{seen:?}");
    let opened = sessions(&seen, "POST", &repo);
    assert_eq!(opened, 2, "the push check's and the last layer's: {seen:?}");
    assert_eq!(opened, sessions(&seen, "PUT", &repo), "a session opened and not committed: {seen:?}");
    let unpacked = pull_and_unpack(&format!("{}/{repo}:1", env().registry));
    assert_eq!(std::fs::read_to_string(unpacked.rootfs().join("x")).unwrap(), "hi\n");
}

/// A build that fails leaves the push check's session cancelled, and the one opened ahead for
/// its RUN's layer, and commits nothing.
#[test]
fn a_failed_build_cancels_the_push_check_s_upload_session() {
    let proxy = FaultProxy::start(&env().registry);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}/busybox:1.35\nRUN exit 3\n", proxy.addr)).unwrap();
    let repo = unique_repo("spare-failed");
    let (r, _) = build_collecting(&options(ctx.path(), format!("{}/{repo}:1", proxy.addr)));
    assert!(r.is_err(), "the build should fail");
    let seen = proxy.seen();
    assert_eq!(sessions(&seen, "POST", &repo), 2, "{seen:?}");
    assert_eq!(sessions(&seen, "DELETE", &repo), 2, "{seen:?}");
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
