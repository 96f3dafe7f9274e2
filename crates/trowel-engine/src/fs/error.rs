//! The error type of the `fs` module.

use std::io;

use crate::image::store::StoreError;

/// Everything that can go wrong in the `fs` module. Every variant names the image path (or
/// layer entry) involved; `root` fields name the host directory of the build root.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// A system call on a path inside a root failed.
    #[error("{op} {path} (in root {root}): {source}")]
    Io { op: &'static str, path: String, root: String, source: io::Error },

    /// An image path that cannot be used as given (empty, `..` as final component, NUL byte…).
    #[error("invalid image path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    /// A path that must exist does not.
    #[error("{path} does not exist in root {root}")]
    NotFound { path: String, root: String },

    /// A path exists but has the wrong type for the operation.
    #[error("{path} in root {root}: {reason}")]
    WrongType { path: String, root: String, reason: String },

    /// A file or symlink name that is not UTF-8; image paths are handled as strings.
    #[error("non-UTF-8 file name under {parent} in root {root}")]
    NonUtf8Name { parent: String, root: String },

    /// A layer entry that would write outside the root or is otherwise refused.
    #[error("unsafe layer entry {entry:?}: {reason}")]
    UnsafeEntry { entry: String, reason: String },

    /// A layer entry over `max_entry_size`.
    #[error("layer entry {entry:?} is too large: {size} bytes (limit {limit})")]
    TooLarge { entry: String, size: u64, limit: u64 },

    /// A layer whose entries add up to more than `max_total_size` (a decompression bomb, or a
    /// layer bigger than this build allows); `entry` is the one that crossed the limit.
    #[error("layer is too large once unpacked: {size} bytes by entry {entry:?} (limit {limit})")]
    LayerTooLarge { entry: String, size: u64, limit: u64 },

    /// A layer with more entries than `max_entries`: millions of empty files exhaust a file
    /// system's inodes (and the unpacker's memory) while every size limit counts 0 bytes.
    /// `entry` is the first one over the limit; nothing after it is read.
    #[error(
        "layer has more than {limit} entries (entry {entry:?} is number {count}; raise --max-layer-entries, 0: no limit)"
    )]
    TooManyEntries { entry: String, count: u64, limit: u64 },

    /// A device node in a layer when devices are not allowed, or mknod was refused.
    #[error("layer entry {entry:?}: cannot create device node: {reason}")]
    DeviceNotAllowed { entry: String, reason: String },

    /// A layer entry of a type trowel does not apply.
    #[error("layer entry {entry:?}: unsupported tar entry type {kind}")]
    UnsupportedEntry { entry: String, kind: String },

    /// The layer stream could not be read or decoded as tar.
    #[error("reading layer{}: {source}", entry.as_ref().map(|e| format!(" at entry {e:?}")).unwrap_or_default())]
    Layer { entry: Option<String>, source: io::Error },

    /// A file changed while it was being written into a layer (the tar would be corrupt).
    #[error("{path} changed while it was being written to the layer: {reason}")]
    ChangedWhileReading { path: String, reason: String },

    /// A copy's source is not what its caller expected it to be (a [`crate::fs::copy::Watch`]
    /// refused it): something wrote to it since the caller looked.
    #[error("{path}: {what}")]
    SourceChanged { path: String, what: String },

    /// Writing the layer stream (tar, compression) failed.
    #[error("writing layer entry {path}: {source}")]
    LayerWrite { path: String, source: io::Error },

    /// The caller asked the operation to give up ([`crate::fs::Cancel`]): the build was
    /// stopped. Its caller reports the stop, not this.
    #[error("stopped before it was done")]
    Cancelled,

    /// The blob store refused the layer.
    #[error("storing layer: {0}")]
    Store(#[from] StoreError),
}

impl FsError {
    /// True when this is an I/O error with the given errno.
    pub fn is_errno(&self, errno: i32) -> bool {
        matches!(self, FsError::Io { source, .. } if source.raw_os_error() == Some(errno))
    }
}
