//! The trowel side of a run: validate, prepare mount points, start the helper, stream its
//! output, enforce the timeout, and turn its reports into a result.
//!
//! Everything here is safe in a multi-threaded process: the only code between `fork` and
//! `exec` (std's `pre_exec` hook) makes two `fcntl` calls and one `prctl`, all plain syscalls.
//! Pipes are created close-on-exec so a helper spawned concurrently by another thread never
//! inherits another run's pipe (which would keep it from ever seeing end-of-file).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Instant;

use rustix::pipe::PipeFlags;
use rustix::process::WaitOptions;

use super::mounts;
use super::placed::Placed;
use super::stop::{self, Stop};
use super::stubs::{Kind, MountPoints};
use super::wire::{self, ChrootPlan, CommandSpec, EtcFile, HelperSpec, Report, Setup};
use super::{HELPER_ARG, Isolation, RunOutcome, RunSpec, SandboxError, StdioMode, Stream, etc_files, sys, template};

/// Output is read in chunks of this size; memory use does not depend on output volume.
const CHUNK: usize = 64 * 1024;

/// Reports are a few short lines; more than this means something is badly wrong.
const REPORT_LIMIT: usize = 64 * 1024;

/// Exit code reported for a command killed at the timeout (128 + SIGKILL).
const TIMEOUT_EXIT_CODE: i32 = 128 + libc::SIGKILL;

/// Runs `spec.argv` inside `spec.root` and waits for it.
///
/// With [`StdioMode::Piped`], `on_output` is called with each chunk of stdout and stderr as it
/// arrives (both streams are polled in this thread; nothing is buffered beyond one chunk). The
/// command's exit status, including non-zero and death by signal, is an `Ok` [`RunOutcome`];
/// errors are failures of the sandbox itself, including "executable not found in PATH".
///
/// Blocks the calling thread for the duration of the command; from async code call it in
/// `spawn_blocking`. The calling thread must stay alive until it returns (the helper is tied to
/// it with `PR_SET_PDEATHSIG`), which a blocking call guarantees. Runs in different roots may
/// proceed concurrently; one root must not have two runs at a time (their mount-point stubs
/// would collide), which the engine's step order ensures. Needs root: real root, or root of
/// the user namespace `userns.rs` made (rootless isolation).
pub fn run(spec: &RunSpec, on_output: &mut dyn FnMut(Stream, &[u8])) -> Result<RunOutcome, SandboxError> {
    let root =
        std::fs::canonicalize(&spec.root).map_err(|source| SandboxError::Root { root: spec.root.clone(), source })?;
    if !root.is_dir() {
        let source = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
        return Err(SandboxError::Root { root, source });
    }
    validate(spec, &root)?;

    let mut mount_points =
        MountPoints::open(&root).map_err(|source| SandboxError::Root { root: root.clone(), source })?;
    let mut placed = None;
    let mut setup = match spec.isolation {
        Isolation::Chroot | Isolation::Rootless => Setup::Chroot(chroot_plan(spec, &root, &mut mount_points)?),
        Isolation::Container => {
            if root != Path::new("/") {
                return Err(invalid(&root, "container isolation runs commands in / (the container's own root)"));
            }
            if !spec.mounts.is_empty() {
                let order = mounts::in_order(&spec.mounts);
                // The stop cuts the copies short, as it does a chroot's (`placed.rs`).
                let cancel = spec.stop.as_ref().map(super::Stop::cancel);
                let p = Placed::place(&order, spec.work_dir.as_deref(), cancel)
                    .map_err(|(path, source)| SandboxError::MountPoint { root: root.clone(), path, source })?;
                placed = Some(p);
            }
            Setup::Container
        }
    };
    // Chroot isolation enters the root from the template namespace when there is one.
    let template = match &mut setup {
        Setup::Chroot(plan) if spec.isolation == Isolation::Chroot => {
            let fd = template::get(&spec.helper_exe);
            plan.template_fd = fd.as_ref().map(|fd| fd.as_raw_fd());
            fd
        }
        _ => None,
    };
    let helper_spec = HelperSpec {
        root: root.clone(),
        setup,
        network: spec.network,
        command: CommandSpec {
            argv: spec.argv.clone(),
            env: spec.env.clone(),
            cwd: spec.cwd.clone(),
            user: spec.user.clone(),
            stdio: spec.stdio,
            restrict_caps: spec.isolation != Isolation::Container && !spec.privileged,
        },
    };

    let result = Launch::start(spec, &root, &helper_spec, template.as_deref().map(AsFd::as_fd))
        .and_then(|launch| launch.finish(on_output));
    // The command is gone: what its placed mounts would have refused is judged, then what
    // container isolation put in place goes, before anything looks at the root.
    let breaches = placed.as_mut().map(Placed::breaches).unwrap_or_default();
    let unplaced = match placed.as_mut() {
        Some(p) => p.remove().map_err(|(path, source)| SandboxError::MountPoint { root: root.clone(), path, source }),
        None => Ok(()),
    };
    // The helper and its namespace are gone: the stubs are plain files and directories again.
    let cleanup =
        mount_points.cleanup().map_err(|(path, source)| SandboxError::MountPoint { root: root.clone(), path, source });
    let outcome = result?;
    unplaced?;
    cleanup?;
    if !breaches.is_empty() {
        return Err(SandboxError::MountBreached { reasons: breaches.join("; ") });
    }
    Ok(outcome)
}

