//! The layer cache (in a registry repository) and the local base-image cache directory.
//!
//! - [`key`]: composite cache keys and their components;
//! - [`explain`]: why a step missed;
//! - [`registry`]: cache entries in a registry repository, with per-step pointer tags;
//! - [`basedir`]: the local base-image cache directory (`--cache-dir`) that `trowel warm` fills
//!   and builds read FROM images from;
//! - [`unpacked`]: layers kept unpacked under the cache dir, that build roots are overlays of.

pub mod basedir;
pub mod explain;
pub mod key;
pub mod registry;
pub mod unpacked;
