//! Why a step missed the cache, in words a person can act on.
//!
//! A miss is explained by comparing the step's [`KeyComponents`] with those stored in the most
//! recent cache entry for the same step of the same Dockerfile (found through the step's pointer
//! tag, see [`super::registry`]). The step's own inputs are checked first (variables,
//! instruction text, source files, source stages), then the chain of steps before it.

use std::collections::{BTreeMap, BTreeSet};

use crate::cache::key::{FileEntry, KeyComponents, Var, VarKind};

/// What the cache knew about a step before this build.
#[derive(Debug, Clone)]
pub enum Previous {
    /// No entry was ever stored for this step.
    None,
    /// The exact key was found but is older than `--cache-ttl`.
    Expired { created: String, ttl: String },
    /// The most recent entry for this step, with other components.
    Entry(Box<KeyComponents>),
}

/// Explains a miss. `missed` maps keys of steps of *this* build that missed to their line.
pub fn explain(prev: &Previous, cur: &KeyComponents, missed: &BTreeMap<String, usize>) -> String {
    let p = match prev {
        Previous::None => return "no cache entry for this step yet".to_string(),
        Previous::Expired { created, ttl } => {
            return format!("cached layer expired (created {created}, older than --cache-ttl {ttl})");
        }
        Previous::Entry(p) => p,
    };
    // Variables first: a changed ARG also changes the expanded text of the steps using it, and
    // the ARG is the cause worth naming.
    let vars = var_changes(&p.vars, &cur.vars);
    if !vars.is_empty() {
        return vars.join(", ");
    }
    if p.instruction != cur.instruction {
        return "instruction text changed".to_string();
    }
    if p.linked != cur.linked {
        // Same text, another destination: WORKDIR moved under a relative `--link` destination.
        return match (&p.linked, &cur.linked) {
            (Some(a), Some(b)) => format!("WORKDIR changed: destination {a} → {b}"),
            _ => "instruction text changed".to_string(),
        };
    }
    if p.files != cur.files {
        return files_changed(&cur.instruction, &p.files, &cur.files);
    }
    if p.sources != cur.sources {
        return sources_changed(&p.sources, &cur.sources);
    }
    if p.parent != cur.parent {
        return chain_changed(p, cur, missed);
    }
    if p.layer_format != cur.layer_format {
        return format!("layer format changed ({} → {})", p.layer_format, cur.layer_format);
    }
    if p.platform != cur.platform {
        return format!("platform changed ({} → {})", p.platform, cur.platform);
    }
    if p.version != cur.version {
        return format!("cache format changed (version {} → {})", p.version, cur.version);
    }
    "cache entry differs (no component changed: the entry was written by another tool)".to_string()
}

fn show(v: &Option<String>) -> String {
    match v {
        Some(s) if s.is_empty() => "\"\"".to_string(),
        Some(s) => s.clone(),
        None => "(unset)".to_string(),
    }
}

fn kind(v: &Var) -> &'static str {
    match v.kind {
        VarKind::Arg => "ARG",
        VarKind::Env => "ENV",
    }
}

fn var_changes(prev: &BTreeMap<String, Var>, cur: &BTreeMap<String, Var>) -> Vec<String> {
    let names: BTreeSet<&String> = prev.keys().chain(cur.keys()).collect();
    let mut out = Vec::new();
    for n in names {
        match (prev.get(n), cur.get(n)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => out.push(format!("{} {n} {} → {}", kind(b), show(&a.value), show(&b.value))),
            (None, Some(b)) => out.push(format!("{} {n} (unset) → {}", kind(b), show(&b.value))),
            (Some(a), None) => out.push(format!("{} {n} {} → (unset)", kind(a), show(&a.value))),
            (None, None) => {}
        }
    }
    out
}

fn list(names: &[&str]) -> String {
    const MAX: usize = 5;
    let mut s = names.iter().take(MAX).copied().collect::<Vec<_>>().join(", ");
    if names.len() > MAX {
        s.push_str(&format!(", … {} more", names.len() - MAX));
    }
    s
}

