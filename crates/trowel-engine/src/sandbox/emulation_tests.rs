//! Unit tests of the emulation check over crafted binfmt_misc directories: entries as the
//! kernel shows them (the qemu ones copied from a Debian machine with qemu-user-static).

use super::*;

const AARCH64_F: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n\
                         magic 7f454c460201010000000000000000000200b700\n\
                         mask ffffffffffffff00fffffffffffffffffeffffff\n";
const RISCV64_F: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/riscv64-binfmt-P\nflags: PF\noffset 0\n\
                         magic 7f454c460201010000000000000000000200f300\n\
                         mask ffffffffffffff00fffffffffffffffffeffffff\n";
const S390X_F: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P\nflags: PF\noffset 0\n\
                       magic 7f454c4602020100000000000000000000020016\n\
                       mask fffffffffffffffcfffffffffffffffffffeffff\n";
const ARM_F: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: PF\noffset 0\n\
                     magic 7f454c4601010100000000000000000002002800\n\
                     mask ffffffffffffff00fffffffffffffffffeffffff\n";
const JAR: &str = "enabled\ninterpreter /usr/bin/jexec\nflags: \noffset 0\nmagic 504b0304\n";
const PY: &str = "enabled\ninterpreter /usr/bin/python3.11\nflags: \nextension .pyc\n";

fn dir(entries: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("status"), "enabled\n").unwrap();
    std::fs::write(d.path().join("register"), "").unwrap();
    for (name, text) in entries {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}

fn amd64_machine() -> Machine {
    Machine { platform: Platform::parse("linux/amd64").unwrap(), container: None, probe_dir: None }
}

fn p(s: &str) -> Platform {
    Platform::parse_exact(s).unwrap()
}

fn check(platform: &str, d: &Path) -> Result<Execution, EmulationError> {
    execution_in(&p(platform), &amd64_machine(), d)
}

#[test]
fn the_host_architecture_and_386_on_amd64_are_native_without_binfmt_misc() {
    let nothing = Path::new("/nonexistent/binfmt_misc");
    assert_eq!(check("linux/amd64", nothing).unwrap(), Execution::Native);
    assert_eq!(check("linux/amd64/v3", nothing).unwrap(), Execution::Native);
    assert_eq!(check("linux/386", nothing).unwrap(), Execution::Native);
    let arm_host = Machine { platform: p("linux/arm64/v8"), container: None, probe_dir: None };
    assert_eq!(execution_in(&p("linux/arm64"), &arm_host, nothing).unwrap(), Execution::Native);
    // Conservative: an arm64 kernel is not assumed to run 32-bit arm.
    let e = execution_in(&p("linux/arm/v7"), &arm_host, nothing).unwrap_err();
    assert!(matches!(e, EmulationError::NotMounted { .. }), "{e}");
}

#[test]
fn a_matching_fix_binary_handler_emulates() {
    let d = dir(&[("jar", JAR), ("python3.11", PY), ("qemu-arm", ARM_F), ("qemu-aarch64", AARCH64_F)]);
    assert_eq!(
        check("linux/arm64/v8", d.path()).unwrap(),
        Execution::Emulated {
            handler: "qemu-aarch64".into(),
            interpreter: "/usr/libexec/qemu-binfmt/aarch64-binfmt-P".into()
        }
    );
    assert!(
        matches!(check("linux/arm/v7", d.path()).unwrap(), Execution::Emulated { handler, .. } if handler == "qemu-arm")
    );
}

#[test]
fn the_mask_is_applied_as_the_kernel_does() {
    // s390x is big-endian: its magic compares e_type/e_machine in the other byte order, and its
    // mask lets e_type be 2 or 3 (the 0xfe byte) so static and PIE binaries both match.
    let d = dir(&[("qemu-s390x", S390X_F)]);
    assert!(matches!(check("linux/s390x", d.path()).unwrap(), Execution::Emulated { .. }));
    // Without the mask, the PIE header (e_type 3) no longer matches: no handler for both.
    let strict = S390X_F.lines().filter(|l| !l.starts_with("mask")).collect::<Vec<_>>().join("\n");
    let d = dir(&[("qemu-s390x", &strict)]);
    assert!(matches!(check("linux/s390x", d.path()).unwrap_err(), EmulationError::NoHandler { .. }));
    // A handler at an offset beyond the magic's reach or for another machine never matches.
    let shifted = AARCH64_F.replace("offset 0", "offset 50");
    let d = dir(&[("qemu-aarch64", &shifted), ("qemu-riscv64", RISCV64_F)]);
    let e = check("linux/arm64", d.path()).unwrap_err();
    assert!(matches!(e, EmulationError::NoHandler { .. }), "{e}");
    assert!(
        matches!(check("linux/riscv64", d.path()).unwrap(), Execution::Emulated { handler, .. } if handler == "qemu-riscv64")
    );
}

