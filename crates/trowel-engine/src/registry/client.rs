//! [`Registry`]: the handle the rest of trowel uses for every registry operation.
//!
//! The operations themselves live in `pull.rs` and `push.rs`; this file holds the handle, its
//! construction, and the result types.

use std::fmt;
use std::sync::Arc;

use super::error::RegistryError;
use super::options::RegistryOptions;
use super::reference::Reference;
use super::session::Session;
use super::transport;
use crate::digest::Digest;
use crate::image::manifest::{Descriptor, Manifest};

/// A registry client. Cheap to clone (clones share the endpoint, credential and token caches);
/// all operations are `async` and `Send`, for use from any tokio runtime.
#[derive(Clone)]
pub struct Registry {
    pub(crate) session: Arc<Session>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("options", &self.session.opts).finish_non_exhaustive()
    }
}

impl Registry {
    /// Creates a client. Reads the Docker config (a malformed one is an error now, not at the
    /// first pull) and checks that every `--registry-certificate` file is a usable CA bundle and
    /// every `--registry-client-cert` a certificate with its own key.
    pub fn new(opts: RegistryOptions) -> Result<Registry, RegistryError> {
        super::client_cert::check_all(&opts.client_certificates)?;
        for (host, path) in &opts.registry_certificates {
            if host.trim().is_empty() {
                return Err(RegistryError::Options(format!(
                    "--registry-certificate {}: expected host[:port]=path",
                    path.display()
                )));
            }
            transport::build_client(&opts, host, true)?;
        }
        Ok(Registry { session: Arc::new(Session::new(opts)?) })
    }

    /// Tells `notice` of every retry from now on, with a sentence: `retrying in 1 s (attempt 2 of
    /// 4): pull …: downloading blob sha256:…: stalled: no data for 30 s`. Set once; a second
    /// call is ignored.
    pub fn report_retries(&self, notice: impl Fn(String) + Send + Sync + 'static) {
        let _ = self.session.notice.set(Arc::new(notice));
    }

    /// Hands every secret the registries' cloud logins meet (an ECR password, a Google access
    /// token, the AWS or Google credentials they were had with) to `sink` before it is used,
    /// for the build's redactor. Set once; a second call is ignored.
    pub fn report_secrets(&self, sink: impl Fn(Vec<String>) + Send + Sync + 'static) {
        self.session.keychain.report_secrets(Arc::new(sink));
    }

    /// The references to try for a pull, in order: each mirror of the image's registry
    /// (`--registry-map`, and `--registry-mirror` for Docker Hub), then the reference itself
    /// (unless `--skip-default-registry-fallback` and there are mirrors).
    pub(crate) fn pull_candidates(&self, r: &Reference) -> Vec<Reference> {
        let mut out = Vec::new();
        for (host, prefix) in self.session.opts.mirrors_for(&r.registry) {
            let repository =
                if prefix.is_empty() { r.repository.clone() } else { format!("{prefix}/{}", r.repository) };
            out.push(Reference { registry: host, repository, ..r.clone() });
        }
        if !out.is_empty() && self.session.opts.skip_default_registry_fallback {
            return out;
        }
        out.push(r.clone());
        out
    }

    /// The error of a pull none of `r`'s candidates could serve, from each candidate's error in
    /// order: the default registry's own when it was tried (the mirrors were only a
    /// preference), else every mirror's, with the flag that forbade the fallback.
    pub(crate) fn no_candidate(&self, op: super::Op, r: &Reference, mut failed: Vec<RegistryError>) -> RegistryError {
        let opts = &self.session.opts;
        let mirrors_only = opts.skip_default_registry_fallback && !opts.mirrors_for(&r.registry).is_empty();
        match failed.pop() {
            Some(last) if !mirrors_only => last,
            last => {
                failed.extend(last);
                RegistryError::Mirrors {
                    op,
                    reference: r.to_string(),
                    tried: failed.iter().map(ToString::to_string).collect(),
                }
            }
        }
    }
}

