//! A test program for a foreign architecture: when binfmt_misc is not visible (in a pod, where
//! `/proc/sys/fs/binfmt_misc` is not mounted though the node's kernel has the handlers), the
//! only true answer to "can RUN execute this platform here?" is to execute one of its binaries.
//! BuildKit does the same with small embedded binaries.
//!
//! The programs are built here rather than shipped: a minimal static ELF (one loadable segment)
//! whose code is the architecture's `exit(42)` system call. 42, not 0, so a run that only
//! seemed to work (a shim, a wrong interpreter exiting 0) is not taken for one.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

/// The exit status the test program ends with.
pub(super) const PROBE_STATUS: i32 = 42;

/// Where programs are loaded: the usual first address of a non-PIE executable.
const BASE: u64 = 0x40_0000;

/// The machine code of `exit(42)` and the ELF fields it needs, for the architectures the probe
/// knows (by Go/OCI name); `None` for the others.
fn program(arch: &str) -> Option<(u8, u8, u16, u32, Vec<u8>)> {
    // (class, data, e_machine, e_flags, code)
    let le = |words: &[u32]| words.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
    Some(match arch {
        // mov edi, 42; mov eax, 60 (exit); syscall
        "amd64" => (2, 1, 0x3e, 0, vec![0xbf, 42, 0, 0, 0, 0xb8, 60, 0, 0, 0, 0x0f, 0x05]),
        // mov ebx, 42; mov eax, 1 (exit); int 0x80
        "386" => (1, 1, 0x03, 0, vec![0xbb, 42, 0, 0, 0, 0xb8, 1, 0, 0, 0, 0xcd, 0x80]),
        // mov x0, #42; mov x8, #93 (exit); svc #0
        "arm64" => (2, 1, 0xb7, 0, le(&[0xd280_0540, 0xd280_0ba8, 0xd400_0001])),
        // mov r0, #42; mov r7, #1 (exit); svc #0 — EABI version 5 in e_flags, so r7 holds the number
        "arm" => (1, 1, 0x28, 0x0500_0000, le(&[0xe3a0_002a, 0xe3a0_7001, 0xef00_0000])),
        // li a0, 42; li a7, 93 (exit); ecall
        "riscv64" => (2, 1, 0xf3, 0, le(&[0x02a0_0513, 0x05d0_0893, 0x0000_0073])),
        // li r3, 42; li r0, 1 (exit); sc — ELFv2 ABI (e_flags 2): the entry is code, not a descriptor
        "ppc64le" => (2, 1, 0x15, 2, le(&[0x3860_002a, 0x3800_0001, 0x4400_0002])),
        // lghi %r2, 42; svc 1 (exit) — big-endian
        "s390x" => (2, 2, 0x16, 0, vec![0xa7, 0x29, 0x00, 0x2a, 0x0a, 0x01]),
        _ => return None,
    })
}

/// The whole test program for `arch`, or `None` when the probe does not know it.
pub(super) fn elf(arch: &str) -> Option<Vec<u8>> {
    let (class, data, machine, flags, code) = program(arch)?;
    let wide = class == 2;
    let (ehsize, phsize): (u16, u16) = if wide { (64, 56) } else { (52, 32) };
    let code_at = u64::from(ehsize + phsize);
    let total = code_at + code.len() as u64;
    let mut f = Vec::with_capacity(total as usize);
    let u16b = |v: u16| if data == 1 { v.to_le_bytes() } else { v.to_be_bytes() };
    let u32b = |v: u32| if data == 1 { v.to_le_bytes() } else { v.to_be_bytes() };
    let u64b = |v: u64| if data == 1 { v.to_le_bytes() } else { v.to_be_bytes() };
    // Narrows an address or size for a 32-bit file (all of them are below 4 GiB).
    let word = |v: u64| -> Vec<u8> { if wide { u64b(v).to_vec() } else { u32b(v as u32).to_vec() } };

    f.extend_from_slice(b"\x7fELF");
    f.extend_from_slice(&[class, data, 1, 0]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&u16b(2)); // ET_EXEC
    f.extend_from_slice(&u16b(machine));
    f.extend_from_slice(&u32b(1)); // EV_CURRENT
    f.extend(word(BASE + code_at)); // e_entry
    f.extend(word(u64::from(ehsize))); // e_phoff
    f.extend(word(0)); // e_shoff
    f.extend_from_slice(&u32b(flags));
    f.extend_from_slice(&u16b(ehsize));
    f.extend_from_slice(&u16b(phsize));
    f.extend_from_slice(&u16b(1)); // e_phnum
    f.extend_from_slice(&u16b(0)); // e_shentsize
    f.extend_from_slice(&u16b(0)); // e_shnum
    f.extend_from_slice(&u16b(0)); // e_shstrndx
    // One PT_LOAD of the whole file, readable and executable. The field order differs: 64-bit
    // puts p_flags second.
    let (load, rx) = (1u32, 5u32);
    f.extend_from_slice(&u32b(load));
    if wide {
        f.extend_from_slice(&u32b(rx));
    }
    f.extend(word(0)); // p_offset
    f.extend(word(BASE)); // p_vaddr
    f.extend(word(BASE)); // p_paddr
    f.extend(word(total)); // p_filesz
    f.extend(word(total)); // p_memsz
    if !wide {
        f.extend_from_slice(&u32b(rx));
    }
    f.extend(word(0x1000)); // p_align
    debug_assert_eq!(f.len() as u64, code_at);
    f.extend_from_slice(&code);
    Some(f)
}

/// What running the test program showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Probe {
    /// It ran and exited 42: the kernel executes the architecture's binaries here.
    Runs,
    /// The kernel refused it (`ENOEXEC`: no handler), or it did not end as it must; the reason.
    Fails(String),
    /// The probe does not know the architecture.
    Unknown,
}

/// Writes the test program for `arch` into `dir` and runs it.
pub(super) fn probe(arch: &str, dir: &Path) -> Result<Probe, std::io::Error> {
    let Some(bytes) = elf(arch) else { return Ok(Probe::Unknown) };
    // A random name, made with O_EXCL: the work dir is shared by builds of other pods, each
    // trowel there PID 1, so a name made of the PID would be theirs too (and a killed one's
    // leftover would refuse every later build of that PID).
    let mut out = tempfile::Builder::new()
        .prefix(&format!(".trowel-probe-{arch}-"))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempfile_in(dir)?;
    let written = out.write_all(&bytes);
    // Closed before it is executed; removed when dropped.
    let path = out.into_temp_path();
    let result = written.and_then(|()| run_program(&path));
    drop(path);
    Ok(match result {
        Ok(status) if status.code() == Some(PROBE_STATUS) => Probe::Runs,
        Ok(status) => Probe::Fails(format!("a test program for {arch} ended with {status}")),
        Err(e) if e.raw_os_error() == Some(ENOEXEC) => {
            Probe::Fails(format!("the kernel cannot execute {arch} binaries (no binfmt_misc handler)"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Probe::Fails(format!(
            "a binfmt_misc handler for {arch} exists but its interpreter is not here: it lacks the F (fix binary) flag"
        )),
        Err(e) => return Err(e),
    })
}

/// Runs the program; another thread forking while the file was open for writing makes exec
/// fail with ETXTBSY for a moment, so that is retried.
pub(super) fn run_program(path: &Path) -> Result<std::process::ExitStatus, std::io::Error> {
    let mut tries = 0;
    loop {
        match super::userns::command(path)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Linux's errno values (the same on every architecture trowel runs on).
const ENOEXEC: i32 = 8;
const ETXTBSY: i32 = 26;
