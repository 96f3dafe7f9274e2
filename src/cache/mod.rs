//! Layer cache and base-image cache directory (issue 3).
//!
//! - [`basedir`]: the local base-image cache directory (`--cache-dir`) that `trowel warm` fills
//!   and builds read FROM images from.
//! - [`duration`]: Go-style durations for `--cache-ttl`.

pub mod basedir;
pub mod duration;
