//! A COPY that misses the cache but whose layer nothing needs is not run (status `deferred`).
//! kaniko's usual flags (`--cache=true --cache-repo …`, no `--cache-copy-layers`), every build
//! in a fresh pod (a cache dir and a work dir that do not exist): a builder stage's COPY is in
//! no pushed image, so no layer reference record names its layer and it misses every time,
//! while the steps after it hit. Against the real registry; images compared by digest
//! (`--reproducible`) with a `--cache=false` build, and read with skopeo and umoci.
//!
//! What is proved: an unchanged rebuild does not run the builder's COPY (no root made, no file
//! read, no layer written: `0 new layer(s)`), says so, and pushes the same image; when the
//! builder's RUN misses, the COPY runs in its place as before; when the final stage's
//! `COPY --from=builder` (or a `RUN --mount=from=builder`) misses, the COPY runs then, into the
//! builder's root made whole, and the image is the one a build without the cache makes. The
//! same holds across stages built `FROM` one another (`FROM deps AS build`): an unchanged
//! rebuild runs neither stage's COPY, and a child whose step misses has its root made whole,
//! its parent's deferred COPY run into it in its place; so does a grandchild, two removes down,
//! also when the first COPY's source is edited; a `COPY --from` of a child reads the files of
//! its parent's deferred COPY; and the log names each deferred COPY run late and the step that
//! needed it. (Container isolation, where that root is `/`: `pod/deferred.rs`.)

mod common;

use common::traced::{Project, Traced};
use common::*;
use serde_json::Value;

/// A 5 MB file the builder copies and reads, and a final stage that copies from the builder.
fn project(name: &str) -> Project {
    let df = format!(
        "FROM {b} AS builder\n\
         ARG V=1\n\
         COPY big /big\n\
         RUN echo $V > /out && wc -c < /big >> /out\n\
         FROM {b}\n\
         ARG W=1\n\
         RUN echo $W > /w\n\
         COPY --from=builder /out /big /x/\n\
         RUN cat /x/out\n",
        b = env().busybox()
    );
    let p = Project::new(name, &df);
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(p.dir.path().join("ctx/big"), big).unwrap();
    p
}

#[test]
fn an_unchanged_rebuild_does_not_run_a_builder_copy_nothing_needs() {
    let p = project("deferred");
    let first = p.build(&[]);
    assert_eq!(first.status(3), "built");

    let again = p.build(&[]);
    // The builder's COPY misses (its layer is in no pushed image), everything after it hits.
    assert!(again.at(3).starts_with("miss: "), "{}", again.at(3));
    assert_eq!((again.at(4), again.at(8), again.at(9)), ("hit".into(), "hit".into(), "hit".into()));
    assert_eq!(again.status(3), "deferred");
    assert!(
        again
            .log
            .contains("Not run: nothing needs its layer (every later step of its stage hit, or was not run either)"),
        "{}",
        again.log
    );
    // No root made, nothing copied, no layer written.
    assert_eq!(again.of("base_unpacked").count(), 0);
    assert_eq!(again.of("source_unpacked").count() + again.of("source_extracted").count(), 0);
    assert_eq!(again.of("layer_written").count(), 0);
    assert!(again.log.contains("(0 new layer(s), 0 B)"), "{}", again.log);
    assert_eq!(again.digest(), first.digest());
    assert_eq!(again.digest(), p.uncached(&[]).digest());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/x/out"), "1\n5000000\n");
}

