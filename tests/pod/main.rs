//! trowel where kaniko runs: its own image, built by trowel, run like a pod of a GitLab
//! Kubernetes runner — unprivileged, only the six capabilities CHOWN, DAC_OVERRIDE, FOWNER,
//! SETFCAP, SETGID and SETUID in its bounding and effective sets, no new privileges — where it
//! warms `/cache`, then builds, snapshots and pushes a multi-stage image with
//! `--isolation=container`, the layer cache in the registry. The result is checked with skopeo,
//! umoci and crun like every other build. Then the same pod, entered the way
//! `kubectl exec -it … -- trowel debug …` enters the debug Pod of `deploy/`, runs the debugger
//! in a real terminal (tmux): one breakpoint, then the push review. `RUN --mount`, `COPY
//! --link` and `ADD` of git repositories (with the git bundled in the image) run there too.
//! The pod itself is `pod_support`.

#[path = "../common/mod.rs"]
mod common;
#[path = "../git_support/mod.rs"]
mod git_support;
#[path = "../pod_support/mod.rs"]
mod pod_support;
#[path = "../ssh_support/mod.rs"]
mod ssh_support;

use std::path::Path;
use std::process::Command;

use common::tmux::Tmux;
use common::*;
use pod_support::*;

#[test]
fn builds_and_pushes_in_a_pod_with_six_capabilities() {
    let e = env();
    let image = trowel_image();
    let cache = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("testdata/demo"), workspace.path());
    let mounts: Vec<(&Path, &str)> = vec![(cache.path(), "/cache"), (workspace.path(), "/workspace")];

    // The pod really is that unprivileged.
    let (code, out, err, _) = pod_run(&image, sh("grep -E '^Cap(Eff|Bnd)' /proc/self/status"), &mounts);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("CapEff:\t{POD_CAP_MASK}")) && out.contains(&format!("CapBnd:\t{POD_CAP_MASK}")),
        "{out}"
    );

    // The warmer runs first, filling /cache.
    let base = e.busybox();
    let (code, out, err, _) = pod_run(
        &image,
        vec!["/trowel/trowel".into(), "warm".into(), "--cache-dir=/cache".into(), format!("--image={base}")],
        &mounts,
    );
    assert_eq!(code, 0, "warm failed:\n{out}\n{err}");

    // Then the build: container isolation is chosen automatically in a pod, and printed.
    let dest = format!("{}/{}:1", e.registry, unique_repo("pod-built"));
    let cache_repo = format!("{}/{}", e.registry, unique_repo("pod-cache"));
    let build_args: Vec<String> = [
        "/trowel/trowel",
        "build",
        "--context",
        "/workspace",
        "--dockerfile",
        "/workspace/Dockerfile",
        "--destination",
        &dest,
        "--cache=true",
        "--cache-repo",
        &cache_repo,
        "--cache-dir",
        "/cache",
        "--build-arg",
        &format!("REGISTRY={}", e.registry),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, out, err, _) = pod_run(&image, build_args.clone(), &mounts);
    let log = format!("{out}{err}");
    assert_eq!(code, 0, "build in the pod failed:\n{log}");
    assert!(log.contains("RUN isolation: container"), "{log}");
    assert!(log.contains("in the local cache directory"), "the base came from the warmed /cache: {log}");

    // Checked from outside with independent tools.
    let u = pull_and_unpack(&dest);
    let tree = u.tree();
    assert_eq!(tree.get("/usr/local/bin/greet").mode, 0o755);
    assert!(!tree.has("/trowel"), "trowel's own directory never reaches the image");
    assert!(!tree.has("/workspace/Dockerfile") && !tree.has("/cache"), "mounts never reach the image");
    let (code, out, err) = u.crun(None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Hello from a trowel-built image!") && out.contains("running as: app in /home/app"), "{out}");

    // A second pod run of the same job hits the layer cache for every RUN.
    let (code, out, err, _) = pod_run(&image, build_args, &mounts);
    let log = format!("{out}{err}");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("Cache: ") && log.contains(" 0 miss(es)"), "{log}");
}