fn invalid(root: &Path, reason: impl Into<String>) -> SandboxError {
    SandboxError::InvalidSpec { root: root.to_path_buf(), reason: reason.into() }
}

fn validate(spec: &RunSpec, root: &Path) -> Result<(), SandboxError> {
    if spec.argv.is_empty() || spec.argv[0].is_empty() {
        return Err(invalid(root, "the command is empty"));
    }
    if let Some(a) = spec.argv.iter().find(|a| a.contains('\0')) {
        return Err(invalid(root, format!("argument {a:?} contains a NUL byte")));
    }
    for (k, v) in &spec.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(invalid(root, format!("environment variable {k:?} has an invalid name or value")));
        }
    }
    if root.to_str().is_none() {
        return Err(invalid(root, "the build root's path is not valid UTF-8"));
    }
    if !spec.cwd.starts_with('/') || spec.cwd.contains('\0') {
        return Err(invalid(root, format!("working directory {:?} is not an absolute path", spec.cwd)));
    }
    etc_files::check_hostname(&spec.hostname).map_err(|r| invalid(root, r))?;
    for (name, ip) in &spec.extra_hosts {
        etc_files::check_extra_host(name, ip).map_err(|r| invalid(root, r))?;
    }
    mounts::validate(&spec.mounts).map_err(|r| invalid(root, r))?;
    Ok(())
}

