//! Why a step's parent differs from the compared entry's, for [`super::explain`]: the first
//! step of the chain before it whose key differs, and why — its miss in this build, its
//! recorded inputs (a step with no entry of its own), its changed text, or nothing to name when
//! a part every key shares changed. Apart from `explain.rs` to keep each file readable.

use std::collections::BTreeMap;

use super::words::{cause, edited_at};
use super::{
    Missed, base_changed, runs_as_changes, show, source_changes, source_label, stage_of_files_changed, var_changes,
};
use crate::cache::file_diff::FileDiff;
use crate::cache::key::{ChainLink, KeyComponents, LinkInputs, Var, VarKind};

/// The parent differs: names the first ancestor whose key differs, and why it does. `base`: why
/// the stage this one is built `FROM` changed ([`super::Around::base`]); `named`: what is said
/// already (a changed ARG that made an earlier step miss is not said twice); `vars_named`: a
/// variable this step sees changed, which an ENV or ARG line changing says again.
pub(super) fn chain_changed(
    p: &KeyComponents,
    cur: &KeyComponents,
    missed: &BTreeMap<String, Missed>,
    base: Option<&Missed>,
    named: &[String],
    vars_named: bool,
    build_wide: bool,
) -> Option<String> {
    let first = cur.chain.iter().enumerate().find(|(i, link)| p.chain.get(*i).is_none_or(|pl| pl.key != link.key));
    // An ancestor's reason is the same fact as one named already when it only adds where it
    // was seen (`COPY /out at line 12: stage 0 changed` after `stage 0 changed`).
    // So is another change of a variable named already: after a build that failed, this step's
    // closest entry may be older than its parent's, and the parent's `ARG V 2 → 3` beside this
    // step's `ARG V 1 → 3` gave two earlier values of one ARG in one message.
    let var = |r: &str| r.contains(" → ").then(|| r.splitn(3, ' ').take(2).collect::<Vec<_>>().join(" "));
    let said = |r: &String| {
        named.iter().any(|n| {
            r == n
                || r.strip_suffix(n.as_str()).is_some_and(|head| head.ends_with(": ") && head.contains(" at line "))
                || (["ARG ", "ENV "].iter().any(|k| r.starts_with(k)) && var(r).is_some() && var(r) == var(n))
        })
    };
    let fresh = |reasons: &[String]| -> Vec<String> { reasons.iter().filter(|r| !said(r)).cloned().collect() };
    // A parent that missed in this build says why itself (its lookup failed: it cannot).
    let via_miss = |key: &str| -> Option<Option<String>> {
        let m = missed.get(key)?;
        let left = fresh(&m.reasons);
        Some(match (left.is_empty(), m.reasons.is_empty()) {
            // Every cause of the parent's miss is named already.
            (true, false) => None,
            (true, true) => Some(format!("parent step missed (line {})", m.line)),
            (false, _) => Some(format!("parent step missed (line {}: {})", m.line, left.join("; "))),
        })
    };
    match first {
        Some((0, link)) => Some(base_changed(p, cur, &link.instruction, base, missed)),
        Some((i, link)) => {
            if let Some(r) = via_miss(&link.key) {
                return r;
            }
            // That ancestor was served from the cache in this build (another of its entries than
            // the compared one's): a later one that missed is this build's cause.
            if link.inputs.is_none()
                && let Some(later) = cur.chain[i + 1..].iter().find(|l| missed.contains_key(&l.key))
                && let Some(r) = via_miss(&later.key)
            {
                return r;
            }
            // The entry's chain is shorter: there are more steps before this one now.
            let Some(old) = p.chain.get(i) else {
                return Some(format!("parent step changed (line {}: {})", link.line, link_text(link, cur)));
            };
            match (&old.inputs, &link.inputs) {
                (Some(a), Some(b)) => {
                    let sets_vars = ["ENV ", "ARG "].iter().any(|k| link.instruction.starts_with(k));
                    let text_only = a == b;
                    if vars_named && sets_vars && text_only {
                        return None;
                    }
                    // The first ancestor that changed has the same inputs and text: what made its
                    // key another is what every step's changed with (the layer format, the paths
                    // left out), which this explanation names itself.
                    if build_wide && text_only && old.instruction == link.instruction {
                        return None;
                    }
                    let left = fresh(&link_changes(old, a, link, b, missed));
                    (!left.is_empty()).then(|| left.join("; "))
                }
                // Inputs not recorded (a trace's chain, for `replay --compare`): with a part every
                // key shares changed, every link's key is another whatever else did, so a link of
                // the same text is no cause to name; one whose text changed is (its own row, in a
                // comparison, says what else changed at it).
                _ if build_wide => changed_text(&p.chain, &cur.chain, i),
                _ => Some(format!("parent step changed (line {}: {})", link.line, link_text(link, cur))),
            }
        }
        None => match via_miss(&cur.parent) {
            Some(r) => r,
            None => Some("parent step changed".to_string()),
        },
    }
}

