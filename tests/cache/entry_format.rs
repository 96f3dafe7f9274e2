//! The form of a cache entry in the registry: its config carried in its manifest (one request to
//! read, none of its own to write), a config too large for that in a blob, and entries an older
//! trowel wrote (every config a blob) still read. Checked with skopeo and curl, and through a
//! proxy that sees every request.

use super::*;

const EMPTY: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// `c`'s cache repository's path on its registry, and the same repository on the plain test
/// registry (where `c.cache_repo` may name a proxy in front of it).
fn cache_path(c: &Ctx) -> String {
    c.cache_repo.split_once('/').unwrap().1.to_string()
}

fn direct(c: &Ctx) -> String {
    format!("{}/{}", env().registry, cache_path(c))
}

/// The key of the step at Dockerfile `line`, as a build's trace gave it.
fn key_at(o: &Outcome, line: u64) -> String {
    o.events
        .iter()
        .find(|e| e["event"] == "cache_lookup" && e["components"]["line"] == line)
        .map(|e| e["key"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no lookup at line {line}"))
}

/// The digests of the blobs committed to `path` among `seen` (a commit's `PUT` names its digest).
fn committed(seen: &[String], path: &str) -> Vec<String> {
    let commit = format!("PUT /v2/{path}/blobs/uploads/");
    let mut d: Vec<String> = seen
        .iter()
        .filter(|s| s.starts_with(&commit))
        .map(|s| s.split("digest=").nth(1).unwrap().split('&').next().unwrap().replace("%3A", ":"))
        .collect();
    d.sort();
    d
}

/// An entry is an OCI artifact whose config is the shared empty blob and whose config document
/// rides in an annotation: written with its layer and its tags alone (the only other blob is the
/// empty one, once per repository), read back by a hit with one `GET` of its manifest and no
/// blob. On the old code every entry committed a config blob of its own, and every hit fetched it.
#[test]
fn an_entry_carries_its_config_in_its_manifest() {
    let proxy = faults::FaultProxy::start(&env().registry);
    let c = Ctx::at(&proxy.addr, "inline-entry", &format!("{}RUN echo one > /one\nRUN echo two > /two\n", from()));
    let first = c.build(&[]);
    let path = cache_path(&c);
    let mut layers = vec![EMPTY.to_string()];
    for line in [2, 3] {
        let key = key_at(&first, line);
        let m = skopeo_manifest(&format!("{}:{key}", direct(&c)));
        assert_eq!(m["artifactType"], "application/vnd.dev.trowel.cache.entry.v1+json", "{m}");
        assert_eq!(m["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
        assert_eq!(m["config"]["digest"], EMPTY);
        assert_eq!(m["config"]["size"], 2);
        let config = cache_entry_config(&format!("{}:{key}", direct(&c)));
        assert_eq!(config["dev.trowel.cache"]["key"], key.as_str());
        assert_eq!(
            config["history"][0]["created_by"],
            format!("RUN echo {} > /{0}", ["one", "two"][line as usize - 2])
        );
        let m_layers = m["layers"].as_array().unwrap();
        assert_eq!(m_layers.len(), 1);
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
        layers.push(m_layers[0]["digest"].as_str().unwrap().to_string());
    }
    layers.sort();
    assert_eq!(committed(&proxy.seen(), &path), layers, "the layers and the empty config, and no config of its own");
    // The shared config as an independent client reads it.
    let o = run(Command::new("curl").args(["-s", &format!("http://{}/v2/{path}/blobs/{EMPTY}", env().registry)]));
    assert_eq!(stdout(&o), "{}");

    let before = proxy.seen().len();
    let second = c.build(&[]);
    second.all_hit();
    assert_eq!(first.digest, second.digest);
    let seen = proxy.seen().split_off(before);
    let from_cache: Vec<&String> = seen.iter().filter(|s| s.contains(&format!(" /v2/{path}/"))).collect();
    for line in [2, 3] {
        let get = format!("GET /v2/{path}/manifests/{}", key_at(&second, line));
        assert_eq!(from_cache.iter().filter(|s| ***s == get).count(), 1, "{from_cache:?}");
    }
    // (A layer may be downloaded, to be checked or pushed; no config is.)
    let read: Vec<&String> = from_cache.iter().copied().filter(|s| s.contains("/blobs/")).collect();
    assert!(
        read.iter().all(|s| layers.iter().any(|l| l != EMPTY && s.ends_with(&format!("/blobs/{l}")))),
        "a hit reads no config blob: {read:?} (layers {layers:?})"
    );
}

/// An entry an older trowel wrote (its config a blob of its own) is still a hit, read through
/// its blob, and gives the same image.
#[test]
fn an_entry_written_the_older_way_is_still_a_hit() {
    let proxy = faults::FaultProxy::start(&env().registry);
    let c = Ctx::at(&proxy.addr, "older-entry", &format!("{}RUN echo old > /old\n", from()));
    let first = c.build(&[]);
    let key = key_at(&first, 2);
    let repo = direct(&c);
    let inline = skopeo_manifest(&format!("{repo}:{key}"));
    let doc = inline["annotations"]["dev.trowel.cache.config"].as_str().unwrap().as_bytes().to_vec();
    let digest = put_blob(&repo, &doc);
    let older = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": doc.len()},
        "layers": inline["layers"],
    });
    put_manifest(&repo, &key, &older);
    assert_eq!(skopeo_config(&format!("{repo}:{key}"))["dev.trowel.cache"]["key"], key.as_str());

    let before = proxy.seen().len();
    let second = c.build(&[]);
    second.all_hit();
    assert_eq!(first.digest, second.digest);
    let config_get = format!("GET /v2/{}/blobs/{digest}", cache_path(&c));
    assert!(proxy.seen()[before..].contains(&config_get), "the config was read from its blob");
}

/// A config too large for a manifest (a COPY of 3,000 files lists each one: about 540 KB) keeps
/// a blob of its own, and is a hit.
#[test]
fn a_config_too_large_for_a_manifest_keeps_a_blob_of_its_own() {
    let c = Ctx::new("large-entry", &format!("{}COPY src/ /app/\n", from()));
    for i in 0..3000 {
        c.write(&format!("src/file-with-a-fairly-long-name-number-{i:05}.txt"), &format!("{i}\n"));
    }
    let first = c.build(&[]);
    let key = key_at(&first, 2);
    let m = skopeo_manifest(&format!("{}:{key}", c.cache_repo));
    assert_eq!(m["config"]["mediaType"], "application/vnd.oci.image.config.v1+json", "{}", m["config"]);
    assert!(m["config"]["size"].as_u64().unwrap() > 256 << 10);
    assert!(m.get("artifactType").is_none() && m.get("annotations").is_none());
    assert_eq!(skopeo_config(&format!("{}:{key}", c.cache_repo))["dev.trowel.cache"]["key"], key.as_str());
    let second = c.build(&[]);
    second.all_hit();
    assert_eq!(first.digest, second.digest);
}

/// A registry that refuses the new form (as Quay does for config media types it was not told to
/// allow: `MANIFEST_INVALID`) gets the older one, the entry's config a blob of its own, for an
/// entry and for a layer reference record alike; no write is lost and a rebuild is served from
/// them. Without the fallback, the entry went in the refused form once the two refusals were
/// over (the retry for a blob being linked), and a registry that always refuses got none.
#[test]
fn a_registry_that_refuses_the_new_form_gets_the_older_one() {
    const REFUSED: &str = r#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":"config media type not allowed"}]}"#;
    let proxy = faults::FaultProxy::start(&env().registry);
    for (name, kaniko_flags, df) in [
        ("refused-entry", false, format!("{}RUN echo one > /one\n", from())),
        ("refused-record", true, format!("{}COPY f /f\n", from())),
    ] {
        let c = Ctx::at(&proxy.addr, name, &df);
        c.write("f", "f\n");
        let path = cache_path(&c);
        // Both tags of the one entry, sent at once.
        let manifests = format!("/v2/{path}/manifests/");
        proxy.inject("PUT", &manifests, faults::Fault::Answer { code: 400, body: REFUSED }, 2);
        let build = |c: &Ctx| if kaniko_flags { c.build_run_layers_only(&[]) } else { c.build(&[]) };
        let first = build(&c);
        assert!(!first.log.contains("could not write the cache entry"), "{}", first.log);
        assert!(proxy.unused().is_empty(), "{:?}", proxy.unused());
        let key = key_at(&first, 2);
        let m = skopeo_manifest(&format!("{}:{key}", direct(&c)));
        assert!(m.get("annotations").is_none(), "{m}");
        assert_ne!(m["config"]["mediaType"], "application/vnd.oci.empty.v1+json", "{m}");
        assert_eq!(cache_entry_config(&format!("{}:{key}", direct(&c)))["dev.trowel.cache"]["key"], key.as_str());
        let second = build(&c);
        second.all_hit();
        assert_eq!(first.digest, second.digest);
    }
}
