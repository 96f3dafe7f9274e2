//! The checks on FROM lines (BuildKit's `validateBaseImagesWithDefaultArgs`, the checks in
//! `buildDispatchStates`, and `validateBaseImagePlatform`): what the global ARGs give a base
//! name with their defaults alone, ARGs a FROM uses without declaring them, and `--platform`
//! values that are redundant or constant. They run on every stage, built or not. Also the error
//! of a base name that is no image reference (`resolveBaseImage`), in the words the build uses.

use std::collections::BTreeMap;

use super::rules;
use super::scope::{self, Env, Origin};
use super::suggest::closest;
use super::{CheckConfig, CheckOptions, Finding, Findings};
use crate::dockerfile::args::target_stage;
use crate::dockerfile::error::DockerfileError;
use crate::dockerfile::types::{Dockerfile, InstructionKind};
use crate::image::manifest::Platform;
use crate::image::platform::{KNOWN_ARCH, KNOWN_OS, normalize, normalize_arch};
use crate::registry::{Reference, RegistryError};

const CLEAN: Origin = Origin::Dockerfile { tainted: false };

/// The ARGs every FROM sees that BuildKit defines (trowel's predefined ones, plus the OS
/// versions and the target stage's name), `--build-arg`s replacing them.
fn predefined(df: &Dockerfile, opts: &CheckOptions) -> Env {
    let mut env = Env::default();
    let target = target_stage(opts.target, df.stages.last().and_then(|s| s.name.as_deref()));
    let mut values: Vec<(&str, String)> = opts.platforms.values();
    values.insert(3, ("BUILDOSVERSION", String::new()));
    values.push(("TARGETOSVERSION", String::new()));
    values.push(("TARGETSTAGE", target));
    for (k, v) in values {
        env.set(k, opts.build_args.get(k).unwrap_or(&v), CLEAN);
    }
    env
}

/// The global scope FROM lines see: the predefined ARGs, then the ARGs before the first FROM
/// (with `build_args`, or with their defaults alone when `None`). Also every global ARG name,
/// set or not.
fn global_scope(
    df: &Dockerfile,
    mut env: Env,
    build_args: Option<&BTreeMap<String, String>>,
) -> Result<(Env, Vec<String>), DockerfileError> {
    let mut declared = Vec::new();
    for ins in &df.global_args {
        let InstructionKind::Arg(pairs) = &ins.kind else { continue };
        for (name, default) in pairs {
            declared.push(name.clone());
            let value = match (build_args.and_then(|b| b.get(name)), default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(scope::word(d, df.escape, &env).0.map_err(|e| ins.error(e))?),
                (None, None) => None,
            };
            if let Some(v) = value {
                env.set(name, &v, CLEAN);
            }
        }
    }
    Ok((env, declared))
}

/// The global ARG values instructions fall back on (an ARG without a default takes its global
/// value), `--build-arg`s applied.
pub(super) fn global_env(df: &Dockerfile, opts: &CheckOptions) -> Env {
    global_scope(df, predefined(df, opts), Some(opts.build_args)).map(|(env, _)| env).unwrap_or_default()
}

