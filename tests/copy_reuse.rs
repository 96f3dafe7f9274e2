//! COPY/ADD reuse with kaniko's usual flags (`--cache=true --cache-repo …`, no
//! `--cache-copy-layers`) and a cache dir: the local layer store and the persisted context-file
//! digests, against the real registry, checked with skopeo, umoci and strace.
//!
//! What is proved: an unchanged rebuild is all hits, unpacks no base, opens no context file and
//! gives the same image, while the cache repository holds no COPY layer; an edit misses that
//! COPY with the file named and builds the right image; a corrupt blob or entry in the store is
//! detected and the step runs again; `--cache-ttl` applies; two builds share one cache dir.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

struct Ctx {
    dir: tempfile::TempDir,
    /// Shared by the contexts of the concurrent test.
    cache_dir: std::sync::Arc<tempfile::TempDir>,
    cache_repo: String,
    dest: String,
}

/// A build's trace, as the tests read it.
struct Built {
    events: Vec<Value>,
    log: String,
}

impl Built {
    /// (line, "hit" | "miss: …" | "error: …") per lookup, in order.
    fn lookups(&self) -> Vec<(u64, String)> {
        self.of("cache_lookup")
            .map(|e| {
                let r = &e["result"];
                let what = match r["kind"].as_str().unwrap() {
                    "hit" => "hit".to_string(),
                    "miss" => format!("miss: {}", r["explanation"].as_str().unwrap()),
                    other => format!("{other}: {}", r["message"].as_str().unwrap()),
                };
                (e["components"]["line"].as_u64().unwrap(), what)
            })
            .collect()
    }

    fn at(&self, line: u64) -> String {
        let l = self.lookups();
        l.iter().find(|(n, _)| *n == line).unwrap_or_else(|| panic!("no lookup at line {line}: {l:?}")).1.clone()
    }

    fn of<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["event"] == event)
    }

    fn digest(&self) -> String {
        self.of("image_assembled").next().unwrap()["manifest_digest"].as_str().unwrap().to_string()
    }

    /// The digest of the layer a step (by line) wrote or reused.
    fn layer_at(&self, line: u64) -> String {
        let step = self.of("step_started").find(|e| e["line"] == line).unwrap()["id"].clone();
        self.of("step_finished").find(|e| e["id"] == step).unwrap()["layer"].as_str().unwrap().to_string()
    }

    fn summary(&self) -> (u64, u64) {
        let s = self.of("cache_summary").next().unwrap();
        (s["hits"].as_u64().unwrap(), s["misses"].as_u64().unwrap())
    }
}

impl Ctx {
    fn new(name: &str, dockerfile: &str) -> Ctx {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
        let repo = unique_repo(name);
        Ctx {
            dir,
            cache_dir: std::sync::Arc::new(tempfile::tempdir().unwrap()),
            cache_repo: format!("{}/{repo}/cache", env().registry),
            dest: format!("{}/{repo}:latest", env().registry),
        }
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// kaniko's GitLab flags plus a cache dir; `wrap`: a command to run trowel under.
    fn command(&self, trace: &Path, extra: &[&str], wrap: &[&str]) -> Command {
        let mut c = match wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(env!("CARGO_BIN_EXE_trowel")).env_remove("DOCKER_CONFIG");
                c
            }
            None => trowel(),
        };
        c.args(["build", "--cache=true", "--cache-repo", &self.cache_repo, "--cache-dir"])
            .arg(self.cache_dir.path())
            .args(["--destination", &self.dest, "--context"])
            .arg(self.dir.path())
            .arg("--trace")
            .arg(trace)
            .args(extra);
        c
    }

    fn build_wrapped(&self, extra: &[&str], wrap: &[&str]) -> Built {
        let trace = self.dir.path().join("..").join(format!("{}.trace", unique_repo("t")));
        let out = run(&mut self.command(&trace, extra, wrap));
        assert_ok(&out);
        Built { events: read_trace(&trace), log: stderr(&out) }
    }

    fn build(&self, extra: &[&str]) -> Built {
        self.build_wrapped(extra, &[])
    }

    fn layers_dir(&self) -> PathBuf {
        self.cache_dir.path().join("layers")
    }

    /// Every manifest tagged in the cache repository, as (tag, layer digests).
    fn cache_repo_layers(&self) -> Vec<(String, Vec<String>)> {
        common::tagged_manifests(&self.cache_repo)
            .into_iter()
            .map(|(t, m)| {
                let layers = m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().into());
                (t, layers.collect())
            })
            .collect()
    }
}

