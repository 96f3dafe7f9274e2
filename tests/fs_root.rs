//! `Root`: in-root resolution and no-follow operations on real files.

mod fs_support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

use fs_support::{Scratch, host};
use trowel_engine::fs::{FileType, FsError, NodeKind, Timespec};

#[test]
fn resolve_follows_symlinks_inside_the_root() {
    let s = Scratch::new();
    let r = s.root();
    fs::create_dir_all(host(&r, "usr/lib")).unwrap();
    symlink("/usr/lib", host(&r, "lib")).unwrap();
    symlink("../usr/lib", host(&r, "usr/lib64")).unwrap();
    symlink("../../../../..", host(&r, "up")).unwrap();
    assert_eq!(r.resolve("/lib/x.so").unwrap(), "/usr/lib/x.so");
    assert_eq!(r.resolve("lib").unwrap(), "/usr/lib");
    assert_eq!(r.resolve("/usr/lib64/a/b").unwrap(), "/usr/lib/a/b");
    // `..` past the root is clamped, as in a chroot.
    assert_eq!(r.resolve("/up/usr").unwrap(), "/usr");
    assert_eq!(r.resolve("/../../etc").unwrap(), "/etc");
    assert_eq!(r.resolve("/").unwrap(), "/");
}

#[test]
fn stat_lstat_and_read() {
    let s = Scratch::new();
    let r = s.root();
    fs::create_dir(host(&r, "etc")).unwrap();
    fs::write(host(&r, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    symlink("/etc/passwd", host(&r, "pw")).unwrap();
    assert_eq!(r.lstat("/pw").unwrap().unwrap().file_type, FileType::Symlink);
    assert_eq!(r.stat("/pw").unwrap().unwrap().file_type, FileType::File);
    assert_eq!(r.read_link("/pw").unwrap(), "/etc/passwd");
    assert!(r.read_to_string("/pw").unwrap().unwrap().starts_with("root:"));
    assert_eq!(r.read_to_string("/etc/group").unwrap(), None);
    assert_eq!(r.lstat("/nope/x").unwrap(), None);
    assert_eq!(r.lstat("/etc/passwd/x").unwrap(), None);
    let mut f = r.open_file("/pw").unwrap();
    let mut s2 = String::new();
    f.read_to_string(&mut s2).unwrap();
    assert!(s2.contains("/bin/sh"));
    assert!(matches!(r.open_file("/etc"), Err(FsError::WrongType { .. })));
    assert_eq!(r.read_dir("/").unwrap(), vec!["etc", "pw"]);
}

/// `/etc/group` with a byte that is not UTF-8 is still read, its other lines intact (it failed
/// every later RUN); one larger than a text file can be is refused, not read into memory.
#[test]
fn text_files_are_read_lossily_and_bounded() {
    let s = Scratch::new();
    let r = s.root();
    fs::create_dir(host(&r, "etc")).unwrap();
    fs::write(host(&r, "etc/group"), b"root:x:0:\nm\xfcller:x:7:\nstaff:x:50:\n").unwrap();
    let group = r.read_to_string("/etc/group").unwrap().unwrap();
    assert_eq!(group, "root:x:0:\nm\u{fffd}ller:x:7:\nstaff:x:50:\n");
    let big = fs::File::create(host(&r, "etc/passwd")).unwrap();
    big.set_len(trowel_engine::fs::Root::MAX_TEXT + 1).unwrap();
    let e = r.read_to_string("/etc/passwd").unwrap_err().to_string();
    assert!(e.contains("larger than 16 MiB"), "{e}");
}

#[test]
fn absolute_symlink_to_host_path_is_read_inside_the_root() {
    let s = Scratch::new();
    let r = s.root();
    let secret = format!("{}/secret", s.canary_path().display());
    symlink(&secret, host(&r, "leak")).unwrap();
    // The host's canary/secret must not be reachable through the image symlink.
    assert_eq!(r.read_to_string("/leak").unwrap(), None);
    assert_eq!(r.stat("/leak").unwrap(), None);
}

#[test]
fn writes_never_follow_symlinks_out_of_the_root() {
    let s = Scratch::new();
    let r = s.root();
    symlink("../canary", host(&r, "evil")).unwrap();
    symlink("../canary/secret", host(&r, "evilfile")).unwrap();
    // Parents resolve inside the root: "../canary" is clamped to the root's own /canary.
    assert!(r.create_file("/evil/secret", 0o600).unwrap_err().is_errno(libc::ENOENT));
    fs::create_dir(host(&r, "canary")).unwrap();
    r.create_file("/evil/secret", 0o600).unwrap().write_all(b"inside").unwrap();
    assert_eq!(fs::read(host(&r, "canary/secret")).unwrap(), b"inside");
    // A final symlink is replaced, never written through.
    r.create_file("/evilfile", 0o644).unwrap().write_all(b"replaced").unwrap();
    assert!(fs::symlink_metadata(host(&r, "evilfile")).unwrap().is_file());
    r.mkdir_all("/evil/newdir", 0o755, None).unwrap();
    assert!(host(&r, "canary/newdir").is_dir());
    symlink("../canary", host(&r, "evil2")).unwrap();
    r.set_mode("/evil2", 0o777).unwrap();
    r.set_owner("/evil2", 1234, 1234).unwrap();
    r.set_times("/evil2", Timespec::new(1, 0), Timespec::new(1, 0)).unwrap();
    assert_eq!(fs::symlink_metadata(host(&r, "evil2")).unwrap().uid(), 1234);
    r.remove_all("/evil2").unwrap();
    r.remove_all("/evil").unwrap();
    s.assert_canary_untouched();
    assert_eq!(fs::metadata(s.canary_path()).unwrap().permissions().mode() & 0o777, 0o755);
}

#[test]
fn create_mkdir_modes_are_exact_and_owned() {
    let s = Scratch::new();
    let r = s.root();
    let created = r.mkdir_all("/a/b/c", 0o750, Some((1000, 1001))).unwrap();
    assert_eq!(created, vec!["/a", "/a/b", "/a/b/c"]);
    let md = fs::metadata(host(&r, "a/b")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o750, 1000, 1001));
    assert_eq!(r.mkdir_all("/a/b/c/d", 0o755, None).unwrap(), vec!["/a/b/c/d"]);
    symlink("/a/b", host(&r, "ab")).unwrap();
    assert_eq!(r.mkdir_all("/ab/e", 0o755, None).unwrap(), vec!["/a/b/e"]);
    fs::write(host(&r, "file"), b"").unwrap();
    assert!(matches!(r.mkdir_all("/file/x", 0o755, None), Err(FsError::WrongType { .. })));
    let mut f = r.create_file("/a/suid", 0o4755).unwrap();
    f.write_all(b"#!").unwrap();
    r.set_owner("/a/suid", 5, 6).unwrap();
    r.set_mode("/a/suid", 0o4755).unwrap();
    let md = fs::metadata(host(&r, "a/suid")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o4755, 5, 6));
    r.set_mode("/a", 0o1777).unwrap();
    assert_eq!(fs::metadata(host(&r, "a")).unwrap().mode() & 0o7777, 0o1777);
}

