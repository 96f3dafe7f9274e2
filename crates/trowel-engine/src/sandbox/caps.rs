//! The capabilities a RUN keeps: Docker's default set.
//!
//! RUN shares the host's network and kernel, and trowel runs as real root, so a command with
//! every capability could reconfigure the host network (`CAP_NET_ADMIN`), load kernel modules,
//! set the clock, or simply mount the host's disk. The command's bounding set is cut down to the
//! set Docker gives a container by default, which is what Dockerfiles are written against. The
//! one Docker relies on a device cgroup for, `CAP_MKNOD`, is kept (debootstrap-style builds
//! create device nodes), and made harmless instead by mounting the root `nodev`.

use std::io;

use rustix::thread::{CapabilitySet, CapabilitySets};

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
const KEEP: &[u32] = &[
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    8,  // CAP_SETPCAP
    10, // CAP_NET_BIND_SERVICE
    13, // CAP_NET_RAW
    18, // CAP_SYS_CHROOT
    27, // CAP_MKNOD
    29, // CAP_AUDIT_WRITE
    31, // CAP_SETFCAP
];

/// Used when `/proc/sys/kernel/cap_last_cap` cannot be read; unknown numbers are skipped.
const FALLBACK_LAST_CAP: u32 = 63;

fn keep_set() -> CapabilitySet {
    KEEP.iter().fold(CapabilitySet::empty(), |s, &c| s | CapabilitySet::from_bits_retain(1 << c))
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(FALLBACK_LAST_CAP)
        .min(FALLBACK_LAST_CAP)
}

/// Drops everything outside Docker's default set from the bounding, effective, permitted and
/// inheritable sets of the calling (single-threaded) process, and clears the ambient set.
/// Must run while still root: `CAP_SETPCAP` is needed for the bounding set.
pub(super) fn restrict_to_defaults() -> io::Result<()> {
    let keep = keep_set();
    for cap in 0..=last_cap() {
        if keep.contains(CapabilitySet::from_bits_retain(1 << cap)) {
            continue;
        }
        match rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(1 << cap)) {
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => {
                return Err(io::Error::new(e.kind(), format!("drop capability {cap} from the bounding set: {e}")));
            }
        }
    }
    let current = rustix::thread::capabilities(None)?;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: current.effective & keep,
            permitted: current.permitted & keep,
            // For root, execve adds the inheritable set to the new permitted set: it must be
            // empty or dropped capabilities would come back.
            inheritable: CapabilitySet::empty(),
        },
    )?;
    rustix::thread::clear_ambient_capability_set()?;
    Ok(())
}