/// `COPY --link` where the build root is `/` of the pod: the step's layer is made on an empty
/// root in trowel's work directory and laid over `/`, the image's directory it replaces a
/// symlink of included, and the steps after it see the result. A `/etc/ld.so.preload` the build
/// writes does not reach trowel's own processes.
#[test]
fn link_steps_in_a_pod() {
    let e = env();
    let image = trowel_image();
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("a.txt"), "linked\n").unwrap();
    std::fs::write(
        workspace.path().join("Dockerfile"),
        format!(
            "FROM {}\nRUN mkdir -p /srv/real && ln -s /srv/real /data && chmod 700 /srv\n\
             RUN echo /no/such/preload.so > /etc/ld.so.preload\n\
             COPY --link a.txt /data/a.txt\nRUN cat /data/a.txt > /seen && ls -ld /data | cut -c1 >> /seen\n\
             COPY --link a.txt /ignored/a.txt\nCOPY --link a.txt /workspace/linked.txt\n",
            e.busybox()
        ),
    )
    .unwrap();
    let dest = format!("{}/{}:1", e.registry, unique_repo("pod-link"));
    let args: Vec<String> = [
        "/trowel/trowel",
        "build",
        "--context",
        "/workspace",
        "--dockerfile",
        "/workspace/Dockerfile",
        "--destination",
        &dest,
        "--ignore-path",
        "/ignored",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, out, err, _) = pod_run(&image, args, &[(workspace.path(), "/workspace")]);
    let log = format!("{out}{err}");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("RUN isolation: container"), "{log}");
    assert!(log.contains("/data was a symlink to /srv/real in the image"), "{log}");
    // The image's /etc/ld.so.preload is `/` of the pod now: trowel's own loader never reads it
    // (a hostile base would otherwise put its library into trowel's processes).
    assert!(!log.contains("cannot be preloaded"), "{log}");
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/seen"), "linked\nd\n");
    let t = u.tree();
    assert_eq!(t.get("/srv").mode, 0o700, "a --link step touches only the paths it writes");
    assert!(!t.has("/trowel") && !t.has("/workspace/a.txt"));
    // What a --link step writes under a path container isolation keeps out of the image (an
    // --ignore-path, a mount point of the pod) stays out of its layer too, as out of a snapshot
    // of `/`; and laying the layer over `/` never wrote into the mounted project.
    assert!(!t.has("/ignored/a.txt") && !t.has("/workspace/linked.txt"), "{log}");
    assert!(!workspace.path().join("linked.txt").exists());
}

#[test]
fn container_isolation_refuses_to_run_on_a_host() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}\nRUN true\n", env().busybox())).unwrap();
    // No container evidence in this environment (the harness runs on a VM, not in a pod).
    let o = run(trowel()
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("container")
        .args(["build", "--no-push", "--isolation=container", "--context"])
        .arg(ctx.path()));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("would overwrite this machine's files"), "{}", stderr(&o));
}

