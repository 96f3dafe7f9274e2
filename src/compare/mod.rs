//! `trowel replay A.jsonl --compare B.jsonl`: two recorded builds side by side, step by step —
//! which cache keys differ and why, and which files differ between the two builds' layers.
//!
//! This answers the question behind most cache-miss investigations ("yesterday's CI run hit
//! the cache, today's rebuilt everything") from the traces alone, offline: no registry, no
//! cache repository, no build context. Everything comes from the shared fold of each trace
//! ([`BuildState`]), so a trace of any version this trowel reads compares, and a trace of a
//! failed or killed build compares up to where it stopped.
//!
//! The parts: [`matching`] pairs the steps of the two builds (by stage and line, then by
//! instruction text when lines moved); [`keys`] says why two keys differ, in the words of the
//! engine's miss explainer (reused, not rewritten; a child stage's step is told why its base
//! stage differs as a build is told its base stage's miss); [`files`] compares the two layers' recorded
//! changes; [`text`] is the plain form for CI logs. The terminal view is `tui::compare`.

use trowel_events::state::{BuildState, Outcome, StepState, StepView};
use trowel_events::{BaseSource, Digest, StepId};

use std::collections::BTreeMap;
use std::path::Path;

use trowel_engine::cache::explain::Missed;

use crate::trace::{Header, TraceError};

pub mod files;
pub mod keys;
pub mod matching;
pub mod text;

pub use files::{FileDiff, FilesVerdict};
pub use keys::KeyVerdict;
pub use matching::Matched;

/// One recorded build, as the comparison names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// The trace file, as given.
    pub path: String,
    pub trace_version: u32,
    pub started: String,
    pub dockerfile: String,
    pub outcome: Outcome,
    /// How it ended, in a few words (`finished`, `failed at line 6`, `killed at line 4`).
    pub ended: String,
}

impl Side {
    fn of(path: &str, header: &Header, state: &BuildState) -> Side {
        let at = |line: Option<usize>| line.map(|l| format!(" at line {l}")).unwrap_or_default();
        let ended = match state.outcome() {
            Outcome::Finished => "finished".to_string(),
            Outcome::Failed => format!("failed{}", at(state.failure.as_ref().and_then(|f| f.line))),
            Outcome::Aborted => format!("aborted{}", at(state.failure.as_ref().and_then(|f| f.line))),
            Outcome::Unfinished => match state.steps().filter(|s| s.started_ms.is_some()).last() {
                Some(s) => format!("stopped without an ending during line {} (killed?)", s.line),
                None => "stopped before any step (killed?)".to_string(),
            },
        };
        Side {
            path: path.to_string(),
            trace_version: header.trowel_trace,
            started: header.started.clone(),
            dockerfile: state.dockerfile_path.clone(),
            outcome: state.outcome(),
            ended,
        }
    }
}

/// A step of one build, as a row shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRef {
    pub id: StepId,
    pub line: usize,
    pub keyword: String,
    /// The instruction's first line as the build ran it (an ARG with its value).
    pub text: String,
    /// Its first line as written.
    pub written: String,
    pub state: StepState,
    /// The layer it added (built or taken from the cache).
    pub layer: Option<Digest>,
    /// The cache lookup's result, in one word (`hit`, `miss`, `error`), when there was one.
    pub cache: Option<&'static str>,
    /// What the lookup itself said: a miss's explanation (against the cache repository's
    /// closest entry, which need not be the other build's), or the lookup's error.
    pub cache_said: Option<String>,
}

impl StepRef {
    fn of(s: &StepView) -> StepRef {
        StepRef {
            id: s.id,
            line: s.line,
            keyword: s.keyword.clone(),
            text: s.ran_line().to_string(),
            written: s.first_line().to_string(),
            state: s.state,
            layer: s.layer.as_ref().map(|l| l.digest.clone()),
            cache: s.cache.as_ref().map(|c| match c.result {
                trowel_events::CacheResult::Hit { .. } => "hit",
                trowel_events::CacheResult::Miss { .. } => "miss",
                trowel_events::CacheResult::Error { .. } => "error",
            }),
            cache_said: s.cache.as_ref().and_then(|c| match &c.result {
                trowel_events::CacheResult::Hit { .. } => None,
                trowel_events::CacheResult::Miss { explanation, .. } => Some(explanation.clone()),
                trowel_events::CacheResult::Error { message } => Some(message.clone()),
            }),
        }
    }

