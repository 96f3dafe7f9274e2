//! The line-level pass over a Dockerfile, as BuildKit's `parser.Parse` does it: parser
//! directives at the top, comment and blank lines skipped, physical lines joined into logical
//! instruction lines (escape + newline continues a line; comment lines and blank lines inside a
//! continuation are dropped), and here-document bodies collected after the line that names them.
//! Every instruction keeps its byte span and 1-based line span in the original text.

use std::path::Path;

use super::error::DockerfileError;
use super::heredoc::{self, Marker};
use super::types::Heredoc;
use super::words::split_command;

/// Parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Directives {
    pub escape: char,
    pub syntax: Option<String>,
}

/// One instruction as found by the scanner.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawInstruction {
    /// 1-based first and last line (heredoc bodies included).
    pub line: usize,
    pub end_line: usize,
    /// Byte span of the instruction in the text, from its keyword to the end of its last line
    /// (line ending excluded).
    pub start: usize,
    pub end: usize,
    /// The physical lines joined, continuations and comment lines removed.
    pub logical: String,
    /// The markers found in `logical` and their bodies, in order.
    pub heredocs: Vec<(Marker, Heredoc)>,
    /// The comment lines since the previous instruction (BuildKit's `PrevComment`).
    pub comments: Vec<String>,
    /// Where BuildKit reports an empty line inside the continuation lines, if there is one:
    /// the continuation's last line.
    pub empty_continuation: Option<usize>,
}

/// The result of scanning a whole file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scanned {
    pub directives: Directives,
    pub instructions: Vec<RawInstruction>,
    pub line_count: usize,
}

/// A physical line: byte offset of its start, and its content without the line ending.
struct Line<'a> {
    start: usize,
    content: &'a str,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    for raw in text.split_inclusive('\n') {
        out.push(Line { start, content: raw.trim_end_matches(['\r', '\n']) });
        start += raw.len();
    }
    out
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Removes a trailing line-continuation (escape followed only by blanks) as BuildKit's
/// `lineContinuationRegex` does; returns the line and whether the instruction ends here. An
/// escaped escape character (`\\` at the end) is not a continuation.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape)
        && !before.ends_with(escape)
    {
        return (before, false);
    }
    (line, true)
}

/// BuildKit's directive parser: `# name=value` lines before anything else.
struct DirectiveParser {
    done: bool,
    seen: Vec<String>,
}

impl DirectiveParser {
    /// `Some((name, value))` if `line` (leading blanks removed) is a directive.
    fn parse_line(&mut self, line: &str) -> Result<Option<(String, String)>, String> {
        if self.done {
            return Ok(None);
        }
        let parsed = line.strip_prefix('#').and_then(|body| {
            let body = body.trim_start();
            let (name, value) = body.split_once('=')?;
            let name = name.trim_end();
            let mut chars = name.chars();
            let valid =
                chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric());
            let value = value.trim();
            (valid && !value.is_empty()).then(|| (name.to_ascii_lowercase(), value.to_string()))
        });
        let Some((name, value)) = parsed.filter(|(n, _)| matches!(n.as_str(), "syntax" | "escape" | "check")) else {
            self.done = true;
            return Ok(None);
        };
        if self.seen.contains(&name) {
            return Err(format!("only one {name} parser directive can be used"));
        }
        self.seen.push(name.clone());
        Ok(Some((name, value)))
    }
}