#[test]
fn debugs_in_a_pod_through_a_breakpoint_and_the_push_review() {
    let e = env();
    let image = trowel_image();
    let cache = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("testdata/demo"), workspace.path());
    let mounts: Vec<(&Path, &str)> = vec![(cache.path(), "/cache"), (workspace.path(), "/workspace")];
    let pod = RunningPod::start(&image, &mounts);

    let dest = format!("{}/{}:1", e.registry, unique_repo("pod-debugged"));
    let cache_repo = format!("{}/{}", e.registry, unique_repo("pod-debug-cache"));
    let args: Vec<String> = [
        "/trowel/trowel",
        "debug",
        "--context=/workspace",
        "--dockerfile=/workspace/Dockerfile",
        &format!("--destination={dest}"),
        "--cache=true",
        &format!("--cache-repo={cache_repo}"),
        "--cache-dir=/cache",
        &format!("--build-arg=REGISTRY={}", e.registry),
        // testdata/demo line 15: COPY --from=builder, in the second stage.
        "--break=15",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let t = Tmux::start(&pod.exec_tty(&args), 120, 36);

    // Stopped at the breakpoint, with the first stage built in the container's own root.
    let s = t.wait_for("paused before L15 COPY");
    assert!(s.contains("isolation container"), "the pod's isolation is shown:\n{s}");
    assert!(s.contains("✓ RUN"), "the builder stage's RUN ran before the breakpoint:\n{s}");

    // Continue to the review before the push; nothing is pushed until it is confirmed.
    t.keys("c");
    let s = t.wait_for("Push now?");
    assert!(s.contains(&dest), "the review names the destination:\n{s}");
    let probe = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{dest}")]));
    assert!(!probe.status.success(), "nothing is pushed while the review waits");
    t.confirm_push_and_quit();

    // The pushed image, checked from outside like every other build.
    let u = pull_and_unpack(&dest);
    let tree = u.tree();
    assert_eq!(tree.get("/usr/local/bin/greet").mode, 0o755);
    assert!(!tree.has("/trowel") && !tree.has("/workspace/Dockerfile") && !tree.has("/cache"));
    let (code, out, err) = u.crun(None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Hello from a trowel-built image!"), "{out}");
}

/// `RUN --mount` where there is no mount syscall: what would be mounted is put in place before
/// the step and taken away after it. The cache persists on the pod's `/cache` volume.
const POD_MOUNTS_DF: &str = "\
ARG REGISTRY
FROM ${REGISTRY}/busybox:1.35 AS build
RUN mkdir -p /out && echo from-build > /out/app
FROM ${REGISTRY}/busybox:1.35
ARG BUILD
RUN --mount=type=cache,target=/root/.cache/pkg,sharing=locked \\
    --mount=type=bind,from=build,source=/out,target=/home/app \\
    --mount=type=bind,source=src,target=/src,rw \\
    --mount=type=tmpfs,target=/tmp/scratch \\
    --mount=type=secret,id=tok,target=/run/secrets/tok,mode=0400 \\
    --mount=type=secret,id=tok,env=TOK \\
    (cat /root/.cache/pkg/seen 2>/dev/null || echo nothing-cached) > /result \\
    && echo $BUILD >> /root/.cache/pkg/seen \\
    && cat /home/app/app /src/hello >> /result && ls -A /src >> /result \\
    && echo scribble > /src/hello && ls -A /tmp/scratch | wc -l >> /result \\
    && echo x > /tmp/scratch/junk && stat -c '%a' /run/secrets/tok >> /result \\
    && [ \"$(cat /run/secrets/tok)\" = \"$TOK\" ] && echo ${#TOK} >> /result
CMD [\"cat\", \"/result\"]
";

/// `ADD <git repository>` in a pod: the base (busybox: no git, its own `/bin`, `/lib`) is
/// unpacked over `/`, and the git bundled under `/trowel/git` fetches over git's http and git
/// transports, with submodules, `--keep-git-dir` (credentials scrubbed), `?mtime=commit` and
/// the commit in the cache key, and over ssh with the relayed agent. Then an image built without the bundle
/// (`image-context.sh --no-git`) refuses the same ADD before anything is pulled.
/// A kaniko job's own setup runs unchanged in trowel's image: GitLab's recipe appends the
/// instance's CA to `/kaniko/ssl/certs/ca-certificates.crt` (there: kaniko's `SSL_CERT_DIR`; here
/// a link to trowel's bundle) and writes credentials to `/kaniko/.docker/config.json`. The push
/// to the TLS registry trusts that CA, the one to the auth registry uses those credentials, and
/// in container isolation `/kaniko` is kept out of the image (and through the stage that empties
/// `/`), as kaniko keeps it.
#[test]
fn a_kaniko_jobs_ca_and_credentials_under_kaniko_work_in_a_pod() {
    use base64::Engine as _;
    let e = env();
    let image = trowel_image();
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("Dockerfile"), format!("FROM {}\nRUN echo built > /built\n", e.busybox()))
        .unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", e.auth_user, e.auth_password));
    let tls_dest = format!("{}/{}:1", e.tls_registry, unique_repo("pod-kaniko-ca"));
    let auth_dest = format!("{}/{}:1", e.auth_registry, unique_repo("pod-kaniko-creds"));
    let script = format!(
        "set -e; mkdir -p /kaniko/.docker; \
         echo '{{\"auths\":{{\"{reg}\":{{\"auth\":\"{auth}\"}}}}}}' > /kaniko/.docker/config.json; \
         cat /ca/ca.pem >> /kaniko/ssl/certs/ca-certificates.crt; \
         /trowel/trowel --context /workspace --dockerfile /workspace/Dockerfile \
           --destination {tls_dest} --destination {auth_dest}",
        reg = e.auth_registry
    );
    let ca_dir = e.ca.parent().unwrap();
    let mounts: Vec<(&Path, &str)> =
        vec![(workspace.path(), "/workspace"), (ca_dir, "/ca"), (Path::new("/etc/hosts"), "/etc/hosts")];
    let (code, out, err, _) = pod_run(&image, sh(&script), &mounts);
    let log = format!("{out}{err}");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("RUN isolation: container"), "{log}");
    // Checked from outside: the image in the auth registry holds the RUN's file, no /kaniko.
    let layout = tempfile::tempdir().unwrap();
    let o = run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &format!("{}:{}", e.auth_user, e.auth_password),
        &format!("docker://{auth_dest}"),
        &format!("oci:{}:x", layout.path().display()),
    ]));
    assert_ok(&o);
    let mut names = String::new();
    for blob in std::fs::read_dir(layout.path().join("blobs/sha256")).unwrap() {
        let o = run(Command::new("tar").arg("-tzf").arg(blob.unwrap().path()));
        if o.status.success() {
            names.push_str(&stdout(&o));
        }
    }
    assert!(names.lines().any(|l| l.trim_start_matches("./") == "built"), "{names}");
    assert!(!names.lines().any(|l| l.trim_start_matches("./").starts_with("kaniko")), "{names}");
    let o = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{tls_dest}")]));
    assert_ok(&o);
}

