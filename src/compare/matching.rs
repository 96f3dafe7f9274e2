//! Which step of build A is which step of build B.
//!
//! Steps are paired within the same stage (by index): first a step at the same line with the
//! same instruction; then, for lines that moved (a line added or removed above), a step with
//! the same instruction text at another line; then a step at the same line with the same
//! keyword whose text changed (its key then says "instruction changed: A → B"). What is left is
//! in one build only. Pairing the same text before the same line keeps one inserted line from
//! shifting every later step onto the wrong partner.

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
    let passes: [&Pass; 3] = [
        &|x, y| (x.line == y.line && x.source == y.source).then_some(Matched::ByLine),
        &|x, y| (x.source == y.source).then_some(Matched::ByText { from: x.line, to: y.line }),
        &|x, y| (x.line == y.line && x.keyword == y.keyword).then_some(Matched::ByLine),
    ];
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
}
