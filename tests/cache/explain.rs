//! Cache misses explained, word for word: a changed instruction or parent, a changed parent
//! stage named, the closest earlier entry compared (one input away: without fetching the
//! others), an uncached COPY's changed files, a moved line, what changed in a base stage's
//! uncached end, an uncached step's edit or USER.

use super::*;

#[test]
fn changed_instruction_and_parent_are_explained() {
    let c = Ctx::new("instr", &format!("{}RUN echo a > /a\nRUN echo b > /b\n", from()));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), format!("{}RUN echo A > /a\nRUN echo b > /b\n", from())).unwrap();
    let o = c.build(&[]);
    let edit = "instruction changed: RUN echo a > /a → RUN echo A > /a";
    assert_eq!(o.at(2), format!("miss: {edit}"));
    assert_eq!(o.at(3), format!("miss: parent step missed (line 2: {edit})"));
    // An ENV before a RUN is named as the change.
    std::fs::write(c.path().join("Dockerfile"), format!("{}ENV MODE=dev\nRUN echo A > /a\n", from())).unwrap();
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), format!("{}ENV MODE=prod\nRUN echo A > /a\n", from())).unwrap();
    assert_eq!(c.build(&[]).at(3), "miss: ENV MODE dev → prod");
}

#[test]
fn a_changed_parent_stage_is_named() {
    let c = Ctx::new(
        "stagechain",
        &format!("{} AS builder\nRUN echo v1 > /v\nFROM builder\nRUN cat /v > /copy\n", from().trim_end()),
    );
    c.build(&[]);
    std::fs::write(
        c.path().join("Dockerfile"),
        format!("{} AS builder\nRUN echo v2 > /v\nFROM builder\nRUN cat /v > /copy\n", from().trim_end()),
    )
    .unwrap();
    let o = c.build(&[]);
    let edit = "instruction changed: RUN echo v1 > /v → RUN echo v2 > /v";
    assert_eq!(o.at(2), format!("miss: {edit}"));
    // Which step of the base stage changed, and how: its own explanation.
    assert_eq!(o.at(4), format!("miss: base stage \"builder\" changed (line 2: {edit})"));
}

/// The key of the entry a miss was explained against (`compared_with`), by line.
fn compared_with(o: &Outcome, line: usize) -> Option<(String, Option<String>)> {
    o.events.iter().find(|e| e["event"] == "cache_lookup" && e["components"]["line"] == line).and_then(|e| {
        let c = &e["result"]["compared_with"];
        c["key"].as_str().map(|k| (k.to_string(), c["created"].as_str().map(str::to_string)))
    })
}

/// The key a step's lookup was made with, by line.
fn key_at(o: &Outcome, line: usize) -> String {
    o.events
        .iter()
        .find(|e| e["event"] == "cache_lookup" && e["components"]["line"] == line)
        .map(|e| e["key"].as_str().unwrap().to_string())
        .unwrap()
}

/// Issue 15: built with VERSION=1.0, then 2.0, then a copied file changed and 1.0 again. The
/// newest entry of the RUN is 2.0's, which differs in the ARG and the parent; the first build's
/// differs only in the parent (the COPY, whose file changed): that one is compared, and the
/// miss names the file, not the ARG, and says which entry it compared with.
#[test]
fn a_miss_is_explained_against_the_closest_earlier_entry() {
    let c = Ctx::new(
        "closest",
        &format!("{}ARG VERSION\nCOPY app.txt /app.txt\nRUN echo \"$VERSION\" > /version\n", from()),
    );
    c.write("app.txt", "one\n");
    let first = c.build_timed(&["--build-arg", "VERSION=1.0"]);
    let second = c.build_timed(&["--build-arg", "VERSION=2.0"]);
    assert_eq!(second.at(4), "miss: ARG VERSION 1.0 → 2.0");
    assert_eq!(compared_with(&second, 4).unwrap().0, key_at(&first, 4));
    c.write("app.txt", "two\n");
    let o = c.build_timed(&["--build-arg", "VERSION=1.0"]);
    assert_eq!(o.at(3), "miss: COPY app.txt: 1 file changed (app.txt)");
    assert_eq!(o.at(4), "miss: parent step missed (line 3: COPY app.txt: 1 file changed (app.txt))");
    let (key, created) = compared_with(&o, 4).expect("the entry compared with is named");
    assert_eq!(key, key_at(&first, 4), "the first build's entry, not the newest");
    assert!(created.is_some_and(|t| t.ends_with('Z')), "when it was made");
    assert!(o.log.contains("(compared with the entry made "), "{}", o.log);
}