#[test]
fn adds_git_repositories_in_a_pod_with_the_bundled_git() {
    let e = env();
    let s = git_support::server();
    let moving = unique_repo("pod-moving");
    let first = git_support::git(&s.new_repo(&moving, "one\n"), &["rev-parse", "HEAD"]);
    let cache = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    let creds = s.http.replace("http://", "http://builder:s3cret-pod-pw@");
    std::fs::write(
        workspace.path().join("Dockerfile"),
        format!(
            "FROM {base}\n\
             ADD {h}/repo.git /src\n\
             ADD --keep-git-dir=true {creds}/repo.git#v1a /keep\n\
             ADD {g}/repo.git?ref=dev&mtime=commit&submodules=false /dev-branch\n\
             ADD {h}/{moving}.git /moving\n\
             RUN cat /moving/file.txt > /copy && ! which git\n",
            base = e.busybox(),
            h = s.http,
            g = s.git,
        ),
    )
    .unwrap();
    // An sshd on 127.0.0.1 and an ssh-agent holding its client key, whose socket the pod gets.
    let ssh = tempfile::tempdir().unwrap();
    let key = ssh.path().join("client_key");
    ssh_support::ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key));
    let (_sshd, port, ssh_repo) = ssh_support::git_server(ssh.path(), &ssh.path().join("client_key.pub"));
    let agent_dir = tempfile::tempdir().unwrap();
    let sock = agent_dir.path().join("agent.sock");
    let _agent = ssh_support::Daemon(
        Command::new("ssh-agent").arg("-D").arg("-a").arg(&sock).stdout(std::process::Stdio::null()).spawn().unwrap(),
    );
    ssh_support::wait_until("ssh-agent", || std::os::unix::net::UnixStream::connect(&sock).is_ok());
    ssh_support::ok(Command::new("ssh-add").arg("-q").arg(&key).env("SSH_AUTH_SOCK", &sock));
    std::fs::write(
        workspace.path().join("Dockerfile.ssh"),
        format!("FROM {}\nADD ssh://root@127.0.0.1:{port}{} /ssh-src\n", e.busybox(), ssh_repo.display()),
    )
    .unwrap();

    let mounts: Vec<(&Path, &str)> =
        vec![(cache.path(), "/cache"), (workspace.path(), "/workspace"), (agent_dir.path(), "/agent")];
    let pod = RunningPod::start(&trowel_image(), &mounts);
    let dest = format!("{}/{}:1", e.registry, unique_repo("pod-git"));
    let cache_repo = format!("{}/{}", e.registry, unique_repo("pod-git-cache"));
    let build = || {
        let mut args: Vec<String> =
            ["/trowel/trowel", "build", "--context=/workspace", "--cache=true"].iter().map(|a| a.to_string()).collect();
        args.push(format!("--destination={dest}"));
        args.push(format!("--cache-repo={cache_repo}"));
        pod.exec(&args)
    };
    let (code, log) = build();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("RUN isolation: container"), "{log}");
    assert!(!log.contains("s3cret-pod-pw"), "{log}");

    let u = pull_and_unpack(&dest);
    let root = u.rootfs();
    let t = u.tree();
    assert_eq!(Tree::content(&root, "/src/top.txt"), "top v2\n");
    assert_eq!(Tree::content(&root, "/src/mod/lib.txt"), "from the submodule\n", "submodules came along");
    assert_eq!(t.get("/src/run.sh").mode, 0o755);
    assert!(!t.has("/src/.git") && !t.has("/trowel"), "{:?}", t.paths_under("/trowel"));
    let keep = root.join("keep");
    assert_eq!(git_support::git(&keep, &["rev-parse", "HEAD"]), s.first);
    assert_eq!(git_support::git(&keep, &["rev-parse", "refs/tags/v1a"]), s.v1a_tag);
    assert_eq!(
        git_support::git(&keep, &["config", "remote.origin.url"]),
        format!("{}/repo.git", s.http.replace("http://", "http://xxxxx:xxxxx@"))
    );
    assert!(!keep.join(".git/hooks").exists(), "no template of the image's (or the bundle's) in .git");
    let dev_time: i64 =
        git_support::git(&s.base.join("repo.git"), &["log", "-1", "--format=%ct", &s.dev]).parse().unwrap();
    assert_eq!(t.get("/dev-branch/dev.txt").mtime_ns, dev_time as i128 * 1_000_000_000, "?mtime=commit");
    assert!(!t.has("/dev-branch/mod/lib.txt"), "submodules=false");
    assert_eq!(Tree::content(&root, "/copy"), "one\n");
    for f in walkdir::WalkDir::new(&root).into_iter().filter_map(Result::ok).filter(|e| e.file_type().is_file()) {
        let b = std::fs::read(f.path()).unwrap();
        assert!(!b.windows(13).any(|w| w == b"s3cret-pod-pw"), "{}", f.path().display());
    }

    // The commit is in the cache key: a new commit is a miss, with both commits named.
    let second = s.advance(&moving, "two\n");
    let (code, log) = build();
    assert_eq!(code, 0, "{log}");
    let want = format!("Cache miss: git {}/{moving}.git now {} (was {})", s.http, &second[..12], &first[..12]);
    assert!(log.contains(&want), "{want}\n{log}");
    assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/copy"), "two\n");

    // Over ssh: the bundled ssh-keyscan reads the host key (trusted as BuildKit trusts it, and
    // said), the bundled ssh runs through its wrapper with the relayed agent.
    let ssh_dest = format!("{}/{}:1", e.registry, unique_repo("pod-git-ssh"));
    let (code, log) = pod.exec(&[
        "/trowel/busybox/env".into(),
        "SSH_AUTH_SOCK=/agent/agent.sock".into(),
        "/trowel/trowel".into(),
        "build".into(),
        "--context=/workspace".into(),
        "--dockerfile=/workspace/Dockerfile.ssh".into(),
        "--ssh=default".into(),
        format!("--destination={ssh_dest}"),
    ]);
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains(&format!(
            "[127.0.0.1]:{port} is not in this machine's known hosts (/trowel/.ssh/known_hosts): trusting the key"
        )),
        "{log}"
    );
    assert_eq!(Tree::content(&pull_and_unpack(&ssh_dest).rootfs(), "/ssh-src/hello.txt"), "cloned over ssh\n");
    drop(pod);

    // An image without the bundle refuses, naming what is missing, before the first pull.
    let bare = image_of(&["--no-git"], "trowel");
    let args = ["/trowel/trowel", "build", "--context=/workspace", "--no-push"].map(String::from).to_vec();
    let (code, out, err, _) = pod_run(&bare, args, &mounts);
    let log = format!("{out}{err}");
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains(&format!("Dockerfile:2: ADD {}/repo.git /src: ADD of a git repository in container isolation needs the git bundled in trowel's image under /trowel/git, and this one lacks /trowel/git/libexec/git-core/git", s.http)),
        "{log}"
    );
    assert!(!log.contains("Retrieved image"), "{log}");
}

