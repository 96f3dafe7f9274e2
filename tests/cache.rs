//! The layer cache against a real registry: correct keys first (kaniko's four key bugs, and every
//! kind of change that must or must not miss), then explanations, asserted word for word. Every
//! build starts with fresh local state (trowel keeps none between builds), so the cache and the
//! explanations live only in the registry, as between two CI jobs.

mod common;
#[path = "faults/mod.rs"]
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
    assert_eq!(o.at(4), "miss: ARG A x-B=z → x, ARG B (unset) → z");
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
        "miss: COPY run.sh: 1 file changed (run.sh: mode 0644 → 0755), parent step missed (line 2: COPY app.txt: 1 \
         file changed (app.txt))"
    );
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
fn changed_instruction_and_parent_are_explained() {
    let c = Ctx::new("instr", &format!("{}RUN echo a > /a\nRUN echo b > /b\n", from()));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), format!("{}RUN echo A > /a\nRUN echo b > /b\n", from())).unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(2), "miss: instruction text changed");
    assert_eq!(o.at(3), "miss: parent step missed (line 2: instruction text changed)");
    // An ENV before a RUN is named as the change.
    std::fs::write(c.path().join("Dockerfile"), format!("{}ENV MODE=dev\nRUN echo A > /a\n", from())).unwrap();
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), format!("{}ENV MODE=prod\nRUN echo A > /a\n", from())).unwrap();
    assert_eq!(c.build(&[]).at(3), "miss: ENV MODE dev → prod");
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

#[test]
fn a_changed_parent_stage_is_named() {
    let c = Ctx::new(
        "stagechain",
        &format!("{} AS builder\nRUN echo v1 > /v\nFROM builder\nRUN cat /v > /copy\n", from().trim_end()),
    );
    c.build(&[]);
    std::fs::write(
        c.path().join("Dockerfile"),
        format!("{} AS builder\nRUN echo v2 > /v\nFROM builder\nRUN cat /v > /copy\n", from().trim_end()),
    )
    .unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(2), "miss: instruction text changed");
    assert_eq!(o.at(4), "miss: base stage changed (FROM builder)");
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
    // Why the stage changed: its last step missed in this build, and says why.
    assert_eq!(o.at(4), "miss: stage builder changed (line 2: instruction text changed)");
}

/// A fully cached build needs no base layer locally: a destination on the base's registry
/// mounts it, one that already has it skips it, and only a destination on another registry gets
/// it downloaded, during its push. Each image is checked with skopeo.
#[test]
fn base_layers_are_downloaded_only_for_a_destination_that_needs_them() {
    let e = env();
    let c = Ctx::new("lazy-base", &format!("{}RUN echo hi > /hi\n", from()));
    c.build(&[]).steps.iter().for_each(|(_, r)| assert!(r.starts_with("miss"), "{r}"));

    let traced = |dest: &str, docker_config: &Path| -> Vec<Value> {
        let trace = c.path().join("..").join(format!("{}.trace", unique_repo("t")));
        let o = run(trowel()
            .env("DOCKER_CONFIG", docker_config)
            .args(["build", "--cache", "--cache-copy-layers", "--reproducible", "--cache-repo", &c.cache_repo])
            .args(["--destination", dest, "--context"])
            .arg(c.path())
            .arg("--trace")
            .arg(&trace));
        assert_ok(&o);
        assert!(stderr(&o).contains("Cache: 1 hit(s), 0 miss(es)"), "{}", stderr(&o));
        let text = std::fs::read_to_string(&trace).unwrap();
        let _ = std::fs::remove_file(&trace);
        text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    // (The cached layer itself is downloaded to list its files in the trace.)
    let base_pulls = |events: &[Value]| {
        events.iter().filter(|x| x["event"] == "pull_progress" && x["reference"] == e.busybox().as_str()).count()
    };
    let actions = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|x| x["event"] == "blob_pushed")
            .map(|x| x["action"].as_str().unwrap().to_string())
            .collect()
    };
    let no_config = tempfile::tempdir().unwrap();

    // Same registry, new repository: the base layer is mounted, never downloaded.
    let mounted = format!("{}/{}:1", e.registry, unique_repo("lazy-mounted"));
    let events = traced(&mounted, no_config.path());
    assert_eq!(base_pulls(&events), 0, "the base is not downloaded");
    assert!(actions(&events).contains(&"mounted".to_string()), "{:?}", actions(&events));
    assert_eq!(skopeo_manifest(&mounted)["layers"].as_array().unwrap().len(), 2);

    // Pushed again: everything is already there.
    let events = traced(&mounted, no_config.path());
    assert_eq!(base_pulls(&events), 0);
    assert!(actions(&events).iter().all(|a| a == "existed"), "{:?}", actions(&events));

    // Another registry: the base layer is downloaded for the upload, and the image is whole.
    let cfg = tempfile::tempdir().unwrap();
    let auth = base64_encode(&format!("{}:{}", e.auth_user, e.auth_password));
    std::fs::write(
        cfg.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, e.auth_registry),
    )
    .unwrap();
    let elsewhere = format!("{}/{}:1", e.auth_registry, unique_repo("lazy-elsewhere"));
    let events = traced(&elsewhere, cfg.path());
    assert!(actions(&events).iter().filter(|a| *a == "uploaded").count() >= 2, "{:?}", actions(&events));
    let out = tempfile::tempdir().unwrap();
    let copied = run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &format!("{}:{}", e.auth_user, e.auth_password),
        &format!("docker://{elsewhere}"),
        &format!("dir:{}", out.path().join("img").display()),
    ]));
    assert_ok(&copied);
}

