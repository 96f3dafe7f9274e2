//! `--context`, `--context-sub-path` and `--git`: the value parsed once into the engine's
//! [`ContextSource`], and a context that is not a local directory fetched before anything else
//! (its Dockerfile is in it). Apart from `cli.rs` so the flag parsing there stays flags only.
//! Also how such a context is described to people ([`describe`]), by the log and `replay
//! --summary` alike.
//!
//! The fetch takes the build's stop: a signal while a big context downloads, unpacks or is
//! cloned ends it there (`build aborted: SIGTERM received`), its partial directory removed,
//! rather than the process dying with it left for the next build to sweep.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use trowel_engine::engine::disk_full::{FullDir, note};
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
    stop: Option<&trowel_engine::engine::Stop>,
) -> Result<(PathBuf, Option<Arc<FetchedContext>>), CliError> {
    let env = |k: &str| std::env::var(k).ok();
    let source = ContextSource::parse(&context_value(args)?, &env).map_err(CliError)?;
    let git = GitOptions::parse(&args.git).map_err(CliError)?;
    let build_args = crate::cli::parse_build_args(&args.build_args)?;
    // Any value, `context` too: BuildKit's test is that the argument is not empty.
    let source_date_epoch = build_args.get(trowel_engine::dockerfile::SOURCE_DATE_EPOCH).is_some_and(|v| !v.is_empty());
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
            max_entries: (args.max_layer_entries > 0).then_some(args.max_layer_entries),
        },
        stall_timeout: args.registry.stall_timeout,
        sub_path: args.context_sub_path.as_deref(),
        git: &git,
        container: isolation == Isolation::Container,
        trowel_dir: &args.trowel_dir(),
        env: &env,
        source_date_epoch,
        stop: stop.cloned(),
    };
    // A context bigger than the work dir's file system says which and what to do, as a build does.
    let fetched = remote_context::fetch(&source, &opts)
        .map_err(|e| CliError(format!("{e}{}", note(&e, FullDir::WorkDir, work_dir))))?;
    Ok((fetched.dir.clone(), Some(Arc::new(fetched))))
}

/// The context `--context` and kaniko's `--bucket` name together, as kaniko's
/// `resolveSourceContext` reads them: a bucket NAME is `gs://NAME` (its object
/// `context.tar.gz`), a value with `://` is a context URL of any kind, and either replaces a
/// `--context` URL. A `--context` directory kaniko keeps, silently ignoring `--bucket`; trowel
/// refuses the pair, since one of the two is a mistake. Unlike kaniko, `--bucket` alone is the
/// context (kaniko's default context, `/workspace/`, is a directory, so there `--bucket` alone
/// does nothing).
pub fn context_value(args: &BuildArgs) -> Result<String, CliError> {
    let context = args.context.as_deref().filter(|c| !c.is_empty());
    let Some(bucket) = args.bucket.as_deref().filter(|b| !b.is_empty()) else {
        return Ok(context.unwrap_or(".").to_string());
    };
    if let Some(dir) = context.filter(|c| !c.contains("://")) {
        return Err(CliError(format!(
            "--bucket {bucket} and --context {dir} (a directory) both name the build context: give one of them \
             (kaniko would ignore --bucket here)"
        )));
    }
    Ok(if bucket.contains("://") { bucket.to_string() } else { format!("gs://{bucket}") })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Command, parse};

    fn value(args: &[&str]) -> Result<String, CliError> {
        let mut all = vec!["trowel", "build", "--no-push"];
        all.extend(args);
        match parse(&all).command {
            Command::Build(b) => context_value(&b),
            _ => panic!("not a build"),
        }
    }

    #[test]
    fn bucket_as_kaniko_reads_it() {
        assert_eq!(value(&[]).unwrap(), ".");
        assert_eq!(value(&["-c", "/ws"]).unwrap(), "/ws");
        // A name is a GCS bucket (its context.tar.gz: source.rs), alone or replacing a URL.
        assert_eq!(value(&["--bucket", "ctx-bucket"]).unwrap(), "gs://ctx-bucket");
        assert_eq!(value(&["-b", "ctx-bucket", "--context", "tar://x.tar"]).unwrap(), "gs://ctx-bucket");
        assert_eq!(value(&["-b", "ctx-bucket", "--context", "dir:///ws"]).unwrap(), "gs://ctx-bucket");
        // A URL is the context, whatever its kind.
        assert_eq!(value(&["--bucket", "s3://b/k.tar.gz"]).unwrap(), "s3://b/k.tar.gz");
        assert_eq!(
            value(&["--bucket", "gs://b/dir/ctx.tar.gz", "-c", "git://h/r.git"]).unwrap(),
            "gs://b/dir/ctx.tar.gz"
        );
        // Empty is not given, as in kaniko.
        assert_eq!(value(&["--bucket", "", "-c", "/ws"]).unwrap(), "/ws");
        assert_eq!(value(&["--bucket", "b", "--context", ""]).unwrap(), "gs://b");
        let e = value(&["--bucket", "b", "--context", "/ws"]).unwrap_err().0;
        assert!(e.contains("--bucket b and --context /ws (a directory) both name the build context"), "{e}");
    }
}
