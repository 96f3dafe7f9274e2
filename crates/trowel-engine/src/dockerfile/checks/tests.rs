//! Each rule on small Dockerfiles: found where BuildKit finds it, with its words and line, and
//! not found where BuildKit finds nothing; the options (`# check=`, comments, the build arg);
//! and the split between what a build can check before its bases are resolved and after.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::dockerfile::{PlatformArgs, parse};
use crate::image::manifest::Platform;

#[derive(Clone)]
struct Setup {
    build_args: BTreeMap<String, String>,
    target: Option<String>,
    ignore: DockerIgnore,
    /// ENV of every base image (all bases known unless `unknown`).
    base_env: Vec<(String, String)>,
    base_shell: bool,
    unknown: bool,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            build_args: BTreeMap::new(),
            target: None,
            ignore: DockerIgnore::default(),
            base_env: vec![("PATH".into(), "/usr/bin:/bin".into()), ("HOME".into(), "/root".into())],
            base_shell: false,
            unknown: false,
        }
    }
}

fn platforms() -> PlatformArgs {
    let amd64 = Platform::parse("linux/amd64").unwrap();
    PlatformArgs { target: amd64.clone(), build: amd64 }
}

fn report(text: &str, setup: &Setup) -> Report {
    let df = parse(Path::new("Dockerfile"), text).unwrap();
    let (config, _) = CheckConfig::for_build(text, &setup.build_args).unwrap();
    let platforms = platforms();
    let opts = CheckOptions {
        config: &config,
        build_args: &setup.build_args,
        target: setup.target.as_deref(),
        platforms: &platforms,
        dockerignore: &setup.ignore,
        all_stages: setup.target.is_none(),
    };
    let info = BaseInfo { env: setup.base_env.clone(), shell: setup.base_shell };
    let bases: BTreeMap<usize, BaseInfo> =
        if setup.unknown { BTreeMap::new() } else { (0..df.stages.len()).map(|i| (i, info.clone())).collect() };
    check(&df, &opts, &bases)
}

fn found_with(text: &str, setup: &Setup) -> Vec<String> {
    let r = report(text, setup);
    assert!(r.error.is_none(), "{:?}", r.error);
    r.findings.iter().map(|f| format!("{}: {}", f.line, f.short())).collect()
}

fn found(text: &str) -> Vec<String> {
    found_with(text, &Setup::default())
}

fn none(text: &str) {
    assert_eq!(found(text), Vec::<String>::new(), "{text}");
}

#[test]
fn stage_name_and_as_casing() {
    assert_eq!(
        found("FROM scratch AS Builder\nFROM scratch as second\nFROM scratch AS third\n"),
        [
            "1: StageNameCasing: Stage name 'Builder' should be lowercase (line 1)",
            "2: FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)",
        ]
    );
    assert_eq!(
        found("from scratch AS first\nfrom scratch as second\n"),
        ["1: FromAsCasing: 'AS' and 'from' keywords' casing do not match (line 1)"]
    );
    // A mixed-case FROM is the casing rule's, not this one's.
    assert_eq!(
        found("From scratch as a\nFROM scratch AS b\nFROM scratch AS c\n"),
        [
            "1: ConsistentInstructionCasing: Command 'From' should match the case of the command majority (uppercase) (line 1)"
        ]
    );
}

#[test]
fn consistent_instruction_casing_follows_the_majority() {
    assert_eq!(
        found("FROM scratch\ncopy a /a\nCOPY b /b\n"),
        [
            "2: ConsistentInstructionCasing: Command 'copy' should match the case of the command majority (uppercase) (line 2)"
        ]
    );
    assert_eq!(
        found("FROM scratch\ncopy a /a\ncopy b /b\n"),
        [
            "1: ConsistentInstructionCasing: Command 'FROM' should match the case of the command majority (lowercase) (line 1)"
        ]
    );
    // A tie goes to upper case; global ARGs are not counted.
    assert_eq!(
        found("arg A=1\nFROM scratch\ncopy a /a\n"),
        [
            "3: ConsistentInstructionCasing: Command 'copy' should match the case of the command majority (uppercase) (line 3)"
        ]
    );
    none("from scratch\ncopy a /a\n");
}

