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
//! <dir>/unsynced/<chain id hex>   the boot ID of the boot that made it, until its files are
//!                                 known to be on disk (see below)
//! ```
//! An entry is keyed by the layer's OCI *chain ID* (the digest of the diff_ids of it and every
//! layer below), not by its own diff_id: it is made by applying the layer through an overlay of
//! the entries below it (see `engine/root_store/`), so it holds the layer as overlayfs sees it
//! *over those layers* — deletions as whiteouts of what they had, parents resolved through their
//! symlinks, hard links to their files — and the same layer over other layers is another entry.
//!
//! Crash safety and concurrency, as in the base-image cache (`basedir.rs`): an entry appears
//! only by one atomic `rename` of a complete directory, after the layer's content matched its
//! diff_id. Its files are not synced first: `syncfs` of the store's file system before the
//! rename cost a cold build on a journaled ext4 a fifth of its time (it flushes every dirty
//! page there; W4 in bench/README.md). A rename says nothing of the data, so a power loss
//! could leave a complete-looking entry of empty files; what says whether the data can be
//! trusted is an *unsynced mark*: before the rename, a file naming the current boot (the
//! kernel's boot ID) is written and made durable (`fsync` of it and its directory, one small
//! journal commit). An entry with a mark of this boot is sound whatever the disk holds (this
//! kernel's page cache has its files as written); one with a mark of another boot may have
//! lost data in a crash and is never used: removed by the next build that opens the store.
//! The mark goes once a `syncfs` begun after it has returned: a later build on the machine,
//! a minute on or more and with little to write back, syncs on a thread while it runs
//! ([`UnpackedStore::settle`]); no build syncs what it made itself. The cost: after a reboot or on another machine (a volume moved
//! to another node) the entries still marked are made again.
//!
//! A build killed while making an entry leaves only its `tmp/` directory, which the next build
//! removes (each is held by an `flock` while it is being made; the kernel drops it when its
//! owner dies). A build about to make an entry takes its making lock
//! ([`UnpackedStore::make_lock`]), so a second build needing it waits for the entry rather than
//! unpacking the layer again; should two make it all the same, both succeed: the first rename
//! wins and the other build uses the winner's entry and deletes its own copy.
//!
//! Nothing in an entry is checked again when it is used: entries are trusted as buildah trusts
//! its local storage, because only root can write here (the directory is made 0700) and the
//! layer was verified on its way in. See docs/hardening.md for this threat model.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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
    std::fs::symlink_metadata(entry_in(dir, chain)).is_ok_and(|m| m.is_dir()) && trusted(dir, chain)
}

/// Where a store marks the entries whose files may not be on disk yet.
pub const UNSYNCED_DIR: &str = "unsynced";

/// How old an unsynced mark is before a build settles it ([`UnpackedStore::settle`]): twice
/// the kernel's default `dirty_expire_centisecs` (30 s), by when its data is most likely on
/// disk already.
pub const SETTLE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Above this much data waiting to be written back machine-wide, a build settles no marks.
const SETTLE_MAX_DIRTY_KIB: u64 = 64 * 1024;

/// Whether `/proc/meminfo` (given) shows little data waiting to be written back: `Dirty` and
/// `Writeback` together under [`SETTLE_MAX_DIRTY_KIB`]; not when it cannot tell.
fn little_to_write_back(meminfo: &str) -> bool {
    let kib = |key: &str| {
        meminfo.lines().find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
    };
    matches!((kib("Dirty:"), kib("Writeback:")), (Some(d), Some(w)) if d + w < SETTLE_MAX_DIRTY_KIB)
}

/// This boot's ID (`/proc/sys/kernel/random/boot_id`); `None` when it cannot be read, and then
/// entries are synced before they are renamed in, as no mark could tell a later boot apart.
fn boot_id() -> Option<&'static str> {
    static BOOT: OnceLock<Option<String>> = OnceLock::new();
    BOOT.get_or_init(|| {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        (!id.is_empty()).then(|| id.to_string())
    })
    .as_deref()
}

