//! `COPY --chmod` with chmod(1)'s symbolic notation, which BuildKit's Dockerfile syntax reads
//! since 1.14 (`u=rwX,go=rX`, `g=u`, `+x`): applied to each copied entry's own mode, from the
//! context, from a stage, to a heredoc, and with `--link` (a plain copy then). The image is read
//! back with skopeo and umoci, a heredoc made executable is run with crun, and a rebuild after
//! a source's mode changed must not be served the earlier layer.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

fn set_mode(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn symbolic_modes_apply_to_each_entry_as_buildkit_reads_them() {
    let ctx = tempfile::tempdir().unwrap();
    let p = |rel: &str| ctx.path().join(rel);
    let b = env().busybox();
    std::fs::write(
        p("Dockerfile"),
        format!(
            "FROM {b} AS stage\n\
             RUN mkdir -p /s/sub && echo x > /s/run.sh && chmod 0700 /s/run.sh /s/sub && echo y > /s/data && chmod 0660 /s/data\n\
             FROM {b}\n\
             COPY --chmod=u=rwX,go=rX tree /app/\n\
             COPY --chmod=g=u one.txt /g.txt\n\
             COPY --chmod=+x <<EOF /usr/local/bin/hello\n#!/bin/sh\necho hello from a heredoc\nEOF\n\
             COPY --chmod=4755 <<EOF /usr/local/bin/suid\nx\nEOF\n\
             COPY --from=stage --chmod=a+rX,go-w /s /from/\n\
             COPY --link --chmod=o= one.txt /linked/\n\
             COPY --chmod=4755 tree /suidtree/\n\
             COPY --chmod=2750 one.txt /sg/deep/one.txt\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(p("tree/sub")).unwrap();
    std::fs::write(p("tree/a.txt"), "a\n").unwrap();
    std::fs::write(p("tree/tool"), "#!/bin/sh\n").unwrap();
    std::fs::write(p("tree/sub/b.txt"), "b\n").unwrap();
    std::fs::write(p("one.txt"), "1\n").unwrap();
    set_mode(&p("tree/a.txt"), 0o600);
    set_mode(&p("tree/tool"), 0o700);
    set_mode(&p("tree/sub/b.txt"), 0o640);
    set_mode(&p("tree/sub"), 0o700);
    set_mode(&p("one.txt"), 0o750);

    let repo = unique_repo("copy-chmod");
    let dest = format!("{}/chmod/{repo}:latest", env().registry);
    let cache_repo = format!("{}/chmod/{repo}-cache", env().registry);
    let build = || {
        run(trowel()
            .arg("build")
            .arg("--context")
            .arg(ctx.path())
            .arg("--destination")
            .arg(&dest)
            .arg("--cache=true")
            .arg("--cache-repo")
            .arg(&cache_repo))
    };
    let o = build();
    assert_ok(&o);
    let unpacked = pull_and_unpack(&dest);
    let t = unpacked.tree();
    let mode = |path: &str| t.get(path).mode;
    // u=rwX,go=rX: directories and executables 0755, other files 0644; the destination the
    // directory's contents go into is 0755 as BuildKit makes it.
    for (path, want) in [("/app", 0o755), ("/app/a.txt", 0o644), ("/app/tool", 0o755), ("/app/sub", 0o755)] {
        assert_eq!(mode(path), want, "{path}");
    }
    assert_eq!(mode("/app/sub/b.txt"), 0o644);
    // g=u: the group gets the owner's bits.
    assert_eq!(mode("/g.txt"), 0o770);
    // A heredoc starts at 0644: +x makes it 0755, and it runs.
    assert_eq!(mode("/usr/local/bin/hello"), 0o755);
    let (code, out, err) = unpacked.crun(Some(&["/usr/local/bin/hello"]));
    assert_eq!((code, out.trim()), (0, "hello from a heredoc"), "{err}");
    // An octal mode's setuid bit survives the owner being set.
    assert_eq!(mode("/usr/local/bin/suid"), 0o4755);
    // The directories the copy makes itself get an octal mode's permission bits alone, as
    // BuildKit's fsutil makes them (a raw mode passed as a Go FileMode loses its special bits);
    // what is copied gets all of them.
    for (path, want) in [("/suidtree", 0o755), ("/suidtree/a.txt", 0o4755), ("/suidtree/sub", 0o4755)] {
        assert_eq!(mode(path), want, "{path}");
    }
    for (path, want) in [("/sg", 0o750), ("/sg/deep", 0o750), ("/sg/deep/one.txt", 0o2750)] {
        assert_eq!(mode(path), want, "{path}");
    }
    // From a stage: a+rX,go-w on 0700, 0660 and a 0700 directory.
    for (path, want) in [("/from/run.sh", 0o755), ("/from/data", 0o644), ("/from/sub", 0o755)] {
        assert_eq!(mode(path), want, "{path}");
    }
    // --link with --chmod is a plain COPY: o= on 0750.
    assert_eq!(mode("/linked/one.txt"), 0o750);

    // The same value gives another mode when the source's changes: the rebuild must miss.
    set_mode(&p("tree/a.txt"), 0o700);
    let o = build();
    assert_ok(&o);
    let t = pull_and_unpack(&dest).tree();
    assert_eq!(t.get("/app/a.txt").mode, 0o755, "X follows the source's execute bit after a rebuild");
    assert_eq!(t.get("/g.txt").mode, 0o770);
}

/// An octal `--chmod` is also the mode of the parent directories the copy makes, as BuildKit
/// makes them since fsutil#228 (BuildKit 0.21, Docker 28.1: `MkdirAll(ensureDstPath,
/// *ci.Mode)`), for a file, a directory's contents, a heredoc; a symbolic one makes them 0755,
/// and directories that exist keep their mode.
#[test]
fn an_octal_chmod_is_the_mode_of_the_parents_the_copy_makes() {
    let ctx = tempfile::tempdir().unwrap();
    let p = |rel: &str| ctx.path().join(rel);
    std::fs::write(
        p("Dockerfile"),
        format!(
            "FROM {}\n\
             COPY --chmod=0750 one.txt /newp/sub/f\n\
             COPY --chmod=0711 tree/ /newd/x/\n\
             COPY --chmod=0700 <<EOF /newh/h\nx\nEOF\n\
             COPY --chmod=u=rw one.txt /news/sub/f\n\
             COPY --chmod=0700 one.txt /etc/one.txt\n",
            env().busybox()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(p("tree")).unwrap();
    std::fs::write(p("tree/a.txt"), "a\n").unwrap();
    std::fs::write(p("one.txt"), "1\n").unwrap();
    let dest = format!("{}/chmod/{}:latest", env().registry, unique_repo("chmod-parents"));
    let o = run(trowel().arg("build").arg("--context").arg(ctx.path()).arg("--destination").arg(&dest));
    assert_ok(&o);
    let t = pull_and_unpack(&dest).tree();
    for (path, want) in [
        ("/newp", 0o750),
        ("/newp/sub", 0o750),
        ("/newp/sub/f", 0o750),
        ("/newd", 0o711),
        ("/newd/x", 0o711),
        ("/newd/x/a.txt", 0o711),
        ("/newh", 0o700),
        ("/newh/h", 0o700),
        ("/news", 0o755),
        ("/news/sub", 0o755),
        ("/etc", 0o755),
        ("/etc/one.txt", 0o700),
    ] {
        assert_eq!(t.get(path).mode, want, "{path}");
    }
}
