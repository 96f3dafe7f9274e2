//! The build context: everything about a build that is fixed once it starts and shared by every
//! stage and step, read-only — the options, the parsed Dockerfile and its plan, the build
//! context directory, the registry client, the blob store, the scratch directory, the emitter.
//!
//! What changes while the build runs lives elsewhere: one stage's state in its
//! [`StageRunner`](super::stage::StageRunner), what stages share in
//! [`Stages`](super::stages::Stages), the layer cache's bookkeeping in
//! [`LayerCache`](super::layer_cache::LayerCache). The two maps here that fill in as the build
//! goes (images resolved, files downloaded, git sources checked out) are memos behind a lock: asking twice gives the
//! same answer, which is what makes them safe to share.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::StreamExt;
use trowel_events::Detail;

use crate::cache::basedir::BaseImageCache;
use crate::dockerfile::checks::CheckConfig;
use crate::dockerfile::{DockerIgnore, Dockerfile, Instruction, Plan};
use crate::engine::container;
use crate::engine::context_digests::ContextDigests;
use crate::engine::emit::Emitter;
use crate::engine::error::{BuildError, Location};
use crate::engine::layer::{LayerOrigin, StageLayer};
use crate::engine::mounts::MountService;
use crate::engine::options::BuildOptions;
use crate::engine::scratch::{self, WorkDir};
use crate::engine::steps::copy::Download;
use crate::fs::ignore::IgnoreList;
use crate::fs::root::Root;
use crate::git::{Checkout, GitError};
use crate::image::manifest::Platform;
use crate::image::store::BlobStore;
use crate::registry::{Reference, Registry, ResolvedImage};
use crate::sandbox::userns::Mapping;
use crate::sandbox::{Isolation, RootlessError};
use crate::secrets::Redactor;

/// How many blobs download at once.
pub(crate) const PARALLEL_PULLS: usize = 3;

/// The timestamp `--reproducible` writes everywhere.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

pub(crate) struct BuildContext<'o> {
    pub opts: &'o BuildOptions,
    pub emitter: Emitter,
    /// The extra detail the event sinks (and the controller) asked for.
    pub detail: Detail,
    /// What stops a running RUN when the controller aborts the build (see
    /// [`Controller::stop_handle`](crate::engine::controller::Controller::stop_handle)).
    pub stop: Option<crate::sandbox::Stop>,
    pub rt: tokio::runtime::Runtime,
    pub registry: Registry,
    pub store: BlobStore,
    /// Build roots, downloads and scratch files; removed when the build ends.
    pub work: WorkDir,
    pub df: Dockerfile,
    pub plan: Plan,
    /// The first target platform (the host's when none was given); each stage's own is
    /// [`Plan::stage_platform`].
    pub platform: Platform,
    /// The build context directory.
    pub context: Root,
    pub dockerignore: DockerIgnore,
    /// What snapshots of a stage's root never look at.
    pub snapshot_ignore: IgnoreList,
    /// Container isolation: what `/` keeps through cleaning, unpacking and snapshots (`None`
    /// in chroot isolation, where build roots are private directories).
    pub slash_keep: Option<IgnoreList>,
    /// The base-image cache directory (`--cache-dir` with `--cache`).
    pub base_cache: Option<BaseImageCache>,
    /// Masks secret build-arg values in history and cache entries.
    pub redactor: Redactor,
    /// Build args used in the credentials of a URL in the Dockerfile: secret, whatever their
    /// names (see [`BuildContext::is_secret_arg`]).
    url_secret_args: Vec<String>,
    /// Which build checks run, and whether a finding fails the build.
    pub checks: CheckConfig,
    /// What `RUN --mount` needs across the build: the cache-mount store, memos, ssh agents.
    pub mounts: MountService,
    /// Whether build roots are overlays of the unpacked-layer store (see `root_store/`).
    pub unpacked: crate::engine::root_store::StoreChoice,
    /// Images resolved in this build, so a reference means one digest throughout.
    resolved: Mutex<HashMap<String, ResolvedImage>>,
    /// The image's layers sent to the destination while they are written (`early_upload.rs`).
    pub early: crate::engine::early_upload::EarlyUploads,
    /// Base images resolved and downloaded ahead of the stages that need them (`prefetch/`).
    pub prefetch: crate::engine::prefetch::Prefetch,
    /// ADD URL downloads by URL (the cache-key planner and the step use the same download).
    downloads: Mutex<HashMap<String, Download>>,
    /// ADD git sources by what they ask for, failures included (a source that cannot be
    /// fetched is tried once, not again by the step after the planner).
    git: Mutex<HashMap<String, GitCheckout>>,
    /// Context files' content digests for cache keys: a file every platform's `COPY . /app`
    /// keys (or two COPYs of one tree) is read once, and, persisted in the cache dir, not again
    /// by the next build while it is unchanged.
    context_digests: ContextDigests,
    /// What layers hold, as viewers were shown it before, kept in the cache dir
    /// (`cache/listings.rs`; `stage/listing.rs` reads and fills it).
    pub listings: crate::cache::listings::Listings,
    /// Rootless isolation: whether the work dir holds files owned by the namespace's ids,
    /// checked at the first [`BuildContext::scratch_dir`].
    work_dir_owners: OnceLock<Result<(), Arc<RootlessError>>>,
}

