//! Partial extraction against the full unpack: real tar layers are applied both ways, and for
//! each COPY source the copy's own source expansion must give the same answer (the same paths,
//! or the same error) in both roots, and every path it would copy must be the same byte for
//! byte and in metadata (type, mode, owner, mtime, xattrs, link target), as must the
//! directories above it (mode, owner, xattrs, and mtime: these layers declare every directory
//! they write into, as image builders do).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::super::sources::expand;
use super::{fixed_prefix, reads};
use crate::fs::extract::{Extraction, extract};
use crate::fs::unpack::{UnpackOptions, UnpackStats, unpack_layer};
use crate::fs::{FsError, Root};

/// A layer tar being built; every entry gets its own mtime so a mix-up shows.
struct Layer {
    b: tar::Builder<Vec<u8>>,
    clock: u64,
}

impl Layer {
    fn new(clock: u64) -> Layer {
        Layer { b: tar::Builder::new(Vec::new()), clock }
    }

    fn header(&mut self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        self.clock += 1;
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(1000 + self.clock % 7);
        h.set_gid(2000 + self.clock % 5);
        h.set_mtime(self.clock);
        h.set_size(size);
        h
    }

    fn dir(mut self, p: &str) -> Layer {
        let mut h = self.header(tar::EntryType::Directory, 0o750, 0);
        self.b.append_data(&mut h, format!("{p}/"), &[][..]).unwrap();
        self
    }

    fn file(mut self, p: &str, data: &str) -> Layer {
        let mut h = self.header(tar::EntryType::Regular, 0o640, data.len() as u64);
        self.b.append_data(&mut h, p, data.as_bytes()).unwrap();
        self
    }

    fn xattr(mut self, name: &str, value: &[u8]) -> Layer {
        self.b.append_pax_extensions([(format!("SCHILY.xattr.{name}").as_str(), value)]).unwrap();
        self
    }

    fn symlink(mut self, p: &str, target: &str) -> Layer {
        let mut h = self.header(tar::EntryType::Symlink, 0o777, 0);
        self.b.append_link(&mut h, p, target).unwrap();
        self
    }

    fn hardlink(mut self, p: &str, target: &str) -> Layer {
        let mut h = self.header(tar::EntryType::Link, 0o640, 0);
        self.b.append_link(&mut h, p, target).unwrap();
        self
    }

    fn whiteout(self, dir: &str, name: &str) -> Layer {
        self.file(&format!("{dir}/.wh.{name}"), "")
    }

    fn opaque(self, dir: &str) -> Layer {
        self.file(&format!("{dir}/.wh..wh..opq"), "")
    }

    fn done(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// A base layer most of whose files no copy asks for.
fn base() -> Vec<u8> {
    let mut l = Layer::new(1_600_000_000).dir("usr").dir("usr/bin").dir("usr/lib").dir("etc");
    for i in 0..40 {
        l = l.file(&format!("usr/bin/tool{i}"), &format!("tool {i}"));
    }
    l.file("usr/lib/libbig.so", "big library").file("etc/passwd", "root:x:0:0::/root:/bin/sh\n").done()
}

struct Outcome {
    _tmp: tempfile::TempDir,
    full: std::path::PathBuf,
    ex: Extraction,
}

fn opts() -> UnpackOptions {
    UnpackOptions { preserve_owner: true, ..UnpackOptions::default() }
}

/// Applies `layers` fully and partially for `sources`, and checks that each source reads the
/// same from both.
fn check(layers: &[Vec<u8>], sources: &[&str]) -> Outcome {
    let tmp = tempfile::Builder::new().prefix("trowel-extract-test-").tempdir_in("/var/tmp").unwrap();
    let full_dir = tmp.path().join("full");
    std::fs::create_dir(&full_dir).unwrap();
    let full = Root::open(&full_dir).unwrap();
    for l in layers {
        unpack_layer(&full, &l[..], &opts()).unwrap();
    }
    let scratch = tmp.path().join("partial");
    std::fs::create_dir(&scratch).unwrap();
    let srcs: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    let prefixes: Vec<String> = srcs.iter().map(|s| fixed_prefix(s)).collect();
    let apply = |root: &Root, o: &UnpackOptions| -> Result<UnpackStats, FsError> {
        let mut t = UnpackStats::default();
        for l in layers {
            let s = unpack_layer(root, &l[..], o)?;
            t.entries += s.entries;
            t.skipped += s.skipped;
        }
        Ok(t)
    };
    let read = |root: &Root| -> Result<Vec<String>, FsError> { Ok(srcs.iter().flat_map(|s| reads(root, s)).collect()) };
    let ex = extract(&scratch, &prefixes, &opts(), |e| e, apply, read).unwrap().expect("the extraction settles");
    for s in &srcs {
        let a = expand(&full, s, None, false, false);
        let b = expand(&ex.root, s, None, false, false);
        match (a, b) {
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "source {s}"),
            (Ok(a), Ok(b)) => {
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "source {s}");
                for item in &a {
                    if let super::super::sources::Item::Path { rel, .. } = item {
                        assert_eq!(tree(&full_dir, rel), tree(&ex.dir, rel), "source {s}: tree at /{rel}");
                        assert_eq!(ancestors(&full_dir, rel), ancestors(&ex.dir, rel), "source {s}: above /{rel}");
                    }
                }
            }
            (a, b) => panic!("source {s}: full unpack gives {a:?}, partial gives {b:?}"),
        }
    }
    Outcome { _tmp: tmp, full: full_dir, ex }
}

