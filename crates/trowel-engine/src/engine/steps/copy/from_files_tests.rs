//! A `COPY --from`'s files with the digests the builder's layer writer found
//! (`engine/known_digests.rs`): the same files, digest for digest, as reading them gives, and
//! a file written since its layer was written hashed again.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;
use crate::engine::steps::copy::filter;
use crate::fs::snapshot::Changes;
use crate::fs::{IgnoreList, LayerOptions, SnapshotMode, Snapshotter, write_layer};
use crate::image::store::BlobStore;

/// A builder's `/out`: many small files, empty ones, one big enough to be hashed on several
/// threads, two names of one inode, symlinks (one dangling), nested directories.
fn make_tree(dir: &Path) {
    let out = dir.join("out");
    for d in ["files/a", "files/b", "bin"] {
        fs::create_dir_all(out.join(d)).unwrap();
    }
    for i in 0..600 {
        let sub = if i % 2 == 0 { "a" } else { "b" };
        fs::write(out.join(format!("files/{sub}/f{i}.txt")), format!("artifact {i}\n")).unwrap();
    }
    for i in 0..3 {
        fs::write(out.join(format!("files/empty{i}")), b"").unwrap();
    }
    fs::write(out.join("bin/big"), vec![7u8; 9 << 20]).unwrap();
    fs::write(out.join("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
    fs::hard_link(out.join("bin/tool"), out.join("bin/tool2")).unwrap();
    symlink("tool", out.join("bin/link")).unwrap();
    symlink("../nowhere", out.join("bin/dangling")).unwrap();
}

/// The files under `out` of `root`, each digest from `known` when it has it, else read.
fn files(root: &Root, known: Option<&KnownDigests>) -> Vec<FileEntry> {
    let mut w = Walked::default();
    walk(root, "out", "", &filter::for_dir("out", None, None), &mut Links::new(), &mut w).unwrap();
    hashed(root, known, w).unwrap()
}

/// A root with [`make_tree`] in it, written as a layer as a builder's RUN's is: the snapshot's
/// changes, after the layer writer filled them in.
struct Builder {
    dir: tempfile::TempDir,
    _blobs: tempfile::TempDir,
    changes: Changes,
}

fn builder() -> Builder {
    let dir = tempfile::Builder::new().prefix("trowel-known-digests-").tempdir_in("/var/tmp").unwrap();
    let blobs = tempfile::tempdir().unwrap();
    let mut snap = Snapshotter::new(Root::open(dir.path()).unwrap(), SnapshotMode::Full, IgnoreList::new(["/proc"]));
    snap.scan_initial().unwrap();
    make_tree(dir.path());
    let mut changes = snap.snapshot_deferred(None).unwrap();
    let store = BlobStore::open(blobs.path()).unwrap();
    write_layer(&Root::open(dir.path()).unwrap(), &mut changes, &store, &LayerOptions::default()).unwrap();
    Builder { dir, _blobs: blobs, changes }
}

fn regular(files: &[FileEntry]) -> usize {
    files.iter().filter(|f| f.kind == 'f').count()
}

#[test]
fn digests_the_layer_writer_found_make_the_files_reading_makes() {
    let b = builder();
    let root = Root::open(b.dir.path()).unwrap();
    let mut known = KnownDigests::default();
    known.record(&b.changes);
    let read = files(&root, None);
    let reused = files(&root, Some(&known));
    assert_eq!(regular(&read), 606, "600 small, 3 empty, big, two names of tool");
    assert_eq!(reused, read);
    // Every regular file's digest was known: none of them needed reading.
    let mut w = Walked::default();
    walk(&root, "out", "", &filter::for_dir("out", None, None), &mut Links::new(), &mut w).unwrap();
    let unknown: Vec<_> = w
        .pending
        .iter()
        .filter(|p| known.digest(&p.path(&w.files), &p.st).is_none())
        .map(|p| p.path(&w.files).into_owned())
        .collect();
    assert!(unknown.is_empty(), "{unknown:?}");
}

/// What is known is what the key holds, without reading the file: a wrong digest recorded for
/// a file's very inode shows up in its entry (which is why only an unchanged inode is trusted).
#[test]
fn a_known_digest_is_taken_without_reading_the_file() {
    let b = builder();
    let root = Root::open(b.dir.path()).unwrap();
    let st = root.lstat("out/bin/big").unwrap().unwrap();
    let mut known = KnownDigests::default();
    let marker = crate::digest::Digest::of(b"not the file's bytes");
    known.insert("out/bin/big", &st, marker.clone());
    let got = files(&root, Some(&known));
    let big = got.iter().find(|f| f.path == "out/bin/big").unwrap();
    assert_eq!(big.digest, Some(marker.into()));
    let other = got.iter().find(|f| f.path == "out/bin/tool").unwrap();
    assert_eq!(other.digest, Some(crate::digest::Digest::of(b"#!/bin/sh\necho tool\n").into()));
}

/// A file written after its layer was (same size, its mtime put back), one replaced by another
/// inode, and one deleted and made again: each is hashed again, and the files are those reading
/// them all gives — never the digests of the bytes the layer had.
#[test]
fn a_file_written_since_its_layer_is_hashed_again() {
    let b = builder();
    let dir = b.dir.path();
    let root = Root::open(dir).unwrap();
    let mut known = KnownDigests::default();
    known.record(&b.changes);
    let before = files(&root, Some(&known));
    // ctime has the clock's coarse granularity: let it tick past the layer writer's read.
    std::thread::sleep(std::time::Duration::from_millis(30));
    let small = dir.join("out/files/a/f0.txt");
    let mtime = fs::metadata(&small).unwrap().modified().unwrap();
    fs::write(&small, b"artifact X\n").unwrap();
    fs::File::options().write(true).open(&small).unwrap().set_modified(mtime).unwrap();
    fs::write(dir.join("out/bin/big.new"), vec![8u8; 9 << 20]).unwrap();
    fs::rename(dir.join("out/bin/big.new"), dir.join("out/bin/big")).unwrap();
    fs::remove_file(dir.join("out/files/b/f1.txt")).unwrap();
    fs::write(dir.join("out/files/b/f1.txt"), b"artifact 1\n").unwrap();
    let after = files(&root, Some(&known));
    assert_eq!(after, files(&root, None));
    let digest = |fs: &[FileEntry], p: &str| fs.iter().find(|f| f.path == p).unwrap().digest.unwrap().digest();
    assert_eq!(digest(&after, "out/files/a/f0.txt"), crate::digest::Digest::of(b"artifact X\n"));
    assert_ne!(digest(&after, "out/files/a/f0.txt"), digest(&before, "out/files/a/f0.txt"));
    assert_eq!(digest(&after, "out/bin/big"), crate::digest::Digest::of(&vec![8u8; 9 << 20]));
    assert_eq!(digest(&after, "out/files/b/f1.txt"), digest(&before, "out/files/b/f1.txt"));
}

/// A later layer that deletes a file, or makes a directory of its path, forgets its digest.
#[test]
fn a_later_layer_forgets_what_it_changed() {
    let b = builder();
    let dir = b.dir.path();
    let root = Root::open(dir).unwrap();
    let mut known = KnownDigests::default();
    known.record(&b.changes);
    let st = root.lstat("out/bin/tool").unwrap().unwrap();
    assert!(known.digest("out/bin/tool", &st).is_some());
    let gone = Changes {
        entries: b
            .changes
            .entries
            .iter()
            .filter(|c| c.path == "/out/bin/tool")
            .cloned()
            .map(|mut c| {
                c.kind = crate::fs::ChangeKind::Deleted;
                c.digest = None;
                c
            })
            .collect(),
        ..Changes::default()
    };
    known.record(&gone);
    assert!(known.digest("out/bin/tool", &st).is_none());
}