/// Every FROM line's checks, in file order. An error is what stops BuildKit's conversion at
/// that FROM (a blank base name, a platform that does not parse).
pub(super) fn check(out: &mut Findings, df: &Dockerfile, opts: &CheckOptions) -> Result<(), DockerfileError> {
    let file = out.config.clone();
    let predefined = predefined(df, opts);
    // InvalidDefaultArgInFrom: the base names the global ARGs' defaults give. BuildKit gives up
    // on this rule (only) when they do not expand. A base name that uses no variable is left
    // to the error below: BuildKit's loop runs on it too, but then says "Default value for ARG
    // 127.0.0.1:/busybox" of a line with no ARG in it, beside the error that stops the build.
    if let Ok((defaults, _)) = global_scope(df, predefined.clone(), None) {
        for stage in &df.stages {
            let InstructionKind::From { image, .. } = &stage.from.kind else { continue };
            let (name, lookups) = scope::word(image, df.escape, &defaults);
            let Ok(name) = name else { break };
            let uses_args = !lookups.matched.is_empty() || !lookups.unmatched.is_empty();
            if uses_args && Reference::parse(&name).is_err() {
                let finding = Finding::at(
                    &rules::INVALID_DEFAULT_ARG_IN_FROM,
                    &stage.from,
                    rules::invalid_default_arg_in_from(image),
                );
                out.report(&file, finding);
            }
        }
    }
    let (global, declared) = global_scope(df, predefined, Some(opts.build_args))?;
    // What a FROM may use: what is set, and every global ARG even without a value.
    let mut known: Vec<&str> = global.keys().chain(declared.iter().map(String::as_str)).collect();
    known.sort_unstable();
    known.dedup();
    // The first base that is neither `scratch`, an earlier stage nor an image reference. BuildKit
    // says so when it resolves the bases, once every FROM's platform was read: it is reported
    // after the errors of this loop.
    let mut bad_reference = None;
    for (i, stage) in df.stages.iter().enumerate() {
        let InstructionKind::From { image, platform, .. } = &stage.from.kind else { continue };
        let config = file.with_comments(&stage.from.written.comments);
        let undeclared = |out: &mut Findings, unmatched: &[String]| {
            for arg in unmatched.iter().filter(|a| !known.contains(&a.as_str())) {
                let message = rules::undefined_arg_in_from(arg, closest(arg, known.iter().copied()));
                out.report(&config, Finding::at(&rules::UNDEFINED_ARG_IN_FROM, &stage.from, message));
            }
        };
        let (name, lookups) = scope::word(image, df.escape, &global);
        undeclared(out, &lookups.unmatched);
        let name = name.map_err(|e| stage.from.error(e))?;
        if name.is_empty() {
            return Err(stage.from.error(format!("base name ({image}) should not be blank")));
        }
        let earlier_stage =
            df.stages[..i].iter().any(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&name)));
        if bad_reference.is_none()
            && !name.eq_ignore_ascii_case("scratch")
            && !earlier_stage
            && let Err(e) = base_reference(&name)
        {
            // For every stage, built or not, as BuildKit's conversion.
            bad_reference = Some(stage.from.error(e));
        }
        let Some(raw) = platform else { continue };
        let (expanded, lookups) = scope::word(raw, df.escape, &global);
        undeclared(out, &lookups.unmatched);
        let value = expanded.as_deref().unwrap_or_default().to_string();
        // `$TARGETPLATFORM` alone, giving what the target platform is anyway.
        let only_target_platform =
            lookups.matched.len() == 1 && lookups.unmatched.is_empty() && lookups.matched[0] == "TARGETPLATFORM";
        if only_target_platform && global.get("TARGETPLATFORM").is_some_and(|(v, _)| v == value) {
            let finding =
                Finding::at(&rules::REDUNDANT_TARGET_PLATFORM, &stage.from, rules::redundant_target_platform(raw));
            out.report(&config, finding);
        }
        // A constant platform is fine in a stage whose name says which platform it is for.
        if lookups.matched.is_empty()
            && lookups.unmatched.is_empty()
            && let Some((os, arch)) = parse_platform(&value)
        {
            let stage_name = stage.name.as_deref().unwrap_or("");
            if !stage_name.contains(&os) && !stage_name.contains(&arch) {
                let message = rules::from_platform_flag_const_disallowed(&value);
                out.report(&config, Finding::at(&rules::FROM_PLATFORM_FLAG_CONST_DISALLOWED, &stage.from, message));
            }
        }
        expanded.map_err(|e| stage.from.error(e))?;
        if value.is_empty() {
            return Err(stage.from.error(format!("empty platform value from expression {raw}")));
        }
        if parse_platform(&value).is_none() {
            return Err(stage.from.error(format!("failed to parse platform {raw}")));
        }
    }
    bad_reference.map_or(Ok(()), Err)
}