#[test]
fn a_deferred_copy_runs_when_a_later_step_of_its_stage_or_a_copy_from_it_misses() {
    let p = project("deferred-miss");
    p.build(&[]);

    // The builder's RUN misses: it needs the root with the COPY's files, so the COPY runs in
    // its place, as without deferral.
    let run_misses = p.build(&["--build-arg", "V=2"]);
    assert!(run_misses.at(4).starts_with("miss: "), "{}", run_misses.at(4));
    assert_eq!(run_misses.status(3), "built");
    assert_eq!(run_misses.digest(), p.uncached(&["--build-arg", "V=2"]).digest());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/x/out"), "2\n5000000\n");

    // The final stage's COPY --from misses (a step before it changed) while the whole builder
    // hits: the builder's COPY is deferred, then run for the reader, into the builder's root
    // made whole (its base, the COPY, the cached RUN layer). Still no layer of it is written.
    let from_misses = p.build(&["--build-arg", "V=2", "--build-arg", "W=2"]);
    assert_eq!(from_misses.at(4), "hit");
    assert_eq!(from_misses.status(3), "deferred");
    assert!(from_misses.at(8).starts_with("miss: "), "{}", from_misses.at(8));
    let read: Vec<&Value> = from_misses.of("source_unpacked").collect();
    assert_eq!(read.len(), 1, "{read:?}");
    assert!(read[0]["why"].as_str().unwrap().contains("not run (deferred): COPY at line 3; run now"), "{read:?}");
    let written: Vec<u64> = from_misses.of("layer_written").map(|e| e["id"]["stage"].as_u64().unwrap()).collect();
    assert!(!written.is_empty() && written.iter().all(|s| *s == 1), "{written:?}");
    let reference = p.uncached(&["--build-arg", "V=2", "--build-arg", "W=2"]);
    assert_eq!(from_misses.digest(), reference.digest());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/x/out"), "2\n5000000\n");
    assert_eq!(Tree::content(&u.rootfs(), "/w"), "2\n");
    assert_eq!(std::fs::metadata(u.rootfs().join("x/big")).unwrap().len(), 5_000_000);
}

/// A `RUN --mount=from=builder` that misses reads the builder's files as a `COPY --from` does:
/// the deferred COPY runs then, into the builder's root made whole.
#[test]
fn a_run_mount_from_a_stage_with_a_deferred_copy_reads_its_files() {
    let df = format!(
        "FROM {b} AS builder\n\
         COPY big /big\n\
         RUN echo built > /marker\n\
         FROM {b}\n\
         ARG W=1\n\
         RUN --mount=from=builder,source=/,target=/m echo $W $(wc -c < /m/big) $(cat /m/marker) > /size\n",
        b = env().busybox()
    );
    let p = Project::new("deferred-mount", &df);
    std::fs::write(p.dir.path().join("ctx/big"), vec![7u8; 3_000_000]).unwrap();
    p.build(&[]);
    let again = p.build(&["--build-arg", "W=2"]);
    assert_eq!(again.at(3), "hit");
    assert_eq!(again.status(2), "deferred");
    assert!(again.at(6).starts_with("miss: "), "{}", again.at(6));
    assert_eq!(again.of("source_unpacked").count(), 1);
    assert_eq!(again.digest(), p.uncached(&["--build-arg", "W=2"]).digest());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/size"), "2 3000000 built\n");
}

/// The usual builder copies twice (`COPY go.mod`, `RUN download`, `COPY . .`, `RUN build`): in a
/// fresh pod both COPYs miss and every RUN hits. Neither is run; a `COPY --from` that misses
/// later has both run into the builder's root, each in its place.
#[test]
fn two_copies_of_a_builder_are_both_deferred_and_both_run_for_a_reader() {
    let df = format!(
        "FROM {b} AS builder\n\
         COPY deps.txt /app/\n\
         RUN cat /app/deps.txt > /deps\n\
         COPY big /app/\n\
         RUN wc -c < /app/big > /size && rm /app/deps.txt\n\
         FROM {b}\n\
         ARG W=1\n\
         RUN echo $W > /w\n\
         COPY --from=builder /deps /size /app /out/\n",
        b = env().busybox()
    );
    let p = Project::new("deferred-two", &df);
    std::fs::write(p.dir.path().join("ctx/deps.txt"), "dep-a\n").unwrap();
    std::fs::write(p.dir.path().join("ctx/big"), vec![3u8; 2_000_000]).unwrap();
    let first = p.build(&[]);
    assert_eq!((first.status(2), first.status(4)), ("built".into(), "built".into()));

    let again = p.build(&[]);
    assert_eq!((again.status(2), again.status(4)), ("deferred".into(), "deferred".into()));
    assert_eq!((again.at(3), again.at(5), again.at(9)), ("hit".into(), "hit".into(), "hit".into()));
    assert_eq!(again.of("layer_written").count(), 0);
    assert_eq!(again.of("base_unpacked").count(), 0);
    assert_eq!(again.digest(), first.digest());

    let from_misses = p.build(&["--build-arg", "W=2"]);
    assert_eq!((from_misses.status(2), from_misses.status(4)), ("deferred".into(), "deferred".into()));
    assert!(from_misses.at(9).starts_with("miss: "), "{}", from_misses.at(9));
    let read: Vec<&Value> = from_misses.of("source_unpacked").collect();
    assert_eq!(read.len(), 1, "{read:?}");
    let why = read[0]["why"].as_str().unwrap();
    assert!(why.contains("not run (deferred): COPY at line 2, COPY at line 4; run now"), "{why}");
    // Each deferred COPY says it ran after all, in the reader's time (it was said not to have
    // run, and its time was hidden in the reader's).
    let id_at = |line: u64| from_misses.of("step_started").find(|e| e["line"] == line).unwrap()["id"].clone();
    let ran: Vec<&Value> = from_misses.of("deferred_run").collect();
    assert_eq!(ran.iter().map(|e| e["id"].clone()).collect::<Vec<_>>(), [id_at(2), id_at(4)], "{ran:?}");
    assert!(ran.iter().all(|e| e["for_step"] == id_at(9) && e["duration_ms"].is_u64()), "{ran:?}");
    assert!(ran.iter().all(|e| e["reading"] == 0), "{ran:?}");
    assert!(
        from_misses.log.contains(
            "line 4 (COPY big /app/) was deferred; it runs now: line 9 (COPY --from=builder /deps /size /app /out/) \
             of stage 1 reads the files of stage builder ("
        ),
        "{}",
        from_misses.log
    );
    assert_eq!(from_misses.digest(), p.uncached(&["--build-arg", "W=2"]).digest());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/out/deps"), "dep-a\n");
    assert_eq!(Tree::content(&u.rootfs(), "/out/size"), "2000000\n");
    // The RUN's deletion, applied over the first COPY's file, holds in the root the reader read.
    assert!(!u.rootfs().join("out/deps.txt").exists());
    assert_eq!(std::fs::metadata(u.rootfs().join("out/big")).unwrap().len(), 2_000_000);
}

