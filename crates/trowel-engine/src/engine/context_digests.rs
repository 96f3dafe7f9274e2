//! The content digests of build-context files, hashed once per build — and, with a usable
//! `--cache-dir`, not again in the next build while a file is unchanged.
//!
//! Cache keys of COPY and ADD (and of RUN's bind mounts from the context) cover every source
//! file's content. In a build for several platforms each platform's `COPY . /app` keys the
//! same files, and a Dockerfile may copy one tree twice; reading a large context once per step
//! would make that work grow with the number of platforms. A digest is remembered with the
//! stat it was read at and used again only while the file still has that stat: a file changed
//! during the build is read again.
//!
//! Between builds the memo persists in `<cache-dir>/context-digests/<hash of the context's
//! path>`, so that an unchanged rebuild reads no context file at all. A file counts as
//! unchanged by what git's index uses: device, inode, size, modification and change times in
//! nanoseconds, and mode. Git's "racily clean" rule applies: a file whose modification or change
//! time is not older than when its digest was computed (less [`RACY_SLACK`], for file systems
//! whose clock ticks coarsely) could have been written again within the same clock tick without
//! its stat changing, so its digest is never persisted and it is read again next time.
//!
//! The file is bounded ([`MAX_ENTRIES`] files per context, [`MAX_CONTEXTS`] contexts), ends
//! with the SHA-256 of what precedes it (a torn or flipped file is ignored, never used), and is
//! replaced by an atomic rename of a synced temporary file; two builds of one context at once
//! each merge what is on disk with their own and the last rename wins, losing at worst some
//! entries (which only costs reading those files again).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::digest::Digest;
use crate::fs::Stat;

/// What tells a file's content has not changed since it was hashed: device, inode, size,
/// mtime and ctime (seconds, nanoseconds), mode. The ctime is what makes it sound: any write,
/// rename, chmod or xattr change sets it to now, and no user can set it back (`touch -d` sets
/// the mtime only, and changes the ctime too).
pub(crate) type Identity = (u64, u64, u64, i64, u32, i64, u32, u32);

/// A file's [`Identity`] from its stat (an lstat, or an fstat of the file opened).
pub(crate) fn identity(st: &Stat) -> Identity {
    (st.dev, st.ino, st.size, st.mtime.sec, st.mtime.nsec, st.ctime.sec, st.ctime.nsec, st.mode)
}

/// A file changed this close to (or after) the moment its digest was computed is "racily
/// clean": its stat may not show a change made in the same tick of the file system's clock.
pub const RACY_SLACK: Duration = Duration::from_secs(1);
/// Files remembered per context: a context with more keeps those this build used.
pub const MAX_ENTRIES: usize = 200_000;
/// Contexts remembered per cache dir: the least recently saved go first.
pub const MAX_CONTEXTS: usize = 32;
/// The directory of memo files under the cache dir.
pub const DIR: &str = "context-digests";
const HEADER: &str = "trowel-context-digests 1";
/// A memo file larger than this is not a memo trowel wrote (about 200 bytes per entry).
const MAX_FILE: u64 = 256 << 20;

/// Kept small (96 bytes; a `Digest` and an `i128` made it 144): a context of 100,000 files has
/// as many.
#[derive(Clone)]
struct Memo {
    id: Identity,
    /// The content's SHA-256.
    sum: [u8; 32],
    /// When the digest was computed, in nanoseconds since the epoch.
    hashed_at: i64,
    /// Hashed in this build, or looked up by it (kept first when the file is bounded).
    used: bool,
}

#[derive(Default)]
pub(crate) struct ContextDigests {
    seen: Mutex<HashMap<String, Memo>>,
    /// Where the memo persists (with a usable cache dir), and the context it is for.
    file: Option<(PathBuf, String)>,
}

