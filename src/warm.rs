//! `trowel warm`: fill a base-image cache directory ahead of builds (kaniko's warmer).
//!
//! The images come from `--image` and from `--dockerfile`. Unlike kaniko's warmer, the
//! Dockerfile is planned the way a build plans it: global ARG defaults apply (overridden by
//! `--build-arg`), stage names and `scratch` are not images, `FROM --platform=…` selects that
//! platform, and `COPY --from=<image>` sources are warmed too. Each image is warmed into a
//! [`BaseImageCache`]; as in kaniko, the command fails only if every image failed, and each
//! failure is printed.
//!
//! `--platform linux/amd64,linux/arm64` (repeatable; `--custom-platform` is kaniko's name for
//! one) warms every image once for each platform, ahead of a multi-platform build: the
//! Dockerfile is planned once per target platform (so `$TARGETARCH` in a FROM and
//! `FROM --platform=$BUILDPLATFORM` resolve as in the build, the latter warmed once), and blobs
//! the platforms share are stored once. An image counts as warmed only when every platform
//! asked for it was: an index that lacks one is that image's failure, naming the platform and
//! what the index offers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::{WarmArgs, parse_build_args};
use crate::log::Level;
use crate::units::{bytes, plural};
use trowel_engine::cache::basedir::{BaseImageCache, CacheDirError, WarmOutcome, platform_key};
use trowel_engine::dockerfile::{self, Base, DockerfileError, PlatformArgs, StageOrImage};
use trowel_engine::duration::format_go_duration;
use trowel_engine::engine::Stop;
use trowel_engine::engine::disk_full::{FullDir, note};
use trowel_engine::image::config::ImageConfig;
use trowel_engine::image::manifest::Platform;
use trowel_engine::registry::{Reference, Registry, RegistryError, RegistryOptions};

/// Temporary files younger than this may belong to a warmer still running on the same volume.
const STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error("{0}")]
    Usage(String),
    #[error("read Dockerfile {path}: {source}")]
    ReadDockerfile { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Cache(#[from] CacheDirError),
    #[error("start async runtime: {0}")]
    Runtime(std::io::Error),
    /// A signal asked the warmer to stop: what it was downloading is left unfinished (its
    /// temporary files removed), what it stored before stays.
    #[error("warm aborted: {0}")]
    Aborted(String),
}

/// What to warm and how.
#[derive(Debug, Clone)]
pub struct WarmOptions {
    /// `--image` values, as written.
    pub images: Vec<String>,
    pub dockerfile: Option<PathBuf>,
    pub build_args: BTreeMap<String, String>,
    pub cache_dir: PathBuf,
    pub force: bool,
    pub ttl: Duration,
    /// `--platform` and `--custom-platform`; the host's when empty.
    pub platforms: Vec<Platform>,
    pub registry: RegistryOptions,
    /// Asked for by SIGTERM, SIGINT or SIGHUP (`main`): the image being warmed is given up
    /// at once, and no other is started.
    pub stop: Option<Stop>,
}

impl WarmOptions {
    pub fn from_args(a: &WarmArgs) -> Result<WarmOptions, WarmError> {
        let usage = |e: crate::cli::CliError| WarmError::Usage(e.0);
        Ok(WarmOptions {
            images: a.images.clone(),
            dockerfile: a.dockerfile.clone(),
            build_args: parse_build_args(&a.build_args).map_err(usage)?,
            cache_dir: a.cache_dir.clone(),
            force: a.force,
            ttl: a.cache_ttl,
            platforms: a.platforms().map_err(usage)?,
            registry: a.registry_options().map_err(usage)?,
            stop: None,
        })
    }
}

/// One image to warm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmTarget {
    /// The reference as written (after ARG expansion for Dockerfile images).
    pub image: String,
    /// The platform to warm it for, or the reason the Dockerfile's `FROM --platform` value is
    /// unusable (reported as that image's failure).
    pub platform: Result<Platform, String>,
}

