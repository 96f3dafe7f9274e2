//! How builds and warms tell `trowel cache prune` what they are using, and when they last used
//! what: the cache dir's stores are shared by every build on the machine (or the volume), and a
//! prune must never take away what a running build reads, mounts or is writing.
//!
//! Two kinds of `flock(2)` locks, which the kernel drops when their holder dies however it dies
//! (so a killed build never keeps an entry from being pruned):
//! - the cache dir's *GC lock* (`<cache-dir>/.gc.lock`), held shared by a build or warm for the
//!   short windows in which it reads an entry and links its blobs, or writes blobs and then the
//!   entry naming them; a prune takes it exclusively only to delete blobs no entry names, so a
//!   blob is never deleted between an entry being read and its blobs being linked, nor between
//!   a blob being written and its entry;
//! - a *use lock* per unpacked-layer store entry (`<unpacked>/uses/<chain id hex>`), held shared
//!   by a build from before it looks the entry up (or makes it) until the build ends, since its
//!   roots are overlays with the entry as a lower directory. A prune removes an entry only with
//!   the entry's use lock held exclusively, and renames it away before letting go.
//!
//! A third kind says who is *making* an unpacked entry (`<unpacked>/making/<chain id hex>`), held
//! exclusively by a build from before it unpacks a missing layer into the store until the entry
//! is renamed into place: a second build that needs the same entry waits for it instead of
//! unpacking the same layer a second time (eight CI jobs starting on one node at once would
//! otherwise each write the whole base image). It is an economy, not a safety lock: entries
//! still appear only by an atomic rename that refuses to replace one, so a waiter that finds no
//! entry once the lock is free (its maker failed or was killed) makes it itself, and two makers
//! at once (a lock file removed between one's open and its lock) both succeed as before.
//!
//! Last use is the modification time of a marker, set on every use: the use lock for unpacked
//! entries, the entry file itself for base images and local layers (their recorded creation
//! times, which the TTL measures, are inside the files and do not change), the instance lock for
//! cache mounts. Setting a time is one system call; nothing is rewritten.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Timestamps};

/// The GC lock's name in the cache dir.
pub const GC_LOCK: &str = ".gc.lock";
/// The unpacked-layer store's directory of use locks.
pub const USES_DIR: &str = "uses";

fn open_lock(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).custom_flags(libc::O_CLOEXEC).open(path)
}

fn flock(f: &File, op: FlockOperation) -> io::Result<()> {
    loop {
        match rustix::fs::flock(f, op) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// Sets `path`'s times to now: its last use. Best effort (a read-only cache dir still serves).
pub fn touch(path: &Path) {
    let now = rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_NOW };
    let times = Timestamps { last_access: now, last_modification: now };
    let _ = rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::empty());
}

/// The GC lock held shared: no prune deletes unreferenced blobs while it is held. `None` for a
/// cache dir this process cannot write (kaniko's jobs often mount a warmed volume read-only):
/// the lock is then taken read-only if it exists, else not at all (nothing here can prune it).
pub fn gc_shared(cache_dir: &Path) -> io::Result<Option<File>> {
    let path = cache_dir.join(GC_LOCK);
    let f = match open_lock(&path) {
        Ok(f) => f,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EROFS | libc::EACCES | libc::EPERM)) => {
            match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    flock(&f, FlockOperation::LockShared)?;
    Ok(Some(f))
}

