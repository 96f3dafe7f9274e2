//! Entering a rootless build's user namespace: trowel, started by an ordinary user, runs its
//! build as root of a user namespace of its own (buildah's `unshare` and podman's model).
//!
//! `main()` calls [`reexec`] first thing, while the process has one thread. It forks; the child
//! unshares a user and a mount namespace and says so on a pipe; the parent (still in the
//! initial namespace, as the kernel requires of whoever writes the maps of a namespace it
//! does not own) maps the user to 0 and the user's `/etc/subuid`/`/etc/subgid` ranges to 1.. with
//! the setuid helpers `newuidmap`/`newgidmap`, or — with no ranges — writes the single-id map
//! itself; then it lets the child go on. The child makes its mounts private and re-executes
//! trowel with the same arguments and [`MARKER`] set. That trowel is uid 0 with every capability
//! over its namespace, so unpacking with owners, snapshots, and chroot isolation's helper work
//! as they do for root; the sandbox adapts only what a user namespace refuses (see `chroot.rs`).
//!
//! The parent stays behind as a relay: it forwards termination signals to the child and exits
//! with the child's status, so to a CI runner or a shell the build is one process as before.
//!
//! Why a re-exec rather than unsharing in place: the user namespace must be entered by a
//! single-threaded process, and mapping needs a second process outside it; after `execve` the
//! child starts clean as root of the namespace (capabilities are computed at exec for uid 0).

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sched::CloneFlags;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::idmap::{self, IdMap, Namespace};
use super::rootless_error::{self, RootlessError};

/// Set in the re-executed trowel's environment: `range` (ids 0..N) or `single` (only 0).
pub const MARKER: &str = "_TROWEL_ROOTLESS_NS";

/// What the user namespace trowel runs in maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// The user's subordinate ranges: files may have any owner an image gives them.
    Range,
    /// Only the user, as 0: ownership by anyone else cannot be represented.
    Single,
}

/// The warning printed once when a build runs with the single-id mapping.
pub const SINGLE_ID_WARNING: &str = "rootless isolation with a single id: no range for this user in /etc/subuid and \
/etc/subgid, so the build's user namespace has only uid and gid 0. Files an image gives other owners are unpacked \
owned by 0; chown (and RUN as a USER other than root, useradd's files, COPY --chown to another id) fails; apt's \
sandbox user _apt cannot be used (set APT::Sandbox::User \"root\" or add a range: usermod --add-subuids \
100000-165535 --add-subgids 100000-165535 <user>). See README, \"Rootless\".";

/// The mapping of the namespace this process runs in, when it is one [`reexec`] made.
pub fn current_mapping() -> Option<Mapping> {
    let marker = std::env::var(MARKER).ok()?;
    // The variable alone proves nothing (anyone can set it): the process must really be root of
    // a namespace that is not the initial one.
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    match idmap::current().ok()? {
        Namespace::Initial => None,
        Namespace::Mapped { uids: 1 } => Some(Mapping::Single),
        Namespace::Mapped { .. } if marker == "range" => Some(Mapping::Range),
        Namespace::Mapped { .. } => Some(Mapping::Single),
    }
}

/// Who is asking for a namespace: the real user, their name, and the maps they may have.
struct Plan {
    user: String,
    uids: IdMap,
    gids: IdMap,
}

impl Plan {
    fn read() -> Result<Plan, RootlessError> {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        // An image with no /etc/passwd (trowel's own, in a pod) has no names: ranges are then
        // looked up by uid, as newuidmap does.
        let name = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(user) => user.map(|u| u.name),
            Err(nix::errno::Errno::ENOENT) => None,
            Err(e) => return Err(RootlessError::Read { path: "/etc/passwd".into(), source: e.into() }),
        };
        let read = |file: &str, id: u32| {
            idmap::ranges_in(Path::new(file), name.as_deref(), id)
                .map_err(|source| RootlessError::Read { path: file.into(), source })
        };
        let mut uids = IdMap { own: uid, ranges: read("/etc/subuid", uid)? };
        // /etc/subgid is keyed by the user too, not by a group.
        let mut gids = IdMap { own: gid, ranges: read("/etc/subgid", uid)? };
        // A range for one kind only would give a namespace where files can be owned by user 100
        // but not group 100: that is the single-id case, with its warning, not a half mapping.
        if uids.ranges.is_empty() || gids.ranges.is_empty() {
            uids.ranges.clear();
            gids.ranges.clear();
        }
        Ok(Plan { user: name.unwrap_or_else(|| uid.to_string()), uids, gids })
    }

    fn mapping(&self) -> Mapping {
        if self.uids.ranges.is_empty() { Mapping::Single } else { Mapping::Range }
    }
}

