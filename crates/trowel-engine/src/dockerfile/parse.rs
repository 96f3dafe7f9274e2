//! From text to [`Dockerfile`]: the scanner finds logical lines and heredocs, then each logical
//! line is split into keyword, flags and arguments and handed to `parse-dockerfile` for its
//! structure (JSON or shell form, sources and destination, `AS name`, `CMD`/`NONE`…); ENV, LABEL
//! and ARG pairs are split here, and what Docker rejects but the crate accepts is rejected here.
//!
//! The crate sees one instruction at a time, with continuations already joined, flags already
//! removed and heredoc markers neutralised, so its view of each instruction always matches
//! BuildKit's line structure.

use std::path::Path;

use parse_dockerfile as pd;

use super::error::DockerfileError;
use super::expand;
use super::flags;
use super::heredoc::Marker;
use super::scan::{self, RawInstruction, json_array};
use super::types::{
    self, AsWritten, CommandForm, CopyArgs, CopySource, Dockerfile, Heredoc, Instruction, InstructionKind, Keyword,
    Stage,
};
use super::words::{self, split_blank, split_command};

/// Parses a Dockerfile. `path` is only used in error messages and recorded in the result.
///
/// Two stages may have the same name, as BuildKit allows with a warning (the build check
/// DuplicateStageName): a name means the latest stage of that name before a `FROM` that names
/// it, and the last one of the file for `COPY --from`, `RUN --mount from=` and `--target`
/// (see [`Dockerfile::stage_by_name`]).
pub fn parse(path: &Path, text: &str) -> Result<Dockerfile, DockerfileError> {
    let scanned = scan::scan(path, text)?;
    let escape = scanned.directives.escape;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut any = false;
    for raw in &scanned.instructions {
        if raw.logical.trim().is_empty() {
            continue;
        }
        any = true;
        let instruction = convert(path, text, escape, raw)?;
        if let InstructionKind::From { alias, .. } = &instruction.kind {
            let name = alias.as_ref().map(|a| a.to_ascii_lowercase());
            stages.push(Stage { index: stages.len(), name, from: instruction, instructions: Vec::new() });
            continue;
        }
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(instruction),
            None if instruction.keyword() == Keyword::Arg => global_args.push(instruction),
            None => {
                return Err(instruction
                    .error("no build stage in current context: only ARG instructions may come before the first FROM"));
            }
        }
    }
    if !any {
        return Err(DockerfileError::at(path, scanned.line_count.max(1), None, "file with no instructions"));
    }
    if stages.is_empty() {
        return Err(DockerfileError::file(path, "dockerfile contains no stages to build (no FROM instruction)"));
    }
    let df = Dockerfile {
        path: path.to_path_buf(),
        text: text.to_string(),
        escape,
        syntax: scanned.directives.syntax,
        global_args,
        stages,
    };
    Ok(df)
}

/// Parses a single instruction, such as an `ONBUILD` trigger read from a base image's config
/// (`RUN echo hi`, possibly followed by heredoc bodies). FROM, ONBUILD and MAINTAINER are not
/// allowed as triggers.
pub fn parse_instruction_line(path: &Path, line_text: &str) -> Result<Instruction, DockerfileError> {
    let scanned = scan::scan(path, line_text)?;
    let mut found = scanned.instructions.iter().filter(|r| !r.logical.trim().is_empty());
    let (Some(raw), None) = (found.next(), found.next()) else {
        return Err(DockerfileError::at(path, 1, None, "an ONBUILD trigger must be exactly one instruction"));
    };
    let split = split_command(&raw.logical, scanned.directives.escape);
    check_trigger_keyword(split.keyword).map_err(|e| DockerfileError::at(path, raw.line, Some(&quoted(raw)), e))?;
    convert(path, line_text, scanned.directives.escape, raw)
}

/// How errors quote the instruction: all of it, on one line (heredoc bodies left out).
fn quoted(raw: &RawInstruction) -> String {
    types::one_line(raw.logical.trim())
}

/// Where errors point, and the file-wide escape character.
struct Ctx<'a> {
    path: &'a Path,
    line: usize,
    end_line: usize,
    first_line: String,
    escape: char,
}

