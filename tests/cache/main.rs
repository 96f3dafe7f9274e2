//! The layer cache against a real registry: correct keys first (kaniko's four key bugs, and every
//! kind of change that must or must not miss), then explanations, asserted word for word. Every
//! build starts with fresh local state (trowel keeps none between builds), so the cache and the
//! explanations live only in the registry, as between two CI jobs.

#[path = "../common/mod.rs"]
mod common;
#[path = "../faults/mod.rs"]
mod faults;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

struct Ctx {
    dir: tempfile::TempDir,
    cache_repo: String,
    dest: String,
}

impl Ctx {
    fn new(name: &str, dockerfile: &str) -> Ctx {
        Ctx::at(&env().registry, name, dockerfile)
    }

    /// A context whose cache repository and destination are on `registry` (a proxy in front of
    /// the test registry, to see the requests).
    fn at(registry: &str, name: &str, dockerfile: &str) -> Ctx {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
        let repo = unique_repo(name);
        Ctx { dir, cache_repo: format!("{registry}/{repo}/cache"), dest: format!("{registry}/{repo}:latest") }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// Builds with the cache (COPY layers too) and returns what happened per cacheable step.
    fn build(&self, extra: &[&str]) -> Outcome {
        self.build_with(&["--reproducible"], extra)
    }

    /// `build` without `--reproducible`: history entries carry real times.
    fn build_timed(&self, extra: &[&str]) -> Outcome {
        self.build_with(&[], extra)
    }

    fn build_with(&self, mode: &[&str], extra: &[&str]) -> Outcome {
        self.run_build(&["--cache-copy-layers"], mode, extra)
    }

    /// kaniko's defaults: RUN layers are cached, COPY/ADD layers are not.
    fn build_run_layers_only(&self, extra: &[&str]) -> Outcome {
        self.run_build(&[], &["--reproducible"], extra)
    }

    fn run_build(&self, cache: &[&str], mode: &[&str], extra: &[&str]) -> Outcome {
        let trace = self.path().join("..").join(format!("{}.trace", unique_repo("t")));
        let mut c = trowel();
        c.args(["build", "--cache", "--cache-repo", &self.cache_repo])
            .args(cache)
            .args(mode)
            .args(["--destination", &self.dest, "--context"])
            .arg(self.path())
            .arg("--trace")
            .arg(&trace)
            .args(extra);
        let out = run(&mut c);
        assert_ok(&out);
        let text = std::fs::read_to_string(&trace).unwrap();
        let _ = std::fs::remove_file(&trace);
        let events: Vec<Value> = text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
        let steps = events
            .iter()
            .filter(|e| e["event"] == "cache_lookup")
            .map(|e| {
                let r = &e["result"];
                let what = match r["kind"].as_str().unwrap() {
                    "hit" => "hit".to_string(),
                    "miss" => format!("miss: {}", r["explanation"].as_str().unwrap()),
                    other => format!("{other}: {}", r["message"]),
                };
                (e["components"]["line"].as_u64().unwrap() as usize, what)
            })
            .collect();
        let digest = events
            .iter()
            .find(|e| e["event"] == "image_assembled")
            .map(|e| e["manifest_digest"].as_str().unwrap().to_string())
            .unwrap();
        Outcome { steps, digest, log: stderr(&out), events }
    }
}

struct Outcome {
    /// (Dockerfile line, "hit" | "miss: <explanation>") per cacheable step, in order.
    steps: Vec<(usize, String)>,
    digest: String,
    log: String,
    events: Vec<Value>,
}

impl Outcome {
    #[track_caller]
    fn all_hit(&self) {
        assert!(!self.steps.is_empty());
        for (line, r) in &self.steps {
            assert_eq!(r, "hit", "line {line}: {self:?}", self = self.steps);
        }
    }

