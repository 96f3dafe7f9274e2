//! Entering a rootless build's user namespace: trowel, started by an ordinary user, runs its
//! build as root of a user namespace of its own (buildah's and podman's model).
//!
//! `main()` calls [`enter`] first thing, while the process has one thread, and the process
//! itself becomes the build: it unshares a user and a mount namespace, which gives it every
//! capability in the new namespace (`user_namespaces(7)`); the maps — the user as 0, the user's
//! `/etc/subuid`/`/etc/subgid` ranges as 1.. — are written from outside by the setuid helpers
//! `newuidmap`/`newgidmap`, run at once by a child forked before the unshare
//! (`userns_map.rs`), or, with no ranges, by the process itself (a single-id map). Once they
//! are written its ids read as 0, so unpacking with owners, snapshots, and chroot isolation's
//! helper (exec'd as uid 0, so with every capability of the namespace) work as they do for
//! root; the sandbox adapts only what a user namespace refuses (see `chroot.rs`).
//!
//! The wait for the helpers is deferred for a build (`enter`'s `defer`): exec-ing two setuid
//! binaries takes ~3 ms, a tenth of a build whose every step is a cache hit, and such a build
//! needs none of what the maps give. Until they are written the process keeps its own kernel
//! uid and gid for every file access, so a file it creates is owned exactly as it would be after
//! mapping (the user, who becomes 0 of the namespace); what differs is that its ids, the owners
//! `stat` reports and `/proc/self/uid_map` read as the overflow id 65534 (the map: empty), that
//! it cannot `chown`, that its capabilities reach no file (none is owned by a mapped id yet),
//! and that a program it execs gets no capabilities. So [`mapped`] is called before the first
//! of those: by whatever makes a directory under a build's work dir (every root, copy source,
//! RUN mount and debugger shell is made in one: `BuildContext::scratch_dir`), by
//! [`effective_ids`], [`real_uid`] and [`running_as_root`] (the raw calls are refused by the
//! engine's `clippy.toml`), by [`command`], which the engine starts every program with, by what
//! reads the maps (the unpacked-layer store's name, `detect::user_namespace_mapping`) or keys
//! owners of the context (a RUN's bind mount of it; a COPY's key holds none), before a dead
//! build's directory is removed, and at the end of the build. `debug` and `cache` wait at once.
//!
//! Why in place: this used to fork, unshare in the child and re-execute trowel there, the first
//! process staying behind as a relay for signals and the exit code. The re-execution gave
//! nothing the unshare does not (the capabilities are the same full set either way: permitted,
//! effective and bounding full, inheritable and ambient empty), and cost a start of the whole
//! binary and a process in between on every build (bench/README, "Rootless vs chroot"). Now
//! signals reach the build directly and its exit status is its own. That this process entered
//! a namespace is process state ([`current_mapping`]), not an environment variable: nothing
//! trowel spawns needs it (the sandbox helper is told by its plan, `wire::ChrootPlan::userns`).

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use nix::sched::CloneFlags;

use super::idmap::{self, IdMap};
use super::rootless_error::{self, RootlessError};
use super::userns_map::{self, Helper, Mapper};

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

/// Set once by [`enter`], when the namespace is made (mapped, or its maps on the way).
static ENTERED: OnceLock<Mapping> = OnceLock::new();

/// The maps still being written when [`enter`] deferred the wait for them.
static PENDING: Mutex<Option<Pending>> = Mutex::new(None);

/// What the first [`mapped`] found, for every later call (and every thread) to share.
static READY: OnceLock<Result<(), Arc<RootlessError>>> = OnceLock::new();

/// The helpers at work on this process's maps, and what [`mapped`] needs to wait for them.
struct Pending {
    mapper: Mapper,
    helpers: [Helper; 2],
    user: String,
}

/// The mapping of the user namespace this process made with [`enter`], if it did.
pub fn current_mapping() -> Option<Mapping> {
    ENTERED.get().copied()
}

/// Who is asking for a namespace: the real user, their name, and the maps they may have.
struct Plan {
    user: String,
    uids: IdMap,
    gids: IdMap,
}

impl Plan {
    /// Read before the namespace is made: the ids are the user's own.
    #[allow(clippy::disallowed_methods)]
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

/// Makes this process root of a new user namespace (and a mount namespace whose mounts are
/// private), and returns its mapping. Must be called while the process has one thread; on
/// success every later [`current_mapping`] says so. With `defer`, a range mapping's helpers may
/// still be at work when it returns: [`mapped`] waits for them (see the module's doc for who
/// must call it); without, it returns with the maps written and checked.
pub fn enter(warn: &mut dyn FnMut(&str), defer: bool) -> Result<Mapping, RootlessError> {
    let threads =
        super::sys::thread_count().map_err(|source| RootlessError::Start { what: "count threads".into(), source })?;
    if threads != 1 {
        let source = io::Error::other(format!("{threads} threads"));
        return Err(RootlessError::Start { what: "main() must enter the namespace before any thread".into(), source });
    }
    let plan = Plan::read()?;
    let mapping = plan.mapping();
    // The helpers are found, and the child that runs them forked, while this process is still
    // in the initial namespace: from inside the new one a setuid binary is not setuid.
    let mapper = match mapping {
        Mapping::Range => {
            let helpers = [
                Helper {
                    tool: "newuidmap",
                    path: helper("newuidmap", "/etc/subuid", &plan, &plan.uids)?,
                    map: plan.uids.clone(),
                },
                Helper {
                    tool: "newgidmap",
                    path: helper("newgidmap", "/etc/subgid", &plan, &plan.gids)?,
                    map: plan.gids.clone(),
                },
            ];
            let mapper = Mapper::fork(&helpers)?;
            Some((mapper, helpers))
        }
        Mapping::Single => {
            warn(SINGLE_ID_WARNING);
            None
        }
    };
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS) {
        if let Some((mapper, _)) = mapper {
            mapper.cancel();
        }
        return Err(rootless_error::refused(e as i32));
    }
    // The helpers start at once; the rest is done while they run.
    let pending = match mapper {
        Some((mut mapper, helpers)) => {
            mapper.start();
            Some(Pending { mapper, helpers, user: plan.user })
        }
        None => {
            userns_map::write_single(plan.uids.own, plan.gids.own)?;
            None
        }
    };
    // Nothing this namespace mounts may propagate back to the host's mounts. Root of the new
    // namespace may change its mount namespace at once (it has every capability there); the
    // maps are not needed for it.
    use nix::mount::MsFlags;
    let private =
        nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>);
    if let Err(e) = private {
        if let Some(p) = pending {
            // Let the helpers finish (or fail) before the process exits with this error.
            let _ = p.mapper.map(&p.helpers, &p.user);
        }
        return Err(rootless_error::restricted(e as i32));
    }
    let _ = ENTERED.set(mapping);
    *PENDING.lock().unwrap_or_else(|e| e.into_inner()) = pending;
    if !defer {
        mapped()?;
    }
    Ok(mapping)
}

