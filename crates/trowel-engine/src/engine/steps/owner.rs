//! Who owns what COPY/ADD and WORKDIR create: the owner spec (`--chown`, or the `USER` in
//! effect) resolved against the destination image's `/etc/passwd` and `/etc/group` by
//! BuildKit's file-operation rules ([`sandbox::file_owner`]), and what to do with a name those
//! files lack. BuildKit silently takes such a user as 0:0; trowel refuses it for an explicit
//! `--chown` (files meant for a user that does not exist are a mistake to report, not to bury)
//! and follows BuildKit, with a warning, for the directories `WORKDIR` creates for a `USER` (the
//! `USER` may be meant for a later image that adds the user, and BuildKit builds it).

use crate::engine::error::{BuildError, StepError};
use crate::engine::steps::StepAt;
use crate::fs::root::Root;
use crate::sandbox::{self, FileOwner, SandboxError};

/// The image's user and group databases (`None` where a file does not exist).
fn databases(root: &Root, at: &StepAt<'_>) -> Result<(Option<String>, Option<String>), BuildError> {
    let read = |p: &str| root.read_to_string(p).map_err(|e| at.fail(StepError::fs(format!("read {p}"))(e)));
    Ok((read("/etc/passwd")?, read("/etc/group")?))
}

fn resolve(root: &Root, spec: &str, at: &StepAt<'_>) -> Result<FileOwner, BuildError> {
    let (passwd, group) = databases(root, at)?;
    sandbox::file_owner(spec, passwd.as_deref(), group.as_deref()).map_err(|e| at.fail(e))
}

/// `--chown=user[:group]`: every name must exist in the destination image.
pub(crate) fn chown(root: &Root, at: &StepAt<'_>, spec: &str) -> Result<(u32, u32), BuildError> {
    let owner = resolve(root, spec, at)?;
    match owner.unknown.first() {
        None => Ok((owner.uid, owner.gid)),
        Some(SandboxError::UnknownGroup { group }) => {
            Err(at.invalid(format!("--chown={spec}: unable to find group {group} in the image's /etc/group")))
        }
        Some(SandboxError::UnknownUser { user }) => {
            Err(at.invalid(format!("--chown={spec}: unable to find user {user} in the image's /etc/passwd")))
        }
        Some(other) => Err(at.invalid(format!("--chown={spec}: {other}"))),
    }
}

/// The owner of directories created for `user` (the stage's `USER`; empty: root), as BuildKit
/// gives them: names the image lacks are warned about and replaced as BuildKit replaces them.
pub(crate) fn for_user(
    root: &Root,
    at: &StepAt<'_>,
    user: &str,
    warn: &dyn Fn(String),
) -> Result<(u32, u32), BuildError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let owner = resolve(root, user, at)?;
    for miss in &owner.unknown {
        warn(format!(
            "{}: USER {user}: {miss}; what it creates is owned by {}:{}, as BuildKit does",
            at.loc, owner.uid, owner.gid
        ));
    }
    Ok((owner.uid, owner.gid))
}
