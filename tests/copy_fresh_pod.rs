//! COPY/ADD reuse in a fresh CI pod: kaniko's usual flags (`--cache=true --cache-repo …`, no
//! `--cache-copy-layers`) and no cache dir, so only the cache repository is shared between
//! builds. Against the real registry, checked with skopeo and umoci.
//!
//! What is proved: the first build tags a layer reference record (no layer) under the COPY's
//! key; an unchanged rebuild from nothing hits every step, downloads and uploads no COPY layer,
//! unpacks no base and gives the same image (`--reproducible`); the cache repository holds no
//! COPY layer (every tag checked); a RUN that must run after a COPY hit sees the image's files;
//! another destination on the same registry mounts the layer from the one the record names;
//! `--no-push --tar-path` writes an archive with the layer's bytes;
//! the layer's blob deleted → a miss saying so and a correct build; an edit → a miss naming the
//! file; a hostile record → refused with the reason, the step runs, and the image is right.

mod common;

use std::process::Command;

use common::traced::{Project, curl};
use common::*;
use serde_json::Value;

/// A layer reference record's media type (`cache/layer_ref.rs`).
const REF: &str = "application/vnd.dev.trowel.cache.layer-ref.v1+json";

/// A COPY whose wildcard matches nothing makes no layer, so there is nothing to keep out of the
/// cache repository and nothing for a reference record to name: its entry goes into the cache
/// repository as a RUN's would. Before, a fresh pod missed it every time ("no cache entry for
/// this step yet", which never came) and made the stage's root to copy nothing.
#[test]
fn a_copy_that_copies_nothing_is_found_by_a_fresh_pod() {
    let df = format!("FROM {}\nCOPY nomatch*.cfg /none/\nRUN echo built > /built\n", env().busybox());
    let p = Project::new("freshpod-empty", &df);
    p.write("kept.txt", "a file the wildcard does not match\n");
    let first = p.build(&[]);
    assert_eq!(
        (first.at(2), first.at(3)),
        ("miss: no cache entry for this step yet".into(), "miss: no cache entry for this step yet".into())
    );
    assert_eq!(first.of("layer_written").count(), 1, "the COPY made a layer");
    let key = first.lookup(2)["key"].as_str().unwrap().to_string();

    // The COPY's entry: a manifest of no layers, not a reference record.
    let manifests = p.cache_manifests();
    let (_, m) = manifests.iter().find(|(t, _)| *t == key).expect("an entry is tagged with the COPY's key");
    assert_eq!(m["layers"], serde_json::json!([]));
    assert_eq!(m["artifactType"], "application/vnd.dev.trowel.cache.entry.v1+json", "{m}");

    // A fresh pod: both steps hit, no root is made; the same image. Untraced (a trace lists
    // the RUN's cached layer, which downloads it), not one blob is downloaded.
    let again = p.build(&[]);
    assert_eq!((again.at(2), again.at(3)), ("hit".into(), "hit".into()));
    assert_eq!(again.of("base_unpacked").count(), 0);
    assert_eq!(again.digest(), first.digest());
    let log = p.build_untraced();
    assert!(log.contains("Cache: 2 hit(s), 0 miss(es)") && !log.contains("Pulled "), "{log}");
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/built"), "built\n");
    assert!(!u.rootfs().join("none").exists(), "a COPY of nothing made its destination");
}

impl Project {
    /// The same build without a trace, at debug verbosity; its log.
    fn build_untraced(&self) -> String {
        let fresh = tempfile::tempdir().unwrap();
        let out = run(trowel()
            .args(["build", "--cache=true", "--cache-repo", &self.cache_repo, "--reproducible", "--cache-dir"])
            .arg(fresh.path().join("cache"))
            .arg("--work-dir")
            .arg(fresh.path().join("work"))
            .arg("--dockerfile")
            .arg(self.dir.path().join("Dockerfile"))
            .args(["--destination", &self.dest, "--verbosity", "debug", "--context"])
            .arg(self.dir.path().join("ctx")));
        assert_ok(&out);
        stderr(&out)
    }

    /// Every tag of the cache repository with its raw manifest.
    fn cache_manifests(&self) -> Vec<(String, Value)> {
        common::tagged_manifests(&self.cache_repo)
    }
}

