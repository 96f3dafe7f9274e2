//! `COPY --link` / `ADD --link` against a plain COPY, checked with skopeo and umoci: the same
//! files, and exactly the differences BuildKit has (a `--link` step does not see the image it
//! lands on), plus what that buys — no base to unpack. Cache reuse after an earlier step
//! changed is in tests/cache/.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

/// A context with files of every kind COPY cares about: nested directories, an executable, a
/// symlink, a hardlink pair, a tar archive (ADD extracts it), and fixed times.
fn context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let w = |rel: &str, c: &str| {
        let f = p.join(rel);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, c).unwrap();
    };
    w("src/top.txt", "top\n");
    w("src/nested/deep/x.txt", "x\n");
    w("src/run.sh", "#!/bin/sh\necho ran\n");
    w("one.txt", "one\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p.join("src/run.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("top.txt", p.join("src/link")).unwrap();
    std::fs::hard_link(p.join("src/top.txt"), p.join("src/hard.txt")).unwrap();
    let tar = std::process::Command::new("tar")
        .args(["-cf", "arch.tar", "-C", "src", "nested"])
        .current_dir(p)
        .status()
        .unwrap();
    assert!(tar.success());
    // Fixed times: a copy keeps them, so two builds can be compared to the nanosecond.
    for e in walkdir::WalkDir::new(p) {
        let e = e.unwrap();
        let t = std::fs::FileTimes::new()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000));
        if !e.path_is_symlink() && e.file_type().is_file() {
            std::fs::File::options().write(true).open(e.path()).unwrap().set_times(t).unwrap();
        }
    }
    dir
}

fn build(ctx: &Path, dockerfile: &str, extra: &[&str]) -> (Output, String) {
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let dest = format!("{}/{}:1", env().registry, unique_repo("link"));
    let o = run(trowel().args(["build", "--destination", &dest, "--context"]).arg(ctx).args(extra));
    (o, dest)
}

/// Everything under `prefixes`, with the times of what each build made itself left out: the
/// directories a step creates, a heredoc file, and what a RUN of the other stage wrote are
/// stamped when they are made, in either build.
fn files(t: &Tree, prefixes: &[&str]) -> Vec<(String, FileInfo)> {
    t.0.iter()
        .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| {
            let mut v = v.clone();
            v.ino = 0;
            if v.kind == 'd' || k == "/inline.txt" || k.starts_with("/from-stage") {
                v.mtime_ns = 0;
            }
            (k.clone(), v)
        })
        .collect()
}

#[test]
fn link_copies_the_same_files_as_copy() {
    let ctx = context();
    let steps = |link: &str| {
        format!(
            "FROM {b} AS other\nRUN mkdir -p /made && echo made > /made/m.txt && chown -R 5:6 /made\n\
             FROM {b}\n\
             COPY {link} src/ /app/\n\
             COPY {link} --chown=1000:1000 one.txt /owned/one.txt\n\
             COPY {link} one.txt src/top.txt /several/\n\
             ADD {link} arch.tar /arch/\n\
             COPY {link} --from=other /made /from-stage/\n\
             COPY {link} <<EOF /inline.txt\nhello\nEOF\n",
            b = env().busybox()
        )
    };
    let (plain, plain_dest) = build(ctx.path(), &steps(""), &[]);
    assert_ok(&plain);
    let (linked, linked_dest) = build(ctx.path(), &steps("--link"), &[]);
    assert_ok(&linked);
    let (a, b) = (pull_and_unpack(&plain_dest), pull_and_unpack(&linked_dest));
    let prefixes = ["/app", "/owned", "/several", "/arch", "/from-stage", "/inline.txt"];
    let (fa, fb) = (files(&a.tree(), &prefixes), files(&b.tree(), &prefixes));
    assert!(fa.len() > 15, "{fa:?}");
    assert_eq!(fa, fb);
    // Hardlinks stay hardlinks; modes and times are the context's.
    let t = b.tree();
    assert_eq!(t.get("/app/hard.txt").nlink, 2);
    assert_eq!(t.get("/app/run.sh").mode, 0o750);
    assert_eq!(t.get("/app/top.txt").mtime_ns, 1_600_000_000_000_000_000);
    // One layer per step in both, and the image runs.
    assert_eq!(skopeo_manifest(&plain_dest)["layers"].as_array().unwrap().len(), 7);
    assert_eq!(skopeo_manifest(&linked_dest)["layers"].as_array().unwrap().len(), 7);
    let (code, out, _) = b.crun(Some(&["/app/run.sh"]));
    assert_eq!((code, out.as_str()), (0, "ran\n"));
}

