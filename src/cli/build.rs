//! `trowel build`'s flags (kaniko's executor flags, with kaniko's meanings) and their
//! conversion, once, into the engine's `BuildOptions`.

use std::path::PathBuf;

use clap::{ArgAction, Args, ValueEnum};

use trowel_engine::duration::parse_go_duration;
use trowel_engine::engine::mounts::options::{MountOptions, parse_allow, parse_secret, parse_ssh};
use trowel_engine::engine::{BuildOptions, LayerOptions, OutputOptions, RunOptions};
use trowel_engine::fs::snapshot::SnapshotMode;
use trowel_engine::image::annotations::Annotations;
use trowel_engine::image::manifest::{Compression, Platform};
use trowel_engine::registry::RegistryOptions;
use trowel_engine::sandbox::Isolation;

use super::{CliError, LogArgs, RegistryArgs, parse_build_args, parse_kv, parse_size_arg, resolve_dockerfile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SnapshotModeArg {
    Full,
    Redo,
    Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IsolationArg {
    /// rootless for an ordinary user, container inside a container, chroot elsewhere.
    Auto,
    /// Private namespaces around a build root directory (needs root).
    Chroot,
    /// The build root is / of this (disposable) container: kaniko's model for unprivileged pods.
    Container,
    /// chroot's isolation inside a user namespace of trowel's own: an ordinary user's build
    /// (needs /etc/subuid and /etc/subgid ranges and newuidmap for images with other owners).
    Rootless,
}

impl IsolationArg {
    /// The isolation this flag means here. An ordinary user gets rootless (nothing else can
    /// work without root); so does trowel once `main()` has made it root of its own user
    /// namespace.
    pub fn resolve(self) -> Isolation {
        match self {
            IsolationArg::Chroot => Isolation::Chroot,
            IsolationArg::Container => Isolation::Container,
            IsolationArg::Rootless => Isolation::Rootless,
            IsolationArg::Auto if trowel_engine::sandbox::userns::current_mapping().is_some() => Isolation::Rootless,
            IsolationArg::Auto if !trowel_engine::sandbox::userns::running_as_root() => Isolation::Rootless,
            IsolationArg::Auto if trowel_engine::sandbox::detect::container_evidence().is_some() => {
                Isolation::Container
            }
            IsolationArg::Auto => Isolation::Chroot,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Path to the Dockerfile: absolute, relative to the working directory, or relative to the
    /// context (default: the context's Dockerfile).
    #[arg(short = 'f', long)]
    pub dockerfile: Option<PathBuf>,
    /// Build context: a directory (PATH or dir://PATH), tar://PATH (a .tar or .tar.gz),
    /// tar://stdin, git://HOST/REPO.git#REF#COMMIT (over https; GIT_PULL_METHOD=http|git) or
    /// https://HOST/REPO.git#REF#COMMIT. Git credentials: GIT_USERNAME and GIT_PASSWORD, or
    /// GIT_TOKEN.
    /// s3://BUCKET[/KEY]: an archive in S3 (AWS_* credentials and region, S3_ENDPOINT, S3_FORCE_PATH_STYLE).
    /// https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB: Azure Blob Storage (AZURE_STORAGE_ACCESS_KEY, a SAS token in the URL, AZURE_STORAGE_CONNECTION_STRING, or AKS workload identity).
    /// Any other https://HOST/PATH: an archive downloaded (basic auth in the URL; SSL_CERT_FILE adds a CA).
    /// gs://BUCKET/OBJECT: Google Cloud Storage (Application Default Credentials; STORAGE_EMULATOR_HOST).
    /// Default: the working directory.
    #[arg(short = 'c', long, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// kaniko's --bucket: the context from Google Cloud Storage, gs://NAME/context.tar.gz for a
    /// bucket NAME, or any context URL (SCHEME://…); it replaces a --context URL.
    #[arg(short = 'b', long, value_name = "NAME|URL")]
    pub bucket: Option<String>,
    /// Subdirectory of the context to use as the context (any kind of context).
    #[arg(long)]
    pub context_sub_path: Option<String>,
    /// A git context's options (kaniko's): branch=NAME, single-branch=BOOL,
    /// recurse-submodules=BOOL, insecure-skip-tls=BOOL, and depth=N (default: all history);
    /// comma-separated or repeated.
    #[arg(long = "git", value_name = "KEY=VALUE,…")]
    pub git: Vec<String>,
    /// Registry location to push to (repeatable).
    #[arg(short = 'd', long = "destination")]
    pub destinations: Vec<String>,
    /// Build-time variable `K=V`, or `K` to take the value from the environment (repeatable).
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Stage to build (default: the last).
    #[arg(long)]
    pub target: Option<String>,
    /// Platform `os/arch[/variant]` to pull base images for and to record in the image
    /// (kaniko's name; one platform).
    #[arg(long, alias = "customPlatform")]
    pub custom_platform: Option<String>,
    /// Target platforms, `os/arch[/variant]`: repeat the flag or separate them with commas.
    /// Every platform is built and the destinations receive an image index naming each
    /// platform's image.
    #[arg(long = "platform", value_delimiter = ',', action = ArgAction::Append)]
    pub platforms: Vec<String>,
    /// Build without pushing.
    #[arg(long, env = "KANIKO_NO_PUSH", num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub no_push: bool,
    /// Write the image as a docker-archive tarball.
    #[arg(long, alias = "tarPath")]
    pub tar_path: Option<PathBuf>,
    /// Write the image as an OCI layout directory.
    #[arg(long)]
    pub oci_layout_path: Option<PathBuf>,
    /// Write the pushed image's digest to this file.
    #[arg(long)]
    pub digest_file: Option<PathBuf>,
    /// Write `repo@digest` for each destination to this file.
    #[arg(long)]
    pub image_name_with_digest_file: Option<PathBuf>,
    /// Write `repo:tag@digest` for each destination to this file.
    #[arg(long)]
    pub image_name_tag_with_digest_file: Option<PathBuf>,
    /// Zero all timestamps so identical inputs give identical images.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub reproducible: bool,
    /// How to detect changed files: full (metadata + content), redo (metadata), time (mtime only).
    #[arg(long, alias = "snapshotMode", value_enum, default_value = "full")]
    pub snapshot_mode: SnapshotModeArg,
    /// Take one snapshot per stage, at its end.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub single_snapshot: bool,
    /// Label `k=v` added to the image (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// OCI annotation (buildx's syntax, repeatable): KEY=VALUE on the image manifest;
    /// manifest[PLATFORM]:KEY=VALUE on one platform's; index:KEY=VALUE on the index and
    /// manifest-descriptor[PLATFORM]:KEY=VALUE on its entries (builds for several platforms).
    /// An annotated image has OCI media types.
    #[arg(long = "annotation", value_name = "[TYPE[PLATFORM]:]KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Path never snapshotted (repeatable).
    #[arg(long = "ignore-path")]
    pub ignore_paths: Vec<String>,
    /// Ignore /var/run when snapshotting (kaniko's default).
    #[arg(long, alias = "whitelist-var-run", num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "true")]
    pub ignore_var_run: bool,
    /// Layer compression.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,
    /// Compression level (gzip 1-9, zstd 1-22); default: gzip 2 (the size of kaniko's gzip level 1), zstd 3.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub compression_level: i32,
    /// Accepted for kaniko compatibility; trowel always streams layers and never caches them in memory.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "true")]
    pub compressed_caching: bool,
    /// Push over plain HTTP.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub insecure: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Push without verifying TLS certificates (and pull: kaniko's flag covers both in effect).
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub skip_tls_verify: bool,
    /// Retries for pushes.
    #[arg(long, default_value_t = 3)]
    pub push_retry: u32,
    /// Accepted for kaniko compatibility (extraction is not retried; downloads are).
    #[arg(long, default_value_t = 0)]
    pub image_fs_extract_retry: u32,
    /// A registry's refusal to move an immutable tag (ECR, Artifact Registry) ends that push
    /// without error, with a warning (kaniko ≥ 1.21).
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub push_ignore_immutable_tag_errors: bool,
    /// Skip checking push access before building.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub skip_push_permission_check: bool,
    /// Add layers even for steps that changed no files.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub force_build_metadata: bool,
    /// Accepted for kaniko compatibility: trowel always builds only the stages the target needs.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "true")]
    pub skip_unused_stages: bool,
    /// Accepted for kaniko compatibility: trowel's RUN snapshot is always a metadata walk.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub use_new_run: bool,
    /// With container isolation: empty / after the build (build roots elsewhere are always removed).
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub cleanup: bool,
    /// Allow --isolation=container where trowel sees no container (it overwrites /).
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub force: bool,
    /// Use the layer cache (and the base-image cache directory).
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub cache: bool,
    /// Repository for cached layers (default: the first destination's repository + /cache).
    #[arg(long)]
    pub cache_repo: Option<String>,
    /// Cached layers older than this are not used (Go duration, e.g. 336h, 30m).
    #[arg(long, default_value = "336h")]
    pub cache_ttl: String,
    /// Cache RUN (and WORKDIR) layers.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "true")]
    pub cache_run_layers: bool,
    /// Cache COPY and ADD layers.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub cache_copy_layers: bool,
    /// Local base-image cache filled by `trowel warm`; when it exists, also where layers are
    /// kept unpacked between builds (`unpacked/`) and cache mounts persist (`mounts/`).
    #[arg(long, default_value = "/cache")]
    pub cache_dir: PathBuf,
    /// Roots whose layers add up to less than this, compressed, are unpacked into a directory
    /// instead of mounted from the cache dir's unpacked-layer store: a RUN makes and deletes
    /// files faster outside an overlay, and a base this small unpacks about as fast as it
    /// mounts (e.g. 4MiB, 0: always the store).
    #[arg(long, default_value = "4MiB", value_parser = parse_size_arg, value_name = "SIZE", env = "TROWEL_UNPACKED_STORE_MIN_SIZE")]
    pub unpacked_store_min_size: u64,
    /// After the build, prune the cache dir to at most this size (e.g. 20GB), least recently
    /// used entries first, as `trowel cache prune --max-size` does (off by default: see README).
    #[arg(long, value_parser = parse_size_arg, value_name = "SIZE")]
    pub cache_dir_max_size: Option<u64>,
    /// Look up cached layers but never push new ones.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub no_push_cache: bool,
    /// Working directory for build roots and blobs (default: the system temp dir; with container
    /// isolation, <trowel dir>/work).
    #[arg(long, env = "TROWEL_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// trowel's own directory in container isolation, never part of the image: its work dir,
    /// bundled git and cache mounts (kaniko's /kaniko; --kaniko-dir is accepted for it).
    /// Default: $KANIKO_DIR, else $TROWEL_DIR, else /trowel.
    #[arg(long, alias = "kaniko-dir")]
    pub trowel_dir: Option<PathBuf>,
    /// How RUN is isolated.
    #[arg(long, value_enum, default_value = "auto")]
    pub isolation: IsolationArg,
    /// Kill a RUN step after this many seconds.
    #[arg(long)]
    pub run_timeout: Option<u64>,
    /// Refuse a layer (base image, cached layer, ADD archive) holding a file larger than this
    /// (e.g. 2GiB, 500MB; 0: no limit).
    #[arg(long, default_value = "16GiB", value_parser = parse_size_arg)]
    pub max_file_size: u64,
    /// Refuse a layer whose files add up to more than this once unpacked, e.g. a decompression
    /// bomb (e.g. 10GiB; 0: no limit).
    #[arg(long, default_value = "32GiB", value_parser = parse_size_arg)]
    pub max_layer_size: u64,
    /// Refuse a layer (base image, cached layer, ADD archive, context archive) holding more
    /// entries than this, e.g. millions of empty files that would use up the inodes (0: no
    /// limit).
    #[arg(long, default_value_t = trowel_engine::engine::options::DEFAULT_MAX_LAYER_ENTRIES)]
    pub max_layer_entries: u64,
    /// Pause at this breakpoint and ask on the terminal: a line number, stage:NAME, failure,
    /// cache-miss, size:SIZE or path:GLOB (repeatable); PLATFORM@BREAKPOINT (linux/arm64@12)
    /// only on that target platform.
    #[arg(long = "break", value_name = "BREAKPOINT")]
    pub breakpoints: Vec<String>,
    /// Pause when a step fails.
    #[arg(long)]
    pub break_on_failure: bool,
    /// When a step fails, open a shell in its build root (then fail the build).
    #[arg(long)]
    pub shell_on_failure: bool,
    /// Show the image and ask on the terminal before pushing; without a terminal, refuse to push.
    #[arg(long)]
    pub require_approval: bool,
    /// A build arg whose value is secret (masked in logs and traces); names containing TOKEN,
    /// PASSWORD, SECRET, KEY… are secret already (repeatable).
    #[arg(long = "secret-arg", value_name = "NAME")]
    pub secret_args: Vec<String>,
    /// A secret for `RUN --mount=type=secret` (buildx's syntax): id=ID,src=FILE, id=ID,env=VAR,
    /// or id=ID for the environment variable ID (repeatable). Masked in logs and traces.
    #[arg(long = "secret", value_name = "id=ID[,src=FILE|,env=VAR]")]
    pub secrets: Vec<String>,
    /// An ssh agent for `RUN --mount=type=ssh` (buildx's syntax): default or ID for
    /// $SSH_AUTH_SOCK, ID=SOCKET, or ID=KEYFILE[,KEYFILE…] (repeatable).
    #[arg(long = "ssh", value_name = "ID[=SOCKET|KEYFILE,…]")]
    pub ssh: Vec<String>,
    /// Grant an entitlement a Dockerfile may ask for: security.insecure (`RUN
    /// --security=insecure`), network.host (repeatable).
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub allow: Vec<String>,
    /// Where `RUN --mount=type=cache` directories persist between builds (default:
    /// <cache-dir>/mounts when the cache dir exists, else /var/cache/trowel/mounts, or
    /// <trowel-dir>/mount-cache in container isolation, or $XDG_CACHE_HOME/trowel/mounts
    /// rootless).
    #[arg(long, env = "TROWEL_MOUNT_CACHE_DIR")]
    pub mount_cache_dir: Option<PathBuf>,
    /// Record every build event to this file (JSON Lines) for `trowel replay`.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// With --trace: record the content before and after of changed text files up to this size.
    #[arg(long, default_value = "64KiB", value_parser = parse_size_arg)]
    pub trace_content_limit: u64,
    /// With --trace: also record every base-image layer's file listing, so that `trowel replay`
    /// can show the whole file system at any step (Files pane). Downloads the base image's
    /// layers even when every step is cached.
    #[arg(long)]
    pub trace_base_listings: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

impl BuildArgs {
    /// The isolation, and why when the automatic choice had to settle for container isolation.
    /// In a container, chroot isolation is probed (its real set-up, a few milliseconds) before
    /// anything is pulled: chosen automatically when the container has a user namespace of its
    /// own and allows it, refused with what was refused when asked for and impossible.
    fn choose_isolation(&self) -> Result<(Isolation, Option<String>), CliError> {
        use trowel_engine::sandbox::{self, ChrootProbe, detect};
        let helper = std::path::Path::new(sandbox::DEFAULT_HELPER);
        let scratch = || self.work_dir.clone().unwrap_or_else(std::env::temp_dir);
        match self.isolation {
            IsolationArg::Container => Ok((Isolation::Container, None)),
            IsolationArg::Rootless => Ok((Isolation::Rootless, None)),
            // An ordinary user, or trowel once `main()` has made it root of its own user
            // namespace: `resolve` says rootless, and nothing is probed.
            IsolationArg::Auto if self.isolation.resolve() == Isolation::Rootless => Ok((Isolation::Rootless, None)),
            IsolationArg::Chroot if detect::container_evidence().is_some() => {
                match sandbox::probe_chroot(helper, &scratch()) {
                    ChrootProbe::Works => Ok((Isolation::Chroot, None)),
                    ChrootProbe::Refused(why) => Err(CliError(format!(
                        "--isolation=chroot cannot work in this container: {why}{}",
                        sandbox::chroot_hint(&why)
                    ))),
                }
            }
            IsolationArg::Chroot => Ok((Isolation::Chroot, None)),
            IsolationArg::Auto if detect::container_evidence().is_some() => {
                let (isolation, note) = sandbox::choose_in_container(helper, &scratch());
                Ok((isolation, note))
            }
            IsolationArg::Auto => Ok((Isolation::Chroot, None)),
        }
    }

    pub fn to_options(&self) -> Result<BuildOptions, CliError> {
        self.to_options_stoppable(None)
    }

    /// [`to_options`](Self::to_options), a remote context's fetch given up when `stop` is
    /// asked for (a signal during a long download or clone: `context_arg.rs`).
    pub fn to_options_stoppable(&self, stop: Option<&trowel_engine::engine::Stop>) -> Result<BuildOptions, CliError> {
        let references = self.destinations.iter().map(|d| ("destination", d));
        super::registry::refuse_credentials(references.chain(self.cache_repo.iter().map(|c| ("cache-repo", c))))?;
        let (isolation, isolation_note) = self.choose_isolation()?;
        // What the flags alone refuse, before a remote context is fetched.
        let platforms = target_platforms(self.custom_platform.as_deref(), &self.platforms)?;
        let annotations = Annotations::parse(&self.annotations).map_err(CliError)?;
        let built = if platforms.is_empty() { vec![Platform::host()] } else { platforms.clone() };
        annotations.check(&built).map_err(CliError)?;
        let work_dir = match (&self.work_dir, isolation) {
            (Some(w), _) => w.clone(),
            (None, Isolation::Container) => self.trowel_dir().join("work"),
            (None, Isolation::Chroot | Isolation::Rootless) => std::env::temp_dir(),
        };
        let (context, remote_context) = crate::context_arg::context(self, isolation, &work_dir, stop)?;
        // Without -f, the context's own Dockerfile: never one that happens to sit in the working
        // directory.
        let dockerfile = match (&self.dockerfile, &remote_context) {
            // In a remote context the file is looked for inside it, links followed there, when
            // it is read (`control_file.rs`): a host path named by the archive is not looked at.
            (None, Some(_)) => context.join("Dockerfile"),
            (Some(d), Some(_)) if !d.is_absolute() && !d.is_file() => context.join(d),
            (Some(d), _) => resolve_dockerfile(d, &context)?,
            (None, None) => resolve_dockerfile(&context.join("Dockerfile"), &context)?,
        };
        if self.destinations.is_empty() && !self.no_push {
            return Err(CliError("no --destination given: add one, or use --no-push".into()));
        }
        // kaniko refuses these too: the file names each destination, and there is none.
        for (flag, set) in [
            ("image-name-with-digest-file", self.image_name_with_digest_file.is_some()),
            ("image-name-tag-with-digest-file", self.image_name_tag_with_digest_file.is_some()),
        ] {
            if set && self.destinations.is_empty() {
                return Err(CliError(format!("--{flag} needs a --destination: the file names each destination")));
            }
        }
        let mut registry = RegistryOptions {
            insecure: self.insecure,
            skip_tls_verify: self.skip_tls_verify,
            // Each direction its own flag: `--image-download-retry 0` was raised to
            // `--push-retry`'s 3.
            retries: self.registry.image_download_retry,
            push_retries: Some(self.push_retry),
            ..self.registry.options()?
        };
        registry.user_agent = format!("trowel/{}", env!("CARGO_PKG_VERSION"));
        let mut o = BuildOptions::new(dockerfile, context);
        o.remote_context = remote_context;
        o.build_args = parse_build_args(&self.build_args)?;
        o.secret_args = self.secret_args.clone();
        o.target = self.target.clone();
        o.platforms = platforms;
        o.labels = parse_kv("label", &self.labels)?;
        o.registry = registry;
        o.work_dir = work_dir;
        o.output = OutputOptions {
            destinations: self.destinations.clone(),
            no_push: self.no_push,
            skip_push_permission_check: self.skip_push_permission_check,
            push_ignore_immutable_tag_errors: self.push_ignore_immutable_tag_errors,
            tar_path: self.tar_path.clone(),
            oci_layout_path: self.oci_layout_path.clone(),
            digest_file: self.digest_file.clone(),
            image_name_with_digest_file: self.image_name_with_digest_file.clone(),
            image_name_tag_with_digest_file: self.image_name_tag_with_digest_file.clone(),
            annotations,
        };
        o.layers = LayerOptions {
            reproducible: self.reproducible,
            snapshot_mode: match self.snapshot_mode {
                SnapshotModeArg::Full => SnapshotMode::Full,
                SnapshotModeArg::Redo => SnapshotMode::Redo,
                SnapshotModeArg::Time => SnapshotMode::Time,
            },
            single_snapshot: self.single_snapshot,
            compression: match self.compression {
                CompressionArg::Gzip => Compression::Gzip,
                CompressionArg::Zstd => Compression::Zstd,
            },
            compression_level: (self.compression_level > 0).then_some(self.compression_level),
            force_build_metadata: self.force_build_metadata,
            ignore_paths: self.ignore_paths.clone(),
            ignore_var_run: self.ignore_var_run,
            max_file_size: (self.max_file_size > 0).then_some(self.max_file_size),
            max_layer_size: (self.max_layer_size > 0).then_some(self.max_layer_size),
            max_layer_entries: (self.max_layer_entries > 0).then_some(self.max_layer_entries),
            // Used whenever the cache dir exists, as cache mounts are (`--cache` is about the
            // registry's layer cache; layers unpacked here are never pushed anywhere).
            unpacked_store: self.cache_dir.is_dir().then(|| self.cache_dir.join("unpacked")),
            unpacked_store_min_size: self.unpacked_store_min_size,
        };
        o.run = RunOptions {
            isolation,
            isolation_note,
            timeout: self.run_timeout.map(std::time::Duration::from_secs),
            trowel_dir: self.trowel_dir(),
            force: self.force,
            cleanup: self.cleanup,
            mounts: self.mount_options(isolation)?,
            ..RunOptions::default()
        };
        if self.cache {
            let ttl = parse_go_duration(&self.cache_ttl).map_err(|_| {
                CliError(format!("invalid --cache-ttl {:?}: expected a duration like 336h or 30m", self.cache_ttl))
            })?;
            o.cache = Some(trowel_engine::engine::CacheOptions {
                repo: self.cache_repo.clone(),
                ttl,
                ttl_text: self.cache_ttl.clone(),
                run_layers: self.cache_run_layers,
                copy_layers: self.cache_copy_layers,
                dir: Some(self.cache_dir.clone()).filter(|d| d.is_dir()),
                no_push: self.no_push_cache,
            });
            if self.cache_repo.is_none() && self.destinations.is_empty() {
                return Err(CliError("--cache needs --cache-repo or a --destination to derive it from".into()));
            }
            // kaniko's `cacheFlagsValid`: with --no-push the cache repository is not derived from
            // a destination, which would have the build write to the registry it was told not to.
            if self.cache_repo.is_none() && self.no_push {
                return Err(CliError(
                    "--cache with --no-push needs --cache-repo (it is not derived from a --destination that is \
                     not pushed to)"
                        .into(),
                ));
            }
        }
        Ok(o)
    }
}

impl BuildArgs {
    /// `--trowel-dir` (or kaniko's `--kaniko-dir`: the flag wins over the variable, as in
    /// kaniko), else kaniko's `KANIKO_DIR`, else `TROWEL_DIR`, else `/trowel`. `KANIKO_DIR`
    /// comes first because trowel's image sets `TROWEL_DIR` for every job, while only a job
    /// that means it sets `KANIKO_DIR`.
    pub fn trowel_dir(&self) -> PathBuf {
        trowel_dir(self.trowel_dir.as_deref(), &|k| std::env::var_os(k))
    }

    /// `--secret`, `--ssh`, `--allow` and where cache mounts persist.
    fn mount_options(&self, isolation: Isolation) -> Result<MountOptions, CliError> {
        let env = |k: &str| std::env::var(k).ok();
        let mut secrets = Vec::new();
        for flag in &self.secrets {
            let s = parse_secret(flag, &env).map_err(CliError)?;
            if secrets.iter().any(|x: &trowel_engine::engine::mounts::Secret| x.id == s.id) {
                return Err(CliError(format!("--secret id={} is given twice", s.id)));
            }
            secrets.push(s);
        }
        let mut ssh = Vec::new();
        for flag in &self.ssh {
            let a = parse_ssh(flag, &env).map_err(CliError)?;
            if ssh.iter().any(|x: &trowel_engine::engine::mounts::SshAgent| x.id == a.id) {
                return Err(CliError(format!("--ssh {} is given twice", a.id)));
            }
            ssh.push(a);
        }
        let cache_dir = match (&self.mount_cache_dir, isolation) {
            (Some(d), _) => d.clone(),
            (None, _) if self.cache_dir.is_dir() => self.cache_dir.join("mounts"),
            (None, Isolation::Container) => self.trowel_dir().join("mount-cache"),
            (None, Isolation::Chroot) => PathBuf::from("/var/cache/trowel/mounts"),
            // The user's own cache (XDG's), as buildah keeps a rootless user's storage.
            (None, Isolation::Rootless) => user_cache_home().join("trowel/mounts"),
        };
        Ok(MountOptions {
            cache_dir: Some(cache_dir),
            secrets,
            ssh,
            allow_insecure: parse_allow(&self.allow).map_err(CliError)?,
        })
    }
}

/// `$XDG_CACHE_HOME`, else `$HOME/.cache`, else the temporary directory.
fn user_cache_home() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache"))).unwrap_or_else(std::env::temp_dir)
}

/// `BuildArgs::trowel_dir` with the environment given as `var`.
fn trowel_dir(flag: Option<&std::path::Path>, var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let var = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    flag.map(PathBuf::from)
        .or_else(|| var("KANIKO_DIR"))
        .or_else(|| var("TROWEL_DIR"))
        .unwrap_or_else(|| PathBuf::from("/trowel"))
}

/// `--custom-platform` (one) or `--platform` (several), parsed: each valid; one given again
/// (in any spelling: `linux/x86_64` after `linux/amd64`) is built once, as buildx dedupes its
/// `--platform` list.
fn target_platforms(custom: Option<&str>, listed: &[String]) -> Result<Vec<Platform>, CliError> {
    if custom.is_some() && !listed.is_empty() {
        return Err(CliError(
            "--custom-platform and --platform both given: name every platform with --platform".into(),
        ));
    }
    let mut out: Vec<Platform> = Vec::new();
    for text in custom.into_iter().chain(listed.iter().map(String::as_str)) {
        let text = text.trim();
        let p = Platform::parse(text).map_err(CliError)?;
        if !out.iter().any(|q| q.matches(&p) && p.matches(q)) {
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
