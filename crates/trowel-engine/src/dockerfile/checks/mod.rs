//! BuildKit's build checks (`docker build --check`, moby/buildkit `frontend/dockerfile/linter`):
//! every rule BuildKit has, raised where and as BuildKit raises it, with its words and its
//! documentation page.
//!
//! The checks run in BuildKit's order, and stop where BuildKit's conversion would stop with an
//! error (the error is part of the [`Report`]):
//!
//! 1. while parsing (`syntax.rs`): empty continuation lines, MAINTAINER, the casing of a
//!    stage's name and of `AS`, descriptions (experimental); then stage names and the casing of
//!    every keyword against the majority;
//! 2. the FROM lines (`from.rs`): global ARGs' defaults, undeclared ARGs in FROM,
//!    `--platform` values;
//! 3. the instructions of each stage that is built (`dispatch.rs`) — every stage for
//!    `trowel check` without `--target`, as `docker build --check` — walked as BuildKit's
//!    dispatcher walks them, with the variables, shell and working directory each one sees.
//!
//! Pure and quick: no file is read here. What depends on a base image (its ENV, its SHELL, its
//! platform) is given as [`BaseInfo`]; a build that has not resolved a base yet checks without
//! it, and [`check_base`] reports, once it is resolved, exactly what depended on it. Which
//! rules run and whether they are errors is the [`CheckConfig`] (`# check=`, or the
//! `BUILDKIT_DOCKERFILE_CHECK` build arg).

use std::collections::BTreeMap;

use super::args::PlatformArgs;
use super::error::DockerfileError;
use super::ignore::DockerIgnore;
use super::stages::{Base, Plan, plan};
use super::types::{Dockerfile, Instruction};

mod config;
mod dispatch;
mod from;
pub mod rules;
mod scope;
pub(crate) mod suggest;
mod syntax;

pub use config::{BUILD_ARG, CheckConfig, ConfigSource, directive};
pub use from::{base_platform, base_reference};
pub use rules::Rule;

/// One finding: a rule, where, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static Rule,
    /// 1-based first and last line it is about (an instruction's span).
    pub line: usize,
    pub end_line: usize,
    /// The message, as BuildKit words it.
    pub message: String,
}

impl Finding {
    fn at(rule: &'static Rule, ins: &Instruction, message: String) -> Finding {
        Finding { rule, line: ins.line, end_line: ins.end_line.max(ins.line), message }
    }

    /// `Rule: message (line N)`, BuildKit's one-line form (`linter.LintFormatShort`).
    pub fn short(&self) -> String {
        format!("{}: {} (line {})", self.rule.name, self.message, self.line)
    }
}

/// What a base image tells the checks: its ENV and SHELL (what a stage's variables and shell
/// start from).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseInfo {
    /// The image config's `Env`, in order.
    pub env: Vec<(String, String)>,
    /// The image config sets a `Shell`.
    pub shell: bool,
}

impl BaseInfo {
    /// From an image config's `Env` entries (`KEY=value`) and `Shell`.
    pub fn from_config(env: &[String], shell: &[String]) -> BaseInfo {
        let env = env
            .iter()
            .map(|e| e.split_once('=').map_or((e.clone(), String::new()), |(k, v)| (k.to_string(), v.to_string())))
            .collect();
        BaseInfo { env, shell: !shell.is_empty() }
    }
}

/// What a check run needs besides the Dockerfile.
#[derive(Debug, Clone)]
pub struct CheckOptions<'a> {
    /// Which rules run (whether findings are errors is the caller's business).
    pub config: &'a CheckConfig,
    pub build_args: &'a BTreeMap<String, String>,
    pub target: Option<&'a str>,
    pub platforms: &'a PlatformArgs,
    /// The build context's `.dockerignore` (CopyIgnoredFile).
    pub dockerignore: &'a DockerIgnore,
    /// Check the instructions of every stage, as `docker build --check` does without a target;
    /// otherwise only those of the stages the target needs, as a build does.
    pub all_stages: bool,
}

/// The outcome of a check run.
#[derive(Debug, Default)]
pub struct Report {
    /// Sorted by line, then message; no finding twice.
    pub findings: Vec<Finding>,
    /// What stopped the checks, as it stops the build (a FROM line whose base is blank, an
    /// unknown target…): checks after it did not run.
    pub error: Option<DockerfileError>,
    /// Stages built on an image whose [`BaseInfo`] was not given: what in them (and in the
    /// stages built on them) depends on that image is not in `findings`.
    pub unknown_bases: Vec<usize>,
}

