//! Why a step missed the cache, in words a person can act on.
//!
//! A miss is explained against the *closest* earlier entry of the same step of the same
//! Dockerfile: of the entries the step's pointer tag leads to (the newest, and the earlier ones
//! it lists, see [`super::registry`]; a COPY's in this machine's layer store and the cache
//! repository's records together, [`merge`]), those of the same instruction and, when there
//! are any, of the same parent (then only the step's own inputs differ), the one whose inputs
//! differ least. Comparing with the
//! newest alone blames whatever changed last: built with `VERSION=1.0`, then `2.0`, then `1.0`
//! with a changed file, the newest entry differs in the ARG and the file, the first only in the
//! file, which is the real cause. Every input that differs from that entry is named: variables,
//! instruction text, source files, source stages or images, and the chain of steps before it,
//! down to its root cause — also when that is a step with no cache entry of its own (a COPY
//! with `--cache-copy-layers=false`), whose inputs the entries after it record
//! ([`crate::cache::key::LinkInputs`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::cache::file_diff::FileDiff;
use crate::cache::key::{KeyComponents, UNHASHED_SOURCE, Var, VarKind};

/// An earlier cache entry of a step.
#[derive(Debug, Clone)]
pub struct Earlier {
    pub key: String,
    pub components: Box<KeyComponents>,
    /// When the entry was made (its config's `created`).
    pub created: Option<String>,
}

/// What the cache knew about a step before this build.
#[derive(Debug, Clone)]
pub enum Previous {
    /// No entry was ever stored for this step.
    None,
    /// The exact key was found but is older than `--cache-ttl`.
    Expired { created: String, ttl: String },
    /// Earlier entries of this step, newest first (at least one).
    Entries(Vec<Earlier>),
    /// The exact key was found but cannot be used (a layer reference record whose layer is
    /// gone), or the step's earlier entries could not be read; why, in words.
    Unusable(String),
}

/// A step of this build that missed, as the steps after it name it.
#[derive(Debug, Clone)]
pub struct Missed {
    pub line: usize,
    pub reasons: Vec<String>,
}

/// Why a step missed, and which earlier entry that was worked out against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// Each input that differs, in words (never empty).
    pub reasons: Vec<String>,
    /// The entry compared with: its key and when it was made.
    pub compared: Option<(String, Option<String>)>,
}

impl Explanation {
    /// The reasons, `; ` between them: a reason may hold a list of its own (`2 files changed
    /// (a, b)`), and with commas a source stage's change followed by the parent's read as one
    /// (`stage builder changed, COPY app.txt at line 7: …` as if line 7 were builder's).
    pub fn text(&self) -> String {
        self.reasons.join("; ")
    }

    fn only(reason: String) -> Explanation {
        Explanation { reasons: vec![reason], compared: None }
    }
}

/// What this build knows of a step besides its own lookup, for [`explain_in`].
#[derive(Debug, Clone, Default)]
pub struct Around {
    /// A step before it in its chain was found in the cache in this build (served from it, or
    /// with earlier entries of its place): this is no first build of the chain, so a step
    /// before it that missed with no entry of its own is one added since (an inserted line),
    /// and is named as the cause.
    pub warm: bool,
    /// Why this build keeps no entry of the step (a COPY kept out of the cache repository that
    /// no local store or layer reference record will hold): said instead of "no cache entry
    /// … yet", which promised a hit that a build like this one never gets, and instead of what
    /// the step's place held, which such a step never replaces.
    pub unkept: Option<String>,
    /// The steps after this one in its stage, as this build runs them: an entry at this place
    /// made for one of them (it ran here before a line was inserted above it) makes this step
    /// an inserted one, not an edit of that one.
    pub later: Vec<Later>,
    /// Why the stage this one is built `FROM` changed, when its last step missed in this build:
    /// a child stage's miss names that step's cause, not only that its base changed.
    pub base: Option<Missed>,
    /// The line this step's instruction was at in an earlier build, when an entry of it is at
    /// the place of a step after it in its stage (see [`may_have_moved`]): a step whose place
    /// held one of the steps after it moved there, it was not inserted (two lines swapped).
    /// Also when its place held an instruction that is no step of the stage now and an entry
    /// of it is at a later place, or the one past the stage's last step (see
    /// [`may_follow_removed`]): a line above it was removed, it was not edited from that one.
    /// Not when the stage has more copies of its instruction from its place on than the
    /// earlier build had: then one was inserted, not moved.
    pub moved_from: Option<usize>,
    /// The lines a step moved up past ([`Self::moved_from`]) that are no step of the stage
    /// now: all of them are named as removed, not only the one its place held.
    pub removed: Vec<usize>,
    /// Its place held another instruction, and the stage as the earlier build ran it was
    /// longer than was read: whether the step moved up, was inserted or edited is not known,
    /// and none of them is said.
    pub unsure: bool,
}

