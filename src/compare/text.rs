//! `trowel replay A --compare B --summary`: the comparison as plain text, for CI logs.
//!
//! One line per step with `same` or `DIFF` in front; under a differing step, why its key
//! differs, which files of its layer differ, and how far each build got. The last line says
//! whether the builds are equivalent (the exit code says it too: 0 equivalent, 1 different).

use std::fmt::Write;

use super::{Comparison, FilesVerdict, KeyVerdict, Row, Side};

fn side_line(out: &mut String, name: &str, s: &Side) {
    let _ = writeln!(
        out,
        "  {name}: {} (trace format {}, started {}), {}: {}",
        s.path, s.trace_version, s.started, s.dockerfile, s.ended
    );
}

/// What a row's key column says, in a few words.
pub fn key_words(r: &Row) -> String {
    match &r.key {
        KeyVerdict::Equal { .. } => "key equal".to_string(),
        KeyVerdict::Differ { reasons } => reasons.join(", "),
        KeyVerdict::NoKey { why } => why.clone(),
    }
}

/// What a row's files column says, in a few words.
pub fn files_words(r: &Row) -> String {
    match &r.files {
        FilesVerdict::NoLayers => "no layer in either build".to_string(),
        FilesVerdict::SameLayer { .. } => "same layer".to_string(),
        // A listing records each path's type, mode, owner, size, content digest and link, not
        // its times or extended attributes: the layers differ in one of those.
        FilesVerdict::SameFiles { compared } => format!(
            "layers differ in what the traces do not record, times or extended attributes ({compared} path(s) \
             compared, none differs)"
        ),
        FilesVerdict::Differ { files, unknown } => {
            let mut s = format!("{} file(s) differ", files.len());
            if !unknown.is_empty() {
                s.push_str(&format!(", contents of {} not recorded", unknown.len()));
            }
            s
        }
        FilesVerdict::Unknown { why } => why.clone(),
        FilesVerdict::NotFinished => "not compared: the step did not finish in both builds".to_string(),
    }
}

/// `COPY message.txt /etc/motd`, with the line it is at in B (and in A when it moved).
fn title(r: &Row) -> String {
    format!("{:<12} {}", r.lines(), r.text())
}

fn row(out: &mut String, r: &Row) {
    if !r.differs() {
        let files = match r.files {
            FilesVerdict::NoLayers | FilesVerdict::NotFinished => String::new(),
            _ => format!("; {}", files_words(r)),
        };
        let _ = writeln!(out, "  same  {}  ({}{files})", title(r), key_words(r));
        return;
    }
    let _ = writeln!(out, "  DIFF  {}", title(r));
    let pad = "          ";
    if let Some(m) = r.matched.words() {
        let _ = writeln!(out, "{pad}{m}");
    }
    if let Some(p) = &r.progress {
        let _ = writeln!(out, "{pad}progress: {p}");
    }
    match &r.key {
        KeyVerdict::Differ { reasons } => {
            for reason in reasons {
                let _ = writeln!(out, "{pad}key: {reason}");
            }
        }
        KeyVerdict::Equal { .. } => {
            let _ = writeln!(out, "{pad}key: equal");
        }
        KeyVerdict::NoKey { .. } if matches!(r.matched, super::Matched::OnlyA | super::Matched::OnlyB) => {}
        KeyVerdict::NoKey { why } => {
            let _ = writeln!(out, "{pad}key: {why}");
        }
    }
    if let (Some(a), Some(b)) = (&r.a, &r.b)
        && (a.cache.is_some() || b.cache.is_some())
    {
        let _ = writeln!(out, "{pad}cache: A {}, B {}", a.cache.unwrap_or("no lookup"), b.cache.unwrap_or("no lookup"));
    }
    match &r.files {
        FilesVerdict::Differ { files, unknown } => {
            for f in files {
                let _ = writeln!(out, "{pad}file {}: {}", f.path, f.what);
                if let Some((a, b)) = &f.texts {
                    text_diff(out, a, b);
                }
            }
            if !unknown.is_empty() {
                let _ = writeln!(
                    out,
                    "{pad}files whose contents are not recorded (cannot tell): {}",
                    super::files::list(unknown)
                );
            }
        }
        FilesVerdict::NotFinished | FilesVerdict::NoLayers => {}
        _ => {
            let _ = writeln!(out, "{pad}files: {}", files_words(r));
        }
    }
}

/// Lines of a file's text diff shown in the summary (a CI log is not the place for more).
const DIFF_LINES: usize = 8;

/// A's and B's content of a file, as `-`/`+` lines under it.
fn text_diff(out: &mut String, a: &str, b: &str) {
    let diff = similar::TextDiff::from_lines(a, b);
    let lines: Vec<(char, &str)> = diff
        .iter_all_changes()
        .filter_map(|c| match c.tag() {
            similar::ChangeTag::Delete => Some(('-', c.value())),
            similar::ChangeTag::Insert => Some(('+', c.value())),
            similar::ChangeTag::Equal => None,
        })
        .collect();
    for (sign, line) in lines.iter().take(DIFF_LINES) {
        // A CI log shows what it is sent: no control character of a file reaches it.
        let line: String = line
            .trim_end_matches(['\n', '\r'])
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '\u{fffd}' } else { c })
            .collect();
        let _ = writeln!(out, "            {sign} {line}");
    }
    if lines.len() > DIFF_LINES {
        let _ = writeln!(out, "            … {} more changed line(s)", lines.len() - DIFF_LINES);
    }
}

