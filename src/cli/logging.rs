//! The log flags `build` and `warm` share (kaniko's names), and how kaniko's levels map onto
//! trowel's.

use clap::{ArgAction, Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Verbosity {
    Trace,
    Debug,
    Info,
    /// logrus takes `warning` too.
    #[value(alias = "warning")]
    Warn,
    Error,
    Fatal,
    Panic,
}

/// The log flags `build` and `warm` share (kaniko's names).
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log level (kaniko's -v; any case, as logrus reads it).
    #[arg(short = 'v', long, value_enum, ignore_case = true, default_value = "info")]
    pub verbosity: Verbosity,
    /// Log format: text or color (kaniko's; json is accepted and printed as text, with a
    /// warning: the trace, --trace, is the machine-readable record).
    #[arg(long, default_value = "color", value_parser = ["text", "color", "json"])]
    pub log_format: String,
    /// Prefix log lines with a timestamp.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub log_timestamp: bool,
}

impl LogArgs {
    /// What to say of a `--log-format` kaniko has and trowel does not.
    pub fn format_warning(&self) -> Option<&'static str> {
        (self.log_format == "json").then_some(
            "--log-format json is not supported: the log is printed as text (use --trace FILE for a machine-readable record)",
        )
    }

    /// The lowest level printed: kaniko's seven levels folded onto trowel's four.
    pub fn level(&self) -> crate::log::Level {
        use crate::log::Level;
        match self.verbosity {
            Verbosity::Trace | Verbosity::Debug => Level::Debug,
            Verbosity::Info => Level::Info,
            Verbosity::Warn => Level::Warn,
            Verbosity::Error | Verbosity::Fatal | Verbosity::Panic => Level::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command, parse};
    use clap::Parser;

    #[test]
    fn kaniko_log_formats() {
        let Command::Build(b) = parse(&["trowel", "build", "--log-format", "json"]).command else { panic!() };
        assert!(b.log.format_warning().unwrap().contains("not supported"));
        let Command::Build(b) = parse(&["trowel", "build", "--log-format=text"]).command else { panic!() };
        assert_eq!(b.log.format_warning(), None);
        // kaniko refuses a format it does not know; so does trowel.
        assert!(Cli::try_parse_from(["trowel", "build", "--log-format", "yaml"]).is_err());
    }
}
