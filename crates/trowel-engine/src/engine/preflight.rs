//! Everything that can be refused before anything is pulled or run: the Dockerfile's own
//! mistakes (`dockerfile::validate`), `FROM --platform` values, and what this engine does not do
//! yet. A build that cannot succeed fails at once, naming the file, the line and the whole
//! instruction, instead of after the steps before it.

use crate::dockerfile::{self, Base, Dockerfile, InstructionKind, Plan};
use crate::engine::error::{BuildError, Location, StepError};
use crate::engine::options::BuildOptions;
use crate::image::manifest::Platform;

/// A Dockerfile read, parsed, planned for the build's target and checked: what a front end
/// needs to judge its breakpoints (lines, stages) before the build starts.
#[derive(Debug, Clone)]
pub struct Planned {
    pub df: Dockerfile,
    pub plan: Plan,
}

/// Reads, parses, plans and checks the Dockerfile of `opts` exactly as [`build`](super::build)
/// starts: an error here is the error the build would fail with, before pulling anything.
pub fn plan_dockerfile(opts: &BuildOptions) -> Result<Planned, BuildError> {
    let text = std::fs::read_to_string(&opts.dockerfile)
        .map_err(BuildError::io(format!("read Dockerfile {}", opts.dockerfile.display())))?;
    let df = dockerfile::parse(&opts.dockerfile, &text)?;
    let plan = dockerfile::plan(
        &df,
        opts.target.as_deref(),
        &opts.build_args,
        &dockerfile::PlatformArgs { target: opts.target_platform(), build: Platform::host() },
    )?;
    check(&df, &plan)?;
    Ok(Planned { df, plan })
}

/// Checks the stages `plan` builds.
pub(crate) fn check(df: &Dockerfile, plan: &Plan) -> Result<(), BuildError> {
    crate::dockerfile::validate(df, plan)?;
    for ps in plan.stages.iter().filter(|s| s.needed) {
        let stage = &df.stages[ps.index];
        if let (Base::Image(_), Some(p)) = (&ps.base, &ps.platform)
            && !p.is_empty()
        {
            Platform::parse(p).map_err(|e| refuse(&stage.from, format!("FROM --platform: {e}")))?;
        }
        for ins in &stage.instructions {
            if let InstructionKind::Run { flags, .. } = &ins.kind {
                for f in flags {
                    let unsupported = match (f.name.as_str(), f.value.as_deref()) {
                        ("mount", _) => Some("RUN --mount is not supported yet".to_string()),
                        ("network", Some("none")) => {
                            Some("RUN --network=none is not supported yet (trowel runs RUN on the host network)".into())
                        }
                        ("security", Some("insecure")) => Some("RUN --security=insecure is not supported".into()),
                        _ => None,
                    };
                    if let Some(why) = unsupported {
                        return Err(refuse(ins, why));
                    }
                }
            }
        }
    }
    Ok(())
}

fn refuse(ins: &crate::dockerfile::Instruction, why: String) -> BuildError {
    let location = Location { file: ins.path.display().to_string(), line: ins.line, instruction: ins.quoted() };
    BuildError::Step { location, step: None, source: Box::new(StepError::Invalid(why)) }
}
