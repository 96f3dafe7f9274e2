//! trowel: a daemonless, userspace container image builder with a terminal debugger.
//!
//! The library holds the whole engine; `src/main.rs` is a thin CLI over it. A build flows
//! Dockerfile → [`dockerfile`] (parse, expand, stage graph) → [`build::engine`] (steps in order,
//! consulting a controller) → [`sandbox`] (RUN), [`fs`] (unpack, snapshot, layer) and [`image`]
//! (config, manifest, outputs) → [`registry`] (pull and push). Everything the engine does is
//! reported as a [`build::event::Event`]; the plain log, the trace recorder and the TUI are all
//! consumers of that one stream.

pub mod build;
pub mod cache;
pub mod cli;
pub mod digest;
pub mod dockerfile;
pub mod fs;
pub mod image;
pub mod log;
pub mod prompt;
pub mod registry;
pub mod sandbox;
pub mod secrets;
pub mod trace;
pub mod tui;
pub mod warm;
