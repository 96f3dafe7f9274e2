use std::path::Path;

use super::*;
use crate::dockerfile::{NoVars, parse};
use crate::image::manifest::Platform;

fn df(text: &str) -> Dockerfile {
    parse(Path::new("Dockerfile"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn amd64() -> PlatformArgs {
    let p = Platform::parse("linux/amd64").unwrap();
    PlatformArgs { target: p.clone(), build: p }
}

fn s(v: &str) -> String {
    v.to_string()
}

fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn plan_of(text: &str, target: Option<&str>, build_args: &[(&str, &str)]) -> Plan {
    plan(&df(text), target, &args(build_args), &amd64()).unwrap_or_else(|e| panic!("{e}"))
}

fn plan_err(text: &str, target: Option<&str>) -> String {
    plan(&df(text), target, &BTreeMap::new(), &amd64()).unwrap_err().to_string()
}

const MULTI: &str = "\
ARG GO=1.22
FROM golang:${GO} AS build
RUN go build -o /out/app
FROM build AS test
RUN go test ./...
FROM alpine:3.20 AS unused
RUN echo never
FROM scratch
COPY --from=build /out/app /app
";

#[test]
fn bases_and_needed_stages() {
    let p = plan_of(MULTI, None, &[]);
    assert_eq!(p.target, 3);
    assert_eq!(p.stages[0].base, Base::Image("golang:1.22".into()));
    assert_eq!(p.stages[1].base, Base::Stage(0));
    assert_eq!(p.stages[3].base, Base::Scratch);
    assert_eq!(p.stages[3].copy_from, [StageOrImage::Stage(0)]);
    assert_eq!(p.stages.iter().map(|s| s.needed).collect::<Vec<_>>(), [true, false, false, true]);
    assert_eq!(p.order, [0, 3]);
    assert_eq!(p.stages_in_order().map(|s| s.index).collect::<Vec<_>>(), [0, 3]);
}

#[test]
fn target_selection() {
    let p = plan_of(MULTI, Some("TEST"), &[("GO", "1.23")]);
    assert_eq!(p.target, 1);
    assert_eq!(p.order, [0, 1]);
    assert_eq!(p.stages[0].base, Base::Image("golang:1.23".into()));
    assert_eq!(p.global_args.get("GO").map(String::as_str), Some("1.23"));
    let e = plan_err(MULTI, Some("release"));
    assert_eq!(e, "Dockerfile: target stage \"release\" could not be found; available stages: build, test, unused");
    let e = plan_err("FROM a\nFROM b\n", Some("x"));
    assert!(e.ends_with("available stages: none (no stage is named)"), "{e}");
}

#[test]
fn global_args_only_in_from_lines() {
    let text = "ARG IMG=busybox\nARG TAG=${IMG}-1\nFROM ${IMG}:${TAG}\nARG IMG\nARG TAG=override\n";
    let p = plan_of(text, None, &[]);
    assert_eq!(p.stages[0].base, Base::Image("busybox:busybox-1".into()));
    let d = df(text);
    let mut scope = p.arg_scope();
    let stage = &d.stages[0];
    // Undeclared in the stage: invisible.
    assert_eq!(scope.value("IMG"), None);
    let env = BTreeMap::new();
    assert_eq!(
        scope.apply(&stage.instructions[0], &env, '\\').unwrap(),
        [("IMG".to_string(), Some("busybox".to_string()))]
    );
    assert_eq!(scope.value("IMG"), Some("busybox"));
    assert_eq!(
        scope.apply(&stage.instructions[1], &env, '\\').unwrap(),
        [("TAG".to_string(), Some("override".to_string()))]
    );
}

#[test]
fn build_args_override_defaults() {
    let text = "ARG V=1\nFROM busybox:$V\nARG V\nARG W=default X=${W}-x\nARG NODEF\n";
    let p = plan_of(text, None, &[("V", "2"), ("W", "cli"), ("ZZZ", "unused")]);
    assert_eq!(p.stages[0].base, Base::Image("busybox:2".into()));
    assert_eq!(p.unused_build_args, ["ZZZ"]);
    let d = df(text);
    let mut scope = p.arg_scope();
    let env = BTreeMap::new();
    for i in &d.stages[0].instructions {
        scope.apply(i, &env, '\\').unwrap();
    }
    assert_eq!(scope.value("V"), Some("2"));
    assert_eq!(scope.value("W"), Some("cli"));
    // Later defaults on the same line see the earlier value, build arg included.
    assert_eq!(scope.value("X"), Some("cli-x"));
    assert!(scope.is_declared("NODEF"));
    assert_eq!(scope.value("NODEF"), None);
    assert_eq!(scope.used_build_args(), ["V".to_string(), "W".to_string()].into_iter().collect());
    assert_eq!(
        scope.run_env(),
        [
            ("V".to_string(), "2".to_string()),
            ("W".to_string(), "cli".to_string()),
            ("X".to_string(), "cli-x".to_string())
        ]
    );
}

#[test]
fn build_arg_skips_a_failing_default() {
    let d = df("FROM a\nARG X=${UNSET:?required}\n");
    let p = plan(&d, None, &args(&[("X", "given")]), &amd64()).unwrap();
    let mut scope = p.arg_scope();
    assert_eq!(
        scope.apply(&d.stages[0].instructions[0], &NoVars, '\\').unwrap(),
        [("X".to_string(), Some("given".to_string()))]
    );
    // Without the build arg the default fails, but only when the engine runs the ARG: the
    // planner cannot know the base image's environment.
    let p = plan(&d, None, &BTreeMap::new(), &amd64()).unwrap();
    let mut scope = p.arg_scope();
    let e = scope.apply(&d.stages[0].instructions[0], &NoVars, '\\').unwrap_err();
    assert!(e.to_string().contains("UNSET: required"), "{e}");
}

#[test]
fn unknown_base_image_env_does_not_fail_the_plan() {
    let text = "FROM golang AS build\nENV CACHE=${GOCACHE:?set_by_the_image}\nARG X=${GOPATH:?also} Y\nFROM scratch\nCOPY --from=build /x /x\n";
    let p = plan_of(text, None, &[("Y", "1")]);
    assert_eq!(p.order, [0, 1]);
    assert!(p.unused_build_args.is_empty());
}

#[test]
fn predefined_platform_args() {
    let text = "FROM --platform=$BUILDPLATFORM golang AS build\nARG TARGETOS TARGETARCH TARGETVARIANT\nFROM alpine\n";
    let platforms = PlatformArgs { target: Platform::parse("linux/arm/v7").unwrap(), build: Platform::host() };
    let p = plan(&df(text), Some("build"), &BTreeMap::new(), &platforms).unwrap();
    assert_eq!(p.stages[0].platform.as_deref(), Some(p.global_args["BUILDPLATFORM"].as_str()));
    assert_eq!(p.global_args["TARGETPLATFORM"], "linux/arm/v7");
    assert_eq!(p.global_args["TARGETVARIANT"], "v7");
    let d = df(text);
    let mut scope = p.arg_scope();
    assert_eq!(scope.value("TARGETARCH"), None);
    scope.apply(&d.stages[0].instructions[0], &NoVars, '\\').unwrap();
    assert_eq!(scope.value("TARGETARCH"), Some("arm"));
    assert_eq!(scope.value("TARGETOS"), Some("linux"));
    let arm64 = PlatformArgs {
        target: Platform::parse("linux/arm64/v8").unwrap(),
        build: Platform::parse("linux/amd64").unwrap(),
    };
    let values: BTreeMap<&str, String> = arm64.values().into_iter().collect();
    assert_eq!(values["TARGETPLATFORM"], "linux/arm64");
    assert_eq!(values["TARGETVARIANT"], "");
    assert_eq!(values["BUILDARCH"], "amd64");
    // A --build-arg may override a predefined ARG, and is not reported as unused.
    let p = plan(&df(text), None, &args(&[("TARGETARCH", "riscv64")]), &platforms).unwrap();
    assert_eq!(p.global_args["TARGETARCH"], "riscv64");
    assert!(p.unused_build_args.is_empty());
}

#[test]
fn targetstage_is_the_target_else_the_last_stages_name_else_default() {
    // BuildKit's testTargetStageNameArg: only a stage that declares it sees it.
    let text = "FROM alpine AS base\nRUN x\nARG TARGETSTAGE\nFROM scratch AS foo\nFROM scratch\n";
    let host = PlatformArgs::host();
    let p = plan(&df(text), Some("foo"), &BTreeMap::new(), &host).unwrap();
    assert_eq!(p.global_args["TARGETSTAGE"], "foo");
    let d = df(text);
    let mut scope = p.arg_scope();
    assert_eq!(scope.value("TARGETSTAGE"), None);
    scope.apply(&d.stages[0].instructions[1], &NoVars, '\\').unwrap();
    assert_eq!(scope.value("TARGETSTAGE"), Some("foo"));
    assert_eq!(plan(&df(text), None, &BTreeMap::new(), &host).unwrap().global_args["TARGETSTAGE"], "default");
    let named = format!("{text}FROM scratch AS final\n");
    assert_eq!(plan(&df(&named), None, &BTreeMap::new(), &host).unwrap().global_args["TARGETSTAGE"], "final");
    // A --build-arg overrides it, and is not reported as unused.
    let p = plan(&df(text), None, &args(&[("TARGETSTAGE", "x")]), &host).unwrap();
    assert_eq!(p.global_args["TARGETSTAGE"], "x");
    assert!(p.unused_build_args.is_empty());
}

#[test]
fn proxy_args_need_no_declaration() {
    let p = plan_of("FROM a\nRUN env\n", None, &[("HTTP_PROXY", "http://proxy:3128"), ("no_proxy", "local")]);
    assert!(p.unused_build_args.is_empty());
    let scope = p.arg_scope();
    assert_eq!(
        scope.run_env(),
        [("HTTP_PROXY".to_string(), "http://proxy:3128".to_string()), ("no_proxy".to_string(), "local".to_string())]
    );
    assert!(scope.used_build_args().contains("HTTP_PROXY"));
    assert_eq!(scope.value("HTTP_PROXY"), None);
}

#[test]
fn args_in_unneeded_stages_do_not_count() {
    let text = "FROM a AS one\nARG ONLY_ONE\nFROM b AS two\nARG ONLY_TWO\n";
    let p = plan_of(text, Some("two"), &[("ONLY_ONE", "x"), ("ONLY_TWO", "y")]);
    assert_eq!(p.unused_build_args, ["ONLY_ONE"]);
    assert_eq!(p.order, [1]);
}

#[test]
fn copy_from_by_name_index_and_image() {
    let text = "\
FROM busybox AS First
FROM busybox
COPY --from=first /a /a
COPY --from=0 /b /b
COPY --from=nginx:1.27 /etc/nginx /etc/nginx
COPY --from=FIRST /c /c
";
    let p = plan_of(text, None, &[]);
    assert_eq!(p.stages[1].copy_from, [StageOrImage::Stage(0), StageOrImage::Image("nginx:1.27".into())]);
    assert_eq!(p.order, [0, 1]);
}

#[test]
fn copy_from_later_stage_by_name_is_ordered_first() {
    let text = "FROM a AS app\nCOPY --from=assets /dist /www\nFROM b AS assets\nRUN build\n";
    let p = plan_of(text, Some("app"), &[]);
    assert_eq!(p.stages[0].copy_from, [StageOrImage::Stage(1)]);
    assert_eq!(p.order, [1, 0]);
    assert!(p.stages[1].needed);
}

#[test]
fn copy_from_with_variables() {
    let text = "\
ARG SRC=builder
FROM busybox AS builder
ENV OUT=/out
FROM builder AS second
ARG SRC
ENV WHERE=${SRC}
COPY --from=${WHERE} $OUT /
FROM alpine
ARG IDX=0
COPY --from=$IDX / /
";
    let p = plan_of(text, Some("second"), &[]);
    assert_eq!(p.stages[1].base, Base::Stage(0));
    assert_eq!(p.stages[1].copy_from, [StageOrImage::Stage(0)]);
    let p = plan_of(text, None, &[("IDX", "1")]);
    assert_eq!(p.stages[2].copy_from, [StageOrImage::Stage(1)]);
    assert_eq!(p.order, [0, 1, 2]);
}

#[test]
fn invalid_references() {
    assert_eq!(
        plan_err("FROM a\nCOPY --from=0 / /\n", None),
        "Dockerfile:2: COPY --from=0 / /: --from=0: a stage can only copy from an earlier stage by index (this is stage 0)"
    );
    assert_eq!(
        plan_err("FROM a\nFROM b\nCOPY --from=2 / /\n", None),
        "Dockerfile:3: COPY --from=2 / /: --from=2: a stage can only copy from an earlier stage by index (this is stage 1)"
    );
    assert_eq!(
        plan_err("FROM a AS me\nCOPY --from=me / /\n", None),
        "Dockerfile:2: COPY --from=me / /: --from=me: a stage cannot copy from itself"
    );
    let e = plan_err("FROM a AS x\nCOPY --from=y / /\nFROM b AS y\nCOPY --from=x / /\n", Some("y"));
    assert_eq!(e, "Dockerfile:1: FROM a AS x: circular dependency between stages: x, y");
    let e = plan_err("FROM a AS x\nRUN --mount=from=y,target=/y true\nFROM b AS y\n", Some("x"));
    assert_eq!(
        e,
        "Dockerfile:2: RUN --mount=from=y,target=/y true: cannot mount from stage \"y\": the stage must be defined before the current one"
    );
}

#[test]
fn from_chains_and_names() {
    let text = "FROM alpine AS base\nFROM base AS mid\nFROM MID AS top\nFROM top\n";
    let p = plan_of(text, None, &[]);
    assert_eq!(
        p.stages.iter().map(|s| s.base.clone()).collect::<Vec<_>>(),
        [Base::Image("alpine".into()), Base::Stage(0), Base::Stage(1), Base::Stage(2)]
    );
    assert_eq!(p.order, [0, 1, 2, 3]);
    // A name that is only defined later is an image reference, as in Docker.
    let p = plan_of("FROM later AS first\nFROM alpine AS later\n", Some("first"), &[]);
    assert_eq!(p.stages[0].base, Base::Image("later".into()));
}

#[test]
fn mounts_create_dependencies() {
    let text = "FROM a AS deps\nFROM b\nRUN --mount=type=bind,from=deps,source=/x,target=/x --mount=type=cache,target=/c --mount=from=ghcr.io/x/y:1,target=/y make\n";
    let p = plan_of(text, None, &[]);
    assert_eq!(p.stages[1].mount_from, [StageOrImage::Stage(0), StageOrImage::Image("ghcr.io/x/y:1".into())]);
    assert_eq!(p.order, [0, 1]);
}

#[test]
fn scope_declare_api() {
    let mut scope = ArgScope::new(args(&[("G", "global")]), args(&[("B", "cli")]));
    assert_eq!(scope.declare("G", None).as_deref(), Some("global"));
    assert_eq!(scope.declare("B", Some("default".into())).as_deref(), Some("cli"));
    assert_eq!(scope.declare("D", Some("default".into())).as_deref(), Some("default"));
    assert_eq!(scope.declare("N", None), None);
    assert_eq!(scope.declared().map(|(n, _)| n).collect::<Vec<_>>(), ["G", "B", "D", "N"]);
    assert_eq!(crate::dockerfile::Vars::get(&scope, "D").as_deref(), Some("default"));
    let json = serde_json::to_string(&scope).unwrap();
    assert_eq!(serde_json::from_str::<ArgScope>(&json).unwrap(), scope);
}

#[test]
fn debug_output_hides_build_arg_values() {
    let text = "ARG HTTP_PROXY\nFROM a\nARG TOKEN\nARG PUBLIC=visible\n";
    let d = df(text);
    let p = plan(&d, None, &args(&[("HTTP_PROXY", "http://user:s3cret@proxy:3128"), ("TOKEN", "t0ken")]), &amd64())
        .unwrap();
    let mut scope = p.arg_scope();
    for i in &d.stages[0].instructions {
        scope.apply(i, &NoVars, '\\').unwrap();
    }
    assert_eq!(scope.value("TOKEN"), Some("t0ken"));
    for debug in [format!("{p:?}"), format!("{scope:?}"), format!("{scope:#?}")] {
        assert!(!debug.contains("s3cret") && !debug.contains("t0ken"), "{debug}");
        assert!(debug.contains("HTTP_PROXY") && debug.contains("<redacted>"), "{debug}");
    }
    assert!(format!("{scope:?}").contains("visible"));
}

#[test]
fn a_stage_built_on_a_stage_inherits_its_args() {
    let text =
        "FROM busybox AS base\nARG USER=app\nARG KEEP=kept\nFROM base AS child\nARG KEEP\nARG USER=other\nFROM child\n";
    let d = df(text);
    let p = plan_of(text, None, &[]);
    // What the engine does: the child's scope starts as a copy of its base stage's.
    let mut base = p.arg_scope();
    for i in &d.stages[0].instructions {
        base.apply(i, &NoVars, '\\').unwrap();
    }
    let mut child = base.clone();
    assert_eq!(child.value("USER"), Some("app"), "visible without declaring it again");
    // Declared again without a value: it keeps the one it had (BuildKit leaves it as it was).
    assert_eq!(child.apply(&d.stages[1].instructions[0], &NoVars, '\\').unwrap(), [(s("KEEP"), Some(s("kept")))]);
    child.apply(&d.stages[1].instructions[1], &NoVars, '\\').unwrap();
    assert_eq!(child.value("USER"), Some("other"));
    assert_eq!(base.value("USER"), Some("app"), "the base stage's own scope is untouched");
    // The planner resolves `--from` with the inherited values too.
    let text = "FROM alpine AS tools\nFROM busybox AS base\nARG SRC=tools\nFROM base\nCOPY --from=${SRC} /x /y\n";
    assert_eq!(plan_of(text, None, &[]).stages[2].copy_from, [StageOrImage::Stage(0)]);
}

#[test]
fn arg_names_are_not_expanded() {
    // BuildKit expands an ARG's default but never its name (Docker's legacy builder did): the
    // second ARG declares a variable literally called `${NAME}`.
    let d = df("FROM busybox\nARG NAME=foo\nARG ${NAME}=bar\n");
    let p = plan(&d, None, &BTreeMap::new(), &amd64()).unwrap();
    let mut scope = p.arg_scope();
    for i in &d.stages[0].instructions {
        scope.apply(i, &NoVars, '\\').unwrap();
    }
    assert_eq!(scope.value("${NAME}"), Some("bar"));
    assert_eq!(scope.value("foo"), None);
}

#[test]
fn a_repeated_stage_name_is_the_latest_before_a_from_and_the_last_elsewhere() {
    let text = "FROM a AS s\nFROM s AS d1\nFROM b AS S\nFROM s AS d2\nFROM c\nCOPY --from=s /x /x\n";
    let p = plan_of(text, None, &[]);
    assert!(matches!(p.stages[1].base, Base::Stage(0)), "{:?}", p.stages[1].base);
    assert!(matches!(p.stages[3].base, Base::Stage(2)), "{:?}", p.stages[3].base);
    assert_eq!(p.stages[4].copy_from, vec![StageOrImage::Stage(2)]);
    assert_eq!(p.dockerfile_stage_named("S"), Some(2));
    // The target too: the last of the name.
    let p = plan_of(text, Some("s"), &[]);
    let needed: Vec<usize> = p.stages.iter().filter(|s| s.needed).map(|s| s.index).collect();
    assert_eq!(needed, vec![2]);
}
