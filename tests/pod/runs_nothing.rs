//! Container isolation's stages that run nothing (their root in the work dir, `/` left as it
//! is): the stage after reads them in place, a shell at a pause in one gets its root at `/`,
//! and a RUN after one gets its files in `/`.

use super::*;

/// A workspace holding `f.txt` and `dockerfile` (whose bases are `${REGISTRY}/…`), and the
/// destination the build of it in a pod pushes to, under a repository named after `name`.
pub(super) fn nothing_workspace(dockerfile: &str, name: &str) -> (tempfile::TempDir, String) {
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("f.txt"), "from the context\n").unwrap();
    std::fs::write(workspace.path().join("Dockerfile"), format!("ARG REGISTRY\n{dockerfile}")).unwrap();
    (workspace, format!("{}/{}:1", env().registry, unique_repo(name)))
}

/// `trowel build` of `/workspace` in a pod, pushing to `dest`, with `extra` flags.
pub(super) fn pod_build_args(dest: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> =
        ["/trowel/trowel", "build", "--context=/workspace", "--dockerfile=/workspace/Dockerfile"]
            .map(String::from)
            .to_vec();
    args.push(format!("--destination={dest}"));
    args.push(format!("--build-arg=REGISTRY={}", env().registry));
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// A stage that runs nothing (no RUN) builds its root in the work dir and leaves `/` to the
/// stage before: its `COPY --from` of that stage reads the files where they are, except where
/// `/` holds the pod's own files (a whole-root copy: its `/workspace` mount, trowel's
/// directory), which come from the stage's layers. A later stage that runs something takes `/`, and reads the builder from its
/// layers then. The image is the one chroot isolation builds, path for path.
#[test]
fn a_stage_that_runs_nothing_reads_the_stage_before_in_place_in_a_pod() {
    let e = env();
    let image = trowel_image();
    let (workspace, dest) = nothing_workspace(
        "FROM ${REGISTRY}/busybox:1.35 AS build\n\
         RUN mkdir -p /out/sub && echo art > /out/sub/a && ln -s sub/a /out/link && echo conf > /etc/app.conf\n\
         FROM ${REGISTRY}/busybox:1.35 AS mid\n\
         COPY --from=build /out /app\n\
         COPY --from=build / /everything\n\
         COPY f.txt /f.txt\n\
         FROM ${REGISTRY}/busybox:1.35\n\
         COPY --from=mid /app /app\n\
         RUN cat /app/link > /seen\n\
         COPY --from=build /out/sub/a /again\n\
         COPY --from=mid /f.txt /everything/etc/app.conf /from-mid/\n",
        "pod-runs-nothing",
    );
    let args = pod_build_args(&dest, &["--reproducible"]);
    let (code, out, err, _) = pod_run(&image, args, &[(workspace.path(), "/workspace")]);
    let log = format!("{out}{err}");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("RUN isolation: container"), "{log}");
    assert!(
        log.contains("container isolation: the stage runs nothing, so its root is unpacked in the work dir"),
        "{log}"
    );
    let extracted: Vec<&str> = log.lines().filter(|l| l.contains("Extracted ")).collect();
    // Stage 1 read /out in place, but `/` (where the pod keeps /workspace and trowel's own
    // files) from the layers, with what the later readers of stage 0 read: the last stage took
    // `/`, and its /out/sub/a came from that extraction.
    assert_eq!(extracted.len(), 1, "{log}");
    assert!(extracted[0].contains("Extracted / /out /out/sub/a from stage 0"), "{log}");

    // The same Dockerfile built with chroot isolation on this machine: the same image.
    let host = format!("{}/{}:1", e.registry, unique_repo("host-runs-nothing"));
    let o = run(trowel()
        .args(["build", "--isolation=chroot", "--reproducible", "--destination", &host, "--build-arg"])
        .arg(format!("REGISTRY={}", e.registry))
        .arg("--context")
        .arg(workspace.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    // Everything but inode numbers, link counts and times.
    let strip = |t: Tree| -> Vec<(String, String)> {
        t.0.into_iter()
            .map(|(p, f)| (p, format!("{} {:o} {}:{} {:?} {:?}", f.kind, f.mode, f.uid, f.gid, f.sha256, f.link)))
            .collect()
    };
    let (pod, chroot) = (pull_and_unpack(&dest), pull_and_unpack(&host));
    assert_eq!(strip(pod.tree()), strip(chroot.tree()));
    for (p, want) in [("/seen", "art\n"), ("/again", "art\n"), ("/from-mid/f.txt", "from the context\n")] {
        assert_eq!(Tree::content(&pod.rootfs(), p), want, "{p}");
    }
    assert_eq!(Tree::content(&pod.rootfs(), "/from-mid/app.conf"), "conf\n");
    assert!(!pod.tree().has("/everything/workspace") && !pod.tree().has("/everything/trowel"));
    assert_eq!(pod.tree().get("/app/link").link.as_deref(), Some("sub/a"));
}

/// A debugger shell at a pause in a stage that runs nothing works in `/`, as every shell in
/// container isolation does: the stage's root, made in the work dir, is made again in `/` for
/// it (the stage before loses `/`), and what the shell keeps is a layer of the image.
#[test]
fn a_shell_in_a_stage_that_runs_nothing_gets_its_root_in_slash_in_a_pod() {
    let image = trowel_image();
    let (workspace, dest) = nothing_workspace(
        "FROM ${REGISTRY}/busybox:1.35 AS build\n\
         RUN mkdir /out && echo art > /out/a\n\
         FROM ${REGISTRY}/busybox:1.35\n\
         COPY --from=build /out /app\n\
         COPY f.txt /f.txt\n",
        "pod-shell-nothing",
    );
    let pod = RunningPod::start(&image, &[(workspace.path(), "/workspace")]);
    let t = Tmux::start(&pod.exec_tty(&pod_build_args(&dest, &["--break=6"])), 120, 36);
    t.wait_for("paused before line 6");
    t.line("s");
    t.wait_for("Debug interactive shell");
    t.line("cat /app/a; ls /out || echo no-out-here; echo kept > /kept; exit");
    let s = t.wait_for("Keep them as a layer? [y/N]");
    assert!(s.contains("art") && s.contains("no-out-here"), "the shell runs in the stage's own files:\n{s}");
    t.line("y");
    t.wait_for("[c]ontinue, [n]ext step, [s]hell, [a]bort?");
    t.line("c");
    let s = t.wait_for("EXIT=");
    assert!(s.contains("EXIT=0"), "{s}");
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/kept"), "kept\n");
    assert_eq!(Tree::content(&u.rootfs(), "/app/a"), "art\n");
    assert_eq!(Tree::content(&u.rootfs(), "/f.txt"), "from the context\n");
    let tree = u.tree();
    assert!(!tree.has("/out") && !tree.has("/trowel") && !tree.has("/workspace/f.txt"));
}

/// A stage that runs something, built `FROM` a stage that ran nothing, takes that stage's root
/// over (made in the work dir) and moves it into `/` for its RUN, where the RUN sees every file
/// of the stage before.
#[test]
fn a_run_after_a_stage_that_ran_nothing_gets_its_files_in_slash_in_a_pod() {
    let image = trowel_image();
    let (workspace, dest) = nothing_workspace(
        "FROM ${REGISTRY}/busybox:1.35 AS base\n\
         COPY f.txt /f.txt\n\
         FROM base\n\
         RUN cat /f.txt > /seen && ls /trowel >/dev/null && echo pod-root >> /seen\n",
        "pod-run-after-nothing",
    );
    let (code, out, err, _) = pod_run(&image, pod_build_args(&dest, &[]), &[(workspace.path(), "/workspace")]);
    let log = format!("{out}{err}");
    assert_eq!(code, 0, "{log}");
    let unpacked: Vec<&str> = log.lines().filter(|l| l.contains("Unpacked ")).collect();
    assert_eq!(unpacked.len(), 2, "{log}");
    assert!(unpacked[0].contains("the stage runs nothing"), "{log}");
    assert!(unpacked[1].contains("container isolation unpacks into /"), "{log}");
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/seen"), "from the context\npod-root\n");
    assert!(!u.tree().has("/trowel"));
}
