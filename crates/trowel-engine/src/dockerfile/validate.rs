//! What the Dockerfile alone shows to be wrong, checked when it is planned: before a base is
//! pulled or a step runs, a misspelt mount option or an impossible flag value fails the build
//! with the file, the line and the whole instruction. (Today's failure at step 100 of 355, after
//! an hour of building, is what this prevents.)
//!
//! Only the stages the target needs are checked, as only they are built. Values that hold a
//! variable are checked after expansion, when the step runs (as BuildKit does).

use super::error::DockerfileError;
use super::flags::{multi_flag, str_flag};
use super::mount::MountSpec;
use super::stages::Plan;
use super::types::{Dockerfile, Instruction, InstructionKind};

// Flag syntax (known flags, booleans, octal `--chmod`, `--checksum` digests) is checked by the
// parser already (`flags.rs`); this is about flag values that need more than syntax.

/// `RUN --network` values (BuildKit's).
pub const NETWORK_MODES: [&str; 3] = ["default", "none", "host"];
/// `RUN --security` values (BuildKit's).
pub const SECURITY_MODES: [&str; 2] = ["sandbox", "insecure"];

/// Checks every instruction of the stages `plan` builds.
pub fn validate(df: &Dockerfile, plan: &Plan) -> Result<(), DockerfileError> {
    for ps in plan.stages.iter().filter(|s| s.needed) {
        for ins in &df.stages[ps.index].instructions {
            check(ins)?;
        }
    }
    Ok(())
}

/// Checks one instruction as written (ONBUILD triggers are checked when they run).
pub fn check(ins: &Instruction) -> Result<(), DockerfileError> {
    let known = |v: &str| !v.contains('$');
    if let InstructionKind::Run { flags, .. } = &ins.kind {
        for m in multi_flag(flags, "mount") {
            MountSpec::check_unexpanded(m).map_err(|e| ins.error(format!("--mount={m}: {e}")))?;
        }
        if let Some(n) = str_flag(flags, "network").filter(|v| known(v))
            && !NETWORK_MODES.contains(&n)
        {
            return Err(ins.error(format!("unsupported network mode {n:?} (one of default, none, host)")));
        }
        if let Some(s) = str_flag(flags, "security").filter(|v| known(v))
            && !SECURITY_MODES.contains(&s)
        {
            return Err(ins.error(format!("unsupported security mode {s:?} (one of sandbox, insecure)")));
        }
    }
    Ok(())
}
