//! Planning a build for several target platforms: one plan holding each platform's stages.
//!
//! Each target platform is planned on its own (its TARGET* ARGs differ, and with them the FROM
//! lines and `--from` values that use them), then the plans are merged: the first platform's
//! stages keep their Dockerfile indices, so a build for one platform is planned exactly as
//! before, and every later platform adds the stages it needs — except those it can share.
//!
//! A stage is shared when building it for another target would give the same result, as
//! BuildKit's solver finds when two platforms' graphs have the same vertex (the cross-compile
//! pattern `FROM --platform=$BUILDPLATFORM golang AS build` built once, whatever the targets):
//! its root is for a platform fixed by `FROM --platform` (or it builds on a shared stage), the
//! ARGs it has declared have the same values, and every stage it copies or mounts from is
//! shared. A stage that declares `ARG TARGETARCH` is not shared, even on `$BUILDPLATFORM`: its
//! RUNs see a different value per target. Nor is one that copies or mounts from an image: as
//! in BuildKit, the image is pulled for each target platform, not for the stage's.

use std::collections::BTreeMap;

use super::args::{ArgScope, PlatformArgs};
use super::error::DockerfileError;
use super::stages::{Base, Plan, PlannedStage, StageOrImage, plan_one};
use super::types::Dockerfile;

/// Plans the build of `df` for `target` (a stage name; `None` = the last stage) for every
/// target platform in `platforms` (at least one; see the module's comment for what is shared).
pub fn plan_platforms(
    df: &Dockerfile,
    target: Option<&str>,
    build_args: &BTreeMap<String, String>,
    platforms: &[PlatformArgs],
) -> Result<Plan, DockerfileError> {
    let Some((first, rest)) = platforms.split_first() else {
        return Err(DockerfileError::file(&df.path, "internal error: a build for no platform"));
    };
    let (mut plan, first_scopes) = plan_one(df, target, build_args, first)?;
    let mut unused: Vec<String> = plan.unused_build_args.clone();
    for (k, args) in rest.iter().enumerate() {
        let slot = k + 1;
        let (other, scopes) = plan_one(df, target, build_args, args)?;
        // Where each of this platform's stages is in the merged plan.
        let mut at: Vec<Option<usize>> = vec![None; other.stages.len()];
        for &i in &other.order {
            let mine = &other.stages[i];
            let shared = same_stage(&plan.stages[i], &first_scopes[i], mine, &scopes[i], &at);
            let idx = if shared {
                let s = &mut plan.stages[i];
                s.needed = true;
                s.targets.push(slot);
                i
            } else {
                let idx = plan.stages.len();
                let map = |j: usize| at[j].expect("a stage's dependencies are planned before it");
                plan.stages.push(PlannedStage {
                    index: idx,
                    base: match &mine.base {
                        Base::Stage(j) => Base::Stage(map(*j)),
                        b => b.clone(),
                    },
                    copy_from: mine.copy_from.iter().map(|s| remap(s, &map)).collect(),
                    mount_from: mine.mount_from.iter().map(|s| remap(s, &map)).collect(),
                    slot,
                    targets: vec![slot],
                    ..mine.clone()
                });
                idx
            };
            at[i] = Some(idx);
            if !plan.order.contains(&idx) {
                plan.order.push(idx);
            }
        }
        plan.targets.push(at[other.target].expect("the target is planned"));
        plan.slot_global_args.push(other.global_args.clone());
        plan.platforms.push(args.clone());
        // An arg is unused only if no platform's stages use it.
        unused.retain(|a| other.unused_build_args.contains(a));
    }
    plan.unused_build_args = unused;
    Ok(plan)
}

fn remap(s: &StageOrImage, map: &dyn Fn(usize) -> usize) -> StageOrImage {
    match s {
        StageOrImage::Stage(j) => StageOrImage::Stage(map(*j)),
        StageOrImage::Image(r) => StageOrImage::Image(r.clone()),
    }
}

