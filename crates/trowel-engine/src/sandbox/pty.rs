//! Interactive mode: the command gets a pseudo-terminal of the sandbox's own `devpts`, relayed
//! by init to and from trowel's terminal.
//!
//! Why not hand the command trowel's terminal directly: it would then share a terminal with the
//! user's host shell and could push input into it (`TIOCSTI`) or leave it in a strange state.
//! With a pty the command has a proper controlling terminal (job control, `^C`, `^Z` work and
//! are delivered inside the sandbox) and only ever sees bytes. trowel's terminal is put in raw
//! mode meanwhile so that every key reaches the pty's line discipline unchanged, and its window
//! size is copied over on start and on every `SIGWINCH`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use rustix::fs::{Mode, OFlags};
use rustix::termios::{OptionalActions, Termios};

use super::helper::{Context, Failure, Step};
use super::init::reap_nonblocking;
use super::sys;

/// Input read from the terminal but not yet accepted by the pty is capped here; beyond it the
/// terminal is simply not read until the command catches up.
const INPUT_BACKLOG: usize = 64 * 1024;

pub(super) struct Relay {
    master: OwnedFd,
    slave: Option<OwnedFd>,
    /// trowel's terminal settings, restored when the command is done.
    saved: Termios,
    signals: SignalFd,
}

/// Whether an interactive session can get a pseudo-terminal where the command runs with
/// container isolation (the container's own `/dev`: chroot isolation mounts a `devpts` of its
/// own). In a container whose runtime mounted no `devpts` on `/dev/pts`, none can be opened, and
/// the session would fail before the shell starts; this says why, and what would make it work.
pub fn check_terminal_in_container() -> Result<(), String> {
    let opened = rustix::fs::open("/dev/ptmx", OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())
        .map_err(io::Error::from)
        .and_then(|m| sys::open_pty_slave(m.as_fd()));
    opened.map(drop).map_err(|e| {
        format!(
            "no new terminal can be opened here: this container has no devpts on /dev/pts (/dev/ptmx: {e}); \
             run trowel in a container whose runtime mounts /dev/pts (Docker, containerd and CRI-O do), or \
             mount one: mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts (needs CAP_SYS_ADMIN)"
        )
    })
}

impl Relay {
    /// Opens a pty in the sandbox's `/dev/pts`, gives it the user's terminal settings and size,
    /// and switches the user's terminal to raw mode. Must run in init, after `/dev` is set up
    /// and before forking the command.
    pub fn open() -> Step<Relay> {
        let master = rustix::fs::open("/dev/ptmx", OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())
            .context(|| "open /dev/ptmx".into())?;
        let slave = sys::open_pty_slave(master.as_fd()).context(|| "open the pseudo-terminal".into())?;
        let stdin = io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).context(|| "read the terminal settings".into())?;
        rustix::termios::tcsetattr(&slave, OptionalActions::Now, &saved)
            .context(|| "copy the terminal settings".into())?;
        if let Ok(size) = rustix::termios::tcgetwinsize(&stdin) {
            let _ = rustix::termios::tcsetwinsize(&slave, size);
        }

        // Signals are taken through a descriptor so one poll loop sees them with the I/O. The
        // command child restores the mask before it execs.
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.add(Signal::SIGWINCH);
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).context(|| "block SIGCHLD and SIGWINCH".into())?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .context(|| "create a signalfd".into())?;
        // Changing terminal settings from outside the foreground process group would stop init.
        // SAFETY: SIG_IGN is a valid disposition for SIGTTOU.
        unsafe { libc::signal(libc::SIGTTOU, libc::SIG_IGN) };

        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, OptionalActions::Now, &raw)
            .context(|| "switch the terminal to raw mode".into())?;
        Ok(Relay { master, slave: Some(slave), saved, signals })
    }

    /// In the command child: the slave side, to become its controlling terminal and stdio.
    pub fn into_slave(mut self) -> OwnedFd {
        self.slave.take().expect("the slave is only taken once")
    }

    /// In init: relays until the command has exited and its output is drained, then restores
    /// the user's terminal. Returns the command's status.
    pub fn run(mut self, command: Pid) -> Step<WaitStatus> {
        // Only the command may hold the slave, so the master sees end-of-file once it is gone.
        self.slave = None;
        let result = self.relay(command);
        let _ = rustix::termios::tcsetattr(io::stdin(), OptionalActions::Now, &self.saved);
        result
    }

    fn relay(&mut self, command: Pid) -> Step<WaitStatus> {
        rustix::fs::fcntl_setfl(&self.master, OFlags::NONBLOCK).context(|| "make the pty non-blocking".into())?;
        let (stdin, stdout) = (io::stdin(), io::stdout());
        let mut pending: Vec<u8> = Vec::new();
        let mut stdin_open = true;
        let mut master_open = true;
        let mut status = None;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let want_input = stdin_open && status.is_none() && pending.len() < INPUT_BACKLOG;
            let master_events = libc::POLLIN | if pending.is_empty() { 0 } else { libc::POLLOUT };
            let mut fds = [
                sys::pollfd(if want_input { stdin.as_raw_fd() } else { -1 }, libc::POLLIN),
                sys::pollfd(if master_open { self.master.as_raw_fd() } else { -1 }, master_events),
                sys::pollfd(self.signals.as_raw_fd(), libc::POLLIN),
            ];
            // Once the command has exited, only what is already buffered is relayed: a
            // background process may hold the pty open forever.
            let timeout = if status.is_some() { 0 } else { -1 };
            let ready = sys::poll(&mut fds, timeout).context(|| "poll the terminal".into())?;
            if ready == 0 && status.is_some() {
                break;
            }
            if fds[2].revents != 0 {
                while let Ok(Some(info)) = self.signals.read_signal() {
                    if info.ssi_signo == libc::SIGWINCH as u32
                        && let Ok(size) = rustix::termios::tcgetwinsize(&stdin)
                    {
                        let _ = rustix::termios::tcsetwinsize(&self.master, size);
                    }
                }
                if let Some(s) = reap_nonblocking(command)? {
                    status = Some(s);
                }
            }
            if fds[0].revents != 0 {
                match rustix::io::read(&stdin, &mut buf) {
                    Ok(n) if n > 0 => pending.extend_from_slice(&buf[..n]),
                    Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                    _ => {
                        // The user's terminal is gone: hang up the command like a closing
                        // terminal would.
                        stdin_open = false;
                        let _ = nix::sys::signal::kill(Pid::from_raw(-command.as_raw()), Signal::SIGHUP);
                    }
                }
            }
            if fds[1].revents & libc::POLLOUT != 0 {
                match rustix::io::write(&self.master, &pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                    Err(e) => return Err(Failure(format!("write to the pseudo-terminal: {e}"))),
                }
            }
            if fds[1].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                match rustix::io::read(&self.master, &mut buf) {
                    Ok(n) if n > 0 => {
                        sys::write_all(stdout.as_fd(), &buf[..n]).context(|| "write to the terminal".into())?
                    }
                    Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                    // EIO: every slave descriptor is closed.
                    _ => master_open = false,
                }
            }
            if !master_open && status.is_none() {
                status = Some(super::init::wait_for(command)?);
            }
            if status.is_some() && !master_open {
                break;
            }
        }
        status.ok_or_else(|| Failure("the command's status was lost".into()))
    }
}