/// Issue 17: a miss whose newest earlier entry differs in one input only (the commonest: one
/// change since the last build) is explained against that entry without fetching the earlier
/// entries it lists, none of which can be closer — in a CI pipeline's steady state that was up
/// to 8 more manifests and configs per missed step. When the newest differs in more, the
/// earlier ones are still fetched and the closest is still found.
#[test]
fn a_one_change_miss_is_explained_without_fetching_the_earlier_entries() {
    let proxy = faults::FaultProxy::start(&env().registry);
    let c = Ctx::at(&proxy.addr, "settles", &format!("{}ARG V\nCOPY app.txt /app.txt\nRUN echo \"$V\" > /v\n", from()));
    let manifests_fetched = |from: usize| -> Vec<String> {
        let path = c.cache_repo.split_once('/').unwrap().1;
        let prefix = format!("GET /v2/{path}/manifests/");
        proxy.seen()[from..].iter().filter_map(|s| s.strip_prefix(&prefix).map(str::to_string)).collect()
    };
    c.write("app.txt", "one\n");
    let first = c.build_timed(&["--build-arg", "V=1"]);
    let second = c.build_timed(&["--build-arg", "V=2"]);
    assert_eq!(second.at(4), "miss: ARG V 1 → 2");
    // The RUN's pointer now names the second build's entry, which lists the first's.
    let before = proxy.seen().len();
    let third = c.build_timed(&["--build-arg", "V=3"]);
    assert_eq!(third.at(4), "miss: ARG V 2 → 3");
    assert_eq!(compared_with(&third, 4).unwrap().0, key_at(&second, 4));
    let fetched = manifests_fetched(before);
    assert!(!fetched.contains(&key_at(&first, 4)), "an earlier entry was fetched: {fetched:?}");
    assert!(fetched.contains(&key_at(&third, 4)), "the lookup itself: {fetched:?}");

    // The file changed and V is back to 1: the newest entry (V=3) differs in the ARG and the
    // parent, the first build's in the parent only: the earlier entries are fetched, and the
    // first build's is the one compared with.
    c.write("app.txt", "two\n");
    let before = proxy.seen().len();
    let o = c.build_timed(&["--build-arg", "V=1"]);
    assert_eq!(o.at(3), "miss: COPY app.txt: 1 file changed (app.txt)");
    assert_eq!(o.at(4), "miss: parent step missed (line 3: COPY app.txt: 1 file changed (app.txt))");
    assert_eq!(compared_with(&o, 4).unwrap().0, key_at(&first, 4));
    let fetched = manifests_fetched(before);
    assert!(fetched.contains(&key_at(&first, 4)), "{fetched:?}");
    assert!(fetched.contains(&key_at(&second, 4)), "{fetched:?}");
}

/// Issue 15, with kaniko's default `--cache-copy-layers=false`: a renamed file under a copied
/// directory is named for the RUN after the COPY (in the log and the trace), from the COPY's
/// inputs that the RUN's entry recorded.
#[test]
fn a_miss_caused_by_an_uncached_copy_names_what_changed_in_it() {
    let c = Ctx::new("uncached", &format!("{}WORKDIR /app\nCOPY src/ /second/\nRUN ls /second > /listing\n", from()));
    c.write("src/a.txt", "a\n");
    c.write("src/b.txt", "b\n");
    c.build_run_layers_only(&[]);
    std::fs::rename(c.path().join("src/b.txt"), c.path().join("src/renamed.txt")).unwrap();
    let o = c.build_run_layers_only(&[]);
    let want = "COPY src/ at line 3: 1 added (src/renamed.txt), 1 removed (src/b.txt)";
    assert_eq!(o.at(4), format!("miss: {want}"));
    assert!(o.log.contains(&format!("Cache miss: {want}")), "{}", o.log);
    assert_eq!(o.at(2), "hit");
}

