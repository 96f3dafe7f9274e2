//! Why a step missed whose place in the stage holds another instruction's entries, for
//! [`super::explain`]: entries are found by a step's place, so after lines were added, removed
//! or moved above it the place's entries are another step's. A step before it that missed is
//! named, else this one was inserted, or moved up (two lines swapped: an entry of it is at the
//! place of a step after it; or lines above it removed: an entry of it is at a later place,
//! and what its place held is in the stage no more, each removed line named), or edited in
//! place. A duplicate line inserted is no move of its other copy ([`whence`] counts them), and
//! when the earlier stage was longer than was read none of these is claimed. Apart from
//! `explain.rs` to keep each file readable.

use std::collections::BTreeMap;

use super::words::{TEXT_MAX, clip, edited};
use super::{Around, Later, Missed, Previous, same_instruction};
use crate::cache::key::KeyComponents;

/// Why a step missed whose place in the stage holds only another instruction's entries: a step
/// before it that missed in this build (its miss made this one's parent new), else this step
/// moved up (an entry of it is at a later place: [`Around::moved_from`]) or was inserted (the
/// instruction the place held runs after it now, either way), else it moved up as the line
/// its place held was removed (an entry of it is at a later place, and that line's
/// instruction is no step of the stage now; every such line it moved past is named), else the
/// text at this place changed (the same keyword on the same line: an edit, unless the earlier
/// stage was longer than was read: [`Around::unsure`]), else what was cached here.
pub(super) fn another_instruction(
    p: &KeyComponents,
    cur: &KeyComponents,
    missed: &BTreeMap<String, Missed>,
    around: &Around,
) -> String {
    if let Some(r) = first_missed_ancestor(&cur.chain, missed, &|_| false) {
        return r;
    }
    // A place's entries are found by position: a line inserted above a step pushes it down,
    // and the inserted one finds its entries. Same keyword, same line read as an edit of it.
    // Unless this step was at the place of a step after it: then it moved up (the steps after
    // it name it as their cause, the one it swapped with too).
    if let Some(l) = held_later(p, &around.later) {
        let held = clip(&p.instruction, TEXT_MAX);
        return match around.moved_from {
            Some(from) if from == l.line => {
                format!("moved from line {from}, swapped with {held} (now at line {})", l.line)
            }
            Some(from) => {
                format!("moved from line {from} (its place in the stage held {held}, now at line {})", l.line)
            }
            // The earlier stage was longer than was read: inserted or moved, not known.
            None if around.unsure => {
                format!(
                    "no cache entry for this instruction yet (its place in the stage held {held}, now at line {})",
                    l.line
                )
            }
            None => format!("inserted step (its place in the stage held {held}, now at line {})", l.line),
        };
    }
    // An entry of it at a later place, and what its place held runs nowhere now (the engine
    // looks only then, see [`may_follow_removed`]): the lines above it were removed, it was
    // not edited from that one.
    if let Some(from) = around.moved_from {
        if around.removed.len() > 1 {
            return format!("moved up from line {from} ({} were removed)", lines(&around.removed));
        }
        return format!("moved up from line {from} (line {}, {}, was removed)", p.line, clip(&p.instruction, TEXT_MAX));
    }
    let keyword = |s: &str| s.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
    // An entry made for another repository may be another project's step (a cache repository
    // shared by projects, each with its `Dockerfile`): never taken for an edit of this one.
    let elsewhere = match (&p.origin, &cur.origin) {
        (Some(a), Some(b)) if a != b => Some(a),
        _ => None,
    };
    // Lines no step of the stage is now held more places than were read: edited, or moved up
    // as they were removed, not known; said as neither.
    if elsewhere.is_none()
        && !around.unsure
        && p.line == cur.line
        && keyword(&p.instruction) == keyword(&cur.instruction)
    {
        return edited(&p.instruction, &cur.instruction);
    }
    let made_for = elsewhere.map(|r| format!(", made for {r}")).unwrap_or_default();
    format!(
        "no cache entry for this instruction yet (its place in the stage held line {}: {}{made_for})",
        p.line, p.instruction
    )
}

/// Where a step was in an earlier build, for [`Around`]: see [`whence`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Whence {
    /// The line its entry was at, when it moved up ([`Around::moved_from`]).
    pub from: Option<usize>,
    /// The lines it moved up past that are no step of the stage now ([`Around::removed`]).
    pub removed: Vec<usize>,
    /// The earlier stage was longer than was read ([`Around::unsure`]).
    pub unsure: bool,
}