impl ContextDigests {
    /// The memo of the context at `context`, persisted in `cache_dir`: what earlier builds
    /// saved (nothing when the file is missing or unusable).
    pub fn load(cache_dir: &Path, context: &Path) -> ContextDigests {
        let name = fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf()).display().to_string();
        let file = cache_dir.join(DIR).join(&Digest::of(name.as_bytes()).hex()[..32]);
        let seen = read_file(&file, &name).unwrap_or_default();
        ContextDigests { seen: Mutex::new(seen), file: Some((file, name)) }
    }

    /// The digest of `path` (whose stat is `st`): remembered, or computed by `hash`.
    pub fn get_or_hash<E>(&self, path: &str, st: &Stat, hash: impl FnOnce() -> Result<Digest, E>) -> Result<Digest, E> {
        let id = identity(st);
        if let Some(m) = self.seen.lock().unwrap_or_else(|p| p.into_inner()).get_mut(path)
            && m.id == id
        {
            m.used = true;
            return Ok(Digest::from_sha256(&m.sum));
        }
        let hashed_at = now_ns();
        let digest = hash()?;
        let memo = Memo { id, sum: digest.sha256(), hashed_at, used: true };
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_string(), memo);
        Ok(digest)
    }

    /// Saves the memo for the next build (when it persists and this build hashed anything),
    /// merged with what another build may have saved since this one loaded it. Failures only
    /// cost the next build reading the files again: they are returned for a warning.
    pub fn save(&self) -> io::Result<()> {
        let Some((file, name)) = &self.file else { return Ok(()) };
        let ours = self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let on_disk = read_file(file, name).unwrap_or_default();
        let fresh = |path: &String, m: &Memo| on_disk.get(path).is_none_or(|d| d.id != m.id || d.sum != m.sum);
        if !ours.iter().any(|(p, m)| m.used && !racy(m) && fresh(p, m)) {
            return Ok(());
        }
        let mut merged: Vec<(String, Memo)> = ours.into_iter().filter(|(_, m)| !racy(m)).collect();
        let ours_len = merged.len();
        let known: std::collections::HashSet<String> = merged.iter().map(|(p, _)| p.clone()).collect();
        merged.extend(on_disk.into_iter().filter(|(p, _)| !known.contains(p)));
        // Bounded: what this build used first, then the rest of this build's, then the other's.
        merged[..ours_len].sort_by_key(|(_, m)| !m.used);
        merged.truncate(MAX_ENTRIES);
        let dir = file.parent().expect("memo files are in a directory");
        fs::create_dir_all(dir)?;
        write_file(dir, file, name, &merged)?;
        crate::cache::sealed::keep_newest(dir, MAX_CONTEXTS);
        Ok(())
    }
}

/// Nanoseconds since the epoch (an `i64` lasts until 2262).
fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

fn ns(sec: i64, nsec: u32) -> i128 {
    sec as i128 * 1_000_000_000 + nsec as i128
}

/// Git's racily clean rule: the file changed no earlier than (a clock tick before) its hash.
fn racy(m: &Memo) -> bool {
    let (_, _, _, msec, mnsec, csec, cnsec, _) = m.id;
    let limit = m.hashed_at as i128 - RACY_SLACK.as_nanos() as i128;
    ns(msec, mnsec) >= limit || ns(csec, cnsec) >= limit
}

/// One line per file: `dev ino size msec mnsec csec cnsec mode hashed_at digest<TAB>path`.
fn line(path: &str, m: &Memo) -> String {
    let (dev, ino, size, ms, mn, cs, cn, mode) = m.id;
    let digest = Digest::from_sha256(&m.sum);
    format!("{dev} {ino} {size} {ms} {mn} {cs} {cn} {mode} {} {digest}\t{path}\n", m.hashed_at)
}

fn parse_line(l: &str) -> Option<(String, Memo)> {
    let (fields, path) = l.split_once('\t')?;
    let f: Vec<&str> = fields.split(' ').collect();
    let [dev, ino, size, ms, mn, cs, cn, mode, at, digest] = f.as_slice() else { return None };
    let id = (
        dev.parse().ok()?,
        ino.parse().ok()?,
        size.parse().ok()?,
        ms.parse().ok()?,
        mn.parse().ok()?,
        cs.parse().ok()?,
        cn.parse().ok()?,
        mode.parse().ok()?,
    );
    let sum = digest.parse::<Digest>().ok()?.sha256();
    let memo = Memo { id, sum, hashed_at: at.parse().ok()?, used: false };
    Some((path.to_string(), memo))
}

/// Reads a memo file for the context `name`: `None` when it is missing, for another context
/// (a hash collision), torn or corrupt. Racily clean entries are left out.
fn read_file(file: &Path, name: &str) -> Option<HashMap<String, Memo>> {
    let body = crate::cache::sealed::read(file, MAX_FILE)?;
    let mut lines = body.lines();
    if lines.next()? != format!("{HEADER}\t{name}") {
        return None;
    }
    Some(lines.filter_map(parse_line).filter(|(_, m)| !racy(m)).collect())
}

/// For `trowel cache check`: whether the memo file at `file` is whole (its trailer matches,
/// and it names its context).
pub(crate) fn file_is_intact(file: &Path) -> bool {
    let body = crate::cache::sealed::read(file, MAX_FILE);
    let name = body.as_deref().and_then(|b| b.lines().next()).and_then(|l| l.strip_prefix(&format!("{HEADER}\t")));
    name.is_some_and(|n| read_file(file, n).is_some())
}

