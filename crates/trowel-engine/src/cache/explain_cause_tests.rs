//! Tests of how `explain.rs` names an edit, an insertion and a cause seen from another step
//! (a stage read from, a base stage): old and new text, one location per cause; a moved step
//! (swapped, or below a removed line), a base stage's uncached end, an uncached RUN's USER.
//! Apart from `explain_tests.rs`, which is near the 600 lines a file may have.

use super::*;
use crate::cache::key::{ChainLink, FileEntry, LinkInputs};

pub(super) fn comps(instr: &str, line: usize) -> KeyComponents {
    KeyComponents { line, written: Some(format!("w:{instr}")), ..super::tests::comps(instr) }
}

pub(super) fn entries(c: KeyComponents) -> Previous {
    Previous::Entries(vec![Earlier { key: "e".into(), components: Box::new(c), created: None }])
}

pub(super) fn later(c: &KeyComponents) -> Later {
    Later { line: c.line, instruction: c.instruction.clone(), written: c.written.clone() }
}

/// A step inserted at the line of an existing one (which moved down) is named as inserted, not
/// as an edit of the one that held its place; an edit in place says what it was and is.
#[test]
fn an_inserted_step_is_no_edit() {
    let none = BTreeMap::new();
    let held = comps("RUN make", 3);
    let inserted = comps("RUN echo x", 3);
    let moved = comps("RUN make", 4);
    let around = Around { later: vec![later(&moved)], ..Around::default() };
    assert_eq!(
        explain_in(&entries(held.clone()), &inserted, &none, &around).text(),
        "inserted step (its place in the stage held RUN make, now at line 4)"
    );
    // It was at the place of a step after it: moved (swapped with the one that held its
    // place), not inserted; and from further down, where it was.
    let swapped = Around { later: vec![later(&moved)], moved_from: Some(4), ..Around::default() };
    assert_eq!(
        explain_in(&entries(held.clone()), &inserted, &none, &swapped).text(),
        "moved from line 4, swapped with RUN make (now at line 4)"
    );
    let from_further = Around { moved_from: Some(6), ..swapped };
    assert_eq!(
        explain_in(&entries(held.clone()), &inserted, &none, &from_further).text(),
        "moved from line 6 (its place in the stage held RUN make, now at line 4)"
    );
    assert!(may_have_moved(&entries(held.clone()), &inserted, &[later(&moved)]));
    assert!(!may_have_moved(&entries(held.clone()), &moved, &[]), "an entry of its own");
    let edited = comps("RUN make -j4", 3);
    assert_eq!(
        explain_in(&entries(held), &edited, &none, &Around::default()).text(),
        "instruction changed: RUN make → RUN make -j4"
    );
}

/// A step whose place held a line removed since (no step of the stage now), with an entry of it
/// at a later place, moved up: named so, not as an edit of the removed line, which it reads as
/// when nothing of it is elsewhere.
#[test]
fn a_step_below_a_removed_line_moved_up() {
    let none = BTreeMap::new();
    let removed = comps("RUN echo a", 2);
    let step = comps("RUN echo b", 2);
    let around = Around { moved_from: Some(3), ..Around::default() };
    assert_eq!(
        explain_in(&entries(removed.clone()), &step, &none, &around).text(),
        "moved up from line 3 (line 2, RUN echo a, was removed)"
    );
    assert_eq!(
        explain_in(&entries(removed.clone()), &step, &none, &Around::default()).text(),
        "instruction changed: RUN echo a → RUN echo b"
    );
    // Looked for only when what the place held runs after it no more, and none is its own.
    assert!(may_follow_removed(&entries(removed.clone()), &step, &[]).is_some());
    assert!(may_follow_removed(&entries(removed.clone()), &step, &[later(&removed)]).is_none(), "moved down");
    assert!(may_follow_removed(&entries(step.clone()), &step, &[]).is_none(), "an entry of its own");
    let unrecorded = KeyComponents { written: None, ..removed };
    assert!(may_follow_removed(&entries(unrecorded), &step, &[]).is_none(), "an entry of an older trowel");
}

/// A long instruction is cut to what differs, behind its keyword.
#[test]
fn a_long_edit_is_cut_to_what_changed() {
    let old = "RUN apt-get update && apt-get install -y curl git make && rm -rf /var/lib/apt/lists/*";
    let new = "RUN apt-get update && apt-get install -y curl git make gcc && rm -rf /var/lib/apt/lists/*";
    assert_eq!(words::edited(old, new), "instruction changed: RUN … make && … → RUN … make gcc && …");
    let tail = format!("{old} && echo done");
    assert_eq!(
        words::edited(old, &tail),
        "instruction changed: RUN … -rf /var/lib/apt/lists/* → RUN … -rf /var/lib/apt/lists/* && echo done"
    );
    let long = format!("RUN {}", "x".repeat(100));
    let e = words::edited("RUN y", &long);
    assert_eq!(e, format!("instruction changed: RUN y → RUN {}…", "x".repeat(55)));
}

