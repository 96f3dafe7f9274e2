//! Base images fetched ahead: as soon as the plan is known, every registry image a needed
//! stage is built `FROM` is resolved in the background, all at once; and as soon as a base is
//! resolved, the layers of the first stage on it that will need its root start downloading in
//! the background — a later stage's while the earlier stages build, the first stage's while
//! its cache keys are computed and looked up — instead of when its first file step asks for
//! the root. As BuildKit's solver pulls every stage's base at once, the downloads of all stages
//! share one limit (as many at once as one stage's own pull), first come first served.
//!
//! Why: a cold build otherwise waits at each stage's first file step for that stage's base,
//! after the key planning (W3 hashes 200 MB of context first; W6 320 sources), and a
//! multi-stage build's final stage waits for its own base after the builder stages (W5).
//! The stage's build checks on its base (`checks::base_resolved`) run when the stage starts,
//! after its download began: a check that fails the build stops the downloads with the rest.
//!
//! What it may not change:
//! - *What is built.* A resolution is only taken up by the stage's own `resolve_once` (the
//!   build's memo), so a reference still means one digest throughout the build; a base served
//!   by the cache directory is not fetched ahead.
//! - *What reaches a root.* Downloads go through the registry client's `fetch_blob` into the
//!   build's blob store, which checks digest and size before a blob is stored, exactly as a
//!   stage's own download does; the unpack still checks every layer against its diff_id.
//! - *Errors.* Nothing fetched ahead fails the build by itself: a resolution that failed
//!   (after the registry client's retries, as a stage's own) is the error of the stage that
//!   takes it up, reported at its `FROM` line as if the stage had resolved the image (not asked
//!   for again: that doubled the time a build took to fail on a base it could not reach); a
//!   download that failed is the error of the first file step that needs the layer, as if
//!   that step had downloaded it.
//! - *A cached build's bandwidth.* A build whose stages are served from the cache never needs
//!   its bases' files, and must not download them. So a stage's layers are fetched ahead only
//!   when the stage has a step that needs its root (`RUN`, `WORKDIR`, `COPY`/`ADD` without
//!   `--link`) and, with `--cache`, when the cache repository has no pointer tag for that
//!   step (this Dockerfile's steps were never cached there: a cold build; a stage of COPYs
//!   alone, which writes none, is told by the stage that reads it, `cold.rs`); a stage that ends
//!   without a root stops its downloads, and whatever is left is stopped before the push.
//! - *A root the unpacked-layer store serves.* Such a root mounts the store's entries and
//!   reads no blob of a layer the store holds, so those layers are not fetched ahead either
//!   (an edited rebuild on a Debian base fetched all 51 MB of it to leave it unread). This
//!   looks only at the entries on disk (the store is opened and probed when a root needs it):
//!   a root the store cannot serve after all has its layers downloaded then, by
//!   [`BuildContext::fetch_in_background`]. Rootless isolation's store is named after the user
//!   namespace's maps, which may not exist yet: there everything is fetched ahead as before,
//!   and a root mounted from the store stops what it does not need.
//!
//! The downloads a root waits for are kept here too: when a root is made, every layer it
//! lacks that is not downloading already starts now, in the background
//! ([`BuildContext::fetch_in_background`]), so that the root can unpack each layer while it
//! arrives (`root.rs`, `image/follow.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use trowel_events::Event;

use crate::digest::Digest;
use crate::dockerfile::Base;
use crate::engine::context::BuildContext;
use crate::engine::emit::{Emitter, ProgressGate};
use crate::engine::layer::{LayerOrigin, StageLayer};
use crate::engine::layer_cache::LayerCache;
use crate::image::manifest::{Descriptor, Manifest, Platform};
use crate::image::store::BlobStore;
use crate::registry::{ManifestSeen, Reference, Registry, RegistryError, ResolvedImage};

mod cold;

pub(crate) use cold::copies_alone_kept_out;

/// An image being resolved ahead, with the registry mirrors passed over on the way (warned of
/// when the stage takes the image, as a resolution made then would be); `None` when the task
/// was stopped (the stage resolves the image itself).
type Resolving = Shared<BoxFuture<'static, Option<(Result<ResolvedImage, FailedResolve>, Vec<String>)>>>;

/// A resolution ahead that failed, retries included: its error, for the stage to report at its
/// `FROM` (rather than asking the registry all over again, which doubled the time a build took
/// to fail on a base it could not reach); taken once.
pub(crate) type FailedResolve = Arc<Mutex<Option<RegistryError>>>;

