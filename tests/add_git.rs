//! `ADD <git repository>` end to end: repositories served on 127.0.0.1 by git's own daemon and
//! by `git http-backend` (tests/git_support), built into images pushed to the local registry,
//! and checked with skopeo and umoci — and with git itself for a kept `.git`.

mod common;
mod git_support;

use std::process::Output;

use common::*;
use git_support::{git, server};

/// Builds `dockerfile` (lines after `FROM busybox`) and pushes it; returns the output and the
/// destination.
fn build(lines: &str, extra: &[&str]) -> (Output, String) {
    build_from(&env().busybox(), lines, extra)
}

fn build_from(base: &str, lines: &str, extra: &[&str]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), format!("FROM {base}\n{lines}")).unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("gitadd"));
    let o = run(trowel().args(["build", "--destination", &dest, "--context"]).arg(dir.path()).args(extra));
    (o, dest)
}

/// The `error building image:` line of a failed build, with the Dockerfile path shortened.
fn error_line(o: &Output) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "the build succeeded:\n{err}");
    err.lines()
        .find_map(|l| l.split_once("error building image: ").map(|(_, m)| m.to_string()))
        .map(|l| l.split_once("Dockerfile:").map(|(_, rest)| format!("Dockerfile:{rest}")).unwrap_or(l))
        .unwrap_or_else(|| panic!("no error line in:\n{err}"))
}

#[test]
fn branches_tags_commits_and_subdirs_over_http_and_git() {
    let s = server();
    let (h, g) = (&s.http, &s.git);
    let lines = format!(
        "ADD {h}/repo.git /default\n\
         ADD {g}/repo.git#dev /dev-branch/\n\
         ADD {h}/repo.git#v1 /tag\n\
         ADD {g}/repo.git#v1a:sub /annotated-sub\n\
         ADD {h}/repo.git#{first} /commit\n\
         ADD {h}/repo.git?branch=dev&subdir=sub/deeper&submodules=false /query\n\
         ADD --chown=1000:50 --chmod=0640 {h}/repo.git?ref=v1&mtime=commit&submodules=false /owned\n\
         ADD --exclude=*.bin {g}/repo.git#main:/ /excluded/\n\
         ADD {h}/repo.git?fetch-by-commit&branch=dev&checksum={dev}&submodules=false /by-commit\n",
        first = s.first,
        dev = s.dev
    );
    let (o, dest) = build(&lines, &[]);
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    let t = u.tree();
    let root = u.rootfs();
    let content = |p: &str| Tree::content(&root, p);

    // The default branch, everything: files, modes as git makes them, 0:0, symlinks as they
    // are (never followed out of the tree), the submodule checked out, no .git.
    assert_eq!(content("/default/top.txt"), "top v2\n");
    assert_eq!(content("/default/sub/deeper/b.txt"), "b\n");
    assert_eq!(content("/default/mod/lib.txt"), "from the submodule\n");
    let run_sh = t.get("/default/run.sh");
    assert_eq!((run_sh.kind, run_sh.mode, run_sh.uid, run_sh.gid), ('f', 0o755, 0, 0));
    assert_eq!(t.get("/default/top.txt").mode, 0o644);
    assert_eq!((t.get("/default").mode, t.get("/default/sub").mode), (0o755, 0o755));
    assert_eq!(t.get("/default/link").link.as_deref(), Some("sub/a.txt"));
    assert_eq!(t.get("/default/abs").link.as_deref(), Some("/etc/passwd"));
    assert_eq!(t.get("/default/up").link.as_deref(), Some("../../../../.."));
    assert!(!t.has("/default/.git"), "no .git without --keep-git-dir");
    // The submodule's own `.git` file stays, as BuildKit leaves it.
    assert!(t.has("/default/mod/.git"));

    assert_eq!(content("/dev-branch/dev.txt"), "dev\n");
    assert_eq!(content("/dev-branch/top.txt"), "top v1\n");
    assert_eq!(content("/tag/top.txt"), "top v1\n");
    assert!(!t.has("/tag/dev.txt"));
    // A subdir's contents, not the directory.
    assert_eq!(
        t.paths_under("/annotated-sub/"),
        ["/annotated-sub/a.txt", "/annotated-sub/deeper", "/annotated-sub/deeper/b.txt"]
    );
    assert_eq!(content("/commit/top.txt"), "top v1\n");
    assert_eq!(t.paths_under("/query/"), ["/query/b.txt"]);

    let owned = t.get("/owned/top.txt");
    assert_eq!((owned.uid, owned.gid, owned.mode), (1000, 50, 0o640));
    // `?mtime=commit`: the commit's time, not the checkout's.
    assert_eq!(owned.mtime_ns, first_commit_time(s) as i128 * 1_000_000_000);
    assert!(t.get("/owned/mod").kind == 'd' && t.paths_under("/owned/mod/").is_empty(), "submodules=false");

    assert!(!t.has("/excluded/data.bin"));
    assert!(t.has("/excluded/top.txt"));
    assert_eq!(content("/by-commit/dev.txt"), "dev\n");

    // What the image says it was made of: the instruction as written.
    let cfg = skopeo_config(&dest);
    let created_by: Vec<&str> =
        cfg["history"].as_array().unwrap().iter().filter_map(|h| h["created_by"].as_str()).collect();
    assert!(created_by.contains(&format!("ADD {h}/repo.git#v1 /tag").as_str()), "{created_by:?}");
}