/// The GC lock held exclusively, waiting for readers and writers when `wait`; `None` when it
/// is busy and `wait` is false.
pub fn gc_exclusive(cache_dir: &Path, wait: bool) -> io::Result<Option<File>> {
    let f = open_lock(&cache_dir.join(GC_LOCK))?;
    let op = if wait { FlockOperation::LockExclusive } else { FlockOperation::NonBlockingLockExclusive };
    match flock(&f, op) {
        Ok(()) => Ok(Some(f)),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The unpacked-layer store's directory of making locks.
pub const MAKING_DIR: &str = "making";

/// The making lock of an unpacked-layer store entry, held: the entry is being made by this
/// process. Dropped, the lock file is removed (while still held, so it is never seen unlocked
/// by its maker's fault) and released, waking a build waiting for the entry.
#[derive(Debug)]
pub struct Making {
    path: PathBuf,
    file: File,
}

impl Drop for Making {
    fn drop(&mut self) {
        if still_at(&self.file, &self.path).unwrap_or(false) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Takes the making lock of entry `hex` of the store at `store_dir`, calling `waiting` once
/// first if another process holds it (and then waiting for it). The caller looks for the entry
/// again once this returns: the other process has made it, or has died or given up.
pub fn make_entry(store_dir: &Path, hex: &str, waiting: &mut dyn FnMut()) -> io::Result<Making> {
    let path = store_dir.join(MAKING_DIR).join(hex);
    let file = match open_lock(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(store_dir.join(MAKING_DIR))?;
            open_lock(&path)?
        }
        Err(e) => return Err(e),
    };
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
            waiting();
            flock(&file, FlockOperation::LockExclusive)?;
        }
        Err(e) => return Err(e),
    }
    Ok(Making { path, file })
}

/// Whether the making lock file at `path` is held by nobody (its maker was killed): for a
/// prune, which removes it.
pub fn making_abandoned(path: &Path) -> bool {
    File::open(path).is_ok_and(|f| rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok())
}

/// The use lock of an unpacked-layer store entry (store at `store_dir`, chain ID `hex`).
pub fn use_lock_path(store_dir: &Path, hex: &str) -> PathBuf {
    store_dir.join(USES_DIR).join(hex)
}

/// Whether `f` is still the file at `path` (a prune may have removed the lock file between
/// our open and our lock; a lock on a removed file protects nothing).
fn still_at(f: &File, path: &Path) -> io::Result<bool> {
    let held = f.metadata()?;
    Ok(std::fs::metadata(path).is_ok_and(|m| m.ino() == held.ino() && m.dev() == held.dev()))
}

/// Marks the entry `hex` of the store at `store_dir` in use by this build, and used now: the
/// returned lock is to be held for as long as anything may mount the entry. Taken before the
/// entry is looked up, so a prune that got there first has removed it by the time this
/// returns (and the build makes it again), and one that comes later leaves it alone.
pub fn use_entry(store_dir: &Path, hex: &str) -> io::Result<File> {
    let path = use_lock_path(store_dir, hex);
    loop {
        let f = match open_lock(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(store_dir.join(USES_DIR))?;
                open_lock(&path)?
            }
            Err(e) => return Err(e),
        };
        flock(&f, FlockOperation::LockShared)?;
        if still_at(&f, &path)? {
            touch(&path);
            return Ok(f);
        }
    }
}

/// For a prune: the use lock of entry `hex` held exclusively, or `None` when a build is using
/// the entry. While it is held no build can start using the entry.
pub fn claim_entry(store_dir: &Path, hex: &str) -> io::Result<Option<File>> {
    let path = use_lock_path(store_dir, hex);
    std::fs::create_dir_all(store_dir.join(USES_DIR))?;
    let f = open_lock(&path)?;
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) if still_at(&f, &path)? => Ok(Some(f)),
        // Replaced while we opened it: someone else's prune removed it; leave the entry be.
        Ok(()) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_in_use_cannot_be_claimed_and_a_claimed_one_waits() {
        let t = tempfile::tempdir().unwrap();
        let hex = "ab".repeat(32);
        let held = use_entry(t.path(), &hex).unwrap();
        assert!(claim_entry(t.path(), &hex).unwrap().is_none(), "claimed while in use");
        drop(held);
        let claim = claim_entry(t.path(), &hex).unwrap().expect("free once released");
        // A prune removes the lock file while it holds it; a build then locks a new one.
        std::fs::remove_file(use_lock_path(t.path(), &hex)).unwrap();
        drop(claim);
        let again = use_entry(t.path(), &hex).unwrap();
        assert!(still_at(&again, &use_lock_path(t.path(), &hex)).unwrap());
    }

    #[test]
    fn a_second_maker_waits_for_the_first_and_a_dead_one_blocks_nobody() {
        let t = tempfile::tempdir().unwrap();
        let hex = "cd".repeat(32);
        let first = make_entry(t.path(), &hex, &mut || panic!("nobody else makes it")).unwrap();
        let lock_path = t.path().join(MAKING_DIR).join(&hex);
        assert!(!making_abandoned(&lock_path));
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = t.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let h = "cd".repeat(32);
            make_entry(&dir, &h, &mut || tx.send(()).unwrap()).unwrap()
        });
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the second maker never waited");
        drop(first);
        let second = waiter.join().unwrap();
        drop(second);
        assert!(!lock_path.exists(), "a maker left its lock file");
        // A maker that died: its file stays, unlocked; the next one takes it at once.
        drop(open_lock(&lock_path).unwrap());
        assert!(making_abandoned(&lock_path));
        make_entry(t.path(), &hex, &mut || panic!("waited for a dead maker")).unwrap();
    }

    #[test]
    fn the_gc_lock_excludes_readers() {
        let t = tempfile::tempdir().unwrap();
        let reader = gc_shared(t.path()).unwrap();
        assert!(gc_exclusive(t.path(), false).unwrap().is_none());
        drop(reader);
        assert!(gc_exclusive(t.path(), false).unwrap().is_some());
    }
}
