//! `.dockerignore` against a real build context on disk: what a context walk keeps, and that
//! pruning directories with `can_skip_dir` never loses a file that should be kept.

use std::collections::BTreeSet;
use std::path::Path;

use trowel_engine::dockerfile::DockerIgnore;
use walkdir::WalkDir;

const FILES: &[&str] = &[
    "Dockerfile",
    ".dockerignore",
    "README.md",
    "CHANGELOG.md",
    "docs/guide.md",
    "docs/keep/important.md",
    "src/main.rs",
    "src/lib.rs",
    "src/gen/out.rs",
    "target/debug/app",
    "target/release/app",
    "node_modules/left-pad/index.js",
    "web/node_modules/react/index.js",
    "web/app.js",
    ".git/HEAD",
    ".git/objects/ab/cdef",
    "logs/a.log",
    "logs/nested/b.log",
    "secrets/key.pem",
    "secrets/public.pem",
];

fn context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in FILES {
        let p = dir.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, f).unwrap();
    }
    dir
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap().to_str().unwrap().to_string()
}

/// Files kept by a walk that prunes skippable directories.
fn walk_pruned(root: &Path, ignore: &DockerIgnore) -> BTreeSet<String> {
    let mut kept = BTreeSet::new();
    let walker = WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| !(e.file_type().is_dir() && ignore.can_skip_dir(&rel(root, e.path()))));
    for entry in walker {
        let entry = entry.unwrap();
        let r = rel(root, entry.path());
        if entry.file_type().is_file() && !ignore.is_excluded(&r) {
            kept.insert(r);
        }
    }
    kept
}

/// Files kept when every file is checked individually.
fn walk_all(root: &Path, ignore: &DockerIgnore) -> BTreeSet<String> {
    WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| rel(root, e.path()))
        .filter(|r| !ignore.is_excluded(r))
        .collect()
}

#[test]
fn realistic_context() {
    let ctx = context();
    std::fs::write(
        ctx.path().join(".dockerignore"),
        "# VCS and build output\n.git\ntarget/\n**/node_modules\n*.md\n!README.md\ndocs\n!docs/keep\nlogs/**/*.log\nsecrets/*\n!secrets/public.pem\n",
    )
    .unwrap();
    let ignore = DockerIgnore::load(ctx.path(), &ctx.path().join("Dockerfile")).unwrap();
    let kept = walk_pruned(ctx.path(), &ignore);
    let expected: BTreeSet<String> = [
        ".dockerignore",
        "Dockerfile",
        "README.md",
        "docs/keep/important.md",
        "secrets/public.pem",
        "src/gen/out.rs",
        "src/lib.rs",
        "src/main.rs",
        "web/app.js",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(kept, expected);
    assert!(ignore.can_skip_dir(".git"));
    assert!(ignore.can_skip_dir("target"));
    assert!(ignore.can_skip_dir("web/node_modules"));
    assert!(!ignore.can_skip_dir("docs"));
    assert!(!ignore.can_skip_dir("secrets"));
}

#[test]
fn pruning_never_changes_the_result() {
    let ctx = context();
    let ignores = [
        "*\n!src\n",
        "*\n!**/*.rs\n",
        "**\n!web/app.js\n",
        "src\n!src/gen\nsrc/gen/out.rs\n",
        "/target\n/.git\nnode_modules\n",
        "*/*\n!docs/keep/*\n",
        "logs\n!logs/nested\n",
        "**/*.js\n!web/**\n",
        "secrets/\n!secrets/*.pem\nsecrets/key.pem\n",
    ];
    for text in ignores {
        let ignore = DockerIgnore::parse(text).unwrap();
        assert_eq!(walk_pruned(ctx.path(), &ignore), walk_all(ctx.path(), &ignore), "{text:?}");
    }
}
