//! Word expansion with BuildKit's rules (the behaviour of `frontend/dockerfile/shell/lex.go`).
//!
//! A word is scanned once, left to right: `$NAME`, `${NAME}` and the `${NAME<op>word}` forms are
//! replaced by their values, single quotes keep everything literal, double quotes still expand
//! `$`, the escape character (`\` or the one from `# escape=`) makes the next character literal,
//! and quotes and escapes are removed. Unset variables expand to the empty string. `process_words`
//! additionally splits the result into words on unquoted whitespace, where whitespace coming from
//! a variable's value splits too (as in a shell).
//!
//! Deliberate differences from BuildKit: `${#NAME}` gives the length of the value (BuildKit rejects
//! it), and a `$` in the replacement of `${NAME//pattern/replacement}` is literal (Go's regexp
//! would treat it as a group reference).

use super::expand::Vars;
use super::pattern::{compile_pattern, replace, trim_prefix_len, trim_suffix_len};

/// How a word is lexed. `Lexer::new(escape)` gives the plain Dockerfile rules; the other switches
/// exist for the parser's own uses (heredoc delimiters, heredoc bodies).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lexer {
    pub escape: char,
    /// Keep quote characters in the result (they still group words).
    pub raw_quotes: bool,
    /// Keep escape characters in the result (they still protect the next character).
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters (COPY heredoc bodies).
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written instead of expanding them to "".
    pub skip_unset_env: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Lexer {
        Lexer { escape, raw_quotes: false, raw_escapes: false, skip_process_quotes: false, skip_unset_env: false }
    }

    /// Expands `word` into one string (no word splitting).
    pub fn process_word(&self, word: &str, vars: &dyn Vars) -> Result<String, String> {
        self.run(word, vars).map(|(result, _)| result)
    }

    /// Expands `word` and splits the result into words.
    pub fn process_words(&self, word: &str, vars: &dyn Vars) -> Result<Vec<String>, String> {
        self.run(word, vars).map(|(_, words)| words)
    }

    fn run(&self, word: &str, vars: &dyn Vars) -> Result<(String, Vec<String>), String> {
        let mut sw = ShellWord {
            lex: self,
            chars: word.chars().collect(),
            pos: 0,
            vars,
            raw_escapes: self.raw_escapes,
            depth: 0,
        };
        sw.process_stop_on(None, self.raw_escapes).map_err(|e| format!("failed to process {word:?}: {e}"))
    }
}

struct ShellWord<'a> {
    lex: &'a Lexer,
    chars: Vec<char>,
    pos: usize,
    vars: &'a dyn Vars,
    raw_escapes: bool,
    /// Nesting of `${…}` being processed.
    depth: usize,
}

/// `${a:-${b:-…}}` nests by recursion; deeper than this is refused rather than risking the stack.
const MAX_NESTING: usize = 64;

