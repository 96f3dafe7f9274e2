//! How [`super::explain`] quotes what it names: an edited instruction, before and after, cut to
//! what changed when it is long; and a step of this build that missed, named by its root cause
//! where a reason is about another step (a stage read from, a base stage). Apart from
//! `explain.rs` to keep each file readable.

use super::Missed;

/// Most characters of an instruction a reason quotes whole; longer ones are cut (`…`).
pub(super) const TEXT_MAX: usize = 60;

/// An edited instruction, what it was and what it is: `instruction changed: RUN make → RUN make
/// -j4`. Long ones are cut to the words that differ and the word before them, behind the
/// keyword: what the two share is what the reader has in front of them already.
pub fn edited(old: &str, new: &str) -> String {
    if old.chars().count() <= TEXT_MAX && new.chars().count() <= TEXT_MAX {
        return format!("instruction changed: {old} → {new}");
    }
    let (a, b): (Vec<char>, Vec<char>) = (old.chars().collect(), new.chars().collect());
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let room = a.len().min(b.len()) - prefix;
    let suffix = a.iter().rev().zip(b.iter().rev()).take(room).take_while(|(x, y)| x == y).count();
    // From the start of the word before the first difference (the one it is in, when it is
    // inside a word), to the end of the word the last difference is in.
    let mut start = word_start(&a, prefix);
    while start > 0 && a[start - 1].is_whitespace() {
        start -= 1;
    }
    start = word_start(&a, start);
    let keyword_end = word_end(&a, 0);
    if start <= keyword_end + 1 {
        start = 0;
    }
    let part = |s: &[char]| {
        let end = word_end(s, s.len() - suffix);
        let head =
            if start > 0 { format!("{} … ", a[..keyword_end].iter().collect::<String>()) } else { String::new() };
        let tail = if end < s.len() { " …" } else { "" };
        format!("{head}{}{tail}", clip(&s[start..end].iter().collect::<String>(), TEXT_MAX))
    };
    format!("instruction changed: {} → {}", part(&a), part(&b))
}

/// An edited step before the one explained, where it is and how it changed: `line 3:
/// instruction changed: WORKDIR /app → WORKDIR /srv` — the words of [`edited`], behind the line
/// as [`cause`] puts it, not a wording of its own.
pub(super) fn edited_at(line: usize, old: &str, new: &str) -> String {
    format!("line {line}: {}", edited(old, new))
}

/// `s`, cut to `max` characters with `…` at the end when it is longer.
pub(super) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    format!("{}…", s.chars().take(max.saturating_sub(1)).collect::<String>())
}

fn word_start(s: &[char], mut i: usize) -> usize {
    while i > 0 && !s[i - 1].is_whitespace() {
        i -= 1;
    }
    i
}

fn word_end(s: &[char], mut i: usize) -> usize {
    while i < s.len() && !s[i].is_whitespace() {
        i += 1;
    }
    i
}

/// Where and why a step of this build missed, for a reason that names it from elsewhere (a
/// stage read from, a base stage): `line 5: ARG V 1 → 2`. A miss the step only inherited from
/// one before it is named by that one (`line 3: …`, not `line 5: parent step missed (line 3:
/// …)`), and a cause that says its own line (`COPY big at line 3: …`) is said as it is, not
/// behind the line of the step that inherited it.
pub(super) fn cause(m: &Missed) -> String {
    if let [r] = m.reasons.as_slice() {
        if let Some(inner) = r.strip_prefix("parent step missed (line ").and_then(|x| x.strip_suffix(')')) {
            return match inner.split_once(": ") {
                Some((line, why)) => format!("line {line}: {why}"),
                None => format!("line {inner} missed"),
            };
        }
        if r.split_once(": ").is_some_and(|(head, _)| head.contains(" at line ")) {
            return r.clone();
        }
    }
    if m.reasons.is_empty() {
        format!("line {} missed", m.line)
    } else {
        format!("line {}: {}", m.line, m.reasons.join("; "))
    }
}
