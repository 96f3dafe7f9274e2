//! `--context git://…` and `https://…/repo.git` end to end, with kaniko's meaning: a repository
//! made here holding the Dockerfile, served on 127.0.0.1 by `git daemon` (git's own protocol,
//! `GIT_PULL_METHOD=git`) and by `git http-backend` behind basic auth (`GIT_PULL_METHOD=http`,
//! and an `http://…/repo.git` URL), built into images pushed to the local registry and checked
//! with skopeo, umoci and git itself. The credentials are nowhere in what trowel printed,
//! recorded or pushed.

mod common;
mod git_support;

use std::process::Output;
use std::sync::OnceLock;

use common::context::{assert_secret_absent, context_origin};
use common::*;
use git_support::{AUTH_PASSWORD, AUTH_TOKEN, AUTH_USER, git, server};

/// `ctx.git` on the test servers: `main` (two commits) and `dev`, a Dockerfile at the top and
/// one in `app/`, the submodule `mod` (`../lib.git`).
struct Repo {
    first: String,
    main: String,
    dev: String,
}

fn repo() -> &'static Repo {
    static R: OnceLock<Repo> = OnceLock::new();
    R.get_or_init(|| {
        let s = server();
        let w = s.base.parent().unwrap().join("work/ctx");
        std::fs::create_dir_all(w.join("app")).unwrap();
        git(&w, &["init", "-q", "-b", "main"]);
        std::fs::write(w.join("Dockerfile"), "ARG BASE\nFROM $BASE\nCOPY . /ctx/\n").unwrap();
        std::fs::write(w.join("app/Dockerfile"), "ARG BASE\nFROM $BASE\nCOPY . /sub/\n").unwrap();
        std::fs::write(w.join("app/app.txt"), "app\n").unwrap();
        std::fs::write(w.join("which.txt"), "main v1\n").unwrap();
        git(&w, &["submodule", "add", "-q", s.base.join("lib.git").to_str().unwrap(), "mod"]);
        git(&w, &["config", "-f", ".gitmodules", "submodule.mod.url", "../lib.git"]);
        git(&w, &["add", "-A"]);
        git(&w, &["commit", "-qm", "first"]);
        let first = git(&w, &["rev-parse", "HEAD"]);
        git(&w, &["checkout", "-qb", "dev"]);
        std::fs::write(w.join("which.txt"), "dev\n").unwrap();
        git(&w, &["commit", "-qam", "dev"]);
        let dev = git(&w, &["rev-parse", "HEAD"]);
        git(&w, &["checkout", "-q", "main"]);
        std::fs::write(w.join("which.txt"), "main v2\n").unwrap();
        git(&w, &["commit", "-qam", "second"]);
        let main = git(&w, &["rev-parse", "HEAD"]);
        git(&w, &["clone", "-q", "--bare", w.to_str().unwrap(), s.base.join("ctx.git").to_str().unwrap()]);
        Repo { first, main, dev }
    })
}

/// Builds the git context `context` with `env` set (every GIT_* variable of the test process
/// removed first) and pushes it; returns the output, the destination and the trace's text.
fn build(context: &str, env_vars: &[(&str, &str)], extra: &[&str]) -> (Output, String, String) {
    repo();
    let dest = format!("{}/{}:1", env().registry, unique_repo("ctxgit"));
    let trace = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = trowel();
    for v in ["GIT_PULL_METHOD", "GIT_USERNAME", "GIT_PASSWORD", "GIT_TOKEN"] {
        cmd.env_remove(v);
    }
    cmd.envs(env_vars.iter().copied())
        .args(["build", "--context", context, "--destination", &dest, "--build-arg"])
        .arg(format!("BASE={}", env().busybox()))
        .arg("--trace")
        .arg(trace.path())
        .args(extra);
    let o = run(&mut cmd);
    let t = std::fs::read_to_string(trace.path()).unwrap_or_default();
    (o, dest, t)
}

fn daemon_url() -> String {
    // `GIT_PULL_METHOD=git`: kaniko's git:// value, fetched with git's own protocol.
    format!("{}/ctx.git", server().git)
}

