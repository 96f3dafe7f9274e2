//! A build run in the background and stopped, for the `hardening_*` tests of signals and kills:
//! its log in a file, SIGTERM sent and the exit awaited within a bound, and what a stopped build
//! must not leave (a mount, a root in the work dir, a tag).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{assert_ok, run, trowel};

/// A build started in the background, its log going to a file.
pub struct Running {
    pub child: Child,
    pub log: PathBuf,
}

impl Running {
    pub fn start<S: AsRef<std::ffi::OsStr>>(ctx: &Path, args: &[S]) -> Running {
        Running::start_with("build", ctx.as_os_str(), &ctx.join("killed.log"), args, &[])
    }

    /// `trowel COMMAND --context CONTEXT ARGS` (`build` or `debug`; a directory or a remote
    /// context's URL), `vars` in its environment, its log at `log`.
    pub fn start_with<S: AsRef<std::ffi::OsStr>>(
        command: &str,
        context: &std::ffi::OsStr,
        log: &Path,
        args: &[S],
        vars: &[(&str, &str)],
    ) -> Running {
        let f = std::fs::File::create(log).unwrap();
        let child = trowel()
            .args([command, "--context"])
            .arg(context)
            .args(args)
            .envs(vars.iter().copied())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Running { child, log: log.to_path_buf() }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    #[track_caller]
    pub fn wait_for_log(&mut self, needle: &str) {
        let never = format!("{needle:?} never appeared");
        self.wait_until(&never, Duration::from_secs(60), Duration::from_millis(20), |b| b.log().contains(needle));
    }

    /// Looks at `done` every `every` until it holds, failing with `never` (and the log) once
    /// `within` has passed, or at once when the build ended first.
    #[track_caller]
    pub fn wait_until(&mut self, never: &str, within: Duration, every: Duration, done: impl Fn(&Running) -> bool) {
        let t0 = Instant::now();
        while !done(self) {
            assert!(self.child.try_wait().unwrap().is_none(), "the build ended early:\n{}", self.log());
            assert!(t0.elapsed() < within, "{never}:\n{}", self.log());
            std::thread::sleep(every);
        }
    }

    pub fn kill(mut self) -> String {
        assert!(self.child.try_wait().unwrap().is_none(), "the build ended before it was killed:\n{}", self.log());
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
        self.log()
    }
}

/// A test that fails half way leaves no build running on (hashing or copying gigabytes).
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Tags of a repository on the test registry (none if it does not exist).
pub fn tags(repo: &str) -> Vec<String> {
    let o = run(Command::new("skopeo").args(["list-tags", "--tls-verify=false", &format!("docker://{repo}")]));
    if !o.status.success() {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["Tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}

/// Mounts at or below `dir`.
pub fn mounts_below(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap().display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&dir)))
        .map(str::to_string)
        .collect()
}

pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[track_caller]
pub fn assert_no_tag(reference: &str) {
    let o = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{reference}")]));
    assert!(!o.status.success(), "{reference} is tagged after a killed push");
}

/// Sends SIGTERM to `child` and waits for it to end: within 5 s, where the stalled download or
/// upload it was in would have held it for 40.
#[track_caller]
pub fn sigterm_and_wait(child: &mut Child, log: impl Fn() -> String) -> std::process::ExitStatus {
    sigterm_and_wait_within(child, log, Duration::from_secs(5))
}

/// Sends SIGTERM once `b` is well inside its work (half a second in: the files open, the first
/// chunks read) and checks it ended within `bound` as a stopped build does: exit code 1,
/// `build aborted: SIGTERM received`. Its log.
#[track_caller]
pub fn stopped_as_aborted(b: &mut Running, bound: Duration) -> String {
    std::thread::sleep(Duration::from_millis(500));
    let path = b.log.clone();
    let t0 = Instant::now();
    let status = sigterm_and_wait_within(&mut b.child, || std::fs::read_to_string(&path).unwrap_or_default(), bound);
    let log = b.log();
    eprintln!("ended {:?} after SIGTERM", t0.elapsed());
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("build aborted: SIGTERM received"), "{log}");
    log
}

/// [`sigterm_and_wait`] with another bound on the wait.
#[track_caller]
pub fn sigterm_and_wait_within(
    child: &mut Child,
    log: impl Fn() -> String,
    bound: Duration,
) -> std::process::ExitStatus {
    assert!(child.try_wait().unwrap().is_none(), "it ended before the signal:\n{}", log());
    assert_ok(&run(Command::new("kill").args(["-TERM", &child.id().to_string()])));
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(t0.elapsed() < bound, "still running {bound:?} after SIGTERM:\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
}
