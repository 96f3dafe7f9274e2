//! Hostile layers end to end: each test pushes busybox plus one crafted layer to the local
//! registry (with skopeo, from an OCI layout assembled by hand) and runs `trowel build` FROM
//! it with a work directory that has a canary next to the build roots. A refused layer must fail
//! the build with an error naming the layer and the entry; whatever happens, the canary is
//! untouched and the work directory is left empty. (The same shapes are checked entry by entry
//! against the unpacker in `fs_hostile.rs`, and fuzzed by `fuzz/fuzz_targets/unpack.rs`.)

mod common;
mod fs_support;
mod hardening_support;

use common::{assert_ok, run, trowel, unique_repo};
use fs_support::TarMaker;
use hardening_support::{CanaryWork, ExtraLayer, Pushed, context, log, push_image};

/// Builds `FROM <image>` + `dockerfile_tail` without pushing, in `work`.
fn build_from(image: &Pushed, dockerfile_tail: &str, work: &CanaryWork, extra: &[&str]) -> std::process::Output {
    let ctx = context(&format!("FROM {}\n{dockerfile_tail}", image.reference));
    run(trowel()
        .args(["build", "--no-push", "--context"])
        .arg(ctx.path())
        .arg("--work-dir")
        .arg(work.path())
        .args(extra))
}

/// The build failed, and its log names the layer and `needles` (the entry, the reason).
#[track_caller]
fn assert_refused(o: &std::process::Output, image: &Pushed, needles: &[&str]) {
    let text = log(o);
    assert!(!o.status.success(), "the build succeeded:\n{text}");
    assert!(text.contains(&image.layer_digest), "the error does not name layer {}:\n{text}", image.layer_digest);
    assert!(text.contains(&image.reference), "the error does not name the image {}:\n{text}", image.reference);
    for n in needles {
        assert!(text.contains(n), "the error does not mention {n:?}:\n{text}");
    }
}

fn refused_case(name: &str, tar: Vec<u8>, needles: &[&str]) {
    let work = CanaryWork::new();
    let image = push_image(&unique_repo(name), &ExtraLayer::from_tar(&tar));
    let o = build_from(&image, "RUN echo should-not-run\n", &work, &[]);
    assert_refused(&o, &image, needles);
    assert!(!log(&o).contains("\nshould-not-run"), "the RUN ran on a refused base");
    work.assert_untouched_and_clean();
}

#[test]
fn dotdot_traversal_is_refused() {
    refused_case(
        "hostile-dotdot",
        TarMaker::new().file("../../../canary/secret", b"pwned").finish(),
        &["\"../../../canary/secret\"", "\"..\" component"],
    );
}

#[test]
fn absolute_paths_are_refused() {
    let work = CanaryWork::new();
    let target = format!("{}/secret", work.canary().display());
    let image = push_image(
        &unique_repo("hostile-abs"),
        &ExtraLayer::from_tar(&TarMaker::new().file(&target, b"pwned").finish()),
    );
    let o = build_from(&image, "RUN true\n", &work, &[]);
    assert_refused(&o, &image, &[&format!("{target:?}"), "absolute path"]);
    work.assert_untouched_and_clean();
}

#[test]
fn writes_through_an_escaping_symlink_are_refused() {
    refused_case(
        "hostile-symlink",
        TarMaker::new().symlink("evil", "../../../canary").file("evil/secret", b"pwned").finish(),
        &["\"evil/secret\"", "leaves the root"],
    );
    refused_case(
        "hostile-symlink-chain",
        TarMaker::new().dir("d").symlink("d/up", "..").symlink("d/up2", "up/../..").file("d/up2/x", b"x").finish(),
        &["\"d/up2/x\"", "leaves the root"],
    );
}

#[test]
fn hardlinks_to_outside_are_refused() {
    refused_case(
        "hostile-hardlink",
        TarMaker::new().hardlink("h", "../../../canary/secret").finish(),
        &["\"h\"", "\"..\" component"],
    );
    refused_case(
        "hostile-hardlink-via-symlink",
        TarMaker::new().symlink("s", "../../../canary").hardlink("h", "s/secret").finish(),
        &["\"h\"", "leaves the root"],
    );
}

