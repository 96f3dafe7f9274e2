//! Everything that can be refused before anything is pulled or run: the Dockerfile's own
//! mistakes (`dockerfile::validate`), `FROM --platform` values, and what the build was not
//! given for its RUN flags (a required secret, an entitlement). A build that cannot succeed fails at once, naming the file, the line and the whole
//! instruction, instead of after the steps before it.

use crate::dockerfile::gitref::{Transport, is_git_source, parse_git_ref, ssh_needs_agent};
use crate::dockerfile::mount::{MountSpec, MountType};
use crate::dockerfile::{self, Base, CopySource, Dockerfile, InstructionKind, Plan};
use crate::engine::error::{BuildError, Location, StepError};
use crate::engine::mounts;
use crate::engine::options::BuildOptions;
use crate::image::manifest::Platform;
use crate::sandbox::Isolation;

/// A Dockerfile read, parsed, planned for the build's target and checked: what a front end
/// needs to judge its breakpoints (lines, stages) before the build starts.
#[derive(Debug, Clone)]
pub struct Planned {
    pub df: Dockerfile,
    pub plan: Plan,
}

/// Reads, parses, plans and checks the Dockerfile of `opts` exactly as [`build`](super::build)
/// starts: an error here is the error the build would fail with, before pulling anything. (Its
/// message is not masked: a front end that gets an error lets the build report it.)
pub fn plan_dockerfile(opts: &BuildOptions) -> Result<Planned, BuildError> {
    plan_text(opts, &read_dockerfile(opts)?)
}

/// The Dockerfile's text (inside a remote context, resolved within it: `control_file.rs`).
pub(crate) fn read_dockerfile(opts: &BuildOptions) -> Result<String, BuildError> {
    let remote_root = opts.remote_context.as_ref().map(|_| opts.context.as_path());
    let read = crate::engine::control_file::read(&opts.dockerfile, remote_root).and_then(|bytes| {
        let bytes = bytes.ok_or_else(|| match std::fs::read_link(&opts.dockerfile) {
            Ok(to) => std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("it is a symbolic link to {}, which is not in the context", to.display()),
            ),
            Err(_) => std::io::Error::new(std::io::ErrorKind::NotFound, "the context has no such file"),
        })?;
        String::from_utf8(bytes).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8"))
    });
    read.map_err(BuildError::io(format!("read Dockerfile {}", opts.dockerfile.display())))
}

/// Parses, plans and checks `text`, the Dockerfile of `opts`.
pub(crate) fn plan_text(opts: &BuildOptions, text: &str) -> Result<Planned, BuildError> {
    let df = dockerfile::parse(&opts.dockerfile, text)?;
    let platforms: Vec<dockerfile::PlatformArgs> = opts
        .target_platforms()
        .into_iter()
        .map(|target| dockerfile::PlatformArgs { target, build: Platform::host() })
        .collect();
    let mut plan = dockerfile::plan_platforms(&df, opts.target.as_deref(), &opts.build_args, &platforms)?;
    plan.resolve_context_epoch(opts.remote_context.as_ref().and_then(|c| c.origin.time));
    check(&df, &plan, opts)?;
    check_git(&df, &plan, opts)?;
    check_emulation(&df, &plan, &opts.work_dir)?;
    Ok(Planned { df, plan })
}

/// Checks the stages `plan` builds, with what `opts` provides (secrets, agents, entitlements).
pub(crate) fn check(df: &Dockerfile, plan: &Plan, opts: &BuildOptions) -> Result<(), BuildError> {
    check_dockerfile(df, plan)?;
    plan.source_date_epoch().map_err(BuildError::Options)?;
    for ps in plan.stages.iter().filter(|s| s.needed) {
        let stage = &df.stages[ps.dockerfile_stage];
        for ins in &stage.instructions {
            if let InstructionKind::Run { flags, .. } = &ins.kind {
                for f in flags {
                    if let Some(why) = unavailable(f.name.as_str(), f.value.as_deref().unwrap_or(""), opts) {
                        return Err(refuse(ins, why));
                    }
                }
            }
        }
    }
    Ok(())
}

/// What the Dockerfile alone shows cannot work, whatever the build is given (what `trowel check`
/// reports too): the Dockerfile's own mistakes and `FROM --platform` values.
pub(crate) fn check_dockerfile(df: &Dockerfile, plan: &Plan) -> Result<(), BuildError> {
    crate::dockerfile::validate(df, plan)?;
    // Whatever the base: BuildKit parses every stage's `--platform`, and the platform a stage
    // built on another stage runs as is its own when it has one (`Plan::stage_platform`).
    for ps in plan.stages.iter().filter(|s| s.needed) {
        if let Some(p) = &ps.platform
            && !p.is_empty()
        {
            Platform::parse(p)
                .map_err(|e| refuse(&df.stages[ps.dockerfile_stage].from, format!("FROM --platform: {e}")))?;
        }
    }
    // A base that is no image reference stops BuildKit before it builds anything, in a stage
    // the target needs or not.
    for ps in &plan.stages {
        if let Base::Image(name) = &ps.base {
            crate::dockerfile::checks::base_reference(name)
                .map_err(|e| refuse(&df.stages[ps.dockerfile_stage].from, e))?;
        }
    }
    Ok(())
}

