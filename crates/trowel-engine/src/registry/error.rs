//! The registry module's error type.
//!
//! Every variant that concerns a remote names the operation and the reference it was working
//! on, so a failed build says e.g. `pull 127.0.0.1:5000/nope:1: manifest unknown (404)`.
//! Nothing here ever holds a credential: registry and token-server messages are kept, request
//! URLs and `Authorization` headers are not.

use std::fmt;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::image::store::StoreError;

/// What trowel was doing when a registry call failed; the first word of the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Resolving or downloading an image, a manifest or a blob.
    Pull,
    /// Uploading blobs or a manifest, or checking for their presence before doing so.
    Push,
    /// The early push-permission check.
    CheckPush,
    /// `trowel login`'s check of credentials.
    Login,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Pull => "pull",
            Op::Push => "push",
            Op::CheckPush => "check push access to",
            Op::Login => "log in to",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A reference string that Docker would also reject.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },

    /// A bad option value (e.g. an unreadable `--registry-certificate`).
    #[error("registry options: {0}")]
    Options(String),

    /// A CA file given with `--registry-certificate` could not be read or parsed.
    #[error("registry certificate {path} for {host}: {reason}")]
    Certificate { host: String, path: PathBuf, reason: String },

    /// A `--registry-client-cert` certificate or key could not be read, parsed or paired.
    /// `reason` never quotes the files' content.
    #[error("registry client certificate for {registry}: {path}: {reason}")]
    ClientCertificate { registry: String, path: PathBuf, reason: String },

    /// Every `--registry-mirror` failed for a Docker Hub image and
    /// `--skip-default-registry-fallback` forbids Docker Hub itself; each mirror with its error.
    /// `tried` holds each mirror's error as its message (`pull MIRROR/REPO:TAG: …`).
    #[error("{op} {reference}: every registry mirror failed, and --skip-default-registry-fallback forbids falling back to docker.io: {}", tried.join("; "))]
    Mirrors { op: Op, reference: String, tried: Vec<String> },

    /// The Docker config file exists but cannot be read or parsed.
    #[error("docker config {path}: {reason}")]
    DockerConfig { path: PathBuf, reason: String },

    /// A `docker-credential-<name>` helper is missing or failed.
    #[error("{0}")]
    CredentialHelper(String),

    /// A cloud registry's login (ECR, Google) that failed: what was tried and what to set,
    /// never a value.
    #[error("{0}")]
    CloudLogin(String),

    /// Credentials in the environment (`DOCKER_AUTH_CONFIG`) that cannot be used; the message
    /// names the variable and key, never a value.
    #[error("{0}")]
    EnvCredentials(String),

    /// The registry answered with an error status. `detail` is the registry's own message;
    /// `codes` the `code`s of its JSON error body (`MANIFEST_BLOB_UNKNOWN`, `DENIED`…), in its
    /// order, empty when it sent none: the status alone does not say what went wrong (a 400 to
    /// a manifest PUT is a refused media type or a missing child alike).
    #[error("{op} {reference}: {detail}")]
    Registry { op: Op, reference: String, status: u16, detail: String, codes: Vec<String> },

    /// The connection failed (refused, reset, TLS, timeout) after all retries.
    #[error("{op} {reference}: {detail}")]
    Transport { op: Op, reference: String, detail: String },

    /// Authentication with the registry or its token server failed.
    #[error("{op} {reference}: {detail}")]
    Auth { op: Op, reference: String, detail: String },

    /// The registry sent something that breaks the distribution spec or trowel's limits
    /// (bad digest, oversized manifest, unknown media type, no matching platform…).
    #[error("{op} {reference}: {detail}")]
    Protocol { op: Op, reference: String, detail: String },

    /// The registry would not store a manifest of this media type (e.g. an old registry and
    /// an OCI image index). Nothing was tagged.
    #[error("{op} {reference}: the registry refused a manifest of type {media_type} ({status}): {detail}")]
    ManifestRefused { op: Op, reference: String, media_type: String, status: u16, detail: String },

    /// A downloaded blob did not hash to its descriptor's digest, on every attempt.
    #[error("{op} {reference}: blob {expected} failed verification: {detail}")]
    BlobVerification { op: Op, reference: String, expected: Box<Digest>, detail: String },

    /// The local blob store failed (disk full, permissions, missing blob to push…).
    #[error("{op} {reference}: {source}")]
    Store {
        op: Op,
        reference: String,
        #[source]
        source: StoreError,
    },
}

impl RegistryError {
    /// HTTP status of a registry error response, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Registry { status, .. } | RegistryError::ManifestRefused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The codes of the registry's error body, if this is a registry error that had any.
    pub fn codes(&self) -> &[String] {
        match self {
            RegistryError::Registry { codes, .. } => codes,
            _ => &[],
        }
    }

    /// The same error naming `name` as its reference: a push made under another name (an index's
    /// platform images go by digest) reports the destination the user gave.
    pub(crate) fn naming(mut self, name: String) -> RegistryError {
        match &mut self {
            RegistryError::Registry { reference, .. }
            | RegistryError::Transport { reference, .. }
            | RegistryError::Auth { reference, .. }
            | RegistryError::Protocol { reference, .. }
            | RegistryError::ManifestRefused { reference, .. }
            | RegistryError::BlobVerification { reference, .. }
            | RegistryError::Store { reference, .. }
            | RegistryError::Mirrors { reference, .. } => *reference = name,
            RegistryError::InvalidReference { .. }
            | RegistryError::Options(_)
            | RegistryError::Certificate { .. }
            | RegistryError::ClientCertificate { .. }
            | RegistryError::DockerConfig { .. }
            | RegistryError::CredentialHelper(_)
            | RegistryError::CloudLogin(_)
            | RegistryError::EnvCredentials(_) => {}
        }
        self
    }

    /// The operation and reference the message starts with (`push x:1: …`), when it names them;
    /// a caller adding its own context checks this so the message does not say it twice.
    pub fn names_operation(&self) -> bool {
        matches!(
            self,
            RegistryError::Registry { .. }
                | RegistryError::Transport { .. }
                | RegistryError::Auth { .. }
                | RegistryError::Protocol { .. }
                | RegistryError::ManifestRefused { .. }
                | RegistryError::BlobVerification { .. }
                | RegistryError::Store { .. }
                | RegistryError::Mirrors { .. }
        )
    }

    /// True for a 404 from the registry (unknown manifest, blob or repository).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}