/// The platforms to warm for: those asked, or the host's.
pub fn platforms(opts: &WarmOptions) -> Vec<Platform> {
    if opts.platforms.is_empty() { vec![Platform::host()] } else { opts.platforms.clone() }
}

/// The images to warm, in order (each `--image` for every platform, then the Dockerfile's as
/// planned for each platform), duplicates (same normalised reference and platform) removed.
pub fn targets(opts: &WarmOptions) -> Result<Vec<WarmTarget>, WarmError> {
    let platforms = platforms(opts);
    let mut out: Vec<WarmTarget> = opts
        .images
        .iter()
        .flat_map(|i| platforms.iter().map(|p| WarmTarget { image: i.clone(), platform: Ok(p.clone()) }))
        .collect();
    if let Some(path) = &opts.dockerfile {
        for platform in &platforms {
            out.extend(dockerfile_targets(path, &opts.build_args, platform)?);
        }
    }
    let mut seen = BTreeSet::new();
    out.retain(|t| {
        let image = Reference::parse(&t.image).map_or_else(|_| t.image.clone(), |r| r.to_string());
        let platform = t.platform.as_ref().map_or_else(|e| e.clone(), platform_key);
        seen.insert((image, platform))
    });
    Ok(out)
}

/// The registry images a Dockerfile uses: every stage's FROM image (needed by the last stage
/// or not: a build may pick another `--target`) and every `COPY --from=<image>`.
pub fn dockerfile_targets(
    path: &Path,
    build_args: &BTreeMap<String, String>,
    platform: &Platform,
) -> Result<Vec<WarmTarget>, WarmError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| WarmError::ReadDockerfile { path: path.to_path_buf(), source })?;
    let df = dockerfile::parse(path, &text)?;
    let platforms = PlatformArgs { target: platform.clone(), build: Platform::host() };
    let plan = dockerfile::plan(&df, None, build_args, &platforms)?;
    let mut out = Vec::new();
    for stage in &plan.stages {
        if let Base::Image(image) = &stage.base {
            // The build pulls a FROM image for its `--platform` when it has one.
            let platform = match stage.platform.as_deref() {
                Some(p) if !p.is_empty() => Platform::parse(p).map_err(|e| format!("FROM --platform: {e}")),
                _ => Ok(platform.clone()),
            };
            out.push(WarmTarget { image: image.clone(), platform });
        }
        for src in &stage.copy_from {
            if let StageOrImage::Image(image) = src {
                out.push(WarmTarget { image: image.clone(), platform: Ok(platform.clone()) });
            }
        }
    }
    Ok(out)
}

/// The result of warming one image for one platform.
#[derive(Debug)]
pub struct ImageResult {
    pub target: WarmTarget,
    pub outcome: Result<WarmOutcome, WarmError>,
}

/// Warms every target into the cache, calling `log` with kaniko-style messages as it goes.
/// Errors are setup failures (bad Dockerfile, unusable cache directory or registry options);
/// failures of single images are in the returned results.
pub fn warm(opts: &WarmOptions, log: &mut dyn FnMut(Level, &str)) -> Result<Vec<ImageResult>, WarmError> {
    if opts.images.is_empty() && opts.dockerfile.is_none() {
        return Err(WarmError::Usage("nothing to warm: give at least one --image or a --dockerfile".into()));
    }
    let targets = targets(opts)?;
    if targets.is_empty() {
        log(Level::Info, "The Dockerfile uses no registry images: nothing to warm");
        return Ok(Vec::new());
    }
    let cache = BaseImageCache::open(&opts.cache_dir)?;
    match cache.remove_stale_temporaries(STALE_TEMP_AGE) {
        Ok(0) => {}
        Ok(n) => log(Level::Debug, &format!("Removed {n} leftover temporary files from {}", opts.cache_dir.display())),
        Err(e) => log(Level::Warn, &format!("Could not clean up temporary files: {e}")),
    }
    let registry = Registry::new(opts.registry.clone())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(WarmError::Runtime)?;
    let mut results = Vec::with_capacity(targets.len());
    for target in targets {
        if let Some(why) = opts.stop.as_ref().and_then(Stop::reason) {
            return Err(WarmError::Aborted(why));
        }
        let outcome = warm_one(&rt, &cache, &registry, &target, opts, log);
        if let Err(WarmError::Aborted(why)) = outcome {
            return Err(WarmError::Aborted(why));
        }
        match &outcome {
            Ok(o) => log(Level::Info, &describe(&target.image, o)),
            Err(e) => {
                // A full cache dir says which and what to do, as a build's does.
                let full = note(e, FullDir::CacheDir, &opts.cache_dir);
                log(Level::Error, &format!("Failed to warm {}: {e}{full}", target.image))
            }
        }
        results.push(ImageResult { target, outcome });
    }
    Ok(results)
}

