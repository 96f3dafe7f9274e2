//! Everything that can be refused before anything is pulled or run: the Dockerfile's own
//! mistakes (`dockerfile::validate`), `FROM --platform` values, and what this engine does not do
//! yet. A build that cannot succeed fails at once, naming the file, the line and the whole
//! instruction, instead of after the steps before it.

use crate::dockerfile::gitref::is_git_source;
use crate::dockerfile::{Base, CopySource, Dockerfile, InstructionKind, Plan};
use crate::engine::error::{BuildError, Location, StepError};
use crate::image::manifest::Platform;
use crate::sandbox::Isolation;

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

/// ADD of a git repository runs the `git` command: it must be there, and it must not be the
/// image's. In container isolation `/` is the build root, so a `git` found on PATH would be the
/// base image's (or one an earlier RUN put there), with helpers from the image's
/// `/usr/lib/git-core` — an image must not decide what its own sources are. trowel's image has
/// no git of its own yet, so there it is refused.
pub(crate) fn check_git(df: &Dockerfile, plan: &Plan, isolation: Isolation) -> Result<(), BuildError> {
    for ps in plan.stages.iter().filter(|s| s.needed) {
        for ins in &df.stages[ps.index].instructions {
            let InstructionKind::Add(args) = &ins.kind else { continue };
            if !args.sources.iter().any(|s| matches!(s, CopySource::Path(p) if !p.contains('$') && is_git_source(p))) {
                continue;
            }
            if isolation == Isolation::Container {
                return Err(refuse(ins, crate::git::GitError::ContainerIsolation.to_string()));
            }
            crate::git::available().map_err(|e| refuse(ins, e.to_string()))?;
        }
    }
    Ok(())
}

fn refuse(ins: &crate::dockerfile::Instruction, why: String) -> BuildError {
    let location = Location { file: ins.path.display().to_string(), line: ins.line, instruction: ins.quoted() };
    BuildError::Step { location, step: None, source: Box::new(StepError::Invalid(why)) }
}
