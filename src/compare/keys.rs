//! Why a step's cache key differs between two builds, in the words a cache miss is explained
//! with.
//!
//! The engine's explainer (`trowel_engine::cache::explain`) already says how a step's key
//! components differ from an earlier entry's: which ARG or ENV, which source files, which
//! source stage or image, which step of the chain before it. Build A's recorded components
//! are that earlier entry, build B's the current ones, so the two builds are compared with the
//! very words a miss in B's log would use. The program sits above the engine, so nothing here
//! imports back up a layer; the recorded components are turned into the engine's type through
//! their serialised form, which the contract guarantees is the same (`engine/report.rs` tests
//! it). Chain links in traces carry no inputs of uncached steps, so a chain difference is named
//! by its step ("parent step changed (line 3: COPY …)"); that step's own row says why. A child
//! stage's step whose base stage changed is told why by the comparison, as a build is by its
//! base stage's miss: the first step of that stage whose key differs ([`verdict`]'s `base`),
//! which names the file a COPY ending the base stage changed even when no cache entry of that
//! COPY exists to say so.
//!
//! A step without a key (a FROM, a config-only step, a build without `--cache`) is compared by
//! what the trace does record: the base image a FROM resolved to, or the expanded instruction.

use std::collections::BTreeMap;

use trowel_engine::cache::explain::{Around, Earlier, Missed, Previous, edited, explain_in};
use trowel_engine::cache::key::KeyComponents as EngineComponents;
use trowel_events::state::{BuildState, StepState, StepView};
use trowel_events::{BaseSource, KeyComponents};

/// What the two builds' keys (or, without keys, their recorded inputs) say about a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerdict {
    /// Both builds looked the step up with the same key.
    Equal { key: String },
    /// The keys (or the inputs recorded without keys) differ: every difference, in words.
    Differ { reasons: Vec<String> },
    /// Nothing recorded differs, but there is no key to compare: why, and what was compared.
    NoKey { why: String },
}

impl KeyVerdict {
    pub fn differs(&self) -> bool {
        matches!(self, KeyVerdict::Differ { .. })
    }
}

/// The recorded components as the engine's explainer takes them.
fn engine_components(c: &KeyComponents) -> Result<EngineComponents, String> {
    serde_json::to_value(c).and_then(serde_json::from_value).map_err(|e| e.to_string())
}

/// Why `b`'s components differ from `a`'s, as a miss of `b` against an entry made by `a`
/// would be explained. `base`: why the stage `b`'s is built `FROM` differs, when it does.
pub fn reasons(a_key: &str, a: &KeyComponents, b: &KeyComponents, base: Option<&Missed>) -> Vec<String> {
    match (engine_components(a), engine_components(b)) {
        (Ok(ea), Ok(eb)) => {
            let entry = Earlier { key: a_key.to_string(), components: Box::new(ea), created: None };
            let around = Around { base: base.cloned(), ..Around::default() };
            explain_in(&Previous::Entries(vec![entry]), &eb, &BTreeMap::new(), &around).reasons
        }
        (Err(e), _) | (_, Err(e)) => vec![format!("key components unreadable: {e}")],
    }
}

fn short(d: &str) -> String {
    if d.starts_with("sha256:") && d.len() > 19 { format!("{}…", &d[..19]) } else { d.to_string() }
}

/// A stage's base as the trace recorded it: (what, digest).
fn base(s: &BuildState, stage: usize) -> Option<(String, Option<String>)> {
    Some(match s.stage(stage)?.source.as_ref()? {
        BaseSource::Scratch => ("scratch".to_string(), None),
        BaseSource::Registry { reference, manifest_digest, .. }
        | BaseSource::CacheDir { reference, manifest_digest } => {
            (format!("base image {reference}"), Some(manifest_digest.to_string()))
        }
        BaseSource::Stage { index } => {
            let name = s.stage(*index).map(|st| st.label()).unwrap_or_else(|| format!("stage {index}"));
            (format!("base stage {name}"), None)
        }
    })
}

/// A FROM step: the base each build resolved.
fn from_verdict(sa: &BuildState, a: &StepView, sb: &BuildState, b: &StepView) -> KeyVerdict {
    match (base(sa, a.id.stage), base(sb, b.id.stage)) {
        (Some((wa, da)), Some((wb, db))) if wa == wb && da == db => KeyVerdict::NoKey {
            why: format!("same {wb}{}", db.map(|d| format!(" ({})", short(&d))).unwrap_or_default()),
        },
        (Some((wa, da)), Some((wb, db))) if wa == wb => KeyVerdict::Differ {
            reasons: vec![format!(
                "{wb} now {} (was {})",
                db.as_deref().map(short).unwrap_or_else(|| "(unknown)".into()),
                da.as_deref().map(short).unwrap_or_else(|| "(unknown)".into())
            )],
        },
        (Some((wa, _)), Some((wb, _))) => KeyVerdict::Differ { reasons: vec![format!("{wb} (was {wa})")] },
        _ => KeyVerdict::NoKey { why: "the base was not resolved in both builds".to_string() },
    }
}

/// The value an ARG step gave `name`, as the first later step of its stage whose key records
/// the variable saw it (an ARG step has no key; `--build-arg` values are only in the keys of
/// the steps using them). `None`: no later key records it.
fn arg_value(s: &BuildState, at: &StepView, name: &str) -> Option<Option<String>> {
    let stage = s.stage(at.id.stage)?;
    stage.steps.iter().filter(|id| id.step > at.id.step).filter_map(|id| s.step(*id)).find_map(|st| {
        let v = st.cache.as_ref()?.components.vars.get(name)?;
        (v.kind == trowel_events::VarKind::Arg).then(|| v.value.clone())
    })
}

