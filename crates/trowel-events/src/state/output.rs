//! The tail of what a step printed: enough for a failure report, bounded however much the step
//! printed.
//!
//! Output arrives in arbitrary chunks (a line may be split across two `output` events, and
//! stdout and stderr interleave as they came). The tail keeps the raw text of the last
//! [`TAIL_LINES`] lines (at most [`TAIL_BYTES`] bytes) so that splitting it into lines gives
//! exactly what splitting the whole output would have given for those lines. Viewers that show
//! the whole output (the debugger's log pane) keep their own buffer.

use std::collections::VecDeque;

/// Newline-terminated lines kept (plus the line still being written).
pub const TAIL_LINES: usize = 200;
/// Bytes kept: a step printing one endless line (a progress bar with `\r`) stays bounded.
pub const TAIL_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputTail {
    text: String,
    /// Byte offsets in `text` just after each `\n`, oldest first.
    ends: VecDeque<usize>,
    /// Bytes dropped from the front.
    dropped: u64,
}

impl OutputTail {
    pub fn push(&mut self, data: &str) {
        let base = self.text.len();
        self.text.push_str(data);
        self.ends.extend(data.match_indices('\n').map(|(i, _)| base + i + 1));
        let mut cut = 0;
        while self.ends.len() > TAIL_LINES {
            cut = self.ends.pop_front().expect("more than TAIL_LINES line ends");
        }
        if self.text.len() - cut > TAIL_BYTES {
            // Start at a line if one starts inside the budget, else mid-line (on a character).
            let budget_start = self.text.len() - TAIL_BYTES;
            while self.ends.front().is_some_and(|&e| e < budget_start) {
                self.ends.pop_front();
            }
            cut = match self.ends.front() {
                Some(&e) if e < self.text.len() => {
                    self.ends.pop_front();
                    e
                }
                _ => (budget_start..=self.text.len()).find(|&i| self.text.is_char_boundary(i)).unwrap_or(0),
            };
        }
        if cut > 0 {
            self.text.drain(..cut);
            self.dropped += cut as u64;
            for e in self.ends.iter_mut() {
                *e -= cut;
            }
        }
    }

    /// The kept text, as it was printed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The kept lines (`str::lines` of the kept text).
    pub fn lines(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.text.lines()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.dropped == 0
    }

    /// Whether earlier output was dropped to stay bounded.
    pub fn is_truncated(&self) -> bool {
        self.dropped > 0
    }

    /// Every byte the step printed, kept or not.
    pub fn total_bytes(&self) -> u64 {
        self.dropped + self.text.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_into_the_same_lines_as_the_whole() {
        let mut t = OutputTail::default();
        for chunk in ["hel", "lo\nwor", "ld\r\n", "last"] {
            t.push(chunk);
        }
        assert_eq!(t.lines().collect::<Vec<_>>(), ["hello", "world", "last"]);
        assert!(!t.is_truncated());
        assert_eq!(t.total_bytes(), 17);
    }

    #[test]
    fn keeps_the_last_lines() {
        let mut t = OutputTail::default();
        for i in 0..TAIL_LINES + 50 {
            t.push(&format!("line {i}\n"));
        }
        t.push("open");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), TAIL_LINES + 1);
        assert_eq!(lines[0], "line 50");
        assert_eq!(lines.last(), Some(&"open"));
        assert!(t.is_truncated());
    }

    #[test]
    fn one_endless_line_stays_within_the_byte_budget() {
        let mut t = OutputTail::default();
        for _ in 0..1000 {
            t.push(&"é".repeat(1000));
        }
        assert!(t.text().len() <= TAIL_BYTES);
        assert!(t.text().len() > TAIL_BYTES - 4);
        assert_eq!(t.total_bytes(), 2_000_000);
        // Long lines: what is kept starts at a line.
        let mut t = OutputTail::default();
        for i in 0..100 {
            t.push(&format!("{i} {}\n", "x".repeat(10_000)));
        }
        assert!(t.text().len() <= TAIL_BYTES);
        assert!(t.lines().next().unwrap().split(' ').next().unwrap().parse::<usize>().is_ok());
        assert!(t.lines().last().unwrap().starts_with("99 "));
    }
}
