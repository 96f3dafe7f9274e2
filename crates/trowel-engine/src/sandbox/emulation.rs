//! Can this machine run a RUN step for a given platform, and how: natively, or through a QEMU
//! user-emulation handler registered with the kernel's binfmt_misc.
//!
//! It lives in the sandbox because it is a fact about the kernel that executes RUN, not about
//! the Dockerfile: the build root is entered with `execve`, and a foreign ELF binary runs only
//! if binfmt_misc hands it to an interpreter. That interpreter must have been registered with
//! the `F` (fix binary) flag: the kernel then opened it at registration and uses that open file,
//! so it works inside a build root that has no `/usr/libexec/qemu-binfmt` (Debian's
//! `qemu-user-static` registers with `F`; `qemu-user-binfmt` does not). In a pod the handlers
//! are the node kernel's, as for BuildKit.
//!
//! The check reads `/proc/sys/fs/binfmt_misc` the way the kernel matches: for each enabled
//! magic entry, `(header[offset..] & mask) == magic` over a representative ELF header of the
//! architecture (both an executable and a position-independent one, so static and PIE
//! binaries alike are handled). It runs before anything is built, so a build that cannot run a
//! foreign RUN fails at once with what to install. Where binfmt_misc is not visible at all (a
//! pod), a tiny test program of the platform is run instead (`emulation_probe.rs`).

use std::fmt;
use std::path::{Path, PathBuf};

use super::emulation_probe::{Probe, probe};
use crate::image::manifest::Platform;

/// Where the kernel exposes binfmt_misc.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// How RUN steps of a platform execute on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// The kernel runs the platform's binaries itself.
    Native,
    /// Through a binfmt_misc handler: `handler` is its name (e.g. `qemu-aarch64`), `interpreter`
    /// the program it registered (the kernel holds it open: the `F` flag).
    Emulated { handler: String, interpreter: PathBuf },
    /// binfmt_misc is not visible here (in a pod it is not mounted, though the node's kernel
    /// has the handlers), but a test program of the platform ran and exited as it must: the
    /// kernel emulates the platform through a handler trowel cannot name.
    Probed,
}

/// The machine the check is about: its own platform and whether trowel runs in a container
/// (which changes the advice: there, the handlers are the node's).
#[derive(Debug, Clone)]
pub struct Machine {
    pub platform: Platform,
    /// Why trowel believes it runs in a container (see `sandbox::detect`), or `None`.
    pub container: Option<String>,
    /// Where a test program may be written and run when binfmt_misc is not visible; `None`: never.
    pub probe_dir: Option<PathBuf>,
}

impl Machine {
    pub fn current() -> Machine {
        Machine {
            platform: Platform::host(),
            container: super::detect::container_evidence(),
            probe_dir: Some(std::env::temp_dir()),
        }
    }
}

/// Why RUN steps of a platform cannot execute here. Each names the platform and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum EmulationError {
    #[error("platform {platform}: trowel runs Linux containers only, not {os}")]
    NotLinux { platform: String, os: String },
    #[error(
        "platform {platform}: unknown architecture {architecture:?} (known: {})",
        KNOWN.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
    )]
    UnknownArchitecture { platform: String, architecture: String },
    #[error(
        "platform {platform} needs emulation on this {} machine, but binfmt_misc is not mounted at {}{}: {}",
        advice.host, dir.display(), probe.as_deref().map(|p| format!(" and {p}")).unwrap_or_default(), advice.not_mounted(dir)
    )]
    NotMounted { platform: String, dir: PathBuf, probe: Option<String>, advice: Box<Advice> },
    #[error("platform {platform} needs emulation on this {} machine, but binfmt_misc is disabled ({}/status): {}", advice.host, dir.display(), advice.enable_all(dir))]
    Disabled { platform: String, dir: PathBuf, advice: Box<Advice> },
    #[error("platform {platform} needs emulation on this {} machine, and no binfmt_misc handler runs {arch} binaries (in {}): {}", advice.host, dir.display(), advice.install())]
    NoHandler { platform: String, arch: String, dir: PathBuf, advice: Box<Advice> },
    #[error("platform {platform}: the binfmt_misc handler {handler} for {arch} binaries is disabled: {}", advice.enable(handler))]
    HandlerDisabled { platform: String, handler: String, arch: String, advice: Box<Advice> },
    #[error(
        "platform {platform}: the binfmt_misc handler {handler} ({}) lacks the F (fix binary) flag (flags: {flags:?}), so it cannot work inside a build root, which has no {}: {}",
        interpreter.display(), interpreter.display(), advice.fix_binary(handler)
    )]
    NoFixBinary { platform: String, handler: String, interpreter: PathBuf, flags: String, advice: Box<Advice> },
    #[error("platform {platform}: read {}: {source}", path.display())]
    Read { platform: String, path: PathBuf, source: std::io::Error },
    #[error("platform {platform}: {}: {reason}", path.display())]
    BadEntry { platform: String, path: PathBuf, reason: String },
}

