//! Build roots mounted from the unpacked-layer store (`cache/unpacked.rs`) in chroot isolation:
//! each of a stage's layers is unpacked once per machine, and a root is an overlay of those
//! directories with an upper directory of its own in the build's work dir, so a RUN on a
//! Debian base starts without writing its files again. The rest of the engine sees an
//! ordinary directory; what a step writes lands in the upper directory, never in the store.
//!
//! A missing entry is made by applying the layer *through* an overlay of the entries below it:
//! the same unpacker, with every check it makes of hostile layers, writes into the merged
//! directory, and overlayfs records the result in the new upper directory in its own format (a
//! deleted lower file as a whiteout, a replaced directory as an opaque one). So a root mounted
//! from the store shows exactly what unpacking the layers into a directory shows, by
//! construction rather than by a second implementation of whiteouts; and overlayfs escapes any
//! `trusted.overlay.*` attribute a layer carries, so a layer cannot forge overlay metadata.
//!
//! When the store cannot serve a root (no cache dir, container isolation, overlayfs not
//! mountable there, a layer overlayfs cannot represent), the root is unpacked as before and the
//! `base_unpacked` event says why.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use trowel_events::Event;

use crate::cache::unpacked::{Pending, UnpackedStore, chain_ids};
use crate::digest::Digest;
use crate::engine::context::BuildContext;
use crate::engine::error::BuildError;
use crate::engine::layer::StageLayer;
use crate::engine::root::BuildRoot;
use crate::fs::overlay_mount::LayerMount;
use crate::fs::root::Root;
use crate::fs::snapshot::Snapshotter;
use crate::fs::{FsError, UnpackOptions, UnpackStats};
use crate::sandbox::Isolation;

/// Whether this build's roots come from the store, decided at most once per build.
pub(crate) struct StoreChoice {
    /// The store's directory, or why there is none to use.
    configured: Result<PathBuf, String>,
    /// The opened and probed store, or why it cannot serve roots; made when the first root is.
    ready: OnceLock<Result<UnpackedStore, String>>,
    /// Entries this build made that are being committed on `committers` (synced, renamed into
    /// place): by chain ID, the directory they are in until then, so a later root of this
    /// build uses them rather than making them again.
    made: Mutex<HashMap<Digest, PathBuf>>,
    /// What the committers could not make entries of; deleted when the build ends, after its
    /// roots (which may be mounted from them).
    committers: Mutex<Vec<JoinHandle<Vec<Pending>>>>,
    /// The use locks of every entry this build looked up or made, held until it ends: its
    /// roots may be mounted from them (`cache/usage.rs`).
    held: Mutex<HashMap<Digest, std::fs::File>>,
}

impl Drop for StoreChoice {
    /// The build waits for its entries to be committed: a process that exits first would
    /// leave them in `tmp/` for the next build to delete.
    fn drop(&mut self) {
        for c in std::mem::take(self.committers.get_mut().unwrap_or_else(|p| p.into_inner())) {
            // Dropping them deletes them.
            let _ = c.join();
        }
    }
}

impl StoreChoice {
    pub fn new(dir: Option<&Path>, isolation: Isolation) -> StoreChoice {
        let configured = match dir {
            _ if isolation == Isolation::Container => Err("container isolation unpacks into /".to_string()),
            // Overlayfs mounted in a user namespace marks whiteouts and opaque directories with
            // user.overlay.* attributes, a root's with trusted.overlay.*: one store's entries
            // would mean different things to the two (a follow-up makes the store per kind).
            _ if isolation == Isolation::Rootless => {
                Err("rootless isolation unpacks each root (the store's overlays are made as real root)".to_string())
            }
            None => Err("no cache dir (--cache-dir does not exist)".to_string()),
            Some(d) => Ok(d.to_path_buf()),
        };
        StoreChoice {
            configured,
            ready: OnceLock::new(),
            made: Mutex::default(),
            committers: Mutex::default(),
            held: Mutex::default(),
        }
    }
}

/// What a root mounted from the store holds besides its merged directory.
pub(crate) struct RootMount {
    mount: LayerMount,
    upper: PathBuf,
    work: PathBuf,
}