/// Waits until the maps of the namespace [`enter`] made are written and have made this process
/// 0 (at once when they are, or when it made none). Every thread may call it; the first waits,
/// and all get its result. See the module's doc for what must not happen before it.
pub fn mapped() -> Result<(), RootlessError> {
    if ENTERED.get().is_none() {
        return Ok(());
    }
    let ready = READY.get_or_init(|| {
        let pending = PENDING.lock().unwrap_or_else(|e| e.into_inner()).take();
        finish(pending).map_err(Arc::new)
    });
    ready.clone().map_err(RootlessError::Earlier)
}

/// Waits for the helpers, if they are still at work, and checks what they did.
#[allow(clippy::disallowed_methods)] // the one place the raw ids are read to see the maps work
fn finish(pending: Option<Pending>) -> Result<(), RootlessError> {
    if let Some(p) = pending {
        p.mapper.map(&p.helpers, &p.user)?;
    }
    // The maps are written: this process's ids now read as 0. Checked, not assumed, since
    // everything after (unpacking with owners, the sandbox's helper) relies on it.
    if !rustix::process::geteuid().is_root() || !rustix::process::getegid().is_root() {
        let source = io::Error::other(format!("uid_map: {:?}", std::fs::read_to_string("/proc/self/uid_map")));
        return Err(RootlessError::Start { what: "the namespace's maps did not make this process 0".into(), source });
    }
    Ok(())
}

/// This process's effective uid and gid, as the namespace it is in sees them: after [`mapped`],
/// so inside a rootless build's namespace never the overflow id its maps have not replaced yet.
#[allow(clippy::disallowed_methods)]
pub fn effective_ids() -> (u32, u32) {
    let _ = mapped();
    (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw())
}

/// This process's real uid, after [`mapped`] as [`effective_ids`].
#[allow(clippy::disallowed_methods)]
pub fn real_uid() -> u32 {
    let _ = mapped();
    rustix::process::getuid().as_raw()
}

/// A program to run, after [`mapped`]: a program exec'd before the maps are written would run
/// with no capability and read its ids as the overflow id. The engine starts every program
/// with this (`std::process::Command::new` is refused by its `clippy.toml`); a failure to map
/// is left to the first step that needs the maps, which reports it.
#[allow(clippy::disallowed_methods)]
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let _ = mapped();
    std::process::Command::new(program)
}

/// [`command`] for tokio.
#[allow(clippy::disallowed_methods)]
pub fn tokio_command(program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
    let _ = mapped();
    tokio::process::Command::new(program)
}

/// Checks that `dir` (where build roots or the cache live) can hold files owned by the
/// namespace's ids: a file system that cannot (NFS with root squashing, a FUSE mount, vfat)
/// would fail the build at its first unpack with a bare EPERM or EINVAL. Called in the
/// namespace (it waits for the maps, [`mapped`]: it chowns); `flag` is what the user changes to
/// move it.
pub fn check_dir(dir: &Path, mapping: Mapping, flag: &'static str) -> Result<(), RootlessError> {
    let probe = probe_file(dir, flag)?;
    mapped()?;
    let fs_type = || rustix::fs::statfs(dir).map(|s| fs_name(s.f_type as u64)).unwrap_or_else(|_| "unknown".into());
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

/// The half of [`check_dir`] that needs no maps, so a build can make it before anything is
/// pulled: that `dir` takes a new file at all (a read-only mount does not).
pub fn check_dir_writable(dir: &Path, flag: &'static str) -> Result<(), RootlessError> {
    probe_file(dir, flag).map(drop)
}

/// A temporary file in `dir`, removed when dropped.
fn probe_file(dir: &Path, flag: &'static str) -> Result<tempfile::NamedTempFile, RootlessError> {
    tempfile::Builder::new().prefix(".trowel-rootless-").tempfile_in(dir).map_err(|source| RootlessError::Filesystem {
        dir: dir.to_path_buf(),
        fs: rustix::fs::statfs(dir).map(|s| fs_name(s.f_type as u64)).unwrap_or_else(|_| "unknown".into()),
        what: "create a file".into(),
        flag,
        source,
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
    effective_ids().0 == 0
}
