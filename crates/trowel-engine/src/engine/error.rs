//! Build errors. Each keeps the typed error it came from (fs, registry, sandbox, cache, store)
//! as its `source`, so a caller can tell a refused push from a full disk without parsing
//! text; and a failure inside a step always names the Dockerfile, the line and the instruction
//! (`Dockerfile:7: RUN make: exit code 2`), because that is what a person reading a CI log
//! needs first.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::dockerfile::DockerfileError;
use crate::fs::FsError;
use crate::image::config::ConfigError;
use crate::image::outputs::OutputError;
use crate::image::store::StoreError;
use crate::registry::RegistryError;
use crate::sandbox::SandboxError;

/// Where in the Dockerfile something happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    /// First line of the instruction as written (heredoc bodies and continuations left out).
    pub instruction: String,
    /// In a build for several platforms, the one the stage was built for (`linux/arm64`, or
    /// `linux/amd64, shared`), written first: the same line may have built for another target.
    /// BuildKit names the vertex so (`[linux/arm64 2/2] RUN …`). `None` in a build for one,
    /// whose errors read as they always have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.platform {
            write!(f, "[{p}] ")?;
        }
        write!(f, "{}:{}: {}", self.file, self.line, self.instruction)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    /// A step failed.
    #[error("{location}: {source}")]
    Step {
        location: Location,
        /// Which step (`None` when it failed before it was one: an ONBUILD trigger that does not
        /// parse, a base that cannot be resolved).
        step: Option<trowel_events::StepId>,
        #[source]
        source: Box<StepError>,
    },
    /// The options or the machine do not allow this build; found before anything was built.
    #[error("{0}")]
    Options(String),
    /// The registry client could not be set up (a bad certificate, an unreadable Docker config).
    #[error(transparent)]
    Registry(RegistryError),
    /// Rootless isolation's user namespace did not get its maps, or the work dir cannot hold
    /// files owned by its ids: found when the build first needs them (`BuildContext::scratch_dir`).
    #[error(transparent)]
    Rootless(crate::sandbox::RootlessError),
    /// Reading or writing trowel's own files (the work dir, the Dockerfile) failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A build root or the build context could not be read or changed.
    #[error("{what}: {source}")]
    Fs {
        what: String,
        #[source]
        source: FsError,
    },
    /// The build's blob store failed.
    #[error("{what}: {source}")]
    Store {
        what: String,
        #[source]
        source: StoreError,
    },
    /// A base image (or a `COPY --from` image) could not be had.
    #[error("{}", pull_message(reference, source))]
    Pull {
        reference: String,
        #[source]
        source: PullError,
    },
    #[error("{}", push_message(destination, source))]
    Push {
        destination: String,
        #[source]
        source: PushError,
    },
    /// A layer is not what its image says it is (its content does not hash to its diff_id, or
    /// goes on past the end of its archive): an altered base image or cache entry.
    #[error("{what}: {reason}")]
    Corrupt { what: String, reason: String },
    /// `--tar-path`, `--oci-layout-path` or a digest file could not be written.
    #[error("write {what} {}: {source}", path.display())]
    Output {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: OutputError,
    },
    /// Stopped by the controller (debugger quit, push refused).
    #[error("build aborted: {0}")]
    Aborted(String),
    /// The work dir's or cache dir's file system filled up (or went over a quota): the error
    /// it caused, with the directory, its file system and what to do (`disk_full.rs`).
    #[error(transparent)]
    NoSpace(Box<super::disk_full::NoSpace>),
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A RUN exited non-zero.
    #[error("exit code {0}")]
    Exit(i32),
    /// A RUN ran longer than `--run-timeout` and was killed.
    #[error("timed out after {secs}s")]
    TimedOut { secs: u64, exit_code: i32 },
    /// The instruction cannot be carried out as written (a bad flag value, a source that does
    /// not exist, a user the image does not know…).
    #[error("{0}")]
    Invalid(String),
    /// The sandbox could not run the command.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Reading or writing the build root (or a source root) failed.
    #[error("{what}: {source}")]
    Fs {
        what: String,
        #[source]
        source: FsError,
    },
    /// Reading or writing a file outside the roots (a download, a scratch file) failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An `ADD <url>` download failed.
    #[error("ADD {url}: {source}")]
    Download {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// An `ADD <git repository>` could not be fetched or checked out (shared: the cache-key
    /// planner and the step see the same failure).
    #[error(transparent)]
    Git(std::sync::Arc<crate::git::GitError>),
    /// Something the step needs from elsewhere failed (an image to copy from, a root to unpack).
    #[error(transparent)]
    Build(Box<BuildError>),
    /// A context file the step read is not the one its cache key was made from: something
    /// wrote to the context while the build ran (`steps/copy/seen.rs`). The step fails before
    /// its layer is written, so no cache entry or image holds what it read.
    #[error(
        "the build context changed while the build ran: {path} {what}{}; nothing was pushed or cached",
        instruction.as_ref().map(|i| format!(" (step: {i})")).unwrap_or_default()
    )]
    ContextChanged {
        /// The path in the context.
        path: String,
        what: String,
        /// The whole instruction, when its location names only its first line.
        instruction: Option<String>,
    },
}

impl From<BuildError> for StepError {
    fn from(e: BuildError) -> StepError {
        StepError::Build(Box::new(e))
    }
}

/// Why an image could not be pulled.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The image's config is not a config trowel can read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The blob store refused a downloaded blob.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The image contradicts itself (manifest and config disagree).
    #[error("image is inconsistent: {0}")]
    Inconsistent(String),
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The registry stored the image under another digest than the one trowel built.
    #[error("registry reports manifest digest {reported} but trowel pushed {pushed}")]
    DigestMismatch { reported: String, pushed: String },
    /// The background task checking push access died.
    #[error("push check failed: {0}")]
    Check(String),
}

