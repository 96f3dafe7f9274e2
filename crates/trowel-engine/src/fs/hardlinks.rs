//! Hard links in a root mounted from the unpacked-layer store inside a user namespace
//! (rootless isolation), where overlayfs has no inode index (`overlay_mount.rs`,
//! `userns_value`): there a file with several names that a step writes through one name is
//! copied up under that name only, and its other names keep the old content — unlike a plain
//! directory (or a root's overlay, with `index=on`), where every name is the one inode. Debian's
//! base has such files (`/usr/bin/perl` and `perl5.36.0`, `gunzip` and `uncompress`).
//!
//! So the store records, per entry, the names of its regular files with more than one link
//! ([`linked_files`], walked once when the entry is made), and before a root (or a layer being
//! applied through an overlay) is used, every group of names that are still one inode in the
//! merged view is copied up as one inode ([`copy_up_groups`]): the data and attributes copied
//! into a new upper file, every name linked to it. The merged view then shows what it showed
//! before — same content, owners, mode, attributes, times, link count — and a write through any
//! name reaches all of them. Parent directories get their times back; only their and the
//! files' inode numbers and change times differ, which no layer records.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::FsError;
use super::root::Root;

/// Image paths (`/usr/bin/perl`) of the regular files under `dir` (an entry's upper directory,
/// read directly, not through an overlay) that have more than one link, sorted. A name that is
/// not UTF-8 is an error: it could not be copied up by name later, so the caller does not serve
/// roots from this entry.
pub fn linked_files(dir: &Path) -> io::Result<Vec<String>> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).follow_links(false).min_depth(1) {
        let e = e.map_err(io::Error::from)?;
        if !e.file_type().is_file() {
            continue;
        }
        if e.metadata().map_err(io::Error::from)?.nlink() < 2 {
            continue;
        }
        let rel = e.path().strip_prefix(dir).map_err(io::Error::other)?;
        let Some(rel) = rel.to_str() else {
            return Err(io::Error::other(format!("hard-linked file with a name that is not UTF-8: {}", rel.display())));
        };
        out.push(format!("/{rel}"));
    }
    out.sort();
    Ok(out)
}

/// Copies up, through the merged `root`, each group of `candidates` (image paths, from
/// [`linked_files`] of its layers) that are one inode with more than one link, as one upper
/// inode with all those names. Names a higher layer replaced or removed are no longer part of
/// their group and are left alone. Returns how many groups were copied up.
pub fn copy_up_groups(root: &Root, candidates: &[String]) -> Result<usize, FsError> {
    let mut groups: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for p in candidates {
        if let Some(st) = root.lstat(p)?
            && st.file_type == super::FileType::File
            && st.nlink > 1
        {
            groups.entry((st.dev, st.ino)).or_default().push(p.clone());
        }
    }
    let mut copied = 0;
    for names in groups.values_mut() {
        names.sort();
        names.dedup();
        if names.len() < 2 {
            continue;
        }
        copy_up(root, names)?;
        copied += 1;
    }
    Ok(copied)
}

/// One group: a new file beside the first name with its data and attributes, then every name
/// replaced by a link to it, then the times of the file and of the parents put back.
fn copy_up(root: &Root, names: &[String]) -> Result<(), FsError> {
    let first = &names[0];
    let (mut src, st) = root.open_file_nofollow(first)?;
    let mut parents: Vec<(String, super::Stat)> = Vec::new();
    for n in names {
        let parent = super::path::parent(n).to_string();
        if !parents.iter().any(|(p, _)| *p == parent)
            && let Some(pst) = root.lstat(&parent)?
        {
            parents.push((parent, pst));
        }
    }
    let tmp = super::path::join(super::path::parent(first), &format!(".trowel-link-{}", st.ino));
    let io_err = |op: &'static str, e: io::Error| FsError::Io {
        op,
        path: first.clone(),
        root: root.host_path().display().to_string(),
        source: e,
    };
    let mut dst = root.create_file(&tmp, 0o600)?;
    io::copy(&mut src, &mut dst).map_err(|e| io_err("copy up", e))?;
    drop((src, dst));
    // Attributes as the merged view shows them (overlayfs hides its own and unescapes a
    // layer's); written back through it, they are stored as overlayfs stores them.
    let private = super::overlay_mount::private_xattr_prefix();
    for name in root.list_xattrs(first)? {
        if name.starts_with(private) {
            continue;
        }
        if let Some(v) = root.get_xattr(first, &name)? {
            root.set_xattr(&tmp, &name, &v)?;
        }
    }
    // Owner before mode: a chown clears setuid and setgid bits.
    root.set_owner(&tmp, st.uid, st.gid)?;
    root.set_mode(&tmp, st.mode)?;
    for n in names {
        root.remove_all(n)?;
        root.hardlink(&tmp, n)?;
    }
    root.remove_all(&tmp)?;
    root.set_times(first, st.atime, st.mtime)?;
    for (p, pst) in &parents {
        root.set_times(p, pst.atime, pst.mtime)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a plain directory (no overlay needed to show the bookkeeping): the linked names are
    /// found, and a group is re-made as one new inode with the same data, mode and times, its
    /// parent's times kept; a name that left its group is left alone.
    #[test]
    fn a_group_becomes_one_new_inode_with_the_same_look() {
        use std::os::unix::fs::MetadataExt as _;
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("usr/bin")).unwrap();
        std::fs::write(d.join("usr/bin/perl"), b"perl").unwrap();
        std::fs::hard_link(d.join("usr/bin/perl"), d.join("usr/bin/perl5")).unwrap();
        std::fs::write(d.join("usr/bin/alone"), b"x").unwrap();
        std::fs::write(d.join("a"), b"a").unwrap();
        std::fs::hard_link(d.join("a"), d.join("b")).unwrap();
        std::fs::remove_file(d.join("b")).unwrap();
        std::fs::write(d.join("b"), b"replaced").unwrap();
        let root = Root::open(d).unwrap();
        root.set_mode("/usr/bin/perl", 0o751).unwrap();
        let old = Timespec::new(1_000_000, 0);
        root.set_times("/usr/bin/perl", old, old).unwrap();
        root.set_times("/usr/bin", old, old).unwrap();
        let before = std::fs::metadata(d.join("usr/bin/perl")).unwrap();

        let found = linked_files(d).unwrap();
        assert_eq!(found, ["/usr/bin/perl", "/usr/bin/perl5"]);
        let mut candidates = found.clone();
        candidates.push("/a".into());
        assert_eq!(copy_up_groups(&root, &candidates).unwrap(), 1);

        let (p, p5) = (d.join("usr/bin/perl"), d.join("usr/bin/perl5"));
        let (m, m5) = (std::fs::metadata(&p).unwrap(), std::fs::metadata(&p5).unwrap());
        assert_ne!(m.ino(), before.ino(), "a new inode");
        assert_eq!((m.ino(), m.nlink()), (m5.ino(), 2), "one inode, both names");
        assert_eq!(std::fs::read(&p).unwrap(), b"perl");
        assert_eq!(m.mode() & 0o7777, 0o751);
        assert_eq!((m.uid(), m.gid()), (before.uid(), before.gid()));
        assert_eq!(m.mtime(), 1_000_000);
        assert_eq!(std::fs::metadata(d.join("usr/bin")).unwrap().mtime(), 1_000_000);
        assert!(!d.join(format!("usr/bin/.trowel-link-{}", before.ino())).exists());
        assert_eq!(std::fs::read(d.join("b")).unwrap(), b"replaced");
    }

    use crate::fs::Timespec;
}
