//! Build roots: a directory holding a stage's files, with the snapshotter that indexes it.
//!
//! A root is made only when a step first needs files (a stage served entirely from the cache
//! never unpacks its base): its layers are fetched, unpacked with every layer's content checked
//! against its diff_id, and indexed. In chroot isolation each root is a fresh directory in the
//! work dir — an overlay of the unpacked-layer store's entries when the store can serve it
//! (`root_store/`), else the layers unpacked into it; in container isolation it is `/` itself,
//! emptied first but for what the container owns (which stage holds `/` is
//! [`Stages`](super::stages::Stages)' business).
//!
//! A small root is unpacked even when the store could serve it (below
//! `--unpacked-store-min-size`, 4 MiB of compressed layers by default: busybox, distroless,
//! alpine). An overlay costs every file a RUN creates or deletes a second inode and dentry,
//! and its unmount evicts them all: W2's RUN writing 20,000 files took its build from 0.63 s
//! to 0.89 s on a tmpfs (`bench/README.md`). Unpacking a small base costs about what
//! mounting it does (busybox: 288 entries in under 20 ms); a big one is where the store
//! pays (a Debian base: half a second to unpack, 10 ms to mount).

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use trowel_events::{Event, RootIndex, StepId};

use crate::engine::context::BuildContext;
use crate::engine::error::BuildError;
use crate::engine::known_digests::KnownDigests;
use crate::engine::layer::{LayerOrigin, StageLayer};
use crate::engine::root_store::RootMount;
use crate::fs::WrittenContents;
use crate::fs::ignore::IgnoreList;
use crate::fs::root::Root;
use crate::fs::snapshot::{SnapshotMode, Snapshotter};
use crate::fs::unpack::{UnpackOptions, UnpackStats, open_layer_hashed, unpack_layer};
use crate::image::store::StoreError;
use crate::sandbox::Isolation;
use crate::sandbox::userns::Mapping;

/// A materialised build root: the directory and the snapshotter indexing it.
pub(crate) struct BuildRoot {
    pub dir: PathBuf,
    pub snap: Snapshotter,
    /// The overlay `dir` is, when the root was mounted from the unpacked-layer store.
    pub mount: Option<RootMount>,
    /// The digests its layers' writer found, for a later stage's `COPY --from` key (kept only
    /// for a stage some later one reads: `known_digests.rs`).
    pub digests: KnownDigests,
}

impl BuildRoot {
    pub fn root(&self) -> &Root {
        self.snap.root()
    }

    /// Whether this root is `/` of the container trowel runs in (container isolation).
    pub fn is_slash(&self) -> bool {
        self.dir == std::path::Path::new("/")
    }

    /// Gives the root up: unmounted if it is an overlay (so deleting it can never reach
    /// through to anything below), and the directories left to delete returned.
    pub fn into_dirs(self) -> Vec<PathBuf> {
        let BuildRoot { dir, snap, mount, .. } = self;
        // The snapshotter holds the root open; a busy mount would only be detached.
        drop(snap);
        match mount {
            Some(m) => m.finish(dir),
            None => vec![dir],
        }
    }
}

/// Whom a root is made for, which says how it is reported: a debugger that shows where a
/// step's time went must say which roots were made, and how.
#[derive(Debug, Clone, Copy)]
pub enum RootFor<'a> {
    /// A stage's own build root: reported as `base_unpacked`.
    Stage(usize),
    /// A whole root of a finished stage or of an image, for the steps that read from it
    /// (`COPY --from`, `RUN --mount=from=`) `step`: reported as `source_unpacked`, with `why`
    /// it is whole rather than only the paths read.
    Reader { step: StepId, stage: Option<usize>, image: Option<&'a str>, why: &'a str },
    /// A stage's root made again after a failed attempt: not reported (the stage's report
    /// stands).
    StageAgain,
    /// The empty root a `--link` step runs on (`stage/link.rs`): not reported.
    Linked,
}

