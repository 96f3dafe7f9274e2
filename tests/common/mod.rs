//! Shared integration-test harness: the local registries, the trowel binary, and independent
//! clients (skopeo, umoci, crun) to check what trowel produced.
//!
//! The registries come from `scripts/testenv.sh`. `scripts/test.sh` starts them once and exports
//! `TROWEL_TEST_*`; a test binary run on its own (`cargo test --test x`) starts its own set,
//! watched so they stop when the test process ends.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub mod context;
pub mod rootless;
pub mod tmux;
pub mod traced;

pub struct TestEnv {
    /// Plain HTTP, anonymous; holds busybox:{1.35,latest} (OCI) and busybox:docker (schema2).
    pub registry: String,
    /// Plain HTTP with htpasswd basic auth.
    pub auth_registry: String,
    pub auth_user: String,
    pub auth_password: String,
    /// HTTPS with a self-signed CA, by a non-loopback name.
    pub tls_registry: String,
    pub ca: PathBuf,
    /// HTTPS (the same CA) requiring a client certificate signed by its client CA (mutual TLS).
    pub mtls_registry: String,
    /// A client certificate and key the mTLS registry accepts.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The CA and that pair as skopeo's `--cert-dir` wants them.
    pub mtls_cert_dir: PathBuf,
    pub dir: PathBuf,
}

impl TestEnv {
    /// `127.0.0.1:port/busybox:1.35`
    pub fn busybox(&self) -> String {
        format!("{}/busybox:1.35", self.registry)
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn env() -> &'static TestEnv {
    static ENV: OnceLock<TestEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut vars: HashMap<String, String> =
            std::env::vars().filter(|(k, _)| k.starts_with("TROWEL_TEST_")).collect();
        if !vars.contains_key("TROWEL_TEST_REGISTRY") {
            let dir = tempfile::Builder::new().prefix("trowel-testenv-").tempdir().unwrap().keep();
            let out = Command::new(repo_root().join("scripts/testenv.sh"))
                .arg("up")
                .arg(&dir)
                .arg(std::process::id().to_string())
                .stderr(Stdio::inherit())
                .output()
                .expect("run scripts/testenv.sh");
            assert!(out.status.success(), "scripts/testenv.sh up failed");
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((k, v)) = line.split_once('=') {
                    vars.insert(k.to_string(), v.to_string());
                }
            }
        }
        let get = |k: &str| vars.get(k).cloned().unwrap_or_else(|| panic!("{k} not set by testenv"));
        TestEnv {
            registry: get("TROWEL_TEST_REGISTRY"),
            auth_registry: get("TROWEL_TEST_AUTH_REGISTRY"),
            auth_user: get("TROWEL_TEST_AUTH_USER"),
            auth_password: get("TROWEL_TEST_AUTH_PASSWORD"),
            tls_registry: get("TROWEL_TEST_TLS_REGISTRY"),
            ca: PathBuf::from(get("TROWEL_TEST_CA")),
            mtls_registry: get("TROWEL_TEST_MTLS_REGISTRY"),
            client_cert: PathBuf::from(get("TROWEL_TEST_CLIENT_CERT")),
            client_key: PathBuf::from(get("TROWEL_TEST_CLIENT_KEY")),
            mtls_cert_dir: PathBuf::from(get("TROWEL_TEST_MTLS_CERT_DIR")),
            dir: PathBuf::from(get("TROWEL_TEST_DIR")),
        }
    })
}

/// Where a test puts what it unpacks only to look at (umoci bundles), and where the corpus
/// builds on Debian bases: `TROWEL_TEST_SCRATCH`, a tmpfs `scripts/test.sh` mounts, else the temp dir.
/// Deleting a tree of tens of thousands of files takes minutes on a slow virtual disk; nothing
/// those trees check depends on the file system they are on.
pub fn scratch_dir() -> PathBuf {
    std::env::var_os("TROWEL_TEST_SCRATCH").map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

/// `<registry>/debian:<flavour>` (scripts/make-debian-image.sh: debootstrap's minbase plus a
/// toolchain), made once per machine and pushed to the test registry once per test process.
pub fn debian_image(flavour: &str) -> String {
    use std::sync::Mutex;
    static PUSHED: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let mut pushed = PUSHED.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = pushed.get(flavour) {
        return r.clone();
    }
    let out = Command::new(repo_root().join("scripts/make-debian-image.sh"))
        .arg(&env().registry)
        .arg(flavour)
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/make-debian-image.sh");
    assert!(out.status.success(), "scripts/make-debian-image.sh {flavour} failed");
    let reference = format!("{}/debian:{flavour}", env().registry);
    pushed.insert(flavour.to_string(), reference.clone());
    reference
}

/// A unique repository name for one test, so tests never see each other's pushes.
pub fn unique_repo(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}-{}",
        prefix.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The trowel binary under test.
pub fn trowel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trowel"));
    c.env_remove("DOCKER_CONFIG");
    c
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(o.status.success(), "command failed ({}):\n--- stdout\n{}\n--- stderr\n{}", o.status, stdout(o), stderr(o));
}

