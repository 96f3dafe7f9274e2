//! trowel, the program: the command line and every way a build reaches a person.
//!
//! The build itself is [`trowel_engine`]'s; this crate turns flags into its options once
//! ([`cli`]; a context fetched from elsewhere in [`context_arg`]), and consumes its events: the plain log ([`log`]), recorded traces and their
//! replay ([`trace`]), two traces compared ([`compare`]), the terminal debugger ([`tui`]) and
//! its controller ([`debugger`]), the prompt a `trowel build --break` pauses at ([`prompt`]),
//! `trowel warm` ([`warm`]), `trowel check` ([`check`]), `trowel cache` ([`cache_cmd`]) and
//! `trowel login`/`logout` ([`login`]); a build as an ordinary user enters its user namespace
//! first ([`rootless`]), and a signal aborts it cleanly ([`signals`]); they
//! write sizes with [`units`].
//! `src/main.rs` only dispatches.

pub mod cache_cmd;
pub mod check;
pub mod cli;
pub mod compare;
pub mod context_arg;
pub mod debugger;
pub mod log;
pub mod login;
pub mod prompt;
pub mod rootless;
pub mod signals;
pub mod test_hook;
pub mod trace;
pub mod tui;
pub mod units;
pub mod warm;