/// History times follow where each step's result came from: a rebuild in which nothing ran
/// reproduces the previous image, digest included, and pushes nothing; a step that runs is
/// stamped with the time of its build, and the steps served from the cache keep theirs.
#[test]
fn a_rebuild_in_which_nothing_ran_is_the_same_image_and_sends_nothing() {
    let c = Ctx::new(
        "stamps",
        &format!("{}ENV A=1\nRUN echo x > /x\nLABEL l=1\nCOPY f.txt /f.txt\nCMD [\"sh\"]\n", from()),
    );
    c.write("f.txt", "one\n");
    let first = c.build_timed(&[]);
    let config = skopeo_config(&c.dest);
    let base = skopeo_config(&env().busybox());
    let created = |h: &Value| h["created"].as_str().unwrap().to_string();
    let history = config["history"].as_array().unwrap().clone();
    let ours = &history[history.len() - 5..];
    // ENV took the base's time: nothing of the stage had been made yet.
    assert_eq!(created(&ours[0]), base["created"].as_str().unwrap(), "{ours:?}");
    // LABEL and CMD take the time of the step before them.
    assert_eq!(created(&ours[2]), created(&ours[1]));
    assert_eq!(created(&ours[4]), created(&ours[3]));
    assert_eq!(config["created"].as_str().unwrap(), created(&ours[3]), "the image is as new as its newest step");

    // Timestamps have a resolution of a second: make sure the clock has moved on.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = c.build_timed(&[]);
    second.all_hit();
    assert_eq!(second.digest, first.digest, "nothing ran: the same image");
    assert!(second.log.contains("(unchanged: the registry already had it)"), "{}", second.log);
    assert_eq!(skopeo_inspect(&c.dest)["Digest"].as_str().unwrap(), first.digest);

    c.write("f.txt", "two\n");
    let third = c.build_timed(&[]);
    assert_eq!(third.at(3), "hit");
    assert!(third.at(5).starts_with("miss"), "{:?}", third.steps);
    assert_ne!(third.digest, first.digest);
    assert!(!third.log.contains("unchanged"), "{}", third.log);
    let config3 = skopeo_config(&c.dest);
    let h3 = config3["history"].as_array().unwrap();
    let ours3 = &h3[h3.len() - 5..];
    assert_eq!(created(&ours3[1]), created(&ours[1]), "the cached RUN keeps its time");
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    assert!(t(&created(&ours3[3])) > t(&created(&ours[3])), "the COPY ran again: {ours3:?}");
    assert_eq!(config3["created"].as_str().unwrap(), created(&ours3[3]));
}

/// Config-only steps at the top of a `FROM scratch` stage have no earlier time to take: they get
/// the time of the first step that makes something.
#[test]
fn scratch_stage_config_steps_take_the_time_of_the_first_layer() {
    let c = Ctx::new("scratchstamps", "FROM scratch\nENV A=1\nLABEL x=y\nCOPY f.txt /f.txt\n");
    c.write("f.txt", "f\n");
    let first = c.build_timed(&[]);
    let config = skopeo_config(&c.dest);
    let h = config["history"].as_array().unwrap();
    assert_eq!(h.len(), 3, "{h:?}");
    let copy_time = h[2]["created"].as_str().unwrap();
    assert_eq!(h[0]["created"].as_str().unwrap(), copy_time);
    assert_eq!(h[1]["created"].as_str().unwrap(), copy_time);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(c.build_timed(&[]).digest, first.digest);
}

