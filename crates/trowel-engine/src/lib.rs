//! trowel's build engine: a Dockerfile in, an OCI image out, entirely in userspace.
//!
//! A build flows Dockerfile → [`dockerfile`] (parse, expand, stage graph) → [`engine`] (stages
//! and steps in order, consulting a controller at every step boundary) → [`sandbox`] (RUN),
//! [`fs`] (unpack, snapshot, layer) and [`image`] (config, manifest, outputs) → [`registry`]
//! (pull and push) and [`git`] (ADD of repositories), with [`cache`] keeping layers and base
//! images between builds. Everything the engine does is reported as an event; how those reach
//! a person (a log, a trace, a terminal UI) is the `trowel` binary's business, and this crate
//! depends on no terminal crate.

// Tests start programs and read ids as they like: they run outside any rootless namespace
// (`clippy.toml` says why the build itself may not).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod cache;
pub mod chmod;
pub mod digest;
pub mod dockerfile;
pub mod duration;
pub mod engine;
pub mod fs;
pub mod git;
pub mod image;
pub mod registry;
pub mod sandbox;
pub mod secrets;

pub use engine::{BuildError, BuildOptions, BuildResult, build};