/// The setuid helpers, found before anything is forked so their absence is said plainly.
fn helper(tool: &'static str, file: &'static str, plan: &Plan, map: &IdMap) -> Result<PathBuf, RootlessError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file());
    let Some(found) = found else {
        let ranges = map.ranges.iter().map(|r| format!("{}-{}", r.start, u64::from(r.start) + u64::from(r.count) - 1));
        return Err(RootlessError::HelperMissing {
            tool,
            file,
            user: plan.user.clone(),
            ranges: ranges.collect::<Vec<_>>().join(", "),
        });
    };
    let meta = std::fs::metadata(&found).map_err(|source| RootlessError::Read { path: found.clone(), source })?;
    let setuid_root = meta.uid() == 0 && meta.permissions().mode() & 0o4000 != 0;
    let has_caps = rustix::fs::getxattr(&found, "security.capability", &mut [0u8; 64]).is_ok();
    if !setuid_root && !has_caps {
        return Err(RootlessError::HelperFailed {
            tool,
            path: found,
            user: plan.user.clone(),
            reason: "it is neither setuid root nor has file capabilities, so it may not write another \
                     process's map; reinstall it (apt-get install --reinstall uidmap) or give it the capability: \
                     setcap cap_setuid+ep (cap_setgid+ep for newgidmap)"
                .into(),
        });
    }
    Ok(found)
}

/// The child being relayed to, for the signal handler.
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let child = CHILD.load(Ordering::Relaxed);
    if child > 0 {
        // SAFETY: kill(2) is async-signal-safe; the pid is our unreaped child, so it cannot
        // have been reused.
        unsafe { libc::kill(child, sig) };
    }
}

/// What the child tells the parent on the pipe: a stage and an errno (0: done). After the
/// maps, only failures are told: end of file means the exec succeeded.
const STAGE_UNSHARE: u8 = 1;
const STAGE_PRIVATE: u8 = 2;
const STAGE_EXEC: u8 = 3;