#[test]
fn links_nodes_times_and_xattrs() {
    let s = Scratch::new();
    let r = s.root();
    r.create_file("/f", 0o644).unwrap();
    r.hardlink("/f", "/g").unwrap();
    assert_eq!(fs::metadata(host(&r, "g")).unwrap().ino(), fs::metadata(host(&r, "f")).unwrap().ino());
    r.symlink("/f", "/l").unwrap();
    assert!(r.symlink("/f", "/l").is_err());
    r.mknod("/fifo", NodeKind::Fifo, 0o600, 0).unwrap();
    let st = r.lstat("/fifo").unwrap().unwrap();
    assert_eq!((st.file_type, st.mode), (FileType::Fifo, 0o600));
    // Opening a FIFO for reading must not hang.
    assert!(matches!(r.open_file("/fifo"), Err(FsError::WrongType { .. })));
    r.mknod("/null", NodeKind::CharDevice, 0o666, rustix::fs::makedev(1, 3)).unwrap();
    assert_eq!(r.lstat("/null").unwrap().unwrap().rdev, rustix::fs::makedev(1, 3));
    r.set_times("/l", Timespec::new(100, 5), Timespec::new(200, 7)).unwrap();
    let st = r.lstat("/l").unwrap().unwrap();
    assert_eq!(st.mtime, Timespec::new(200, 7));
    assert_ne!(r.lstat("/f").unwrap().unwrap().mtime, Timespec::new(200, 7));
    r.set_xattr("/f", "user.k", b"v").unwrap();
    r.set_xattr("/f", "security.capability", &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(r.list_xattrs("/f").unwrap(), vec!["security.capability", "user.k"]);
    assert_eq!(r.get_xattr("/f", "user.k").unwrap().unwrap(), b"v");
    assert_eq!(r.get_xattr("/f", "user.none").unwrap(), None);
    // A symlink's own xattrs (trusted.* is allowed on symlinks; user.* is not).
    r.set_xattr("/l", "trusted.t", b"1").unwrap();
    assert_eq!(r.list_xattrs("/l").unwrap(), vec!["trusted.t"]);
    assert!(r.list_xattrs("/f").unwrap().len() == 2);
}

#[test]
fn remove_all_never_follows() {
    let s = Scratch::new();
    let r = s.root();
    fs::create_dir_all(host(&r, "d/e/f")).unwrap();
    fs::write(host(&r, "d/e/f/x"), b"x").unwrap();
    symlink(s.canary_path(), host(&r, "d/hostlink")).unwrap();
    symlink("../../canary", host(&r, "d/rellink")).unwrap();
    r.remove_all("/d").unwrap();
    assert!(!host(&r, "d").exists());
    r.remove_all("/d").unwrap();
    r.remove_all("/missing/deeper").unwrap();
    fs::create_dir(host(&r, "x")).unwrap();
    symlink(s.canary_path(), host(&r, "y")).unwrap();
    r.remove_all("/").unwrap();
    assert_eq!(fs::read_dir(s.root_path()).unwrap().count(), 0);
    s.assert_canary_untouched();
}

#[test]
fn invalid_paths_are_reported() {
    let s = Scratch::new();
    let r = s.root();
    assert!(matches!(r.create_file("/", 0o644), Err(FsError::InvalidPath { .. })));
    assert!(matches!(r.create_file("/a/..", 0o644), Err(FsError::InvalidPath { .. })));
    assert!(matches!(r.lstat("a\0b"), Err(FsError::InvalidPath { .. })));
    let e = r.create_file("/no/such/dir/file", 0o644).unwrap_err();
    assert!(e.to_string().contains("/no/such/dir/file"), "{e}");
}

/// Files opened one after another through a kept parent directory are each the file named,
/// from directory to directory and back; a file that is not there, or a symlink, or a
/// directory, is refused and the next open still finds its own file; the root's own files too.
#[test]
fn files_opened_through_a_kept_parent_directory_are_the_ones_named() {
    let s = Scratch::new();
    let r = s.root();
    for d in ["a", "b", "a/deep"] {
        fs::create_dir_all(host(&r, d)).unwrap();
    }
    for f in ["a/1", "a/2", "b/1", "a/deep/1", "top"] {
        fs::write(host(&r, f), f).unwrap();
    }
    symlink("/a/1", host(&r, "b/link")).unwrap();
    // A parent that is a symlink resolves inside the root, as for `open_file_nofollow`.
    symlink("../a", host(&r, "b/up")).unwrap();
    let mut dirs = trowel_engine::fs::ParentDirs::default();
    let mut read = |p: &str| -> Result<String, FsError> {
        let (mut f, st) = r.open_file_nofollow_in(p, &mut dirs)?;
        assert_eq!(st.file_type, FileType::File);
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        Ok(s)
    };
    assert_eq!(read("/a/1").unwrap(), "a/1");
    assert_eq!(read("/a/2").unwrap(), "a/2");
    assert!(read("/a/missing").is_err());
    assert!(read("/a/deep").is_err(), "a directory is not a regular file");
    assert_eq!(read("/a/deep/1").unwrap(), "a/deep/1");
    assert_eq!(read("/b/1").unwrap(), "b/1");
    assert!(read("/b/link").is_err(), "the final symlink is not followed");
    assert_eq!(read("/b/up/2").unwrap(), "a/2");
    assert_eq!(read("/a/1").unwrap(), "a/1");
    assert_eq!(read("/top").unwrap(), "top");
    assert_eq!(read("/b/1").unwrap(), "b/1");
}

/// The calls through a kept parent directory (`ParentDirs`, what a copy of many files uses):
/// each path is looked up in its own parent, the kept one reused only for the same directory;
/// a missing parent is no entry to `lstat_in_dirs` and an error to `create_new_in`; whatever is
/// at the name already (a file, a symlink leading out of the root) makes `create_new_in` answer
/// `None` without following, truncating or replacing it; a symlinked parent resolves inside
/// the root.
#[test]
fn calls_through_a_kept_directory_stay_in_the_root_and_create_only_where_nothing_is() {
    let s = Scratch::new();
    let r = s.root();
    fs::create_dir_all(host(&r, "a/b")).unwrap();
    fs::write(host(&r, "a/b/f"), b"old").unwrap();
    fs::write(host(&r, "a/top"), b"top").unwrap();
    symlink(s.canary_path().join("secret"), host(&r, "a/b/out")).unwrap();
    symlink("/a/b", host(&r, "ab")).unwrap();
    let mut dirs = trowel_engine::fs::ParentDirs::default();
    assert_eq!(r.lstat_in_dirs("/a/b/f", &mut dirs).unwrap().unwrap().file_type, FileType::File);
    assert!(r.create_new_in("/a/b/f", 0o644, &mut dirs).unwrap().is_none(), "a file is there");
    assert!(r.create_new_in("/a/b/out", 0o644, &mut dirs).unwrap().is_none(), "a symlink is there");
    let mut f = r.create_new_in("/a/b/new", 0o640, &mut dirs).unwrap().expect("nothing was there");
    f.write_all(b"new").unwrap();
    drop(f);
    assert_eq!(fs::read(host(&r, "a/b/new")).unwrap(), b"new");
    assert_eq!(fs::read(host(&r, "a/b/f")).unwrap(), b"old");
    assert!(fs::symlink_metadata(host(&r, "a/b/out")).unwrap().file_type().is_symlink());
    // Another directory, a missing one, then the first again through a symlink to it.
    assert_eq!(r.lstat_in_dirs("/a/top", &mut dirs).unwrap().unwrap().file_type, FileType::File, "in /a, not /a/b");
    assert!(r.lstat_in_dirs("/a/nothing", &mut dirs).unwrap().is_none());
    assert!(r.lstat_in_dirs("/missing/x", &mut dirs).unwrap().is_none());
    assert!(r.create_new_in("/missing/x", 0o644, &mut dirs).is_err());
    assert_eq!(r.lstat_in_dirs("/ab/new", &mut dirs).unwrap().unwrap().file_type, FileType::File);
    assert!(r.create_new_in("/ab/new", 0o644, &mut dirs).unwrap().is_none());
    assert!(r.create_new_in("/", 0o644, &mut dirs).is_err(), "not the root itself");
    s.assert_canary_untouched();
}