#[test]
fn empty_continuation_lines() {
    assert_eq!(
        found("FROM scratch\nCOPY a \\\n\n  /a\nCOPY b \\\n  # a comment\n  /b\n"),
        ["4: NoEmptyContinuation: Empty continuation line (line 4)"]
    );
}

#[test]
fn stage_names_reserved_and_duplicate() {
    assert_eq!(
        found("FROM scratch AS scratch\nFROM scratch AS context\nFROM scratch\n"),
        [
            "1: ReservedStageName: Stage name should not use the same name as reserved stage \"scratch\" (line 1)",
            "2: ReservedStageName: Stage name should not use the same name as reserved stage \"context\" (line 2)",
        ]
    );
}

#[test]
fn json_args_recommended_unless_a_shell_is_set() {
    assert_eq!(
        found("FROM scratch\nCMD run me\n"),
        [
            "2: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 2)"
        ]
    );
    assert_eq!(
        found("FROM scratch\nentrypoint run me\nCMD [\"x\"]\n")[1],
        "2: JSONArgsRecommended: JSON arguments recommended for entrypoint to prevent unintended behavior related to OS signals (line 2)"
    );
    none("FROM scratch AS base\nSHELL [\"/bin/ash\", \"-c\"]\nFROM base\nCMD run me\n");
    none("FROM scratch\nCMD [\"run\", \"me\"]\nENTRYPOINT [\"x\"]\n");
    // A base image with a SHELL.
    let shell = Setup { base_shell: true, ..Setup::default() };
    assert!(found_with("FROM busybox\nCMD run me\n", &shell).is_empty());
    assert_eq!(found("FROM busybox\nCMD run me\n").len(), 1);
}

#[test]
fn maintainer_deprecated() {
    assert_eq!(
        found("FROM scratch\nMAINTAINER someone@example.org\n"),
        ["2: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)"]
    );
    none("FROM scratch\nLABEL org.opencontainers.image.authors=someone@example.org\n");
}

