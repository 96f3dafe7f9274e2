//! `trowel cache`'s flags: bounding and verifying a cache dir (`prune`, `check`), and the
//! `--cache-dir-max-size` flag `build` and `warm` share for a prune at their end.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use trowel_engine::duration::parse_go_duration;

use super::parse_size_arg;

/// `trowel cache SUBCOMMAND`.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

impl CacheArgs {
    /// Whether an ordinary user runs this on a cache dir holding a rootless store made with a
    /// subordinate range: files there belong to the user's subordinate ids, which only root of
    /// the user's namespace may remove or read, so the command runs in it (`rootless.rs`).
    pub fn needs_user_namespace(&self) -> bool {
        let dir = match &self.command {
            CacheCommand::Prune(a) => &a.cache_dir,
            CacheCommand::Check(a) => &a.cache_dir,
        };
        let stores = dir.join(trowel_engine::cache::unpacked::USERNS_STORES);
        !trowel_engine::sandbox::userns::running_as_root()
            && std::fs::read_dir(stores)
                .is_ok_and(|rd| rd.flatten().any(|e| e.file_name().to_string_lossy().starts_with("range-")))
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum CacheCommand {
    /// Remove the least recently used entries of the cache dir (unpacked layers, base images,
    /// local layers, context digests, cache mounts) until it fits --max-size, and every entry
    /// unused for longer than --max-age; never one a running build or warm is using.
    Prune(PruneArgs),
    /// Verify every entry of the cache dir (blob digests, entry checksums, locks) and remove
    /// what is corrupt or left by killed processes. Exits 0 when all was intact, 1 when
    /// something was not, 2 on error.
    Check(CheckCacheArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// The cache directory (kaniko's --cache-dir).
    #[arg(short = 'c', long, default_value = "/cache")]
    pub cache_dir: PathBuf,
    /// Keep at most this much on disk (e.g. 20GB, 500MiB): least recently used entries go
    /// first (BuildKit's keepBytes).
    #[arg(long, value_parser = parse_size_arg, value_name = "SIZE")]
    pub max_size: Option<u64>,
    /// Remove entries not used for longer than this (Go duration, e.g. 168h, 30m; BuildKit's
    /// keepDuration).
    #[arg(long, value_parser = parse_go_duration, value_name = "DURATION")]
    pub max_age: Option<std::time::Duration>,
    /// List what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CheckCacheArgs {
    /// The cache directory (kaniko's --cache-dir).
    #[arg(short = 'c', long, default_value = "/cache")]
    pub cache_dir: PathBuf,
    /// Report what is wrong, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::super::{Command, parse};
    use super::CacheCommand;

    #[test]
    fn prune_and_check_take_sizes_durations_and_the_cache_dir() {
        let cli = parse(&["trowel", "cache", "prune", "--cache-dir", "/c", "--max-size", "2GiB", "--max-age", "168h"]);
        let Command::Cache(c) = cli.command else { panic!("not cache") };
        let CacheCommand::Prune(p) = c.command else { panic!("not prune") };
        assert_eq!(p.cache_dir, Path::new("/c"));
        assert_eq!((p.max_size, p.max_age, p.dry_run), (Some(2 << 30), Some(Duration::from_secs(168 * 3600)), false));
        let cli = parse(&["trowel", "cache", "check", "--dry-run"]);
        let Command::Cache(c) = cli.command else { panic!("not cache") };
        let CacheCommand::Check(k) = c.command else { panic!("not check") };
        assert!(k.dry_run && k.cache_dir == Path::new("/cache"));
        let cli = parse(&["trowel", "build", "--cache-dir-max-size", "10GB"]);
        let Command::Build(b) = cli.command else { panic!("not build") };
        assert_eq!(b.cache_dir_max_size, Some(10_000_000_000));
    }
}
