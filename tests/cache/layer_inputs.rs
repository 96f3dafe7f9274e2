//! Inputs of a layer besides the instruction and its files' names, metadata and content, with
//! kaniko's flags (`--cache=true --cache-repo`, no `--cache-copy-layers`): what the snapshots
//! leave out (`--ignore-path`, `--ignore-var-run`), and which source files are hard links of one
//! another. Each build is checked against a `--cache=false` build of the same inputs.

use super::*;

/// Every path of an image with its type and content (the builds compared run nothing that
/// depends on the time).
fn files(reference: &str) -> Vec<(String, char, Option<String>)> {
    pull_and_unpack(reference).tree().0.into_iter().map(|(p, f)| (p, f.kind, f.sha256)).collect()
}

/// A `--cache=false` build of `c`'s context with `flags`, pushed to a tag of its own.
fn uncached(c: &Ctx, flags: &[&str]) -> String {
    let dest = format!("{}/{}:plain", env().registry, unique_repo("plain"));
    assert_ok(&run(trowel()
        .args(["build", "--cache=false", "--reproducible", "--destination", &dest])
        .args(flags)
        .arg("--context")
        .arg(c.path())));
    dest
}

fn ignore_context(name: &str) -> Ctx {
    let c = Ctx::new(
        name,
        &format!("{}COPY f /ign/\nRUN mkdir -p /var/run/app && echo pid > /var/run/app/p && echo z > /ign/z\n", from()),
    );
    c.write("f", "f\n");
    c
}

#[test]
fn ignored_paths_are_keyed_in_both_directions() {
    let ign = ["--ignore-path=/ign"];
    let keep = ["--ignore-var-run=false"];
    let c = ignore_context("ignore-paths");
    c.build_run_layers_only(&ign);
    // Nothing left out now: the RUN made other files.
    let o = c.build_run_layers_only(&keep);
    assert_eq!(
        o.at(3),
        "miss: snapshots no longer leave out /ign, /var/run (--ignore-path, --ignore-var-run)",
        "{:?}",
        o.steps
    );
    let got = files(&c.dest);
    for p in ["/ign/f", "/ign/z", "/var/run/app/p"] {
        assert!(got.iter().any(|(q, ..)| q == p), "{p} missing: {got:?}");
    }
    assert_eq!(got, files(&uncached(&c, &keep)));
    // The same set spelt otherwise hits the first build's entries, which are right for it.
    let o = c.build_run_layers_only(&["--ignore-path", "ign/", "--ignore-path=/ign/sub", "--ignore-var-run=true"]);
    o.all_hit();
    let got = files(&c.dest);
    assert!(!got.iter().any(|(q, ..)| q.starts_with("/ign") || q.starts_with("/var/run/")), "{got:?}");
    assert_eq!(got, files(&uncached(&c, &ign)));

    // The other way round: built keeping everything first.
    let c = ignore_context("ignore-paths-rev");
    c.build_run_layers_only(&keep);
    let o = c.build_run_layers_only(&ign);
    assert_eq!(o.at(3), "miss: snapshots now leave out /ign, /var/run (--ignore-path, --ignore-var-run)");
    assert_eq!(files(&c.dest), files(&uncached(&c, &ign)));
    // The default settings (/var/run alone) are a third set.
    let o = c.build_run_layers_only(&[]);
    assert!(o.at(3).starts_with("miss: snapshots "), "{:?}", o.steps);
    assert_eq!(files(&c.dest), files(&uncached(&c, &[])));
}

fn hard_link_context(name: &str, linked: bool) -> Ctx {
    let c = Ctx::new(name, &format!("{}COPY . /h/\nRUN echo appended >> /h/a\nRUN cat /h/b > /b-seen\n", from()));
    c.write("a", "same2\n");
    relink(&c, linked);
    c
}

/// `b`: a hard link to `a`, or a copy of it (the same bytes).
fn relink(c: &Ctx, linked: bool) {
    let (a, b) = (c.path().join("a"), c.path().join("b"));
    let _ = std::fs::remove_file(&b);
    if linked {
        std::fs::hard_link(&a, &b).unwrap();
    } else {
        std::fs::copy(&a, &b).unwrap();
    }
}

/// (content of /h/a, of /h/b, of /b-seen, links of /h/b) in the pushed image.
fn seen(reference: &str) -> (String, String, String, u64) {
    let u = pull_and_unpack(reference);
    let root = u.rootfs();
    let links = u.tree().get("/h/b").nlink;
    (Tree::content(&root, "/h/a"), Tree::content(&root, "/h/b"), Tree::content(&root, "/b-seen"), links)
}

#[test]
fn hard_links_in_a_copied_source_are_keyed_in_both_directions() {
    let c = hard_link_context("hardlink-split", true);
    c.build_run_layers_only(&[]);
    relink(&c, false);
    let o = c.build_run_layers_only(&[]);
    assert_eq!(o.at(2), "miss: COPY .: 1 file changed (b: hard link to a → separate file)", "{:?}", o.steps);
    assert_eq!(o.at(3), "miss: COPY . at line 2: 1 file changed (b: hard link to a → separate file)");
    let want = ("same2\nappended\n".to_string(), "same2\n".to_string(), "same2\n".to_string(), 1);
    assert_eq!(seen(&c.dest), want);
    assert_eq!(files(&c.dest), files(&uncached(&c, &[])));

    let c = hard_link_context("hardlink-join", false);
    c.build_run_layers_only(&[]);
    relink(&c, true);
    let o = c.build_run_layers_only(&[]);
    assert_eq!(o.at(2), "miss: COPY .: 1 file changed (b: separate file → hard link to a)", "{:?}", o.steps);
    let both = "same2\nappended\n".to_string();
    assert_eq!(seen(&c.dest), (both.clone(), both.clone(), both, 2));
    assert_eq!(files(&c.dest), files(&uncached(&c, &[])));
    // Unchanged since: every step hits, and the image is the same.
    c.build_run_layers_only(&[]).all_hit();
    assert_eq!(seen(&c.dest).3, 2);
}