/// A line added above steps that were cached: the entries at each step's place are another
/// instruction's, and are not compared (they named the other step's variables and files, and
/// its bind mounts, as this one's changes).
#[test]
fn a_line_added_above_is_the_cause_named() {
    let df = |added: &str| format!("{}ARG V=1\n{added}COPY f.txt /\nRUN echo $V > /v\nCOPY g.txt /\n", from());
    let c = Ctx::new("inserted", &df(""));
    c.write("f.txt", "x\n");
    c.write("g.txt", "g\n");
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), df("RUN echo new > /new\n")).unwrap();
    let o = c.build(&[]);
    let added = "inserted step (its place in the stage held COPY f.txt /, now at line 4)";
    assert_eq!(o.at(3), format!("miss: {added}"));
    assert_eq!(o.at(4), format!("miss: parent step missed (line 3: {added})"));
    assert_eq!(o.at(5), format!("miss: parent step missed (line 3: {added})"));
    // The last step's place had no entry at all: the added step is its cause too.
    assert_eq!(o.at(6), format!("miss: parent step missed (line 3: {added})"));
}

/// Built with f.txt `x`, then `y`, then `x` again with another ARG: the COPY is served from the
/// first build's entry, the RUN misses for the ARG, and the COPY after it is explained by that
/// miss — not by the COPY, which this build took from the cache.
#[test]
fn a_step_served_from_the_cache_is_not_blamed() {
    let c = Ctx::new("flipback", &format!("{}ARG V=1\nCOPY f.txt /\nRUN echo $V > /v\nCOPY g.txt /\n", from()));
    c.write("g.txt", "g\n");
    c.write("f.txt", "x\n");
    c.build(&[]);
    c.write("f.txt", "y\n");
    c.build(&[]);
    c.write("f.txt", "x\n");
    let o = c.build(&["--build-arg", "V=2"]);
    assert_eq!(o.at(3), "hit");
    assert_eq!(o.at(4), "miss: ARG V 1 → 2");
    assert_eq!(o.at(5), "miss: parent step missed (line 4: ARG V 1 → 2)");
}

/// A COPY's entries are in this machine's layer store, and its layer reference records (written
/// only by a build that pushed) in the cache repository: a miss is explained against both, the
/// newest of the same parent first. Only the first build pushed, so the repository's record of
/// the `COPY --from` (line 8) is that build's; its newest entry is the fourth build's, in the
/// layer store, against which the stage alone changed (VER 3 → 4). The repository's record
/// alone named app.txt, whose COPY (line 7) was served from the cache.
#[test]
fn a_copy_is_explained_against_its_newest_entry_of_either_store() {
    let df = format!(
        "{} AS builder\nARG VER=1\nRUN echo \"ver $VER\" > /ver\nCOPY keep.txt /keep.txt\n\n{}COPY app.txt /app.txt\nCOPY --from=builder /ver /ver\nRUN cat /ver /app.txt > /combined\n",
        from().trim_end(),
        from()
    );
    let c = Ctx::new("both-stores", &df);
    let cache_dir = tempfile::tempdir().unwrap();
    let dir = cache_dir.path().to_str().unwrap();
    let build = |app: &str, ver: &str, push: bool| {
        c.write("app.txt", app);
        let arg = format!("VER={ver}");
        let mut extra = vec!["--cache-dir", dir, "--build-arg", &arg];
        if !push {
            extra.push("--no-push");
        }
        c.run_build(&[], &[], &extra)
    };
    c.write("keep.txt", "keep\n");
    build("v1\n", "1", true);
    build("v2-longer\n", "2", false);
    build("v2-longer\n", "3", false);
    let fourth = build("v3\n", "3", false);
    let o = build("v3\n", "4", false);
    assert_eq!(o.at(7), "hit");
    assert_eq!(o.at(8), "miss: COPY --from=builder /ver: 1 file changed (ver); stage builder changed");
    assert_eq!(compared_with(&o, 8).unwrap().0, key_at(&fourth, 8));
}

