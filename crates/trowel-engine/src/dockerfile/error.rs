//! The module's error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// Every error of the `dockerfile` module.
///
/// Problems tied to a line of a Dockerfile display as `{path}:{line}: {instruction}: {reason}`,
/// where `{instruction}` is the first physical line of the offending instruction, or as
/// `{path}:{line}: {reason}` when no instruction is involved (e.g. a bad parser directive).
/// Line numbers are 1-based.
#[derive(Debug, thiserror::Error)]
pub enum DockerfileError {
    /// A syntax, validation or expansion problem at a line of a Dockerfile.
    #[error("{}", Located { path, line: *line, instruction: instruction.as_deref(), reason })]
    At {
        /// The Dockerfile path as given to the parser.
        path: PathBuf,
        /// 1-based line of the instruction (or of the problem when no instruction is involved).
        line: usize,
        /// First physical line of the instruction, trimmed.
        instruction: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// A problem with the Dockerfile as a whole, not with one line (e.g. an unknown `--target`).
    #[error("{}: {reason}", path.display())]
    File {
        /// The Dockerfile path as given to the parser.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A bad `.dockerignore` (or `COPY --exclude`) pattern.
    #[error("{}", IgnoreLocation { source_name, line: *line, pattern, reason })]
    Ignore {
        /// The ignore file, or a description such as `COPY --exclude` for patterns given directly.
        source_name: String,
        /// 1-based line in the ignore file, when the patterns came from a file.
        line: Option<usize>,
        /// The pattern as written.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
    /// An ignore file could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl DockerfileError {
    /// An error at `line` of `path`, attributed to the instruction whose first line is `instruction`.
    pub(crate) fn at(path: &Path, line: usize, instruction: Option<&str>, reason: impl Into<String>) -> Self {
        DockerfileError::At {
            path: path.to_path_buf(),
            line,
            instruction: instruction.map(|s| s.trim().to_string()),
            reason: reason.into(),
        }
    }

    /// An error about the whole Dockerfile.
    pub(crate) fn file(path: &Path, reason: impl Into<String>) -> Self {
        DockerfileError::File { path: path.to_path_buf(), reason: reason.into() }
    }

    /// The 1-based line the error refers to, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            DockerfileError::At { line, .. } => Some(*line),
            DockerfileError::Ignore { line, .. } => *line,
            DockerfileError::File { .. } | DockerfileError::Io { .. } => None,
        }
    }

    /// The bare reason, without path, line or instruction.
    pub fn reason(&self) -> String {
        match self {
            DockerfileError::At { reason, .. }
            | DockerfileError::File { reason, .. }
            | DockerfileError::Ignore { reason, .. } => reason.clone(),
            DockerfileError::Io { source, .. } => source.to_string(),
        }
    }
}

struct Located<'a> {
    path: &'a Path,
    line: usize,
    instruction: Option<&'a str>,
    reason: &'a str,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.path.display(), self.line)?;
        if let Some(instruction) = self.instruction {
            write!(f, "{instruction}: ")?;
        }
        f.write_str(self.reason)
    }
}

struct IgnoreLocation<'a> {
    source_name: &'a str,
    line: Option<usize>,
    pattern: &'a str,
    reason: &'a str,
}

impl fmt::Display for IgnoreLocation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.source_name)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": pattern {:?}: {}", self.pattern, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_formats() {
        let e = DockerfileError::at(
            Path::new("testdata/bad/Dockerfile"),
            3,
            Some("  FROOM busybox  "),
            "unknown instruction FROOM",
        );
        assert_eq!(e.to_string(), "testdata/bad/Dockerfile:3: FROOM busybox: unknown instruction FROOM");
        assert_eq!(e.line(), Some(3));
        let e = DockerfileError::at(Path::new("Dockerfile"), 1, None, "invalid escape token");
        assert_eq!(e.to_string(), "Dockerfile:1: invalid escape token");
        let e = DockerfileError::file(Path::new("Dockerfile"), "no stage");
        assert_eq!(e.to_string(), "Dockerfile: no stage");
        let e = DockerfileError::Ignore {
            source_name: ".dockerignore".into(),
            line: Some(2),
            pattern: "a[".into(),
            reason: "unclosed character class".into(),
        };
        assert_eq!(e.to_string(), ".dockerignore:2: pattern \"a[\": unclosed character class");
    }
}
