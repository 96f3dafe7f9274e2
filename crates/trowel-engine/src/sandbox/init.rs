//! Init: PID 1 of the sandbox's PID namespace.
//!
//! It sets up the isolation, forks the command, reaps every process that ends up orphaned in
//! the namespace, and exits with the command's status the moment the command exits. The kernel
//! then kills whatever is left in the namespace (a daemon started in the background by the RUN,
//! say), so nothing outlives the step.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use rustix::process::{DumpableBehavior, Signal};

use super::helper::{Context, Failure, SETUP_FAILED, Step};
use super::pty::Relay;
use super::wire::{HelperSpec, Report, Setup};
use super::{StdioMode, chroot, exec, sys};

/// Runs init; never returns.
/// `outside`: what the helper took from the host for the fast entry (`template.rs`), if it is
/// used.
pub(super) fn init_main(
    spec: &HelperSpec,
    report: BorrowedFd<'_>,
    helper_alive: OwnedFd,
    outside: Option<chroot::Outside>,
) -> ! {
    let outcome =
        run_init(spec, report, helper_alive, outside).unwrap_or_else(|Failure(message)| Report::Setup { message });
    outcome.send(report);
    std::process::exit(match outcome {
        Report::Exited { code } => code,
        Report::Signaled { signal } => 128 + signal,
        _ => SETUP_FAILED,
    })
}

fn run_init(
    spec: &HelperSpec,
    report: BorrowedFd<'_>,
    helper_alive: OwnedFd,
    outside: Option<chroot::Outside>,
) -> Step<Report> {
    // If the helper dies (trowel timed out, or died), init dies, and the namespace with it.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .context(|| "set the parent-death signal".into())?;
    // ...unless the helper died before that took effect: its end of the pipe is then closed.
    let mut probe = [sys::pollfd(helper_alive.as_raw_fd(), libc::POLLIN)];
    if sys::poll(&mut probe, 0).context(|| "poll".into())? > 0 && probe[0].revents != 0 {
        std::process::exit(SETUP_FAILED);
    }
    drop(helper_alive);
    // Nothing in the sandbox may ptrace init or open its descriptors (trowel's terminal, the
    // report pipe) through /proc.
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .context(|| "make init non-dumpable".into())?;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));

    match &spec.setup {
        Setup::Chroot(plan) => match outside {
            Some(outside) => chroot::enter_from_template(outside, plan)?,
            None => chroot::enter(&spec.root, plan)?,
        },
        // Without a PID namespace, init becomes the subreaper of everything the command starts,
        // so what the command leaves running can be found and killed when it exits.
        Setup::Container => rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .context(|| "become the command's subreaper".into())?,
    }

    let relay = match spec.command.stdio {
        StdioMode::Inherit if rustix::termios::isatty(std::io::stdin()) => Some(Relay::open()?),
        _ => None,
    };
    // SAFETY: init is single-threaded (a fork of the single-threaded helper).
    match unsafe { nix::unistd::fork() }.context(|| "fork the command".into())? {
        ForkResult::Child => exec::exec_command(&spec.command, report, relay.map(Relay::into_slave)),
        ForkResult::Parent { child } => {
            let status = match relay {
                Some(relay) => relay.run(child)?,
                None => wait_for(child)?,
            };
            if matches!(spec.setup, Setup::Container) {
                kill_leftovers();
            }
            Ok(match status {
                WaitStatus::Signaled(_, sig, _) => Report::Signaled { signal: sig as i32 },
                WaitStatus::Exited(_, code) => Report::Exited { code },
                other => return Err(Failure(format!("unexpected wait status of the command: {other:?}"))),
            })
        }
    }
}

/// Kills and reaps every process still below init (daemons a RUN started in the background):
/// without a PID namespace nobody else would stop them. They were all reparented to init, the
/// subreaper, so they are init's children.
fn kill_leftovers() {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    for _ in 0..50 {
        let children = children_of(me);
        if children.is_empty() {
            return;
        }
        for pid in children {
            // SAFETY: plain kill(2) on a pid that is our child (it cannot be reused before we
            // reap it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        while let Ok(status) = waitpid(None::<Pid>, None) {
            if matches!(status, WaitStatus::StillAlive) {
                break;
            }
        }
    }
}

/// Pids whose parent is `ppid`, from /proc.
fn children_of(ppid: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().is_some_and(|s| {
                // The command name (2nd field) may contain spaces and parentheses: parse after
                // the last ')'.
                s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                    == Some(ppid)
            })
        })
        .collect()
}

/// Reaps children until `command` has exited; orphans reparented to init are reaped on the way.
pub(super) fn wait_for(command: Pid) -> Step<WaitStatus> {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(status @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _))) if pid == command => {
                return Ok(status);
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context(|| "wait for the command".into()),
        }
    }
}

/// Reaps every child that has exited without blocking; returns the command's status if it was
/// among them.
pub(super) fn reap_nonblocking(command: Pid) -> Step<Option<WaitStatus>> {
    use nix::sys::wait::WaitPidFlag;
    let mut found = None;
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(found),
            Ok(status @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _))) if pid == command => {
                found = Some(status);
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context(|| "reap children".into()),
        }
    }
}
