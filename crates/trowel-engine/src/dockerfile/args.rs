//! ARG visibility: the global scope (ARGs before the first FROM plus the predefined platform
//! ARGs) and the per-stage scope the build engine updates as it executes ARG instructions (a
//! stage built on another stage inherits that stage's declared ARGs, over its own target
//! platform's global values).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::error::DockerfileError;
use super::expand::{Overlay, Vars};
use super::lex::Lexer;
use super::types::{Instruction, InstructionKind};
use crate::image::manifest::Platform;

/// ARGs set automatically in the global scope. A stage sees them only after declaring them
/// (`ARG TARGETARCH`). `TARGETSTAGE` is the stage the build is for (see [`target_stage`]).
pub const PREDEFINED_ARGS: [&str; 9] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETSTAGE",
];

/// The value of `TARGETSTAGE`, as BuildKit's dockerfile2llb sets it: the `--target` stage as
/// given, else the last stage's name, else `default` (a last stage without a name).
pub fn target_stage(target: Option<&str>, last_stage_name: Option<&str>) -> String {
    target.or(last_stage_name).filter(|t| !t.is_empty()).unwrap_or("default").to_string()
}

/// Proxy build args: passed to RUN without being declared, and never reported unused.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The platforms behind the predefined ARGs: `target` is what the image is built for, `build`
/// what the build runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformArgs {
    pub target: Platform,
    pub build: Platform,
}

impl PlatformArgs {
    /// Building on and for the host platform.
    pub fn host() -> PlatformArgs {
        PlatformArgs { target: Platform::host(), build: Platform::host() }
    }

    /// The predefined ARG values. `arm64`'s default `v8` variant is left out, as containerd
    /// normalises it.
    pub fn values(&self) -> Vec<(&'static str, String)> {
        let parts = |p: &Platform| {
            let variant = match (p.architecture.as_str(), p.variant.as_deref()) {
                ("arm64", Some("v8")) | (_, None) => String::new(),
                (_, Some(v)) => v.to_string(),
            };
            let mut full = format!("{}/{}", p.os, p.architecture);
            if !variant.is_empty() {
                full.push('/');
                full.push_str(&variant);
            }
            (full, p.os.clone(), p.architecture.clone(), variant)
        };
        let (tp, tos, tarch, tvar) = parts(&self.target);
        let (bp, bos, barch, bvar) = parts(&self.build);
        vec![
            ("TARGETPLATFORM", tp),
            ("TARGETOS", tos),
            ("TARGETARCH", tarch),
            ("TARGETVARIANT", tvar),
            ("BUILDPLATFORM", bp),
            ("BUILDOS", bos),
            ("BUILDARCH", barch),
            ("BUILDVARIANT", bvar),
        ]
    }
}

/// Computes the global ARG values: the predefined ARGs (`TARGETSTAGE` is `target_stage`), then
/// each ARG before the first FROM in order (a `--build-arg` wins over the default; defaults may
/// use earlier global ARGs). Returns the values and the names declared.
pub(crate) fn global_scope(
    global_args: &[Instruction],
    build_args: &BTreeMap<String, String>,
    platforms: &PlatformArgs,
    target_stage: &str,
    escape: char,
) -> Result<(BTreeMap<String, String>, BTreeSet<String>), DockerfileError> {
    let mut values = BTreeMap::new();
    for (name, value) in platforms.values().into_iter().chain([("TARGETSTAGE", target_stage.to_string())]) {
        values.insert(name.to_string(), build_args.get(name).cloned().unwrap_or(value));
    }
    let mut declared = BTreeSet::new();
    let lex = Lexer::new(escape);
    for instruction in global_args {
        let InstructionKind::Arg(pairs) = &instruction.kind else { continue };
        for (name, default) in pairs {
            declared.insert(name.clone());
            let value = match (build_args.get(name), default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(lex.process_word(d, &values).map_err(|e| instruction.error(e))?),
                (None, None) => None,
            };
            if let Some(v) = value {
                values.insert(name.clone(), v);
            }
        }
    }
    Ok((values, declared))
}

/// The ARGs a stage has declared so far, with Docker's rules for their values.
///
/// The engine creates one per stage ([`Plan::arg_scope_for`](super::Plan::arg_scope_for); a
/// stage built `FROM` another stage starts with that stage's declared ARGs, see
/// [`inherit`](ArgScope::inherit)) and calls [`apply`](ArgScope::apply) (or [`declare`](ArgScope::declare))
/// for every ARG instruction. A name's value is the `--build-arg` if given, else the ARG's
/// default, else the global value (global ARG or predefined platform ARG), else the value it
/// already had; an undeclared name is not visible at all.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ArgScope {
    build_args: BTreeMap<String, String>,
    global: BTreeMap<String, String>,
    /// Declared names in first-declaration order, with their current value.
    declared: Vec<(String, Option<String>)>,
    used: BTreeSet<String>,
}

impl ArgScope {
    /// A fresh stage scope over the given global values and `--build-arg`s.
    pub fn new(global: BTreeMap<String, String>, build_args: BTreeMap<String, String>) -> ArgScope {
        ArgScope { build_args, global, declared: Vec::new(), used: BTreeSet::new() }
    }

    /// The value an ARG instruction gives `name` itself, as BuildKit's history records it: the
    /// `--build-arg`, else `default` (the instruction's expanded default), else the global
    /// value; `None` when it only keeps the one the name had.
    pub fn given(&self, name: &str, default: Option<&str>) -> Option<String> {
        self.build_args
            .get(name)
            .cloned()
            .or_else(|| default.map(str::to_string))
            .or_else(|| self.global.get(name).cloned())
    }

