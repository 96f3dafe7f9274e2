//! A build stopped (SIGTERM) while its remote context is fetched ends there, as aborted, with
//! nothing of the context left in the work dir: while an archive downloads from a bucket
//! (`s3://`, the path every downloaded kind shares: `registry/cloud/http.rs`), while a big local
//! archive unpacks (`tar://`, the unpacker every archive-shaped context shares), and while git
//! fetches a repository (`git/cli.rs`), for a context or for an `ADD` of a repository; and
//! `trowel debug`'s fetch, before its UI starts. The context is fetched before the build
//! starts: a signal there used to end the process at once (killed by SIGTERM, not `build
//! aborted`), its partial context left behind for the next build to sweep, and a download stuck
//! on a server that stopped sending was not looked at again before `--stall-timeout`.
//!
//! The work dirs are on the tests' scratch space (a tmpfs under `scripts/test.sh`).

mod common;
mod faults;
mod git_support;
mod hardening_support;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{env, unique_repo};
use faults::{Fault, FaultProxy};
use hardening_support::running::{Running, assert_no_tag, entries, stopped_as_aborted};

/// How soon after SIGTERM a stopped fetch must be gone: uncut, each of these takes from about
/// ten seconds (the archive) to minutes (a server that stopped sending).
const BOUND: Duration = Duration::from_secs(3);

/// `trowel build --context CONTEXT` in the background, its work dir `work`.
fn start(context: &str, work: &Path, dest: &str, vars: &[(&str, &str)]) -> Running {
    start_command("build", context, work, dest, vars)
}

/// [`start`] for `trowel COMMAND` (`build` or `debug`).
fn start_command(command: &str, context: &str, work: &Path, dest: &str, vars: &[(&str, &str)]) -> Running {
    let log = work.parent().unwrap().join("stopped.log");
    let args = [std::ffi::OsStr::new("--destination"), dest.as_ref(), "--work-dir".as_ref(), work.as_os_str()];
    Running::start_with(command, context.as_ref(), &log, &args, vars)
}

/// Waits until the fetch has written an entry whose name starts with `name` somewhere below
/// `work` (the context's directory is named by the build).
#[track_caller]
fn wait_for_entry(b: &mut Running, work: &Path, name: &str) {
    let never = format!("{name} was never written");
    b.wait_until(&never, Duration::from_secs(120), Duration::from_millis(10), |_| {
        walkdir::WalkDir::new(work).into_iter().flatten().any(|e| e.file_name().to_string_lossy().starts_with(name))
    });
}

/// Signals `b` once its fetch is under way and checks it ended as a stopped build must.
#[track_caller]
fn stop_and_check(mut b: Running, work: &Path, dest: &str) {
    stopped_as_aborted(&mut b, BOUND);
    assert_eq!(entries(work), Vec::<String>::new(), "the partial context is removed");
    assert_no_tag(dest);
}

fn scratch() -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir_in(common::scratch_dir()).unwrap();
    let work = scratch.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    (scratch, work)
}

/// An S3 endpoint (plain http, any signature accepted) whose object is an archive of one 8 GiB
/// file that arrives a chunk at a time and never ends: uncut, the fetch goes on for hours.
fn trickling_s3() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { break };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && c.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let size: u64 = 8 << 30;
                let mut h = tar::Header::new_gnu();
                h.set_path("big").unwrap();
                h.set_size(size);
                h.set_mode(0o644);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                h.set_cksum();
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", size + 1024);
                if c.write_all(answer.as_bytes()).and_then(|()| c.write_all(h.as_bytes())).is_err() {
                    return;
                }
                let chunk = vec![0u8; 64 * 1024];
                while c.write_all(&chunk).is_ok() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
    });
    url
}

