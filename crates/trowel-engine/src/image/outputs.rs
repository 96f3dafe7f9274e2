//! Local outputs of a build: a docker-archive tarball (`--tar-path`), an OCI image layout
//! (`--oci-layout-path`) and the digest files CI jobs read (`--digest-file`,
//! `--image-name-with-digest-file`, `--image-name-tag-with-digest-file`).
//!
//! All of them are written from the verified blobs in the local [`BlobStore`], streamed file by
//! file, and land atomically: a temporary file or directory next to the target is renamed into
//! place only when complete, so a failed build never leaves a half-written output.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::digest::Digest;
use crate::image::manifest::{Descriptor, Manifest, media};
use crate::image::store::{BlobStore, StoreError};

/// The image a build produced, with its blobs in a [`BlobStore`].
#[derive(Debug, Clone)]
pub struct FinalImage {
    pub manifest: Manifest,
    pub manifest_bytes: Vec<u8>,
    pub manifest_digest: Digest,
    pub config_bytes: Vec<u8>,
    pub config_digest: Digest,
}

impl FinalImage {
    pub fn manifest_media_type(&self) -> &str {
        self.manifest.media_type.as_deref().unwrap_or(media::OCI_MANIFEST)
    }

    /// Every blob: config first, then layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.manifest.config).chain(self.manifest.layers.iter())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io { path: path.to_path_buf(), source }
}

/// Writes `contents` to `path` atomically (temp file in the same directory, then rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), OutputError> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let mut tmp = tempfile::Builder::new().prefix(".trowel-").tempfile_in(&dir).map_err(io_at(path))?;
    tmp.write_all(contents).map_err(io_at(path))?;
    tmp.as_file().sync_data().map_err(io_at(path))?;
    tmp.persist(path).map_err(|e| OutputError::Io { path: path.to_path_buf(), source: e.error })?;
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `--digest-file`: the manifest digest, no newline (what kaniko writes).
pub fn write_digest_file(path: &Path, image: &FinalImage) -> Result<(), OutputError> {
    write_atomic(path, image.manifest_digest.as_str().as_bytes())
}

/// `--image-name-with-digest-file`: `registry/repo@digest` per destination, one per line.
pub fn write_image_name_with_digest_file(
    path: &Path,
    destinations: &[(String, Option<String>)],
    image: &FinalImage,
) -> Result<(), OutputError> {
    let mut s = String::new();
    for (repo, _) in destinations {
        s.push_str(&format!("{repo}@{}\n", image.manifest_digest));
    }
    write_atomic(path, s.as_bytes())
}

/// `--image-name-tag-with-digest-file`: `registry/repo:tag@digest` per destination.
pub fn write_image_name_tag_with_digest_file(
    path: &Path,
    destinations: &[(String, Option<String>)],
    image: &FinalImage,
) -> Result<(), OutputError> {
    let mut s = String::new();
    for (repo, tag) in destinations {
        match tag {
            Some(t) => s.push_str(&format!("{repo}:{t}@{}\n", image.manifest_digest)),
            None => s.push_str(&format!("{repo}@{}\n", image.manifest_digest)),
        }
    }
    write_atomic(path, s.as_bytes())
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// `--tar-path`: a docker-archive in the layout `docker save` has used since Docker 25: an OCI
/// layout (`oci-layout`, `index.json`, `blobs/sha256/…`) plus the legacy `manifest.json` that
/// names the config and layer files, so `docker load`, `podman load` and
/// `skopeo copy docker-archive:` all read it. Layers stay compressed, as in the registry.
pub fn write_docker_archive(
    path: &Path,
    image: &FinalImage,
    store: &BlobStore,
    tags: &[String],
) -> Result<(), OutputError> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let tmp = tempfile::Builder::new().prefix(".trowel-").tempfile_in(&dir).map_err(io_at(path))?;
    {
        let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, tmp.as_file()));
        tar.mode(tar::HeaderMode::Deterministic);
        let add_bytes = |tar: &mut tar::Builder<_>, name: &str, bytes: &[u8]| -> Result<(), OutputError> {
            let mut h = tar::Header::new_ustar();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, name, bytes).map_err(io_at(path))
        };
        let mut dir_hdr = tar::Header::new_ustar();
        dir_hdr.set_entry_type(tar::EntryType::Directory);
        dir_hdr.set_mode(0o755);
        dir_hdr.set_mtime(0);
        dir_hdr.set_size(0);
        for d in ["blobs/", "blobs/sha256/"] {
            tar.append_data(&mut dir_hdr.clone(), d, io::empty()).map_err(io_at(path))?;
        }
        add_bytes(&mut tar, &blob_path(&image.config_digest), &image.config_bytes)?;
        add_bytes(&mut tar, &blob_path(&image.manifest_digest), &image.manifest_bytes)?;
        for layer in &image.manifest.layers {
            let f = store.open_blob(&layer.digest)?;
            let mut h = tar::Header::new_ustar();
            h.set_size(layer.size);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, blob_path(&layer.digest), f).map_err(io_at(path))?;
        }
        let legacy = json!([{
            "Config": blob_path(&image.config_digest),
            "RepoTags": tags,
            "Layers": image.manifest.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
        }]);
        add_bytes(&mut tar, "manifest.json", &serde_json::to_vec(&legacy).unwrap())?;
        add_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index = oci_index(image, tags.first().map(String::as_str));
        add_bytes(&mut tar, "index.json", &serde_json::to_vec(&index).unwrap())?;
        let mut w = tar.into_inner().map_err(io_at(path))?;
        w.flush().map_err(io_at(path))?;
    }
    tmp.as_file().sync_data().map_err(io_at(path))?;
    tmp.persist(path).map_err(|e| OutputError::Io { path: path.to_path_buf(), source: e.error })?;
    Ok(())
}

