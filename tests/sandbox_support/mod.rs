//! Shared by the sandbox integration tests: tiny root filesystems made from the host's static
//! busybox, and run specs for them.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use trowel_engine::sandbox::{DEFAULT_PATH, Isolation, Network, RunSpec, StdioMode, UserIds};

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n";
pub const GROUP: &str = "root:x:0:\napp:x:1000:\nextra:x:2000:app\ntty:x:5:\n";

/// A root filesystem with busybox and its applets; with `etc`, also /etc/passwd and /etc/group
/// (a user `app` with a supplementary group), /tmp and the home directories.
pub fn busybox_root(etc: bool) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("trowel-sandbox-test-").tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let list = std::process::Command::new("/bin/busybox").arg("--list-full").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        let path = root.join(applet);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        if !path.exists() {
            symlink("/bin/busybox", &path).unwrap();
        }
    }
    if etc {
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/passwd"), PASSWD).unwrap();
        fs::write(root.join("etc/group"), GROUP).unwrap();
        fs::create_dir_all(root.join("root")).unwrap();
        fs::create_dir_all(root.join("home/app")).unwrap();
        std::os::unix::fs::chown(root.join("home/app"), Some(1000), Some(1000)).unwrap();
        fs::create_dir_all(root.join("tmp")).unwrap();
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    }
    dir
}

pub fn spec(root: &Path, argv: &[&str]) -> RunSpec {
    RunSpec {
        root: root.to_path_buf(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("PATH".into(), DEFAULT_PATH.into()), ("HOME".into(), "/root".into())],
        cwd: "/".into(),
        user: UserIds::root(),
        hostname: "trowel-test".into(),
        isolation: Isolation::Chroot,
        stdio: StdioMode::Piped,
        timeout: Some(Duration::from_secs(120)),
        helper_exe: PathBuf::from(env!("CARGO_BIN_EXE_trowel")),
        extra_hosts: Vec::new(),
        mounts: Vec::new(),
        network: Network::Host,
        privileged: false,
        work_dir: None,
        stop: None,
    }
}

pub fn sh(root: &Path, script: &str) -> RunSpec {
    spec(root, &["sh", "-c", script])
}