/// A COPY whose source reads like a URL or a git remote (`git@foo`, `a://b`) is a path of the
/// context: deferred like any other. The first COPY was deferred on the promise that such a
/// second one would be deferred too, which the second's own check then refused: it ran, found
/// the stage without the first's files, and an unchanged rebuild failed.
#[test]
fn copies_of_paths_that_read_like_remotes_are_deferred_together() {
    let df = format!(
        "FROM {b} AS builder\n\
         COPY a /a\n\
         COPY git@foo a://b /g/\n\
         RUN cat /a /g/git@foo /g/b > /c\n\
         FROM {b}\n\
         ARG W=1\n\
         RUN echo $W > /w\n\
         COPY --from=builder /c /out/\n",
        b = env().busybox()
    );
    let p = Project::new("deferred-remote-like", &df);
    std::fs::write(p.dir.path().join("ctx/a"), "A\n").unwrap();
    std::fs::write(p.dir.path().join("ctx/git@foo"), "G\n").unwrap();
    std::fs::create_dir(p.dir.path().join("ctx/a:")).unwrap();
    std::fs::write(p.dir.path().join("ctx/a:/b"), "B\n").unwrap();
    let first = p.build(&[]);
    let again = p.build(&[]);
    assert_eq!((again.status(2), again.status(3)), ("deferred".into(), "deferred".into()));
    assert_eq!(again.digest(), first.digest());
    let from_misses = p.build(&["--build-arg", "W=2"]);
    assert_eq!(from_misses.digest(), p.uncached(&["--build-arg", "W=2"]).digest());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/out/c"), "A\nG\nB\n");
}

/// The usual node/python layout: `deps` copies the manifests and installs, `build` is built
/// `FROM deps`, copies the sources and builds, the image copies the result from `build`.
fn deps_and_build(name: &str, build_steps: &str) -> Project {
    let df = format!(
        "FROM {b} AS deps\n\
         WORKDIR /app\n\
         COPY package.json lock.json ./\n\
         RUN cat package.json lock.json > deps.txt\n\
         FROM deps AS build\n\
         {build_steps}\
         FROM {b}\n\
         COPY --from=build /app/dist.txt /out/\n",
        b = env().busybox()
    );
    let p = Project::new(name, &df);
    p.write("package.json", "pkg\n");
    p.write("lock.json", "lock\n");
    p.write("src.txt", "src\n");
    p
}