/// Two projects sharing a cache repository, each with a `Dockerfile` at its root (their steps'
/// places share pointer tags): one's miss at a place the other's step held names that step and
/// the repository it was made for, never "instruction text changed"; a project's own edit still
/// is one.
#[test]
fn another_projects_step_at_the_same_place_is_not_taken_for_an_edit() {
    let a = Ctx::new("shared-a", &format!("{}RUN echo a > /a\n", from()));
    let mut b = Ctx::new("shared-b", &format!("{}RUN echo b > /b\n", from()));
    b.cache_repo = a.cache_repo.clone();
    a.build(&[]);
    let a_repo = a.dest.trim_end_matches(":latest");
    assert_eq!(
        b.build(&[]).at(2),
        format!(
            "miss: no cache entry for this instruction yet (its place in the stage held line 2: RUN echo a > /a, made \
             for {a_repo})"
        )
    );
    std::fs::write(b.path().join("Dockerfile"), format!("{}RUN echo B > /b\n", from())).unwrap();
    assert_eq!(b.build(&[]).at(2), "miss: instruction changed: RUN echo b > /b → RUN echo B > /b");
}

/// A copied directory whose mode changed is called a directory, not a file.
#[test]
fn a_changed_directory_is_called_a_directory() {
    use std::os::unix::fs::PermissionsExt;
    let c = Ctx::new("dirmode", &format!("{}COPY src/ /src/\n", from()));
    c.write("src/sub/a.txt", "a\n");
    let sub = c.path().join("src/sub");
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    c.build(&[]);
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
    c.write("src/a.txt", "new\n");
    assert_eq!(
        c.build(&[]).at(2),
        "miss: COPY src/: 1 directory changed (src/sub: mode 0755 → 0700), 1 added (src/a.txt)"
    );
}

/// A RUN inserted at the line of an existing RUN (pushed down a line) is named as inserted, not
/// as an edit of the RUN that held its place; an edit says what the text was and is.
#[test]
fn a_step_inserted_at_a_runs_line_is_named_as_inserted() {
    let df = |inserted: &str| format!("{}RUN echo a > /a\n{inserted}RUN echo b > /b\n", from());
    let c = Ctx::new("inserted-run", &df(""));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), df("RUN echo x\n")).unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(2), "hit");
    let inserted = "inserted step (its place in the stage held RUN echo b > /b, now at line 4)";
    assert_eq!(o.at(3), format!("miss: {inserted}"));
    assert_eq!(o.at(4), format!("miss: parent step missed (line 3: {inserted})"));
    std::fs::write(c.path().join("Dockerfile"), df("RUN echo x -j4\n")).unwrap();
    assert_eq!(c.build(&[]).at(3), "miss: instruction changed: RUN echo x → RUN echo x -j4");
}

/// kaniko's defaults (COPY layers uncached): a stage read by an uncached `COPY --from`, changed
/// by an uncached COPY in it. The steps after say where the stage was read and what changed in
/// it, each once: not `stage builder changed (line 5: COPY big at line 3: …) (line 7)`.
#[test]
fn a_stage_read_by_an_uncached_copy_names_its_cause_once() {
    let df = format!(
        "{} AS builder\nWORKDIR /w\nCOPY big /w/big\nRUN wc -c big > /w/size\n{}COPY --from=builder /w/size /size\n\
         RUN cat /size > /o\n",
        from().trim_end(),
        from()
    );
    let c = Ctx::new("stage-cause", &df);
    c.write("big", "one\n");
    c.build_run_layers_only(&[]);
    c.write("big", "two two\n");
    let o = c.build_run_layers_only(&[]);
    let why = "COPY big at line 3: 1 file changed (big)";
    assert_eq!(o.at(4), format!("miss: {why}"));
    assert_eq!(
        o.at(7),
        format!("miss: COPY --from=builder /w/size at line 6: 1 file changed (w/size); stage builder changed ({why})")
    );
}

