//! Docker credential helpers: a real `docker-credential-<name>` script on PATH speaking the
//! helper protocol (`get`, server URL on stdin, JSON on stdout) supplies the htpasswd registry's
//! credentials; a missing helper is a clear error.
//!
//! One test function on purpose: it puts its helper directory on PATH, which must happen before
//! any other thread of this process exists.

mod common;
#[path = "registry_util/mod.rs"]
mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use trowel_engine::image::manifest::{ManifestFormat, Platform};
use trowel_engine::image::store::BlobStore;
use trowel_engine::registry::{Reference, RegistryOptions};
use util::{opts, registry, rt, tiny_image};

/// A helper in the real protocol: answers `get` for `host` only, logs what it was asked.
fn write_helper(bin: &Path, name: &str, host: &str, user: &str, password: &str, log: &Path) {
    let script = format!(
        r#"#!/bin/sh
set -eu
[ "${{1:-}}" = get ] || {{ echo "unsupported action ${{1:-}}" >&2; exit 1; }}
# Like Docker, trowel sends the URL without a newline: read all of stdin.
url=$(cat)
echo "get $url" >> '{log}'
if [ "$url" != '{host}' ]; then
  echo "credentials not found in native keychain"
  exit 1
fi
printf '{{"ServerURL":"%s","Username":"%s","Secret":"%s"}}\n' "$url" '{user}' '{password}'
"#,
        log = log.display()
    );
    let p = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn credential_helpers_on_path() {
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    // SAFETY: this is the only test in this binary and no other thread has been started yet.
    unsafe { std::env::set_var("PATH", path) };

    let env = common::env();
    let log = work.path().join("helper.log");
    write_helper(&bin, "trowel-test", &env.auth_registry, &env.auth_user, &env.auth_password, &log);
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let img = tiny_image(&store, ManifestFormat::Oci, "via helper", ("amd64", None), 0);
    let r = Reference::parse(&format!("{}/{}:1", env.auth_registry, common::unique_repo("helper"))).unwrap();

    for (key, value) in [
        ("credHelpers", serde_json::json!({ env.auth_registry.clone(): "trowel-test" })),
        ("credsStore", serde_json::json!("trowel-test")),
    ] {
        let cfg = tempfile::tempdir().unwrap();
        // `auths` holds a wrong password: the helper must take precedence over it.
        let doc = serde_json::json!({
            key: value,
            "auths": { env.auth_registry.clone(): { "auth": "dHJvd2VsLXVzZXI6d3Jvbmc=" } },
        });
        std::fs::write(cfg.path().join("config.json"), doc.to_string()).unwrap();
        let reg = registry(RegistryOptions { docker_config: Some(cfg.path().to_path_buf()), ..opts() });
        rt.block_on(reg.push_image(&r, &img.push, &store, &|_| {})).unwrap_or_else(|e| panic!("{key}: {e}"));
        let back = rt.block_on(reg.resolve(&r, &Platform::parse("linux/amd64").unwrap())).unwrap();
        assert_eq!(back.manifest_bytes, img.push.manifest_bytes);
    }
    let asked = std::fs::read_to_string(&log).unwrap();
    // Asked with the registry's host, once per client (answers are cached).
    assert_eq!(asked, format!("get {0}\nget {0}\n", env.auth_registry));

    // A configured helper that is not installed.
    let cfg = tempfile::tempdir().unwrap();
    std::fs::write(cfg.path().join("config.json"), r#"{"credsStore":"ecr-login"}"#).unwrap();
    let reg = registry(RegistryOptions { docker_config: Some(cfg.path().to_path_buf()), retries: 0, ..opts() });
    let e = rt.block_on(reg.check_push_access(&r)).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "credential helper docker-credential-ecr-login not found in PATH (from credsStore in {})",
            cfg.path().join("config.json").display()
        )
    );
}
