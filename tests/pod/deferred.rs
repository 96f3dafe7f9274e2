//! A deferred COPY in container isolation, where a RUN's root is `/` of the pod: a stage built
//! `FROM` one whose COPY was not run, and whose RUN misses, has the parent's COPY run into `/`
//! (the root made whole there), and the image is the one a build without the cache makes.

use super::runs_nothing::{nothing_workspace, pod_build_args};
use super::*;

/// Cold, then a fresh pod's rebuild with a build arg only the child's RUN reads: deps's COPY
/// misses (its layer is in no pushed image) and is deferred; the child's RUN needs its root,
/// which is made in `/` from the layers below the COPY, the COPY run into it. A third pod
/// builds without the cache: the same image.
#[test]
fn a_child_run_gets_its_parents_deferred_copy_in_slash_in_a_pod() {
    let image = trowel_image();
    let (workspace, dest) = nothing_workspace(
        "FROM ${REGISTRY}/busybox:1.35 AS deps\n\
         WORKDIR /app\n\
         COPY f.txt ./\n\
         FROM deps AS build\n\
         ARG V=1\n\
         RUN cat f.txt > dist.txt && echo $V >> dist.txt && { test -d /trowel && echo slash || echo elsewhere; } > where.txt\n\
         FROM ${REGISTRY}/busybox:1.35\n\
         COPY --from=build /app/dist.txt /app/where.txt /out/\n",
        "pod-deferred",
    );
    let cache_repo = format!("{}/{}", env().registry, unique_repo("pod-deferred-cache"));
    let cached = |dest: &str, v: &str| {
        let cache = format!("--cache-repo={cache_repo}");
        let v = format!("--build-arg=V={v}");
        let args = pod_build_args(dest, &["--reproducible", "--cache=true", &cache, &v]);
        let (code, out, err, _) = pod_run(&image, args, &[(workspace.path(), "/workspace")]);
        let log = format!("{out}{err}");
        assert_eq!(code, 0, "{log}");
        assert!(log.contains("RUN isolation: container"), "{log}");
        log
    };
    cached(&dest, "1");

    let log = cached(&dest, "2");
    assert!(log.contains("Not run: nothing needs its layer"), "{log}");
    assert!(
        log.contains(
            "line 4 (COPY f.txt ./) was deferred; it runs now: line 7 (RUN cat f.txt > dist.txt && echo $V >> \
             dist.txt && { test -d /trowel && echo slash || echo elsewhere; } > where.txt) of stage build needs the root ("
        ),
        "{log}"
    );
    let unpacked: Vec<&str> = log.lines().filter(|l| l.contains("Unpacked ")).collect();
    assert!(unpacked.iter().any(|l| l.contains("container isolation unpacks into /")), "{log}");
    let u = pull_and_unpack(&dest);
    assert_eq!(Tree::content(&u.rootfs(), "/out/dist.txt"), "from the context\n2\n");
    assert_eq!(Tree::content(&u.rootfs(), "/out/where.txt"), "slash\n");

    let reference = format!("{}/{}:1", env().registry, unique_repo("pod-deferred-ref"));
    let args = pod_build_args(&reference, &["--reproducible", "--cache=false", "--build-arg=V=2"]);
    let (code, out, err, _) = pod_run(&image, args, &[(workspace.path(), "/workspace")]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(skopeo_inspect(&dest)["Digest"], skopeo_inspect(&reference)["Digest"]);
}