/// What BuildKit's `--link` does that a plain COPY does not: the step cannot see the image, so
/// the parents it makes replace the image's (0755, owned by the --chown user), a symlink on the
/// way is replaced by a directory, and a destination without a trailing slash is a file even
/// where the image has a directory. Each replacement is named in a warning. `--chmod` turns
/// `--link` off, as in BuildKit.
#[test]
fn link_steps_do_not_see_the_image_below() {
    let ctx = context();
    let prepare = "RUN mkdir -p /opt/keep /srv/real && echo k > /opt/keep/k && chmod 0700 /opt && chown 5:6 /opt \
                   && ln -s /srv/real /lnk && mkdir /adir && echo kept > /adir/k";
    let df = format!(
        "FROM {b}\n{prepare}\n\
         COPY --link one.txt /opt/one.txt\n\
         COPY --link --chown=1000 one.txt /lnk/one.txt\n\
         COPY --link one.txt /adir\n\
         COPY one.txt /plain-into-dir/\n",
        b = env().busybox()
    );
    let (o, dest) = build(ctx.path(), &df, &[]);
    assert_ok(&o);
    let log = stderr(&o);
    let t = pull_and_unpack(&dest).tree();
    let opt = t.get("/opt");
    assert_eq!((opt.mode, opt.uid, opt.gid), (0o755, 0, 0), "the --link step's /opt replaced the image's");
    assert!(t.has("/opt/keep/k"), "a directory laid over is merged, not replaced");
    let lnk = t.get("/lnk");
    assert_eq!((lnk.kind, lnk.uid, lnk.gid), ('d', 1000, 1000));
    assert!(t.has("/lnk/one.txt") && !t.has("/srv/real/one.txt"), "the symlink was not followed");
    assert!(log.contains("/lnk was a symlink to /srv/real in the image; --link replaces it with a directory"), "{log}");
    assert_eq!(t.get("/adir").kind, 'f');
    assert!(!t.has("/adir/k"));
    assert!(log.contains("/adir was a directory of the image; --link replaces it with this step's file"), "{log}");

    // With --chmod, --link is a plain COPY (BuildKit links only without it): the image's /opt
    // keeps its mode and owner, the symlink is followed.
    let df = format!("FROM {b}\n{prepare}\nCOPY --link --chmod=0600 one.txt /lnk/\n", b = env().busybox());
    let (o, dest) = build(ctx.path(), &df, &[]);
    assert_ok(&o);
    let t = pull_and_unpack(&dest).tree();
    assert_eq!(t.get("/lnk").kind, 'l');
    assert_eq!(t.get("/srv/real/one.txt").mode, 0o600);
    assert_eq!(t.get("/opt").mode, 0o700);
}

/// A stage whose file steps are all `--link` never needs its base's files: the base is not
/// unpacked, its layers are not even downloaded, and the image is still complete.
#[test]
fn link_steps_do_not_unpack_the_base() {
    let ctx = context();
    let df = format!(
        "FROM {b}\nCOPY --link one.txt /one.txt\nENV X=1\nADD --link arch.tar /arch/\nCMD [\"cat\", \"/one.txt\"]\n",
        b = env().busybox()
    );
    let trace = ctx.path().join("trace.jsonl");
    let (o, dest) = build(ctx.path(), &df, &["--trace", trace.to_str().unwrap()]);
    assert_ok(&o);
    let events = std::fs::read_to_string(&trace).unwrap();
    assert!(!events.contains("\"base_unpacked\""), "the base was unpacked");
    assert!(!events.contains("\"pull_progress\""), "a base layer was downloaded");
    let u = pull_and_unpack(&dest);
    let (code, out, _) = u.crun(None);
    assert_eq!((code, out.as_str()), (0, "one\n"));
    assert!(u.tree().has("/bin/busybox") && u.tree().has("/arch/nested/deep/x.txt"));
}

#[test]
fn link_takes_numeric_owners_only() {
    let ctx = context();
    let (o, _) = build(ctx.path(), &format!("FROM {}\nCOPY --link --chown=app:app one.txt /x\n", env().busybox()), &[]);
    let err = stderr(&o);
    assert!(!o.status.success());
    let want = "COPY --link --chown=app:app one.txt /x: --chown=app:app names a user or group, which --link cannot look \
                up (a --link step does not see the image's /etc/passwd and /etc/group, as in BuildKit): use numeric \
                ids, or drop --link";
    assert!(err.contains(&format!("Dockerfile:2: {want}")), "{err}");
    assert!(!err.contains("Retrieved image"), "refused before the pull:\n{err}");
    // A variable is known only when the step runs: refused then, with the same words.
    let df = format!("FROM {}\nARG WHO=app\nCOPY --link --chown=$WHO one.txt /x\n", env().busybox());
    let (o, _) = build(ctx.path(), &df, &[]);
    assert!(stderr(&o).contains("--chown=app names a user or group, which --link cannot look up"), "{}", stderr(&o));
}
