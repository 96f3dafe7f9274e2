//! Build checks in a build: BuildKit's rules (`dockerfile::checks`) reported as `check` events
//! — warnings, or with `check=error=true` (or `BUILDKIT_DOCKERFILE_CHECK=error=true`) a failed
//! build.
//!
//! Everything the Dockerfile alone decides is checked before anything is pulled or run, so a
//! build that must fail fails at once. What depends on a base image (the variables its ENV
//! defines, its SHELL, the platform it was resolved for) is checked when that base is
//! resolved, before its layers are unpacked: BuildKit reads every base's config first; trowel
//! resolves each when its stage starts. Their download may have begun by then (`prefetch`
//! starts it as soon as the base resolves); a check that fails the build stops it with the rest.

use std::collections::BTreeMap;

use trowel_events::Event;

pub mod standalone;

use crate::dockerfile::checks::{self, BaseInfo, CheckConfig, CheckOptions, Finding};
use crate::dockerfile::{Base, Dockerfile, DockerfileError, PlatformArgs};
use crate::engine::context::BuildContext;
use crate::engine::error::BuildError;
use crate::image::config::ImageConfig;
use crate::image::manifest::Platform;

/// The check options of a build: the `BUILDKIT_DOCKERFILE_CHECK` build arg, else the
/// Dockerfile's `# check=` directive. One that does not parse fails the build, as in BuildKit.
pub(crate) fn config(df: &Dockerfile, build_args: &BTreeMap<String, String>) -> Result<CheckConfig, BuildError> {
    CheckConfig::for_build(&df.text, build_args).map(|(config, _)| config).map_err(|reason| {
        // A bad directive is pointed at; a bad build arg is not in the file.
        let line = (!build_args.contains_key(checks::BUILD_ARG)).then(|| checks::directive(&df.text)).flatten();
        BuildError::Dockerfile(match line {
            Some((_, line)) => DockerfileError::At { path: df.path.clone(), line, instruction: None, reason },
            None => DockerfileError::File { path: df.path.clone(), reason },
        })
    })
}

fn run<T>(ctx: &BuildContext<'_>, f: impl FnOnce(&CheckOptions) -> T) -> T {
    let platforms = PlatformArgs { target: ctx.opts.target_platform(), build: Platform::host() };
    let opts = CheckOptions {
        config: &ctx.checks,
        build_args: &ctx.opts.build_args,
        target: ctx.opts.target.as_deref(),
        platforms: &platforms,
        dockerignore: &ctx.dockerignore,
        all_stages: false,
    };
    f(&opts)
}

/// Before the first pull: every finding the Dockerfile alone decides (for stages built on
/// scratch, all of theirs).
pub(crate) fn before_build(ctx: &BuildContext<'_>) -> Result<(), BuildError> {
    let report = run(ctx, |opts| checks::check(&ctx.df, opts, &BTreeMap::new()));
    // The planner accepted this Dockerfile already; an error here would be the checks' own
    // reading of it, and the build goes on as planned.
    if let Some(e) = &report.error {
        ctx.emitter.warn(format!("build checks stopped early: {e}"));
    }
    emit(ctx, &report.findings)
}

/// When the base image of stage `stage` is resolved (for `requested`, as `FROM` wrote it
/// `image`): what depended on it, in that stage and those built on it.
pub(crate) fn base_resolved(
    ctx: &BuildContext<'_>,
    stage: usize,
    image: &str,
    config: &ImageConfig,
    requested: &Platform,
) -> Result<(), BuildError> {
    if !matches!(ctx.plan.stages[stage].base, Base::Image(_)) {
        return Ok(());
    }
    let dockerfile_stage = ctx.plan.stages[stage].dockerfile_stage;
    let base = BaseInfo { env: config.env(), shell: config.shell().is_some_and(|s| !s.is_empty()) };
    // The checks of what the base's ENV and SHELL mean for the Dockerfile run once, on the
    // first target platform's stage (the one whose index is the Dockerfile's): another
    // platform's copy of the stage would report the same lines again.
    let mut findings = if dockerfile_stage == stage {
        run(ctx, |opts| checks::check_base(&ctx.df, opts, &ctx.plan, stage, &base))
    } else {
        Vec::new()
    };
    // An image without layers is scratch to BuildKit: no platform to judge.
    if !config.diff_ids().is_empty()
        && let Some(f) =
            checks::base_platform(&ctx.df, &ctx.checks, dockerfile_stage, image, requested, &config.platform())
    {
        findings.insert(0, f);
    }
    emit(ctx, &findings)
}

/// Reports `findings`; with `error=true`, fails the build with them.
fn emit(ctx: &BuildContext<'_>, findings: &[Finding]) -> Result<(), BuildError> {
    let error = ctx.checks.error;
    for f in findings {
        ctx.emitter.emit(Event::Check {
            rule: f.rule.name.to_string(),
            description: f.rule.description.to_string(),
            url: f.rule.url.map(str::to_string),
            message: f.message.clone(),
            line: f.line,
            end_line: f.end_line,
            error,
        });
    }
    if error && !findings.is_empty() {
        return Err(BuildError::Dockerfile(checks::violation(&ctx.df, findings)));
    }
    Ok(())
}
