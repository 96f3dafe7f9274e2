//! What a step changed in the build root, as a snapshot saw it.

use serde::{Deserialize, Serialize};

use crate::Digest;

/// The type of a filesystem object. `hardlink` marks a regular file that is another name of an
/// earlier file in the same change set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    File,
    Dir,
    Symlink,
    Hardlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// Metadata of a path before a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrevMeta {
    pub file_type: FileType,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub link_target: Option<String>,
    /// Modification time before, in seconds since the epoch (absent in older traces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// Content digest of a regular file before, when the engine was asked to find it (the
    /// debugger and traces ask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    /// Absolute image path, e.g. `/etc/x`.
    pub path: String,
    pub kind: ChangeKind,
    /// The current type (for `deleted`: the type it had).
    pub file_type: FileType,
    /// Bytes of a regular file's content (0 for other types).
    pub size: u64,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Symlink target, or for `hardlink` the image path of the first name.
    pub link_target: Option<String>,
    /// SHA-256 of a regular file's content, when the layer writer read it.
    pub digest: Option<Digest>,
    /// A directory that was removed and re-created: what lower layers had below it is gone.
    /// A walk of a root also reports what it held and no longer holds as `deleted` (traces
    /// before 2026-12-05 did not); a layer's listing cannot. So is what a directory held when
    /// something else replaced it (a `modified` file, link… whose `previous` is a directory;
    /// traces before 2026-12-06 did not list it).
    pub opaque: bool,
    /// The metadata before, for `modified` and `deleted` (else `null`).
    pub previous: Option<Box<PrevMeta>>,
}

/// What a snapshot cost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SnapshotStats {
    /// Paths stat'ed.
    pub files_walked: u64,
    /// Bytes of file content read to hash.
    pub bytes_hashed: u64,
    pub duration_ms: u64,
    /// Changed paths the event does not list: set when no consumer of the events keeps
    /// per-file lists (a build that only logs, see `Detail::file_lists`), which then gets the
    /// count alone and the engine never builds the list; absent when `changes` lists every
    /// path, as in every trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlisted: Option<u64>,
}

/// A small text file's content before and after a step (`null`: absent on that side, binary or
/// larger than the recording limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileContent {
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
}