fn warm_one(
    rt: &tokio::runtime::Runtime,
    cache: &BaseImageCache,
    registry: &Registry,
    target: &WarmTarget,
    opts: &WarmOptions,
    log: &mut dyn FnMut(Level, &str),
) -> Result<WarmOutcome, WarmError> {
    let r = Reference::parse(&target.image)?;
    let platform = target.platform.clone().map_err(WarmError::Usage)?;
    log(Level::Info, &format!("Retrieving image {} for {platform}", target.image));
    let warming = cache.warm(registry, &r, &platform, Some(opts.ttl), opts.force);
    let outcome = match &opts.stop {
        None => rt.block_on(warming)?,
        // Dropped half way, the download's temporary files go with it.
        Some(stop) => rt.block_on(stop.unless_asked(warming)).map_err(WarmError::Aborted)??,
    };
    // A single-platform image is what the registry serves whatever platform is asked for (as
    // in a build); say so rather than let a wrong-architecture base surprise the build later.
    let config = &outcome.base().image.config_bytes;
    if let Ok(actual) = ImageConfig::from_bytes(config).map(|c| c.platform())
        && !platform.matches(&actual)
    {
        log(Level::Warn, &format!("Image {} is {actual}, not {platform}", target.image));
    }
    Ok(outcome)
}

/// `Image busybox:1.35 cached as sha256:… (1 layer, 1.2 MB; downloaded 1 blob, 1.2 MB)`.
fn describe(image: &str, outcome: &WarmOutcome) -> String {
    let base = outcome.base();
    let n = base.layers().len();
    let summary = format!("{n} {}, {}", plural(n, "layer"), bytes(base.layers_size()));
    match outcome {
        WarmOutcome::AlreadyCached(_) => format!(
            "Image {image} already cached as {} ({summary}; warmed {} ago)",
            base.image.manifest_digest,
            format_go_duration(Duration::from_secs(base.age().as_secs()))
        ),
        WarmOutcome::Warmed { downloaded_blobs: 0, .. } => format!(
            "Image {image} cached as {} ({summary}; every layer was already in the cache)",
            base.image.manifest_digest
        ),
        WarmOutcome::Warmed { downloaded_blobs: b, downloaded_bytes, .. } => format!(
            "Image {image} cached as {} ({summary}; downloaded {b} {}, {})",
            base.image.manifest_digest,
            plural(*b, "layer"),
            bytes(*downloaded_bytes)
        ),
    }
}

/// The images (as written) that failed for at least one of their platforms, in order.
pub fn failed_images(results: &[ImageResult]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for r in results.iter().filter(|r| r.outcome.is_err()) {
        if !out.contains(&r.target.image.as_str()) {
            out.push(&r.target.image);
        }
    }
    out
}

/// The distinct images (as written) among the results.
fn images(results: &[ImageResult]) -> usize {
    results.iter().map(|r| r.target.image.as_str()).collect::<BTreeSet<_>>().len()
}

