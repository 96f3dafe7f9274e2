//! Build roots mounted from the unpacked-layer store (`cache/unpacked.rs`) in chroot and
//! rootless isolation:
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
//! In a user namespace (rootless isolation) the entries are made and the overlays mounted
//! there, with overlayfs's `userxattr`: its own markers are `user.overlay.*`, an entry's files
//! are owned by the host ids of the namespace's mapping, so such builds have a store of their
//! own per mapping (`choice.rs`). Overlayfs keeps no inode index there, so the hard-linked
//! files of the entries are copied up as one before a root or a layer being applied uses them
//! (`fs/hardlinks.rs`); the store keeps each entry's list of them.
//!
//! When the store cannot serve a root (no cache dir, container isolation, overlayfs not
//! mountable there, a layer overlayfs cannot represent), the root is unpacked as before and the
//! `base_unpacked` event says why.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cache::unpacked::{Pending, UnpackedStore, chain_ids};
use crate::digest::Digest;
use crate::engine::context::BuildContext;
use crate::engine::error::BuildError;
use crate::engine::layer::StageLayer;
use crate::engine::root::{BuildRoot, RootFor};
use crate::fs::overlay_mount::LayerMount;
use crate::fs::root::Root;
use crate::fs::snapshot::Snapshotter;
use crate::fs::{FsError, UnpackOptions, UnpackStats};
use trowel_events::RootIndex;

mod choice;

pub(crate) use choice::StoreChoice;

/// An entry directory as a kept index's key names it: device, inode and birth time (`None`
/// when its filesystem keeps no birth time).
type EntryId = Option<(u64, u64, i128)>;