/// An ARG line whose value differs between the builds (a changed `--build-arg`), in the
/// explainer's words (`ARG VERSION 1.0 → 2.0`).
fn arg_changes(sa: &BuildState, a: &StepView, sb: &BuildState, b: &StepView) -> Vec<String> {
    let show = |v: &Option<String>| match v {
        Some(s) if s.is_empty() => "\"\"".to_string(),
        Some(s) => s.clone(),
        None => "(unset)".to_string(),
    };
    let names = b.source.split_whitespace().skip(1).map(|w| w.split('=').next().unwrap_or(w).to_string());
    names
        .filter_map(|n| match (arg_value(sa, a, &n)?, arg_value(sb, b, &n)?) {
            (x, y) if x != y => Some(format!("ARG {n} {} → {}", show(&x), show(&y))),
            _ => None,
        })
        .collect()
}

/// Compares a paired step's keys, or what is recorded without them. `base`: the first step of
/// the stage this step's is built `FROM` whose key differs, and why ([`Around::base`]).
pub fn verdict(
    sa: &BuildState,
    a: Option<&StepView>,
    sb: &BuildState,
    b: Option<&StepView>,
    base: Option<&Missed>,
) -> KeyVerdict {
    let (Some(a), Some(b)) = (a, b) else {
        return KeyVerdict::NoKey { why: "the step is in one build only".to_string() };
    };
    if let (Some(ca), Some(cb)) = (&a.cache, &b.cache) {
        return if ca.key == cb.key {
            KeyVerdict::Equal { key: cb.key.clone() }
        } else {
            KeyVerdict::Differ { reasons: reasons(&ca.key, &ca.components, &cb.components, base) }
        };
    }
    let skipped = |v: &StepView| v.state == StepState::Skipped;
    if skipped(a) || skipped(b) {
        let which = match (skipped(a), skipped(b)) {
            (true, true) => "both builds",
            (true, false) => "build A",
            _ => "build B",
        };
        return KeyVerdict::NoKey { why: format!("its stage was skipped in {which} (the target does not need it)") };
    }
    if a.keyword == "FROM" && b.keyword == "FROM" && a.id.step == 0 && b.id.step == 0 {
        return from_verdict(sa, a, sb, b);
    }
    if a.keyword == "ARG" && b.keyword == "ARG" {
        let changed = arg_changes(sa, a, sb, b);
        if !changed.is_empty() {
            return KeyVerdict::Differ { reasons: changed };
        }
    }
    let missing = match (&a.cache, &b.cache) {
        (None, None) => "neither build recorded a cache key (no --cache, or a step that is never cached)",
        (None, Some(_)) => "A recorded no cache key for it",
        _ => "B recorded no cache key for it",
    };
    match (&a.expanded, &b.expanded) {
        (Some(ea), Some(eb)) if ea != eb => KeyVerdict::Differ { reasons: vec![edited(ea, eb)] },
        (Some(_), Some(_)) => KeyVerdict::NoKey { why: format!("{missing}; the expanded instruction is the same") },
        _ if a.source != b.source => KeyVerdict::Differ { reasons: vec![edited(&a.source, &b.source)] },
        _ => KeyVerdict::NoKey { why: format!("{missing}; it did not start in both builds") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trowel_events::{ChainLink, KeyFile, Var, VarKind};

    fn comps(version: &str, content: &[u8]) -> KeyComponents {
        KeyComponents {
            version: 1,
            platform: "linux/amd64".into(),
            layer_format: "gzip".into(),
            ignored: None,
            parent: "p".into(),
            linked: None,
            instruction: "COPY app.txt /app/".into(),
            vars: [("VERSION".to_string(), Var { kind: VarKind::Arg, value: Some(version.into()) })].into(),
            files: vec![KeyFile {
                path: "app.txt".into(),
                kind: 'f',
                mode: 0o644,
                uid: 0,
                gid: 0,
                link: None,
                digest: Some(
                    trowel_events::Digest::try_from(trowel_engine::digest::Digest::of(content).to_string()).unwrap(),
                ),
                xattrs: BTreeMap::new(),
                hard_link: None,
            }],
            sources: BTreeMap::new(),
            user: None,
            shell: None,
            line: 4,
            chain: vec![ChainLink { line: 2, instruction: "FROM busybox".into(), key: "p".into() }],
            base: None,
        }
    }

    /// The recorded components reach the engine's explainer intact: every input that differs is
    /// named in its words.
    #[test]
    fn recorded_components_are_explained_in_the_engines_words() {
        assert_eq!(
            reasons("k", &comps("1.0", b"a"), &comps("2.0", b"b"), None),
            vec!["ARG VERSION 1.0 → 2.0".to_string(), "COPY app.txt: 1 file changed (app.txt)".to_string()]
        );
        assert_eq!(
            reasons("k", &comps("1.0", b"a"), &comps("1.0", b"a"), None),
            vec!["cache entry differs (no component changed: the entry was written by another tool)".to_string()],
            "equal components are never compared (equal keys are), but say so if they were"
        );
        // An xattr the trace recorded reaches the explainer too.
        let mut x = comps("1.0", b"a");
        x.files[0].xattrs.insert("user.foo".into(), "sha256:1".into());
        assert_eq!(
            reasons("k", &comps("1.0", b"a"), &x, None),
            vec!["COPY app.txt: 1 file changed (app.txt: xattr user.foo added)"]
        );
    }
}