/// Whether `chain`'s entry (if any) in the store in `dir` can be used: no unsynced mark, or a
/// mark of this boot.
fn trusted(dir: &Path, chain: &Digest) -> bool {
    match std::fs::read_to_string(dir.join(UNSYNCED_DIR).join(chain.hex())) {
        Err(e) => e.kind() == io::ErrorKind::NotFound,
        Ok(boot) => boot_id() == Some(boot.trim()),
    }
}

/// Writes the unsynced marks of `chains` for this boot, durable before this returns: each file
/// and then the directory synced (the entries' own data is not: that is the point).
fn mark_unsynced(dir: &Path, boot: &str, chains: &[&Digest]) -> io::Result<()> {
    let marks = dir.join(UNSYNCED_DIR);
    std::fs::create_dir_all(&marks).map_err(|e| io_at(&marks, e))?;
    for chain in chains {
        let mut tmp = tempfile::NamedTempFile::new_in(&marks).map_err(|e| io_at(&marks, e))?;
        io::Write::write_all(&mut tmp, boot.as_bytes()).map_err(|e| io_at(&marks, e))?;
        tmp.as_file().sync_all().map_err(|e| io_at(&marks, e))?;
        tmp.persist(marks.join(chain.hex())).map_err(|e| io_at(&marks, e.error))?;
    }
    File::open(&marks).and_then(|d| d.sync_all()).map_err(|e| io_at(&marks, e))
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
        store.sweep_unsynced();
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
    /// chain ID: marked unsynced for this boot (see the module's doc), then one rename each.
    /// Returns those that did not become an entry — another build's entry got there first (it
    /// serves as well: the same layer over the same layers), or the mark or rename failed (the
    /// next build that needs the layer makes it again) — for the caller to drop once no mount
    /// uses them any more: deleting a directory under a mounted overlay would change the files
    /// of a live root.
    ///
    /// A build calls this on a thread of its own once its root is mounted (from the pending
    /// directories themselves); the marks go in a later build ([`settle`](Self::settle)).
    /// Without a boot ID the data is synced before the renames, as it always was.
    pub fn commit_all(&self, pending: Vec<(Pending, Digest)>) -> Vec<Pending> {
        let Some((first, _)) = pending.first() else { return Vec::new() };
        // An entry there already is not marked: its rename fails below, and a mark of this boot
        // over one of another boot (an entry a crash may have emptied, which a build using it
        // kept from being removed) would make it look sound.
        let new: Vec<&Digest> = pending.iter().map(|(_, c)| c).filter(|c| !self.entry(c).exists()).collect();
        let ready = match boot_id() {
            Some(boot) => mark_unsynced(&self.dir, boot, &new),
            None => File::open(first.upper()).and_then(|fd| rustix::fs::syncfs(&fd).map_err(io::Error::from)),
        };
        // Whatever happens to them, builds waiting to make these entries wait no longer: they
        // find the entry, or make it themselves.
        if ready.is_err() {
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

    /// Takes away this boot's unsynced marks at least [`SETTLE_AFTER`] old once the store's
    /// file system is synced: those there when this begins, after one `syncfs` begun after
    /// them. The kernel writes dirty data back within half a minute by default, so that
    /// `syncfs` is mostly a journal commit; it still blocks the process's exit until it
    /// returns (a thread in it cannot be killed), which is why no build syncs what it made
    /// itself: that cost a cold build on ext4 a fifth of its time. Whether this boot has marks
    /// at all is known from one directory read. Not while the machine has much to write back
    /// (another build unpacking, say): the `syncfs` would wait for that, and so would this
    /// process's exit; a later build settles them.
    pub fn settle(&self) {
        if little_to_write_back(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default()) {
            self.settle_marks();
        }
    }

    /// [`settle`](Self::settle) whatever there is to write back.
    fn settle_marks(&self) {
        let Some(boot) = boot_id() else { return };
        let marks = self.dir.join(UNSYNCED_DIR);
        let Ok(names) = std::fs::read_dir(&marks) else { return };
        // Each mark with its inode: one written again meanwhile (a new entry of the same chain,
        // after a prune took the old one) is a new file, and stays.
        use std::os::unix::fs::MetadataExt as _;
        let old =
            |m: &std::fs::Metadata| m.modified().ok().and_then(|t| t.elapsed().ok()).is_some_and(|a| a >= SETTLE_AFTER);
        let ours: Vec<(PathBuf, u64)> = names
            .flatten()
            .map(|e| e.path())
            .filter(|p| std::fs::read_to_string(p).is_ok_and(|b| b.trim() == boot))
            .filter_map(|p| std::fs::metadata(&p).ok().filter(old).map(|m| (p, m.ino())))
            .collect();
        if ours.is_empty() {
            return;
        }
        let synced = File::open(&self.dir).and_then(|fd| rustix::fs::syncfs(&fd).map_err(io::Error::from));
        if synced.is_ok() {
            for (p, ino) in ours {
                if std::fs::metadata(&p).is_ok_and(|m| m.ino() == ino) {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }

    /// Removes the entries whose unsynced mark is of another boot (a crash may have left them
    /// with files the rename promised and the disk never got), with their use lock, kept index
    /// and list of links, unless a build is using one; and marks without an entry.
    fn sweep_unsynced(&self) {
        let Some(boot) = boot_id() else { return };
        let marks = self.dir.join(UNSYNCED_DIR);
        let Ok(names) = std::fs::read_dir(&marks) else { return };
        for e in names.flatten() {
            let mark = e.path();
            let hex = e.file_name().to_string_lossy().into_owned();
            if hex.starts_with('.') || std::fs::read_to_string(&mark).is_ok_and(|b| b.trim() == boot) {
                continue;
            }
            let entry = self.dir.join("sha256").join(&hex);
            if entry.exists() {
                let Ok(Some(_claim)) = crate::cache::usage::claim_entry(&self.dir, &hex) else { continue };
                // Out of its name at once (the claim keeps builds off it meanwhile), then gone.
                let gone = self.dir.join("tmp").join(format!("unsynced-{hex}"));
                if std::fs::rename(&entry, &gone).is_err() {
                    continue;
                }
                let _ = std::fs::remove_file(crate::cache::usage::use_lock_path(&self.dir, &hex));
                let _ = std::fs::remove_file(self.dir.join(LINKS_DIR).join(&hex));
                let _ = std::fs::remove_file(self.dir.join(INDEXES_DIR).join(&hex));
                let _ = std::fs::remove_file(&mark);
                drop(_claim);
                let _ = crate::fs::remove::remove_tree(&gone);
            } else {
                let _ = std::fs::remove_file(&mark);
            }
        }
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

    /// Commits one entry of `chain` holding `f`.
    fn commit(store: &UnpackedStore, chain: &Digest) {
        let p = store.begin().unwrap();
        std::fs::write(p.upper().join("f"), b"data").unwrap();
        assert!(store.commit_all(vec![(p, chain.clone())]).is_empty());
    }

    fn mark(store: &UnpackedStore, chain: &Digest) -> PathBuf {
        store.dir().join(UNSYNCED_DIR).join(chain.hex())
    }

    #[test]
    fn an_entry_is_marked_unsynced_for_this_boot_and_one_of_another_boot_is_never_used() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("unpacked");
        let store = UnpackedStore::open(&dir).unwrap();
        let (ours, crashed, busy) = (Digest::of(b"ours"), Digest::of(b"crashed"), Digest::of(b"busy"));
        for c in [&ours, &crashed, &busy] {
            commit(&store, c);
            // Marked, durable before the rename, with this boot's ID: usable in this boot.
            assert_eq!(std::fs::read_to_string(mark(&store, c)).unwrap().trim(), boot_id().unwrap());
            assert!(store.has(c) && has_in(&dir, c));
        }
        // As a crash leaves them: marked by a boot that is over, with an index and a list.
        for c in [&crashed, &busy] {
            std::fs::write(mark(&store, c), "another-boot\n").unwrap();
            store.write_index(c, b"index").unwrap();
            store.write_links(c, &["/f".to_string()]).unwrap();
            assert!(!store.has(c) && !has_in(&dir, c), "an entry a crash may have emptied is not used");
        }
        // One a build still holds stays until it lets go (it does not mount it: `has` says no).
        let held = store.hold(&busy).unwrap();
        // Committing it again over the old one neither replaces it nor makes it look sound.
        let p = store.begin().unwrap();
        assert_eq!(store.commit_all(vec![(p, crashed.clone())]).len(), 1);
        assert_eq!(std::fs::read_to_string(mark(&store, &crashed)).unwrap(), "another-boot\n");
        // The next build that opens the store removes the crashed one and all that is its.
        let again = UnpackedStore::open(&dir).unwrap();
        assert!(!again.entry(&crashed).exists() && !mark(&again, &crashed).exists());
        assert!(!again.index_path(&crashed).exists() && again.links(&crashed).unwrap().is_none());
        assert!(again.entry(&busy).exists() && !again.has(&busy));
        assert!(again.has(&ours));
        drop(held);
        let third = UnpackedStore::open(&dir).unwrap();
        assert!(!third.entry(&busy).exists() && !mark(&third, &busy).exists());
        // Made again, it is marked for this boot and used.
        commit(&third, &crashed);
        assert!(third.has(&crashed));
        // A mark of another boot without an entry (pruned) goes too.
        std::fs::write(mark(&third, &busy), "another-boot").unwrap();
        UnpackedStore::open(&dir).unwrap();
        assert!(!mark(&third, &busy).exists());
    }

    #[test]
    fn marks_are_settled_only_with_little_to_write_back() {
        let info = |dirty: u64, wb: u64| format!("MemFree: 100 kB\nDirty:  {dirty} kB\nWriteback:   {wb} kB\n");
        assert!(little_to_write_back(&info(1024, 0)));
        assert!(!little_to_write_back(&info(60 * 1024, 8 * 1024)));
        assert!(!little_to_write_back(&info(SETTLE_MAX_DIRTY_KIB, 0)));
        assert!(!little_to_write_back("MemFree: 100 kB\n"), "cannot tell: not now");
    }

    #[test]
    fn settling_takes_away_this_boots_marks_a_minute_old_after_a_sync() {
        let t = tempfile::tempdir().unwrap();
        let store = UnpackedStore::open(&t.path().join("unpacked")).unwrap();
        let (young, old, other) = (Digest::of(b"young"), Digest::of(b"old"), Digest::of(b"other"));
        for c in [&young, &old, &other] {
            commit(&store, c);
        }
        let past = std::time::SystemTime::now() - SETTLE_AFTER - std::time::Duration::from_secs(1);
        for c in [&old, &other] {
            std::fs::File::options().write(true).open(mark(&store, c)).unwrap().set_modified(past).unwrap();
        }
        std::fs::write(mark(&store, &other), "another-boot").unwrap();
        std::fs::File::options().write(true).open(mark(&store, &other)).unwrap().set_modified(past).unwrap();
        // (`settle` itself first looks at how much the machine has to write back.)
        store.settle_marks();
        assert!(!mark(&store, &old).exists(), "synced: its data is on disk");
        assert!(mark(&store, &young).exists(), "the kernel may not have written it back yet");
        assert!(mark(&store, &other).exists(), "another boot's: no sync now says anything of it");
        assert!(store.has(&old) && store.has(&young));
    }
}
