//! `COPY --from=<stage>` keyed by the files it copies (path, type, mode, owner, link target,
//! content digest), not by the source stage's key, as BuildKit keys it. kaniko's usual flags
//! (`--cache=true --cache-repo …`, no `--cache-copy-layers`), every build in a fresh pod (a
//! cache dir and a work dir that do not exist), against the real test registry; images compared
//! by digest (`--reproducible`) and read with skopeo and umoci.
//!
//! Why: a builder stage whose RUN runs again (a build arg, a comment edited) but makes the same
//! files used to make every step after `COPY --from` miss, its layers pushed again, the image's
//! digest changed. What is proved: such a rebuild hits the `COPY --from` and the steps after it
//! and gives the same image; a changed file, or only a changed owner, makes it miss, the
//! explanation naming the file, and the image is the one a build without the cache makes. When
//! the builder was all hits (no root), the files come from a `copy-from-…` record in the cache
//! repository, so no root is made and nothing is extracted, also when the builder's context
//! COPY was deferred; a garbage or foreign record is refused with a warning, the files are read
//! from the layers instead, the image is the same, and a usable record replaces it; with
//! `--no-push-cache` no record is written.

mod common;

use std::process::Command;

use common::traced::{Project, Traced};
use common::*;
use serde_json::Value;

/// A builder stage of `builder` (lines 1–3, line 3 its RUN) and a final stage that copies its
/// `/out` (line 5) and reads it in a RUN (line 6).
fn project(name: &str, builder: &str) -> Project {
    let df = format!(
        "FROM {b} AS build\n\
         {builder}\n\
         FROM {b}\n\
         COPY --from=build /out /app\n\
         RUN cat /app/app > /copied\n",
        b = env().busybox()
    );
    Project::new(name, &df)
}

/// The builder's `/out/app` is the same whatever `V` is: only `/stamp` follows it.
const SAME: &str = "ARG V=1\nRUN echo $V > /stamp && mkdir -p /out && echo same > /out/app";
/// The builder's `/out/app` holds `V`.
const CHANGES: &str = "ARG V=1\nRUN echo $V > /stamp && mkdir -p /out && echo $V > /out/app";

/// The `COPY --from` at line 5 and the RUN reading its files at line 6.
const COPY: u64 = 5;
const AFTER: u64 = 6;

impl Project {
    /// The cache repository as `host` and `name` for the registry API.
    fn cache_path(&self) -> (&str, &str) {
        self.cache_repo.split_once('/').unwrap()
    }

    /// The cache repository's tags, asked of the registry API (none when it has no repository).
    fn tags(&self) -> Vec<String> {
        let (host, repo) = self.cache_path();
        let o = run(Command::new("curl").args(["-s", &format!("http://{host}/v2/{repo}/tags/list")]));
        assert_ok(&o);
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["tags"].as_array().map(|t| t.iter().map(|t| t.as_str().unwrap().to_string()).collect()).unwrap_or_default()
    }

    /// The cache repository's copy-from record tags.
    fn record_tags(&self) -> Vec<String> {
        self.tags().into_iter().filter(|t| t.starts_with("copy-from-")).collect()
    }

    /// The one copy-from record tag, checked to be one.
    fn record_tag(&self) -> String {
        let tags = self.record_tags();
        assert_eq!(tags.len(), 1, "{tags:?}");
        let hex = tags[0].trim_start_matches("copy-from-");
        assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{}", tags[0]);
        tags[0].clone()
    }

    /// GET of `path` under the cache repository, as an OCI manifest when it is one.
    fn get(&self, path: &str) -> Vec<u8> {
        let (host, repo) = self.cache_path();
        let accept = "Accept: application/vnd.oci.image.manifest.v1+json";
        let o = run(Command::new("curl").args(["-sf", "-H", accept, &format!("http://{host}/v2/{repo}/{path}")]));
        assert_ok(&o);
        o.stdout
    }