impl BuildContext<'_> {
    /// Makes a root of `layers` in a fresh directory named after `name` and indexes it: mounted
    /// from the unpacked-layer store when it can serve it, else unpacked, and reported as
    /// `root_for` says.
    ///
    /// Layers still downloading are unpacked as they arrive ([`BuildContext::streamed`]).
    pub fn materialize(
        &self,
        layers: &[StageLayer],
        name: &str,
        root_for: RootFor<'_>,
    ) -> Result<BuildRoot, BuildError> {
        let t0 = Instant::now();
        let failed: std::cell::RefCell<Option<PathBuf>> = Default::default();
        let make = || {
            // A failed first attempt's directory goes before the second is made (it may hold
            // most of a root); the last attempt's stays for the error's diagnosis (a full disk
            // is described as the failure left it) and goes with the work dir.
            if let Some(old) = failed.borrow_mut().take() {
                let _ = crate::fs::remove::remove_tree(&old);
            }
            let scratch = self.scratch_dir(name)?;
            let made = self.materialize_in(layers, &scratch, root_for, t0);
            if made.is_err() {
                *failed.borrow_mut() = Some(scratch);
            }
            made
        };
        self.streamed(layers, make)
    }

    /// Runs `make` (which unpacks `layers`) while the layers the blob store lacks download,
    /// each unpacked as it arrives ([`image::follow`](crate::image::follow)) rather than after
    /// every one is stored: a cold build's first root no longer waits for its whole base.
    ///
    /// What was unpacked from a download under way is provisional until its unpack read the
    /// verified end of it (see [`BuildContext::unpack_verified`]). If `make` fails while any
    /// layer was missing, the failure may be the download's (bytes that did not turn out to be
    /// the blob, a download that failed or restarted): the downloads are waited for, their own
    /// errors reported as a stage's download reports them, and `make` runs again on the
    /// stored blobs, where an error of the layers themselves comes back.
    ///
    /// The layers the unpacked-layer store holds entries of are not downloaded at all (and a
    /// download of them begun ahead is stopped): an edited rebuild on a big base would
    /// otherwise fetch the whole base again, only to leave it unread (its blobs are in the
    /// work dir, which goes with the build; the store stays). When the root could not be made
    /// from those entries after all (an entry deleted by `trowel cache prune` since, an overlay
    /// that would not mount), it is made again once every layer is stored.
    fn streamed<T>(&self, layers: &[StageLayer], make: impl Fn() -> Result<T, BuildError>) -> Result<T, BuildError> {
        if let Some(stopped) = self.aborted() {
            return Err(stopped);
        }
        let needed = self.blobs_needed(layers);
        let served = needed.len() < layers.len();
        if served {
            let needed_digests: Vec<&crate::digest::Digest> = needed.iter().map(|l| &l.descriptor.digest).collect();
            let unneeded = layers.iter().map(|l| &l.descriptor.digest).filter(|d| !needed_digests.contains(d));
            self.stop_downloads(unneeded);
        }
        if !self.fetch_in_background(&needed) {
            return match make() {
                Err(BuildError::Store { source: StoreError::Missing(_), .. }) if served => {
                    self.fetch_blobs(layers)?;
                    make()
                }
                made => made,
            };
        }
        match make() {
            Ok(made) => Ok(made),
            Err(_) => {
                // A stop ends the downloads it was following (`stopping.rs`).
                if let Some(stopped) = self.aborted() {
                    return Err(stopped);
                }
                self.fetch_blobs(layers)?;
                make()
            }
        }
    }

    /// Container isolation: empties `/` but for what the container owns, unpacks `layers`
    /// there and indexes it. The caller makes sure no other stage still counts on `/`.
    pub fn materialize_at_slash(
        &self,
        keep: &IgnoreList,
        layers: &[StageLayer],
        stage: usize,
    ) -> Result<BuildRoot, BuildError> {
        let t0 = Instant::now();
        self.streamed(layers, || {
            let dir = PathBuf::from("/");
            let root = Root::open(&dir).map_err(BuildError::fs("open /"))?;
            crate::fs::clean::clean_root(&root, "/", keep)
                .map_err(BuildError::fs(format!("empty / for stage {stage}")))?;
            let opts = self.slash_unpack_options(keep);
            let unused = Some("container isolation unpacks into /".to_string());
            self.fill(dir, root, layers, &opts, self.snapshot_ignore.clone(), RootFor::Stage(stage), t0, unused)
        })
    }

    /// [`BuildContext::materialize`] in `scratch`.
    fn materialize_in(
        &self,
        layers: &[StageLayer],
        scratch: &std::path::Path,
        root_for: RootFor<'_>,
        t0: Instant,
    ) -> Result<BuildRoot, BuildError> {
        let unused = match self.store_for(layers) {
            Ok(store) => match self.mount_from_store(store, layers, scratch, root_for, t0)? {
                Ok(root) => return Ok(root),
                Err(why) => Some(why),
            },
            Err(why) => why,
        };
        self.warn_store_refused();
        let dir = scratch.join("rootfs");
        std::fs::create_dir(&dir).map_err(BuildError::io(format!("create {}", dir.display())))?;
        let root = Root::open(&dir).map_err(BuildError::fs(format!("open build root {}", dir.display())))?;
        let (ignore, unused) = match (&self.slash_keep, root_for) {
            (None, _) => (self.snapshot_ignore.clone(), unused),
            // Container isolation, a stage that runs nothing (`stage/files.rs`): its snapshots
            // leave out what they would at `/`, so its layers are the same wherever its root is.
            (Some(keep), RootFor::Stage(_) | RootFor::StageAgain) => (
                keep.clone(),
                Some("container isolation: the stage runs nothing, so its root is unpacked in the work dir and / is left as it is".to_string()),
            ),
            // A `--link` step's empty root: its whole contents become a layer laid over `/`, so
            // what it writes under a kept path (a mount point, `--ignore-path`, trowel's own
            // directory) stays out of that layer as it would out of a snapshot of `/`.
            (Some(keep), RootFor::Linked) => (keep.clone(), unused),
            // A reader's root holds no container paths to ignore.
            (Some(_), _) => (IgnoreList::default(), unused),
        };
        self.fill(dir, root, layers, &self.unpack_options(), ignore, root_for, t0, unused)
    }

    /// Unpacks `layers` into an empty `root`, indexes it, and reports it as `root_for` says
    /// (with why the unpacked-layer store did not serve it: `store_unused`).
    #[allow(clippy::too_many_arguments)]
    fn fill(
        &self,
        dir: PathBuf,
        root: Root,
        layers: &[StageLayer],
        opts: &UnpackOptions,
        ignore: IgnoreList,
        root_for: RootFor<'_>,
        t0: Instant,
        store_unused: Option<String>,
    ) -> Result<BuildRoot, BuildError> {
        let mode = self.opts.layers.snapshot_mode;
        // Only a `Full` index hashes contents; the unpacker hashes what it writes, while it
        // waits on the inflater, and the scan after it is a walk of metadata (`fs/written.rs`).
        let written = (mode == SnapshotMode::Full).then(|| Arc::new(WrittenContents::default()));
        let opts = UnpackOptions { written: written.clone(), ..opts.clone() };
        let (entries, bytes) = self.unpack_all(&root, layers, &opts)?;
        let mut snap = Snapshotter::new(root, mode, ignore);
        match &written {
            Some(w) => snap.scan_initial_written(w),
            None => snap.scan_initial(),
        }
        .map_err(BuildError::fs(format!("index build root {}", dir.display())))?;
        self.report_root(root_for, layers.len(), (entries, bytes), t0, None, store_unused, None);
        Ok(BuildRoot { dir, snap, mount: None, digests: KnownDigests::default() })
    }

    /// Reports a root just made of `layers` layers, `made` (entries, bytes) of them unpacked
    /// now, as `root_for` says: `from_store` layers of them were in the unpacked-layer store
    /// already when it was mounted from there, `store_unused` why it was not, `index` how its
    /// first snapshot index was had then.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn report_root(
        &self,
        root_for: RootFor<'_>,
        layers: usize,
        (entries, bytes): (u64, u64),
        t0: Instant,
        from_store: Option<usize>,
        store_unused: Option<String>,
        index: Option<RootIndex>,
    ) {
        let duration_ms = t0.elapsed().as_millis() as u64;
        match root_for {
            RootFor::Stage(stage) => self.emitter.emit(Event::BaseUnpacked {
                stage,
                layers,
                entries,
                bytes,
                duration_ms,
                from_store,
                store_unused,
                index,
            }),
            RootFor::Reader { step, stage, image, why } => self.emitter.emit(Event::SourceUnpacked {
                for_step: Some(step),
                stage,
                image: image.map(str::to_string),
                why: why.to_string(),
                layers,
                entries,
                bytes,
                duration_ms,
                from_store,
                store_unused,
                index,
            }),
            RootFor::StageAgain | RootFor::Linked => {}
        }
    }

    /// Applies `layers` in order to `root`; returns (entries, bytes).
    fn unpack_all(&self, root: &Root, layers: &[StageLayer], opts: &UnpackOptions) -> Result<(u64, u64), BuildError> {
        let (mut entries, mut bytes) = (0u64, 0u64);
        for l in layers {
            let stats = self.unpack_verified(root, l, opts, "unpack")?;
            entries += stats.entries;
            bytes += stats.bytes;
        }
        Ok((entries, bytes))
    }

    /// Unpacks one layer from the store into `root`, checking that its uncompressed content
    /// hashes to the layer's diff_id. The registry checked the compressed digest; the diff_id
    /// comes from the image config, and a layer that does not match it is not the layer the
    /// image claims (an altered base or cache entry). Building on it would also push an image
    /// that Docker and containerd refuse to pull. `what` starts the error message.
    pub fn unpack_verified(
        &self,
        root: &Root,
        l: &StageLayer,
        opts: &UnpackOptions,
        what: &str,
    ) -> Result<UnpackStats, BuildError> {
        let name = match &l.origin {
            LayerOrigin::Base(r) => format!("{what} layer {} of {r}", l.descriptor.digest),
            LayerOrigin::Local(entry) => format!("{what} layer {} of {}", l.descriptor.digest, entry.display()),
            LayerOrigin::Built(_) | LayerOrigin::Shell(..) => format!("{what} layer {}", l.descriptor.digest),
        };
        let blob = self.layer_blob(&l.descriptor.digest).map_err(BuildError::store(name.clone()))?;
        let mut reader = open_layer_hashed(blob).map_err(BuildError::fs(name.clone()))?;
        let stats = unpack_layer(root, &mut reader, opts).map_err(self.fs_failed(name.clone()))?;
        if !stats.devices_skipped.is_empty() {
            let n = stats.devices_skipped.len();
            let mut shown = stats.devices_skipped.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            if n > 5 {
                shown.push_str(&format!(" and {} more", n - 5));
            }
            self.emitter.warn(format!(
                "{name}: {n} device node{} not made ({shown}): rootless isolation cannot create device nodes (root \
                 of a user namespace may not mknod); RUN gets /dev's usual nodes from the host, the layer itself \
                 is unchanged",
                if n == 1 { "" } else { "s" }
            ));
        }
        // The tar reader stops at the end-of-archive marker; the diff_id covers the whole stream.
        let limit = opts.max_total_size.unwrap_or(u64::MAX);
        let rest = std::io::copy(&mut (&mut reader).take(limit), &mut std::io::sink())
            .map_err(BuildError::io(format!("{name}: reading after the end of the archive")))?;
        if rest >= limit {
            let reason = format!("more than {limit} bytes follow the end of the archive");
            return Err(BuildError::Corrupt { what: name, reason });
        }
        let Some((digest, _)) = reader.digest() else {
            let reason = "its reader ended without hashing it".to_string();
            return Err(BuildError::Corrupt { what: name, reason });
        };
        if digest != &l.diff_id {
            let reason = format!("its content hashes to {digest}, but the image config gives diff_id {}", l.diff_id);
            return Err(BuildError::Corrupt { what: name, reason });
        }
        Ok(stats)
    }

    /// The blob of a layer to read: the stored file, or, while a download of it started by
    /// [`BuildContext::fetch_in_background`] is under way, that download followed as it
    /// arrives (waited for until it starts: a download may wait for its turn). It ends with
    /// `Missing` when neither is (a download that ended without storing it: the caller's
    /// [`BuildContext::streamed`] fetches it again and reports the download's error).
    fn layer_blob(&self, digest: &crate::digest::Digest) -> Result<Box<dyn std::io::Read + Send>, StoreError> {
        loop {
            // Looked at before the store, so a download that stores the blob in between is
            // seen in the store.
            let downloading = self.downloading(digest);
            match self.store.open_blob(digest) {
                Ok(f) => return Ok(Box::new(f)),
                Err(StoreError::Missing(_)) => {}
                Err(e) => return Err(e),
            }
            if let Some(following) = self.store.follow(digest) {
                return Ok(Box::new(following));
            }
            if !downloading {
                return Err(StoreError::Missing(Box::new(digest.clone())));
            }
            self.store.wait_for_downloads(std::time::Duration::from_millis(50));
        }
    }

    /// How layers and ADD archives are unpacked into build roots.
    pub fn unpack_options(&self) -> UnpackOptions {
        let rootless = self.opts.run.isolation == Isolation::Rootless;
        UnpackOptions {
            ignore: IgnoreList::default(),
            // Build roots are private to the build (RUN mounts them nodev), and base images may
            // legitimately carry device nodes; a pod without CAP_MKNOD cannot make them.
            allow_devices: self.slash_keep.is_none() || crate::engine::container::can_mknod(),
            preserve_owner: true,
            max_entry_size: self.opts.layers.max_file_size,
            max_total_size: self.opts.layers.max_layer_size,
            max_entries: self.opts.layers.max_layer_entries,
            select: None,
            overlay_lower: false,
            // Rootless: root of a user namespace cannot make device nodes (buildah and
            // containers/storage skip them there too); each skipped one is warned about.
            skip_devices: rootless,
            // Rootless with a single id: only 0 exists to own files.
            owners_to_root: rootless && crate::sandbox::userns::current_mapping() == Some(Mapping::Single),
            archive_names: false,
            cancel: self.fs_cancel(),
            written: None,
        }
    }

    /// Unpacking into `/` in container isolation: what the container runtime owns is never
    /// written to.
    pub fn slash_unpack_options(&self, keep: &IgnoreList) -> UnpackOptions {
        UnpackOptions { ignore: keep.clone(), ..self.unpack_options() }
    }
}
