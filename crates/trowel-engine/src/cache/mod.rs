//! The layer cache (in a registry repository, and the local layer store) and the local base-image cache directory.
//!
//! - [`key`]: composite cache keys and their components;
//! - [`explain`]: why a step missed;
//! - [`registry`]: cache entries in a registry repository, with per-step pointer tags;
//! - [`layer_ref`]: layer reference records, which find a COPY/ADD layer kept out of the cache
//!   repository again from a fresh CI pod (no cache dir);
//! - [`copy_from`]: copy-from records, which key a `COPY --from=<stage>` by the files it
//!   copies when the stage was served whole from the cache;
//! - [`local`]: the local layer store under `--cache-dir`, for steps keyed but not written to
//!   the cache repository (COPY/ADD without `--cache-copy-layers`);
//! - [`basedir`]: the local base-image cache directory (`--cache-dir`) that `trowel warm` fills
//!   and builds read FROM images from;
//! - [`unpacked`]: layers kept unpacked under the cache dir, that build roots are overlays of;
//! - [`listings`]: what layers hold, as a debugger or a trace was shown it, kept so that it need
//!   not be downloaded and read again;
//! - [`sealed`]: the checksummed small files such derived facts are kept in;
//! - [`usage`]: how builds mark what they use and when they last used it, and
//!   [`prune`]: `trowel cache prune` and `check`, which bound and verify the cache dir.

pub mod basedir;
pub mod copy_from;
pub mod explain;
mod file_diff;
pub mod inline;
pub mod key;
pub mod layer_ref;
pub mod listings;
pub mod local;
pub mod prune;
pub mod registry;
pub(crate) mod sealed;
pub mod unpacked;
pub mod usage;