    /// The step ran to its end (built, cached or config-only), or was deferred (the build went
    /// on past it).
    fn done(&self) -> bool {
        matches!(self.state, StepState::Built | StepState::Cached | StepState::Metadata | StepState::Deferred)
    }
}

/// One step of either build, paired with its counterpart in the other when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub stage: usize,
    /// The stage's name as build B has it (else A's), or its number in the Dockerfile (`builder`,
    /// `1`); in a build for several platforms with its platform (`1 · linux/arm64`, `tools ·
    /// linux/amd64 (shared by all)`).
    pub stage_label: String,
    pub a: Option<StepRef>,
    pub b: Option<StepRef>,
    pub matched: Matched,
    pub key: KeyVerdict,
    pub files: FilesVerdict,
    /// How far each build got with the step, when that differs (`A: built; B: not reached`).
    pub progress: Option<String>,
}

impl Row {
    /// The two builds differ at this step: in the key, in the layer's files, in how far they
    /// got, or the step exists in one build only.
    pub fn differs(&self) -> bool {
        matches!(self.matched, Matched::OnlyA | Matched::OnlyB)
            || self.key.differs()
            || self.files.differs()
            || self.progress.is_some()
    }

    /// The step's line and text as the newer build (B) has it, else A's.
    pub fn step(&self) -> &StepRef {
        self.b.as_ref().or(self.a.as_ref()).expect("a row has at least one side")
    }

    /// The step's line as both builds ran it, or as written when they ran it otherwise (`ARG
    /// V=1` given 2 in one build): one side's value would read as both builds'; the reasons
    /// below the title say what differs.
    pub fn text(&self) -> &str {
        match (&self.a, &self.b) {
            (Some(a), Some(b)) if a.text != b.text => &b.written,
            _ => &self.step().text,
        }
    }

    /// `line 5`, or `line 5 → 7` when the step moved.
    pub fn lines(&self) -> String {
        match (&self.a, &self.b) {
            (Some(a), Some(b)) if a.line != b.line => format!("line {} → {}", a.line, b.line),
            _ => format!("line {}", self.step().line),
        }
    }
}

/// Two builds compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub a: Side,
    pub b: Side,
    pub rows: Vec<Row>,
    /// How the two builds ended, when that differs.
    pub ending: Option<String>,
}

impl Comparison {
    /// Compares build `a` (the earlier, "yesterday's") with build `b`.
    pub fn new(a: (&str, &Header, &BuildState), b: (&str, &Header, &BuildState)) -> Comparison {
        let (sa, sb) = (a.2, b.2);
        let mut rows = Vec::new();
        // By stage: its first step whose key differs, and why. A stage built FROM it is told
        // that as a build is told its base stage's miss. Stages are paired in order, a base
        // stage before the ones built on it.
        let mut first_differing: BTreeMap<usize, Missed> = BTreeMap::new();
        for pair in matching::pair(sa, sb) {
            let va = pair.a.and_then(|id| sa.step(id));
            let vb = pair.b.and_then(|id| sb.step(id));
            let stage = pair.stage;
            let stage_label = match sb.stage(stage).map(|s| (s, sb)).or_else(|| sa.stage(stage).map(|s| (s, sa))) {
                Some((s, state)) => {
                    // The Dockerfile's stage, not the plan's index (which counts every
                    // platform's stages), and in a build for several platforms which one.
                    let name = s.name.clone().unwrap_or_else(|| s.number().to_string());
                    match s.platform_label(&state.platforms) {
                        Some(p) => format!("{name} · {p}"),
                        None => name,
                    }
                }
                None => stage.to_string(),
            };
            let (ra, rb) = (va.map(StepRef::of), vb.map(StepRef::of));
            let progress = progress(ra.as_ref(), rb.as_ref(), pair.matched);
            let base = match sb.stage(stage).and_then(|s| s.source.as_ref()) {
                Some(BaseSource::Stage { index }) => first_differing.get(index),
                _ => None,
            };
            let key = keys::verdict(sa, va, sb, vb, base);
            if let (KeyVerdict::Differ { reasons }, Some(v)) = (&key, vb.or(va)) {
                first_differing.entry(stage).or_insert_with(|| Missed { line: v.line, reasons: reasons.clone() });
            }
            let files = files::verdict(va, vb);
            rows.push(Row { stage, stage_label, a: ra, b: rb, matched: pair.matched, key, files, progress });
        }
        let (side_a, side_b) = (Side::of(a.0, a.1, sa), Side::of(b.0, b.1, sb));
        let ending = (side_a.ended != side_b.ended || side_a.outcome != side_b.outcome)
            .then(|| format!("A {}; B {}", side_a.ended, side_b.ended));
        Comparison { a: side_a, b: side_b, rows, ending }
    }