fn dockerfile() -> String {
    format!(
        "FROM {}\nARG FLAVOUR=plain\nCOPY src /app/src\nRUN cat /app/src/*.c > /built && echo $FLAVOUR >> /built\n",
        env().busybox()
    )
}

#[test]
fn an_unchanged_copy_is_reused_from_a_fresh_pod_by_reference_and_the_cache_repo_holds_no_copy_layer() {
    let p = Project::new("freshpod", &dockerfile());
    p.write("src/main.c", "int main() { return 0; }\n");
    p.write("src/util.c", "int util;\n");

    let first = p.build(&[]);
    assert_eq!(first.at(3), "miss: no cache entry for this step yet");
    let copy_layer = first.layer_at(3);
    let key = first.lookup(3)["key"].as_str().unwrap().to_string();
    let stored: Vec<&Value> = first.of("cache_stored").collect();
    let record = format!("registry-ref:{}:{key}", p.cache_repo);
    assert!(stored.iter().any(|e| e["reference"] == record.as_str()), "{stored:?}");

    // The record: a manifest of no layers, marked as what it is (skopeo refuses to treat it as
    // an image), and no tag of the cache repository holds the COPY's layer.
    let manifests = p.cache_manifests();
    let (_, m) = manifests.iter().find(|(t, _)| *t == key).expect("a record is tagged with the COPY's key");
    assert_eq!(m["artifactType"], "application/vnd.dev.trowel.cache.layer-ref.v1+json");
    assert_eq!(m["layers"], serde_json::json!([]));
    let o = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}:{key}", p.cache_repo),
    ]));
    assert!(!o.status.success(), "skopeo took the record for an image");
    for (tag, m) in &manifests {
        let layers: Vec<&str> = m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap()).collect();
        assert!(!layers.contains(&copy_layer.as_str()), "{tag} holds the COPY layer");
    }

    // A fresh pod, nothing changed: every step hits, the COPY by reference to the destination;
    // nothing is unpacked or uploaded, and the image is the same. (A traced build downloads
    // cached layers to list them for the trace: downloads are checked untraced below.)
    let again = p.build(&[]);
    assert_eq!((again.at(3), again.at(4)), ("hit".into(), "hit".into()));
    let dest_repo = p.dest.trim_end_matches(":latest");
    assert_eq!(again.lookup(3)["result"]["reference"], format!("registry-ref:{dest_repo}@{copy_layer}"));
    assert!(again.log.contains(&format!("from the layer in {dest_repo}")), "{}", again.log);
    assert_eq!(again.of("base_unpacked").count(), 0);
    assert_eq!(again.uploaded(), Vec::<String>::new());
    assert_eq!(again.digest(), first.digest());
    // Untraced, as CI runs it: not one blob downloaded or uploaded (the debug log names each).
    let log = p.build_untraced();
    assert!(log.contains(&format!("from the layer in {dest_repo}")), "{log}");
    assert!(!log.contains("Pulled ") && !log.contains(": uploaded"), "{log}");
    assert!(log.contains(&format!("Pushed {dest_repo}@{}", first.digest())), "{log}");

    // `--no-push --tar-path`: still a hit, and the archive has the layer's bytes (fetched for
    // it from the destination, verified), as skopeo and umoci read it.
    let tar = p.dir.path().join("image.tar");
    let archived = p.build(&["--no-push", "--tar-path", tar.to_str().unwrap()]);
    assert_eq!(archived.at(3), "hit");
    let layout = p.dir.path().join("layout");
    let oci = format!("oci:{}:x", layout.display());
    assert_ok(&run(Command::new("skopeo").args(["copy", "-q", &format!("docker-archive:{}", tar.display()), &oci])));
    let u = unpack_layout(tempfile::tempdir().unwrap(), &layout, "x");
    assert_eq!(Tree::content(&u.rootfs(), "/app/src/main.c"), "int main() { return 0; }\n");
    assert_eq!(Tree::content(&u.rootfs(), "/built"), "int main() { return 0; }\nint util;\nplain\n");

    // A RUN that must run after the COPY hit: the layer is fetched (verified) and applied, and
    // the RUN sees the image's files.
    let flavoured = p.build(&["--build-arg", "FLAVOUR=spicy"]);
    assert_eq!(flavoured.at(3), "hit");
    assert!(flavoured.at(4).starts_with("miss: "), "{}", flavoured.at(4));
    assert!(flavoured.downloaded().contains(&copy_layer));
    assert!(!flavoured.uploaded().contains(&copy_layer));
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/built"), "int main() { return 0; }\nint util;\nspicy\n");
    assert_eq!(Tree::content(&u.rootfs(), "/app/src/util.c"), "int util;\n");

    // Another destination on the same registry: the blob is mounted from the one the record
    // names, not uploaded.
    let other = format!("{}/{}:1", env().registry, unique_repo("freshpod-other"));
    let o = p.build(&["--destination", &other]);
    assert_eq!(o.at(3), "hit");
    let sent = o.of("blob_pushed").find(|e| e["destination"] == other.as_str() && e["digest"] == copy_layer.as_str());
    assert_eq!(sent.expect("the COPY layer reached the other destination")["action"], "mounted");
    let u = pull_and_unpack(&other);
    assert_eq!(Tree::content(&u.rootfs(), "/app/src/main.c"), "int main() { return 0; }\n");

    // One edit: the COPY misses, naming the file, with nothing but the cache repository.
    p.write("src/util.c", "int util = 2;\n");
    let edited = p.build(&[]);
    assert_eq!(edited.at(3), "miss: COPY src: 1 file changed (src/util.c)");
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/built"), "int main() { return 0; }\nint util = 2;\nplain\n");
}

