//! Tests of where a step whose place held another instruction was in an earlier build
//! ([`whence`]), and how that is said: a duplicate line inserted is no move of its other copy,
//! every line removed above a step is named, and when the earlier stage was longer than was
//! read no move, insertion or edit is claimed. Apart from `explain_cause_tests.rs` to keep
//! each file readable.

use super::cause_tests::{comps, entries, later};
use super::*;

const U: &str = "RUN echo u >> /log";

/// A copy of a line the stage has twice, inserted: before, `U; a; U`, now `U; U; a; U`. The
/// entry of U at a later place is the other copy's, still in the stage: inserted, not moved.
/// With as many copies as before (`a; U; U` → `U; a; U`) one moved.
#[test]
fn an_inserted_duplicate_is_no_move() {
    let old = [comps("RUN a", 3), comps(U, 4)];
    let none = |_: &str| false;
    assert_eq!(whence(&old, true, &format!("w:{U}"), 2, true, &none), Whence::default());
    let old = [comps("RUN a", 2), comps(U, 3), comps(U, 4)];
    assert_eq!(whence(&old, true, &format!("w:{U}"), 2, true, &none), Whence { from: Some(3), ..Whence::default() });
    // A line met once: moved from where its entry is.
    let old = [comps("RUN a", 2), comps("RUN b", 3)];
    let w = whence(&old, true, "w:RUN b", 1, true, &none);
    assert_eq!(w, Whence { from: Some(3), ..Whence::default() });
}

/// Each line a step moved up past that the stage holds no more is named; one the stage still
/// holds (it moved down) is not.
#[test]
fn every_removed_line_is_named() {
    let old = [comps("RUN a", 2), comps("RUN b", 3), comps("RUN c", 4), comps("RUN d", 5), comps("RUN e", 6)];
    let none = |_: &str| false;
    let w = whence(&old, true, "w:RUN e", 1, false, &none);
    assert_eq!(w, Whence { from: Some(6), removed: vec![2, 3, 4, 5], unsure: false });
    let holds_c = |w: &str| w == "w:RUN c";
    assert_eq!(whence(&old, true, "w:RUN e", 1, false, &holds_c).removed, vec![2, 3, 5]);

    let none_map = BTreeMap::new();
    let step = comps("RUN e", 2);
    let said = |removed: Vec<usize>| {
        let around = Around { moved_from: Some(6), removed, ..Around::default() };
        explain_in(&entries(comps("RUN a", 2)), &step, &none_map, &around).text()
    };
    assert_eq!(said(vec![2, 3, 4, 5]), "moved up from line 6 (lines 2–5 were removed)");
    assert_eq!(said(vec![2, 3]), "moved up from line 6 (lines 2 and 3 were removed)");
    assert_eq!(said(vec![2, 3, 5]), "moved up from line 6 (lines 2, 3 and 5 were removed)");
    assert_eq!(said(vec![2]), "moved up from line 6 (line 2, RUN a, was removed)");
}

/// The earlier stage was longer than was read and no entry of the step was found: it may have
/// moved up past more removed lines, or been edited, or inserted; none of them is said.
#[test]
fn an_earlier_stage_read_in_part_claims_no_edit_or_insertion() {
    let old = [comps("RUN a", 2), comps("RUN b", 3)];
    let w = whence(&old, false, "w:RUN z", 1, false, &|_| false);
    assert_eq!(w, Whence { unsure: true, ..Whence::default() });
    let none = BTreeMap::new();
    let unsure = Around { unsure: true, ..Around::default() };
    let step = comps("RUN z", 2);
    assert_eq!(
        explain_in(&entries(comps("RUN a", 2)), &step, &none, &unsure).text(),
        "no cache entry for this instruction yet (its place in the stage held line 2: RUN a)"
    );
    let held = comps("RUN b", 2);
    let unsure = Around { later: vec![later(&comps("RUN b", 3))], unsure: true, ..Around::default() };
    assert_eq!(
        explain_in(&entries(held), &step, &none, &unsure).text(),
        "no cache entry for this instruction yet (its place in the stage held RUN b, now at line 3)"
    );
}
