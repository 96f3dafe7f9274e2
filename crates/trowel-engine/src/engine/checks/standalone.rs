//! `trowel check`: a build's checks without the build, as `docker build --check` runs them —
//! every stage without `--target`, the base images' configs read from their registries (never
//! their layers) for what depends on them, and what would stop the build before it starts (a
//! Dockerfile that does not parse, a base that cannot be resolved, `check=error=true` with
//! findings).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::dockerfile::checks::{self, BaseInfo, CheckConfig, CheckOptions, Finding};
use crate::dockerfile::{self, Base, DockerIgnore, Dockerfile, PlatformArgs};
use crate::image::config::ImageConfig;
use crate::image::manifest::Platform;
use crate::registry::{Registry, RegistryOptions};

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    pub dockerfile: PathBuf,
    /// The build context (its `.dockerignore`, or the Dockerfile's own `<name>.dockerignore`).
    pub context: PathBuf,
    pub build_args: BTreeMap<String, String>,
    /// Only the stages this stage needs; `None`: every stage.
    pub target: Option<String>,
    /// The target platform (default: the host's).
    pub platform: Option<Platform>,
    /// How to reach registries for base images' configs; `None`: do not (what depends on a
    /// base image is then not checked, and `unchecked` says where).
    pub registry: Option<RegistryOptions>,
}

/// What `trowel check` found.
#[derive(Debug, Default)]
pub struct CheckOutcome {
    /// The Dockerfile's text (for showing findings in context); empty if it could not be read.
    pub text: String,
    /// Sorted by line.
    pub findings: Vec<Finding>,
    /// `check=error=true` (or `BUILDKIT_DOCKERFILE_CHECK=error=true`): findings are errors.
    pub error_on_findings: bool,
    /// What would stop the build before it starts, as the build would say it; `None` if
    /// nothing would.
    pub failure: Option<String>,
    /// What was not checked, and why.
    pub unchecked: Vec<String>,
}

impl CheckOutcome {
    /// Whether `trowel check` fails: the build could not start, or findings are errors.
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }
}

/// Runs the checks `req` asks for.
pub fn check(req: &CheckRequest) -> CheckOutcome {
    let mut out = CheckOutcome::default();
    let text = match std::fs::read_to_string(&req.dockerfile) {
        Ok(t) => t,
        Err(e) => {
            out.failure = Some(format!("read Dockerfile {}: {e}", req.dockerfile.display()));
            return out;
        }
    };
    out.text = text.clone();
    let df = match dockerfile::parse(&req.dockerfile, &text) {
        Ok(parsed) => parsed,
        Err(e) => {
            out.failure = Some(e.to_string());
            return out;
        }
    };
    let config = match CheckConfig::for_build(&text, &req.build_args) {
        Ok((c, _)) => c,
        Err(reason) => {
            out.failure = Some(format!("{}: {reason}", req.dockerfile.display()));
            return out;
        }
    };
    out.error_on_findings = config.error;
    let ignore =
        match DockerIgnore::load_with(&req.context, &req.dockerfile, |p| crate::engine::control_file::read(p, None)) {
            Ok(i) => i,
            Err(e) => {
                out.failure = Some(e.to_string());
                return out;
            }
        };
    let target = req.platform.clone().unwrap_or_else(Platform::host);
    let platforms = PlatformArgs { target: target.clone(), build: Platform::host() };
    let opts = CheckOptions {
        config: &config,
        build_args: &req.build_args,
        target: req.target.as_deref(),
        platforms: &platforms,
        dockerignore: &ignore,
        all_stages: req.target.is_none(),
    };
    let plan = dockerfile::plan(&df, opts.target, opts.build_args, opts.platforms).ok();
    let mut bases = BTreeMap::new();
    let mut findings = Vec::new();
    if let Some(plan) = &plan {
        let roots = checks::image_roots(&df, plan, opts.all_stages);
        match &req.registry {
            Some(registry) => {
                for root in roots {
                    match resolve(&df, plan, root, registry, &target, &config) {
                        Ok((info, finding)) => {
                            bases.insert(root, info);
                            findings.extend(finding);
                        }
                        Err(e) => {
                            out.failure.get_or_insert(e);
                        }
                    }
                }
            }
            None => {
                for root in roots {
                    let from = &df.stages[root].from;
                    out.unchecked.push(format!(
                        "{}:{}: {}: the base image was not read (offline): UndefinedVar, JSONArgsRecommended and \
                         InvalidBaseImagePlatform are not checked where they depend on it",
                        req.dockerfile.display(),
                        from.line,
                        from.quoted()
                    ));
                }
            }
        }
    }
    let report = checks::check(&df, &opts, &bases);
    findings.extend(report.findings);
    findings.sort_by(|a, b| (a.line, &a.message).cmp(&(b.line, &b.message)));
    findings.dedup();
    // What stops the build, in the order the build meets it.
    let refusal = report.error.map(|e| e.to_string()).or_else(|| {
        plan.as_ref().and_then(|p| crate::engine::preflight::check_dockerfile(&df, p).err()).map(|e| e.to_string())
    });
    if let Some(r) = refusal {
        out.failure = Some(r);
    }
    if out.failure.is_none() && config.error && !findings.is_empty() {
        out.failure = Some(checks::violation(&df, &findings).to_string());
    }
    out.findings = findings;
    out
}

/// Reads the config of the base image of stage `root` from its registry: what the checks need
/// of it, and InvalidBaseImagePlatform if it is not for the platform asked.
fn resolve(
    df: &Dockerfile,
    plan: &dockerfile::Plan,
    root: usize,
    registry: &RegistryOptions,
    target: &Platform,
    check_config: &CheckConfig,
) -> Result<(BaseInfo, Option<Finding>), String> {
    let from = &df.stages[root].from;
    let Base::Image(image) = &plan.stages[root].base else { return Ok((BaseInfo::default(), None)) };
    let fail = |what: String| format!("{}:{}: {}: {what}", df.path.display(), from.line, from.quoted());
    let platform = match plan.stages[root].platform.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => Platform::parse(p).map_err(|e| fail(format!("FROM --platform: {e}")))?,
        None => target.clone(),
    };
    let reference = crate::dockerfile::checks::base_reference(image).map_err(fail)?;
    let client = Registry::new(registry.clone()).map_err(|e| fail(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("start async runtime: {e}")))?;
    let img = rt.block_on(client.resolve(&reference, &platform)).map_err(|e| fail(format!("{image}: {e}")))?;
    let config = ImageConfig::from_bytes(&img.config_bytes).map_err(|e| fail(format!("{image}: {e}")))?;
    let info = BaseInfo { env: config.env(), shell: config.shell().is_some_and(|s| !s.is_empty()) };
    let finding = if config.diff_ids().is_empty() {
        None
    } else {
        checks::base_platform(df, check_config, root, image, &platform, &config.platform())
    };
    Ok((info, finding))
}