/// A step after the explained one in its stage ([`Around::later`]).
#[derive(Debug, Clone)]
pub struct Later {
    pub line: usize,
    /// As expanded, and as written (see [`KeyComponents::written`]).
    pub instruction: String,
    pub written: Option<String>,
}

/// The reason of a step that missed with no entry at its place.
const NONE: &str = "no cache entry for this step yet";

/// Explains a miss. `missed`: steps of *this* build that missed, by key.
pub fn explain(prev: &Previous, cur: &KeyComponents, missed: &BTreeMap<String, Missed>) -> Explanation {
    explain_in(prev, cur, missed, &Around::default())
}

/// Explains a miss, knowing what else this build found ([`Around`]).
pub fn explain_in(
    prev: &Previous,
    cur: &KeyComponents,
    missed: &BTreeMap<String, Missed>,
    around: &Around,
) -> Explanation {
    let entries = match prev {
        Previous::None if around.unkept.is_some() => {
            return Explanation::only(around.unkept.clone().unwrap_or_default());
        }
        // Nothing at this place; a step before it that missed for a reason (a line added above,
        // an edit) is what made this one miss, unless that one had no entry either in a build
        // that found nothing before it (a cold build: every step says so).
        Previous::None => {
            let cold = |m: &Missed| !around.warm && m.reasons.iter().all(|r| r == NONE);
            let cause = first_missed_ancestor(&cur.chain, missed, &cold);
            return Explanation::only(cause.unwrap_or_else(|| NONE.to_string()));
        }
        Previous::Expired { created, ttl } => {
            return Explanation::only(format!(
                "cached layer expired (created {created}, older than --cache-ttl {ttl})"
            ));
        }
        Previous::Unusable(reason) => return Explanation::only(reason.clone()),
        Previous::Entries(e) => e,
    };
    // Entries are found by the step's place in the stage: after lines were added or removed
    // above it, the place's entries are another instruction's, and comparing with them names
    // differences that are no cause (another step's variables, mounts or files).
    let this: Vec<&Earlier> = entries.iter().filter(|e| same_instruction(&e.components, cur)).collect();
    let Some(newest) = entries.first() else {
        return Explanation::only(around.unkept.clone().unwrap_or_else(|| NONE.to_string()));
    };
    if this.is_empty() {
        // A step this build keeps no entry of never moves its place's pointer: what the place
        // held may be two builds old, and is no cause.
        if let Some(why) = &around.unkept {
            return Explanation::only(why.clone());
        }
        return Explanation::only(another_instruction(&newest.components, cur, missed, around));
    }
    // Entries with this step's parent, when there are any, are the ones compared: only this
    // step's own inputs differ from them. Another parent is no cause when this build's parent
    // came from the cache (it was made before, by a build that left one of those entries):
    // comparing with a newer entry of another parent named what that parent's build had, as
    // if this build had changed it.
    let same_parent: Vec<&Earlier> = this.iter().copied().filter(|e| e.components.parent == cur.parent).collect();
    let entries = if same_parent.is_empty() { this } else { same_parent };
    // The entries that differ least; of those, the one with the fewest causes to name (a
    // changed parent counts once in the distance however far back it changed), the newest of
    // equally close ones.
    let mut best: Option<(&Earlier, (usize, usize), Vec<String>)> = None;
    for e in entries {
        let d = distance(&e.components, cur);
        if best.as_ref().is_some_and(|(_, (bd, _), _)| d > *bd) {
            continue;
        }
        let r = reasons(&e.components, cur, missed, around.base.as_ref());
        let rank = (d, r.len());
        if best.as_ref().is_none_or(|(_, br, _)| rank < *br) {
            best = Some((e, rank, r));
        }
    }
    let Some((closest, _, reasons)) = best else {
        return Explanation::only(NONE.to_string());
    };
    Explanation { reasons, compared: Some((closest.key.clone(), closest.created.clone())) }
}

