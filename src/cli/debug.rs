//! `trowel debug`'s flags: every `trowel build` flag, plus the debugger's own.

use clap::Args;

use super::{BuildArgs, UiArgs};

/// `trowel debug`: every `trowel build` flag, plus the debugger's. Breakpoints are the
/// build's `--break` (repeatable): a line number, stage:NAME, failure, cache-miss, size:SIZE
/// or path:GLOB, each limited to one target platform as PLATFORM@BREAKPOINT (linux/arm64@12).
#[derive(Debug, Clone, Args)]
pub struct DebugArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// Do not pause when a step fails (trowel debug pauses at failures by default).
    #[arg(long)]
    pub no_break_on_failure: bool,
    /// Pause before the first step.
    #[arg(long)]
    pub step: bool,
    #[command(flatten)]
    pub ui: UiArgs,
}

#[cfg(test)]
mod tests {
    use super::super::{Command, parse};

    #[test]
    fn debug_takes_build_flags_and_debugger_flags() {
        let cli = parse(&[
            "trowel",
            "debug",
            "--context",
            "/ws",
            "--no-push",
            "--break",
            "7",
            "--break",
            "cache-miss",
            "--step",
            "--no-mouse",
            "--theme",
            "light",
        ]);
        let Command::Debug(d) = cli.command else { panic!("expected debug") };
        assert_eq!(d.build.context.as_deref(), Some("/ws"));
        assert!(d.build.no_push && d.step && d.ui.no_mouse && !d.no_break_on_failure);
        assert_eq!(d.build.breakpoints, vec!["7", "cache-miss"]);
        assert_eq!(d.ui.theme.as_deref(), Some("light"));
        let cli = parse(&["trowel", "replay", "t.jsonl", "--theme", "mono"]);
        let Command::Replay(r) = cli.command else { panic!("expected replay") };
        assert!(!r.summary && r.ui.theme.as_deref() == Some("mono"));
        assert_eq!(r.compare, None);
        let cli = parse(&["trowel", "replay", "a.jsonl", "--compare", "b.jsonl", "--summary"]);
        let Command::Replay(r) = cli.command else { panic!("expected replay") };
        assert_eq!((r.trace, r.compare, r.summary), ("a.jsonl".into(), Some("b.jsonl".into()), true));
    }
}