fn oci_index(image: &FinalImage, ref_name: Option<&str>) -> serde_json::Value {
    let mut desc = json!({
        "mediaType": image.manifest_media_type(),
        "digest": image.manifest_digest.as_str(),
        "size": image.manifest_bytes.len(),
    });
    if let Some(r) = ref_name {
        desc["annotations"] = json!({
            "io.containerd.image.name": r,
            "org.opencontainers.image.ref.name": r.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map(|(_, t)| t).unwrap_or("latest"),
        });
    }
    json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [desc]})
}

/// `--oci-layout-path`: an OCI image layout directory. If the directory already holds a layout,
/// the image is added to its index (replacing an entry with the same ref name), as kaniko does.
pub fn write_oci_layout(
    dir: &Path,
    image: &FinalImage,
    store: &BlobStore,
    ref_name: Option<&str>,
) -> Result<(), OutputError> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_at(&blobs))?;
    let put = |d: &Digest, bytes: &[u8]| write_atomic(&dir.join(blob_path(d)), bytes);
    put(&image.config_digest, &image.config_bytes)?;
    put(&image.manifest_digest, &image.manifest_bytes)?;
    for layer in &image.manifest.layers {
        let target = dir.join(blob_path(&layer.digest));
        if target.exists() {
            continue;
        }
        let mut src = store.open_blob(&layer.digest)?;
        let mut tmp = tempfile::Builder::new().prefix(".trowel-").tempfile_in(&blobs).map_err(io_at(&target))?;
        io::copy(&mut src, &mut tmp).map_err(io_at(&target))?;
        tmp.as_file().sync_data().map_err(io_at(&target))?;
        tmp.persist(&target).map_err(|e| OutputError::Io { path: target.clone(), source: e.error })?;
    }
    write_atomic(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = match fs::read(&index_path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|_| json!({"schemaVersion": 2, "manifests": []})),
        Err(_) => json!({"schemaVersion": 2, "manifests": []}),
    };
    let new_entry = oci_index(image, ref_name)["manifests"][0].clone();
    let tag = new_entry.pointer("/annotations/org.opencontainers.image.ref.name").cloned();
    let manifests = index["manifests"].as_array_mut().expect("index has manifests");
    manifests.retain(|m| {
        m["digest"] != new_entry["digest"]
            && (tag.is_none() || m.pointer("/annotations/org.opencontainers.image.ref.name") != tag.as_ref())
    });
    manifests.push(new_entry);
    index["mediaType"] = json!(media::OCI_INDEX);
    write_atomic(&index_path, &serde_json::to_vec(&index).unwrap())?;
    Ok(())
}

/// Creates the file for `path` in its directory (used to check output paths early).
pub fn check_writable(path: &Path) -> Result<(), OutputError> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let t = tempfile::Builder::new().prefix(".trowel-check-").tempfile_in(&dir).map_err(io_at(path))?;
    drop(File::open(t.path()).map_err(io_at(path))?);
    Ok(())
}
