//! Tests of `explain.rs`: the wording of each reason and which earlier entry is compared.

use super::*;
use crate::cache::key::{BaseInfo, ChainLink, FORMAT_VERSION, FileEntry, LinkInputs};
use crate::digest::Digest;

/// A RUN's components at line 5, on a busybox base (also `explain_cause_tests.rs`'s).
pub(super) fn comps(instr: &str) -> KeyComponents {
    KeyComponents {
        version: FORMAT_VERSION,
        platform: "linux/amd64".into(),
        layer_format: "gzip".into(),
        ignored: None,
        parent: "p0".into(),
        linked: None,
        instruction: instr.into(),
        vars: BTreeMap::new(),
        files: vec![],
        sources: BTreeMap::new(),
        user: None,
        shell: None,
        line: 5,
        written: None,
        origin: None,
        chain: vec![link(1, "FROM b", "p0")],
        base: Some(BaseInfo { reference: "localhost:5000/busybox:1.35".into(), digest: Some(Digest::of(b"old")) }),
    }
}

fn link(line: usize, instruction: &str, key: &str) -> ChainLink {
    ChainLink { line, instruction: instruction.into(), key: key.into(), inputs: None, stage_tail: Vec::new() }
}

fn file(p: &str, content: &[u8]) -> FileEntry {
    FileEntry::regular(p, Some(Digest::of(content)))
}

fn entry(key: &str, c: KeyComponents) -> Earlier {
    Earlier { key: key.into(), components: Box::new(c), created: Some(format!("created-{key}")) }
}

fn against(prev: KeyComponents, cur: &KeyComponents, missed: &BTreeMap<String, Missed>) -> String {
    explain(&Previous::Entries(vec![entry("e", prev)]), cur, missed).text()
}

fn with_var(mut c: KeyComponents, name: &str, value: &str) -> KeyComponents {
    c.vars.insert(name.into(), Var { kind: VarKind::Arg, value: Some(value.into()) });
    c
}

#[test]
fn wording() {
    let none = BTreeMap::new();
    let cur = comps("RUN make");
    assert_eq!(explain(&Previous::None, &cur, &none).text(), "no cache entry for this step yet");
    assert_eq!(against(comps("RUN make all"), &cur, &none), "instruction changed: RUN make all → RUN make");
    let a = with_var(comps("RUN make"), "VERSION", "1.0");
    let b = with_var(comps("RUN make"), "VERSION", "2.0");
    assert_eq!(against(a, &b, &none), "ARG VERSION 1.0 → 2.0");
    // An entry an older trowel wrote with a URL's credentials in clear: this build was never
    // given the old password, so only the explanation can mask it.
    let a = with_var(comps("RUN make"), "REPO", "https://user:old-pw@h/r.git");
    let b = with_var(comps("RUN make"), "REPO", "https://tok@h/r.git");
    assert_eq!(against(a, &b, &none), "ARG REPO https://user:***@h/r.git → https://***@h/r.git");

    let mut a = comps("COPY src/ /app/");
    a.files = vec![file("src/lib.rs", b"1"), file("src/main.rs", b"1"), file("src/old.rs", b"1")];
    let mut b = comps("COPY src/ /app/");
    b.files = vec![file("src/lib.rs", b"2"), file("src/main.rs", b"2"), file("src/new.rs", b"1")];
    assert_eq!(
        against(a, &b, &none),
        "COPY src/: 2 files changed (src/lib.rs, src/main.rs), 1 added (src/new.rs), 1 removed (src/old.rs)"
    );

    // A file whose content is the same changed in what else it is.
    let mut a = comps("COPY a.txt ./");
    a.files = vec![file("a.txt", b"1")];
    let mut b = a.clone();
    b.files[0].mode = 0o600;
    b.files[0].uid = 1000;
    assert_eq!(against(a, &b, &none), "COPY a.txt: 1 file changed (a.txt: mode 0644 → 0600, owner 0:0 → 1000:0)");
    // Or only in an extended attribute, whose value is recorded as a digest.
    let mut a = comps("COPY a.txt ./");
    a.files = vec![file("a.txt", b"1")];
    a.files[0].xattrs.insert("user.foo".into(), Digest::of(b"bar").to_string());
    let mut b = a.clone();
    b.files[0].xattrs.insert("user.foo".into(), Digest::of(b"baz").to_string());
    b.files[0].xattrs.insert("user.new".into(), Digest::of(b"1").to_string());
    assert_ne!(a.key(), b.key());
    assert_eq!(
        against(a, &b, &none),
        "COPY a.txt: 1 file changed (a.txt: xattr user.foo changed, xattr user.new added)"
    );
    // Other paths left out of snapshots (`None`: the default, /var/run alone).
    let a = comps("RUN make");
    let mut b = comps("RUN make");
    b.ignored = Some(vec!["/ign".into(), "/var/run".into()]);
    assert_eq!(against(a.clone(), &b, &none), "snapshots now leave out /ign (--ignore-path, --ignore-var-run)");
    let mut c = comps("RUN make");
    c.ignored = Some(vec![]);
    assert_eq!(
        against(b.clone(), &c, &none),
        "snapshots no longer leave out /ign, /var/run (--ignore-path, --ignore-var-run)"
    );
    let mut d = comps("RUN make");
    d.ignored = Some(vec!["/cache".into()]);
    assert_eq!(
        against(a, &d, &none),
        "snapshots now leave out /cache, no longer /var/run (--ignore-path, --ignore-var-run)"
    );
    // Hard links: a file that was one inode with another is now a copy of it, and back.
    let mut a = comps("COPY . /h/");
    a.files = vec![file("a", b"same2"), file("b", b"same2")];
    a.files[1].hard_link = Some("a".into());
    let mut b = a.clone();
    b.files[1].hard_link = None;
    assert_eq!(against(a.clone(), &b, &none), "COPY .: 1 file changed (b: hard link to a → separate file)");
    assert_eq!(against(b, &a, &none), "COPY .: 1 file changed (b: separate file → hard link to a)");
    // A RUN's files are its bind mounts' (it has no destination to leave out).
    let mut a = comps("RUN --mount=type=bind,source=b.txt,target=/b cat /b > bcopy");
    a.files = vec![file("b.txt", b"1")];
    let mut b = a.clone();
    b.files = vec![file("b.txt", b"2")];
    assert_eq!(against(a, &b, &none), "RUN's bind mounts: 1 file changed (b.txt)");
}