impl EmulationError {
    /// The user-facing message for a step that needs this platform: the Dockerfile location and
    /// the whole instruction first (`Dockerfile:7: RUN make: …`), then the reason and the remedy.
    pub fn for_step(&self, location: &str, instruction: &str) -> String {
        format!("{location}: {instruction}: cannot run for {self}")
    }
}

/// What to tell the user to do: on a machine, install and enable the handler; in a container,
/// the handler is the node's kernel's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// This machine's architecture (`amd64`).
    pub host: String,
    /// The architecture as `tonistiigi/binfmt --install` and Go name it (`arm64`).
    pub arch: String,
    /// The qemu handler Debian registers for it (`qemu-aarch64`).
    pub qemu: String,
    /// Why trowel believes it runs in a container, if it does.
    pub container: Option<String>,
}

impl Advice {
    fn node(&self) -> String {
        let why = self.container.as_deref().unwrap_or("a container");
        format!(
            "trowel runs in a container ({why}); binfmt_misc handlers belong to the node's kernel, as for BuildKit: \
             register them on the node, e.g. with a privileged DaemonSet running `tonistiigi/binfmt --install {}`, \
             or `apt-get install qemu-user-static binfmt-support` on a Debian node",
            self.arch
        )
    }

    fn install(&self) -> String {
        if self.container.is_some() {
            return self.node();
        }
        format!(
            "install QEMU user emulation with fix-binary handlers: `apt-get install qemu-user-static binfmt-support` \
             (Debian, Ubuntu), then `update-binfmts --enable {}`",
            self.qemu
        )
    }

    fn not_mounted(&self, dir: &Path) -> String {
        if self.container.is_some() {
            return self.node();
        }
        format!("`mount -t binfmt_misc binfmt_misc {}`, then {}", dir.display(), self.install())
    }

    fn enable_all(&self, dir: &Path) -> String {
        if self.container.is_some() {
            return self.node();
        }
        format!("`echo 1 > {}/status` (as root)", dir.display())
    }

    fn enable(&self, handler: &str) -> String {
        if self.container.is_some() {
            return self.node();
        }
        format!("`update-binfmts --enable {handler}` (as root)")
    }

    fn fix_binary(&self, handler: &str) -> String {
        let debian = "Debian's qemu-user-binfmt registers without it, qemu-user-static with it";
        if self.container.is_some() {
            return format!("{debian}; {}", self.node());
        }
        format!(
            "{debian}: `apt-get install qemu-user-static binfmt-support` (it replaces qemu-user-binfmt), or disable \
             {handler} (`update-binfmts --disable {handler}`) in favour of one with F"
        )
    }
}

/// An architecture's identity in an ELF header, with the names others know it by.
#[derive(Debug, Clone, Copy)]
struct Arch {
    /// Go's / OCI's name.
    name: &'static str,
    /// ELFCLASS32 (1) or ELFCLASS64 (2).
    class: u8,
    /// ELFDATA2LSB (1) or ELFDATA2MSB (2).
    data: u8,
    /// `e_machine`.
    machine: u16,
    /// What Debian's qemu-user-static calls its handler.
    qemu: &'static str,
}

const KNOWN: &[Arch] = &[
    Arch { name: "amd64", class: 2, data: 1, machine: 0x3e, qemu: "qemu-x86_64" },
    Arch { name: "386", class: 1, data: 1, machine: 0x03, qemu: "qemu-i386" },
    Arch { name: "arm64", class: 2, data: 1, machine: 0xb7, qemu: "qemu-aarch64" },
    Arch { name: "arm", class: 1, data: 1, machine: 0x28, qemu: "qemu-arm" },
    Arch { name: "ppc64le", class: 2, data: 1, machine: 0x15, qemu: "qemu-ppc64le" },
    Arch { name: "ppc64", class: 2, data: 2, machine: 0x15, qemu: "qemu-ppc64" },
    Arch { name: "s390x", class: 2, data: 2, machine: 0x16, qemu: "qemu-s390x" },
    Arch { name: "riscv64", class: 2, data: 1, machine: 0xf3, qemu: "qemu-riscv64" },
    Arch { name: "mips64le", class: 2, data: 1, machine: 0x08, qemu: "qemu-mips64el" },
    Arch { name: "mips64", class: 2, data: 2, machine: 0x08, qemu: "qemu-mips64" },
    Arch { name: "mipsle", class: 1, data: 1, machine: 0x08, qemu: "qemu-mipsel" },
    Arch { name: "mips", class: 1, data: 2, machine: 0x08, qemu: "qemu-mips" },
    Arch { name: "loong64", class: 2, data: 1, machine: 0x102, qemu: "qemu-loongarch64" },
];

