//! Build errors. A failure inside a step always names the Dockerfile, the line and the
//! instruction (`Dockerfile:7: RUN make: exit code 2`), because that is what a person reading a
//! CI log needs first.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dockerfile::DockerfileError;

/// Where in the Dockerfile something happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    /// First line of the instruction as written (heredoc bodies and continuations left out).
    pub instruction: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.instruction)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    /// A step failed; `exit_code` is set when a RUN exited non-zero (trowel exits with it).
    #[error("{location}: {message}")]
    Step { location: Location, message: String, exit_code: Option<i32> },
    /// Bad options or environment, found before anything was built.
    #[error("{0}")]
    Setup(String),
    #[error("pull {reference}: {message}")]
    Pull { reference: String, message: String },
    #[error("push {destination}: {message}")]
    Push { destination: String, message: String },
    #[error("write {what} {path}: {message}")]
    Output { what: String, path: String, message: String },
    /// Stopped by the controller (debugger quit, push refused).
    #[error("build aborted: {0}")]
    Aborted(String),
}

impl BuildError {
    /// The process exit code for this error: a failed RUN's own code, else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::Step { exit_code: Some(c), .. } if *c > 0 => *c,
            _ => 1,
        }
    }

    pub fn location(&self) -> Option<&Location> {
        match self {
            BuildError::Step { location, .. } => Some(location),
            _ => None,
        }
    }
}