/// `COPY src/: 2 files changed (src/lib.rs, src/main.rs), 1 added (src/new.rs)`.
fn files_changed(instruction: &str, prev: &[FileEntry], cur: &[FileEntry]) -> String {
    let p: BTreeMap<&str, &FileEntry> = prev.iter().map(|f| (f.path.as_str(), f)).collect();
    let c: BTreeMap<&str, &FileEntry> = cur.iter().map(|f| (f.path.as_str(), f)).collect();
    let changed: Vec<&str> = c.iter().filter(|(k, v)| p.get(*k).is_some_and(|pv| pv != *v)).map(|(k, _)| *k).collect();
    let added: Vec<&str> = c.keys().filter(|k| !p.contains_key(*k)).copied().collect();
    let removed: Vec<&str> = p.keys().filter(|k| !c.contains_key(*k)).copied().collect();
    let mut parts = Vec::new();
    if !changed.is_empty() {
        let n = changed.len();
        parts.push(format!("{n} file{} changed ({})", if n == 1 { "" } else { "s" }, list(&changed)));
    }
    if !added.is_empty() {
        parts.push(format!("{} added ({})", added.len(), list(&added)));
    }
    if !removed.is_empty() {
        parts.push(format!("{} removed ({})", removed.len(), list(&removed)));
    }
    format!("{}: {}", source_label(instruction), parts.join(", "))
}

/// `COPY --chown=x src/ lib/ /app/` → `COPY src/ lib/`: the keyword and the source arguments.
fn source_label(instruction: &str) -> String {
    let mut words: Vec<&str> = instruction.split_whitespace().collect();
    let keyword = if words.is_empty() { "COPY" } else { words.remove(0) };
    let args: Vec<&str> = words.into_iter().filter(|w| !w.starts_with("--")).collect();
    let sources = if args.len() > 1 { &args[..args.len() - 1] } else { &args[..] };
    format!("{keyword} {}", sources.join(" "))
}

fn sources_changed(prev: &BTreeMap<String, String>, cur: &BTreeMap<String, String>) -> String {
    let mut out = Vec::new();
    for (k, v) in cur {
        match prev.get(k) {
            Some(pv) if pv == v => {}
            Some(pv) => match (k.strip_prefix("image:"), k.strip_prefix("git:")) {
                (Some(img), _) => out.push(format!("image {img} now {} (was {})", short(v), short(pv))),
                (_, Some(repo)) => out.push(format!("git {repo} now {} (was {})", commit(v), commit(pv))),
                _ => out.push(format!("{} changed", k.replacen(':', " ", 1))),
            },
            None => out.push(format!("{} is new", k.replacen(':', " ", 1))),
        }
    }
    if out.is_empty() { "source stages or images changed".to_string() } else { out.join(", ") }
}

/// A commit id as git abbreviates it in messages (12 digits).
fn commit(s: &str) -> &str {
    &s[..12.min(s.len())]
}

fn short(s: &str) -> String {
    if s.starts_with("sha256:") && s.len() > 19 { format!("{}…", &s[..19]) } else { s.to_string() }
}

fn chain_changed(p: &KeyComponents, cur: &KeyComponents, missed: &BTreeMap<String, usize>) -> String {
    // The first link of the chain that differs is where the change came in.
    let first = cur.chain.iter().enumerate().find(|(i, link)| p.chain.get(*i).is_none_or(|pl| pl.key != link.key));
    match first {
        Some((0, link)) => base_changed(p, cur, &link.instruction),
        Some((_, link)) => match missed.get(&link.key) {
            Some(line) => format!("parent step missed (line {line})"),
            None => format!("parent step changed (line {}: {})", link.line, link.instruction),
        },
        None => match missed.get(&cur.parent) {
            Some(line) => format!("parent step missed (line {line})"),
            None => "parent step changed".to_string(),
        },
    }
}

