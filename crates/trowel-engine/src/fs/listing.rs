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
        let p = entry_path(&entry.path_bytes(), &raw, false)?;
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
            c.digest = Some(
                digest_of(&mut entry).map_err(|source| FsError::Layer { entry: Some(entry_name), source })?.into(),
            );
        }
        match (file_type, entry.link_name_bytes()) {
            (FileType::Symlink, Some(l)) => c.link_target = Some(String::from_utf8_lossy(&l).into_owned()),
            // A hard link names its first name as a layer path (`usr/bin/a`); a change says the
            // image path (`/usr/bin/a`), as a snapshot of a root does.
            (FileType::Hardlink, Some(l)) => {
                let raw = String::from_utf8_lossy(&l).into_owned();
                c.link_target = Some(entry_path(&l, &raw, false)?);
            }
            _ => {}
        }
        out.push(c);
    }
    for d in opaque_dirs {
        if let Some(c) = out.iter_mut().find(|c| c.path == d) {
            c.opaque = true;
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    // A hard link's entry has no content; its content is its first name's, which a layer holds
    // before it (a walk of a root reads the same bytes for both names).
    let digests: Vec<(usize, Option<crate::digest::Sum>)> = out
        .iter()
        .enumerate()
        .filter(|(_, c)| c.file_type == FileType::Hardlink)
        .map(|(i, c)| {
            let first = c.link_target.as_deref().and_then(|t| out.binary_search_by(|o| o.path.as_str().cmp(t)).ok());
            (i, first.and_then(|f| out[f].digest))
        })
        .collect();
    for (i, d) in digests {
        out[i].digest = d;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header(t: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(t);
        h.set_size(size);
        h.set_mode(if t == tar::EntryType::Directory { 0o755 } else { 0o644 });
        h.set_mtime(1_704_067_200);
        h
    }

    /// What a listing says of each kind of entry: a hard link's first name as an image path and
    /// its content digest (as a snapshot of a root says them), a symlink's target as written,
    /// whiteouts as deletions and an opaque marker on its directory.
    #[test]
    fn a_layer_lists_as_a_snapshot_reports() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut header(tar::EntryType::Directory, 0), "hl/", std::io::empty()).unwrap();
        b.append_data(&mut header(tar::EntryType::Regular, 4), "hl/one", &b"one\n"[..]).unwrap();
        let mut h = header(tar::EntryType::Link, 0);
        b.append_link(&mut h, "hl/two", "hl/one").unwrap();
        let mut h = header(tar::EntryType::Symlink, 0);
        b.append_link(&mut h, "hl/rel", "one").unwrap();
        b.append_data(&mut header(tar::EntryType::Regular, 0), "etc/.wh.hostname", std::io::empty()).unwrap();
        b.append_data(&mut header(tar::EntryType::Directory, 0), "opt/", std::io::empty()).unwrap();
        b.append_data(&mut header(tar::EntryType::Regular, 0), "opt/.wh..wh..opq", std::io::empty()).unwrap();
        let listed = list_layer(&b.into_inner().unwrap()[..]).unwrap();
        let by = |p: &str| listed.iter().find(|c| c.path == p).unwrap();
        assert_eq!(by("/hl/two").file_type, FileType::Hardlink);
        assert_eq!(by("/hl/two").link_target.as_deref(), Some("/hl/one"));
        assert_eq!(by("/hl/two").digest, by("/hl/one").digest, "a hard link's content is its first name's");
        assert_eq!(by("/hl/rel").link_target.as_deref(), Some("one"));
        assert_eq!(by("/hl/one").size, 4);
        assert!(by("/hl/one").digest.is_some());
        assert_eq!(by("/etc/hostname").kind, ChangeKind::Deleted);
        assert!(by("/opt").opaque);
        let paths: Vec<&str> = listed.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/etc/hostname", "/hl", "/hl/one", "/hl/rel", "/hl/two", "/opt"]);
    }
}
