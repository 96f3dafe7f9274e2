//! What a mount enforces that a mount put in place (`placed.rs`, container isolation, no mount
//! syscall) cannot: a read-only mount refusing writes and a tmpfs refusing to grow past its
//! `size`. Both are checked once the command is done, and a breach fails the step with what a
//! real mount would have refused, rather than letting the build succeed where it would not
//! under BuildKit.
//!
//! - Read-only (a `ro` cache, a bind, which is read-only unless `rw`): the tree at the target is
//!   fingerprinted once in place (every entry's inode, type, mode, owner, size, mtime and
//!   ctime: any write, create, remove, rename, chmod or chown changes one of them) and again
//!   after the command. What a `ro` cache got written is then dropped, so no later step sees it.
//! - tmpfs `size`: the bytes the files under the target hold after the command. What was
//!   written and removed again before the command ended is not seen (a real tmpfs would have
//!   refused it at its peak); what is left over the size always is.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One entry's identity and state: (inode, mode, uid, gid, size, mtime s/ns, ctime s/ns).
type EntryState = (u64, u32, u32, u32, u64, i64, i64, i64, i64);

/// The state of a tree, by path relative to its top.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Fingerprint(BTreeMap<PathBuf, EntryState>);

impl Fingerprint {
    /// Reads the tree at `top` (symlinks not followed), leaving out `skip` (other mounts' targets
    /// inside it). An entry that cannot be read counts as absent, so a change to it shows.
    pub fn of(top: &Path, skip: &[PathBuf]) -> Fingerprint {
        let mut map = BTreeMap::new();
        for e in walk(top, skip) {
            let Ok(m) = e.path().symlink_metadata() else { continue };
            let rel = e.path().strip_prefix(top).unwrap_or(e.path()).to_path_buf();
            let state =
                (m.ino(), m.mode(), m.uid(), m.gid(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec());
            map.insert(rel, state);
        }
        Fingerprint(map)
    }

    /// The paths that differ between `self` (before) and `after`, `/`-rooted at the target, in
    /// order.
    pub fn changed(&self, after: &Fingerprint) -> Vec<String> {
        let mut out: Vec<&PathBuf> = Vec::new();
        for (p, s) in &self.0 {
            if after.0.get(p) != Some(s) {
                out.push(p);
            }
        }
        out.extend(after.0.keys().filter(|p| !self.0.contains_key(*p)));
        out.sort();
        out.dedup();
        out.into_iter().map(|p| if p.as_os_str().is_empty() { ".".into() } else { p.display().to_string() }).collect()
    }
}

/// The entries of the tree at `top`, without the subtrees at `skip`.
fn walk<'a>(top: &Path, skip: &'a [PathBuf]) -> impl Iterator<Item = walkdir::DirEntry> + 'a {
    walkdir::WalkDir::new(top)
        .follow_links(false)
        .into_iter()
        .filter_entry(move |e| !skip.iter().any(|s| e.path() == s))
        .filter_map(Result::ok)
}

/// Bytes the files under `top` hold, leaving out `skip` (a sparse file counts what it
/// allocated).
pub(super) fn bytes_used(top: &Path, skip: &[PathBuf]) -> u64 {
    walk(top, skip)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len().min(m.blocks() * 512))
        .sum()
}

/// What a breached read-only mount is reported as.
pub(super) fn read_only_breach(target: &Path, changed: &[String], is_cache: bool) -> String {
    const SHOWN: usize = 5;
    let mut list = changed.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if changed.len() > SHOWN {
        list.push_str(&format!(" and {} more", changed.len() - SHOWN));
    }
    format!(
        "the command wrote to {}, a read-only mount (changed: {list}): container isolation cannot mount it \
         read-only, so the write is refused once the command is done{}",
        target.display(),
        if is_cache { "; what it wrote to the cache is dropped" } else { "" }
    )
}

/// What a tmpfs over its size is reported as.
pub(super) fn size_breach(target: &Path, used: u64, size: u64) -> String {
    format!(
        "the command left {used} bytes in the tmpfs mount at {}, over its size={size}: a tmpfs of that size \
         would have refused the writes (container isolation has no tmpfs: the size is checked once the command \
         is done)",
        target.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn every_kind_of_write_changes_the_fingerprint() {
        let t = tempfile::tempdir().unwrap();
        let top = t.path().join("c");
        fs::create_dir_all(top.join("d")).unwrap();
        fs::write(top.join("d/f"), "one").unwrap();
        fs::write(top.join("g"), "two").unwrap();
        let before = Fingerprint::of(&top, &[]);
        assert!(before.changed(&Fingerprint::of(&top, &[])).is_empty(), "reading changes nothing");
        let _ = fs::read(top.join("d/f")).unwrap();
        assert!(before.changed(&Fingerprint::of(&top, &[])).is_empty());

        // Same size, same mtime forced back: the ctime still shows the write.
        let m = fs::metadata(top.join("d/f")).unwrap();
        fs::write(top.join("d/f"), "ONE").unwrap();
        let ts = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec { tv_sec: m.atime() as _, tv_nsec: m.atime_nsec() as _ },
            last_modification: rustix::fs::Timespec { tv_sec: m.mtime() as _, tv_nsec: m.mtime_nsec() as _ },
        };
        rustix::fs::utimensat(rustix::fs::CWD, top.join("d/f"), &ts, rustix::fs::AtFlags::empty()).unwrap();
        assert_eq!(before.changed(&Fingerprint::of(&top, &[])), ["d/f"]);

        let before = Fingerprint::of(&top, &[]);
        fs::remove_file(top.join("g")).unwrap();
        fs::write(top.join("new"), "").unwrap();
        assert_eq!(before.changed(&Fingerprint::of(&top, &[])), [".", "g", "new"]);

        let before = Fingerprint::of(&top, &[]);
        fs::set_permissions(top.join("d"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        assert_eq!(before.changed(&Fingerprint::of(&top, &[])), ["d"]);
    }

    #[test]
    fn bytes_are_what_the_files_hold() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("d")).unwrap();
        fs::write(t.path().join("d/a"), vec![7u8; 10_000]).unwrap();
        fs::write(t.path().join("b"), vec![7u8; 5_000]).unwrap();
        let sparse = fs::File::create(t.path().join("sparse")).unwrap();
        sparse.set_len(1 << 30).unwrap();
        assert_eq!(bytes_used(t.path(), &[]), 15_000);
        assert_eq!(bytes_used(t.path(), &[t.path().join("d")]), 5_000, "another mount's files are its own");
    }

    #[test]
    fn breaches_say_what_and_where() {
        let changed: Vec<String> = (0..7).map(|i| format!("f{i}")).collect();
        let m = read_only_breach(Path::new("/root/.cache/pip"), &changed, true);
        assert!(
            m.starts_with(
                "the command wrote to /root/.cache/pip, a read-only mount (changed: f0, f1, f2, f3, f4 and 2 more)"
            ),
            "{m}"
        );
        assert!(m.ends_with("what it wrote to the cache is dropped"), "{m}");
        let m = size_breach(Path::new("/tmp/t"), 2_000_000, 1_048_576);
        assert!(
            m.starts_with("the command left 2000000 bytes in the tmpfs mount at /tmp/t, over its size=1048576"),
            "{m}"
        );
    }
}
