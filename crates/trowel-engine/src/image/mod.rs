//! Image data: the config (raw JSON), manifests and descriptors, the local blob store, and the
//! outputs a build writes (registry push, docker-archive tarball, OCI layout, digest files).

pub mod config;
pub mod index;
pub mod manifest;
pub mod outputs;
pub mod platform;
pub mod store;
pub mod tap;