    /// Declares `name` with an already expanded default; returns the value it now has.
    pub fn declare(&mut self, name: &str, default_expanded: Option<String>) -> Option<String> {
        if self.build_args.contains_key(name) {
            self.used.insert(name.to_string());
        }
        let value = self.given(name, default_expanded.as_deref());
        match self.declared.iter_mut().find(|(n, _)| n == name) {
            // Declared again with nothing to give it a value: it keeps the one it has (BuildKit
            // leaves the variable in the build state untouched), also when the first
            // declaration was in the stage this one is built on.
            Some(entry) if value.is_none() => return entry.1.clone(),
            Some(entry) => entry.1 = value.clone(),
            None => self.declared.push((name.to_string(), value.clone())),
        }
        value
    }

    /// Executes an ARG instruction: declares its names in order and returns each with its
    /// resulting value. A default is expanded (against `vars` plus the ARGs declared before it on
    /// the same line) only when no `--build-arg` replaces it, as in BuildKit. `vars` is the
    /// stage's current environment (ENV and earlier ARGs).
    pub fn apply(
        &mut self,
        instruction: &Instruction,
        vars: &dyn Vars,
        escape: char,
    ) -> Result<Vec<(String, Option<String>)>, DockerfileError> {
        let InstructionKind::Arg(pairs) = &instruction.kind else {
            return Err(instruction.error("internal error: not an ARG instruction"));
        };
        let lex = Lexer::new(escape);
        let mut line = BTreeMap::new();
        let mut out = Vec::with_capacity(pairs.len());
        for (name, default) in pairs {
            let expanded = match default {
                Some(d) if !self.build_args.contains_key(name) => {
                    Some(lex.process_word(d, &Overlay { top: &line, base: vars }).map_err(|e| instruction.error(e))?)
                }
                _ => None,
            };
            let value = self.declare(name, expanded);
            if let Some(v) = &value {
                line.insert(name.clone(), v.clone());
            }
            out.push((name.clone(), value));
        }
        Ok(out)
    }

    /// This scope (a fresh one, over the target platform's global values) for a stage built
    /// `FROM` the stage whose scope at its end is `base`: it has `base`'s declared ARGs and
    /// their values, but keeps its own global values for what it declares itself. In a build
    /// for several platforms the base stage may be shared by every target and have the first
    /// target's global values; BuildKit converts the Dockerfile once per target, so a child's
    /// `ARG TARGETARCH` takes its own target's value (dispatchArg reads `opt.globalArgs`) and
    /// only the base's declared build args carry over (`d.buildArgs = append(…,
    /// d.base.buildArgs...)`).
    pub fn inherit(&mut self, base: &ArgScope) {
        self.declared.clone_from(&base.declared);
        self.used.clone_from(&base.used);
    }

    /// The value of a declared ARG (`None` if undeclared or without value).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.declared.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    /// Whether the stage has declared `name`.
    pub fn is_declared(&self, name: &str) -> bool {
        self.declared.iter().any(|(n, _)| n == name)
    }

    /// Declared names with their values, in declaration order.
    pub fn declared(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.declared.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// The variables RUN sees from ARGs: declared ARGs that have a value, then proxy
    /// `--build-arg`s, which need no declaration.
    pub fn run_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> =
            self.declared.iter().filter_map(|(n, v)| v.as_ref().map(|v| (n.clone(), v.clone()))).collect();
        for proxy in PROXY_ARGS {
            if let Some(v) = self.build_args.get(proxy)
                && !self.is_declared(proxy)
            {
                env.push((proxy.to_string(), v.clone()));
            }
        }
        env
    }

    /// The `--build-arg` names this scope has consumed (proxy args count as consumed).
    pub fn used_build_args(&self) -> BTreeSet<String> {
        let mut used = self.used.clone();
        used.extend(PROXY_ARGS.iter().filter(|p| self.build_args.contains_key(**p)).map(|p| p.to_string()));
        used
    }
}

/// `--build-arg` values may carry credentials (a proxy URL with a password, a token): Debug
/// output shows their names only, and hides every value that came from one.
pub(crate) fn redact<'a>(
    values: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    build_args: &BTreeMap<String, String>,
) -> Vec<(&'a str, Option<&'a str>)> {
    values.map(|(k, v)| (k, if build_args.contains_key(k) { v.map(|_| "<redacted>") } else { v })).collect()
}

impl std::fmt::Debug for ArgScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = &self.build_args;
        f.debug_struct("ArgScope")
            .field("build_args", &b.keys().collect::<Vec<_>>())
            .field("global", &redact(self.global.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))), b))
            .field("declared", &redact(self.declared(), b))
            .field("used", &self.used)
            .finish()
    }
}

impl Vars for ArgScope {
    fn get(&self, name: &str) -> Option<String> {
        self.value(name).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::ArgScope;

    /// What an ARG line gives a name itself (its history entry), against what the name has.
    #[test]
    fn the_value_an_arg_line_gives() {
        let global = [("G".to_string(), "g".to_string())].into();
        let build = [("B".to_string(), "b".to_string())].into();
        let mut s = ArgScope::new(global, build);
        s.declare("V", Some("1".into()));
        assert_eq!(s.given("B", Some("default")), Some("b".into()), "a --build-arg wins");
        assert_eq!(s.given("V", Some("2")), Some("2".into()));
        assert_eq!(s.given("G", None), Some("g".into()), "the global value");
        // `ARG V` again: it keeps 1, but the line gives it nothing (BuildKit writes `ARG V`).
        assert_eq!((s.given("V", None), s.declare("V", None)), (None, Some("1".into())));
    }
}
