//! Everything a build needs to know, independent of how it was asked for (CLI flags, tests).
//!
//! Options are grouped by who reads them, so each part of the engine is handed only its group:
//! the stage runner and the layer writer read [`LayerOptions`], RUN and the debug shell
//! [`RunOptions`], the end of the build [`OutputOptions`], the registry client its
//! [`RegistryOptions`], the layer cache [`CacheOptions`]. What a build *reports* (file contents,
//! listings of cached layers) is not an option: the event sinks say what detail they want
//! ([`trowel_events::Detail`]), and the engine does that work only when one asks.

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
/// Default `--max-layer-entries`: the largest real layers hold a few hundred thousand entries
/// (a Debian toolchain's whole `/usr` is about 150,000), while a layer of millions of empty
/// files passes every size limit and uses up a CI node's inodes (and the unpacker's memory,
/// which remembers each path a layer wrote). A million is several times the largest real layer
/// and a few percent of a typical disk's inodes.
pub const DEFAULT_MAX_LAYER_ENTRIES: u64 = 1_000_000;
/// Below this much compressed layer data a root is unpacked rather than mounted from the
/// unpacked-layer store (`--unpacked-store-min-size`): busybox, distroless and alpine bases.
pub const DEFAULT_UNPACKED_STORE_MIN_SIZE: u64 = 4 << 20;

#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Path of the Dockerfile (already resolved against the working directory or context).
    pub dockerfile: PathBuf,
    /// The build context directory.
    pub context: PathBuf,
    /// The context fetched from elsewhere (`tar://`, `git://`) that `context` is (a directory
    /// of it): kept alive as long as these options, reported in `build_started`, its
    /// credentials masked. `None` for a local directory.
    pub remote_context: Option<std::sync::Arc<crate::engine::remote_context::FetchedContext>>,
    /// `--build-arg` values (those given as bare `K` already resolved from the environment).
    pub build_args: BTreeMap<String, String>,
    /// Build args whose values are secret besides those with secret-looking names.
    pub secret_args: Vec<String>,
    pub target: Option<String>,
    /// The target platforms (`--platform`, `--custom-platform`), in the order given: one image
    /// each, pushed as an index when there are several; the host platform when empty.
    pub platforms: Vec<Platform>,
    /// `--label k=v`, applied to every stage.
    pub labels: Vec<(String, String)>,
    /// Where build roots and blobs live while building (removed afterwards).
    pub work_dir: PathBuf,
    pub layers: LayerOptions,
    pub run: RunOptions,
    pub output: OutputOptions,
    pub registry: RegistryOptions,
    /// The layer cache (`--cache`); `None` when disabled.
    pub cache: Option<CacheOptions>,
}

/// How changes are found and written as layers.
#[derive(Debug, Clone)]
pub struct LayerOptions {
    /// Zero every timestamp so repeated builds give byte-identical images.
    pub reproducible: bool,
    pub snapshot_mode: SnapshotMode,
    /// One layer per stage, taken at its end.
    pub single_snapshot: bool,
    pub compression: Compression,
    pub compression_level: Option<i32>,
    /// Add a layer even for steps that changed nothing.
    pub force_build_metadata: bool,
    /// Extra image paths never snapshotted (`--ignore-path`).
    pub ignore_paths: Vec<String>,
    /// Ignore `/var/run` as kaniko does by default.
    pub ignore_var_run: bool,
    /// Largest file a layer (base image, cached layer or ADD archive) may hold; `None`: no limit.
    pub max_file_size: Option<u64>,
    /// Most bytes of file data one layer may unpack to; `None`: no limit. Stops decompression
    /// bombs before they fill the disk.
    pub max_layer_size: Option<u64>,
    /// Most entries (files, directories, links, whiteouts) one layer may hold; `None`: no
    /// limit. Stops a layer of millions of empty files before it uses up the inodes.
    pub max_layer_entries: Option<u64>,
    /// The unpacked-layer store (`<cache-dir>/unpacked` when the cache dir exists): layers
    /// kept unpacked between builds, that chroot isolation's build roots are overlays of.
    /// `None`: every root is unpacked into a directory of its own.
    pub unpacked_store: Option<std::path::PathBuf>,
    /// A root whose layers add up to less than this, compressed, is unpacked into a directory
    /// of its own even when the unpacked-layer store could serve it (see `engine/root.rs`);
    /// 0: every root the store can serve is mounted from it.
    pub unpacked_store_min_size: u64,
}

/// Where and how RUN (and a debugger shell) runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub isolation: Isolation,
    /// Why the automatic choice fell back to container isolation where a stronger one was
    /// tried (a pod with a user namespace of its own): said as a warning when the build starts.
    pub isolation_note: Option<String>,
    /// The trowel binary that hosts the sandbox helper (`/proc/self/exe` normally).
    pub helper_exe: PathBuf,
    /// Optional limit per RUN.
    pub timeout: Option<Duration>,
    /// trowel's own directory in container isolation (never part of the image).
    pub trowel_dir: PathBuf,
    /// Use container isolation even where trowel sees no container.
    pub force: bool,
    /// Empty the container's `/` after the build (container isolation).
    pub cleanup: bool,
    /// `RUN --mount` inputs: secrets, ssh agents, where cache mounts persist, entitlements.
    pub mounts: crate::engine::mounts::MountOptions,
}

