//! The steps, one file per kind of instruction, behind one narrow interface.
//!
//! An instruction either changes only the stage's config ([`config`]: ENV, LABEL, USER, CMD…,
//! a pure function the cache-key planner replays too), or it works on files: a [`FileStep`]
//! (RUN, COPY/ADD, WORKDIR) gets exactly what it may touch — the build root, the stage's
//! config, where its sources come from — and says what it changed. Everything around a step
//! (events, the cache, the snapshot, the layer and its history entry, pauses) is the stage
//! runner's, so no step can forget one of them or do one twice.

use trowel_events::{StepId, StepStatus};

use crate::digest::Digest;
use crate::dockerfile::{DockerIgnore, Expanded, Instruction};
use crate::engine::context::BuildContext;
use crate::engine::copy_source::Need;
use crate::engine::error::{BuildError, Location, StepError};
use crate::engine::mounts::{MountRoots, StepMounts};
use crate::engine::root::BuildRoot;
use crate::engine::stage::StageConfig;
use crate::engine::steps::copy::seen::Seen;
use crate::fs::root::Root;

pub(crate) mod config;
pub(crate) mod copy;
mod owner;
mod run;
mod workdir;

pub(crate) use run::{take_ready, with_mount_env};
pub(crate) use workdir::join_clean;

/// The step being run: which one, where it is written, and how it reads once expanded.
pub(crate) struct StepAt<'a> {
    pub id: StepId,
    pub loc: Location,
    pub instruction: &'a Instruction,
    /// The expanded instruction as displayed (also the history `created_by`).
    pub display: String,
}

impl StepAt<'_> {
    /// A step error at this instruction.
    pub fn fail(&self, source: impl Into<StepError>) -> BuildError {
        // A step given up for a stop (its copy cancelled, a root it needed not unpacked) did
        // not fail: the build was aborted, and says so.
        let mut source = match source.into() {
            StepError::Build(b) if b.is_aborted() => return *b,
            source => source,
        };
        // The location names the instruction's first line; this error names it whole.
        if let StepError::ContextChanged { instruction, .. } = &mut source
            && self.instruction.source.trim() != self.loc.instruction.trim()
        {
            *instruction = Some(self.instruction.source.trim().to_string());
        }
        BuildError::Step { location: self.loc.clone(), step: Some(self.id), source: Box::new(source) }
    }

    /// The instruction cannot be carried out as written.
    pub fn invalid(&self, message: impl Into<String>) -> BuildError {
        self.fail(StepError::Invalid(message.into()))
    }
}

/// What a step did, as its `step_finished` event reports it.
pub(crate) struct StepOutcome {
    pub status: StepStatus,
    pub layer: Option<Digest>,
}

impl StepOutcome {
    pub fn metadata() -> StepOutcome {
        StepOutcome { status: StepStatus::Metadata, layer: None }
    }
}

/// Which part of the root a step may have changed: what the snapshot after it walks.
pub(crate) enum Scope {
    /// Anything (RUN): walk the whole root.
    Full,
    /// Only these subtrees (COPY, ADD, WORKDIR).
    Paths(Vec<String>),
}

/// What a file step changed.
pub(crate) enum Changed {
    /// Nothing on disk (a WORKDIR that exists): the step is config only.
    Nothing,
    /// Files, somewhere in this scope.
    Files(Scope),
}

/// Where a COPY's sources are read from.
pub(crate) enum Source<'a> {
    /// The build context, filtered by `.dockerignore`.
    Context { root: &'a Root, ignore: &'a DockerIgnore },
    /// Another stage's root or an image's (`--from`): read as is.
    Root(&'a Root),
}

/// What a file step may touch.
pub(crate) struct FileCx<'a, 'o> {
    pub ctx: &'a BuildContext<'o>,
    pub at: &'a StepAt<'a>,
    pub config: &'a mut StageConfig,
    pub root: &'a mut BuildRoot,
    pub source: Source<'a>,
    /// A RUN's mounts, resolved, with the roots of the stages and images they read.
    pub mounts: Option<(&'a StepMounts, &'a MountRoots)>,
    /// The context files the step's cache key was made from, as it saw them: what the step
    /// must read, or fail (`copy/seen.rs`). `None` when it was not keyed.
    pub seen: Option<&'a Seen>,
}

/// A step that works on the stage's files.
pub(crate) trait FileStep {
    /// `--from`: the stage or image the step reads its sources from (the context otherwise).
    fn from(&self) -> Option<&str> {
        None
    }

    /// What the step reads from its `--from` source, so a stage or image without a root is
    /// extracted only that far (see `engine/copy_source.rs`).
    fn reads(&self) -> Need {
        Need::All
    }

    /// `--link`: the step runs on an empty root of its own, whose contents become a layer laid
    /// over the stage (see `stage/link.rs`), instead of on the stage's root.
    fn linked(&self) -> bool {
        false
    }

    fn run(&self, cx: FileCx<'_, '_>) -> Result<Changed, BuildError>;
}

/// An expanded instruction as the runner executes it.
pub(crate) enum Step {
    /// Changes only the config.
    Config(Expanded),
    Files(Box<dyn FileStep>),
}

impl Step {
    pub fn of(expanded: Expanded) -> Step {
        match expanded {
            Expanded::Run { flags, script } => Step::Files(Box::new(run::Run { flags, script })),
            Expanded::Copy(c) => Step::Files(Box::new(copy::Copy { args: c, is_add: false })),
            Expanded::Add(c) => Step::Files(Box::new(copy::Copy { args: c, is_add: true })),
            Expanded::Workdir(dir) => Step::Files(Box::new(workdir::Workdir { dir })),
            other => Step::Config(other),
        }
    }
}
