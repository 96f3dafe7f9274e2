//! `.dockerignore` with Docker's semantics (moby `patternmatcher`), which differ from gitignore:
//!
//! - every pattern is cleaned (`filepath.Clean`) and anchored at the context root; a leading `/`
//!   is dropped, so `/a` and `a` are the same pattern; like BuildKit, which reads the file with
//!   moby's `ignorefile` and then matches with `patternmatcher`, a pattern is trimmed and cleaned
//!   a second time, so `** /` is `**`;
//! - `*` and `?` do not match `/`; `**` matches any number of directories (also none);
//! - a pattern that matches a directory matches everything below it;
//! - `!pattern` re-includes; the last pattern that matches a path decides;
//! - lines starting with `#` are comments, blank lines are ignored.
//!
//! Patterns are compiled into [`globset`] globs where moby uses regular expressions; the few
//! `**` placements globset does not support (`a**b`) are expanded into equivalent alternatives.
//! One known difference remains: a negated class such as `[^a]` never matches `/` here.
//!
//! Docker always reads the Dockerfile and the ignore file themselves, even when excluded, but
//! `COPY` honours the patterns for them like for any other file.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::error::DockerfileError;

/// A compiled set of ignore patterns.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Cleaned pattern without the `!`.
    text: String,
    exclusion: bool,
    matcher: Matcher,
    /// Per path component: a matcher for it, `None` when it contains `**` (used to decide
    /// whether an exception can re-include something below a directory).
    components: Vec<Option<GlobSet>>,
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Glob(GlobSet),
}

/// moby's `filepath.Clean` on `/`-separated paths.
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// The pattern normalisation of moby's `ignorefile.ReadAll`: trim, clean, drop a leading `/`,
/// keeping a `!` in front.
fn normalize(line: &str) -> String {
    let mut pattern = line.trim();
    let invert = pattern.starts_with('!');
    if invert {
        pattern = pattern[1..].trim();
    }
    let mut out = String::new();
    if !pattern.is_empty() {
        let cleaned = clean(pattern);
        out = match cleaned.strip_prefix('/') {
            Some(rest) if !rest.is_empty() => rest.to_string(),
            _ => cleaned,
        };
    }
    if invert { format!("!{out}") } else { out }
}

/// Checks the pattern syntax as Go's `filepath.Match` does (classes, escapes).
fn check_syntax(p: &str) -> Result<(), String> {
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    // One possibly escaped class character, as Go's getEsc.
    let esc = |i: &mut usize| -> Result<(), String> {
        match chars.get(*i) {
            None | Some('-') | Some(']') => return Err("syntax error in character class".into()),
            Some('\\') => {
                *i += 1;
                if *i >= chars.len() {
                    return Err("trailing escape in character class".into());
                }
            }
            Some(_) => {}
        }
        *i += 1;
        Ok(())
    };
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err("trailing backslash".into());
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    match chars.get(i) {
                        None => return Err("unclosed character class".into()),
                        Some(']') if ranges > 0 => {
                            i += 1;
                            break;
                        }
                        _ => {}
                    }
                    esc(&mut i)?;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        esc(&mut i)?;
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(char),
    Star,
    Quest,
    /// A character class already in globset syntax.
    Class(String),
    /// `**` followed by more pattern: moby's `(.*/)?`.
    DoubleStar,
    /// `**` at the end after a wildcard: moby's `.*`.
    DoubleStarEnd,
}

/// Reads a class starting after `[` at `chars[*i]`, producing a globset class with the same
/// meaning as Go's (only `^` negates; `!`, `]`, `-` and `^` placed where globset reads them
/// literally).
fn read_class(chars: &[char], i: &mut usize) -> String {
    let negated = chars.get(*i) == Some(&'^');
    if negated {
        *i += 1;
    }
    let mut items: Vec<(char, Option<char>)> = Vec::new();
    let take = |i: &mut usize| -> char {
        if chars[*i] == '\\' {
            *i += 1;
        }
        let c = chars[*i];
        *i += 1;
        c
    };
    while chars[*i] != ']' || items.is_empty() {
        let lo = take(i);
        let hi = if chars.get(*i) == Some(&'-') && chars.get(*i + 1) != Some(&']') {
            *i += 1;
            Some(take(i))
        } else {
            None
        };
        items.push((lo, hi));
    }
    *i += 1;
    let single = |c: char| items.iter().any(|&(lo, hi)| lo == c && hi.is_none());
    let mut out = String::from(if negated { "[!" } else { "[" });
    if single(']') {
        out.push(']');
    }
    for &(lo, hi) in &items {
        match hi {
            Some(hi) => {
                out.push(lo);
                out.push('-');
                out.push(hi);
            }
            None if matches!(lo, ']' | '-' | '!' | '^') => {}
            None => out.push(lo),
        }
    }
    for special in ['!', '^'] {
        if single(special) {
            out.push(special);
        }
    }
    if single('-') {
        out.push('-');
    }
    out.push(']');
    // A class holding only `!` or `^` would read as a negation marker: use the literal.
    match out.as_str() {
        "[!]" if !negated => "\\!".into(),
        "[^]" if !negated => "\\^".into(),
        _ => out,
    }
}