/// Whether entry `p` was made for the instruction `cur` is (as written, before expansion).
/// Entries that did not record it, and traces, are taken to be.
fn same_instruction(p: &KeyComponents, cur: &KeyComponents) -> bool {
    match (&p.written, &cur.written) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Whether `newest`, the entry a step's pointer names, is sure to be the one [`explain`] compares
/// whatever the earlier entries it lists are, so that they need not be fetched: it differs from
/// `cur` in at most one input. Another entry is never closer: one whose recorded inputs all
/// equal `cur`'s would have had this step's key (the inputs recorded are the ones the key
/// hashes; only a secret written literally into the instruction is masked in both), and would
/// name no cause anyway; and of equally close entries the newest is taken. It must have this
/// step's parent: else an earlier entry may have it (this build's parent came from the cache,
/// made by an earlier build), and that one is compared. This is the commonest miss — one input
/// of the step changed since the last build, such as an edited source file at its COPY or an
/// ARG at its RUN — and it then costs the pointer's entry alone instead of one fetch per listed
/// entry (up to [`crate::cache::registry::HISTORY`], each an entry's config, which lists a
/// copied directory's files).
pub fn settles(newest: &Earlier, cur: &KeyComponents) -> bool {
    // An entry of another instruction is never compared: the earlier entries it lists may be
    // this one's (its place held this instruction before), so they are fetched. Nor is one of
    // another parent when an earlier entry may have this step's parent, which is preferred.
    same_instruction(&newest.components, cur)
        && newest.components.parent == cur.parent
        && distance(&newest.components, cur) <= 1
}

/// The entries of a step that two stores hold (this machine's layer store and the cache
/// repository, each newest first), as one list, newest first by when they were made. A COPY's
/// entries are in the layer store, and its layer reference records, written only when a build
/// pushed, in the cache repository: taking the repository's alone compared a step with the
/// entry of the last build that pushed, however many builds came after it. Of entries made in
/// the same second, `a`'s come first; one whose time is unknown comes after those with one.
pub fn merge(a: Vec<Earlier>, b: Vec<Earlier>) -> Vec<Earlier> {
    let mut all: Vec<Earlier> = Vec::with_capacity(a.len() + b.len());
    for e in a.into_iter().chain(b) {
        if !all.iter().any(|x| x.key == e.key) {
            all.push(e);
        }
    }
    // RFC 3339 times in UTC (as both stores write them) order as text; stable, so a store's
    // own order stays for equal times.
    all.sort_by(|x, y| y.created.is_some().cmp(&x.created.is_some()).then_with(|| y.created.cmp(&x.created)));
    all
}

/// How many inputs differ: each variable, source file and source, the instruction text, the
/// parent, and the build-wide parts.
fn distance(p: &KeyComponents, c: &KeyComponents) -> usize {
    let files = FileDiff::of(&p.files, &c.files);
    var_changes(&p.vars, &c.vars).len()
        + usize::from(p.instruction != c.instruction)
        + files.changed.len()
        + files.added.len()
        + files.removed.len()
        + p.sources
            .keys()
            .chain(c.sources.keys())
            .filter(|k| !k.starts_with(UNHASHED_SOURCE))
            .collect::<BTreeSet<_>>()
            .iter()
            .filter(|k| p.sources.get(**k) != c.sources.get(**k))
            .count()
        + usize::from(p.parent != c.parent)
        + usize::from(p.linked != c.linked)
        + usize::from(p.user != c.user)
        + usize::from(p.shell != c.shell)
        + usize::from(p.layer_format != c.layer_format)
        + usize::from(p.ignored != c.ignored)
        + usize::from(p.platform != c.platform)
        + usize::from(p.version != c.version)
}

/// Every input of `cur` that differs from `p`, in words.
fn reasons(
    p: &KeyComponents,
    cur: &KeyComponents,
    missed: &BTreeMap<String, Missed>,
    base: Option<&Missed>,
) -> Vec<String> {
    // A changed ARG also changes the expanded text of the steps using it: the ARG is the cause
    // worth naming, so the text is only named when no variable changed.
    let mut out = var_changes(&p.vars, &cur.vars);
    let vars_named = !out.is_empty();
    if out.is_empty() && p.instruction != cur.instruction {
        out.push(edited(&p.instruction, &cur.instruction));
    }
    if p.linked != cur.linked {
        // Same text, another destination: WORKDIR moved under a relative `--link` destination.
        out.push(match (&p.linked, &cur.linked) {
            (Some(a), Some(b)) => format!("WORKDIR changed: destination {a} → {b}"),
            _ => "instruction text changed".to_string(),
        });
    }
    out.extend(runs_as_changes(&p.user, &cur.user, &p.shell, &cur.shell));
    if p.files != cur.files {
        out.push(format!("{}: {}", source_label(&cur.instruction), FileDiff::of(&p.files, &cur.files).words()));
        out.extend(stage_of_files_changed(&p.sources, &cur.sources, missed));
    }
    if hashed_sources_differ(&p.sources, &cur.sources) {
        let s = source_changes(&p.sources, &cur.sources, missed);
        if s.is_empty() {
            out.push("source stages or images changed".to_string());
        } else {
            out.extend(s);
        }
    }
    if p.parent != cur.parent
        && let Some(r) = chain_changed(p, cur, missed, base, &out, vars_named, build_wide_changed(p, cur))
    {
        out.push(r);
    }
    if p.layer_format != cur.layer_format {
        out.push(format!("layer format changed ({} → {})", p.layer_format, cur.layer_format));
    }
    if p.ignored != cur.ignored {
        out.push(ignored_change(p.ignored.as_deref(), cur.ignored.as_deref()));
    }
    if p.platform != cur.platform {
        out.push(format!("platform changed ({} → {})", p.platform, cur.platform));
    }
    if p.version != cur.version {
        out.push(format!("cache format changed (version {} → {})", p.version, cur.version));
    }
    if out.is_empty() {
        out.push("cache entry differs (no component changed: the entry was written by another tool)".to_string());
    }
    out
}

/// How the USER and SHELL a step read changed: `USER changed (root (no USER) → app)`, said for
/// a step's own entry and for an uncached step's recorded inputs alike.
fn runs_as_changes(
    pu: &Option<String>,
    cu: &Option<String>,
    ps: &Option<Vec<String>>,
    cs: &Option<Vec<String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    if pu != cu {
        let user = |u: &Option<String>| u.clone().unwrap_or_else(|| "root (no USER)".to_string());
        out.push(format!("USER changed ({} → {})", user(pu), user(cu)));
    }
    if ps != cs {
        let shell = |s: &Option<Vec<String>>| match s {
            Some(s) => serde_json::to_string(s).unwrap_or_default(),
            None => "the default, [\"/bin/sh\",\"-c\"]".to_string(),
        };
        out.push(format!("SHELL changed ({} → {})", shell(ps), shell(cs)));
    }
    out
}

/// Whether a part every step's key shares changed (the format version, platform, layer format or
/// the paths snapshots leave out): each is named in words as a reason of its own.
fn build_wide_changed(p: &KeyComponents, c: &KeyComponents) -> bool {
    p.version != c.version || p.platform != c.platform || p.layer_format != c.layer_format || p.ignored != c.ignored
}

/// How the paths snapshots leave out changed, in words: `snapshots now leave out /ign, no longer
/// /var/run (--ignore-path, --ignore-var-run)`. `None` is the default set, `/var/run` alone.
fn ignored_change(prev: Option<&[String]>, cur: Option<&[String]>) -> String {
    let default = ["/var/run".to_string()];
    let (p, c) = (prev.unwrap_or(&default), cur.unwrap_or(&default));
    let now: Vec<&str> = c.iter().filter(|x| !p.contains(x)).map(String::as_str).collect();
    let gone: Vec<&str> = p.iter().filter(|x| !c.contains(x)).map(String::as_str).collect();
    let words = match (now.is_empty(), gone.is_empty()) {
        (false, true) => format!("now leave out {}", now.join(", ")),
        (true, false) => format!("no longer leave out {}", gone.join(", ")),
        (true, true) => "leave out the same paths, recorded otherwise".to_string(),
        (false, false) => format!("now leave out {}, no longer {}", now.join(", "), gone.join(", ")),
    };
    format!("snapshots {words} (--ignore-path, --ignore-var-run)")
}

/// A recorded value, in words. An entry written by an older trowel (or another tool) may hold a
/// URL's credentials in clear, which this build, never given them, could not mask: masked here.
fn show(v: &Option<String>) -> String {
    match v {
        Some(s) if s.is_empty() => "\"\"".to_string(),
        Some(s) => crate::secrets::url_credentials(s).iter().fold(s.clone(), |s, c| s.replace(c, crate::secrets::MASK)),
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

/// `COPY --chown=x src/ lib/ /app/` → `COPY src/ lib/`: the keyword and the source arguments.
/// A RUN's files are those its bind mounts take from the context (its last word is no
/// destination): `RUN's bind mounts`.
fn source_label(instruction: &str) -> String {
    let mut words: Vec<&str> = instruction.split_whitespace().collect();
    let keyword = if words.is_empty() { "COPY" } else { words.remove(0) };
    if keyword.eq_ignore_ascii_case("RUN") {
        return "RUN's bind mounts".to_string();
    }
    // A `--from` says whose files they are (`COPY --from=build /out`); no other flag does.
    let from = words.iter().find(|w| w.starts_with("--from=")).map(|w| format!(" {w}")).unwrap_or_default();
    let args: Vec<&str> = words.into_iter().filter(|w| !w.starts_with("--")).collect();
    let sources = if args.len() > 1 { &args[..args.len() - 1] } else { &args[..] };
    format!("{keyword}{from} {}", sources.join(" "))
}

/// A commit id as git abbreviates it in messages (12 digits).
fn commit(s: &str) -> &str {
    &s[..12.min(s.len())]
}

fn short(s: &str) -> String {
    if s.starts_with("sha256:") && s.len() > 19 { format!("{}…", &s[..19]) } else { s.to_string() }
}

/// Why the bottom of a step's chain changed: its base image's digest, or the stage it is built
/// `FROM` (`base`: why that stage's last step missed in this build, when it did; else what
/// changed in the end of it no entry explains, which the two chains record).
fn base_changed(
    p: &KeyComponents,
    cur: &KeyComponents,
    from: &str,
    base: Option<&Missed>,
    missed: &BTreeMap<String, Missed>,
) -> String {
    match (&p.base, &cur.base) {
        (Some(pb), Some(cb)) if pb.reference == cb.reference => match (&pb.digest, &cb.digest) {
            (Some(a), Some(b)) if a != b => {
                format!("base image {} now {} (was {})", cb.reference, short(b.as_str()), short(a.as_str()))
            }
            // Same image at the bottom: the stage this one is built FROM changed.
            _ => match base {
                // Quoted: `base stage "base" changed` reads as a name, unquoted it does not.
                Some(m) => {
                    format!("base stage \"{}\" changed ({})", from.strip_prefix("FROM ").unwrap_or(from), cause(m))
                }
                None => match chain::tail_changed(&p.chain, &cur.chain, missed) {
                    Some(why) => {
                        format!("base stage \"{}\" changed ({why})", from.strip_prefix("FROM ").unwrap_or(from))
                    }
                    None => format!("base stage changed ({from})"),
                },
            },
        },
        (Some(pb), Some(cb)) => format!("base image changed: {} (was {})", cb.reference, pb.reference),
        _ => "base image changed".to_string(),
    }
}

/// How the stages, images and repositories a step reads from changed. A stage's value is its
/// last step's key: when that step missed in this build, its own reasons say why the stage
/// changed (`stage builder changed (line 9: ARG V 2 → 3)`).
fn source_changes(
    prev: &BTreeMap<String, String>,
    cur: &BTreeMap<String, String>,
    missed: &BTreeMap<String, Missed>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in cur.iter().filter(|(k, _)| !k.starts_with(UNHASHED_SOURCE)) {
        match prev.get(k) {
            Some(pv) if pv == v => {}
            Some(pv) => match (k.strip_prefix("image:"), k.strip_prefix("git:"), k.strip_prefix("stage:")) {
                (Some(img), _, _) => out.push(format!("image {img} now {} (was {})", short(v), short(pv))),
                (_, Some(repo), _) => out.push(format!("git {repo} now {} (was {})", commit(v), commit(pv))),
                (_, _, Some(stage)) => out.push(match missed.get(v) {
                    Some(m) => format!("stage {stage} changed ({})", cause(m)),
                    None => format!("stage {stage} changed"),
                }),
                _ => out.push(
                    mount_changed(k, pv, v, missed).unwrap_or_else(|| format!("{} changed", k.replacen(':', " ", 1))),
                ),
            },
            None => out.push(format!("{} is new", k.replacen(':', " ", 1))),
        }
    }
    out
}

/// Why the files a `COPY --from` copies changed: the stage it copies from changed (`stage build
/// changed (line 4: ARG V 1 → 2)`), as the stage's key recorded unhashed ([`UNHASHED_SOURCE`])
/// says. Only worth saying once the files did change: a stage that changed and made the same
/// files leaves the step a hit.
fn stage_of_files_changed(
    prev: &BTreeMap<String, String>,
    cur: &BTreeMap<String, String>,
    missed: &BTreeMap<String, Missed>,
) -> Vec<String> {
    cur.iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(UNHASHED_SOURCE)?, v)))
        .filter(|(k, v)| prev.get(&format!("{UNHASHED_SOURCE}{k}")).is_some_and(|pv| pv != *v))
        .map(|(stage, v)| match missed.get(v) {
            Some(m) => format!("stage {stage} changed ({})", cause(m)),
            None => format!("stage {stage} changed"),
        })
        .collect()
}

