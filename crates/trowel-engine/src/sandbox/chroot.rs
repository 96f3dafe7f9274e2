//! The `chroot` isolation: turning init's fresh mount namespace into the command's world.
//!
//! Runs in init (PID 1 of the new PID namespace, single-threaded, still real root with every
//! capability) after the helper made all mounts private, so nothing here is visible on the host
//! and all of it disappears with the namespace.
//!
//! The root is entered with `pivot_root`, not `chroot`: afterwards the host's filesystem is
//! detached from the namespace entirely, so no `..`, no leftover descriptor and no
//! chroot-in-chroot trick can reach it, and every path below (mount targets included) is
//! resolved by the kernel inside the root, whatever symlinks the image contains. Only when
//! `pivot_root` is impossible (the host root is an initramfs) does it fall back to moving the
//! root over `/` and `chroot`. Host device nodes are captured as detached mount clones
//! (`open_tree`) before the pivot and attached inside afterwards.
//!
//! That is the general way in. In the initial user namespace a RUN's namespace is instead a
//! copy of a template that holds nothing of the host (`template.rs`): the root, device nodes
//! and `RUN --mount` sources are cloned by the helper before it moves there
//! ([`take_outside`]), and init attaches the root and enters it with `chroot`
//! ([`enter_from_template`]), sparing the unmount that detaching the host takes. Everything
//! mounted inside the root is the same either way.
//!
//! Rootless isolation runs this same code as root of a user namespace (`userns.rs`). What the
//! kernel refuses there is not needed: `/dev` holds bind mounts of the host's nodes, never
//! `mknod`s; the one mount it refuses, sysfs, is replaced by a read-only bind of the host's
//! `/sys`. Device nodes a layer or a RUN would create cannot exist (no `CAP_MKNOD` over the
//! host's devices): see `unpack_options` in `engine/root.rs`.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, symlink};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use rustix::fs::{CWD, StatVfsMountFlags};
use rustix::mount::{MoveMountFlags, OpenTreeFlags};

use super::helper::{Context, Failure, Step};
use super::mounts;
use super::wire::{ChrootPlan, EtcFile};

