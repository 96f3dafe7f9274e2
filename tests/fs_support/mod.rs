//! Shared helpers for the `fs` integration tests: scratch roots with a canary next to them,
//! raw tar construction (including entries the `tar` crate refuses to build), and an
//! independent tree walker (std + rustix, not trowel's code) to compare roots.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use trowel_engine::fs::Root;

/// A scratch directory holding `root/` (the build root) and `canary/` next to it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    canary_before: BTreeMap<String, Node>,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::Builder::new().prefix("trowel-fs-test-").tempdir_in("/var/tmp").unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        let canary = dir.path().join("canary");
        fs::create_dir(&canary).unwrap();
        fs::write(canary.join("secret"), b"do not touch").unwrap();
        fs::create_dir(canary.join("sub")).unwrap();
        fs::write(canary.join("sub/file"), b"also not").unwrap();
        let canary_before = tree(&canary);
        Scratch { dir, canary_before }
    }

    pub fn root_path(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn canary_path(&self) -> PathBuf {
        self.dir.path().join("canary")
    }

    pub fn root(&self) -> Root {
        Root::open(&self.root_path()).unwrap()
    }

    /// A second, fresh root directory next to the first.
    pub fn other_root(&self, name: &str) -> Root {
        let p = self.dir.path().join(name);
        fs::create_dir_all(&p).unwrap();
        Root::open(&p).unwrap()
    }

    /// The canary is exactly as created, and nothing new appeared next to the roots.
    pub fn assert_canary_untouched(&self) {
        assert_eq!(tree(&self.canary_path()), self.canary_before, "canary directory was modified");
        let mut top: Vec<String> =
            fs::read_dir(self.dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        top.sort();
        for name in &top {
            assert!(name == "canary" || name.starts_with("root"), "unexpected entry {name} next to the root");
        }
    }
}

/// One path as seen by the independent walker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub content: Option<Vec<u8>>,
    pub link: Option<String>,
    pub rdev: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// (dev, ino) — only used to derive hardlink groups, not compared.
    pub ino: u64,
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut buf = vec![0u8; 65536];
    let n = match rustix::fs::llistxattr(p, &mut buf[..]) {
        Ok(n) => n,
        Err(_) => return out,
    };
    let names: Vec<Vec<u8>> = buf[..n].split(|b| *b == 0).filter(|s| !s.is_empty()).map(<[u8]>::to_vec).collect();
    for name in names {
        let mut v = vec![0u8; 65536];
        let name_s = String::from_utf8(name).unwrap();
        if name_s == "security.selinux" {
            continue;
        }
        let n = rustix::fs::lgetxattr(p, name_s.as_str(), &mut v[..]).unwrap();
        v.truncate(n);
        out.insert(name_s, v);
    }
    out
}

/// Every path below `dir` (relative, with a leading `/`), excluding `dir` itself.
pub fn tree(dir: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

fn walk(host: &Path, rel: &str, out: &mut BTreeMap<String, Node>) {
    let mut names: Vec<_> = fs::read_dir(host).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    for name in names {
        let p = host.join(&name);
        let r = format!("{rel}/{}", name.to_str().unwrap());
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        let node = Node {
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            size: if ft.is_file() || ft.is_symlink() { md.size() } else { 0 },
            mtime: md.mtime(),
            content: ft.is_file().then(|| fs::read(&p).unwrap()),
            link: ft.is_symlink().then(|| fs::read_link(&p).unwrap().to_str().unwrap().to_string()),
            rdev: md.rdev(),
            xattrs: xattrs(&p),
            ino: md.ino(),
        };
        out.insert(r.clone(), node);
        if ft.is_dir() {
            walk(&p, &r, out);
        }
    }
}

/// Compares two trees: everything but inode numbers (and symlink modes, which Linux does not
/// let anyone set); hardlink groups must match too.
pub fn assert_same_tree(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>) {
    let strip = |t: &BTreeMap<String, Node>| -> BTreeMap<String, Node> {
        t.iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                v.ino = 0;
                if v.kind == "symlink" {
                    v.mode = 0;
                }
                (k.clone(), v)
            })
            .collect()
    };
    let (sa, sb) = (strip(a), strip(b));
    let ka: Vec<_> = sa.keys().collect();
    let kb: Vec<_> = sb.keys().collect();
    assert_eq!(ka, kb, "different path sets");
    for (k, v) in &sa {
        assert_eq!(v, &sb[k], "difference at {k}");
    }
    assert_eq!(link_groups(a), link_groups(b), "different hardlink groups");
}

fn link_groups(t: &BTreeMap<String, Node>) -> Vec<Vec<String>> {
    let mut by_ino: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (k, v) in t {
        if v.kind == "file" {
            by_ino.entry(v.ino).or_default().push(k.clone());
        }
    }
    let mut groups: Vec<Vec<String>> = by_ino.into_values().filter(|g| g.len() > 1).collect();
    groups.sort();
    groups
}

/// Builds tar streams in memory, with raw control over names (so hostile `..` and absolute
/// names can be written; the `tar` crate's path setters refuse them).
pub struct TarMaker {
    b: tar::Builder<Vec<u8>>,
}

impl TarMaker {
    pub fn new() -> TarMaker {
        TarMaker { b: tar::Builder::new(Vec::new()) }
    }

    fn header(kind: tar::EntryType, name: &str, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        let bytes = name.as_bytes();
        assert!(bytes.len() <= 100, "use pax for long names");
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    pub fn file(mut self, name: &str, content: &[u8]) -> Self {
        self = self.file_with(name, content, 0o644, 0, 0, 1_600_000_000);
        self
    }

    pub fn file_with(mut self, name: &str, content: &[u8], mode: u32, uid: u64, gid: u64, mtime: u64) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, name, mode, content.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        h.set_cksum();
        self.b.append(&h, content).unwrap();
        self
    }

    pub fn dir(self, name: &str) -> Self {
        self.dir_with(name, 0o755, 1_600_000_000)
    }

    pub fn dir_with(mut self, name: &str, mode: u32, mtime: u64) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, name, mode, 0);
        h.set_mtime(mtime);
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    fn link_entry(mut self, kind: tar::EntryType, name: &str, target: &str) -> Self {
        let mut h = Self::header(kind, name, 0o777, 0);
        let t = target.as_bytes();
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.link_entry(tar::EntryType::Symlink, name, target)
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.link_entry(tar::EntryType::Link, name, target)
    }

    pub fn device(mut self, kind: tar::EntryType, name: &str, major: u32, minor: u32) -> Self {
        let mut h = Self::header(kind, name, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        self.b.append_pax_extensions(records.iter().map(|(k, v)| (*k, *v))).unwrap();
        self
    }

    /// A header claiming `size` bytes, followed by only `actual` bytes of data.
    pub fn lying_file(mut self, name: &str, size: u64, actual: usize) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, name, 0o644, size);
        h.set_cksum();
        let w = self.b.get_mut();
        w.extend_from_slice(h.as_bytes());
        w.extend(std::iter::repeat_n(b'x', actual));
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// The path inside a host root for an image path.
pub fn host(root: &Root, p: &str) -> PathBuf {
    root.host_path().join(p.trim_start_matches('/'))
}
