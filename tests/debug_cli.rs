//! Headless debugging from `trowel build`, in a real terminal (tmux): a shell in the failed
//! step's root (`--shell-on-failure`), breakpoints answered at the prompt, and the push gate
//! (`--require-approval`) — which refuses to push when there is no terminal to ask on.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use common::*;

fn context(dockerfile: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    d
}

fn trowel_cmd(ctx: &Path, extra: &str) -> String {
    format!("{} build --context {} {extra}", env!("CARGO_BIN_EXE_trowel"), ctx.display())
}

#[test]
fn shell_on_failure_opens_a_shell_in_the_failed_steps_root() {
    let ctx = context(&format!(
        "FROM {}\nRUN echo state-before-failure > /marker\nRUN echo half-done > /partial && exit 7\n",
        env().busybox()
    ));
    let dest = format!("{}/{}:1", env().registry, unique_repo("shellfail"));
    let t = Tmux::start_with_scrollback(&trowel_cmd(
        ctx.path(),
        &format!("--destination {dest} --break-on-failure --shell-on-failure"),
    ));
    t.wait_for("opening a shell in its build root");
    // The shell sees the state the failed RUN left behind.
    t.line("cat /marker /partial; echo \"cwd=$(pwd) user=$(id -u)\"; exit");
    let s = t.wait_for("EXIT=");
    assert!(s.contains("state-before-failure") && s.contains("half-done"), "{s}");
    assert!(s.contains("cwd=/ user=0"), "{s}");
    assert!(s.contains("EXIT=7"), "the build fails with the step's exit code: {s}");
    assert!(s.contains("RUN echo half-done > /partial && exit 7: exit code 7"), "{s}");
    let probe = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{dest}")]));
    assert!(!probe.status.success(), "a failed build pushes nothing");
}

/// Issue 15 at the prompt: a failed RUN's pause offers a shell to fix things and a re-run; a
/// second RUN that fails is edited and run edited. The image has both, and its history says so.
#[test]
fn a_failed_step_is_fixed_in_a_shell_re_run_and_another_edited_at_the_prompt() {
    let ctx = context(&format!("FROM {}\nRUN cat /needed > /got\nRUN echo broken && exit 5\n", env().busybox()));
    let dest = format!("{}/{}:1", env().registry, unique_repo("promptretry"));
    let t = Tmux::start_with_scrollback(&trowel_cmd(
        ctx.path(),
        &format!("--destination {dest} --break-on-failure --require-approval"),
    ));
    let asked = |n: usize| {
        let t0 = Instant::now();
        while t.screen().matches("[r]e-run the step, [e]dit and run it, [s]hell, [a]bort?").count() < n {
            assert!(t0.elapsed() < Duration::from_secs(60), "question {n} never came:\n{}", t.screen());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    asked(1);
    t.line("s");
    t.wait_for("Debug interactive shell");
    t.line("echo fixed > /needed; exit");
    t.wait_for("Keep them as a layer? [y/N]");
    t.line("y");
    // The same pause asks again, now that the root is fixed.
    asked(2);
    t.line("r");
    t.wait_for("line 2: attempt 2");
    // The re-run works; line 3 fails next.
    asked(3);
    t.line("e");
    t.wait_for("new instruction (empty: as it is):");
    t.line("RUN echo mended > /mended");
    // The push review says how the image differs from the Dockerfile.
    let s = t.wait_for("Push? [y/N]");
    assert!(s.contains("This image is not what the Dockerfile as written makes:"), "{s}");
    assert!(s.contains("line 2: changes kept from a debugger shell"), "{s}");
    assert!(s.contains("line 2: re-run in the debugger"), "{s}");
    assert!(s.contains("line 3: edited in the debugger (was: RUN echo broken && exit 5)"), "{s}");
    t.line("y");
    let s = t.wait_for("EXIT=");
    assert!(s.contains("EXIT=0"), "{s}");
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/got"), "fixed\n");
    assert_eq!(Tree::content(&u.rootfs(), "/mended"), "mended\n");
    let history = history_of(&dest);
    let tail: Vec<&str> = history.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "trowel debug shell at line 2 (RUN after)",
            "RUN cat /needed > /got # re-run in trowel debug at line 2 after changes made in a debugger shell (attempt 2)",
            "RUN echo mended > /mended # edited in trowel debug at line 3 (was: RUN echo broken && exit 5)",
        ]
    );
}

#[test]
fn breakpoint_prompt_then_approved_push() {
    let ctx = context(&format!("FROM {}\nRUN echo one > /one\nRUN echo two > /two\n", env().busybox()));
    let dest = format!("{}/{}:1", env().registry, unique_repo("approve"));
    let t = Tmux::start_with_scrollback(&trowel_cmd(
        ctx.path(),
        &format!("--destination {dest} --break 3 --require-approval"),
    ));
    t.wait_for("paused before line 3");
    t.line("s");
    // A shell at the pause: make a change and keep it as a layer.
    t.wait_for("Debug interactive shell");
    t.line("echo kept > /kept; exit");
    t.wait_for("Keep them as a layer? [y/N]");
    t.line("y");
    t.wait_for("[c]ontinue, [n]ext step, [s]hell, [a]bort?");
    t.line("c");
    let s = t.wait_for("Push? [y/N]");
    assert!(s.contains(&format!("→ {dest}")), "{s}");
    t.line("y");
    let s = t.wait_for("EXIT=");
    assert!(s.contains("EXIT=0"), "{s}");
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/kept"), "kept\n");
    assert_eq!(Tree::content(&u.rootfs(), "/two"), "two\n");
}

#[test]
fn require_approval_without_a_terminal_refuses_to_push() {
    let ctx = context(&format!("FROM {}\nRUN echo x > /x\n", env().busybox()));
    let dest = format!("{}/{}:1", env().registry, unique_repo("noterm"));
    // setsid: no controlling terminal, so /dev/tty cannot be opened.
    let o = run(Command::new("setsid")
        .arg("-w")
        .arg(env!("CARGO_BIN_EXE_trowel"))
        .args(["build", "--context"])
        .arg(ctx.path())
        .args(["--destination", &dest, "--require-approval"]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--require-approval needs a terminal to ask on"), "{}", stderr(&o));
    let probe = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{dest}")]));
    assert!(!probe.status.success());
}