/// The environment that points an `s3://` context at `endpoint`.
fn s3_vars(endpoint: &str) -> [(&'static str, &str); 4] {
    [
        ("S3_ENDPOINT", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDSTOPTEST"),
        ("AWS_SECRET_ACCESS_KEY", "stop-test-secret-key"),
    ]
}

/// SIGTERM while an `s3://` context downloads (slowly, from a server that would go on for
/// hours) ends the build within a wait for the next chunk, as aborted.
#[test]
fn sigterm_while_a_bucket_context_downloads_ends_the_build_as_aborted() {
    let (_scratch, work) = scratch();
    let endpoint = trickling_s3();
    let dest = format!("{}/{}:1", env().registry, unique_repo("sigterm-s3-ctx"));
    let mut b = start("s3://bkt/ctx.tar", &work, &dest, &s3_vars(&endpoint));
    wait_for_entry(&mut b, &work, "big");
    stop_and_check(b, &work, &dest);
}

/// The same for `trowel debug`, which fetches the context before its UI starts (and watches
/// SIGTERM itself): the fetch is given up, the debugger never starts, nothing is left.
#[test]
fn sigterm_while_the_debugger_fetches_its_context_ends_it_as_aborted() {
    let (_scratch, work) = scratch();
    let endpoint = trickling_s3();
    let dest = format!("{}/{}:1", env().registry, unique_repo("sigterm-s3-debug"));
    let mut b = start_command("debug", "s3://bkt/ctx.tar", &work, &dest, &s3_vars(&endpoint));
    wait_for_entry(&mut b, &work, "big");
    stop_and_check(b, &work, &dest);
}

/// SIGTERM while a `tar://` context of 300,000 small files unpacks (about ten seconds uncut on
/// a 2-core machine) ends the build between two entries.
#[test]
fn sigterm_while_a_tar_context_unpacks_ends_the_build_as_aborted() {
    let (scratch, work) = scratch();
    let archive = scratch.path().join("ctx.tar");
    let mut t = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(&archive).unwrap()));
    let df = format!("FROM {}\nCOPY many /many\n", env().busybox());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        t.append_data(&mut h, path, data).unwrap();
    };
    add("Dockerfile", df.as_bytes());
    for d in 0..300 {
        for f in 0..1000 {
            add(&format!("many/d{d}/f{f}"), b"x");
        }
    }
    t.into_inner().unwrap().flush().unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("sigterm-tar-ctx"));
    let mut b = start(&format!("tar://{}", archive.display()), &work, &dest, &[]);
    wait_for_entry(&mut b, &work, "d1");
    stop_and_check(b, &work, &dest);
}

/// A repository of 4 MiB of hex digits from a xorshift (a pack far larger than what gets
/// through) behind a proxy whose every answer to git's upload-pack requests stops after 64 KiB,
/// the connection held open: git waits on it. The proxy and the repository's URL.
fn held_repository(name: &str) -> (FaultProxy, String) {
    let s = git_support::server();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let content: String = (0..(1 << 19))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{:08x}", x as u32)
        })
        .collect();
    s.new_repo(name, &content);
    let proxy = FaultProxy::start(s.http.trim_start_matches("http://"));
    proxy.inject("POST", "git-upload-pack", Fault::StallAfter { after: 64 * 1024 }, 100);
    let url = format!("http://{}/{name}.git", proxy.addr);
    (proxy, url)
}

/// SIGTERM while git talks to a server that stopped answering half way (it holds the
/// connection for two minutes; git itself would wait five) kills git with its helpers and
/// removes the partial clone.
#[test]
fn sigterm_while_a_git_context_fetches_ends_the_build_as_aborted() {
    let (_scratch, work) = scratch();
    let (proxy, context) = held_repository("stop-fetch");
    let dest = format!("{}/{}:1", env().registry, unique_repo("sigterm-git-ctx"));
    let mut b = start(&context, &work, &dest, &[]);
    // git is in the clone's directory, waiting on the held answer.
    proxy.wait_applied("git-upload-pack", Duration::from_secs(60));
    wait_for_entry(&mut b, &work, "HEAD");
    stop_and_check(b, &work, &dest);
}

/// The same for an `ADD` of a repository, fetched by the step (or its key's planning): git is
/// killed, the build ends as aborted, not as a failed step, and its checkout is removed.
#[test]
fn sigterm_while_an_add_fetches_a_repository_ends_the_build_as_aborted() {
    let (scratch, work) = scratch();
    let (proxy, url) = held_repository("stop-add");
    let ctx = scratch.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {}\nADD {url} /src\n", env().busybox())).unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("sigterm-git-add"));
    let mut b = start(ctx.to_str().unwrap(), &work, &dest, &[]);
    proxy.wait_applied("git-upload-pack", Duration::from_secs(60));
    wait_for_entry(&mut b, &work, "HEAD");
    stop_and_check(b, &work, &dest);
}
