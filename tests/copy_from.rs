//! `COPY --from` and `RUN --mount=from=` a stage served entirely from the cache, against a real
//! registry, with kaniko's usual flags (`--cache --cache-repo`, COPY layers not cached): the
//! second build takes the copied paths out of the builder's layers without unpacking the
//! builder (no `base_unpacked` for it), and the image is the one the first build pushed (same
//! digest with `--reproducible`), checked with skopeo and umoci.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// The builder puts its output behind a symlinked directory, a hard link, a wildcard's
/// matches and a symlink to a file outside it, so every way a copy can leave the paths it
/// names is exercised.
fn dockerfile() -> String {
    let bb = env().busybox();
    format!(
        "FROM {bb} AS builder\n\
         RUN mkdir -p /build/out/lib /opt && echo app > /build/out/app && echo lib > /build/out/lib/x.so \
         && echo shared > /opt/shared && ln /opt/shared /build/out/shared && ln -s /build/out /out \
         && ln -s /opt/shared /build/out/lib/y.so && chmod 0750 /build/out/lib && chown 12:34 /build/out/app\n\
         FROM {bb}\n\
         COPY --from=builder /out /app\n\
         COPY --from=builder /out/lib/*.so /libs/\n\
         COPY --from=builder /etc/group /group-of-builder\n\
         COPY --from={bb} /bin/busybox /bb\n\
         ARG N\n\
         RUN --mount=type=bind,from=builder,source=/out/lib,target=/mnt cat /mnt/x.so > /mounted && echo $N\n"
    )
}

struct Built {
    digest: String,
    events: Vec<Value>,
}

fn build(dir: &Path, cache_repo: &str, dest: &str, n: &str) -> Built {
    let trace = dir.join(format!("{}.trace", unique_repo("t")));
    let o = run(trowel()
        .args(["build", "--cache", "--cache-repo", cache_repo, "--reproducible", "--destination", dest])
        .args(["--build-arg", &format!("N={n}"), "--context"])
        .arg(dir.join("ctx"))
        .arg("--trace")
        .arg(&trace));
    assert_ok(&o);
    let text = std::fs::read_to_string(&trace).unwrap();
    let events: Vec<Value> = text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
    let digest = events
        .iter()
        .find(|e| e["event"] == "image_assembled")
        .map(|e| e["manifest_digest"].as_str().unwrap().to_string())
        .unwrap();
    Built { digest, events }
}

/// Deletes the layer reference records a build tagged in the cache repository (by manifest
/// digest, with the registry's API).
fn drop_records(b: &Built, cache_repo: &str) {
    let (registry, repo) = cache_repo.split_once('/').unwrap();
    for e in b.events.iter().filter(|e| e["event"] == "cache_stored") {
        if !e["reference"].as_str().unwrap().starts_with("registry-ref:") {
            continue;
        }
        let url = format!("http://{registry}/v2/{repo}/manifests/{}", e["key"].as_str().unwrap());
        let accept = "Accept: application/vnd.oci.image.manifest.v1+json";
        let o = run(std::process::Command::new("curl").args(["-sfI", "-H", accept, &url]));
        assert_ok(&o);
        let head = stdout(&o);
        let digest = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("docker-content-digest: ").map(|d| d.trim().to_string()))
            .unwrap_or_else(|| panic!("no digest in {head}"));
        let url = format!("http://{registry}/v2/{repo}/manifests/{digest}");
        assert_ok(&run(std::process::Command::new("curl").args(["-sf", "-X", "DELETE", &url])));
    }
}

fn unpacked_stages(b: &Built) -> Vec<u64> {
    b.events.iter().filter(|e| e["event"] == "base_unpacked").map(|e| e["stage"].as_u64().unwrap()).collect()
}

