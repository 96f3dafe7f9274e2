//! The S3-compatible server of the `s3://` context tests: moto in server mode (PyPI, installed
//! under `target/` by `scripts/s3-emulator.sh`), started once per test binary by
//! `moto_server.py` on a free port of 127.0.0.1, filled through boto3 with the archives the
//! tests made, and checking every request's signature and IAM policy. It ends with the test
//! binary (it watches the binary's pid). When it cannot be installed or started, the tests fail
//! saying why: never a silent pass.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub const BUCKET: &str = "trowel-ctx";

pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// `[access key id, secret key]` of a user that may read the bucket's objects.
    pub builder: [String; 2],
    /// Of a user that may not.
    pub outsider: [String; 2],
    /// A role that may read them, for web identity.
    pub role_arn: String,
}

/// Starts the server with every file under `objects` in [`BUCKET`] (its relative path the
/// key). Called once, by the test binary's fixture.
pub fn start(objects: &Path) -> S3Server {
    let root = crate::common::repo_root();
    let o = Command::new(root.join("scripts/s3-emulator.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("scripts/s3-emulator.sh could not run ({e}): the s3:// tests need moto from PyPI"));
    assert!(
        o.status.success(),
        "scripts/s3-emulator.sh failed (see above): moto[server] and boto3 could not be installed from PyPI into \
         target/s3-emulator, and the s3:// context tests need them"
    );
    let python = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    let mut child = Command::new(&python)
        .arg(root.join("tests/s3_support/moto_server.py"))
        .arg(std::process::id().to_string())
        .arg(objects)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start moto with {}: {e}", python.display()));
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| {
        let status = child.wait().ok();
        panic!("moto did not start (exit {status:?}); run tests/s3_support/moto_server.py by hand to see why")
    });
    let pair = |k: &str| [v[k][0].as_str().unwrap().to_string(), v[k][1].as_str().unwrap().to_string()];
    S3Server {
        endpoint: v["endpoint"].as_str().unwrap().to_string(),
        builder: pair("builder"),
        outsider: pair("outsider"),
        role_arn: v["role_arn"].as_str().unwrap().to_string(),
    }
}

/// A directory for this binary's objects, kept until the test environment goes.
pub fn objects_dir() -> PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| tempfile::Builder::new().prefix("s3-").tempdir_in(&crate::common::env().dir).unwrap().keep())
        .clone()
}
