//! The command child: the last steps before `execve`, inside the prepared root.
//!
//! Runs in a child of init, which is single-threaded, so process-wide credential changes
//! (`setgroups`, `setgid`, `setuid`) are safe here and affect exactly this process.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use nix::errno::Errno;
use nix::unistd::{Gid, Uid};

use super::helper::{Context, Failure, Step};
use super::wire::{CommandSpec, Report};
use super::{DEFAULT_PATH, caps, sys};

/// Exit status of the command child when the program could not be executed (the shell's).
const EXEC_FAILED: i32 = 127;

/// Sets up the process and executes the command; reports and exits with 127 on failure.
/// `tty` is the slave side of the sandbox's pseudo-terminal in interactive mode.
pub(super) fn exec_command(cmd: &CommandSpec, report: BorrowedFd<'_>, tty: Option<OwnedFd>) -> ! {
    let failure = match prepare(cmd, tty) {
        Ok(()) => execute(cmd),
        Err(Failure(message)) => Report::Setup { message },
    };
    failure.send(report);
    std::process::exit(EXEC_FAILED)
}

fn prepare(cmd: &CommandSpec, tty: Option<OwnedFd>) -> Step<()> {
    sys::reset_signals();
    // A session of its own: no controlling terminal unless given one below, and a process
    // group that job-control shells can manage.
    rustix::process::setsid().context(|| "create a session for the command".into())?;
    if let Some(tty) = tty {
        sys::set_controlling_tty(tty.as_fd()).context(|| "make the pseudo-terminal the controlling terminal".into())?;
        for target in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors; `tty` stays open across the calls.
            if unsafe { libc::dup2(tty.as_raw_fd(), target) } < 0 {
                return Err(io::Error::last_os_error()).context(|| "attach the pseudo-terminal".into());
            }
        }
    }
    rustix::process::chdir(cmd.cwd.as_str())
        .context(|| format!("cannot change to the working directory {} inside the root", cmd.cwd))?;
    if cmd.restrict_caps {
        caps::restrict_to_defaults().context(|| "restrict capabilities".into())?;
    }
    let groups = supplementary_groups(cmd.user.gid, &cmd.user.groups);
    // A single-id user namespace (rootless isolation without a subordinate range) denies
    // setgroups for good; the command keeps the groups it has, which map to nothing there.
    if !setgroups_denied() {
        nix::unistd::setgroups(&groups).context(|| format!("set supplementary groups {groups:?}"))?;
    }
    nix::unistd::setgid(Gid::from_raw(cmd.user.gid))
        .map_err(|e| unmapped(e, "gid", cmd.user.gid))
        .context(|| format!("set gid {}", cmd.user.gid))?;
    nix::unistd::setuid(Uid::from_raw(cmd.user.uid))
        .map_err(|e| unmapped(e, "uid", cmd.user.uid))
        .context(|| format!("set uid {}", cmd.user.uid))?;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    sys::cloexec_from(3).context(|| "mark inherited descriptors close-on-exec".into())?;
    Ok(())
}

/// Whether `/proc/self/setgroups` says `deny` (only in a single-id user namespace).
fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

/// `EINVAL` from setuid/setgid means the id has no mapping in the user namespace: said so, with
/// what to change, instead of a bare "Invalid argument".
fn unmapped(e: Errno, kind: &str, id: u32) -> String {
    if e == Errno::EINVAL && setgroups_denied() {
        format!(
            "{e}: {kind} {id} does not exist in this rootless build's user namespace, which maps a single id (0) \
             because /etc/subuid and /etc/subgid give the user no range; add one (usermod --add-subuids \
             100000-165535 --add-subgids 100000-165535 <user>) to build as other users"
        )
    } else {
        e.to_string()
    }
}

/// The primary gid followed by the supplementary groups, without duplicates. Docker and
/// BuildKit always include the primary gid (since CVE-2022-36109): without it, a file whose
/// group permissions are *lower* than its "other" permissions would be more accessible to the
/// command than intended.
fn supplementary_groups(gid: u32, groups: &[u32]) -> Vec<Gid> {
    let mut all = vec![gid];
    for &g in groups {
        if !all.contains(&g) {
            all.push(g);
        }
    }
    all.into_iter().map(Gid::from_raw).collect()
}

/// Looks `argv[0]` up and executes it; only returns (as the report to send) on failure.
fn execute(cmd: &CommandSpec) -> Report {
    let program = cmd.argv[0].as_str();
    let cstrings = |items: Vec<String>| items.into_iter().map(CString::new).collect::<Result<Vec<_>, _>>();
    let argv = cstrings(cmd.argv.clone());
    let envp = cstrings(cmd.env.iter().map(|(k, v)| format!("{k}={v}")).collect());
    let (Ok(argv), Ok(envp)) = (argv, envp) else {
        return Report::ExecFailed {
            program: program.into(),
            message: "argument or environment contains a NUL byte".into(),
        };
    };

    if program.contains('/') {
        return exec_failure(program, program, nix::unistd::execve(&path_cstring(program), &argv, &envp).unwrap_err());
    }
    let search = cmd.env.iter().find(|(k, _)| k == "PATH").map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    let mut denied = None;
    for dir in search.split(':') {
        // An empty PATH entry means the current directory, as in every shell.
        let candidate =
            if dir.is_empty() { program.to_string() } else { format!("{}/{program}", dir.trim_end_matches('/')) };
        let Ok(meta) = std::fs::metadata(&candidate) else { continue };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            continue;
        }
        match nix::unistd::execve(&path_cstring(&candidate), &argv, &envp).unwrap_err() {
            // Like execvp: a file we may not execute does not hide one later in PATH.
            Errno::EACCES => denied = Some(candidate),
            e => return exec_failure(program, &candidate, e),
        }
    }
    match denied {
        Some(candidate) => exec_failure(program, &candidate, Errno::EACCES),
        None => Report::NotFound { program: program.into() },
    }
}

fn path_cstring(path: &str) -> CString {
    // Checked for NUL bytes together with argv.
    CString::new(OsStr::new(path).as_bytes()).unwrap_or_default()
}

fn exec_failure(program: &str, path: &str, errno: Errno) -> Report {
    let exists = std::fs::metadata(path).is_ok();
    let reason = match errno {
        Errno::ENOENT if exists => "its interpreter or dynamic loader is missing in the image".to_string(),
        Errno::ENOENT => "no such file or directory".to_string(),
        Errno::ENOEXEC => "exec format error (wrong architecture, or a script without #!)".to_string(),
        e => e.desc().to_lowercase(),
    };
    let message = if path == program { reason } else { format!("{path}: {reason}") };
    Report::ExecFailed { program: program.into(), message }
}
