//! RUN output as lines, kept in a bounded buffer.
//!
//! Output arrives in arbitrary chunks (a line may be split across two `Output` events, and
//! stdout and stderr interleave), so the last line of each stream stays open until its
//! newline arrives. A carriage return rewrites the line, as a terminal would, so progress bars
//! show their final state instead of every frame. The buffer keeps at most [`MAX_LINES`] lines
//! (oldest dropped first) and cuts very long lines, so memory stays bounded however much a
//! build prints.

use std::collections::VecDeque;

use trowel_events::{OutputStream, StepId};

/// Lines kept; older lines are dropped (and counted).
pub const MAX_LINES: usize = 50_000;
/// Characters kept per line.
pub const MAX_LINE_CHARS: usize = 4_096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub step: StepId,
    pub stream: OutputStream,
    pub text: String,
    /// Printed by a debugger shell session rather than by the step itself.
    pub shell: bool,
    /// Not printed: where a step's next attempt starts (`── attempt 2 (edited) ──`), so the
    /// output of a failed attempt does not read as the same run's.
    pub marker: bool,
}

#[derive(Debug, Default, Clone)]
pub struct LogBuffer {
    lines: VecDeque<LogLine>,
    /// Lines dropped from the front to stay under [`MAX_LINES`].
    dropped: usize,
    /// Whether the last line is still open (no newline seen yet).
    open: bool,
}

impl LogBuffer {
    /// Appends a chunk of output.
    pub fn push(&mut self, step: StepId, stream: OutputStream, data: &str, shell: bool) {
        let mut rest = data;
        while !rest.is_empty() {
            let (segment, ended) = match rest.find('\n') {
                Some(i) => (&rest[..i], {
                    rest = &rest[i + 1..];
                    true
                }),
                None => (std::mem::take(&mut rest), false),
            };
            let continues = self.open
                && self.lines.back().is_some_and(|l| l.step == step && l.stream == stream && l.shell == shell);
            if !continues {
                self.lines.push_back(LogLine { step, stream, text: String::new(), shell, marker: false });
            }
            let line = self.lines.back_mut().expect("a line was just ensured");
            append_segment(&mut line.text, segment);
            self.open = !ended;
            if self.lines.len() > MAX_LINES {
                self.lines.pop_front();
                self.dropped += 1;
            }
        }
    }

    /// A step starts attempt `number` (a re-run or an edited run at a failure pause): when its
    /// earlier attempts printed anything, a marker line says where this one's output begins.
    pub fn mark_attempt(&mut self, step: StepId, number: u32, edited: bool) {
        if self.count_for(step) == 0 {
            return;
        }
        let how = if edited { " (edited)" } else { "" };
        self.lines.push_back(LogLine {
            step,
            stream: OutputStream::Stdout,
            text: format!("── attempt {number}{how} ──"),
            shell: false,
            marker: true,
        });
        self.open = false;
        if self.lines.len() > MAX_LINES {
            self.lines.pop_front();
            self.dropped += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&LogLine> {
        self.lines.get(i)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &LogLine> + ExactSizeIterator {
        self.lines.iter()
    }

    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Lines printed by one step (its own output, not shell sessions).
    pub fn count_for(&self, step: StepId) -> usize {
        self.lines.iter().filter(|l| l.step == step && !l.shell && !l.marker).count()
    }
}

/// Appends output text to a line: a `\r` starts the line over (what a terminal shows), and
/// the line is capped at [`MAX_LINE_CHARS`].
fn append_segment(line: &mut String, segment: &str) {
    let segment = segment.strip_suffix('\r').unwrap_or(segment);
    let tail = match segment.rfind('\r') {
        Some(i) => {
            line.clear();
            &segment[i + 1..]
        }
        None => segment,
    };
    let have = line.chars().count();
    if have < MAX_LINE_CHARS {
        line.extend(tail.chars().take(MAX_LINE_CHARS - have));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: StepId = StepId { stage: 0, step: 1 };
    const B: StepId = StepId { stage: 0, step: 2 };

    fn texts(b: &LogBuffer) -> Vec<&str> {
        b.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn chunks_join_into_lines() {
        let mut b = LogBuffer::default();
        b.push(A, OutputStream::Stdout, "hel", false);
        b.push(A, OutputStream::Stdout, "lo\nwor", false);
        b.push(A, OutputStream::Stdout, "ld\n", false);
        b.push(B, OutputStream::Stdout, "next\n", false);
        assert_eq!(texts(&b), ["hello", "world", "next"]);
        assert_eq!(b.count_for(A), 2);
    }

    #[test]
    fn streams_do_not_merge_and_carriage_returns_rewrite() {
        let mut b = LogBuffer::default();
        b.push(A, OutputStream::Stdout, "out", false);
        b.push(A, OutputStream::Stderr, "err\n", false);
        b.push(A, OutputStream::Stdout, "10%\r50%\r100%\r\n", false);
        assert_eq!(texts(&b), ["out", "err", "100%"]);
    }

    #[test]
    fn bounded() {
        let mut b = LogBuffer::default();
        let chunk = "x\n".repeat(MAX_LINES + 10);
        b.push(A, OutputStream::Stdout, &chunk, false);
        assert_eq!(b.len(), MAX_LINES);
        assert_eq!(b.dropped(), 10);
        let long = "y".repeat(MAX_LINE_CHARS * 2);
        b.push(B, OutputStream::Stdout, &long, false);
        b.push(B, OutputStream::Stdout, &long, false);
        assert_eq!(b.get(b.len() - 1).unwrap().text.len(), MAX_LINE_CHARS);
    }
}

#[cfg(test)]
mod attempt_tests {
    use super::*;

    /// A re-run's output is set apart from the failed attempt's, and the marker is no output.
    #[test]
    fn a_new_attempt_is_marked_after_output() {
        let id = StepId { stage: 0, step: 3 };
        let mut b = LogBuffer::default();
        b.mark_attempt(id, 2, false);
        assert!(b.is_empty(), "nothing printed before: nothing to set apart");
        b.push(id, OutputStream::Stdout, "about-to-fail\n", false);
        b.mark_attempt(id, 2, true);
        b.push(id, OutputStream::Stdout, "fixed\n", false);
        let texts: Vec<&str> = b.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["about-to-fail", "── attempt 2 (edited) ──", "fixed"]);
        assert_eq!(b.count_for(id), 2);
    }
}