impl Arch {
    fn find(name: &str) -> Option<Arch> {
        KNOWN.iter().copied().find(|a| a.name == name)
    }

    /// The first 64 bytes of an ELF file of this architecture with type `e_type` (2: an
    /// executable, 3: a shared object, which is what a PIE binary is).
    fn header(&self, e_type: u16) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = self.class;
        h[5] = self.data;
        h[6] = 1; // EI_VERSION
        let (t, m, v) = if self.data == 1 {
            (e_type.to_le_bytes(), self.machine.to_le_bytes(), 1u32.to_le_bytes())
        } else {
            (e_type.to_be_bytes(), self.machine.to_be_bytes(), 1u32.to_be_bytes())
        };
        h[16..18].copy_from_slice(&t);
        h[18..20].copy_from_slice(&m);
        h[20..24].copy_from_slice(&v);
        h
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = if self.class == 2 { 64 } else { 32 };
        let endian = if self.data == 1 { "little" } else { "big" };
        write!(f, "{} ({bits}-bit {endian}-endian ELF, machine {:#x})", self.name, self.machine)
    }
}

/// Checks that a platform names a Linux architecture trowel knows (Go's and OCI's names), so a
/// typo (`linux/amd65`, `linux/aarch64`) is caught before anything is pulled.
pub fn check_architecture(platform: &Platform) -> Result<(), String> {
    if platform.os != "linux" {
        return Err(format!("trowel builds Linux images only, not {}", platform.os));
    }
    if Arch::find(&platform.architecture).is_some() {
        return Ok(());
    }
    let hint = match platform.architecture.as_str() {
        "x86_64" | "x86-64" | "x64" => " (did you mean amd64?)",
        "aarch64" | "armv8" => " (did you mean arm64?)",
        "i386" | "i686" | "x86" => " (did you mean 386?)",
        "armhf" | "armv7" | "armv7l" => " (did you mean arm/v7?)",
        _ => "",
    };
    Err(format!(
        "unknown architecture {:?}{hint} (known: {})",
        platform.architecture,
        KNOWN.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
    ))
}

/// Architectures a host kernel runs without help. Conservative: an amd64 kernel runs 386
/// binaries (IA-32 emulation is on in every mainstream distribution kernel), but many arm64
/// servers cannot run 32-bit arm, so that goes through a handler.
fn runs_natively(host: &str, arch: &str) -> bool {
    host == arch || (host == "amd64" && arch == "386")
}

/// How this machine executes RUN steps of `platform`.
pub fn execution(platform: &Platform) -> Result<Execution, EmulationError> {
    execution_in(platform, &Machine::current(), Path::new(BINFMT_MISC))
}