fn read_trace(trace: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(trace).unwrap();
    let _ = std::fs::remove_file(trace);
    text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn dockerfile() -> String {
    format!("FROM {}\nCOPY . /app\nRUN cat /app/src/*.c > /built\n", env().busybox())
}

/// Context files must be older than the persisted memo's racily-clean window, or the next
/// build reads them again (rightly).
fn settle() {
    std::thread::sleep(Duration::from_millis(1200));
}

#[test]
fn an_unchanged_rebuild_reuses_the_copy_and_reads_no_context_file_then_an_edit_is_named() {
    let c = Ctx::new("copyreuse", &dockerfile());
    c.write("src/main-marker-a.c", "int main() { return 0; }\n");
    c.write("src/util-marker-b.c", "int util;\n");
    settle();
    let first = c.build(&[]);
    assert_eq!(first.at(2), "miss: no cache entry for this step yet", "{:?}", first.lookups());
    let copy_layer = first.layer_at(2);
    let stored: Vec<&Value> = first.of("cache_stored").collect();
    assert!(stored.iter().any(|e| e["reference"].as_str().unwrap().starts_with("local:")), "{stored:?}");

    // The rebuild runs under strace: not one open of a context file (their names are unique).
    let log = tempfile::NamedTempFile::new().unwrap();
    let strace = ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", log.path().to_str().unwrap()];
    let again = c.build_wrapped(&[], &strace);
    let opens = std::fs::read_to_string(log.path()).unwrap();
    assert!(opens.contains("openat"), "strace saw the build's opens");
    assert!(!opens.contains("marker"), "a context file was opened: {}", {
        opens.lines().filter(|l| l.contains("marker")).collect::<Vec<_>>().join("\n")
    });
    assert_eq!(again.lookups(), vec![(2, "hit".to_string()), (3, "hit".to_string())]);
    let copy_hit = again.of("cache_lookup").find(|e| e["components"]["line"] == 2).unwrap();
    let entry = c.layers_dir().join(format!("{}.json", copy_hit["key"].as_str().unwrap()));
    assert_eq!(copy_hit["result"]["reference"], format!("local:{}", entry.display()));
    assert!(again.log.contains("from the local layer store"), "{}", again.log);
    assert_eq!(again.of("base_unpacked").count(), 0, "no base was unpacked");
    assert_eq!(again.summary(), (2, 0));
    assert_eq!(again.layer_at(2), copy_layer);
    assert_eq!(again.digest(), first.digest(), "the same image");

    // kaniko's promise: the cache repository holds the RUN's entry, never the COPY's layer.
    let entries = c.cache_repo_layers();
    assert!(!entries.is_empty());
    for (tag, layers) in &entries {
        assert!(!layers.contains(&copy_layer), "{tag} holds the COPY layer {copy_layer}");
    }

    // A destination that lacks the reused layer gets it uploaded from the local store (no
    // registry holds it to mount from), and the image there is whole.
    let other = format!("{}/{}:1", env().registry, unique_repo("copyreuse-other"));
    let pushed = c.build(&["--destination", &other]);
    assert_eq!(pushed.summary(), (2, 0));
    let sent = pushed
        .of("blob_pushed")
        .find(|e| e["destination"] == other.as_str() && e["digest"] == copy_layer.as_str())
        .unwrap_or_else(|| panic!("the COPY layer was not pushed to {other}"));
    assert_eq!(sent["action"], "uploaded");
    let u = pull_and_unpack(&other);
    assert_eq!(Tree::content(&u.rootfs(), "/app/src/main-marker-a.c"), "int main() { return 0; }\n");

    // One edit: that COPY misses, naming the file, and the image has the new content.
    c.write("src/util-marker-b.c", "int util = 2;\n");
    let edited = c.build(&[]);
    assert_eq!(edited.at(2), "miss: COPY .: 1 file changed (src/util-marker-b.c)");
    assert_eq!(edited.at(3), "miss: COPY . at line 2: 1 file changed (src/util-marker-b.c)");
    let u = pull_and_unpack(&c.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/app/src/util-marker-b.c"), "int util = 2;\n");
    assert_eq!(Tree::content(&u.rootfs(), "/built"), "int main() { return 0; }\nint util = 2;\n");
}

/// Flips a byte in the middle of a file.
fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_corrupt_blob_or_entry_is_detected_and_the_copy_runs_again() {
    let c = Ctx::new("copycorrupt", &dockerfile());
    c.write("src/a.c", "a\n");
    settle();
    let first = c.build(&[]);
    let layer = first.layer_at(2);
    let blob = c.cache_dir.path().join("blobs/sha256").join(layer.trim_start_matches("sha256:"));
    corrupt(&blob);

    let o = c.build(&[]);
    let r = o.at(2);
    assert!(r.starts_with("error: local cache entry") && r.contains("does not match its digest"), "{r}");
    // The corrupt blob is gone; the COPY ran again and stored its own (the same layer, or
    // another when a second has passed: its directories carry this build's time).
    let again = o.layer_at(2);
    assert!(again == layer || !blob.exists());
    let blob = c.cache_dir.path().join("blobs/sha256").join(again.trim_start_matches("sha256:"));
    assert_eq!(format!("sha256:{}", sha256_hex(&std::fs::read(&blob).unwrap())), again);
    let u = pull_and_unpack(&c.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/app/src/a.c"), "a\n");
    assert_eq!(Tree::content(&u.rootfs(), "/built"), "a\n");

    // The entry rewritten by that build: flip a byte of it.
    let key = o.of("cache_lookup").find(|e| e["components"]["line"] == 2).unwrap()["key"].as_str().unwrap().to_string();
    corrupt(&c.layers_dir().join(format!("{key}.json")));
    let o = c.build(&[]);
    let r = o.at(2);
    assert!(r.starts_with("error: local cache entry") && r.contains("corrupt"), "{r}");
    // Written again by the step that ran: the next build hits.
    assert_eq!(c.build(&[]).at(2), "hit");
}

#[test]
fn expired_local_entries_miss() {
    let c = Ctx::new("copyttl", &dockerfile());
    c.write("src/a.c", "a\n");
    settle();
    c.build(&[]);
    std::thread::sleep(Duration::from_millis(2100));
    let o = c.build(&["--cache-ttl", "1s"]);
    let r = o.at(2);
    assert!(r.starts_with("miss: cached layer expired (created ") && r.ends_with("older than --cache-ttl 1s)"), "{r}");
}

#[test]
fn two_builds_at_once_share_one_cache_dir() {
    let a = Ctx::new("copyconc-a", &dockerfile());
    let mut b = Ctx::new("copyconc-b", &dockerfile());
    b.cache_dir = a.cache_dir.clone();
    for c in [&a, &b] {
        c.write("src/a.c", "same in both\n");
    }
    // Both Dockerfiles are `COPY . /app`: the same context, so the same keys.
    settle();
    // Beside the contexts, under names no other test process uses at the same time.
    let trace_a = a.dir.path().join("..").join(format!("{}.trace", unique_repo("a")));
    let trace_b = b.dir.path().join("..").join(format!("{}.trace", unique_repo("b")));
    let quiet = |mut c: Command| c.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let ha = quiet(a.command(&trace_a, &[], &[]));
    let hb = quiet(b.command(&trace_b, &[], &[]));
    assert_ok(&ha.wait_with_output().unwrap());
    assert_ok(&hb.wait_with_output().unwrap());
    let _ = (read_trace(&trace_a), read_trace(&trace_b));
    // The same files on the same base: both wrote the same entry and blob at once, and each
    // finds it whole.
    assert_eq!(a.build(&[]).at(2), "hit");
    assert_eq!(b.build(&[]).at(2), "hit");
    // Nothing half-written was left behind.
    for e in std::fs::read_dir(a.layers_dir()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(name.ends_with(".json") && !name.starts_with('.'), "{name}");
    }
}

/// Issue 17: the local store's explanation of a COPY's miss reads the earlier entries its
/// newest one lists only when they could be closer. One file changed since the last build: the
/// newest entry is compared and no earlier entry's file is opened (strace); two changed since,
/// one of them back as it was two builds ago: the earlier ones are read.
#[test]
fn a_one_change_miss_reads_no_earlier_local_entry() {
    let c = Ctx::new("copysettles", &dockerfile());
    let key_at = |b: &Built, line: u64| {
        b.of("cache_lookup").find(|e| e["components"]["line"] == line).unwrap()["key"].as_str().unwrap().to_string()
    };
    c.write("src/a.c", "1\n");
    c.write("src/b.c", "1\n");
    let first = c.build(&[]);
    c.write("src/a.c", "2\n");
    let second = c.build(&[]);
    assert_eq!(second.at(2), "miss: COPY .: 1 file changed (src/a.c)");

    let log = tempfile::NamedTempFile::new().unwrap();
    let strace = ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", log.path().to_str().unwrap()];
    c.write("src/a.c", "3\n");
    let third = c.build_wrapped(&[], &strace);
    assert_eq!(third.at(2), "miss: COPY .: 1 file changed (src/a.c)");
    let compared = third.of("cache_lookup").find(|e| e["components"]["line"] == 2).unwrap()["result"]["compared_with"]
        ["key"]
        .clone();
    assert_eq!(compared, key_at(&second, 2).as_str());
    let opens = std::fs::read_to_string(log.path()).unwrap();
    let earlier = format!("{}.json", key_at(&first, 2));
    assert!(opens.contains("openat"), "strace saw the build's opens");
    assert!(!opens.contains(&earlier), "an earlier entry was read: {}", {
        opens.lines().filter(|l| l.contains(&earlier)).collect::<Vec<_>>().join("\n")
    });

    // a.c as in the second build, b.c changed: the newest (third) differs in two files, the
    // second build's entry in b.c alone — read, and compared.
    let log = tempfile::NamedTempFile::new().unwrap();
    let strace = ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", log.path().to_str().unwrap()];
    c.write("src/a.c", "2\n");
    c.write("src/b.c", "2\n");
    let fourth = c.build_wrapped(&[], &strace);
    assert_eq!(fourth.at(2), "miss: COPY .: 1 file changed (src/b.c)");
    let opens = std::fs::read_to_string(log.path()).unwrap();
    assert!(opens.contains(&format!("{}.json", key_at(&second, 2))), "the earlier entries are read");
}
