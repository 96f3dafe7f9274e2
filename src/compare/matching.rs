//! Which step of build A is which step of build B.
//!
//! Steps are paired within the same stage (by index): first the longest run of steps both
//! builds have in the same order, by instruction text, as a diff pairs lines (at the same line,
//! or at another when lines were added or removed above); then, for lines that moved past
//! others, a step with the same instruction text elsewhere; then a step at the same line with
//! the same keyword whose text changed (its key then says "instruction changed: A → B"). What
//! is left is in one build only. Pairing by text before by line keeps one inserted line from
//! shifting every later step onto the wrong partner; pairing in order first keeps a copy of a
//! line inserted where the stage already had that line from being taken for the other copy
//! moved (A `u a u`, B `u u a u`: B's second `u` is the new one, and B's last is A's last).

use trowel_events::StepId;
use trowel_events::state::{BuildState, StepView};

/// How a row's two steps were paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// Same stage and line.
    ByLine,
    /// Same stage and instruction text; the line moved.
    ByText { from: usize, to: usize },
    /// In build A only.
    OnlyA,
    /// In build B only.
    OnlyB,
}

impl Matched {
    /// How the row was paired, in words (none for the ordinary case).
    pub fn words(self) -> Option<String> {
        match self {
            Matched::ByLine => None,
            Matched::ByText { from, to } => {
                Some(format!("matched by instruction text: line {from} in A is line {to} in B"))
            }
            Matched::OnlyA => Some("only in A (no step of B's stage matches it)".to_string()),
            Matched::OnlyB => Some("only in B (no step of A's stage matches it)".to_string()),
        }
    }
}

/// Two paired steps (or one unpaired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub stage: usize,
    pub a: Option<StepId>,
    pub b: Option<StepId>,
    pub matched: Matched,
}

fn stage_steps(s: &BuildState, stage: usize) -> Vec<&StepView> {
    s.stage(stage).map(|st| st.steps.iter().filter_map(|id| s.step(*id)).collect()).unwrap_or_default()
}

/// Pairs every step of both builds, stage by stage, in B's order (A-only steps where A had
/// them).
pub fn pair(a: &BuildState, b: &BuildState) -> Vec<Pair> {
    let mut stages: Vec<usize> = a.stages.iter().chain(&b.stages).map(|s| s.index).collect();
    stages.sort_unstable();
    stages.dedup();
    let mut out = Vec::new();
    for stage in stages {
        let (sa, sb) = (stage_steps(a, stage), stage_steps(b, stage));
        out.extend(pair_stage(stage, &sa, &sb));
    }
    out
}

/// One way of pairing a step of A with a step of B.
type Pass = dyn Fn(&StepView, &StepView) -> Option<Matched>;

fn pair_stage(stage: usize, sa: &[&StepView], sb: &[&StepView]) -> Vec<Pair> {
    let mut of_b: Vec<Option<(usize, Matched)>> = vec![None; sb.len()];
    let mut used = vec![false; sa.len()];
    for (i, j) in in_order(sa, sb) {
        let (x, y) = (sa[i], sb[j]);
        used[i] = true;
        of_b[j] =
            Some((i, if x.line == y.line { Matched::ByLine } else { Matched::ByText { from: x.line, to: y.line } }));
    }
    let passes: [&Pass; 2] =
        [&|x, y| (x.source == y.source).then_some(Matched::ByText { from: x.line, to: y.line }), &|x, y| {
            (x.line == y.line && x.keyword == y.keyword).then_some(Matched::ByLine)
        }];
    for pass in passes {
        for (j, y) in sb.iter().enumerate() {
            if of_b[j].is_some() {
                continue;
            }
            if let Some((i, m)) =
                sa.iter().enumerate().filter(|(i, _)| !used[*i]).find_map(|(i, x)| pass(x, y).map(|m| (i, m)))
            {
                used[i] = true;
                of_b[j] = Some((i, m));
            }
        }
    }
    let mut out = Vec::new();
    let mut emitted = vec![false; sa.len()];
    let only_a = |i: usize| Pair { stage, a: Some(sa[i].id), b: None, matched: Matched::OnlyA };
    for (j, y) in sb.iter().enumerate() {
        match of_b[j] {
            Some((i, m)) => {
                // A's unpaired steps before this one come first, where A had them.
                for k in 0..i {
                    if !used[k] && !emitted[k] {
                        emitted[k] = true;
                        out.push(only_a(k));
                    }
                }
                out.push(Pair { stage, a: Some(sa[i].id), b: Some(y.id), matched: m });
            }
            None => out.push(Pair { stage, a: None, b: Some(y.id), matched: Matched::OnlyB }),
        }
    }
    for k in 0..sa.len() {
        if !used[k] && !emitted[k] {
            out.push(only_a(k));
        }
    }
    out
}