#[test]
fn a_branch_over_git_daemon_with_its_history_and_no_submodule() {
    let r = repo();
    let (o, dest, trace) = build(&format!("{}#refs/heads/dev", daemon_url()), &[("GIT_PULL_METHOD", "git")], &[]);
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    let root = u.rootfs();
    assert_eq!(Tree::content(&root, "/ctx/which.txt"), "dev\n");
    // kaniko clones: `.git` is in the context, on the branch, with the other branches' refs.
    let ctx = root.join("ctx");
    assert_eq!(git(&ctx, &["rev-parse", "HEAD"]), r.dev);
    assert_eq!(git(&ctx, &["symbolic-ref", "HEAD"]), "refs/heads/dev");
    assert_eq!(git(&ctx, &["rev-parse", "refs/remotes/origin/main"]), r.main);
    assert_eq!(git(&ctx, &["rev-list", "--count", "HEAD"]), "2", "the whole history");
    // recurse-submodules is false by default, as in kaniko.
    assert!(u.tree().paths_under("/ctx/mod/").is_empty());
    let origin = context_origin(&trace);
    assert_eq!(origin["kind"], "git");
    assert_eq!(origin["source"], format!("{}#refs/heads/dev", daemon_url()));
    assert_eq!(origin["reference"], "refs/heads/dev");
    assert_eq!(origin["commit"], r.dev.as_str());
    assert!(origin["digest"].as_str().unwrap().starts_with("sha256:"));
    let log = stderr(&o) + &stdout(&o);
    let line = format!("Build context: git {}#refs/heads/dev at refs/heads/dev commit {}", daemon_url(), r.dev);
    assert!(log.contains(&line), "{log}");
    // A trace read later says the same.
    let t = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(t.path(), &trace).unwrap();
    let summary = stdout(&run(trowel().args(["replay", "--summary"]).arg(t.path())));
    assert!(summary.contains(&line) && summary.contains(origin["digest"].as_str().unwrap()), "{summary}");
}

/// With `SOURCE_DATE_EPOCH` given, the checkout's files carry the commit's time (as BuildKit's
/// git contexts do), so two builds of one commit copy the same times; without it, the
/// checkout's own. Given as `context`, it is the commit's time.
#[test]
fn source_date_epoch_gives_the_checkout_the_commit_time() {
    use std::os::unix::fs::MetadataExt;
    // `git_support::git` commits at 2024-01-02T03:04:05Z.
    const COMMITTED: i64 = 1_704_164_645;
    let with = ["--build-arg", "SOURCE_DATE_EPOCH=1000000000"];
    for (extra, commit_time) in [(&with[..], true), (&[][..], false)] {
        let (o, dest, _) = build(&daemon_url(), &[("GIT_PULL_METHOD", "git")], extra);
        assert_ok(&o);
        let u = pull_and_unpack(&dest);
        let mtime = std::fs::symlink_metadata(u.rootfs().join("ctx/which.txt")).unwrap().mtime();
        assert_eq!(mtime == COMMITTED, commit_time, "which.txt's time {mtime}, {extra:?}");
        if commit_time {
            assert_eq!(skopeo_config(&dest)["created"], "2001-09-09T01:46:40Z");
        }
    }
    // `context`: the build is dated by the commit too, as BuildKit resolves it for a git
    // context, and the trace says which time that was.
    let (o, dest, trace) =
        build(&daemon_url(), &[("GIT_PULL_METHOD", "git")], &["--build-arg", "SOURCE_DATE_EPOCH=context"]);
    assert_ok(&o);
    assert_eq!(context_origin(&trace)["time"], COMMITTED);
    assert_eq!(skopeo_config(&dest)["created"], "2024-01-02T03:04:05Z");
    let u = pull_and_unpack(&dest);
    assert_eq!(std::fs::symlink_metadata(u.rootfs().join("ctx/which.txt")).unwrap().mtime(), COMMITTED);
}

#[test]
fn a_pinned_commit_submodules_and_a_sub_path() {
    let r = repo();
    // `#REF#COMMIT`: the ref fetched, the older commit checked out.
    let (o, dest, trace) =
        build(&format!("{}#refs/heads/main#{}", daemon_url(), r.first), &[("GIT_PULL_METHOD", "git")], &[]);
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/ctx/which.txt"), "main v1\n");
    assert_eq!(git(&u.rootfs().join("ctx"), &["rev-parse", "HEAD"]), r.first);
    assert_eq!(context_origin(&trace)["commit"], r.first.as_str());
    let pinned_digest = context_origin(&trace)["digest"].clone();
    // `#COMMIT` alone: the default branch cloned, that commit checked out; same tree, same digest.
    let (o, _, trace) = build(&format!("{}#{}", daemon_url(), r.first), &[("GIT_PULL_METHOD", "git")], &[]);
    assert_ok(&o);
    assert_eq!(
        (context_origin(&trace)["commit"].as_str(), &context_origin(&trace)["digest"]),
        (Some(r.first.as_str()), &pinned_digest)
    );

    // The default branch, submodules recursed, the context a directory of the repository.
    let (o, dest, trace) = build(
        &daemon_url(),
        &[("GIT_PULL_METHOD", "git")],
        &["--git", "recurse-submodules=true", "--context-sub-path", "app"],
    );
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/sub/app.txt"), "app\n");
    assert!(!u.tree().has("/sub/which.txt"));
    let origin = context_origin(&trace);
    assert_eq!((origin["commit"].as_str(), origin["sub_path"].as_str()), (Some(r.main.as_str()), Some("app")));
    assert_ne!(origin["digest"], pinned_digest);

    let (o, dest, _) = build(&daemon_url(), &[("GIT_PULL_METHOD", "git")], &["--git", "recurse-submodules=true"]);
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/ctx/mod/lib.txt"), "from the submodule\n");
}