/// kaniko's defaults: a stage built `FROM` a stage whose COPY changed says which step of it
/// changed and how, not only `base stage changed (FROM base)`.
#[test]
fn a_child_stage_says_what_changed_in_its_base() {
    let df = format!(
        "{} AS base\nCOPY app.conf /etc/app.conf\nRUN cat /etc/app.conf > /seen\nFROM base\nRUN cat /seen > /copy\n",
        from().trim_end()
    );
    let c = Ctx::new("base-cause", &df);
    c.write("app.conf", "a\n");
    c.build_run_layers_only(&[]);
    c.write("app.conf", "bb\n");
    let o = c.build_run_layers_only(&[]);
    let why = "COPY app.conf at line 2: 1 file changed (app.conf)";
    assert_eq!(o.at(3), format!("miss: {why}"));
    assert_eq!(o.at(5), format!("miss: base stage \"base\" changed ({why})"));
}

/// Two lines swapped: the one that moved up was at a later place before, so it is named as
/// moved (not "inserted step", which it was not), and the other one as missing because of that
/// move. A step moved up over several lines says where it was.
#[test]
fn swapped_and_moved_lines_are_named_as_moved() {
    let df = |runs: &[&str]| {
        format!("{}{}", from(), runs.iter().map(|r| format!("RUN echo {r} > /{r}\n")).collect::<String>())
    };
    let c = Ctx::new("swapped", &df(&["a", "b"]));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), df(&["b", "a"])).unwrap();
    let o = c.build(&[]);
    let moved = "moved from line 3, swapped with RUN echo a > /a (now at line 3)";
    assert_eq!(o.at(2), format!("miss: {moved}"));
    assert_eq!(o.at(3), format!("miss: parent step missed (line 2: {moved})"));

    let c = Ctx::new("moved-up", &df(&["a", "b", "c", "d"]));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), df(&["d", "a", "b", "c"])).unwrap();
    let o = c.build(&[]);
    let moved = "moved from line 5 (its place in the stage held RUN echo a > /a, now at line 3)";
    assert_eq!(o.at(2), format!("miss: {moved}"));
    assert_eq!(o.at(5), format!("miss: parent step missed (line 2: {moved})"));
}

/// kaniko's defaults: a stage built `FROM` a stage that ends with a COPY (not cached itself, so
/// no miss of its own in this build to name) says which file of that COPY changed.
#[test]
fn a_child_of_a_stage_ending_with_an_uncached_copy_names_the_file() {
    let df = format!(
        "{} AS base\nCOPY app.conf /etc/app.conf\nFROM base\nRUN cat /etc/app.conf > /copy\n",
        from().trim_end()
    );
    let c = Ctx::new("base-tail", &df);
    c.write("app.conf", "a\n");
    c.build_run_layers_only(&[]);
    c.write("app.conf", "bb\n");
    let o = c.build_run_layers_only(&[]);
    assert_eq!(o.at(4), "miss: base stage \"base\" changed (COPY app.conf at line 2: 1 file changed (app.conf))");
}

/// kaniko's defaults: an uncached COPY whose text changed, named for the RUN after it in the
/// words of any edit (`instruction changed: … → …`), with its line.
#[test]
fn an_edited_uncached_step_is_named_as_an_edit() {
    let df = |dest: &str| format!("{}COPY f.txt {dest}\nRUN ls / > /l\n", from());
    let c = Ctx::new("link-edit", &df("/a/"));
    c.write("f.txt", "f\n");
    c.build_run_layers_only(&[]);
    std::fs::write(c.path().join("Dockerfile"), df("/b/")).unwrap();
    let o = c.build_run_layers_only(&[]);
    assert_eq!(o.at(3), "miss: line 2: instruction changed: COPY f.txt /a/ → COPY f.txt /b/");
}