/// Whether the sources a key hashes differ (not [`UNHASHED_SOURCE`]'s).
fn hashed_sources_differ(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    let hashed = |m: &BTreeMap<String, String>| {
        m.iter()
            .filter(|(k, _)| !k.starts_with(UNHASHED_SOURCE))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    hashed(a) != hashed(b)
}

/// A bind mount whose spec is the same but whose stage or image changed, said as `COPY --from`'s
/// are: `mount /in: stage build changed (line 4: ARG V 1 → 2)`, `mount /in: image … now …`.
/// (Its recorded value is the spec, then ` stage-key=` or ` digest=`.)
fn mount_changed(k: &str, prev: &str, cur: &str, missed: &BTreeMap<String, Missed>) -> Option<String> {
    let target = k.strip_prefix("mount ")?;
    for marker in [" stage-key=", " digest="] {
        let (Some((ps, pk)), Some((cs, ck))) = (prev.split_once(marker), cur.split_once(marker)) else { continue };
        if ps != cs || pk == ck {
            return None;
        }
        let from = cs.split(',').find_map(|o| o.strip_prefix("from=")).unwrap_or("?");
        return Some(match (marker, missed.get(ck)) {
            (" digest=", _) => format!("mount {target}: image {from} now {} (was {})", short(ck), short(pk)),
            (_, Some(m)) => format!("mount {target}: stage {from} changed ({})", cause(m)),
            (_, None) => format!("mount {target}: stage {from} changed"),
        });
    }
    None
}

#[path = "explain_place.rs"]
mod place;
pub use place::{Whence, may_follow_removed, may_have_moved, whence};
use place::{another_instruction, first_missed_ancestor};

#[path = "explain_chain.rs"]
mod chain;
use chain::chain_changed;

#[path = "explain_words.rs"]
mod words;
use words::cause;
/// An edited instruction in words (`instruction changed: RUN make → RUN make -j4`), also for
/// `trowel replay --compare` of steps without a key.
pub use words::edited;

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "explain_cause_tests.rs"]
mod cause_tests;

#[cfg(test)]
#[path = "explain_moved_tests.rs"]
mod moved_tests;
