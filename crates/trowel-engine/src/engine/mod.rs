//! The build engine, its events and its controller.
//!
//! [`engine::build`] runs a whole build: plan the stages, build the ones the target needs (one
//! step per instruction, each reported as events and each a point where the controller may
//! pause), assemble the image, write local outputs and push. The steps themselves live in
//! [`steps`], one file per kind of instruction.

mod base;
pub mod build;
mod cache;
mod container;
pub mod contents;
pub mod controller;
pub mod emit;
pub mod error;
mod keys;
pub mod options;
mod publish;
mod report;
mod shell;
mod stage;
mod steps;
mod vars;
mod workdir;

pub use build::{BuildResult, build};
pub use controller::{Continue, Controller, Decision};
pub use emit::Emitter;
pub use error::{BuildError, Location};
pub use options::{BuildOptions, CacheOptions};