/// The case: built with VERSION=1.0, then 2.0, then a copied file changed and 1.0
/// again. The newest entry (2.0) differs in the ARG and the parent; the first only in the
/// parent, whose uncached COPY changed: that is what is named, with the entry compared.
#[test]
fn the_closest_entry_is_compared_and_every_difference_named() {
    let copy = |key: &str, content: &[u8]| {
        let mut c = comps("COPY app.txt /app.txt");
        c.files = vec![file("app.txt", content)];
        ChainLink {
            line: 3,
            instruction: "COPY app.txt /app.txt".into(),
            key: key.into(),
            inputs: Some(Box::new(LinkInputs::of(&c))),
            stage_tail: Vec::new(),
        }
    };
    let run = |version: &str, parent: ChainLink| {
        let mut c = with_var(comps("RUN echo $VERSION"), "VERSION", version);
        c.parent = parent.key.clone();
        c.chain.push(parent);
        c
    };
    let first = entry("k1", run("1.0", copy("copy-a", b"a")));
    let second = entry("k2", run("2.0", copy("copy-a", b"a")));
    let cur = run("1.0", copy("copy-b", b"b"));
    let e = explain(&Previous::Entries(vec![second.clone(), first.clone()]), &cur, &BTreeMap::new());
    assert_eq!(e.text(), "COPY app.txt at line 3: 1 file changed (app.txt)");
    assert_eq!(e.compared, Some(("k1".to_string(), Some("created-k1".to_string()))));
    // Compared with the newest alone, both differences are named.
    let e = explain(&Previous::Entries(vec![second]), &cur, &BTreeMap::new());
    assert_eq!(e.text(), "ARG VERSION 2.0 → 1.0; COPY app.txt at line 3: 1 file changed (app.txt)");
    // Equally close entries: the newest is compared.
    let again = entry("k0", run("1.0", copy("copy-a", b"a")));
    let e = explain(&Previous::Entries(vec![again, first]), &cur, &BTreeMap::new());
    assert_eq!(e.compared.unwrap().0, "k0");
}