/// Kaniko's defaults: an uncached `COPY --from` whose stage changed because of an uncached COPY
/// in it. Each cause has one location: where the stage was read, and what changed in it.
#[test]
fn a_changed_stage_read_by_an_uncached_copy_reads_cleanly() {
    let copy = |stage_key: &str| {
        let mut c = comps("COPY --from=builder /w/out /out", 7);
        c.sources = BTreeMap::from([("stage:builder".to_string(), stage_key.to_string())]);
        c
    };
    let run = |stage_key: &str, copy_key: &str| {
        let mut c = comps("RUN cat /out > /o2", 8);
        c.chain.push(ChainLink {
            line: 7,
            instruction: "COPY --from=builder /w/out /out".into(),
            key: copy_key.into(),
            inputs: Some(Box::new(LinkInputs::of(&copy(stage_key)))),
            stage_tail: Vec::new(),
        });
        c.parent = copy_key.into();
        c
    };
    let why = "COPY big at line 3: 1 file changed (big)";
    let missed = BTreeMap::from([("s-new".to_string(), Missed { line: 5, reasons: vec![why.into()] })]);
    assert_eq!(
        explain(&entries(copy("s-old")), &copy("s-new"), &missed).text(),
        format!("stage builder changed ({why})")
    );
    assert_eq!(
        explain(&entries(run("s-old", "c-old")), &run("s-new", "c-new"), &missed).text(),
        format!("COPY --from=builder /w/out at line 7: stage builder changed ({why})")
    );
    // A stage whose last step missed only because an earlier one did names that one.
    let inherited = Missed { line: 5, reasons: vec!["parent step missed (line 2: ARG V 1 → 2)".into()] };
    let missed = BTreeMap::from([("s-new".to_string(), inherited)]);
    assert_eq!(
        explain(&entries(copy("s-old")), &copy("s-new"), &missed).text(),
        "stage builder changed (line 2: ARG V 1 → 2)"
    );
}

/// A stage built `FROM` an earlier stage that changed says what changed in it.
#[test]
fn a_changed_base_stage_says_which_step_and_why() {
    let child = |root: &str| {
        let mut c = comps("RUN cat /seen > /copy", 5);
        c.chain = vec![ChainLink {
            line: 4,
            instruction: "FROM base".into(),
            key: root.into(),
            inputs: None,
            stage_tail: Vec::new(),
        }];
        c.parent = root.into();
        c
    };
    let none = BTreeMap::new();
    let base = Missed { line: 2, reasons: vec!["COPY app.conf: 1 file changed (app.conf)".into()] };
    let around = Around { base: Some(base), ..Around::default() };
    assert_eq!(
        explain_in(&entries(child("r-old")), &child("r-new"), &none, &around).text(),
        "base stage \"base\" changed (line 2: COPY app.conf: 1 file changed (app.conf))"
    );
    // Not known (its last step was not looked up in this build): as before.
    assert_eq!(explain(&entries(child("r-old")), &child("r-new"), &none).text(), "base stage changed (FROM base)");
    // Its last step is an uncached COPY (no miss of its own): the chains record what it was
    // made of, which names the file.
    let copy = |content: &str| {
        let mut c = comps("COPY app.conf /etc/app.conf", 2);
        c.files = vec![FileEntry::regular("app.conf", Some(crate::digest::Digest::of(content.as_bytes())))];
        c
    };
    let tailed = |root: &str, content: &str| {
        let mut c = child(root);
        c.chain[0].stage_tail = vec![
            ChainLink {
                line: 1,
                instruction: "FROM busybox".into(),
                key: "b0".into(),
                inputs: None,
                stage_tail: vec![],
            },
            ChainLink {
                line: 2,
                instruction: "COPY app.conf /etc/app.conf".into(),
                key: root.into(),
                inputs: Some(Box::new(LinkInputs::of(&copy(content)))),
                stage_tail: vec![],
            },
        ];
        c
    };
    assert_eq!(
        explain(&entries(tailed("r-old", "a")), &tailed("r-new", "b"), &none).text(),
        "base stage \"base\" changed (COPY app.conf at line 2: 1 file changed (app.conf))"
    );
}