/// In a fresh pod both stages' COPYs miss and every RUN hits: `build` being built `FROM deps`
/// no longer makes deps's COPY run (nor, with it, build's), and nothing is unpacked or written.
#[test]
fn copies_of_a_stage_built_on_and_of_its_child_are_deferred() {
    let p = deps_and_build("deferred-chain", "COPY . .\nRUN cat deps.txt src.txt > dist.txt\n");
    let first = p.build(&[]);
    assert_eq!((first.status(3), first.status(6)), ("built".into(), "built".into()));

    let again = p.build(&[]);
    assert!(again.at(3).starts_with("miss: ") && again.at(6).starts_with("miss: "), "{}", again.log);
    assert_eq!((again.status(3), again.status(6)), ("deferred".into(), "deferred".into()), "{}", again.log);
    assert_eq!((again.at(4), again.at(7), again.at(9)), ("hit".into(), "hit".into(), "hit".into()));
    assert_eq!(again.of("base_unpacked").count(), 0);
    assert_eq!(again.of("source_unpacked").count() + again.of("source_extracted").count(), 0);
    assert_eq!(again.of("layer_written").count(), 0);
    assert_eq!(again.of("deferred_run").count(), 0);
    assert!(again.log.contains("(0 new layer(s), 0 B)"), "{}", again.log);
    assert_eq!(again.digest(), first.digest());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/out/dist.txt"), "pkg\nlock\nsrc\n");
}

/// A stage of COPYs alone (no RUN or WORKDIR: no pointer tag to tell it cold) is not taken for
/// a cold one: its root is not made ahead, so in a fresh pod its COPY is deferred as any is.
#[test]
fn a_stage_of_copies_alone_is_deferred_in_a_fresh_pod() {
    let df = format!(
        "FROM {b} AS src
COPY src.txt /src/
FROM src AS child
RUN cat /src/src.txt > /dist.txt
         FROM {b}
COPY --from=child /dist.txt /out/
",
        b = env().busybox()
    );
    let p = Project::new("deferred-copies-alone", &df);
    p.write("src.txt", "src\n");
    let first = p.build(&[]);
    let again = p.build(&[]);
    assert_eq!((again.status(2), again.at(4), again.at(6)), ("deferred".into(), "hit".into(), "hit".into()));
    assert_eq!(again.of("base_unpacked").count() + again.of("layer_written").count(), 0, "{}", again.log);
    assert_eq!(again.digest(), first.digest());
}

/// The child's RUN misses (a build arg only it reads): it needs the child's root, which is made
/// whole — deps's base, deps's deferred COPY run in its place, the cached layers of deps's RUN
/// and of the child's first RUN applied — before the child's own COPY runs into it.
#[test]
fn a_child_that_needs_its_root_runs_its_parents_deferred_copy_into_it() {
    let build =
        "RUN echo b > b.txt\nARG V=1\nCOPY . .\nRUN echo $V > v.txt && cat deps.txt b.txt src.txt v.txt > dist.txt\n";
    let p = deps_and_build("deferred-chain-miss", build);
    p.build(&[]);

    let miss = p.build(&["--build-arg", "V=2"]);
    assert_eq!((miss.at(4), miss.at(6)), ("hit".into(), "hit".into()));
    assert!(miss.at(9).starts_with("miss: "), "{}", miss.at(9));
    assert_eq!(miss.status(3), "deferred", "{}", miss.log);
    assert_eq!((miss.status(8), miss.status(9)), ("built".into(), "built".into()));
    // deps's COPY ran after all, into the root the child's COPY needed, and said so.
    let id_at = |line: u64| miss.of("step_started").find(|e| e["line"] == line).unwrap()["id"].clone();
    let ran: Vec<&Value> = miss.of("deferred_run").collect();
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!((ran[0]["id"].clone(), ran[0]["for_step"].clone()), (id_at(3), id_at(8)), "{ran:?}");
    assert!(ran[0]["reading"].is_null(), "{ran:?}");
    assert!(
        miss.log.contains(
            "line 3 (COPY package.json lock.json ./) was deferred; it runs now: line 8 (COPY . .) of stage build \
             needs the root ("
        ),
        "{}",
        miss.log
    );
    // deps made no root; the child's was made from the layers below deps's COPY (the base and
    // the WORKDIR's). The image's stage makes its own, for its COPY --from that misses.
    let made: Vec<&Value> = miss.of("base_unpacked").filter(|e| e["stage"] != 2).collect();
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!((made[0]["stage"].clone(), made[0]["layers"].clone()), (1.into(), 2.into()), "{made:?}");
    let reference = p.uncached(&["--build-arg", "V=2"]);
    assert_eq!(miss.digest(), reference.digest());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/out/dist.txt"), "pkg\nlock\nb\nsrc\n2\n");
}

