//! Running trowel's own image like a pod of a GitLab Kubernetes runner (for `pod/`): the image
//! built once per test binary with `scripts/image-context.sh`, an umoci bundle rewritten to the
//! seed deployment's six capabilities, run or left running with crun.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;

pub mod userns;

/// The six capabilities of the seed deployment's `cap_add` (everything else dropped).
pub const POD_CAPS: [&str; 6] =
    ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETUID"];
/// Their bit mask, as /proc/self/status prints it.
pub const POD_CAP_MASK: &str = "00000000800000cb";

/// Builds trowel's own image (`--target debug`, for its busybox shell) with trowel, once per
/// test binary.
pub fn trowel_image() -> String {
    static IMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IMAGE.get_or_init(build_trowel_image).clone()
}

fn build_trowel_image() -> String {
    image_of(&[], "debug")
}

/// trowel's image from `scripts/image-context.sh <flags>`, target `target` of the Dockerfile.
pub fn image_of(flags: &[&str], target: &str) -> String {
    let ctx = tempfile::tempdir().unwrap();
    let out = ctx.path().join("context");
    let o = run(Command::new(repo_root().join("scripts/image-context.sh"))
        .args(flags)
        .arg(env!("CARGO_BIN_EXE_trowel"))
        .arg(&out)
        .current_dir(repo_root()));
    assert_ok(&o);
    let image = format!("{}/{}:{target}", env().registry, unique_repo("trowel-image"));
    let o = run(trowel()
        .args(["build", "--context"])
        .arg(&out)
        .arg("--dockerfile")
        .arg(repo_root().join("Dockerfile"))
        .args(["--target", target, "--destination", &image]));
    assert_ok(&o);
    image
}

/// Rewrites an umoci bundle's config to run like the seed pod.
pub fn podify(bundle: &Path, args: &[String], mounts: &[(&Path, &str)]) {
    let cfg_path = bundle.join("config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["args"] = json!(args);
    cfg["process"]["terminal"] = json!(false);
    cfg["process"]["noNewPrivileges"] = json!(true);
    cfg["process"]["user"] = json!({"uid": 0, "gid": 0});
    cfg["process"]["capabilities"] = json!({
        "bounding": POD_CAPS, "effective": POD_CAPS, "permitted": POD_CAPS, "inheritable": [], "ambient": []
    });
    let env = cfg["process"]["env"].as_array_mut().unwrap();
    // What the kubelet puts in every pod's environment.
    env.push(json!("KUBERNETES_SERVICE_HOST=10.96.0.1"));
    env.push(json!("HOME=/root"));
    // The test registries listen on the host's loopback: share the host network, as a
    // hostNetwork pod would (the isolation under test is about the filesystem and capabilities).
    if let Some(ns) = cfg["linux"]["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network");
    }
    let list = cfg["mounts"].as_array_mut().unwrap();
    for (src, dst) in mounts {
        list.push(json!({"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rw"]}));
    }
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
}

pub fn pod_run(image: &str, args: Vec<String>, mounts: &[(&Path, &str)]) -> (i32, String, String, Unpacked) {
    let u = pull_and_unpack(image);
    podify(&u.bundle(), &args, mounts);
    let (code, out, err) = crun_run_raw(&u.bundle());
    (code, out, err, u)
}

/// Runs a bundle whose config is already complete (no edits).
pub fn crun_run_raw(bundle: &Path) -> (i32, String, String) {
    let o = run(Command::new(repo_root().join("scripts/crun-run.sh")).arg(bundle).arg(unique_repo("pod")));
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

/// A pod left running, as `deploy/kubernetes/debug-pod.yaml`'s `sleep infinity` is, for
/// `crun exec` to enter like `kubectl exec`.
pub struct RunningPod {
    id: String,
    _unpacked: Unpacked,
}

impl RunningPod {
    pub fn start(image: &str, mounts: &[(&Path, &str)]) -> RunningPod {
        let u = pull_and_unpack(image);
        podify(&u.bundle(), &["/trowel/busybox/sleep".into(), "900".into()], mounts);
        let id = unique_repo("debug-pod");
        let o = run(Command::new(repo_root().join("scripts/crun-run.sh")).arg("-d").arg(u.bundle()).arg(&id));
        assert_ok(&o);
        RunningPod { id, _unpacked: u }
    }

    /// Runs `args` in the pod (`kubectl exec`); returns (exit code, stdout and stderr).
    pub fn exec(&self, args: &[String]) -> (i32, String) {
        let o = run(Command::new("crun").arg("exec").arg(&self.id).args(args));
        (o.status.code().unwrap_or(-1), format!("{}{}", stdout(&o), stderr(&o)))
    }

    /// The command line that runs `args` in the pod with a terminal (`kubectl exec -it`).
    pub fn exec_tty(&self, args: &[String]) -> String {
        format!("crun exec -t {} {}", self.id, args.join(" "))
    }
}

impl Drop for RunningPod {
    fn drop(&mut self) {
        let _ = Command::new("crun").args(["delete", "-f", &self.id]).output();
    }
}

pub fn sh(cmd: &str) -> Vec<String> {
    vec!["/trowel/busybox/sh".into(), "-c".into(), cmd.into()]
}

pub fn copy_dir(src: &Path, dst: &Path) {
    for e in walkdir::WalkDir::new(src) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(src).unwrap();
        let t = dst.join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&t).unwrap();
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}
