//! The checked-out tree: bounded before it is written (blob sizes from `ls-tree`), then
//! measured again with what submodules added, given the modes git makes under umask 022 and,
//! with `?mtime=commit`, the commit's time — all through a confined [`Root`], never following
//! a symlink of the repository's.

use std::path::Path;

use super::cli::Git;
use super::{GitError, Limits};
use crate::fs::{FileType, Root, Timespec};

/// Refuses a commit whose files (submodules aside: they are not in this repository) hold a
/// blob larger than `--max-file-size`, or more than `--max-layer-size` in all, before a byte of
/// it is checked out.
pub(crate) fn check_blob_sizes(git: &Git<'_>, commit: &str, limits: Limits) -> Result<(), GitError> {
    if limits.max_file_size.is_none() && limits.max_total_size.is_none() {
        return Ok(());
    }
    let out = git.run("ls-tree", &["ls-tree", "-r", "-l", "-z", commit])?;
    let mut total: u64 = 0;
    for entry in out.split('\0').filter(|e| !e.is_empty()) {
        // `<mode> SP <type> SP <object> SP+ <size> TAB <path>`; submodules have size `-`.
        let Some((meta, path)) = entry.split_once('\t') else { continue };
        let Some(size) = meta.split_whitespace().nth(3).and_then(|s| s.parse::<u64>().ok()) else { continue };
        if let Some(limit) = limits.max_file_size
            && size > limit
        {
            return Err(GitError::FileTooLarge { path: path.to_string(), size, limit });
        }
        total = total.saturating_add(size);
        if let Some(limit) = limits.max_total_size
            && total > limit
        {
            return Err(GitError::TooLarge { what: format!("the files of commit {commit}"), size: total, limit });
        }
    }
    Ok(())
}

/// The permission bits git gives a file it created, had it run under umask 022 as BuildKit
/// runs it: git asks for 0666, 0777 or 0444 (objects), so the owner's bits say which, and
/// whatever umask trowel runs under does not leak into the image.
fn umask_022(mode: u32) -> u32 {
    let owner = (mode >> 6) & 0o7;
    ((owner << 6) | (owner << 3) | owner) & !0o022
}

/// The commit time of `commit` (seconds), what `?mtime=commit` and a git context built with
/// `SOURCE_DATE_EPOCH` give every file of the checkout.
pub(crate) fn commit_time(git: &Git<'_>, commit: &str) -> Result<i64, GitError> {
    let t = git.run("log", &["log", "-1", "--format=%ct", commit])?;
    t.trim().parse::<i64>().map_err(|_| GitError::Invalid(format!("commit time {t:?}")))
}

/// Walks the checkout: checks every file against the limits (submodules' included), sets modes
/// as git under umask 022 makes them and, when given, every time to `mtime`.
pub(crate) fn finish(
    dir: &Path,
    limits: Limits,
    mtime: Option<i64>,
    cancel: Option<&crate::fs::Cancel>,
) -> Result<(), GitError> {
    let root = Root::open(dir).map_err(fs("open the checkout"))?;
    let mut total: u64 = 0;
    // Directories' times are set after their contents (which change them).
    let mut dirs: Vec<String> = Vec::new();
    walk(&root, "/", &mut |path, st| {
        // A checkout of many files walked on a stop: given up as its git would be.
        crate::fs::Cancel::check(cancel).map_err(|_| GitError::Cancelled { what: "checkout's walk".into() })?;
        if st.file_type == FileType::File {
            if let Some(limit) = limits.max_file_size
                && st.size > limit
            {
                return Err(GitError::FileTooLarge { path: path.trim_start_matches('/').into(), size: st.size, limit });
            }
            total = total.saturating_add(st.size);
            if let Some(limit) = limits.max_total_size
                && total > limit
            {
                return Err(GitError::TooLarge { what: "the checkout".into(), size: total, limit });
            }
        }
        if st.file_type != FileType::Symlink {
            root.set_mode(path, umask_022(st.mode)).map_err(fs(format!("chmod {path}")))?;
        }
        if let Some(t) = mtime {
            if st.file_type == FileType::Dir {
                dirs.push(path.to_string());
            } else {
                let ts = Timespec::new(t, 0);
                root.set_times(path, ts, ts).map_err(fs(format!("set times of {path}")))?;
            }
        }
        Ok(())
    })?;
    if let Some(t) = mtime {
        let ts = Timespec::new(t, 0);
        for d in dirs.iter().rev() {
            root.set_times(d, ts, ts).map_err(fs(format!("set times of {d}")))?;
        }
    }
    Ok(())
}

/// Visits every path below `dir` (not `dir` itself unless it is `/`), parents first.
fn walk(
    root: &Root,
    dir: &str,
    f: &mut dyn FnMut(&str, &crate::fs::Stat) -> Result<(), GitError>,
) -> Result<(), GitError> {
    if dir == "/" {
        let st = root.lstat("/").map_err(fs("stat the checkout"))?.ok_or_else(|| GitError::Invalid("empty".into()))?;
        f("/", &st)?;
    }
    for name in root.read_dir(dir).map_err(fs(format!("list {dir}")))? {
        let path = if dir == "/" { format!("/{name}") } else { format!("{dir}/{name}") };
        let Some(st) = root.lstat(&path).map_err(fs(format!("stat {path}")))? else { continue };
        f(&path, &st)?;
        if st.is_dir() {
            walk(root, &path, f)?;
        }
    }
    Ok(())
}