/// A newest entry one input away, of this step's parent, settles the comparison: whatever else
/// is listed, it is the one compared. Two inputs away it does not, and an earlier entry may be
/// closer; nor does one that differs in its parent alone, as an earlier entry may have this
/// step's parent, and that one is compared.
#[test]
fn only_a_newest_entry_one_input_away_settles_the_comparison() {
    let run = |version: &str, parent: &str| {
        let mut c = with_var(comps("RUN echo $VERSION"), "VERSION", version);
        c.parent = parent.into();
        c
    };
    let cur = run("1.0", "copy-b");
    let one_away = entry("k2", run("2.0", "copy-b"));
    let two_away = entry("k3", run("2.0", "copy-a"));
    let other_parent = entry("k4", run("1.0", "copy-a"));
    let also_one_away = entry("k1", run("3.0", "copy-b"));
    assert!(settles(&one_away, &cur));
    assert!(settles(&one_away, &cur.inputs_only()), "the inputs alone decide");
    let compared =
        |entries: Vec<Earlier>| explain(&Previous::Entries(entries), &cur, &BTreeMap::new()).compared.unwrap().0;
    assert_eq!(compared(vec![one_away.clone(), also_one_away.clone(), two_away.clone()]), "k2");
    assert!(!settles(&two_away, &cur));
    assert_eq!(compared(vec![two_away, also_one_away.clone()]), "k1");
    assert!(!settles(&other_parent, &cur), "an earlier entry may have this parent");
    assert_eq!(compared(vec![other_parent.clone(), also_one_away]), "k1");
    // With no entry of this parent, the closest of the others.
    assert_eq!(compared(vec![entry("k5", run("2.0", "copy-a")), other_parent]), "k4");
    assert!(settles(&entry("k0", cur.clone()), &cur));
    // An entry of another instruction at this place never settles it: the entries it lists may
    // be this instruction's.
    let other = entry("k4", written(run("1.0", "copy-a"), "another"));
    assert!(!settles(&other, &written(cur.clone(), "this")));
}

/// kaniko's default `--cache-copy-layers=false`: a rename under a copied directory is named
/// for the RUN after the COPY, from the inputs its entry recorded.
#[test]
fn an_uncached_parent_is_named_with_what_changed() {
    let copy = |key: &str, names: &[&str]| {
        let mut c = comps("COPY src/ /second/");
        c.files = names.iter().map(|n| file(n, b"same")).collect();
        ChainLink {
            line: 3,
            instruction: "COPY src/ /second/".into(),
            key: key.into(),
            inputs: Some(Box::new(LinkInputs::of(&c))),
            stage_tail: Vec::new(),
        }
    };
    let mut prev = comps("RUN ls /second");
    prev.parent = "c1".into();
    prev.chain.push(copy("c1", &["src/a.txt", "src/b.txt"]));
    prev.chain.push(link(4, "RUN true", "r1"));
    prev.parent = "r1".into();
    let mut cur = comps("RUN ls /second");
    cur.chain.push(copy("c2", &["src/a.txt", "src/renamed.txt"]));
    cur.chain.push(link(4, "RUN true", "r2"));
    cur.parent = "r2".into();
    assert_eq!(
        against(prev.clone(), &cur, &BTreeMap::new()),
        "COPY src/ at line 3: 1 added (src/renamed.txt), 1 removed (src/b.txt)"
    );
    // An entry written before links carried inputs: the step is still named.
    for l in &mut prev.chain {
        l.inputs = None;
    }
    assert_eq!(against(prev, &cur, &BTreeMap::new()), "parent step changed (line 3: COPY src/ /second/)");
}

