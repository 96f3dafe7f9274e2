use super::*;

fn scan_ok(text: &str) -> Scanned {
    scan(Path::new("Dockerfile"), text).unwrap()
}

fn logical(text: &str) -> Vec<String> {
    scan_ok(text).instructions.into_iter().map(|i| i.logical).collect()
}

#[test]
fn continuations_comments_and_blank_lines() {
    let text = "FROM busybox\n\n# a comment\nRUN apk add \\\n    curl \\\n# inside\n\n    git\nCMD x\n";
    let s = scan_ok(text);
    assert_eq!(s.instructions.len(), 3);
    let run = &s.instructions[1];
    assert_eq!(run.logical, "RUN apk add     curl     git");
    assert_eq!((run.line, run.end_line), (4, 8));
    assert_eq!(&text[run.start..run.end], "RUN apk add \\\n    curl \\\n# inside\n\n    git");
    assert_eq!((s.instructions[2].line, s.instructions[2].end_line), (9, 9));
}

#[test]
fn continuation_rules() {
    assert_eq!(trim_continuation("a \\", '\\'), ("a ", false));
    assert_eq!(trim_continuation("a \\  \t", '\\'), ("a ", false));
    assert_eq!(trim_continuation("\\", '\\'), ("", false));
    assert_eq!(trim_continuation("a \\\\", '\\'), ("a \\\\", true));
    assert_eq!(trim_continuation("a `", '`'), ("a ", false));
    assert_eq!(trim_continuation("C:\\", '`'), ("C:\\", true));
    assert_eq!(trim_continuation("a", '\\'), ("a", true));
}

#[test]
fn escaped_escape_at_end_is_not_a_continuation() {
    assert_eq!(logical("FROM a\nRUN echo \\\\\nRUN b\n"), ["FROM a", "RUN echo \\\\", "RUN b"]);
}

#[test]
fn crlf_and_bom() {
    let text = "\u{feff}FROM a\r\nRUN x \\\r\n  y\r\n";
    let s = scan_ok(text);
    assert_eq!(s.instructions[0].logical, "FROM a");
    assert_eq!(s.instructions[0].start, 3);
    assert_eq!(s.instructions[1].logical, "RUN x   y");
    assert_eq!(&text[s.instructions[1].start..s.instructions[1].end], "RUN x \\\r\n  y");
}

#[test]
fn trailing_continuation_at_eof() {
    assert_eq!(logical("FROM a\nRUN x \\"), ["FROM a", "RUN x "]);
}

#[test]
fn leading_whitespace_is_ignored() {
    let s = scan_ok("   FROM a\n\t  # comment\n  RUN b");
    assert_eq!(s.instructions[0].start, 3);
    assert_eq!(s.instructions[1].logical, "RUN b");
}

#[test]
fn directives() {
    let s = scan_ok("# syntax=docker/dockerfile:1\n#escape=`\nFROM a\nRUN x `\n  y\n");
    assert_eq!(s.directives, Directives { escape: '`', syntax: Some("docker/dockerfile:1".into()) });
    assert_eq!(s.instructions[1].logical, "RUN x   y");
    // After a blank line, a comment, or an instruction, `# escape=` is an ordinary comment.
    assert_eq!(scan_ok("\n# escape=`\nFROM a\n").directives.escape, '\\');
    assert_eq!(scan_ok("# hello\n# escape=`\nFROM a\n").directives.escape, '\\');
    assert_eq!(scan_ok("FROM a\n# escape=`\n").directives.escape, '\\');
    assert_eq!(scan_ok("# ESCAPE = ` \nFROM a\n").directives.escape, '`');
    assert_eq!(scan_ok("# check=skip=all\n# escape=`\nFROM a\n").directives.escape, '`');
}