/// Checks that `subdir` is a directory of the checkout reached through directories only (a
/// symlink on the way could lead anywhere), and returns it as a path relative to the checkout.
pub(crate) fn check_subdir(dir: &Path, subdir: &str) -> Result<String, GitError> {
    let root = Root::open(dir).map_err(fs("open the checkout"))?;
    let mut p = String::new();
    for part in subdir.split('/').filter(|c| !c.is_empty()) {
        p = if p.is_empty() { part.to_string() } else { format!("{p}/{part}") };
        let bad = |reason: String| GitError::Subdir { subdir: subdir.to_string(), reason };
        match root.lstat(&p).map_err(fs(format!("stat {p}")))? {
            None => return Err(bad(format!("{p} does not exist in the repository"))),
            Some(st) if !st.is_dir() => return Err(bad(format!("{p} is not a directory ({})", st.file_type.noun()))),
            Some(_) => {}
        }
    }
    Ok(p)
}

fn fs(what: impl Into<String>) -> impl FnOnce(crate::fs::FsError) -> GitError {
    let what = what.into();
    move |source| GitError::Fs { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_those_of_umask_022() {
        assert_eq!(umask_022(0o644), 0o644);
        assert_eq!(umask_022(0o600), 0o644);
        assert_eq!(umask_022(0o755), 0o755);
        assert_eq!(umask_022(0o700), 0o755);
        assert_eq!(umask_022(0o444), 0o444);
        assert_eq!(umask_022(0o400), 0o444);
        assert_eq!(umask_022(0o664), 0o644);
    }

    /// A stop during the walk of a finished checkout gives it up at the next entry, as its git
    /// is killed; without one the walk sets every mode.
    #[test]
    fn a_stop_gives_up_the_checkouts_walk() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        for i in 0..50 {
            std::fs::write(d.path().join(format!("f{i}")), "x").unwrap();
            std::fs::set_permissions(d.path().join(format!("f{i}")), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let limits = Limits { max_file_size: None, max_total_size: None };
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let looks = seen.clone();
        // Asked at the third look (the checkout's top is the first entry): the rest left as they
        // were.
        let stop = crate::fs::Cancel::new(move || looks.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 2);
        let err = finish(d.path(), limits, None, Some(&stop)).unwrap_err();
        assert!(matches!(err, GitError::Cancelled { .. }), "{err}");
        let mode = |i: usize| std::fs::metadata(d.path().join(format!("f{i}"))).unwrap().permissions().mode() & 0o777;
        let done = (0..50).filter(|i| mode(*i) == 0o644).count();
        assert!((1..50).contains(&done), "{done} files' modes set");
        finish(d.path(), limits, None, None).unwrap();
        assert!((0..50).all(|i| mode(i) == 0o644));
    }

    #[test]
    fn subdirs_are_directories_all_the_way() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink("a", d.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("out")).unwrap();
        assert_eq!(check_subdir(d.path(), "a/b").unwrap(), "a/b");
        for (s, why) in [
            ("link/b", "link is not a directory (a symlink)"),
            ("out", "out is not a directory (a symlink)"),
            ("f", "f is not a directory (a regular file)"),
            ("a/c", "a/c does not exist in the repository"),
        ] {
            assert_eq!(check_subdir(d.path(), s).unwrap_err().to_string(), format!("invalid subdir {s}: {why}"));
        }
    }

    #[test]
    fn the_checkout_is_bounded_and_normalised() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/x"), vec![b'x'; 100]).unwrap();
        std::fs::write(d.path().join("y"), vec![b'y'; 50]).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.path().join("y"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("l")).unwrap();
        let e = finish(d.path(), Limits { max_file_size: Some(99), max_total_size: None }, None, None).unwrap_err();
        assert_eq!(e.to_string(), "file sub/x of the repository is too large: 100 bytes (limit 99, --max-file-size)");
        let e = finish(d.path(), Limits { max_file_size: None, max_total_size: Some(149) }, None, None).unwrap_err();
        assert!(e.to_string().starts_with("the checkout: 150 bytes exceed the 149-byte limit"), "{e}");
        finish(d.path(), Limits::default(), Some(1_000_000), None).unwrap();
        let m = std::fs::metadata(d.path().join("y")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o755);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(m.mtime(), 1_000_000);
        assert_eq!(std::fs::metadata(d.path().join("sub")).unwrap().mtime(), 1_000_000);
        assert_eq!(std::fs::symlink_metadata(d.path().join("l")).unwrap().mtime(), 1_000_000);
        // The symlink was not followed.
        assert_ne!(std::fs::metadata("/etc/passwd").unwrap().mtime(), 1_000_000);
    }
}