/// `skopeo inspect` (config view) of a reference on the plain registry.
pub fn skopeo_inspect(reference: &str) -> serde_json::Value {
    skopeo_json(&["inspect", "--tls-verify=false", &format!("docker://{reference}")])
}

/// `skopeo inspect --config`: the raw image config.
pub fn skopeo_config(reference: &str) -> serde_json::Value {
    skopeo_json(&["inspect", "--tls-verify=false", "--config", "--raw", &format!("docker://{reference}")])
}

/// Uploads `bytes` as a blob to `repo` (`host/path`) with curl, over plain HTTP as any writer of
/// the repository could; its digest.
pub fn put_blob(repo: &str, bytes: &[u8]) -> String {
    let (host, path) = repo.split_once('/').unwrap();
    let digest = format!("sha256:{}", sha256_hex(bytes));
    let o = run(Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "-X", "POST"])
        .arg(format!("http://{host}/v2/{path}/blobs/uploads/")));
    let location = stdout(&o)
        .lines()
        .find_map(|l| l.strip_prefix("Location: ").or_else(|| l.strip_prefix("location: ")))
        .unwrap()
        .trim()
        .to_string();
    let location = if location.starts_with("http") { location } else { format!("http://{host}{location}") };
    let sep = if location.contains('?') { '&' } else { '?' };
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    // (Without a content type curl says form data, which the registry would parse as a form.)
    let o = run(Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args(["-H", "Content-Type: application/octet-stream", "--data-binary"])
        .arg(format!("@{}", file.path().display()))
        .arg(format!("{location}{sep}digest={digest}")));
    assert_eq!(stdout(&o), "201");
    digest
}

/// Tags `manifest` (an OCI image manifest) as `tag` in `repo` (`host/path`) with curl.
pub fn put_manifest(repo: &str, tag: &str, manifest: &serde_json::Value) {
    let (host, path) = repo.split_once('/').unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(manifest).unwrap()).unwrap();
    let o = run(Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args(["-H", "Content-Type: application/vnd.oci.image.manifest.v1+json", "--data-binary"])
        .arg(format!("@{}", file.path().display()))
        .arg(format!("http://{host}/v2/{path}/manifests/{tag}")));
    assert_eq!(stdout(&o), "201");
}

/// The config document of the cache entry (or layer reference record) `reference` names:
/// carried in its manifest's `dev.trowel.cache.config` annotation, or in a config blob of its
/// own (a config too large for a manifest, or an entry an older trowel wrote).
pub fn cache_entry_config(reference: &str) -> serde_json::Value {
    match skopeo_manifest(reference)["annotations"]["dev.trowel.cache.config"].as_str() {
        Some(doc) => serde_json::from_str(doc).expect("the annotation holds JSON"),
        None => skopeo_config(reference),
    }
}

/// What each history entry of the image at `reference` says made it (`created_by`).
pub fn history_of(reference: &str) -> Vec<String> {
    skopeo_config(reference)["history"]
        .as_array()
        .expect("an image config has a history")
        .iter()
        .filter_map(|h| h["created_by"].as_str().map(str::to_string))
        .collect()
}

/// `skopeo inspect --raw`: the raw manifest.
pub fn skopeo_manifest(reference: &str) -> serde_json::Value {
    skopeo_json(&["inspect", "--tls-verify=false", "--raw", &format!("docker://{reference}")])
}

/// Every tag of the repository `repo` (`host/name`), each with its raw manifest: what a cache
/// repository holds, for tests that check no entry carries what it must not.
pub fn tagged_manifests(repo: &str) -> Vec<(String, serde_json::Value)> {
    let tags = skopeo_json(&["list-tags", "--tls-verify=false", &format!("docker://{repo}")]);
    tags["Tags"]
        .as_array()
        .expect("skopeo list-tags gives Tags")
        .iter()
        .map(|t| {
            let t = t.as_str().expect("a tag is a string").to_string();
            let m = skopeo_manifest(&format!("{repo}:{t}"));
            (t, m)
        })
        .collect()
}

fn skopeo_json(args: &[&str]) -> serde_json::Value {
    let o = run(Command::new("skopeo").args(args));
    assert_ok(&o);
    serde_json::from_slice(&o.stdout).expect("skopeo prints JSON")
}

/// Copies `reference` from the plain registry with skopeo into the OCI layout `layout`, as
/// `tag`: the image's blobs as an independent client fetches them.
pub fn copy_to_layout(reference: &str, layout: &Path, tag: &str) {
    assert_ok(&run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:{tag}", layout.display()),
    ])));
}

/// An image pulled with skopeo into an OCI layout and unpacked with umoci.
pub struct Unpacked {
    pub dir: tempfile::TempDir,
}

impl Unpacked {
    pub fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }
    pub fn tree(&self) -> Tree {
        Tree::read(&self.rootfs())
    }
    /// Runs the image's own process (or `args` instead) with crun; returns (exit code, stdout).
    pub fn crun(&self, args: Option<&[&str]>) -> (i32, String, String) {
        crun_run(&self.bundle(), args)
    }
}

