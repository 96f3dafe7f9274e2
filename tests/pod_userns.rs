//! trowel in a Kubernetes pod with `hostUsers: false` (its own user namespace, KEP-127), run as
//! containerd runs one (`pod_support::userns`): which isolation works under which settings of
//! the pod's securityContext, pinned. The findings (docs/isolation.md has the why, with
//! containerd's and the kernel's sources):
//!
//! | securityContext                                         | chroot isolation                         |
//! |---------------------------------------------------------|------------------------------------------|
//! | nothing (RuntimeDefault seccomp, default capabilities)  | refused at `unshare` (seccomp: needs CAP_SYS_ADMIN) |
//! | `capabilities.add: [SYS_ADMIN]`                         | refused at `pivot_root` (in no list of RuntimeDefault) |
//! | SYS_ADMIN, Localhost profile = RuntimeDefault + `pivot_root` (`deploy/kubernetes/seccomp/trowel-chroot.json`) | works (and fits the `baseline` Pod Security level) |
//! | SYS_ADMIN, `seccompProfile: Unconfined`                 | works, `/proc` masked or not             |
//! | Unconfined (and `procMount: Unmasked`), no capability   | refused at `unshare` (no CAP_SYS_ADMIN)  |
//!
//! A masked `/proc` does not stop chroot isolation: the masks are the pod's own mounts, not
//! locked ones, so the kernel lets the pod's root mount a new `/proc` beside them — while the
//! pod's `/proc` is still in the mount namespace, so before the pivot (`sandbox/chroot.rs`).
//! It stops a *nested* user namespace (rootless): copied into a new user namespace the masks
//! become locked and `mount_too_revealing` refuses `/proc`; there `procMount: Unmasked` is needed.
//!
//! Where chroot cannot work, automatic isolation falls back to `container` and says why in one
//! line; `--isolation=chroot` is refused with that reason before anything is pulled. Where it
//! works, the image is the one a chroot build on the host makes from the same inputs (same
//! digest with `--reproducible`): owners in layers are the pod's ids, not the node's.

mod common;
mod pod_support;

use std::path::Path;

use common::*;
use pod_support::trowel_image;
use pod_support::userns::*;

const SYS_ADMIN: &[&str] = &["CAP_SYS_ADMIN"];
const LOCALHOST_PROFILE: &str = "deploy/kubernetes/seccomp/trowel-chroot.json";

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A workspace, a scratch /tmp and a /cache (emptyDirs) for the pod, as the Job has them.
struct Volumes {
    workspace: tempfile::TempDir,
    tmp: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Volumes {
    fn new(dockerfile: &str) -> Volumes {
        let workspace = tempfile::tempdir().unwrap();
        std::fs::write(workspace.path().join("Dockerfile"), dockerfile).unwrap();
        std::fs::write(workspace.path().join("hello.txt"), "hello from the pod\n").unwrap();
        Volumes { workspace, tmp: tempfile::tempdir().unwrap(), cache: tempfile::tempdir().unwrap() }
    }

    fn mounts(&self) -> Vec<(&Path, &str)> {
        vec![(self.workspace.path(), "/workspace"), (self.tmp.path(), "/tmp"), (self.cache.path(), "/cache")]
    }
}

/// `trowel build --isolation=chroot` in a pod with `settings`: refused before the first pull,
/// naming the refused step and what to change.
fn chroot_refused(settings: Settings, step: &str, change: &str) {
    let v = Volumes::new(&format!("FROM {}/never-pulled:1\nRUN true\n", env().registry));
    let (code, log) = userns_pod_run(
        &trowel_image(),
        settings,
        args(&["/trowel/trowel", "build", "--no-push", "--isolation=chroot", "--context=/workspace"]),
        &v.mounts(),
    );
    assert_eq!(code, 2, "{settings:?}: {log}");
    assert!(log.contains("error: --isolation=chroot cannot work in this container: "), "{settings:?}: {log}");
    assert!(log.contains(step) && log.contains(change), "{settings:?}: want {step:?} and {change:?}: {log}");
    assert!(!log.contains("never-pulled"), "refused before anything is pulled: {log}");
}

#[test]
fn chroot_isolation_is_refused_with_what_to_change_until_the_pod_allows_it() {
    chroot_refused(Settings::DEFAULT, "unshare mount, PID, IPC, UTS", "needs CAP_SYS_ADMIN");
    chroot_refused(Settings { add_caps: SYS_ADMIN, ..Settings::DEFAULT }, "pivot_root", "seccompProfile Unconfined");
    chroot_refused(
        Settings { add_caps: &[], seccomp: Seccomp::Unconfined, proc_unmasked: true },
        "unshare mount, PID, IPC, UTS",
        "needs CAP_SYS_ADMIN",
    );
}

/// The Localhost profile deploy/ ships is containerd's RuntimeDefault for the Job's bounding set
/// (the default capabilities and SYS_ADMIN) and `pivot_root`, nothing else.
#[test]
fn the_shipped_localhost_profile_is_runtime_default_plus_pivot_root() {
    let shipped: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo_root().join(LOCALHOST_PROFILE)).unwrap()).unwrap();
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    caps.push("CAP_SYS_ADMIN".into());
    let mut want = runtime_default_seccomp(&caps);
    want["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"names": ["pivot_root"], "action": "SCMP_ACT_ALLOW"}));
    assert_eq!(shipped, want);
}