/// An uncached parent whose inputs are the same changed only with what every step's key has
/// (the paths snapshots leave out, the layer format): that is named once, not the parent.
#[test]
fn an_uncached_parent_changed_by_a_build_wide_part_is_not_named() {
    let copy = |key: &str| {
        let mut c = comps("COPY f /ign/");
        c.files = vec![file("f", b"f")];
        ChainLink {
            line: 2,
            instruction: "COPY f /ign/".into(),
            key: key.into(),
            inputs: Some(Box::new(LinkInputs::of(&c))),
            stage_tail: Vec::new(),
        }
    };
    let mut prev = comps("RUN make");
    prev.chain.push(copy("c1"));
    prev.parent = "c1".into();
    prev.ignored = Some(vec!["/ign".into(), "/var/run".into()]);
    let mut cur = comps("RUN make");
    cur.chain.push(copy("c2"));
    cur.parent = "c2".into();
    assert_eq!(
        against(prev.clone(), &cur, &BTreeMap::new()),
        "snapshots no longer leave out /ign (--ignore-path, --ignore-var-run)"
    );
    prev.ignored = None;
    prev.layer_format = "zstd".into();
    assert_eq!(against(prev.clone(), &cur, &BTreeMap::new()), "layer format changed (zstd → gzip)");
    // Without a build-wide change, the parent is still named.
    prev.layer_format = "gzip".into();
    assert_eq!(against(prev, &cur, &BTreeMap::new()), "parent step changed (line 2: COPY f /ign/)");
}

#[test]
fn linked_steps_and_git_sources() {
    let none = BTreeMap::new();
    let mut a = comps("COPY --link a.txt rel/");
    a.parent = String::new();
    a.linked = Some("/srv/rel/".into());
    let mut b = a.clone();
    b.linked = Some("/app/rel/".into());
    assert_eq!(against(a.clone(), &b, &none), "WORKDIR changed: destination /srv/rel/ → /app/rel/");
    // A linked step has no parent to blame: a changed chain before it is not a reason.
    let mut c = a.clone();
    c.chain.push(link(2, "RUN x", "other"));
    c.files = vec![file("a.txt", b"2")];
    assert_eq!(against(a, &c, &none), "COPY a.txt: 1 added (a.txt)");

    let mut g1 = comps("ADD https://h/r.git#main /src");
    g1.sources.insert("git:https://h/r.git#main".into(), "1111111111112222".into());
    let mut g2 = g1.clone();
    g2.sources.insert("git:https://h/r.git#main".into(), "3333333333334444".into());
    assert_eq!(against(g1, &g2, &none), "git https://h/r.git#main now 333333333333 (was 111111111111)");
}

#[test]
fn chain_reasons() {
    let mut prev = comps("RUN make");
    prev.parent = "k-old".into();
    prev.chain.push(link(3, "COPY . /src", "k-old"));
    let mut cur = comps("RUN make");
    cur.parent = "k-new".into();
    cur.chain.push(link(3, "COPY . /src", "k-new"));
    let mut missed = BTreeMap::new();
    missed.insert("k-new".to_string(), Missed { line: 3, reasons: vec!["COPY .: 1 added (x)".into()] });
    assert_eq!(against(prev.clone(), &cur, &missed), "parent step missed (line 3: COPY .: 1 added (x))");
    assert_eq!(against(prev.clone(), &cur, &BTreeMap::new()), "parent step changed (line 3: COPY . /src)");
    // A step more before it than in the entry (a line added above), compared in a recorded
    // build where nothing missed (`replay --compare`): the added step is the change.
    let mut longer = prev.clone();
    longer.chain.push(link(4, "RUN echo new", "k-added"));
    longer.parent = "k-added".into();
    assert_eq!(against(prev.clone(), &longer, &BTreeMap::new()), "parent step changed (line 4: RUN echo new)");
    // The parent missed for the ARG this step names already: said once.
    let mut missed = BTreeMap::new();
    missed.insert("k-new".to_string(), Missed { line: 3, reasons: vec!["ARG V 1 → 2".into()] });
    let (p, c) = (with_var(prev, "V", "1"), with_var(cur, "V", "2"));
    assert_eq!(against(p, &c, &missed), "ARG V 1 → 2");

    let mut prev = comps("RUN make");
    prev.parent = "root-old".into();
    prev.chain[0].key = "root-old".into();
    let mut cur = comps("RUN make");
    cur.parent = "root-new".into();
    cur.chain[0].key = "root-new".into();
    cur.base.as_mut().unwrap().digest = Some(Digest::of(b"new"));
    assert_eq!(
        against(prev, &cur, &BTreeMap::new()),
        format!(
            "base image localhost:5000/busybox:1.35 now {}… (was {}…)",
            &Digest::of(b"new").as_str()[..19],
            &Digest::of(b"old").as_str()[..19]
        )
    );
}
/// Of entries equally far in the distance (a changed parent counts once), the one with
/// fewer causes to name is compared: built with the directory's file, then without it,
/// then with it again and V changed, the RUN after both is explained by V alone, not by a
/// file "added" relative to the build that lacked it.
#[test]
fn of_equally_distant_entries_the_one_with_fewer_causes_is_compared() {
    let copy = |key: &str, names: &[&str]| {
        let mut c = comps("COPY dir/ ./dir/");
        c.files = names.iter().map(|n| file(n, b"1")).collect();
        ChainLink { inputs: Some(Box::new(LinkInputs::of(&c))), ..link(8, "COPY dir/ ./dir/", key) }
    };
    let run = |v: &str, copy_link: ChainLink, run_key: &str| {
        let mut c = with_var(comps("RUN cat /b"), "V", v);
        c.chain = vec![link(1, "FROM b", "p0"), copy_link, link(9, "RUN echo $V", run_key)];
        c.parent = run_key.into();
        c
    };
    let cur = run("3", copy("copy-with", &["dir/one"]), "run-3");
    let newest = entry("without", run("2", copy("copy-without", &[]), "run-2-without"));
    let older = entry("with", run("2", copy("copy-with", &["dir/one"]), "run-2-with"));
    let missed = BTreeMap::from([("run-3".to_string(), Missed { line: 9, reasons: vec!["ARG V 2 → 3".into()] })]);
    let e = explain(&Previous::Entries(vec![newest, older]), &cur, &missed);
    assert_eq!(e.compared.as_ref().unwrap().0, "with");
    assert_eq!(e.text(), "ARG V 2 → 3");
}

