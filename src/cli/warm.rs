//! `trowel warm`'s flags: kaniko's warmer (`/kaniko/warmer`), pull side only.

use std::path::PathBuf;

use clap::{ArgAction, Args};

use trowel_engine::duration::parse_go_duration;
use trowel_engine::image::manifest::Platform;
use trowel_engine::registry::RegistryOptions;

use super::{CliError, LogArgs, RegistryArgs};

/// `trowel warm`: kaniko's warmer flags (`/kaniko/warmer`), pull side only.
#[derive(Debug, Clone, Args)]
pub struct WarmArgs {
    /// Image to cache (repeatable).
    #[arg(short = 'i', long = "image")]
    pub images: Vec<String>,
    /// Also cache the images a Dockerfile builds from: every stage's FROM image and every
    /// `COPY --from=<image>` (global ARG defaults and --build-arg applied; stages and scratch skipped).
    #[arg(short = 'd', long)]
    pub dockerfile: Option<PathBuf>,
    /// Build-time variable `K=V`, or `K` to take the value from the environment (repeatable).
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// The cache directory (created if missing).
    #[arg(short = 'c', long, default_value = "/cache")]
    pub cache_dir: PathBuf,
    /// Re-resolve and re-verify images even when a fresh entry exists.
    #[arg(short = 'f', long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub force: bool,
    /// Age (Go duration, e.g. 336h, 1h30m) after which a cached tag is resolved again.
    #[arg(long, default_value = "336h", value_parser = parse_go_duration)]
    pub cache_ttl: std::time::Duration,
    /// One platform `os/arch[/variant]` to cache (kaniko's name; default: the host's).
    #[arg(long, alias = "customPlatform")]
    pub custom_platform: Option<String>,
    /// Platforms to cache, comma-separated or repeated (`linux/amd64,linux/arm64`, as for a
    /// multi-platform build): every image is cached once for each.
    #[arg(long = "platform", value_name = "PLATFORMS", value_delimiter = ',')]
    pub platforms: Vec<String>,
    /// After warming, prune the cache dir to at most this size (e.g. 20GB), least recently used
    /// entries first, as `trowel cache prune --max-size` does (off by default: see README).
    #[arg(long, value_parser = super::parse_size_arg, value_name = "SIZE")]
    pub cache_dir_max_size: Option<u64>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

impl WarmArgs {
    /// The registry options the pull-side flags describe.
    pub fn registry_options(&self) -> Result<RegistryOptions, CliError> {
        self.registry.options()
    }

    /// `--platform` and `--custom-platform`, parsed and checked, in order, duplicates removed;
    /// empty when neither is given (the host's platform then).
    pub fn platforms(&self) -> Result<Vec<Platform>, CliError> {
        let mut out: Vec<Platform> = Vec::new();
        let given = self.platforms.iter().map(|p| ("--platform", p));
        for (flag, p) in given.chain(self.custom_platform.iter().map(|p| ("--custom-platform", p))) {
            let parsed = Platform::parse(p).map_err(|e| CliError(format!("{flag}: {e}")))?;
            if !out.iter().any(|o| o.matches(&parsed) && parsed.matches(o)) {
                out.push(parsed);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use clap::Parser;
    use trowel_engine::image::manifest::Platform;

    use super::super::{Cli, Command, parse};

    #[test]
    fn warm_takes_kaniko_warmer_flags() {
        let cli = parse(&[
            "trowel",
            "warm",
            "-i",
            "busybox:1.35",
            "--image=alpine",
            "-d",
            "Dockerfile",
            "-c",
            "/tmp/c",
            "-f",
            "--cache-ttl",
            "1h30m",
            "--customPlatform",
            "linux/arm64",
            "--insecure-pull",
            "--registry-certificate",
            "reg.example=/ca.pem",
        ]);
        let Command::Warm(w) = cli.command else { panic!("not warm") };
        assert_eq!(w.images, ["busybox:1.35", "alpine"]);
        assert_eq!(w.dockerfile.as_deref(), Some(Path::new("Dockerfile")));
        assert_eq!(w.cache_dir, Path::new("/tmp/c"));
        assert!(w.force);
        assert_eq!(w.cache_ttl, std::time::Duration::from_secs(5400));
        assert_eq!(w.platforms().unwrap(), [Platform::parse("linux/arm64").unwrap()]);
        let r = w.registry_options().unwrap();
        assert!(r.insecure_pull && !r.insecure);
        assert_eq!(r.registry_certificates, vec![("reg.example".to_string(), PathBuf::from("/ca.pem"))]);

        let cli = parse(&["trowel", "warm", "-i", "x"]);
        let Command::Warm(w) = cli.command else { panic!("not warm") };
        assert_eq!(w.cache_dir, Path::new("/cache"));
        assert_eq!(w.cache_ttl, std::time::Duration::from_secs(336 * 3600));
        assert!(!w.force);

        let bad = Cli::try_parse_from(["trowel", "warm", "-i", "x", "--cache-ttl", "2w"]).unwrap_err().to_string();
        assert!(bad.contains("2w"), "{bad}");
    }

    #[test]
    fn warm_platforms_are_repeatable_comma_separated_and_checked() {
        let platforms = |args: &[&str]| {
            let cli = parse(&[&["trowel", "warm", "-i", "x"], args].concat());
            let Command::Warm(w) = cli.command else { panic!("not warm") };
            w.platforms().map(|v| v.iter().map(|p| p.to_string()).collect::<Vec<_>>()).map_err(|e| e.0)
        };
        assert_eq!(platforms(&[]).unwrap(), Vec::<String>::new());
        assert_eq!(
            platforms(&["--platform", "linux/amd64,linux/arm64", "--platform=linux/riscv64"]).unwrap(),
            ["linux/amd64", "linux/arm64", "linux/riscv64"]
        );
        // arm64 and arm64/v8 are one platform; --custom-platform adds one.
        assert_eq!(
            platforms(&["--platform", "linux/arm64,linux/arm64/v8", "--custom-platform", "linux/arm/v7"]).unwrap(),
            ["linux/arm64", "linux/arm/v7"]
        );
        // x86_64 is containerd's alias of amd64: one platform.
        assert_eq!(platforms(&["--platform", "linux/amd64,linux/x86_64"]).unwrap(), ["linux/amd64"]);
        let e = platforms(&["--platform", "linux/amd64,linux/amd46"]).unwrap_err();
        assert!(
            e.starts_with("--platform: invalid platform \"linux/amd46\"") && e.contains("did you mean amd64?"),
            "{e}"
        );
        // One known OS is that OS on this machine's architecture, as containerd reads it.
        let host = Platform::host().normalized();
        assert_eq!(platforms(&["--customPlatform", "linux"]).unwrap(), [host.to_string()]);
        let e = platforms(&["--customPlatform", "linux/amd46"]).unwrap_err();
        assert!(e.starts_with("--custom-platform: invalid platform \"linux/amd46\""), "{e}");
    }
}
