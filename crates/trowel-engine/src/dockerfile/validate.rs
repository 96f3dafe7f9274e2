//! What the Dockerfile alone shows to be wrong, checked when it is planned: before a base is
//! pulled or a step runs, a misspelt mount option or an impossible flag value fails the build
//! with the file, the line and the whole instruction. (Today's failure at step 100 of 355, after
//! an hour of building, is what this prevents.)
//!
//! Only the stages the target needs are checked, as only they are built. Values that hold a
//! variable are checked after expansion, when the step runs (as BuildKit does).

use super::error::DockerfileError;
use super::flags::{bool_flag, link_chown_error, link_chown_ids, multi_flag, str_flag};
use super::gitref::{parse_git_ref, redact_url};
use super::mount::MountSpec;
use super::stages::Plan;
use super::types::{CopyArgs, CopySource, Dockerfile, Instruction, InstructionKind, Keyword};

// Flag syntax (known flags, booleans, octal `--chmod`, `--checksum` digests) is checked by the
// parser already (`flags.rs`); this is about flag values that need more than syntax.

/// `RUN --network` values (BuildKit's).
pub const NETWORK_MODES: [&str; 3] = ["default", "none", "host"];
/// `RUN --security` values (BuildKit's).
pub const SECURITY_MODES: [&str; 2] = ["sandbox", "insecure"];

/// Checks every instruction of the stages `plan` builds.
pub fn validate(df: &Dockerfile, plan: &Plan) -> Result<(), DockerfileError> {
    for ps in plan.stages.iter().filter(|s| s.needed) {
        for ins in &df.stages[ps.dockerfile_stage].instructions {
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
    match &ins.kind {
        InstructionKind::Copy(args) => check_copy(ins, Keyword::Copy, args)?,
        InstructionKind::Add(args) => check_copy(ins, Keyword::Add, args)?,
        _ => {}
    }
    Ok(())
}

/// COPY/ADD: git sources (the URL's options, what only ADD can fetch, transports trowel cannot
/// use yet) and what `--link` cannot do, as far as no variable hides it.
fn check_copy(ins: &Instruction, keyword: Keyword, args: &CopyArgs) -> Result<(), DockerfileError> {
    let known = |v: &str| !v.contains('$');
    let link = bool_flag(&args.flags, "link") && str_flag(&args.flags, "chmod").is_none();
    if let Some(chown) = str_flag(&args.flags, "chown").filter(|c| known(c))
        && link
        && link_chown_ids(chown).is_none()
    {
        return Err(ins.error(link_chown_error(chown)));
    }
    for src in args.sources.iter().filter_map(|s| match s {
        CopySource::Path(p) if known(p) => Some(p.as_str()),
        _ => None,
    }) {
        let git = match parse_git_ref(src) {
            Ok(None) => continue,
            Err(e) if keyword == Keyword::Add => {
                return Err(ins.error(format!("git source {}: {e}", redact_url(src))));
            }
            _ if keyword == Keyword::Copy => {
                return Err(ins.error(format!("source can't be a git ref for COPY: {} (use ADD)", redact_url(src))));
            }
            Ok(Some(g)) => g,
            Err(_) => continue,
        };
        let flag = args.flags.iter().rev().find(|f| f.name == "keep-git-dir");
        if let (Some(_), Some(url)) = (flag, git.keep_git_dir)
            && bool_flag(&args.flags, "keep-git-dir") != url
        {
            return Err(ins.error("inconsistent keep-git-dir configuration"));
        }
        if let (Some(flag), Some(url)) =
            (str_flag(&args.flags, "checksum").filter(|c| known(c) && !c.is_empty()), &git.checksum)
            && flag != url
        {
            return Err(ins.error(format!("checksum mismatch {flag:?} != {url:?}")));
        }
    }
    Ok(())
}