/// Whether `theirs` (a later platform's plan of a stage) builds what `first` (the first
/// platform's plan of the same Dockerfile stage) builds. `at` maps the later platform's
/// stages planned so far to merged indices: a stage dependency is the same only if it was
/// shared, i.e. mapped to the first platform's own index.
fn same_stage(
    first: &PlannedStage,
    first_scope: &ArgScope,
    theirs: &PlannedStage,
    their_scope: &ArgScope,
    at: &[Option<usize>],
) -> bool {
    let shared_dep = |j: usize| at[j] == Some(j);
    let root_fixed = match (&theirs.base, &theirs.platform) {
        (Base::Stage(j), None) => shared_dep(*j),
        (Base::Stage(j), Some(p)) => shared_dep(*j) && !p.is_empty(),
        (_, Some(p)) => !p.is_empty(),
        (_, None) => false,
    };
    // An image a stage copies or mounts from is pulled for each target platform (see
    // `Plan::source_image_platform`), so such a stage differs per target even on a fixed root.
    let deps_shared = theirs.copy_from.iter().chain(&theirs.mount_from).all(|s| match s {
        StageOrImage::Stage(j) => shared_dep(*j),
        StageOrImage::Image(_) => false,
    });
    root_fixed
        && deps_shared
        && first.base == theirs.base
        && first.platform == theirs.platform
        && first.copy_from == theirs.copy_from
        && first.mount_from == theirs.mount_from
        && first_scope.declared().eq(their_scope.declared())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;
    use crate::image::manifest::Platform;

    fn platforms(targets: &[&str]) -> Vec<PlatformArgs> {
        targets
            .iter()
            .map(|t| PlatformArgs {
                target: Platform::parse(t).unwrap(),
                build: Platform::parse("linux/amd64").unwrap(),
            })
            .collect()
    }

    fn planned(text: &str, targets: &[&str]) -> Plan {
        let df = parse(std::path::Path::new("Dockerfile"), text).unwrap();
        plan_platforms(&df, None, &BTreeMap::new(), &platforms(targets)).unwrap()
    }

    /// (Dockerfile stage, slot, targets) of each stage in plan order.
    fn shape(p: &Plan) -> Vec<(usize, usize, Vec<usize>)> {
        p.order.iter().map(|&i| (p.stages[i].dockerfile_stage, p.stages[i].slot, p.stages[i].targets.clone())).collect()
    }

    #[test]
    fn one_platform_is_planned_as_before() {
        let text = "FROM busybox AS a\nRUN true\nFROM a\nCOPY --from=a / /\n";
        let df = parse(std::path::Path::new("Dockerfile"), text).unwrap();
        let one = plan_platforms(&df, None, &BTreeMap::new(), &platforms(&["linux/amd64"])).unwrap();
        let before = crate::dockerfile::plan(&df, None, &BTreeMap::new(), &platforms(&["linux/amd64"])[0]).unwrap();
        assert_eq!(one, before);
        assert!(!one.is_multi_platform());
    }

    #[test]
    fn a_build_platform_stage_without_target_args_is_shared() {
        let p = planned(
            "FROM --platform=$BUILDPLATFORM busybox AS tools\nRUN make\n\
             FROM busybox\nCOPY --from=tools /out /\n",
            &["linux/amd64", "linux/arm64"],
        );
        assert_eq!(shape(&p), vec![(0, 0, vec![0, 1]), (1, 0, vec![0]), (1, 1, vec![1])]);
        assert_eq!(p.targets, vec![1, 2]);
        // The arm64 final stage copies from the one shared stage.
        assert_eq!(p.stages[2].copy_from, vec![StageOrImage::Stage(0)]);
        assert_eq!(p.stage_platform(0), Platform::parse("linux/amd64").unwrap());
        assert_eq!(p.stage_platform(2), Platform::parse("linux/arm64").unwrap());
        assert_eq!(p.arg_scope_for(2).declare("TARGETARCH", None).as_deref(), Some("arm64"));
        assert_eq!(p.arg_scope_for(1).declare("TARGETARCH", None).as_deref(), Some("amd64"));
    }

    #[test]
    fn a_cross_compile_stage_that_declares_targetarch_is_built_per_target() {
        let p = planned(
            "FROM --platform=$BUILDPLATFORM busybox AS build\nARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n\
             FROM busybox\nCOPY --from=build /arch /\n",
            &["linux/amd64", "linux/arm64"],
        );
        assert_eq!(shape(&p), vec![(0, 0, vec![0]), (1, 0, vec![0]), (0, 1, vec![1]), (1, 1, vec![1])]);
        assert_eq!(p.stages[3].copy_from, vec![StageOrImage::Stage(2)]);
        // Both run on the build platform.
        assert_eq!(p.stage_platform(2), Platform::parse("linux/amd64").unwrap());
    }

    #[test]
    fn a_build_platform_stage_that_copies_or_mounts_from_an_image_is_built_per_target() {
        for line in ["COPY --from=alpine /bin/sh /sh", "RUN --mount=from=alpine,target=/a true"] {
            let p = planned(
                &format!(
                    "FROM --platform=$BUILDPLATFORM busybox AS tools\n{line}\nFROM busybox\nCOPY --from=tools / /\n"
                ),
                &["linux/amd64", "linux/arm64"],
            );
            assert_eq!(shape(&p), vec![(0, 0, vec![0]), (1, 0, vec![0]), (0, 1, vec![1]), (1, 1, vec![1])], "{line}");
            // Its root is the build platform's; the image is pulled for the target.
            assert_eq!(p.stage_platform(2), Platform::parse("linux/amd64").unwrap());
            assert_eq!(p.source_image_platform(2), Platform::parse("linux/arm64").unwrap());
            assert_eq!(p.source_image_platform(0), Platform::parse("linux/amd64").unwrap());
        }
    }

    #[test]
    fn a_stage_on_a_shared_stage_is_shared_and_on_the_target_is_not() {
        let p = planned(
            "FROM --platform=linux/amd64 busybox AS base\nFROM base AS tools\nRUN true\nFROM busybox AS rt\nFROM rt\n\
             COPY --from=tools / /\n",
            &["linux/amd64", "linux/arm64", "linux/arm/v7"],
        );
        let shared: Vec<usize> = p.stages.iter().filter(|s| s.targets.len() == 3).map(|s| s.dockerfile_stage).collect();
        assert_eq!(shared, vec![0, 1]);
        // rt and the final stage once per target.
        assert_eq!(p.stages.len(), 4 + 2 * 2);
        assert_eq!(p.targets.len(), 3);
        assert_eq!(p.stage_platform(p.targets[2]), Platform::parse("linux/arm/v7").unwrap());
    }

    #[test]
    fn a_from_that_names_a_stage_by_target_arch_picks_each_platforms_own() {
        let p = planned(
            "FROM busybox AS build-amd64\nFROM busybox AS build-arm64\nFROM build-${TARGETARCH}\n",
            &["linux/amd64", "linux/arm64"],
        );
        let final_base = |slot: usize| match p.stages[p.targets[slot]].base {
            Base::Stage(j) => p.stages[j].dockerfile_stage,
            _ => usize::MAX,
        };
        assert_eq!((final_base(0), final_base(1)), (0, 1));
        // Each platform builds only what its own target needs.
        assert_eq!(p.order.len(), 4);
    }
}
