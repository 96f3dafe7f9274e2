//! Helpers shared by the `warm_*` integration tests: registry clients for the test registries,
//! a private registry that a test may stop, and independent checks of a cache directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use trowel_engine::cache::basedir::BaseImageCache;
use trowel_engine::registry::{Registry, RegistryOptions};

use crate::common::{assert_ok, env, run};

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A client that never reads the machine's Docker config, with one quick retry.
pub fn registry() -> Registry {
    Registry::new(RegistryOptions {
        docker_config: Some("/nonexistent-trowel-test".into()),
        retries: 1,
        ..Default::default()
    })
    .unwrap()
}

/// Copies `src` (on the plain test registry, e.g. `busybox:1.35`) to `dest` (full reference)
/// with skopeo, all platforms of an index included.
pub fn skopeo_copy(src: &str, dest: &str) {
    let o = run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}/{src}", env().registry),
        &format!("docker://{dest}"),
    ]));
    assert_ok(&o);
}

/// The raw manifest (or index) bytes of `reference` as skopeo fetches them, and their digest.
pub fn skopeo_raw(reference: &str, arch: Option<&str>) -> (Vec<u8>, String) {
    let mut c = Command::new("skopeo");
    if let Some(a) = arch {
        c.args(["--override-arch", a]);
    }
    let o = run(c.args(["inspect", "--tls-verify=false", "--raw", &format!("docker://{reference}")]));
    assert_ok(&o);
    let digest = format!("sha256:{}", crate::common::sha256_hex(&o.stdout));
    (o.stdout, digest)
}

/// The platform manifest `reference` resolves to for `arch` (default amd64), read with skopeo:
/// its digest and its layer digests. An index is followed to the entry for `arch`.
pub fn skopeo_image(reference: &str, arch: Option<&str>) -> (String, Vec<String>) {
    let (raw, digest) = skopeo_raw(reference, None);
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    if let Some(entries) = v["manifests"].as_array() {
        let arch = arch.unwrap_or("amd64");
        let entry = entries
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap_or_else(|| panic!("{reference} has no {arch} manifest"));
        let repo = reference.rsplit_once(':').map_or(reference, |(repo, _)| repo);
        return skopeo_image(&format!("{repo}@{}", entry["digest"].as_str().unwrap()), None);
    }
    let layers = v["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect();
    (digest, layers)
}

/// Every blob file in the cache hashes to its name, checked with coreutils' `sha256sum`.
/// Returns the blob names.
#[track_caller]
pub fn assert_blobs_hash_to_their_names(cache: &BaseImageCache) -> Vec<String> {
    let dir = cache.dir().join("blobs/sha256");
    let mut names = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let o = run(Command::new("sha256sum").arg(e.path()));
        assert_ok(&o);
        let sum = String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().to_string();
        assert_eq!(sum, name, "blob {} does not hash to its name", e.path().display());
        names.push(name);
    }
    names.sort();
    names
}

/// All entry files, parsed.
pub fn entries(cache: &BaseImageCache) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(cache.dir().join("refs")).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().ends_with(".json") {
            out.push(serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap());
        }
    }
    out
}

/// (inode, mtime) of a file, to tell whether it was rewritten.
pub fn identity(path: &Path) -> (u64, std::time::SystemTime) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.ino(), m.modified().unwrap())
}

/// A docker-registry of this test's own, so it can be stopped. Killed on drop.
pub struct PrivateRegistry {
    pub addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PrivateRegistry {
    pub fn start() -> PrivateRegistry {
        let dir = tempfile::Builder::new().prefix("trowel-warm-registry-").tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\nhttp:\n  addr: {addr}\n  secret: trowel-warm-test\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn docker-registry");
        let reg = PrivateRegistry { addr, child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&reg.addr).is_err() {
            assert!(Instant::now() < deadline, "private registry at {} did not start", reg.addr);
            std::thread::sleep(Duration::from_millis(100));
        }
        reg
    }

    /// Stops the registry and waits until its port refuses connections.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        assert!(std::net::TcpStream::connect(&self.addr).is_err(), "registry {} still answers", self.addr);
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh cache directory under a temporary directory (kept alive by the returned guard).
pub fn fresh_cache() -> (tempfile::TempDir, BaseImageCache, PathBuf) {
    let dir = tempfile::Builder::new().prefix("trowel-warm-cache-").tempdir().unwrap();
    let path = dir.path().join("cache");
    let cache = BaseImageCache::open(&path).unwrap();
    (dir, cache, path)
}
