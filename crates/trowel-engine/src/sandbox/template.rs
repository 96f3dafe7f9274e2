//! A mount namespace with nothing of the host in it, made once per trowel process, that every
//! RUN's namespace is copied from: the fast way into a root in chroot isolation.
//!
//! Why: a mount namespace made by `unshare` is a copy of the host's, so getting the host out of
//! it takes a detaching unmount (after `pivot_root`), and every unmount ends in an RCU grace
//! period — milliseconds on a busy machine (4–5 ms at load 12 here, `bench/README.md`), paid by
//! every RUN before its command starts. Copied from this template instead, a RUN's namespace
//! holds one read-only, empty tmpfs; the root is attached on its one directory (`/r`) and
//! entered with `chroot`, with no unmount at all. Nothing of the host is there to escape to:
//! leaving the root by a chroot trick (RUN keeps `CAP_SYS_CHROOT`, as in Docker) leads to that
//! empty tmpfs, and the command's mount table, its root being the build root, shows the same
//! mounts as after a pivot (`tests/sandbox_mount_table.rs`).
//!
//! The template is made by the helper binary in a mode of its own (`__sandbox-init template`:
//! single-threaded, as `unshare` and `pivot_root` want), which pivots into the tmpfs, detaches
//! the host once, says so, and waits for its stdin to close; trowel keeps the namespace by a
//! descriptor of `/proc/<pid>/ns/mnt` and lets it exit. Only chroot isolation in the initial
//! user namespace uses it: in another one (rootless isolation, a pod with `hostUsers: false`)
//! the kernel allows a new `proc` only where one is already fully visible, which this namespace
//! never has; those keep `pivot_root` (`chroot.rs`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::HELPER_ARG;
use super::helper::{Context, Step};

/// The second argument that makes the helper build the template.
pub(super) const TEMPLATE_ARG: &str = "template";

/// Where a RUN's root is attached inside the template's tmpfs.
pub(super) const ROOT_DIR: &str = "/r";

/// What the template process prints once the namespace is ready.
const READY: &str = "ready";

/// The template, once made (or found impossible) in this process.
enum State {
    Unmade,
    Made(Arc<OwnedFd>),
    Impossible,
}

static TEMPLATE: Mutex<State> = Mutex::new(State::Unmade);

/// The template namespace, made on first use by `helper` (the trowel binary); `None` where it
/// cannot be had (then RUNs pivot as before). Callers that arrive while it is being made wait.
pub(super) fn get(helper: &Path) -> Option<Arc<OwnedFd>> {
    let mut state = TEMPLATE.lock().unwrap_or_else(|e| e.into_inner());
    if let State::Unmade = *state {
        *state = make(helper).map_or(State::Impossible, |fd| State::Made(Arc::new(fd)));
    }
    match &*state {
        State::Made(fd) => Some(fd.clone()),
        _ => None,
    }
}

/// Lets the template go once a build has no RUN left (a later one makes it again). Closing the
/// last reference tears the namespace down, which ends in an RCU grace period: on a thread of
/// its own, so that it runs alongside the push (trowel's exit would wait for a thread still in
/// it, which the push's length makes unlikely).
pub(super) fn release() {
    let mut state = TEMPLATE.lock().unwrap_or_else(|e| e.into_inner());
    if let State::Made(fd) = std::mem::replace(&mut *state, State::Unmade) {
        drop(state);
        let _ = std::thread::Builder::new().name("sandbox-template".into()).spawn(move || drop(fd));
    }
}

fn make(helper: &Path) -> std::io::Result<OwnedFd> {
    if super::detect::user_namespace_mapping().is_some() {
        return Err(std::io::Error::other("in a user namespace: no new proc could be mounted there"));
    }
    let mut child = super::userns::command(helper)
        .arg(HELPER_ARG)
        .arg(TEMPLATE_ARG)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    let read = child.stdout.take().map(|out| BufReader::new(out).read_line(&mut line));
    let ns = match read {
        Some(Ok(_)) if line.trim_end() == READY => rustix::fs::open(
            format!("/proc/{}/ns/mnt", child.id()).as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(std::io::Error::from),
        _ => Err(std::io::Error::other("the sandbox template did not start")),
    };
    // Its stdin closing ends it; the namespace lives on in `ns`.
    drop(child.stdin.take());
    let _ = child.wait();
    ns
}

/// `trowel __sandbox-init template`: makes the namespace, reports it ready on stdout, and
/// waits for stdin to close. Never returns.
pub(super) fn template_main() -> ! {
    match build() {
        Ok(()) => {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{READY}").and_then(|()| out.flush());
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("trowel: sandbox template: {}", e.0);
            std::process::exit(super::helper::SETUP_FAILED)
        }
    }
}

fn build() -> Step<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).context(|| "unshare the mount namespace".into())?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .context(|| "make all mounts private".into())?;
    // /proc is on every host trowel runs on; in this private copy it only serves as a place.
    let place = "/proc";
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("trowel-template"), place, Some("tmpfs"), flags, Some("mode=755,size=16k"))
        .context(|| "mount the template's tmpfs".into())?;
    std::fs::create_dir(format!("{place}{ROOT_DIR}")).context(|| "create the root's place".into())?;
    mount(None::<&str>, place, None::<&str>, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags, None::<&str>)
        .context(|| "make the template read-only".into())?;
    nix::unistd::chdir(place).context(|| "enter the template".into())?;
    nix::unistd::pivot_root(".", ".").context(|| "pivot into the template".into())?;
    umount2(".", MntFlags::MNT_DETACH).context(|| "detach the host's filesystem".into())?;
    nix::unistd::chdir("/").context(|| "chdir /".into())
}
