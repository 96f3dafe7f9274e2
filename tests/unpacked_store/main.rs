//! The unpacked-layer store (`<cache-dir>/unpacked`) against a real registry, in chroot
//! isolation: a root mounted from the store builds the very image a root unpacked into a
//! directory builds (same digest with `--reproducible`, read back with skopeo and umoci), the
//! second build unpacks nothing and says so, no build ever writes through to the store, layers
//! with whiteouts, opaque directories and hard links to lower files come out right, a layer
//! overlayfs cannot hold and a cache dir overlayfs cannot use fall back to unpacking (with the
//! reason in the trace), a killed build leaves no mount behind, a root indexed without
//! reading the store's files misses no change to them, a build downloads only the layers
//! the store lacks, and an entry marked unsynced by another boot is made again.

#[path = "../common/mod.rs"]
mod common;
#[path = "../hardening_support/mod.rs"]
mod hardening_support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

/// A base made of several layers with what overlayfs must represent: files deleted from a
/// lower layer, a directory replaced (opaque), a symlinked directory, hard links. Built once
/// per test binary by trowel without the store, and pushed.
fn layered_base() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let df = "FROM BASE\n\
            RUN mkdir -p /data/sub /opq/keep && echo a > /data/a && ln /data/a /data/a-hard && echo b > /data/sub/b \
             && echo o > /opq/old && echo k > /opq/keep/k && ln -s /data /link && chmod 0750 /data/sub\n\
            RUN rm -rf /opq && mkdir /opq && echo n > /opq/new && rm /data/sub/b /bin/ls && echo c > /link/c\n\
            RUN echo top > /top\n"
            .replace("BASE", &env().busybox());
        let dest = format!("{}/{}:base", env().registry, unique_repo("store-base"));
        let b = Build::new(&df, None);
        b.run(&["--destination", &dest]);
        dest
    })
}

/// A layer written by hand, as other tools write layers: `(path, type, data, link target)`
/// per entry, owned by root, mode 0755 for directories and 0644 otherwise.
fn hand_layer(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> hardening_support::ExtraLayer {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, kind, data, link) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(if *kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        tar.append(&h, *data).unwrap();
    }
    hardening_support::ExtraLayer::from_tar(&tar.into_inner().unwrap())
}

struct Build {
    ctx: tempfile::TempDir,
    work: tempfile::TempDir,
}

/// What a build did: its image digest, its trace's `base_unpacked` events, its log, and what
/// each snapshot found (`kind type path` per change).
struct Done {
    digest: String,
    unpacked: Vec<Value>,
    log: String,
    snapshots: Vec<Vec<String>>,
    /// The blobs it downloaded (its `pull_progress` events' digests), sorted, once each.
    pulled: Vec<String>,
    /// What its trace says the paths its first step changed were before it: each change's `previous`
    /// and each file's `before` content, a line each.
    befores: Vec<String>,
    /// Its `source_extracted` events (paths a `COPY --from` read out of layers).
    extracted: Vec<Value>,
    /// Its `source_unpacked` events (whole roots made for a `COPY --from`).
    sources: Vec<Value>,
}

impl Build {
    fn new(dockerfile: &str, work: Option<&Path>) -> Build {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
        std::fs::write(ctx.path().join("file.txt"), "from the context\n").unwrap();
        let work = match work {
            Some(w) => tempfile::Builder::new().prefix("work-").tempdir_in(w).unwrap(),
            None => tempfile::Builder::new().prefix("trowel-store-work-").tempdir_in("/var/tmp").unwrap(),
        };
        Build { ctx, work }
    }

    fn command(&self, extra: &[&str]) -> (Command, PathBuf, PathBuf) {
        let trace = self.work.path().join("trace.jsonl");
        let digest = self.work.path().join("digest");
        let mut c = trowel();
        c.args(["build", "--reproducible", "--isolation", "chroot", "--context"])
            .arg(self.ctx.path())
            .arg("--work-dir")
            .arg(self.work.path().join("w"))
            .arg("--trace")
            .arg(&trace)
            .arg("--digest-file")
            .arg(&digest)
            .args(extra);
        (c, trace, digest)
    }

