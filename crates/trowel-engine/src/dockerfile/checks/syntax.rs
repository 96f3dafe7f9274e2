//! The checks BuildKit makes while it parses (`parser.Parse`, `instructions.Parse`) and right
//! after (`validateStageNames`, `validateCommandCasing`): they read only how the Dockerfile is
//! written, in every stage whether it is built or not.

use super::rules::{self, Rule};
use super::{Finding, Findings};
use crate::dockerfile::types::{Dockerfile, Instruction, InstructionKind};

/// Stage names BuildKit reserves.
const RESERVED_STAGE_NAMES: [&str; 2] = ["context", "scratch"];

pub(super) fn check(out: &mut Findings, df: &Dockerfile) {
    let file = out.config.clone();
    // Empty continuation lines: the parser's warnings, judged by the file's options only.
    for ins in df.instructions() {
        if let Some(line) = ins.written.empty_continuation {
            let finding = Finding {
                rule: &rules::NO_EMPTY_CONTINUATION,
                line,
                end_line: line,
                message: rules::no_empty_continuation(),
            };
            out.report(&file, finding);
        }
    }
    for ins in df.instructions() {
        let config = file.with_comments(&ins.written.comments);
        let report = |out: &mut Findings, rule: &'static Rule, message: String| {
            out.report(&config, Finding::at(rule, ins, message));
        };
        match &ins.kind {
            InstructionKind::Maintainer(_) => {
                report(out, &rules::MAINTAINER_DEPRECATED, rules::maintainer_deprecated())
            }
            InstructionKind::From { alias: Some(alias), .. } => {
                if *alias != alias.to_lowercase() {
                    report(out, &rules::STAGE_NAME_CASING, rules::stage_name_casing(alias));
                }
                let from = &ins.written.keyword;
                let as_word = ins.written.as_word.as_deref().unwrap_or("AS");
                let matches = if *from == from.to_lowercase() {
                    as_word == as_word.to_lowercase()
                } else if *from == from.to_uppercase() {
                    as_word == as_word.to_uppercase()
                } else {
                    // A mixed-case FROM is ConsistentInstructionCasing's to report.
                    true
                };
                if !matches {
                    report(out, &rules::FROM_AS_CASING, rules::from_as_casing(from, as_word));
                }
                description(out, &config, ins, "FROM", &[alias.to_lowercase()]);
            }
            InstructionKind::Arg(pairs) => {
                let names: Vec<String> = pairs.iter().map(|(n, _)| n.clone()).collect();
                description(out, &config, ins, "ARG", &names);
            }
            _ => {}
        }
    }
    stage_names(out, df, &file);
    casing(out, df, &file);
}

/// InvalidDefinitionDescription (experimental): the comment right above a named FROM or an ARG
/// should start with the name it describes.
fn description(
    out: &mut Findings,
    config: &super::CheckConfig,
    ins: &Instruction,
    instruction: &str,
    names: &[String],
) {
    let (Some(last), Some(first)) = (ins.written.comments.last(), names.first()) else { return };
    let described = last.split(' ').next().unwrap_or("");
    if names.iter().any(|n| n == described) {
        return;
    }
    let example = if names.len() > 1 { "<arg_key>" } else { first.as_str() };
    let message = rules::invalid_definition_description(instruction, example);
    out.report(config, Finding::at(&rules::INVALID_DEFINITION_DESCRIPTION, ins, message));
}

/// ReservedStageName and DuplicateStageName.
fn stage_names(out: &mut Findings, df: &Dockerfile, config: &super::CheckConfig) {
    let mut seen: Vec<&str> = Vec::new();
    for stage in &df.stages {
        let Some(name) = stage.name.as_deref() else { continue };
        if RESERVED_STAGE_NAMES.contains(&name) {
            out.report(config, Finding::at(&rules::RESERVED_STAGE_NAME, &stage.from, rules::reserved_stage_name(name)));
        }
        if seen.contains(&name) {
            out.report(
                config,
                Finding::at(&rules::DUPLICATE_STAGE_NAME, &stage.from, rules::duplicate_stage_name(name)),
            );
        }
        seen.push(name);
    }
}

/// ConsistentInstructionCasing: every keyword of every stage (global ARGs are not in a stage)
/// in the casing most of them use; a tie goes to upper case.
fn casing(out: &mut Findings, df: &Dockerfile, config: &super::CheckConfig) {
    let keywords: Vec<&Instruction> =
        df.stages.iter().flat_map(|s| std::iter::once(&s.from).chain(s.instructions.iter())).collect();
    let (mut lower, mut upper) = (0, 0);
    for ins in &keywords {
        let k = &ins.written.keyword;
        if *k == k.to_lowercase() {
            lower += 1;
        } else if *k == k.to_uppercase() {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for ins in keywords {
        let k = &ins.written.keyword;
        let wrong = if majority_lower { *k != k.to_lowercase() } else { *k != k.to_uppercase() };
        if wrong {
            let majority = if majority_lower { "lowercase" } else { "uppercase" };
            let message = rules::consistent_instruction_casing(k, majority);
            out.report(config, Finding::at(&rules::CONSISTENT_INSTRUCTION_CASING, ins, message));
        }
    }
}
