//! `trowel debug` signalled between the fetch of its context and its UI, in a real terminal
//! (tmux). A watcher for the fetch used to be closed there and the UI's registered a moment
//! later; signal-hook gives a signal its default back for neither, so a SIGTERM in between
//! reached a handler nobody read: the debugger went on into its UI as if nothing had come, and a
//! debug pod deleted at that moment waited for SIGKILL. The moment is a few milliseconds, so the
//! binary's test hook (`TROWEL_TEST_PAUSE_BEFORE_UI`, debug builds only) holds it open. The same
//! after the UI is gone, where a SIGTERM was ignored until the build's cleanup was done
//! (`TROWEL_TEST_PAUSE_AFTER_UI`). And the read-only viewers, whose terminal is raw too,
//! signalled while they show a trace.

mod common;
mod fs_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use fs_support::TarMaker;

/// How long the debugger may take to end after SIGTERM: it aborts a build that has not begun.
const BOUND: Duration = Duration::from_secs(20);

/// The pid `trowel debug` writes to `file` once it pauses before its UI.
fn paused_debugger(file: &Path, t: &Tmux) -> u32 {
    let t0 = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(file).ok().and_then(|s| s.trim().parse().ok()) {
            return pid;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never paused before the UI:\n{}", t.screen());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `trowel debug --step` of `context` in tmux, with the test hook `hook` set to `pause`; its
/// work dir is `work` under `dir`.
fn held_debugger(hook: &str, context: &str, dir: &Path, pause: &Path) -> Tmux {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let cmd = format!(
        "{hook}={} {} debug --context {context} --no-push --step --work-dir {}",
        pause.display(),
        env!("CARGO_BIN_EXE_trowel"),
        work.display()
    );
    Tmux::start(&cmd, 110, 32)
}

/// The screen once the command in `t` has exited, or `None` if it still runs after [`BOUND`].
fn exited(t: &Tmux) -> Option<String> {
    let t0 = Instant::now();
    loop {
        let s = t.screen();
        if s.contains("EXIT=") {
            return Some(s);
        }
        if t0.elapsed() > BOUND {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM after a `tar://` context is fetched and before the UI watches signals aborts the
/// build as one during the UI does: `--step` would otherwise hold it at its first pause for
/// ever. The fetched context is removed with the rest.
#[test]
fn sigterm_between_the_fetch_and_the_ui_aborts_the_build() {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: the pause before the UI is a debug build's test hook");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("ctx.tar");
    let tar = TarMaker::new().file("Dockerfile", b"FROM scratch\nCOPY a /a\n").file("a", b"a\n").finish();
    std::fs::write(&archive, tar).unwrap();
    let pause = dir.path().join("paused");
    let context = format!("tar://{}", archive.display());
    let t = held_debugger("TROWEL_TEST_PAUSE_BEFORE_UI", &context, dir.path(), &pause);
    let pid = paused_debugger(&pause, &t);
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    std::fs::remove_file(&pause).unwrap();

    let Some(s) = exited(&t) else {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        panic!("trowel debug was still running {BOUND:?} after SIGTERM:\n{}", t.screen());
    };
    assert!(s.contains("EXIT=1"), "an aborted build exits 1:\n{s}");
    assert!(s.contains("build aborted: SIGTERM received"), "the ending says why:\n{s}");
    let work = dir.path().join("work");
    let left: Vec<_> = std::fs::read_dir(&work).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "the fetched context is removed: {left:?}");
}

/// `trowel replay` and `replay --compare` build nothing, but their terminal is raw: SIGTERM (a
/// `kill` from another shell, a pod deleted under a `kubectl exec`) used to end them there and
/// then, leaving the terminal with no echo and no line editing. Now it ends them as `q` does:
/// the terminal is restored and the shell echoes what is typed next.
#[test]
fn sigterm_ends_the_replay_and_the_compare_view_with_the_terminal_restored() {
    let dir = tempfile::tempdir().unwrap();
    // A copy under a name of this test's own, for `pgrep` to find this process alone.
    let trace = dir.path().join("sigterm-replay.jsonl");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/traces/tour.jsonl"), &trace).unwrap();
    let bin = env!("CARGO_BIN_EXE_trowel");
    for (args, ready) in [
        (format!("replay {}", trace.display()), "trowel replay"),
        (format!("replay {0} --compare {0}", trace.display()), "equivalent"),
    ] {
        let t = Tmux::start(&format!("{bin} {args}"), 110, 32);
        t.wait_for(ready);
        // Anchored: tmux's own command line and its shell's hold the same words.
        let pgrep = Command::new("pgrep").args(["-f", &format!("^{bin} {args}")]).output().unwrap();
        let pid = String::from_utf8_lossy(&pgrep.stdout).lines().next().map(str::to_string).expect("running");
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let s = t.wait_for("EXIT=");
        assert!(!s.contains("EXIT=143"), "{args}: killed by the signal, not ended by it:\n{s}");
        // Raw mode is off again: the terminal echoes what is typed.
        t.keys("typed-after-sigterm");
        t.wait_for("typed-after-sigterm");
    }
}

/// Once the UI is gone the build is already stopping, and a SIGTERM then ends trowel at once
/// (143), as a second signal does in `trowel build`. It used to be ignored until the build's
/// cleanup was done: the UI's watcher was closed there, and signal-hook gives a signal its
/// default back for no closed watcher. The cleanup is usually too short to signal into, so the
/// binary's test hook (`TROWEL_TEST_PAUSE_AFTER_UI`, debug builds only) holds it open; the first
/// SIGTERM ends the UI at a `--step` pause.
#[test]
fn sigterm_after_the_ui_is_gone_ends_trowel_at_once() {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: the pause after the UI is a debug build's test hook");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY a /a\n").unwrap();
    std::fs::write(ctx.join("a"), "a\n").unwrap();
    let pause = dir.path().join("paused");
    let t = held_debugger("TROWEL_TEST_PAUSE_AFTER_UI", &ctx.display().to_string(), dir.path(), &pause);
    t.wait_for("paused");
    // The debugger's pid, by its command line (anchored: tmux's and its shell's hold it too).
    let pgrep = Command::new("pgrep")
        .args(["-f", &format!("^{} debug --context {}", env!("CARGO_BIN_EXE_trowel"), ctx.display())])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pgrep.stdout).lines().next().map(str::to_string).expect("running");
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let held = paused_debugger(&pause, &t);
    assert_eq!(held.to_string(), pid, "the debugger itself is held after its UI");
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let Some(s) = exited(&t) else {
        // Let the old code go on, and say what it did.
        let _ = std::fs::remove_file(&pause);
        panic!("SIGTERM after the UI was ignored:\n{}", t.wait_for("EXIT="));
    };
    assert!(s.contains("EXIT=143"), "ended by the second SIGTERM, at once:\n{s}");
    assert!(pause.exists(), "ended while still held after the UI");
}