/// Prepares the mount points of the chroot isolation and decides what gets mounted.
fn chroot_plan(spec: &RunSpec, root: &Path, mp: &mut MountPoints) -> Result<ChrootPlan, SandboxError> {
    let mut ensure = |path: &str, kind: Kind| {
        mp.ensure(path, kind).map_err(|source| SandboxError::MountPoint {
            root: root.to_path_buf(),
            path: path.into(),
            source,
        })
    };
    for required in ["/proc", "/dev"] {
        if !ensure(required, Kind::Dir)? {
            let source =
                io::Error::new(io::ErrorKind::NotADirectory, "the image has something other than a directory here");
            return Err(SandboxError::MountPoint { root: root.to_path_buf(), path: required.into(), source });
        }
    }
    let sys = ensure("/sys", Kind::Dir)?;
    // A hosts or resolv.conf that is a dangling symlink or a directory is left as the image
    // has it rather than failing the build.
    let mut files = Vec::new();
    if ensure("/etc/hosts", Kind::File)? {
        files.push(EtcFile {
            target: "/etc/hosts".into(),
            content: etc_files::hosts_file(&spec.hostname, &spec.extra_hosts),
        });
    }
    if let Some(content) = etc_files::host_resolv_conf()
        && ensure("/etc/resolv.conf", Kind::File)?
    {
        files.push(EtcFile { target: "/etc/resolv.conf".into(), content });
    }
    // Mount points of RUN --mount; one inside another mount is made inside it, by the helper.
    for m in &spec.mounts {
        if spec.mounts.iter().any(|other| m.is_inside(other)) {
            continue;
        }
        let dir = m.is_dir_target().map_err(|source| SandboxError::MountPoint {
            root: root.to_path_buf(),
            path: format!("{} (its source)", m.target),
            source,
        })?;
        if !ensure(&m.target, if dir { Kind::Dir } else { Kind::File })? {
            let want = if dir { "a directory" } else { "a file" };
            let source = io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("the image has something other than {want} here (or a symlink that leads nowhere)"),
            );
            return Err(SandboxError::MountPoint { root: root.to_path_buf(), path: m.target.clone(), source });
        }
    }
    Ok(ChrootPlan {
        hostname: spec.hostname.clone(),
        sys,
        userns: spec.isolation == Isolation::Rootless,
        files,
        mounts: spec.mounts.clone(),
        privileged: spec.privileged,
        template_fd: None,
    })
}

/// `fd` itself, or a close-on-exec duplicate numbered 3 or higher.
fn above_stdio(fd: OwnedFd) -> rustix::io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 { Ok(fd) } else { rustix::io::fcntl_dupfd_cloexec(&fd, 3) }
}

/// A started helper.
struct Launch {
    child: Child,
    root: PathBuf,
    helper: PathBuf,
    report: Option<OwnedFd>,
    /// The spec still to be written (non-blocking, from the output loop, so that a helper that
    /// writes before reading can never deadlock with us) and how much of it is written.
    spec: Option<(OwnedFd, Vec<u8>, usize)>,
    deadline: Option<Instant>,
    /// The terminal settings to put back if the helper dies while the terminal is raw.
    terminal: Option<rustix::termios::Termios>,
    /// Watched for a request to stop the command (until it is acted on).
    stop: Option<Stop>,
    /// Once stopping: when SIGTERM's grace ends and SIGKILL follows.
    stopping: Option<Instant>,
    /// A thread of its own reaps the helper (see `finish`).
    reaped_elsewhere: bool,
}