/// One path's type, mode, owner, mtime, size, content, link target and xattrs.
type Node = (String, u32, u32, u32, i64, i64, Option<Vec<u8>>, Option<String>, BTreeMap<String, Vec<u8>>);

fn node(host: &Path, content: bool) -> Node {
    let md = std::fs::symlink_metadata(host).unwrap();
    let ft = md.file_type();
    let kind = format!("{ft:?}");
    let mode = if ft.is_symlink() { 0 } else { md.mode() & 0o7777 };
    let data = (content && ft.is_file()).then(|| std::fs::read(host).unwrap());
    let link = ft.is_symlink().then(|| std::fs::read_link(host).unwrap().display().to_string());
    let mut xattrs = BTreeMap::new();
    let mut buf = vec![0u8; 4096];
    if let Ok(n) = rustix::fs::llistxattr(host, &mut buf[..]) {
        for name in buf[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
            let name = String::from_utf8(name.to_vec()).unwrap();
            let mut v = vec![0u8; 4096];
            let n = rustix::fs::lgetxattr(host, name.as_str(), &mut v[..]).unwrap();
            v.truncate(n);
            xattrs.insert(name, v);
        }
    }
    (kind, mode, md.uid(), md.gid(), md.mtime(), md.mtime_nsec(), data, link, xattrs)
}

/// Everything at and below `rel` in the root at `host`, without following symlinks.
fn tree(host: &Path, rel: &str) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut todo = vec![rel.trim_start_matches('/').to_string()];
    while let Some(r) = todo.pop() {
        let p = host.join(&r);
        let n = node(&p, true);
        if n.0.contains("Dir") {
            for e in std::fs::read_dir(&p).unwrap() {
                let name = e.unwrap().file_name().into_string().unwrap();
                todo.push(if r.is_empty() { name } else { format!("{r}/{name}") });
            }
        }
        out.insert(r, n);
    }
    out
}

/// The directories above `rel` (not the root itself).
fn ancestors(host: &Path, rel: &str) -> Vec<(String, Node)> {
    let parts: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    (1..parts.len()).map(|n| parts[..n].join("/")).map(|r| (r.clone(), node(&host.join(&r), false))).collect()
}

fn exists(host: &Path, rel: &str) -> bool {
    std::fs::symlink_metadata(host.join(rel)).is_ok()
}

#[test]
fn nested_directories_and_nothing_else() {
    let l2 = Layer::new(1_700_000_000)
        .dir("out")
        .xattr("user.origin", b"builder")
        .dir("out/a")
        .dir("out/a/b")
        .file("out/a/b/c.txt", "deep")
        .xattr("user.kind", b"text")
        .file("out/top", "top")
        .done();
    let o = check(&[base(), l2], &["/out", "out/a/b/c.txt"]);
    assert_eq!(o.ex.passes, 1);
    assert!(o.ex.stats.skipped >= 40, "the base's files were left out: {:?}", o.ex.stats);
    assert!(!exists(&o.ex.dir, "usr/bin/tool1") && exists(&o.full, "usr/bin/tool1"));
    assert!(exists(&o.ex.dir, "usr/bin"), "directories are all there");
}

#[test]
fn whiteouts_and_opaque_directories() {
    let l2 = Layer::new(1_700_000_000)
        .dir("out")
        .file("out/keep", "kept")
        .file("out/gone", "deleted later")
        .dir("out/opq")
        .file("out/opq/old", "hidden by an opaque marker")
        .done();
    let l3 = Layer::new(1_710_000_000)
        .dir("out")
        .whiteout("out", "gone")
        .dir("out/opq")
        .opaque("out/opq")
        .file("out/opq/new", "new")
        .dir("usr/bin")
        .whiteout("usr/bin", "tool3")
        .done();
    let layers = [base(), l2, l3];
    let o = check(&layers, &["/out", "/out/opq/*"]);
    assert!(!exists(&o.ex.dir, "out/gone") && !exists(&o.ex.dir, "out/opq/old"));
    assert!(!exists(&o.ex.dir, "usr/bin/tool4") && exists(&o.full, "usr/bin/tool4"));
    // The deleted file is not found, as in the full root.
    check(&layers, &["/out/gone", "/out/opq/old"]);
}