    /// Builds; `extra` holds `--cache-dir` (or not: `/cache` does not exist on test machines).
    fn run(&self, extra: &[&str]) -> Done {
        self.run_with(extra, |_| {})
    }

    /// [`Build::run`], with `adjust` applied to the command first.
    fn run_with(&self, extra: &[&str], adjust: impl FnOnce(&mut Command)) -> Done {
        let (mut c, trace, digest) = self.command(extra);
        adjust(&mut c);
        let out = run(&mut c);
        assert_ok(&out);
        let events: Vec<Value> = std::fs::read_to_string(&trace)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let snapshots = events
            .iter()
            .filter(|e| e["event"] == "snapshot")
            .map(|e| {
                let changes = e["changes"].as_array().unwrap();
                let field = |c: &Value, f: &str| c[f].as_str().unwrap().to_string();
                changes
                    .iter()
                    .map(|c| format!("{} {} {}", field(c, "kind"), field(c, "file_type"), field(c, "path")))
                    .collect()
            })
            .collect();
        let mut pulled: Vec<String> = events
            .iter()
            .filter(|e| e["event"] == "pull_progress")
            .map(|e| e["digest"].as_str().unwrap().to_string())
            .collect();
        pulled.sort();
        pulled.dedup();
        // Only the first step's: what it changed was the base's, while a later step's "before"
        // is what this build's own RUN left, with the wall-clock mtime a RUN gives.
        let first_step = events.iter().find(|e| e["event"] == "snapshot").map(|e| e["id"].clone());
        let mut befores = Vec::new();
        for e in events.iter().filter(|e| Some(&e["id"]) == first_step.as_ref()) {
            if e["event"] == "snapshot" {
                for c in e["changes"].as_array().unwrap() {
                    befores.push(format!("{} {} {}", c["path"], c["kind"], c["previous"]));
                }
            }
            if e["event"] == "file_contents" {
                for f in e["files"].as_array().unwrap() {
                    befores.push(format!("{} before {}", f["path"], f["before"]));
                }
            }
        }
        let extracted = events.iter().filter(|e| e["event"] == "source_extracted").cloned().collect();
        let sources = events.iter().filter(|e| e["event"] == "source_unpacked").cloned().collect();
        let unpacked = events.into_iter().filter(|e| e["event"] == "base_unpacked").collect();
        let digest = std::fs::read_to_string(&digest).unwrap().trim().to_string();
        Done {
            digest,
            unpacked,
            log: format!("{}{}", stdout(&out), stderr(&out)),
            snapshots,
            pulled,
            befores,
            extracted,
            sources,
        }
    }
}

fn dest(name: &str) -> String {
    format!("{}/{}:1", env().registry, unique_repo(name))
}

/// Every path of a tree with its type, mode, owner, size, content digest, link target and
/// extended attributes: what "the store did not change" means.
fn fingerprint(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        let content = if m.is_file() { sha256_hex(&std::fs::read(e.path()).unwrap()) } else { String::new() };
        let link = std::fs::read_link(e.path()).map(|l| l.display().to_string()).unwrap_or_default();
        let xattrs: Vec<String> = xattr_names(e.path());
        out.insert(
            e.path().strip_prefix(dir).unwrap().display().to_string(),
            format!(
                "{:o} {}:{} {} {} {content} {link} {} {xattrs:?}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.size(),
                m.rdev(),
                m.mtime()
            ),
        );
    }
    out
}

fn xattr_names(p: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = rustix::fs::llistxattr(p, &mut buf[..]).unwrap();
    let mut names: Vec<String> = buf[..n]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    names.sort();
    names
}

fn mounts_mentioning(what: &Path) -> Vec<String> {
    let w = what.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&w))
        .map(str::to_string)
        .collect()
}

const CHILD: &str = "FROM BASE\n\
    RUN echo more >> /data/a && rm -rf /data/sub /etc/group && chmod 0700 /opq && rm /link/c && echo x > /opq/x\n\
    COPY file.txt /data/file.txt\n\
    RUN cat /data/a-hard > /hard-seen && ls /opq > /opq-seen\n";