/// A resolved image: the platform manifest and its config, as the registry sent them.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The reference as asked for (not the mirror it may have come from).
    pub reference: Reference,
    pub manifest: Manifest,
    /// The manifest's exact bytes (its digest is their hash).
    pub manifest_bytes: Vec<u8>,
    pub manifest_digest: Digest,
    /// The manifest's media type (Docker schema2 or OCI).
    pub media_type: String,
    pub config_bytes: Vec<u8>,
    pub config_digest: Digest,
    /// Digest of the index / manifest list the manifest was chosen from, if any.
    pub index_digest: Option<Digest>,
}

/// An image to push: its manifest and the blobs it references (config first).
#[derive(Debug, Clone)]
pub struct PushImage {
    pub manifest_bytes: Vec<u8>,
    pub manifest_media_type: String,
    pub blobs: Vec<PushBlob>,
}

/// An image index to push: each platform's image (pushed by digest, untagged), then the index
/// naming them. `index_bytes` must name exactly the manifests of `images`.
#[derive(Debug, Clone)]
pub struct PushIndex {
    pub index_bytes: Vec<u8>,
    /// An OCI image index or a Docker manifest list.
    pub media_type: String,
    pub images: Vec<PushImage>,
}

/// What an index push did: the index digest, and each platform's push in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPushReport {
    pub index_digest: Digest,
    pub images: Vec<PushReport>,
}

/// When a blob reaches the repository it is to be mounted from: an upload this build started,
/// which a push of that blob alone waits for (the other blobs go meanwhile). True once the
/// repository has it; false if it never will (the blob is then uploaded instead).
#[derive(Clone)]
pub struct Arrival(futures_util::future::Shared<futures_util::future::BoxFuture<'static, bool>>);

impl Arrival {
    pub fn new(arrived: impl std::future::Future<Output = bool> + Send + 'static) -> Arrival {
        use futures_util::FutureExt as _;
        Arrival(arrived.boxed().shared())
    }

    /// Waits for the upload's end: whether the blob got there.
    pub async fn wait(&self) -> bool {
        self.0.clone().await
    }

    /// Whether the upload is still going (neither arrived nor given up).
    pub fn pending(&self) -> bool {
        self.0.peek().is_none()
    }
}

impl fmt::Debug for Arrival {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0.peek() {
            Some(true) => "Arrival(arrived)",
            Some(false) => "Arrival(never)",
            None => "Arrival(pending)",
        })
    }
}

/// Whether the destination held a blob when it was asked, during the build (`HEAD`), so that
/// its push need not ask again; `None` if it could not be asked (the push then does).
#[derive(Clone)]
pub struct Presence(futures_util::future::Shared<futures_util::future::BoxFuture<'static, Option<bool>>>);

impl Presence {
    pub fn new(asked: impl std::future::Future<Output = Option<bool>> + Send + 'static) -> Presence {
        use futures_util::FutureExt as _;
        Presence(asked.boxed().shared())
    }

    /// The answer, waited for if it is still coming.
    pub async fn get(&self) -> Option<bool> {
        self.0.clone().await
    }
}

impl fmt::Debug for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0.peek() {
            Some(Some(true)) => "Presence(there)",
            Some(Some(false)) => "Presence(absent)",
            Some(None) => "Presence(unknown)",
            None => "Presence(asking)",
        })
    }
}

