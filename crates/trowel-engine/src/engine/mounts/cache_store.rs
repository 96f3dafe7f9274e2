//! Cache mounts (`RUN --mount=type=cache`) kept between builds, in the directory trowel owns
//! for them (`--mount-cache-dir`).
//!
//! One directory per cache: its id and what it starts from (empty; a directory with the
//! mount's mode and owner; another stage's or image's files) name it, as BuildKit keys a cache
//! on its id and its base. Inside it, instance `0` is the cache itself; `1`, `2`… are made for
//! `sharing=private` users that found the others busy (and reused later, like BuildKit's).
//!
//! ```text
//! <dir>/<sha256(id, base)[..32]>/id        the id, for people looking
//!                                /0  0.lock  the cache, and its lock
//!                                /1  1.lock  a private instance
//!                                create.lock  held while an instance is made
//! ```
//!
//! Sharing is an explicit `flock(2)` on the instance's lock file, held by the build for the
//! whole step, so it works between any processes on the machine (or on a volume the kernel can
//! lock) and a build killed with SIGKILL releases it with its descriptors:
//! - `shared` takes it shared: users share the directory with each other, and wait only while
//!   a `locked` or `private` user has it;
//! - `locked` takes it exclusively, waiting for every other user;
//! - `private` takes the first instance nobody holds, without waiting, or makes a new one.
//!
//! A new instance is made under a temporary name and renamed into place, so a build killed
//! while making one never leaves a half-made cache behind. An instance's lock file's time is
//! its last use; `trowel cache prune` removes an instance only while holding its lock
//! exclusively (so never one in use), which is why a user makes sure of it again once locked.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;

use crate::dockerfile::mount::Sharing;

/// The directory cache mounts persist in.
#[derive(Debug, Clone)]
pub(crate) struct CacheStore {
    dir: PathBuf,
}

/// A cache instance in use by this build; the lock is released when it is dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    /// The directory to mount.
    pub path: PathBuf,
    pub instance: usize,
    /// How long the build waited for another user to finish (`locked`, or `shared` behind one).
    pub waited: Option<Duration>,
    _lock: File,
}

