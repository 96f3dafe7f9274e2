//! The content digests of a stage's files as its layer writer read them, kept with its root for
//! a later stage's `COPY --from` (or bind mount) of it, whose cache key needs the SHA-256 of
//! every file it copies (`steps/copy/from_files.rs`).
//!
//! A builder that ran in this build left those files in its root, and the layer of the step
//! that made each one hashed it already: [`crate::fs::write_layer`] reads every regular file of
//! a layer once, and puts its digest in the change and the inode it read (a [`FileRead`]) in
//! the changes' reads. Reading and hashing them all again for the key cost a cold W5 about a
//! tenth of a second of one core (2,300 files, 45 MB: `bench/README.md`, "A `COPY --from`'s key
//! from the digests its builder's layers found").
//!
//! A digest is used only for a file whose lstat, when the key is made, still shows the inode the
//! layer writer read: same inode, size, mtime and ctime to the nanosecond. Any write sets the
//! ctime to now, so a file written since is hashed again, as before; a stale entry (a file a
//! later step deleted or replaced) never matches the new inode. What a stat cannot show — a
//! write in the same tick of the file system's clock as the layer writer's open — is the limit
//! the snapshot index already lives with (`fs/snapshot_lazy.rs`), and nothing writes a builder's
//! root between its steps but its own steps.

use std::collections::HashMap;

use crate::digest::Digest;
use crate::dockerfile::{Plan, StageOrImage};
use crate::fs::snapshot::Changes;
use crate::fs::snapshot_lazy::FileRead;
use crate::fs::{FileType, Stat};

/// Path (relative to the root, no leading `/`) → the inode the layer writer read there and its
/// content digest.
#[derive(Default)]
pub(crate) struct KnownDigests {
    files: HashMap<String, (FileRead, Digest)>,
}

/// Whether a later stage copies or mounts from stage `index`: only then are its files' digests
/// worth keeping (a RUN that writes 20,000 files would otherwise keep them all for nothing).
pub(crate) fn read_later(plan: &Plan, index: usize) -> bool {
    let me = StageOrImage::Stage(index);
    plan.stages.iter().any(|s| s.copy_from.contains(&me) || s.mount_from.contains(&me))
}

fn key(path: &str) -> &str {
    path.trim_start_matches('/')
}

impl KnownDigests {
    /// Takes in what a layer's writer read of `changes` (called after
    /// [`crate::fs::write_layer`]): every path it names drops what was known of it, and each
    /// regular file (or second name of one) it read is known by the inode it read.
    pub(crate) fn record(&mut self, changes: &Changes) {
        let reads: HashMap<&str, &FileRead> =
            changes.reads.iter().filter_map(|r| Some((key(r.path(&changes.entries)?), r))).collect();
        for c in &changes.entries {
            let path = key(&c.path);
            self.files.remove(path);
            let is_file = matches!(c.file_type, FileType::File | FileType::Hardlink);
            if let (true, Some(d), Some(r)) = (is_file, &c.digest, reads.get(path)) {
                self.files.insert(path.to_string(), ((*r).clone(), d.digest()));
            }
        }
    }

    /// The digest of the file at `path` whose lstat is `st`, if it is the inode, unchanged, that
    /// a layer writer read and hashed.
    pub(crate) fn digest(&self, path: &str, st: &Stat) -> Option<&Digest> {
        let (read, digest) = self.files.get(key(path))?;
        read.is_of(st).then_some(digest)
    }

    #[cfg(test)]
    pub(crate) fn insert(&mut self, path: &str, st: &Stat, digest: Digest) {
        self.files.insert(key(path).to_string(), (FileRead::new(0, st, 0, &digest), digest));
    }
}
