//! Writing the maps of the user namespace [`super::userns::enter`] made: the setuid helpers
//! `newuidmap` and `newgidmap` run by a small forked process left outside the namespace, or the
//! single-id map written by the process itself.
//!
//! The kernel lets only a process in the namespace's parent (or one with `CAP_SETUID` there)
//! write a map of more than the writer's own id, and a setuid binary exec'd from inside the new
//! namespace would not be setuid there (its owner, real root, is not mapped). So a child is
//! forked *before* the namespace is made, waits on a pipe until it exists, runs both helpers on
//! the parent's pid at once (they write different files, and each takes ~1.5 ms, most of it
//! exec-ing a setuid binary: run one after the other they were the biggest part of a rootless
//! build's fixed cost), reports what failed, and exits. util-linux's `unshare --map-users` does
//! the same. The single-id map needs no child: a process may map its own uid and gid into a
//! namespace it created once it has denied `setgroups` there (`user_namespaces(7)`).

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::idmap::IdMap;
use super::rootless_error::RootlessError;

/// A helper and the map it writes.
pub(super) struct Helper {
    pub tool: &'static str,
    pub path: PathBuf,
    pub map: IdMap,
}

/// The forked child, waiting outside the namespace for the word to map its parent.
pub(super) struct Mapper {
    pid: Pid,
    /// Written once the parent has unshared ([`Mapper::start`]); closed unwritten, the child
    /// exits doing nothing.
    go: Option<std::fs::File>,
    /// Why the word could not be given, kept for [`Mapper::map`] to report.
    told: io::Result<()>,
    /// What the child reports: failures only, then end of file when it exits.
    report: std::fs::File,
}

/// One failure the child reports: which helper, then how it failed.
const FAILED_EXIT: u8 = 1;
const FAILED_SPAWN: u8 = 2;

