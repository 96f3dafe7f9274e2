//! Command-line interface. `trowel build` takes kaniko's executor flags with kaniko's meanings,
//! so a CI job written for kaniko only needs the binary path changed: trowel run without a
//! subcommand but with flags (`trowel --context … --destination …`) is `trowel build`.
//!
//! One file per subcommand's flags (`build`, `debug`, `replay`, `warm`, `login`) and per flag
//! group several share (`registry`, `logging`, `ui`), and `cache` (prune and check); `deprecated`
//! warns of kaniko's deprecated spellings; this file holds the top-level parser, the
//! kaniko-style invocations and the small parsers every subcommand uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

/// A kaniko-style boolean flag: `--flag`, `--flag=true`, `--flag=false`.
macro_rules! bool_flag {
    () => {
        "true"
    };
}

mod build;
mod cache;
mod debug;
mod deprecated;
#[cfg(test)]
mod kaniko_flags;
mod logging;
mod login;
mod registry;
mod replay;
mod ui;
mod warm;

pub use build::{BuildArgs, CompressionArg, IsolationArg, SnapshotModeArg};
pub use cache::{CacheArgs, CacheCommand, CheckCacheArgs, PruneArgs};
pub use debug::DebugArgs;
pub use deprecated::deprecation_warnings;
pub use logging::{LogArgs, Verbosity};
pub use login::{LoginArgs, LogoutArgs};
pub use registry::RegistryArgs;
pub use replay::ReplayArgs;
pub use ui::UiArgs;
pub use warm::WarmArgs;

#[derive(Debug, Parser)]
#[command(
    name = "trowel",
    version,
    about = "Build container images from a Dockerfile without a daemon, and debug the build"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a Dockerfile and push it (kaniko's executor).
    // A flag given twice takes its last value, as kaniko's flag library does.
    #[command(args_override_self = true)]
    Build(Box<BuildArgs>),
    /// Build in the terminal debugger: step through the Dockerfile, inspect each step's
    /// changes, cache and layers, open a shell at a pause, and review before pushing.
    #[command(args_override_self = true)]
    Debug(Box<DebugArgs>),
    /// Look at a recorded trace (`trowel build --trace FILE`) in the debugger's panes.
    Replay(ReplayArgs),
    /// Download base images into a cache directory for offline builds (kaniko's warmer).
    #[command(args_override_self = true)]
    Warm(Box<WarmArgs>),
    /// Run BuildKit's build checks on a Dockerfile without building it (`docker build
    /// --check`): every finding with its file, line, rule and documentation page.
    Check(Box<crate::check::CheckArgs>),
    /// Bound and verify a cache dir: `trowel cache prune` removes the least recently used
    /// entries, `trowel cache check` verifies every entry.
    Cache(CacheArgs),
    /// Save credentials for a registry in the Docker config builds read (`docker login`),
    /// after checking them against the registry.
    Login(Box<LoginArgs>),
    /// Remove a registry's credentials from the Docker config (`docker logout`).
    Logout(LogoutArgs),
    /// Print trowel's version (kaniko's `executor version`, which CI jobs log first).
    Version,
}

/// Inserts `build` when trowel is invoked the kaniko way (flags without a subcommand), and
/// `warm` when it is invoked as `warmer` (a link standing in for kaniko's `/kaniko/warmer`).
pub fn normalize_args(mut args: Vec<String>) -> Vec<String> {
    let invoked_as = args.first().map(|a| Path::new(a).file_name().unwrap_or_default().to_string_lossy().into_owned());
    if invoked_as.as_deref() == Some("warmer") && args.get(1).is_none_or(|a| a != "warm") {
        args.insert(1, "warm".to_string());
        return args;
    }
    if let Some(first) = args.get(1)
        && first.starts_with('-')
        && !matches!(first.as_str(), "-h" | "--help" | "-V" | "--version")
    {
        args.insert(1, "build".to_string());
    }
    args
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

/// `KEY=VALUE` or `KEY` (value from the environment; skipped if unset, as Docker and BuildKit do:
/// kaniko would set it to the empty string).
pub fn parse_build_args(raw: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut out = BTreeMap::new();
    for a in raw {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            Some(_) => return Err(CliError(format!("invalid --build-arg {a:?}: expected KEY=VALUE or KEY"))),
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

fn parse_kv(flag: &str, raw: &[String]) -> Result<Vec<(String, String)>, CliError> {
    raw.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CliError(format!("invalid --{flag} {a:?}: expected KEY=VALUE"))),
        })
        .collect()
}

