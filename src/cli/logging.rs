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
    /// Log format: text or color (kaniko's; json is not supported).
    #[arg(long, default_value = "color")]
    pub log_format: String,
    /// Prefix log lines with a timestamp.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub log_timestamp: bool,
}

impl LogArgs {
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