/// Three stages built `FROM` one another, each with a COPY of the context (`deps`, then `build`)
/// or a RUN reading both (`final`): `final` is the image when `image` is empty, else a builder
/// of the image stage `image` (line 9 on).
fn grandchild(name: &str, image: &str) -> Project {
    let df = format!(
        "FROM {b} AS deps\n\
         WORKDIR /app\n\
         COPY package.json ./\n\
         FROM deps AS build\n\
         COPY src.txt ./\n\
         FROM build AS final\n\
         ARG V=1\n\
         RUN echo $V > v.txt && cat package.json src.txt v.txt > dist.txt\n\
         {image}",
        b = env().busybox()
    );
    let p = Project::new(name, &df);
    p.write("package.json", "pkg\n");
    p.write("src.txt", "src\n");
    p
}

/// The grandchild is the image: its layers are pushed, so a fresh pod's rebuild finds both
/// COPYs by reference (neither runs), and an edit of the first COPY's source runs it and
/// everything after, to the image a build without the cache makes.
#[test]
fn a_grandchild_image_of_two_copies_is_right_cold_unchanged_and_edited() {
    let p = grandchild("deferred-grandchild-image", "");
    let first = p.build(&[]);
    assert_eq!(first.digest(), p.uncached(&[]).digest());

    let again = p.build(&[]);
    assert_eq!((again.at(3), again.at(5), again.at(8)), ("hit".into(), "hit".into(), "hit".into()), "{}", again.log);
    assert_eq!(again.of("base_unpacked").count() + again.of("source_unpacked").count(), 0);
    assert_eq!((again.of("layer_written").count(), again.of("deferred_run").count()), (0, 0));
    assert_eq!(again.digest(), first.digest());

    p.write("package.json", "pkg2\n");
    let edited = p.build(&[]);
    assert!(edited.at(3).starts_with("miss: ") && edited.at(3).contains("package.json"), "{}", edited.at(3));
    assert_eq!((edited.status(3), edited.status(5)), ("built".into(), "built".into()));
    assert_eq!(edited.digest(), p.uncached(&[]).digest());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/app/dist.txt"), "pkg2\nsrc\n1\n");
}

/// The grandchild is a builder the image copies from: both COPYs, two removes up, are deferred
/// in an unchanged fresh pod's rebuild (none runs); a miss in the grandchild (a build arg only it
/// reads) runs both into its root, each in its place; an edit of the first COPY's source makes
/// every step after it miss, and both COPYs run then, into the grandchild's root.
#[test]
fn a_grandchild_that_needs_its_root_runs_both_inherited_copies_into_it() {
    let image = format!("FROM {}\nCOPY --from=final /app/dist.txt /out/\n", env().busybox());
    let p = grandchild("deferred-grandchild", &image);
    // Cold, `build`'s COPY is deferred already (its stage has no root yet, nothing after it),
    // and run into the grandchild's root for its RUN.
    let first = p.build(&[]);
    assert_eq!(first.digest(), p.uncached(&[]).digest());

    let again = p.build(&[]);
    assert!(again.at(3).starts_with("miss: ") && again.at(5).starts_with("miss: "), "{}", again.log);
    assert_eq!((again.status(3), again.status(5)), ("deferred".into(), "deferred".into()), "{}", again.log);
    assert_eq!((again.at(8), again.at(10)), ("hit".into(), "hit".into()));
    assert_eq!(again.of("base_unpacked").count() + again.of("source_unpacked").count(), 0);
    assert_eq!((again.of("layer_written").count(), again.of("deferred_run").count()), (0, 0));
    assert_eq!(again.digest(), first.digest());

    let check = |t: &Traced, extra: &[&str], dist: &str| {
        let id_at = |line: u64| t.of("step_started").find(|e| e["line"] == line).unwrap()["id"].clone();
        let ran: Vec<&Value> = t.of("deferred_run").collect();
        assert_eq!(ran.iter().map(|e| e["id"].clone()).collect::<Vec<_>>(), [id_at(3), id_at(5)], "{ran:?}");
        assert!(ran.iter().all(|e| e["for_step"] == id_at(8) && e["reading"].is_null()), "{ran:?}");
        assert_eq!((t.status(3), t.status(5), t.status(8)), ("deferred".into(), "deferred".into(), "built".into()));
        assert_eq!(t.digest(), p.uncached(extra).digest());
        let u = pull_and_unpack(&p.dest);
        assert_eq!(Tree::content(&u.rootfs(), "/out/dist.txt"), dist);
    };
    let miss = p.build(&["--build-arg", "V=2"]);
    assert_eq!((miss.at(3), miss.at(5)), (again.at(3), again.at(5)));
    assert!(miss.at(8).starts_with("miss: "), "{}", miss.at(8));
    check(&miss, &["--build-arg", "V=2"], "pkg\nsrc\n2\n");
    assert!(
        miss.log.contains(
            "line 3 (COPY package.json ./) was deferred; it runs now: line 8 (RUN echo $V > v.txt && cat package.json \
             src.txt v.txt > dist.txt) of stage final needs the root ("
        ),
        "{}",
        miss.log
    );

    p.write("package.json", "pkg2\n");
    let edited = p.build(&[]);
    assert!(
        edited.at(3).starts_with("miss: ") && edited.at(8).starts_with("miss: ") && edited.at(10).starts_with("miss: "),
        "{}",
        edited.log
    );
    check(&edited, &[], "pkg2\nsrc\n1\n");
}