/// Renders the comparison.
pub fn render(c: &Comparison) -> String {
    let mut out = String::from("Comparing build A with build B\n");
    side_line(&mut out, "A", &c.a);
    side_line(&mut out, "B", &c.b);
    let mut stage = None;
    for r in &c.rows {
        if stage != Some(r.stage) {
            stage = Some(r.stage);
            let _ = writeln!(out, "Stage {}", r.stage_label);
        }
        row(&mut out, r);
    }
    if let Some(e) = &c.ending {
        let _ = writeln!(out, "The builds ended differently: {e}");
    }
    let differing: Vec<&Row> = c.differing().collect();
    if c.equivalent() {
        let unrecorded = c.rows.iter().filter(|r| matches!(r.files, FilesVerdict::SameFiles { .. })).count();
        let caveat = if unrecorded == 0 {
            String::new()
        } else {
            format!(" ({unrecorded} of them differing in times or extended attributes, which the traces do not record)")
        };
        let _ = writeln!(
            out,
            "Equivalent: all {} step(s) have equal keys (where recorded) and layers whose files do not differ{caveat}",
            c.rows.len()
        );
    } else {
        let lines: Vec<String> = differing.iter().map(|r| r.lines()).collect();
        let _ = writeln!(
            out,
            "Different: {} of {} step(s) differ ({}){}",
            differing.len(),
            c.rows.len(),
            lines.join(", "),
            if c.ending.is_some() { ", and the builds ended differently" } else { "" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{FileDiff, Matched, StepRef};
    use trowel_events::StepId;
    use trowel_events::state::{Outcome, StepState};

    fn side(path: &str) -> Side {
        Side {
            path: path.into(),
            trace_version: 2,
            started: "2026-01-01T00:00:00.000Z".into(),
            dockerfile: "Dockerfile".into(),
            outcome: Outcome::Finished,
            ended: "finished".into(),
        }
    }

    fn step(n: usize, line: usize, text: &str) -> StepRef {
        StepRef {
            id: StepId { stage: 0, step: n },
            line,
            keyword: text.split(' ').next().unwrap().into(),
            text: text.into(),
            written: text.into(),
            state: StepState::Built,
            layer: None,
            cache: Some("miss"),
            cache_said: None,
        }
    }

    fn row(a: Option<StepRef>, b: Option<StepRef>, matched: Matched, key: KeyVerdict, files: FilesVerdict) -> Row {
        Row { stage: 0, stage_label: "0".into(), a, b, matched, key, files, progress: None }
    }

    /// Lines that moved are said to be matched by their text; a step in one build only, and
    /// files whose contents a trace does not record, are named as such.
    #[test]
    fn moved_added_and_unknown_are_said() {
        let c = Comparison {
            a: side("a.jsonl"),
            b: side("b.jsonl"),
            rows: vec![
                row(
                    None,
                    Some(step(1, 2, "ENV X=1")),
                    Matched::OnlyB,
                    KeyVerdict::NoKey { why: "the step is in one build only".into() },
                    FilesVerdict::NotFinished,
                ),
                row(
                    Some(step(1, 2, "COPY src/ /src/")),
                    Some(step(2, 3, "COPY src/ /src/")),
                    Matched::ByText { from: 2, to: 3 },
                    KeyVerdict::Differ { reasons: vec!["COPY src/: 1 file changed (src/a.rs)".into()] },
                    FilesVerdict::Differ {
                        files: vec![FileDiff {
                            path: "/src/a.rs".into(),
                            what: "content differs (1 B → 2 B)".into(),
                            texts: Some(("fn a() {}\nfn b() {}\n".into(), "fn a() {}\nfn c() {}\n".into())),
                        }],
                        unknown: vec!["/src/b.rs".into()],
                    },
                ),
            ],
            ending: None,
        };
        assert_eq!(
            render(&c),
            "\
Comparing build A with build B
  A: a.jsonl (trace format 2, started 2026-01-01T00:00:00.000Z), Dockerfile: finished
  B: b.jsonl (trace format 2, started 2026-01-01T00:00:00.000Z), Dockerfile: finished
Stage 0
  DIFF  line 2       ENV X=1
          only in B (no step of A's stage matches it)
  DIFF  line 2 → 3   COPY src/ /src/
          matched by instruction text: line 2 in A is line 3 in B
          key: COPY src/: 1 file changed (src/a.rs)
          cache: A miss, B miss
          file /src/a.rs: content differs (1 B → 2 B)
            - fn b() {}
            + fn c() {}
          files whose contents are not recorded (cannot tell): /src/b.rs
Different: 2 of 2 step(s) differ (line 2, line 2 → 3)
"
        );
    }

    /// Layers with other digests whose listed paths all agree are not said to differ in times
    /// alone: the traces record neither times nor extended attributes, and the verdict says how
    /// many such layers it passed as equivalent.
    #[test]
    fn layers_alike_in_what_is_recorded_are_not_called_identical() {
        let c = Comparison {
            a: side("a.jsonl"),
            b: side("b.jsonl"),
            rows: vec![row(
                Some(step(1, 3, "COPY x.bin /x.bin")),
                Some(step(1, 3, "COPY x.bin /x.bin")),
                Matched::ByLine,
                KeyVerdict::Equal { key: "k".into() },
                FilesVerdict::SameFiles { compared: 1 },
            )],
            ending: None,
        };
        let text = render(&c);
        assert!(
            text.contains("layers differ in what the traces do not record, times or extended attributes (1 path(s) compared, none differs)"),
            "{text}"
        );
        assert!(
            text.ends_with("(1 of them differing in times or extended attributes, which the traces do not record)\n"),
            "{text}"
        );
    }
}