impl Ctx<'_> {
    fn err(&self, reason: impl Into<String>) -> DockerfileError {
        DockerfileError::at(self.path, self.line, Some(&self.first_line), reason)
    }
}

fn convert(path: &Path, text: &str, escape: char, raw: &RawInstruction) -> Result<Instruction, DockerfileError> {
    let ctx = Ctx { path, line: raw.line, end_line: raw.end_line, first_line: quoted(raw), escape };
    let kind = build(&ctx, &raw.logical, 0, &raw.heredocs)?;
    let mut written = as_written(&raw.logical, escape, &kind);
    written.empty_continuation = raw.empty_continuation;
    written.comments = raw.comments.clone();
    Ok(Instruction {
        path: path.to_path_buf(),
        line: raw.line,
        end_line: raw.end_line,
        logical: raw.logical.clone(),
        source: text[raw.start..raw.end].to_string(),
        kind,
        written,
    })
}

/// The casing and forms of a logical line that its meaning does not keep.
fn as_written(line: &str, escape: char, kind: &InstructionKind) -> AsWritten {
    let split = split_command(line, escape);
    let words = split_blank(split.rest);
    AsWritten {
        keyword: split.keyword.to_string(),
        as_word: match kind {
            InstructionKind::From { alias: Some(_), .. } => words.get(1).map(|w| w.to_string()),
            _ => None,
        },
        // The legacy form is one pair whose key is the first word (BuildKit's `NoDelim`).
        legacy_key_value: matches!(kind, InstructionKind::Env(_) | InstructionKind::Label(_))
            && !words::parse_words(split.rest, escape).first().is_some_and(|w| w.contains('=')),
        ..AsWritten::default()
    }
}

fn check_trigger_keyword(word: &str) -> Result<(), String> {
    match word.to_ascii_uppercase().as_str() {
        "ONBUILD" => Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        kw @ ("FROM" | "MAINTAINER") => Err(format!("{kw} isn't allowed as an ONBUILD trigger")),
        _ => Ok(()),
    }
}

/// The heredocs whose markers lie in `rest` (which starts at `rest_offset` of the logical line),
/// with the marker positions made relative to `rest`.
fn heredocs_in<'h>(
    heredocs: &'h [(Marker, Heredoc)],
    rest_offset: usize,
    rest: &str,
) -> Vec<(usize, usize, &'h Heredoc)> {
    heredocs
        .iter()
        .filter(|(m, _)| m.word_start >= rest_offset && m.word_start < rest_offset + rest.len())
        .map(|(m, h)| (m.word_start - rest_offset, m.lt_offset - rest_offset, h))
        .collect()
}

