//! Cache misses after lines were inserted, moved or removed above a step, end to end: entries
//! are found by a step's place, so what a place held says which of those it was only when
//! read right. A duplicate line (the same text twice in a stage) inserted is no move of the
//! other copy; more lines removed above a step than steps after it are no edit; and every
//! removed line is named, not only the one at the step's place; past what is read, none of
//! these is claimed.

use super::*;

/// A stage of `RUN echo <r> > /<r>` steps, one per name.
fn runs(names: &[&str]) -> String {
    format!("{}{}", from(), names.iter().map(|r| format!("RUN echo {r} > /{r}\n")).collect::<String>())
}

/// A copy of a line that is in the stage twice, inserted: the other copy below is still there
/// (pushed down a line), so the inserted one did not move from its place.
#[test]
fn an_inserted_copy_of_a_duplicate_line_is_named_as_inserted() {
    let df = |lines: &[&str]| format!("{}{}", from(), lines.iter().map(|l| format!("{l}\n")).collect::<String>());
    let (u, a) = ("RUN echo u >> /log", "RUN echo a > /a");
    let c = Ctx::new("dup-inserted", &df(&[u, a, u]));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), df(&[u, u, a, u])).unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(2), "hit");
    let inserted = "inserted step (its place in the stage held RUN echo a > /a, now at line 4)";
    assert_eq!(o.at(3), format!("miss: {inserted}"));
    assert_eq!(o.at(5), format!("miss: parent step missed (line 3: {inserted})"));

    // A COPY twice, the same.
    let cp = "COPY src/ /app/";
    let c = Ctx::new("dup-copy", &df(&[cp, a, cp]));
    c.write("src/f.txt", "f\n");
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), df(&[cp, cp, a, cp])).unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(2), "hit");
    assert_eq!(o.at(3), format!("miss: {inserted}"));

    // The same lines, one copy moved up over the other line: a move (as many copies as before).
    let c = Ctx::new("dup-moved", &df(&[a, u, u]));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), df(&[u, a, u])).unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(2), "miss: moved from line 3, swapped with RUN echo a > /a (now at line 3)");
}

/// More lines removed above a stage's last step than the 3 places past its end once read:
/// still a move up past the lines removed, never an edit of the first removed line.
#[test]
fn many_lines_removed_above_the_last_step_are_named_as_removed() {
    let c = Ctx::new("removed-four", &runs(&["a", "b", "c", "d", "e"]));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), runs(&["e"])).unwrap();
    assert_eq!(c.build(&[]).at(2), "miss: moved up from line 6 (lines 2–5 were removed)");
}

/// Lines removed above a step in the middle of a stage: each is named, not only the one its
/// place held; the steps after it follow.
#[test]
fn every_line_removed_above_a_step_is_named() {
    let c = Ctx::new("removed-three", &runs(&["a", "b", "c", "d", "e", "f"]));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), runs(&["a", "e", "f"])).unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(2), "hit");
    let moved = "moved up from line 6 (lines 3–5 were removed)";
    assert_eq!(o.at(3), format!("miss: {moved}"));
    assert_eq!(o.at(4), format!("miss: parent step missed (line 3: {moved})"));
}

/// More lines removed above the last step than the 16 places past the stage's end that are
/// read: whether it moved up past them or was edited is not known, and neither is claimed.
#[test]
fn lines_removed_past_what_is_read_claim_no_edit() {
    let names: Vec<String> = (1..=18).map(|i| format!("r{i}")).chain(["z".to_string()]).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let c = Ctx::new("removed-many", &runs(&names));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), runs(&["z"])).unwrap();
    assert_eq!(
        c.build(&[]).at(2),
        "miss: no cache entry for this instruction yet (its place in the stage held line 2: RUN echo r1 > /r1)"
    );
}