/// How a download begun ahead ended.
#[derive(Clone)]
pub(crate) enum Fetched {
    /// The blob is in the store.
    Stored,
    /// It was not fetched (stopped, or a cached build's stage that needs no files).
    Skipped,
    /// It failed, retries included: the error, for the first stage that needed the blob to
    /// report (rather than fetching it all over again); later ones fetch it themselves.
    Failed(Arc<Mutex<Option<RegistryError>>>),
}

/// A layer being downloaded ahead.
type Downloading = Shared<BoxFuture<'static, Fetched>>;

/// The downloads under way, by blob digest, with what stops each.
type Downloads = HashMap<Digest, (Downloading, tokio::task::AbortHandle)>;

/// Whether a stage's layers download ahead: true once its pointer tag was found absent (or
/// at once without `--cache`), false when the cache repository has it (a cached build).
pub(crate) type Cold = Shared<BoxFuture<'static, bool>>;

/// What the build is fetching ahead.
pub(crate) struct Prefetch {
    /// By `resolve_once`'s key (reference and platform), with what stops each.
    resolving: Arc<Mutex<HashMap<String, (Resolving, tokio::task::AbortHandle)>>>,
    /// Shared with the resolving tasks, which add each image's layers once it is resolved.
    downloads: Arc<Mutex<Downloads>>,
    /// As many downloads at once as a stage's own pull makes.
    limiter: Arc<tokio::sync::Semaphore>,
    /// By stage: what decided that the stage's layers download ahead (the first such decision
    /// for it), for the stage to make its root ahead too (`stage/ahead.rs`).
    cold: Arc<Mutex<HashMap<usize, Cold>>>,
    /// By pointer tag: the check of a pointer that downloads already wait for (so it is under
    /// way or done), for the lookup of that step to use instead of asking again.
    pointers: Arc<Mutex<HashMap<String, Cold>>>,
}

impl Prefetch {
    /// What stops everything under way, for a watcher that outlives a borrow of the build
    /// (`stopping.rs`).
    pub(crate) fn handles(&self) -> PrefetchHandles {
        PrefetchHandles { resolving: self.resolving.clone(), downloads: self.downloads.clone() }
    }
}

/// The resolutions and downloads fetched ahead, shared.
pub(crate) struct PrefetchHandles {
    resolving: Arc<Mutex<HashMap<String, (Resolving, tokio::task::AbortHandle)>>>,
    downloads: Arc<Mutex<Downloads>>,
}

impl PrefetchHandles {
    /// Stops every resolution and download under way. Resolutions first: one still under way
    /// would start downloads after this.
    pub(crate) fn abort_all(&self) {
        let resolving: Vec<_> = self.resolving.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        for (_, (_, abort)) in resolving {
            abort.abort();
        }
        for (_, abort) in self.downloads.lock().unwrap_or_else(|p| p.into_inner()).values() {
            abort.abort();
        }
    }
}

impl Default for Prefetch {
    fn default() -> Prefetch {
        Prefetch {
            resolving: Arc::default(),
            downloads: Arc::default(),
            cold: Arc::default(),
            pointers: Arc::default(),
            limiter: Arc::new(tokio::sync::Semaphore::new(crate::engine::context::PARALLEL_PULLS)),
        }
    }
}

/// The key a resolution is remembered by (the same as `BuildContext::resolve_once`'s memo).
pub(crate) fn resolve_key(reference: &str, platform: &Platform) -> String {
    format!("{reference}\0{platform}")
}

/// The `pull_progress` reporter of one layer's download: every 4 MiB and once at the end
/// ([`ProgressGate`]).
pub(crate) fn progress_reporter(
    emitter: Emitter,
    reference: String,
    digest: &Digest,
) -> impl Fn(u64, u64) + Send + Sync + 'static {
    let gate = Mutex::new(ProgressGate::default());
    let digest: trowel_events::Digest = digest.into();
    move |done: u64, total: u64| {
        if gate.lock().unwrap_or_else(|p| p.into_inner()).due(done, total) {
            emitter.emit(Event::PullProgress { reference: reference.clone(), digest: digest.clone(), done, total });
        }
    }
}

