//! Stopping a running command from another thread: the debugger's "abort" while a RUN runs.
//!
//! A [`Stop`] is shared between whoever may ask for the stop (the debugger's UI thread, a
//! signal handler's thread) and the engine thread blocked in [`super::run`]. Asking writes a
//! byte to a pipe the launcher polls beside the command's output, so a stop is noticed at once
//! rather than when the command next prints. The launcher then stops the command's whole
//! process tree as `docker stop` does: SIGTERM to every process below the sandbox's init, and
//! SIGKILL to whatever is left after [`GRACE`] (through the helper, whose death takes init and,
//! in chroot isolation, the whole PID namespace with it).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a stopped command gets between SIGTERM and SIGKILL. Short: the person asking is
/// waiting with the UI gone, and a build step has nothing worth a long shutdown.
pub const GRACE: Duration = Duration::from_millis(1000);

/// A request to stop, shared by cloning.
#[derive(Clone)]
pub struct Stop(Arc<Inner>);

struct Inner {
    requested: AtomicBool,
    reason: Mutex<Option<String>>,
    /// Readable once a stop was asked for (one byte is written; nothing ever reads it).
    wake_r: OwnedFd,
    wake_w: OwnedFd,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop").field("requested", &self.reason()).finish()
    }
}

impl Stop {
    /// A stop nobody asked for yet. Fails only when no pipe can be created (out of
    /// descriptors).
    pub fn new() -> std::io::Result<Stop> {
        let flags = rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK;
        let (wake_r, wake_w) = rustix::pipe::pipe_with(flags).map_err(std::io::Error::from)?;
        Ok(Stop(Arc::new(Inner { requested: AtomicBool::new(false), reason: Mutex::new(None), wake_r, wake_w })))
    }

    /// Asks for the stop (the first reason given is kept). Safe from any thread, any number of
    /// times.
    pub fn request(&self, reason: impl Into<String>) {
        let mut r = self.0.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some(reason.into());
        }
        drop(r);
        if !self.0.requested.swap(true, Ordering::SeqCst) {
            // A full pipe (impossible with one byte) or an error still leaves `requested` set,
            // which every checkpoint reads.
            let _ = rustix::io::write(&self.0.wake_w, &[1]);
        }
    }

    pub fn is_requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }

    /// What a long file-system or download operation looks at to give up when this stop is
    /// asked for ([`crate::fs::Cancel`]: one atomic load a look).
    pub fn cancel(&self) -> crate::fs::Cancel {
        let stop = self.clone();
        crate::fs::Cancel::new(move || stop.is_requested())
    }

    /// Ready once the stop is asked for: for a wait on an async runtime to race against
    /// (`engine/stopping.rs`, `trowel warm`). It looks every 50 ms, well under what a person
    /// at ctrl-c notices.
    pub async fn asked(&self) {
        while !self.is_requested() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `fut` until it ends or the stop is asked for first (then it is dropped half way,
    /// and the stop's reason comes back): the one race every wait that a stop must end uses.
    pub async fn unless_asked<F: std::future::Future>(&self, fut: F) -> Result<F::Output, String> {
        tokio::select! {
            biased;
            out = fut => Ok(out),
            () = self.asked() => Err(self.reason().unwrap_or_default()),
        }
    }

    /// Why the stop was asked for, once it was.
    pub fn reason(&self) -> Option<String> {
        self.0.reason.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The descriptor that becomes readable when the stop is asked for.
    pub(super) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.0.wake_r.as_fd()
    }
}

/// Every process below `pid` (children, their children…) with its parent, read from `/proc`. A process that
/// forks while this runs may be missed; the caller repeats, and the final SIGKILL of the helper
/// ends a PID namespace whole.
pub(super) fn descendants(pid: i32) -> Vec<(i32, i32)> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    let parents: Vec<(i32, i32)> = rd
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|p| Some((p, parent_of(p)?)))
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in parents.iter().filter(|(_, pp)| *pp == p) {
            if !out.iter().any(|(c, _)| *c == child) {
                out.push((child, parent));
                frontier.push(child);
            }
        }
    }
    out
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (2nd field) may hold spaces and parentheses: fields follow the last ')'.
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Sends `signal` to each pid; a process that is already gone is no error.
pub(super) fn signal_all(pids: &[i32], signal: rustix::process::Signal) {
    for &p in pids {
        if let Some(pid) = rustix::process::Pid::from_raw(p) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_wakes_its_pipe_once_and_keeps_the_first_reason() {
        let s = Stop::new().unwrap();
        let mut fds = [crate::sandbox::sys::pollfd(std::os::fd::AsRawFd::as_raw_fd(&s.wake_fd()), libc::POLLIN)];
        assert_eq!(crate::sandbox::sys::poll(&mut fds, 0).unwrap(), 0);
        assert!(!s.is_requested());
        s.clone().request("quit from the debugger");
        s.request("ctrl-c");
        assert!(s.is_requested());
        assert_eq!(s.reason().as_deref(), Some("quit from the debugger"));
        assert_eq!(crate::sandbox::sys::poll(&mut fds, 0).unwrap(), 1);
    }

    #[test]
    fn descendants_are_found_through_proc() {
        let mut child = std::process::Command::new("sh").args(["-c", "sleep 30 & wait"]).spawn().unwrap();
        let me = child.id() as i32;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut found = Vec::new();
        while found.is_empty() && std::time::Instant::now() < deadline {
            found = descendants(me);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(found.len(), 1, "the sleep below the shell");
        assert_eq!(found[0].1, me);
        signal_all(&[found[0].0], rustix::process::Signal::KILL);
        let _ = child.wait();
        assert!(descendants(me).is_empty());
    }
}
