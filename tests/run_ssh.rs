//! `RUN --mount=type=ssh`: a real `ssh-agent` forwarded into a RUN that clones a repository
//! with git over SSH from an `sshd` on 127.0.0.1 (keys generated here, OpenSSH's own tools on
//! both sides, the build image Debian's git and openssh-client). The agent is reached through
//! trowel's relay socket (its owner and mode as the mount says) and the key never enters the
//! image; `--ssh ID=KEYFILE` serves key files through an agent trowel starts.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A process killed when the test ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ok(cmd: &mut Command) {
    let o = run(cmd);
    assert_ok(&o);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(30), "{what} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An sshd on 127.0.0.1 that lets `client.pub` in as root, serving a bare repository at
/// `<dir>/repo.git` with one commit.
fn git_server(dir: &Path, client_pub: &Path) -> (Daemon, u16, PathBuf) {
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

const DF: &str = "\
ARG DEBIAN
FROM ${DEBIAN}
ARG PORT
ARG REPO
ENV GIT_SSH_COMMAND=\"ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR\"
RUN --mount=type=ssh,required \\
    git clone -q ssh://root@127.0.0.1:$PORT$REPO /src \\
    && (echo $SSH_AUTH_SOCK; stat -c '%a %u' $SSH_AUTH_SOCK; ssh-add -l | wc -l) > /agent
RUN --mount=type=ssh,id=deploy,target=/deploy.sock,uid=1000,mode=0660 \\
    SSH_AUTH_SOCK=/deploy.sock git ls-remote -q --heads ssh://root@127.0.0.1:$PORT$REPO | cut -c42- > /deploy \\
    && stat -c '%a %u' /deploy.sock >> /deploy
";

#[test]
fn an_ssh_agent_is_forwarded_for_a_git_clone_over_ssh() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("client_key");
    ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "trowel-test", "-f"]).arg(&key));
    let (_sshd, port, repo) = git_server(dir.path(), &dir.path().join("client_key.pub"));
    let sock = dir.path().join("agent.sock");
    let agent = Daemon(Command::new("ssh-agent").arg("-D").arg("-a").arg(&sock).stdout(Stdio::null()).spawn().unwrap());
    wait_until("ssh-agent", || std::os::unix::net::UnixStream::connect(&sock).is_ok());
    ok(Command::new("ssh-add").arg("-q").arg(&key).env("SSH_AUTH_SOCK", &sock));

    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), DF).unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("ssh-clone"));
    let o = run(trowel()
        .env("SSH_AUTH_SOCK", &sock)
        .args(["build", "--context"])
        .arg(ctx.path())
        .args(["--destination", &dest, "--ssh", "default"])
        .arg(format!("--ssh=deploy={}", key.display()))
        .args(["--build-arg", &format!("DEBIAN={}", debian_image("git"))])
        .args(["--build-arg", &format!("PORT={port}"), "--build-arg", &format!("REPO={}", repo.display())]));
    assert_ok(&o);
    drop(agent);

    let image = pull_and_unpack(&dest);
    let read = |p: &str| Tree::content(&image.rootfs(), p);
    assert_eq!(read("/src/hello.txt"), "cloned over ssh\n", "git cloned through the forwarded agent");
    assert_eq!(read("/agent"), "/run/buildkit/ssh_agent.0\n600 0\n1\n", "BuildKit's socket path and defaults");
    assert_eq!(read("/deploy"), "refs/heads/main\n660 1000\n", "a key file served by an agent trowel started");
    let tree = image.tree();
    assert!(!tree.has("/run/buildkit") && !tree.has("/deploy.sock"), "{:?}", tree.paths_under("/run"));
    // The private key never reached the image (only the agent held it).
    let private = std::fs::read_to_string(&key).unwrap();
    let line = private.lines().nth(1).unwrap();
    assert!(!image_holds(&image.rootfs(), line), "the private key is in the image");
}

/// Whether any regular file of `root` contains `needle`.
fn image_holds(root: &Path, needle: &str) -> bool {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .any(|e| std::fs::read(e.path()).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())))
}
