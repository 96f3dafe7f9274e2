//! The shell patterns of `${V%pattern}`, `${V#pattern}` and `${V/pattern/replacement}`: `*`
//! and `?` wildcards (which, as in BuildKit's translation to Go regexps, do not match a newline)
//! and `\` escapes. Matching keeps only reachable positions and scans forward once for the
//! leftmost match, so it stays linear in the value for ordinary patterns.

/// One element of a `${…%pattern}`-style pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Tok {
    Lit(char),
    /// `?`: one character.
    One,
    /// `*`: any run of characters.
    Star,
}

/// Compiles a shell pattern: `*`, `?`, and `\` escaping `*`, `?`, `\` (and `}`/`/`, which
/// only needed escaping to get past the `${…}` syntax). Bracket expressions are not supported,
/// as in BuildKit.
pub(crate) fn compile_pattern(pattern: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = pattern.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::One),
            '\\' => match it.peek().copied() {
                Some('}' | '/') => {}
                Some(e @ ('*' | '?' | '\\')) => {
                    it.next();
                    out.push(Tok::Lit(e));
                }
                Some(e) => return Err(format!("invalid pattern ({pattern}) in substitution: invalid escape '\\{e}'")),
                None => {
                    return Err(format!("invalid pattern ({pattern}) in substitution: trailing escape character"));
                }
            },
            c => out.push(Tok::Lit(c)),
        }
    }
    Ok(out)
}

/// All end positions `e` (ascending) such that `chars[start..e]` matches `tokens` entirely.
/// Wildcards do not match a newline (like `.` in Go's regexp, which BuildKit's translation relies
/// on). Only reachable positions are visited, so a pattern that fails early costs little.
fn match_ends(tokens: &[Tok], chars: &[char], start: usize) -> Vec<usize> {
    let n = chars.len();
    let mut reach = vec![start];
    for tok in tokens {
        let mut next: Vec<usize> = Vec::with_capacity(reach.len());
        match tok {
            Tok::Lit(c) => next.extend(reach.iter().filter(|&&p| p < n && chars[p] == *c).map(|p| p + 1)),
            Tok::One => next.extend(reach.iter().filter(|&&p| p < n && chars[p] != '\n').map(|p| p + 1)),
            Tok::Star => {
                // Each reachable p reaches every position up to the next newline. A p inside the
                // previous interval shares its end, so it adds nothing.
                for &p in &reach {
                    if next.last().is_some_and(|&last| p <= last) {
                        continue;
                    }
                    let mut q = p;
                    next.push(q);
                    while q < n && chars[q] != '\n' {
                        q += 1;
                        next.push(q);
                    }
                }
            }
        }
        if next.is_empty() {
            return next;
        }
        reach = next;
    }
    reach
}

/// Length of the shortest (or, if `greedy`, longest) prefix matching the pattern.
pub(crate) fn trim_prefix_len(tokens: &[Tok], chars: &[char], greedy: bool) -> Option<usize> {
    let ends = match_ends(tokens, chars, 0);
    if greedy { ends.last().copied() } else { ends.first().copied() }
}

/// Start of the shortest (or, if `greedy`, longest) suffix matching the pattern: a prefix match
/// on the reversed value with the reversed pattern.
pub(crate) fn trim_suffix_len(tokens: &[Tok], chars: &[char], greedy: bool) -> Option<usize> {
    let rev_tokens: Vec<Tok> = tokens.iter().rev().copied().collect();
    let rev_chars: Vec<char> = chars.iter().rev().copied().collect();
    trim_prefix_len(&rev_tokens, &rev_chars, greedy).map(|len| chars.len() - len)
}

/// The leftmost match starting at or after `from`, with its longest end. One forward pass keeps,
/// per pattern position, the smallest start of the attempts that got there, so the search is
/// linear in the value instead of trying every start separately.
fn leftmost(tokens: &[Tok], chars: &[char], from: usize) -> Option<(usize, usize)> {
    let n = chars.len();
    let m = tokens.len();
    let min = |a: Option<usize>, b: usize| Some(a.map_or(b, |a| a.min(b)));
    let mut cur: Vec<Option<usize>> = vec![None; m + 1];
    let mut found: Option<usize> = None;
    for p in from..=n {
        cur[0] = min(cur[0], p);
        // A star may match nothing: whoever is before it is also after it.
        for k in 0..m {
            if let (Tok::Star, Some(s)) = (tokens[k], cur[k]) {
                cur[k + 1] = min(cur[k + 1], s);
            }
        }
        if let Some(s) = cur[m] {
            found = min(found, s);
        }
        if let Some(f) = found
            && cur.iter().flatten().all(|&s| s >= f)
        {
            break;
        }
        let Some(&c) = chars.get(p) else { break };
        let mut next: Vec<Option<usize>> = vec![None; m + 1];
        for k in 0..m {
            let Some(s) = cur[k] else { continue };
            match tokens[k] {
                Tok::Lit(l) if l == c => next[k + 1] = min(next[k + 1], s),
                Tok::One if c != '\n' => next[k + 1] = min(next[k + 1], s),
                Tok::Star if c != '\n' => next[k] = min(next[k], s),
                _ => {}
            }
        }
        cur = next;
    }
    let start = found?;
    let end = *match_ends(tokens, chars, start).last()?;
    Some((start, end))
}

/// Replaces the first (or every) leftmost-longest match; an empty match right after the previous
/// match is skipped, as Go's `ReplaceAllString` does.
pub(crate) fn replace(tokens: &[Tok], chars: &[char], replacement: &str, all: bool) -> String {
    let n = chars.len();
    let mut out = String::new();
    let mut copied = 0;
    let mut last_end: Option<usize> = None;
    let mut i = 0;
    while i <= n {
        let Some((start, end)) = leftmost(tokens, chars, i) else { break };
        if start == end && last_end == Some(start) {
            i = start + 1;
            continue;
        }
        out.extend(&chars[copied..start]);
        out.push_str(replacement);
        copied = end;
        last_end = Some(end);
        if !all {
            break;
        }
        i = if end > start { end } else { start + 1 };
    }
    out.extend(&chars[copied..]);
    out
}
