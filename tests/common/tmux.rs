//! Drives a terminal program in a detached tmux session of a fixed size, as a person at a
//! terminal would: type keys, wait for text on the screen.

use std::process::Command;
use std::time::{Duration, Instant};

use super::{assert_ok, run, stdout, unique_repo};

/// A command running in a detached tmux session of a fixed size.
pub struct Tmux {
    name: String,
}

impl Tmux {
    pub fn start(cmd: &str, width: u16, height: u16) -> Tmux {
        let name = unique_repo("trowel-tui");
        // Keep the pane after the command ends so its exit code can be read.
        let wrapped = format!("{cmd}; echo \"EXIT=$?\"; sleep 600");
        let o = run(Command::new("tmux").args([
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            &wrapped,
        ]));
        assert_ok(&o);
        Tmux { name }
    }

    pub fn screen(&self) -> String {
        stdout(&run(Command::new("tmux").args(["capture-pane", "-p", "-t", &self.name])))
    }

    #[track_caller]
    pub fn wait_for(&self, text: &str) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(t0.elapsed() < Duration::from_secs(180), "timed out waiting for {text:?}; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends keys as typed (`-l`: no key-name lookup).
    pub fn keys(&self, keys: &str) {
        assert_ok(&run(Command::new("tmux").args(["send-keys", "-t", &self.name, "-l", keys])));
        // Give the UI a frame to take each batch, as a person typing would.
        std::thread::sleep(Duration::from_millis(150));
    }

    pub fn key(&self, name: &str) {
        assert_ok(&run(Command::new("tmux").args(["send-keys", "-t", &self.name, name])));
        std::thread::sleep(Duration::from_millis(150));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).output();
    }
}