#[test]
fn a_missing_blob_or_a_hostile_record_is_a_miss_and_the_build_is_right() {
    let p = Project::new("freshpod-gone", &dockerfile());
    p.write("src/a.c", "a\n");
    let first = p.build(&[]);
    let layer = first.layer_at(3);
    let key = first.lookup(3)["key"].as_str().unwrap().to_string();

    // The layer's blob deleted from the only repository that had it (as a registry's garbage
    // collection would after the image was deleted).
    let repo = p.dest.trim_end_matches(":latest").trim_start_matches(&format!("{}/", env().registry)).to_string();
    let url = format!("http://{}/v2/{repo}/blobs/{layer}", env().registry);
    assert_eq!(curl(&["-X", "DELETE", &url]), "202");
    let gone = p.build(&[]);
    let why = gone.at(3);
    assert!(why.starts_with("miss: the layer ") && why.contains("is gone"), "{why}");
    assert!(gone.uploaded().contains(&layer), "the COPY ran and its layer was pushed again");
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/app/src/a.c"), "a\n");
    assert_eq!(Tree::content(&u.rootfs(), "/built"), "a\nplain\n");

    // The record the rebuild wrote, with a layer size other than the blob's: the size would go
    // into the image's manifest unread, so the registry's answer to HEAD refuses it.
    let mut wrong = record_config(&p, &key);
    let size = wrong["dev.trowel.cache.ref"]["layer"]["size"].as_u64().unwrap();
    wrong["dev.trowel.cache.ref"]["layer"]["size"] = serde_json::json!(size + 1);
    p.put_artifact(&key, REF, &serde_json::to_vec(&wrong).unwrap());
    let resized = p.build(&[]);
    let why = resized.at(3);
    assert!(why.starts_with("miss: ") && why.contains("not the size the record says"), "{why}");
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/built"), "a\nplain\n");

    // A hostile record under the key: a layer of an unknown media type that names another
    // host. Refused with the reason, the step runs, the image is right.
    let config = serde_json::json!({
        "created": "2026-01-01T00:00:00Z",
        "dev.trowel.cache": {"key": key, "components": first.lookup(3)["components"], "created_by": "COPY src /app/src"},
        "dev.trowel.cache.ref": {
            "layer": {"mediaType": "text/html", "digest": layer, "size": 10},
            "diff_id": layer,
            "history": {"created": "2026-01-01T00:00:00Z", "created_by": "COPY src /app/src"},
            "repositories": ["attacker.example/x"],
        },
    });
    p.put_artifact(&key, REF, &serde_json::to_vec(&config).unwrap());
    let hostile = p.build(&[]);
    let why = hostile.at(3);
    assert!(why.starts_with("error: ") && why.contains("unknown layer media type"), "{why}");
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/built"), "a\nplain\n");
}