impl Mapper {
    /// Forks the child. The caller must be single-threaded (the child runs ordinary code).
    pub fn fork(helpers: &[Helper; 2]) -> Result<Mapper, RootlessError> {
        let start = |what: &str| {
            let what = what.to_string();
            move |e: rustix::io::Errno| RootlessError::Start { what, source: e.into() }
        };
        let (report_r, report_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(start("pipe"))?;
        let (go_r, go_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(start("pipe"))?;
        let parent = rustix::process::getpid().as_raw_nonzero().get();
        // SAFETY: the caller is single-threaded (`enter` checks it), so the child may allocate
        // and spawn processes; it leaves with `_exit`, running nothing of the parent's.
        match unsafe { nix::unistd::fork() }
            .map_err(|e| RootlessError::Start { what: "fork".into(), source: e.into() })?
        {
            ForkResult::Child => {
                drop(report_r);
                drop(go_w);
                let code = child(parent, go_r, report_w, helpers);
                // SAFETY: _exit ends the child without running the parent's exit handlers or
                // flushing its buffers a second time.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                Ok(Mapper { pid: child, go: Some(go_w.into()), told: Ok(()), report: report_r.into() })
            }
        }
    }

    /// Tells the child the namespace exists: the helpers start writing its maps while this
    /// process goes on.
    pub fn start(&mut self) {
        if let Some(mut go) = self.go.take() {
            self.told = go.write_all(&[0]);
        }
    }

    /// Tells the child the namespace exists if [`Mapper::start`] did not, waits for both
    /// helpers, and says what failed.
    pub fn map(mut self, helpers: &[Helper; 2], user: &str) -> Result<(), RootlessError> {
        self.start();
        let mut report = Vec::new();
        let read = self.report.read_to_end(&mut report);
        let status = reap(self.pid);
        self.told.map_err(|source| RootlessError::Start { what: "signal the mapping process".into(), source })?;
        read.map_err(|source| RootlessError::Start { what: "read the mapping process's report".into(), source })?;
        if let Some(e) = parse_report(&report, helpers, user) {
            return Err(e);
        }
        match status? {
            WaitStatus::Exited(_, 0) => Ok(()),
            other => Err(RootlessError::Start {
                what: "the process mapping the namespace's ids".into(),
                source: io::Error::other(format!("it ended with {other:?}")),
            }),
        }
    }

    /// The namespace could not be made: the child is told nothing and reaped.
    pub fn cancel(mut self) {
        self.go.take();
        let _ = reap(self.pid);
    }
}

fn reap(pid: Pid) -> Result<WaitStatus, RootlessError> {
    loop {
        match waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => {}
            Ok(s) => return Ok(s),
            Err(e) => {
                return Err(RootlessError::Start { what: "wait for the mapping process".into(), source: e.into() });
            }
        }
    }
}

/// The child's whole life: its exit code (0: both maps written). It runs outside the namespace,
/// so the helpers are started with the plain `Command::new`, not `userns::command`, which would
/// wait for the very maps they write.
#[allow(clippy::disallowed_methods)]
fn child(parent: i32, go: OwnedFd, report: OwnedFd, helpers: &[Helper; 2]) -> i32 {
    // Not outliving the parent: a trowel killed before the word must not leave it waiting.
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get()) != Some(parent) {
        return 125;
    }
    let mut byte = [1u8];
    if rustix::io::read(&go, &mut byte) != Ok(1) || byte[0] != 0 {
        return 125;
    }
    let mut report = std::fs::File::from(report);
    let spawned: Vec<_> = helpers
        .iter()
        .map(|h| {
            Command::new(&h.path)
                .arg(parent.to_string())
                .args(h.map.helper_args())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect();
    let mut failed = false;
    for (i, s) in spawned.into_iter().enumerate() {
        let (kind, code, said) = match s.and_then(|c| c.wait_with_output()) {
            Ok(out) if out.status.success() => continue,
            Ok(out) => (FAILED_EXIT, out.status.into_raw(), out.stderr),
            Err(e) => (FAILED_SPAWN, e.raw_os_error().unwrap_or(libc::EIO), Vec::new()),
        };
        failed = true;
        let mut msg = vec![kind, i as u8];
        msg.extend_from_slice(&code.to_le_bytes());
        msg.extend_from_slice(&(said.len() as u32).to_le_bytes());
        msg.extend_from_slice(&said);
        if report.write_all(&msg).is_err() {
            return 125;
        }
    }
    if failed { 1 } else { 0 }
}

/// The first failure in the child's report, as the error the user reads.
fn parse_report(mut report: &[u8], helpers: &[Helper; 2], user: &str) -> Option<RootlessError> {
    if report.len() < 10 {
        return None;
    }
    let (kind, which) = (report[0], usize::from(report[1]).min(1));
    let code = i32::from_le_bytes(report[2..6].try_into().ok()?);
    let len = u32::from_le_bytes(report[6..10].try_into().ok()?) as usize;
    report = &report[10..];
    let said = String::from_utf8_lossy(&report[..len.min(report.len())]).trim().to_string();
    let h = &helpers[which];
    Some(match kind {
        FAILED_SPAWN => RootlessError::Start {
            what: format!("run {}", h.path.display()),
            source: io::Error::from_raw_os_error(code),
        },
        _ => helper_failed(h, ExitStatus::from_raw(code), &said, user),
    })
}

fn helper_failed(h: &Helper, status: ExitStatus, said: &str, user: &str) -> RootlessError {
    RootlessError::HelperFailed {
        tool: h.tool,
        path: h.path.clone(),
        user: user.to_string(),
        reason: format!(
            "it exited with {status} ({}); check that the ranges in /etc/subuid and /etc/subgid belong to {user} and \
             do not overlap another user's, and that {} is setuid root",
            if said.is_empty() { "no message" } else { said },
            h.path.display()
        ),
    }
}

/// The single-id maps, written by the process that made the namespace, from inside it.
pub(super) fn write_single(uid: u32, gid: u32) -> Result<(), RootlessError> {
    let write = |file: &str, text: String| {
        let path = Path::new("/proc/self").join(file);
        std::fs::write(&path, text).map_err(|source| RootlessError::Read { path, source })
    };
    write("uid_map", format!("0 {uid} 1\n"))?;
    write("setgroups", "deny\n".into())?;
    write("gid_map", format!("0 {gid} 1\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helpers() -> [Helper; 2] {
        let h = |tool| Helper {
            tool,
            path: PathBuf::from(format!("/usr/bin/{tool}")),
            map: IdMap { own: 7, ranges: vec![] },
        };
        [h("newuidmap"), h("newgidmap")]
    }

    /// The child's report names the helper that failed, with its status and its own words, as
    /// the error the user reads; an empty report is success.
    #[test]
    fn a_reported_failure_names_the_helper_and_its_words() {
        assert!(parse_report(&[], &helpers(), "alice").is_none());
        let said = b"newgidmap: gid range [1-65537) -> [100000-165536) not allowed\n";
        let mut msg = vec![FAILED_EXIT, 1];
        msg.extend_from_slice(&(1i32 << 8).to_le_bytes());
        msg.extend_from_slice(&(said.len() as u32).to_le_bytes());
        msg.extend_from_slice(said);
        let e = parse_report(&msg, &helpers(), "alice").unwrap().to_string();
        assert!(e.contains("newgidmap /usr/bin/newgidmap failed to map alice's ids"), "{e}");
        assert!(e.contains("exit status: 1 (newgidmap: gid range [1-65537) -> [100000-165536) not allowed)"), "{e}");
        let mut msg = vec![FAILED_SPAWN, 0];
        msg.extend_from_slice(&libc::EACCES.to_le_bytes());
        msg.extend_from_slice(&0u32.to_le_bytes());
        let e = parse_report(&msg, &helpers(), "alice").unwrap().to_string();
        assert!(e.contains("run /usr/bin/newuidmap: Permission denied"), "{e}");
    }
}