/// What a RUN flag asks for that this build cannot give: a required secret or ssh agent that
/// was not passed, `--security=insecure` without `--allow security.insecure`, a private
/// network where container isolation cannot make one. (Values with variables are checked when
/// the step runs.)
fn unavailable(name: &str, value: &str, opts: &BuildOptions) -> Option<String> {
    let m = &opts.run.mounts;
    match name {
        "mount" if !value.contains('$') => {
            let spec = MountSpec::parse(value).ok()?;
            match spec.kind {
                MountType::Secret if spec.required => {
                    let id = mounts::secret_id(&spec)?;
                    m.secret(&id).is_none().then(|| mounts::missing_secret(&id))
                }
                MountType::Ssh if spec.required => {
                    let id = spec.id.clone().unwrap_or_else(|| "default".into());
                    m.ssh_agent(&id).is_none().then(|| mounts::missing_ssh(&id))
                }
                _ => None,
            }
        }
        "security" if value == "insecure" && !m.allow_insecure => Some(
            "RUN --security=insecure needs the entitlement --allow security.insecure (as with buildx): it runs \
             the command with every capability and /proc and /sys unmasked"
                .into(),
        ),
        "network"
            if value == "none"
                && opts.run.isolation == Isolation::Container
                && !crate::engine::container::can_unshare_net() =>
        {
            Some(
                "RUN --network=none cannot be honoured in container isolation: making a network namespace needs \
                 CAP_SYS_ADMIN, which this container does not have"
                    .into(),
            )
        }
        _ => None,
    }
}

/// ADD of a git repository runs the `git` command: it must be there, and it must not be the
/// image's. In container isolation `/` is the build root, so a `git` found on PATH would be the
/// base image's (or one an earlier RUN put there), with helpers from the image's
/// `/usr/lib/git-core` — an image must not decide what its own sources are. There only the git
/// bundled in trowel's image (`<trowel dir>/git`, see `git/tools.rs`) runs: without it, refused.
/// A repository named over ssh is cloned with the build's `default` agent (as BuildKit does):
/// without `--ssh default` it is refused here.
pub(crate) fn check_git(df: &Dockerfile, plan: &Plan, opts: &BuildOptions) -> Result<(), BuildError> {
    for ps in plan.stages.iter().filter(|s| s.needed) {
        for ins in &df.stages[ps.dockerfile_stage].instructions {
            let InstructionKind::Add(args) = &ins.kind else { continue };
            let git: Vec<&str> = args
                .sources
                .iter()
                .filter_map(|s| match s {
                    CopySource::Path(p) if !p.contains('$') && is_git_source(p) => Some(p.as_str()),
                    _ => None,
                })
                .collect();
            if git.is_empty() {
                continue;
            }
            crate::git::Tools::for_build(opts.run.isolation == Isolation::Container, &opts.run.trowel_dir)
                .map_err(|e| refuse(ins, e.to_string()))?;
            for src in git {
                if let Ok(Some(g)) = parse_git_ref(src)
                    && g.transport == Transport::Ssh
                    && opts.run.mounts.ssh_agent("default").is_none()
                {
                    return Err(refuse(ins, ssh_needs_agent(&g.redacted())));
                }
            }
        }
    }
    Ok(())
}

/// Every stage with a RUN must be able to run it: natively, or through a QEMU handler of the
/// kernel's binfmt_misc (see `sandbox/emulation.rs`). Asked once per platform, before anything
/// is pulled; the first RUN of a platform that cannot run is the one named.
pub(crate) fn check_emulation(df: &Dockerfile, plan: &Plan, work_dir: &std::path::Path) -> Result<(), BuildError> {
    let mut checked: Vec<Platform> = Vec::new();
    for &idx in &plan.order {
        let Some(run) = df.stages[plan.stages[idx].dockerfile_stage]
            .instructions
            .iter()
            .find(|i| matches!(i.kind, InstructionKind::Run { .. }))
        else {
            continue;
        };
        let platform = plan.stage_platform(idx);
        if checked.contains(&platform) {
            continue;
        }
        // Where binfmt_misc is not visible (a pod), a test program of the platform decides;
        // it is written in the build's work dir (made now if need be, as the build would).
        let _ = std::fs::create_dir_all(work_dir);
        crate::sandbox::emulation::execution_probing_in(&platform, work_dir)
            .map_err(|e| refuse(run, format!("cannot run for {e}")))?;
        checked.push(platform);
    }
    Ok(())
}

fn refuse(ins: &crate::dockerfile::Instruction, why: String) -> BuildError {
    let location =
        Location { file: ins.path.display().to_string(), line: ins.line, instruction: ins.quoted(), platform: None };
    BuildError::Step { location, step: None, source: Box::new(StepError::Invalid(why)) }
}