/// What changed in the end of the stage a chain is built `FROM` that no entry of its own
/// explains (its last cached step, or FROM, and the uncached steps after it, which the two
/// chains' first links record: [`ChainLink::stage_tail`]): the first of those steps whose key
/// differs, by its miss in this build or its recorded inputs (`COPY app.conf at line 2: 1 file
/// changed (app.conf)`). None when either chain does not record it, or no step of it says why.
pub(super) fn tail_changed(old: &[ChainLink], cur: &[ChainLink], missed: &BTreeMap<String, Missed>) -> Option<String> {
    let (a, b) = (&old.first()?.stage_tail, &cur.first()?.stage_tail);
    // Keys chain: the first that differs is where the change is; the ones after it differ too.
    let (i, link) = b.iter().enumerate().find(|(i, l)| a.get(*i).is_none_or(|o| o.key != l.key))?;
    let prev = a.get(i)?;
    if let Some(m) = missed.get(&link.key) {
        return Some(cause(m));
    }
    match (&prev.inputs, &link.inputs) {
        (Some(x), Some(y)) => Some(link_changes(prev, x, link, y, missed).join("; ")),
        _ => None,
    }
}

/// The first link of `cur` from `from` on whose text differs from the one at its place in `old`
/// (or that `old` lacks), as a change: `line 3: instruction changed: RUN a → RUN b`.
fn changed_text(old: &[ChainLink], cur: &[ChainLink], from: usize) -> Option<String> {
    cur.iter().enumerate().skip(from).find_map(|(j, l)| match old.get(j) {
        Some(o) if o.instruction == l.instruction => None,
        Some(o) => Some(edited_at(l.line, &o.instruction, &l.instruction)),
        None => Some(format!("parent step changed (line {}: {})", l.line, l.instruction)),
    })
}

/// A link's instruction as this build ran it: a chain records an ARG line as written (`ARG
/// VERSION=1.0`), which with `--build-arg VERSION=2.0` is not what was used; the value this step
/// sees is (`ARG VERSION=2.0`). Any other line, or an ARG this step does not see, as recorded.
fn link_text(link: &ChainLink, cur: &KeyComponents) -> String {
    let Some(rest) = link.instruction.strip_prefix("ARG ") else { return link.instruction.clone() };
    let words: Vec<String> = rest
        .split_whitespace()
        .map(|w| {
            let name = w.split('=').next().unwrap_or(w);
            match cur.vars.get(name) {
                Some(v @ Var { kind: VarKind::Arg, value: Some(_) }) => format!("{name}={}", show(&v.value)),
                _ => w.to_string(),
            }
        })
        .collect();
    format!("ARG {}", words.join(" "))
}

/// How an uncached ancestor step's recorded inputs changed: `COPY src/ at line 3: 1 added
/// (src/renamed.txt), 1 removed (src/b.txt)`.
fn link_changes(
    old: &ChainLink,
    a: &LinkInputs,
    link: &ChainLink,
    b: &LinkInputs,
    missed: &BTreeMap<String, Missed>,
) -> Vec<String> {
    let mut out = var_changes(&a.vars, &b.vars);
    // Only when both recorded them: an entry made before says nothing of them.
    if let (Some(x), Some(y)) = (&a.runs_as, &b.runs_as) {
        out.extend(runs_as_changes(&x.user, &y.user, &x.shell, &y.shell));
    }
    let label = format!("{} at line {}", source_label(&link.instruction), link.line);
    if a.files_digest != b.files_digest {
        // A `COPY --from`'s files: and why, when its stage changed (`…; stage build changed (…)`).
        let why: String =
            stage_of_files_changed(&a.sources, &b.sources, missed).iter().map(|w| format!("; {w}")).collect();
        if a.files_listed() && b.files_listed() {
            out.push(format!("{label}: {}{why}", FileDiff::of(&a.files, &b.files).words()));
        } else {
            out.push(format!(
                "{label}: its source files changed ({} → {} files; too many to record which){why}",
                a.files_count, b.files_count
            ));
        }
    }
    // Where the source was read, before why it changed: the cause's own line is in its words.
    out.extend(source_changes(&a.sources, &b.sources, missed).into_iter().map(|s| format!("{label}: {s}")));
    if out.is_empty() && old.instruction != link.instruction {
        out.push(edited_at(link.line, &old.instruction, &link.instruction));
    }
    if out.is_empty() {
        out.push(format!("parent step changed (line {}: {})", link.line, link.instruction));
    }
    out
}
