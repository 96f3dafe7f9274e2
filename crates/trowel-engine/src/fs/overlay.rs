//! Shell sessions at a debugger pause run on an overlay of the build root, so their changes
//! can be kept (applied to the root, then snapshotted into a layer) or discarded exactly (the
//! root was never written).
//!
//! The overlay's upper directory holds everything the session changed, in overlayfs's own
//! format: a character device 0:0 is a deletion, a directory with `trusted.overlay.opaque=y`
//! (`user.overlay.opaque=y` in a user namespace) hides what the lower directory had. [`diff`] turns that into [`Change`]s against the root
//! (ignoring copy-ups that changed nothing); [`apply`] replays it onto the root.

use std::path::{Path, PathBuf};

use crate::digest::digest_reader;
use crate::fs::copy::{CopyOptions, Filter, Links, copy_tree_linking};
use crate::fs::overlay_mount::{LayerMount, OverlayKind, OverlaySpec};
use crate::fs::snapshot::{Change, ChangeKind, PrevMeta};
use crate::fs::{FileType, FsError, Root, Stat, path};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The same marker from an overlay mounted with `userxattr` (in a user namespace).
const USER_OPAQUE_XATTR: &str = "user.overlay.opaque";

/// A mounted overlay: `merged` shows `lower` with `upper`'s changes on top.
pub struct Overlay {
    pub upper: PathBuf,
    pub merged: PathBuf,
    mount: LayerMount,
}

fn io(op: &'static str, p: &Path, e: impl Into<std::io::Error>) -> FsError {
    FsError::Io { op, path: p.display().to_string(), root: String::new(), source: e.into() }
}

impl Overlay {
    /// Mounts an overlay of `lower` with its upper, work and merged directories under `scratch`
    /// (which must be on one filesystem). Needs CAP_SYS_ADMIN.
    pub fn mount(lower: &Path, scratch: &Path) -> Result<Overlay, FsError> {
        let upper = scratch.join("upper");
        let work = scratch.join("work");
        let merged = scratch.join("merged");
        for d in [&upper, &work, &merged] {
            std::fs::create_dir_all(d).map_err(|e| io("mkdir", d, e))?;
        }
        let lowers = [lower.to_path_buf()];
        let mount =
            OverlaySpec { kind: OverlayKind::View, lowers: &lowers, upper: &upper, work: &work }.mount(&merged)?;
        Ok(Overlay { upper, merged, mount })
    }

    /// Unmounts, failing while a process still uses the overlay (its upper directory is read
    /// next and must not change).
    pub fn unmount(&mut self) -> Result<(), FsError> {
        self.mount.unmount_idle()
    }
}

fn is_whiteout(st: &Stat) -> bool {
    st.file_type == FileType::CharDevice && st.rdev == 0
}

pub(crate) fn is_opaque(upper: &Root, p: &str) -> Result<bool, FsError> {
    let name = if crate::fs::overlay_mount::in_user_namespace() { USER_OPAQUE_XATTR } else { OPAQUE_XATTR };
    Ok(upper.get_xattr(p, name)?.is_some_and(|v| v == b"y"))
}

fn change(path: &str, kind: ChangeKind, st: &Stat, link: Option<String>, prev: Option<&Stat>) -> Change {
    Change {
        path: path.to_string(),
        kind,
        file_type: st.file_type,
        size: if st.file_type == FileType::File { st.size } else { 0 },
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        mtime: st.mtime.sec,
        link_target: link,
        digest: None,
        opaque: false,
        previous: prev.map(|p| {
            Box::new(PrevMeta {
                file_type: p.file_type,
                size: if p.file_type == FileType::File { p.size } else { 0 },
                mode: p.mode,
                uid: p.uid,
                gid: p.gid,
                link_target: None,
                mtime: Some(p.mtime.sec),
                digest: None,
            })
        }),
    }
}

fn same_content(upper: &Root, lower: &Root, p: &str) -> Result<bool, FsError> {
    let hash = |r: &Root| -> Result<_, FsError> {
        let f = r.open_file(p)?;
        digest_reader(std::io::BufReader::new(f)).map(|d| d.0).map_err(|e| io("read", Path::new(p), e))
    };
    Ok(hash(upper)? == hash(lower)?)
}