#[test]
fn directive_errors() {
    let e = scan(Path::new("df"), "# escape=x\nFROM a\n").unwrap_err();
    assert_eq!(e.to_string(), "df:1: invalid escape token 'x' does not match ` or \\");
    let e = scan(Path::new("df"), "# escape=\\\n# escape=`\nFROM a\n").unwrap_err();
    assert_eq!(e.to_string(), "df:2: only one escape parser directive can be used");
}

#[test]
fn heredoc_bodies() {
    let text = "FROM a\nRUN cat <<A >a; cat <<-B >b\nline a\nA\n\tline b\n\tB\nRUN next\n";
    let s = scan_ok(text);
    let run = &s.instructions[1];
    assert_eq!((run.line, run.end_line), (2, 6));
    assert_eq!(run.heredocs.len(), 2);
    assert_eq!(run.heredocs[0].1.content, "line a\n");
    assert_eq!(run.heredocs[1].1.content, "\tline b\n");
    assert!(run.heredocs[1].1.strip_tabs);
    assert_eq!(&text[run.start..run.end], "RUN cat <<A >a; cat <<-B >b\nline a\nA\n\tline b\n\tB");
    assert_eq!(s.instructions[2].logical, "RUN next");
}

#[test]
fn heredoc_after_continuation_and_in_onbuild() {
    let text = "FROM a\nONBUILD RUN \\\n  <<EOF\necho hi\nEOF\n";
    let s = scan_ok(text);
    assert_eq!(s.instructions[1].heredocs[0].1.content, "echo hi\n");
    assert_eq!(s.instructions[1].end_line, 5);
}

#[test]
fn heredoc_keeps_crlf_and_needs_exact_terminator() {
    let text = "FROM a\r\nCOPY <<EOF /x\r\n a\r\n EOF\r\nEOF \r\nEOF\r\n";
    let s = scan_ok(text);
    assert_eq!(s.instructions[1].heredocs[0].1.content, " a\r\n EOF\r\nEOF \r\n");
}

#[test]
fn no_heredocs_where_docker_has_none() {
    // JSON form and other instructions do not take heredocs: the next line is an instruction.
    assert_eq!(logical("FROM a\nRUN [\"cat\", \"<<EOF\"]\nRUN b\n").len(), 3);
    assert_eq!(logical("FROM a\nCMD cat <<EOF\nRUN b\n").len(), 3);
}

#[test]
fn unterminated_heredoc() {
    let e = scan(Path::new("df"), "FROM a\nRUN <<EOF\necho\n").unwrap_err();
    assert_eq!(e.to_string(), "df:2: RUN <<EOF: unterminated heredoc EOF");
}

#[test]
fn json_detection() {
    assert_eq!(json_array("[\"a\", \"b c\"]"), Some(Ok(vec!["a".into(), "b c".into()])));
    assert_eq!(json_array("[]"), Some(Ok(vec![])));
    assert_eq!(json_array("[1]"), Some(Err(())));
    assert_eq!(json_array("[ -f x ]"), None);
    assert_eq!(json_array("echo [x]"), None);
}

#[test]
fn comments_above_an_instruction_and_empty_continuation_lines() {
    let text = "# syntax=docker/dockerfile:1\n# check=skip=all\n# first\n\n  # second\nFROM a\n# gone\n#\n# kept\nRUN x \\\n# inside\n\n  y\nCMD z\n";
    let s = scan_ok(text);
    // Directives are not comments; blank lines keep what came before; a bare `#` forgets it;
    // BuildKit drops an indented comment's first character, not its `#`.
    assert_eq!(s.instructions[0].comments, ["first", "# second"]);
    assert_eq!(s.instructions[1].comments, ["kept"]);
    assert!(s.instructions[2].comments.is_empty());
    // Comment lines inside a continuation are not empty lines; blank ones are, reported at the
    // continuation's last line.
    assert_eq!(s.instructions[1].empty_continuation, Some(13));
    assert_eq!(s.instructions[0].empty_continuation, None);
}
