//! Finding here-document markers (`<<EOF`, `<<-EOF`, `<<"EOF"`, `2<<EOF`…) in a logical line,
//! with BuildKit's rules: the line is split into words (quotes and escapes kept, `<<` followed by
//! blanks kept with the next word), and every word of the form `[digits]<<[-][blanks]delimiter`
//! is a marker. The delimiter is the word with quotes removed; any quoting disables expansion.

use super::expand::NoVars;
use super::lex::Lexer;

/// A here-document marker found in a line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Marker {
    /// Byte offset of the marker word in the line.
    pub word_start: usize,
    /// Byte offset of its `<<`.
    pub lt_offset: usize,
    /// The delimiter, quotes removed.
    pub name: String,
    /// `false` when any part of the delimiter was quoted.
    pub expand: bool,
    /// `<<-`: strip leading tabs.
    pub strip_tabs: bool,
}

/// Splits `line` into raw words with their byte offsets. `None` when a quote is not closed, in
/// which case BuildKit finds no heredocs in the line at all.
fn raw_words(line: &str) -> Option<Vec<(usize, String)>> {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c.is_whitespace() {
            if let Some(word) = current.take() {
                words.push(word);
            }
            i += 1;
            continue;
        }
        let word = &mut current.get_or_insert_with(|| (pos, String::new())).1;
        match c {
            '\\' => {
                word.push(c);
                if let Some(&(_, next)) = chars.get(i + 1) {
                    word.push(next);
                    i += 1;
                }
            }
            '\'' | '"' => {
                word.push(c);
                loop {
                    i += 1;
                    let &(_, inner) = chars.get(i)?;
                    word.push(inner);
                    if inner == c {
                        break;
                    }
                    if c == '"' && inner == '\\' {
                        i += 1;
                        word.push(chars.get(i)?.1);
                    }
                }
            }
            '<' if chars.get(i + 1).map(|c| c.1) == Some('<') => {
                word.push_str("<<");
                i += 1;
                while let Some(&(_, blank @ (' ' | '\t' | '\r'))) = chars.get(i + 1) {
                    word.push(blank);
                    i += 1;
                }
            }
            _ => word.push(c),
        }
        i += 1;
    }
    if let Some(word) = current {
        words.push(word);
    }
    Some(words)
}

/// Parses one word as a heredoc marker: `Some((name, expand, strip_tabs))` when it is one.
pub(crate) fn parse_marker(word: &str) -> Result<Option<(String, bool, bool)>, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(after) = word[digits..].strip_prefix("<<") else { return Ok(None) };
    let (strip_tabs, after) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    let rest = after.trim_start_matches([' ', '\t', '\n', '\x0c', '\r']);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let plain = Lexer { skip_unset_env: true, ..Lexer::new('\\') };
    let words = plain.process_words(rest, &NoVars)?;
    let [name] = words.as_slice() else { return Ok(None) };
    let raw = Lexer { raw_quotes: true, ..plain }.process_words(rest, &NoVars)?;
    let [raw_name] = raw.as_slice() else {
        return Err(format!("internal lexing of heredoc produced inconsistent results: {rest}"));
    };
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Ok(Some((name.clone(), quotes(name) == quotes(raw_name), strip_tabs)))
}

/// All heredoc markers of `line`, in order.
pub(crate) fn find_markers(line: &str) -> Result<Vec<Marker>, String> {
    let Some(words) = raw_words(line) else { return Ok(Vec::new()) };
    let mut markers = Vec::new();
    for (word_start, word) in words {
        if let Some((name, expand, strip_tabs)) = parse_marker(&word)? {
            let digits = word.bytes().take_while(u8::is_ascii_digit).count();
            markers.push(Marker { word_start, lt_offset: word_start + digits, name, expand, strip_tabs });
        }
    }
    Ok(markers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<(String, bool, bool)> {
        find_markers(line).unwrap().into_iter().map(|m| (m.name, m.expand, m.strip_tabs)).collect()
    }

    fn m(name: &str, expand: bool, strip: bool) -> (String, bool, bool) {
        (name.to_string(), expand, strip)
    }

    #[test]
    fn simple_and_quoted_markers() {
        assert_eq!(names("RUN <<EOF"), [m("EOF", true, false)]);
        assert_eq!(names("RUN <<-EOT bash"), [m("EOT", true, true)]);
        assert_eq!(names("RUN <<\"EOF\""), [m("EOF", false, false)]);
        assert_eq!(names("RUN <<'EOF'"), [m("EOF", false, false)]);
        assert_eq!(names("RUN <<E\"O\"F"), [m("EOF", false, false)]);
        assert_eq!(names("COPY <<A <<-B /dst/"), [m("A", true, false), m("B", true, true)]);
        assert_eq!(names("RUN cat <<A >a && cat <<B >b"), [m("A", true, false), m("B", true, false)]);
        assert_eq!(names("RUN python3 << END"), [m("END", true, false)]);
        assert_eq!(names("RUN 3<<FD cat <&3"), [m("FD", true, false)]);
    }

    #[test]
    fn not_markers() {
        assert!(names("RUN echo '<<EOF'").is_empty());
        assert!(names("RUN echo \"<<EOF\"").is_empty());
        assert!(names("RUN echo a<<EOF").is_empty());
        assert!(names("RUN cat <<<here").is_empty());
        assert!(names("RUN echo <<").is_empty());
        assert!(names("RUN echo << ").is_empty());
        assert!(names("RUN echo <<\"\"").is_empty());
        // An unclosed quote anywhere hides every marker (BuildKit's lexer fails on the line).
        assert!(names("RUN cat <<EOF it's").is_empty());
    }

    #[test]
    fn offsets() {
        let line = "RUN cat 2<<EOF >x";
        let ms = find_markers(line).unwrap();
        assert_eq!(ms.len(), 1);
        assert_eq!(&line[ms[0].word_start..], "2<<EOF >x");
        assert_eq!(&line[ms[0].lt_offset..], "<<EOF >x");
    }

    #[test]
    fn whole_command_marker() {
        assert_eq!(parse_marker("<<EOF").unwrap(), Some(("EOF".into(), true, false)));
        assert_eq!(parse_marker("<<EOF bash").unwrap(), None);
        assert_eq!(parse_marker("<<A <<B").unwrap(), None);
        assert_eq!(parse_marker("cat <<EOF").unwrap(), None);
    }
}
