//! Tests of `unpack/mod.rs`: entry paths, PAX times and the applier's rules.

use super::*;

/// Unpacked as the bottom layer of an overlay stack, a layer cannot give overlayfs
/// metadata: its `trusted.overlay.*` attributes are stored escaped, as an overlay stores
/// them, and a character device 0:0 (a whiteout to overlayfs) is refused.
#[test]
fn an_overlay_lower_gets_overlay_attributes_escaped_and_no_whiteout_devices() {
    if crate::sandbox::userns::effective_ids().0 != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let header = |path: &str, kind: EntryType| {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        h
    };
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..])]).unwrap();
    b.append(&header("d/", EntryType::Directory), &[][..]).unwrap();
    let with_attr = b.into_inner().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&header("wh", EntryType::Char), &[][..]).unwrap();
    let device = b.into_inner().unwrap();
    let opts = UnpackOptions { overlay_lower: true, allow_devices: true, ..UnpackOptions::default() };

    let t = tempfile::tempdir().unwrap();
    let root = Root::open(t.path()).unwrap();
    unpack_layer(&root, &with_attr[..], &opts).unwrap();
    assert_eq!(root.get_xattr("/d", "trusted.overlay.opaque").unwrap(), None);
    assert_eq!(root.get_xattr("/d", "trusted.overlay.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]));
    let err = unpack_layer(&root, &device[..], &opts).unwrap_err();
    assert!(matches!(err, FsError::DeviceNotAllowed { .. }), "{err}");
    assert!(root.lstat("/wh").unwrap().is_none());
    // Anywhere else both are what the layer says.
    let plain = UnpackOptions { overlay_lower: false, ..opts };
    unpack_layer(&root, &device[..], &plain).unwrap();
    unpack_layer(&root, &with_attr[..], &plain).unwrap();
    assert_eq!(root.get_xattr("/d", "trusted.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]));
}

#[test]
fn top_most_paths() {
    let v: Vec<String> = ["/a/b", "/a", "/c/d", "/c/d/e", "/ab"].iter().map(|s| s.to_string()).collect();
    assert_eq!(top_most(v.iter()), vec!["/a", "/ab", "/c/d"]);
}

#[test]
fn entry_paths() {
    assert_eq!(entry_path(b"./etc/passwd", "x", false).unwrap(), "/etc/passwd");
    assert_eq!(entry_path(b"./", "x", false).unwrap(), "/");
    assert_eq!(entry_path(b"usr/bin/", "x", false).unwrap(), "/usr/bin");
    assert!(matches!(entry_path(b"/etc/passwd", "x", false), Err(FsError::UnsafeEntry { .. })));
    assert!(matches!(entry_path(b"a/../../b", "x", false), Err(FsError::UnsafeEntry { .. })));
    // An ADD archive's names are read under the root, as BuildKit's chrooted untar reads them.
    assert_eq!(entry_path(b"/etc/passwd", "x", true).unwrap(), "/etc/passwd");
    assert_eq!(entry_path(b"a/../../b", "x", true).unwrap(), "/b");
    assert_eq!(entry_path(b"../up", "x", true).unwrap(), "/up");
    assert_eq!(entry_path(b"./", "x", true).unwrap(), "/");
    assert!(matches!(entry_path(b"a\0b", "x", true), Err(FsError::UnsafeEntry { .. })));
    assert!(matches!(entry_path(b"..", "x", false), Err(FsError::UnsafeEntry { .. })));
    assert!(matches!(entry_path(b"a\xffb", "x", false), Err(FsError::UnsafeEntry { .. })));
}

#[test]
fn pax_times() {
    assert_eq!(parse_pax_time("1700000000"), Some(Timespec::new(1_700_000_000, 0)));
    assert_eq!(parse_pax_time("1700000000.5"), Some(Timespec::new(1_700_000_000, 500_000_000)));
    assert_eq!(parse_pax_time("1.123456789123"), Some(Timespec::new(1, 123_456_789)));
    assert_eq!(parse_pax_time("-1.25"), Some(Timespec::new(-2, 750_000_000)));
    assert_eq!(parse_pax_time("x"), None);
}

/// A cancelled unpack ends between entries and within a big file's data (a build stopped
/// while a big layer unpacks ends within a chunk, not at the layer's end).
#[test]
fn a_cancelled_unpack_stops_between_entries_and_inside_a_file() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let file = |path: &str, size: usize| {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_entry_type(EntryType::Regular);
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        (h, vec![7u8; size])
    };
    let mut b = tar::Builder::new(Vec::new());
    for (name, size) in [("small", 10), ("big", 4 << 20), ("after", 10)] {
        let (h, data) = file(name, size);
        b.append(&h, &data[..]).unwrap();
    }
    let layer = b.into_inner().unwrap();
    // Asked how often it was looked at; says "stop" from the `after`-th look on.
    let cancel_after = |after: usize| {
        let looks = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = looks.clone();
        let cancel = crate::fs::Cancel::new(move || counted.fetch_add(1, Ordering::SeqCst) + 1 >= after);
        (UnpackOptions { cancel: Some(cancel), ..UnpackOptions::default() }, looks)
    };

    let t = tempfile::tempdir().unwrap();
    let root = Root::open(t.path()).unwrap();
    let (opts, _) = cancel_after(1);
    assert!(matches!(unpack_layer(&root, &layer[..], &opts), Err(FsError::Cancelled)));
    assert!(root.lstat("/small").unwrap().is_none(), "nothing written once stopped");

    // Past the first entry, inside the 4 MiB file (16 chunks of 256 KiB): it ends there.
    let t = tempfile::tempdir().unwrap();
    let root = Root::open(t.path()).unwrap();
    let (opts, looks) = cancel_after(4);
    let r = unpack_layer(&root, &layer[..], &opts);
    assert!(matches!(r, Err(FsError::Cancelled)), "{r:?} after {looks:?}");
    assert_eq!(looks.load(Ordering::SeqCst), 4, "it stopped at the first look that said so");
    assert!(root.lstat("/after").unwrap().is_none());

    let t = tempfile::tempdir().unwrap();
    let root = Root::open(t.path()).unwrap();
    let (opts, _) = cancel_after(usize::MAX);
    unpack_layer(&root, &layer[..], &opts).unwrap();
    assert!(root.lstat("/after").unwrap().is_some());
}