/// Accumulates the word-split form next to the plain result.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&self, name: &str) -> Option<String> {
        self.vars.get(name)
    }

    /// Processes until `stop` (consumed) or the end of input; `raw_escapes` applies inside.
    fn process_stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>), String> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let out = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        out
    }

    fn process_stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '<' => {
                    let text = self.process_possible_heredoc();
                    result.push_str(&text);
                    words.add_raw_string(&text);
                }
                '\'' if !self.lex.skip_process_quotes => {
                    let text = self.process_single_quote()?;
                    result.push_str(&text);
                    words.add_raw_string(&text);
                }
                '"' if !self.lex.skip_process_quotes => {
                    let text = self.process_double_quote()?;
                    result.push_str(&text);
                    words.add_raw_string(&text);
                }
                _ => {
                    self.next();
                    let mut ch = ch;
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // An escape at the very end of the word is dropped.
                        match self.next() {
                            None => break,
                            Some(escaped) => ch = escaped,
                        }
                        words.add_raw_char(ch);
                    } else {
                        words.add_char(ch);
                    }
                    result.push(ch);
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!("unexpected end of statement while looking for matching {stop}"));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        self.next();
        if self.lex.raw_quotes {
            result.push('\'');
        }
        loop {
            match self.next() {
                None => return Err("unexpected end of statement while looking for matching single-quote".into()),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        self.next();
        if self.lex.raw_quotes {
            result.push('"');
        }
        loop {
            match self.peek() {
                None => return Err("unexpected end of statement while looking for matching double-quote".into()),
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            // Inside double quotes only these can be escaped; any other
                            // escape character stays (as in sh).
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                ch = self.next().unwrap_or_default();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        // `<< EOF` stays one word: the delimiter may follow after blanks.
        let mut text = String::from("<<");
        while let Some(c @ ('\t' | '\r' | ' ')) = self.peek() {
            text.push(c);
            self.next();
        }
        text
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                // Positional parameters: all the digits form the name.
                while let Some(c) = self.peek().filter(|c| c.is_numeric()) {
                    name.push(c);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphabetic() || ch.is_numeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        if self.depth >= MAX_NESTING {
            return Err(format!("variable substitutions nested more than {MAX_NESTING} deep"));
        }
        self.depth += 1;
        let out = self.process_dollar_inner();
        self.depth -= 1;
        out
    }

    fn process_dollar_inner(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return match self.get_env(&name) {
                Some(v) => Ok(v),
                None if self.lex.skip_unset_env => Ok(format!("${name}")),
                None => Ok(String::new()),
            };
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some('#') if self.chars.get(self.pos + 1).is_some_and(|c| c.is_alphabetic() || *c == '_') => {
                return self.process_length();
            }
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(mut ch) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut modifier = ch.to_string();
        let mut null_is_unset = false;
        match ch {
            '}' => {
                return match self.get_env(&name) {
                    Some(v) => Ok(v),
                    None if self.lex.skip_unset_env => Ok(format!("${{{name}}}")),
                    None => Ok(String::new()),
                };
            }
            '/' => return self.process_replace(&name),
            ':' => {
                null_is_unset = true;
                match self.next() {
                    Some(c) => {
                        ch = c;
                        modifier.push(c);
                    }
                    None => return Err("syntax error: missing '}'".into()),
                }
            }
            _ => {}
        }
        if !matches!(ch, '+' | '-' | '?' | '#' | '%') {
            return Err(format!("unsupported modifier ({modifier}) in substitution"));
        }
        // Patterns keep their escapes so the pattern compiler can see `\*` and friends.
        let raw = ch == '#' || ch == '%';
        if null_is_unset && raw {
            return Err(format!("unsupported modifier ({modifier}) in substitution"));
        }
        let word = match self.process_stop_on(Some('}'), raw) {
            Ok((word, _)) => word,
            Err(_) if self.peek().is_none() => return Err("syntax error: missing '}'".into()),
            Err(e) => return Err(e),
        };
        let value = self.get_env(&name);
        if self.lex.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}{modifier}{word}}}"));
        }
        let unset_or_null = match &value {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match ch {
            '-' => Ok(if unset_or_null { word } else { value.unwrap_or_default() }),
            '+' => Ok(if unset_or_null { String::new() } else { word }),
            '?' => {
                let default = if value.is_none() { "is not allowed to be unset" } else { "is not allowed to be empty" };
                if unset_or_null {
                    let message = if word.is_empty() { default } else { word.as_str() };
                    return Err(format!("{name}: {message}"));
                }
                Ok(value.unwrap_or_default())
            }
            _ => {
                let value = value.unwrap_or_default();
                let (greedy, pattern) = match word.strip_prefix(ch) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let pattern = compile_pattern(pattern)?;
                let chars: Vec<char> = value.chars().collect();
                Ok(if ch == '%' {
                    match trim_suffix_len(&pattern, &chars, greedy) {
                        Some(start) => chars[..start].iter().collect(),
                        None => value,
                    }
                } else {
                    match trim_prefix_len(&pattern, &chars, greedy) {
                        Some(end) => chars[end..].iter().collect(),
                        None => value,
                    }
                })
            }
        }
    }

    /// `${#NAME}`: the length of the value in characters.
    fn process_length(&mut self) -> Result<String, String> {
        self.next();
        let name = self.process_name();
        if self.next() != Some('}') {
            return Err("syntax error: bad substitution".into());
        }
        match self.get_env(&name) {
            Some(v) => Ok(v.chars().count().to_string()),
            None if self.lex.skip_unset_env => Ok(format!("${{#{name}}}")),
            None => Ok("0".into()),
        }
    }

    /// `${NAME/pattern/replacement}` and `${NAME//pattern/replacement}`.
    fn process_replace(&mut self, name: &str) -> Result<String, String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(_) if self.peek().is_none() => return Err("syntax error: missing '/' in ${}".into()),
            Err(e) => return Err(e),
        };
        let replacement = match self.process_stop_on(Some('}'), true) {
            Ok((r, _)) => r,
            Err(_) if self.peek().is_none() => return Err("syntax error: missing '}'".into()),
            Err(e) => return Err(e),
        };
        let value = self.get_env(name);
        if self.lex.skip_unset_env && value.is_none() {
            let sep = if all { "//" } else { "/" };
            return Ok(format!("${{{name}{sep}{pattern}/{replacement}}}"));
        }
        let tokens = compile_pattern(&pattern)?;
        let chars: Vec<char> = value.unwrap_or_default().chars().collect();
        Ok(replace(&tokens, &chars, &replacement, all))
    }
}

/// `$@ $* $# $? $- $$ $! $0`: recognised as names, never set in a Dockerfile.
fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

#[cfg(test)]
#[path = "lex_tests.rs"]
mod tests;
