//! The stage graph: which stage is built from what, which stages the target needs, and in which
//! order to build them.
//!
//! Rules (Docker/BuildKit): FROM lines see only the global ARGs; `FROM <name>` where `<name>` is
//! an earlier stage (case-insensitive) builds on that stage, `scratch` is empty, anything else is
//! an image. `COPY --from=<name|index>` and `RUN --mount=…,from=<name>` name a stage or, failing
//! that, an image; a stage may not refer to itself, nor to a later stage by index or through a
//! mount. `--target` picks a stage by name (default: the last one), and only the stages it needs,
//! transitively, are built.
//!
//! `--from` values may use variables. The planner resolves them with what it can know before the
//! build: the stage's ARGs (with `--build-arg`s) and the ENV set in the Dockerfile along the
//! stage's FROM chain. ENV inherited from a base image is not known here; ONBUILD triggers of
//! base images are the engine's to resolve.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::args::{ArgScope, PREDEFINED_ARGS, PROXY_ARGS, PlatformArgs, global_scope, redact, target_stage};
use super::error::DockerfileError;
use super::expand::Expanded;
use super::flags;
use super::lex::Lexer;
use super::types::{Dockerfile, Instruction, InstructionKind};
use crate::image::manifest::Platform;

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Base {
    /// `FROM scratch`.
    Scratch,
    /// An image reference, variables expanded.
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

/// A source named by `COPY --from` or a mount's `from=`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StageOrImage {
    Stage(usize),
    Image(String),
}

/// One stage as planned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStage {
    pub index: usize,
    /// Lower-cased name.
    pub name: Option<String>,
    pub base: Base,
    /// The expanded `FROM --platform` value.
    pub platform: Option<String>,
    /// Whether the target needs this stage.
    pub needed: bool,
    /// `COPY --from` sources, in instruction order, duplicates removed.
    pub copy_from: Vec<StageOrImage>,
    /// `RUN --mount=…,from=` sources, in instruction order, duplicates removed.
    pub mount_from: Vec<StageOrImage>,
    /// The Dockerfile stage this is. `index` is its place in the plan, the same in a build for
    /// one platform; a build for several has a stage once per target platform (see
    /// [`plan_platforms`](super::plan_platforms)).
    pub dockerfile_stage: usize,
    /// The target platform (an index into [`Plan::platforms`]) the stage was planned for: its
    /// TARGET* ARGs, and what its root is for unless `FROM --platform` says otherwise. A stage
    /// shared by several targets has the first's.
    pub slot: usize,
    /// Every target platform (indices into [`Plan::platforms`]) the stage is built for: its
    /// own, and the others that share it.
    pub targets: Vec<usize>,
}