/// InvalidBaseImagePlatform: the base image of `stage` (named `image` in its FROM) was
/// resolved for `actual` where the build wanted `expected`. Judged by the file's options.
pub fn base_platform(
    df: &Dockerfile,
    config: &CheckConfig,
    stage: usize,
    image: &str,
    expected: &Platform,
    actual: &Platform,
) -> Option<Finding> {
    let from = &df.stages.get(stage)?.from;
    let (e, a) = (normalize(expected), normalize(actual));
    if (e.os == a.os && e.architecture == a.architecture) || !config.runs(&rules::INVALID_BASE_IMAGE_PLATFORM) {
        return None;
    }
    let message = rules::invalid_base_image_platform(image, &format_all(&e), &format_all(&a));
    Some(Finding::at(&rules::INVALID_BASE_IMAGE_PLATFORM, from, message))
}

/// containerd's `platforms.Parse`, to the OS and architecture: `os/arch[/variant]`, or one
/// known OS (the host's architecture) or one known architecture (the host's OS, Linux here).
fn parse_platform(s: &str) -> Option<(String, String)> {
    let parts: Vec<String> = s.split('/').map(str::to_lowercase).collect();
    let valid = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if parts.is_empty() || parts.len() > 3 || !parts.iter().all(|p| valid(p)) {
        return None;
    }
    let host = Platform::host();
    let os = |o: &str| if o == "macos" { "darwin".to_string() } else { o.to_string() };
    match parts.as_slice() {
        [one] if KNOWN_OS.contains(&os(one).as_str()) => Some((os(one), host.architecture)),
        [one] => {
            let arch = normalize_arch(one);
            KNOWN_ARCH.contains(&arch.as_str()).then(|| ("linux".to_string(), arch))
        }
        [o, a, ..] => Some((os(o), normalize_arch(a))),
        [] => None,
    }
}

/// containerd's `platforms.FormatAll`: `os[(version)]/arch[/variant]`.
fn format_all(p: &Platform) -> String {
    let mut s = p.os.clone();
    if let Some(v) = p.os_version.as_deref().filter(|v| !v.is_empty()) {
        s.push_str(&format!("({v})"));
    }
    s.push('/');
    s.push_str(&p.architecture);
    if let Some(v) = &p.variant {
        s.push('/');
        s.push_str(v);
    }
    s
}

/// The image a FROM names (`name` expanded; neither `scratch` nor an earlier stage), or
/// BuildKit's error for a name that is no image reference (`resolveBaseImage`), with the reason
/// (BuildKit's own for an uppercase or too long name). One wording for `trowel check`, the
/// refusal before a build and a stage's start.
pub fn base_reference(name: &str) -> Result<Reference, String> {
    Reference::parse(name).map_err(|e| {
        let why = match e {
            RegistryError::InvalidReference { reason, .. } => format!(": {reason}"),
            _ => String::new(),
        };
        format!("failed to parse stage name {name:?}: invalid reference format{why}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_as_containerd_reads_them() {
        assert_eq!(parse_platform("linux/amd64"), Some(("linux".into(), "amd64".into())));
        assert_eq!(parse_platform("Linux/x86_64"), Some(("linux".into(), "amd64".into())));
        assert_eq!(parse_platform("arm64"), Some(("linux".into(), "arm64".into())));
        assert_eq!(parse_platform("windows").map(|p| p.0), Some("windows".into()));
        assert_eq!(parse_platform("linux/"), None);
        assert_eq!(parse_platform("nonsense"), None);
        assert_eq!(parse_platform("a/b/c/d"), None);
    }

    #[test]
    fn platform_names_as_the_message_shows_them() {
        let p = |s: &str| Platform::parse_exact(s).unwrap();
        assert_eq!(format_all(&normalize(&p("linux/arm64/v8"))), "linux/arm64");
        assert_eq!(format_all(&normalize(&p("linux/arm/v6"))), "linux/arm/v6");
        let arm = Platform { os: "linux".into(), architecture: "arm".into(), os_version: None, variant: None };
        assert_eq!(format_all(&normalize(&arm)), "linux/arm/v7");
    }
}