impl CacheStore {
    pub fn new(dir: PathBuf) -> CacheStore {
        CacheStore { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes cache `id` (started from `base`, described by `base_key`) as `sharing` says.
    /// `seed` fills a fresh instance's directory; `waiting` is called once before blocking.
    pub fn acquire(
        &self,
        id: &str,
        base_key: &str,
        sharing: Sharing,
        seed: &dyn Fn(&Path) -> io::Result<()>,
        waiting: &mut dyn FnMut(),
    ) -> io::Result<Lease> {
        let cache = self.dir.join(entry_name(id, base_key));
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&cache)?;
        let id_file = cache.join("id");
        if !id_file.exists() {
            let _ = fs::write(&id_file, format!("{id}\n{base_key}\n"));
        }
        match sharing {
            Sharing::Shared | Sharing::Locked => {
                self.ensure_instance(&cache, 0, seed)?;
                let lock = open_lock(&cache, 0)?;
                let op =
                    if sharing == Sharing::Shared { FlockOperation::LockShared } else { FlockOperation::LockExclusive };
                let waited = lock_waiting(&lock, op, waiting)?;
                // A prune may have removed the instance before the lock was ours (it removes one
                // only while holding its lock exclusively): made again, empty or from its seed.
                self.ensure_instance(&cache, 0, seed)?;
                crate::cache::usage::touch(&cache.join("0.lock"));
                Ok(Lease { path: cache.join("0"), instance: 0, waited, _lock: lock })
            }
            Sharing::Private => {
                for n in 0.. {
                    let lock = open_lock(&cache, n)?;
                    match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
                        Ok(()) => {
                            // Made under its own exclusive lock: nobody else can be using it.
                            self.ensure_instance(&cache, n, seed)?;
                            crate::cache::usage::touch(&cache.join(format!("{n}.lock")));
                            return Ok(Lease {
                                path: cache.join(n.to_string()),
                                instance: n,
                                waited: None,
                                _lock: lock,
                            });
                        }
                        Err(rustix::io::Errno::WOULDBLOCK) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                unreachable!("the loop returns")
            }
        }
    }

    /// Makes instance `n` if it does not exist yet.
    fn ensure_instance(&self, cache: &Path, n: usize, seed: &dyn Fn(&Path) -> io::Result<()>) -> io::Result<()> {
        let dir = cache.join(n.to_string());
        if dir.is_dir() {
            return Ok(());
        }
        let create =
            OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(cache.join("create.lock"))?;
        rustix::fs::flock(&create, FlockOperation::LockExclusive)?;
        if dir.is_dir() {
            return Ok(());
        }
        let tmp = cache.join(format!(".new-{n}-{}", std::process::id()));
        crate::fs::remove::remove_tree(&tmp)?;
        // A seed that failed or was given up for a stop leaves no half-made directory in a
        // cache dir that outlives the build.
        if let Err(e) = seed(&tmp) {
            let _ = crate::fs::remove::remove_tree(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &dir)
    }
}

/// The directory name of a cache: its id and base, hashed (ids may hold any character).
fn entry_name(id: &str, base_key: &str) -> String {
    let d = crate::digest::Digest::of(format!("{id}\0{base_key}").as_bytes());
    d.hex()[..32].to_string()
}

fn open_lock(cache: &Path, n: usize) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(cache.join(format!("{n}.lock")))
}

/// Takes `op` on `lock`, calling `waiting` first if it would block; returns how long it waited.
fn lock_waiting(lock: &File, op: FlockOperation, waiting: &mut dyn FnMut()) -> io::Result<Option<Duration>> {
    let nonblocking = match op {
        FlockOperation::LockShared => FlockOperation::NonBlockingLockShared,
        _ => FlockOperation::NonBlockingLockExclusive,
    };
    match rustix::fs::flock(lock, nonblocking) {
        Ok(()) => return Ok(None),
        Err(rustix::io::Errno::WOULDBLOCK) => {}
        Err(e) => return Err(e.into()),
    }
    waiting();
    let t0 = Instant::now();
    loop {
        match rustix::fs::flock(lock, op) {
            Ok(()) => return Ok(Some(t0.elapsed())),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The usual seed: an empty directory with the mount's mode and owner (BuildKit: 0755, 0:0).
pub(crate) fn empty_dir(dir: &Path, mode: u32, uid: u32, gid: u32) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o700).create(dir)?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn seed(d: &Path) -> io::Result<()> {
        empty_dir(d, 0o755, 0, 0)
    }

    #[test]
    fn the_same_id_and_base_is_the_same_cache() {
        let t = tempfile::tempdir().unwrap();
        let store = CacheStore::new(t.path().to_path_buf());
        let a = store.acquire("/root/.cache/pip", "", Sharing::Shared, &seed, &mut || {}).unwrap();
        fs::write(a.path.join("wheel"), "x").unwrap();
        drop(a);
        let b = store.acquire("/root/.cache/pip", "", Sharing::Shared, &seed, &mut || {}).unwrap();
        assert!(b.path.join("wheel").exists());
        let other =
            store.acquire("/root/.cache/pip", "mkdir 0700 1000 1000", Sharing::Shared, &seed, &mut || {}).unwrap();
        assert_ne!(other.path, b.path, "another base is another cache");
    }

    #[test]
    fn shared_users_share_and_private_ones_get_their_own() {
        let t = tempfile::tempdir().unwrap();
        let store = CacheStore::new(t.path().to_path_buf());
        let a = store.acquire("c", "", Sharing::Shared, &seed, &mut || {}).unwrap();
        let b = store
            .acquire("c", "", Sharing::Shared, &seed, &mut || panic!("shared users never wait for each other"))
            .unwrap();
        assert_eq!(a.path, b.path);
        let p = store.acquire("c", "", Sharing::Private, &seed, &mut || {}).unwrap();
        assert_eq!(p.instance, 1, "instance 0 is in use");
        drop((a, b));
        let q = store.acquire("c", "", Sharing::Private, &seed, &mut || {}).unwrap();
        assert_eq!(q.instance, 0, "a free instance is reused");
    }

    #[test]
    fn locked_users_wait_for_each_other() {
        let t = tempfile::tempdir().unwrap();
        let store = Arc::new(CacheStore::new(t.path().to_path_buf()));
        let first = store.acquire("apt", "", Sharing::Locked, &seed, &mut || {}).unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let (s2, b2) = (store.clone(), barrier.clone());
        let waiter = std::thread::spawn(move || {
            let mut told = false;
            let lease = s2.acquire("apt", "", Sharing::Locked, &seed, &mut || {
                told = true;
                b2.wait();
            });
            (told, lease.unwrap().waited)
        });
        barrier.wait();
        std::thread::sleep(Duration::from_millis(200));
        drop(first);
        let (told, waited) = waiter.join().unwrap();
        assert!(told);
        assert!(waited.unwrap() >= Duration::from_millis(150), "{waited:?}");
    }
}
