//! Helpers for the `hardening_*` tests: images assembled by hand around a hostile layer and
//! pushed with skopeo (an independent client, so nothing of trowel's own registry code decides
//! what the registry holds), work directories with a canary next to the build roots, and
//! trowel runs with a byte budget on what is captured of their output.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::{self, assert_ok, run, sha256_hex};

pub mod running;

/// `busybox:1.35` of the test registry as an OCI layout on disk (fetched once per test binary).
fn base_layout() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            tempfile::Builder::new().prefix("trowel-hardening-base-").tempdir_in(&common::env().dir).unwrap().keep();
        let layout = dir.join("layout");
        let o = run(Command::new("skopeo").args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{}", common::env().busybox()),
            &format!("oci:{}:base", layout.display()),
        ]));
        assert_ok(&o);
        layout
    })
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

/// Writes `bytes` as a blob of `layout` and returns its digest.
fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(bytes));
    fs::write(blob_path(layout, &digest), bytes).unwrap();
    digest
}

/// The layer added on top of busybox: a gzip blob and the diff_id its config entry gets.
pub struct ExtraLayer {
    pub blob: Vec<u8>,
    pub diff_id: String,
}

impl ExtraLayer {
    /// A layer from an uncompressed tar stream, with its true diff_id.
    pub fn from_tar(tar: &[u8]) -> ExtraLayer {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(tar).unwrap();
        ExtraLayer { blob: gz.finish().unwrap(), diff_id: format!("sha256:{}", sha256_hex(tar)) }
    }

    /// A decompression bomb: regular files of zeros of the given sizes, streamed into gzip
    /// (a few hundred KiB of blob per hundred MiB of files), with its true diff_id.
    pub fn zero_files(files: &[(&str, u64)]) -> ExtraLayer {
        use sha2::Digest as _;
        struct Both(flate2::write::GzEncoder<Vec<u8>>, sha2::Sha256);
        impl Both {
            fn put(&mut self, b: &[u8]) {
                self.0.write_all(b).unwrap();
                self.1.update(b);
            }
        }
        let mut w = Both(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()), sha2::Sha256::new());
        let zeros = vec![0u8; 1 << 20];
        for (name, size) in files {
            let mut h = tar::Header::new_ustar();
            h.set_path(name).unwrap();
            h.set_size(*size);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_600_000_000);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            w.put(h.as_bytes());
            let mut left = size.div_ceil(512) * 512;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                w.put(&zeros[..n]);
                left -= n as u64;
            }
        }
        w.put(&[0u8; 1024]);
        let diff_id = format!("sha256:{}", hex::encode(w.1.finalize()));
        ExtraLayer { blob: w.0.finish().unwrap(), diff_id }
    }
}

/// What [`push_image`] pushed.
pub struct Pushed {
    /// `registry/repo:1`
    pub reference: String,
    /// Digest of the (gzip) layer blob that was added.
    pub layer_digest: String,
}

/// Pushes busybox plus `extra` (gzip-compressed) as `<registry>/<repo>:1` with skopeo. The
/// image is valid in every other respect: config, history and manifest agree.
pub fn push_image(repo: &str, extra: &ExtraLayer) -> Pushed {
    let base = base_layout();
    let dir = tempfile::Builder::new().prefix("trowel-hardening-img-").tempdir().unwrap();
    let layout = dir.path().join("layout");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs::copy(base.join("oci-layout"), layout.join("oci-layout")).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&fs::read(base.join("index.json")).unwrap()).unwrap();
    let base_manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob_path(base, &base_manifest_digest)).unwrap()).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&fs::read(blob_path(base, manifest["config"]["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    for l in manifest["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap();
        fs::copy(blob_path(base, d), blob_path(&layout, d)).unwrap();
    }

    let blob = &extra.blob;
    let layer_digest = put_blob(&layout, blob);
    config["rootfs"]["diff_ids"].as_array_mut().unwrap().push(extra.diff_id.clone().into());
    config["history"].as_array_mut().unwrap().push(serde_json::json!({"created_by": "hardening test layer"}));
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = put_blob(&layout, &config_bytes);
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config_bytes.len().into();
    manifest["layers"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": layer_digest,
        "size": blob.len(),
    }));
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = put_blob(&layout, &manifest_bytes);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "img"},
        }],
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let reference = format!("{}/{repo}:1", common::env().registry);
    let o = run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &format!("oci:{}:img", layout.display()),
        &format!("docker://{reference}"),
    ]));
    assert_ok(&o);
    Pushed { reference, layer_digest }
}

/// A `--work-dir` for trowel with a canary directory in it: the build roots are created next
/// to the canary (`<work>/trowel-build-*/<stage>-*/rootfs`, so `../../../canary` from a root).
pub struct CanaryWork {
    pub dir: tempfile::TempDir,
    before: BTreeMap<String, (u32, u64, Vec<u8>)>,
}

impl CanaryWork {
    pub fn new() -> CanaryWork {
        let dir = tempfile::Builder::new().prefix("trowel-hardening-work-").tempdir_in("/var/tmp").unwrap();
        let canary = dir.path().join("canary");
        fs::create_dir_all(canary.join("sub")).unwrap();
        fs::write(canary.join("secret"), b"do not touch").unwrap();
        fs::write(canary.join("sub/file"), b"also not").unwrap();
        let before = canary_state(&canary);
        CanaryWork { dir, before }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn canary(&self) -> PathBuf {
        self.dir.path().join("canary")
    }

    /// The canary has exactly its files (contents, modes, link counts), and the build left
    /// nothing else in the work directory.
    #[track_caller]
    pub fn assert_untouched_and_clean(&self) {
        assert_eq!(canary_state(&self.canary()), self.before, "the canary next to the build root changed");
        let left: Vec<String> = fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "canary")
            .collect();
        assert!(left.is_empty(), "the build left {left:?} in its work directory");
    }
}

fn canary_state(dir: &Path) -> BTreeMap<String, (u32, u64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let m = fs::symlink_metadata(e.path()).unwrap();
        let content = if m.is_file() { fs::read(e.path()).unwrap() } else { Vec::new() };
        out.insert(e.path().display().to_string(), (m.mode(), m.nlink(), content));
    }
    out
}

/// A build context holding only a Dockerfile.
pub fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

/// The log of a run, stdout and stderr together.
pub fn log(o: &std::process::Output) -> String {
    format!("{}{}", common::stdout(o), common::stderr(o))
}

/// The image at `reference` (on the real registry) is complete: skopeo copies every blob,
/// verifying each digest, and its manifest digest is `digest`.
#[track_caller]
pub fn assert_complete(reference: &str, digest: &str) {
    let dir = tempfile::tempdir().unwrap();
    let o = run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:x", dir.path().join("l").display()),
    ]));
    assert_ok(&o);
    assert_eq!(common::skopeo_inspect(reference)["Digest"].as_str().unwrap(), digest.trim());
}
