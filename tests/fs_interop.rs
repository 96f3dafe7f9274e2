//! Interoperability with an independent implementation: umoci writes layers (with its own
//! whiteouts) that trowel applies, and umoci applies layers (whiteouts, opaque directories,
//! hardlinks) that trowel wrote. Both results are compared with the source tree.

mod fs_support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::Path;
use std::process::Command;

use fs_support::{Scratch, assert_same_tree, tree};
use trowel_engine::digest::Digest;
use trowel_engine::fs::{
    IgnoreList, LayerInfo, LayerOptions, SnapshotMode, Snapshotter, UnpackOptions, open_layer, unpack_layer,
    write_layer,
};
use trowel_engine::image::store::BlobStore;

fn umoci(args: &[&str], dir: &Path) {
    let out = Command::new("umoci").args(args).current_dir(dir).output().expect("umoci is installed");
    assert!(out.status.success(), "umoci {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn populate(r: &Path) {
    fs::create_dir_all(r.join("usr/bin")).unwrap();
    fs::create_dir_all(r.join("etc/conf.d")).unwrap();
    fs::create_dir_all(r.join("var/cache/app")).unwrap();
    fs::write(r.join("usr/bin/tool"), b"tool").unwrap();
    fs::set_permissions(r.join("usr/bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(r.join("usr/bin/tool"), r.join("usr/bin/tool-alias")).unwrap();
    symlink("tool", r.join("usr/bin/t")).unwrap();
    fs::write(r.join("etc/conf.d/a"), b"a").unwrap();
    fs::write(r.join("etc/conf.d/b"), b"b").unwrap();
    fs::write(r.join("etc/motd"), b"hello").unwrap();
    lchown(r.join("etc/motd"), Some(1000), Some(1000)).unwrap();
    fs::write(r.join("var/cache/app/blob"), b"cached").unwrap();
}

/// Deletions, a re-created directory, a type change and edits.
fn mutate(r: &Path) {
    fs::remove_file(r.join("etc/motd")).unwrap();
    fs::remove_dir_all(r.join("etc/conf.d")).unwrap();
    fs::create_dir(r.join("etc/conf.d")).unwrap();
    fs::write(r.join("etc/conf.d/c"), b"c").unwrap();
    fs::remove_dir_all(r.join("var/cache")).unwrap();
    fs::write(r.join("var/cache"), b"now a file").unwrap();
    fs::write(r.join("usr/bin/tool"), b"tool v2").unwrap();
    fs::write(r.join("new"), b"new").unwrap();
}

/// The uncompressed layers of the image `tag` in an OCI layout, in order.
fn layout_layers(layout: &Path, tag: &str) -> Vec<std::path::PathBuf> {
    let index: serde_json::Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(m["digest"].as_str().unwrap())).unwrap()).unwrap();
    manifest["layers"].as_array().unwrap().iter().map(|l| blob(l["digest"].as_str().unwrap())).collect()
}

#[test]
fn trowel_applies_umoci_layers() {
    let s = Scratch::new();
    let work = s.dir.path();
    umoci(&["init", "--layout", "root-layout"], work);
    umoci(&["new", "--image", "root-layout:t"], work);
    umoci(&["unpack", "--image", "root-layout:t", "root-bundle"], work);
    let src = work.join("root-bundle/rootfs");
    populate(&src);
    umoci(&["repack", "--refresh-bundle", "--image", "root-layout:t", "root-bundle"], work);
    mutate(&src);
    umoci(&["repack", "--refresh-bundle", "--image", "root-layout:t", "root-bundle"], work);
    let layers = layout_layers(&work.join("root-layout"), "t");
    assert_eq!(layers.len(), 2);
    let dst = s.other_root("root-dst");
    let opts = UnpackOptions { preserve_owner: true, ..UnpackOptions::default() };
    let mut whiteouts = 0;
    for l in layers {
        whiteouts += unpack_layer(&dst, open_layer(fs::File::open(l).unwrap()).unwrap(), &opts).unwrap().whiteouts;
    }
    assert!(whiteouts >= 2, "umoci's second layer carries whiteouts");
    // The reference is umoci applying its own layers (not the bundle it packed: umoci rounds
    // mtimes to the second when writing them). A directory that a layer's whiteouts change
    // without the layer declaring it gets the time of the unpack, so directory mtimes are
    // only comparable with the source.
    let strip = |mut t: BTreeMap<String, fs_support::Node>, all: bool| {
        t.values_mut().filter(|n| all || n.kind == "dir").for_each(|n| n.mtime = 0);
        t
    };
    umoci(&["unpack", "--image", "root-layout:t", "root-reference"], work);
    assert_same_tree(&strip(tree(&work.join("root-reference/rootfs")), false), &strip(tree(dst.host_path()), false));
    // And apart from mtimes, it is the tree that was packed.
    assert_same_tree(&strip(tree(&src), true), &strip(tree(dst.host_path()), true));
}

fn put_json(store: &BlobStore, v: &serde_json::Value) -> (Digest, u64) {
    let bytes = serde_json::to_vec(v).unwrap();
    (store.put(&bytes).unwrap(), bytes.len() as u64)
}

#[test]
fn umoci_applies_trowel_layers() {
    let s = Scratch::new();
    let work = s.dir.path();
    let layout = work.join("root-layout");
    let store = BlobStore::open(layout.join("blobs")).unwrap();
    let root = s.root();
    populate(root.host_path());
    let mut snap = Snapshotter::new(root.try_clone().unwrap(), SnapshotMode::Full, IgnoreList::default());
    let mut layers: Vec<LayerInfo> = Vec::new();
    let mut c = snap.snapshot().unwrap();
    layers.push(write_layer(&root, &mut c, &store, &LayerOptions::default()).unwrap());
    mutate(root.host_path());
    let mut c = snap.snapshot().unwrap();
    assert!(c.entries.iter().any(|e| e.path == "/etc/conf.d" && e.opaque));
    layers.push(write_layer(&root, &mut c, &store, &LayerOptions::default()).unwrap());

    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
    });
    let (cd, cs) = put_json(&store, &config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cs},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l.digest.to_string(), "size": l.size,
        })).collect::<Vec<_>>(),
    });
    let (md, ms) = put_json(&store, &manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": ms,
                       "annotations": {"org.opencontainers.image.ref.name": "t"}}],
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    umoci(&["unpack", "--image", "root-layout:t", "root-bundle"], work);
    assert_same_tree(&tree(root.host_path()), &tree(&work.join("root-bundle/rootfs")));
}
