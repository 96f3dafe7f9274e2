//! One build as its trace (`--trace`) and log tell it: what the cache said at each line, what a
//! step ended as, the image's digest, what was uploaded and downloaded. Shared by the tests that
//! count a rebuild's work from its events (fresh pods, deferred COPYs).

use serde_json::Value;

/// A build's trace events (the header line left out) and its log.
pub struct Traced {
    pub events: Vec<Value>,
    pub log: String,
}

impl Traced {
    /// The build traced in `trace_text`, which logged `log`.
    pub fn parse(trace_text: &str, log: String) -> Traced {
        Traced { events: trace_text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect(), log }
    }

    pub fn of<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["event"] == event)
    }

    /// The lookup of the step at `line`.
    pub fn lookup(&self, line: u64) -> &Value {
        self.of("cache_lookup")
            .find(|e| e["components"]["line"] == line)
            .unwrap_or_else(|| panic!("no lookup at {line}"))
    }

    /// "hit" | "miss: …" | "error: …" for the step at `line`.
    pub fn at(&self, line: u64) -> String {
        let r = &self.lookup(line)["result"];
        match r["kind"].as_str().unwrap() {
            "hit" => "hit".into(),
            "miss" => format!("miss: {}", r["explanation"].as_str().unwrap()),
            other => format!("{other}: {}", r["message"].as_str().unwrap()),
        }
    }

    /// The `step_finished` event of the step at `line`.
    fn finished(&self, line: u64) -> &Value {
        let id = self.of("step_started").find(|e| e["line"] == line).unwrap()["id"].clone();
        self.of("step_finished").find(|e| e["id"] == id).unwrap()
    }

    /// The `step_finished` status of the step at `line`.
    pub fn status(&self, line: u64) -> String {
        self.finished(line)["status"].as_str().unwrap().to_string()
    }

    /// The layer the step at `line` added.
    pub fn layer_at(&self, line: u64) -> String {
        self.finished(line)["layer"].as_str().unwrap().to_string()
    }

    pub fn digest(&self) -> String {
        self.of("image_assembled").next().unwrap()["manifest_digest"].as_str().unwrap().to_string()
    }

    /// Blobs this build uploaded (to any destination or the cache repository).
    pub fn uploaded(&self) -> Vec<String> {
        self.of("blob_pushed")
            .filter(|e| e["action"] == "uploaded")
            .map(|e| e["digest"].as_str().unwrap().into())
            .collect()
    }

    /// Blobs this build downloaded.
    pub fn downloaded(&self) -> Vec<String> {
        self.of("pull_progress").map(|e| e["digest"].as_str().unwrap().to_string()).collect()
    }
}

/// A project on the test registry: a Dockerfile, a context (`ctx/`), its destination and cache
/// repository. Each build is a fresh pod's (a cache dir and a work dir that do not exist:
/// nothing local survives), traced, with `--reproducible` so that images compare by digest.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub cache_repo: String,
    pub dest: String,
}

impl Project {
    pub fn new(name: &str, dockerfile: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
        std::fs::create_dir_all(dir.path().join("ctx")).unwrap();
        let repo = super::unique_repo(name);
        Project {
            dir,
            cache_repo: format!("{}/{repo}/cache", super::env().registry),
            dest: format!("{}/{repo}:latest", super::env().registry),
        }
    }

    /// Writes a file of the context.
    pub fn write(&self, rel: &str, content: &str) {
        let p = self.dir.path().join("ctx").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// A fresh pod's build pushed to `dest`, with the cache repository and `extra` flags.
    pub fn build_to(&self, dest: &str, extra: &[&str]) -> Traced {
        let (out, traced) = self.try_build_to(dest, extra);
        super::assert_ok(&out);
        traced
    }

    /// [`Project::build_to`] that may fail: its output, and the build as traced.
    pub fn try_build_to(&self, dest: &str, extra: &[&str]) -> (std::process::Output, Traced) {
        let trace = self.dir.path().join(format!("{}.trace", super::unique_repo("t")));
        let fresh = tempfile::tempdir().unwrap();
        let out = super::run(
            super::trowel()
                .args(["build", "--cache-repo", &self.cache_repo, "--reproducible", "--cache-dir"])
                .arg(fresh.path().join("cache"))
                .arg("--work-dir")
                .arg(fresh.path().join("work"))
                .arg("--dockerfile")
                .arg(self.dir.path().join("Dockerfile"))
                .args(["--destination", dest, "--context"])
                .arg(self.dir.path().join("ctx"))
                .arg("--trace")
                .arg(&trace)
                .args(extra),
        );
        let text = std::fs::read_to_string(&trace).unwrap_or_default();
        let traced = Traced::parse(&text, super::stderr(&out));
        (out, traced)
    }

    /// Tags under `tag` in the project's cache repository an artifact manifest of `media_type`
    /// with no layers whose config is `config` (any bytes): plain HTTP, as any writer of the
    /// cache repository could (a record trowel must refuse, or one it must take).
    pub fn put_artifact(&self, tag: &str, media_type: &str, config: &[u8]) {
        let digest = super::put_blob(&self.cache_repo, config);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": media_type,
            "config": {"mediaType": media_type, "digest": digest, "size": config.len()},
            "layers": [],
        });
        super::put_manifest(&self.cache_repo, tag, &manifest);
    }

    /// The same build without the cache, to a destination of its own: the image as it must be.
    pub fn uncached(&self, extra: &[&str]) -> Traced {
        let dest = format!("{}/{}:latest", super::env().registry, super::unique_repo("uncached"));
        let mut args = vec!["--cache=false"];
        args.extend_from_slice(extra);
        self.build_to(&dest, &args)
    }

    /// kaniko's GitLab flags (`--cache=true --cache-repo …`, no `--cache-copy-layers`) and
    /// `extra`, pushed to the project's destination.
    pub fn build(&self, extra: &[&str]) -> Traced {
        let mut args = vec!["--cache=true"];
        args.extend_from_slice(extra);
        self.build_to(&self.dest, &args)
    }
}

/// `curl` against the plain registry; returns the HTTP status.
pub fn curl(args: &[&str]) -> String {
    let o =
        super::run(std::process::Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]).args(args));
    super::assert_ok(&o);
    super::stdout(&o)
}