impl Launch {
    fn start(
        spec: &RunSpec,
        root: &Path,
        helper_spec: &HelperSpec,
        template: Option<BorrowedFd<'_>>,
    ) -> Result<Launch, SandboxError> {
        let io_err = |context: &str| {
            let context = context.to_string();
            move |source: rustix::io::Errno| SandboxError::Io {
                root: root.to_path_buf(),
                context,
                source: source.into(),
            }
        };
        let (spec_r, spec_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(io_err("create the spec pipe"))?;
        let (report_r, report_w) =
            rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(io_err("create the report pipe"))?;
        // With a standard descriptor closed in trowel, a pipe could land on 0-2 and be
        // replaced by the helper's stdio.
        let spec_r = above_stdio(spec_r).map_err(io_err("move the spec pipe"))?;
        let report_w = above_stdio(report_w).map_err(io_err("move the report pipe"))?;
        let piped = spec.stdio == StdioMode::Piped;
        let terminal = match spec.stdio {
            StdioMode::Inherit => rustix::termios::tcgetattr(io::stdin()).ok(),
            StdioMode::Piped => None,
        };

        let mut cmd = super::userns::command(&spec.helper_exe);
        cmd.arg(HELPER_ARG)
            .arg(spec_r.as_raw_fd().to_string())
            .arg(report_w.as_raw_fd().to_string())
            .arg(std::process::id().to_string())
            // The command's environment travels in the spec; trowel's own (registry tokens,
            // say) has no business in the helper.
            .env_clear()
            .current_dir("/")
            .stdin(if piped { Stdio::null() } else { Stdio::inherit() })
            .stdout(if piped { Stdio::piped() } else { Stdio::inherit() })
            .stderr(if piped { Stdio::piped() } else { Stdio::inherit() });
        let inherit: [RawFd; 3] = [spec_r.as_raw_fd(), report_w.as_raw_fd(), template.map_or(-1, |t| t.as_raw_fd())];
        // SAFETY: the closure only makes async-signal-safe syscalls (fcntl, prctl) on values
        // captured by copy; it allocates nothing and takes no locks.
        unsafe {
            cmd.pre_exec(move || {
                for fd in inherit.into_iter().filter(|fd| *fd >= 0) {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // Strings and a UTF-8 path (checked by validate) always serialize.
        let json = serde_json::to_vec(helper_spec).map_err(|e| invalid(root, e.to_string()))?;
        rustix::fs::fcntl_setfl(&spec_w, rustix::fs::OFlags::NONBLOCK).map_err(io_err("configure the spec pipe"))?;
        let child = cmd.spawn().map_err(|source| SandboxError::Spawn { helper: spec.helper_exe.clone(), source })?;
        drop(spec_r);
        drop(report_w);
        Ok(Launch {
            child,
            root: root.to_path_buf(),
            helper: spec.helper_exe.clone(),
            report: Some(report_r),
            spec: Some((spec_w, json, 0)),
            deadline: spec.timeout.map(|t| Instant::now() + t),
            terminal,
            stop: spec.stop.clone(),
            stopping: None,
            reaped_elsewhere: false,
        })
    }

    /// Streams output until every pipe is closed, then reads the helper's verdict.
    fn finish(mut self, on_output: &mut dyn FnMut(Stream, &[u8])) -> Result<RunOutcome, SandboxError> {
        let mut streams: Vec<(Option<Stream>, OwnedFd)> = Vec::new();
        if let Some(out) = self.child.stdout.take() {
            streams.push((Some(Stream::Stdout), out.into()));
        }
        if let Some(err) = self.child.stderr.take() {
            streams.push((Some(Stream::Stderr), err.into()));
        }
        if let Some(report) = self.report.take() {
            streams.push((None, report));
        }

        let mut reports = Vec::new();
        let mut timed_out = false;
        let mut buf = vec![0u8; CHUNK];
        while !streams.is_empty() {
            if self.stopping.is_some_and(|at| Instant::now() >= at) {
                self.kill_tree();
                timed_out = true;
                self.stopping = None;
                continue;
            }
            let timeout_ms = match self.deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        // Killing the helper kills init (parent-death signal), and with init
                        // the whole namespace; the pipes then reach end-of-file.
                        let _ = self.child.kill();
                        timed_out = true;
                        self.deadline = None;
                        continue;
                    }
                    left.as_millis().clamp(1, i32::MAX as u128) as i32
                }
                None => -1,
            };
            let timeout_ms = match self.stopping {
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now()).as_millis().clamp(1, i32::MAX as u128);
                    if timeout_ms < 0 { left as i32 } else { timeout_ms.min(left as i32) }
                }
                None => timeout_ms,
            };
            let mut fds: Vec<libc::pollfd> =
                streams.iter().map(|(_, fd)| sys::pollfd(fd.as_raw_fd(), libc::POLLIN)).collect();
            let stop_slot = self.stop.as_ref().map(|s| {
                fds.push(sys::pollfd(s.wake_fd().as_raw_fd(), libc::POLLIN));
                fds.len() - 1
            });
            if let Some((fd, _, _)) = &self.spec {
                fds.push(sys::pollfd(fd.as_raw_fd(), libc::POLLOUT));
            }
            sys::poll(&mut fds, timeout_ms).map_err(|e| self.io("poll the helper's pipes", e))?;
            if self.spec.is_some() && fds.pop().is_some_and(|p| p.revents != 0) {
                self.write_spec();
            }
            if let Some(slot) = stop_slot {
                if fds.pop().is_some_and(|p| p.revents != 0) {
                    self.terminate_tree();
                }
                debug_assert_eq!(fds.len(), slot);
            }
            let mut closed = Vec::new();
            for (i, pfd) in fds.iter().enumerate() {
                if pfd.revents == 0 {
                    continue;
                }
                let (stream, fd) = &streams[i];
                match rustix::io::read(fd, &mut buf) {
                    Ok(0) => closed.push(i),
                    Ok(n) => match stream {
                        Some(s) => on_output(*s, &buf[..n]),
                        None if reports.len() + n <= REPORT_LIMIT => reports.extend_from_slice(&buf[..n]),
                        None => closed.push(i),
                    },
                    Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                    Err(e) => return Err(self.io("read from the helper", e.into())),
                }
            }
            for i in closed.into_iter().rev() {
                streams.remove(i);
            }
        }
        let reports = wire::parse_reports(&reports);
        // The helper closes its pipes only once init is reaped, and with it every process of
        // the sandbox: a report then says all there is to say. What the helper has left to do
        // is exit, which tears its mount namespace down (unmounting everything, then an RCU
        // grace period: milliseconds on a busy machine), and nothing here depends on that. Its
        // exit status is needed only when it said nothing, or was killed.
        let status = if reports.is_empty() || timed_out {
            Some(self.wait()?)
        } else {
            self.reap_in_background();
            None
        };
        self.restore_terminal();
        verdict(&reports, timed_out, &self.root, &self.helper, status)
    }