fn first_commit_time(s: &git_support::GitServer) -> i64 {
    git(&s.base.join("repo.git"), &["log", "-1", "--format=%ct", &s.first]).parse().unwrap()
}

/// `--keep-git-dir`: a repository git can use in the image, at the commit asked for, with the
/// URL's credentials gone from its config and from everything trowel printed.
#[test]
fn keep_git_dir_keeps_a_working_repository_without_credentials() {
    let s = server();
    let url = s.http.replace("http://", "http://builder:s3cret-git-pw@");
    let trace = tempfile::NamedTempFile::new().unwrap();
    let (o, dest) = build(
        &format!(
            "ADD --keep-git-dir=true {url}/repo.git#v1a /keep\nADD {url}/repo.git?keep-git-dir=true /query-keep\n"
        ),
        &["--trace", trace.path().to_str().unwrap()],
    );
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    let keep = u.rootfs().join("keep");
    assert_eq!(git(&keep, &["rev-parse", "HEAD"]), s.first);
    assert_eq!(git(&keep, &["rev-parse", "refs/tags/v1a"]), s.v1a_tag, "the annotated tag object came along");
    assert_eq!(git(&keep, &["status", "--porcelain", "--ignore-submodules"]), "", "the work tree is the commit");
    let origin = git(&keep, &["config", "remote.origin.url"]);
    assert_eq!(origin, format!("{}/repo.git", s.http.replace("http://", "http://xxxxx:xxxxx@")));
    assert!(!keep.join(".git/FETCH_HEAD").exists());
    assert_eq!(git(&u.rootfs().join("query-keep"), &["rev-parse", "HEAD"]), s.main);
    // The password is nowhere: not in the image, the log, the trace, the history.
    let all_files =
        walkdir::WalkDir::new(u.rootfs()).into_iter().filter_map(Result::ok).filter(|e| e.file_type().is_file());
    for f in all_files {
        let b = std::fs::read(f.path()).unwrap();
        assert!(!b.windows(13).any(|w| w == b"s3cret-git-pw"), "{}", f.path().display());
    }
    let trace = std::fs::read_to_string(trace.path()).unwrap();
    for (what, text) in [("log", stderr(&o)), ("trace", trace), ("config", skopeo_config(&dest).to_string())] {
        assert!(!text.contains("s3cret-git-pw"), "{what} holds the password:\n{text}");
    }
}

