//! Authentication against the htpasswd registry with credentials from a Docker `config.json`:
//! pushes and pulls work, wrong or missing credentials fail clearly, and the password never
//! shows up in an error or in Debug output.

mod common;
#[path = "registry_util/mod.rs"]
mod util;

use trowel_engine::image::manifest::{ManifestFormat, Platform};
use trowel_engine::image::store::BlobStore;
use trowel_engine::registry::{Reference, RegistryError, RegistryOptions};
use util::{docker_config_with_auths, opts, registry, rt, tiny_image};

fn options_with_password(password: &str) -> (tempfile::TempDir, RegistryOptions) {
    let env = common::env();
    let cfg = tempfile::tempdir().unwrap();
    docker_config_with_auths(cfg.path(), &env.auth_registry, &env.auth_user, password);
    let o = RegistryOptions { docker_config: Some(cfg.path().to_path_buf()), retries: 0, ..opts() };
    (cfg, o)
}

fn auth_dest(tag: &str) -> Reference {
    Reference::parse(&format!("{}/{}:{tag}", common::env().auth_registry, common::unique_repo("auth"))).unwrap()
}

#[test]
fn auths_credentials_allow_push_and_pull() {
    let env = common::env();
    let (_cfg, o) = options_with_password(&env.auth_password);
    let reg = registry(o);
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let img = tiny_image(&store, ManifestFormat::Oci, "private", ("amd64", None), 0);
    let r = auth_dest("1");
    rt.block_on(reg.check_push_access(&r)).unwrap();
    let report = rt.block_on(reg.push_image(&r, &img.push, &store, &|_| {})).unwrap();
    let back = rt.block_on(reg.resolve(&r, &Platform::parse("linux/amd64").unwrap())).unwrap();
    assert_eq!(back.manifest_digest, report.manifest_digest);
    let pulled_dir = tempfile::tempdir().unwrap();
    let pulled = BlobStore::open(pulled_dir.path()).unwrap();
    rt.block_on(reg.fetch_blob(&r, &img.layer, &pulled, &|_, _| {})).unwrap();
    assert!(pulled.verify(&img.layer.digest).unwrap());
    // The client's Debug output shows options, never credentials.
    assert!(!format!("{reg:?}").contains(&env.auth_password));
}

#[test]
fn wrong_password_fails_clearly_without_leaking_it() {
    let wrong = "wrong-Pa55word-that-must-not-leak";
    let (_cfg, o) = options_with_password(wrong);
    let reg = registry(o);
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let img = tiny_image(&store, ManifestFormat::Oci, "nope", ("amd64", None), 0);
    let r = auth_dest("1");
    let errors: Vec<RegistryError> = vec![
        rt.block_on(reg.push_image(&r, &img.push, &store, &|_| {})).unwrap_err(),
        rt.block_on(reg.check_push_access(&r)).unwrap_err(),
        rt.block_on(reg.resolve(&r, &Platform::parse("linux/amd64").unwrap())).unwrap_err(),
    ];
    assert_eq!(errors[0].to_string(), format!("push {r}: unauthorized: authentication required"));
    assert_eq!(errors[1].to_string(), format!("check push access to {r}: unauthorized: authentication required"));
    assert_eq!(errors[2].to_string(), format!("pull {r}: unauthorized: authentication required"));
    for e in &errors {
        assert_eq!(e.status(), Some(401));
        let (shown, debug) = (e.to_string(), format!("{e:?}"));
        assert!(!shown.contains(wrong) && !debug.contains(wrong), "{shown} / {debug}");
        assert!(!debug.contains("Basic "), "{debug}");
    }
}

#[test]
fn no_credentials_says_so() {
    let reg = registry(RegistryOptions { retries: 0, ..opts() });
    let r = auth_dest("1");
    let e = rt().block_on(reg.check_push_access(&r)).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "check push access to {r}: unauthorized: authentication required (no credentials for {} in the docker config or the environment)",
            r.registry
        )
    );
}

/// A streamed upload (the layer cache's, while a layer is written) authenticates like any push.
#[test]
fn streamed_uploads_use_the_credentials() {
    let env = common::env();
    let (_cfg, o) = options_with_password(&env.auth_password);
    let reg = registry(o);
    let r = auth_dest("streamed");
    let data = vec![42u8; 1_500_000];
    let digest = trowel_engine::digest::Digest::of(&data);
    assert_eq!(util::upload_streamed(&reg, &r, &data, 100_000, Some(digest.clone())).unwrap(), digest);
    assert!(rt().block_on(reg.blob_exists(&r, &digest)).unwrap());
}
