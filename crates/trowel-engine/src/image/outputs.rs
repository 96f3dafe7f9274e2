//! Local outputs of a build: a docker-archive tarball (`--tar-path`), an OCI image layout
//! (`--oci-layout-path`) and the digest files CI jobs read (`--digest-file`,
//! `--image-name-with-digest-file`, `--image-name-tag-with-digest-file`).
//!
//! All of them are written from the verified blobs in the local [`BlobStore`], streamed file by
//! file, and land atomically: a temporary file or directory next to the target is renamed into
//! place only when complete, so a failed build never leaves a half-written output.
//!
//! What is written is an [`Artifact`]: one image, or the image index of a build for several
//! platforms. The tarball and the OCI layout live in `layout.rs`; this file has the digest files
//! and what they share.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::image::index::FinalIndex;
use crate::image::manifest::{Descriptor, Manifest, media};
use crate::image::store::StoreError;

pub use crate::image::layout::{write_docker_archive, write_oci_layout};

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

/// What a build publishes: its one image, or the index of a build for several platforms.
/// `From` both, so every output function takes `&FinalImage` or `&FinalIndex`.
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    Image(&'a FinalImage),
    Index(&'a FinalIndex),
}

impl<'a> From<&'a FinalImage> for Artifact<'a> {
    fn from(i: &'a FinalImage) -> Artifact<'a> {
        Artifact::Image(i)
    }
}

impl<'a> From<&'a FinalIndex> for Artifact<'a> {
    fn from(i: &'a FinalIndex) -> Artifact<'a> {
        Artifact::Index(i)
    }
}

impl<'a> Artifact<'a> {
    /// The digest users pull by: the manifest's, or the index's.
    pub fn digest(&self) -> &'a Digest {
        match self {
            Artifact::Image(i) => &i.manifest_digest,
            Artifact::Index(x) => &x.digest,
        }
    }

    /// The descriptor a tag or an `index.json` entry names.
    pub fn descriptor(&self) -> Descriptor {
        match self {
            Artifact::Image(i) => {
                Descriptor::new(i.manifest_media_type(), i.manifest_digest.clone(), i.manifest_bytes.len() as u64)
            }
            Artifact::Index(x) => x.descriptor(),
        }
    }

    /// Every image, in index order.
    pub fn images(&self) -> Vec<&'a FinalImage> {
        match self {
            Artifact::Image(i) => vec![*i],
            Artifact::Index(x) => x.entries.iter().map(|e| &e.image).collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io { path: path.to_path_buf(), source }
}

/// A temporary file in `dir` for an output to be renamed into place, mode 0644 less the umask
/// as kaniko writes its outputs (`os.WriteFile(…, 0644)`, `os.Create`): a later step of the job
/// that runs as another user, or a sidecar sharing the volume, reads the digest or the tarball
/// (the temporary file's own default, 0600, kept them from it).
pub(crate) fn output_tempfile(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new().prefix(".trowel-").permissions(fs::Permissions::from_mode(0o644)).tempfile_in(dir)
}

/// Writes `contents` to `path` atomically (temp file in the same directory, then rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), OutputError> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let mut tmp = output_tempfile(&dir).map_err(io_at(path))?;
    tmp.write_all(contents).map_err(io_at(path))?;
    tmp.as_file().sync_data().map_err(io_at(path))?;
    tmp.persist(path).map_err(|e| OutputError::Io { path: path.to_path_buf(), source: e.error })?;
    Ok(())
}

pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `--digest-file`: the manifest (or index) digest, no newline (what kaniko writes).
pub fn write_digest_file<'a>(path: &Path, artifact: impl Into<Artifact<'a>>) -> Result<(), OutputError> {
    write_atomic(path, artifact.into().digest().as_str().as_bytes())
}

/// `--image-name-with-digest-file`: `registry/repo@digest` per destination, one per line.
pub fn write_image_name_with_digest_file<'a>(
    path: &Path,
    destinations: &[(String, Option<String>)],
    artifact: impl Into<Artifact<'a>>,
) -> Result<(), OutputError> {
    let digest = artifact.into().digest();
    let mut s = String::new();
    for (repo, _) in destinations {
        s.push_str(&format!("{repo}@{digest}\n"));
    }
    write_atomic(path, s.as_bytes())
}

/// `--image-name-tag-with-digest-file`: `registry/repo:tag@digest` per destination.
pub fn write_image_name_tag_with_digest_file<'a>(
    path: &Path,
    destinations: &[(String, Option<String>)],
    artifact: impl Into<Artifact<'a>>,
) -> Result<(), OutputError> {
    let digest = artifact.into().digest();
    let mut s = String::new();
    for (repo, tag) in destinations {
        match tag {
            Some(t) => s.push_str(&format!("{repo}:{t}@{digest}\n")),
            None => s.push_str(&format!("{repo}@{digest}\n")),
        }
    }
    write_atomic(path, s.as_bytes())
}

/// Creates the file for `path` in its directory (used to check output paths early).
pub fn check_writable(path: &Path) -> Result<(), OutputError> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let t = tempfile::Builder::new().prefix(".trowel-check-").tempfile_in(&dir).map_err(io_at(path))?;
    drop(File::open(t.path()).map_err(io_at(path))?);
    Ok(())
}