/// A stage read from says why it changed when its last step missed in this build, and a
/// step after an uncached COPY from it does not say so twice.
#[test]
fn a_changed_stage_says_why_once() {
    let from = |stage_key: &str| {
        let mut c = comps("COPY --from=0 /app/v /v");
        c.sources = BTreeMap::from([("stage:0".to_string(), stage_key.to_string())]);
        c
    };
    let missed = BTreeMap::from([("s-new".to_string(), Missed { line: 10, reasons: vec!["ARG V 2 → 3".into()] })]);
    let e = explain(&Previous::Entries(vec![entry("e", from("s-old"))]), &from("s-new"), &missed);
    assert_eq!(e.text(), "stage 0 changed (line 10: ARG V 2 → 3)");

    let second = |stage_key: &str, copy_key: &str| {
        let mut c = comps("COPY --from=0 /app/dir /dir");
        c.sources = BTreeMap::from([("stage:0".to_string(), stage_key.to_string())]);
        let first = from(stage_key);
        c.chain = vec![
            link(1, "FROM b", "p0"),
            ChainLink {
                inputs: Some(Box::new(LinkInputs::of(&first))),
                ..link(12, "COPY --from=0 /app/v /v", copy_key)
            },
        ];
        c.parent = copy_key.into();
        c
    };
    let e = explain(&Previous::Entries(vec![entry("e", second("s-old", "c-old"))]), &second("s-new", "c-new"), &missed);
    assert_eq!(e.text(), "stage 0 changed (line 10: ARG V 2 → 3)");
}

fn written(mut c: KeyComponents, text: &str) -> KeyComponents {
    c.written = Some(text.to_string());
    c
}