/// Re-executes trowel as root of a new user namespace and waits for it; returns its exit code
/// (128 + the signal when it was killed). Must be called while the process has one thread.
pub fn reexec(warn: &mut dyn FnMut(&str)) -> Result<i32, RootlessError> {
    let threads =
        super::sys::thread_count().map_err(|source| RootlessError::Start { what: "count threads".into(), source })?;
    if threads != 1 {
        let source = io::Error::other(format!("{threads} threads"));
        return Err(RootlessError::Start { what: "main() must enter the namespace before any thread".into(), source });
    }
    let plan = Plan::read()?;
    let tools = match plan.mapping() {
        Mapping::Range => Some((
            helper("newuidmap", "/etc/subuid", &plan, &plan.uids)?,
            helper("newgidmap", "/etc/subgid", &plan, &plan.gids)?,
        )),
        Mapping::Single => {
            warn(SINGLE_ID_WARNING);
            None
        }
    };
    let start = |what: &str| {
        let what = what.to_string();
        move |e: rustix::io::Errno| RootlessError::Start { what, source: e.into() }
    };
    let (status_r, status_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(start("pipe"))?;
    let (go_r, go_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(start("pipe"))?;
    let parent = rustix::process::getpid();
    // SAFETY: the process is single-threaded (checked above), so the child may run any code.
    match unsafe { nix::unistd::fork() }.map_err(|e| RootlessError::Start { what: "fork".into(), source: e.into() })? {
        ForkResult::Child => {
            drop(status_r);
            drop(go_w);
            child(status_w, go_r, parent.as_raw_nonzero().get(), plan.mapping())
        }
        ForkResult::Parent { child } => {
            drop(status_w);
            drop(go_r);
            let relay = Relay { child };
            relay.map(&plan, tools, status_r, go_w)
        }
    }
}

/// The parent's half.
struct Relay {
    child: Pid,
}

impl Relay {
    fn map(
        self,
        plan: &Plan,
        tools: Option<(PathBuf, PathBuf)>,
        status: OwnedFd,
        go: OwnedFd,
    ) -> Result<i32, RootlessError> {
        let mut status = std::fs::File::from(status);
        let mut go = std::fs::File::from(go);
        let result = (|| {
            match read_status(&mut status)? {
                Some((STAGE_UNSHARE, 0)) => {}
                Some((stage, errno)) => return Err(self.failed(stage, errno)),
                None => {
                    let source = io::Error::from(io::ErrorKind::UnexpectedEof);
                    return Err(RootlessError::Start { what: "the child ended before unsharing".into(), source });
                }
            }
            // The child has unshared: now (and only from outside it) its maps can be written.
            let pid = self.child.as_raw();
            match &tools {
                Some((newuidmap, newgidmap)) => {
                    run_helper("newuidmap", newuidmap, pid, &plan.uids, &plan.user)?;
                    run_helper("newgidmap", newgidmap, pid, &plan.gids, &plan.user)?;
                }
                None => write_single(pid, plan)?,
            }
            go.write_all(&[0]).map_err(|source| RootlessError::Start { what: "signal the child".into(), source })?;
            // End of file: the child's exec succeeded (the pipe is close-on-exec).
            if let Some((stage, errno)) = read_status(&mut status)? {
                return Err(self.failed(stage, errno));
            }
            Ok(())
        })();
        if let Err(e) = result {
            // The child waits for `go` or exits on its own after a failure; either way it must
            // not be left behind.
            drop(go);
            let _ = nix::sys::signal::kill(self.child, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(self.child, None);
            return Err(e);
        }
        drop(go);
        self.relay()
    }

    fn failed(&self, stage: u8, errno: i32) -> RootlessError {
        match stage {
            STAGE_UNSHARE => rootless_error::refused(errno),
            STAGE_PRIVATE => rootless_error::restricted(errno),
            _ => RootlessError::Start {
                what: "re-execute trowel in the user namespace".into(),
                source: io::Error::from_raw_os_error(errno),
            },
        }
    }

    /// Forwards termination signals and waits for the child.
    fn relay(self) -> Result<i32, RootlessError> {
        CHILD.store(self.child.as_raw(), Ordering::Relaxed);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            // SAFETY: `forward` only loads an atomic and calls kill(2), both async-signal-safe;
            // SA_RESTART keeps waitpid below from failing with EINTR more than it must.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = forward as extern "C" fn(libc::c_int) as libc::sighandler_t;
                act.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut act.sa_mask);
                libc::sigaction(sig, &act, std::ptr::null_mut());
            }
        }
        loop {
            match waitpid(self.child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    return Err(RootlessError::Start { what: "wait for the build".into(), source: e.into() });
                }
            }
        }
    }
}

/// One `(stage, errno)` message, or `None` at end of file.
fn read_status(f: &mut std::fs::File) -> Result<Option<(u8, i32)>, RootlessError> {
    let mut buf = [0u8; 5];
    match f.read_exact(&mut buf) {
        Ok(()) => Ok(Some((buf[0], i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]])))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(source) => Err(RootlessError::Start { what: "read the child's status".into(), source }),
    }
}

fn run_helper(tool: &'static str, path: &Path, pid: i32, map: &IdMap, user: &str) -> Result<(), RootlessError> {
    let out = std::process::Command::new(path)
        .arg(pid.to_string())
        .args(map.helper_args())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| RootlessError::Start { what: format!("run {}", path.display()), source })?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(RootlessError::HelperFailed {
        tool,
        path: path.to_path_buf(),
        user: user.to_string(),
        reason: format!(
            "it exited with {} ({}); check that the ranges in /etc/subuid and /etc/subgid belong to {user} and do \
             not overlap another user's, and that {} is setuid root",
            out.status,
            if said.is_empty() { "no message" } else { said.as_str() },
            path.display()
        ),
    })
}

