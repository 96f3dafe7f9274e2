//! Registry client: references, auth, pull and push.
//!
//! [`Registry`] is the one entry point: `resolve` (index → platform manifest → config),
//! `fetch_blob` (streamed into the [`BlobStore`](crate::image::store::BlobStore), verified),
//! `push_image` (blobs, then the manifest), `push_index` (each platform's image by digest, then
//! the index), plus the smaller calls around them. It speaks the
//! distribution API over reqwest (see `session.rs` for why not through oci-client), with
//! per-host TLS settings, Docker's loopback rule (TLS if offered, else plain HTTP), credentials
//! from the Docker config, credential helpers, the environment and ECR's, Google's and ACR's logins,
//! bearer tokens, and bounded retries.
//! Nothing outside this module sees an HTTP type, but the remote contexts, which share the
//! cloud credentials' client (`cloud/`).

mod auth;
mod client;
pub mod client_cert;
pub(crate) mod cloud;
mod cloud_auth;
mod config_file;
mod env_auth;
pub mod error;
mod login;
pub mod options;
mod pull;
mod push;
mod push_index;
pub mod reference;
mod retry;
mod secret;
mod session;
mod spare_uploads;
pub mod stall;
mod stream_upload;
pub use pull::ManifestSeen;
pub use stream_upload::HeldUpload;
mod token;
mod transport;

pub use auth::docker_config_file;
pub use client::{
    Arrival, BlobAction, BlobHead, IndexPushReport, Presence, PushBlob, PushImage, PushIndex, PushProgress, PushReport,
    Registry, ResolvedImage,
};
pub use client_cert::ClientCertificate;
pub use config_file::{ConfigFileError, LoginEntry, auth_key, forget_login, store_login};
pub use env_auth::{DOCKER_AUTH_CONFIG, env_secrets, shadowed_by_docker_auth_config};
pub use error::{Op, RegistryError};
pub use login::LoginCheck;
pub use options::{Direction, RegistryOptions};
pub use reference::Reference;
pub use stall::{DEFAULT_STALL_TIMEOUT, Stalled};

/// Internals the fuzz targets in `fuzz/` (and their seed replay in the tests) reach; not API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::pull::manifest_media_type;
}