#[test]
fn undefined_arg_in_from() {
    // `busybox:` is no image name either: found, and the build stops there as BuildKit's does.
    let r = report("ARG VERSION=1.36\nFROM busybox:${VERSON}\n", &Setup::default());
    assert_eq!(
        r.findings.iter().map(|f| format!("{}: {}", f.line, f.short())).collect::<Vec<_>>(),
        [
            "2: InvalidDefaultArgInFrom: Default value for ARG busybox:${VERSON} results in empty or invalid base image name (line 2)",
            "2: UndefinedArgInFrom: FROM argument 'VERSON' is not declared (did you mean VERSION?) (line 2)",
        ]
    );
    assert!(
        r.error.unwrap().to_string().contains(r#"failed to parse stage name "busybox:": invalid reference format"#)
    );
    assert_eq!(
        found("ARG tag=1.36\nFROM busybox:${tag}${flavour} AS b\n"),
        ["2: UndefinedArgInFrom: FROM argument 'flavour' is not declared (line 2)"]
    );
    // Declared without a value, predefined, or with a default inside the expansion: fine.
    none("ARG FLAVOUR\nFROM busybox:1.36${FLAVOUR}\n");
    none("FROM --platform=$BUILDPLATFORM busybox\n");
    none("ARG SUFFIX\nFROM busy${SUFFIX:-box}\n");
    none("FROM busybox:${TARGETSTAGE}x\n");
    // A build arg is not a declaration.
    let args = Setup { build_args: BTreeMap::from([("TAG".into(), "1".into())]), ..Setup::default() };
    assert_eq!(found_with("FROM busybox:1.3$TAG\n", &args).len(), 1);
}

#[test]
fn undefined_arg_in_a_platform_stops_at_the_error() {
    let r = report("FROM --platform=$BULIDPLATFORM scratch\nCMD x\n", &Setup::default());
    let shown: Vec<String> = r.findings.iter().map(Finding::short).collect();
    assert_eq!(
        shown,
        ["UndefinedArgInFrom: FROM argument 'BULIDPLATFORM' is not declared (did you mean BUILDPLATFORM?) (line 1)"]
    );
    assert!(r.error.unwrap().to_string().contains("empty platform value from expression $BULIDPLATFORM"));
}

/// A base name that is no image reference and uses no ARG: the error BuildKit stops at, not
/// InvalidDefaultArgInFrom, which is about an ARG's default (there is none here). With an ARG
/// whose default gives such a name, the rule is still found.
#[test]
fn an_invalid_base_reference_without_args_is_an_error_not_a_default_arg_finding() {
    let r = report("FROM 127.0.0.1:/busybox:latest\nRUN true\n", &Setup::default());
    assert!(r.findings.is_empty(), "{:?}", r.findings.iter().map(Finding::short).collect::<Vec<_>>());
    let error = r.error.expect("an invalid reference stops the build").to_string();
    assert!(
        error.contains(
            r#"failed to parse stage name "127.0.0.1:/busybox:latest": invalid reference format: invalid registry "127.0.0.1:""#
        ),
        "{error}"
    );
    // Also in a stage the target does not build, and after a stage with a valid one.
    let r = report("FROM busybox AS ok\nFROM Not/Valid AS other\nFROM ok\n", &Setup::default());
    assert!(r.error.unwrap().to_string().contains(r#"failed to parse stage name "Not/Valid""#));
    // An earlier stage's name in another case, and scratch, are no references.
    assert!(report("FROM busybox AS Build\nFROM BUILD\nFROM SCRATCH\n", &Setup::default()).error.is_none());
    // The ARG case keeps its finding (and the name its defaults give is not what is built).
    let args = Setup { build_args: BTreeMap::from([("REG".into(), "127.0.0.1:5000".into())]), ..Setup::default() };
    let r = report("ARG REG=127.0.0.1:\nFROM $REG/busybox:latest\n", &args);
    let shown: Vec<String> = r.findings.iter().map(Finding::short).collect();
    assert_eq!(
        shown,
        [
            "InvalidDefaultArgInFrom: Default value for ARG $REG/busybox:latest results in empty or invalid base image name (line 2)"
        ]
    );
    assert!(r.error.is_none(), "{:?}", r.error.map(|e| e.to_string()));
}

#[test]
fn invalid_default_arg_in_from() {
    let args = Setup { build_args: BTreeMap::from([("VERSION".into(), "1.36".into())]), ..Setup::default() };
    assert_eq!(
        found_with("ARG VERSION\nFROM busybox:$VERSION\n", &args),
        [
            "2: InvalidDefaultArgInFrom: Default value for ARG busybox:$VERSION results in empty or invalid base image name (line 2)"
        ]
    );
    let args = Setup { build_args: BTreeMap::from([("IMAGE".into(), "busybox".into())]), ..Setup::default() };
    assert_eq!(found_with("ARG IMAGE\nFROM $IMAGE\n", &args).len(), 1);
    none("ARG VERSION=1.36\nFROM busybox:${VERSION}\n");
    none("ARG VARIANT\nFROM busybox:stable${VARIANT}\n");
    none("ARG TAG\nFROM busybox:${TAG:-1.36}\n");
}

#[test]
fn redundant_and_constant_platforms() {
    assert_eq!(
        found("FROM --platform=$TARGETPLATFORM scratch\nFROM --platform=${TARGETPLATFORM} scratch\n"),
        [
            "1: RedundantTargetPlatform: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior (line 1)",
            "2: RedundantTargetPlatform: Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior (line 2)",
        ]
    );
    assert_eq!(
        found("FROM --platform=linux/amd64 scratch AS base\n"),
        [
            "1: FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/amd64\" (line 1)"
        ]
    );
    // The stage says which platform it is for.
    none("FROM --platform=linux/arm64 scratch AS build-arm64\nFROM --platform=linux/amd64 scratch AS linux\n");
    none("ARG P=linux/amd64\nFROM --platform=$P scratch\n");
}

#[test]
fn workdir_relative_path() {
    assert_eq!(
        found("FROM scratch\nWORKDIR app/\nWORKDIR more\n"),
        [
            "2: WorkdirRelativePath: Relative workdir \"app/\" can have unexpected results if the base image changes (line 2)"
        ]
    );
    none("FROM scratch AS a\nWORKDIR /app\nFROM a\nWORKDIR sub\n");
    // Expanded first: $HOME is absolute in the base image.
    none("FROM busybox\nWORKDIR $HOME/app\n");
}

#[test]
fn undefined_var() {
    assert_eq!(
        found("FROM busybox\nCOPY $src /\nARG src=a\nRUN echo $src $nothing\n"),
        ["2: UndefinedVar: Usage of undefined variable '$src' (line 2)"]
    );
    assert_eq!(
        found("FROM busybox\nARG DIR_ASSETS=assets/\nCOPY $DIR_ASSET /\nENV PATH=$PAHT:/opt/bin\n"),
        [
            "3: UndefinedVar: Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?) (line 3)",
            "4: UndefinedVar: Usage of undefined variable '$PAHT' (did you mean $PATH?) (line 4)",
        ]
    );
    // A declared ARG without value, an ARG of the stage built on, the base image's ENV, the
    // PATH every stage has: all defined.
    none("FROM busybox\nARG opt\nCOPY a${opt} /\n");
    none("FROM busybox AS base\nARG f=a\nFROM base\nCOPY $f /\n");
    none("FROM busybox\nWORKDIR $HOME\nENV P=$PATH\n");
    none("FROM scratch\nENV P=$PATH\n");
    // A global ARG is not visible in a stage that does not declare it.
    assert_eq!(found("ARG V=1\nFROM scratch\nLABEL v=$V\n").len(), 1);
    none("ARG V=1\nFROM scratch\nARG V\nLABEL v=$V\n");
    // Every word of an ENV sees the variables as they were before it.
    assert_eq!(found("FROM scratch\nENV A=1 B=$A\n"), ["2: UndefinedVar: Usage of undefined variable '$A' (line 2)"]);
    // In a mount, a heredoc that expands, USER, VOLUME, STOPSIGNAL, an ARG's default.
    let text = "FROM scratch\nRUN --mount=type=cache,target=$CACHE true\nCOPY <<EOF /f\n$BODY\nEOF\nCOPY <<'EOF' /g\n$QUOTED\nEOF\nUSER $WHO\nVOLUME $VOL\nSTOPSIGNAL $SIG\nARG X=$Y\n";
    let vars: Vec<String> = found(text).iter().map(|f| f.split('\'').nth(1).unwrap().to_string()).collect();
    assert_eq!(vars, ["$CACHE", "$BODY", "$WHO", "$VOL", "$SIG", "$Y"]);
    // Not RUN, CMD or EXPOSE: the shell or nothing expands those.
    none("FROM scratch\nRUN echo $X\nCMD [\"$Y\"]\nEXPOSE ${PORT:-80}\n");
}

#[test]
fn undefined_var_by_target() {
    let text = "FROM scratch AS first\nCOPY $one /\nFROM scratch AS second\nCOPY $two /\n";
    // `trowel check` without a target looks at every stage; a build only at the ones it needs.
    assert_eq!(found(text).len(), 2);
    let target = Setup { target: Some("second".into()), ..Setup::default() };
    assert_eq!(found_with(text, &target), ["4: UndefinedVar: Usage of undefined variable '$two' (line 4)"]);
}

#[test]
fn multiple_instructions_disallowed() {
    let text = "FROM scratch AS a\nCMD [\"a\"]\nENTRYPOINT [\"a\"]\nHEALTHCHECK CMD [\"a\"]\nCOPY x /x\nCMD [\"b\"]\nENTRYPOINT [\"b\"]\nHEALTHCHECK NONE\nFROM a\nCMD [\"c\"]\n";
    assert_eq!(
        found(text),
        [
            "2: MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because only the last one will be used (line 2)",
            "3: MultipleInstructionsDisallowed: Multiple ENTRYPOINT instructions should not be used in the same stage because only the last one will be used (line 3)",
            "4: MultipleInstructionsDisallowed: Multiple HEALTHCHECK instructions should not be used in the same stage because only the last one will be used (line 4)",
        ]
    );
}

#[test]
fn legacy_key_value_format() {
    assert_eq!(
        found("FROM scratch\nENV name value\nLABEL name value\nENV k=v\nLABEL k=v\n"),
        [
            "2: LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line 2)",
            "3: LegacyKeyValueFormat: \"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format (line 3)",
        ]
    );
}

#[test]
fn secrets_used_in_arg_or_env() {
    let text = "FROM scratch\nARG GITHUB_TOKEN\nENV db_password=x PUBLIC_KEY=y\nARG KEY_FILE\n# check=skip=SecretsUsedInArgOrEnv // a test key\nENV api_key=z\n";
    assert_eq!(
        found(text),
        [
            "2: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG \"GITHUB_TOKEN\") (line 2)",
            "3: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV \"db_password\") (line 3)",
        ]
    );
}

#[test]
fn copy_ignored_file() {
    let ignore = DockerIgnore::parse("secrets\n*.log\n").unwrap();
    let setup = Setup { ignore, ..Setup::default() };
    let text = "FROM scratch AS a\nCOPY ./secrets/key.pem app.js /\nADD debug.log /\nFROM scratch\nCOPY --from=a /debug.log /\nCOPY . /\n";
    assert_eq!(
        found_with(text, &setup),
        [
            "2: CopyIgnoredFile: Attempting to Copy file \"secrets/key.pem\" that is excluded by .dockerignore (line 2)",
            "3: CopyIgnoredFile: Attempting to Add file \"debug.log\" that is excluded by .dockerignore (line 3)",
        ]
    );
    // Exclusions make it impossible to judge; `*` excludes the root itself.
    let setup = Setup { ignore: DockerIgnore::parse("*\n!app.js\n").unwrap(), ..Setup::default() };
    assert!(found_with("FROM scratch\nCOPY x /\n", &setup).is_empty());
    let setup = Setup { ignore: DockerIgnore::parse("*\n").unwrap(), ..Setup::default() };
    assert_eq!(
        found_with("FROM scratch\nCOPY . /\n", &setup),
        ["2: CopyIgnoredFile: Attempting to Copy file \".\" that is excluded by .dockerignore (line 2)"]
    );
    let setup = Setup { ignore: DockerIgnore::parse(".*\n").unwrap(), ..Setup::default() };
    assert!(found_with("FROM scratch\nCOPY . /\n", &setup).is_empty());
}

#[test]
fn expose_rules() {
    assert_eq!(
        found("FROM scratch\nEXPOSE 80/TcP 8080/tcp 127.0.0.1:53:53/udp 5000:5000 9000\n"),
        [
            "2: ExposeProtoCasing: Defined protocol '80/TcP' in EXPOSE instruction should be lowercase (line 2)",
            "2: ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:53:53/udp' (line 2)",
            "2: ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '5000:5000' (line 2)",
        ]
    );
}

#[test]
fn definition_descriptions_are_experimental() {
    let text = "# check=experimental=InvalidDefinitionDescription\n# the version\nARG VERSION=1\n# base is where it starts\nFROM scratch AS base\n# Base is not base\nFROM scratch AS other\n# these two\nARG A B\n#\nARG C\n# A and B\nARG A B\n";
    assert_eq!(
        found(text),
        [
            "3: InvalidDefinitionDescription: Comment for ARG should follow the format: `# VERSION <description>` (line 3)",
            "7: InvalidDefinitionDescription: Comment for FROM should follow the format: `# other <description>` (line 7)",
            "9: InvalidDefinitionDescription: Comment for ARG should follow the format: `# <arg_key> <description>` (line 9)",
        ]
    );
    none("# the version\nARG VERSION=1\nFROM scratch\n");
}

#[test]
fn the_directive_and_comments_skip_rules() {
    let text = "#check=skip=ConsistentInstructionCasing\nFROM scratch as base\ncopy a /\n";
    assert_eq!(found(text), ["2: FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)"]);
    none("#check=skip=ConsistentInstructionCasing,FromAsCasing\nFROM scratch as base\ncopy a /\n");
    none("# check=skip=all\nFROM scratch as base\ncopy a /\n");
    none("FROM scratch\n# check=skip=JSONArgsRecommended\nCMD run me\n");
    // The build arg replaces the directive.
    let args = Setup {
        build_args: BTreeMap::from([(BUILD_ARG.to_string(), "skip=ConsistentInstructionCasing".to_string())]),
        ..Setup::default()
    };
    assert_eq!(found_with("#check=skip=all\nFROM scratch as base\ncopy a /\n", &args).len(), 1);
    // A comment does not skip the rules judged over the whole file.
    assert_eq!(found("FROM scratch AS a\n# check=skip=DuplicateStageName\nFROM scratch AS scratch\n").len(), 1);
}

#[test]
fn before_and_after_the_base_is_known() {
    let text = "FROM busybox AS app\nWORKDIR $APPDIR\nENV secret_token=1\nCOPY $HOME/x /\nCMD run\nFROM scratch\nCOPY --from=app / /\nCOPY $nope /\n";
    let known = Setup { base_env: vec![("APPDIR".into(), "/srv".into())], ..Setup::default() };
    let all = found_with(text, &known);
    assert_eq!(
        all,
        [
            "3: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV \"secret_token\") (line 3)",
            "4: UndefinedVar: Usage of undefined variable '$HOME' (line 4)",
            "5: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 5)",
            "8: UndefinedVar: Usage of undefined variable '$nope' (line 8)",
        ]
    );
    // Before the base is resolved: what does not depend on it, and everything of scratch stages.
    let before = report(text, &Setup { unknown: true, ..known.clone() });
    let shown: Vec<String> = before.findings.iter().map(|f| format!("{}: {}", f.line, f.short())).collect();
    assert_eq!(shown, [all[0].clone(), all[3].clone()]);
    assert_eq!(before.unknown_bases, [0]);
    // Once it is: exactly the rest.
    let df = parse(Path::new("Dockerfile"), text).unwrap();
    let config = CheckConfig::default();
    let platforms = platforms();
    let ignore = DockerIgnore::default();
    let args = BTreeMap::new();
    let opts = CheckOptions {
        config: &config,
        build_args: &args,
        target: None,
        platforms: &platforms,
        dockerignore: &ignore,
        all_stages: false,
    };
    let plan = crate::dockerfile::plan(&df, None, &args, &platforms).unwrap();
    let base = BaseInfo { env: known.base_env.clone(), shell: false };
    let after: Vec<String> =
        check_base(&df, &opts, &plan, 0, &base).iter().map(|f| format!("{}: {}", f.line, f.short())).collect();
    assert_eq!(after, [all[1].clone(), all[2].clone()]);
}

#[test]
fn base_image_platform() {
    let df = parse(Path::new("Dockerfile"), "FROM busybox\n").unwrap();
    let p = |s: &str| Platform::parse_exact(s).unwrap();
    let f = base_platform(&df, &CheckConfig::default(), 0, "busybox", &p("linux/amd64"), &p("linux/arm64/v8")).unwrap();
    assert_eq!(
        f.short(),
        "InvalidBaseImagePlatform: Base image busybox was pulled with platform \"linux/arm64\", expected \"linux/amd64\" for current build (line 1)"
    );
    assert_eq!(f.rule.url, None);
    assert!(
        base_platform(&df, &CheckConfig::default(), 0, "busybox", &p("linux/arm64"), &p("linux/arm64/v8")).is_none()
    );
}

#[test]
fn a_file_with_nothing_to_say() {
    none(
        "# syntax=docker/dockerfile:1\nARG VERSION=1.36\nFROM busybox:${VERSION} AS build\nWORKDIR /src\nCOPY . .\nRUN make\n\nFROM scratch\nCOPY --from=build /src/app /app\nENTRYPOINT [\"/app\"]\n",
    );
}
