//! `trowel replay`'s flags: a recorded trace, optionally compared with another.

use std::path::PathBuf;

use clap::Args;

use super::UiArgs;

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The trace file.
    pub trace: PathBuf,
    /// Print a plain-text post-mortem instead of opening the terminal UI; exits as the build
    /// did (0 when it finished, non-zero when it failed, was aborted or never finished).
    #[arg(long)]
    pub summary: bool,
    /// Compare with another trace (build B; the first is A): step by step, which cache keys
    /// differ and why, and which files of each step's layer differ. With --summary, plain text
    /// that exits 0 when the builds are equivalent, 1 when they differ, 2 when a trace cannot
    /// be read.
    #[arg(long, value_name = "TRACE")]
    pub compare: Option<PathBuf>,
    #[command(flatten)]
    pub ui: UiArgs,
}