impl BuildContext<'_> {
    /// The registry images the build's needed stages are built on, with the platform each is
    /// resolved for (as `StageRunner::start` resolves them), once each, in build order.
    fn bases_ahead(&self) -> Vec<(usize, String, Platform)> {
        let mut out: Vec<(usize, String, Platform)> = Vec::new();
        for &idx in &self.plan.order {
            let Base::Image(r) = &self.plan.stages[idx].base else { continue };
            // A platform that does not parse is refused where the stage starts.
            let Some(platform) = self.base_platform(idx) else { continue };
            if out.iter().any(|(_, o, p)| o == r && *p == platform) || self.in_cache_dir(r, &platform) {
                continue;
            }
            out.push((idx, r.clone(), platform));
        }
        out
    }

    /// The platform stage `idx`'s registry base is resolved for (as `StageRunner::start` does);
    /// `None` for a `FROM --platform` that does not parse (refused where the stage starts).
    fn base_platform(&self, idx: usize) -> Option<Platform> {
        match &self.plan.stages[idx].platform {
            Some(p) if !p.is_empty() => Platform::parse(p).ok(),
            _ => Some(self.plan.target_platform(idx).clone()),
        }
    }

    /// Whether the stage will take `reference` from the base-image cache directory.
    fn in_cache_dir(&self, reference: &str, platform: &Platform) -> bool {
        let Some(dir) = &self.base_cache else { return false };
        let ttl = self.opts.cache.as_ref().map(|c| c.ttl);
        Reference::parse(reference).is_ok_and(|r| matches!(dir.lookup_explained(&r, platform, ttl), Ok(Ok(_))))
    }

    /// Starts resolving every base image of the build, in the background, and downloading
    /// the layers of each that a stage will need once it is resolved (the module's comment
    /// says when); returns at once. `cache`: the build's layer cache, whose pointer tags tell a
    /// cold build from a cached one.
    pub(crate) fn start_prefetch(&self, cache: Option<&LayerCache>) {
        let _enter = self.rt.enter();
        for (_, r, platform) in self.bases_ahead() {
            let key = resolve_key(&r, &platform);
            let ahead = self.root_stage_on(&r, &platform, cache).map(|(idx, pointer)| (self.fetcher(), idx, pointer));
            // Resolved already (a build for several platforms resolves its bases first).
            if let Some(img) = self.memoized(&key) {
                if let Some((fetcher, idx, pointer)) = ahead {
                    fetcher.layers(idx, &img, pointer);
                }
                continue;
            }
            let Ok(reference) = Reference::parse(&r) else { continue };
            let registry = self.registry.clone();
            let task = tokio::spawn(async move {
                let mut mirrors_passed_over = Vec::new();
                // The layers' downloads start with the manifest when the unpacked-layer store
                // cannot hold any of them (that takes the config's diff_ids to tell): a cold
                // build's first layer began a round trip later, after the config.
                let early: ManifestSeen<'_> = ahead.as_ref().map(|(fetcher, idx, pointer)| {
                    let reference = &reference;
                    Box::new(move |m: &Manifest| {
                        if fetcher.store_holds_none(&m.layers) {
                            fetcher.listed(*idx, reference, &m.layers, pointer.clone(), &[]);
                        }
                    }) as Box<dyn FnOnce(&Manifest) + Send + '_>
                });
                let resolved = registry.resolve_seeing(&reference, &platform, &mut mirrors_passed_over, early).await;
                let img = match resolved {
                    Ok(img) => img,
                    Err(e) => return Some((Err(Arc::new(Mutex::new(Some(e)))), mirrors_passed_over)),
                };
                if let Some((fetcher, idx, pointer)) = ahead {
                    fetcher.layers(idx, &img, pointer);
                }
                Some((Ok(img), mirrors_passed_over))
            });
            let abort = task.abort_handle();
            let fut: Resolving = task.map(|r| r.ok().flatten()).boxed().shared();
            self.prefetch.resolving.lock().unwrap_or_else(|p| p.into_inner()).insert(key, (fut, abort));
        }
    }

    /// Stage `idx` is built on `img` (resolved, its checks passed): starts downloading its
    /// layers in the background when the stage will need its root (see the module's comment).
    /// `pointer`: with `--cache`, the cache repository's pointer tag of the stage's first step
    /// that needs the root; the download waits for it to be absent.
    pub(crate) fn prefetch_layers(&self, idx: usize, img: &ResolvedImage, pointer: Option<Reference>) {
        if !self.needs_root(idx) {
            return;
        }
        let _enter = self.rt.enter();
        self.fetcher().layers(idx, img, pointer);
    }

    /// What decides whether stage `idx`'s layers download ahead (see [`Cold`]); `None` when
    /// they do not (a base from the cache directory, a stage that needs no root).
    pub(crate) fn cold_stage(&self, idx: usize) -> Option<Cold> {
        self.prefetch.cold.lock().unwrap_or_else(|p| p.into_inner()).get(&idx).cloned()
    }

    /// The resolution fetched ahead for `key`, waited for, with the mirrors passed over on
    /// its way: the image or why there is none (`None`: none was started, or it was stopped,
    /// and the caller resolves the image itself).
    pub(crate) fn prefetched_image(&self, key: &str) -> Option<(Result<ResolvedImage, RegistryError>, Vec<String>)> {
        let (fut, _) = self.prefetch.resolving.lock().unwrap_or_else(|p| p.into_inner()).remove(key)?;
        // Stopped: the caller's own resolution reports the stop.
        let (result, mirrors) = self.until_stopped(fut).ok()??;
        match result {
            Ok(img) => Some((Ok(img), mirrors)),
            Err(failed) => failed.lock().unwrap_or_else(|p| p.into_inner()).take().map(|e| (Err(e), mirrors)),
        }
    }

    /// Waits for the download of `digest` started ahead, if there is one (`Skipped`: none
    /// was started, or it was stopped).
    pub(crate) async fn prefetched_blob(&self, digest: &Digest) -> Fetched {
        let fut = self.prefetch.downloads.lock().unwrap_or_else(|p| p.into_inner()).get(digest).map(|(f, _)| f.clone());
        match fut {
            Some(f) => match f.await {
                Fetched::Stored if !self.store.contains(digest) => Fetched::Skipped,
                other => other,
            },
            None => Fetched::Skipped,
        }
    }

    /// Makes sure every layer of `layers` the blob store lacks is downloading, in the
    /// background: those not fetched ahead (or whose download ahead was stopped) start now,
    /// as many at once as a stage's own pull. Returns whether any layer is missing (then a
    /// reader follows the downloads: `root.rs`, `BuildContext::streamed`).
    pub(crate) fn fetch_in_background(&self, layers: &[StageLayer]) -> bool {
        let missing: Vec<&StageLayer> = layers.iter().filter(|l| !self.store.contains(&l.descriptor.digest)).collect();
        if missing.is_empty() {
            return false;
        }
        // The watcher stopped what was under way (`stopping.rs`); nothing starts after it.
        if self.stop.as_ref().is_some_and(crate::sandbox::Stop::is_requested) {
            return true;
        }
        let _enter = self.rt.enter();
        let fetcher = self.fetcher();
        let mut map = self.prefetch.downloads.lock().unwrap_or_else(|p| p.into_inner());
        for l in missing {
            let LayerOrigin::Base(reference) = &l.origin else { continue };
            // A failed download keeps its error for the stage to report; a stopped one is
            // started again.
            let stopped = map
                .get(&l.descriptor.digest)
                .is_some_and(|(f, _)| matches!(f.clone().now_or_never(), Some(Fetched::Skipped)));
            if map.contains_key(&l.descriptor.digest) && !stopped {
                continue;
            }
            let now = futures_util::future::ready(true).boxed().shared();
            map.insert(l.descriptor.digest.clone(), fetcher.download(reference.clone(), l.descriptor.clone(), now));
        }
        true
    }

    /// Stops the downloads of `digests` begun in the background (a root that turned out not
    /// to need them). One that something needs after all is started again
    /// ([`BuildContext::fetch_in_background`], `BuildContext::fetch_blobs`).
    pub(crate) fn stop_downloads<'d>(&self, digests: impl IntoIterator<Item = &'d Digest>) {
        let map = self.prefetch.downloads.lock().unwrap_or_else(|p| p.into_inner());
        for d in digests {
            if let Some((_, abort)) = map.get(d) {
                abort.abort();
            }
        }
    }

    /// Whether a download of `digest` begun in the background is under way.
    pub(crate) fn downloading(&self, digest: &Digest) -> bool {
        let map = self.prefetch.downloads.lock().unwrap_or_else(|p| p.into_inner());
        // Polled, not peeked: a shared future holds its output only once something polled it,
        // and nothing may have awaited a download that ended (stopped, or skipped by a warm
        // build's gate) while its task was done long ago.
        map.get(digest).is_some_and(|(f, _)| f.clone().now_or_never().is_none())
    }

    fn fetcher(&self) -> Fetcher {
        Fetcher {
            registry: self.registry.clone(),
            store: self.store.clone(),
            emitter: self.emitter.clone(),
            downloads: self.prefetch.downloads.clone(),
            limiter: self.prefetch.limiter.clone(),
            cold: self.prefetch.cold.clone(),
            pointers: self.prefetch.pointers.clone(),
            unpacked: self.store_ahead(),
        }
    }

    /// The unpacked-layer store's directory and minimum size, for [`Fetcher`], when it is
    /// known without the user namespace's maps: chroot isolation outside a user namespace.
    fn store_ahead(&self) -> Option<(std::path::PathBuf, u64)> {
        if self.opts.run.isolation != crate::sandbox::Isolation::Chroot || crate::fs::overlay_mount::in_user_namespace()
        {
            return None;
        }
        let dir = self.unpacked.configured().as_ref().ok()?;
        Some((dir.clone(), self.opts.layers.unpacked_store_min_size))
    }

    /// The prefetch's check of pointer tag `tag`, when downloads wait for it (so it was sent,
    /// or soon is): true once the tag was found absent. A lookup's miss then has no pointer to
    /// read (`cache::registry::RegistryCache::lookup`), and does not ask for it again.
    pub(crate) fn pointer_check(&self, tag: &str) -> Option<Cold> {
        self.prefetch.pointers.lock().unwrap_or_else(|p| p.into_inner()).get(tag).cloned()
    }

    /// Stage `idx` was built without a root: stops the downloads of its base's layers, unless a
    /// stage of `later` (still to be built) is built on the same image.
    pub(crate) fn prefetch_unneeded(&self, idx: usize, later: &[usize]) {
        let Base::Image(r) = &self.plan.stages[idx].base else { return };
        let same = |j: &usize| matches!(&self.plan.stages[*j].base, Base::Image(o) if o == r);
        if later.iter().any(same) {
            return;
        }
        let Some(platform) = self.base_platform(idx) else { return };
        let Some(img) = self.memoized(&resolve_key(r, &platform)) else { return };
        let map = self.prefetch.downloads.lock().unwrap_or_else(|p| p.into_inner());
        for desc in &img.manifest.layers {
            if let Some((_, abort)) = map.get(&desc.digest) {
                abort.abort();
            }
        }
    }

    /// Stops whatever is still being fetched ahead (every stage is built: what a root needed
    /// was waited for), so it does not compete with the push.
    pub(crate) fn stop_prefetch(&self) {
        self.prefetch.handles().abort_all();
    }
}