/// A registry error already says what it was doing to which image (`pull x:1: manifest
/// unknown`); the other causes get that prefix here.
fn pull_message(reference: &str, source: &PullError) -> String {
    match source {
        PullError::Registry(e) => e.to_string(),
        other => format!("pull {reference}: {other}"),
    }
}

/// As [`pull_message`], for a push: a registry error that names its operation and reference
/// stands alone (it was `push x:1: push x:1: …`).
fn push_message(destination: &str, source: &PushError) -> String {
    match source {
        PushError::Registry(e) if e.names_operation() => e.to_string(),
        other => format!("push {destination}: {other}"),
    }
}

impl BuildError {
    /// The process exit code for this error: a failed RUN's own code, else 1.
    pub fn exit_code(&self) -> i32 {
        match self.step_exit_code() {
            Some(c) if c > 0 => c,
            _ => 1,
        }
    }

    /// The exit code of the RUN that failed, if a RUN failed.
    pub fn step_exit_code(&self) -> Option<i32> {
        match self {
            BuildError::NoSpace(n) => n.source.step_exit_code(),
            BuildError::Step { source, .. } => match **source {
                StepError::Exit(c) => Some(c),
                StepError::TimedOut { exit_code, .. } => Some(exit_code),
                _ => None,
            },
            _ => None,
        }
    }

    /// The step that failed, when a step did.
    pub fn step(&self) -> Option<trowel_events::StepId> {
        match self {
            BuildError::NoSpace(n) => n.source.step(),
            BuildError::Step { step, .. } => *step,
            _ => None,
        }
    }

    pub fn location(&self) -> Option<&Location> {
        match self {
            BuildError::NoSpace(n) => n.source.location(),
            BuildError::Step { location, .. } => Some(location),
            _ => None,
        }
    }

    /// This error, said of a stage built for `platform` (see [`Location::platform`]) when it
    /// is a step's and does not say so yet.
    pub(crate) fn on_platform(mut self, platform: Option<String>) -> BuildError {
        if let BuildError::Step { location, .. } = &mut self
            && location.platform.is_none()
        {
            location.platform = platform;
        }
        self
    }

    pub fn is_aborted(&self) -> bool {
        matches!(self, BuildError::Aborted(_))
    }

    /// A failed build-root operation.
    pub(crate) fn fs(what: impl Into<String>) -> impl FnOnce(FsError) -> BuildError {
        let what = what.into();
        move |source| BuildError::Fs { what, source }
    }

    /// A failed I/O operation on trowel's own files.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
        let what = what.into();
        move |source| BuildError::Io { what, source }
    }

    /// A failed blob store operation.
    pub(crate) fn store(what: impl Into<String>) -> impl FnOnce(StoreError) -> BuildError {
        let what = what.into();
        move |source| BuildError::Store { what, source }
    }

    /// A pull failure of `reference`.
    pub(crate) fn pull<E: Into<PullError>>(reference: impl Into<String>) -> impl FnOnce(E) -> BuildError {
        let reference = reference.into();
        move |e| BuildError::Pull { reference, source: e.into() }
    }
}

impl StepError {
    /// A failed operation on a build root or source root.
    pub(crate) fn fs(what: impl Into<String>) -> impl FnOnce(FsError) -> StepError {
        let what = what.into();
        move |source| StepError::Fs { what, source }
    }

    /// A context file changed since the step's key was made from it.
    pub(crate) fn context_changed(path: &str, what: impl Into<String>) -> StepError {
        StepError::ContextChanged {
            path: path.trim_start_matches('/').to_string(),
            what: what.into(),
            instruction: None,
        }
    }

    /// A copy's error (`what`: what was copied), [`StepError::ContextChanged`] when its
    /// [`crate::fs::copy::Watch`] refused a source.
    pub(crate) fn copy(what: impl Into<String>) -> impl FnOnce(FsError) -> StepError {
        let what = what.into();
        move |source| match source {
            FsError::SourceChanged { path, what } => StepError::context_changed(&path, what),
            source => StepError::Fs { what, source },
        }
    }

    /// A failed I/O operation outside the roots.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StepError {
        let what = what.into();
        move |source| StepError::Io { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Op, RegistryError};

    #[test]
    fn a_push_error_names_the_destination_once() {
        let e = BuildError::Push {
            destination: "127.0.0.1:5000/app:1".into(),
            source: PushError::Registry(RegistryError::Registry {
                op: Op::Push,
                reference: "127.0.0.1:5000/app:1".into(),
                status: 500,
                detail: "internal error".into(),
                codes: vec![],
            }),
        };
        assert_eq!(e.to_string(), "push 127.0.0.1:5000/app:1: internal error");
    }

    #[test]
    fn a_push_error_without_its_own_context_gets_the_destination() {
        let e = BuildError::Push {
            destination: "127.0.0.1:5000/app:1".into(),
            source: PushError::Registry(RegistryError::Options("bad --insecure-registry".into())),
        };
        assert_eq!(e.to_string(), "push 127.0.0.1:5000/app:1: registry options: bad --insecure-registry");
        let e = BuildError::Push {
            destination: "r/app:1".into(),
            source: PushError::DigestMismatch { reported: "sha256:a".into(), pushed: "sha256:b".into() },
        };
        assert_eq!(e.to_string(), "push r/app:1: registry reports manifest digest sha256:a but trowel pushed sha256:b");
    }
}
