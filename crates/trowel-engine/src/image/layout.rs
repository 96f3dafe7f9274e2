//! The two local image outputs that hold blobs: `--tar-path` (a `docker save`-style archive) and
//! `--oci-layout-path` (an OCI image layout directory), for one image or for the image index of
//! a build for several platforms.
//!
//! Several platforms: BuildKit's `docker` exporter refuses them, its `oci` exporter writes an OCI
//! layout tar whose `index.json` names the image index; buildah writes the index into an
//! `oci-archive:`. trowel's tarball is both at once, as `docker save` has written it since Docker
//! 25: an OCI layout (`oci-layout`, `index.json` naming the index, every platform's blobs), which
//! `skopeo copy --all oci-archive:`, `podman load` and containerd's import read whole, plus the
//! legacy `manifest.json` with one entry per platform for `docker load`'s classic store, which
//! knows nothing of platforms. There only the first platform's entry (the first `--platform`)
//! carries the tags: `docker load` gives each tag to the last entry naming it, so tagging every
//! entry would make the tag's platform an accident of order; the others load untagged.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde_json::json;

use crate::digest::Digest;
use crate::image::manifest::{Descriptor, media};
use crate::image::outputs::{Artifact, OutputError, io_at, parent_dir, write_atomic};
use crate::image::store::BlobStore;

/// Where a blob's bytes come from: the manifests, configs and index are in memory (and in the
/// store), layers are streamed from the store.
enum Blob<'a> {
    Bytes(&'a Digest, &'a [u8]),
    Stored(&'a Descriptor),
}

impl Blob<'_> {
    fn digest(&self) -> &Digest {
        match self {
            Blob::Bytes(d, _) => d,
            Blob::Stored(desc) => &desc.digest,
        }
    }
}

/// Every blob of the artifact, each once, in a fixed order: per image its config, manifest and
/// layers, then the index. Platforms often share blobs (a layer copied from a `$BUILDPLATFORM`
/// stage), and a tar with the same member twice is one `tar x` overwrites and some readers reject.
fn blobs<'a>(artifact: &Artifact<'a>) -> Vec<Blob<'a>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut add = |b: Blob<'a>| {
        if seen.insert(b.digest().clone()) {
            out.push(b);
        }
    };
    for image in artifact.images() {
        add(Blob::Bytes(&image.config_digest, &image.config_bytes));
        add(Blob::Bytes(&image.manifest_digest, &image.manifest_bytes));
        for layer in &image.manifest.layers {
            add(Blob::Stored(layer));
        }
    }
    if let Artifact::Index(x) = artifact {
        add(Blob::Bytes(&x.digest, &x.bytes));
    }
    out
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// `--tar-path`: a docker-archive in the layout `docker save` has used since Docker 25: an OCI
/// layout (`oci-layout`, `index.json`, `blobs/sha256/…`) plus the legacy `manifest.json` that
/// names the config and layer files, so `docker load`, `podman load` and
/// `skopeo copy docker-archive:` all read it. Layers stay compressed, as in the registry. For an
/// index, see the module comment.
pub fn write_docker_archive<'a>(
    path: &Path,
    artifact: impl Into<Artifact<'a>>,
    store: &BlobStore,
    tags: &[String],
) -> Result<(), OutputError> {
    let artifact = artifact.into();
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let tmp = super::outputs::output_tempfile(&dir).map_err(io_at(path))?;
    {
        let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, tmp.as_file()));
        tar.mode(tar::HeaderMode::Deterministic);
        let file_header = |size: u64| {
            let mut h = tar::Header::new_ustar();
            h.set_size(size);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            h
        };
        let add_bytes = |tar: &mut tar::Builder<_>, name: &str, bytes: &[u8]| -> Result<(), OutputError> {
            tar.append_data(&mut file_header(bytes.len() as u64), name, bytes).map_err(io_at(path))
        };
        let mut dir_hdr = tar::Header::new_ustar();
        dir_hdr.set_entry_type(tar::EntryType::Directory);
        dir_hdr.set_mode(0o755);
        dir_hdr.set_mtime(0);
        dir_hdr.set_size(0);
        for d in ["blobs/", "blobs/sha256/"] {
            tar.append_data(&mut dir_hdr.clone(), d, io::empty()).map_err(io_at(path))?;
        }
        for blob in blobs(&artifact) {
            match blob {
                Blob::Bytes(d, bytes) => add_bytes(&mut tar, &blob_path(d), bytes)?,
                Blob::Stored(desc) => {
                    let f = store.open_blob(&desc.digest)?;
                    tar.append_data(&mut file_header(desc.size), blob_path(&desc.digest), f).map_err(io_at(path))?;
                }
            }
        }
        let legacy: Vec<serde_json::Value> = artifact
            .images()
            .iter()
            .enumerate()
            .map(|(i, image)| {
                json!({
                    "Config": blob_path(&image.config_digest),
                    "RepoTags": if i == 0 { tags } else { &[] },
                    "Layers": image.manifest.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
                })
            })
            .collect();
        add_bytes(&mut tar, "manifest.json", &serde_json::to_vec(&legacy).unwrap())?;
        add_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": [index_entry(&artifact, tags.first().map(String::as_str))],
        });
        add_bytes(&mut tar, "index.json", &serde_json::to_vec(&index).unwrap())?;
        let mut w = tar.into_inner().map_err(io_at(path))?;
        w.flush().map_err(io_at(path))?;
    }
    tmp.as_file().sync_data().map_err(io_at(path))?;
    tmp.persist(path).map_err(|e| OutputError::Io { path: path.to_path_buf(), source: e.error })?;
    Ok(())
}