/// Converts one logical line (or, for ONBUILD, the trigger part of one, starting at `offset`).
fn build(
    ctx: &Ctx,
    line: &str,
    offset: usize,
    heredocs: &[(Marker, Heredoc)],
) -> Result<InstructionKind, DockerfileError> {
    let split = split_command(line, ctx.escape);
    let keyword = Keyword::parse(split.keyword)
        .ok_or_else(|| ctx.err(format!("unknown instruction {}", split.keyword.to_uppercase())))?;
    flags::validate(keyword, &split.flags).map_err(|e| ctx.err(e))?;
    let rest = split.rest;
    let docs = heredocs_in(heredocs, offset + split.rest_offset, rest);

    if keyword == Keyword::Onbuild {
        if rest.is_empty() {
            return Err(ctx.err("ONBUILD requires at least one argument"));
        }
        let inner = split_command(rest, ctx.escape);
        check_trigger_keyword(inner.keyword).map_err(|e| ctx.err(e))?;
        let inner_kind = build(ctx, rest, offset + split.rest_offset, heredocs)?;
        let mut trigger = rest.to_string();
        for (_, _, doc) in &docs {
            trigger.push('\n');
            trigger.push_str(&doc.content);
            trigger.push_str(&doc.delimiter);
        }
        let written = as_written(rest, ctx.escape, &inner_kind);
        return Ok(InstructionKind::Onbuild(Box::new(Instruction {
            path: ctx.path.to_path_buf(),
            line: ctx.line,
            end_line: ctx.end_line,
            logical: rest.to_string(),
            source: trigger,
            kind: inner_kind,
            written,
        })));
    }

    if rest.is_empty() {
        return Err(ctx.err(match keyword {
            Keyword::From => "FROM requires either one or three arguments".to_string(),
            Keyword::Copy | Keyword::Add => two_args(keyword),
            Keyword::User | Keyword::Workdir | Keyword::Stopsignal | Keyword::Maintainer => {
                format!("{keyword} requires exactly one argument")
            }
            _ => format!("{keyword} requires at least one argument"),
        }));
    }
    if let Some(Err(())) = json_array(rest)
        && matches!(
            keyword,
            Keyword::Run
                | Keyword::Cmd
                | Keyword::Entrypoint
                | Keyword::Shell
                | Keyword::Copy
                | Keyword::Add
                | Keyword::Volume
        )
    {
        return Err(ctx.err("when using JSON array syntax, arrays must be comprised of strings only"));
    }
    prevalidate(ctx, keyword, rest)?;
    if matches!(keyword, Keyword::Cmd | Keyword::Entrypoint)
        && let Some(Ok(args)) = json_array(rest)
        && args.is_empty()
    {
        // `ENTRYPOINT []` resets the entrypoint; the crate would reject it.
        let form = CommandForm::Exec(Vec::new());
        return Ok(if keyword == Keyword::Cmd {
            InstructionKind::Cmd(form)
        } else {
            InstructionKind::Entrypoint(form)
        });
    }

    // The crate parses the instruction alone, flags removed and heredoc markers neutralised
    // (`<<EOF` becomes `_<EOF`), so it never looks for bodies: those are already attached.
    let mut neutral = rest.to_string();
    for (_, lt, _) in &docs {
        neutral.replace_range(*lt..*lt + 1, "_");
    }
    let prefix = format!("FROM scratch\n{keyword} ");
    let input = format!("{prefix}{neutral}");
    let mut parsed = pd::parse(&input).map_err(|e| ctx.err(format!("{e:#}")))?;
    let Some(parsed) = parsed.instructions.pop() else {
        return Err(ctx.err("internal error: instruction not recognised"));
    };
    let base = prefix.len();
    let kind = match (keyword, parsed) {
        (Keyword::From, pd::Instruction::From(from)) => {
            let alias = from.as_.map(|(_, name)| name.value.into_owned());
            if let Some(a) = &alias {
                check_stage_name(a).map_err(|e| ctx.err(e))?;
            }
            InstructionKind::From {
                image: from.image.value.into_owned(),
                platform: flags::str_flag(&split.flags, "platform").map(str::to_string),
                alias,
            }
        }
        (Keyword::Run, pd::Instruction::Run(_)) => {
            let command = match json_array(rest) {
                Some(Ok(args)) => CommandForm::Exec(args),
                _ => CommandForm::Shell(rest.to_string()),
            };
            let heredocs = docs.iter().map(|(_, _, h)| (*h).clone()).collect();
            InstructionKind::Run { flags: split.flags.clone(), command, heredocs }
        }
        (Keyword::Cmd, pd::Instruction::Cmd(_)) => InstructionKind::Cmd(command_form(rest)),
        (Keyword::Entrypoint, pd::Instruction::Entrypoint(_)) => InstructionKind::Entrypoint(command_form(rest)),
        (Keyword::Shell, pd::Instruction::Shell(_)) => match json_array(rest) {
            Some(Ok(args)) if !args.is_empty() => InstructionKind::Shell(args),
            Some(Ok(_)) => return Err(ctx.err("SHELL requires at least one argument")),
            _ => return Err(ctx.err("SHELL requires the arguments to be in JSON form")),
        },
        (Keyword::Copy, pd::Instruction::Copy(c)) => {
            InstructionKind::Copy(copy_args(ctx, keyword, &split.flags, rest, base, &c.src, &c.dest, &docs)?)
        }
        (Keyword::Add, pd::Instruction::Add(a)) => {
            InstructionKind::Add(copy_args(ctx, keyword, &split.flags, rest, base, &a.src, &a.dest, &docs)?)
        }
        (Keyword::Env, pd::Instruction::Env(e)) => InstructionKind::Env(
            words::parse_name_values(&e.arguments.value, "ENV", ctx.escape).map_err(|e| ctx.err(e))?,
        ),
        (Keyword::Label, pd::Instruction::Label(l)) => InstructionKind::Label(
            words::parse_name_values(&l.arguments.value, "LABEL", ctx.escape).map_err(|e| ctx.err(e))?,
        ),
        (Keyword::Arg, pd::Instruction::Arg(a)) => {
            InstructionKind::Arg(words::parse_args(&a.arguments.value, ctx.escape).map_err(|e| ctx.err(e))?)
        }
        (Keyword::Expose, pd::Instruction::Expose(e)) => {
            InstructionKind::Expose(e.arguments.iter().map(|a| a.value.to_string()).collect())
        }
        (Keyword::Volume, pd::Instruction::Volume(_)) => {
            let volumes = match json_array(rest) {
                Some(Ok(v)) => v,
                _ => split_blank(rest).into_iter().map(str::to_string).collect(),
            };
            if volumes.is_empty() {
                return Err(ctx.err("VOLUME requires at least one argument"));
            }
            InstructionKind::Volume(volumes)
        }
        (Keyword::User, pd::Instruction::User(u)) => InstructionKind::User(u.arguments.value.into_owned()),
        (Keyword::Workdir, pd::Instruction::Workdir(w)) => InstructionKind::Workdir(w.arguments.value.into_owned()),
        (Keyword::Stopsignal, pd::Instruction::Stopsignal(s)) => {
            InstructionKind::Stopsignal(s.arguments.value.into_owned())
        }
        (Keyword::Maintainer, pd::Instruction::Maintainer(m)) => InstructionKind::Maintainer(m.name.value.into_owned()),
        (Keyword::Healthcheck, pd::Instruction::Healthcheck(h)) => healthcheck(ctx, &split.flags, rest, &h)?,
        (kw, _) => return Err(ctx.err(format!("internal error: {kw} parsed as a different instruction"))),
    };
    Ok(kind)
}