/// Pulls `reference` from a registry with skopeo and unpacks it with umoci.
pub fn pull_and_unpack(reference: &str) -> Unpacked {
    let dir = tempfile::Builder::new().prefix("trowel-unpack-").tempdir_in(scratch_dir()).unwrap();
    let layout = dir.path().join("layout");
    // umoci 0.4.7 cannot read zstd layers: let skopeo (an independent zstd reader) recompress
    // them as gzip on the way into the layout.
    let manifest = skopeo_manifest(reference);
    let zstd = manifest["layers"]
        .as_array()
        .is_some_and(|ls| ls.iter().any(|l| l["mediaType"].as_str().is_some_and(|m| m.ends_with("zstd"))));
    let mut args = vec!["copy", "-q", "--src-tls-verify=false"];
    if zstd {
        args.extend(["--dest-compress", "--dest-compress-format", "gzip"]);
    }
    let src = format!("docker://{reference}");
    let dst = format!("oci:{}:img", layout.display());
    args.extend([src.as_str(), dst.as_str()]);
    let o = run(Command::new("skopeo").args(&args));
    assert_ok(&o);
    unpack_layout(dir, &layout, "img")
}

/// Pulls the `arch` image of the index at `reference` with skopeo and unpacks it with umoci.
pub fn unpack_arch(reference: &str, arch: &str) -> Unpacked {
    let dir = tempfile::Builder::new().prefix("trowel-unpack-").tempdir().unwrap();
    let layout = dir.path().join("layout");
    let o = run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--override-arch",
        arch,
        &format!("docker://{reference}"),
        &format!("oci:{}:img", layout.display()),
    ]));
    assert_ok(&o);
    unpack_layout(dir, &layout, "img")
}

/// Unpacks tag `tag` of an OCI layout with umoci into `dir/bundle`.
pub fn unpack_layout(dir: tempfile::TempDir, layout: &Path, tag: &str) -> Unpacked {
    let o = run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:{tag}", layout.display()),
        dir.path().join("bundle").to_str().unwrap(),
    ]));
    assert_ok(&o);
    Unpacked { dir }
}

/// Runs an umoci bundle with crun (host network, no terminal).
pub fn crun_run(bundle: &Path, args: Option<&[&str]>) -> (i32, String, String) {
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = serde_json::json!(false);
    if let Some(a) = args {
        cfg["process"]["args"] = serde_json::json!(a);
    }
    // umoci writes a rootless-incompatible network namespace request only when asked; drop the
    // network namespace so the container shares the host's loopback (tests only use 127.0.0.1).
    if let Some(ns) = cfg["linux"]["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network");
    }
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let id = unique_repo("crun");
    let o = run(Command::new(repo_root().join("scripts/crun-run.sh")).arg(bundle).arg(&id).stdin(Stdio::null()));
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

/// What a file tree holds, for assertions independent of trowel: type, mode, owner, size,
/// content digest and link target of every path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub kind: char, // f d l c b p s
    pub mode: u32,  // permission bits incl. setuid/setgid/sticky
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub sha256: Option<String>,
    pub link: Option<String>,
    pub ino: u64,
    pub nlink: u64,
    pub mtime_ns: i128,
}

#[derive(Debug, Clone)]
pub struct Tree(pub BTreeMap<String, FileInfo>);

impl Tree {
    pub fn read(root: &Path) -> Tree {
        use sha2::Digest as _;
        let mut map = BTreeMap::new();
        for e in walkdir::WalkDir::new(root).sort_by_file_name() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap();
            let key = format!("/{}", rel.display());
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let ft = m.file_type();
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_file() {
                'f'
            } else if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else if ft.is_char_device() {
                'c'
            } else if ft.is_block_device() {
                'b'
            } else if ft.is_fifo() {
                'p'
            } else {
                's'
            };
            let sha256 = (kind == 'f').then(|| hex(&sha2::Sha256::digest(std::fs::read(e.path()).unwrap())));
            let link = (kind == 'l').then(|| std::fs::read_link(e.path()).unwrap().to_string_lossy().into_owned());
            map.insert(
                key,
                FileInfo {
                    kind,
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    size: if kind == 'f' { m.len() } else { 0 },
                    sha256,
                    link,
                    ino: m.ino(),
                    nlink: m.nlink(),
                    mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
                },
            );
        }
        Tree(map)
    }

    #[track_caller]
    pub fn get(&self, path: &str) -> &FileInfo {
        self.0.get(path).unwrap_or_else(|| panic!("{path} missing from image; have: {:?}", self.paths_under("/")))
    }

    pub fn has(&self, path: &str) -> bool {
        self.0.contains_key(path)
    }

    pub fn paths_under(&self, prefix: &str) -> Vec<String> {
        self.0.keys().filter(|k| k.starts_with(prefix)).cloned().collect()
    }

    /// File content as UTF-8 (reads from `root`).
    pub fn content(root: &Path, path: &str) -> String {
        std::fs::read_to_string(root.join(path.trim_start_matches('/'))).unwrap()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(b))
}

/// Standard base64, as docker config `auth` fields hold `user:password`.
pub fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