#[test]
fn a_directory_replaced_by_a_file_and_back() {
    let l2 = Layer::new(1_700_000_000).dir("out").dir("out/d").file("out/d/f", "first").dir("other").done();
    let l3 = Layer::new(1_710_000_000).dir("out").file("out/d", "now a file").file("other", "file here").done();
    let l4 = Layer::new(1_720_000_000).dir("out").dir("out/d").file("out/d/g", "second").done();
    let layers = [base(), l2, l3, l4];
    let o = check(&layers, &["/out/d", "/out"]);
    assert!(!exists(&o.ex.dir, "out/d/f"));
    // `other` lies outside the selection, yet a file replaced the directory in both.
    assert!(std::fs::symlink_metadata(o.ex.dir.join("other")).unwrap().is_file());
    // A file where the source expects a directory fails both the same way.
    check(&layers[..3], &["/out/d/f", "/other/x"]);
}

#[test]
fn a_symlinked_directory_on_the_path() {
    let l2 = Layer::new(1_700_000_000)
        .dir("build")
        .dir("build/out")
        .file("build/out/app", "binary")
        .dir("build/out/lib")
        .file("build/out/lib/x.so", "lib")
        .file("build/unrelated", "left out")
        .symlink("out", "/build/out")
        .symlink("rel", "build/out/lib")
        .done();
    let o = check(&[base(), l2], &["/out", "/rel/x.so", "/out/lib/*.so"]);
    assert_eq!(o.ex.passes, 2, "the symlinks' targets were extracted in a second pass");
    assert!(!exists(&o.ex.dir, "build/unrelated"));
}

#[test]
fn symlinks_pointing_outside_and_absolute_ones() {
    let l2 = Layer::new(1_700_000_000)
        .dir("out")
        .symlink("out/passwd", "../etc/passwd")
        .symlink("out/abs", "/usr/lib/libbig.so")
        .symlink("out/dangling", "/nowhere")
        .file("out/real", "real")
        .done();
    // Copying the directory copies the links as links; naming a link copies its target.
    let o = check(&[base(), l2], &["/out", "/out/abs", "/out/passwd"]);
    assert!(exists(&o.ex.dir, "usr/lib/libbig.so") && exists(&o.ex.dir, "etc/passwd"));
    assert!(!exists(&o.ex.dir, "usr/bin/tool0"));
    check(&[base(), Layer::new(1).dir("out").symlink("out/dangling", "/nowhere").done()], &["/out/dangling"]);
}

#[test]
fn a_hard_link_to_a_file_outside_the_prefix() {
    let l2 = Layer::new(1_700_000_000)
        .dir("opt")
        .file("opt/big", "shared content")
        .dir("out")
        .hardlink("out/big", "opt/big")
        .done();
    let l3 = Layer::new(1_710_000_000).dir("out").hardlink("out/lower", "usr/lib/libbig.so").done();
    let o = check(&[base(), l2, l3], &["/out"]);
    assert_eq!(o.ex.passes, 2);
    let a = std::fs::metadata(o.ex.dir.join("out/big")).unwrap();
    let b = std::fs::metadata(o.ex.dir.join("opt/big")).unwrap();
    assert_eq!(a.ino(), b.ino(), "still one file");
}

#[test]
fn globs_and_missing_paths() {
    let l2 = Layer::new(1_700_000_000)
        .dir("out")
        .file("out/a.so", "a")
        .symlink("out/b.so", "/usr/lib/libbig.so")
        .file("out/c.txt", "c")
        .dir("out/sub.so")
        .file("out/sub.so/inner", "inner")
        .done();
    let layers = [base(), l2];
    let o = check(&layers, &["/out/*.so", "/out/c.t?t", "/usr/*/tool1?"]);
    assert!(exists(&o.ex.dir, "usr/bin/tool12") && !exists(&o.ex.dir, "etc/passwd"));
    // A wildcard in the first segment selects everything.
    check(&layers, &["/o?t/c.txt"]);
    // A wildcard matching nothing, a wildcard in a missing directory, a missing path.
    let layers = [base(), Layer::new(1).dir("out").done()];
    check(&layers, &["/out/*.none"]);
    check(&layers, &["/missing/*.so"]);
    check(&layers, &["/missing/file"]);
}
