//! Filesystem: the in-root file operations, layer unpacking, snapshots and layer writing.
//!
//! Everything here works on a *build root*: a plain host directory that holds an image's root
//! filesystem. Paths handed to this module are *image paths* (`/etc/passwd`), always interpreted
//! inside the root: symlinks in the image (often absolute, like `lib64 -> /lib`) resolve relative
//! to the root, never to the host. [`Root`] is the only way this module touches a root; it opens
//! parents with `openat2(RESOLVE_IN_ROOT)` and acts on final components with `*at` syscalls that do
//! not follow symlinks, so no image content can redirect a write onto the host.
//!
//! - [`unpack`]: apply a (hostile) layer tar to a root, with OCI whiteouts.
//! - [`snapshot`]: index a root and report what changed since the last snapshot.
//! - [`layer`]: turn those changes into a deterministic, compressed layer blob.
//! - [`copy`]: copy a tree between two roots (COPY/ADD, cross-stage copies).
//! - [`extract`]: apply layers writing only the paths a reader asks for (`COPY --from`).

pub mod cancel;
pub mod clean;
pub mod copy;
mod copy_data;
pub mod dir_lock;
mod error;
pub mod extract;
pub mod hardlinks;
pub mod ignore;
pub mod layer;
pub mod listing;
pub mod overlay;
pub mod overlay_mount;
pub(crate) mod path;
pub mod pgzip;
pub mod readahead;
pub mod remove;
pub mod root;
pub mod snapshot;
mod snapshot_index;
pub(crate) mod snapshot_lazy;
mod snapshot_saved;
mod sys;
mod tar_guard;
mod tar_header;
mod types;
pub mod unpack;
mod written;

pub use cancel::Cancel;
pub use copy::{CopyOptions, CopyStats, Filter, Links, copy_tree, copy_tree_linking};
pub use error::FsError;
pub use ignore::IgnoreList;
pub use layer::{LayerInfo, LayerOptions, write_layer};
pub use root::{ParentDirs, Root};
pub use snapshot::{Change, ChangeKind, Changes, PrevMeta, SnapshotMode, SnapshotStats, Snapshotter};
pub use types::{FileType, NodeKind, Stat, Timespec, is_image_xattr};
pub use unpack::{UnpackOptions, UnpackStats, open_layer, open_layer_hashed, unpack_layer};
pub use written::WrittenContents;

/// The cores this process may use (at least 1), as `std::thread::available_parallelism` says
/// the first time it is asked. std answers afresh at every call, reading `/proc/self/cgroup`
/// and the CPU quota's files (about 20 µs here), and the unpacker asked once per batch of
/// files: 408 times for a Debian base, on the thread that writes its files.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
}
