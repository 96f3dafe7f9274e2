//! Small text formatters shared by the panes: sizes, durations, modes, and width-aware
//! truncation (the TUI must fit an 80-column terminal, so every cell counts).

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use trowel_events::FileType;

/// `512 B`, `3.4 kB`, `12.0 MB`: the one byte formatter, shared with the log and the summary.
pub use crate::units::bytes;

/// At most five columns: `278B`, `1.2k`, `300k`, `1.1M`, `12G` (for tight table columns).
pub fn bytes_compact(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "k", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else if v < 9.95 {
        // One decimal only while it stays one digit: 9.96k is `10k`, not `10.0k`.
        format!("{v:.1}{}", UNITS[u])
    } else {
        // Rounded, as the decimals above are (12.8k is `13k`); what rounds to 1000 is the next
        // unit's `1.0`, as `bytes` writes `1.0 MB` for 999.96 kB.
        let r = v.round();
        if r >= 1000.0 && u < UNITS.len() - 1 { format!("1.0{}", UNITS[u + 1]) } else { format!("{r:.0}{}", UNITS[u]) }
    }
}

/// The first 12 hex digits of a digest (what `docker images` shows).
pub fn digest_short(d: &trowel_events::Digest) -> String {
    d.hex().chars().take(12).collect()
}

/// `0.4s`, `12.3s`, `2m05s`.
pub fn duration_ms(ms: u64) -> String {
    // 59.95 s and more round to 60.0s at one decimal: that is 1m00s.
    if ms < 59_950 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        let secs = (ms + 500) / 1000;
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// `rwxr-xr-x` plus setuid/setgid/sticky letters, as `ls -l` shows them.
pub fn mode(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    let bits =
        [(0o400, 'r'), (0o200, 'w'), (0o100, 'x'), (0o40, 'r'), (0o20, 'w'), (0o10, 'x'), (0o4, 'r'), (0o2, 'w')];
    for (bit, c) in bits {
        s.push(if mode & bit != 0 { c } else { '-' });
    }
    s.push(if mode & 0o1 != 0 { 'x' } else { '-' });
    let mut chars: Vec<char> = s.chars().collect();
    let special = [(0o4000, 2, 's', 'S'), (0o2000, 5, 's', 'S'), (0o1000, 8, 't', 'T')];
    for (bit, i, exec, noexec) in special {
        if mode & bit != 0 {
            chars[i] = if chars[i] == 'x' { exec } else { noexec };
        }
    }
    chars.into_iter().collect()
}

/// `0755`-style octal permission bits.
pub fn octal(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// A file time (seconds since the epoch) in UTC: `2026-01-31 12:00:05`.
pub fn timestamp(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| secs.to_string())
}

/// One word per file type.
pub fn file_type(t: FileType) -> &'static str {
    match t {
        FileType::File => "file",
        FileType::Dir => "directory",
        FileType::Symlink => "symlink",
        FileType::Hardlink => "hard link",
        FileType::CharDevice => "char device",
        FileType::BlockDevice => "block device",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
    }
}

/// Cuts `s` to at most `width` terminal columns, ending with `…` when something was cut.
pub fn truncate(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

/// Cuts the *start* of `s` (for paths, whose end matters most), beginning with `…`.
pub fn truncate_start(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut tail: Vec<char> = Vec::new();
    let mut w = 0;
    for c in s.chars().rev() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > width {
            break;
        }
        tail.push(c);
        w += cw;
    }
    tail.reverse();
    let mut out = String::from("…");
    out.extend(tail);
    out
}

