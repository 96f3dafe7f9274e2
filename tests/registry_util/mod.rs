//! Helpers shared by the `registry_*` integration tests: a runtime, registry clients, and tiny
//! images assembled by hand (tar + gzip + config + manifest) in a BlobStore.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use trowel_engine::digest::Digest;
use trowel_engine::image::manifest::{Descriptor, Manifest, ManifestFormat, media};
use trowel_engine::image::store::BlobStore;
use trowel_engine::registry::{PushBlob, PushImage, Registry, RegistryOptions};

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Options that never read the machine's own Docker config, with fast retries.
pub fn opts() -> RegistryOptions {
    RegistryOptions { docker_config: Some("/nonexistent-trowel-test".into()), retries: 1, ..Default::default() }
}

pub fn registry(o: RegistryOptions) -> Registry {
    Registry::new(o).unwrap()
}

/// A tiny image built in `store`: one gzip layer holding `/hello.txt` with `content`
/// (plus `extra` random-ish bytes in `/pad.bin` to make it bigger), a config for `arch`.
pub struct TinyImage {
    pub push: PushImage,
    pub manifest: Manifest,
    pub config: Descriptor,
    pub layer: Descriptor,
}

pub fn tiny_image(
    store: &BlobStore,
    format: ManifestFormat,
    content: &str,
    arch: (&str, Option<&str>),
    extra: usize,
) -> TinyImage {
    // Layer: a tar with one file, gzip-compressed, streamed into the store.
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "hello.txt", content.as_bytes()).unwrap();
        if extra > 0 {
            let pad = pseudo_random(extra, content.len() as u64);
            let mut h = tar::Header::new_gnu();
            h.set_size(pad.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000);
            b.append_data(&mut h, "pad.bin", &pad[..]).unwrap();
        }
        b.finish().unwrap();
    }
    let diff_id = Digest::of(&tar_bytes);
    let mut w = store.writer().unwrap();
    {
        let mut gz = flate2::write::GzEncoder::new(&mut w, flate2::Compression::fast());
        gz.write_all(&tar_bytes).unwrap();
        gz.finish().unwrap();
    }
    let size = w.written();
    let layer_digest = w.commit(None).unwrap();
    let layer =
        Descriptor::new(format.layer_media_type(trowel_engine::image::manifest::Compression::Gzip), layer_digest, size);

    let mut cfg = serde_json::json!({
        "architecture": arch.0,
        "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created_by": format!("trowel registry test: {content}")}],
    });
    if let Some(v) = arch.1 {
        cfg["variant"] = serde_json::json!(v);
    }
    let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
    let cfg_digest = store.put(&cfg_bytes).unwrap();
    let config = Descriptor::new(format.config_media_type(), cfg_digest, cfg_bytes.len() as u64);
    let manifest = Manifest::new(format, config.clone(), vec![layer.clone()]);
    let manifest_bytes = manifest.to_bytes();
    store.put(&manifest_bytes).unwrap();
    let push = PushImage {
        manifest_bytes,
        manifest_media_type: format.manifest_media_type().to_string(),
        blobs: vec![PushBlob::new(config.clone(), None), PushBlob::new(layer.clone(), None)],
    };
    TinyImage { push, manifest, config, layer }
}

/// Incompressible, deterministic bytes (xorshift), so a layer really has `n` bytes on the wire.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes a Docker `config.json` with `auths` for `host` into a fresh directory.
pub fn docker_config_with_auths(dir: &Path, host: &str, user: &str, password: &str) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let cfg = serde_json::json!({"auths": {host: {"auth": auth}}});
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
}

/// The registry's storage directory (the testenv's `plain` registry).
pub fn registry_blob_file(env_dir: &Path, name: &str, digest: &Digest) -> std::path::PathBuf {
    env_dir
        .join(name)
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&digest.hex()[..2])
        .join(digest.hex())
        .join("data")
}

pub fn media_is_oci_manifest(mt: &str) -> bool {
    mt == media::OCI_MANIFEST
}

/// Uploads `data` with `Registry::upload_streamed`, in pieces of `piece` bytes, then sends
/// `commit` as the digest (or drops the digest sender when `None`).
pub fn upload_streamed(
    reg: &Registry,
    repo: &trowel_engine::registry::Reference,
    data: &[u8],
    piece: usize,
    commit: Option<Digest>,
) -> Result<Digest, trowel_engine::registry::RegistryError> {
    let rt = rt();
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(2);
    let (dtx, drx) = tokio::sync::oneshot::channel();
    let upload = rt.spawn({
        let (reg, repo) = (reg.clone(), repo.clone());
        async move { reg.upload_streamed(&repo, rx, drx, false).await }
    });
    for p in data.chunks(piece) {
        tx.blocking_send(bytes::Bytes::copy_from_slice(p)).unwrap();
    }
    drop(tx);
    match commit {
        Some(d) => dtx.send(d).unwrap(),
        None => drop(dtx),
    }
    rt.block_on(upload).unwrap()
}