/// The single-id map, written by the parent itself: an unprivileged process may map its own
/// uid and gid into a namespace it created, once `setgroups` is denied there.
fn write_single(pid: i32, plan: &Plan) -> Result<(), RootlessError> {
    let write = |file: &str, text: String| {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, text).map_err(|source| RootlessError::Read { path, source })
    };
    write("uid_map", format!("0 {} 1\n", plan.uids.own))?;
    write("setgroups", "deny\n".into())?;
    write("gid_map", format!("0 {} 1\n", plan.gids.own))
}

/// The child's half: unshare, wait for the maps, make mounts private, re-execute. Never returns.
fn child(status: OwnedFd, go: OwnedFd, parent: i32, mapping: Mapping) -> ! {
    let tell = |stage: u8, errno: i32| {
        let mut msg = [stage, 0, 0, 0, 0];
        msg[1..].copy_from_slice(&errno.to_le_bytes());
        let _ = rustix::io::write(status.as_fd(), &msg);
    };
    // The child must not outlive the relay (a killed CI job must not leave a build running).
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get()) != Some(parent) {
        std::process::exit(125);
    }
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS) {
        tell(STAGE_UNSHARE, e as i32);
        std::process::exit(125);
    }
    tell(STAGE_UNSHARE, 0);
    let mut byte = [1u8];
    if rustix::io::read(go.as_fd(), &mut byte) != Ok(1) || byte[0] != 0 {
        std::process::exit(125);
    }
    drop(go);
    // Nothing this namespace mounts may propagate back to the host's mounts.
    use nix::mount::MsFlags;
    if let Err(e) =
        nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
    {
        tell(STAGE_PRIVATE, e as i32);
        std::process::exit(125);
    }
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(argv0)
        .args(args)
        .env(MARKER, if mapping == Mapping::Range { "range" } else { "single" })
        .exec();
    tell(STAGE_EXEC, err.raw_os_error().unwrap_or(libc::EIO));
    std::process::exit(125)
}

/// Checks that `dir` (where build roots or the cache live) can hold files owned by the
/// namespace's ids: a file system that cannot (NFS with root squashing, a FUSE mount, vfat)
/// would fail the build at its first unpack with a bare EPERM or EINVAL. Called in the
/// namespace; `flag` is what the user changes to move it.
pub fn check_dir(dir: &Path, mapping: Mapping, flag: &'static str) -> Result<(), RootlessError> {
    let fs_type = || rustix::fs::statfs(dir).map(|s| fs_name(s.f_type as u64)).unwrap_or_else(|_| "unknown".into());
    let probe = tempfile::Builder::new().prefix(".trowel-rootless-").tempfile_in(dir).map_err(|source| {
        RootlessError::Filesystem { dir: dir.to_path_buf(), fs: fs_type(), what: "create a file".into(), flag, source }
    })?;
    let id = if mapping == Mapping::Range { 1 } else { 0 };
    rustix::fs::fchown(probe.as_file(), Some(rustix::fs::Uid::from_raw(id)), Some(rustix::fs::Gid::from_raw(id)))
        .map_err(|e| RootlessError::Filesystem {
            dir: dir.to_path_buf(),
            fs: fs_type(),
            what: format!("chown to {id}:{id}"),
            flag,
            source: e.into(),
        })
}

/// A file system's name from its `statfs` magic, for messages.
fn fs_name(magic: u64) -> String {
    let name = match magic {
        0xef53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794c_7630 => "overlay",
        0x6969 => "NFS",
        0xff53_4d42 => "CIFS",
        0x6573_5546 => "FUSE",
        0x4d44 => "FAT",
        0x2fc1_2fc1 => "ZFS",
        _ => return format!("type {magic:#x}"),
    };
    name.to_string()
}

/// Whether the process's effective uid is 0 (of whatever namespace it is in).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}
