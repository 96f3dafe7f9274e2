//! The unpacked-layer store: image layers kept unpacked under the cache dir
//! (`<cache-dir>/unpacked`), shared by every build on the machine, so that a build root is an
//! overlay mount of directories that already exist instead of tens of thousands of files
//! written again (what buildah's local storage and containerd's overlay snapshotter do).
//!
//! Layout:
//! ```text
//! <dir>/sha256/<chain id hex>/   one layer, in overlayfs's format, over the layers below it
//! <dir>/tmp/<random>/            an entry being made: upper/, work/, empty/, .lock
//! <dir>/uses/<chain id hex>       its use lock and last use (`cache/usage.rs`)
//! <dir>/making/<chain id hex>     held while a build makes it (`cache/usage.rs`)
//! <dir>/links/<chain id hex>      its hard-linked files (rootless stores only, `fs/hardlinks.rs`)
//! <dir>/indexes/<chain id hex>    the snapshot index of a root whose top entry it is
//!                                 (`fs/snapshot_saved.rs`, `engine/root_store/`)
//! ```
//! An entry is keyed by the layer's OCI *chain ID* (the digest of the diff_ids of it and every
//! layer below), not by its own diff_id: it is made by applying the layer through an overlay of
//! the entries below it (see `engine/root_store/`), so it holds the layer as overlayfs sees it
//! *over those layers* — deletions as whiteouts of what they had, parents resolved through their
//! symlinks, hard links to their files — and the same layer over other layers is another entry.
//!
//! Crash safety and concurrency, as in the base-image cache (`basedir.rs`): an entry appears
//! only by one atomic `rename` of a complete directory whose contents were synced first, after
//! the layer's content matched its diff_id. A build killed while making one leaves only its
//! `tmp/` directory, which the next build removes (each is held by an `flock` while it is being
//! made; the kernel drops it when its owner dies). A build about to make an entry takes its
//! making lock ([`UnpackedStore::make_lock`]), so a second build needing it waits for the entry
//! rather than unpacking the layer again; should two make it all the same, both succeed: the
//! first rename wins and the other build uses the winner's entry and deletes its own copy.
//!
//! Nothing in an entry is checked again when it is used: entries are trusted as buildah trusts
//! its local storage, because only root can write here (the directory is made 0700) and the
//! layer was verified on its way in. See docs/hardening.md for this threat model.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::RenameFlags;

use crate::digest::{Digest, Hasher};
use crate::fs::dir_lock;

/// The directory under the cache dir that holds rootless builds' stores, one per user-namespace
/// mapping (`<cache-dir>/unpacked-userns/<range|single>-<hex>/`, each laid out as above; why
/// apart: `engine/root_store/choice.rs`).
pub const USERNS_STORES: &str = "unpacked-userns";

/// Where a store keeps its entries' lists of hard-linked files (`fs/hardlinks.rs`).
pub const LINKS_DIR: &str = "links";

/// Where a store keeps the snapshot indexes of roots mounted from its entries.
pub const INDEXES_DIR: &str = "indexes";

/// The store in one directory.
#[derive(Debug, Clone)]
pub struct UnpackedStore {
    dir: PathBuf,
}

/// An entry being made: apply the layer through an overlay whose upper directory is
/// [`upper`](Pending::upper), then [`UnpackedStore::commit_all`] it. Dropped uncommitted, it is
/// deleted.
pub struct Pending {
    dir: tempfile::TempDir,
    _lock: File,
    /// The entry's making lock, released once the entry is in place (or will not be).
    making: Option<crate::cache::usage::Making>,
}

impl Pending {
    pub fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Holds `making` (the entry's making lock) until this is committed or dropped.
    pub fn set_making(&mut self, making: crate::cache::usage::Making) {
        self.making = Some(making);
    }

    /// An empty directory, the lower layer of the bottom layer's overlay.
    pub fn empty(&self) -> PathBuf {
        self.dir.path().join("empty")
    }
}

/// The OCI chain IDs of a stack of layers given their diff_ids, bottom first: the first is its
/// diff_id, each next one `sha256(<chain id below> + " " + <diff_id>)`.
pub fn chain_ids(diff_ids: &[&Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => (*d).clone(),
            Some(below) => {
                let mut h = Hasher::new();
                h.update(format!("{below} {d}").as_bytes());
                h.finish()
            }
        };
        out.push(next);
    }
    out
}

/// Where the entry of `chain` is in the store in `dir`.
fn entry_in(dir: &Path, chain: &Digest) -> PathBuf {
    dir.join("sha256").join(chain.hex())
}