#[test]
fn checksum_is_a_commit_prefix_verified_before_anything_is_fetched() {
    let s = server();
    let h = &s.http;
    let (o, dest) = build(
        &format!(
            "ADD --checksum={} {h}/repo.git#v1 /by-flag\nADD {h}/repo.git?tag=v1a&checksum={} /annotated\n",
            &s.first[..7],
            &s.v1a_tag[..10]
        ),
        &[],
    );
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/by-flag/top.txt"), "top v1\n");
    assert_eq!(Tree::content(&u.rootfs(), "/annotated/top.txt"), "top v1\n");

    let (o, dest) = build(&format!("ADD --checksum=deadbeef {h}/repo.git#main /x\n"), &[]);
    assert_eq!(
        error_line(&o),
        format!(
            "Dockerfile:2: ADD --checksum=deadbeef {h}/repo.git#main /x: {h}/repo.git: expected checksum to match \
             deadbeef, got {}",
            s.main
        )
    );
    assert!(!stderr(&o).contains("Pushed"));
    let gone =
        run(std::process::Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{dest}")]));
    assert!(!gone.status.success(), "nothing was pushed");

    // The flag and the URL must agree; a git checksum is hex, not a digest.
    let (o, _) = build(&format!("ADD --checksum=abc {h}/repo.git?checksum=abd /x\n"), &[]);
    assert_eq!(
        error_line(&o),
        format!("Dockerfile:2: ADD --checksum=abc {h}/repo.git?checksum=abd /x: checksum mismatch \"abc\" != \"abd\"")
    );
    let sha = format!("sha256:{}", "a".repeat(64));
    let (o, _) = build(&format!("ADD --checksum={sha} {h}/repo.git /x\n"), &[]);
    assert_eq!(
        error_line(&o),
        format!(
            "Dockerfile:2: ADD --checksum={sha} {h}/repo.git /x: invalid checksum {sha} for Git URL, expected hex commit hash"
        )
    );
}

#[test]
fn bad_refs_and_urls_are_clear_errors() {
    let s = server();
    let (h, g) = (&s.http, &s.git);
    let (o, _) = build(&format!("ADD {h}/repo.git#nope /x\n"), &[]);
    assert_eq!(
        error_line(&o),
        format!("Dockerfile:2: ADD {h}/repo.git#nope /x: repository {h}/repo.git does not contain ref nope")
    );
    let (o, _) = build(&format!("ADD {g}/repo.git#{} /x\n", "0".repeat(40)), &[]);
    assert!(
        error_line(&o).contains(&format!("commit {} was not found in the repository", "0".repeat(40))),
        "{}",
        error_line(&o)
    );

    // A `.git` URL that leads to no repository: an HTTP 404, and a daemon that has none.
    let (o, _) = build(&format!("ADD {h}/missing.git /x\n"), &[]);
    assert_eq!(
        error_line(&o),
        format!(
            "Dockerfile:2: ADD {h}/missing.git /x: {h}/missing.git is not a git repository trowel can read (fatal: \
             repository '{h}/missing.git/' not found)"
        )
    );
    let (o, _) = build(&format!("ADD {g}/missing.git /x\n"), &[]);
    let line = error_line(&o);
    assert!(
        line.starts_with(&format!(
            "Dockerfile:2: ADD {g}/missing.git /x: {g}/missing.git is not a git repository trowel can read ("
        )),
        "{line}"
    );

    // Refused before the base is pulled: what only ADD can fetch, an ssh remote with no agent,
    // and a URL query BuildKit would refuse.
    for (line, want) in [
        (format!("COPY {h}/repo.git /x"), format!("source can't be a git ref for COPY: {h}/repo.git (use ADD)")),
        (
            "ADD git@127.0.0.1:org/repo.git /x".to_string(),
            "git@127.0.0.1:org/repo.git: cloning over ssh needs the build's default ssh agent, which was not \
             given: pass --ssh default (the agent at $SSH_AUTH_SOCK) or --ssh default=KEYFILE, or use an https:// URL"
                .to_string(),
        ),
        (
            format!("ADD {h}/repo.git?mtime=now /x"),
            format!(
                "git source {h}/repo.git?mtime=now: invalid mtime value: \"now\" (must be \"checkout\" or \"commit\")"
            ),
        ),
        (
            format!("ADD --keep-git-dir=false {h}/repo.git?keep-git-dir /x"),
            "inconsistent keep-git-dir configuration".to_string(),
        ),
    ] {
        let (o, _) = build(&format!("{line}\n"), &[]);
        assert_eq!(error_line(&o), format!("Dockerfile:2: {line}: {want}"));
        assert!(!stderr(&o).contains("Retrieved image"), "refused before the pull:\n{}", stderr(&o));
    }
}

#[test]
fn a_hostile_repository_cannot_reach_the_build_machine() {
    let s = server();
    // A submodule URL naming a repository on the build machine: git refuses the transport.
    let (o, _) = build(&format!("ADD {}/hostile.git /x\n", s.http), &[]);
    let line = error_line(&o);
    assert!(line.contains("git submodule update failed") && line.contains("transport 'file' not allowed"), "{line}");
    // A subdir reached through a symlink could lead anywhere: refused.
    let (o, _) = build(&format!("ADD {}/repo.git#main:link /x\n", s.http), &[]);
    assert!(error_line(&o).ends_with("invalid subdir link: link is not a directory (a symlink)"), "{}", error_line(&o));
    // Blobs larger than --max-file-size are refused before they are checked out (from scratch:
    // the limits apply to the base's layers too).
    let (o, _) = build_from("scratch", &format!("ADD {}/repo.git /x\n", s.http), &["--max-file-size", "1KiB"]);
    assert!(
        error_line(&o)
            .ends_with("file data.bin of the repository is too large: 4096 bytes (limit 1024, --max-file-size)"),
        "{}",
        error_line(&o)
    );
    let (o, _) = build_from("scratch", &format!("ADD {}/repo.git#v1 /x\n", s.http), &["--max-layer-size", "4000"]);
    assert!(error_line(&o).contains("bytes exceed the 4000-byte limit (--max-layer-size)"), "{}", error_line(&o));
}

/// The commit is the cache key: the same commit hits, a moved branch misses and says so.
#[test]
fn the_cache_follows_the_commit() {
    let s = server();
    let name = unique_repo("moving");
    let first = git(&s.new_repo(&name, "one\n"), &["rev-parse", "HEAD"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {}\nADD {}/{name}.git /src\nRUN cat /src/file.txt > /copy\n", env().busybox(), s.http),
    )
    .unwrap();
    let repo = unique_repo("gitcache");
    let dest = format!("{}/{repo}:1", env().registry);
    let cache = format!("{}/{repo}/cache", env().registry);
    let build = || {
        let o = run(trowel()
            .args(["build", "--cache", "--cache-copy-layers", "--cache-repo", &cache, "--destination", &dest])
            .arg("--context")
            .arg(dir.path()));
        assert_ok(&o);
        stderr(&o)
    };
    let log = build();
    assert_eq!(log.matches("Cache miss: no cache entry for this step yet").count(), 2, "{log}");
    let log = build();
    assert!(log.contains("Cache: 2 hit(s), 0 miss(es)"), "{log}");
    let second = s.advance(&name, "two\n");
    let log = build();
    let want = format!("Cache miss: git {}/{name}.git now {} (was {})", s.http, &second[..12], &first[..12]);
    assert!(log.contains(&want), "{want}\n{log}");
    let parent = format!("Cache miss: parent step missed (line 2: {})", want.trim_start_matches("Cache miss: "));
    assert!(log.contains(&parent), "{parent}\n{log}");
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/copy"), "two\n");
}

/// A credential passed in a build arg whatever its name (`https://oauth2:${GIT_CRED}@…`) is a
/// secret too: masked in the log, the trace and the history, and only fingerprinted in the cache
/// entry kept in the registry.
#[test]
fn credentials_from_a_build_arg_stay_secret() {
    let s = server();
    let url = s.http.replace("http://", "http://oauth2:${GIT_CRED}@");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {}\nARG GIT_CRED\nADD {url}/repo.git#v1 /src\n", env().busybox()),
    )
    .unwrap();
    let repo = unique_repo("gitcred");
    let dest = format!("{}/{repo}:1", env().registry);
    let cache = format!("{}/{repo}/cache", env().registry);
    let trace = dir.path().join("trace.jsonl");
    let o = run(trowel()
        .args(["build", "--cache", "--cache-copy-layers", "--cache-repo", &cache, "--destination", &dest])
        .args(["--build-arg", "GIT_CRED=zz-cred-8675309", "--trace", trace.to_str().unwrap(), "--context"])
        .arg(dir.path()));
    assert_ok(&o);
    let trace = std::fs::read_to_string(&trace).unwrap();
    let key = trace
        .lines()
        .find(|l| l.contains("\"cache_stored\""))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["key"].as_str().unwrap().to_string())
        .expect("the ADD was stored in the cache");
    let entry = cache_entry_config(&format!("{cache}:{key}"));
    let recorded = entry["dev.trowel.cache"]["components"]["vars"]["GIT_CRED"]["value"].as_str().unwrap();
    assert!(recorded.starts_with("sha256:"), "the value is only fingerprinted in the entry: {recorded}");
    let entry = entry.to_string();
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/src/top.txt"), "top v1\n");
    for (what, text) in
        [("log", stderr(&o)), ("trace", trace), ("history", skopeo_config(&dest).to_string()), ("cache entry", entry)]
    {
        assert!(!text.contains("zz-cred-8675309"), "{what} holds the credential:\n{text}");
    }
}

/// A repository served by git's "dumb" HTTP transport (static files after `git
/// update-server-info`, here Python's http.server), which cannot serve a shallow fetch: fetched
/// again whole, as BuildKit's gitutil does when git's error speaks of `shallow`.
#[test]
fn a_repository_over_dumb_http_is_fetched_whole() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("hello.txt"), "over dumb http\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one"]);
    let served = dir.path().join("srv");
    std::fs::create_dir(&served).unwrap();
    git(&served, &["clone", "-q", "--bare", work.to_str().unwrap(), "repo.git"]);
    git(&served.join("repo.git"), &["update-server-info"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut http = std::process::Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string()])
        .current_dir(&served)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/repo.git#main");
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (o, dest) = build(&format!("ADD {url} /g\n"), &[]);
    let _ = http.kill();
    let _ = http.wait();
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/g/hello.txt"), "over dumb http\n");
}