#[test]
fn a_root_from_the_store_builds_the_same_image_and_never_writes_to_the_store() {
    let base = layered_base();
    let df = CHILD.replace("BASE", base);
    let cache = tempfile::Builder::new().prefix("trowel-store-cache-").tempdir_in("/var/tmp").unwrap();
    let cache_dir = cache.path().to_str().unwrap();

    let plain = Build::new(&df, None).run(&["--destination", &dest("store-plain")]);
    assert_eq!(plain.unpacked.len(), 1);
    assert!(plain.unpacked[0]["from_store"].is_null());
    assert!(plain.unpacked[0]["store_unused"].as_str().unwrap().contains("no cache dir"), "{:?}", plain.unpacked);
    assert!(plain.log.contains("unpacked-layer store not used: no cache dir"), "{}", plain.log);

    // First build with the store: every layer is unpacked into it, and the root mounted.
    let dest1 = dest("store-first");
    let first = Build::new(&df, None).run(&["--cache-dir", cache_dir, "--destination", &dest1]);
    assert_eq!(first.digest, plain.digest, "a root mounted from the store gave another image");
    let ev = &first.unpacked[0];
    assert_eq!((ev["layers"].as_u64(), ev["from_store"].as_u64()), (Some(4), Some(0)), "{ev}");
    assert!(ev["entries"].as_u64().unwrap() > 0 && ev["store_unused"].is_null(), "{ev}");
    let entries = std::fs::read_dir(cache.path().join("unpacked/sha256")).unwrap().count();
    assert_eq!(entries, 4);
    assert_eq!(std::fs::read_dir(cache.path().join("unpacked/tmp")).unwrap().count(), 0);

    // The second build finds every layer there and unpacks nothing, while its RUNs modify and
    // delete base files: the store is byte for byte what it was.
    // (Only the entries: `tmp/` is where entries are made, and the store's probe uses it.)
    let before = fingerprint(&cache.path().join("unpacked/sha256"));
    let second = Build::new(&df, None).run(&["--cache-dir", cache_dir, "--destination", &dest("store-second")]);
    assert_eq!(second.digest, plain.digest);
    let ev = &second.unpacked[0];
    assert_eq!((ev["from_store"].as_u64(), ev["entries"].as_u64(), ev["bytes"].as_u64()), (Some(4), Some(0), Some(0)));
    assert!(second.log.contains("Mounted 4 layer(s) from the unpacked-layer store (4 there already, none unpacked)"));
    let after = fingerprint(&cache.path().join("unpacked/sha256"));
    let changed: Vec<_> = after.iter().filter(|(k, v)| before.get(*k) != Some(v)).map(|(k, _)| k).collect();
    assert!(changed.is_empty() && after.len() == before.len(), "a build wrote to the store: {changed:?}");
    assert!(mounts_mentioning(cache.path()).is_empty());

    // Read back by independent tools: the RUN saw the hard link's new content, the deleted and
    // replaced directories are gone, the opaque directory holds only what its layer made.
    let img = pull_and_unpack(&dest1);
    let read = |p: &str| std::fs::read_to_string(img.rootfs().join(p)).unwrap();
    assert_eq!(read("hard-seen"), "a\nmore\n");
    assert_eq!(read("opq-seen"), "new\nx\n");
    assert_eq!(read("data/file.txt"), "from the context\n");
    for gone in ["data/sub", "etc/group", "data/c", "bin/ls", "opq/old", "opq/keep"] {
        assert!(std::fs::symlink_metadata(img.rootfs().join(gone)).is_err(), "{gone} is still there");
    }
    let opq = std::fs::metadata(img.rootfs().join("opq")).unwrap();
    assert_eq!(opq.mode() & 0o7777, 0o700);
}

