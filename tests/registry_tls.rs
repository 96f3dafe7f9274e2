//! Transport decisions: a TLS registry trusted through `registry_certificates`, refused without
//! it, reached with `skip_tls_verify*`; loopback registries reached over TLS when they offer it
//! and plain HTTP otherwise with no flag; plain HTTP for a named host only with `insecure*`.

mod common;
#[path = "registry_util/mod.rs"]
mod util;

use trowel_engine::image::manifest::{ManifestFormat, Platform};
use trowel_engine::image::store::BlobStore;
use trowel_engine::registry::{Reference, Registry, RegistryOptions};
use util::{opts, registry, rt, tiny_image};

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

/// Pushes a tiny image to `registry_host` and resolves it back with the same client.
fn push_and_resolve(reg: &Registry, registry_host: &str) -> Result<(), trowel_engine::registry::RegistryError> {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let img = tiny_image(&store, ManifestFormat::Oci, "over tls", ("amd64", None), 0);
    let r = Reference::parse(&format!("{registry_host}/{}:1", common::unique_repo("tls"))).unwrap();
    let report = rt.block_on(reg.push_image(&r, &img.push, &store, &|_| {}))?;
    let back = rt.block_on(reg.resolve(&r, &amd64()))?;
    assert_eq!(back.manifest_digest, report.manifest_digest);
    Ok(())
}

#[test]
fn registry_certificate_makes_the_tls_registry_trusted() {
    let env = common::env();
    let reg =
        registry(RegistryOptions { registry_certificates: vec![(env.tls_registry.clone(), env.ca.clone())], ..opts() });
    push_and_resolve(&reg, &env.tls_registry).unwrap();
    // The bare host name (without port) selects the CA too.
    let host = env.tls_registry.split(':').next().unwrap().to_string();
    let reg = registry(RegistryOptions { registry_certificates: vec![(host, env.ca.clone())], ..opts() });
    push_and_resolve(&reg, &env.tls_registry).unwrap();
}

/// A streamed upload (the layer cache's, while a layer is written) goes over TLS like any push.
#[test]
fn streamed_uploads_go_over_tls() {
    let env = common::env();
    let reg =
        registry(RegistryOptions { registry_certificates: vec![(env.tls_registry.clone(), env.ca.clone())], ..opts() });
    let r = Reference::parse(&format!("{}/{}:1", env.tls_registry, common::unique_repo("tls-streamed"))).unwrap();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let digest = trowel_engine::digest::Digest::of(&data);
    assert_eq!(util::upload_streamed(&reg, &r, &data, 90_000, Some(digest.clone())).unwrap(), digest);
    assert!(rt().block_on(reg.blob_exists(&r, &digest)).unwrap());
}

#[test]
fn untrusted_certificate_is_a_clear_tls_error() {
    let env = common::env();
    let reg = registry(RegistryOptions { retries: 0, ..opts() });
    let r = Reference::parse(&format!("{}/x:1", env.tls_registry)).unwrap();
    let e = rt().block_on(reg.resolve(&r, &amd64())).unwrap_err().to_string();
    assert!(e.starts_with(&format!("pull {r}: cannot reach https://{}", env.tls_registry)), "{e}");
    assert!(e.contains("certificate") && e.contains("--registry-certificate"), "{e}");
}

#[test]
fn skip_tls_verify_flags() {
    let env = common::env();
    // Push side and pull side each have their own flag.
    let reg = registry(RegistryOptions { skip_tls_verify: true, skip_tls_verify_pull: true, ..opts() });
    push_and_resolve(&reg, &env.tls_registry).unwrap();
    let reg = registry(RegistryOptions { skip_tls_verify_registries: vec![env.tls_registry.clone()], ..opts() });
    push_and_resolve(&reg, &env.tls_registry).unwrap();
    // `skip_tls_verify` alone covers pulls too, as kaniko's `--skip-tls-verify` does.
    let reg = registry(RegistryOptions { skip_tls_verify: true, ..opts() });
    push_and_resolve(&reg, &env.tls_registry).unwrap();
    // Only the pull side skipped: the push still verifies and fails.
    let reg = registry(RegistryOptions { skip_tls_verify_pull: true, retries: 0, ..opts() });
    let e = push_and_resolve(&reg, &env.tls_registry).unwrap_err().to_string();
    assert!(e.starts_with("push ") && e.contains("certificate"), "{e}");
}

#[test]
fn loopback_registries_need_no_flags() {
    let env = common::env();
    let reg = registry(opts());
    // Plain HTTP on 127.0.0.1: HTTPS is tried first, then plain HTTP.
    push_and_resolve(&reg, &env.registry).unwrap();
    // The TLS registry addressed by its loopback address: TLS, certificate not checked.
    let port = env.tls_registry.rsplit(':').next().unwrap();
    let loopback_tls = format!("127.0.0.1:{port}");
    push_and_resolve(&reg, &loopback_tls).unwrap();
    // Forcing plain HTTP onto it shows that TLS is what made it work.
    let plain = registry(RegistryOptions { insecure_registries: vec![loopback_tls.clone()], retries: 0, ..opts() });
    let e = push_and_resolve(&plain, &loopback_tls).unwrap_err().to_string();
    assert!(e.contains("(400)") && e.contains("does it serve HTTPS"), "{e}");
}

#[test]
fn named_plain_http_registry_needs_insecure() {
    let env = common::env();
    // The plain registry under the TLS registry's name: not loopback by name, so HTTPS is
    // required unless a flag says otherwise.
    let port = env.registry.rsplit(':').next().unwrap();
    let named = format!("registry.trowel.test:{port}");
    let strict = registry(RegistryOptions { retries: 0, ..opts() });
    let e = push_and_resolve(&strict, &named).unwrap_err().to_string();
    assert!(e.contains("does not speak TLS") && e.contains("--insecure-registry"), "{e}");
    let insecure = registry(RegistryOptions { insecure: true, insecure_pull: true, ..opts() });
    push_and_resolve(&insecure, &named).unwrap();
    let listed = registry(RegistryOptions { insecure_registries: vec![named.clone()], ..opts() });
    push_and_resolve(&listed, &named).unwrap();
}