fn base_changed(p: &KeyComponents, cur: &KeyComponents, from: &str) -> String {
    match (&p.base, &cur.base) {
        (Some(pb), Some(cb)) if pb.reference == cb.reference => match (&pb.digest, &cb.digest) {
            (Some(a), Some(b)) if a != b => {
                format!("base image {} now {} (was {})", cb.reference, short(b.as_str()), short(a.as_str()))
            }
            // Same image at the bottom: the stage this one is built FROM changed.
            _ => format!("base stage changed ({from})"),
        },
        (Some(pb), Some(cb)) => format!("base image changed: {} (was {})", cb.reference, pb.reference),
        _ => "base image changed".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::{BaseInfo, ChainLink, FORMAT_VERSION};
    use crate::digest::Digest;

    fn comps(instr: &str) -> KeyComponents {
        KeyComponents {
            version: FORMAT_VERSION,
            platform: "linux/amd64".into(),
            layer_format: "gzip".into(),
            parent: "p0".into(),
            linked: None,
            instruction: instr.into(),
            vars: BTreeMap::new(),
            files: vec![],
            sources: BTreeMap::new(),
            line: 5,
            chain: vec![ChainLink { line: 1, instruction: "FROM b".into(), key: "p0".into() }],
            base: Some(BaseInfo { reference: "localhost:5000/busybox:1.35".into(), digest: Some(Digest::of(b"old")) }),
        }
    }

    fn file(p: &str, content: &[u8]) -> FileEntry {
        FileEntry {
            path: p.into(),
            kind: 'f',
            mode: 0o644,
            uid: 0,
            gid: 0,
            link: None,
            digest: Some(Digest::of(content)),
        }
    }

    #[test]
    fn wording() {
        let none = BTreeMap::new();
        let cur = comps("RUN make");
        assert_eq!(explain(&Previous::None, &cur, &none), "no cache entry for this step yet");
        let prev = Previous::Entry(Box::new(comps("RUN make all")));
        assert_eq!(explain(&prev, &cur, &none), "instruction text changed");

        let mut a = comps("RUN make");
        a.vars.insert("VERSION".into(), Var { kind: VarKind::Arg, value: Some("1.0".into()) });
        let mut b = comps("RUN make");
        b.vars.insert("VERSION".into(), Var { kind: VarKind::Arg, value: Some("2.0".into()) });
        assert_eq!(explain(&Previous::Entry(Box::new(a)), &b, &none), "ARG VERSION 1.0 → 2.0");

        let mut a = comps("COPY src/ /app/");
        a.files = vec![file("src/lib.rs", b"1"), file("src/main.rs", b"1"), file("src/old.rs", b"1")];
        let mut b = comps("COPY src/ /app/");
        b.files = vec![file("src/lib.rs", b"2"), file("src/main.rs", b"2"), file("src/new.rs", b"1")];
        assert_eq!(
            explain(&Previous::Entry(Box::new(a)), &b, &none),
            "COPY src/: 2 files changed (src/lib.rs, src/main.rs), 1 added (src/new.rs), 1 removed (src/old.rs)"
        );
    }

    #[test]
    fn linked_steps_and_git_sources() {
        let none = BTreeMap::new();
        let mut a = comps("COPY --link a.txt rel/");
        a.parent = String::new();
        a.linked = Some("/srv/rel/".into());
        let mut b = a.clone();
        b.linked = Some("/app/rel/".into());
        assert_eq!(
            explain(&Previous::Entry(Box::new(a.clone())), &b, &none),
            "WORKDIR changed: destination /srv/rel/ → /app/rel/"
        );
        // A linked step has no parent to blame: a changed chain before it is not a reason.
        let mut c = a.clone();
        c.chain.push(ChainLink { line: 2, instruction: "RUN x".into(), key: "other".into() });
        c.files = vec![file("a.txt", b"2")];
        assert_eq!(explain(&Previous::Entry(Box::new(a)), &c, &none), "COPY a.txt: 1 added (a.txt)");

        let mut g1 = comps("ADD https://h/r.git#main /src");
        g1.sources.insert("git:https://h/r.git#main".into(), "1111111111112222".into());
        let mut g2 = g1.clone();
        g2.sources.insert("git:https://h/r.git#main".into(), "3333333333334444".into());
        assert_eq!(
            explain(&Previous::Entry(Box::new(g1)), &g2, &none),
            "git https://h/r.git#main now 333333333333 (was 111111111111)"
        );
    }

    #[test]
    fn chain_reasons() {
        let mut prev = comps("RUN make");
        prev.parent = "k-old".into();
        prev.chain.push(ChainLink { line: 3, instruction: "COPY . /src".into(), key: "k-old".into() });
        let mut cur = comps("RUN make");
        cur.parent = "k-new".into();
        cur.chain.push(ChainLink { line: 3, instruction: "COPY . /src".into(), key: "k-new".into() });
        let mut missed = BTreeMap::new();
        missed.insert("k-new".to_string(), 3);
        assert_eq!(explain(&Previous::Entry(Box::new(prev.clone())), &cur, &missed), "parent step missed (line 3)");
        assert_eq!(
            explain(&Previous::Entry(Box::new(prev)), &cur, &BTreeMap::new()),
            "parent step changed (line 3: COPY . /src)"
        );

        let mut prev = comps("RUN make");
        prev.parent = "root-old".into();
        prev.chain[0].key = "root-old".into();
        let mut cur = comps("RUN make");
        cur.parent = "root-new".into();
        cur.chain[0].key = "root-new".into();
        cur.base.as_mut().unwrap().digest = Some(Digest::of(b"new"));
        let msg = explain(&Previous::Entry(Box::new(prev)), &cur, &BTreeMap::new());
        assert_eq!(
            msg,
            format!(
                "base image localhost:5000/busybox:1.35 now {}… (was {}…)",
                &Digest::of(b"new").as_str()[..19],
                &Digest::of(b"old").as_str()[..19]
            )
        );
    }
}
