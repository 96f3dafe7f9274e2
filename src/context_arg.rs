//! `--context`, `--context-sub-path` and `--git`: the value parsed once into the engine's
//! [`ContextSource`], and a context that is not a local directory fetched before anything else
//! (its Dockerfile is in it). Apart from `cli.rs` so the flag parsing there stays flags only.
//! Also how such a context is described to people ([`describe`]), by the log and `replay
//! --summary` alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use trowel_engine::engine::remote_context::{
    self, ContextSource, FetchLimits, FetchOptions, FetchedContext, GitOptions,
};
use trowel_engine::sandbox::Isolation;

use crate::cli::{BuildArgs, CliError};

/// The build context directory, and the fetched context it lives in (for `tar://`, `git://`…).
pub fn context(
    args: &BuildArgs,
    isolation: Isolation,
    work_dir: &Path,
) -> Result<(PathBuf, Option<Arc<FetchedContext>>), CliError> {
    let env = |k: &str| std::env::var(k).ok();
    let source = ContextSource::parse(&args.context, &env).map_err(CliError)?;
    let git = GitOptions::parse(&args.git).map_err(CliError)?;
    if let ContextSource::Dir(dir) = &source {
        let mut context = dir.clone();
        if let Some(sub) = &args.context_sub_path {
            context = context.join(sub);
        }
        if !context.is_dir() {
            return Err(CliError(format!("build context {} is not a directory", context.display())));
        }
        return Ok((context, None));
    }
    let opts = FetchOptions {
        work_dir,
        limits: FetchLimits {
            max_file_size: (args.max_file_size > 0).then_some(args.max_file_size),
            max_total_size: (args.max_layer_size > 0).then_some(args.max_layer_size),
        },
        sub_path: args.context_sub_path.as_deref(),
        git: &git,
        container: isolation == Isolation::Container,
        trowel_dir: &args.trowel_dir(),
        env: &env,
    };
    let fetched = remote_context::fetch(&source, &opts).map_err(|e| CliError(e.to_string()))?;
    Ok((fetched.dir.clone(), Some(Arc::new(fetched))))
}

/// `Build context: git https://host/repo.git#main at refs/heads/main commit 1a2b… (sha256:…, 12
/// files, 3.4 kB)`: the log's line, and `replay --summary`'s.
pub fn describe(o: &trowel_events::ContextOrigin) -> String {
    let mut s = format!("Build context: {} {}", o.kind, o.source);
    if let Some(r) = &o.reference {
        s.push_str(&format!(" at {r}"));
    }
    if let Some(c) = &o.commit {
        s.push_str(&format!(" commit {c}"));
    }
    if let Some(p) = &o.sub_path {
        s.push_str(&format!(", sub-path {p}"));
    }
    let files = crate::units::plural(o.files as usize, "file");
    s.push_str(&format!(" ({}, {} {files}, {})", o.digest, o.files, crate::units::bytes(o.bytes)));
    s
}