    /// The manifest and the config document tagged `tag`.
    fn record(&self, tag: &str) -> (Value, Value) {
        let m: Value = serde_json::from_slice(&self.get(&format!("manifests/{tag}"))).unwrap();
        let c = self.get(&format!("blobs/{}", m["config"]["digest"].as_str().unwrap()));
        (m, serde_json::from_slice(&c).unwrap_or(Value::Null))
    }
}

/// Nothing of any stage made or read: no root, no source unpacked or extracted, no layer.
#[track_caller]
fn nothing_made(t: &Traced) {
    assert_eq!(t.of("base_unpacked").count(), 0, "{}", t.log);
    assert_eq!(t.of("source_unpacked").count() + t.of("source_extracted").count(), 0, "{}", t.log);
    assert_eq!(t.of("layer_written").count(), 0, "{}", t.log);
    assert!(t.log.contains("(0 new layer(s), 0 B)"), "{}", t.log);
}

/// The builder runs again (a build arg only its RUN reads) and makes the same `/out`: the
/// `COPY --from` and the RUN after it hit, and the image is the first build's. Keyed by the
/// builder's key, both missed and ran again for nothing.
#[test]
fn a_builder_that_ran_again_and_made_the_same_files_leaves_copy_from_a_hit() {
    let p = project("cfc-same", SAME);
    let first = p.build(&[]);
    assert_eq!(
        (first.status(3), first.status(COPY), first.status(AFTER)),
        ("built".into(), "built".into(), "built".into())
    );

    let again = p.build(&["--build-arg", "V=2"]);
    assert!(again.at(3).starts_with("miss: "), "{}", again.at(3));
    assert_eq!(again.status(3), "built");
    assert_eq!((again.at(COPY), again.at(AFTER)), ("hit".into(), "hit".into()), "{}", again.log);
    assert_eq!((again.status(COPY), again.status(AFTER)), ("cached".into(), "cached".into()), "{}", again.log);
    // Only the builder's RUN made a layer.
    let written: Vec<u64> = again.of("layer_written").map(|e| e["id"]["stage"].as_u64().unwrap()).collect();
    assert_eq!(written, [0], "{}", again.log);
    assert_eq!(again.digest(), first.digest());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/copied"), "same\n");
}

/// The builder's `/out/app` changes: the `COPY --from` misses naming it, the RUN after it
/// runs, and the image is the one a build without the cache makes.
#[test]
fn a_changed_file_makes_copy_from_miss_and_names_it() {
    let p = project("cfc-changed", CHANGES);
    p.build(&[]);
    let args = ["--build-arg", "V=2"];
    let changed = p.build(&args);
    assert_eq!(
        changed.at(COPY),
        "miss: COPY --from=build /out: 1 file changed (out/app); stage build changed (line 3: ARG V 1 → 2)"
    );
    assert!(changed.at(AFTER).starts_with("miss: "), "{}", changed.at(AFTER));
    assert_eq!((changed.status(COPY), changed.status(AFTER)), ("built".into(), "built".into()));
    assert_eq!(changed.digest(), p.uncached(&args).digest());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/copied"), "2\n");
    assert_eq!(Tree::content(&u.rootfs(), "/app/app"), "2\n");
}

/// Only the owner of `/out/app` changes (same content, same mode): a stage's files keep their
/// owners when copied, so the `COPY --from` misses, and the image has the new owner.
#[test]
fn an_owner_change_alone_makes_copy_from_miss() {
    let p = project("cfc-owner", "ARG OWN=0:0\nRUN mkdir -p /out && echo same > /out/app && chown $OWN /out/app");
    p.build(&[]);
    let args = ["--build-arg", "OWN=1:1"];
    let chowned = p.build(&args);
    assert_eq!(
        chowned.at(COPY),
        "miss: COPY --from=build /out: 1 file changed (out/app: owner 0:0 → 1:1); stage build changed (line 3: ARG \
         OWN 0:0 → 1:1)"
    );
    assert_eq!(chowned.status(COPY), "built");
    assert_eq!(chowned.digest(), p.uncached(&args).digest());
    let u = pull_and_unpack(&p.dest);
    let app = u.tree().get("/app/app").clone();
    assert_eq!((app.uid, app.gid), (1, 1));
}