/// Breaks `s` into lines of at most `width` columns, between words where it can (a word
/// longer than a line is cut).
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let sep = usize::from(!cur.is_empty());
        if cur.width() + sep + word.width() <= width {
            if sep == 1 {
                cur.push(' ');
            }
            cur.push_str(word);
            continue;
        }
        if !cur.is_empty() {
            lines.push(std::mem::take(&mut cur));
        }
        let mut w = 0;
        for c in word.chars() {
            let cw = c.width().unwrap_or(0);
            if w + cw > width {
                lines.push(std::mem::take(&mut cur));
                w = 0;
            }
            cur.push(c);
            w += cw;
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Pads (or cuts) to exactly `width` columns.
pub fn fit(s: &str, width: usize) -> String {
    let t = truncate(s, width);
    let pad = width.saturating_sub(t.width());
    format!("{t}{}", " ".repeat(pad))
}

/// Right-aligns in `width` columns (cutting if needed).
pub fn fit_right(s: &str, width: usize) -> String {
    let t = truncate(s, width);
    let pad = width.saturating_sub(t.width());
    format!("{}{t}", " ".repeat(pad))
}

/// The first line of an instruction, with runs of whitespace collapsed (heredocs and
/// continuations span lines; a list row shows one).
pub fn one_line(s: &str) -> String {
    let first = s.lines().next().unwrap_or("");
    let mut out = String::with_capacity(first.len());
    let mut space = false;
    for c in first.trim().chars() {
        if c.is_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    if s.trim_end().contains('\n') && !out.ends_with('\\') {
        out.push_str(" …");
    }
    out
}

/// A `RUN --mount` on one line: its type and target, where it comes from, its id and options
/// (`cache /root/.cache/pip · id=pip · sharing=locked rw`).
pub fn mount(m: &trowel_events::MountInfo) -> String {
    let mut parts = vec![match &m.target {
        Some(t) => format!("{} {t}", m.kind),
        None => format!("{} (environment only)", m.kind),
    }];
    match (&m.from, &m.source) {
        (Some(f), Some(s)) if s != "/" => parts.push(format!("from {f}:{s}")),
        (Some(f), _) => parts.push(format!("from {f}")),
        _ => {}
    }
    if let Some(id) = &m.id {
        parts.push(format!("id={id}"));
    }
    if !m.options.is_empty() {
        parts.push(m.options.join(" "));
    }
    sanitize(&parts.join(" · "))
}

/// Replaces control characters (other than tab, which becomes spaces) so that build output
/// and file contents can never move the cursor or change the terminal's state.
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' => out.push_str("    "),
            c if c.is_control() => out.push(char::from_u32(0x2400 + (c as u32).min(0x1f)).unwrap_or('?')),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(duration_ms(420), "0.4s");
        assert_eq!(bytes_compact(278), "278B");
        assert_eq!(bytes_compact(1_234), "1.2k");
        assert_eq!(bytes_compact(300_400), "300k");
        assert_eq!(bytes_compact(999_999), "1.0M");
        assert_eq!(bytes_compact(999_400), "999k");
        assert_eq!(bytes_compact(12_800), "13k");
        assert_eq!(bytes_compact(12_400), "12k");
        assert_eq!(bytes_compact(9_960), "10k");
        assert_eq!(bytes_compact(1_100_000), "1.1M");
        assert_eq!(duration_ms(125_000), "2m05s");
        assert_eq!(duration_ms(59_949), "59.9s");
        assert_eq!(duration_ms(59_960), "1m00s");
    }

    #[test]
    fn wrapping_between_words() {
        assert_eq!(
            wrap("Usage of undefined variable '$VERSION'", 16),
            ["Usage of", "undefined", "variable", "'$VERSION'"]
        );
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("a b", 10), ["a b"]);
        assert_eq!(wrap("", 3), [""]);
    }

    #[test]
    fn modes() {
        assert_eq!(mode(0o755), "rwxr-xr-x");
        assert_eq!(mode(0o600), "rw-------");
        assert_eq!(mode(0o4755), "rwsr-xr-x");
        assert_eq!(mode(0o1777), "rwxrwxrwt");
        assert_eq!(mode(0o2644), "rw-r-Sr--");
        assert_eq!(octal(0o100644), "0644");
    }

    #[test]
    fn truncation_respects_width() {
        assert_eq!(truncate("hello", 5), "hello");
        assert_eq!(truncate("hello world", 6), "hello…");
        assert_eq!(truncate_start("/usr/local/bin/app", 8), "…bin/app");
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(fit_right("ab", 4), "  ab");
        assert_eq!(truncate("日本語テキスト", 5), "日本…");
    }

    #[test]
    fn instructions_and_control_characters() {
        assert_eq!(one_line("RUN <<EOF\nset -e\nEOF"), "RUN <<EOF …");
        assert_eq!(one_line("RUN a   b"), "RUN a b");
        assert_eq!(sanitize("a\x1b[2Jb\tc"), "a␛[2Jb    c");
    }
}
