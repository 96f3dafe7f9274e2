use super::*;

fn ig(text: &str) -> DockerIgnore {
    DockerIgnore::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn check(text: &str, excluded: &[&str], included: &[&str]) {
    let d = ig(text);
    for p in excluded {
        assert!(d.is_excluded(p), "{text:?} should exclude {p}");
    }
    for p in included {
        assert!(!d.is_excluded(p), "{text:?} should include {p}");
    }
}

#[test]
fn cleaning() {
    assert_eq!(clean("a/./b//c/"), "a/b/c");
    assert_eq!(clean("a/../../b"), "../b");
    assert_eq!(clean("/../a"), "/a");
    assert_eq!(clean(""), ".");
    assert_eq!(clean("./"), ".");
    assert_eq!(normalize("  /foo/bar/  "), "foo/bar");
    assert_eq!(normalize("! /x/../y"), "!y");
    assert_eq!(normalize("/"), "/");
}

#[test]
fn anchored_at_the_root() {
    check(
        "foo\n*.md\nbuild/\n",
        &["foo", "x.md", "build", "build/out.o"],
        &["a/foo", "docs/x.md", "sub/build", "foobar"],
    );
    check("/abs/path\n", &["abs/path", "abs/path/deeper"], &["abs", "x/abs/path"]);
}

#[test]
fn star_does_not_cross_slashes() {
    check("*/*.go\n", &["cmd/main.go"], &["main.go", "a/b/c.go"]);
    check("a?c\n", &["abc"], &["a/c", "ac"]);
}

#[test]
fn double_star() {
    check("**/*.log\n", &["x.log", "a/x.log", "a/b/c/x.log"], &["x.log.1"]);
    check("**/node_modules\n", &["node_modules", "a/node_modules", "a/node_modules/pkg/index.js"], &["node_modules_x"]);
    check("src/**/test\n", &["src/test", "src/a/b/test", "src/a/test/data"], &["test", "srctest"]);
    check("docs/**\n", &["docs/a", "docs/a/b"], &["docs", "docsx"]);
    check("**\n", &["a", "a/b"], &[]);
    // moby quirks: `**x` is a suffix match, `x**` a prefix match.
    check("**.tmp\n", &["a.tmp", "d/e/f.tmp"], &["a.tmpx"]);
    check("out**\n", &["out", "output", "out/x"], &["x/out"]);
    // `**` inside a component, after a wildcard: `(.*/)?` semantics.
    check("a*/**/z\n", &["ab/z", "ab/c/d/z"], &["z", "a/b"]);
    check("*x**y\n", &["xy", "axy", "ax/q/y", "x/y/z/w"], &["axqy", "xa/b"]);
}

#[test]
fn exceptions_and_last_match_wins() {
    let text = "*.md\n!README.md\n";
    check(text, &["CHANGES.md"], &["README.md", "docs/a.md"]);
    let text = "*.md\n!README*.md\nREADME-secret.md\n";
    check(text, &["CHANGES.md", "README-secret.md"], &["README.md", "README-public.md"]);
    let text = "docs\n!docs/keep\n";
    check(text, &["docs", "docs/a", "docs/sub/b"], &["docs/keep", "docs/keep/x"]);
}

#[test]
fn directory_exclusion_covers_children() {
    check(
        ".git\nvendor/*\n",
        &[".git", ".git/HEAD", ".git/objects/ab/cd", "vendor/a", "vendor/a/b"],
        &["vendor", "x/.git"],
    );
}

#[test]
fn comments_blank_lines_and_escapes() {
    check(
        "# comment\n\n   \n  # not a comment: leading space\n\\#hash\nfile\\*\n",
        &["#hash", "file*"],
        &["# comment", "filex"],
    );
    check("[ab]c\n[^x]y\n[!]z\n", &["ac", "bc", "ay", "!z"], &["cc", "xy"]);
    check("a[\\-]b\nc[\\]]d\n", &["a-b", "c]d"], &["ab"]);
    assert!(DockerIgnore::parse("a[-]b\n").is_err());
}

#[test]
fn root_is_never_excluded() {
    let d = ig("*\n");
    assert!(d.is_excluded("anything"));
    assert!(!d.is_excluded("."));
    assert!(!d.is_excluded(""));
    assert!(!d.is_excluded("/"));
}

#[test]
fn paths_are_normalised() {
    let d = ig("a/b\n");
    assert!(d.is_excluded("./a/b"));
    assert!(d.is_excluded("/a/b/c"));
    assert!(d.is_excluded("a//b"));
}

#[test]
fn skipping_directories() {
    let d = ig("node_modules\n*.log\n");
    assert!(d.can_skip_dir("node_modules"));
    assert!(!d.can_skip_dir("src"));
    let d = ig("docs\n!docs/keep.md\n");
    assert!(!d.can_skip_dir("docs"));
    assert!(!d.is_excluded("docs/keep.md"));
    let d = ig("docs\nbuild\n!docs/keep.md\n");
    assert!(d.can_skip_dir("build"));
    let d = ig("*\n!**/*.go\n");
    assert!(!d.can_skip_dir("pkg"));
    let d = ig("*\n!*.md\n");
    // `*.md` only re-includes top-level files: nothing under `pkg` can come back.
    assert!(d.can_skip_dir("pkg"));
    let d = ig("a\n!a\na/b\n");
    // `!a` re-includes `a` and (through its parent) everything below, except what `a/b` excludes
    // again; being conservative, `a/b` is still walked.
    assert!(!d.can_skip_dir("a/b"));
}

#[test]
fn errors() {
    let e = DockerIgnore::parse("ok\nbad[\n").unwrap_err();
    assert_eq!(e.to_string(), ".dockerignore:2: pattern \"bad[\": unclosed character class");
    let e = DockerIgnore::parse("!\n").unwrap_err();
    assert!(e.to_string().contains("illegal exclusion pattern"));
    let e = DockerIgnore::parse("x\\\n").unwrap_err();
    assert!(e.to_string().contains("trailing backslash"));
    assert!(DockerIgnore::parse("[]a]\n").is_err());
    // `**` inside components multiplies globs; a hostile pattern is refused, not expanded.
    let e = DockerIgnore::parse(&"a**".repeat(40)).unwrap_err();
    assert!(e.to_string().contains("too many `**`"), "{e}");
    let e = DockerIgnore::from_patterns(&["[z".into()]).unwrap_err();
    assert_eq!(e.to_string(), "exclude patterns: pattern \"[z\": unclosed character class");
}

#[test]
fn from_patterns_and_accessors() {
    let d = DockerIgnore::from_patterns(&["*.md".into(), "".into(), "!/README.md".into()]).unwrap();
    assert_eq!(d.patterns(), ["*.md", "!README.md"]);
    assert!(d.is_excluded("a.md"));
    assert!(!d.is_excluded("README.md"));
    assert!(!d.is_empty());
    assert!(DockerIgnore::parse("# only comments\n").unwrap().is_empty());
}

/// BuildKit reads the file with moby's `ignorefile` and then builds `patternmatcher.New` from
/// what it read, which trims and cleans every pattern a second time.
#[test]
fn patterns_are_normalised_twice_like_buildkit() {
    // `** /` reads as `** `, which `New` trims to `**`: everything.
    check("** /\n", &["a", "a/b", "x y"], &[]);
    assert_eq!(ig("** /\n").patterns(), ["**"]);
    // `a /` reads as `a `, then `a`.
    check("a /\n", &["a", "a/b"], &["a ", "ab"]);
    // `/ /` reads as a lone space, which `New` drops.
    assert!(ig("/ /\n").is_empty());
    // `!/` reads as `!/`, which `New` cleans to the illegal `!`.
    let e = DockerIgnore::parse("*\n!/\n").unwrap_err();
    assert_eq!(e.line(), Some(2), "{e}");
    assert!(e.to_string().contains("illegal exclusion pattern"), "{e}");
    // `!/ a` reads as `! a`: an exception for ` a`, untrimmed.
    let d = ig("*\n!/ a\n");
    assert_eq!(d.patterns(), ["*", "! a"]);
    assert!(!d.is_excluded(" a"));
    assert!(d.is_excluded("a"));
    // Only one trim after the clean: `* / /` reads as `* / `, which `New` trims and cleans to
    // `* ` (seed `finding-held-trailing-space`).
    let d = ig("* / /\n");
    assert_eq!(d.patterns(), ["* "]);
    check("* / /\n", &["a ", "b /c"], &["a", "b/c"]);
    // `/!/*.r` is not inverted by `ReadAll` (it starts with `/`), which makes it `!/*.r`: `New`
    // reads an exception for `/*.r`, which no context path matches (seed
    // `finding-held-exception-slash`).
    let d = ig("*\n/!/*.r\n");
    assert_eq!(d.patterns(), ["*", "!/*.r"]);
    assert!(d.is_excluded("x.r"));
}

/// The fuzz finding of 2026-12-02 (`fuzz/seeds/dockerignore/finding-double-star-space`): the
/// last line `** /` made `parse` and `from_patterns` over its own patterns disagree about `a`.
#[test]
fn finding_double_star_before_a_space() {
    let text = "*\u{2}comment\n*.\u{1}mp\nsecret[\u{e}-c]?.txt\n\\#litfacl#r\nomment\n/\n** /";
    let d = ig(text);
    let again = DockerIgnore::from_patterns(&d.patterns()).unwrap();
    for p in ["a", "a/b", "sub/dir/file.txt", ".git/config"] {
        assert!(d.is_excluded(p), "{p}");
        assert_eq!(d.is_excluded(p), again.is_excluded(p), "{p}");
    }
}

#[test]
fn load_prefers_dockerfile_specific_file() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let df = dir.path().join("build.Dockerfile");
    std::fs::write(&df, "FROM scratch\n").unwrap();
    assert!(DockerIgnore::load(&ctx, &df).unwrap().is_empty());
    std::fs::write(ctx.join(".dockerignore"), "from-context\n").unwrap();
    assert_eq!(DockerIgnore::load(&ctx, &df).unwrap().patterns(), ["from-context"]);
    std::fs::write(dir.path().join("build.Dockerfile.dockerignore"), "\u{feff}specific\n").unwrap();
    assert_eq!(DockerIgnore::load(&ctx, &df).unwrap().patterns(), ["specific"]);
    std::fs::write(ctx.join(".dockerignore"), "bad[\n").unwrap();
    let e = DockerIgnore::load(&ctx, &ctx.join("Dockerfile")).unwrap_err();
    assert!(e.to_string().starts_with(&format!("{}:1:", ctx.join(".dockerignore").display())), "{e}");
}
