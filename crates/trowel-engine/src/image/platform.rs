//! Platforms as a person writes them (`--platform`, `--custom-platform`, `FROM --platform`
//! once expanded, annotations' `[platform]`): parsed and normalised as containerd's
//! `platforms.Parse` and `platforms.Normalize` do (what BuildKit accepts: one word for a known
//! OS or architecture, any case, aliases such as `x86_64` and `armhf`), and refused when the OS
//! or the architecture is not one Go and the OCI spec know — a typo (`linux/amd46`) must not
//! become a pull that finds nothing, nor an image nobody can run. [`Platform::parse`] is the one
//! entry point, so a platform means the same wherever it is written: a base picked for
//! `linux/x86_64` is also run as `linux/amd64`.
//!
//! Platforms read from registries are not checked here: an index may list whatever it likes,
//! and [`Platform::parse_exact`] keeps them as they are.

use crate::dockerfile::checks::suggest::closest;
use crate::image::manifest::Platform;

/// The operating systems containerd knows (Go's GOOS list, which the OCI image spec refers to).
pub(crate) const KNOWN_OS: [&str; 17] = [
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];
/// The architectures containerd knows (Go's GOARCH list).
pub(crate) const KNOWN_ARCH: [&str; 24] = [
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

/// containerd's architecture aliases.
pub(crate) fn normalize_arch(a: &str) -> String {
    match a {
        "i386" => "386",
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "armhf" | "armel" => "arm",
        other => other,
    }
    .to_string()
}

/// containerd's `normalizeOS`: any case, `macos` is `darwin`.
fn normalize_os(os: &str) -> String {
    match os.to_lowercase().as_str() {
        "macos" => "darwin".to_string(),
        os => os.to_string(),
    }
}

/// containerd's `platforms.Normalize` (`normalizeArch`): aliases, and default variants made
/// explicit or dropped. The aliases decide the variant (`armel` is `arm/v6` whatever follows),
/// as in containerd.
pub(crate) fn normalize(p: &Platform) -> Platform {
    let arch = p.architecture.to_lowercase();
    let variant = p.variant.as_deref().map(str::to_lowercase).filter(|v| !v.is_empty());
    let architecture = normalize_arch(&arch);
    let variant = match (arch.as_str(), variant.as_deref()) {
        ("i386", _) => None,
        ("armhf", _) => Some("v7".to_string()),
        ("armel", _) => Some("v6".to_string()),
        ("x86_64" | "x86-64" | "amd64", Some("v1")) => None,
        ("aarch64" | "arm64", Some("8" | "v8" | "v8.0")) => None,
        ("aarch64" | "arm64", Some("9" | "9.0" | "v9.0")) => Some("v9".to_string()),
        ("arm", None | Some("7")) => Some("v7".to_string()),
        ("arm", Some(v @ ("5" | "6" | "8"))) => Some(format!("v{v}")),
        (_, v) => v.map(str::to_string),
    };
    Platform { os: normalize_os(&p.os), architecture, os_version: p.os_version.clone(), variant }
}

/// Parses a requested platform (see [`Platform::parse`]): `os/arch[/variant]`; one word, a
/// known OS (with the host's architecture) or else a known architecture (for Linux, the OS
/// trowel builds for), as containerd's `platforms.Parse` reads it; with containerd's aliases
/// (`x86_64` is `amd64`, `aarch64` is `arm64`, `armhf` is `arm/v7`, `armel` is `arm/v6`, `i386`
/// is `386`, `macos` is `darwin`) and default variants (`arm` is `arm/v7`; `arm64/v8` is
/// `arm64`, as containerd normalises it).
pub(crate) fn parse(text: &str) -> Result<Platform, String> {
    let lower = text.trim().to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
        return Err(format!("invalid platform {text:?}: expected os/arch[/variant], e.g. linux/arm64"));
    }
    let host = Platform::host().normalized();
    let (os, arch, variant) = match parts.as_slice() {
        [os] if KNOWN_OS.contains(&normalize_os(os).as_str()) => {
            (normalize_os(os), host.architecture.clone(), host.variant.clone())
        }
        [arch] => ("linux".to_string(), arch.to_string(), None),
        [os, arch] => (normalize_os(os), arch.to_string(), None),
        [os, arch, variant] => (normalize_os(os), arch.to_string(), Some(variant.to_string())),
        _ => unreachable!("one to three parts"),
    };
    let os = os.as_str();
    if !KNOWN_OS.contains(&os) {
        let hint = closest(os, KNOWN_OS).map(|c| format!(" (did you mean {c}?)")).unwrap_or_default();
        return Err(format!("invalid platform {text:?}: unknown operating system {os:?}{hint}"));
    }
    let p = normalize(&Platform { os: os.into(), architecture: arch, os_version: None, variant });
    if !KNOWN_ARCH.contains(&p.architecture.as_str()) {
        let hint = closest(&p.architecture, KNOWN_ARCH).map(|c| format!(" (did you mean {c}?)")).unwrap_or_default();
        return Err(format!("invalid platform {text:?}: unknown architecture {:?}{hint}", p.architecture));
    }
    if p.architecture == "arm" && !matches!(p.variant.as_deref(), Some("v5" | "v6" | "v7" | "v8")) {
        let v = p.variant.as_deref().unwrap_or_default();
        return Err(format!("invalid platform {text:?}: arm has no variant {v:?} (v5 to v8)"));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        parse(s).unwrap().to_string()
    }

    #[test]
    fn aliases_and_default_variants_are_containerds() {
        assert_eq!(ok("linux/amd64"), "linux/amd64");
        assert_eq!(ok("linux/x86_64"), "linux/amd64");
        assert_eq!(ok("Linux/AArch64"), "linux/arm64");
        assert_eq!(ok("linux/arm64/v8"), "linux/arm64");
        assert_eq!(ok("linux/arm"), "linux/arm/v7");
        assert_eq!(ok("linux/armhf"), "linux/arm/v7");
        assert_eq!(ok("linux/arm/v6"), "linux/arm/v6");
        assert_eq!(ok("arm64"), "linux/arm64");
        assert_eq!(ok("linux/riscv64"), "linux/riscv64");
        assert_eq!(ok("linux/armel/v7"), "linux/arm/v6");
        assert_eq!(ok("linux/arm64/9.0"), "linux/arm64/v9");
        assert_eq!(ok("linux/amd64/v1"), "linux/amd64");
        assert_eq!(ok("LINUX/ARM64"), "linux/arm64");
        assert_eq!(ok("linux/i386"), "linux/386");
        assert_eq!(ok("AMD64"), "linux/amd64");
        assert_eq!(ok("armhf"), "linux/arm/v7");
        // One known OS: the host's architecture, as containerd picks `runtime.GOARCH`.
        assert_eq!(parse("linux").unwrap(), Platform::host().normalized());
        assert_eq!(ok("windows"), format!("windows/{}", Platform::host().normalized().architecture));
    }

    #[test]
    fn typos_are_refused_with_a_suggestion() {
        let e = parse("linux/amd46").unwrap_err();
        assert_eq!(e, r#"invalid platform "linux/amd46": unknown architecture "amd46" (did you mean amd64?)"#);
        let e = parse("lnux/arm64").unwrap_err();
        assert!(e.contains(r#"unknown operating system "lnux" (did you mean linux?)"#), "{e}");
        assert!(parse("linux/arm/v9").unwrap_err().contains("no variant"));
        assert!(parse("linux//arm64").unwrap_err().contains("expected os/arch"));
        assert!(parse("linux/arm64/v8/x").is_err());
    }
}
