//! `--context tar://PATH` and `tar://stdin` end to end: archives made here (plain, gzip),
//! read from a file and from standard input, with `--context-sub-path`, built into images
//! pushed to the local registry and checked with skopeo and umoci; the trace and the log say
//! where the context came from and its digest. Hostile archives are refused before anything is
//! built, naming the entry, and nothing is written outside the context.

mod common;
mod fs_support;

use std::io::Write;
use std::process::{Output, Stdio};

use common::*;
use fs_support::TarMaker;

/// A context archive: `app/` holds a Dockerfile and `hello.txt`; `other.txt` is outside it.
fn context_tar() -> Vec<u8> {
    let df = format!("FROM {}\nCOPY . /ctx/\nRUN cat /ctx/hello.txt\n", env().busybox());
    TarMaker::new()
        .dir("app")
        .file("app/Dockerfile", df.as_bytes())
        .file("app/hello.txt", b"hello from a tar\n")
        .file("other.txt", b"not in the sub path\n")
        .finish()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// Runs trowel with `stdin` on its standard input.
fn run_with_stdin(cmd: &mut std::process::Command, stdin: &[u8]) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut w = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&data);
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    o
}

/// The `context_origin` of a trace's `build_started`.
fn origin_in(trace: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(trace).unwrap();
    let started: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "build_started")
        .expect("a build_started event");
    started["context_origin"].clone()
}

fn check_image(dest: &str) {
    let u = pull_and_unpack(dest);
    let root = u.rootfs();
    assert_eq!(Tree::content(&root, "/ctx/hello.txt"), "hello from a tar\n");
    let t = u.tree();
    assert!(t.has("/ctx/Dockerfile"));
    assert!(!t.has("/ctx/other.txt"), "only the sub path is the context");
    // COPY gives context files 0:0, whoever owned them in the archive.
    let f = t.get("/ctx/hello.txt");
    assert_eq!((f.uid, f.gid, f.mode), (0, 0, 0o644));
}

#[test]
fn tar_files_plain_and_gzip_with_a_sub_path() {
    let dir = tempfile::tempdir().unwrap();
    let plain = context_tar();
    for (name, bytes) in [("ctx.tar", plain.clone()), ("ctx.tar.gz", gzip(&plain))] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let trace = dir.path().join(format!("{name}.trace"));
        let dest = format!("{}/{}:1", env().registry, unique_repo("ctxtar"));
        let work = tempfile::tempdir().unwrap();
        let o = run(trowel()
            .args(["build", "--destination", &dest, "--context-sub-path", "app", "--trace"])
            .arg(&trace)
            .arg("--work-dir")
            .arg(work.path())
            .arg("--context")
            .arg(format!("tar://{}", path.display())));
        assert_ok(&o);
        check_image(&dest);
        // Where the context came from: the digest of the very bytes given.
        let origin = origin_in(&trace);
        assert_eq!(origin["kind"], "tar");
        assert_eq!(origin["source"], format!("tar://{}", path.display()));
        assert_eq!(origin["digest"], format!("sha256:{}", sha256_hex(&bytes)));
        assert_eq!(origin["bytes"], bytes.len() as u64);
        assert_eq!(origin["files"], 3);
        assert_eq!(origin["sub_path"], "app");
        let log = stderr(&o) + &stdout(&o);
        assert!(log.contains(&format!("Build context: tar tar://{}", path.display())), "{log}");
        assert!(log.contains(&sha256_hex(&bytes)), "{log}");
        // The fetched context is gone with the build: the work dir is empty.
        let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().filter_map(Result::ok).map(|e| e.path()).collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn tar_from_stdin_gzip_or_plain() {
    let plain = context_tar();
    for bytes in [gzip(&plain), plain.clone()] {
        let dest = format!("{}/{}:1", env().registry, unique_repo("ctxstdin"));
        let trace = tempfile::NamedTempFile::new().unwrap();
        let o = run_with_stdin(
            trowel()
                .args(["--context", "tar://stdin", "--context-sub-path", "app/", "--destination", &dest, "--trace"])
                .arg(trace.path()),
            &bytes,
        );
        assert_ok(&o);
        check_image(&dest);
        let origin = origin_in(trace.path());
        assert_eq!(origin["source"], "tar://stdin");
        assert_eq!(origin["digest"], format!("sha256:{}", sha256_hex(&bytes)));
    }
}

/// Each hostile archive fails the build before anything is pulled, with the entry named, and
/// writes nothing outside the context.
#[test]
fn hostile_tars_are_refused_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("canary");
    let df = format!("FROM {}\n", env().busybox());
    let with_df = || TarMaker::new().file("Dockerfile", df.as_bytes());
    let cases: Vec<(&str, Vec<u8>, &[&str], &str)> = vec![
        ("dotdot", with_df().file("../canary", b"pwned").finish(), &[], "unsafe layer entry \"../canary\""),
        ("absolute", with_df().file(canary.to_str().unwrap(), b"pwned").finish(), &[], "absolute path"),
        // An absolute link is resolved inside the context, as an image's would be: the file
        // lands in the context, never at the link's target on this machine.
        (
            "symlink",
            with_df().symlink("evil", dir.path().to_str().unwrap()).file("evil/canary", b"ok").finish(),
            &[],
            "",
        ),
        (
            "climb",
            with_df().symlink("up", "../../../../../..").file("up/tmp/x", b"pwned").finish(),
            &[],
            "leaves the root",
        ),
        ("device", with_df().device(tar::EntryType::Char, "kmem", 1, 2).finish(), &[], "cannot create device node"),
        (
            "big-file",
            with_df().file("big", &[0u8; 4096]).finish(),
            &["--max-file-size", "1KiB"],
            "layer entry \"big\" is too large: 4096 bytes (limit 1024)",
        ),
        (
            "bomb",
            gzip(&with_df().file("a", &vec![0u8; 3 << 20]).file("b", &vec![0u8; 3 << 20]).finish()),
            &["--max-layer-size", "4MiB"],
            "layer is too large once unpacked",
        ),
        (
            "many-entries",
            (0..10).fold(with_df(), |t, i| t.file(&format!("e{i}"), b"")).finish(),
            &["--max-layer-entries", "10"],
            "layer has more than 10 entries (entry \"e9\" is number 11; raise --max-layer-entries, 0: no limit)",
        ),
    ];
    for (name, bytes, extra, want) in cases {
        let path = dir.path().join(format!("{name}.tar"));
        std::fs::write(&path, &bytes).unwrap();
        let o = run(trowel()
            .args(["build", "--no-push", "--context"])
            .arg(format!("tar://{}", path.display()))
            .args(extra));
        let err = stderr(&o);
        if want.is_empty() {
            assert_ok(&o);
        } else {
            assert!(!o.status.success(), "{name}: built:\n{err}");
            assert!(
                err.contains(&format!("error: build context tar://{}: refused: ", path.display()))
                    && err.contains(want),
                "{name}: {err}"
            );
        }
        assert!(!canary.exists(), "{name} wrote outside the context");
    }
}