/// The build plan.
/// The build argument that dates a reproducible build (see [`Plan::source_date_epoch`]).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub stages: Vec<PlannedStage>,
    /// Index of the target stage.
    pub target: usize,
    /// Indices of the stages to build, dependencies first (ties in file order).
    pub order: Vec<usize>,
    /// The global scope FROM lines see: predefined platform ARGs and the ARGs before the first
    /// FROM, after `--build-arg`s.
    pub global_args: BTreeMap<String, String>,
    /// `--build-arg` names no needed stage (nor the global scope) declares, sorted; predefined
    /// and proxy ARGs, `BUILDKIT_DOCKERFILE_CHECK` (the check options) and `SOURCE_DATE_EPOCH`
    /// (the image's dates) are never reported.
    pub unused_build_args: Vec<String>,
    /// The `--build-arg`s the plan was made with.
    pub build_args: BTreeMap<String, String>,
    /// The platforms of the build, one per target image (one in a build for one platform):
    /// what each target is for, and what the build runs on.
    pub platforms: Vec<PlatformArgs>,
    /// Each target platform's global scope (`global_args` is the first's).
    pub slot_global_args: Vec<BTreeMap<String, String>>,
    /// Each target platform's target stage (`target` is the first's).
    pub targets: Vec<usize>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = &self.build_args;
        f.debug_struct("Plan")
            .field("stages", &self.stages)
            .field("target", &self.target)
            .field("order", &self.order)
            .field("global_args", &redact(self.global_args.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))), b))
            .field("platforms", &self.platforms)
            .field("targets", &self.targets)
            .field("unused_build_args", &self.unused_build_args)
            .field("build_args", &b.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Plan {
    /// A fresh ARG scope for executing a stage built on an image or `scratch` (a stage built on
    /// another stage starts from its own target's scope too, taking only the ARGs that stage
    /// declared: `ArgScope::inherit`).
    pub fn arg_scope(&self) -> ArgScope {
        ArgScope::new(self.global_args.clone(), self.build_args.clone())
    }

    /// `SOURCE_DATE_EPOCH`, BuildKit's build argument for reproducible builds (a `--build-arg`,
    /// else the default of a global ARG): the seconds since the epoch that this build's
    /// history entries, its image's `created` and the directories WORKDIR makes are dated.
    /// `None` when unset or empty, or `context` not yet resolved ([`Self::resolve_context_epoch`]);
    /// BuildKit's other forms, a stage or named context, are refused.
    pub fn source_date_epoch(&self) -> Result<Option<i64>, String> {
        let value = self.build_args.get(SOURCE_DATE_EPOCH).or_else(|| self.global_args.get(SOURCE_DATE_EPOCH));
        match value.map(String::as_str) {
            None | Some("") | Some("context") => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                format!(
                    "SOURCE_DATE_EPOCH={v:?}: expected the seconds since 1970 (such as $(git log -1 --pretty=%ct)); \
                     BuildKit's stage and named-context forms are not supported"
                )
            }),
        }
    }

    /// `SOURCE_DATE_EPOCH=context` (given, or a global ARG's default) made the build context's
    /// own time, `time` (see `ContextOrigin::time`: a commit's, an archive's), or empty when the
    /// context has none (a directory), as BuildKit resolves it once before the build: every
    /// scope sees the number from then on, a RUN's `$SOURCE_DATE_EPOCH` included. Other values
    /// are left as they are.
    pub fn resolve_context_epoch(&mut self, time: Option<i64>) {
        let value = time.map(|t| t.to_string()).unwrap_or_default();
        let scopes = [&mut self.build_args, &mut self.global_args].into_iter().chain(&mut self.slot_global_args);
        for scope in scopes {
            if let Some(v) = scope.get_mut(SOURCE_DATE_EPOCH).filter(|v| v.as_str() == "context") {
                v.clone_from(&value);
            }
        }
    }

    /// [`arg_scope`](Self::arg_scope) for stage `idx`: the global scope of the target
    /// platform it is planned for.
    pub fn arg_scope_for(&self, idx: usize) -> ArgScope {
        let global = self.slot_global_args.get(self.stages[idx].slot).unwrap_or(&self.global_args);
        ArgScope::new(global.clone(), self.build_args.clone())
    }

    /// The stage that is Dockerfile stage `dockerfile_stage` for stage `current`: its own
    /// target platform's (or the one every target shares). In a build for one platform, the
    /// index itself.
    pub fn instance_of(&self, dockerfile_stage: usize, current: usize) -> Option<usize> {
        let slot = self.stages[current].slot;
        self.stages.iter().position(|s| s.dockerfile_stage == dockerfile_stage && s.targets.contains(&slot))
    }

    /// The stage named `name` (case-insensitive) that `COPY --from` and `RUN --mount from=`
    /// mean, by its Dockerfile index: the last of that name, as BuildKit resolves them once every
    /// stage is known.
    pub fn dockerfile_stage_named(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.stages.iter().rfind(|s| s.name.as_deref() == Some(lower.as_str())).map(|s| s.dockerfile_stage)
    }

    /// The target platforms stage `idx` is built for, as `os/arch[/variant]`.
    pub fn target_names(&self, idx: usize) -> Vec<String> {
        self.stages[idx].targets.iter().map(|&t| self.platforms[t].target.to_string()).collect()
    }

    /// Whether the build is for several target platforms.
    pub fn is_multi_platform(&self) -> bool {
        self.platforms.len() > 1
    }

    /// The target platform stage `idx` was planned for (the first of those sharing it).
    pub fn target_platform(&self, idx: usize) -> &Platform {
        &self.platforms[self.stages[idx].slot].target
    }

    /// The platform stage `idx`'s root is for: what its base is resolved for and its RUNs
    /// execute as — its `FROM --platform`, else its base stage's, else its target platform.
    /// (A `FROM --platform` that does not parse is refused before the build.)
    pub fn stage_platform(&self, idx: usize) -> Platform {
        let ps = &self.stages[idx];
        match (&ps.platform, &ps.base) {
            (Some(p), _) if !p.is_empty() => Platform::parse(p).unwrap_or_else(|_| self.target_platform(idx).clone()),
            (_, Base::Stage(j)) => self.stage_platform(*j),
            _ => self.target_platform(idx).clone(),
        }
    }
    /// The platform an image (not a stage) named by stage `idx`'s `COPY --from` or `RUN
    /// --mount from=` is pulled for: the target platform, whatever platform the stage's root is
    /// for. BuildKit gives such an image a dispatch state of its own, without a platform, and
    /// resolves it for the target (dockerfile2llb's `toCommand` and `detectRunMount`;
    /// moby/buildkit#5671), so `FROM --platform=$BUILDPLATFORM` does not reach it.
    pub fn source_image_platform(&self, idx: usize) -> Platform {
        self.target_platform(idx).clone()
    }

    /// The planned stages to build, in build order.
    pub fn stages_in_order(&self) -> impl Iterator<Item = &PlannedStage> {
        self.order.iter().map(|&i| &self.stages[i])
    }
}