/// Entries are found by a step's place: after a line was added above, the place holds another
/// instruction's entries, whose variables, files and mounts are no cause of this miss.
#[test]
fn another_instructions_entry_is_not_compared() {
    let none = BTreeMap::new();
    // The added step itself (its ancestors all hit): what the place held.
    let mut old = written(comps("COPY f.txt /"), "copy-f");
    old.line = 3;
    old.files = vec![file("f.txt", b"x")];
    let mut added = written(with_var(comps("RUN echo new > /new"), "V", "1"), "run-new");
    added.line = 3;
    added.files = vec![];
    assert_eq!(
        against(old.clone(), &added, &none),
        "no cache entry for this instruction yet (its place in the stage held line 3: COPY f.txt /)"
    );
    // The steps after it: the added step missed, which is their cause.
    let mut moved = written(comps("COPY f.txt /"), "copy-f");
    moved.line = 4;
    moved.chain.push(link(3, "RUN echo new > /new", "k-added"));
    let mut missed = BTreeMap::new();
    missed.insert(
        "k-added".to_string(),
        Missed { line: 3, reasons: vec!["no cache entry for this instruction yet".into()] },
    );
    let mut held = written(comps("RUN echo $V > /v"), "run-v");
    held.line = 4;
    assert_eq!(against(held, &moved, &missed), "parent step missed (line 3: no cache entry for this instruction yet)");
    // An edit in place (same keyword, same line, everything before it served) is a changed text.
    let edited = written(comps("COPY g.txt /"), "copy-g");
    let mut before_edit = written(comps("COPY f.txt /"), "copy-f");
    before_edit.line = edited.line;
    assert_eq!(against(before_edit.clone(), &edited, &none), "instruction changed: COPY f.txt / → COPY g.txt /");
    // The same place in another repository's Dockerfile (a cache repository shared by projects):
    // what it held and for which repository, never taken for an edit of this one.
    let (mut mine, mut theirs) = (edited.clone(), before_edit);
    mine.origin = Some("reg.example/team/app".into());
    theirs.origin = Some("reg.example/team/other".into());
    assert_eq!(
        against(theirs.clone(), &mine, &none),
        "no cache entry for this instruction yet (its place in the stage held line 5: COPY f.txt /, made for \
         reg.example/team/other)"
    );
    theirs.origin = mine.origin.clone();
    assert_eq!(against(theirs, &mine, &none), "instruction changed: COPY f.txt / → COPY g.txt /");
    // Entries that did not record the text are compared as before.
    assert_eq!(
        against(comps("RUN make all"), &written(comps("RUN make"), "run-make"), &none),
        "instruction changed: RUN make all → RUN make"
    );
}

/// The ancestor where the compared entry's chain first differs was served from the cache in
/// this build (from another of its entries): a later ancestor that missed is the cause, not it.
#[test]
fn an_ancestor_served_from_the_cache_is_not_blamed() {
    let mut prev = comps("COPY g.txt /");
    prev.parent = "run-old".into();
    prev.chain.push(link(4, "COPY f.txt /", "copy-y"));
    prev.chain.push(link(5, "RUN echo $V > /v", "run-old"));
    let mut cur = comps("COPY g.txt /");
    cur.parent = "run-new".into();
    cur.chain.push(link(4, "COPY f.txt /", "copy-x"));
    cur.chain.push(link(5, "RUN echo $V > /v", "run-new"));
    let mut missed = BTreeMap::new();
    missed.insert("run-new".to_string(), Missed { line: 5, reasons: vec!["ARG V 1 → 2".into()] });
    assert_eq!(against(prev, &cur, &missed), "parent step missed (line 5: ARG V 1 → 2)");
}

/// A bind mount from a stage that changed is said as `COPY --from`'s source is: which stage, and
/// why it changed, not only that the mount did.
#[test]
fn a_mounted_stage_that_changed_says_why() {
    let spec = "type=bind,from=build,source=/out,target=/in,ro";
    let with = |key: &str| {
        let mut c = comps("RUN --mount=type=bind,from=build,source=/out,target=/in cp /in/app /app");
        c.sources.insert("mount /in".into(), format!("{spec} stage-key={key}"));
        c
    };
    let mut missed = BTreeMap::new();
    missed.insert("k-new".to_string(), Missed { line: 4, reasons: vec!["ARG OV 1 → 2".into()] });
    assert_eq!(
        against(with("k-old"), &with("k-new"), &missed),
        "mount /in: stage build changed (line 4: ARG OV 1 → 2)"
    );
    assert_eq!(against(with("k-old"), &with("k-other"), &missed), "mount /in: stage build changed");
    // Another spec is the mount that changed.
    let mut other = with("k-old");
    other.sources.insert("mount /in".into(), "type=bind,from=build,source=/dist,target=/in,ro stage-key=k-old".into());
    assert_eq!(against(with("k-old"), &other, &missed), "mount /in changed");
}

