//! OCI whiteout semantics for the unpacker.
//!
//! - `.wh.<name>` removes `<name>` (recursively) as it came from lower layers.
//! - `.wh..wh..opq` in directory D removes every child of D that came from lower layers.
//!
//! Both only hide *lower* layers: whatever the same layer writes stays, whatever the order of
//! the entries in the tar. The applier records every path it writes; here, a path it wrote is
//! kept (and, for a directory, searched for lower-layer children to remove), anything else is
//! removed. Ignored paths (mount points such as `/proc` when the root is `/`) are never removed.

use std::collections::HashSet;

use super::{Applier, unsafe_entry};
use crate::fs::path;
use crate::fs::{FsError, IgnoreList, Root};

/// Removes `p` and everything below it, except ignored paths (and the directories holding
/// them). Symlinks are removed, never followed. A missing `p` is fine.
pub(crate) fn remove_respecting(root: &Root, p: &str, ignore: &IgnoreList) -> Result<(), FsError> {
    if ignore.is_ignored(p) {
        return Ok(());
    }
    if !ignore.has_ignored_below(p) {
        return root.remove_all(p);
    }
    match root.lstat(p)? {
        Some(st) if st.is_dir() => {
            for name in root.read_dir(p)? {
                remove_respecting(root, &path::join(p, &name), ignore)?;
            }
            Ok(())
        }
        Some(_) => root.remove_all(p),
        None => Ok(()),
    }
}

/// Removes every descendant of directory `dir` that this layer did not write (`written`).
/// Directories this layer wrote are kept but searched for lower-layer children in turn.
pub(crate) fn clear_lower(
    root: &Root,
    dir: &str,
    written: &HashSet<String>,
    ignore: &IgnoreList,
) -> Result<(), FsError> {
    match root.lstat(dir)? {
        Some(st) if st.is_dir() => {}
        _ => return Ok(()),
    }
    for name in root.read_dir(dir)? {
        let child = path::join(dir, &name);
        if ignore.is_ignored(&child) {
            continue;
        }
        if written.contains(&child) {
            if root.lstat(&child)?.is_some_and(|s| s.is_dir()) {
                clear_lower(root, &child, written, ignore)?;
            }
        } else {
            remove_respecting(root, &child, ignore)?;
        }
    }
    Ok(())
}

impl Applier<'_> {
    /// Applies a whiteout entry (`.wh.<hidden>` or the opaque marker) whose path is `logical`.
    pub(super) fn whiteout(&mut self, logical: &str, hidden: &str, raw_name: &str) -> Result<(), FsError> {
        let opaque = hidden == ".wh..opq";
        if !opaque && (hidden.is_empty() || hidden == "." || hidden == "..") {
            return Err(unsafe_entry(raw_name, format!("invalid whiteout name {hidden:?}")));
        }
        self.stats.whiteouts += 1;
        self.stats.entries += 1;
        // Unlike other entries, a whiteout whose parent is gone or no longer a directory is
        // fine (umoci writes `d` as a file, then `d/.wh.x`): there is nothing left to hide.
        let res = self.root.resolve_impl(path::parent(logical), true, true)?;
        if let Some(why) = res.escape {
            return Err(unsafe_entry(raw_name, format!("its parent leaves the root through a symlink ({why})")));
        }
        if !self.root.lstat(&res.path)?.is_some_and(|st| st.is_dir()) {
            return Ok(());
        }
        let parent = res.path;
        self.parents.clear();
        if opaque {
            self.removed.push(parent.clone());
            return clear_lower(self.root, &parent, &self.layer_paths, &self.opts.ignore);
        }
        let victim = path::join(&parent, hidden);
        self.removed.push(victim.clone());
        if self.opts.ignore.is_ignored(&victim) {
            return Ok(());
        }
        if self.layer_paths.contains(&victim) {
            // Whiteouts only hide lower layers: this layer's own entry stays.
            if self.root.lstat(&victim)?.is_some_and(|s| s.is_dir()) {
                return clear_lower(self.root, &victim, &self.layer_paths, &self.opts.ignore);
            }
            return Ok(());
        }
        self.dir_times.retain(|p, _| !path::is_within(p, &victim));
        remove_respecting(self.root, &victim, &self.opts.ignore)
    }
}
