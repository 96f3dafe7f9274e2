//! Headless debugging from `trowel build`, in a real terminal (tmux): a shell in the failed
//! step's root (`--shell-on-failure`), breakpoints answered at the prompt, and the push gate
//! (`--require-approval`) — which refuses to push when there is no terminal to ask on.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A command running in a detached tmux session.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(cmd: &str) -> Tmux {
        let name = unique_repo("trowel-tmux");
        // Keep the pane after the command ends so its last output and exit code can be read.
        let wrapped = format!("{cmd}; echo \"EXIT=$?\"; sleep 600");
        let o = run(Command::new("tmux").args(["new-session", "-d", "-s", &name, "-x", "200", "-y", "50", &wrapped]));
        assert_ok(&o);
        Tmux { name }
    }

    fn screen(&self) -> String {
        let o = run(Command::new("tmux").args(["capture-pane", "-p", "-S", "-2000", "-t", &self.name]));
        stdout(&o)
    }

    #[track_caller]
    fn wait_for(&self, text: &str) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "timed out waiting for {text:?}; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn send(&self, keys: &str) {
        assert_ok(&run(Command::new("tmux").args(["send-keys", "-t", &self.name, "-l", keys])));
        assert_ok(&run(Command::new("tmux").args(["send-keys", "-t", &self.name, "Enter"])));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).output();
    }
}

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
    let t =
        Tmux::start(&trowel_cmd(ctx.path(), &format!("--destination {dest} --break-on-failure --shell-on-failure")));
    t.wait_for("opening a shell in its build root");
    // The shell sees the state the failed RUN left behind.
    t.send("cat /marker /partial; echo \"cwd=$(pwd) user=$(id -u)\"; exit");
    let s = t.wait_for("EXIT=");
    assert!(s.contains("state-before-failure") && s.contains("half-done"), "{s}");
    assert!(s.contains("cwd=/ user=0"), "{s}");
    assert!(s.contains("EXIT=7"), "the build fails with the step's exit code: {s}");
    assert!(s.contains("RUN echo half-done > /partial && exit 7: exit code 7"), "{s}");
    let probe = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{dest}")]));
    assert!(!probe.status.success(), "a failed build pushes nothing");
}

#[test]
fn breakpoint_prompt_then_approved_push() {
    let ctx = context(&format!("FROM {}\nRUN echo one > /one\nRUN echo two > /two\n", env().busybox()));
    let dest = format!("{}/{}:1", env().registry, unique_repo("approve"));
    let t = Tmux::start(&trowel_cmd(ctx.path(), &format!("--destination {dest} --break 3 --require-approval")));
    t.wait_for("paused before line 3");
    t.send("s");
    // A shell at the pause: make a change and keep it as a layer.
    t.wait_for("Debug interactive shell");
    t.send("echo kept > /kept; exit");
    t.wait_for("Keep them as a layer? [y/N]");
    t.send("y");
    t.wait_for("[c]ontinue, [n]ext step, [s]hell, [a]bort?");
    t.send("c");
    let s = t.wait_for("Push? [y/N]");
    assert!(s.contains(&format!("→ {dest}")), "{s}");
    t.send("y");
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