/// One blob of a push, and where it may be mounted from instead of uploaded.
#[derive(Debug, Clone)]
pub struct PushBlob {
    pub descriptor: Descriptor,
    /// A repository known to hold the blob (e.g. the base image's): mounted from when it is on
    /// the destination's registry, and downloaded from into the store when the blob has to be
    /// uploaded but the store does not have it (a base layer no step needed locally).
    pub mount_from: Option<Reference>,
    /// Made by this build and holding what nothing else holds (a cache entry's config names
    /// the entry's key, which missed; an image's config, the time of a step that ran):
    /// uploaded without asking first whether the repository has it, a round trip that would
    /// only ever answer no. Reported `Uploaded`.
    pub fresh: bool,
    /// Made by this build and just put in `mount_from` (a step's layer, uploaded to the cache
    /// repository): mounted without asking first whether the destination has it. Only an
    /// earlier build that made the very same bytes could have put it there, and a mount answers
    /// for that case too; the question is asked only if the registry refuses the mount.
    pub built: bool,
    /// When `mount_from` gets the blob only as an upload of this build ends (a step's layer
    /// streamed to the cache repository): this blob's push waits for it before its mount, and
    /// uploads the blob from the store if it never got there.
    pub arrival: Option<Arrival>,
    /// Its upload may take a session opened ahead for the repository (`spare_uploads.rs`):
    /// an image's blobs, which the end of its build waits for, and not a cache entry's (the
    /// empty config its entries share, say), which would take the session opened for a stage's
    /// last layer.
    pub spare: bool,
    /// Whether the destination held it, asked during the build (a base layer: see
    /// `engine/stage/tail.rs`): the push does not ask again.
    pub present: Option<Presence>,
}

impl PushBlob {
    /// A blob that may already be there: looked for first, mounted or uploaded if not.
    pub fn new(descriptor: Descriptor, mount_from: Option<Reference>) -> PushBlob {
        PushBlob { descriptor, mount_from, fresh: false, built: false, arrival: None, spare: false, present: None }
    }

    /// A layer this build made, in `mount_from` if that is `Some`, once `arrival` says so if
    /// that is `Some` (see [`PushBlob::built`], [`PushBlob::arrival`]).
    pub fn built(descriptor: Descriptor, mount_from: Option<(Reference, Option<Arrival>)>) -> PushBlob {
        let (mount_from, arrival) = mount_from.unzip();
        PushBlob {
            descriptor,
            built: mount_from.is_some(),
            mount_from,
            fresh: false,
            arrival: arrival.flatten(),
            spare: false,
            present: None,
        }
    }

    /// A blob made by this build that no repository can hold yet (see [`PushBlob::fresh`]).
    pub fn fresh(descriptor: Descriptor) -> PushBlob {
        PushBlob { descriptor, mount_from: None, fresh: true, built: false, arrival: None, spare: false, present: None }
    }
}

/// Progress of a push, reported per blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushProgress {
    /// Bytes of an upload handed to the network so far.
    Blob { digest: Digest, sent: u64, total: u64 },
    /// A blob is on the registry.
    BlobDone { digest: Digest, action: BlobAction },
}

/// What a registry says of a blob when asked with `HEAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobHead {
    Missing,
    /// It has it; `size` is the `Content-Length` it gave (the distribution spec requires one,
    /// but not every registry sends it).
    Present {
        size: Option<u64>,
    },
}

