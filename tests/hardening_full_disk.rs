//! Full disks (issue 20): a build whose work dir or cache dir is on a small file system that
//! fills up — while a base is unpacked, while a RUN writes, while a layer is written, while an
//! entry of the unpacked-layer store is made in the cache dir — fails with an error naming the
//! directory, its file system and what to do (pinned here), pushes nothing, leaves its work dir
//! empty and the cache dir consistent (`trowel cache check`); and once the file system is made
//! bigger the same build gives the same image as a reference build elsewhere (`--reproducible`).
//!
//! The small file systems are size-limited tmpfs mounts the test makes (as root) and removes;
//! growing one is a remount with a larger size, as freeing a disk would be.

mod common;
mod fs_support;
mod hardening_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_ok, run, trowel, unique_repo};
use hardening_support::{ExtraLayer, Pushed, context, log, push_image};

/// A tmpfs of a few MiB mounted on a fresh directory; unmounted and removed when dropped.
struct SmallFs {
    dir: PathBuf,
}

impl SmallFs {
    fn new(mib: u64) -> SmallFs {
        SmallFs::mount(&format!("size={mib}m,mode=0755"))
    }

    fn mount(options: &str) -> SmallFs {
        let dir = tempfile::Builder::new().prefix("trowel-fulldisk-").tempdir_in("/var/tmp").unwrap().keep();
        let o = run(Command::new("mount").args(["-t", "tmpfs", "-o", options, "trowel-full"]).arg(&dir));
        assert_ok(&o);
        SmallFs { dir }
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    /// Makes the file system `mib` MiB, keeping what is on it (a disk that was freed).
    fn grow(&self, mib: u64) {
        assert_ok(&run(Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m"), "trowel-full"])
            .arg(&self.dir)));
    }

    /// What is on it (names at its top).
    fn listing(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `trowel build --reproducible` of `dockerfile` (context: `files` besides it) to `dest`, with
/// `extra` flags.
fn build(dockerfile: &str, files: &[(&str, &[u8])], dest: &str, extra: &[&str]) -> Output {
    let ctx = context(dockerfile);
    for (name, bytes) in files {
        std::fs::write(ctx.path().join(name), bytes).unwrap();
    }
    run(trowel()
        .args(["build", "--reproducible", "--context"])
        .arg(ctx.path())
        .args(["--destination", dest])
        .args(extra))
}

fn digest_of(reference: &str) -> String {
    let o = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{reference}")));
    assert_ok(&o);
    common::stdout(&o).trim().to_string()
}

#[track_caller]
fn assert_not_pushed(reference: &str) {
    let o = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{reference}")));
    assert!(!o.status.success(), "{reference} was pushed by a failed build");
}

/// The build failed, and its error is `cause` (with the system's "No space left on device"
/// unless a RUN's command met it), then what filled up: the directory, its tmpfs and the flag
/// to move it.
#[track_caller]
fn assert_full(o: &Output, cause: &str, what: &str, fs: &SmallFs, flag: &str) {
    let text = log(o);
    assert!(!o.status.success(), "the build succeeded:\n{text}");
    let dir = fs.path().display();
    let explained = format!("— the {what} {dir} is full (tmpfs on trowel-full mounted at {dir}: ");
    let line =
        text.lines().find(|l| l.contains("error building image")).unwrap_or_else(|| panic!("no error line:\n{text}"));
    if !cause.starts_with("RUN ") {
        assert!(line.contains("No space left on device (os error 28)"), "the cause is kept:\n{line}");
    }
    assert!(line.contains(cause), "the error does not say {cause:?}:\n{line}");
    println!("{line}");
    assert!(line.contains(&explained), "the error does not say {explained:?}:\n{line}");
    assert!(line.ends_with(&format!(": free space there or point {flag} at a larger file system")), "{line}");
}

/// `trowel cache check` of `dir` passes.
#[track_caller]
fn assert_cache_consistent(dir: &Path) {
    assert_ok(&run(trowel().args(["cache", "check", "--cache-dir"]).arg(dir)));
    let tmp = dir.join("unpacked/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "a half-made store entry was left in {}: {left:?}", tmp.display());
}

/// busybox plus one 24 MiB file of zeros (a 24 KiB blob): more than the small file systems hold
/// once unpacked.
fn big_base() -> &'static Pushed {
    static P: std::sync::OnceLock<Pushed> = std::sync::OnceLock::new();
    P.get_or_init(|| push_image(&unique_repo("fulldisk-base"), &ExtraLayer::zero_files(&[("big", 24 << 20)])))
}

/// The reference: the same build on the machine's own disk.
fn reference(dockerfile: &str, files: &[(&str, &[u8])], repo: &str) -> String {
    let dest = format!("{}/{repo}:reference", common::env().registry);
    assert_ok(&build(dockerfile, files, &dest, &[]));
    digest_of(&dest)
}

/// Then: the work dir is empty, nothing was pushed; on a bigger file system the same build
/// gives the reference's image.
#[track_caller]
fn then_freed_builds_the_reference(
    fs: &SmallFs,
    dockerfile: &str,
    files: &[(&str, &[u8])],
    repo: &str,
    extra: &[&str],
) {
    let registry = &common::env().registry;
    assert_not_pushed(&format!("{registry}/{repo}:failed"));
    let want = reference(dockerfile, files, repo);
    fs.grow(256);
    let dest = format!("{registry}/{repo}:after");
    assert_ok(&build(dockerfile, files, &dest, extra));
    assert_eq!(digest_of(&dest), want, "the build after the disk was freed differs from the reference");
}

#[test]
fn a_work_dir_that_fills_while_a_base_is_unpacked() {
    let work = SmallFs::new(12);
    let base = big_base();
    let df = format!("FROM {}\nRUN echo built > /built\n", base.reference);
    let repo = unique_repo("fulldisk-unpack");
    let failed = format!("{}/{repo}:failed", common::env().registry);
    let flags = ["--work-dir", work.path().to_str().unwrap(), "--cache-dir", "/nonexistent-trowel-cache"];
    let o = build(&df, &[], &failed, &flags);
    let cause = format!("unpack layer {} of {}: ", base.layer_digest, base.reference);
    assert_full(&o, &cause, "work dir", &work, "--work-dir");
    assert_eq!(work.listing(), Vec::<String>::new(), "the failed build left its work dir");
    then_freed_builds_the_reference(&work, &df, &[], &repo, &flags);
    assert_eq!(work.listing(), Vec::<String>::new());
}

#[test]
fn a_work_dir_that_fills_during_a_run() {
    let work = SmallFs::new(12);
    let df = format!("FROM {}\nRUN dd if=/dev/zero of=/big bs=1M count=24\n", common::env().busybox());
    let repo = unique_repo("fulldisk-run");
    let failed = format!("{}/{repo}:failed", common::env().registry);
    let flags = ["--work-dir", work.path().to_str().unwrap(), "--cache-dir", "/nonexistent-trowel-cache"];
    let o = build(&df, &[], &failed, &flags);
    assert_full(&o, "RUN dd if=/dev/zero of=/big bs=1M count=24: exit code 1", "work dir", &work, "--work-dir");
    assert!(log(&o).contains("No space left on device"), "dd's own message is in the log");
    assert_eq!(o.status.code(), Some(1), "the RUN's exit code is the build's");
    assert_eq!(work.listing(), Vec::<String>::new(), "the failed build left its work dir");
    then_freed_builds_the_reference(&work, &df, &[], &repo, &flags);
}

/// 5 MiB that do not compress (a fixed xorshift sequence): the file fits in the root, its
/// layer does not fit beside it.
fn incompressible(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

#[test]
fn a_work_dir_that_fills_while_a_layer_is_written() {
    let work = SmallFs::new(12);
    let data = incompressible(5 << 20);
    let files: [(&str, &[u8]); 1] = [("noise", &data)];
    let df = format!("FROM {}\nCOPY noise /noise\n", common::env().busybox());
    let repo = unique_repo("fulldisk-layer");
    let failed = format!("{}/{repo}:failed", common::env().registry);
    let flags = ["--work-dir", work.path().to_str().unwrap(), "--cache-dir", "/nonexistent-trowel-cache"];
    let o = build(&df, &files, &failed, &flags);
    assert_full(
        &o,
        // Which entry was being written when the last block went depends on the compressor's
        // threads: `/noise` or the archive's end.
        "Dockerfile:2: COPY noise /noise: write layer for step 0.1: writing layer entry ",
        "work dir",
        &work,
        "--work-dir",
    );
    assert_eq!(work.listing(), Vec::<String>::new(), "the failed build left its work dir");
    then_freed_builds_the_reference(&work, &df, &files, &repo, &flags);
}

#[test]
fn a_cache_dir_that_fills_while_a_store_entry_is_made() {
    let cache = SmallFs::new(12);
    let work = tempfile::Builder::new().prefix("trowel-fulldisk-work-").tempdir_in("/var/tmp").unwrap();
    let base = big_base();
    let df = format!("FROM {}\nRUN echo built > /built\n", base.reference);
    let repo = unique_repo("fulldisk-cache");
    let failed = format!("{}/{repo}:failed", common::env().registry);
    let flags = ["--work-dir", work.path().to_str().unwrap(), "--cache-dir", cache.path().to_str().unwrap()];
    let o = build(&df, &[], &failed, &flags);
    let cause = format!("unpack layer {} of {}: ", base.layer_digest, base.reference);
    assert_full(&o, &cause, "cache dir", &cache, "--cache-dir");
    let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "the failed build left {left:?} in its work dir");
    assert_cache_consistent(cache.path());
    then_freed_builds_the_reference(&cache, &df, &[], &repo, &flags);
    assert_cache_consistent(cache.path());
    assert!(cache.path().join("unpacked/sha256").read_dir().unwrap().count() >= 2, "the store was used");
}

/// The local layer store (COPY layers kept in the cache dir) filling up does not fail the build
/// (its entries are an optimisation): the warning says what filled up, the cache dir stays
/// consistent, and with room the next build (which finds the layer through the first one's
/// layer reference record in the cache repository) gives the same image.
#[test]
fn a_cache_dir_that_fills_while_a_local_layer_is_stored() {
    let cache = SmallFs::new(6);
    let work = tempfile::Builder::new().prefix("trowel-fulldisk-work-").tempdir_in("/var/tmp").unwrap();
    let data = incompressible(5 << 20);
    let files: [(&str, &[u8]); 1] = [("noise", &data)];
    let df = format!("FROM {}\nCOPY noise /noise\n", common::env().busybox());
    let repo = unique_repo("fulldisk-local");
    let registry = &common::env().registry;
    let cache_repo = format!("{registry}/{repo}-cache");
    let flags = [
        "--work-dir",
        work.path().to_str().unwrap(),
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--cache=true",
        "--cache-repo",
        &cache_repo,
    ];
    let o = build(&df, &files, &format!("{registry}/{repo}:first"), &flags);
    assert_ok(&o);
    let text = log(&o);
    let dir = cache.path().display();
    let line = text
        .lines()
        .find(|l| l.contains("could not write the local cache entry"))
        .unwrap_or_else(|| panic!("no warning about the local cache entry:\n{text}"));
    assert!(line.contains("No space left on device (os error 28)"), "{line}");
    println!("{line}");
    assert!(
        line.contains(&format!("— the cache dir {dir} is full (tmpfs on trowel-full mounted at {dir}: ")),
        "{line}"
    );
    assert!(line.ends_with(": free space there or point --cache-dir at a larger file system"), "{line}");
    assert_cache_consistent(cache.path());
    let want = reference(&df, &files, &repo);
    assert_eq!(digest_of(&format!("{registry}/{repo}:first")), want);
    cache.grow(256);
    let second = format!("{registry}/{repo}:second");
    assert_ok(&build(&df, &files, &second, &flags));
    assert_eq!(digest_of(&second), want);
    assert_cache_consistent(cache.path());
}

/// `trowel warm` filling the base-image cache: the image's failure says which directory filled
/// up, the cache dir stays consistent (the partial download is not an entry), and once there
/// is room the warm completes and a build uses the cached image.
#[test]
fn a_cache_dir_that_fills_while_warm_downloads() {
    let cache = SmallFs::new(6);
    let noise = fs_support::TarMaker::new().file("noise", &incompressible(8 << 20)).finish();
    let image = push_image(&unique_repo("fulldisk-warm"), &ExtraLayer::from_tar(&noise));
    let warm = || run(trowel().args(["warm", "--image", &image.reference, "--cache-dir"]).arg(cache.path()));
    let o = warm();
    assert!(!o.status.success(), "warm succeeded:\n{}", log(&o));
    let text = log(&o);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("Failed to warm {}", image.reference)))
        .unwrap_or_else(|| panic!("no failure line:\n{text}"));
    println!("{line}");
    let dir = cache.path().display();
    assert!(line.contains("No space left on device"), "{line}");
    assert!(
        line.contains(&format!("— the cache dir {dir} is full (tmpfs on trowel-full mounted at {dir}: ")),
        "{line}"
    );
    assert!(line.ends_with(": free space there or point --cache-dir at a larger file system"), "{line}");
    assert_cache_consistent(cache.path());
    cache.grow(256);
    assert_ok(&warm());
    assert_cache_consistent(cache.path());
    let work = tempfile::Builder::new().prefix("trowel-fulldisk-work-").tempdir_in("/var/tmp").unwrap();
    let ctx = context(&format!("FROM {}\nRUN test -s /noise\n", image.reference));
    let o = run(trowel()
        .args(["build", "--no-push", "--context"])
        .arg(ctx.path())
        .args(["--work-dir"])
        .arg(work.path())
        .arg("--cache-dir")
        .arg(cache.path()));
    assert_ok(&o);
    assert!(!log(&o).contains("not usable from the cache directory"), "{}", log(&o));
}

/// A `tar://` context bigger than the work dir's file system: fetched before the build, it
/// fails with the same advice, and leaves the work dir empty.
#[test]
fn a_work_dir_that_fills_while_a_context_archive_is_unpacked() {
    let work = SmallFs::new(6);
    let df = format!("FROM {}\nCOPY noise /noise\n", common::env().busybox());
    let tar =
        fs_support::TarMaker::new().file("Dockerfile", df.as_bytes()).file("noise", &incompressible(8 << 20)).finish();
    let archive = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
    std::fs::write(archive.path(), tar).unwrap();
    let o = run(trowel()
        .args(["build", "--no-push", "--context"])
        .arg(format!("tar://{}", archive.path().display()))
        .arg("--work-dir")
        .arg(work.path()));
    let text = log(&o);
    assert!(!o.status.success(), "built:\n{text}");
    let line = text.lines().find(|l| l.contains("build context tar://")).unwrap_or_else(|| panic!("{text}"));
    println!("{line}");
    let dir = work.path().display();
    assert!(line.contains(": write /noise (in "), "{line}");
    assert!(!line.contains("refused"), "a full disk is not a refusal: {line}");
    assert!(line.contains("No space left on device"), "{line}");
    assert!(line.contains(&format!("— the work dir {dir} is full (tmpfs on trowel-full mounted at {dir}: ")), "{line}");
    assert!(line.ends_with(": free space there or point --work-dir at a larger file system"), "{line}");
    assert_eq!(work.listing(), Vec::<String>::new(), "the failed fetch left its directory");
    work.grow(64);
    let o = run(trowel()
        .args(["build", "--no-push", "--context"])
        .arg(format!("tar://{}", archive.path().display()))
        .arg("--work-dir")
        .arg(work.path()));
    assert_ok(&o);
    assert_eq!(work.listing(), Vec::<String>::new());
}

/// Out of inodes rather than bytes (a tmpfs of 64 MiB and 600 inodes; busybox's 288 entries and
/// 1,000 empty files): the advice is to free inodes, and says none is left.
#[test]
fn a_work_dir_out_of_inodes() {
    let work = SmallFs::mount("size=64m,nr_inodes=600,mode=0755");
    let mut t = fs_support::TarMaker::new();
    for i in 0..1000 {
        t = t.file(&format!("f{i:04}"), b"");
    }
    let base = push_image(&unique_repo("fulldisk-inodes"), &ExtraLayer::from_tar(&t.finish()));
    let df = format!("FROM {}\nRUN true\n", base.reference);
    let repo = unique_repo("fulldisk-inodes-out");
    let failed = format!("{}/{repo}:failed", common::env().registry);
    let flags = ["--work-dir", work.path().to_str().unwrap(), "--cache-dir", "/nonexistent-trowel-cache"];
    let o = build(&df, &[], &failed, &flags);
    let text = log(&o);
    assert!(!o.status.success(), "built:\n{text}");
    let line = text.lines().find(|l| l.contains("error building image")).unwrap_or_else(|| panic!("{text}"));
    println!("{line}");
    assert!(line.contains(&format!("unpack layer {} of {}: ", base.layer_digest, base.reference)), "{line}");
    assert!(line.contains("No space left on device (os error 28)"), "{line}");
    assert!(line.contains(", no inode free of 600)"), "{line}");
    assert!(line.ends_with(": free inodes (delete files) there or point --work-dir at a larger file system"), "{line}");
    assert_eq!(work.listing(), Vec::<String>::new(), "the failed build left its work dir");
    assert_not_pushed(&failed);
}