/// The pod nobody changed: container isolation, chosen automatically, with the reason chroot
/// was not possible in one line; the image is built, pushed and runs.
#[test]
fn a_default_userns_pod_builds_in_container_isolation_and_says_why() {
    let e = env();
    let v = Volumes::new(&format!(
        "FROM {}\nRUN mkdir /data && chown app:app /data\nCOPY hello.txt /data/\nCMD [\"cat\", \"/data/hello.txt\"]\n",
        e.busybox()
    ));
    let dest = format!("{}/{}:1", e.registry, unique_repo("userns-container"));
    let (code, log) = userns_pod_run(
        &trowel_image(),
        Settings::DEFAULT,
        args(&["/trowel/trowel", "build", "--context=/workspace", &format!("--destination={dest}")]),
        &v.mounts(),
    );
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("RUN isolation: container"), "{log}");
    assert!(
        log.contains(&format!(
            "container isolation, not chroot: this container has a user namespace of its own (uid 0 is {POD_BASE} \
             outside, {POD_IDS} ids) but chroot isolation's set-up is refused here (unshare mount, PID, IPC, UTS"
        )),
        "{log}"
    );
    let u = pull_and_unpack(&dest);
    let t = u.tree();
    assert_eq!(t.get("/data").uid, 1000, "the pod's ids (the image's app), not the node's");
    assert!(!t.has("/trowel") && !t.has("/workspace/Dockerfile"));
    let (code, out, err) = u.crun(None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hello from the pod\n");
}

