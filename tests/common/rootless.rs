//! Running trowel as an ordinary user, for the rootless tests: two users made once per machine
//! (idempotently, under a lock, so concurrent test binaries agree) — `trowel-rl` with a
//! subordinate uid/gid range in `/etc/subuid` and `/etc/subgid`, `trowel-rl1` with none — and a
//! workspace each test owns, handed to the user, where the build context, the cache dir, the
//! work dir and the trace live.
//!
//! The tests run as root (as the suite does); the user runs the trowel binary under test
//! through `setpriv`, with a clean environment (HOME, USER, PATH, TMPDIR only), so nothing of
//! root's leaks into the build.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::{assert_ok, run};

/// The user with a subordinate range.
pub const WITH_RANGE: &str = "trowel-rl";
/// The user without one (the single-id fallback).
pub const WITHOUT_RANGE: &str = "trowel-rl1";
/// The size of `trowel-rl`'s range: enough for Debian's system users, `nobody` (65534) included.
pub const RANGE_SIZE: u64 = 65536;

/// An ordinary user of this machine.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// The user `name`, made if missing (with a range when `range`); the answer is kept per process.
pub fn user(name: &'static str, range: bool) -> User {
    static USERS: OnceLock<std::sync::Mutex<Vec<User>>> = OnceLock::new();
    let mut users = USERS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(u) = users.iter().find(|u| u.name == name) {
        return u.clone();
    }
    let u = make_user(name, range);
    users.push(u.clone());
    u
}

/// Makes the user and its range under an exclusive lock (another test binary may be doing it).
fn make_user(name: &str, range: bool) -> User {
    let lock = std::fs::OpenOptions::new().create(true).append(true).open("/run/trowel-rootless-users.lock").unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let home = PathBuf::from(format!("/var/tmp/{name}-home"));
    if !run(Command::new("id").arg("-u").arg(name)).status.success() {
        assert_ok(&run(Command::new("useradd").args(["--create-home", "--home-dir"]).arg(&home).args([
            "--shell",
            "/bin/sh",
            "--user-group",
            name,
        ])));
    }
    let id = |flag: &str| -> u32 {
        let o = run(Command::new("id").arg(flag).arg(name));
        assert_ok(&o);
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    };
    let (uid, gid) = (id("-u"), id("-g"));
    // useradd may have given the user a range itself (SUB_UID_COUNT in login.defs): the one
    // without must really have none, the one with must have exactly one.
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let ours = |l: &str| l.split(':').next() == Some(name) || l.split(':').next() == Some(&uid.to_string());
        let has = text.lines().any(ours);
        if has && !range {
            let kept: String = text.lines().filter(|l| !ours(l)).map(|l| format!("{l}\n")).collect();
            std::fs::write(file, kept).unwrap();
        } else if !has && range {
            let start = free_start(&text);
            let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
            if !text.is_empty() && !text.ends_with('\n') {
                writeln!(f).unwrap();
            }
            writeln!(f, "{name}:{start}:{RANGE_SIZE}").unwrap();
        }
    }
    // The binary under test must be reachable by the user: every directory down to it.
    let mut dir = PathBuf::from(env!("CARGO_BIN_EXE_trowel"));
    while dir.pop() && dir != Path::new("/") {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        if mode & 0o005 != 0o005 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode | 0o005)).unwrap();
        }
    }
    User { name: name.to_string(), uid, gid, home }
}

/// A start for a new range that overlaps none in `text` and no real uid (above 1,000,000).
fn free_start(text: &str) -> u64 {
    let end = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(f.get(1)?.parse::<u64>().ok()? + f.get(2)?.parse::<u64>().ok()?)
        })
        .max()
        .unwrap_or(0);
    end.max(1_000_000)
}

/// A directory the user owns, removed (as root) when dropped.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub user: User,
}

impl Workspace {
    pub fn new(user: &User) -> Workspace {
        Workspace::new_in(user, Path::new("/var/tmp"))
    }

    /// A workspace under `parent` (which the user must be able to reach, as `/var/tmp`).
    pub fn new_in(user: &User, parent: &Path) -> Workspace {
        let dir = tempfile::Builder::new().prefix("trowel-rl-").tempdir_in(parent).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ws = Workspace { dir, user: user.clone() };
        for d in ["tmp", "cache", "ctx"] {
            std::fs::create_dir(ws.path(d)).unwrap();
        }
        ws.give();
        ws
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (relative to the workspace) and gives it to the user.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        self.give();
        p
    }

    /// Everything in the workspace to the user.
    pub fn give(&self) {
        assert_ok(&run(Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.user.uid, self.user.gid))
            .arg(self.dir.path())));
    }

    /// `trowel <args>` as the user, its TMPDIR (so its work dir) in the workspace.
    pub fn trowel(&self) -> Command {
        as_user(&self.user, env!("CARGO_BIN_EXE_trowel"), &self.path("tmp"))
    }
}

/// `program` as `user` with a clean environment.
pub fn as_user(user: &User, program: &str, tmp: &Path) -> Command {
    // By its path: the PATH given to the user may be a test's own (without the helpers).
    let mut c = Command::new("/usr/bin/setpriv");
    c.args(["--reuid", &user.uid.to_string(), "--regid", &user.gid.to_string(), "--init-groups", "--"])
        .arg(program)
        .env_clear()
        .env("HOME", &user.home)
        .env("USER", &user.name)
        .env("LOGNAME", &user.name)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("TMPDIR", tmp);
    // What the suite sets for every build (scripts/test.sh), a clean environment included.
    if let Some(v) = std::env::var_os("TROWEL_UNPACKED_STORE_MIN_SIZE") {
        c.env("TROWEL_UNPACKED_STORE_MIN_SIZE", v);
    }
    c
}

/// The output of a command, failing the test with both streams when it failed.
#[track_caller]
pub fn ok(cmd: &mut Command) -> Output {
    let o = run(cmd);
    assert_ok(&o);
    o
}