    /// The builds are equivalent: every step is in both, with equal keys (where both recorded
    /// one) and layers whose files do not differ, and both ended the same way. Layers that
    /// differ only in what the traces do not record (times, extended attributes) are
    /// equivalent, and the summary says how many do.
    pub fn equivalent(&self) -> bool {
        self.ending.is_none() && !self.rows.iter().any(Row::differs)
    }

    /// `trowel replay A --compare B --summary`'s exit code: 0 equivalent, 1 different.
    pub fn exit_code(&self) -> i32 {
        if self.equivalent() { 0 } else { 1 }
    }

    /// Reads two trace files and compares them.
    pub fn load(a: &Path, b: &Path) -> Result<Comparison, TraceError> {
        let (ha, ea) = crate::trace::read(a)?;
        let (hb, eb) = crate::trace::read(b)?;
        let (sa, sb) = (BuildState::from_events(&ea), BuildState::from_events(&eb));
        Ok(Comparison::new((&a.display().to_string(), &ha, &sa), (&b.display().to_string(), &hb, &sb)))
    }

    /// The rows that differ.
    pub fn differing(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.differs())
    }
}

fn reached(s: Option<&StepRef>) -> String {
    match s {
        None => "no such step".to_string(),
        Some(s) => match s.state {
            StepState::Pending => "not reached".to_string(),
            StepState::Running => "running when the trace ends".to_string(),
            other => other.label().to_string(),
        },
    }
}

/// How far each build got, when that differs (one failed or stopped where the other went on).
/// Built against cached is no difference of its own: the key says why.
fn progress(a: Option<&StepRef>, b: Option<&StepRef>, matched: Matched) -> Option<String> {
    if matches!(matched, Matched::OnlyA | Matched::OnlyB) {
        return None;
    }
    let (da, db) = (a.is_some_and(StepRef::done), b.is_some_and(StepRef::done));
    let skipped = |s: Option<&StepRef>| s.is_some_and(|s| s.state == StepState::Skipped);
    if (da && db) || (skipped(a) && skipped(b)) {
        return None;
    }
    let (wa, wb) = (reached(a), reached(b));
    (wa != wb).then(|| format!("A: {wa}; B: {wb}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(state: StepState) -> StepRef {
        StepRef {
            id: StepId { stage: 0, step: 1 },
            line: 2,
            keyword: "RUN".into(),
            text: "RUN make".into(),
            written: "RUN make".into(),
            state,
            layer: None,
            cache: None,
            cache_said: None,
        }
    }

    #[test]
    fn progress_names_where_a_build_stopped() {
        let built = step(StepState::Built);
        let cached = step(StepState::Cached);
        assert_eq!(progress(Some(&built), Some(&cached), Matched::ByLine), None);
        assert_eq!(
            progress(Some(&built), Some(&step(StepState::Pending)), Matched::ByLine).as_deref(),
            Some("A: built; B: not reached")
        );
        // Both failed here: the same place, no difference (the key and files may still say one).
        assert_eq!(progress(Some(&step(StepState::Failed)), Some(&step(StepState::Failed)), Matched::ByLine), None);
        assert_eq!(
            progress(Some(&step(StepState::Failed)), Some(&built), Matched::ByLine).as_deref(),
            Some("A: failed; B: built")
        );
        assert_eq!(progress(Some(&step(StepState::Skipped)), Some(&step(StepState::Skipped)), Matched::ByLine), None);
    }
}