/// Checks Docker makes that the crate would report differently (or not at all).
fn prevalidate(ctx: &Ctx, keyword: Keyword, rest: &str) -> Result<(), DockerfileError> {
    match keyword {
        Keyword::From => {
            let words = split_blank(rest);
            if !(words.len() == 1 || (words.len() == 3 && words[1].eq_ignore_ascii_case("AS"))) {
                return Err(ctx.err("FROM requires either one or three arguments"));
            }
        }
        Keyword::Copy | Keyword::Add => {
            let count = match json_array(rest) {
                Some(Ok(args)) => args.len(),
                _ => split_blank(rest).len(),
            };
            if count < 2 {
                return Err(ctx.err(two_args(keyword)));
            }
        }
        Keyword::Run => {
            if let Some(Ok(args)) = json_array(rest)
                && args.is_empty()
            {
                return Err(ctx.err("RUN requires at least one argument"));
            }
        }
        Keyword::Shell => match json_array(rest) {
            Some(Ok(args)) if args.is_empty() => return Err(ctx.err("SHELL requires at least one argument")),
            Some(Ok(_)) => {}
            _ => return Err(ctx.err("SHELL requires the arguments to be in JSON form")),
        },
        Keyword::Healthcheck => {
            let (kind, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if kind.eq_ignore_ascii_case("NONE") {
                if !args.trim().is_empty() {
                    return Err(ctx.err("HEALTHCHECK NONE takes no arguments"));
                }
            } else if !kind.eq_ignore_ascii_case("CMD") {
                return Err(ctx.err(format!("Unknown type {kind:?} in HEALTHCHECK (try CMD)")));
            }
        }
        _ => {}
    }
    Ok(())
}

fn two_args(keyword: Keyword) -> String {
    format!("{keyword} requires at least two arguments, but only one was provided. Destination could not be determined")
}

/// BuildKit's stage-name rule, applied to the lower-cased name.
fn check_stage_name(name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    let mut chars = lower.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!("invalid name for build stage: {name:?}, name can't start with a number or contain symbols"))
    }
}