/// An unchanged rebuild in a fresh pod after a build whose builder ran: the builder is all hits
/// (no root), so the `COPY --from`'s files come from the record the first build tagged in the
/// cache repository; nothing is made or read, and the image is the same.
#[test]
fn an_unchanged_fresh_pod_rebuild_takes_the_files_from_the_record() {
    let p = project("cfc-record", SAME);
    let first = p.build(&[]);
    let tag = p.record_tag();
    // The record: a manifest of no layers and a config naming the files by what they are.
    let (m, config) = p.record(&tag);
    assert_eq!(m["artifactType"], "application/vnd.dev.trowel.cache.copy-from.v1+json");
    assert_eq!(m["layers"], serde_json::json!([]));
    let record = &config["dev.trowel.cache.copy-from"];
    assert_eq!(record["identity"], tag.trim_start_matches("copy-from-"));
    let paths: Vec<&str> = record["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"out/app"), "{config}");

    let again = p.build(&[]);
    assert_eq!((again.at(3), again.at(COPY), again.at(AFTER)), ("hit".into(), "hit".into(), "hit".into()));
    nothing_made(&again);
    assert!(!again.log.contains("copy-from record"), "{}", again.log);
    assert_eq!(again.digest(), first.digest());
    // The record was found, not rewritten as another.
    assert_eq!(p.record_tag(), tag);
}

/// The builder's context COPY is deferred in a fresh pod (its layer is in no pushed image, so
/// it misses while the RUN after it hits): the record names it by its key, so the rebuild still
/// takes the files from the record and neither runs the COPY nor makes a root.
#[test]
fn a_builder_with_a_deferred_copy_still_uses_the_record() {
    let p = project("cfc-deferred", "COPY app.txt /src/\nRUN mkdir -p /out && cp /src/app.txt /out/app");
    p.write("app.txt", "from the context\n");
    let first = p.build(&[]);
    assert_eq!(first.status(2), "built");
    p.record_tag();

    let again = p.build(&[]);
    assert!(again.at(2).starts_with("miss: "), "{}", again.at(2));
    assert_eq!(again.status(2), "deferred", "{}", again.log);
    assert_eq!((again.at(3), again.at(COPY), again.at(AFTER)), ("hit".into(), "hit".into(), "hit".into()));
    assert_eq!(again.of("deferred_run").count(), 0, "{}", again.log);
    nothing_made(&again);
    assert_eq!(again.digest(), first.digest());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/copied"), "from the context\n");
}

/// A record that is not one (its config garbage) or is another's (it names another identity)
/// is refused with a warning: the files are extracted from the builder's layers instead, the
/// steps still hit, the image is the same, and a usable record replaces it, which the next
/// build uses.
#[test]
fn a_garbage_or_foreign_record_is_refused_and_replaced() {
    let p = project("cfc-hostile", SAME);
    let first = p.build(&[]);
    let tag = p.record_tag();
    let (_, sound) = p.record(&tag);

    let mut foreign = sound.clone();
    foreign["dev.trowel.cache.copy-from"]["identity"] = Value::String("0".repeat(64));
    let cases: [(&str, Vec<u8>); 2] = [
        ("config: ", b"{\"dev.trowel.cache.copy-from\": [not json".to_vec()),
        ("names another identity", serde_json::to_vec(&foreign).unwrap()),
    ];
    for (reason, config) in cases {
        p.put_artifact(&tag, "application/vnd.dev.trowel.cache.copy-from.v1+json", &config);
        let refused = p.build(&[]);
        let warning = refused.log.lines().find(|l| l.contains("copy-from record not used, the files are read instead"));
        assert!(warning.is_some_and(|w| w.contains(reason)), "{reason}: {}", refused.log);
        // Read from the builder's layers instead, for the COPY --from, which still hits.
        let extracted: Vec<&Value> = refused.of("source_extracted").collect();
        assert_eq!(extracted.len(), 1, "{extracted:?}");
        assert_eq!(extracted[0]["stage"], 0, "{extracted:?}");
        assert_eq!(refused.of("base_unpacked").count(), 0, "{}", refused.log);
        assert_eq!((refused.at(COPY), refused.at(AFTER)), ("hit".into(), "hit".into()), "{}", refused.log);
        assert_eq!(refused.digest(), first.digest());
        let u = pull_and_unpack(&p.dest);
        assert_eq!(Tree::content(&u.rootfs(), "/copied"), "same\n");

        // Replaced by a usable record (the one the first build wrote), used by the next build.
        assert_eq!(p.record_tag(), tag);
        assert_eq!(p.record(&tag).1, sound, "{reason}");
        let next = p.build(&[]);
        nothing_made(&next);
        assert!(!next.log.contains("copy-from record"), "{}", next.log);
        assert_eq!(next.digest(), first.digest());
    }
}

/// `--no-push-cache` writes nothing to the cache repository, records included: not when the
/// builder ran (files read from its root), nor when a `COPY --from` of new paths reads the
/// files of an all-hit builder from its layers.
#[test]
fn no_push_cache_writes_no_record() {
    let p = project("cfc-no-push", SAME);
    let cold = p.build(&["--no-push-cache"]);
    assert!(cold.at(COPY).starts_with("miss: "), "{}", cold.at(COPY));
    assert_eq!(p.record_tags(), Vec::<String>::new());

    p.build(&[]);
    let tag = p.record_tag();
    // Another path of the builder (another identity) in the final stage: read from the layers.
    let df = std::fs::read_to_string(p.dir.path().join("Dockerfile")).unwrap();
    std::fs::write(
        p.dir.path().join("Dockerfile"),
        df.replace("COPY --from=build /out /app", "COPY --from=build /out/app /app/"),
    )
    .unwrap();
    let other = p.build(&["--no-push-cache"]);
    assert_eq!(other.at(3), "hit");
    assert_eq!(other.of("source_extracted").filter(|e| e["stage"] == 0).count(), 1, "{}", other.log);
    assert_eq!(p.record_tags(), [tag]);
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/copied"), "same\n");
}

/// A RUN's read-only bind mount of a stage's path is keyed by the files it shows, at the mount's
/// target (BuildKit hashes a read-only mount's content): a builder that ran again with the same
/// files leaves the RUN a hit, also in a fresh pod where the builder was all hits (the files from
/// a record: no root made, nothing extracted); a changed file makes it miss, named where the RUN
/// sees it, with the stage's cause.
#[test]
fn a_run_mounting_a_stage_is_keyed_by_the_files_it_shows() {
    let df = |builder: &str| {
        format!(
            "FROM {b} AS build\n\
             {builder}\n\
             FROM {b}\n\
             RUN --mount=type=bind,from=build,source=/out,target=/in cat /in/app > /seen\n",
            b = env().busybox()
        )
    };
    let p = Project::new("cfc-mount", &df(SAME));
    let first = p.build(&[]);
    assert_eq!(first.status(5), "built");
    let again = p.build(&["--build-arg", "V=2"]);
    assert_eq!(again.status(3), "built", "{}", again.log);
    assert_eq!(again.at(5), "hit", "{}", again.log);
    assert_eq!(again.digest(), first.digest());
    // Unchanged, in a fresh pod: the builder is all hits, the files come from its record.
    let fresh = p.build(&["--build-arg", "V=2"]);
    assert_eq!(fresh.at(5), "hit", "{}", fresh.log);
    for made in ["base_unpacked", "source_unpacked", "source_extracted"] {
        assert_eq!(fresh.of(made).count(), 0, "{made}: {}", fresh.log);
    }
    std::fs::write(p.dir.path().join("Dockerfile"), df(CHANGES)).unwrap();
    let changed = p.build(&["--build-arg", "V=3"]);
    assert_eq!(
        changed.at(5),
        "miss: RUN's bind mounts: 1 file changed (in/app); stage build changed (line 3: instruction changed: RUN … \
         echo same … → RUN … echo $V …)",
        "{}",
        changed.log
    );
    assert_eq!(Tree::content(&pull_and_unpack(&p.dest).rootfs(), "/seen"), "3\n");
}