#[test]
fn escaping_whiteouts_are_refused() {
    refused_case("hostile-wh-dotdot", TarMaker::new().file("../.wh.canary", b"").finish(), &["\"../.wh.canary\""]);
    refused_case(
        "hostile-wh-symlink",
        TarMaker::new().symlink("up", "../../..").file("up/.wh.canary", b"").finish(),
        &["\"up/.wh.canary\"", "leaves the root"],
    );
}

#[test]
fn enormous_extension_headers_are_refused() {
    // A 64 MiB PAX header (a few KiB once compressed) that the tar crate would buffer whole.
    let mut tar = Vec::new();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(64 << 20);
    h.set_cksum();
    tar.extend_from_slice(h.as_bytes());
    tar.resize(tar.len() + (64 << 20), b'a');
    tar.extend_from_slice(&[0u8; 1024]);
    refused_case("hostile-pax", tar, &["exceeds the 1048576-byte limit"]);
}

#[test]
fn decompression_bombs_are_stopped_by_the_size_flags() {
    // One file of 300 MiB of zeros: a 300 KiB blob.
    let work = CanaryWork::new();
    let image = push_image(&unique_repo("bomb-file"), &ExtraLayer::zero_files(&[("zeros", 300 << 20)]));
    let o = build_from(&image, "RUN true\n", &work, &["--max-file-size", "100MiB"]);
    assert_refused(&o, &image, &["\"zeros\" is too large", "314572800 bytes (limit 104857600)"]);
    work.assert_untouched_and_clean();
    // Many files, each allowed, adding up to more than the layer may hold.
    let files: Vec<(String, u64)> = (0..6).map(|i| (format!("z{i}"), 100 << 20)).collect();
    let files: Vec<(&str, u64)> = files.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let image = push_image(&unique_repo("bomb-layer"), &ExtraLayer::zero_files(&files));
    let o = build_from(&image, "RUN true\n", &work, &["--max-file-size", "100MiB", "--max-layer-size", "256MiB"]);
    assert_refused(&o, &image, &["layer is too large once unpacked", "by entry \"z2\"", "(limit 268435456)"]);
    work.assert_untouched_and_clean();
    // Within the limits the same layer builds (the defaults are far above it).
    let o = build_from(&image, "RUN test \"$(wc -c < /z5)\" = 104857600\n", &work, &[]);
    assert_ok(&o);
    work.assert_untouched_and_clean();
}

#[test]
fn duplicate_entries_replace_and_never_follow_a_symlink() {
    let work = CanaryWork::new();
    let tar = TarMaker::new()
        .file("x", b"first")
        .symlink("x", "../../../canary/secret")
        .file("x", b"second")
        .dir("d")
        .file("d", b"file replaces dir")
        .finish();
    let image = push_image(&unique_repo("hostile-dup"), &ExtraLayer::from_tar(&tar));
    let o =
        build_from(&image, "RUN test \"$(cat /x)\" = second && test \"$(cat /d)\" = 'file replaces dir'\n", &work, &[]);
    assert_ok(&o);
    work.assert_untouched_and_clean();
}

