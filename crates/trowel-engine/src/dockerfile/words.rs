//! Splitting a logical instruction line the way BuildKit's parser does: keyword, `--flags`
//! (quotes removed), and the argument text; `k=v` pairs of ENV/LABEL/ARG.

use super::types::Flag;

/// Characters BuildKit's `reWhitespace` (`[\t\v\f\r ]+`) splits on.
pub(crate) fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r')
}

/// A logical line split into its parts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SplitLine<'a> {
    /// The keyword as written (any case).
    pub keyword: &'a str,
    /// `--name[=value]` words, quotes and escapes removed.
    pub flags: Vec<Flag>,
    /// Everything after the flags, trimmed.
    pub rest: &'a str,
    /// Byte offset of `rest` in the line.
    pub rest_offset: usize,
}

/// Splits `line` (continuations already joined) into keyword, flags and rest.
pub(crate) fn split_command(line: &str, escape: char) -> SplitLine<'_> {
    let trimmed_start = line.len() - line.trim_start().len();
    let body = line.trim();
    let keyword_end = body.find(is_blank).unwrap_or(body.len());
    let keyword = &body[..keyword_end];
    let after = &body[keyword_end..];
    let after = after.trim_start_matches(is_blank);
    let after_offset = trimmed_start + (body.len() - after.len());
    let (flag_words, rest_start) = extract_builder_flags(after, escape);
    let rest_raw = &after[rest_start..];
    let rest = rest_raw.trim();
    let rest_offset = after_offset + rest_start + (rest_raw.len() - rest_raw.trim_start().len());
    let flags = flag_words
        .into_iter()
        .map(|w| {
            let w = w.strip_prefix("--").unwrap_or(&w);
            match w.split_once('=') {
                Some((name, value)) => Flag { name: name.to_string(), value: Some(value.to_string()) },
                None => Flag { name: w.to_string(), value: None },
            }
        })
        .collect();
    SplitLine { keyword, flags, rest, rest_offset }
}

/// Collects the leading words that start with `--` (quotes and escapes removed, as BuildKit's
/// `extractBuilderFlags`); returns them and the byte offset where the arguments start. A lone
/// `--` ends the flags.
fn extract_builder_flags(line: &str, escape: char) -> (Vec<String>, usize) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (pos, ch) = chars[i];
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                i += 1;
                continue;
            }
            let next = chars.get(i + 1).map(|c| c.1);
            if ch != '-' || next != Some('-') {
                return (words, pos);
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    if word == "--" {
                        return (words, pos);
                    }
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                    phase = Phase::Spaces;
                } else if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                } else if ch == escape {
                    if let Some(&(_, next)) = chars.get(i + 1) {
                        word.push(next);
                        i += 1;
                    }
                } else {
                    word.push(ch);
                }
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                } else if ch == escape {
                    match chars.get(i + 1) {
                        Some(&(_, next)) => {
                            word.push(next);
                            i += 1;
                        }
                        None => phase = Phase::Word,
                    }
                } else {
                    word.push(ch);
                }
            }
            Phase::Spaces => unreachable!("handled above"),
        }
        i += 1;
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    (words, line.len())
}

/// Splits arguments into words on whitespace, keeping quotes and escapes in the words
/// (BuildKit's `parseWords`); expansion removes them later.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        match quote {
            None if !in_word => {
                if ch.is_whitespace() {
                    i += 1;
                    continue;
                }
                in_word = true;
                continue;
            }
            None => {
                if ch.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    in_word = false;
                    i += 1;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    if i + 1 == chars.len() {
                        i += 1;
                        continue;
                    }
                    // Unquoted: keep the escape and the escaped character, even a quote.
                    word.push(ch);
                    i += 1;
                    word.push(chars[i]);
                    i += 1;
                    continue;
                }
                word.push(ch);
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                    word.push(ch);
                } else if ch == escape && q != '\'' {
                    if i + 1 == chars.len() {
                        quote = None;
                        i += 1;
                        continue;
                    }
                    word.push(ch);
                    i += 1;
                    word.push(chars[i]);
                } else {
                    word.push(ch);
                }
            }
        }
        i += 1;
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// Parses ENV/LABEL arguments: `k=v k2="v 2"` pairs, or the legacy `KEY value with spaces`
/// form (recognised when the first word has no `=`). Keys and values stay raw.
pub(crate) fn parse_name_values(rest: &str, keyword: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(format!("{keyword} requires at least one argument"));
    };
    if !first.contains('=') {
        let key_end = rest.find(is_blank).ok_or_else(|| format!("{keyword} must have two arguments"))?;
        let key = &rest[..key_end];
        let value = rest[key_end..].trim_start_matches(is_blank);
        return Ok(vec![(key.to_string(), value.to_string())]);
    }
    let mut pairs = Vec::with_capacity(words.len());
    for word in &words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(format!("Syntax error - can't find = in {word:?}. Must be of the form: name=value"));
        };
        if key.is_empty() {
            return Err(format!("{keyword} names can not be blank"));
        }
        pairs.push((key.to_string(), value.to_string()));
    }
    Ok(pairs)
}