/// Plans the build of `df` for `target` (a stage name; `None` = the last stage).
pub fn plan(
    df: &Dockerfile,
    target: Option<&str>,
    build_args: &BTreeMap<String, String>,
    platforms: &PlatformArgs,
) -> Result<Plan, DockerfileError> {
    plan_one(df, target, build_args, platforms).map(|(plan, _)| plan)
}

/// [`plan`], and each stage's ARG scope at its end (what decides whether a stage is the same
/// for two target platforms).
pub(super) fn plan_one(
    df: &Dockerfile,
    target: Option<&str>,
    build_args: &BTreeMap<String, String>,
    platforms: &PlatformArgs,
) -> Result<(Plan, Vec<ArgScope>), DockerfileError> {
    if df.stages.is_empty() {
        return Err(DockerfileError::file(&df.path, "dockerfile contains no stages to build (no FROM instruction)"));
    }
    let last_name = df.stages.last().and_then(|s| s.name.as_deref());
    let target_stage = target_stage(target, last_name);
    let (global_args, global_declared) =
        global_scope(&df.global_args, build_args, platforms, &target_stage, df.escape)?;
    let names: Vec<Option<&str>> = df.stages.iter().map(|s| s.name.as_deref()).collect();
    // Two stages may share a name (BuildKit warns: DuplicateStageName). `--from`, mounts and the
    // target mean the last of that name, as BuildKit resolves them once every stage is added;
    // a FROM means the latest one before it (`stage_before`), as BuildKit adds stages in order.
    let by_name = |name: &str| {
        let lower = name.to_ascii_lowercase();
        names.iter().rposition(|n| *n == Some(lower.as_str()))
    };
    let stage_before = |name: &str, i: usize| {
        let lower = name.to_ascii_lowercase();
        names[..i].iter().rposition(|n| *n == Some(lower.as_str()))
    };

    let mut stages: Vec<PlannedStage> = Vec::with_capacity(df.stages.len());
    // The statically known variables at the end of each stage, for stages built on it.
    let mut stage_env: Vec<BTreeMap<String, String>> = Vec::with_capacity(df.stages.len());
    let mut declared: Vec<BTreeSet<String>> = Vec::with_capacity(df.stages.len());
    let mut scopes: Vec<ArgScope> = Vec::with_capacity(df.stages.len());
    for (i, stage) in df.stages.iter().enumerate() {
        let Expanded::From { image, platform, .. } = stage.from.expand(&global_args, df.escape)? else {
            return Err(stage.from.error("internal error: not a FROM instruction"));
        };
        let base = if image.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else {
            match stage_before(&image, i) {
                Some(j) => Base::Stage(j),
                None => Base::Image(image),
            }
        };
        let mut env = match base {
            Base::Stage(j) => stage_env[j].clone(),
            _ => BTreeMap::new(),
        };
        // ARGs carry over to a stage built on a stage, as BuildKit appends the base stage's.
        let mut scope = match base {
            Base::Stage(j) => scopes[j].clone(),
            _ => ArgScope::new(global_args.clone(), build_args.clone()),
        };
        let mut copy_from = Vec::new();
        let mut mount_from = Vec::new();
        let lex = Lexer::new(df.escape);
        for instruction in &stage.instructions {
            let word = |raw: &str, env: &BTreeMap<String, String>| {
                lex.process_word(raw, env).map_err(|e| instruction.error(e))
            };
            match &instruction.kind {
                // ARG and ENV only feed `--from` values here. Their expansion may depend on the
                // base image's environment, unknown before the build, so a failure is not an
                // error of the plan: the engine reports it when it runs the instruction.
                InstructionKind::Arg(pairs) => {
                    let declared = match scope.apply(instruction, &env, df.escape) {
                        Ok(declared) => declared,
                        Err(_) => pairs.iter().map(|(name, _)| (name.clone(), scope.declare(name, None))).collect(),
                    };
                    for (name, value) in declared {
                        if let Some(v) = value {
                            env.insert(name, v);
                        }
                    }
                }
                InstructionKind::Env(_) => {
                    if let Ok(Expanded::Env(pairs)) = instruction.expand(&env, df.escape) {
                        env.extend(pairs);
                    }
                }
                InstructionKind::Copy(args) => {
                    if let Some(raw) = flags::str_flag(&args.flags, "from") {
                        let from = word(raw, &env)?;
                        push_unique(&mut copy_from, resolve_copy_from(instruction, &from, i, &by_name)?);
                    }
                }
                InstructionKind::Run { flags: run_flags, .. } => {
                    for raw in flags::multi_flag(run_flags, "mount") {
                        let spec = word(raw, &env)?;
                        if let Some(from) = mount_source(&spec) {
                            push_unique(&mut mount_from, resolve_mount_from(instruction, &from, i, &by_name)?);
                        }
                    }
                }
                _ => {}
            }
        }
        stage_env.push(env);
        declared.push(scope.declared().map(|(n, _)| n.to_string()).collect());
        scopes.push(scope);
        stages.push(PlannedStage {
            index: i,
            name: stage.name.clone(),
            base,
            platform,
            needed: false,
            copy_from,
            mount_from,
            dockerfile_stage: i,
            slot: 0,
            targets: vec![0],
        });
    }

    let target = match target {
        None => stages.len() - 1,
        Some(t) => by_name(t).ok_or_else(|| {
            let available: Vec<&str> = names.iter().flatten().copied().collect();
            let list = if available.is_empty() { "none (no stage is named)".to_string() } else { available.join(", ") };
            DockerfileError::file(&df.path, format!("target stage {t:?} could not be found; available stages: {list}"))
        })?,
    };
    let order = build_order(df, &mut stages, target)?;

    let mut used: BTreeSet<&str> = global_declared.iter().map(String::as_str).collect();
    for &i in &order {
        used.extend(declared[i].iter().map(String::as_str));
    }
    let unused_build_args = build_args
        .keys()
        .filter(|k| {
            !used.contains(k.as_str())
                && !PREDEFINED_ARGS.contains(&k.as_str())
                && !PROXY_ARGS.contains(&k.as_str())
                && k.as_str() != super::checks::BUILD_ARG
                && k.as_str() != SOURCE_DATE_EPOCH
        })
        .cloned()
        .collect();

    let plan = Plan {
        stages,
        target,
        order,
        slot_global_args: vec![global_args.clone()],
        global_args,
        unused_build_args,
        build_args: build_args.clone(),
        platforms: vec![platforms.clone()],
        targets: vec![target],
    };
    Ok((plan, scopes))
}

