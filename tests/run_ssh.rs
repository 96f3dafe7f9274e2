//! `RUN --mount=type=ssh`: a real `ssh-agent` forwarded into a RUN that clones a repository
//! with git over SSH from an `sshd` on 127.0.0.1 (keys generated here, OpenSSH's own tools on
//! both sides, the build image Debian's git and openssh-client). The agent is reached through
//! trowel's relay socket (its owner and mode as the mount says) and the key never enters the
//! image; `--ssh ID=KEYFILE` serves key files through an agent trowel starts. `ADD` of a
//! repository over ssh clones from the same sshd with the build's `default` agent, its host key
//! trusted as BuildKit trusts it (scanned, and said in a warning) unless this machine's
//! known_hosts names the host, which is then checked strictly.

mod common;
mod ssh_support;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use ssh_support::*;

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
        // A Debian root: built in the scratch tmpfs, as the corpus's (`scratch_dir`).
        .env("TMPDIR", scratch_dir())
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

/// The one `error building image:` line of a failed build.
fn error_line(o: &std::process::Output) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "the build succeeded:\n{err}");
    err.lines()
        .find_map(|l| l.split_once("error building image: ").map(|(_, m)| m.to_string()))
        .unwrap_or_else(|| panic!("no error line in:\n{err}"))
}