/// A RUN that leaves the base's files alone, on a base without `/etc/hosts` (busybox): the
/// sandbox makes the mount point for the generated hosts file and removes it after, with
/// `/etc`'s mtime put back. On a root mounted from the store that left `/etc` copied up into
/// the upper directory with another `st_size`, and the snapshot reported `/etc` modified: the
/// layer carried it, the debugger showed a change nobody made, and the image's digest depended
/// on whether the store was used. A directory's size is no change.
///
/// On a tmpfs, where a directory's size counts its entries (ext4's counts blocks, and there
/// `/etc` kept its size): the cache dir and work dir are on one the test mounts.
#[test]
fn a_run_that_leaves_etc_alone_makes_the_same_layer_on_a_root_from_the_store() {
    struct Tmpfs(tempfile::TempDir);
    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
        }
    }
    let fs = Tmpfs(tempfile::Builder::new().prefix("trowel-store-tmpfs-").tempdir_in("/var/tmp").unwrap());
    assert_ok(&run(Command::new("mount").args(["-t", "tmpfs", "-o", "size=256m", "tmpfs"]).arg(fs.0.path())));
    // What makes the test able to fail: one more entry, another size.
    let probe = fs.0.path().join("probe");
    std::fs::create_dir(&probe).unwrap();
    let empty = std::fs::metadata(&probe).unwrap().len();
    std::fs::write(probe.join("f"), "").unwrap();
    assert_ne!(std::fs::metadata(&probe).unwrap().len(), empty, "a tmpfs directory's size counts its entries");

    let df = format!("FROM {}\nRUN echo hi > /x.txt\n", env().busybox());
    let cache_dir = fs.0.path().join("cache");
    std::fs::create_dir(&cache_dir).unwrap();
    let cache_dir = cache_dir.to_str().unwrap();
    let plain = Build::new(&df, Some(fs.0.path())).run(&["--destination", &dest("etc-plain")]);
    assert!(plain.unpacked[0]["from_store"].is_null(), "{:?}", plain.unpacked);
    let stored =
        Build::new(&df, Some(fs.0.path())).run(&["--cache-dir", cache_dir, "--destination", &dest("etc-store")]);
    assert_eq!(stored.unpacked[0]["from_store"].as_u64(), Some(0), "the root was not mounted: {:?}", stored.unpacked);
    assert_eq!(stored.snapshots, [vec!["added file /x.txt".to_string()]], "{}", stored.log);
    assert_eq!(stored.snapshots, plain.snapshots);
    assert_eq!(stored.digest, plain.digest, "a root mounted from the store gave another image");
}

