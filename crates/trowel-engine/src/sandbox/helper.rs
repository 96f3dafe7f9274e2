//! The re-executed helper: `trowel __sandbox-init <spec fd> <report fd> <parent pid>`.
//!
//! It is a fresh single-threaded process, so unlike trowel it may fork and change process-wide
//! state. It reads the spec, unshares the namespaces the isolation asks for, makes every mount
//! private (nothing done inside may propagate to the host), forks init (PID 1 of the new PID
//! namespace) and waits for it. It is itself outside the new PID namespace: `unshare` moves
//! only its future children there.

use std::fmt::Display;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::ForkResult;

use super::mounts::Network;
use super::wire::{self, HelperSpec, Report, Setup};
use super::{chroot, init};

/// A failure on the helper side, already phrased for the user.
#[derive(Debug)]
pub(super) struct Failure(pub String);

pub(super) type Step<T> = Result<T, Failure>;

/// Attaches what was being done to an error.
pub(super) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Step<T>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Step<T> {
        self.map_err(|e| Failure(format!("{}: {e}", what())))
    }
}

/// Exit status of the helper and init when set-up failed (the report says why).
pub(super) const SETUP_FAILED: i32 = 125;

/// Largest spec accepted from trowel (the environment dominates; real ones are a few KiB).
const SPEC_LIMIT: usize = 16 << 20;

/// Entry point of `trowel __sandbox-init`; `main()` must call it before anything else (in
/// particular before any thread exists). Never returns.
pub fn helper_main() -> ! {
    let args: Vec<String> = std::env::args().collect();
    if args.get(2).map(String::as_str) == Some(super::template::TEMPLATE_ARG) {
        super::template::template_main();
    }
    let parsed = (|| {
        let spec_fd: i32 = args.get(2)?.parse().ok()?;
        let report_fd: i32 = args.get(3)?.parse().ok()?;
        let parent: i32 = args.get(4)?.parse().ok()?;
        (spec_fd > 2 && report_fd > 2 && spec_fd != report_fd).then_some((spec_fd, report_fd, parent))
    })();
    let Some((spec_fd, report_fd, parent)) = parsed else {
        eprintln!("trowel: {} is internal to trowel's sandbox and not meant to be run by hand", super::HELPER_ARG);
        std::process::exit(SETUP_FAILED);
    };
    // SAFETY: trowel's launcher passes these two descriptors, open, for this process to own.
    let (spec_fd, report) = unsafe { (OwnedFd::from_raw_fd(spec_fd), OwnedFd::from_raw_fd(report_fd)) };
    // The launcher cleared close-on-exec to pass them; nothing exec'd later may inherit them.
    for fd in [&spec_fd, &report] {
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
    // The launcher asked for SIGKILL when it dies; if it died before that took effect we have
    // been reparented and must not go on.
    if nix::unistd::getppid().as_raw() != parent {
        std::process::exit(SETUP_FAILED);
    }
    let code = match run_helper(spec_fd, report.as_fd()) {
        Ok(code) => code,
        Err(Failure(message)) => {
            Report::Setup { message }.send(report.as_fd());
            SETUP_FAILED
        }
    };
    // Init is reaped: nothing of the sandbox runs any more. Closing the pipes now tells trowel
    // at once; exiting tears the mount namespace down, which trowel need not wait for.
    drop(report);
    close_stdio();
    std::process::exit(code)
}

/// Closes this process's standard descriptors (trowel's output pipes, in piped mode).
fn close_stdio() {
    for fd in 0..=2 {
        // SAFETY: called just before `exit`; nothing in this process uses the standard
        // descriptors afterwards (a failed close of one never open is ignored).
        unsafe { libc::close(fd) };
    }
}

fn run_helper(spec_fd: OwnedFd, report: BorrowedFd<'_>) -> Step<i32> {
    let bytes = wire::read_all(spec_fd.as_fd(), SPEC_LIMIT).context(|| "read the sandbox spec".into())?;
    drop(spec_fd);
    let spec: HelperSpec = serde_json::from_slice(&bytes).context(|| "parse the sandbox spec".into())?;

    let threads = super::sys::thread_count().context(|| "count the helper's threads".into())?;
    if threads != 1 {
        return Err(Failure(format!(
            "the sandbox helper has {threads} threads; main() must hand `{}` to helper_main() before starting any",
            super::HELPER_ARG
        )));
    }

    let no_network = spec.network == Network::None;
    let mut outside = None;
    match &spec.setup {
        Setup::Chroot(plan) => {
            // The template's copy (`template.rs`) instead of the host's: what is needed of the
            // host is taken first, while it is reachable.
            let template = match plan.template_fd {
                Some(fd) if fd > 2 => {
                    outside = Some(chroot::take_outside(&spec.root, plan)?);
                    // SAFETY: trowel's launcher passes this descriptor, open, for this process
                    // to own (as the spec and report pipes).
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
                    nix::sched::setns(&fd, CloneFlags::CLONE_NEWNS)
                        .context(|| "enter the sandbox's template mount namespace".into())?;
                    true
                }
                _ => false,
            };
            let net = if no_network { CloneFlags::CLONE_NEWNET } else { CloneFlags::empty() };
            // The helper is in the new mount namespace too, and the last to leave it: its exit,
            // which trowel does not wait for, pays for the namespace's teardown.
            nix::sched::unshare(
                CloneFlags::CLONE_NEWNS
                    | CloneFlags::CLONE_NEWPID
                    | CloneFlags::CLONE_NEWIPC
                    | CloneFlags::CLONE_NEWUTS
                    | net,
            )
            .context(|| "unshare mount, PID, IPC, UTS (and network) namespaces".into())?;
            // The template's one mount is private already.
            if !template {
                nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                    .context(|| "make all mounts private".into())?;
            }
        }
        // No namespaces: init below is a subreaper instead of a PID 1. A network namespace is
        // the one thing a pod may still be able to make (with CAP_SYS_ADMIN).
        Setup::Container if no_network => nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
            Failure(format!(
                "RUN --network=none cannot be honoured in container isolation: creating a network namespace \
                 failed ({e}); the pod needs CAP_SYS_ADMIN for it"
            ))
        })?,
        Setup::Container => {}
    }
    if no_network {
        // A fresh network namespace has only a loopback interface, and it is down.
        super::sys::loopback_up().context(|| "bring up the loopback interface".into())?;
    }

    // Init learns that the helper died early through this pipe reaching end-of-file.
    let (alive_r, alive_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context(|| "create a pipe".into())?;
    // SAFETY: the helper is single-threaded (checked above), so the child may run arbitrary code.
    match unsafe { nix::unistd::fork() }.context(|| "fork the sandbox init".into())? {
        ForkResult::Child => {
            drop(alive_w);
            init::init_main(&spec, report, alive_r, outside)
        }
        ForkResult::Parent { child } => {
            drop(alive_r);
            let status = loop {
                match waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other.context(|| "wait for the sandbox init".into())?,
                }
            };
            drop(alive_w);
            match status {
                WaitStatus::Exited(_, code) => Ok(code),
                WaitStatus::Signaled(_, sig, _) => {
                    Err(Failure(format!("the sandbox init was killed by {sig} (out of memory?)")))
                }
                other => Err(Failure(format!("unexpected wait status of the sandbox init: {other:?}"))),
            }
        }
    }
}