/// What the session changed, as [`Change`]s against `lower` (the build root).
pub fn diff(upper: &Root, lower: &Root) -> Result<Vec<Change>, FsError> {
    let mut out = Vec::new();
    walk_diff(upper, lower, "/", false, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// `all_new`: everything below is new (inside a new or opaque directory).
fn walk_diff(upper: &Root, lower: &Root, dir: &str, all_new: bool, out: &mut Vec<Change>) -> Result<(), FsError> {
    for name in upper.read_dir(dir)? {
        let p = path::join(dir, &name);
        let Some(st) = upper.lstat(&p)? else { continue };
        let below = if all_new { None } else { lower.lstat(&p)? };
        if is_whiteout(&st) {
            if let Some(prev) = below {
                out.push(change(&p, ChangeKind::Deleted, &prev, None, Some(&prev)));
            }
            continue;
        }
        let link = if st.file_type == FileType::Symlink { Some(upper.read_link(&p)?) } else { None };
        match below {
            None => {
                out.push(change(&p, ChangeKind::Added, &st, link, None));
                if st.is_dir() {
                    walk_diff(upper, lower, &p, true, out)?;
                }
            }
            Some(prev) if st.is_dir() && prev.is_dir() => {
                let opaque = is_opaque(upper, &p)?;
                let meta_changed =
                    (st.mode, st.uid, st.gid) != (prev.mode, prev.uid, prev.gid) || st.mtime != prev.mtime;
                if opaque || meta_changed {
                    let mut c = change(&p, ChangeKind::Modified, &st, None, Some(&prev));
                    c.opaque = opaque;
                    out.push(c);
                }
                walk_diff(upper, lower, &p, opaque, out)?;
            }
            Some(prev) => {
                let prev_link = if prev.file_type == FileType::Symlink { Some(lower.read_link(&p)?) } else { None };
                let same_meta = st.file_type == prev.file_type
                    && (st.mode, st.uid, st.gid, st.size) == (prev.mode, prev.uid, prev.gid, prev.size)
                    && link == prev_link;
                let unchanged = same_meta
                    && (st.file_type != FileType::File || st.mtime == prev.mtime && same_content(upper, lower, &p)?);
                if !unchanged {
                    let mut c = change(&p, ChangeKind::Modified, &st, link, Some(&prev));
                    if let Some(pm) = c.previous.as_mut() {
                        pm.link_target = prev_link;
                    }
                    out.push(c);
                    if st.is_dir() {
                        walk_diff(upper, lower, &p, true, out)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Replays the session's changes onto the build root. Returns the top-most paths touched, for
/// the snapshot that turns them into a layer.
pub fn apply(upper: &Root, root: &Root) -> Result<Vec<String>, FsError> {
    let mut touched = Vec::new();
    walk_apply(upper, root, "/", &mut touched, &mut Links::new())?;
    Ok(touched)
}

/// `links`: shared by every path copied, so names that are one inode in the session's upper
/// directory (`ln /c /hard` in the shell) are hard links in the root too, as a RUN's would be.
fn walk_apply(
    upper: &Root,
    root: &Root,
    dir: &str,
    touched: &mut Vec<String>,
    links: &mut Links,
) -> Result<(), FsError> {
    let all = |_: &str| Filter::Copy;
    let opts = CopyOptions::exact(&all);
    for name in upper.read_dir(dir)? {
        let p = path::join(dir, &name);
        let Some(st) = upper.lstat(&p)? else { continue };
        if is_whiteout(&st) {
            root.remove_all(&p)?;
            touched.push(p);
            continue;
        }
        let existing = root.lstat(&p)?;
        if st.is_dir() && existing.as_ref().is_some_and(|e| e.is_dir()) && !is_opaque(upper, &p)? {
            // A directory both sides have: merge what changed below, then its own metadata.
            walk_apply(upper, root, &p, touched, links)?;
            root.set_owner(&p, st.uid, st.gid)?;
            root.set_mode(&p, st.mode)?;
            root.set_times(&p, st.atime, st.mtime)?;
            touched.push(p);
            continue;
        }
        if existing.is_some() {
            root.remove_all(&p)?;
        }
        copy_tree_linking(upper, &p, root, &p, &opts, links)?;
        touched.push(p);
    }
    Ok(())
}