/// What a background task needs to fetch an image's layers.
struct Fetcher {
    registry: Registry,
    store: BlobStore,
    emitter: Emitter,
    downloads: Arc<Mutex<Downloads>>,
    limiter: Arc<tokio::sync::Semaphore>,
    cold: Arc<Mutex<HashMap<usize, Cold>>>,
    pointers: Arc<Mutex<HashMap<String, Cold>>>,
    /// The unpacked-layer store's directory and `--unpacked-store-min-size`, when the store's
    /// entries say which layers a root needs no blob of (see the module's comment).
    unpacked: Option<(std::path::PathBuf, u64)>,
}

impl Fetcher {
    /// Starts downloading the layers of `img` the store lacks and nothing downloads yet (on
    /// the current runtime), once `pointer` (when given) is found absent; stage `idx` (the
    /// first to need the root) is the one they are for. The decision is kept for that stage,
    /// unless one was kept already; a stage whose layers were all stored or downloading has the
    /// pointer looked up only if it asks (`cold_stage`).
    fn layers(&self, idx: usize, img: &ResolvedImage, pointer: Option<Reference>) {
        self.listed(idx, &img.reference, &img.manifest.layers, pointer, &self.held_by_store(img));
    }

    /// [`Fetcher::layers`] of an image's `layers` alone, but for those in `held` (the
    /// unpacked-layer store's).
    fn listed(
        &self,
        idx: usize,
        reference: &Reference,
        layers: &[Descriptor],
        pointer: Option<Reference>,
        held: &[Digest],
    ) {
        let tag = pointer.as_ref().and_then(|p| p.tag.clone());
        // A stage of COPYs alone is told by its reader's pointer (`cold.rs`): one check of it.
        let asked = tag.as_ref().and_then(|t| self.pointers.lock().unwrap_or_else(|p| p.into_inner()).get(t).cloned());
        let cold: Cold = match (pointer, asked) {
            (_, Some(asked)) => asked,
            (None, _) => futures_util::future::ready(true).boxed().shared(),
            (Some(p), None) => {
                let registry = self.registry.clone();
                async move { matches!(registry.manifest_digest(&p).await, Ok(None)) }.boxed().shared()
            }
        };
        let cold = self.cold.lock().unwrap_or_else(|p| p.into_inner()).entry(idx).or_insert(cold).clone();
        let mut map = self.downloads.lock().unwrap_or_else(|p| p.into_inner());
        let mut waiting = false;
        for desc in layers {
            if map.contains_key(&desc.digest) || self.store.contains(&desc.digest) || held.contains(&desc.digest) {
                continue;
            }
            map.insert(desc.digest.clone(), self.download(reference.clone(), desc.clone(), cold.clone()));
            waiting = true;
        }
        // Only a check a download awaits is sent for sure: a lookup that awaited one nothing
        // else does would add a request and a round trip before its own.
        if waiting && let Some(tag) = tag {
            self.pointers.lock().unwrap_or_else(|p| p.into_inner()).insert(tag, cold);
        }
    }