/// An uncached RUN's recorded inputs hold the USER and SHELL it read: a changed one is named.
/// An entry made before they were recorded says nothing of them (not "root").
#[test]
fn an_uncached_runs_user_is_named() {
    let step = |user: Option<&str>, run_key: &str, recorded: bool| {
        let run = KeyComponents { user: user.map(str::to_string), ..comps("RUN id -u", 3) };
        let mut inputs = LinkInputs::of(&run);
        if !recorded {
            inputs.runs_as = None;
        }
        let mut c = comps("COPY f.txt /f.txt", 4);
        c.chain.push(ChainLink {
            line: 3,
            instruction: "RUN id -u".into(),
            key: run_key.into(),
            inputs: Some(Box::new(inputs)),
            stage_tail: vec![],
        });
        c.parent = run_key.into();
        c
    };
    let none = BTreeMap::new();
    assert_eq!(
        explain(&entries(step(None, "r1", true)), &step(Some("nobody"), "r2", true), &none).text(),
        "USER changed (root (no USER) → nobody)"
    );
    assert_eq!(
        explain(&entries(step(Some("nobody"), "r1", false)), &step(Some("nobody"), "r2", true), &none).text(),
        "parent step changed (line 3: RUN id -u)"
    );
}

/// After a build that failed past a changed ARG, a step's closest entry is older than its
/// parent's: one message gave `ARG V 1 → 3; parent step missed (line 3: ARG V 2 → 3)`. The
/// variable is named once, against the entry compared.
#[test]
fn one_arg_has_one_earlier_value_in_a_message() {
    let arg = |c: KeyComponents, v: &str| {
        let mut c = c;
        c.vars.insert("V".into(), Var { kind: VarKind::Arg, value: Some(v.into()) });
        c
    };
    let step = |v: &str, parent: &str| {
        let mut c = arg(comps("RUN test -f /ok", 4), v);
        c.chain.push(ChainLink {
            line: 3,
            instruction: "RUN echo $V > /v".into(),
            key: parent.into(),
            inputs: None,
            stage_tail: Vec::new(),
        });
        c.parent = parent.into();
        c
    };
    let missed = BTreeMap::from([("r-3".to_string(), Missed { line: 3, reasons: vec!["ARG V 2 → 3".into()] })]);
    assert_eq!(explain(&entries(step("1", "r-1")), &step("3", "r-3"), &missed).text(), "ARG V 1 → 3");
}

/// USER and SHELL no longer chain into the keys after them: a RUN holds those it reads, and a
/// miss names them with both values.
#[test]
fn a_run_names_the_user_and_shell_it_reads() {
    let none = BTreeMap::new();
    let before = comps("RUN make", 3);
    let after = KeyComponents {
        user: Some("app".into()),
        shell: Some(vec!["/bin/bash".into(), "-c".into()]),
        ..before.clone()
    };
    assert_eq!(
        explain_in(&entries(before), &after, &none, &Around::default()).text(),
        r#"USER changed (root (no USER) → app); SHELL changed (the default, ["/bin/sh","-c"] → ["/bin/bash","-c"])"#
    );
}

/// A `COPY --from` is keyed by the files it copies (`steps/copy/from_files.rs`): its miss names
/// the stage they came from and the files that changed, an owner change as one.
#[test]
fn a_copy_from_a_stage_names_the_files_that_changed() {
    let none = BTreeMap::new();
    let with = |files: Vec<FileEntry>| KeyComponents { files, ..comps("COPY --from=build /out /app", 7) };
    let app = |content: &[u8], uid: u32| FileEntry {
        uid,
        ..FileEntry::regular("out/app", Some(crate::digest::Digest::of(content)))
    };
    let out = || FileEntry { kind: 'd', mode: 0o755, digest: None, ..FileEntry::regular("out", None) };
    let was = with(vec![out(), app(b"1", 0)]);
    assert_eq!(
        explain(&entries(was.clone()), &with(vec![out(), app(b"2", 0)]), &none).text(),
        "COPY --from=build /out: 1 file changed (out/app)"
    );
    assert_eq!(
        explain(&entries(was.clone()), &with(vec![out(), app(b"1", 1)]), &none).text(),
        "COPY --from=build /out: 1 file changed (out/app: owner 0:0 → 1:0)"
    );
    // The stage's key, recorded unhashed: why the files changed when they did, and nothing
    // when they did not (a stage that changed and made the same files is a hit).
    let at = |c: KeyComponents, key: &str| KeyComponents {
        sources: BTreeMap::from([("from:build".to_string(), key.to_string())]),
        ..c
    };
    let missed = BTreeMap::from([("s-new".to_string(), Missed { line: 3, reasons: vec!["ARG V 1 → 2".into()] })]);
    let changed = at(with(vec![out(), app(b"2", 0)]), "s-new");
    assert_eq!(
        explain(&entries(at(was.clone(), "s-old")), &changed, &missed).text(),
        "COPY --from=build /out: 1 file changed (out/app); stage build changed (line 3: ARG V 1 → 2)"
    );
    assert_eq!(at(was.clone(), "s-old").key(), at(was.clone(), "s-new").key(), "not hashed");
    let edited = KeyComponents { instruction: "COPY --from=build /out /app2".into(), ..at(was.clone(), "s-new") };
    assert_eq!(
        explain(&entries(at(was, "s-old")), &edited, &missed).text(),
        "instruction changed: COPY --from=build /out /app → COPY --from=build /out /app2"
    );
}
