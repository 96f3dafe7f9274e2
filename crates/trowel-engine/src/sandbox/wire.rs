//! What trowel and its sandbox helper say to each other.
//!
//! trowel writes one [`HelperSpec`] as JSON into an inherited pipe and closes it. The helper,
//! init and the command child (until its `execve`) write [`Report`]s back into a second pipe,
//! one JSON object per line. Each report goes out in a single `write` of less than `PIPE_BUF`
//! bytes, so reports from different processes never interleave.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::mounts::{Mount, Network};
use super::{StdioMode, UserIds};

/// Everything the helper needs; the parent has validated it and prepared the mount points.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct HelperSpec {
    /// The build root, absolute and canonical.
    pub root: PathBuf,
    pub setup: Setup,
    /// `RUN --network=none` gets a network namespace of its own.
    pub network: Network,
    pub command: CommandSpec,
}

/// How the helper isolates the command (one variant per [`Isolation`](super::Isolation)).
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Setup {
    Chroot(ChrootPlan),
    /// Nothing to set up: the command runs in trowel's own container, whose `/` is the root.
    Container,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ChrootPlan {
    pub hostname: String,
    /// Mount a read-only sysfs on `/sys` (false when the root has no usable `/sys`).
    pub sys: bool,
    /// Rootless isolation: the helper runs as root of a user namespace, which may not mount
    /// sysfs (its network namespace belongs to the host): the host's `/sys` is bound read-only
    /// instead.
    #[serde(default)]
    pub userns: bool,
    /// Generated files bind-mounted read-only over paths inside the root.
    pub files: Vec<EtcFile>,
    /// `RUN --mount`s, attached after everything above.
    pub mounts: Vec<Mount>,
    /// `RUN --security=insecure`: `/proc` and `/sys` neither read-only nor masked (the
    /// capabilities are kept too: see [`CommandSpec::restrict_caps`]).
    pub privileged: bool,
    /// The inherited descriptor of the template mount namespace (`template.rs`), when the root
    /// is entered from it rather than by `pivot_root`.
    #[serde(default)]
    pub template_fd: Option<i32>,
}

/// A generated file (`/etc/hosts`, `/etc/resolv.conf`) and where it goes.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct EtcFile {
    /// Absolute path inside the root.
    pub target: String,
    pub content: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CommandSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub user: UserIds,
    pub stdio: StdioMode,
    /// Narrow capabilities to Docker's default set before exec (chroot isolation). A pod's
    /// container has no CAP_SETPCAP and is already confined, so container isolation does not.
    pub restrict_caps: bool,
}

/// A message from the helper side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Report {
    /// The sandbox could not be set up; the command never ran.
    Setup { message: String },
    /// `argv[0]` was not found in `PATH`.
    NotFound { program: String },
    /// `execve` of the program failed.
    ExecFailed { program: String, message: String },
    /// The command exited with this status.
    Exited { code: i32 },
    /// The command was killed by this signal.
    Signaled { signal: i32 },
}

/// Longest text field sent in a report; keeps every report well under `PIPE_BUF` (4096).
const MAX_FIELD: usize = 1024;

fn clip(s: &str) -> String {
    if s.len() <= MAX_FIELD {
        return s.to_string();
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Report {
    fn clipped(&self) -> Report {
        match self {
            Report::Setup { message } => Report::Setup { message: clip(message) },
            Report::NotFound { program } => Report::NotFound { program: clip(program) },
            Report::ExecFailed { program, message } => {
                Report::ExecFailed { program: clip(program), message: clip(message) }
            }
            other => other.clone(),
        }
    }

    /// Writes the report as one line with one `write`. Failure is ignored: it means trowel is
    /// gone, and then nobody is left to tell.
    pub fn send(&self, fd: BorrowedFd<'_>) {
        let Ok(mut line) = serde_json::to_vec(&self.clipped()) else { return };
        line.push(b'\n');
        loop {
            match rustix::io::write(fd, &line) {
                Err(rustix::io::Errno::INTR) => continue,
                _ => return,
            }
        }
    }
}

/// Splits the report stream into reports. A line that does not parse is turned into a
/// [`Report::Setup`] so that a broken helper is reported rather than ignored.
pub(super) fn parse_reports(bytes: &[u8]) -> Vec<Report> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l).unwrap_or_else(|e| Report::Setup {
                message: format!("unreadable report from the helper ({e}): {}", clip(&String::from_utf8_lossy(l))),
            })
        })
        .collect()
}

/// Reads a file descriptor to its end (the spec pipe), refusing more than `limit` bytes.
pub(super) fn read_all(fd: BorrowedFd<'_>, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                if out.len() + n > limit {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("more than {limit} bytes")));
                }
                out.extend_from_slice(&buf[..n]);
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_line_by_line() {
        let reports = vec![
            Report::Setup { message: "mount proc on /proc: EPERM".into() },
            Report::NotFound { program: "foo".into() },
            Report::Exited { code: 3 },
            Report::Signaled { signal: 9 },
        ];
        let mut bytes = Vec::new();
        for r in &reports {
            bytes.extend(serde_json::to_vec(r).unwrap());
            bytes.push(b'\n');
        }
        assert_eq!(parse_reports(&bytes), reports);
    }

    #[test]
    fn garbage_becomes_a_setup_report() {
        let r = parse_reports(b"{\"Exited\":{\"code\":0}}\nnot json\n");
        assert_eq!(r[0], Report::Exited { code: 0 });
        assert!(matches!(&r[1], Report::Setup { message } if message.contains("not json")));
    }

    #[test]
    fn long_fields_are_clipped_on_a_char_boundary() {
        let long = "é".repeat(3000);
        let Report::Setup { message } = (Report::Setup { message: long }).clipped() else { panic!() };
        assert!(message.len() <= MAX_FIELD + '…'.len_utf8());
        let line =
            serde_json::to_vec(&Report::ExecFailed { program: "x".repeat(5000), message: "y".repeat(5000) }.clipped())
                .unwrap();
        assert!(line.len() < 4096);
    }
}
