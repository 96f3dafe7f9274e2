//! Image data: `--annotation`s, the config (raw JSON), manifests and descriptors, the image index of a build for
//! several platforms, the local blob store, and the outputs a build writes (docker-archive
//! tarball, OCI layout, digest files).

pub mod annotations;
pub mod config;
pub mod follow;
pub mod index;
mod layout;
pub mod manifest;
pub mod outputs;
pub mod platform;
pub mod platform_match;
pub mod store;
pub mod tap;
