//! Text diffs for the File pane: changed hunks with a few lines of context, and word-level
//! emphasis inside changed lines (similar's inline diff).
//!
//! Only text is diffed: content with a NUL byte counts as binary, and diffing stops after a
//! deadline so a pathological file cannot freeze the UI.

use std::time::{Duration, Instant};

use similar::{ChangeTag, TextDiff};

/// Lines of context around each change.
pub const CONTEXT: usize = 3;

/// How long one diff may take before it falls back to coarser (still correct) output.
const DEADLINE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    /// Unchanged, with its line numbers before and after.
    Context {
        old: usize,
        new: usize,
        text: String,
    },
    /// Removed; segments are `(emphasized, text)`.
    Removed {
        old: usize,
        segments: Vec<(bool, String)>,
    },
    Added {
        new: usize,
        segments: Vec<(bool, String)>,
    },
    /// Unchanged lines left out between hunks.
    Skipped {
        lines: usize,
    },
}

/// Whether content looks like text (no NUL byte).
pub fn is_text(s: &str) -> bool {
    !s.contains('\0')
}

/// The diff of two versions of a file (`None`: it did not exist on that side).
pub fn diff(before: Option<&str>, after: Option<&str>) -> Vec<DiffLine> {
    let old = before.unwrap_or("");
    let new = after.unwrap_or("");
    let diff = TextDiff::configure()
        .algorithm(similar::Algorithm::Patience)
        .deadline(Instant::now() + DEADLINE)
        .diff_lines(old, new);
    let mut out = Vec::new();
    let groups = diff.grouped_ops(CONTEXT);
    let total_old = old.lines().count();
    let mut shown_to = 0usize; // old lines accounted for so far
    for group in &groups {
        let Some(first) = group.first() else { continue };
        let start = first.old_range().start;
        if start > shown_to {
            out.push(DiffLine::Skipped { lines: start - shown_to });
        }
        for op in group {
            for change in diff.iter_inline_changes(op) {
                let segments: Vec<(bool, String)> = change
                    .iter_strings_lossy()
                    .map(|(emph, s)| (emph, s.trim_end_matches(['\n', '\r']).to_string()))
                    .filter(|(_, s)| !s.is_empty())
                    .collect();
                match change.tag() {
                    ChangeTag::Equal => out.push(DiffLine::Context {
                        old: change.old_index().map_or(0, |i| i + 1),
                        new: change.new_index().map_or(0, |i| i + 1),
                        text: segments.into_iter().map(|(_, s)| s).collect(),
                    }),
                    ChangeTag::Delete => {
                        out.push(DiffLine::Removed { old: change.old_index().map_or(0, |i| i + 1), segments })
                    }
                    ChangeTag::Insert => {
                        out.push(DiffLine::Added { new: change.new_index().map_or(0, |i| i + 1), segments })
                    }
                }
            }
        }
        if let Some(last) = group.last() {
            shown_to = last.old_range().end;
        }
    }
    if !groups.is_empty() && shown_to < total_old {
        out.push(DiffLine::Skipped { lines: total_old - shown_to });
    }
    out
}

/// `(added, removed)` line counts.
pub fn stats(lines: &[DiffLine]) -> (usize, usize) {
    lines.iter().fold((0, 0), |(a, r), l| match l {
        DiffLine::Added { .. } => (a + 1, r),
        DiffLine::Removed { .. } => (a, r + 1),
        _ => (a, r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_emphasis_inside_changed_lines() {
        let before = "name = tour\ndebug = true\nworkers = 2\n";
        let after = "name = tour\ndebug = false\nworkers = 2\n";
        let d = diff(Some(before), Some(after));
        assert_eq!(stats(&d), (1, 1));
        let removed = d.iter().find_map(|l| match l {
            DiffLine::Removed { segments, .. } => Some(segments.clone()),
            _ => None,
        });
        let removed = removed.unwrap();
        assert!(removed.contains(&(true, "true".to_string())), "{removed:?}");
        assert!(removed.contains(&(false, "debug = ".to_string())), "{removed:?}");
        assert!(matches!(d[0], DiffLine::Context { old: 1, new: 1, .. }));
    }

    #[test]
    fn new_file_is_all_added_and_far_context_is_skipped() {
        let d = diff(None, Some("a\nb\n"));
        assert_eq!(stats(&d), (2, 0));
        let before: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let after = before.replace("line 10\n", "line ten\n");
        let d = diff(Some(&before), Some(&after));
        assert_eq!(d.first(), Some(&DiffLine::Skipped { lines: 6 }));
        assert_eq!(d.last(), Some(&DiffLine::Skipped { lines: 7 }));
        assert!(!is_text("a\0b") && is_text("plain"));
    }
}
