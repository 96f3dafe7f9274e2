//! An `sshd` on 127.0.0.1 serving a git repository, and the small process helpers its tests
//! use (shared by `run_ssh.rs` and `pod/`): OpenSSH's own tools, keys generated per test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A process killed when the test ends.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn ok(cmd: &mut Command) {
    let o = run(cmd);
    assert_ok(&o);
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(30), "{what} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An sshd on 127.0.0.1 that lets `client.pub` in as root, serving a bare repository at
/// `<dir>/repo.git` with one commit.
pub fn git_server(dir: &Path, client_pub: &Path) -> (Daemon, u16, PathBuf) {
    ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(dir.join("host_key")));
    std::fs::copy(client_pub, dir.join("authorized_keys")).unwrap();
    let repo = dir.join("repo.git");
    ok(Command::new("git").args(["init", "-q", "--bare", "-b", "main"]).arg(&repo));
    let work = dir.join("work");
    ok(Command::new("git").args(["init", "-q", "-b", "main"]).arg(&work));
    std::fs::write(work.join("hello.txt"), "cloned over ssh\n").unwrap();
    let git = |args: &[&str]| {
        ok(Command::new("git").arg("-C").arg(&work).args(["-c", "user.name=t", "-c", "user.email=t@t"]).args(args))
    };
    git(&["add", "hello.txt"]);
    git(&["commit", "-q", "-m", "one"]);
    git(&["push", "-q", repo.to_str().unwrap(), "main"]);
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {pid}\n",
            host = dir.join("host_key").display(),
            keys = dir.join("authorized_keys").display(),
            pid = dir.join("sshd.pid").display(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let sshd = Command::new("/usr/sbin/sshd")
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("sshd", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    (Daemon(sshd), port, repo)
}
