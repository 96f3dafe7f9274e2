//! Small files of facts trowel derived once and keeps under the cache dir to save work in a
//! later build (context files' digests, layer listings): each is used whole or not at all.
//!
//! A file ends with `end <SHA-256 of everything before>`, so one cut short (a crash before the
//! data reached the disk) or changed by anything else is ignored, never half-used; losing one
//! only costs the work it saved. It appears by an atomic rename of a synced temporary file
//! (`.tmp-*`), so two builds writing one at once leave one of the two, whole.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::digest::Digest;

/// Temporaries an interrupted write left are removed once this old (a younger one may belong
/// to a writer still running).
const STALE_TMP: Duration = Duration::from_secs(3600);

/// Writes `body` (which ends with a newline) and its trailer to `file` in `dir`, atomically.
pub(crate) fn write(dir: &Path, file: &Path, body: &str) -> io::Result<()> {
    debug_assert!(body.ends_with('\n'));
    let trailer = format!("end {}\n", Digest::of(body.as_bytes()).hex());
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(body.as_bytes())?;
    tmp.write_all(trailer.as_bytes())?;
    tmp.as_file().sync_data()?;
    tmp.persist(file).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

/// The body of `file` when it is whole (its trailer matches) and at most `max` bytes; `None`
/// when it is missing, larger, torn or changed.
pub(crate) fn read(file: &Path, max: u64) -> Option<String> {
    let mut text = String::new();
    File::open(file).ok()?.take(max + 1).read_to_string(&mut text).ok()?;
    if text.len() as u64 > max {
        return None;
    }
    let body_end = text.trim_end_matches('\n').rfind('\n')? + 1;
    let trailer = text.split_off(body_end);
    (trailer.trim_end() == format!("end {}", Digest::of(text.as_bytes()).hex())).then_some(text)
}

/// Keeps the `keep` most recently modified files of `dir`, and removes temporaries an
/// interrupted write left an hour ago or more. Best effort.
pub(crate) fn keep_newest(dir: &Path, keep: usize) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut files: Vec<(SystemTime, PathBuf, bool)> = rd
        .flatten()
        .filter_map(|e| {
            let t = e.metadata().ok()?.modified().ok()?;
            Some((t, e.path(), e.file_name().to_string_lossy().starts_with(".tmp-")))
        })
        .collect();
    for (t, p, _) in files.iter().filter(|(_, _, tmp)| *tmp) {
        if t.elapsed().is_ok_and(|a| a > STALE_TMP) {
            let _ = fs::remove_file(p);
        }
    }
    files.retain(|(_, _, tmp)| !tmp);
    if files.len() <= keep {
        return;
    }
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    for (_, p, _) in files.into_iter().skip(keep) {
        let _ = fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        write(dir.path(), &file, "head\nbody line\n").unwrap();
        assert_eq!(read(&file, 1 << 20).as_deref(), Some("head\nbody line\n"));
        assert_eq!(read(&file, 10), None, "larger than allowed");
        let text = fs::read_to_string(&file).unwrap();
        // Cut short, as a crash before the data reached the disk leaves it; or changed.
        fs::write(&file, &text[..text.len() - 20]).unwrap();
        assert_eq!(read(&file, 1 << 20), None);
        fs::write(&file, text.replace("body", "bodY")).unwrap();
        assert_eq!(read(&file, 1 << 20), None);
        assert_eq!(read(&dir.path().join("missing"), 1 << 20), None);
        let names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["f"], "no temporary is left");
    }

    #[test]
    fn only_the_newest_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        for (i, name) in ["a", "b", "c", ".tmp-old", ".tmp-new"].iter().enumerate() {
            let p = dir.path().join(name);
            fs::write(&p, "x").unwrap();
            let age = if *name == ".tmp-old" { 7200 } else { i as u64 * 10 };
            File::options().write(true).open(&p).unwrap().set_modified(now - Duration::from_secs(age)).unwrap();
        }
        keep_newest(dir.path(), 2);
        let mut names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, [".tmp-new", "a", "b"]);
    }
}