    /// Whether the unpacked-layer store can hold none of `layers`, known without the image's
    /// config: no store ahead, less than its minimum size, or not one entry in it.
    fn store_holds_none(&self, layers: &[Descriptor]) -> bool {
        let Some((dir, min)) = &self.unpacked else { return true };
        layers.iter().map(|l| l.size).sum::<u64>() < *min
            || std::fs::read_dir(dir.join("sha256")).map_or(true, |mut d| d.next().is_none())
    }

    /// The layers of `img` whose entries the unpacked-layer store has, when a root of them
    /// would be mounted from it (as `BuildContext::blobs_needed` decides once the store is
    /// open): a root of the base alone, at least `--unpacked-store-min-size` of it.
    fn held_by_store(&self, img: &ResolvedImage) -> Vec<Digest> {
        let Some((dir, min)) = &self.unpacked else { return Vec::new() };
        let layers = &img.manifest.layers;
        if layers.is_empty() || layers.iter().map(|l| l.size).sum::<u64>() < *min {
            return Vec::new();
        }
        let Ok(config) = crate::image::config::ImageConfig::from_bytes(&img.config_bytes) else { return Vec::new() };
        let diff_ids = config.diff_ids();
        if diff_ids.len() != layers.len() {
            // Refused where the stage starts.
            return Vec::new();
        }
        let chains = crate::cache::unpacked::chain_ids(&diff_ids.iter().collect::<Vec<_>>());
        layers
            .iter()
            .zip(&chains)
            .filter(|(_, chain)| crate::cache::unpacked::has_in(dir, chain))
            .map(|(l, _)| l.digest.clone())
            .collect()
    }