    #[track_caller]
    fn at(&self, line: usize) -> &str {
        &self
            .steps
            .iter()
            .find(|(l, _)| *l == line)
            .unwrap_or_else(|| panic!("no step at line {line}: {:?}", self.steps))
            .1
    }
}

fn from() -> String {
    format!("FROM {}\n", env().busybox())
}

#[test]
fn unchanged_context_hits_every_step_with_the_same_digest_and_files() {
    let c = Ctx::new(
        "repeat",
        &format!(
            "{}WORKDIR /app\nCOPY src/ ./src/\nRUN cat src/*.txt > all.txt && date > /build-time\nCOPY <<EOF /etc/note\nnote\nEOF\n",
            from()
        ),
    );
    c.write("src/a.txt", "a\n");
    c.write("src/b.txt", "b\n");
    let first = c.build(&[]);
    assert!(first.steps.iter().all(|(_, r)| r == "miss: no cache entry for this step yet"), "{:?}", first.steps);
    let second = c.build(&[]);
    second.all_hit();
    assert_eq!(first.digest, second.digest, "a cached build of the same inputs gives the same image");
    assert!(second.log.contains("Cache: 4 hit(s), 0 miss(es)"), "{}", second.log);
    assert!(!second.log.contains("Unpacked"), "a fully cached stage needs no build root");
    // The same files as a build without the cache (the RUN output is taken from the cache).
    let cached = pull_and_unpack(&c.dest).tree();
    let plain_dest = format!("{}/{}:plain", env().registry, unique_repo("plain"));
    assert_ok(&run(trowel()
        .args(["build", "--reproducible", "--destination", &plain_dest, "--context"])
        .arg(c.path())));
    let plain = pull_and_unpack(&plain_dest).tree();
    let strip = |t: &Tree| -> Vec<(String, char, u32, u32, u32, Option<String>)> {
        t.0.iter()
            .filter(|(p, _)| p.as_str() != "/build-time")
            .map(|(p, f)| (p.clone(), f.kind, f.mode, f.uid, f.gid, f.sha256.clone()))
            .collect()
    };
    assert_eq!(strip(&cached), strip(&plain));
}

/// kaniko bug 1: keys hashed the unexpanded text, so a changed --build-arg used by
/// COPY/ADD/WORKDIR gave a stale hit.
#[test]
fn build_arg_used_in_copy_and_workdir_misses() {
    let c = Ctx::new("argcopy", &format!("{}ARG DEST=/one\nWORKDIR $DEST\nCOPY f.txt $DEST/f.txt\n", from()));
    c.write("f.txt", "f\n");
    c.build(&["--build-arg", "DEST=/one"]);
    let o = c.build(&["--build-arg", "DEST=/two"]);
    assert_eq!(o.at(3), "miss: ARG DEST /one → /two");
    assert_eq!(o.at(4), "miss: ARG DEST /one → /two");
    let t = pull_and_unpack(&c.dest).tree();
    assert!(t.has("/two/f.txt") && !t.has("/one"));
}

/// kaniko bug 2: file names were not hashed, so a rename inside a copied directory hit.
#[test]
fn rename_inside_copied_directory_misses() {
    let c = Ctx::new("rename", &format!("{}COPY src/ /app/\nRUN ls /app > /listing\n", from()));
    c.write("src/a.txt", "same\n");
    c.build(&[]);
    std::fs::rename(c.path().join("src/a.txt"), c.path().join("src/b.txt")).unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(2), "miss: COPY src/: 1 added (src/b.txt), 1 removed (src/a.txt)");
    assert_eq!(o.at(3), "miss: parent step missed (line 2: COPY src/: 1 added (src/b.txt), 1 removed (src/a.txt))");
    let u = pull_and_unpack(&c.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/listing"), "b.txt\n");
}

/// kaniko bug 3: key parts were joined with "-", so A="x-B=z" and A=x,B=z collided.
#[test]
fn no_collision_between_build_arg_sets() {
    let c = Ctx::new("join", &format!("{}ARG A\nARG B\nRUN echo \"$A|$B\" > /ab\n", from()));
    c.build(&["--build-arg", "A=x-B=z"]);
    let o = c.build(&["--build-arg", "A=x", "--build-arg", "B=z"]);
    assert_eq!(o.at(4), "miss: ARG A x-B=z → x; ARG B (unset) → z");
    let u = pull_and_unpack(&c.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/ab"), "x|z\n");
}

/// Pushes `src` (an image on the plain registry) as `dest` with skopeo.
fn retag(src: &str, dest: &str) {
    assert_ok(&run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{src}"),
        &format!("docker://{dest}"),
    ])));
}

