//! A root's first snapshot index takes the content hashes its unpack recorded (`fs/written.rs`,
//! issue 17): it is the very index a scan reading every file back makes, the files the unpack
//! wrote and left as they were are not read again (small ones made on several threads, a large
//! one written alone), a file changed since — linked again by a later layer, which moves its
//! ctime — is read as before, and the index still tells a rewrite to the same size and time
//! that changed the content from one that did not.

mod fs_support;

use std::path::Path;
use std::sync::Arc;

use fs_support::{Scratch, TarMaker, host};
use trowel_engine::fs::{
    ChangeKind, IgnoreList, SnapshotMode, Snapshotter, UnpackOptions, WrittenContents, unpack_layer,
};

/// Past the unpacker's small-file limit (256 KiB): written alone, hashed chunk by chunk.
fn big() -> Vec<u8> {
    (0..600 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

const BUSYBOX: &[u8] = b"the busybox binary";

fn first_layer() -> Vec<u8> {
    let mut t = TarMaker::new().dir("bin").dir("etc").dir("usr").dir("usr/lib");
    // More than a batch makes on one thread (64): these are made on every core.
    for i in 0..150 {
        let dir = ["etc", "usr", "usr/lib"][i % 3];
        t = t.file(&format!("{dir}/f{i}"), format!("file number {i}").as_bytes());
    }
    t.file("usr/lib/big.so", &big()).file("bin/busybox", BUSYBOX).file("etc/replaced", b"old").finish()
}

fn second_layer() -> Vec<u8> {
    TarMaker::new().file("etc/replaced", b"new content").hardlink("bin/sh", "bin/busybox").finish()
}

/// ctime has the clock's granularity: a change right after a write may keep it.
fn let_the_clock_tick() {
    std::thread::sleep(std::time::Duration::from_millis(30));
}

fn unpack(s: &Scratch, written: &Arc<WrittenContents>) {
    let opts = UnpackOptions { preserve_owner: true, written: Some(Arc::clone(written)), ..UnpackOptions::default() };
    unpack_layer(&s.root(), &first_layer()[..], &opts).unwrap();
    let_the_clock_tick();
    unpack_layer(&s.root(), &second_layer()[..], &opts).unwrap();
}

fn rewrite_keeping_size_and_time(p: &Path, content: &[u8]) {
    let before = rustix::fs::lstat(p).unwrap();
    assert_eq!(before.st_size as usize, content.len());
    std::fs::write(p, content).unwrap();
    let t = rustix::fs::Timespec { tv_sec: before.st_mtime, tv_nsec: before.st_mtime_nsec as _ };
    let times = rustix::fs::Timestamps { last_access: t, last_modification: t };
    rustix::fs::utimensat(rustix::fs::CWD, p, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

#[test]
fn the_first_index_takes_what_the_unpack_hashed_and_reads_only_what_changed_since() {
    let s = Scratch::new();
    let written = Arc::new(WrittenContents::default());
    unpack(&s, &written);
    // 150 small files, the big one, busybox, and etc/replaced twice (one inode left).
    assert!(written.len() >= 153, "{} files recorded", written.len());

    let mut taken = Snapshotter::new(s.root(), SnapshotMode::Full, IgnoreList::default());
    let stats = taken.scan_initial_written(&written).unwrap();
    // busybox alone is read back, at both its names: the second layer linked it again after
    // it was recorded.
    assert_eq!(stats.bytes_hashed, 2 * BUSYBOX.len() as u64);

    let mut read = Snapshotter::new(s.root(), SnapshotMode::Full, IgnoreList::default());
    let stats = read.scan_initial().unwrap();
    let small: usize = (0..150).map(|i| format!("file number {i}").len()).sum();
    assert_eq!(stats.bytes_hashed, (small + big().len() + 2 * BUSYBOX.len() + b"new content".len()) as u64);
    assert_eq!(taken.saved_index(b"k"), read.saved_index(b"k"), "the same index either way");

    // What only content hashes tell apart: a rewrite to the same size and time.
    let_the_clock_tick();
    let f7 = host(&s.root(), "usr/f7");
    rewrite_keeping_size_and_time(&f7, b"file number 8");
    let same = host(&s.root(), "etc/f9");
    rewrite_keeping_size_and_time(&same, b"file number 9");
    let mut changed = big();
    changed[300_000] ^= 1;
    rewrite_keeping_size_and_time(&host(&s.root(), "usr/lib/big.so"), &changed);
    let changes = taken.snapshot().unwrap();
    let seen: Vec<(&str, ChangeKind)> = changes.entries.iter().map(|c| (c.path.as_str(), c.kind)).collect();
    assert_eq!(seen, vec![("/usr/f7", ChangeKind::Modified), ("/usr/lib/big.so", ChangeKind::Modified)]);
}