/// Writes a memo file atomically (`cache/sealed.rs`).
fn write_file(dir: &Path, file: &Path, name: &str, entries: &[(String, Memo)]) -> io::Result<()> {
    let mut body = format!("{HEADER}\t{name}\n");
    // A path with a newline cannot be written on one line: it is read again next time.
    for (p, m) in entries.iter().filter(|(p, _)| !p.contains('\n')) {
        body.push_str(&line(p, m));
    }
    crate::cache::sealed::write(dir, file, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::root::Root;
    use std::cell::Cell;
    use std::fs::File;

    fn digest_of(memo: &ContextDigests, root: &Root, dir: &Path, name: &str, hashes: &Cell<usize>) -> Digest {
        let st = root.lstat(name).unwrap().unwrap();
        memo.get_or_hash(name, &st, || {
            hashes.set(hashes.get() + 1);
            Ok::<_, io::Error>(Digest::of(&fs::read(dir.join(name))?))
        })
        .unwrap()
    }

    /// Sets a file's times into the past without touching its content. Its ctime stays now,
    /// so the memo's racy rule still applies to it unless the test waits.
    fn age(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
    }

    #[test]
    fn a_file_is_hashed_once_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "one").unwrap();
        let root = Root::open(dir.path()).unwrap();
        let memo = ContextDigests::default();
        let hashes = Cell::new(0);
        let first = digest_of(&memo, &root, dir.path(), "a", &hashes);
        assert_eq!(digest_of(&memo, &root, dir.path(), "a", &hashes), first);
        assert_eq!(hashes.get(), 1);
        // Changed content (and so its stat): read again.
        fs::write(dir.path().join("a"), "two, longer").unwrap();
        let second = digest_of(&memo, &root, dir.path(), "a", &hashes);
        assert_ne!(second, first);
        assert_eq!(second, Digest::of(b"two, longer"));
        assert_eq!(hashes.get(), 2);
    }

    #[test]
    fn the_next_build_reads_only_files_that_changed_or_were_racily_clean() {
        let ctx = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        for f in ["old", "edited", "fresh"] {
            fs::write(ctx.path().join(f), f).unwrap();
            age(&ctx.path().join(f));
        }
        // "old" and "edited" last changed (ctime) well before they are hashed; "fresh" is
        // rewritten just before, within the racy window.
        std::thread::sleep(RACY_SLACK + Duration::from_millis(100));
        fs::write(ctx.path().join("fresh"), "FRESH").unwrap();
        let root = Root::open(ctx.path()).unwrap();
        let hashes = Cell::new(0);
        let first = ContextDigests::load(cache.path(), ctx.path());
        for f in ["old", "edited", "fresh"] {
            digest_of(&first, &root, ctx.path(), f, &hashes);
        }
        assert_eq!(hashes.get(), 3);
        first.save().unwrap();

        fs::write(ctx.path().join("edited"), "EDITED").unwrap();
        let second = ContextDigests::load(cache.path(), ctx.path());
        hashes.set(0);
        assert_eq!(digest_of(&second, &root, ctx.path(), "old", &hashes), Digest::of(b"old"));
        assert_eq!(hashes.get(), 0, "an unchanged file is not read");
        assert_eq!(digest_of(&second, &root, ctx.path(), "edited", &hashes), Digest::of(b"EDITED"));
        assert_eq!(digest_of(&second, &root, ctx.path(), "fresh", &hashes), Digest::of(b"FRESH"));
        assert_eq!(hashes.get(), 2, "the edited and the racily clean file are read again");
    }

    #[test]
    fn a_corrupt_or_foreign_memo_is_ignored() {
        let ctx = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        fs::write(ctx.path().join("a"), "a").unwrap();
        std::thread::sleep(RACY_SLACK + Duration::from_millis(100));
        let root = Root::open(ctx.path()).unwrap();
        let hashes = Cell::new(0);
        let memo = ContextDigests::load(cache.path(), ctx.path());
        digest_of(&memo, &root, ctx.path(), "a", &hashes);
        memo.save().unwrap();
        let (file, _) = memo.file.clone().unwrap();
        // A digest changed on disk (a flipped bit): the checksum refuses the whole file.
        let text = fs::read_to_string(&file).unwrap();
        let bad = Digest::of(b"not a").hex().to_string();
        fs::write(&file, text.replace(Digest::of(b"a").hex(), &bad)).unwrap();
        let again = ContextDigests::load(cache.path(), ctx.path());
        hashes.set(0);
        assert_eq!(digest_of(&again, &root, ctx.path(), "a", &hashes), Digest::of(b"a"));
        assert_eq!(hashes.get(), 1);
    }

    #[test]
    fn two_builds_saving_at_once_keep_both_their_files() {
        let ctx = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        fs::write(ctx.path().join("a"), "a").unwrap();
        fs::write(ctx.path().join("b"), "b").unwrap();
        std::thread::sleep(RACY_SLACK + Duration::from_millis(100));
        let root = Root::open(ctx.path()).unwrap();
        let hashes = Cell::new(0);
        let one = ContextDigests::load(cache.path(), ctx.path());
        let two = ContextDigests::load(cache.path(), ctx.path());
        digest_of(&one, &root, ctx.path(), "a", &hashes);
        digest_of(&two, &root, ctx.path(), "b", &hashes);
        one.save().unwrap();
        two.save().unwrap();
        let third = ContextDigests::load(cache.path(), ctx.path());
        hashes.set(0);
        digest_of(&third, &root, ctx.path(), "a", &hashes);
        digest_of(&third, &root, ctx.path(), "b", &hashes);
        assert_eq!(hashes.get(), 0);
    }
}
