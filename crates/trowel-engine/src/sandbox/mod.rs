//! How RUN executes: a process inside a build root, isolated from the host.
//!
//! # Process model
//! The engine calls [`run`] from a multi-threaded process, where forking and then doing real
//! work in the child is unsafe. So `run` only spawns a fresh copy of the trowel binary
//! ([`RunSpec::helper_exe`]) with the hidden first argument `__sandbox-init`; `main()` hands such
//! a process straight to [`helper_main`]. The helper is single-threaded, so it may fork freely:
//!
//! ```text
//! trowel (engine thread)            ── spec (JSON, pipe) ─►  helper (host PID namespace)
//!   polls stdout/stderr/report  ◄── reports (JSON lines) ──     unshare(mount, PID, IPC, UTS)
//!                                                                 └─ init: PID 1 of the new namespace
//!                                                                      sets up the root, pivots into it
//!                                                                      └─ the command (setsid, caps,
//!                                                                         groups/gid/uid, chdir, execve)
//! ```
//!
//! Init reaps zombies and exits with the command's status as soon as the command exits; the
//! kernel then kills whatever the command left running in the namespace, so a daemon started by
//! one RUN never survives into the next step. Every process in the chain dies with its parent
//! (`PR_SET_PDEATHSIG`), so a timeout (or trowel dying) kills the helper and with it the whole
//! namespace.
//!
//! # Isolation
//! [`Isolation::Chroot`], the default on a workstation (details in `chroot.rs`): private mount,
//! PID, IPC and UTS namespaces, the host network, `/proc`, `/sys` (read-only), a minimal `/dev`,
//! `/etc/hosts` and `/etc/resolv.conf`, Docker's default capabilities. [`Isolation::Container`]
//! (kaniko's model) is another variant of the helper's set-up plan (`wire::Setup`), reusing the
//! helper, init and exec steps. [`Isolation::Rootless`] is chroot isolation inside a user
//! namespace: `main()` makes the process enter it first (`userns.rs`, with the maps of
//! `idmap.rs`), so the engine and this helper run as root of that namespace and change only
//! what it refuses (`/sys` bound rather than mounted; no device nodes).
//!
//! Mount points the root lacked are created before the run and removed afterwards if they are
//! still empty (see `stubs.rs`), so the snapshot that follows sees only what the command did.
//!
//! `RUN --mount`s ([`Mount`]) are mounted inside the command's mount namespace in chroot
//! isolation (`mounts.rs`) and vanish with it; container isolation, which has no mount syscall,
//! puts them in place before the command and takes them away after it (`placed.rs`). Either
//! way the root is as it was when [`run`] returns: only the command's own writes beside the
//! mount targets remain.

mod caps;
mod chroot;
pub mod detect;
pub mod emulation;
mod emulation_probe;
mod error;
mod etc_files;
mod exec;
mod heap;
mod helper;
pub mod idmap;
mod init;
mod launch;
mod mounts;
mod placed;
mod placed_limits;
mod probe;
mod pty;
mod rootless_error;
mod stop;
mod stubs;
mod sys;
mod template;
mod tether;
mod user;
pub mod userns;
mod userns_map;
mod wire;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::SandboxError;
pub use heap::give_big_buffers_back;
pub use helper::helper_main;
pub use launch::run;
pub use mounts::{HostUse, Mount, MountSource, Network, Sensitive};
pub use probe::{ChrootProbe, choose_in_container, hint as chroot_hint, probe_chroot};
pub use pty::check_terminal_in_container;
pub use rootless_error::RootlessError;
pub use stop::{GRACE as STOP_GRACE, Stop};
pub(crate) use tether::die_with_parent;
pub use user::{FileOwner, ResolvedUser, UserIds, file_owner, resolve_user};

/// Makes, on a thread of its own, what chroot isolation's first RUN would otherwise make itself
/// (the template mount namespace, `template.rs`): called when a build starts.
pub fn prepare(isolation: Isolation, helper_exe: &std::path::Path) {
    if isolation != Isolation::Chroot {
        return;
    }
    let helper = helper_exe.to_path_buf();
    // No thread to be had: the first RUN makes it.
    let _ = std::thread::Builder::new().name("sandbox-template".into()).spawn(move || {
        template::get(&helper);
    });
}

/// Lets go of what [`prepare`] made, when a build has no RUN left: its teardown then overlaps
/// the push instead of trowel's exit.
pub fn release() {
    template::release();
}

/// The first argument that makes the trowel binary act as the sandbox helper.
pub const HELPER_ARG: &str = "__sandbox-init";

