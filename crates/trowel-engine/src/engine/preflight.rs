//! Everything that can be refused before anything is pulled or run: the Dockerfile's own
//! mistakes (`dockerfile::validate`), `FROM --platform` values, and what this engine does not do
//! yet. A build that cannot succeed fails at once, naming the file, the line and the whole
//! instruction, instead of after the steps before it.

use crate::dockerfile::gitref::is_git_source;
use crate::dockerfile::{Base, CopySource, Dockerfile, InstructionKind, Plan};
use crate::engine::error::{BuildError, Location, StepError};
use crate::image::manifest::Platform;

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
            // A git source needs the git command: say so before the pull, not at the step.
            if let InstructionKind::Add(args) = &ins.kind
                && args.sources.iter().any(|s| matches!(s, CopySource::Path(p) if !p.contains('$') && is_git_source(p)))
                && let Err(e) = crate::git::available()
            {
                return Err(refuse(ins, e.to_string()));
            }
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
