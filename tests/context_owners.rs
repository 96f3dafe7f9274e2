//! Who owns what COPY takes from the build context: 0:0, whatever the files belong to on the
//! machine that builds (BuildKit resets the owners of what its client sends; a CI checkout is
//! often owned by a runner uid), while what COPY takes `--from` a stage keeps its owners. The
//! corpus cannot show the first (a checkout's files are the test's own), so this test chowns
//! its context files before the build and checks the image with skopeo and umoci.

mod common;

use std::os::unix::fs::{chown, symlink};

use common::*;

#[test]
fn context_files_belong_to_root_and_stage_files_keep_their_owners() {
    let ctx = tempfile::tempdir().unwrap();
    let p = |rel: &str| ctx.path().join(rel);
    let b = env().busybox();
    std::fs::write(
        p("Dockerfile"),
        format!(
            "FROM {b} AS stage\nCOPY owned.txt /s/owned.txt\nRUN chown 55:66 /s/owned.txt\n\
             FROM {b}\nCOPY owned.txt /ctx.txt\nCOPY dir /ctxdir/\nCOPY dir/link /ctxlink\n\
             COPY --from=stage /s/owned.txt /from-stage.txt\n"
        ),
    )
    .unwrap();
    std::fs::write(p("owned.txt"), "o\n").unwrap();
    std::fs::create_dir(p("dir")).unwrap();
    std::fs::write(p("dir/inner.txt"), "i\n").unwrap();
    symlink("inner.txt", p("dir/link")).unwrap();
    for rel in ["owned.txt", "dir", "dir/inner.txt"] {
        chown(p(rel), Some(4321), Some(8765)).unwrap();
    }
    std::os::unix::fs::lchown(p("dir/link"), Some(4321), Some(8765)).unwrap();

    let dest = format!("{}/owners/{}:latest", env().registry, unique_repo("context-owners"));
    let o = run(trowel().arg("build").arg("--context").arg(ctx.path()).arg("--destination").arg(&dest));
    assert_ok(&o);
    let unpacked = pull_and_unpack(&dest);
    let tree = unpacked.tree();
    for path in ["/ctx.txt", "/ctxdir", "/ctxdir/inner.txt", "/ctxdir/link", "/ctxlink"] {
        let f = tree.get(path);
        assert_eq!((f.uid, f.gid), (0, 0), "{path} comes from the context: owned by 0:0");
    }
    // In the stage the context file was 0:0 too, then a RUN gave it an owner, which COPY --from keeps.
    let f = tree.get("/from-stage.txt");
    assert_eq!((f.uid, f.gid), (55, 66));
}