    /// Reaps the helper on a thread of its own, so that its exit is not waited for here.
    fn reap_in_background(&mut self) {
        let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) else { return };
        let reaper = std::thread::Builder::new().name("sandbox-reaper".into()).spawn(move || {
            while let Err(rustix::io::Errno::INTR) = rustix::process::waitpid(Some(pid), WaitOptions::empty()) {}
        });
        match reaper {
            Ok(_) => self.reaped_elsewhere = true,
            // No thread to be had: waited for here, as it always was.
            Err(_) => {
                let _ = self.wait();
            }
        }
    }

    /// A stop was asked for: SIGTERM to every process the command started (not to the helper
    /// or init, which must live to report the command's status), SIGKILL after the grace.
    fn terminate_tree(&mut self) {
        self.stop = None;
        self.stopping = Some(Instant::now() + stop::GRACE);
        let helper = self.child.id() as i32;
        let below_init: Vec<i32> =
            stop::descendants(helper).into_iter().filter(|(_, parent)| *parent != helper).map(|(p, _)| p).collect();
        stop::signal_all(&below_init, rustix::process::Signal::TERM);
    }

    /// The grace is over: SIGKILL to the helper, whose death ends init and (in chroot
    /// isolation) the PID namespace, then to whatever was below it (without a PID namespace,
    /// nothing else would end it). The helper goes first: it must not live to report init's
    /// death as a failure of the sandbox.
    fn kill_tree(&mut self) {
        let helper = self.child.id() as i32;
        let below: Vec<i32> = stop::descendants(helper).into_iter().map(|(p, _)| p).collect();
        let _ = self.child.kill();
        stop::signal_all(&below, rustix::process::Signal::KILL);
    }

    /// Writes as much of the spec as the pipe takes; closes it when done, or when the helper
    /// is gone (its exit is diagnosed from the missing reports).
    fn write_spec(&mut self) {
        let Some((fd, json, written)) = &mut self.spec else { return };
        loop {
            match rustix::io::write(&*fd, &json[*written..]) {
                Ok(n) => {
                    *written += n;
                    if *written == json.len() {
                        self.spec = None;
                        return;
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return,
                Err(_) => {
                    self.spec = None;
                    return;
                }
            }
        }
    }

    fn wait(&mut self) -> Result<std::process::ExitStatus, SandboxError> {
        loop {
            match self.child.wait() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other.map_err(|e| self.io("wait for the helper", e)),
            }
        }
    }

    fn restore_terminal(&self) {
        if let Some(t) = &self.terminal {
            let _ = rustix::termios::tcsetattr(io::stdin(), rustix::termios::OptionalActions::Now, t);
        }
    }

    fn io(&self, context: &str, source: io::Error) -> SandboxError {
        SandboxError::Io { root: self.root.clone(), context: context.into(), source }
    }
}