#[test]
fn add_of_a_repository_over_ssh_clones_with_the_default_agent() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("client_key");
    ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "trowel-test", "-f"]).arg(&key));
    let (_sshd, port, repo) = git_server(dir.path(), &dir.path().join("client_key.pub"));
    let sock = dir.path().join("agent.sock");
    let _agent =
        Daemon(Command::new("ssh-agent").arg("-D").arg("-a").arg(&sock).stdout(Stdio::null()).spawn().unwrap());
    wait_until("ssh-agent", || std::os::unix::net::UnixStream::connect(&sock).is_ok());
    ok(Command::new("ssh-add").arg("-q").arg(&key).env("SSH_AUTH_SOCK", &sock));
    let empty_sock = dir.path().join("empty-agent.sock");
    let _empty =
        Daemon(Command::new("ssh-agent").arg("-D").arg("-a").arg(&empty_sock).stdout(Stdio::null()).spawn().unwrap());
    wait_until("ssh-agent", || std::os::unix::net::UnixStream::connect(&empty_sock).is_ok());

    let host_pub = std::fs::read_to_string(dir.path().join("host_key.pub")).unwrap();
    let host_key: String = host_pub.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let fingerprint = {
        let o = run(Command::new("ssh-keygen").arg("-lf").arg(dir.path().join("host_key.pub")));
        stdout(&o).split_whitespace().nth(1).unwrap().to_string()
    };
    let url = format!("ssh://root@127.0.0.1:{port}{}", repo.display());
    // Each build has a HOME of its own: what its known_hosts says decides which host key is trusted.
    let build = |home: &Path, agent: &[String], lines: &str| {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}\n{lines}", env().busybox())).unwrap();
        let dest = format!("{}/{}:1", env().registry, unique_repo("ssh-add"));
        let o = run(trowel()
            .env("HOME", home)
            .env("SSH_AUTH_SOCK", &sock)
            .args(["build", "--context"])
            .arg(ctx.path())
            .args(["--destination", &dest])
            .args(agent));
        (o, dest)
    };
    let default = vec!["--ssh".to_string(), "default".to_string()];

    // A host this machine does not know: its key is scanned and trusted, as BuildKit does, and
    // the log says so with the key's fingerprint.
    let unknown = tempfile::tempdir().unwrap();
    let (o, dest) = build(unknown.path(), &default, &format!("ADD {url} /src\nADD --keep-git-dir {url}#main /kept\n"));
    assert_ok(&o);
    let log = stderr(&o);
    let warned: Vec<&str> = log.lines().filter(|l| l.contains("is not in this machine's known hosts")).collect();
    assert_eq!(warned.len(), 1, "one warning for the host:\n{log}");
    assert!(warned[0].contains(&format!("[127.0.0.1]:{port}")) && warned[0].contains(&fingerprint), "{}", warned[0]);
    let image = pull_and_unpack(&dest);
    let tree = image.tree();
    assert_eq!(image.crun(Some(&["cat", "/src/hello.txt"])), (0, "cloned over ssh\n".into(), String::new()));
    assert!(!tree.has("/src/.git"), "no .git without --keep-git-dir");
    assert!(tree.has("/kept/.git/HEAD") && tree.has("/kept/hello.txt"), "{:?}", tree.paths_under("/kept"));
    let private = std::fs::read_to_string(&key).unwrap();
    assert!(!image_holds(&image.rootfs(), private.lines().nth(1).unwrap()), "the private key is in the image");
    assert!(!image_holds(&image.rootfs(), "agent.sock"), "the agent's socket is named in the image");

    // A host known_hosts names is checked against it: the right key is used without a warning
    // (and key files are served by an agent trowel starts)...
    let known = tempfile::tempdir().unwrap();
    std::fs::create_dir(known.path().join(".ssh")).unwrap();
    std::fs::write(known.path().join(".ssh/known_hosts"), format!("[127.0.0.1]:{port} {host_key}\n")).unwrap();
    let keyfile = vec![format!("--ssh=default={}", key.display())];
    let (o, dest) = build(known.path(), &keyfile, &format!("ADD {url} /src\n"));
    assert_ok(&o);
    assert!(!stderr(&o).contains("known hosts"), "{}", stderr(&o));
    assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/src/hello.txt"), "cloned over ssh\n");

    // ...and a different key for it fails the build, as ssh's strict checking does.
    let changed = tempfile::tempdir().unwrap();
    ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(changed.path().join("other")));
    let other = std::fs::read_to_string(changed.path().join("other.pub")).unwrap();
    let other: String = other.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    std::fs::create_dir(changed.path().join(".ssh")).unwrap();
    std::fs::write(changed.path().join(".ssh/known_hosts"), format!("[127.0.0.1]:{port} {other}\n")).unwrap();
    let (o, dest) = build(changed.path(), &default, &format!("ADD {url} /src\n"));
    let line = error_line(&o);
    let shown = url.replace("root@", "xxxxx@");
    assert!(line.contains(&format!("Dockerfile:2: ADD {url} /src: ssh could not get into {shown} (")), "{line}");
    assert!(
        line.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") && line.contains("Host key verification failed"),
        "{line}"
    );
    assert!(
        !run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{dest}")]))
            .status
            .success(),
        "a failed build pushed"
    );

    // An agent without the key: the server's refusal, on one line.
    let empty = vec![format!("--ssh=default={}", empty_sock.display())];
    let (o, _) = build(unknown.path(), &empty, &format!("ADD {url} /src\n"));
    let line = error_line(&o);
    assert!(line.contains("ssh could not get into") && line.contains("Permission denied (publickey)"), "{line}");

    // No agent at all: refused before the base is pulled, the whole instruction quoted.
    let scp = "git@127.0.0.1:org/repo.git";
    let (o, _) = build(unknown.path(), &[], &format!("ADD \\\n  {scp} /src\n"));
    let line = error_line(&o);
    assert!(
        line.ends_with(&format!(
            "Dockerfile:2: ADD {scp} /src: {scp}: cloning over ssh needs the build's default ssh agent, which was not \
             given: pass --ssh default (the agent at $SSH_AUTH_SOCK) or --ssh default=KEYFILE, or use an https:// URL"
        )),
        "{line}"
    );
    assert!(!stderr(&o).contains("Retrieved image"), "refused before the pull:\n{}", stderr(&o));
    // Named through a build arg, the source is only known at its step: refused there, the same way.
    let ctx = tempfile::tempdir().unwrap();
    let df = format!("FROM {}\nARG SRC\nADD $SRC /src\n", env().busybox());
    std::fs::write(ctx.path().join("Dockerfile"), df).unwrap();
    let o = run(trowel()
        .env("HOME", unknown.path())
        .args(["build", "--no-push", "--context"])
        .arg(ctx.path())
        .args(["--build-arg", &format!("SRC={url}")]));
    let line = error_line(&o);
    assert!(
        line.ends_with(
            "cloning over ssh needs the build's default ssh agent, which was not given: pass --ssh default \
         (the agent at $SSH_AUTH_SOCK) or --ssh default=KEYFILE, or use an https:// URL"
        ),
        "{line}"
    );
    assert!(line.contains("Dockerfile:3: ADD $SRC /src: "), "{line}");
}
