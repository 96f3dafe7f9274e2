//! Layers overlayfs must represent exactly (whiteouts, opaque directories, hard links to lower
//! files, a path named twice), what it cannot hold, and a cache dir it cannot use: mounted as
//! they unpack, or unpacked with the reason said; and the debugger's "before" of such paths.

use super::*;

#[test]
fn a_layer_with_whiteouts_opaque_dirs_and_links_to_lower_files_mounts_as_it_unpacks() {
    // Written by hand, as other tools write layers: a whiteout of a lower symlink and of a
    // lower directory, an opaque /etc with one new file, a hard link to a lower file.
    use tar::EntryType::{Directory, Link, Regular};
    let layer = hand_layer(&[
        ("bin/.wh.cat", Regular, b"", None),
        ("var/.wh.tmp", Regular, b"", None),
        ("etc/", Directory, b"", None),
        ("etc/.wh..wh..opq", Regular, b"", None),
        ("etc/hostname", Regular, b"layered\n", None),
        ("usr/bin/hl", Link, b"", Some("bin/busybox")),
    ]);
    let base = hardening_support::push_image(&unique_repo("store-whiteouts"), &layer).reference;
    let df = format!(
        "FROM {base}\nRUN ls -a /etc > /etc-seen && test ! -e /bin/cat && test ! -e /var/tmp && ls -i /usr/bin/hl /bin/busybox | awk '{{print $1}}' | uniq | wc -l > /links && echo more >> /etc/hostname\n"
    );
    let cache = tempfile::Builder::new().prefix("trowel-store-cache-").tempdir_in("/var/tmp").unwrap();
    let plain = Build::new(&df, None).run(&["--destination", &dest("store-wh-plain")]);
    let dest1 = dest("store-wh");
    let stored = Build::new(&df, None).run(&["--cache-dir", cache.path().to_str().unwrap(), "--destination", &dest1]);
    assert_eq!(stored.unpacked[0]["from_store"].as_u64(), Some(0), "{:?}", stored.unpacked);
    assert_eq!(stored.digest, plain.digest);
    let img = pull_and_unpack(&dest1);
    let read = |p: &str| std::fs::read_to_string(img.rootfs().join(p)).unwrap();
    // Only what the layer wrote is left of /etc (the sandbox adds its hosts and resolv.conf).
    let etc: Vec<&str> = read("etc-seen").leak().lines().collect();
    assert!(etc.contains(&"hostname") && !etc.contains(&"passwd") && !etc.contains(&"group"), "{etc:?}");
    assert_eq!(read("links").trim(), "1", "the hard link to a lower file is one file");
    assert_eq!(read("etc/hostname"), "layered\nmore\n");
}

#[test]
fn what_overlayfs_cannot_hold_is_unpacked_with_the_reason_said() {
    // A character device 0:0 is a whiteout to overlayfs, which refuses to create one.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("zero-zero").unwrap();
    h.set_entry_type(tar::EntryType::Char);
    h.set_device_major(0).unwrap();
    h.set_device_minor(0).unwrap();
    h.set_size(0);
    h.set_mode(0o600);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    tar.append(&h, &[][..]).unwrap();
    let layer = hardening_support::ExtraLayer::from_tar(&tar.into_inner().unwrap());
    let base = hardening_support::push_image(&unique_repo("store-dev00"), &layer).reference;
    let df = format!("FROM {base}\nRUN test -c /zero-zero && echo ok > /seen\n");
    let cache = tempfile::Builder::new().prefix("trowel-store-cache-").tempdir_in("/var/tmp").unwrap();
    let plain = Build::new(&df, None).run(&["--destination", &dest("store-dev-plain")]);
    let done = Build::new(&df, None).run(&[
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--destination",
        &dest("store-dev"),
    ]);
    assert_eq!(done.digest, plain.digest);
    let why = done.unpacked[0]["store_unused"].as_str().unwrap();
    assert!(why.contains("device node") && why.contains("zero-zero"), "{why}");
    assert!(done.unpacked[0]["from_store"].is_null());
    // Only complete entries are ever in the store: the layer below made one, the refused layer none.
    assert_eq!(std::fs::read_dir(cache.path().join("unpacked/sha256")).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(cache.path().join("unpacked/tmp")).unwrap().count(), 0);
}

#[test]
fn a_cache_dir_overlayfs_cannot_write_falls_back_to_unpacking() {
    // An overlay's upper directory cannot be on overlayfs: a cache dir inside a mounted overlay
    // fails the store's probe.
    let t = tempfile::Builder::new().prefix("trowel-store-ovl-").tempdir_in("/var/tmp").unwrap();
    for d in ["l", "u", "w", "m"] {
        std::fs::create_dir(t.path().join(d)).unwrap();
    }
    let p = |d: &str| t.path().join(d).display().to_string();
    let o = run(Command::new("mount").args([
        "-t",
        "overlay",
        "overlay",
        "-o",
        &format!("lowerdir={},upperdir={},workdir={}", p("l"), p("u"), p("w")),
        &p("m"),
    ]));
    assert_ok(&o);
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(t.path().join("m"));
    let df = format!("FROM {}\nRUN echo hi > /hi\n", env().busybox());
    let done = Build::new(&df, None).run(&["--cache-dir", &p("m"), "--no-push"]);
    let why = done.unpacked[0]["store_unused"].as_str().unwrap();
    assert!(why.contains("overlayfs cannot be mounted from"), "{why}");
    assert!(done.log.contains("unpacked-layer store not used: overlayfs cannot be mounted"), "{}", done.log);
}