/// The audit's case: built with app.txt v1 and VER=1, then v2 and 2, then 3, then v3 and 3 again,
/// then VER=4. Line 7 (`COPY app.txt`) is served from the cache (build 4's entry); line 8 (`COPY
/// --from=builder`) has build 4's entry in the layer store, of the same parent, and build 1's
/// layer reference record in the cache repository (only build 1 pushed). It is compared with
/// build 4's: the stage alone changed, not app.txt; and the stage's change is said apart from
/// anything else.
#[test]
fn a_step_is_compared_with_its_newest_entry_of_the_same_parent_across_both_stores() {
    let copy_app = |key: &str, content: &[u8]| {
        let mut c = comps("COPY app.txt /app.txt");
        c.files = vec![file("app.txt", content)];
        ChainLink { inputs: Some(Box::new(LinkInputs::of(&c))), ..link(7, "COPY app.txt /app.txt", key) }
    };
    let from_builder = |stage_key: &str, parent: ChainLink, created: &str| {
        let mut c = comps("COPY --from=builder /ver /ver");
        c.line = 8;
        c.sources = BTreeMap::from([("stage:builder".to_string(), stage_key.to_string())]);
        c.parent = parent.key.clone();
        c.chain.push(parent);
        Earlier { key: format!("e-{stage_key}-{created}"), components: Box::new(c), created: Some(created.into()) }
    };
    let b1 = from_builder("s1", copy_app("c1", b"v1"), "2026-12-06T04:25:01Z");
    let b2 = from_builder("s2", copy_app("c2", b"v2-longer"), "2026-12-06T04:25:02Z");
    let b3 = from_builder("s3", copy_app("c2", b"v2-longer"), "2026-12-06T04:25:03Z");
    let b4 = from_builder("s3", copy_app("c3", b"v3"), "2026-12-06T04:25:04Z");
    let cur = *from_builder("s4", copy_app("c3", b"v3"), "now").components;
    // The layer store's entries (newest first) and the repository's record, as one list.
    let merged = merge(vec![b4.clone(), b3.clone(), b2.clone()], vec![b1.clone()]);
    let keys: Vec<&str> = merged.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, [&b4.key, &b3.key, &b2.key, &b1.key]);
    // Either way round, and with an entry in both.
    let keys = |m: Vec<Earlier>| m.into_iter().map(|e| e.key).collect::<Vec<_>>();
    assert_eq!(keys(merge(vec![b1.clone()], vec![b4.clone(), b1.clone()])), [b4.key.clone(), b1.key.clone()]);
    let e = explain(&Previous::Entries(merged), &cur, &BTreeMap::new());
    assert_eq!(e.compared.as_ref().unwrap().0, b4.key);
    assert_eq!(e.text(), "stage builder changed");
    // The repository's record alone, before: app.txt named as if this build had changed it.
    let e = explain(&Previous::Entries(vec![b1]), &cur, &BTreeMap::new());
    assert_eq!(e.text(), "stage builder changed; COPY app.txt at line 7: 1 file changed (app.txt)");
    assert!(settles(&b4, &cur));
}

/// A chain as a trace records it (no inputs of its links): with only a build-wide part
/// changed, no link of the same text is named; one whose text changed is. An ARG link is named
/// with the value the step saw, not the Dockerfile's default.
#[test]
fn a_chain_without_inputs_names_no_unchanged_line_for_a_build_wide_change() {
    let step = |arg_key: &str, run: &str| {
        let mut c = with_var(comps("RUN echo $VERSION"), "VERSION", "2.0");
        c.chain.push(link(2, "ARG VERSION=1.0", arg_key));
        c.chain.push(link(3, run, &format!("{arg_key}-{run}")));
        c.parent = format!("{arg_key}-{run}");
        c
    };
    let prev = step("a1", "WORKDIR /app");
    let mut cur = step("a2", "WORKDIR /app");
    cur.ignored = Some(vec!["/tmp".into(), "/var/run".into()]);
    assert_eq!(
        against(prev.clone(), &cur, &BTreeMap::new()),
        "snapshots now leave out /tmp (--ignore-path, --ignore-var-run)"
    );
    let mut edited = step("a2", "WORKDIR /srv");
    edited.ignored = cur.ignored.clone();
    assert_eq!(
        against(prev.clone(), &edited, &BTreeMap::new()),
        "line 3: instruction changed: WORKDIR /app → WORKDIR /srv; snapshots now leave out /tmp (--ignore-path, --ignore-var-run)"
    );
    // No build-wide change: the ARG link is named as the build ran it.
    let mut short = prev;
    short.chain.truncate(1);
    assert_eq!(
        against(short, &step("a2", "WORKDIR /app"), &BTreeMap::new()),
        "parent step changed (line 2: ARG VERSION=2.0)"
    );
}
