//! The build engine: [`build()`](build::build) turns a Dockerfile into an image, reporting every step as an
//! event and letting a [`Controller`] pause it between steps.
//!
//! How it is put together (docs/architecture.md has the whole map):
//! - [`build()`](build::build) — the entry point and the `Build` it runs: stages in plan order,
//!   then `publish` (assemble the image, local outputs, push gate, push);
//! - `context` — the read-only `BuildContext` every part shares
//!   (options, parsed Dockerfile and plan, registry client, blob store, work dir, emitter);
//! - `checks` — BuildKit's build checks in a build (`check` events; `check=error=true` fails it)
//!   and without one ([`check_dockerfile`], `trowel check`);
//! - `stage` — one `StageRunner` per stage: it owns the stage's config,
//!   layers, build root and cache keys, and runs each step the same way (events, checkpoints,
//!   cache, snapshot, layer, history);
//! - `steps` — one file per kind of instruction behind a narrow interface;
//! - `stages` — what finished stages leave for later ones (roots, keys), and root hand-over;
//! - `layer_cache` — the build's use of the layer cache: key planning, hits, misses, writes;
//! - [`controller`] — what steers a build (pauses, shells at a pause and the push gate are the
//!   stage runner's `stage/checkpoint.rs` and `stage/debug_shell.rs`);
//! - [`emit`], `report` — events out (masking secrets, failing closed) and the conversions to
//!   the event contract; `contents` — file contents recorded for viewers that ask;
//! - [`mounts`] — `RUN --mount`, `--network`, `--security`: resolved, prepared for the sandbox,
//!   keyed; cache mounts kept between builds, secrets, ssh agents;
//! - [`options`], [`error`] — what a build is asked to do, and how it fails;
//! - [`remote_context`] — a `--context` that is not a local directory (`tar://`, `git://`),
//!   fetched before the build as hostile input.

mod base_files;
mod before;
pub mod build;
mod checks;
mod container;
mod contents;
mod context;
pub(crate) mod context_digests;
mod control_file;
pub mod controller;
mod copy_source;
pub mod disk_full;
mod early_upload;
pub mod emit;
pub mod error;
mod known_digests;
mod lanes;
mod layer;
mod layer_cache;
mod layer_paths;
pub mod mounts;
pub mod options;
mod prefetch;
pub mod preflight;
mod publish;
mod publish_index;
mod push_check;
pub mod remote_context;
mod report;
mod root;
mod root_store;
mod scratch;
mod shared;
mod stage;
mod stages;
mod steps;
mod stopping;
mod vars;

pub use crate::sandbox::Stop;
pub use build::{BuildResult, build};
pub use checks::standalone::{CheckOutcome, CheckRequest, check as check_dockerfile};
pub use controller::{Checkpoint, Command, Continue, Controller, Decision, ShellChoice, StepReport};
pub use emit::Emitter;
pub use error::{BuildError, Location, PullError, PushError, StepError};
pub use options::{BuildOptions, CacheOptions, LayerOptions, OutputOptions, RunOptions};
pub use preflight::{Planned, plan_dockerfile};