/// Scans `text` into logical instructions.
pub(crate) fn scan(path: &Path, text: &str) -> Result<Scanned, DockerfileError> {
    let bom = if text.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 };
    let all = lines(text);
    let mut directives = Directives { escape: '\\', syntax: None };
    let mut parser = DirectiveParser { done: false, seen: Vec::new() };
    let mut instructions = Vec::new();
    // Comment lines since the last instruction, as BuildKit keeps them: a bare `#` forgets the
    // ones before it, blank lines do not.
    let mut comments: Vec<String> = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let skip = if i == 0 { bom } else { 0 };
        let content = &all[i].content[skip.min(all[i].content.len())..];
        let trimmed = content.trim_start();
        let line_no = i + 1;
        i += 1;
        match parser.parse_line(trimmed).map_err(|e| DockerfileError::at(path, line_no, None, e))? {
            Some((name, value)) => {
                match name.as_str() {
                    "escape" => {
                        directives.escape = match value.as_str() {
                            "\\" => '\\',
                            "`" => '`',
                            _ => {
                                return Err(DockerfileError::at(
                                    path,
                                    line_no,
                                    None,
                                    format!("invalid escape token '{value}' does not match ` or \\"),
                                ));
                            }
                        }
                    }
                    "syntax" => directives.syntax = Some(value),
                    _ => {}
                }
                continue;
            }
            None if is_comment(trimmed) => {
                // BuildKit drops the line's first character, not the `#` (they differ when the
                // comment is indented), then trims.
                let mut rest = content.chars();
                rest.next();
                match rest.as_str().trim() {
                    "" => comments.clear(),
                    text => comments.push(text.to_string()),
                }
                continue;
            }
            None => {}
        }
        let escape = directives.escape;
        let (first, mut ended) = trim_continuation(trimmed, escape);
        if ended && first.is_empty() {
            continue;
        }
        let start = all[line_no - 1].start + skip + (content.len() - trimmed.len());
        let mut logical = first.to_string();
        let mut last = line_no;
        let mut empty_line = false;
        while !ended && i < all.len() {
            let content = all[i].content;
            i += 1;
            last = i;
            if is_comment(content) {
                continue;
            }
            if content.trim().is_empty() {
                empty_line = true;
                continue;
            }
            let (part, end) = trim_continuation(content, escape);
            logical.push_str(part);
            ended = end;
        }
        let empty_continuation = empty_line.then_some(last);
        let first_line = trimmed;
        let mut heredocs = Vec::new();
        if logical.contains("<<") && can_contain_heredoc(&logical, escape) {
            let markers =
                heredoc::find_markers(&logical).map_err(|e| DockerfileError::at(path, line_no, Some(first_line), e))?;
            for marker in markers {
                let mut content = String::new();
                let mut terminated = false;
                while i < all.len() {
                    let line = all[i].content;
                    let full = &text[all[i].start..all.get(i + 1).map_or(text.len(), |l| l.start)];
                    i += 1;
                    last = i;
                    let candidate = if marker.strip_tabs { line.trim_start_matches('\t') } else { line };
                    if candidate == marker.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(full);
                }
                if !terminated {
                    return Err(DockerfileError::at(
                        path,
                        line_no,
                        Some(first_line),
                        format!("unterminated heredoc {}", marker.name),
                    ));
                }
                let doc = Heredoc {
                    delimiter: marker.name.clone(),
                    content,
                    expand: marker.expand,
                    strip_tabs: marker.strip_tabs,
                };
                heredocs.push((marker, doc));
            }
        }
        let end = all[last - 1].start + all[last - 1].content.len();
        instructions.push(RawInstruction {
            line: line_no,
            end_line: last,
            start,
            end,
            logical,
            heredocs,
            comments: std::mem::take(&mut comments),
            empty_continuation,
        });
    }
    Ok(Scanned { directives, instructions, line_count: all.len() })
}

/// RUN, COPY and ADD (also as ONBUILD triggers) in shell form may carry heredocs.
fn can_contain_heredoc(logical: &str, escape: char) -> bool {
    let mut split = split_command(logical, escape);
    if split.keyword.eq_ignore_ascii_case("ONBUILD") {
        split = split_command(split.rest, escape);
    }
    let kw = split.keyword.to_ascii_uppercase();
    matches!(kw.as_str(), "RUN" | "COPY" | "ADD") && json_array(split.rest).is_none()
}

/// BuildKit's JSON-form test: the arguments parse as a JSON array. `Some(Ok(strings))` for an
/// array of strings, `Some(Err(()))` for an array with other elements (an error in Docker),
/// `None` when the text is not a JSON array (shell form).
pub(crate) fn json_array(rest: &str) -> Option<Result<Vec<String>, ()>> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return None;
    }
    let values: Vec<serde_json::Value> = serde_json::from_str(rest).ok()?;
    Some(values.into_iter().map(|v| if let serde_json::Value::String(s) = v { Ok(s) } else { Err(()) }).collect())
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