/// How a RUN is isolated from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Isolation {
    /// Private mount, PID, IPC and UTS namespaces; the build root becomes `/` (via
    /// `pivot_root`), with `/proc`, `/sys`, a minimal `/dev`, `/etc/hosts` and
    /// `/etc/resolv.conf` provided. The network is the host's.
    Chroot,
    /// kaniko's model, for unprivileged pods: the build root is `/` of the disposable container
    /// trowel runs in, and the command runs directly in it — no namespaces, no mounts, no
    /// capability changes (the container already confines it). Only the capabilities a pod
    /// grants are needed (CHOWN, DAC_OVERRIDE, FOWNER, SETFCAP, SETGID, SETUID). Processes the
    /// command leaves behind are killed when it exits (the helper is their subreaper).
    Container,
    /// An ordinary user's build: trowel runs as root of a user namespace of its own
    /// (`userns.rs`: the user as 0, the user's `/etc/subuid` range as 1..), and RUN is isolated
    /// as in [`Isolation::Chroot`] within it, `/sys` bound from the host instead of mounted.
    Rootless,
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolation::Chroot => "chroot",
            Isolation::Container => "container",
            Isolation::Rootless => "rootless",
        })
    }
}

/// Where the command's standard streams go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StdioMode {
    /// stdin is `/dev/null`; stdout and stderr are pipes streamed to the `on_output` callback.
    Piped,
    /// The command uses trowel's own stdin/stdout/stderr (an interactive shell at a debugger
    /// pause). When stdin is a terminal, the command gets its own pseudo-terminal inside the
    /// sandbox as controlling terminal, relayed to and from trowel's terminal (put in raw mode
    /// meanwhile; window-size changes are forwarded), so `^C`, `^Z` and job control act inside
    /// the sandbox and the command can never reach trowel's terminal itself. The caller must
    /// not read or draw on the terminal while [`run`] is in progress. `on_output` is not called.
    Inherit,
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One command to run inside a build root.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The build root on the host (the image's unpacked filesystem).
    pub root: PathBuf,
    /// The command; `argv[0]` without a `/` is looked up in the `PATH` of `env` (or the
    /// default `PATH` when `env` has none) inside the root, as the target user.
    pub argv: Vec<String>,
    /// The command's complete environment, exactly (nothing is added).
    pub env: Vec<(String, String)>,
    /// The working directory inside the root; it must exist.
    pub cwd: String,
    pub user: UserIds,
    pub hostname: String,
    pub isolation: Isolation,
    pub stdio: StdioMode,
    /// Kill everything and report [`RunOutcome::timed_out`] after this long.
    pub timeout: Option<Duration>,
    /// The trowel binary to re-execute as helper: `/proc/self/exe` normally; tests pass
    /// `env!("CARGO_BIN_EXE_trowel")`.
    pub helper_exe: PathBuf,
    /// Extra `/etc/hosts` entries as `(name, ip)` (`--add-host name:ip`).
    pub extra_hosts: Vec<(String, String)>,
    /// `RUN --mount`s.
    pub mounts: Vec<Mount>,
    /// `RUN --network`.
    pub network: Network,
    /// `RUN --security=insecure`: in chroot isolation the command keeps every capability and
    /// sees `/proc` and `/sys` unmasked and writable; container isolation has nothing more to
    /// give than the pod's own capabilities.
    pub privileged: bool,
    /// A directory of trowel's own, outside the root's snapshots: container isolation puts
    /// there what a mount target hides while the command runs (beside the target otherwise).
    pub work_dir: Option<PathBuf>,
    /// Asked from another thread, stops the command's whole process tree (SIGTERM, then
    /// SIGKILL after [`STOP_GRACE`]); the run then ends as a killed command would
    /// ([`RunOutcome::timed_out`] is set when no exit status arrived).
    pub stop: Option<Stop>,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// The exit status, or 128 + the signal number when the command was killed by a signal
    /// (137 after a timeout).
    pub exit_code: i32,
    /// The run was killed because [`RunSpec::timeout`] elapsed (or [`RunSpec::stop`] was
    /// asked for and the command had to be killed).
    pub timed_out: bool,
}

impl RunOutcome {
    pub fn success(&self) -> bool {
        self.exit_code == 0 && !self.timed_out
    }
}

/// The usual [`RunSpec::helper_exe`]: the running trowel binary.
pub const DEFAULT_HELPER: &str = "/proc/self/exe";

/// The default `PATH` for looking up `argv[0]` when the environment has none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