/// A `COPY --from` of a stage built `FROM` one with a deferred COPY reads a file that came from
/// that inherited COPY (and one its own RUN made of it): the child's files are made whole with
/// its parent's deferred COPY and its own, each in its place.
#[test]
fn a_copy_from_a_child_reads_a_file_of_its_parents_deferred_copy() {
    let df = format!(
        "FROM {b} AS deps\n\
         WORKDIR /app\n\
         COPY package.json ./\n\
         RUN cat package.json > deps.txt\n\
         FROM deps AS build\n\
         COPY src.txt ./\n\
         RUN cat deps.txt src.txt > dist.txt\n\
         FROM {b}\n\
         ARG W=1\n\
         RUN echo $W > /w\n\
         COPY --from=build /app/package.json /app/dist.txt /out/\n",
        b = env().busybox()
    );
    let p = Project::new("deferred-from-child", &df);
    p.write("package.json", "pkg\n");
    p.write("src.txt", "src\n");
    p.build(&[]);
    let miss = p.build(&["--build-arg", "W=2"]);
    assert_eq!((miss.status(3), miss.status(6)), ("deferred".into(), "deferred".into()), "{}", miss.log);
    assert_eq!((miss.at(4), miss.at(7)), ("hit".into(), "hit".into()));
    assert!(miss.at(11).starts_with("miss: "), "{}", miss.at(11));
    let read: Vec<&Value> = miss.of("source_unpacked").collect();
    assert_eq!(read.len(), 1, "{read:?}");
    let why = read[0]["why"].as_str().unwrap();
    assert!(why.contains("not run (deferred): COPY at line 3, COPY at line 6; run now"), "{why}");
    let ran: Vec<&Value> = miss.of("deferred_run").collect();
    assert!(ran.len() == 2 && ran.iter().all(|e| e["reading"] == 1), "{ran:?}");
    assert!(
        miss.log.contains(
            "line 3 (COPY package.json ./) was deferred; it runs now: line 11 (COPY --from=build /app/package.json \
             /app/dist.txt /out/) of stage 2 reads the files of stage build ("
        ),
        "{}",
        miss.log
    );
    assert_eq!(miss.digest(), p.uncached(&["--build-arg", "W=2"]).digest());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/out/package.json"), "pkg\n");
    assert_eq!(Tree::content(&u.rootfs(), "/out/dist.txt"), "pkg\nsrc\n");
    assert_eq!(Tree::content(&u.rootfs(), "/w"), "2\n");
}