/// Host device nodes bind-mounted into the sandbox's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// `/dev` symlinks every Linux userland expects.
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// `/proc` entries that would let root in the sandbox change the host kernel: made read-only
/// (Docker's list).
const PROC_READONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Entries that leak host kernel state: hidden (Docker's list).
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

fn flags_nosuid_nodev_noexec() -> MsFlags {
    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
}

/// Sets up the namespace and makes `root` the process's `/`.
pub(super) fn enter(root: &Path, plan: &ChrootPlan) -> Step<()> {
    nix::unistd::sethostname(&plan.hostname).context(|| format!("set hostname {:?}", plan.hostname))?;
    let devices = clone_host_devices()?;
    // Root of a user namespace may not mount sysfs (it belongs to the host's network
    // namespace): the host's is cloned now, while reachable, and bound read-only below.
    let host_sys = if plan.sys && plan.userns { clone_host_sys()? } else { None };
    // RUN --mount sources are host paths: detached while the host is still reachable.
    let order = mounts::in_order(&plan.mounts);
    let detached = mounts::detach(&order)?;

    mount(Some(root), root, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .context(|| format!("bind-mount the build root {}", root.display()))?;
    // Device nodes anywhere in the root (from layers, or made by a RUN with CAP_MKNOD) must
    // not open host devices; /dev gets its own mounts below. A bind remount resets the flags
    // it is not given, so the ones the root already has are carried over.
    let current = rustix::fs::statvfs(root).context(|| format!("statvfs {}", root.display()))?.f_flag;
    mount(
        None::<&str>,
        root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV | preserved_flags(current),
        None::<&str>,
    )
    .context(|| format!("remount the build root {} nodev", root.display()))?;

    mount_proc_in(root, plan.userns)?;
    pivot_into(root)?;
    mount_dev(devices)?;
    harden_proc(plan.privileged)?;
    match host_sys {
        Some(sys) => bind_sys(sys, plan.privileged)?,
        None if plan.sys => mount_sys(plan.privileged)?,
        None => {}
    }
    for file in &plan.files {
        bind_generated(file)?;
    }
    mounts::attach(&order, detached)
}

/// What the fast entry (`template.rs`) takes from the host before leaving its mount namespace
/// for a copy of the template: the root, the device nodes and `RUN --mount` sources, detached.
pub(super) struct Outside {
    root: OwnedFd,
    devices: Vec<(&'static str, OwnedFd)>,
    detached: Vec<Option<OwnedFd>>,
}

/// Run by the helper in the host's mount namespace, before it moves to the template's copy.
pub(super) fn take_outside(root: &Path, plan: &ChrootPlan) -> Step<Outside> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_RECURSIVE;
    let tree =
        rustix::mount::open_tree(CWD, root, flags).context(|| format!("clone the build root {}", root.display()))?;
    let devices = clone_host_devices()?;
    let detached = mounts::detach(&mounts::in_order(&plan.mounts))?;
    Ok(Outside { root: tree, devices, detached })
}

/// The fast entry, in init: the root attached at the template's `/r` and entered with `chroot`
/// (nothing of the host is in this namespace, so nothing needs unmounting), then everything
/// `enter` mounts, the same way.
pub(super) fn enter_from_template(outside: Outside, plan: &ChrootPlan) -> Step<()> {
    use super::template::ROOT_DIR;
    nix::unistd::sethostname(&plan.hostname).context(|| format!("set hostname {:?}", plan.hostname))?;
    // This process is in the new PID namespace, so the proc made here is that namespace's.
    let proc = rustix::mount::fsopen("proc", rustix::mount::FsOpenFlags::FSOPEN_CLOEXEC)
        .and_then(|fs| {
            rustix::mount::fsconfig_create(&fs)?;
            let attrs = rustix::mount::MountAttrFlags::MOUNT_ATTR_NOSUID
                | rustix::mount::MountAttrFlags::MOUNT_ATTR_NODEV
                | rustix::mount::MountAttrFlags::MOUNT_ATTR_NOEXEC;
            rustix::mount::fsmount(&fs, rustix::mount::FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        })
        .context(|| "make a proc for the sandbox".into())?;
    rustix::mount::move_mount(&outside.root, "", CWD, ROOT_DIR, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .context(|| "attach the build root".into())?;
    // As in `enter`: device nodes in the root must not open host devices.
    let current = rustix::fs::statvfs(ROOT_DIR).context(|| "statvfs the build root".into())?.f_flag;
    mount(
        None::<&str>,
        ROOT_DIR,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV | preserved_flags(current),
        None::<&str>,
    )
    .context(|| "remount the build root nodev".into())?;
    nix::unistd::chdir(ROOT_DIR).context(|| "enter the build root".into())?;
    nix::unistd::chroot(".").context(|| "chroot into the build root".into())?;
    nix::unistd::chdir("/").context(|| "chdir /".into())?;
    // The image's /proc, not a symlink it might be (as `mount_proc_in`).
    use rustix::fs::{Mode, OFlags};
    let target =
        rustix::fs::open("/proc", OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .context(|| "open /proc".into())?;
    rustix::mount::move_mount(
        &proc,
        "",
        &target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .context(|| "mount proc on /proc".into())?;
    mount_dev(outside.devices)?;
    harden_proc(plan.privileged)?;
    if plan.sys {
        mount_sys(plan.privileged)?;
    }
    for file in &plan.files {
        bind_generated(file)?;
    }
    mounts::attach(&mounts::in_order(&plan.mounts), outside.detached)
}

/// The per-mount flags of a `statvfs` result, as mount flags.
pub(super) fn preserved_flags(f: StatVfsMountFlags) -> MsFlags {
    let pairs = [
        (StatVfsMountFlags::RDONLY, MsFlags::MS_RDONLY),
        (StatVfsMountFlags::NOSUID, MsFlags::MS_NOSUID),
        (StatVfsMountFlags::NOEXEC, MsFlags::MS_NOEXEC),
        (StatVfsMountFlags::NOATIME, MsFlags::MS_NOATIME),
        (StatVfsMountFlags::NODIRATIME, MsFlags::MS_NODIRATIME),
        (StatVfsMountFlags::RELATIME, MsFlags::MS_RELATIME),
    ];
    pairs.iter().filter(|(s, _)| f.contains(*s)).fold(MsFlags::empty(), |acc, (_, m)| acc | *m)
}

/// Detached clones of the host's device nodes, taken while the host's `/dev` is reachable.
fn clone_host_devices() -> Step<Vec<(&'static str, OwnedFd)>> {
    let mut out = Vec::new();
    for name in DEVICES {
        let path = format!("/dev/{name}");
        match rustix::mount::open_tree(
            CWD,
            path.as_str(),
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        ) {
            Ok(fd) => out.push((*name, fd)),
            // A host without a controlling-terminal device node still gets the others.
            Err(rustix::io::Errno::NOENT) if *name == "tty" => {}
            Err(e) => return Err(e).context(|| format!("clone the host's {path}")),
        }
    }
    Ok(out)
}

/// The host's `/sys` with everything mounted below it (a user namespace may only clone it
/// whole: its submounts are locked to it), or `None` when it cannot be had.
fn clone_host_sys() -> Step<Option<OwnedFd>> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_RECURSIVE;
    match rustix::mount::open_tree(CWD, "/sys", flags) {
        Ok(fd) => Ok(Some(fd)),
        // As with a sysfs that cannot be mounted: /sys stays empty, which builds cope with.
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::PERM | rustix::io::Errno::ACCESS) => Ok(None),
        Err(e) => Err(e).context(|| "clone the host's /sys".into()),
    }
}

/// Rootless isolation's `/sys`: the host's, read-only (at its top; what is mounted below it is
/// as the host has it, and owned by the host's root, which the namespace's root is not), masked
/// as `mount_sys` masks it.
fn bind_sys(sys: OwnedFd, privileged: bool) -> Step<()> {
    rustix::mount::move_mount(&sys, "", CWD, "/sys", MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .context(|| "bind the host's /sys".into())?;
    if privileged {
        return Ok(());
    }
    let current = rustix::fs::statvfs("/sys").context(|| "statvfs /sys".into())?.f_flag;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | preserved_flags(current);
    mount(None::<&str>, "/sys", None::<&str>, flags | flags_nosuid_nodev_noexec(), None::<&str>)
        .context(|| "make /sys read-only".into())?;
    mask(MASKED.iter().filter(|p| p.starts_with("/sys/")))
}

fn pivot_into(root: &Path) -> Step<()> {
    let old_root =
        rustix::fs::open("/", rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
            .context(|| "open /".into())?;
    nix::unistd::chdir(root).context(|| format!("enter the build root {}", root.display()))?;
    match nix::unistd::pivot_root(".", ".") {
        Ok(()) => {
            // The old root is now stacked on top of the new one; step onto it and detach it.
            rustix::process::fchdir(&old_root).context(|| "enter the old root".into())?;
            umount2(".", MntFlags::MNT_DETACH).context(|| "detach the host's filesystem".into())?;
        }
        Err(nix::errno::Errno::EINVAL) => {
            // An initramfs root cannot be pivoted away from.
            mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
                .context(|| "move the build root over /".into())?;
            nix::unistd::chroot(".").context(|| "chroot into the build root".into())?;
        }
        Err(e) => return Err(e).context(|| format!("pivot_root into {}", root.display())),
    }
    nix::unistd::chdir("/").context(|| "chdir /".into())
}

fn mkdir(path: &str, mode: u32) -> Step<()> {
    match DirBuilder::new().mode(mode).create(path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e).context(|| format!("create {path}")),
        _ => Ok(()),
    }
}

fn create_file(path: &str, mode: u32, content: &[u8]) -> Step<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .context(|| format!("create {path}"))?;
    f.write_all(content).context(|| format!("write {path}"))
}

fn mount_dev(devices: Vec<(&'static str, OwnedFd)>) -> Step<()> {
    mount(Some("tmpfs"), "/dev", Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=755,size=65536k"))
        .context(|| "mount a tmpfs on /dev".into())?;
    for (name, fd) in devices {
        let target = format!("/dev/{name}");
        create_file(&target, 0o666, b"")?;
        rustix::mount::move_mount(&fd, "", CWD, target.as_str(), MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
            .context(|| format!("bind the host's {target}"))?;
    }
    for (name, target) in DEV_LINKS {
        symlink(target, format!("/dev/{name}")).context(|| format!("create /dev/{name}"))?;
    }
    mkdir("/dev/pts", 0o755)?;
    let devpts = |options: &str| {
        mount(Some("devpts"), "/dev/pts", Some("devpts"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, Some(options))
    };
    match devpts("newinstance,ptmxmode=0666,mode=0620,gid=5") {
        // A single-id user namespace (rootless without a range) has no group 5 (tty): the
        // terminals are then owned by group 0, the only one there is.
        Err(nix::errno::Errno::EINVAL) => devpts("newinstance,ptmxmode=0666,mode=0620"),
        other => other,
    }
    .context(|| "mount devpts on /dev/pts".into())?;
    mkdir("/dev/shm", 0o1777)?;
    mount(Some("shm"), "/dev/shm", Some("tmpfs"), flags_nosuid_nodev_noexec(), Some("mode=1777,size=65536k"))
        .context(|| "mount a tmpfs on /dev/shm".into())?;
    // POSIX message queues of the sandbox's own IPC namespace; a kernel without them is fine.
    mkdir("/dev/mqueue", 0o755)?;
    if mount(Some("mqueue"), "/dev/mqueue", Some("mqueue"), flags_nosuid_nodev_noexec(), None::<&str>).is_err() {
        let _ = fs::remove_dir("/dev/mqueue");
    }
    Ok(())
}

/// The new PID namespace's `proc`, mounted on the root's `/proc` before the pivot: in a user
/// namespace other than the initial one (a pod with `hostUsers: false`, rootless isolation) the
/// kernel allows a new `proc` only while one is already visible in the mount namespace
/// (`mount_too_revealing`), and once the pivot has detached the host's filesystem none is. The
/// image's `proc` is opened without following a symlink, so the mount lands in the root. When
/// rootless isolation's mount is refused because part of the visible `proc` is covered (a
/// container's masked paths), the error says so and what to change
/// (`rootless_error::proc_refused`): a bare EPERM says neither. No fallback: the one `proc` that
/// could be had instead is the outer one, whose processes are not the sandbox's (issue 19).
/// Chroot isolation keeps the kernel's words, which its probe in a pod explains (`probe::hint`).
fn mount_proc_in(root: &Path, userns: bool) -> Step<()> {
    use rustix::fs::{Mode, OFlags};
    let target = root.join("proc");
    let dir =
        rustix::fs::open(&target, OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .context(|| format!("open {}", target.display()))?;
    let via = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&dir));
    match mount(Some("proc"), via.as_str(), Some("proc"), flags_nosuid_nodev_noexec(), None::<&str>) {
        Err(e) => match userns.then(|| super::rootless_error::proc_refused(e as i32)).flatten() {
            Some(refused) => Err(Failure(format!("mount proc on /proc: {refused}"))),
            None => Err(e).context(|| "mount proc on /proc".into()),
        },
        Ok(()) => Ok(()),
    }
}

/// `privileged` (`RUN --security=insecure`): nothing of `/proc` is read-only or hidden.
fn harden_proc(privileged: bool) -> Step<()> {
    if privileged {
        return Ok(());
    }
    for path in PROC_READONLY {
        if fs::symlink_metadata(path).is_err() {
            continue;
        }
        mount(Some(*path), *path, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .context(|| format!("bind {path}"))?;
        remount_readonly(path)?;
    }
    mask(MASKED.iter().filter(|p| p.starts_with("/proc/")))
}

/// `privileged`: writable and unmasked.
fn mount_sys(privileged: bool) -> Step<()> {
    let flags = if privileged { flags_nosuid_nodev_noexec() } else { MsFlags::MS_RDONLY | flags_nosuid_nodev_noexec() };
    match mount(Some("sysfs"), "/sys", Some("sysfs"), flags, None::<&str>) {
        Ok(()) if privileged => Ok(()),
        Ok(()) => mask(MASKED.iter().filter(|p| p.starts_with("/sys/"))),
        // Inside some containers sysfs may not be mounted; /sys then stays empty, which
        // builds cope with (it is optional in Docker's runtime spec too).
        Err(nix::errno::Errno::EPERM | nix::errno::Errno::EACCES) => Ok(()),
        Err(e) => Err(e).context(|| "mount sysfs on /sys".into()),
    }
}

fn remount_readonly(path: &str) -> Step<()> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags_nosuid_nodev_noexec();
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>).context(|| format!("make {path} read-only"))
}

/// Hides files behind `/dev/null` and directories behind an empty read-only tmpfs.
fn mask<'a>(paths: impl Iterator<Item = &'a &'a str>) -> Step<()> {
    for path in paths {
        let Ok(meta) = fs::metadata(path) else { continue };
        let result = if meta.is_dir() {
            mount(Some("tmpfs"), *path, Some("tmpfs"), MsFlags::MS_RDONLY | flags_nosuid_nodev_noexec(), Some("size=0"))
        } else {
            mount(Some("/dev/null"), *path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        };
        result.context(|| format!("mask {path}"))?;
    }
    Ok(())
}

/// Bind-mounts generated content read-only over `file.target`. The content is staged in the
/// sandbox's `/dev` tmpfs and unlinked once mounted; the mount keeps it alive.
fn bind_generated(file: &EtcFile) -> Step<()> {
    let name = Path::new(&file.target).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staged = format!("/dev/.trowel-{name}");
    create_file(&staged, 0o644, file.content.as_bytes())?;
    mount(Some(staged.as_str()), file.target.as_str(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .context(|| format!("bind-mount {}", file.target))?;
    remount_readonly(&file.target)?;
    fs::remove_file(&staged).map_err(|e| Failure(format!("remove {staged}: {e}")))
}