/// Finds the Dockerfile the way kaniko does: as given if it exists (absolute or relative to
/// the working directory), else relative to the context.
pub fn resolve_dockerfile(dockerfile: &Path, context: &Path) -> Result<PathBuf, CliError> {
    let text = dockerfile.to_string_lossy();
    if text.starts_with("http://") || text.starts_with("https://") {
        return Err(CliError(format!(
            "--dockerfile {text}: a Dockerfile fetched from a URL (which kaniko allows) is not supported: \
             download it (e.g. `curl -fsSLo Dockerfile {text}`) and give its path"
        )));
    }
    if dockerfile.is_file() {
        return Ok(dockerfile.to_path_buf());
    }
    let in_ctx = context.join(dockerfile);
    if in_ctx.is_file() {
        return Ok(in_ctx);
    }
    Err(CliError(format!(
        "Dockerfile {} not found (looked in the working directory and in the context {})",
        dockerfile.display(),
        context.display()
    )))
}

/// A boolean flag's value as kaniko's flag library reads it (Go's `strconv.ParseBool`): `true`,
/// `1`, `t`, `T`, `TRUE`, `True` and their `false` counterparts, so `--cache=True` in a kaniko
/// job means what it meant there.
pub(crate) fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean: use true or false")),
    }
}

pub(crate) fn parse_size_arg(s: &str) -> Result<u64, String> {
    crate::debugger::parse_size(s)
}

/// Parses a command line as `main` does (tests of every subcommand's flags use it).
#[cfg(test)]
pub(crate) fn parse(args: &[&str]) -> Cli {
    let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    Cli::try_parse_from(normalize_args(v)).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_as_kaniko_jobs_ask_for_it() {
        for argv in [&["/kaniko/executor", "version"][..], &["trowel", "version"]] {
            assert!(matches!(parse(argv).command, Command::Version), "{argv:?}");
        }
    }

    #[test]
    fn kaniko_style_invocation_is_build() {
        let cli = parse(&["trowel", "--context", "/ws", "--destination", "r/x:1", "--no-push=true"]);
        let Command::Build(b) = cli.command else { panic!("expected build") };
        assert_eq!(b.context.as_deref(), Some("/ws"));
        assert!(b.no_push);
        assert_eq!(b.destinations, vec!["r/x:1"]);
    }

    #[test]
    fn build_args_from_env_and_values() {
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("TROWEL_TEST_ARG_FROM_ENV", "from-env") };
        let m = parse_build_args(&[
            "A=1".into(),
            "B=x=y".into(),
            "TROWEL_TEST_ARG_FROM_ENV".into(),
            "UNSET_ARG_XYZ".into(),
        ])
        .unwrap();
        assert_eq!(m.get("A").unwrap(), "1");
        assert_eq!(m.get("B").unwrap(), "x=y");
        assert_eq!(m.get("TROWEL_TEST_ARG_FROM_ENV").unwrap(), "from-env");
        assert!(!m.contains_key("UNSET_ARG_XYZ"));
        assert!(parse_build_args(&["=1".into()]).is_err());
    }

    #[test]
    fn a_dockerfile_url_is_refused_with_what_to_do() {
        let e = resolve_dockerfile(Path::new("https://example.com/app/Dockerfile"), Path::new("/ws")).unwrap_err().0;
        assert!(
            e.contains("not supported") && e.contains("curl -fsSLo Dockerfile https://example.com/app/Dockerfile"),
            "{e}"
        );
    }

    #[test]
    fn invoked_as_warmer_is_warm() {
        let cli = parse(&["/kaniko/warmer", "--image", "x", "--cache-dir=/c"]);
        let Command::Warm(w) = cli.command else { panic!("not warm") };
        assert_eq!(w.images, ["x"]);
        let cli = parse(&["/usr/bin/warmer", "warm", "-i", "y"]);
        assert!(matches!(cli.command, Command::Warm(_)));
    }
}
