//! Dockerfile parsing, expansion, `.dockerignore` and the stage graph.
//!
//! - [`parse`] turns Dockerfile text into typed, *raw* [`Instruction`]s with exact line spans.
//!   It follows BuildKit's parser: `# escape=`/`# syntax=` directives, line continuations with
//!   comment lines inside, heredocs (`RUN <<EOF`, `RUN cmd <<A <<B`, `COPY <<EOF /dst`), JSON and
//!   shell forms, `--flags`, and the split of ENV/LABEL/ARG pairs. The `parse-dockerfile` crate
//!   parses each instruction's structure; this module does the line-level work around it.
//! - [`Instruction::expand`] resolves variables with BuildKit's word-expansion rules.
//! - [`DockerIgnore`] implements `.dockerignore` with moby's pattern semantics.
//! - [`plan`] resolves the stage graph: global ARGs, `--target`, which stages are needed and in
//!   which order; [`ArgScope`] gives the engine the per-stage ARG visibility rules.
//! - [`checks`] are BuildKit's build checks (`docker build --check`) and the `# check=`
//!   directive.
//!
//! The build engine executes instructions from these types and never re-parses text. In outline:
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::path::Path;
//! use trowel_engine::dockerfile::{Expanded, InstructionKind, PlatformArgs, parse, plan};
//!
//! let text = "ARG TAG=1.36\nFROM busybox:${TAG} AS base\nARG NAME=world\nENV GREETING=\"hello $NAME\"\n";
//! let df = parse(Path::new("Dockerfile"), text)?;
//! let plan = plan(&df, None, &BTreeMap::new(), &PlatformArgs::host())?;
//! for stage in plan.stages_in_order() {
//!     // The FROM line sees the global ARGs; the base is already resolved in `stage.base`.
//!     let mut scope = plan.arg_scope();
//!     // The stage's variables: the base image's ENV (empty here), then ARG and ENV in order.
//!     let mut vars: BTreeMap<String, String> = BTreeMap::new();
//!     for instruction in &df.stages[stage.index].instructions {
//!         if let InstructionKind::Arg(_) = instruction.kind {
//!             for (name, value) in scope.apply(instruction, &vars, df.escape)? {
//!                 vars.extend(value.map(|v| (name, v)));
//!             }
//!             continue;
//!         }
//!         let expanded = instruction.expand(&vars, df.escape)?;
//!         if let Expanded::Env(pairs) = &expanded {
//!             vars.extend(pairs.iter().cloned());
//!         }
//!         assert_eq!(expanded.display(), "ENV GREETING=\"hello world\"");
//!     }
//! }
//! # Ok::<(), trowel_engine::dockerfile::DockerfileError>(())
//! ```

mod args;
pub mod checks;
mod display;
mod error;
pub(crate) mod expand;
mod flags;
pub mod gitref;
mod heredoc;
mod ignore;
mod lex;
pub mod mount;
mod parse;
mod pattern;
mod platforms;
mod scan;
mod stages;
mod types;
pub(crate) mod validate;
mod words;

pub use args::{ArgScope, PREDEFINED_ARGS, PROXY_ARGS, PlatformArgs};
pub use error::DockerfileError;
pub use expand::{Expanded, ExpandedCopy, ExpandedSource, Healthcheck, NoVars, RunScript, Vars};
pub use flags::{check_add_checksum, link_chown_error, link_chown_ids};
pub use ignore::DockerIgnore;
pub use parse::{parse, parse_instruction_line};
pub use platforms::plan_platforms;
pub use stages::{Base, Plan, PlannedStage, SOURCE_DATE_EPOCH, StageOrImage, plan};
pub use types::{
    AsWritten, CommandForm, CopyArgs, CopySource, Dockerfile, Flag, Heredoc, Instruction, InstructionKind, Keyword,
    Stage,
};
pub use validate::{NETWORK_MODES, SECURITY_MODES, validate};
