//! Registry client: references, auth, pull and push.
//!
//! [`Registry`] is the one entry point: `resolve` (index → platform manifest → config),
//! `fetch_blob` (streamed into the [`BlobStore`](crate::image::store::BlobStore), verified),
//! `push_image` (blobs, then the manifest), `push_index` (each platform's image by digest, then
//! the index), plus the smaller calls around them. It speaks the
//! distribution API over reqwest (see `session.rs` for why not through oci-client), with
//! per-host TLS settings, Docker's loopback rule (TLS if offered, else plain HTTP), credentials
//! from the Docker config and credential helpers, bearer tokens, and bounded retries.
//! Nothing outside this module sees an HTTP type.

mod auth;
mod client;
pub mod error;
pub mod options;
mod pull;
mod push;
mod push_index;
pub mod reference;
mod retry;
mod secret;
mod session;
mod stream_upload;
pub use stream_upload::HeldUpload;
mod token;
mod transport;

pub use client::{
    BlobAction, BlobHead, IndexPushReport, PushBlob, PushImage, PushIndex, PushProgress, PushReport, Registry,
    ResolvedImage,
};
pub use error::{Op, RegistryError};
pub use options::{Direction, RegistryOptions};
pub use reference::Reference;

/// Internals the fuzz targets in `fuzz/` (and their seed replay in the tests) reach; not API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::pull::manifest_media_type;
}