/// [`UnpackedStore::has`] for the store in `dir`, without opening it (which tidies it): for
/// the downloads begun ahead, before any root needs the store.
pub fn has_in(dir: &Path, chain: &Digest) -> bool {
    std::fs::symlink_metadata(entry_in(dir, chain)).is_ok_and(|m| m.is_dir())
}

fn io_at(p: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

impl UnpackedStore {
    /// Opens (creating) the store in `dir`, private to root, and removes what builds killed
    /// while making entries left behind.
    pub fn open(dir: &Path) -> io::Result<UnpackedStore> {
        for d in [dir.join("sha256"), dir.join("tmp")] {
            std::fs::create_dir_all(&d).map_err(|e| io_at(&d, e))?;
        }
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| io_at(dir, e))?;
        let store = UnpackedStore { dir: dir.to_path_buf() };
        store.sweep();
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry of chain ID `chain` is (whether or not it exists yet).
    pub fn entry(&self, chain: &Digest) -> PathBuf {
        entry_in(&self.dir, chain)
    }

    /// Marks the entry of `chain` in use by this process until the returned lock is dropped
    /// (see `cache/usage.rs`): taken before the entry is looked up or made, so `trowel cache
    /// prune` never removes an entry a root may be mounted from.
    pub fn hold(&self, chain: &Digest) -> io::Result<File> {
        crate::cache::usage::use_entry(&self.dir, chain.hex()).map_err(|e| io_at(&self.dir, e))
    }

    /// Takes the making lock of `chain`'s entry before it is made, waiting (after calling
    /// `waiting`) while another process makes it; look for the entry again once it returns.
    pub fn make_lock(&self, chain: &Digest, waiting: &mut dyn FnMut()) -> io::Result<crate::cache::usage::Making> {
        crate::cache::usage::make_entry(&self.dir, chain.hex(), waiting).map_err(|e| io_at(&self.dir, e))
    }

    /// Records the hard-linked files of `chain`'s entry (see `fs/hardlinks.rs`): written
    /// whole, by a rename, before the entry itself is committed, so an entry of a rootless
    /// store never exists without its list.
    pub fn write_links(&self, chain: &Digest, paths: &[String]) -> io::Result<()> {
        let dir = self.dir.join(LINKS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| io_at(&dir, e))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| io_at(&dir, e))?;
        serde_json::to_writer(&mut tmp, paths).map_err(io::Error::from)?;
        tmp.persist(dir.join(chain.hex())).map_err(|e| io_at(&dir, e.error))?;
        Ok(())
    }

    /// The hard-linked files of `chain`'s entry as [`UnpackedStore::write_links`] recorded
    /// them; `None` when there is no record (an entry made by a trowel that kept none).
    pub fn links(&self, chain: &Digest) -> io::Result<Option<Vec<String>>> {
        let p = self.dir.join(LINKS_DIR).join(chain.hex());
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| io_at(&p, e.into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at(&p, e)),
        }
    }

    /// Where the snapshot index of a root whose top entry is `chain`'s is kept.
    pub fn index_path(&self, chain: &Digest) -> PathBuf {
        self.dir.join(INDEXES_DIR).join(chain.hex())
    }

    /// Keeps `bytes` as the index of `chain`'s roots, whole or not at all (a rename); not
    /// synced: an index lost or cut short by a crash is only walked again.
    pub fn write_index(&self, chain: &Digest, bytes: &[u8]) -> io::Result<()> {
        let dir = self.dir.join(INDEXES_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| io_at(&dir, e))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| io_at(&dir, e))?;
        io::Write::write_all(&mut tmp, bytes).map_err(|e| io_at(&dir, e))?;
        tmp.persist(self.index_path(chain)).map_err(|e| io_at(&dir, e.error))?;
        Ok(())
    }

    /// Whether the entry of `chain` is complete and usable (only complete ones are ever there).
    pub fn has(&self, chain: &Digest) -> bool {
        has_in(&self.dir, chain)
    }

    /// Starts a new entry: a locked private directory under `tmp/` with `upper`, `work` and
    /// `empty` made.
    pub fn begin(&self) -> io::Result<Pending> {
        let tmp = self.dir.join("tmp");
        let dir = tempfile::Builder::new().prefix("layer-").tempdir_in(&tmp).map_err(|e| io_at(&tmp, e))?;
        let lock = dir_lock::lock(dir.path()).map_err(|e| io_at(dir.path(), e))?;
        for d in ["upper", "work", "empty"] {
            let p = dir.path().join(d);
            std::fs::create_dir(&p).map_err(|e| io_at(&p, e))?;
        }
        Ok(Pending { dir, _lock: lock, making: None })
    }

    /// Makes each pending upper directory (complete, its overlay unmounted) the entry of its
    /// chain ID: the data synced to disk first, then one rename each. Returns those that did
    /// not become an entry — another build's entry got there first (it serves as well: the same
    /// layer over the same layers), or the sync or rename failed (the next build that needs the
    /// layer makes it again) — for the caller to drop once no mount uses them any more:
    /// deleting a directory under a mounted overlay would change the files of a live root.
    ///
    /// A build calls this on a thread of its own once its root is mounted (from the pending
    /// directories themselves): `syncfs` flushes every dirty page of the filesystem, other
    /// processes' too, which on a busy disk takes seconds the build need not wait for.
    pub fn commit_all(&self, pending: Vec<(Pending, Digest)>) -> Vec<Pending> {
        let Some((first, _)) = pending.first() else { return Vec::new() };
        // A rename is atomic but says nothing of the files' data: without this, a power loss
        // soon after could leave a complete-looking entry of empty files.
        let synced = File::open(first.upper()).and_then(|fd| rustix::fs::syncfs(&fd).map_err(io::Error::from));
        // Whatever happens to them, builds waiting to make these entries wait no longer: they
        // find the entry, or make it themselves.
        if synced.is_err() {
            return pending
                .into_iter()
                .map(|(mut p, _)| {
                    p.making = None;
                    p
                })
                .collect();
        }
        let mut left = Vec::new();
        for (mut p, chain) in pending {
            let renamed = rustix::fs::renameat_with(
                rustix::fs::CWD,
                p.upper(),
                rustix::fs::CWD,
                self.entry(&chain),
                RenameFlags::NOREPLACE,
            );
            p.making = None;
            if renamed.is_err() {
                left.push(p);
            }
        }
        left
    }

    /// Removes the `tmp/` directories of builds that died making an entry.
    fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.join("tmp")) else { return };
        for e in entries.flatten() {
            let d = e.path();
            // Held while removing, as a work dir's sweep holds it: a build sweeping at the same
            // time skips this directory.
            let claim = dir_lock::claim_abandoned(&d);
            if !matches!(claim, dir_lock::Claim::Owned) {
                // Its overlay went with the dead build's mount namespace or was detached by
                // the sweep of its work dir; a directory still busy is left for next time.
                let _ = crate::fs::remove::remove_tree(&d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let b: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let ids = chain_ids(&[&a, &b]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::of(format!("{a} {b}").as_bytes()));
        // The same layer over another layer is another entry.
        assert_ne!(chain_ids(&[&b, &b])[1], ids[1]);
    }

    #[test]
    fn entries_appear_whole_and_the_first_commit_wins() {
        let t = tempfile::tempdir().unwrap();
        let store = UnpackedStore::open(&t.path().join("unpacked")).unwrap();
        let chain = Digest::of(b"layer");
        assert!(!store.has(&chain));
        let (p1, p2) = (store.begin().unwrap(), store.begin().unwrap());
        std::fs::write(p1.upper().join("f"), b"one").unwrap();
        std::fs::write(p2.upper().join("f"), b"two").unwrap();
        // Unfinished entries are never seen, and a live one is not swept.
        assert!(!store.has(&chain));
        let again = UnpackedStore::open(store.dir()).unwrap();
        assert_eq!(std::fs::read_dir(again.dir().join("tmp")).unwrap().count(), 2);
        assert!(store.commit_all(vec![(p1, chain.clone())]).is_empty());
        // The loser's copy is handed back (a root of its build may still be mounted from it).
        let lost = store.commit_all(vec![(p2, chain.clone())]);
        assert_eq!(lost.len(), 1);
        assert_eq!(std::fs::read_to_string(lost[0].upper().join("f")).unwrap(), "two");
        assert_eq!(std::fs::read_to_string(store.entry(&chain).join("f")).unwrap(), "one");
        drop(lost);
        assert_eq!(std::fs::read_dir(store.dir().join("tmp")).unwrap().count(), 0, "the loser's copy stays");
    }

    #[test]
    fn a_dead_builds_entry_in_progress_is_removed() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("unpacked");
        let store = UnpackedStore::open(&dir).unwrap();
        // As a killed build leaves it: files, and a lock nobody holds.
        let dead = dir.join("tmp/layer-dead");
        std::fs::create_dir_all(dead.join("upper/etc")).unwrap();
        std::fs::write(dead.join(dir_lock::LOCK), b"").unwrap();
        let live = store.begin().unwrap();
        UnpackedStore::open(&dir).unwrap();
        assert!(!dead.exists());
        assert!(live.upper().exists());
    }
}