fn push_unique(list: &mut Vec<StageOrImage>, item: StageOrImage) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// `COPY --from=<value>` in stage `current`: an index, a stage name, or an image.
fn resolve_copy_from(
    instruction: &Instruction,
    from: &str,
    current: usize,
    by_name: &dyn Fn(&str) -> Option<usize>,
) -> Result<StageOrImage, DockerfileError> {
    if !from.is_empty() && from.bytes().all(|b| b.is_ascii_digit()) {
        let index: usize = from.parse().map_err(|_| instruction.error(format!("invalid stage index {from}")))?;
        if index >= current {
            return Err(instruction.error(format!(
                "--from={from}: a stage can only copy from an earlier stage by index (this is stage {current})"
            )));
        }
        return Ok(StageOrImage::Stage(index));
    }
    match by_name(from) {
        Some(j) if j == current => Err(instruction.error(format!("--from={from}: a stage cannot copy from itself"))),
        Some(j) => Ok(StageOrImage::Stage(j)),
        None => Ok(StageOrImage::Image(from.to_string())),
    }
}

/// A mount's `from=`: a stage name (which must be an earlier stage) or an image.
fn resolve_mount_from(
    instruction: &Instruction,
    from: &str,
    current: usize,
    by_name: &dyn Fn(&str) -> Option<usize>,
) -> Result<StageOrImage, DockerfileError> {
    match by_name(from) {
        Some(j) if j >= current => Err(instruction
            .error(format!("cannot mount from stage {from:?}: the stage must be defined before the current one"))),
        Some(j) => Ok(StageOrImage::Stage(j)),
        None => Ok(StageOrImage::Image(from.to_string())),
    }
}