/// `--cache-run-layers=false`: a RUN is not cached itself, so the COPY after it names the USER
/// the RUN ran as, which its entry records, not the RUN as a changed parent step.
#[test]
fn a_changed_user_of_an_uncached_run_is_named() {
    let df = |user: &str| format!("{}USER {user}\nRUN id -u > /dev/null\nCOPY f.txt /f.txt\n", from());
    let c = Ctx::new("link-user", &df("root"));
    c.write("f.txt", "f\n");
    let build = || c.run_build(&["--cache-copy-layers", "--cache-run-layers=false"], &["--reproducible"], &[]);
    build();
    std::fs::write(c.path().join("Dockerfile"), df("nobody")).unwrap();
    assert_eq!(build().at(4), "miss: USER changed (root → nobody)");
}

/// A line removed above a step moves it up to the place the removed line held: not an edit of
/// that line. Found by the entry of it at a later place (a later step's, or the one past the
/// stage's last step, looked up only then).
#[test]
fn a_removed_line_above_a_step_is_named_as_removed() {
    let df = |runs: &[&str]| {
        format!("{}{}", from(), runs.iter().map(|r| format!("RUN echo {r} > /{r}\n")).collect::<String>())
    };
    // The step after it was the stage's last: its entry is at the place past the end now.
    let c = Ctx::new("removed", &df(&["a", "b"]));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), df(&["b"])).unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(2), "miss: moved up from line 3 (line 2, RUN echo a > /a, was removed)");

    // A line in the middle of several: the next step's lookup holds the entry.
    let c = Ctx::new("removed-mid", &df(&["a", "b", "c", "d"]));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), df(&["a", "c", "d"])).unwrap();
    let o = c.build(&[]);
    assert_eq!(o.at(2), "hit");
    let moved = "moved up from line 4 (line 3, RUN echo b > /b, was removed)";
    assert_eq!(o.at(3), format!("miss: {moved}"));
    assert_eq!(o.at(4), format!("miss: parent step missed (line 3: {moved})"));

    // The first step after FROM.
    let c = Ctx::new("removed-first", &df(&["a", "b", "c"]));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), df(&["b", "c"])).unwrap();
    let o = c.build(&[]);
    let moved = "moved up from line 3 (line 2, RUN echo a > /a, was removed)";
    assert_eq!(o.at(2), format!("miss: {moved}"));
    assert_eq!(o.at(3), format!("miss: parent step missed (line 2: {moved})"));

    // Two lines above the last step: past the stage's end, the place of one removed line,
    // then its own; both lines are named.
    let c = Ctx::new("removed-two", &df(&["a", "b", "c"]));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), df(&["c"])).unwrap();
    assert_eq!(c.build(&[]).at(2), "miss: moved up from line 4 (lines 2 and 3 were removed)");

    // kaniko's defaults: a COPY kept out of the cache repository, found by its layer reference
    // record past the stage's end.
    let c = Ctx::new("removed-copy", &format!("{}RUN echo a > /a\nCOPY f.txt /f\n", from()));
    c.write("f.txt", "f\n");
    c.build_run_layers_only(&[]);
    std::fs::write(c.path().join("Dockerfile"), format!("{}COPY f.txt /f\n", from())).unwrap();
    let o = c.build_run_layers_only(&[]);
    assert_eq!(o.at(2), "miss: moved up from line 3 (line 2, RUN echo a > /a, was removed)");

    // An edit in place is still one (nothing of it at a later place).
    let c = Ctx::new("edited-last", &df(&["a", "b"]));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), df(&["a", "B"])).unwrap();
    assert_eq!(c.build(&[]).at(3), "miss: instruction changed: RUN echo b > /b → RUN echo B > /B");
}