#[test]
fn no_handler_says_what_to_install_and_names_the_platform() {
    let d = dir(&[("qemu-riscv64", RISCV64_F), ("jar", JAR)]);
    let e = check("linux/arm64", d.path()).unwrap_err().to_string();
    for part in [
        "platform linux/arm64",
        "amd64 machine",
        "arm64 (64-bit little-endian ELF, machine 0xb7)",
        "apt-get install qemu-user-static binfmt-support",
        "update-binfmts --enable qemu-aarch64",
    ] {
        assert!(e.contains(part), "{part:?} not in {e}");
    }
    // In a pod, the advice is about the node.
    let pod = Machine {
        platform: p("linux/amd64"),
        container: Some("a Kubernetes pod (KUBERNETES_SERVICE_HOST)".into()),
        probe_dir: None,
    };
    let e = execution_in(&p("linux/arm64"), &pod, d.path()).unwrap_err().to_string();
    for part in ["node's kernel", "tonistiigi/binfmt --install arm64", "a Kubernetes pod"] {
        assert!(e.contains(part), "{part:?} not in {e}");
    }
}

#[test]
fn a_disabled_handler_is_named() {
    let d = dir(&[("qemu-aarch64", &AARCH64_F.replace("enabled", "disabled"))]);
    let e = check("linux/arm64", d.path()).unwrap_err();
    assert!(matches!(&e, EmulationError::HandlerDisabled { handler, .. } if handler == "qemu-aarch64"), "{e}");
    assert!(e.to_string().contains("update-binfmts --enable qemu-aarch64"), "{e}");
    // An enabled twin beside a disabled one is used.
    let d = dir(&[("a-disabled", &AARCH64_F.replace("enabled", "disabled")), ("qemu-aarch64", AARCH64_F)]);
    assert!(
        matches!(check("linux/arm64", d.path()).unwrap(), Execution::Emulated { handler, .. } if handler == "qemu-aarch64")
    );
}