/// A remote context's Dockerfile and ignore file are read by trowel itself: a link in the
/// archive to a file of this machine (a credentials file) or to a device (`/dev/zero`) is
/// resolved inside the context, where neither exists, so nothing of the host is read or quoted.
#[test]
fn control_files_linked_out_of_a_context_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("config.json");
    std::fs::write(&secret, "{\"auths\":{\"reg\":{\"auth\":\"aG9zdC1zZWNyZXQ=\"}}}\n").unwrap();
    let tar = TarMaker::new().symlink("Dockerfile", secret.to_str().unwrap()).finish();
    let path = dir.path().join("linked-df.tar");
    std::fs::write(&path, &tar).unwrap();
    let trace = dir.path().join("linked-df.trace");
    let o = run(trowel()
        .args(["build", "--no-push", "--trace"])
        .arg(&trace)
        .arg("--context")
        .arg(format!("tar://{}", path.display())));
    let log = stderr(&o) + &stdout(&o);
    assert!(!o.status.success(), "{log}");
    assert!(
        log.contains(&format!("it is a symbolic link to {}, which is not in the context", secret.display())),
        "{log}"
    );
    let trace_text = std::fs::read_to_string(&trace).unwrap_or_default();
    for out in [&log, &trace_text] {
        assert!(!out.contains("aG9zdC1zZWNyZXQ") && !out.contains("auths"), "the host file was read:\n{out}");
    }

    // An ignore file linked to a device: not followed out, the build goes on without patterns.
    let df = format!("FROM {}\nCOPY . /ctx/\n", env().busybox());
    let tar = TarMaker::new().file("Dockerfile", df.as_bytes()).symlink(".dockerignore", "/dev/zero").finish();
    let path = dir.path().join("linked-ignore.tar");
    std::fs::write(&path, &tar).unwrap();
    let o = run(trowel().args(["build", "--no-push", "--context"]).arg(format!("tar://{}", path.display())));
    assert_ok(&o);
}

#[test]
fn a_missing_or_empty_archive_says_so() {
    let o = run(trowel().args(["build", "--no-push", "--context", "tar:///nonexistent/ctx.tar.gz"]));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("build context tar:///nonexistent/ctx.tar.gz: open /nonexistent/ctx.tar.gz: No such file"),
        "{}",
        stderr(&o)
    );
    let o = run_with_stdin(trowel().args(["build", "--no-push", "--context", "tar://stdin"]), b"");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("build context tar://stdin: the archive is empty"), "{}", stderr(&o));
}

/// `tar://stdin` with a terminal on standard input (an interactive pod without `-i`'s data):
/// refused at once with a hint, not waited on. `script` (util-linux) gives trowel a terminal.
#[test]
fn a_terminal_on_stdin_is_refused_with_a_hint() {
    let cmd = format!("{} build --no-push --context tar://stdin", env!("CARGO_BIN_EXE_trowel"));
    let o = run(std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).stdin(Stdio::null()));
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(out.contains("build context tar://stdin: standard input is a terminal, not an archive"), "{out}");
}
