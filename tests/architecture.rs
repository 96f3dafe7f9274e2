//! The crate boundaries the architecture relies on (docs/architecture.md), checked by the
//! compiler's own dependency graph rather than by convention.

use std::process::Command;

/// The dependency tree of one workspace crate (normal dependencies only), one crate per line.
fn normal_deps(package: &str) -> String {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-e", "normal", "--prefix", "none", "--format", "{p}", "-p", package])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn crate_names(tree: &str) -> Vec<String> {
    tree.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

#[test]
fn the_engine_knows_nothing_of_terminals() {
    let deps = crate_names(&normal_deps("trowel-engine"));
    assert!(deps.iter().any(|d| d == "tokio"), "the tree was read: {deps:?}");
    for terminal in ["clap", "ratatui", "crossterm", "indicatif"] {
        assert!(!deps.iter().any(|d| d == terminal), "trowel-engine depends on {terminal}: {deps:?}");
    }
    assert!(!deps.iter().any(|d| d == "trowel"), "trowel-engine depends on the binary crate");
    // The same reading does see them where they are.
    let binary = crate_names(&normal_deps("trowel"));
    assert!(binary.iter().any(|d| d == "ratatui") && binary.iter().any(|d| d == "clap"), "{binary:?}");
}

/// The contract and its fold (`BuildState`) are plain data: an engine refactor cannot reach
/// them, and every viewer can depend on them.
#[test]
fn the_event_contract_depends_on_no_other_trowel_crate() {
    let deps = crate_names(&normal_deps("trowel-events"));
    assert!(deps.iter().any(|d| d == "serde"), "the tree was read: {deps:?}");
    for other in ["trowel", "trowel-engine", "tokio", "ratatui"] {
        assert!(!deps.iter().any(|d| d == other), "trowel-events depends on {other}: {deps:?}");
    }
}
