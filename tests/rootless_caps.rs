//! File capabilities survive a rootless build (issue 19): a base layer carrying one in its tar
//! (`SCHILY.xattr.security.capability`, as Docker and BuildKit write it) and a RUN that sets one
//! with `setcap`, built by the ordinary user `trowel-rl` (rootless isolation) and by root
//! (chroot isolation), both `--reproducible`.
//!
//! Why it could go wrong: inside a user namespace the kernel stores a capability as version 3,
//! holding the namespace's root id (the user's uid on the host), and shows version 2 to readers
//! inside that namespace. trowel unpacks and snapshots inside it, so its layer must hold what a
//! root build's holds — version 2, no host id — and the digests must agree. Checked with
//! independent readers: the layer's tar headers read with the `tar` crate, umoci's unpack (as
//! root) read with `getcap`, and `getcap` inside the RUN itself.
//!
//! The base is Debian's minbase (`scripts/make-debian-image.sh`: it has libcap2) plus one layer
//! made here: the machine's `setcap` and `getcap` (Debian's libcap2-bin, for the RUN; the test
//! bases have none) and a file with `cap_net_raw+ep` in its header, pushed with skopeo.

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::rootless::{WITH_RANGE, Workspace, ok, user};
use common::*;

/// `security.capability` version 2 (`VFS_CAP_REVISION_2`, effective flag set) granting
/// capability `bit` permitted: what `setcap cap_x+ep` writes outside a user namespace.
fn cap_v2(bit: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(0x0200_0000u32 | 0x1).to_le_bytes());
    v.extend_from_slice(&(1u32 << bit).to_le_bytes()); // permitted, low word
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable, low word
    v.extend_from_slice(&0u32.to_le_bytes()); // permitted, high word
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable, high word
    v
}

const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_NET_RAW: u32 = 13;

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// The tar of the base's extra layer: setcap, getcap and the capable file.
fn extra_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut entry = |path: &str, content: &[u8], mode: u32, cap: Option<Vec<u8>>| {
        if let Some(cap) = cap {
            b.append_pax_extensions([("SCHILY.xattr.security.capability", cap.as_slice())]).unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(content.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, content).unwrap();
    };
    for tool in ["setcap", "getcap"] {
        entry(&format!("usr/local/sbin/{tool}"), &fs::read(format!("/usr/sbin/{tool}")).unwrap(), 0o755, None);
    }
    entry("usr/local/bin/capped", b"#!/bin/sh\necho capped\n", 0o755, Some(cap_v2(CAP_NET_RAW)));
    b.into_inner().unwrap()
}

/// Debian minbase plus [`extra_layer`], pushed as `<registry>/<repo>:base` with skopeo.
fn push_base(repo: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    ok(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{}", debian_image("minbase")),
        &format!("oci:{}:base", layout.display()),
    ]));
    let index = json(&layout.join("index.json"));
    let mut manifest = json(&blob(&layout, index["manifests"][0]["digest"].as_str().unwrap()));
    let mut config = json(&blob(&layout, manifest["config"]["digest"].as_str().unwrap()));
    let put = |bytes: &[u8]| {
        let digest = format!("sha256:{}", sha256_hex(bytes));
        fs::write(blob(&layout, &digest), bytes).unwrap();
        (digest, bytes.len())
    };
    let tar = extra_layer();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let (layer, size) = put(&gz.finish().unwrap());
    config["rootfs"]["diff_ids"].as_array_mut().unwrap().push(format!("sha256:{}", sha256_hex(&tar)).into());
    config["history"].as_array_mut().unwrap().push(serde_json::json!({"created_by": "rootless_caps: a capable file"}));
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config_size.into();
    manifest["layers"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": size,
    }));
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let (manifest_digest, manifest_size) = put(&manifest_bytes);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest_size,
        "annotations": {"org.opencontainers.image.ref.name": "capbase"},
    }]});
    fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let reference = format!("{}/{repo}:base", env().registry);
    ok(Command::new("skopeo").args([
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &format!("oci:{}:capbase", layout.display()),
        &format!("docker://{reference}"),
    ]));
    reference
}

/// Every `security.capability` in the image's last layer, by path, as its tar headers hold it.
fn capabilities_in_last_layer(reference: &str) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    ok(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:img", layout.display()),
    ]));
    let index = json(&layout.join("index.json"));
    let manifest = json(&blob(&layout, index["manifests"][0]["digest"].as_str().unwrap()));
    let last = manifest["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_string();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(blob(&layout, &last)).unwrap()).read_to_end(&mut raw).unwrap();
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(raw.as_slice());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                if x.key().unwrap() == "SCHILY.xattr.security.capability" {
                    out.push((path.clone(), x.value_bytes().to_vec()));
                }
            }
        }
    }
    out
}

#[test]
fn file_capabilities_survive_a_rootless_build() {
    let repo = unique_repo("rootless-caps");
    let base = push_base(&repo);
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write(
        "ctx/Dockerfile",
        &format!(
            "FROM {base}\n\
             RUN cp /bin/true /usr/local/bin/set-in-run \
             && setcap cap_net_bind_service+ep /usr/local/bin/set-in-run \
             && getcap /usr/local/bin/capped /usr/local/bin/set-in-run > /getcap-in-run\n"
        ),
    );
    let (dest, root_dest) = (format!("{}/{repo}:user", env().registry), format!("{}/{repo}:root", env().registry));
    let o = ok(ws
        .trowel()
        .args(["build", "--reproducible", "--destination", &dest, "--context"])
        .arg(ws.path("ctx"))
        .arg("--digest-file")
        .arg(ws.path("digest")));
    assert!(stderr(&o).contains("RUN isolation: rootless"), "{}", stderr(&o));
    let root_digest = tempfile::NamedTempFile::new().unwrap();
    assert_ok(&run(trowel()
        .args(["build", "--reproducible", "--isolation=chroot", "--destination", &root_dest, "--context"])
        .arg(ws.path("ctx"))
        .arg("--digest-file")
        .arg(root_digest.path())));
    let digest = |p: &Path| fs::read_to_string(p).unwrap().trim().to_string();
    assert_eq!(digest(&ws.path("digest")), digest(root_digest.path()), "rootless and root builds differ");

    // The RUN saw both capabilities, the base layer's after trowel unpacked it in the namespace.
    let unpacked = pull_and_unpack(&dest);
    assert_eq!(
        Tree::content(&unpacked.rootfs(), "/getcap-in-run"),
        "/usr/local/bin/capped cap_net_raw=ep\n/usr/local/bin/set-in-run cap_net_bind_service=ep\n"
    );
    // The RUN's layer holds version 2, as root's does: no id of the host in it.
    let caps = capabilities_in_last_layer(&dest);
    assert_eq!(caps, vec![("usr/local/bin/set-in-run".to_string(), cap_v2(CAP_NET_BIND_SERVICE))]);
    // And an independent unpacker, as root, gives both files their capability back.
    for (path, want) in
        [("usr/local/bin/capped", "cap_net_raw=ep"), ("usr/local/bin/set-in-run", "cap_net_bind_service=ep")]
    {
        let o = ok(Command::new("getcap").arg(unpacked.rootfs().join(path)));
        assert!(stdout(&o).trim_end().ends_with(want), "{path}: {}", stdout(&o));
    }
}
