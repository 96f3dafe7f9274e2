//! The interactive mode (`StdioMode::Inherit`) with a real terminal: this test binary is run
//! again under a pseudo-terminal made here, in the role of trowel at a debugger pause, and the
//! test types into that terminal and reads what the sandboxed shell shows.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::pty::{Winsize, openpty};
use rustix::termios::LocalModes;
use trowel_engine::sandbox::{StdioMode, run};

mod sandbox_support;
use sandbox_support::{busybox_root, sh};

const CHILD_ROOT: &str = "TROWEL_SANDBOX_PTY_CHILD_ROOT";

const SCRIPT: &str = "tty; stty size; read line; stty size; echo \"got:$line\"; exit 7";

/// The "trowel" side of the interactive test; the process exits with the command's status.
#[test]
#[ignore = "child role of interactive_shell_gets_its_own_terminal, which runs it"]
fn pty_child_role() {
    let root = std::env::var(CHILD_ROOT).expect("run by interactive_shell_gets_its_own_terminal");
    let mut s = sh(Path::new(&root), SCRIPT);
    s.stdio = StdioMode::Inherit;
    let outcome = run(&s, &mut |_, _| panic!("Inherit mode never calls on_output")).unwrap();
    std::process::exit(outcome.exit_code);
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

/// Reads from the (non-blocking) terminal master until `needle` has appeared in `seen`.
fn read_until(master: &mut std::fs::File, seen: &mut String, needle: &str, deadline: Instant) {
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        assert!(Instant::now() < deadline, "timed out waiting for {needle:?}; terminal showed {seen:?}");
        match master.read(&mut buf) {
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("read the terminal: {e}; it showed {seen:?}"),
        }
    }
}

#[test]
fn interactive_shell_gets_its_own_terminal() {
    let root = busybox_root(true);
    let pty = openpty(Some(&winsize(33, 101)), None).unwrap();
    let slave: OwnedFd = pty.slave;
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "pty_child_role", "--nocapture", "--test-threads=1"])
        .env(CHILD_ROOT, root.path())
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    // SAFETY: only setsid and ioctl, both async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    rustix::fs::fcntl_setfl(&pty.master, rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut master = std::fs::File::from(pty.master);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();

    // The shell's terminal is the sandbox's first pty, with the user's window size.
    read_until(&mut master, &mut seen, "33 101", deadline);
    assert!(seen.contains("/dev/pts/0"), "{seen:?}");
    // While the shell runs, trowel's terminal is raw: keys go through untouched.
    let flags = rustix::termios::tcgetattr(&slave).unwrap().local_modes;
    assert!(!flags.contains(LocalModes::ICANON) && !flags.contains(LocalModes::ECHO), "{flags:?}");

    // A resize of the user's terminal reaches the shell's.
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which outlives the call.
    assert_eq!(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &winsize(40, 120)) }, 0);
    master.write_all(b"hello\n").unwrap();
    read_until(&mut master, &mut seen, "got:hello", deadline);
    assert!(seen.contains("40 120"), "{seen:?}");

    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the interactive run did not end; terminal showed {seen:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(7), "terminal showed {seen:?}");
    // The user's terminal settings are back.
    let flags = rustix::termios::tcgetattr(&slave).unwrap().local_modes;
    assert!(flags.contains(LocalModes::ICANON) && flags.contains(LocalModes::ECHO), "{flags:?}");
}