#[test]
fn device_nodes_in_a_base_cannot_be_opened_by_run() {
    // Base images may carry device nodes (trowel recreates them), but the build root is mounted
    // nodev: a RUN cannot use them to reach host devices (1:5 is the host's /dev/zero).
    let work = CanaryWork::new();
    let tar = TarMaker::new().device(tar::EntryType::Char, "hostzero", 1, 5).finish();
    let image = push_image(&unique_repo("hostile-dev"), &ExtraLayer::from_tar(&tar));
    let o = build_from(&image, "RUN test -c /hostzero && head -c 1 /hostzero\n", &work, &[]);
    let text = log(&o);
    assert!(!o.status.success(), "the RUN read a host device through a node from the image:\n{text}");
    assert!(text.contains("Permission denied"), "{text}");
    work.assert_untouched_and_clean();
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_refused() {
    let work = CanaryWork::new();
    let mut layer = ExtraLayer::from_tar(&TarMaker::new().file("innocent", b"x").finish());
    let claimed = format!("sha256:{}", "ab".repeat(32));
    layer.diff_id = claimed.clone();
    let image = push_image(&unique_repo("hostile-diffid"), &layer);
    let o = build_from(&image, "RUN true\n", &work, &[]);
    assert_refused(&o, &image, &[&format!("but the image config gives diff_id {claimed}")]);
    work.assert_untouched_and_clean();
}

/// The same refusal when the root is made ahead, while a cold stage's cache keys are planned
/// (`engine/stage/ahead.rs`), from the unpacked-layer store or not: the error is the first
/// step's that needs the root, at its line, and nothing is left behind.
#[test]
fn a_refused_base_made_ahead_fails_the_first_step_that_needs_it() {
    let mut layer = ExtraLayer::from_tar(&TarMaker::new().file("innocent", b"x").finish());
    let claimed = format!("sha256:{}", "cd".repeat(32));
    layer.diff_id = claimed.clone();
    let image = push_image(&unique_repo("hostile-ahead"), &layer);
    for with_store in [false, true] {
        let work = CanaryWork::new();
        let cache_dir = tempfile::tempdir().unwrap();
        let repo = format!("{}/{}", common::env().registry, unique_repo("hostile-ahead-cache"));
        let mut extra = vec!["--cache=true", "--cache-repo", &repo];
        let dir = cache_dir.path().to_str().unwrap().to_string();
        if with_store {
            extra.extend(["--cache-dir", &dir]);
        }
        let o = build_from(&image, "ENV A=1\nRUN echo should-not-run\n", &work, &extra);
        assert_refused(&o, &image, &[&format!("but the image config gives diff_id {claimed}")]);
        let text = log(&o);
        assert!(text.contains("RUN echo should-not-run"), "store {with_store}: the error names no step:\n{text}");
        assert!(!text.contains("\nshould-not-run"), "the RUN ran on a refused base");
        work.assert_untouched_and_clean();
    }
}

/// A layer of `n` empty files (`f00000`…), the shape that uses up inodes while every size
/// limit counts 0 bytes.
fn empty_files(n: usize) -> ExtraLayer {
    let mut t = TarMaker::new();
    for i in 0..n {
        t = t.file(&format!("f{i:05}"), b"");
    }
    ExtraLayer::from_tar(&t.finish())
}

/// `--max-layer-entries`: a base layer one entry over the limit is refused, naming the image,
/// the layer, the limit and the flag, with nothing left in the work dir or half-made in the
/// unpacked-layer store of the cache dir (`trowel cache check` passes); at the limit it builds.
/// busybox's own layer (288 entries) is under the limit used.
#[test]
fn a_layer_over_the_entry_limit_is_refused_and_one_at_it_builds() {
    let work = CanaryWork::new();
    let cache = tempfile::Builder::new().prefix("trowel-entries-cache-").tempdir_in("/var/tmp").unwrap();
    let limit = ["--max-layer-entries", "1000", "--cache-dir"];
    let over = push_image(&unique_repo("entries-over"), &empty_files(1001));
    let mut args: Vec<&str> = limit.to_vec();
    args.push(cache.path().to_str().unwrap());
    let o = build_from(&over, "RUN echo should-not-run\n", &work, &args);
    assert_refused(
        &o,
        &over,
        &["layer has more than 1000 entries (entry \"f01000\" is number 1001; raise --max-layer-entries, 0: no limit)"],
    );
    assert!(!log(&o).contains("\nshould-not-run"), "the RUN ran on a refused base");
    work.assert_untouched_and_clean();
    let check = run(trowel().args(["cache", "check", "--cache-dir"]).arg(cache.path()));
    assert_ok(&check);
    let tmp = cache.path().join("unpacked/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "a half-made store entry was left: {left:?}");

    let at = push_image(&unique_repo("entries-at"), &empty_files(1000));
    let o = build_from(&at, "RUN test -e /f00999 && test \"$(ls / | grep -c '^f')\" = 1000\n", &work, &args);
    assert_ok(&o);
    work.assert_untouched_and_clean();
    // The default (a million) is far above both.
    let o = build_from(&over, "RUN test -e /f01000\n", &work, &[]);
    assert_ok(&o);
    work.assert_untouched_and_clean();
}