/// The debugger's "before" of a file that its layer holds as a hard link to a file of a layer
/// below (as a hand-written layer may have it) is that file's, read from the layer blobs as
/// from the store's entries: its own entry carries no content, and was shown as an empty file.
#[test]
fn the_before_of_a_hard_link_to_a_lower_file_is_that_file() {
    use tar::EntryType::{Directory, Link};
    let layer = hand_layer(&[
        ("data/", Directory, b"", None),
        ("data/group-link", Link, b"", Some("etc/group")),
        ("data/link-link", Link, b"", Some("data/group-link")),
    ]);
    let base = hardening_support::push_image(&unique_repo("store-lowerlink"), &layer).reference;
    let df = format!("FROM {base}\nRUN chmod 0600 /data/group-link && echo x >> /data/link-link\n");
    let cache = tempfile::Builder::new().prefix("trowel-store-cache-").tempdir_in("/var/tmp").unwrap();
    let plain = Build::new(&df, None).run(&["--destination", &dest("store-lowerlink-plain")]);
    let stored =
        Build::new(&df, None).run(&["--cache-dir", cache.path().to_str().unwrap(), "--destination", &dest("store-ll")]);
    let group = "root:x:0:";
    for (what, d) in [("blobs", &plain), ("store", &stored)] {
        for p in ["/data/group-link", "/data/link-link"] {
            let before = d.befores.iter().find(|b| b.starts_with(&format!("\"{p}\" before "))).expect(p);
            assert!(before.contains(group), "{what}: {p}: {before}");
        }
    }
    assert_eq!(plain.befores, stored.befores);
}

/// A layer that names a path more than once (as a hand-written or appended-to layer may): each
/// entry replaces the one before, and a hard link is to the file its target was when the link's
/// entry came, not to a later one of that name. The debugger's "before" of each path is what an
/// extraction makes of the layer, read from the layer blobs as from the store's entries.
#[test]
fn the_before_of_a_path_a_layer_names_twice_is_its_last_entry_before_it() {
    use tar::EntryType::{Directory, Link, Regular};
    let layer = hand_layer(&[
        ("data/", Directory, b"", None),
        ("data/t", Regular, b"one\n", None),
        ("data/t", Regular, b"two\n", None),
        // The link is to the second `t`: the third one replaces the name, not the file.
        ("data/l", Link, b"", Some("data/t")),
        ("data/t", Regular, b"three\n", None),
        ("data/m", Link, b"", Some("data/t")),
        // A link that a later file replaces is that file.
        ("data/r", Link, b"", Some("data/t")),
        ("data/r", Regular, b"own\n", None),
    ]);
    let base = hardening_support::push_image(&unique_repo("store-twice"), &layer).reference;
    let df = format!("FROM {base}\nRUN for f in t l m r; do echo x >> /data/$f; done\n");
    let cache = tempfile::Builder::new().prefix("trowel-store-cache-").tempdir_in("/var/tmp").unwrap();
    let plain = Build::new(&df, None).run(&["--destination", &dest("store-twice-plain")]);
    let stored =
        Build::new(&df, None).run(&["--cache-dir", cache.path().to_str().unwrap(), "--destination", &dest("store-tw")]);
    for (what, d) in [("blobs", &plain), ("store", &stored)] {
        for (p, was) in [("/data/t", "three"), ("/data/l", "two"), ("/data/m", "three"), ("/data/r", "own")] {
            let before = d.befores.iter().find(|b| b.starts_with(&format!("\"{p}\" before "))).expect(p);
            assert!(before.ends_with(&format!("before \"{was}\\n\"")), "{what}: {p}: {before}");
        }
    }
    assert_eq!(plain.befores, stored.befores);
    // What a `COPY --from` takes out of that layer (extracted, not unpacked whole) is the same.
    let df = format!("FROM {}\nCOPY --from={base} /data/t /data/l /data/m /data/r /got/\n", env().busybox());
    let got = dest("store-twice-copy");
    let done = Build::new(&df, None).run(&["--destination", &got]);
    assert_eq!(done.extracted.len(), 1, "{:?}", done.extracted);
    let img = pull_and_unpack(&got);
    for (f, was) in [("t", "three"), ("l", "two"), ("m", "three"), ("r", "own")] {
        assert_eq!(Tree::content(&img.rootfs(), &format!("/got/{f}")), format!("{was}\n"), "/got/{f}");
    }
}
