//! Commands trowel runs itself, outside any sandbox (git, for `ADD` of a repository), must not
//! outlive it: a killed build would otherwise leave a clone writing into a work directory the
//! next build is removing. Such a command gets `PR_SET_PDEATHSIG`, as the sandbox's helper
//! does, so it is killed when the thread that started it ends (with trowel, or when the build
//! thread returns without waiting for it).

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the process `cmd` starts receive SIGKILL when the calling thread ends.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec; it makes one async-signal-safe syscall
    // (prctl) on constants, allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command started from a thread that ends is killed with it.
    #[test]
    fn dies_with_the_thread_that_started_it() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            die_with_parent(&mut cmd);
            let child = cmd.spawn().unwrap();
            tx.send(child.id()).unwrap();
            // The thread ends without waiting: the kernel sends SIGKILL.
            std::mem::forget(child);
        });
        let pid = rx.recv().unwrap() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for this test process to reap it.
            if status.is_empty() || status.split_whitespace().nth(2) == Some("Z") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "sleep outlived its thread: {status}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