#[test]
fn copy_from_a_cached_stage_reads_its_layers_not_its_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ctx")).unwrap();
    std::fs::write(dir.path().join("ctx/Dockerfile"), dockerfile()).unwrap();
    let repo = unique_repo("copyfrom");
    let cache_repo = format!("{}/{repo}/cache", env().registry);
    let dest = format!("{}/{repo}:latest", env().registry);

    let first = build(dir.path(), &cache_repo, &dest, "1");
    assert_eq!(unpacked_stages(&first), vec![0, 1], "the first build runs the builder");
    let u1 = pull_and_unpack(&dest);

    // Everything of the builder is cached now: it is never unpacked, and the copies (whose
    // layers kaniko's flags do not cache) read from what is extracted of its layers. (Their
    // layer reference records are removed first, or the copies would not run at all: that
    // reuse is tests/copy_fresh_pod.rs's.)
    drop_records(&first, &cache_repo);
    let second = build(dir.path(), &cache_repo, &dest, "1");
    assert_eq!(unpacked_stages(&second), vec![1], "only the final stage has a root");
    assert_eq!(second.digest, first.digest, "the same image");
    // One extraction serves the three copies from the builder (the Dockerfile names their
    // paths), another the image.
    let extracted: Vec<&Value> = second.events.iter().filter(|e| e["event"] == "source_extracted").collect();
    assert_eq!(extracted.len(), 2, "{extracted:#?}");
    let whole: Vec<&Value> = second.events.iter().filter(|e| e["event"] == "source_unpacked").collect();
    assert!(whole.is_empty(), "no whole root was made to read from: {whole:#?}");
    let builder = extracted.iter().find(|e| e["stage"] == 0).expect("the builder was extracted");
    // Each is the work of the first step that reads it, whose time holds it.
    let copies: Vec<&Value> = second
        .events
        .iter()
        .filter(|e| e["event"] == "step_started" && e["keyword"] == "COPY" && e["id"]["stage"] == 1)
        .map(|e| &e["id"])
        .collect();
    assert_eq!(builder["for_step"], *copies[0], "{builder}");
    assert_eq!(builder["passes"], 2, "/out is a symlink: its target needs a second pass: {builder}");
    let paths: Vec<&str> = builder["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(paths.contains(&"/build/out") && paths.contains(&"/opt/shared"), "{paths:?}");
    // busybox's base is mostly symlinks (always written, they are its shape) and one 2 MB
    // binary, which no copy reads: only the builder's few small files were written.
    assert!(builder["skipped"].as_u64().unwrap() > 0 && builder["bytes"].as_u64().unwrap() < 4096, "{builder}");
    let image = extracted.iter().find(|e| e["image"].is_string()).expect("the image was extracted");
    assert_eq!(image["paths"], serde_json::json!(["/bin/busybox"]));
    assert_eq!(image["for_step"], *copies[3], "{image}");
    eprintln!("builder: {builder}\nimage: {image}");
    let u2 = pull_and_unpack(&dest);
    let (t1, t2) = (u1.tree(), u2.tree());
    let same = |p: &str| {
        let (mut a, mut b) = (t1.get(p).clone(), t2.get(p).clone());
        (a.ino, b.ino) = (0, 0);
        assert_eq!(a, b, "{p}");
    };
    for p in ["/app", "/app/app", "/app/shared", "/app/lib", "/app/lib/x.so", "/app/lib/y.so", "/libs/y.so", "/bb"] {
        same(p);
    }
    assert_eq!((t2.get("/app/app").uid, t2.get("/app/app").gid), (12, 34));
    assert_eq!(t2.get("/app/lib").mode, 0o750);
    let root = u2.rootfs();
    assert_eq!(Tree::content(&root, "/app/app"), "app\n");
    assert_eq!(Tree::content(&root, "/app/shared"), "shared\n");
    assert_eq!(Tree::content(&root, "/libs/y.so"), "shared\n", "a matched symlink is followed");
    assert_eq!(std::fs::read_link(root.join("app/lib/y.so")).unwrap(), Path::new("/opt/shared"));
    assert!(Tree::content(&root, "/group-of-builder").starts_with("root:x:0:"));
    assert_eq!(Tree::content(&root, "/mounted"), "lib\n");

    // A RUN that mounts the cached builder runs again: its mount is extracted too.
    let third = build(dir.path(), &cache_repo, &dest, "2");
    assert_eq!(unpacked_stages(&third), vec![1]);
    let u3 = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u3.rootfs(), "/mounted"), "lib\n");
}