/// A build for linux/amd64 and linux/arm64 laid out for cross-compiling: `deps` on the build
/// platform (one stage every target shares) copies the manifests and installs; `build`, one per
/// target, is built `FROM deps`, copies the sources and builds for `$TARGETARCH`; each image
/// copies from both. Lines: 3 and 8 the context COPYs, 9 the per-target RUN, 11 and 12 the
/// image's `COPY --from`s.
fn cross(name: &str) -> Project {
    let df = format!(
        "FROM --platform=$BUILDPLATFORM {m} AS deps\n\
         WORKDIR /app\n\
         COPY package.json ./\n\
         RUN cat package.json > deps.txt\n\
         FROM deps AS build\n\
         ARG TARGETARCH\n\
         ARG V=1\n\
         COPY src.txt ./\n\
         RUN echo $TARGETARCH $V > arch.txt && cat deps.txt src.txt arch.txt > dist.txt\n\
         FROM {m}\n\
         COPY --from=build /app/dist.txt /out/\n\
         COPY --from=deps /app/deps.txt /out/\n",
        m = format!("{}/busybox:multi", env().registry)
    );
    let p = Project::new(name, &df);
    p.write("package.json", "pkg\n");
    p.write("src.txt", "src\n");
    p
}

const TWO: [&str; 2] = ["--platform", "linux/amd64,linux/arm64"];

impl Traced {
    /// The `step_finished` statuses of every instance of the step at `line`, sorted.
    fn statuses(&self, line: u64) -> Vec<String> {
        let ids: Vec<&Value> = self.of("step_started").filter(|e| e["line"] == line).map(|e| &e["id"]).collect();
        let mut s: Vec<String> = self
            .of("step_finished")
            .filter(|e| ids.contains(&&e["id"]))
            .map(|e| e["status"].as_str().unwrap().to_string())
            .collect();
        s.sort();
        s
    }

    /// Every image's manifest digest, sorted.
    fn digests(&self) -> Vec<String> {
        let mut d: Vec<String> =
            self.of("image_assembled").map(|e| e["manifest_digest"].as_str().unwrap().to_string()).collect();
        d.sort();
        d
    }
}

/// In a fresh pod, an unchanged rebuild for two platforms runs none of the context COPYs (the
/// shared stage's nor the per-target children's): nothing is unpacked or written, and the
/// images are the same. Deferral used to be off in builds for several platforms: every target's
/// `build` stage ran `COPY src.txt`, which made it unpack its base.
#[test]
fn an_unchanged_rebuild_for_two_platforms_runs_no_builder_copy() {
    let p = cross("deferred-cross");
    let first = p.build(&TWO);
    assert_eq!(first.digests().len(), 2);

    let again = p.build(&TWO);
    assert_eq!(again.statuses(3), ["deferred"], "{}", again.log);
    assert_eq!(again.statuses(8), ["deferred", "deferred"], "{}", again.log);
    assert_eq!(again.of("base_unpacked").count(), 0, "{}", again.log);
    assert_eq!(again.of("source_unpacked").count() + again.of("source_extracted").count(), 0);
    assert_eq!(again.of("layer_written").count(), 0);
    assert_eq!(again.digests(), first.digests());
}

/// Each target's RUN misses (a build arg only it reads): each `build` root is made whole in its
/// own lane — the shared deps's deferred COPY run into it — and each image's `COPY --from=deps`
/// (whose key chains on the changed one before it) reads deps's files from a root made whole
/// there too. The images are those a build without the cache makes.
#[test]
fn a_two_platform_rebuild_whose_targets_miss_runs_the_shared_stages_deferred_copy_for_each() {
    let p = cross("deferred-cross-miss");
    p.build(&TWO);

    let args = [&TWO[..], &["--build-arg", "V=2"]].concat();
    let miss = p.build(&args);
    assert_eq!(miss.statuses(3), ["deferred"], "{}", miss.log);
    assert_eq!(miss.statuses(9), ["built", "built"], "{}", miss.log);
    // deps's COPY ran four times, never as a layer: into each target's `build` root (for its
    // COPY at line 8) and into a whole deps root in each lane (for the image's COPY --from).
    let line_of = |id: &Value| miss.of("step_started").find(|e| &e["id"] == id).unwrap()["line"].as_u64().unwrap();
    let mut ran: Vec<(u64, u64)> =
        miss.of("deferred_run").map(|e| (line_of(&e["id"]), line_of(&e["for_step"]))).collect();
    ran.sort();
    assert_eq!(ran, [(3, 8), (3, 8), (3, 12), (3, 12)], "{}", miss.log);
    let reference = p.uncached(&args);
    assert_eq!(miss.digests(), reference.digests());
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/out/dist.txt"), "pkg\nsrc\namd64 2\n");
    assert_eq!(Tree::content(&u.rootfs(), "/out/deps.txt"), "pkg\n");
}