/// The `from=` field of a `--mount` spec (`type=bind,from=build,source=/out,target=/in`).
fn mount_source(spec: &str) -> Option<String> {
    spec.split(',').find_map(|field| {
        let (key, value) = field.split_once('=')?;
        let value = value.trim_matches('"');
        (key.trim().eq_ignore_ascii_case("from") && !value.is_empty()).then(|| value.to_string())
    })
}

/// Marks what `target` needs and orders it, dependencies first, ties in file order.
fn build_order(df: &Dockerfile, stages: &mut [PlannedStage], target: usize) -> Result<Vec<usize>, DockerfileError> {
    let deps = |s: &PlannedStage| -> BTreeSet<usize> {
        let mut d = BTreeSet::new();
        if let Base::Stage(j) = s.base {
            d.insert(j);
        }
        for src in s.copy_from.iter().chain(&s.mount_from) {
            if let StageOrImage::Stage(j) = src {
                d.insert(*j);
            }
        }
        d
    };
    let mut stack = vec![target];
    while let Some(i) = stack.pop() {
        if stages[i].needed {
            continue;
        }
        stages[i].needed = true;
        stack.extend(deps(&stages[i]));
    }
    let needed: Vec<usize> = (0..stages.len()).filter(|&i| stages[i].needed).collect();
    let mut pending: BTreeMap<usize, BTreeSet<usize>> = needed.iter().map(|&i| (i, deps(&stages[i]))).collect();
    let mut order = Vec::with_capacity(needed.len());
    while let Some(&ready) = pending.iter().find(|(_, d)| d.is_empty()).map(|(i, _)| i) {
        pending.remove(&ready);
        for d in pending.values_mut() {
            d.remove(&ready);
        }
        order.push(ready);
    }
    if !pending.is_empty() {
        let cycle: Vec<String> =
            pending.keys().map(|&i| stages[i].name.clone().unwrap_or_else(|| format!("stage {i}"))).collect();
        let first = &df.stages[*pending.keys().next().unwrap_or(&0)].from;
        return Err(first.error(format!("circular dependency between stages: {}", cycle.join(", "))));
    }
    Ok(order)
}

#[cfg(test)]
#[path = "stages_tests.rs"]
mod tests;