/// [`execution`] for a given machine and binfmt_misc directory (tests use crafted ones).
pub fn execution_in(platform: &Platform, machine: &Machine, dir: &Path) -> Result<Execution, EmulationError> {
    let name = platform.to_string();
    if platform.os != "linux" {
        return Err(EmulationError::NotLinux { platform: name, os: platform.os.clone() });
    }
    let Some(arch) = Arch::find(&platform.architecture) else {
        return Err(EmulationError::UnknownArchitecture {
            platform: name,
            architecture: platform.architecture.clone(),
        });
    };
    if runs_natively(&machine.platform.architecture, arch.name) {
        return Ok(Execution::Native);
    }
    let advice = Box::new(Advice {
        host: machine.platform.architecture.clone(),
        arch: arch.name.into(),
        qemu: arch.qemu.into(),
        container: machine.container.clone(),
    });
    let status_path = dir.join("status");
    let status = match std::fs::read_to_string(&status_path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Not visible is not absent: in a pod the node's handlers work all the same.
            let probe = match &machine.probe_dir {
                Some(probe_dir) => match probe(arch.name, probe_dir) {
                    Ok(Probe::Runs) => return Ok(Execution::Probed),
                    Ok(Probe::Fails(reason)) => Some(reason),
                    Ok(Probe::Unknown) => None,
                    Err(e) => Some(format!("a test program could not be run in {}: {e}", probe_dir.display())),
                },
                None => None,
            };
            return Err(EmulationError::NotMounted { platform: name, dir: dir.into(), probe, advice });
        }
        Err(source) => return Err(EmulationError::Read { platform: name, path: status_path, source }),
    };
    if status.trim() != "enabled" {
        return Err(EmulationError::Disabled { platform: name, dir: dir.into(), advice });
    }
    let entries = read_entries(dir).map_err(|e| e.for_platform(&name))?;
    let headers = [arch.header(2), arch.header(3)];
    let matching: Vec<&Entry> = entries.iter().filter(|e| headers.iter().all(|h| e.matches(h))).collect();
    // The kernel may pick any enabled match (the most recently registered): every enabled one
    // must work inside the build root, or the answer could be false.
    if let Some(e) = matching.iter().find(|e| e.enabled && !e.flags.contains('F')) {
        return Err(EmulationError::NoFixBinary {
            platform: name,
            handler: e.name.clone(),
            interpreter: e.interpreter.clone(),
            flags: e.flags.clone(),
            advice,
        });
    }
    if let Some(e) = matching.iter().find(|e| e.enabled) {
        return Ok(Execution::Emulated { handler: e.name.clone(), interpreter: e.interpreter.clone() });
    }
    if let Some(e) = matching.first() {
        return Err(EmulationError::HandlerDisabled {
            platform: name,
            handler: e.name.clone(),
            arch: arch.to_string(),
            advice,
        });
    }
    Err(EmulationError::NoHandler { platform: name, arch: arch.to_string(), dir: dir.into(), advice })
}

/// One binfmt_misc entry of the magic kind (extension entries, such as `jar`, never match an
/// ELF binary and are skipped).
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    enabled: bool,
    interpreter: PathBuf,
    flags: String,
    offset: usize,
    magic: Vec<u8>,
    /// Absent: every bit counts.
    mask: Option<Vec<u8>>,
}

impl Entry {
    /// The kernel's test: the bytes at `offset`, masked, equal the magic.
    fn matches(&self, header: &[u8]) -> bool {
        let Some(bytes) = header.get(self.offset..self.offset + self.magic.len()) else {
            return false;
        };
        bytes.iter().enumerate().all(|(i, b)| {
            let m = self.mask.as_ref().map_or(0xff, |m| m.get(i).copied().unwrap_or(0xff));
            b & m == self.magic[i] & m
        })
    }

    /// Parses an entry file; `None` for an extension entry.
    fn parse(name: &str, text: &str) -> Result<Option<Entry>, String> {
        let mut e = Entry {
            name: name.into(),
            enabled: false,
            interpreter: PathBuf::new(),
            flags: String::new(),
            offset: 0,
            magic: Vec::new(),
            mask: None,
        };
        for line in text.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "enabled" => e.enabled = true,
                "disabled" => e.enabled = false,
                "interpreter" => e.interpreter = PathBuf::from(value),
                "flags:" => e.flags = value.trim().into(),
                "offset" => e.offset = value.trim().parse().map_err(|_| format!("bad offset {value:?}"))?,
                "magic" => e.magic = hex(value)?,
                "mask" => e.mask = Some(hex(value)?),
                "extension" => return Ok(None),
                _ => {}
            }
        }
        if e.magic.is_empty() {
            return Err("neither a magic nor an extension".into());
        }
        Ok(Some(e))
    }
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("bad hex {s:?}"));
    }
    Ok((0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0)).collect())
}

/// An error reading the directory, before the platform is attached.
enum ReadError {
    Io(PathBuf, std::io::Error),
    Bad(PathBuf, String),
}

impl ReadError {
    fn for_platform(self, platform: &str) -> EmulationError {
        match self {
            ReadError::Io(path, source) => EmulationError::Read { platform: platform.into(), path, source },
            ReadError::Bad(path, reason) => EmulationError::BadEntry { platform: platform.into(), path, reason },
        }
    }
}

/// Every magic entry in the directory, sorted by name (`status` and `register` are not entries).
fn read_entries(dir: &Path) -> Result<Vec<Entry>, ReadError> {
    let mut out = Vec::new();
    for item in std::fs::read_dir(dir).map_err(|e| ReadError::Io(dir.into(), e))? {
        let item = item.map_err(|e| ReadError::Io(dir.into(), e))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name == "status" || name == "register" {
            continue;
        }
        let path = item.path();
        let text = std::fs::read_to_string(&path).map_err(|e| ReadError::Io(path.clone(), e))?;
        if let Some(e) = Entry::parse(&name, &text).map_err(|r| ReadError::Bad(path, r))? {
            out.push(e);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
#[path = "emulation_tests.rs"]
mod tests;