/// The `index.json` entry naming the artifact (an image manifest, or the image index), with the
/// names containerd and the OCI layout spec read.
fn index_entry(artifact: &Artifact<'_>, ref_name: Option<&str>) -> serde_json::Value {
    let d = artifact.descriptor();
    let mut desc = json!({
        "mediaType": d.media_type,
        "digest": d.digest.as_str(),
        "size": d.size,
    });
    if let Some(r) = ref_name {
        desc["annotations"] = json!({
            "io.containerd.image.name": r,
            "org.opencontainers.image.ref.name": r.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map(|(_, t)| t).unwrap_or("latest"),
        });
    }
    desc
}

/// `--oci-layout-path`: an OCI image layout directory. If the directory already holds a layout,
/// the image (or index) is added to its index (replacing an entry with the same ref name), as
/// kaniko does. For an index every platform's blobs are written, and `index.json` names the
/// image index, as BuildKit's `oci` exporter does.
pub fn write_oci_layout<'a>(
    dir: &Path,
    artifact: impl Into<Artifact<'a>>,
    store: &BlobStore,
    ref_name: Option<&str>,
) -> Result<(), OutputError> {
    let artifact = artifact.into();
    let blob_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blob_dir).map_err(io_at(&blob_dir))?;
    for blob in blobs(&artifact) {
        let target = dir.join(blob_path(blob.digest()));
        match blob {
            Blob::Bytes(_, bytes) => write_atomic(&target, bytes)?,
            // Content-addressed: a layer already there is this layer.
            Blob::Stored(_) if target.exists() => {}
            Blob::Stored(desc) => {
                let mut src = store.open_blob(&desc.digest)?;
                let mut tmp = super::outputs::output_tempfile(&blob_dir).map_err(io_at(&target))?;
                io::copy(&mut src, &mut tmp).map_err(io_at(&target))?;
                tmp.as_file().sync_data().map_err(io_at(&target))?;
                tmp.persist(&target).map_err(|e| OutputError::Io { path: target.clone(), source: e.error })?;
            }
        }
    }
    write_atomic(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = match fs::read(&index_path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|_| json!({"schemaVersion": 2, "manifests": []})),
        Err(_) => json!({"schemaVersion": 2, "manifests": []}),
    };
    let new_entry = index_entry(&artifact, ref_name);
    let tag = new_entry.pointer("/annotations/org.opencontainers.image.ref.name").cloned();
    if !index["manifests"].is_array() {
        index["manifests"] = json!([]);
    }
    let manifests = index["manifests"].as_array_mut().expect("manifests is an array");
    manifests.retain(|m| {
        m["digest"] != new_entry["digest"]
            && (tag.is_none() || m.pointer("/annotations/org.opencontainers.image.ref.name") != tag.as_ref())
    });
    manifests.push(new_entry);
    index["mediaType"] = json!(media::OCI_INDEX);
    write_atomic(&index_path, &serde_json::to_vec(&index).unwrap())?;
    Ok(())
}
