//! Build check findings as the state keeps them, for the log's closing line, the summary and
//! the debugger's markers on Dockerfile lines.

/// One finding of a build check (a `check` event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckView {
    pub rule: String,
    pub description: String,
    pub url: Option<String>,
    pub message: String,
    pub line: usize,
    pub end_line: usize,
    /// It fails the build (`check=error=true`).
    pub error: bool,
}

impl CheckView {
    /// Whether it is about Dockerfile line `line`.
    pub fn covers(&self, line: usize) -> bool {
        self.line <= line && line <= self.end_line.max(self.line)
    }

    /// `Rule: message (line N)`, as BuildKit shortens a finding.
    pub fn short(&self) -> String {
        format!("{}: {} (line {})", self.rule, self.message, self.line)
    }
}