/// CMD/ENTRYPOINT: exec form when the arguments are a JSON array of strings (`[]` included).
fn command_form(rest: &str) -> CommandForm {
    match json_array(rest) {
        Some(Ok(args)) => CommandForm::Exec(args),
        _ => CommandForm::Shell(rest.to_string()),
    }
}

#[allow(clippy::too_many_arguments)]
fn copy_args(
    ctx: &Ctx,
    keyword: Keyword,
    flag_list: &[types::Flag],
    rest: &str,
    base: usize,
    src: &[pd::Source<'_>],
    dest: &pd::UnescapedString<'_>,
    docs: &[(usize, usize, &Heredoc)],
) -> Result<CopyArgs, DockerfileError> {
    if let Some(Ok(mut args)) = json_array(rest) {
        let dest = args.pop().unwrap_or_default();
        return Ok(CopyArgs {
            flags: flag_list.to_vec(),
            sources: args.into_iter().map(CopySource::Path).collect(),
            dest,
        });
    }
    let doc_at = |span_start: usize| docs.iter().find(|(start, _, _)| base + start == span_start).map(|(_, _, h)| *h);
    if doc_at(dest.span.start).is_some() {
        return Err(ctx.err(format!("{keyword} cannot accept a heredoc as a destination")));
    }
    let mut sources = Vec::with_capacity(src.len());
    for s in src {
        match s {
            pd::Source::Path(p) => match doc_at(p.span.start) {
                Some(h) => sources.push(CopySource::Heredoc(h.clone())),
                None => sources.push(CopySource::Path(p.value.to_string())),
            },
            _ => return Err(ctx.err("internal error: unexpected heredoc source")),
        }
    }
    if let Some(c) = flags::str_flag(flag_list, "chmod").filter(|c| !c.is_empty() && !c.contains('$')) {
        flags::check_chmod(c).map_err(|e| ctx.err(e))?;
    }
    let paths: Vec<&str> = sources
        .iter()
        .filter_map(|s| match s {
            CopySource::Path(p) => Some(p.as_str()),
            CopySource::Heredoc(_) => None,
        })
        .collect();
    // What a checksum must look like depends on its source: known now unless a variable hides it.
    // An empty one is none (BuildKit acts on `cfg.checksum != ""` only).
    if let Some(c) = flags::str_flag(flag_list, "checksum").filter(|c| !c.contains('$') && !c.is_empty())
        && !paths.iter().any(|p| p.contains('$'))
    {
        flags::check_add_checksum(c, &paths).map_err(|e| ctx.err(e))?;
    }
    Ok(CopyArgs { flags: flag_list.to_vec(), sources, dest: dest.value.to_string() })
}

fn healthcheck(
    ctx: &Ctx,
    flag_list: &[types::Flag],
    rest: &str,
    parsed: &pd::HealthcheckInstruction<'_>,
) -> Result<InstructionKind, DockerfileError> {
    let (kind, args) = rest.split_once(char::is_whitespace).map_or((rest, ""), |(k, a)| (k, a.trim()));
    let command = match (&parsed.arguments, kind.to_ascii_uppercase().as_str()) {
        (pd::HealthcheckArguments::None { .. }, "NONE") => {
            if !flag_list.is_empty() {
                return Err(ctx.err("HEALTHCHECK NONE takes no flags"));
            }
            None
        }
        (pd::HealthcheckArguments::Cmd { .. }, "CMD") => Some(command_form(args)),
        _ => return Err(ctx.err(format!("Unknown type {kind:?} in HEALTHCHECK (try CMD)"))),
    };
    // Nothing in HEALTHCHECK expands, so its flags can be checked now.
    expand::healthcheck(flag_list, command.as_ref()).map_err(|e| ctx.err(e))?;
    Ok(InstructionKind::Healthcheck { flags: flag_list.to_vec(), command })
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
