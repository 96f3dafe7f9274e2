//! Drives a terminal program in a detached tmux session of a fixed size, as a person at a
//! terminal would: type keys, wait for text on the screen.
//!
//! Every session runs on its own tmux server (`-S`, a socket in a directory of its own). With one shared
//! server, a test whose session ended last made the server exit while another test's
//! `new-session` was connecting to it, and that test failed with "server exited unexpectedly".

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::{assert_ok, run, stdout, unique_repo};

/// A command running in a detached tmux session of a fixed size, on a server of its own.
pub struct Tmux {
    name: String,
    /// Holds the server's socket; removed when the session is dropped.
    dir: tempfile::TempDir,
    /// Whether screens include the scrollback (for line-mode programs whose output outgrows
    /// the pane), or only what is visible (for full-screen programs).
    scrollback: bool,
}

impl Tmux {
    /// Starts `cmd` in a `width`×`height` terminal; screens are what is visible.
    pub fn start(cmd: &str, width: u16, height: u16) -> Tmux {
        Tmux::open(cmd, width, height, false)
    }

    /// Starts `cmd` in a 200×50 terminal; screens include 2,000 lines of scrollback.
    pub fn start_with_scrollback(cmd: &str) -> Tmux {
        Tmux::open(cmd, 200, 50, true)
    }

    fn open(cmd: &str, width: u16, height: u16, scrollback: bool) -> Tmux {
        let dir = tempfile::Builder::new().prefix("tmux").tempdir().unwrap();
        let t = Tmux { name: unique_repo("trowel-tmux"), dir, scrollback };
        // Keep the pane after the command ends so its last output and exit code can be read.
        let wrapped = format!("{cmd}; echo \"EXIT=$?\"; sleep 600");
        let (w, h) = (width.to_string(), height.to_string());
        assert_ok(&t.tmux(&["new-session", "-d", "-s", &t.name, "-x", &w, "-y", &h, &wrapped]));
        t
    }

    /// Runs a tmux command on this session's server.
    pub fn tmux(&self, args: &[&str]) -> Output {
        run(Command::new("tmux").arg("-S").arg(self.socket()).args(args))
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("s")
    }

    pub fn screen(&self) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", &self.name];
        if self.scrollback {
            args.extend(["-S", "-2000"]);
        }
        stdout(&self.tmux(&args))
    }

    /// The screen once it shows `text` and has finished drawing that frame.
    #[track_caller]
    pub fn wait_for(&self, text: &str) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return self.settled(s, text);
            }
            assert!(t0.elapsed() < Duration::from_secs(180), "timed out waiting for {text:?}; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `s`, or what the terminal shows once it stops changing: a capture can land while a frame
    /// is half drawn (a clean-clone CI run saw a replay's header with the panes below it still
    /// blank). Captures 50 ms apart until two agree, for at most 300 ms; one that no longer
    /// shows `text` (the UI moved on) leaves the last that did.
    fn settled(&self, mut s: String, text: &str) -> String {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(300) {
            std::thread::sleep(Duration::from_millis(50));
            let next = self.screen();
            if next == s || !next.contains(text) {
                return s;
            }
            s = next;
        }
        s
    }

    /// Sends keys as typed (`-l`: no key-name lookup).
    pub fn keys(&self, keys: &str) {
        assert_ok(&self.tmux(&["send-keys", "-t", &self.name, "-l", keys]));
        // Give the UI a frame to take each batch, as a person typing would.
        std::thread::sleep(Duration::from_millis(150));
    }

    pub fn key(&self, name: &str) {
        assert_ok(&self.tmux(&["send-keys", "-t", &self.name, name]));
        std::thread::sleep(Duration::from_millis(150));
    }

    /// At `trowel debug`'s push review: confirms, waits for the build to end, quits, and checks
    /// it exited 0; the last screen.
    #[track_caller]
    pub fn confirm_push_and_quit(&self) -> String {
        self.keys("y");
        self.wait_for("✓ built");
        self.key("Escape");
        self.keys("q");
        let s = self.wait_for("EXIT=");
        assert!(s.contains("EXIT=0"), "{s}");
        s
    }

    /// Types a line and presses Enter, as at a prompt.
    pub fn line(&self, text: &str) {
        assert_ok(&self.tmux(&["send-keys", "-t", &self.name, "-l", text]));
        assert_ok(&self.tmux(&["send-keys", "-t", &self.name, "Enter"]));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-S").arg(self.socket()).arg("kill-server").output();
    }
}