/// A build whose root the store serves downloads none of the layers the store holds (issue
/// 17: an edited rebuild on a Debian base fetched the whole base again, and never read it),
/// only those whose entry is gone; and a root the store then cannot serve after all is
/// unpacked from its layers, downloaded at that point. The image is the same each time.
#[test]
fn a_root_from_the_store_downloads_only_the_layers_the_store_lacks() {
    let base = layered_base();
    let df = CHILD.replace("BASE", base);
    let cache = tempfile::Builder::new().prefix("trowel-store-cache-").tempdir_in("/var/tmp").unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let mut layers: Vec<String> = skopeo_manifest(base)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let diff_ids: Vec<String> = skopeo_config(base)["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    // OCI chain IDs, which name the store's entries.
    let mut chains: Vec<String> = Vec::new();
    for d in &diff_ids {
        let next = match chains.last() {
            None => d.clone(),
            Some(below) => format!("sha256:{}", sha256_hex(format!("{below} {d}").as_bytes())),
        };
        chains.push(next);
    }
    let hex = |chain: &str| chain.trim_start_matches("sha256:").to_string();
    assert_eq!(layers.len(), 4);
    let top = layers[3].clone();
    layers.sort();
    let build = |name: &str| Build::new(&df, None).run(&["--cache-dir", cache_dir, "--destination", &dest(name)]);

    let first = build("store-dl-first");
    assert_eq!(first.pulled, layers, "a fresh work dir and an empty store: every layer is downloaded");

    let second = build("store-dl-second");
    assert_eq!(second.digest, first.digest);
    // What the RUN's changed base files were before it comes from the store's entries now, and
    // says what the layer blobs say in a build without the store, a hard link included (its
    // entry in a blob has no content of its own: `/data/a-hard` was `a\n` too).
    let plain = Build::new(&df, None).run(&["--destination", &dest("store-dl-plain")]);
    assert!(second.befores.iter().any(|b| b == "\"/data/a\" before \"a\\n\""), "{:#?}", second.befores);
    assert_eq!(second.befores, plain.befores);
    let a_digest = format!("sha256:{}", sha256_hex(b"a\n"));
    let hard: Vec<&String> = plain.befores.iter().filter(|b| b.contains("a-hard")).collect();
    assert!(hard.iter().any(|b| *b == "\"/data/a-hard\" before \"a\\n\""), "{hard:#?}");
    assert!(hard.iter().any(|b| b.contains("\"modified\"") && b.contains(&a_digest)), "{hard:#?}");

    // The top layer's entry is gone (as a prune deletes it): that layer alone is downloaded.
    std::fs::remove_dir_all(cache.path().join("unpacked/sha256").join(hex(&chains[3]))).unwrap();
    let third = build("store-dl-third");
    assert_eq!(third.digest, first.digest);
    assert_eq!(third.pulled, vec![top]);
    let ev = &third.unpacked[0];
    assert_eq!(ev["from_store"].as_u64(), Some(3), "{ev}");
    assert!(ev["entries"].as_u64().unwrap() > 0, "{ev}");

    // The bottom entry's use lock cannot be taken (a directory stands where its file goes): the
    // store looks complete but cannot serve the root, which is unpacked from every layer, each
    // downloaded once that is known, and the reason is said.
    let lock = cache.path().join("unpacked/uses").join(hex(&chains[0]));
    let _ = std::fs::remove_file(&lock);
    std::fs::create_dir(&lock).unwrap();
    let fourth = build("store-dl-fourth");
    assert_eq!(fourth.digest, first.digest);
    assert_eq!(fourth.pulled, layers);
    let ev = &fourth.unpacked[0];
    assert!(ev["from_store"].is_null(), "{ev}");
    assert!(ev["store_unused"].as_str().unwrap().contains("use lock cannot be taken"), "{ev}");
}

/// A root mounted from the store is indexed without reading its base files (issue 17): a
/// snapshot reads a base file from the store's entry only when nothing but its ctime moved.
/// RUNs that change base files in every way that leaves size and time alone (an overlay
/// copy-up, chmod and chown and back, a same-size rewrite with `touch -r`, a hard link or a
/// rename over it, owner and mode changes) are seen exactly as in a root unpacked into a
/// directory, in a build that makes the store's entries and in one that finds them.
/// A root whose layers are small (below `--unpacked-store-min-size`, 4 MiB by default; the
/// suite sets 0 for the tests above) is unpacked though the store could serve it, says why,
/// leaves nothing in the store, and gives the image a root mounted from the store gives.
#[test]
fn a_small_root_is_unpacked_though_the_store_could_serve_it() {
    let df = CHILD.replace("BASE", layered_base());
    let cache = tempfile::Builder::new().prefix("trowel-store-cache-").tempdir_in("/var/tmp").unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let entries = || std::fs::read_dir(cache.path().join("unpacked/sha256")).map(|d| d.count()).unwrap_or(0);

    let small = Build::new(&df, None).run_with(&["--cache-dir", cache_dir, "--destination", &dest("small")], |c| {
        c.env_remove("TROWEL_UNPACKED_STORE_MIN_SIZE");
    });
    let ev = &small.unpacked[0];
    assert!(ev["from_store"].is_null(), "{ev}");
    assert_eq!(ev["layers"].as_u64(), Some(4), "{ev}");
    let why = ev["store_unused"].as_str().unwrap();
    assert!(why.contains("of layers, under --unpacked-store-min-size 4.0 MiB: unpacked"), "{why}");
    assert!(small.log.contains(&format!("(unpacked-layer store not used: {why})")), "{}", small.log);
    assert_eq!(entries(), 0, "a root unpacked for its size put nothing in the store");

    // Any size above the threshold: mounted from the store, the same image.
    let stored = Build::new(&df, None).run(&[
        "--cache-dir",
        cache_dir,
        "--unpacked-store-min-size",
        "1KiB",
        "--destination",
        &dest("small-stored"),
    ]);
    let ev = &stored.unpacked[0];
    assert_eq!((ev["from_store"].as_u64(), ev["store_unused"].as_str()), (Some(0), None), "{ev}");
    assert_eq!(entries(), 4);
    assert_eq!(stored.digest, small.digest, "an unpacked root and a mounted one gave different images");

    // With the store filled, the rule still holds: the flag decides, not what the store has.
    let again =
        Build::new(&df, None).run_with(&["--cache-dir", cache_dir, "--destination", &dest("small-again")], |c| {
            c.env_remove("TROWEL_UNPACKED_STORE_MIN_SIZE");
        });
    assert!(again.unpacked[0]["from_store"].is_null(), "{:?}", again.unpacked);
    assert_eq!(again.digest, small.digest);
}

#[test]
fn two_builds_making_the_same_entries_at_once_both_succeed() {
    let cache = tempfile::Builder::new().prefix("trowel-store-cache-").tempdir_in("/var/tmp").unwrap();
    let df = CHILD.replace("BASE", layered_base());
    let builds = [Build::new(&df, None), Build::new(&df, None)];
    let children: Vec<_> = builds
        .iter()
        .map(|b| {
            let (mut c, _, digest) = b.command(&["--cache-dir", cache.path().to_str().unwrap(), "--no-push"]);
            (c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap(), digest)
        })
        .collect();
    let digests: Vec<String> = children
        .into_iter()
        .map(|(child, digest)| {
            assert_ok(&child.wait_with_output().unwrap());
            std::fs::read_to_string(digest).unwrap()
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
    // One entry per layer, whoever won each rename; nothing left half-made.
    assert_eq!(std::fs::read_dir(cache.path().join("unpacked/sha256")).unwrap().count(), 4);
    assert_eq!(std::fs::read_dir(cache.path().join("unpacked/tmp")).unwrap().count(), 0);
    let again = Build::new(&df, None).run(&["--cache-dir", cache.path().to_str().unwrap(), "--no-push"]);
    assert_eq!(again.unpacked[0]["from_store"].as_u64(), Some(4));
    assert_eq!(again.digest, digests[0].trim());
}

#[test]
fn a_killed_build_leaves_no_mount() {
    let cache = tempfile::Builder::new().prefix("trowel-store-cache-").tempdir_in("/var/tmp").unwrap();
    let df = format!("FROM {}\nRUN touch /started && sleep 120\n", env().busybox());
    let b = Build::new(&df, None);
    let (mut c, _, _) = b.command(&["--cache-dir", cache.path().to_str().unwrap(), "--no-push"]);
    let mut child = c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let work = b.work.path().join("w");
    // Wait until the RUN runs on a root mounted from the store (seen in trowel's own mounts).
    let theirs = format!("/proc/{}/mountinfo", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let pid = child.id();
    loop {
        let m = std::fs::read_to_string(&theirs).unwrap_or_default();
        let root = m
            .lines()
            .filter(|l| l.contains(" - overlay "))
            .filter_map(|l| l.split(' ').nth(4))
            .find(|d| d.starts_with(work.to_str().unwrap()))
            .map(str::to_string);
        // `/proc/<pid>/root` looks through trowel's own mount namespace.
        if root.is_some_and(|d| Path::new(&format!("/proc/{pid}/root{d}/started")).exists()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the RUN never started on a mounted root");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(mounts_mentioning(&work).is_empty(), "{:?}", mounts_mentioning(&work));
    assert!(mounts_mentioning(cache.path()).is_empty());
    // The next build removes the dead build's directory (nothing mounted keeps it).
    let again = Build { ctx: b.ctx, work: b.work };
    let df2 = format!("FROM {}\nRUN echo ok > /ok\n", env().busybox());
    std::fs::write(again.ctx.path().join("Dockerfile"), df2).unwrap();
    again.run(&["--cache-dir", cache.path().to_str().unwrap(), "--no-push"]);
    assert_eq!(std::fs::read_dir(&work).map(|d| d.count()).unwrap_or(0), 0);
    assert_eq!(std::fs::read_dir(cache.path().join("unpacked/tmp")).unwrap().count(), 0);
}

mod copy_from;
mod index;
mod layers;
mod unsynced;
