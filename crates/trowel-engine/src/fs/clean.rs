//! Emptying a root except for ignored paths: what container isolation does to `/` before it
//! unpacks a stage's base image there (and between stages), as kaniko does. The ignored paths
//! (the container runtime's mounts, trowel's own directory, the cache) and the directories
//! leading to them are kept; everything else goes.

use super::{FsError, IgnoreList, Root, path};

/// Removes everything below `dir` in `root` that is neither ignored nor an ancestor of an
/// ignored path. Returns how many entries were removed.
pub fn clean_root(root: &Root, dir: &str, keep: &IgnoreList) -> Result<u64, FsError> {
    let mut removed = 0;
    for name in root.read_dir(dir)? {
        let p = path::join(dir, &name);
        if keep.is_ignored(&p) {
            continue;
        }
        if keep.has_ignored_below(&p) && root.lstat(&p)?.is_some_and(|s| s.is_dir()) {
            removed += clean_root(root, &p, keep)?;
            continue;
        }
        root.remove_all(&p)?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_ignored_paths_and_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        let h = |p: &str| dir.path().join(p);
        for d in ["keep/inner", "etc/ssl", "var/run/secrets/k8s", "gone/deep"] {
            std::fs::create_dir_all(h(d)).unwrap();
        }
        for f in ["keep/inner/f", "etc/passwd", "etc/hosts", "var/run/secrets/k8s/token", "gone/deep/x", "top"] {
            std::fs::write(h(f), b"x").unwrap();
        }
        std::os::unix::fs::symlink("/keep", h("link-to-keep")).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let keep = IgnoreList::new(["/keep", "/etc/hosts", "/var/run/secrets"]);
        clean_root(&root, "/", &keep).unwrap();
        let mut left: Vec<String> = walkdir::WalkDir::new(dir.path())
            .into_iter()
            .map(|e| e.unwrap().path().strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "",
                "etc",
                "etc/hosts",
                "keep",
                "keep/inner",
                "keep/inner/f",
                "var",
                "var/run",
                "var/run/secrets",
                "var/run/secrets/k8s",
                "var/run/secrets/k8s/token"
            ]
        );
    }
}