/// kaniko's rule: the warmer fails only if every image failed (and it had some to warm); an
/// image warmed for some of its platforms but not all failed (the build for the others would).
pub fn exit_code(results: &[ImageResult]) -> i32 {
    if !results.is_empty() && failed_images(results).len() == images(results) { 1 } else { 0 }
}

/// The `trowel warm` command: returns the process exit code.
pub fn main(args: &WarmArgs) -> i32 {
    let mut printer = Printer::new(args);
    let mut opts = match WarmOptions::from_args(args) {
        Ok(o) => o,
        Err(e) => {
            printer.print(Level::Error, &e.to_string());
            return 2;
        }
    };
    // A signal stops the warmer cleanly (`signals.rs`); without the watcher it still warms.
    opts.stop = match Stop::new() {
        Ok(stop) if crate::signals::stop_on_signals(stop.clone()).is_ok() => Some(stop),
        _ => None,
    };
    let results = match warm(&opts, &mut |level, msg| printer.print(level, msg)) {
        Ok(r) => r,
        Err(e) => {
            printer.print(Level::Error, &e.to_string());
            return 1;
        }
    };
    if let Some(max) = args.cache_dir_max_size {
        match crate::cache_cmd::after_build(&opts.cache_dir, max) {
            Ok(line) => printer.print(Level::Info, &line),
            Err(e) => printer.print(Level::Warn, &format!("pruning the cache dir: {e}")),
        }
    }
    let failed = failed_images(&results).len();
    match exit_code(&results) {
        0 if failed > 0 => {
            printer.print(Level::Warn, &format!("{failed} of {} images could not be warmed", images(&results)));
            0
        }
        0 => 0,
        code => {
            printer.print(Level::Error, &format!("No image could be warmed ({failed} failed)"));
            code
        }
    }
}

/// kaniko-style lines (`INFO[0003] …`) on stderr.
struct Printer {
    start: Instant,
    level: Level,
    color: bool,
    timestamps: bool,
}

impl Printer {
    fn new(args: &WarmArgs) -> Printer {
        Printer {
            start: Instant::now(),
            level: args.log.level(),
            color: args.log.log_format == "color" && std::io::stderr().is_terminal(),
            timestamps: args.log.log_timestamp,
        }
    }

