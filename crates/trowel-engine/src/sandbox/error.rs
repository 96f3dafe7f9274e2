//! The sandbox's error type.
//!
//! A RUN whose command exits non-zero is not an error here: that is a normal
//! [`RunOutcome`](super::RunOutcome). `SandboxError` covers failures of the sandbox itself (a bad
//! spec, the helper not starting, a mount failing, the program not being executable) and of
//! USER resolution.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The [`RunSpec`](super::RunSpec) cannot be executed as given.
    #[error("invalid RUN spec for root {root}: {reason}")]
    InvalidSpec { root: PathBuf, reason: String },

    /// The build root is missing or unusable.
    #[error("build root {root}: {source}")]
    Root { root: PathBuf, source: io::Error },

    /// A mount point the sandbox needs could not be prepared or removed again.
    #[error("mount point {path} in build root {root}: {source}")]
    MountPoint { root: PathBuf, path: String, source: io::Error },

    /// In container isolation, the command did what one of its mounts would have refused (a
    /// write to a read-only mount, a tmpfs over its size): checked once it is done.
    #[error("{reasons}")]
    MountBreached { reasons: String },

    /// The re-exec helper could not be started.
    #[error("cannot start sandbox helper {helper}: {source}")]
    Spawn { helper: PathBuf, source: io::Error },

    /// Talking to the helper (spec pipe, output pipes, waiting) failed.
    #[error("sandbox for build root {root}: {context}: {source}")]
    Io { root: PathBuf, context: String, source: io::Error },

    /// Setting up the isolated environment failed inside the helper (namespaces, mounts, user).
    #[error("sandbox set-up for build root {root} failed: {message}")]
    Setup { root: PathBuf, message: String },

    /// The helper ended without saying why: it crashed, or `helper_exe` is not a trowel binary.
    #[error("sandbox helper {helper} ended ({status}) without reporting a result; is it the trowel binary?")]
    HelperDied { helper: PathBuf, status: String },

    /// `argv[0]` has no `/` and is in no directory of the command's `PATH`.
    #[error("executable not found in PATH: {program}")]
    ExecutableNotFound { program: String },

    /// The program exists but `execve` failed (permissions, format, missing interpreter).
    #[error("cannot execute {program}: {message}")]
    Exec { program: String, message: String },

    /// `USER` names a user the image's `/etc/passwd` does not have.
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UnknownUser { user: String },

    /// `USER x:group` names a group the image's `/etc/group` does not have.
    #[error("unable to find group {group}: no matching entries in group file")]
    UnknownGroup { group: String },

    /// A numeric uid or gid outside the range the kernel and Docker accept.
    #[error("invalid USER {spec}: uids and gids must be in range 0-2147483647")]
    IdOutOfRange { spec: String },
}