impl Drop for Launch {
    /// On an early return the helper (and so the namespace) must not outlive the run.
    fn drop(&mut self) {
        if self.reaped_elsewhere {
            return;
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.restore_terminal();
        }
    }
}

/// Turns the helper's reports into the run's result. Failures of the sandbox come first: an
/// exec failure is followed by init reporting the child's exit status 127.
fn verdict(
    reports: &[Report],
    timed_out: bool,
    root: &Path,
    helper: &Path,
    status: Option<std::process::ExitStatus>,
) -> Result<RunOutcome, SandboxError> {
    for r in reports {
        match r {
            Report::Setup { message } => {
                return Err(SandboxError::Setup { root: root.into(), message: message.clone() });
            }
            Report::NotFound { program } => return Err(SandboxError::ExecutableNotFound { program: program.clone() }),
            Report::ExecFailed { program, message } => {
                return Err(SandboxError::Exec { program: program.clone(), message: message.clone() });
            }
            _ => {}
        }
    }
    // A command that finished just as the deadline passed has a real status: use it.
    for r in reports {
        match r {
            Report::Exited { code } => return Ok(RunOutcome { exit_code: *code, timed_out: false }),
            Report::Signaled { signal } => return Ok(RunOutcome { exit_code: 128 + signal, timed_out: false }),
            _ => {}
        }
    }
    if timed_out {
        return Ok(RunOutcome { exit_code: TIMEOUT_EXIT_CODE, timed_out: true });
    }
    let status = status.map_or_else(|| "unknown".to_string(), |s| s.to_string());
    Err(SandboxError::HelperDied { helper: helper.into(), status })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn judge(reports: &[Report], timed_out: bool) -> Result<RunOutcome, SandboxError> {
        verdict(reports, timed_out, Path::new("/r"), Path::new("/h"), Some(std::process::ExitStatus::from_raw(0)))
    }

    #[test]
    fn exit_statuses_become_outcomes() {
        assert_eq!(judge(&[Report::Exited { code: 3 }], false).unwrap(), RunOutcome { exit_code: 3, timed_out: false });
        assert_eq!(judge(&[Report::Signaled { signal: 9 }], false).unwrap().exit_code, 137);
    }

    #[test]
    fn sandbox_failures_win_over_the_exit_status_they_cause() {
        let r = judge(&[Report::NotFound { program: "foo".into() }, Report::Exited { code: 127 }], false);
        assert_eq!(r.unwrap_err().to_string(), "executable not found in PATH: foo");
        let r = judge(&[Report::Setup { message: "mount proc on /proc: EPERM".into() }], false);
        assert_eq!(r.unwrap_err().to_string(), "sandbox set-up for build root /r failed: mount proc on /proc: EPERM");
    }

    #[test]
    fn a_timeout_without_a_status_is_137_and_a_late_status_is_kept() {
        assert_eq!(judge(&[], true).unwrap(), RunOutcome { exit_code: 137, timed_out: true });
        assert_eq!(judge(&[Report::Exited { code: 0 }], true).unwrap(), RunOutcome { exit_code: 0, timed_out: false });
    }

    #[test]
    fn silence_without_a_timeout_means_the_helper_died() {
        assert!(matches!(judge(&[], false), Err(SandboxError::HelperDied { .. })));
    }
}