/// The config of the record tagged `tag` in the project's cache repository: carried in its
/// manifest, or (a record too large for that, or one an older trowel wrote) a blob of its own.
fn record_config(p: &Project, tag: &str) -> Value {
    let registry = &env().registry;
    let repo = p.cache_repo.trim_start_matches(&format!("{registry}/"));
    let get = |path: &str| {
        let accept = "Accept: application/vnd.oci.image.manifest.v1+json";
        let o = run(Command::new("curl").args(["-sf", "-H", accept, &format!("http://{registry}/v2/{repo}/{path}")]));
        assert_ok(&o);
        serde_json::from_str::<Value>(&stdout(&o)).unwrap()
    };
    let manifest = get(&format!("manifests/{tag}"));
    match manifest["annotations"]["dev.trowel.cache.config"].as_str() {
        Some(doc) => serde_json::from_str(doc).unwrap(),
        None => get(&format!("blobs/{}", manifest["config"]["digest"].as_str().unwrap())),
    }
}

/// A stage whose first step that needs a root hits an entry another stage wrote (the same
/// key: `WORKDIR /app` on the same base) never had its own pointer tag moved, and the prefetch
/// reads that tag to tell a cold stage: every unchanged rebuild then downloaded and unpacked
/// the stage's base for steps that all hit (an auditor's node-style Dockerfile). The hit now
/// moves the absent pointer to the entry; here the entry comes from an earlier Dockerfile at
/// the same path, so the hit does not depend on the order of the first build's writes.
#[test]
fn a_stage_whose_steps_hit_another_stage_s_entries_is_not_cold_in_the_next_build() {
    let base = env().busybox();
    let one = format!("FROM {base} AS deps\nWORKDIR /app\nRUN echo deps > /app/deps\n");
    let p = Project::new("freshpod-shared-key", &one);
    p.build(&[]);
    let two = format!("{one}FROM {base}\nWORKDIR /app\nCOPY --from=deps /app/deps /app/deps\nCMD [\"sh\"]\n");
    std::fs::write(p.dir.path().join("Dockerfile"), two).unwrap();
    let first = p.build(&[]);
    assert_eq!(first.at(5), "hit", "{}", first.log);
    let base_layers: Vec<String> = skopeo_raw_layers(&base);
    for rebuild in [p.build(&[]), p.build(&[])] {
        assert_eq!(rebuild.at(5), "hit");
        assert_eq!(rebuild.at(6), "hit", "{}", rebuild.log);
        assert_eq!(rebuild.of("base_unpacked").count(), 0, "{}", rebuild.log);
        let downloaded = rebuild.downloaded();
        assert!(base_layers.iter().all(|l| !downloaded.contains(l)), "the base was downloaded: {downloaded:?}");
        assert_eq!(rebuild.digest(), first.digest());
    }
}

/// The layers of `image` (a single-platform image on the plain registry), by skopeo.
fn skopeo_raw_layers(image: &str) -> Vec<String> {
    let m = skopeo_manifest(image);
    m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

/// A stage built `FROM` another takes over the parent's root when nothing else reads it. The
/// parent here has one (its `COPY --from` misses in a fresh pod and runs); the child's first RUN
/// hits (no root yet: its layer is only noted) and its second misses. The root taken over must
/// have the first RUN's layer applied: the second RUN failed reading its file.
#[test]
fn a_child_taking_its_parents_root_has_its_own_cached_layers_in_it() {
    let df = format!(
        "FROM {b} AS src\n\
         RUN echo s > /s\n\
         FROM {b} AS deps\n\
         COPY --from=src /s /s\n\
         RUN cat /s > /d\n\
         FROM deps AS build\n\
         RUN echo b > /b\n\
         ARG V=1\n\
         RUN echo $V > /v && cat /d /b /v > /dist\n\
         FROM {b}\n\
         COPY --from=build /dist /out/\n",
        b = env().busybox()
    );
    let p = Project::new("freshpod-parent-root", &df);
    p.build(&[]);
    let again = p.build(&["--build-arg", "V=2"]);
    assert_eq!((again.status(4), again.at(7)), ("built".into(), "hit".into()), "{}", again.log);
    assert!(again.at(9).starts_with("miss: "), "{}", again.at(9));
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/out/dist"), "s\nb\n2\n");
}