#[test]
fn a_handler_without_the_f_flag_is_refused_with_the_reason() {
    // Debian's qemu-user-binfmt: the interpreter path exists only on the host.
    let no_f = AARCH64_F.replace("flags: PF", "flags: P");
    let d = dir(&[("qemu-aarch64", &no_f)]);
    let e = check("linux/arm64", d.path()).unwrap_err();
    assert!(matches!(&e, EmulationError::NoFixBinary { flags, .. } if flags == "P"), "{e}");
    let msg = e.to_string();
    for part in
        ["F (fix binary) flag", "/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "qemu-user-static", "platform linux/arm64"]
    {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
    // Even beside a good one: the kernel might pick either.
    let d = dir(&[("qemu-aarch64", AARCH64_F), ("zz-other", &no_f)]);
    assert!(
        matches!(check("linux/arm64", d.path()).unwrap_err(), EmulationError::NoFixBinary { handler, .. } if handler == "zz-other")
    );
    // A disabled one without F does not matter.
    let d = dir(&[("qemu-aarch64", AARCH64_F), ("zz-other", &no_f.replace("enabled", "disabled"))]);
    assert!(matches!(check("linux/arm64", d.path()).unwrap(), Execution::Emulated { .. }));
}

#[test]
fn binfmt_misc_not_mounted_or_disabled() {
    let empty = tempfile::tempdir().unwrap();
    let e = check("linux/arm64", empty.path()).unwrap_err();
    assert!(matches!(e, EmulationError::NotMounted { .. }), "{e}");
    assert!(e.to_string().contains(&format!("mount -t binfmt_misc binfmt_misc {}", empty.path().display())), "{e}");
    let d = dir(&[("qemu-aarch64", AARCH64_F)]);
    std::fs::write(d.path().join("status"), "disabled\n").unwrap();
    let e = check("linux/arm64", d.path()).unwrap_err();
    assert!(matches!(e, EmulationError::Disabled { .. }), "{e}");
    assert!(e.to_string().contains("/status` (as root)"), "{e}");
}

#[test]
fn unknown_architectures_other_systems_and_bad_entries() {
    let d = dir(&[("qemu-aarch64", AARCH64_F)]);
    let e = check("linux/arm65", d.path()).unwrap_err().to_string();
    assert!(e.contains("unknown architecture \"arm65\"") && e.contains("arm64, arm,"), "{e}");
    let e = check("windows/amd64", d.path()).unwrap_err().to_string();
    assert!(e.contains("platform windows/amd64") && e.contains("not windows"), "{e}");
    let d = dir(&[("broken", "enabled\ninterpreter /x\nflags: F\noffset 0\nmagic 7f45zz\n")]);
    let e = check("linux/arm64", d.path()).unwrap_err();
    assert!(matches!(&e, EmulationError::BadEntry { path, .. } if path.ends_with("broken")), "{e}");
}

#[test]
fn headers_are_real_elf_identities() {
    // Check the synthetic header against the real busybox of this machine (amd64 or arm64).
    let bytes = std::fs::read("/bin/busybox").expect("busybox-static is installed (scripts/install-deps.sh)");
    let host = Arch::find(&Platform::host().architecture).expect("a known host");
    let h = host.header(u16::from_le_bytes([bytes[16], bytes[17]]));
    // Byte 7 (EI_OSABI) is 0 or 3 (GNU) in real binaries: handlers mask it out, and so do we.
    assert_eq!(&bytes[..7], &h[..7]);
    assert_eq!(&bytes[16..24], &h[16..24]);
}

#[test]
fn the_step_message_names_location_and_instruction() {
    let d = dir(&[]);
    let e = check("linux/arm64", d.path()).unwrap_err();
    let m = e.for_step("Dockerfile:7", "RUN make -j4");
    assert!(m.starts_with("Dockerfile:7: RUN make -j4: cannot run for platform linux/arm64"), "{m}");
}

#[test]
fn this_machine_answers_for_its_own_platform() {
    assert_eq!(execution(&Platform::host()).unwrap(), Execution::Native);
}

mod probe {
    //! The test programs, run for real: natively (amd64, 386) and through this machine's QEMU
    //! handlers (the others; scripts/enable-emulation.sh registers them).
    use super::*;
    use crate::sandbox::emulation_probe::{Probe, elf, probe};

    #[test]
    fn every_test_program_runs_and_exits_42() {
        assert_eq!(Platform::host().architecture, "amd64", "the expectations are for an amd64 machine");
        let dir = tempfile::tempdir().unwrap();
        for arch in ["amd64", "386", "arm64", "arm", "riscv64", "ppc64le", "s390x"] {
            assert_eq!(probe(arch, dir.path()).unwrap(), Probe::Runs, "{arch}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the programs are removed");
        assert_eq!(probe("mips64le", dir.path()).unwrap(), Probe::Unknown);
        assert!(elf("loong64").is_none());
    }

    #[test]
    fn another_trowel_of_the_same_pid_does_not_get_in_the_way() {
        // What a trowel of the same PID in another pod (or a killed one) has there: the names
        // a probe made of the PID would take.
        let dir = tempfile::tempdir().unwrap();
        for n in 0..64 {
            std::fs::write(dir.path().join(format!(".trowel-probe-{}-{n}-amd64", std::process::id())), b"").unwrap();
        }
        assert_eq!(probe("amd64", dir.path()).unwrap(), Probe::Runs);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 64, "the probe left its program");
    }

    #[test]
    fn test_programs_carry_the_identity_the_handlers_match() {
        // The same header test the binfmt_misc check uses: a program for arm64 matches the
        // aarch64 handler's magic and mask, and not the riscv64 one.
        let arm64 = elf("arm64").unwrap();
        let handler = Entry::parse("qemu-aarch64", AARCH64_F).unwrap().unwrap();
        assert!(handler.matches(&arm64));
        assert!(!Entry::parse("qemu-riscv64", RISCV64_F).unwrap().unwrap().matches(&arm64));
        let s390x = elf("s390x").unwrap();
        assert!(Entry::parse("qemu-s390x", S390X_F).unwrap().unwrap().matches(&s390x));
        let arm = elf("arm").unwrap();
        assert!(Entry::parse("qemu-arm", ARM_F).unwrap().unwrap().matches(&arm));
    }

    #[test]
    fn without_binfmt_misc_a_test_program_decides() {
        let not_mounted = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let machine = Machine { probe_dir: Some(scratch.path().into()), ..amd64_machine() };
        assert_eq!(execution_in(&p("linux/arm64"), &machine, not_mounted.path()).unwrap(), Execution::Probed);
        // No test program for mips64le: the error stays binfmt_misc's, with what to do.
        let e = execution_in(&p("linux/mips64le"), &machine, not_mounted.path()).unwrap_err();
        assert!(matches!(&e, EmulationError::NotMounted { probe: None, .. }), "{e}");
        // A probe directory where nothing can be written is said.
        let machine = Machine { probe_dir: Some("/nonexistent/probe".into()), ..amd64_machine() };
        let e = execution_in(&p("linux/arm64"), &machine, not_mounted.path()).unwrap_err().to_string();
        assert!(e.contains("a test program could not be run in /nonexistent/probe"), "{e}");
    }

    #[test]
    fn a_binary_the_kernel_cannot_execute_is_reported_as_such() {
        // Not an ELF and no #!: the kernel says ENOEXEC, as it does for a foreign ELF without a
        // handler. Exercised through the same runner the probe uses.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-program");
        std::fs::write(&path, b"\x7fELF\x02\x01\x01garbage").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let e = crate::sandbox::emulation_probe::run_program(&path).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(8), "{e}");
    }
}