/// Parses ARG arguments: `name` or `name=default`, several per line.
pub(crate) fn parse_args(rest: &str, escape: char) -> Result<Vec<(String, Option<String>)>, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Err("ARG requires at least one argument".into());
    }
    words
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some(("", _)) => Err("ARG names can not be blank".to_string()),
            Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
            None => Ok((word, None)),
        })
        .collect()
}

/// Whitespace-separated arguments (BuildKit's `parseStringsWhitespaceDelimited`): quotes are not
/// honoured.
pub(crate) fn split_blank(rest: &str) -> Vec<&str> {
    rest.split(is_blank).filter(|w| !w.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(name: &str, value: Option<&str>) -> Flag {
        Flag { name: name.into(), value: value.map(Into::into) }
    }

    #[test]
    fn split_keyword_flags_rest() {
        let s = split_command("  COPY --from=build --chown=\"a b\" --link  src dst  ", '\\');
        assert_eq!(s.keyword, "COPY");
        assert_eq!(s.flags, [flag("from", Some("build")), flag("chown", Some("a b")), flag("link", None)]);
        assert_eq!(s.rest, "src dst");
        assert_eq!(&"  COPY --from=build --chown=\"a b\" --link  src dst  "[s.rest_offset..][..7], "src dst");
    }

    #[test]
    fn flag_quotes_and_escapes() {
        let s = split_command("RUN --mount=type=cache,target='/root/.cache dir' --network=no\\ne echo", '\\');
        assert_eq!(s.flags, [flag("mount", Some("type=cache,target=/root/.cache dir")), flag("network", Some("none"))]);
        assert_eq!(s.rest, "echo");
        let s = split_command("RUN --x=`\"a echo", '`');
        assert_eq!(s.flags, [flag("x", Some("\"a"))]);
    }

    #[test]
    fn double_dash_ends_flags() {
        let s = split_command("RUN --network=none -- --version", '\\');
        assert_eq!(s.flags, [flag("network", Some("none"))]);
        assert_eq!(s.rest, "--version");
        let s = split_command("RUN -x --y", '\\');
        assert!(s.flags.is_empty());
        assert_eq!(s.rest, "-x --y");
    }

    #[test]
    fn keyword_only() {
        let s = split_command("RUN", '\\');
        assert_eq!((s.keyword, s.rest, s.flags.len()), ("RUN", "", 0));
        let s = split_command("COPY --link", '\\');
        assert_eq!(s.flags, [flag("link", None)]);
        assert_eq!(s.rest, "");
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(parse_words(r#"a="b c" d='e f' g=h\ i"#, '\\'), [r#"a="b c""#, "d='e f'", r"g=h\ i"]);
        assert_eq!(parse_words(r#"k="" x"#, '\\'), [r#"k="""#, "x"]);
        assert_eq!(parse_words(r#"a=\"b c"#, '\\'), [r#"a=\"b"#, "c"]);
        assert_eq!(parse_words("trailing\\", '\\'), ["trailing"]);
        assert_eq!(parse_words("a=`\"b c", '`'), ["a=`\"b", "c"]);
    }

    #[test]
    fn name_values() {
        assert_eq!(
            parse_name_values(r#"A=1 B="two words" C="#, "ENV", '\\').unwrap(),
            [("A".into(), "1".into()), ("B".into(), "\"two words\"".into()), ("C".into(), String::new())]
        );
        assert_eq!(
            parse_name_values("PATH   /usr/bin:/bin  and more", "ENV", '\\').unwrap(),
            [("PATH".into(), "/usr/bin:/bin  and more".into())]
        );
        assert_eq!(parse_name_values("ONLYKEY", "ENV", '\\').unwrap_err(), "ENV must have two arguments");
        assert_eq!(
            parse_name_values("A=1 B", "LABEL", '\\').unwrap_err(),
            "Syntax error - can't find = in \"B\". Must be of the form: name=value"
        );
        assert_eq!(parse_name_values("=x", "ENV", '\\').unwrap_err(), "ENV names can not be blank");
        assert_eq!(
            parse_name_values(r#""com.example.a b"="v""#, "LABEL", '\\').unwrap(),
            [("\"com.example.a b\"".into(), "\"v\"".into())]
        );
    }

    #[test]
    fn args() {
        assert_eq!(
            parse_args("A B=2 C=", '\\').unwrap(),
            [("A".into(), None), ("B".into(), Some("2".into())), ("C".into(), Some(String::new()))]
        );
        assert_eq!(parse_args("=1", '\\').unwrap_err(), "ARG names can not be blank");
        assert_eq!(parse_args("", '\\').unwrap_err(), "ARG requires at least one argument");
    }

    #[test]
    fn blank_split() {
        assert_eq!(split_blank("a \t b\x0bc  "), ["a", "b", "c"]);
        assert_eq!(split_blank("\"a b\" c"), ["\"a", "b\"", "c"]);
    }
}