/// kaniko bug 4 (kaniko#1833): a base stage with no instructions dropped the base digest from
/// the child stage's key, so changing the base kept hitting.
#[test]
fn empty_base_stage_still_carries_the_base_digest() {
    let base = format!("{}/{}:1", env().registry, unique_repo("emptybase"));
    retag(&env().busybox(), &base);
    let c = Ctx::new("emptystage", &format!("FROM {base} AS base\nFROM base\nRUN echo hi > /hi\n"));
    c.build(&[]);
    assert_eq!(c.build(&[]).at(3), "hit");
    // Same tag, different image (the schema2 copy has another manifest digest).
    retag(&format!("{}/busybox:docker", env().registry), &base);
    let new_digest = skopeo_inspect(&base)["Digest"].as_str().unwrap().to_string();
    let o = c.build(&[]);
    let expl = o.at(3).to_string();
    assert!(expl.starts_with(&format!("miss: base image {base} now {}…", &new_digest[..19])), "{expl}");
}

#[test]
fn file_content_and_mode_changes_miss() {
    let c = Ctx::new("content", &format!("{}COPY app.txt /app.txt\nCOPY run.sh /run.sh\n", from()));
    c.write("app.txt", "v1\n");
    c.write("run.sh", "#!/bin/sh\n");
    c.build(&[]);
    c.write("app.txt", "v2\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(c.path().join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(2), "miss: COPY app.txt: 1 file changed (app.txt)");
    // Both inputs that differ are named: its own file (its mode: the content is the same),
    // and the step before it.
    assert_eq!(
        o.at(3),
        "miss: COPY run.sh: 1 file changed (run.sh: mode 0644 → 0755); parent step missed (line 2: COPY app.txt: 1 \
         file changed (app.txt))"
    );
}

/// The extended attributes of the files in the last layer of `reference`, as its tar headers
/// carry them (`SCHILY.xattr.*`): (path, name, value).
fn xattrs_in_last_layer(reference: &str) -> Vec<(String, String, Vec<u8>)> {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    copy_to_layout(reference, &layout, "img");
    let json = |p: &Path| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let manifest = json(&blob(json(&layout.join("index.json"))["manifests"][0]["digest"].as_str().unwrap()));
    let last = manifest["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_string();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(blob(&last)).unwrap()).read_to_end(&mut raw).unwrap();
    let mut out = Vec::new();
    for e in tar::Archive::new(raw.as_slice()).entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        for x in e.pax_extensions().unwrap().into_iter().flatten() {
            let x = x.unwrap();
            if let Some(name) = x.key().unwrap().strip_prefix("SCHILY.xattr.") {
                out.push((path.clone(), name.to_string(), x.value_bytes().to_vec()));
            }
        }
    }
    out
}

/// A COPY carries a context file's xattrs into its layer, so one changed alone must miss: it
/// was served from the cache with the old value, named nowhere in the key.
#[test]
fn an_xattr_change_alone_misses() {
    let c = Ctx::new("xattr", &format!("{}COPY x.bin /x.bin\n", from()));
    c.write("x.bin", "same content\n");
    let set = |v: &[u8]| {
        rustix::fs::setxattr(c.path().join("x.bin"), "user.foo", v, rustix::fs::XattrFlags::empty())
            .expect("the test's context is on a file system with user xattrs")
    };
    set(b"bar");
    c.build(&[]);
    let x = |v: &[u8]| vec![("x.bin".to_string(), "user.foo".to_string(), v.to_vec())];
    assert_eq!(xattrs_in_last_layer(&c.dest), x(b"bar"));
    set(b"baz");
    let o = c.build(&[]);
    assert_eq!(o.at(2), "miss: COPY x.bin: 1 file changed (x.bin: xattr user.foo changed)");
    assert_eq!(xattrs_in_last_layer(&c.dest), x(b"baz"));
    // Unchanged, it hits.
    c.build(&[]).all_hit();
}

/// A source big enough to be hashed on several threads (`keyfiles.rs`): each file's digest is
/// its own, so an unchanged context hits and one changed byte misses naming that file alone.
#[test]
fn a_big_source_hashed_on_several_threads_keys_each_file_by_its_own_content() {
    let c = Ctx::new("big-source", &format!("{}COPY data /data\n", from()));
    let mut x: u32 = 7;
    for i in 0..8 {
        let mut bytes = Vec::with_capacity(2 << 20);
        while bytes.len() < 2 << 20 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::create_dir_all(c.path().join("data")).unwrap();
        std::fs::write(c.path().join(format!("data/big{i}.bin")), &bytes).unwrap();
        c.write(&format!("data/small{i}.txt"), &format!("small {i}\n"));
    }
    let first = c.build(&[]);
    c.build(&[]).all_hit();
    let p = c.path().join("data/big5.bin");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[1 << 20] ^= 1;
    std::fs::write(&p, bytes).unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(2), "miss: COPY data: 1 file changed (data/big5.bin)");
    assert_ne!(o.digest, first.digest);
}