/// CAP_SYS_ADMIN (the pod's, not the node's) and a seccomp profile that allows `pivot_root`
/// (the Localhost one deploy/ ships, or Unconfined), `/proc` masked as by default: chroot
/// isolation is chosen automatically and builds a multi-stage image whose digest is the one a
/// chroot build on the host makes from the same inputs.
#[test]
fn a_userns_pod_that_allows_it_builds_in_chroot_isolation_like_the_host() {
    let e = env();
    let dockerfile = format!(
        "FROM {b} AS build\nRUN mkdir /data && chown app:app /data && echo built > /data/out && chmod 4755 /data/out \
         && test -e /proc/1/status && ! test -s /proc/kcore\n\
         USER app\nRUN touch /data/by-app\n\
         FROM {b}\nCOPY --from=build /data /data\nCOPY --chown=1234:1234 hello.txt /data/\n\
         RUN touch /owned && chown app:app /owned\n\
         CMD [\"cat\", \"/data/hello.txt\"]\n",
        b = e.busybox()
    );
    let repo = format!("{}/{}", e.registry, unique_repo("userns-chroot"));
    for (tag, seccomp) in [("localhost", Seccomp::Localhost(LOCALHOST_PROFILE)), ("unconfined", Seccomp::Unconfined)] {
        let v = Volumes::new(&dockerfile);
        let settings = Settings { add_caps: SYS_ADMIN, seccomp, proc_unmasked: false };
        let dest = format!("--destination={repo}:{tag}");
        let (code, log) = userns_pod_run(
            &trowel_image(),
            settings,
            args(&["/trowel/trowel", "build", "--context=/workspace", "--reproducible", &dest]),
            &v.mounts(),
        );
        assert_eq!(code, 0, "{tag}: {log}");
        assert!(log.contains("RUN isolation: chroot"), "{tag}: {log}");
        assert!(!log.contains("container isolation, not chroot"), "{tag}: {log}");
    }

    let u = pull_and_unpack(&format!("{repo}:localhost"));
    let t = u.tree();
    for (path, uid) in [("/owned", 1000), ("/data/hello.txt", 1234), ("/data/out", 0)] {
        assert_eq!(t.get(path).uid, uid, "{path}: the pod's ids, not the node's ({POD_BASE}…)");
    }
    assert!(t.has("/data/by-app"));
    assert_eq!(t.get("/data/out").mode & 0o7777, 0o4755, "setuid survives");
    let (code, out, err) = u.crun(None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hello from the pod\n");

    // The same inputs built with chroot isolation on the host: the same image.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("Dockerfile"), &dockerfile).unwrap();
    std::fs::write(host.path().join("hello.txt"), "hello from the pod\n").unwrap();
    let o = run(trowel()
        .env_remove("KUBERNETES_SERVICE_HOST")
        .args(["build", "--isolation=chroot", "--reproducible", "--context"])
        .arg(host.path())
        .arg(format!("--destination={repo}:host")));
    assert_ok(&o);
    let digest = |tag: &str| skopeo_inspect(&format!("{repo}:{tag}"))["Digest"].as_str().unwrap().to_string();
    assert_eq!(digest("localhost"), digest("host"), "a chroot build in the pod is a chroot build");
    assert_eq!(digest("unconfined"), digest("host"));
}

/// chroot isolation in a userns pod with a `--cache-dir` volume: its roots come from an
/// unpacked-layer store of the pod's own (`unpacked-userns/ns-…`: the pod's ids and
/// `user.overlay.*` whiteouts, apart from the node's root's store), filled by the first build and
/// mounted, with nothing unpacked, by the second, which makes the same image.
#[test]
fn a_userns_pod_mounts_its_roots_from_a_store_of_its_own() {
    let e = env();
    let v = Volumes::new(&format!(
        "FROM {}\nRUN rm /bin/true && mkdir /gone && rmdir /gone && echo ok > /ok\nRUN test ! -e /bin/true && cat /ok\n",
        e.busybox()
    ));
    let repo = format!("{}/{}", e.registry, unique_repo("userns-store"));
    let settings =
        Settings { add_caps: SYS_ADMIN, seccomp: Seccomp::Localhost(LOCALHOST_PROFILE), proc_unmasked: false };
    let mut logs = Vec::new();
    for tag in ["first", "second"] {
        let dest = format!("--destination={repo}:{tag}");
        let (code, log) = userns_pod_run(
            &trowel_image(),
            settings,
            // busybox is under the size below which a root is unpacked instead.
            args(&[
                "/trowel/trowel",
                "build",
                "--context=/workspace",
                "--cache-dir=/cache",
                "--unpacked-store-min-size=0",
                "--reproducible",
                &dest,
            ]),
            &v.mounts(),
        );
        assert_eq!(code, 0, "{tag}: {log}");
        assert!(log.contains("RUN isolation: chroot"), "{tag}: {log}");
        logs.push(log);
    }
    assert!(logs[0].contains("from the unpacked-layer store (0 there already"), "{}", logs[0]);
    assert!(logs[1].contains("from the unpacked-layer store (1 there already, none unpacked)"), "{}", logs[1]);
    let stores: Vec<String> = std::fs::read_dir(v.cache.path().join("unpacked-userns"))
        .expect("the pod's store is under unpacked-userns")
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(stores.len() == 1 && stores[0].starts_with("ns-"), "{stores:?}");
    let digest = |tag: &str| skopeo_inspect(&format!("{repo}:{tag}"))["Digest"].as_str().unwrap().to_string();
    assert_eq!(digest("first"), digest("second"), "a root from the store builds the same image");
    let t = pull_and_unpack(&format!("{repo}:second")).tree();
    assert!(!t.has("/bin/true") && t.has("/ok"), "the deletion (a whiteout) and the new file");
}

/// `--isolation=rootless` in the pod: a nested user namespace needs no
/// capability, only a seccomp profile that lets `unshare` through and an unmasked /proc (in a
/// nested user namespace the masks are locked mounts, and the kernel refuses a new /proc).
#[test]
fn rootless_isolation_in_a_userns_pod() {
    let e = env();
    let v = Volumes::new(&format!("FROM {}\nRUN echo ok > /ok\n", e.busybox()));
    let build = |settings: Settings| {
        userns_pod_run(
            &trowel_image(),
            settings,
            args(&["/trowel/trowel", "build", "--no-push", "--isolation=rootless", "--context=/workspace"]),
            &v.mounts(),
        )
    };
    let (code, log) = build(Settings { add_caps: &[], seccomp: Seccomp::Unconfined, proc_unmasked: true });
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("RUN isolation: rootless"), "{log}");
    let (code, log) = build(Settings::DEFAULT);
    assert_ne!(code, 0, "RuntimeDefault refuses unshare without CAP_SYS_ADMIN: {log}");
    assert!(log.contains("user namespace"), "a clear error, not a bare EPERM: {log}");
}

/// The probe itself, on this machine (root of the initial user namespace): chroot isolation's
/// set-up works, and a helper that is not trowel is reported as refused, not as working.
#[test]
fn the_probe_says_what_this_machine_allows() {
    use trowel_engine::sandbox::{ChrootProbe, chroot_hint, probe_chroot};
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(probe_chroot(Path::new(env!("CARGO_BIN_EXE_trowel")), scratch.path()), ChrootProbe::Works);
    assert!(matches!(probe_chroot(Path::new("/bin/true"), scratch.path()), ChrootProbe::Refused(_)));
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0, "the scratch root is gone again");
    let pivot = "pivot_root into /tmp/x: EPERM: Operation not permitted";
    assert!(chroot_hint(pivot).contains("Localhost profile"), "{}", chroot_hint(pivot));
    assert_eq!(chroot_hint("mount proc on /proc: ENOENT: No such file or directory"), "", "only refusals get a hint");
}