/// Where a step whose place held another instruction was in an earlier build, from `old`: the
/// stage as that build ran it, from this step's place on (`whole`: to its end). It moved from
/// the first later place holding an entry of `written`, its instruction, unless the stage has
/// more copies of it from this place on (`copies`, this one too) than `old` had after its
/// place: then one copy was inserted (or edited into it), and the other copies are where they
/// were, pushed down. `swapped`: its place held a step after it ([`may_have_moved`]); else a
/// line no step of the stage is now ([`may_follow_removed`]), and each line it moved past that
/// the stage `holds` no more was removed.
pub fn whence(
    old: &[KeyComponents],
    whole: bool,
    written: &str,
    copies: usize,
    swapped: bool,
    holds: &dyn Fn(&str) -> bool,
) -> Whence {
    let unsure = Whence { unsure: !whole, ..Whence::default() };
    let is_it = |e: &KeyComponents| e.written.as_deref() == Some(written);
    let Some(at) = old.iter().skip(1).position(is_it).map(|p| p + 1) else { return unsure };
    if copies > old[1..].iter().filter(|e| is_it(e)).count() {
        return unsure;
    }
    let removed = if swapped {
        Vec::new()
    } else {
        old[..at].iter().filter(|e| e.written.as_deref().is_some_and(|w| !holds(w))).map(|e| e.line).collect()
    };
    Whence { from: Some(old[at].line), removed, unsure: false }
}

/// Lines, in order: `lines 2–5` when each follows the one before, else `lines 2, 4 and 7`.
fn lines(l: &[usize]) -> String {
    match l {
        [a] => format!("line {a}"),
        [a, b] => format!("lines {a} and {b}"),
        [first, .., last] if l.windows(2).all(|w| w[1] == w[0] + 1) => format!("lines {first}–{last}"),
        [rest @ .., last] => {
            format!("lines {} and {last}", rest.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))
        }
        [] => String::new(),
    }
}

/// The step after this one in its stage that `p`, an entry at this one's place, was made for.
fn held_later<'a>(p: &KeyComponents, later: &'a [Later]) -> Option<&'a Later> {
    later.iter().find(|l| match (&l.written, &p.written) {
        (Some(a), Some(b)) => a == b,
        _ => l.instruction == p.instruction,
    })
}

/// Whether a step that missed may have moved up rather than been inserted: its place's newest
/// entry is another instruction's, one that runs after it now, and none is of its own. Only
/// then are the lookups of the steps after it (and, when they run out first, the places past
/// the stage's end) read for an entry of it ([`Around::moved_from`]), which waits for them.
pub fn may_have_moved(prev: &Previous, cur: &KeyComponents, later: &[Later]) -> bool {
    let Previous::Entries(entries) = prev else { return false };
    cur.written.is_some()
        && !entries.iter().any(|e| same_instruction(&e.components, cur))
        && entries.first().is_some_and(|e| held_later(&e.components, later).is_some())
}

/// Whether a step that missed may have moved up as a line above it was removed, rather than
/// been edited from what its place held: its place's newest entry (returned) is another
/// instruction's, one that runs after it in the stage no more (else [`may_have_moved`]), and
/// none is of its own. Only then are the lookups of the steps after it, and the place past the
/// stage's last step, read for an entry of it ([`Around::moved_from`]); the engine takes it
/// for moved only if that entry's instruction is no step of the stage at all.
pub fn may_follow_removed<'a>(prev: &'a Previous, cur: &KeyComponents, later: &[Later]) -> Option<&'a KeyComponents> {
    let Previous::Entries(entries) = prev else { return None };
    let newest = &entries.first()?.components;
    (cur.written.is_some()
        && newest.written.is_some()
        && !entries.iter().any(|e| same_instruction(&e.components, cur))
        && held_later(newest, later).is_none())
    .then_some(&**newest)
}

/// The first step of `chain` that missed in this build, and why: `parent step missed (line 4:
/// …)`; none if `unless` says that miss is no cause worth naming.
pub(super) fn first_missed_ancestor(
    chain: &[crate::cache::key::ChainLink],
    missed: &BTreeMap<String, Missed>,
    unless: &dyn Fn(&Missed) -> bool,
) -> Option<String> {
    chain.iter().find_map(|link| missed.get(&link.key)).filter(|m| !unless(m)).map(|m| {
        if m.reasons.is_empty() {
            format!("parent step missed (line {})", m.line)
        } else {
            format!("parent step missed (line {}: {})", m.line, m.reasons.join("; "))
        }
    })
}
