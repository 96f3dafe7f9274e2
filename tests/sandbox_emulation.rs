//! RUN for a foreign platform through trowel's own sandbox: the test registry's real arm64
//! busybox (Debian's busybox-static:arm64, pushed by scripts/make-base-image.sh), fetched with
//! skopeo and unpacked with umoci, runs in chroot isolation through the kernel's binfmt_misc
//! QEMU handler — which `sandbox::emulation` must have found first. The build root holds no
//! QEMU, so this works only because the handler has the F flag, as the check demands. crun, an
//! independent runtime, runs each platform of the fixture index the same way.
//!
//! Needs root, the test registries (scripts/testenv.sh) and the handlers (scripts/enable-emulation.sh).

mod common;
mod sandbox_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{assert_ok, env, run};
use sandbox_support::{sh, spec};
use trowel_engine::image::manifest::Platform;
use trowel_engine::sandbox::emulation::{Execution, execution};
use trowel_engine::sandbox::{RunOutcome, RunSpec, Stream, resolve_user};

/// The arm64 busybox root, unpacked once for every test in this file.
fn arm64_root() -> &'static Path {
    static ROOT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, root) = ROOT.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("trowel-emulation-test-").tempdir_in(&env().dir).unwrap();
        let layout = dir.path().join("layout");
        let image = format!("docker://{}/busybox:arm64", env().registry);
        assert_ok(&run(Command::new("skopeo").args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            &image,
            &format!("oci:{}:arm64", layout.display()),
        ])));
        let bundle = dir.path().join("bundle");
        assert_ok(&run(Command::new("umoci").args([
            "unpack",
            "--image",
            &format!("{}:arm64", layout.display()),
            bundle.to_str().unwrap(),
        ])));
        let root = bundle.join("rootfs");
        (dir, root)
    });
    root
}

fn run_collect(spec: &RunSpec) -> (RunOutcome, String, String) {
    // The tests share one root, and the sandbox puts its mount points (`/etc/hosts`, …) into
    // the root it runs in: two runs at once in one root would race making them (as two
    // steps of one stage never do). One run at a time.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let outcome = trowel_engine::sandbox::run(spec, &mut |s, chunk| match s {
        Stream::Stdout => out.extend_from_slice(chunk),
        Stream::Stderr => err.extend_from_slice(chunk),
    })
    .unwrap_or_else(|e| panic!("{:?}: {e}", spec.argv));
    (outcome, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

fn ok(spec: &RunSpec) -> String {
    let (outcome, out, err) = run_collect(spec);
    assert_eq!(outcome, RunOutcome { exit_code: 0, timed_out: false }, "{:?}: stderr {err}", spec.argv);
    out
}

#[test]
fn this_machine_emulates_arm64_through_a_fix_binary_qemu_handler() {
    assert_eq!(Platform::host().architecture, "amd64", "the emulation fixtures are for an amd64 machine");
    let arm64 = Platform::parse("linux/arm64/v8").unwrap();
    match execution(&arm64) {
        Ok(Execution::Emulated { handler, interpreter }) => {
            let entry = std::fs::read_to_string(Path::new("/proc/sys/fs/binfmt_misc").join(&handler)).unwrap();
            assert!(entry.lines().any(|l| l.starts_with("flags: ") && l.contains('F')), "{entry}");
            assert!(entry.contains(&format!("interpreter {}", interpreter.display())), "{entry}");
        }
        other => panic!("arm64 RUN steps cannot run here: {other:?} (scripts/enable-emulation.sh)"),
    }
    assert_eq!(execution(&Platform::parse("linux/amd64").unwrap()).unwrap(), Execution::Native);
    assert_eq!(execution(&Platform::parse("linux/386").unwrap()).unwrap(), Execution::Native);
}

#[test]
fn an_arm64_busybox_runs_uname_in_the_chroot_sandbox() {
    let root = arm64_root();
    // Really an aarch64 binary (ELF e_machine 0xb7), and no QEMU inside the root.
    let elf = std::fs::read(root.join("bin/busybox")).unwrap();
    assert_eq!((&elf[..4], elf[18], elf[19]), (&b"\x7fELF"[..], 0xb7, 0x00));
    assert!(!root.join("usr/libexec/qemu-binfmt").exists() && !root.join("usr/bin/qemu-aarch64-static").exists());

    assert_eq!(ok(&spec(root, &["uname", "-m"])).trim(), "aarch64");
    // A shell script with pipes and a failing command: every process is emulated, exit codes too.
    let out = ok(&sh(root, "uname -m | tr a-z A-Z; echo $((6 * 7)) > /tmp/x; cat /tmp/x; rm /tmp/x"));
    assert_eq!(out, "AARCH64\n42\n");
    let (outcome, _, _) = run_collect(&sh(root, "exit 7"));
    assert_eq!(outcome.exit_code, 7);
}

#[test]
fn an_emulated_run_as_a_non_root_user() {
    let root = arm64_root();
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    let mut s = sh(root, "id -u; id -G; uname -m; touch /home/app/f && stat -c %u /home/app/f && rm /home/app/f");
    s.user = resolve_user("app", Some(&passwd), Some(&group)).unwrap().ids;
    assert_eq!(ok(&s), "1000\n1000 29 50\naarch64\n1000\n");
}

#[test]
fn the_fixture_index_runs_under_crun_for_each_platform() {
    // What the multi-platform end-to-end tests do with a built index: skopeo picks each
    // platform's image (--override-arch), umoci unpacks it, crun runs it — arm64 through the
    // same binfmt_misc handler, amd64 natively.
    for (arch, expect) in [("arm64", "aarch64"), ("amd64", "x86_64")] {
        let dir = tempfile::Builder::new().prefix("trowel-emulation-crun-").tempdir().unwrap();
        let layout = dir.path().join("layout");
        assert_ok(&run(Command::new("skopeo").args([
            "--override-arch",
            arch,
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{}/busybox:multi", env().registry),
            &format!("oci:{}:img", layout.display()),
        ])));
        let unpacked = common::unpack_layout(dir, &layout, "img");
        let (code, out, err) = common::crun_run(&unpacked.bundle(), Some(&["uname", "-m"]));
        assert_eq!((code, out.trim()), (0, expect), "{arch}: {err}");
    }
}
