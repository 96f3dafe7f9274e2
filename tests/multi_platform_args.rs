//! The automatic platform ARGs in a build for several platforms, where a stage is built `FROM`
//! a stage every target shares (the Go cross-compile pattern: dependencies downloaded once on
//! `$BUILDPLATFORM`, then one compile per target). Each target's stages must see that target's
//! TARGET* values, and the global ARGs made from them, as BuildKit gives each target its own
//! global scope: a shared parent was planned with the first target's, and handing its scope on
//! built every target's binary for the first target. Checked in the images themselves (umoci),
//! in the log, and again from the layer cache (an arm64 stage must not hit the amd64 entry).

mod common;

use common::*;

fn multi() -> String {
    format!("{}/busybox:multi", env().registry)
}

/// A shared `base` on the build platform; `build` on it declares the platform ARGs and a global
/// one made from them; `mid` on `base` declares nothing (shared too) and `leaf` on `mid` (a
/// grandchild of the shared base) declares TARGETARCH.
fn dockerfile() -> String {
    let b = multi();
    format!(
        "ARG PKG=tool-${{TARGETARCH}}\n\
         FROM --platform=$BUILDPLATFORM {b} AS base\n\
         WORKDIR /src\n\
         RUN echo \"module deps downloaded\" > /src/deps\n\
         FROM base AS build\n\
         ARG TARGETOS TARGETARCH\n\
         ARG TARGETPLATFORM TARGETVARIANT PKG\n\
         RUN mkdir /out && echo \"GOOS=$TARGETOS GOARCH=$TARGETARCH $TARGETPLATFORM [$TARGETVARIANT] $PKG\" > /out/app\n\
         FROM base AS mid\n\
         RUN echo mid > /src/mid\n\
         FROM mid AS leaf\n\
         ARG TARGETARCH\n\
         RUN echo \"leaf $TARGETARCH\" > /src/leaf\n\
         FROM {b}\n\
         COPY --from=build /out/app /app\n\
         COPY --from=leaf /src/leaf /leaf\n"
    )
}

fn assert_each_target_has_its_own(reference: &str, log: &str) {
    for arch in ["amd64", "arm64"] {
        let u = unpack_arch(reference, arch);
        let read = |p: &str| Tree::content(&u.rootfs(), p).trim().to_string();
        assert_eq!(read("/app"), format!("GOOS=linux GOARCH={arch} linux/{arch} [] tool-{arch}"), "{log}");
        assert_eq!(read("/leaf"), format!("leaf {arch}"), "{log}");
    }
}

#[test]
fn a_stage_on_a_shared_stage_sees_its_own_targets_platform_args() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile()).unwrap();
    let repo = format!("{}/{}", env().registry, unique_repo("multi-args"));
    let build = |tag: &str| {
        let o = run(trowel()
            .args(["build", "--destination", &format!("{repo}:{tag}"), "--platform", "linux/amd64,linux/arm64"])
            .args(["--cache=true", "--cache-repo", &format!("{repo}-cache")])
            .arg("--context")
            .arg(ctx.path()));
        assert_ok(&o);
        stderr(&o)
    };
    let first = build("1");
    // The shared stages ran once, the ones declaring a platform ARG once per target.
    assert_eq!(first.matches("RUN echo \"module deps downloaded\"").count(), 1, "{first}");
    assert_eq!(first.matches("RUN echo mid").count(), 1, "{first}");
    assert_eq!(first.matches("RUN mkdir /out").count(), 2, "{first}");
    // The log shows each target's values.
    assert!(first.contains("[linux/arm64] ARG TARGETOS=linux TARGETARCH=arm64"), "{first}");
    assert!(first.contains("[linux/amd64] ARG TARGETOS=linux TARGETARCH=amd64"), "{first}");
    assert!(
        first.contains("[linux/arm64] ARG TARGETPLATFORM=linux/arm64 TARGETVARIANT=\"\" PKG=tool-arm64"),
        "{first}"
    );
    assert_each_target_has_its_own(&format!("{repo}:1"), &first);

    // From the cache: every step hits its own target's entry, and the images are the same.
    let again = build("2");
    assert!(again.contains("0 miss(es)"), "first build:\n{first}\nsecond:\n{again}");
    assert_each_target_has_its_own(&format!("{repo}:2"), &again);
}