impl Report {
    /// The rules found, each once, sorted (what `error=true` names).
    pub fn rules(&self) -> Vec<&'static str> {
        rule_names(&self.findings)
    }
}

/// The names of the rules among `findings`, each once, sorted.
pub fn rule_names(findings: &[Finding]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = findings.iter().map(|f| f.rule.name).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The error a build with `error=true` fails with: BuildKit's words.
pub fn violation(df: &Dockerfile, findings: &[Finding]) -> DockerfileError {
    DockerfileError::file(&df.path, format!("lint violation found for rules: {}", rule_names(findings).join(", ")))
}

/// Runs every check on `df`. `bases` gives what is known of the base images, by the index of
/// the stage whose FROM names the image; stages built on an image missing there are checked
/// without it (see [`Report::unknown_bases`]).
pub fn check(df: &Dockerfile, opts: &CheckOptions, bases: &BTreeMap<usize, BaseInfo>) -> Report {
    let mut out = Findings::new(opts.config);
    syntax::check(&mut out, df);
    let mut report = Report::default();
    if let Err(e) = from::check(&mut out, df, opts) {
        // The build stops at that FROM too; its planner says why in trowel's words when it can.
        report.error = Some(plan(df, opts.target, opts.build_args, opts.platforms).err().unwrap_or(e));
        report.findings = out.finish();
        return report;
    }
    match plan(df, opts.target, opts.build_args, opts.platforms) {
        Err(e) => report.error = Some(e),
        Ok(plan) => {
            let run = dispatch::Run { df, opts, plan: &plan };
            for d in run.stages(bases, None) {
                let root = run.root(d.stage);
                let known = matches!(plan.stages[root].base, Base::Scratch) || bases.contains_key(&root);
                if known || !d.base_sensitive {
                    out.push(d.finding);
                }
            }
            report.unknown_bases = dispatch::image_roots(df, &plan, opts.all_stages)
                .into_iter()
                .filter(|r| !bases.contains_key(r))
                .collect();
        }
    }
    report.findings = out.finish();
    report
}

/// The stages whose FROM names an image that the checks of `plan`'s stages (every stage with
/// `all_stages`) depend on: what [`check`] wants a [`BaseInfo`] for.
pub fn image_roots(df: &Dockerfile, plan: &Plan, all_stages: bool) -> Vec<usize> {
    dispatch::image_roots(df, plan, all_stages)
}

/// What depended on the base image of stage `root` (a stage built `FROM` an image), now that
/// it is known: the findings [`check`] left out for it, in `root` and in the stages built on it.
pub fn check_base(df: &Dockerfile, opts: &CheckOptions, plan: &Plan, root: usize, base: &BaseInfo) -> Vec<Finding> {
    let mut out = Findings::new(opts.config);
    let run = dispatch::Run { df, opts, plan };
    let bases = BTreeMap::from([(root, base.clone())]);
    for d in run.stages(&bases, Some(root)) {
        if d.base_sensitive {
            out.push(d.finding);
        }
    }
    out.finish()
}

/// The findings of a run, each counted once and only when its rule runs.
pub(crate) struct Findings<'c> {
    pub config: &'c CheckConfig,
    list: Vec<Finding>,
}

impl<'c> Findings<'c> {
    fn new(config: &'c CheckConfig) -> Findings<'c> {
        Findings { config, list: Vec::new() }
    }

    /// Reports `finding` if its rule runs under `config` (the file's options, or an
    /// instruction's with its `# check=` comment merged in).
    pub fn report(&mut self, config: &CheckConfig, finding: Finding) {
        if config.runs(finding.rule) {
            self.list.push(finding);
        }
    }

    /// A finding already filtered by its options.
    fn push(&mut self, finding: Finding) {
        self.list.push(finding);
    }

    fn finish(mut self) -> Vec<Finding> {
        self.list.sort_by(|a, b| (a.line, &a.message, a.rule.name).cmp(&(b.line, &b.message, b.rule.name)));
        self.list.dedup();
        self.list
    }
}

#[cfg(test)]
mod tests;