/// How a blob got onto the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobAction {
    Uploaded,
    /// It was already there.
    Existed,
    /// Cross-repository mount.
    Mounted,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub manifest_digest: Digest,
    /// Every blob, in the order given, with what happened and its size.
    pub blobs: Vec<(Digest, BlobAction, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::manifest::Platform;
    use crate::image::store::BlobStore;

    fn assert_send<T: Send>(_: &T) {}

    /// The engine drives these futures from plain threads through a runtime handle.
    #[test]
    fn operations_are_send() {
        let reg = Registry::new(RegistryOptions { docker_config: Some("/nonexistent".into()), ..Default::default() })
            .unwrap();
        let r = Reference::parse("127.0.0.1:1/x:1").unwrap();
        let d = crate::digest::Digest::of(b"");
        let desc = Descriptor::new("application/octet-stream", d.clone(), 0);
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let img = PushImage { manifest_bytes: vec![], manifest_media_type: String::new(), blobs: vec![] };
        assert_send(&reg.resolve(&r, &Platform::host()));
        assert_send(&reg.fetch_blob(&r, &desc, &store, &|_, _| {}));
        assert_send(&reg.blob_exists(&r, &d));
        assert_send(&reg.push_image(&r, &img, &store, &|_| {}));
        assert_send(&reg.push_manifest(&r, b"", ""));
        assert_send(&reg.fetch_manifest(&r));
        assert_send(&reg.check_push_access(&r));
        let idx = PushIndex { index_bytes: vec![], media_type: String::new(), images: vec![img.clone()] };
        assert_send(&reg.push_index(&r, &idx, &store, &|_| {}));
        assert_send(&reg.stage_index(&r, &idx, &store, &|_| {}));
        assert_send(&reg.tag_index(&r, &idx));
        assert_send(&reg.names_digest(&r, &d));
    }

    #[test]
    fn mirrors_apply_to_docker_hub_only() {
        let reg = Registry::new(RegistryOptions {
            registry_mirrors: vec!["mirror.example".into(), "m2.example/hub".into()],
            docker_config: Some("/nonexistent".into()),
            ..Default::default()
        })
        .unwrap();
        let hub = Reference::parse("alpine:3").unwrap();
        let got: Vec<String> = reg.pull_candidates(&hub).iter().map(|r| r.to_string()).collect();
        assert_eq!(
            got,
            ["mirror.example/library/alpine:3", "m2.example/hub/library/alpine:3", "docker.io/library/alpine:3"]
        );
        let other = Reference::parse("quay.io/x/y:1").unwrap();
        assert_eq!(reg.pull_candidates(&other), vec![other.clone()]);
    }

    #[test]
    fn skip_default_registry_fallback_leaves_docker_hub_out() {
        let with = |mirrors: Vec<String>| {
            Registry::new(RegistryOptions {
                registry_mirrors: mirrors,
                skip_default_registry_fallback: true,
                docker_config: Some("/nonexistent".into()),
                ..Default::default()
            })
            .unwrap()
        };
        let hub = Reference::parse("alpine:3").unwrap();
        let reg = with(vec!["mirror.example".into()]);
        let got: Vec<String> = reg.pull_candidates(&hub).iter().map(|r| r.to_string()).collect();
        assert_eq!(got, ["mirror.example/library/alpine:3"]);
        // Other registries, and Docker Hub without mirrors, are as without the flag.
        let other = Reference::parse("quay.io/x/y:1").unwrap();
        assert_eq!(reg.pull_candidates(&other), vec![other.clone()]);
        assert_eq!(with(vec![]).pull_candidates(&hub), vec![hub.clone()]);
        // The error of a pull no mirror served names each mirror's error.
        let failed = vec![RegistryError::Registry {
            op: super::super::Op::Pull,
            reference: "mirror.example/library/alpine:3".into(),
            status: 404,
            detail: "manifest unknown (404)".into(),
            codes: vec!["MANIFEST_UNKNOWN".into()],
        }];
        let e = reg.no_candidate(super::super::Op::Pull, &hub, failed).to_string();
        assert_eq!(
            e,
            "pull docker.io/library/alpine:3: every registry mirror failed, and --skip-default-registry-fallback \
             forbids falling back to docker.io: pull mirror.example/library/alpine:3: manifest unknown (404)"
        );
    }

    #[test]
    fn client_certificate_files_are_checked_at_construction() {
        let e = Registry::new(RegistryOptions {
            client_certificates: vec![super::super::ClientCertificate {
                registry: "reg.example".into(),
                cert: "/nonexistent/client.pem".into(),
                key: "/nonexistent/client.key".into(),
            }],
            docker_config: Some("/nonexistent".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("registry client certificate for reg.example: /nonexistent/client.pem: "), "{e}");
    }

    #[test]
    fn bad_certificate_file_is_reported_at_construction() {
        let e = Registry::new(RegistryOptions {
            registry_certificates: vec![("reg.example".into(), "/nonexistent/ca.pem".into())],
            docker_config: Some("/nonexistent".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/ca.pem") && e.contains("reg.example"), "{e}");
    }
}