/// A context file's owner on the build machine never reaches the image (COPY gives 0:0 or
/// `--chown`'s owner, as BuildKit does), so it is not in the key: the same checkout owned by
/// another user (another CI runner; a rootless build before its namespace's maps are written,
/// `tests/rootless.rs`) hits every step, and the image is the same.
#[test]
fn a_context_files_owner_is_not_in_a_copys_key() {
    let df = format!("{}COPY app.txt /app.txt\nCOPY --chown=5:6 app.txt /owned.txt\nRUN cat /app.txt\n", from());
    let c = Ctx::new("context-owner", &df);
    c.write("app.txt", "v1\n");
    let chown = |id: u32| std::os::unix::fs::chown(c.path().join("app.txt"), Some(id), Some(id)).unwrap();
    chown(1000);
    let first = c.build(&[]);
    chown(2000);
    let o = c.build(&[]);
    o.all_hit();
    assert_eq!(o.digest, first.digest);
    let tree = pull_and_unpack(&c.dest);
    let files = tree.tree();
    assert_eq!((files.get("/app.txt").uid, files.get("/app.txt").gid), (0, 0));
    assert_eq!((files.get("/owned.txt").uid, files.get("/owned.txt").gid), (5, 6));
}

#[test]
fn dockerignored_and_unused_changes_still_hit() {
    let c = Ctx::new(
        "ignored",
        &format!(
            "ARG GLOBAL_ONLY\n{}COPY . /ctx/\nRUN ls /ctx > /listing\nARG LATER\nRUN echo \"$LATER\" > /later\n",
            from()
        ),
    );
    c.write(".dockerignore", "*.log\n");
    c.write("keep.txt", "keep\n");
    c.write("noise.log", "1\n");
    c.build(&["--build-arg", "GLOBAL_ONLY=1", "--build-arg", "LATER=same", "--build-arg", "UNRELATED=1"]);
    c.write("noise.log", "2, changed but ignored\n");
    let o = c.build(&["--build-arg", "GLOBAL_ONLY=2", "--build-arg", "LATER=same", "--build-arg", "UNRELATED=2"]);
    o.all_hit();
}

#[test]
fn retagged_base_misses_everything() {
    let base = format!("{}/{}:1", env().registry, unique_repo("retag"));
    retag(&env().busybox(), &base);
    let c = Ctx::new("retag", &format!("FROM {base}\nRUN echo one > /one\nCOPY f.txt /f.txt\nRUN echo two > /two\n"));
    c.write("f.txt", "f\n");
    let first = c.build(&[]);
    retag(&format!("{}/busybox:docker", env().registry), &base);
    let o = c.build(&[]);
    assert_eq!(o.steps.len(), 3);
    for (line, r) in &o.steps {
        assert!(r.starts_with(&format!("miss: base image {base} now sha256:")), "line {line}: {r}");
    }
    assert_ne!(first.digest, o.digest);
}