impl RootMount {
    /// Unmounts; returns the directories that are left to delete (the merged directory,
    /// empty once unmounted, and the upper and work directories).
    pub fn finish(mut self, merged: PathBuf) -> Vec<PathBuf> {
        // A root still busy (a process holding it open) is detached: it goes when released.
        let _ = self.mount.unmount();
        vec![merged, self.upper, self.work]
    }
}

impl BuildContext<'_> {
    /// The store, opened and probed once, or why it cannot serve this build's roots.
    pub(crate) fn root_store(&self) -> Result<&UnpackedStore, &str> {
        let dir = self.unpacked.configured.as_ref().map_err(String::as_str)?;
        let ready = self.unpacked.ready.get_or_init(|| {
            let store = UnpackedStore::open(dir)
                .map_err(|e| format!("the unpacked-layer store {} cannot be opened: {e}", dir.display()))?;
            self.probe_store(&store)?;
            Ok(store)
        });
        ready.as_ref().map_err(String::as_str)
    }

    /// Whether an overlay mounts with its upper directory in the store and its mount point in
    /// the work dir (the cache dir may be on a filesystem overlayfs cannot write, such as NFS
    /// or another overlay, or trowel may lack CAP_SYS_ADMIN).
    fn probe_store(&self, store: &UnpackedStore) -> Result<(), String> {
        let fail =
            |e: &dyn std::fmt::Display| format!("overlayfs cannot be mounted from {}: {e}", store.dir().display());
        let pending = store.begin().map_err(|e| fail(&e))?;
        let target = self.scratch_dir("probe").map_err(|e| fail(&e))?;
        let result = LayerMount::mount(&[pending.empty()], &pending.upper(), &pending.work(), &target)
            .and_then(|mut m| m.unmount());
        let _ = std::fs::remove_dir(&target);
        result.map_err(|e| fail(&e))
    }

    /// Mounts `layers` from the store at `<scratch>/rootfs`, making the entries it lacks.
    /// `Ok(Err(why))`: the store cannot serve this root (the caller unpacks it instead); an
    /// `Err` is what would fail a plain unpack too (a layer that does not match its diff_id).
    pub(crate) fn mount_from_store(
        &self,
        store: &UnpackedStore,
        layers: &[StageLayer],
        scratch: &Path,
        stage: Option<usize>,
        t0: Instant,
    ) -> Result<Result<BuildRoot, String>, BuildError> {
        let diff_ids: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
        let chains = chain_ids(&diff_ids);
        let mut lowers: Vec<PathBuf> = Vec::with_capacity(layers.len());
        let mut made: Vec<(Pending, Digest)> = Vec::new();
        // Mounted from where they are now, the new entries are committed while the build goes
        // on (renaming a directory does not disturb a mount of it), and kept when this root
        // cannot be mounted after all: they are good entries.
        let committed_later = |made: Vec<(Pending, Digest)>| self.commit_later(store, made);
        let (mut entries, mut bytes, mut found) = (0u64, 0u64, 0usize);
        for (l, chain) in layers.iter().zip(&chains) {
            if let Err(why) = self.hold_entry(store, chain) {
                committed_later(made);
                return Ok(Err(why));
            }
            // Made by an earlier root of this build and still being committed.
            let ours = self.unpacked.made.lock().unwrap_or_else(|p| p.into_inner()).get(chain).cloned();
            if let Some(dir) = ours.filter(|d| d.is_dir()) {
                found += 1;
                lowers.push(dir);
            } else if store.has(chain) {
                found += 1;
                lowers.push(store.entry(chain));
            } else {
                // Another build making the same entry right now is waited for, not repeated.
                let making = match store.make_lock(chain, &mut || {
                    self.emitter.warn(format!(
                        "layer {}: waiting for another build unpacking it into {}",
                        l.descriptor.digest,
                        store.dir().display()
                    ))
                }) {
                    Ok(m) => m,
                    Err(e) => {
                        committed_later(made);
                        return Ok(Err(format!("an entry's making lock cannot be taken: {e}")));
                    }
                };
                if store.has(chain) {
                    found += 1;
                    lowers.push(store.entry(chain));
                    continue;
                }
                match self.store_layer(store, l, &lowers)? {
                    Ok((stats, mut pending)) => {
                        pending.set_making(making);
                        entries += stats.entries;
                        bytes += stats.bytes;
                        lowers.push(pending.upper());
                        made.push((pending, chain.clone()));
                    }
                    Err(why) => {
                        committed_later(made);
                        return Ok(Err(why));
                    }
                }
            }
        }
        let (dir, upper, work) = (scratch.join("rootfs"), scratch.join("upper"), scratch.join("work"));
        for d in [&dir, &upper, &work] {
            std::fs::create_dir(d).map_err(BuildError::io(format!("create {}", d.display())))?;
        }
        // The snapshotter reads base files' contents from the entries, top first, only when it
        // needs them; opened before the mount so a committer's rename cannot swap one (without
        // them it hashes the whole base at once).
        let entry_roots: Vec<Root> =
            lowers.iter().rev().map(|d| Root::open(d)).collect::<Result<_, _>>().unwrap_or_default();
        let mounted = copy_root_meta(lowers.last().map(PathBuf::as_path), &upper)
            .and_then(|()| LayerMount::mount(&lowers, &upper, &work, &dir));
        let mount = match mounted {
            Ok(m) => m,
            Err(e) => {
                // The caller unpacks into `rootfs` instead.
                for d in [&dir, &upper, &work] {
                    let _ = crate::fs::remove::remove_tree(d);
                }
                committed_later(made);
                return Ok(Err(format!("the root could not be mounted: {e}")));
            }
        };
        let mut all: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
        all.push(&upper);
        let stable = mount.stable_inodes(&all);
        committed_later(made);
        if !stable {
            drop(mount);
            for d in [&dir, &upper, &work] {
                let _ = crate::fs::remove::remove_tree(d);
            }
            return Ok(Err(format!(
                "its layers ({}) and the work dir are on different filesystems and overlayfs cannot keep inode \
                 numbers across them (no xino)",
                store.dir().display()
            )));
        }
        let root = Root::open(&dir).map_err(BuildError::fs(format!("open build root {}", dir.display())))?;
        let mut snap =
            Snapshotter::on_store(root, self.opts.layers.snapshot_mode, self.snapshot_ignore.clone(), entry_roots);
        snap.scan_initial().map_err(BuildError::fs(format!("index build root {}", dir.display())))?;
        if let Some(stage) = stage {
            self.emitter.emit(Event::BaseUnpacked {
                stage,
                layers: layers.len(),
                entries,
                bytes,
                duration_ms: t0.elapsed().as_millis() as u64,
                from_store: Some(found),
                store_unused: None,
            });
        }
        Ok(Ok(BuildRoot { dir, snap, mount: Some(RootMount { mount, upper, work }) }))
    }

    /// Takes the use lock of `chain`'s entry for the rest of the build (once per build).
    fn hold_entry(&self, store: &UnpackedStore, chain: &Digest) -> Result<(), String> {
        let mut held = self.unpacked.held.lock().unwrap_or_else(|p| p.into_inner());
        if !held.contains_key(chain) {
            let lock = store.hold(chain).map_err(|e| format!("an entry's use lock cannot be taken: {e}"))?;
            held.insert(chain.clone(), lock);
        }
        Ok(())
    }

    /// Commits entries this build made on a thread of its own (see
    /// [`UnpackedStore::commit_all`]), remembering where they are until then.
    fn commit_later(&self, store: &UnpackedStore, made: Vec<(Pending, Digest)>) {
        if made.is_empty() {
            return;
        }
        let mut memo = self.unpacked.made.lock().unwrap_or_else(|p| p.into_inner());
        for (p, chain) in &made {
            memo.insert(chain.clone(), p.upper());
        }
        drop(memo);
        let store = store.clone();
        let committer = std::thread::Builder::new().name("store-commit".into()).spawn(move || {
            // An entry that cannot be committed is made again by the next build that needs it.
            store.commit_all(made)
        });
        match committer {
            Ok(h) => self.unpacked.committers.lock().unwrap_or_else(|p| p.into_inner()).push(h),
            Err(e) => self.emitter.warn(format!("could not start a thread to commit unpacked layers: {e}")),
        }
    }

    /// Makes the store's entry for layer `l` over the entries `lowers` (bottom first):
    /// unpacked and verified through an overlay; to be committed once used.
    fn store_layer(
        &self,
        store: &UnpackedStore,
        l: &StageLayer,
        lowers: &[PathBuf],
    ) -> Result<Result<(UnpackStats, Pending), String>, BuildError> {
        let pending = match store.begin() {
            Ok(p) => p,
            Err(e) => return Ok(Err(format!("an entry of the unpacked-layer store cannot be made: {e}"))),
        };
        // The bottom layer has nothing below it to hide or resolve through: it is unpacked
        // straight into the entry, without an overlay's cost on every file it creates, with
        // the unpacker doing what the overlay would (see `UnpackOptions::overlay_lower`).
        let result = if lowers.is_empty() {
            let upper = pending.upper();
            let root = Root::open(&upper).map_err(BuildError::fs(format!("open {}", upper.display())))?;
            let opts = UnpackOptions { overlay_lower: true, ..self.unpack_options() };
            self.unpack_verified(&root, l, &opts, "unpack")
        } else {
            if let Err(e) = copy_root_meta(lowers.last().map(PathBuf::as_path), &pending.upper()) {
                return Ok(Err(format!("an entry's root attributes could not be set: {e}")));
            }
            let target = self.scratch_dir("apply")?;
            let mut mount = match LayerMount::mount(lowers, &pending.upper(), &pending.work(), &target) {
                Ok(m) => m,
                Err(e) => return Ok(Err(format!("a layer could not be unpacked through an overlay: {e}"))),
            };
            let root = Root::open(&target).map_err(BuildError::fs(format!("open {}", target.display())))?;
            let result = self.unpack_verified(&root, l, &self.unpack_options(), "unpack");
            drop(root);
            let unmounted = mount.unmount();
            let _ = std::fs::remove_dir(&target);
            result.and_then(|stats| unmounted.map(|()| stats).map_err(BuildError::fs("unmount a layer's overlay")))
        };
        let stats = match result {
            Ok(stats) => stats,
            // Overlayfs takes a character device 0:0 for a whiteout and refuses to create one:
            // such an image can only be unpacked into a plain directory.
            Err(BuildError::Fs { source: FsError::DeviceNotAllowed { entry, .. }, .. }) => {
                let why = format!("layer {} holds a device node ({entry}) overlayfs cannot store", l.descriptor.digest);
                return Ok(Err(why));
            }
            // The entry's data went to the cache dir whatever root the unpacker wrote through;
            // its file system is looked at before the entry is dropped and frees it.
            Err(e) => {
                let cache_dir = store.dir().parent().unwrap_or(store.dir());
                return Err(super::disk_full::at(super::disk_full::FullDir::CacheDir, cache_dir, e));
            }
        };
        Ok(Ok((stats, pending)))
    }
}

/// Gives `upper`'s root directory the owner, mode, times and extended attributes of `lower`'s
/// (none: left as made, as a fresh root is). Overlayfs shows the upper directory's own
/// attributes for the root of a mount, not the lower one's, so without this a root would not
/// look like the image whose layers it holds. Overlayfs's private attributes stay behind.
fn copy_root_meta(lower: Option<&Path>, upper: &Path) -> Result<(), FsError> {
    let Some(lower) = lower else { return Ok(()) };
    let (from, to) = (Root::open(lower)?, Root::open(upper)?);
    let Some(st) = from.lstat("/")? else { return Ok(()) };
    to.set_owner("/", st.uid, st.gid)?;
    to.set_mode("/", st.mode)?;
    for name in from.list_xattrs("/")? {
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        if let Some(v) = from.get_xattr("/", &name)? {
            to.set_xattr("/", &name, &v)?;
        }
    }
    to.set_times("/", st.atime, st.mtime)
}