/// An entry made for a layer: what unpacking it did, the entry until it is committed, and its
/// hard-linked files (recorded in a user namespace only, else none).
type MadeEntry = (UnpackStats, Pending, Vec<String>);

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
    /// The store a root of `layers` is mounted from, or why it is not: `Err(None)` for an
    /// empty root (`FROM scratch`), which has nothing to unpack or mount.
    pub(crate) fn store_for(&self, layers: &[StageLayer]) -> Result<&UnpackedStore, Option<String>> {
        let compressed: u64 = layers.iter().map(|l| l.descriptor.size).sum();
        let min = self.opts.layers.unpacked_store_min_size;
        if layers.is_empty() {
            return Err(None);
        }
        self.unpacked.configured().as_ref().map_err(|why| Some(why.clone()))?;
        if compressed < min {
            // Not even opened: a small root never needs the store's probe either.
            use crate::engine::disk_full::bytes;
            return Err(Some(format!(
                "{} of layers, under --unpacked-store-min-size {}: unpacked, as RUNs make files faster outside an overlay",
                bytes(compressed),
                bytes(min)
            )));
        }
        self.root_store().map_err(|why| Some(why.to_string()))
    }

    /// The store's entries of `layers` (bottom first), each held for the rest of the build, when
    /// the store can be used and has (or this build made) an entry of every one; else `None`.
    /// Opens the store when no root of this build did: a viewer shown a cached step of a stage
    /// without a root (the debugger in a debug pod whose cache dir earlier builds filled) is
    /// shown what the layers below held from entries earlier builds made, where the blobs would
    /// be downloaded and read.
    pub(crate) fn store_entries(&self, layers: &[StageLayer]) -> Option<Vec<PathBuf>> {
        if layers.is_empty() {
            return None;
        }
        let store = self.root_store().ok()?;
        let diff_ids: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
        let mut dirs = Vec::with_capacity(layers.len());
        for chain in chain_ids(&diff_ids) {
            self.hold_entry(store, &chain).ok()?;
            dirs.push(self.entry_dir(store, &chain)?);
        }
        Some(dirs)
    }

    /// Where the entry of `chain` is: in the store, or made by an earlier root of this build
    /// and still being committed; `None` when there is none.
    fn entry_dir(&self, store: &UnpackedStore, chain: &Digest) -> Option<PathBuf> {
        let ours = self.unpacked.made.lock().unwrap_or_else(|p| p.into_inner()).get(chain).cloned();
        ours.filter(|d| d.is_dir()).or_else(|| store.has(chain).then(|| store.entry(chain)))
    }

    /// Whether a root of `layers` mounted from the store is the cheaper way to read some of
    /// their paths (`COPY --from` a stage or an image without a root): the store has entries
    /// of more than half of their compressed bytes, so the root unpacks only the rest (and
    /// keeps those entries for later builds), where extracting the paths downloads and reads
    /// every layer. A builder stage served from the cache is its base, which the store holds
    /// once any build used it, and a few small layers of its own.
    pub(crate) fn store_holds_most(&self, layers: &[StageLayer]) -> bool {
        let total: u64 = layers.iter().map(|l| l.descriptor.size).sum();
        // Every layer, when the store would not serve the root at all.
        let missing: u64 = self.blobs_needed(layers).iter().map(|l| l.descriptor.size).sum();
        missing.saturating_mul(2) < total
    }

    /// The layers of `layers` whose blobs a root of them needs: all of them, unless the root
    /// is mounted from the store; then those the store has no entry of (nor this build, while
    /// it commits one). Opens and probes the store, as making the root would next.
    pub(crate) fn blobs_needed(&self, layers: &[StageLayer]) -> Vec<StageLayer> {
        let Ok(store) = self.store_for(layers) else { return layers.to_vec() };
        let diff_ids: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
        let chains = chain_ids(&diff_ids);
        let lacking = layers.iter().zip(&chains).filter(|(_, chain)| self.entry_dir(store, chain).is_none());
        lacking.map(|(l, _)| l.clone()).collect()
    }

    /// The store, opened and probed once, or why it cannot serve this build's roots.
    pub(crate) fn root_store(&self) -> Result<&UnpackedStore, &str> {
        let dir = self.unpacked.configured().as_ref().map_err(String::as_str)?;
        let ready = self.unpacked.ready.get_or_init(|| {
            // Opening it tidies entries owned by the namespace's ids (rootless isolation): not
            // before the maps are written. Failing to map fails the probe's scratch dir, loudly.
            let _ = crate::sandbox::userns::mapped();
            let opened = UnpackedStore::open(dir)
                .map_err(|e| format!("the unpacked-layer store {} cannot be opened: {e}", dir.display()))
                .and_then(|store| self.probe_store(&store).map(|()| store));
            // What earlier builds of this boot left marked unsynced and the kernel has most
            // likely written back since, settled while this one runs (see `cache/unpacked.rs`).
            if let Ok(store) = &opened {
                let store = store.clone();
                let _ = std::thread::Builder::new().name("store-settle".into()).spawn(move || store.settle());
            }
            opened
        });
        ready.as_ref().map_err(String::as_str)
    }

    /// Said once per build, when a root is unpacked because the store could not be opened in a
    /// user namespace: the file system may refuse there what root's may not (overlayfs with
    /// `userxattr`, user.* attributes), and every root then costs a full unpack, which the user
    /// should know without reading each stage's line. Not when the store was only opened for a
    /// viewer's lookups: a build that unpacks no root would be told it does.
    pub(crate) fn warn_store_refused(&self) {
        let Some(Err(why)) = self.unpacked.ready.get() else { return };
        if crate::fs::overlay_mount::in_user_namespace() {
            self.unpacked.refused_said.call_once(|| {
                self.emitter.warn(format!("{why}; every root is unpacked instead (as without a cache dir)"));
            });
        }
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
        root_for: RootFor<'_>,
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
        // In a user namespace: the hard-linked files of the entries so far (`fs/hardlinks.rs`).
        let userns = crate::fs::overlay_mount::in_user_namespace();
        let mut linked: Vec<String> = Vec::new();
        let links_of = |chain: &Digest, linked: &mut Vec<String>| -> Result<(), String> {
            if userns {
                match store.links(chain) {
                    Ok(Some(paths)) => linked.extend(paths),
                    Ok(None) => return Err(format!("the entry {} has no record of its hard links", chain.hex())),
                    Err(e) => return Err(format!("an entry's hard links cannot be read: {e}")),
                }
            }
            Ok(())
        };
        for (l, chain) in layers.iter().zip(&chains) {
            if let Err(why) = self.hold_entry(store, chain) {
                committed_later(made);
                return Ok(Err(why));
            }
            if let Some(dir) = self.entry_dir(store, chain) {
                if let Err(why) = links_of(chain, &mut linked) {
                    committed_later(made);
                    return Ok(Err(why));
                }
                found += 1;
                lowers.push(dir);
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
                    if let Err(why) = links_of(chain, &mut linked) {
                        committed_later(made);
                        return Ok(Err(why));
                    }
                    found += 1;
                    lowers.push(store.entry(chain));
                    continue;
                }
                match self.store_layer(store, l, chain, &lowers, userns.then_some(linked.as_slice()))? {
                    Ok((stats, mut pending, links)) => {
                        linked.extend(links);
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
        // What names the entries in a kept index's key, read now through those handles: the
        // entries this build made are renamed into the store while it goes on.
        let identities: Option<Vec<EntryId>> = (entry_roots.len() == lowers.len())
            .then(|| entry_roots.iter().rev().map(|r| r.identity().ok().flatten()).collect());
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
        if let Err(e) = crate::fs::hardlinks::copy_up_groups(&root, &linked) {
            drop((root, mount));
            for d in [&dir, &upper, &work] {
                let _ = crate::fs::remove::remove_tree(d);
            }
            return Ok(Err(format!("its hard-linked files could not be copied up as one: {e}")));
        }
        // Opened after the mount, so the directory is the one overlayfs writes into; without it
        // (it cannot fail short of a vanished work dir) snapshots walk the whole root.
        let upper_root = Root::open(&upper).ok();
        let mut snap = Snapshotter::on_store(
            root,
            self.opts.layers.snapshot_mode,
            self.snapshot_ignore.clone(),
            entry_roots,
            upper_root,
        );
        let index = self
            .index_root(&mut snap, store, &chains, identities.as_deref(), &upper, !userns)
            .map_err(BuildError::fs(format!("index build root {}", dir.display())))?;
        self.report_root(root_for, layers.len(), (entries, bytes), t0, Some(found), None, Some(index));
        let digests = crate::engine::known_digests::KnownDigests::default();
        Ok(Ok(BuildRoot { dir, snap, mount: Some(RootMount { mount, upper, work }), digests }))
    }

    /// The initial index of a root mounted from the store (`chains`: its entries' chain IDs,
    /// bottom first; `ids`: their identities, see `index_key`): the one kept for its top entry
    /// when it was made under the same key; else the one kept for the highest entry below that
    /// has one, brought up to date with what the entries above it hold; else a walk of the
    /// root. Whatever it took, an index not read back is kept for the next build. `reusable`:
    /// nothing was copied up into the root (a user namespace's hard links).
    fn index_root(
        &self,
        snap: &mut Snapshotter,
        store: &UnpackedStore,
        chains: &[Digest],
        ids: Option<&[EntryId]>,
        upper: &Path,
        reusable: bool,
    ) -> Result<RootIndex, FsError> {
        let keyed = |n: usize| ids.filter(|_| reusable).and_then(|ids| self.index_key(&ids[..n], upper));
        let Some((top, key)) = chains.last().and_then(|top| Some((top, keyed(chains.len())?))) else {
            let stats = snap.scan_initial()?;
            return Ok(RootIndex::Walked { paths: stats.files_walked });
        };
        if let Ok(bytes) = std::fs::read(store.index_path(top))
            && snap.restore_initial(&key, &bytes)?
        {
            return Ok(RootIndex::Kept);
        }
        // The highest entry below with an index kept is the one tried: an index there that
        // does not fit means its entries changed, and those under it are older still.
        let below =
            (1..chains.len()).rev().find_map(|n| Some((n, std::fs::read(store.index_path(&chains[n - 1])).ok()?)));
        let extended = below.and_then(|(n, bytes)| {
            let key = keyed(n)?;
            // Any failure in it only costs the walk.
            let paths = snap.restore_extended(&key, &bytes, chains.len() - n).ok().flatten()?;
            Some(RootIndex::Extended { layers: chains.len() - n, paths })
        });
        let how = match extended {
            Some(how) => how,
            None => RootIndex::Walked { paths: snap.scan_initial()?.files_walked },
        };
        if let Some(bytes) = snap.saved_index(&key)
            && let Err(e) = store.write_index(top, &bytes)
        {
            self.emitter.warn(format!("the index of a root could not be kept in the unpacked-layer store: {e}"));
        }
        Ok(how)
    }

    /// Everything a root's initial index depends on besides its entries' files, which never
    /// change once made: which entries (`ids`: each directory's device, inode and birth time,
    /// which its commit's rename keeps, so an entry this build made has the key it will have
    /// in the store, and an entry deleted and made again, even on a reused inode, is another),
    /// the filesystem of the root's upper directory and the kernel (overlayfs numbers a root's
    /// inodes from those), the snapshot mode and ignored paths (what a scan records), and this
    /// very program (how it records it). `None` when any of it cannot be read (an entry
    /// without a birth time among them): the root is then walked and nothing is kept.
    fn index_key(&self, ids: &[EntryId], upper: &Path) -> Option<Vec<u8>> {
        use std::fmt::Write as _;
        use std::os::unix::fs::MetadataExt as _;
        let exe = std::fs::metadata("/proc/self/exe").ok()?;
        let mut k = String::from("trowel root index 1\n");
        let _ = writeln!(k, "program {} {} {} {}.{}", exe.dev(), exe.ino(), exe.size(), exe.mtime(), exe.mtime_nsec());
        let _ = writeln!(k, "kernel {}", std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?.trim());
        let _ = writeln!(k, "upper {}", std::fs::metadata(upper).ok()?.dev());
        for id in ids {
            let (dev, ino, born) = (*id)?;
            let _ = writeln!(k, "entry {dev} {ino} {born}");
        }
        let _ = writeln!(k, "mode {}", self.opts.layers.snapshot_mode);
        let _ = writeln!(k, "ignore {}", serde_json::to_string(&self.snapshot_ignore).ok()?);
        Some(k.into_bytes())
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

    /// Makes the store's entry for layer `l` (chain ID `chain`) over the entries `lowers`
    /// (bottom first): unpacked and verified through an overlay; to be committed once used.
    /// In a user namespace (`linked`: the hard-linked files of `lowers`), those are copied up
    /// as one first, and the entry's own are recorded and returned (`fs/hardlinks.rs`).
    fn store_layer(
        &self,
        store: &UnpackedStore,
        l: &StageLayer,
        chain: &Digest,
        lowers: &[PathBuf],
        linked: Option<&[String]>,
    ) -> Result<Result<MadeEntry, String>, BuildError> {
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
            let copied = crate::fs::hardlinks::copy_up_groups(&root, linked.unwrap_or_default());
            let result = match copied {
                Ok(_) => self.unpack_verified(&root, l, &self.unpack_options(), "unpack"),
                Err(e) => {
                    drop(root);
                    drop(mount);
                    let _ = std::fs::remove_dir(&target);
                    return Ok(Err(format!("hard-linked files could not be copied up as one: {e}")));
                }
            };
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
        let mut links = Vec::new();
        if linked.is_some() {
            let recorded = crate::fs::hardlinks::linked_files(&pending.upper())
                .and_then(|paths| store.write_links(chain, &paths).map(|()| paths));
            match recorded {
                Ok(paths) => links = paths,
                Err(e) => return Ok(Err(format!("an entry's hard links could not be recorded: {e}"))),
            }
        }
        Ok(Ok((stats, pending, links)))
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
        if name.starts_with(crate::fs::overlay_mount::private_xattr_prefix()) {
            continue;
        }
        if let Some(v) = from.get_xattr("/", &name)? {
            to.set_xattr("/", &name, &v)?;
        }
    }
    to.set_times("/", st.atime, st.mtime)
}