    fn download(
        &self,
        reference: Reference,
        desc: Descriptor,
        cold: Shared<BoxFuture<'static, bool>>,
    ) -> (Downloading, tokio::task::AbortHandle) {
        let (registry, store, limiter) = (self.registry.clone(), self.store.clone(), self.limiter.clone());
        let progress = progress_reporter(self.emitter.clone(), reference.to_string(), &desc.digest);
        let task = tokio::spawn(async move {
            if !cold.await {
                return Fetched::Skipped;
            }
            let Ok(_permit) = limiter.acquire_owned().await else { return Fetched::Skipped };
            match registry.fetch_blob(&reference, &desc, &store, &progress).await {
                Ok(()) => Fetched::Stored,
                Err(e) => Fetched::Failed(Arc::new(Mutex::new(Some(e)))),
            }
        });
        let abort = task.abort_handle();
        (task.map(|r| r.unwrap_or(Fetched::Skipped)).boxed().shared(), abort)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use trowel_events::{Envelope, Event};

    use crate::digest::Digest;
    use crate::engine::emit::Emitter;

    /// The registry client reports a download's end twice when its last batch ends the blob
    /// (the batch, then the flush after the loop): one `pull_progress` at the end, so the log
    /// says `Pulled …` once per download.
    #[test]
    fn a_download_s_end_is_one_event() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let sink = move |e: &Envelope| s.lock().unwrap().push(e.event.clone());
        let emitter = Emitter::new(vec![Box::new(sink)]);
        let report = super::progress_reporter(emitter, "r/cache".into(), &Digest::of(b"layer"));
        let total = 10 << 20;
        for done in [1 << 20, 5 << 20, total, total] {
            report(done, total);
        }
        let done: Vec<u64> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e {
                Event::PullProgress { done, .. } => *done,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(done, [5 << 20, total]);
    }
}