#[test]
fn builds_for_two_platforms_in_a_pod_with_the_nodes_emulation() {
    // In a pod binfmt_misc is not mounted, but the kernel (the node's) has QEMU's handlers: the
    // arm64 RUN runs under emulation in container isolation, as it does on a machine.
    let e = env();
    let image = trowel_image();
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(
        workspace.path().join("Dockerfile"),
        format!("FROM {}/busybox:multi\nARG TARGETARCH\nRUN echo \"$TARGETARCH $(uname -m)\" > /arch\n", e.registry),
    )
    .unwrap();
    let repo = format!("{}/{}", e.registry, unique_repo("pod-multi"));
    let dest = format!("{repo}:1");
    let args: Vec<String> = [
        "/trowel/trowel",
        "build",
        "--context",
        "/workspace",
        "--destination",
        &dest,
        "--platform",
        "linux/amd64,linux/arm64",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, out, err, _) = pod_run(&image, args, &[(workspace.path(), "/workspace")]);
    let log = format!("{out}{err}");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("RUN isolation: container"), "{log}");
    let index = skopeo_manifest(&dest);
    for (arch, says) in [("amd64", "amd64 x86_64"), ("arm64", "arm64 aarch64")] {
        let digest = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let u = pull_and_unpack(&format!("{repo}@{digest}"));
        assert_eq!(Tree::content(&u.rootfs(), "/arch").trim(), says);
    }
}

mod deferred;
mod mounts;
mod runs_nothing;