/// A layer a step built goes to the registry once: it is uploaded to the cache repository while
/// it is written, and the destination, on the same registry, mounts it from there.
#[test]
fn built_layers_are_mounted_from_the_cache_repo() {
    let c = Ctx::new("mount-built", &format!("{}RUN head -c 300000 /dev/urandom > /r\nCOPY f.txt /f.txt\n", from()));
    c.write("f.txt", "f\n");
    let o = c.build(&[]);
    let built: Vec<&str> = o
        .events
        .iter()
        .filter(|e| e["event"] == "layer_written")
        .map(|e| e["layer"]["digest"].as_str().unwrap())
        .collect();
    assert_eq!(built.len(), 2, "{:?}", o.events);
    for d in &built {
        let pushed = o
            .events
            .iter()
            .find(|e| e["event"] == "blob_pushed" && e["digest"] == *d)
            .unwrap_or_else(|| panic!("{d} not pushed"));
        assert_eq!(pushed["action"], "mounted", "{pushed}");
    }
    // Both layers were uploaded to the cache repository while they were being written.
    let stored: Vec<&Value> = o.events.iter().filter(|e| e["event"] == "cache_stored").collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.iter().all(|e| e["streamed"] == true), "{stored:?}");
    // The push waited for the layers' uploads, not for the entries (a registry mounts only a
    // blob it has: "mounted" above says the uploads were over), and the build for both.
    let finished = o.events.iter().position(|e| e["event"] == "build_finished").unwrap();
    let last_stored = o.events.iter().rposition(|e| e["event"] == "cache_stored").unwrap();
    assert!(last_stored < finished, "every cache write is over before the build ends");
    // Independent clients see a whole image.
    assert_eq!(skopeo_inspect(&c.dest)["Digest"].as_str().unwrap(), o.digest);
    let t = pull_and_unpack(&c.dest).tree();
    assert_eq!(t.get("/r").size, 300000);
    assert!(t.has("/f.txt"));
}