    fn print(&mut self, level: Level, msg: &str) {
        if level < self.level {
            return;
        }
        let secs = self.start.elapsed().as_secs();
        eprintln!("{}", crate::log::format_line(level, self.color, self.timestamps, secs, msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_dockerfile(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Dockerfile");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn images(targets: &[WarmTarget]) -> Vec<(String, String)> {
        targets
            .iter()
            .map(|t| (t.image.clone(), t.platform.as_ref().map_or_else(|e| format!("error: {e}"), |p| p.to_string())))
            .collect()
    }

    #[test]
    fn dockerfile_images_follow_the_build_plan() {
        let (_d, path) = write_dockerfile(
            "ARG REGISTRY\nARG TAG=1.35\n\
             FROM ${REGISTRY}/busybox:${TAG} AS builder\nRUN true\n\
             FROM builder AS second\n\
             FROM scratch\nCOPY --from=builder /bin/sh /sh\nARG REGISTRY\nCOPY --from=${REGISTRY}/tools:2 /t /t\n\
             FROM --platform=linux/arm64 ${REGISTRY}/arm-only:1\n\
             FROM ${REGISTRY}/busybox:${TAG}\nCOPY --from=0 /x /x\n",
        );
        let args = BTreeMap::from([("REGISTRY".to_string(), "reg.example:5000".to_string())]);
        let amd = Platform::parse("linux/amd64").unwrap();
        let got = dockerfile_targets(&path, &args, &amd).unwrap();
        assert_eq!(
            images(&got),
            [
                ("reg.example:5000/busybox:1.35".into(), "linux/amd64".into()),
                ("reg.example:5000/tools:2".into(), "linux/amd64".into()),
                ("reg.example:5000/arm-only:1".into(), "linux/arm64".into()),
                ("reg.example:5000/busybox:1.35".into(), "linux/amd64".into()),
            ]
        );
        // Duplicates collapse; a --build-arg overrides the ARG default.
        let opts = WarmOptions {
            images: vec!["reg.example:5000/busybox:1.36".into()],
            dockerfile: Some(path),
            build_args: BTreeMap::from([("REGISTRY".into(), "reg.example:5000".into()), ("TAG".into(), "1.36".into())]),
            cache_dir: PathBuf::from("/nonexistent"),
            force: false,
            ttl: Duration::from_secs(1),
            platforms: vec![amd],
            registry: RegistryOptions::default(),
            stop: None,
        };
        assert_eq!(
            images(&targets(&opts).unwrap()),
            [
                ("reg.example:5000/busybox:1.36".into(), "linux/amd64".into()),
                ("reg.example:5000/tools:2".into(), "linux/amd64".into()),
                ("reg.example:5000/arm-only:1".into(), "linux/arm64".into()),
            ]
        );
    }

    #[test]
    fn several_platforms_plan_the_dockerfile_once_each_and_share_build_platform_stages() {
        let (_d, path) = write_dockerfile(
            "ARG TARGETARCH\n\
             FROM --platform=$BUILDPLATFORM reg.example/golang:1 AS build\n\
             FROM reg.example/base-${TARGETARCH}:1\nCOPY --from=build /out /out\n",
        );
        let opts = WarmOptions {
            images: vec!["reg.example/extra:1".into()],
            dockerfile: Some(path),
            build_args: BTreeMap::new(),
            cache_dir: PathBuf::from("/nonexistent"),
            force: false,
            ttl: Duration::from_secs(1),
            platforms: vec![Platform::parse("linux/amd64").unwrap(), Platform::parse("linux/arm64").unwrap()],
            registry: RegistryOptions::default(),
            stop: None,
        };
        let host = Platform::host().to_string();
        assert_eq!(
            images(&targets(&opts).unwrap()),
            [
                ("reg.example/extra:1".into(), "linux/amd64".into()),
                ("reg.example/extra:1".into(), "linux/arm64".into()),
                ("reg.example/golang:1".into(), host),
                ("reg.example/base-amd64:1".into(), "linux/amd64".into()),
                ("reg.example/base-arm64:1".into(), "linux/arm64".into()),
            ]
        );
    }

    #[test]
    fn bad_from_platform_is_that_image_failure() {
        let (_d, path) = write_dockerfile("FROM --platform=linux/amd46 reg.example/x:1\nFROM reg.example/y:1\n");
        let got = dockerfile_targets(&path, &BTreeMap::new(), &Platform::host()).unwrap();
        assert!(got[0].platform.as_ref().unwrap_err().contains("FROM --platform"), "{got:?}");
        assert!(got[1].platform.is_ok());
    }

    #[test]
    fn nothing_to_warm_is_a_usage_error_and_a_bad_dockerfile_is_fatal() {
        let mut opts = WarmOptions {
            images: vec![],
            dockerfile: None,
            build_args: BTreeMap::new(),
            cache_dir: PathBuf::from("/nonexistent"),
            force: false,
            ttl: Duration::from_secs(1),
            platforms: vec![],
            registry: RegistryOptions::default(),
            stop: None,
        };
        assert!(matches!(warm(&opts, &mut |_, _| {}), Err(WarmError::Usage(_))));
        let (_d, path) = write_dockerfile("RUN true\n");
        opts.dockerfile = Some(path.clone());
        let e = warm(&opts, &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        opts.dockerfile = Some(PathBuf::from("/nonexistent/Dockerfile"));
        let e = warm(&opts, &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/Dockerfile"), "{e}");
    }

    #[test]
    fn messages() {
        assert_eq!(plural(1, "layer"), "layer");
        assert_eq!(plural(0, "layer"), "layers");
    }
}