#[test]
fn expired_entries_miss() {
    let c = Ctx::new("ttl", &format!("{}RUN echo x > /x\n", from()));
    c.build(&[]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let o = c.build(&["--cache-ttl", "1s"]);
    let r = o.at(2);
    assert!(
        r.starts_with("miss: cached layer expired (created ") && r.ends_with(", older than --cache-ttl 1s)"),
        "{r}"
    );
}

/// A cached step's files are in the build root for the steps that run after it.
#[test]
fn later_steps_see_files_of_cached_steps() {
    let c = Ctx::new(
        "seefiles",
        &format!(
            "{}COPY a.txt /a.txt\nRUN echo hi > /hi\nARG V\nRUN cat /a.txt /hi > /both && echo $V >> /both\n",
            from()
        ),
    );
    c.write("a.txt", "from-context\n");
    c.build(&["--build-arg", "V=1"]);
    let o = c.build(&["--build-arg", "V=2"]);
    assert_eq!(o.at(2), "hit");
    assert_eq!(o.at(3), "hit");
    assert_eq!(o.at(5), "miss: ARG V 1 → 2");
    let u = pull_and_unpack(&c.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/both"), "from-context\nhi\n2\n");
}

/// Only steps that succeeded are written to the cache, and the cache stays usable.
#[test]
fn failed_steps_are_not_cached() {
    let c = Ctx::new("failing", &format!("{}RUN echo ok > /ok\nRUN echo boom; exit 5\n", from()));
    let mut cmd = trowel();
    cmd.args([
        "build",
        "--cache",
        "--reproducible",
        "--cache-repo",
        &c.cache_repo,
        "--destination",
        &c.dest,
        "--context",
    ])
    .arg(c.path());
    let o = run(&mut cmd);
    assert_eq!(o.status.code(), Some(5));
    let tags =
        run(Command::new("skopeo").args(["list-tags", "--tls-verify=false", &format!("docker://{}", c.cache_repo)]));
    assert_ok(&tags);
    let v: Value = serde_json::from_slice(&tags.stdout).unwrap();
    let tags: Vec<&str> = v["Tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    // One entry (the key) and its step pointer, for the RUN that succeeded.
    assert_eq!(tags.len(), 2, "{tags:?}");
    assert_eq!(tags.iter().filter(|t| t.starts_with("step-")).count(), 1, "{tags:?}");
    // Fixing the Dockerfile: the first RUN hits.
    std::fs::write(c.path().join("Dockerfile"), format!("{}RUN echo ok > /ok\nRUN echo fixed\n", from())).unwrap();
    let out = c.build(&[]);
    assert_eq!(out.at(2), "hit");
}

#[test]
fn copy_from_a_changed_stage_misses() {
    let df = |v: &str| {
        format!(
            "{} AS builder\nRUN echo {v} > /v\nFROM {}\nCOPY --from=builder /v /v\n",
            from().trim_end(),
            env().busybox()
        )
    };
    let c = Ctx::new("copyfrom", &df("v1"));
    c.build(&[]);
    assert_eq!(c.build(&[]).at(4), "hit");
    std::fs::write(c.path().join("Dockerfile"), df("v2")).unwrap();
    let o = c.build(&[]);
    // The files it copies changed (it is keyed by them, as in BuildKit), and why: the stage's
    // last step missed in this build, and says why.
    assert_eq!(
        o.at(4),
        "miss: COPY --from=builder /v: 1 file changed (v); stage builder changed (line 2: instruction changed: \
         RUN echo v1 > /v → RUN echo v2 > /v)"
    );
    // A builder that changes and makes the same file leaves the COPY a hit.
    std::fs::write(c.path().join("Dockerfile"), df("v2").replace("> /v", "> /v && true")).unwrap();
    let same = c.build(&[]);
    assert!(same.at(2).starts_with("miss: instruction changed"), "{}", same.at(2));
    assert_eq!(same.at(4), "hit");
}

/// `COPY --link`: its layer does not depend on the steps before it, so it hits after an earlier
/// step changed, while a plain COPY and every step after it miss (they do depend on it); its
/// own inputs still make it miss, each explained.
#[test]
fn link_hits_after_an_earlier_step_changed() {
    let df = |workdir: &str| {
        format!(
            "{}ARG V\nRUN echo $V > /x\nWORKDIR {workdir}\nCOPY --link a.txt rel/\nCOPY a.txt /plain/\n\
             RUN cat /x {workdir}/rel/a.txt > /both\n",
            from()
        )
    };
    let c = Ctx::new("linkhit", &df("/w"));
    c.write("a.txt", "a\n");
    let first = c.build(&["--build-arg", "V=1"]);
    assert!(first.steps.iter().all(|(_, r)| r == "miss: no cache entry for this step yet"), "{:?}", first.steps);
    let o = c.build(&["--build-arg", "V=2"]);
    assert_eq!(o.at(3), "miss: ARG V 1 → 2");
    assert_eq!(o.at(5), "hit", "{:?}", o.steps);
    assert_eq!(o.at(6), "miss: parent step missed (line 3: ARG V 1 → 2)");
    // A RUN sees every ARG: the changed one is named first.
    assert_eq!(o.at(7), "miss: ARG V 1 → 2");
    // The hit's layer is laid over the new RUN's result: the image has both.
    let u = pull_and_unpack(&c.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/both"), "2\na\n");
    // The key says it is not chained, and what it is made of instead.
    let lookup = o.events.iter().find(|e| e["event"] == "cache_lookup" && e["components"]["line"] == 5).unwrap();
    assert_eq!(lookup["components"]["parent"], "");
    assert_eq!(lookup["components"]["linked"], "/w/rel/");

    // Its own inputs: the copied file, and the WORKDIR its relative destination hangs on.
    c.write("a.txt", "A\n");
    assert_eq!(c.build(&["--build-arg", "V=2"]).at(5), "miss: COPY a.txt: 1 file changed (a.txt)");
    std::fs::write(c.path().join("Dockerfile"), df("/v")).unwrap();
    let o = c.build(&["--build-arg", "V=2"]);
    assert_eq!(o.at(4), "miss: instruction changed: WORKDIR /w → WORKDIR /v");
    assert_eq!(o.at(5), "miss: WORKDIR changed: destination /w/rel/ → /v/rel/");
}

mod blobs;
mod entry_format;
mod explain;
mod explain_places;
mod layer_inputs;
mod round_trips;

/// A step is keyed by the files it starts from and what it reads, as in BuildKit: a LABEL
/// change misses nothing (the image still gets the new label), an ENV or USER change misses the
/// RUN that sees it and not the COPY that does not (its files are root's whatever the USER).
/// Keys held every config step before them (as in kaniko), so an edited LABEL near the top
/// missed every step below it.
#[test]
fn config_changes_miss_only_the_steps_that_read_them() {
    let df = |label: &str, version: &str, user: &str| {
        format!(
            "{}LABEL revision={label}\nENV VERSION={version}\nUSER {user}\nCOPY f.txt /f.txt\nRUN cat /f.txt > /tmp/g\n",
            from()
        )
    };
    let c = Ctx::new("configonly", &df("one", "1", "root"));
    c.write("f.txt", "f\n");
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), df("two", "1", "root")).unwrap();
    let o = c.build(&[]);
    o.all_hit();
    let config = skopeo_config(&c.dest);
    assert_eq!(config["config"]["Labels"]["revision"], "two", "{config}");
    std::fs::write(c.path().join("Dockerfile"), df("two", "2", "root")).unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(5), "hit");
    assert_eq!(o.at(6), "miss: ENV VERSION 1 → 2");
    std::fs::write(c.path().join("Dockerfile"), df("two", "2", "nobody")).unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(5), "hit");
    assert_eq!(o.at(6), "miss: USER changed (root → nobody)");
    let u = pull_and_unpack(&c.dest);
    assert_eq!(
        u.tree().0.iter().find(|(p, _)| *p == "/tmp/g").map(|(_, f)| f.uid),
        Some(65534),
        "the RUN ran as nobody"
    );
}
