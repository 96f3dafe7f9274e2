//! Everything a build needs to know, independent of how it was asked for (CLI flags, tests).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::fs::snapshot::SnapshotMode;
use crate::image::manifest::{Compression, Platform};
use crate::registry::RegistryOptions;
use crate::sandbox::Isolation;

/// Default `--max-file-size`: larger than any file real images carry (model weights included),
/// small enough that one hostile entry cannot fill a CI runner's disk.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 16 << 30;
/// Default `--max-layer-size`: real layers stay far below it, while a gzip bomb (1000:1) needs
/// only a few tens of megabytes to reach it.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 32 << 30;

#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Path of the Dockerfile (already resolved against the working directory or context).
    pub dockerfile: PathBuf,
    /// The build context directory.
    pub context: PathBuf,
    /// Push targets (`registry/repo:tag`).
    pub destinations: Vec<String>,
    /// `--build-arg` values (those given as bare `K` already resolved from the environment).
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// `--custom-platform`; the host platform when unset.
    pub platform: Option<Platform>,
    pub no_push: bool,
    pub tar_path: Option<PathBuf>,
    pub oci_layout_path: Option<PathBuf>,
    pub digest_file: Option<PathBuf>,
    pub image_name_with_digest_file: Option<PathBuf>,
    pub image_name_tag_with_digest_file: Option<PathBuf>,
    /// Zero every timestamp so repeated builds give byte-identical images.
    pub reproducible: bool,
    pub snapshot_mode: SnapshotMode,
    /// One layer per stage, taken at its end.
    pub single_snapshot: bool,
    /// `--label k=v`, applied to every stage.
    pub labels: Vec<(String, String)>,
    /// Extra image paths never snapshotted (`--ignore-path`).
    pub ignore_paths: Vec<String>,
    /// Ignore `/var/run` as kaniko does by default.
    pub ignore_var_run: bool,
    pub compression: Compression,
    pub compression_level: Option<i32>,
    pub registry: RegistryOptions,
    /// Where build roots and blobs live while building (removed afterwards).
    pub work_dir: PathBuf,
    pub isolation: Isolation,
    /// The trowel binary that hosts the sandbox helper (`/proc/self/exe` normally).
    pub helper_exe: PathBuf,
    /// Add a layer even for steps that changed nothing.
    pub force_build_metadata: bool,
    pub skip_push_permission_check: bool,
    /// Optional limit per RUN.
    pub run_timeout: Option<Duration>,
    /// Largest file a layer (base image, cached layer or ADD archive) may hold; `None`: no limit.
    pub max_file_size: Option<u64>,
    /// Most bytes of file data one layer may unpack to; `None`: no limit. Stops decompression
    /// bombs before they fill the disk.
    pub max_layer_size: Option<u64>,
    /// The layer cache (`--cache`); `None` when disabled.
    pub cache: Option<CacheOptions>,
    /// Report the paths of cached layers even when they are not unpacked (for traces).
    pub describe_cached_layers: bool,
    /// Report small text files' content before and after each step, up to this size.
    pub capture_contents: Option<u64>,
    /// Build args whose values are secret besides those with secret-looking names.
    pub secret_args: Vec<String>,
    /// trowel's own directory in container isolation (never part of the image).
    pub trowel_dir: PathBuf,
    /// Use container isolation even where trowel sees no container.
    pub force: bool,
    /// Empty the container's `/` after the build (container isolation).
    pub cleanup: bool,
}

/// kaniko's cache flags.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// `--cache-repo`; default: the first destination's repository + `/cache`.
    pub repo: Option<String>,
    /// `--cache-ttl`: older entries are misses.
    pub ttl: Duration,
    /// `--cache-ttl` as written, for messages.
    pub ttl_text: String,
    /// `--cache-run-layers` (RUN and WORKDIR steps).
    pub run_layers: bool,
    /// `--cache-copy-layers` (COPY and ADD steps).
    pub copy_layers: bool,
    /// `--cache-dir`: the base-image cache filled by `trowel warm`.
    pub dir: Option<PathBuf>,
    /// `--no-push-cache`: look up, never write.
    pub no_push: bool,
}

impl Default for CacheOptions {
    fn default() -> CacheOptions {
        CacheOptions {
            repo: None,
            ttl: Duration::from_secs(336 * 3600),
            ttl_text: "336h".into(),
            run_layers: true,
            copy_layers: false,
            dir: None,
            no_push: false,
        }
    }
}

impl BuildOptions {
    /// Options with kaniko's defaults for a Dockerfile and context.
    pub fn new(dockerfile: impl Into<PathBuf>, context: impl Into<PathBuf>) -> BuildOptions {
        BuildOptions {
            dockerfile: dockerfile.into(),
            context: context.into(),
            destinations: Vec::new(),
            build_args: BTreeMap::new(),
            target: None,
            platform: None,
            no_push: false,
            tar_path: None,
            oci_layout_path: None,
            digest_file: None,
            image_name_with_digest_file: None,
            image_name_tag_with_digest_file: None,
            reproducible: false,
            snapshot_mode: SnapshotMode::Full,
            single_snapshot: false,
            labels: Vec::new(),
            ignore_paths: Vec::new(),
            ignore_var_run: true,
            compression: Compression::Gzip,
            compression_level: None,
            registry: RegistryOptions::default(),
            work_dir: std::env::temp_dir(),
            isolation: Isolation::Chroot,
            helper_exe: PathBuf::from("/proc/self/exe"),
            force_build_metadata: false,
            skip_push_permission_check: false,
            run_timeout: None,
            max_file_size: Some(DEFAULT_MAX_FILE_SIZE),
            max_layer_size: Some(DEFAULT_MAX_LAYER_SIZE),
            cache: None,
            describe_cached_layers: false,
            capture_contents: None,
            secret_args: Vec::new(),
            trowel_dir: PathBuf::from("/trowel"),
            force: false,
            cleanup: false,
        }
    }

    /// Masks this build's secret values (for events, history and cache entries).
    pub fn redactor(&self) -> crate::secrets::Redactor {
        crate::secrets::Redactor::new(crate::secrets::secret_build_args(&self.build_args, &self.secret_args))
    }

    /// Whether a build arg's value is secret.
    pub fn is_secret_arg(&self, name: &str) -> bool {
        crate::secrets::is_secret_name(name) || self.secret_args.iter().any(|n| n == name)
    }

    pub fn target_platform(&self) -> Platform {
        self.platform.clone().unwrap_or_else(Platform::host)
    }
}