/// A layer a step built is mounted into the destination without asking first whether the
/// destination has it (only an earlier build of the same bytes could have put it there, and the
/// mount answers for that case too). When the mount is refused, the destination is asked, and a
/// layer it already has is not sent again.
#[test]
fn a_built_layer_is_mounted_without_asking_first() {
    let proxy = faults::FaultProxy::start(&env().registry);
    let df = format!("{}RUN echo hi > /hi\n", from());
    let c = Ctx::at(&proxy.addr, "mountfirst", &df);
    let dest_repo = c.dest.split_once('/').unwrap().1.rsplit_once(':').unwrap().0.to_string();
    let asked = |from: usize, digest: &str| {
        proxy.seen()[from..].iter().any(|s| s == &format!("HEAD /v2/{dest_repo}/blobs/{digest}"))
    };
    let action = |o: &Outcome, digest: &str| {
        let e = o.events.iter().find(|e| e["event"] == "blob_pushed" && e["digest"] == digest);
        e.unwrap_or_else(|| panic!("{digest} not pushed: {:?}", o.events))["action"].as_str().unwrap().to_string()
    };

    let o = c.build(&[]);
    let layer = o.events.iter().find(|e| e["event"] == "layer_written").unwrap()["layer"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(action(&o, &layer), "mounted");
    assert!(!asked(0, &layer), "{:?}", proxy.seen());
    let hex = layer.strip_prefix("sha256:").unwrap();
    let mounts = |from: usize| -> Vec<String> {
        proxy.seen()[from..]
            .iter()
            .filter(|s| s.starts_with(&format!("POST /v2/{dest_repo}/blobs/uploads/?mount=")) && s.contains(hex))
            .cloned()
            .collect()
    };
    assert_eq!(mounts(0).len(), 1, "{:?}", proxy.seen());

    // The same image, built again from an empty cache repository (so its RUN runs and makes the
    // same bytes, `--reproducible`), to the same destination, every mount refused.
    let again = tempfile::tempdir().unwrap();
    std::fs::write(again.path().join("Dockerfile"), &df).unwrap();
    let c2 =
        Ctx { dir: again, cache_repo: format!("{}/{}/cache", proxy.addr, unique_repo("mountfirst2")), dest: c.dest };
    proxy.inject("POST", "?mount=", faults::Fault::Status { code: 202, retry_after: None }, 1);
    let before = proxy.seen().len();
    let o2 = c2.build(&[]);
    assert!(o2.at(2).starts_with("miss"), "{:?}", o2.steps);
    assert_eq!(mounts(before).len(), 1, "{:?}", &proxy.seen()[before..]);
    assert!(asked(before, &layer), "asked after the refused mount: {:?}", &proxy.seen()[before..]);
    assert_eq!(action(&o2, &layer), "existed");
    let uploads_to_dest = proxy.seen()[before..]
        .iter()
        .filter(|s| s.starts_with(&format!("PUT /v2/{dest_repo}/blobs/uploads/")) && s.contains(hex))
        .count();
    assert_eq!(uploads_to_dest, 0, "{:?}", &proxy.seen()[before..]);
    assert!(proxy.unused().is_empty(), "{:?}", proxy.unused());
    assert_eq!(skopeo_inspect(&c2.dest)["Digest"].as_str().unwrap(), o2.digest);
}

/// The push does not wait for a layer still going up to the cache repository: while that
/// upload is held at the registry, the destination is already asked about the image's other
/// blobs, and the layer is mounted once its upload is over.
#[test]
fn the_push_goes_on_while_a_built_layer_is_still_going_up() {
    let proxy = faults::FaultProxy::start(&env().registry);
    let c = Ctx::at(&proxy.addr, "arrival", &format!("{}RUN echo hi > /hi\n", from()));
    let cache_path = c.cache_repo.split_once('/').unwrap().1.to_string();
    let dest_repo = c.dest.split_once('/').unwrap().1.rsplit_once(':').unwrap().0.to_string();
    // The cache repository's first upload to finish is the RUN's layer, streamed as written.
    let commit = format!("PUT /v2/{cache_path}/blobs/uploads/");
    let hold = std::time::Duration::from_secs(10);
    proxy.inject("PUT", &format!("/v2/{cache_path}/blobs/uploads/"), faults::Fault::Hold { pause: hold }, 1);
    std::thread::scope(|s| {
        let build = s.spawn(|| c.build(&[]));
        proxy.wait_applied(&commit, std::time::Duration::from_secs(120));
        let t0 = std::time::Instant::now();
        // Asked after the hold began (the push check's upload session was opened long before).
        let held_at = proxy.seen().iter().position(|r| r.starts_with(&commit)).unwrap();
        let asked = || proxy.seen()[held_at..].iter().any(|r| r.contains(&format!(" /v2/{dest_repo}/blobs/")));
        while !asked() && t0.elapsed() < hold - std::time::Duration::from_secs(2) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(asked(), "nothing was asked of the destination while the layer went up: {:?}", proxy.seen());
        let o = build.join().unwrap();
        let layer = o.events.iter().find(|e| e["event"] == "layer_written").unwrap()["layer"]["digest"].clone();
        let pushed = o.events.iter().find(|e| e["event"] == "blob_pushed" && e["digest"] == layer).unwrap();
        assert_eq!(pushed["action"], "mounted", "{pushed}");
        assert_eq!(skopeo_inspect(&c.dest)["Digest"].as_str().unwrap(), o.digest);
    });
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
    assert_eq!(o.at(4), "miss: instruction text changed");
    assert_eq!(o.at(5), "miss: WORKDIR changed: destination /w/rel/ → /v/rel/");
}

/// The key of the entry a miss was explained against (`compared_with`), by line.
fn compared_with(o: &Outcome, line: usize) -> Option<(String, Option<String>)> {
    o.events.iter().find(|e| e["event"] == "cache_lookup" && e["components"]["line"] == line).and_then(|e| {
        let c = &e["result"]["compared_with"];
        c["key"].as_str().map(|k| (k.to_string(), c["created"].as_str().map(str::to_string)))
    })
}

/// The key a step's lookup was made with, by line.
fn key_at(o: &Outcome, line: usize) -> String {
    o.events
        .iter()
        .find(|e| e["event"] == "cache_lookup" && e["components"]["line"] == line)
        .map(|e| e["key"].as_str().unwrap().to_string())
        .unwrap()
}

/// Issue 15: built with VERSION=1.0, then 2.0, then a copied file changed and 1.0 again. The
/// newest entry of the RUN is 2.0's, which differs in the ARG and the parent; the first build's
/// differs only in the parent (the COPY, whose file changed): that one is compared, and the
/// miss names the file, not the ARG, and says which entry it compared with.
#[test]
fn a_miss_is_explained_against_the_closest_earlier_entry() {
    let c = Ctx::new(
        "closest",
        &format!("{}ARG VERSION\nCOPY app.txt /app.txt\nRUN echo \"$VERSION\" > /version\n", from()),
    );
    c.write("app.txt", "one\n");
    let first = c.build_timed(&["--build-arg", "VERSION=1.0"]);
    let second = c.build_timed(&["--build-arg", "VERSION=2.0"]);
    assert_eq!(second.at(4), "miss: ARG VERSION 1.0 → 2.0");
    assert_eq!(compared_with(&second, 4).unwrap().0, key_at(&first, 4));
    c.write("app.txt", "two\n");
    let o = c.build_timed(&["--build-arg", "VERSION=1.0"]);
    assert_eq!(o.at(3), "miss: COPY app.txt: 1 file changed (app.txt)");
    assert_eq!(o.at(4), "miss: parent step missed (line 3: COPY app.txt: 1 file changed (app.txt))");
    let (key, created) = compared_with(&o, 4).expect("the entry compared with is named");
    assert_eq!(key, key_at(&first, 4), "the first build's entry, not the newest");
    assert!(created.is_some_and(|t| t.ends_with('Z')), "when it was made");
    assert!(o.log.contains("(compared with the entry made "), "{}", o.log);
}

/// Issue 17: a miss whose newest earlier entry differs in one input only (the commonest: one
/// change since the last build) is explained against that entry without fetching the earlier
/// entries it lists, none of which can be closer — in a CI pipeline's steady state that was up
/// to 8 more manifests and configs per missed step. When the newest differs in more, the
/// earlier ones are still fetched and the closest is still found.
#[test]
fn a_one_change_miss_is_explained_without_fetching_the_earlier_entries() {
    let proxy = faults::FaultProxy::start(&env().registry);
    let c = Ctx::at(&proxy.addr, "settles", &format!("{}ARG V\nCOPY app.txt /app.txt\nRUN echo \"$V\" > /v\n", from()));
    let manifests_fetched = |from: usize| -> Vec<String> {
        let path = c.cache_repo.split_once('/').unwrap().1;
        let prefix = format!("GET /v2/{path}/manifests/");
        proxy.seen()[from..].iter().filter_map(|s| s.strip_prefix(&prefix).map(str::to_string)).collect()
    };
    c.write("app.txt", "one\n");
    let first = c.build_timed(&["--build-arg", "V=1"]);
    let second = c.build_timed(&["--build-arg", "V=2"]);
    assert_eq!(second.at(4), "miss: ARG V 1 → 2");
    // The RUN's pointer now names the second build's entry, which lists the first's.
    let before = proxy.seen().len();
    let third = c.build_timed(&["--build-arg", "V=3"]);
    assert_eq!(third.at(4), "miss: ARG V 2 → 3");
    assert_eq!(compared_with(&third, 4).unwrap().0, key_at(&second, 4));
    let fetched = manifests_fetched(before);
    assert!(!fetched.contains(&key_at(&first, 4)), "an earlier entry was fetched: {fetched:?}");
    assert!(fetched.contains(&key_at(&third, 4)), "the lookup itself: {fetched:?}");

    // The file changed and V is back to 1: the newest entry (V=3) differs in the ARG and the
    // parent, the first build's in the parent only: the earlier entries are fetched, and the
    // first build's is the one compared with.
    c.write("app.txt", "two\n");
    let before = proxy.seen().len();
    let o = c.build_timed(&["--build-arg", "V=1"]);
    assert_eq!(o.at(3), "miss: COPY app.txt: 1 file changed (app.txt)");
    assert_eq!(o.at(4), "miss: parent step missed (line 3: COPY app.txt: 1 file changed (app.txt))");
    assert_eq!(compared_with(&o, 4).unwrap().0, key_at(&first, 4));
    let fetched = manifests_fetched(before);
    assert!(fetched.contains(&key_at(&first, 4)), "{fetched:?}");
    assert!(fetched.contains(&key_at(&second, 4)), "{fetched:?}");
}

/// Issue 15, with kaniko's default `--cache-copy-layers=false`: a renamed file under a copied
/// directory is named for the RUN after the COPY (in the log and the trace), from the COPY's
/// inputs that the RUN's entry recorded.
#[test]
fn a_miss_caused_by_an_uncached_copy_names_what_changed_in_it() {
    let c = Ctx::new("uncached", &format!("{}WORKDIR /app\nCOPY src/ /second/\nRUN ls /second > /listing\n", from()));
    c.write("src/a.txt", "a\n");
    c.write("src/b.txt", "b\n");
    c.build_run_layers_only(&[]);
    std::fs::rename(c.path().join("src/b.txt"), c.path().join("src/renamed.txt")).unwrap();
    let o = c.build_run_layers_only(&[]);
    let want = "COPY src/ at line 3: 1 added (src/renamed.txt), 1 removed (src/b.txt)";
    assert_eq!(o.at(4), format!("miss: {want}"));
    assert!(o.log.contains(&format!("Cache miss: {want}")), "{}", o.log);
    assert_eq!(o.at(2), "hit");
}