/// What the build produces besides the image in its store.
#[derive(Debug, Clone, Default)]
pub struct OutputOptions {
    /// Push targets (`registry/repo:tag`).
    pub destinations: Vec<String>,
    pub no_push: bool,
    pub skip_push_permission_check: bool,
    pub tar_path: Option<PathBuf>,
    pub oci_layout_path: Option<PathBuf>,
    pub digest_file: Option<PathBuf>,
    pub image_name_with_digest_file: Option<PathBuf>,
    pub image_name_tag_with_digest_file: Option<PathBuf>,
    /// `--annotation`: on the manifests, the index, the index's entries.
    pub annotations: crate::image::annotations::Annotations,
    /// `--push-ignore-immutable-tag-errors` (kaniko ≥ 1.21): a registry's refusal to move an
    /// immutable tag ends that destination's push without error (`publish.rs`).
    pub push_ignore_immutable_tag_errors: bool,
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

impl CacheOptions {
    /// The cache repository: `--cache-repo`, else the first destination's repository +
    /// `/cache` (kaniko's default).
    pub(crate) fn repository(&self, destinations: &[String]) -> Result<crate::registry::Reference, String> {
        use crate::registry::Reference;
        use crate::registry::reference::masked_userinfo;
        if let Some(r) = &self.repo {
            return Reference::parse(r).map_err(|e| format!("invalid --cache-repo {:?}: {e}", masked_userinfo(r)));
        }
        let first = destinations.first().ok_or("--cache needs --cache-repo or a --destination")?;
        let d =
            Reference::parse(first).map_err(|e| format!("invalid --destination {:?}: {e}", masked_userinfo(first)))?;
        Ok(Reference { repository: format!("{}/cache", d.repository), tag: None, digest: None, ..d })
    }
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

impl Default for LayerOptions {
    fn default() -> LayerOptions {
        LayerOptions {
            reproducible: false,
            snapshot_mode: SnapshotMode::Full,
            single_snapshot: false,
            compression: Compression::Gzip,
            compression_level: None,
            force_build_metadata: false,
            ignore_paths: Vec::new(),
            ignore_var_run: true,
            max_file_size: Some(DEFAULT_MAX_FILE_SIZE),
            max_layer_size: Some(DEFAULT_MAX_LAYER_SIZE),
            max_layer_entries: Some(DEFAULT_MAX_LAYER_ENTRIES),
            unpacked_store: None,
            unpacked_store_min_size: DEFAULT_UNPACKED_STORE_MIN_SIZE,
        }
    }
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            isolation: Isolation::Chroot,
            isolation_note: None,
            helper_exe: PathBuf::from("/proc/self/exe"),
            timeout: None,
            trowel_dir: PathBuf::from("/trowel"),
            force: false,
            cleanup: false,
            mounts: Default::default(),
        }
    }
}

impl BuildOptions {
    /// Options with kaniko's defaults for a Dockerfile and context.
    pub fn new(dockerfile: impl Into<PathBuf>, context: impl Into<PathBuf>) -> BuildOptions {
        BuildOptions {
            dockerfile: dockerfile.into(),
            context: context.into(),
            remote_context: None,
            build_args: BTreeMap::new(),
            secret_args: Vec::new(),
            target: None,
            platforms: Vec::new(),
            labels: Vec::new(),
            work_dir: std::env::temp_dir(),
            layers: LayerOptions::default(),
            run: RunOptions::default(),
            output: OutputOptions::default(),
            registry: RegistryOptions::default(),
            cache: None,
        }
    }

    /// Masks this build's secret values (for events, history and cache entries): secret build
    /// args, and every `--secret` (each line of a multi-line one too).
    pub fn redactor(&self) -> crate::secrets::Redactor {
        let mut values = crate::secrets::secret_build_args(&self.build_args, &self.secret_args);
        values.extend(self.run.mounts.secret_values());
        values.extend(self.remote_context.iter().flat_map(|c| c.secrets.iter().cloned()));
        // Registry credentials from the environment are never printed; masked all the same.
        values.extend(crate::registry::env_secrets());
        crate::secrets::Redactor::new(values)
    }

    /// Whether a build arg's value is secret.
    pub fn is_secret_arg(&self, name: &str) -> bool {
        crate::secrets::is_secret_name(name) || self.secret_args.iter().any(|n| n == name)
    }

    /// The first target platform (the host's when none was given).
    pub fn target_platform(&self) -> Platform {
        self.platforms.first().cloned().unwrap_or_else(Platform::host)
    }

    /// Every target platform (the host's alone when none was given).
    pub fn target_platforms(&self) -> Vec<Platform> {
        if self.platforms.is_empty() { vec![Platform::host()] } else { self.platforms.clone() }
    }
}