#[test]
fn the_git_flag_picks_a_branch_shallow_and_single() {
    let r = repo();
    let (o, dest, _) = build(
        &daemon_url(),
        &[("GIT_PULL_METHOD", "git")],
        &["--git", "branch=dev,single-branch=true", "--git=depth=1"],
    );
    assert_ok(&o);
    let u = pull_and_unpack(&dest);
    let ctx = u.rootfs().join("ctx");
    assert_eq!(git(&ctx, &["rev-parse", "HEAD"]), r.dev);
    assert_eq!(git(&ctx, &["rev-parse", "--is-shallow-repository"]), "true");
    assert_eq!(git(&ctx, &["for-each-ref", "--format=%(refname)", "refs/remotes"]), "refs/remotes/origin/dev");

    let (o, _, _) = build(&daemon_url(), &[("GIT_PULL_METHOD", "git")], &["--git", "branch=nope"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not contain ref branch nope"), "{}", stderr(&o));
    let (o, _, _) = build(&daemon_url(), &[], &["--git", "shallow=true"]);
    assert!(stderr(&o).contains("unknown --git option \"shallow\""), "{}", stderr(&o));
}

#[test]
fn basic_auth_over_http_backend_from_the_environment_never_shown() {
    let r = repo();
    let s = server();
    let http_url = format!("{}/ctx.git#main", s.http_auth);
    // GIT_USERNAME and GIT_PASSWORD, on an http(s) URL of a repository.
    let (o, dest, trace) = build(&http_url, &[("GIT_USERNAME", AUTH_USER), ("GIT_PASSWORD", AUTH_PASSWORD)], &[]);
    assert_ok(&o);
    assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/ctx/which.txt"), "main v2\n");
    assert_eq!(context_origin(&trace)["commit"], r.main.as_str());
    assert_secret_absent(AUTH_PASSWORD, &o, &trace, Some(&dest));
    let u = pull_and_unpack(&dest);
    assert_eq!(git(&u.rootfs().join("ctx"), &["config", "remote.origin.url"]), format!("{}/ctx.git", s.http_auth));

    // GIT_TOKEN, on kaniko's git:// form fetched over http (GIT_PULL_METHOD=http).
    let git_form = format!("git://{}/ctx.git#refs/heads/dev", s.http_auth.trim_start_matches("http://"));
    let (o, dest, trace) = build(&git_form, &[("GIT_PULL_METHOD", "http"), ("GIT_TOKEN", AUTH_TOKEN)], &[]);
    assert_ok(&o);
    assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/ctx/which.txt"), "dev\n");
    assert_secret_absent(AUTH_TOKEN, &o, &trace, Some(&dest));

    // Credentials in the URL: used, and masked wherever the URL is shown.
    let in_url = format!("{}/ctx.git", s.http_auth.replace("http://", &format!("http://{AUTH_USER}:{AUTH_PASSWORD}@")));
    let (o, dest, trace) = build(&in_url, &[], &[]);
    assert_ok(&o);
    assert_eq!(
        context_origin(&trace)["source"],
        format!("{}/ctx.git", s.http_auth.replace("http://", "http://xxxxx:xxxxx@"))
    );
    assert_secret_absent(AUTH_PASSWORD, &o, &trace, Some(&dest));

    // A wrong password fails with the server's answer, the password not in it.
    let (o, _, trace) = build(&http_url, &[("GIT_USERNAME", AUTH_USER), ("GIT_PASSWORD", "wrong-pw-77")], &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&format!("error: build context {http_url}:")), "{err}");
    assert_secret_absent("wrong-pw-77", &o, &trace, None);
    // And none at all: refused, not prompted for.
    let (o, _, _) = build(&http_url, &[], &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is not a git repository trowel can read"), "{}", stderr(&o));
}

/// An https server whose certificate this machine does not trust: refused, unless
/// `--git insecure-skip-tls=true` (kaniko's option) says not to verify it.
#[test]
fn https_with_insecure_skip_tls() {
    let s = server();
    let url = format!("{}/ctx.git#dev", s.https_auth);
    let creds = [("GIT_TOKEN", AUTH_TOKEN)];
    let (o, _, _) = build(&url, &creds, &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&format!("error: build context {url}:")) && err.contains("certificate"), "{err}");
    let (o, dest, trace) = build(&url, &creds, &["--git", "insecure-skip-tls=true,depth=1"]);
    assert_ok(&o);
    assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/ctx/which.txt"), "dev\n");
    assert_eq!(context_origin(&trace)["commit"], repo().dev.as_str());
    assert_secret_absent(AUTH_TOKEN, &o, &trace, Some(&dest));
}
