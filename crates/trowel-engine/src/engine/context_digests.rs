//! The content digests of build-context files, hashed once per build.
//!
//! Cache keys of COPY and ADD (and of RUN's bind mounts from the context) cover every source
//! file's content. In a build for several platforms each platform's `COPY . /app` keys the
//! same files, and a Dockerfile may copy one tree twice; reading a large context once per step
//! would make that work grow with the number of platforms. A digest is remembered with the
//! stat it was read at (device, inode, size, modification and change times) and used again
//! only while the file still has that stat: a file changed during the build is read again.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::digest::Digest;
use crate::fs::Stat;

/// What tells a file's content has not changed since it was hashed.
type Identity = (u64, u64, u64, i64, u32, i64, u32);

#[derive(Default)]
pub(crate) struct ContextDigests {
    seen: Mutex<HashMap<String, (Identity, Digest)>>,
}

impl ContextDigests {
    /// The digest of `path` (whose stat is `st`): remembered, or computed by `hash`.
    pub fn get_or_hash<E>(&self, path: &str, st: &Stat, hash: impl FnOnce() -> Result<Digest, E>) -> Result<Digest, E> {
        let id = (st.dev, st.ino, st.size, st.mtime.sec, st.mtime.nsec, st.ctime.sec, st.ctime.nsec);
        if let Some((seen, d)) = self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(path)
            && *seen == id
        {
            return Ok(d.clone());
        }
        let d = hash()?;
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_string(), (id, d.clone()));
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::root::Root;

    #[test]
    fn a_file_is_hashed_once_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "one").unwrap();
        let root = Root::open(dir.path()).unwrap();
        let memo = ContextDigests::default();
        let hashes = std::cell::Cell::new(0);
        let digest = |memo: &ContextDigests| {
            let st = root.lstat("a").unwrap().unwrap();
            memo.get_or_hash("a", &st, || {
                hashes.set(hashes.get() + 1);
                Ok::<_, std::io::Error>(Digest::of(&std::fs::read(dir.path().join("a"))?))
            })
            .unwrap()
        };
        let first = digest(&memo);
        assert_eq!(digest(&memo), first);
        assert_eq!(hashes.get(), 1);
        // Changed content (and so its stat): read again.
        std::fs::write(dir.path().join("a"), "two, longer").unwrap();
        let second = digest(&memo);
        assert_ne!(second, first);
        assert_eq!(second, Digest::of(b"two, longer"));
        assert_eq!(hashes.get(), 2);
    }
}
