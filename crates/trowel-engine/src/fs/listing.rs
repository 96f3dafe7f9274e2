//! Listing what a layer contains without applying it: the paths of a cached layer that was
//! not unpacked (a fully cached stage has no build root), for breakpoints on changed paths,
//! the debugger's change view and traces.
//!
//! Without the layers below, a listed path cannot be told apart as added or modified: every
//! entry is reported `Added`, whiteouts as `Deleted`, opaque markers set `opaque` on their
//! directory; regular files carry their content digest. The engine tells added from modified
//! with what the layers below hold (`engine/before.rs`, when a viewer asks).

use std::io::Read;

use super::snapshot::{Change, ChangeKind};
use super::tar_guard::TarGuard;
use super::unpack::entry_path;
use super::{FileType, FsError, path};

/// The entries of an (uncompressed) layer stream, sorted by path.
pub fn list_layer(tar_stream: impl Read) -> Result<Vec<Change>, FsError> {
    let mut archive = tar::Archive::new(TarGuard::new(tar_stream));
    let mut out: Vec<Change> = Vec::new();
    let mut opaque_dirs = Vec::new();
    let entries = archive.entries().map_err(|source| FsError::Layer { entry: None, source })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| FsError::Layer { entry: None, source })?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let p = entry_path(&entry.path_bytes(), &raw)?;
        if p == "/" {
            continue;
        }
        let name = path::file_name(&p).to_string();
        let h = entry.header();
        let base = |kind: ChangeKind, path: String, file_type: FileType| Change {
            path,
            kind,
            file_type,
            size: 0,
            mode: h.mode().unwrap_or(0) & 0o7777,
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mtime: h.mtime().unwrap_or(0) as i64,
            link_target: None,
            digest: None,
            opaque: false,
            previous: None,
        };
        if name == ".wh..wh..opq" {
            opaque_dirs.push(path::parent(&p).to_string());
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden.starts_with(".wh.") {
                continue; // AUFS bookkeeping
            }
            out.push(base(ChangeKind::Deleted, path::join(path::parent(&p), hidden), FileType::File));
            continue;
        }
        let file_type = file_type_of(h.entry_type());
        let mut c = base(ChangeKind::Added, p, file_type);
        if file_type == FileType::File {
            c.size = entry.size();
            let entry_name = c.path.clone();
            c.digest =
                Some(digest_of(&mut entry).map_err(|source| FsError::Layer { entry: Some(entry_name), source })?);
        }
        if matches!(file_type, FileType::Symlink | FileType::Hardlink) {
            c.link_target = entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned());
        }
        out.push(c);
    }
    for d in opaque_dirs {
        if let Some(c) = out.iter_mut().find(|c| c.path == d) {
            c.opaque = true;
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The type of a layer's tar entry (anything else tar knows is a regular file's content).
pub(crate) fn file_type_of(et: tar::EntryType) -> FileType {
    match et {
        tar::EntryType::Directory => FileType::Dir,
        tar::EntryType::Symlink => FileType::Symlink,
        tar::EntryType::Link => FileType::Hardlink,
        tar::EntryType::Char => FileType::CharDevice,
        tar::EntryType::Block => FileType::BlockDevice,
        tar::EntryType::Fifo => FileType::Fifo,
        _ => FileType::File,
    }
}

/// The SHA-256 of what `r` yields (a tar entry's content), read in chunks.
pub(crate) fn digest_of(r: &mut impl Read) -> std::io::Result<crate::digest::Digest> {
    let mut h = crate::digest::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(h.finish()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