/// moby's pattern classification, with the pieces of the regexp case.
fn classify(p: &str) -> (Vec<Piece>, &'static str) {
    let chars: Vec<char> = p.chars().collect();
    let mut pieces = Vec::new();
    let mut kind = "exact";
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if kind == "exact" {
                        kind = "prefix";
                    } else {
                        pieces.push(Piece::DoubleStarEnd);
                        kind = "glob";
                    }
                } else {
                    pieces.push(Piece::DoubleStar);
                    kind = "glob";
                }
                if first {
                    kind = "suffix";
                }
            }
            '*' => {
                pieces.push(Piece::Star);
                kind = "glob";
            }
            '?' => {
                pieces.push(Piece::Quest);
                kind = "glob";
            }
            '\\' if i < chars.len() => {
                pieces.push(Piece::Lit(chars[i]));
                i += 1;
                kind = "glob";
            }
            '[' => {
                pieces.push(Piece::Class(read_class(&chars, &mut i)));
                kind = "glob";
            }
            c => pieces.push(Piece::Lit(c)),
        }
        first = false;
    }
    (pieces, kind)
}

/// Globset globs equivalent to the pieces (several when `**` sits inside a component).
fn globs(pieces: &[Piece]) -> Result<Vec<String>, String> {
    let mut alternatives = vec![String::new()];
    for piece in pieces {
        let after_slash = |s: &String| s.is_empty() || s.ends_with('/');
        let mut next = Vec::new();
        for alt in alternatives {
            match piece {
                Piece::Lit(c) => {
                    let mut s = alt;
                    if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\' | '!' | '^' | ',') {
                        s.push('\\');
                    }
                    s.push(*c);
                    next.push(s);
                }
                Piece::Star => next.push(alt + "*"),
                Piece::Quest => next.push(alt + "?"),
                Piece::Class(class) => next.push(alt + class),
                Piece::DoubleStar if after_slash(&alt) => next.push(alt + "**/"),
                Piece::DoubleStar => {
                    next.push(alt.clone());
                    next.push(alt + "*/**/");
                }
                Piece::DoubleStarEnd if alt.ends_with('/') => next.push(alt + "**"),
                Piece::DoubleStarEnd => {
                    next.push(alt.clone() + "*");
                    next.push(alt + "*/**");
                }
            }
        }
        if next.len() > MAX_ALTERNATIVES {
            return Err("too many `**` inside path components".into());
        }
        alternatives = next;
    }
    Ok(alternatives)
}

fn glob_set(globs: &[String]) -> Result<GlobSet, String> {
    let mut builder = GlobSetBuilder::new();
    for g in globs {
        let glob =
            GlobBuilder::new(g).literal_separator(true).backslash_escape(true).build().map_err(|e| e.to_string())?;
        builder.add(glob);
    }
    builder.build().map_err(|e| e.to_string())
}

/// More `**`-inside-a-component than this would need too many alternative globs.
const MAX_ALTERNATIVES: usize = 64;

impl Pattern {
    /// Compiles one pattern as [`normalize`] leaves it. BuildKit's file sync hands those patterns
    /// to moby's `patternmatcher.New`, which trims and cleans each one again before taking off
    /// the `!`, so that is done here too: `** /` (which `normalize` leaves as `** `) means `**`,
    /// `/ /` means nothing, and `!/` is the illegal `!`. `None` for a pattern that is then empty.
    fn compile(normalized: &str) -> Result<Option<Pattern>, String> {
        let trimmed = normalized.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        let raw = clean(trimmed);
        let (exclusion, text) = match raw.strip_prefix('!') {
            Some("") => return Err("illegal exclusion pattern: \"!\"".into()),
            // Not trimmed: `New` keeps `! a` (from the line `!/ a`) as an exception for ` a`.
            Some(rest) => (true, rest.to_string()),
            None => (false, raw),
        };
        check_syntax(&text)?;
        let (pieces, kind) = classify(&text);
        let matcher = match kind {
            "exact" => Matcher::Exact(text.clone()),
            "prefix" => Matcher::Prefix(text[..text.len() - 2].to_string()),
            "suffix" => Matcher::Suffix(text[2..].to_string()),
            _ => Matcher::Glob(glob_set(&globs(&pieces)?)?),
        };
        let components = text
            .split('/')
            .map(|c| {
                // A class spanning a `/` cannot be judged per component: stay conservative.
                if c.contains("**") || check_syntax(c).is_err() {
                    return Ok(None);
                }
                let (pieces, _) = classify(c);
                glob_set(&globs(&pieces)?).map(Some)
            })
            .collect::<Result<_, String>>()?;
        Ok(Some(Pattern { text, exclusion, matcher, components }))
    }

    fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact(p) => path == p,
            Matcher::Prefix(p) => path.starts_with(p.as_str()),
            Matcher::Suffix(s) => path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|s| path == s),
            Matcher::Glob(g) => g.is_match(path),
        }
    }

    /// Whether this pattern could match `dir` or something below it (conservative: `true` when
    /// unsure).
    fn may_match_within(&self, dir: &[&str]) -> bool {
        for (i, component) in self.components.iter().enumerate() {
            let Some(component) = component else { return true };
            let Some(name) = dir.get(i) else { return true };
            if !component.is_match(name) {
                return false;
            }
        }
        true
    }
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Self, DockerfileError> {
        Self::parse_named(text, ".dockerignore")
    }

    fn parse_named(text: &str, source_name: &str) -> Result<Self, DockerfileError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let pattern = normalize(line);
            if pattern.is_empty() {
                continue;
            }
            let compiled = Pattern::compile(&pattern).map_err(|reason| DockerfileError::Ignore {
                source_name: source_name.to_string(),
                line: Some(n + 1),
                pattern: line.trim().to_string(),
                reason,
            })?;
            patterns.extend(compiled);
        }
        Ok(DockerIgnore { patterns })
    }

    /// The matcher of `COPY`/`ADD --exclude` patterns. BuildKit hands them to its pattern
    /// matcher as written (`llb.WithExcludePatterns`), without the leading-`/` trimming its
    /// `.dockerignore` reader does: matched against relative paths, `/a` matches nothing, so
    /// such a pattern (or `!/a`) is left out here.
    pub fn from_exclude_flags(pats: &[String]) -> Result<Self, DockerfileError> {
        let kept: Vec<String> =
            pats.iter().filter(|p| !p.trim().trim_start_matches('!').starts_with('/')).cloned().collect();
        Self::from_patterns(&kept)
    }

    /// Builds a matcher from patterns given directly, normalised like the lines of a
    /// `.dockerignore`.
    pub fn from_patterns(pats: &[String]) -> Result<Self, DockerfileError> {
        let mut patterns = Vec::new();
        for raw in pats {
            let pattern = normalize(raw);
            if pattern.is_empty() {
                continue;
            }
            let compiled = Pattern::compile(&pattern).map_err(|reason| DockerfileError::Ignore {
                source_name: "exclude patterns".into(),
                line: None,
                pattern: raw.clone(),
                reason,
            })?;
            patterns.extend(compiled);
        }
        Ok(DockerIgnore { patterns })
    }

    /// Loads the ignore file for a build: `<Dockerfile>.dockerignore` next to the Dockerfile
    /// wins, else `<context>/.dockerignore`, else no patterns.
    pub fn load(context: &Path, dockerfile: &Path) -> Result<Self, DockerfileError> {
        Self::load_with(context, dockerfile, |p| match std::fs::read(p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
    }

    /// [`DockerIgnore::load`] reading each candidate with `read` (`Ok(None)`: it does not exist),
    /// so a build can read a remote context's files inside it and bounded.
    pub fn load_with(
        context: &Path,
        dockerfile: &Path,
        read: impl Fn(&Path) -> std::io::Result<Option<Vec<u8>>>,
    ) -> Result<Self, DockerfileError> {
        let mut candidates = Vec::new();
        if let Some(name) = dockerfile.file_name() {
            let mut specific = name.to_os_string();
            specific.push(".dockerignore");
            candidates.push(dockerfile.with_file_name(specific));
        }
        candidates.push(context.join(".dockerignore"));
        for path in candidates {
            match read(&path) {
                Ok(Some(bytes)) => {
                    let text = String::from_utf8_lossy(&bytes);
                    return Self::parse_named(&text, &path.display().to_string());
                }
                Ok(None) => continue,
                Err(source) => return Err(DockerfileError::Io { path, source }),
            }
        }
        Ok(DockerIgnore::default())
    }

    /// Whether `rel_path` (relative to the context, `/`-separated) is excluded. The context root
    /// itself is never excluded.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let path = clean(rel_path.trim_start_matches('/'));
        if path == "." || path.is_empty() {
            return false;
        }
        let parents: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            // Only a pattern that could change the outcome needs evaluating.
            if pattern.exclusion != excluded {
                continue;
            }
            if pattern.matches(&path) || parents.iter().any(|p| pattern.matches(p)) {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }

    /// Whether a walk may skip the directory `rel_dir` entirely: it is excluded and no `!`
    /// pattern could re-include anything below it.
    pub fn can_skip_dir(&self, rel_dir: &str) -> bool {
        if !self.is_excluded(rel_dir) {
            return false;
        }
        let dir = clean(rel_dir.trim_start_matches('/'));
        let components: Vec<&str> = dir.split('/').collect();
        !self.patterns.iter().any(|p| p.exclusion && p.may_match_within(&components))
    }

    /// `true` when there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns as the matcher holds them (after both of BuildKit's normalisations), `!`
    /// included: for display and the build checks.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns.iter().map(|p| if p.exclusion { format!("!{}", p.text) } else { p.text.clone() }).collect()
    }
}

#[cfg(test)]
#[path = "ignore_tests.rs"]
mod tests;
