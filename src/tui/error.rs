//! Errors of the terminal debugger.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// The debugger draws on a terminal; there is none on stdin/stdout.
    #[error("{what} needs a terminal (stdin and stdout must be a TTY){hint}")]
    NoTerminal { what: &'static str, hint: &'static str },
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    #[error("theme {name}: {message}")]
    Theme { name: String, message: String },
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceError),
    #[error("trace {path}: {message}")]
    EmptyTrace { path: PathBuf, message: String },
    #[error("invalid --break {spec:?}: {message}")]
    Breakpoint { spec: String, message: String },
    #[error("the build thread panicked")]
    EnginePanicked,
}