/// The longest sequence of steps, by instruction text, that both stages have in the same
/// order (`(index in sa, index in sb)` pairs). Read from the front, a step is paired with the
/// other stage's step at the front whenever their texts are the same (always part of a longest
/// sequence), so of two copies of a line the earlier one stays paired with the earlier.
fn in_order(sa: &[&StepView], sb: &[&StepView]) -> Vec<(usize, usize)> {
    let (n, m) = (sa.len(), sb.len());
    // longest[i][j]: the longest common sequence of sa[i..] and sb[j..].
    let mut longest = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            longest[i][j] = if sa[i].source == sb[j].source {
                longest[i + 1][j + 1] + 1
            } else {
                longest[i + 1][j].max(longest[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n && j < m {
        if sa[i].source == sb[j].source {
            out.push((i, j));
            (i, j) = (i + 1, j + 1);
        } else if longest[i + 1][j] >= longest[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use trowel_events::StepPlan;

    fn state(lines: &[(usize, &str)]) -> BuildState {
        let steps: Vec<StepPlan> = lines
            .iter()
            .enumerate()
            .map(|(i, (line, source))| StepPlan {
                id: StepId { stage: 0, step: i },
                line: *line,
                end_line: *line,
                keyword: source.split(' ').next().unwrap().to_string(),
                source: source.to_string(),
                onbuild: false,
            })
            .collect();
        let e = trowel_events::Envelope {
            seq: 0,
            ms: 0,
            event: trowel_events::Event::BuildStarted {
                version: "0".into(),
                dockerfile_path: "Dockerfile".into(),
                dockerfile_text: String::new(),
                context: ".".into(),
                context_origin: None,
                target: None,
                destinations: vec![],
                platform: "linux/amd64".into(),
                platforms: Vec::new(),
                isolation: "chroot".into(),
                single_snapshot: false,
                layer_cache: None,
                stages: vec![trowel_events::StagePlan {
                    index: 0,
                    name: None,
                    base: "busybox".into(),
                    needed: true,
                    dockerfile_stage: None,
                    platform: None,
                    targets: Vec::new(),
                    steps,
                }],
            },
        };
        BuildState::from_events([&e])
    }

    fn shape(p: &[Pair]) -> Vec<(Option<usize>, Option<usize>, Matched)> {
        p.iter().map(|p| (p.a.map(|i| i.step), p.b.map(|i| i.step), p.matched)).collect()
    }

    #[test]
    fn same_lines_pair_by_line_and_a_changed_instruction_stays_paired() {
        let a = state(&[(1, "FROM busybox"), (2, "COPY a /a"), (3, "RUN make")]);
        let b = state(&[(1, "FROM busybox"), (2, "COPY a /a"), (3, "RUN make all")]);
        assert_eq!(
            shape(&pair(&a, &b)),
            vec![
                (Some(0), Some(0), Matched::ByLine),
                (Some(1), Some(1), Matched::ByLine),
                (Some(2), Some(2), Matched::ByLine)
            ]
        );
    }

    /// A line inserted above: the steps after it pair by their text, not with whatever now
    /// sits at their old line.
    #[test]
    fn moved_lines_pair_by_text() {
        let a = state(&[(1, "FROM busybox"), (2, "COPY a /a"), (3, "RUN make")]);
        let b = state(&[(1, "FROM busybox"), (2, "ENV X=1"), (3, "COPY a /a"), (4, "RUN make")]);
        assert_eq!(
            shape(&pair(&a, &b)),
            vec![
                (Some(0), Some(0), Matched::ByLine),
                (None, Some(1), Matched::OnlyB),
                (Some(1), Some(2), Matched::ByText { from: 2, to: 3 }),
                (Some(2), Some(3), Matched::ByText { from: 3, to: 4 })
            ]
        );
        // And the other way round: A's extra step is listed where A had it.
        assert_eq!(
            shape(&pair(&b, &a)),
            vec![
                (Some(0), Some(0), Matched::ByLine),
                (Some(1), None, Matched::OnlyA),
                (Some(2), Some(1), Matched::ByText { from: 3, to: 2 }),
                (Some(3), Some(2), Matched::ByText { from: 4, to: 3 })
            ]
        );
        assert_eq!(
            Matched::ByText { from: 2, to: 3 }.words().unwrap(),
            "matched by instruction text: line 2 in A is line 3 in B"
        );
    }

    /// A copy of a line inserted where the stage already has that line: the new copy is B's
    /// alone, the old copies keep their partners (before, B's new `RUN echo u` at line 3 was
    /// paired with A's copy at line 4, as if it had moved up, and B's copy at line 5 was said
    /// to be B's alone).
    #[test]
    fn an_inserted_copy_of_a_duplicate_line_is_the_new_one() {
        let a = state(&[(1, "FROM busybox"), (2, "RUN echo u"), (3, "RUN echo a"), (4, "RUN echo u")]);
        let b =
            state(&[(1, "FROM busybox"), (2, "RUN echo u"), (3, "RUN echo u"), (4, "RUN echo a"), (5, "RUN echo u")]);
        assert_eq!(
            shape(&pair(&a, &b)),
            vec![
                (Some(0), Some(0), Matched::ByLine),
                (Some(1), Some(1), Matched::ByLine),
                (None, Some(2), Matched::OnlyB),
                (Some(2), Some(3), Matched::ByText { from: 3, to: 4 }),
                (Some(3), Some(4), Matched::ByText { from: 4, to: 5 })
            ]
        );
    }

    /// Two lines swapped: one stays in order, the other is paired by its text out of order.
    #[test]
    fn swapped_lines_pair_by_text() {
        let a = state(&[(1, "FROM busybox"), (2, "RUN echo a"), (3, "RUN echo b")]);
        let b = state(&[(1, "FROM busybox"), (2, "RUN echo b"), (3, "RUN echo a")]);
        let paired = shape(&pair(&a, &b));
        assert_eq!(paired.len(), 3, "{paired:?}");
        assert!(paired.contains(&(Some(1), Some(2), Matched::ByText { from: 2, to: 3 })), "{paired:?}");
        assert!(paired.contains(&(Some(2), Some(1), Matched::ByText { from: 3, to: 2 })), "{paired:?}");
    }
}