/// A git source's checkout, or why there is none.
pub(crate) type GitCheckout = Result<Arc<Checkout>, Arc<GitError>>;

impl<'o> BuildContext<'o> {
    /// Reads and plans the Dockerfile, opens the context, and sets up the work dir, the blob
    /// store, the registry client and the isolation. Nothing is pulled yet.
    pub fn new(opts: &'o BuildOptions, emitter: Emitter, detail: Detail) -> Result<BuildContext<'o>, BuildError> {
        let text = crate::engine::preflight::read_dockerfile(opts)?;
        // Credentials written in the Dockerfile's URLs (an ADD of a private repository) are
        // masked in everything reported from here on, and in history and cache entries; so are
        // the build args such a credential is made of (`https://oauth2:${CI_TOKEN}@…`), whatever
        // their names, and their values are fingerprinted in cache keys.
        let mut text_secrets = crate::secrets::url_credentials(&text);
        let url_secret_args: Vec<String> =
            text_secrets.iter().flat_map(|c| crate::cache::key::referenced_names(c)).collect();
        text_secrets.extend(url_secret_args.iter().filter_map(|n| opts.build_args.get(n).cloned()));
        emitter.add_secrets(text_secrets.clone());
        // Before anything is pulled: what the Dockerfile alone shows cannot work.
        let crate::engine::preflight::Planned { df, plan } = crate::engine::preflight::plan_text(opts, &text)?;
        short_secret_args(opts, &emitter)?;
        let default_secrets = secret_arg_defaults(&df, opts);
        emitter.add_secrets(default_secrets.clone());
        text_secrets.extend(default_secrets);
        let platform = opts.target_platform();
        let checks = crate::engine::checks::config(&df, &opts.build_args)?;
        let context = Root::open(&opts.context)
            .map_err(BuildError::fs(format!("open build context {}", opts.context.display())))?;
        let remote_root = opts.remote_context.as_ref().map(|_| opts.context.as_path());
        let dockerignore = DockerIgnore::load_with(&opts.context, &opts.dockerfile, |p| {
            crate::engine::control_file::read(p, remote_root)
        })
        .map_err(BuildError::from)?;
        // Removing a dead build's directory is routine housekeeping, not news for the log (and
        // would make traces depend on what ran before); only a failure to remove one is reported.
        let sweep = scratch::remove_stale(&opts.work_dir);
        for (d, why) in &sweep.failed {
            emitter.warn(format!("cannot remove {}, left behind by a build that did not finish: {why}", d.display()));
        }
        let work = WorkDir::create(&opts.work_dir)
            .map_err(BuildError::io(format!("create work dir in {}", opts.work_dir.display())))?;
        let store = BlobStore::open_scratch(work.path().join("blobs")).map_err(BuildError::store("open blob store"))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(BuildError::io("start async runtime"))?;
        let registry = Registry::new(opts.registry.clone()).map_err(BuildError::Registry)?;
        // A retry is news for the log and the trace (a registry that stalls or fails now and
        // then shows there, not only in the error of one that ran out of attempts).
        let notices = emitter.clone();
        registry.report_retries(move |m| notices.warn(m));
        // An ECR password or a Google token a registry login fetches is masked before it is used.
        let masks = emitter.clone();
        registry.report_secrets(move |s| masks.add_secrets(s));
        let slash_keep = match opts.run.isolation {
            Isolation::Container => Some(container::slash_keep(opts, work.path())?),
            Isolation::Chroot | Isolation::Rootless => None,
        };
        let snapshot_ignore = match &slash_keep {
            Some(keep) => keep.clone(),
            None => {
                let mut i = IgnoreList::new(opts.layers.ignore_paths.iter().map(String::as_str));
                if opts.layers.ignore_var_run {
                    i.add("/var/run");
                }
                i
            }
        };
        let base_cache = match opts.cache.as_ref().and_then(|c| c.dir.as_ref()) {
            Some(dir) => match BaseImageCache::open(dir) {
                Ok(c) => Some(c),
                Err(e) => {
                    emitter.warn(format!("cache directory {} is not usable: {e}", dir.display()));
                    None
                }
            },
            None => None,
        };
        let mounts = MountService::new(opts.run.mounts.cache_dir.as_deref(), work.path());
        // With a usable cache dir, context files unchanged since an earlier build are not read.
        // A fetched context is a new directory every build: nothing to keep for it.
        let context_digests = match &base_cache {
            Some(c) if opts.remote_context.is_none() => ContextDigests::load(c.dir(), &opts.context),
            _ => ContextDigests::default(),
        };
        let listings = match &base_cache {
            Some(c) => crate::cache::listings::Listings::in_cache_dir(c.dir()),
            None => Default::default(),
        };
        let unpacked =
            crate::engine::root_store::StoreChoice::new(opts.layers.unpacked_store.as_deref(), opts.run.isolation);
        let early = crate::engine::early_upload::EarlyUploads::new(
            &opts.output.destinations,
            opts.output.no_push,
            plan.is_multi_platform(),
        );
        Ok(BuildContext {
            early,
            unpacked,
            opts,
            redactor: opts.redactor().with(text_secrets),
            url_secret_args,
            checks,
            mounts,
            emitter,
            detail,
            stop: None,
            rt,
            registry,
            store,
            work,
            df,
            plan,
            platform,
            context,
            dockerignore,
            snapshot_ignore,
            slash_keep,
            base_cache,
            resolved: Mutex::new(HashMap::new()),
            prefetch: Default::default(),
            downloads: Mutex::new(HashMap::new()),
            git: Mutex::new(HashMap::new()),
            context_digests,
            listings,
            work_dir_owners: OnceLock::new(),
        })
    }

    /// Whether a build arg's value is secret: by its name, `--secret-arg`, or because a URL's
    /// credentials are made of it.
    pub fn is_secret_arg(&self, name: &str) -> bool {
        self.opts.is_secret_arg(name) || self.url_secret_args.iter().any(|n| n == name)
    }

    /// Where an instruction is, for errors.
    pub fn location(&self, ins: &Instruction) -> Location {
        Location {
            file: self.opts.dockerfile.display().to_string(),
            line: ins.line,
            instruction: ins.quoted(),
            platform: None,
        }
    }

    /// A fresh directory under the work dir. Every root, copy source, RUN mount and debugger
    /// shell is made in one, so in rootless isolation this is where a build first needs its
    /// namespace's maps, whose wait `userns::enter` deferred (a build whose every step is a
    /// cache hit never gets here): they are waited for, and the work dir is checked once for
    /// holding files owned by the namespace's ids.
    pub fn scratch_dir(&self, name: &str) -> Result<PathBuf, BuildError> {
        if self.opts.run.isolation == Isolation::Rootless {
            let checked = self.work_dir_owners.get_or_init(|| {
                let mapping = crate::sandbox::userns::current_mapping().unwrap_or(Mapping::Single);
                crate::sandbox::userns::check_dir(&self.opts.work_dir, mapping, "--work-dir (or TMPDIR)")
                    .map_err(Arc::new)
            });
            checked.clone().map_err(|e| BuildError::Rootless(RootlessError::Earlier(e)))?;
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(self.work.path())
            .map_err(BuildError::io(format!("create {name} dir")))?
            .keep();
        Ok(dir)
    }

    /// The time a step that runs now is stamped with: the build's fixed time if it has one
    /// ([`fixed_time`](Self::fixed_time)), else now.
    pub fn now_rfc3339(&self) -> String {
        self.fixed_time().unwrap_or_else(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }

    /// The one time every history entry of this build and its image's `created` carry, whenever
    /// their steps ran or were cached: `SOURCE_DATE_EPOCH`'s (as BuildKit dates them), else the
    /// epoch with `--reproducible`; `None`: each is dated when it ran.
    pub fn fixed_time(&self) -> Option<String> {
        match self.plan.source_date_epoch() {
            Ok(Some(secs)) => Some(
                chrono::DateTime::from_timestamp(secs, 0)
                    .map_or_else(|| EPOCH.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ),
            _ if self.opts.layers.reproducible => Some(EPOCH.to_string()),
            _ => None,
        }
    }

    /// A stage's name as the plan has it, else its index (`builder`, `stage 2`).
    /// In a build for several platforms, a stage built for one target says which
    /// (`builder [linux/arm64]`).
    pub fn stage_label(&self, idx: usize) -> String {
        let ps = &self.plan.stages[idx];
        let name = ps.name.clone().unwrap_or_else(|| format!("stage {}", ps.dockerfile_stage));
        match ps.targets.as_slice() {
            [only] if self.plan.is_multi_platform() => format!("{name} [{}]", self.plan.platforms[*only].target),
            _ => name,
        }
    }

    /// The target platforms a checkpoint of stage `idx` names (none in a build for one).
    pub fn checkpoint_targets(&self, idx: usize) -> Vec<String> {
        if self.plan.is_multi_platform() { self.plan.target_names(idx) } else { Vec::new() }
    }

    /// The Dockerfile stage a checkpoint of stage `idx` names (none in a build for one
    /// platform, where it is `idx`).
    pub fn checkpoint_dockerfile_stage(&self, idx: usize) -> Option<usize> {
        self.plan.is_multi_platform().then(|| self.plan.stages[idx].dockerfile_stage)
    }

    /// Resolves an image reference in the registry for `platform`.
    pub fn resolve_image(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, BuildError> {
        let r = Reference::parse(reference).map_err(BuildError::pull(reference))?;
        let mut mirror_failures = Vec::new();
        let img = self.until_stopped(self.registry.resolve_noting(&r, platform, &mut mirror_failures))?;
        for failure in mirror_failures {
            self.emitter.warn(format!("{r}: registry mirror passed over: {failure}"));
        }
        img.map_err(BuildError::pull(reference))
    }

    /// Resolves an image once per build and platform (`None`: the first target platform): the
    /// same reference means the same digest for cache keys and for the copy itself.
    pub fn resolve_once(&self, reference: &str, platform: Option<&Platform>) -> Result<ResolvedImage, BuildError> {
        let platform = platform.unwrap_or(&self.platform);
        let key = crate::engine::prefetch::resolve_key(reference, platform);
        if let Some(img) = self.memoized(&key) {
            return Ok(img);
        }
        // Resolved ahead (`prefetch/`), or failed to be, after the same retries this call
        // would make: its error is this call's.
        let img = match self.prefetched_image(&key) {
            Some((img, mirrors_passed_over)) => {
                let named = match &img {
                    Ok(img) => img.reference.to_string(),
                    Err(_) => Reference::parse(reference).map_or_else(|_| reference.to_string(), |r| r.to_string()),
                };
                for failure in mirrors_passed_over {
                    self.emitter.warn(format!("{named}: registry mirror passed over: {failure}"));
                }
                img.map_err(BuildError::pull(reference))?
            }
            None => self.resolve_image(reference, platform)?,
        };
        self.resolved.lock().unwrap_or_else(|p| p.into_inner()).insert(key, img.clone());
        Ok(img)
    }

    /// An image this build resolved already, by [`crate::engine::prefetch::resolve_key`].
    pub fn memoized(&self, key: &str) -> Option<ResolvedImage> {
        self.resolved.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    /// The content digest of context file `path` (whose stat is `st`), computed by `hash` the
    /// first time (see [`ContextDigests`](crate::engine::context_digests::ContextDigests)).
    pub fn context_digest<E>(
        &self,
        path: &str,
        st: &crate::fs::Stat,
        hash: impl FnOnce() -> Result<crate::digest::Digest, E>,
    ) -> Result<crate::digest::Digest, E> {
        self.context_digests.get_or_hash(path, st, hash)
    }

    /// Keeps the context files' digests for the next build (with a usable cache dir). A
    /// failure only costs that build reading the files again.
    pub fn save_context_digests(&self) {
        if let Err(e) = self.context_digests.save() {
            self.emitter.warn(format!("could not save the context files' digests in the cache dir: {e}"));
        }
    }

    /// The download of `url` if this build already made it.
    pub fn download(&self, url: &str) -> Option<Download> {
        self.downloads.lock().unwrap_or_else(|p| p.into_inner()).get(url).cloned()
    }

    /// Remembers the download of `url` for the rest of the build.
    pub fn remember_download(&self, url: &str, d: Download) {
        self.downloads.lock().unwrap_or_else(|p| p.into_inner()).insert(url.to_string(), d);
    }

    /// The checkout of a git source (by [`crate::engine::steps::copy`]'s key) if this build
    /// already tried it.
    pub fn git_checkout(&self, key: &str) -> Option<GitCheckout> {
        self.git.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    /// Whether a source of the repository `remote` was checked out already in this build.
    pub fn git_fetched(&self, remote: &str) -> bool {
        let prefix = format!("{remote}\0");
        self.git.lock().unwrap_or_else(|p| p.into_inner()).keys().any(|k| k.starts_with(&prefix))
    }

    /// Remembers a git source's checkout (or failure) for the rest of the build.
    pub fn remember_git(&self, key: &str, c: GitCheckout) {
        self.git.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_string(), c);
    }

    /// Downloads every listed blob that is not already in the store, a few at a time.
    pub fn fetch_blobs(&self, layers: &[StageLayer]) -> Result<(), BuildError> {
        use crate::engine::prefetch::Fetched;
        let missing: Vec<&StageLayer> = layers.iter().filter(|l| !self.store.contains(&l.descriptor.digest)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let registry = &self.registry;
        let store = &self.store;
        let emitter = &self.emitter;
        self.until_stopped(async {
            let results: Vec<Result<(), BuildError>> = futures_util::stream::iter(missing)
                .map(|l| async move {
                    let LayerOrigin::Base(repo) = &l.origin else {
                        // A built layer is written to the store before anything can refer to it.
                        return Err(BuildError::Store {
                            what: "a layer built in this build".into(),
                            source: crate::image::store::StoreError::Missing(Box::new(l.descriptor.digest.clone())),
                        });
                    };
                    // Downloaded ahead (`prefetch/`): taken up, failure included (with its
                    // retries spent); one that was stopped is downloaded here.
                    match self.prefetched_blob(&l.descriptor.digest).await {
                        Fetched::Stored => return Ok(()),
                        Fetched::Failed(e) => {
                            if let Some(e) = e.lock().unwrap_or_else(|p| p.into_inner()).take() {
                                return Err(BuildError::pull(repo.to_string())(e));
                            }
                        }
                        Fetched::Skipped => {}
                    }
                    let progress = crate::engine::prefetch::progress_reporter(
                        emitter.clone(),
                        repo.to_string(),
                        &l.descriptor.digest,
                    );
                    registry
                        .fetch_blob(repo, &l.descriptor, store, &progress)
                        .await
                        .map_err(BuildError::pull(repo.to_string()))
                })
                .buffer_unordered(PARALLEL_PULLS)
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<()>, _>>().map(|_| ())
        })?
    }
}

/// Secret build args too short to mask ([`Redactor::MIN_LEN`](crate::secrets::Redactor::MIN_LEN)
/// bytes; masking every `1` or `on` would wreck the log and protect nothing). One the user named
/// with `--secret-arg` is refused: trowel was told it is secret and cannot keep it so. One that
/// is secret by its name alone (`SKIP_AUTH=1` is as likely as a token) is built with a warning
/// that it is shown as it is, rather than silently.
fn short_secret_args(opts: &BuildOptions, emitter: &Emitter) -> Result<(), BuildError> {
    let short = |v: &String| !v.is_empty() && v.len() < crate::secrets::Redactor::MIN_LEN;
    for (name, value) in opts.build_args.iter().filter(|(n, v)| opts.is_secret_arg(n) && short(v)) {
        if opts.secret_args.iter().any(|n| n == name) {
            return Err(BuildError::Options(format!(
                "--secret-arg {name}: its value is {} byte(s), too short to mask (at least {} are needed): \
                 give a longer value, or drop --secret-arg {name} if it is not secret",
                value.len(),
                crate::secrets::Redactor::MIN_LEN
            )));
        }
        emitter.warn(format!(
            "build arg {name} looks secret by its name, but its value is {} byte(s), too short to mask: it is \
             shown as it is in the log, the trace and RUN output (history still writes ***)",
            value.len()
        ));
    }
    Ok(())
}

/// The defaults the Dockerfile writes for secret args (`ARG DB_PASSWORD=dev-pass`): history shows
/// a secret arg's value masked wherever it came from, so the log, the trace, a RUN's output and
/// cache entries must not show the default either. A default made of variables
/// (`ARG TOKEN=$OTHER`) is masked by what it expands to, when that is secret itself.
fn secret_arg_defaults(df: &crate::dockerfile::Dockerfile, opts: &BuildOptions) -> Vec<String> {
    let instructions = df.global_args.iter().chain(df.stages.iter().flat_map(|s| s.instructions.iter()));
    let mut out = Vec::new();
    for ins in instructions {
        let crate::dockerfile::InstructionKind::Arg(pairs) = &ins.kind else { continue };
        for (name, default) in pairs {
            let Some(raw) = default.as_deref().filter(|d| !d.contains('$')) else { continue };
            if !opts.is_secret_arg(name) {
                continue;
            }
            out.push(raw.to_string());
            // As written (`"a b"`) and as it reaches a RUN (`a b`).
            for q in ['"', '\''] {
                if let Some(inner) = raw.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
                    out.push(inner.to_string());
                }
            }
        }
    }
    out
}
