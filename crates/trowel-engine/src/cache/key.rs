//! Composite cache keys.
//!
//! A step's key is the SHA-256 of a *structured* (JSON, fixed field order, every string escaped)
//! encoding of everything that determines its layer: the cache format version, the platform, how
//! layers are written, the parent step's key (the chain starts at the base image's manifest
//! digest, or at the parent stage's last key), the fully expanded instruction with its flags, the
//! variables in effect, and for COPY/ADD every source file (path, type, mode, owner, link target,
//! content digest, extended attributes, the earlier file it is a hard link of) or the source
//! stage's key / image digest.
//!
//! This avoids kaniko's four key bugs: keys use the *expanded* instruction (a changed
//! `--build-arg` used by COPY/ADD/WORKDIR changes the key), file *names* are hashed (a rename
//! changes the key), there is no ambiguous `-` join, and a stage with no instructions still passes
//! its base digest on to the stages built from it.
//!
//! A `COPY --link`/`ADD --link` step is the exception: its layer is made on an empty root, so
//! its key leaves the parent out (`parent` is empty) and names the absolute destination
//! instead (`linked`), and an earlier step that changed does not make it miss. The steps after
//! it chain from [`linked_chain_key`] of the parent and its key: they do depend on everything
//! below.
//!
//! Besides the hashed part, [`KeyComponents`] carries context used only to explain a miss: the
//! Dockerfile line, the chain of ancestor steps and the base image. It is stored in every cache
//! entry, so a later build (another CI job, with no local state) can say what changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Bump when the encoding or the meaning of a component changes: old entries then never hit.
/// 2: a COPY into existing directories gives them the source's metadata (as BuildKit), so the
/// same inputs make another layer than version 1's.
/// 3: steps that only change the image config (LABEL, ENV, ARG, USER, SHELL, …) no longer chain
/// into the keys after them (`layer_cache/plan.rs`): a key of version 2 held them. A RUN or
/// WORKDIR holds the USER and SHELL it reads instead.
pub const FORMAT_VERSION: u32 = 3;

/// Where a variable in effect came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VarKind {
    #[serde(rename = "ARG")]
    Arg,
    #[serde(rename = "ENV")]
    Env,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Var {
    pub kind: VarKind,
    /// The value, or a short fingerprint for secret-looking names (see [`crate::secrets`]).
    pub value: Option<String>,
}

/// One source file of a COPY/ADD, as hashed into the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the context (or source root), `/`-separated.
    pub path: String,
    /// `f`, `d`, `l`, `c`, `b`, `p`.
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// As 32 bytes (its JSON is the digest's text): a COPY's key lists every file it copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<crate::digest::Sum>,
    /// The extended attributes the copy carries into the layer (all but the host's
    /// `security.selinux` label): name → SHA-256 of the value. A change of one alone changes
    /// the layer, so it must change the key, as in BuildKit's content hash (which hashes
    /// `SCHILY.xattr.*`). Left out when there are none: the keys of such files are those of
    /// before xattrs were keyed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
    /// A regular file that is one inode with an earlier file of the same source (by device and
    /// inode, walked in name order as the copy walks): that file's path. The copy makes it a
    /// hard link to that file, so a change of the grouping alone (two files become one, or one
    /// becomes two with the same bytes) changes the layer. Left out for every other file: the
    /// keys of sources without hard links are those of before they were keyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_link: Option<String>,
}

#[cfg(test)]
impl FileEntry {
    /// A regular 0644 file owned by 0:0, without xattrs (tests).
    pub(crate) fn regular(path: &str, digest: Option<Digest>) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind: 'f',
            mode: 0o644,
            uid: 0,
            gid: 0,
            link: None,
            digest: digest.map(Into::into),
            xattrs: BTreeMap::new(),
            hard_link: None,
        }
    }
}

/// An ancestor step in the key chain (for "what changed before this step").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    pub line: usize,
    pub instruction: String,
    pub key: String,
    /// For a step that is not cached itself (a COPY with `--cache-copy-layers=false`, say): what
    /// its key was made of. No entry of its own can explain how it changed, so the entries of
    /// the steps after it carry its inputs, and a later build names the root cause ("COPY src/ at
    /// line 3: 1 added …") instead of "parent step changed".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Box<LinkInputs>>,
    /// For the `FROM <stage>` link a child stage's chain starts with: the end of that stage's
    /// chain that no entry of its own explains ([`uncached_tail`]): its last step with an entry
    /// (or its FROM), then the steps after it, each with its inputs. A base stage ending in a
    /// COPY with `--cache-copy-layers=false` has no miss of its own in this build to name, so
    /// the child's entries carry what that COPY was made of, and the child names the file that
    /// changed instead of "base stage changed". Absent otherwise, and in entries made before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stage_tail: Vec<ChainLink>,
}

/// The end of a stage's chain (`chain`, ending with its last step) that no cache entry of its
/// own explains, for [`ChainLink::stage_tail`]: from the last link without inputs on; empty
/// when that is the last (the stage ends with a cached step, whose miss says why it changed).
/// Each link's own tail is left out: one stage's is enough to name the cause, and entries stay
/// small.
pub fn uncached_tail(chain: &[ChainLink]) -> Vec<ChainLink> {
    let Some(from) = chain.iter().rposition(|l| l.inputs.is_none()) else { return Vec::new() };
    if from + 1 >= chain.len() {
        return Vec::new();
    }
    chain[from..].iter().map(|l| ChainLink { stage_tail: Vec::new(), ..l.clone() }).collect()
}

/// The inputs of an uncached ancestor step, as recorded in a [`ChainLink`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInputs {
    pub vars: BTreeMap<String, Var>,
    /// Source files, up to [`LINK_FILES_MAX`]; more are only counted (`files_count`,
    /// `files_digest`): an entry must stay small, and each step after a COPY repeats its link.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub files_count: usize,
    /// The SHA-256 of the whole file list (to tell a change even when it is not listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_digest: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, String>,
    /// The USER and SHELL the step read, which its key holds: a RUN not cached itself
    /// (`--cache-run-layers=false`) whose USER changed is named by that change, not as a changed
    /// parent step. Absent in entries made before they were recorded: those say nothing of
    /// them, which is not root's or the default shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_as: Option<RunsAs>,
}

/// The USER and SHELL a step read ([`KeyComponents::user`], [`KeyComponents::shell`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunsAs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// Most source files listed in a [`LinkInputs`].
pub const LINK_FILES_MAX: usize = 1000;

impl LinkInputs {
    /// What a step's components record about it for the steps after it.
    pub fn of(c: &KeyComponents) -> LinkInputs {
        let listed = c.files.len() <= LINK_FILES_MAX;
        LinkInputs {
            vars: c.vars.clone(),
            files: if listed { c.files.clone() } else { Vec::new() },
            files_count: c.files.len(),
            files_digest: (!c.files.is_empty())
                .then(|| Digest::of(&serde_json::to_vec(&c.files).expect("file entries serialise")).hex().to_string()),
            sources: c.sources.clone(),
            runs_as: Some(RunsAs { user: c.user.clone(), shell: c.shell.clone() }),
        }
    }

    /// Whether the source files are listed in full.
    pub fn files_listed(&self) -> bool {
        self.files.len() == self.files_count
    }
}

/// The image a chain starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseInfo {
    pub reference: String,
    pub digest: Option<Digest>,
}

/// Everything a key is made of, plus explanation context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyComponents {
    pub version: u32,
    pub platform: String,
    /// How layers are written (compression, `--reproducible`): a cached layer must be the layer
    /// this build would have written.
    pub layer_format: String,
    /// The image paths snapshots leave out (`--ignore-path`, and `/var/run` unless
    /// `--ignore-var-run=false`), cleaned, sorted and without those another covers, as the
    /// snapshot takes them; absent for the default (`/var/run` alone), so the keys of builds with
    /// the default settings are those of before this was keyed. A layer made leaving out other
    /// paths holds other files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<Vec<String>>,
    /// The previous step's key; empty for a `--link` step.
    pub parent: String,
    /// A `--link` step: its destination, resolved against WORKDIR (what the parent gave it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked: Option<String>,
    pub instruction: String,
    pub vars: BTreeMap<String, Var>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileEntry>,
    /// `stage:<name>` → that stage's last key; `image:<ref>` → manifest digest. `from:<name>` →
    /// the last key of a stage a `COPY --from` is keyed by the files of (`files`), not hashed:
    /// it only says, when those files changed, why ([`UNHASHED_SOURCE`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, String>,
    /// The user a RUN runs as, or a WORKDIR makes its directory for (`USER`), when one is set:
    /// USER does not chain into the keys after it (`layer_cache/plan.rs`), so the steps that
    /// read it hold it. Absent for root (no USER), and for every other step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The shell a RUN in shell form runs with (`SHELL`), when the config sets one; absent for
    /// the default and for every other step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    // ---- not hashed: context for explanations ----
    pub line: usize,
    /// The instruction as written (unexpanded), as the first 16 hex digits of its SHA-256: tells
    /// an entry of this instruction from one of another that held its place in the stage before
    /// lines were added or removed above (entries are found by position). Absent in entries
    /// made before it was recorded, and in traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
    /// The repository the build that made the entry pushed to (its first destination, the tag
    /// left out). Entries are found by the step's place in the Dockerfile, and a cache
    /// repository shared by projects holds other projects' entries at the same place: an entry
    /// of another instruction from another repository is named with it, never taken for an
    /// edit of this one. Absent without a destination and in entries made before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default)]
    pub chain: Vec<ChainLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseInfo>,
}

/// The prefix of a source that is recorded for explanations and never hashed (see
/// [`KeyComponents::sources`]).
pub const UNHASHED_SOURCE: &str = "from:";

/// The hashed part, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    version: u32,
    platform: &'a str,
    layer_format: &'a str,
    /// Absent with the default ignored paths, so their keys are those of before it was keyed.
    #[serde(skip_serializing_if = "Option::is_none")]
    ignored: Option<&'a [String]>,
    parent: &'a str,
    /// Absent for every other step, so their keys are those of before `--link` had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    linked: Option<&'a str>,
    instruction: &'a str,
    vars: &'a BTreeMap<String, Var>,
    files: &'a [FileEntry],
    sources: &'a BTreeMap<String, String>,
    /// Absent when unset, so the keys of steps that read no USER or SHELL do not hold them.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shell: Option<&'a [String]>,
}

impl KeyComponents {
    /// The inputs alone (what the key hashes, and what [`crate::cache::explain`] compares), without
    /// the explanation context (the chain of steps before it, the base): what a test shows a
    /// lookup's decision depends on. Lookups share the plan's components instead of a copy.
    #[cfg(test)]
    pub fn inputs_only(&self) -> KeyComponents {
        KeyComponents {
            version: self.version,
            platform: self.platform.clone(),
            layer_format: self.layer_format.clone(),
            ignored: self.ignored.clone(),
            parent: self.parent.clone(),
            linked: self.linked.clone(),
            instruction: self.instruction.clone(),
            vars: self.vars.clone(),
            files: self.files.clone(),
            sources: self.sources.clone(),
            user: self.user.clone(),
            shell: self.shell.clone(),
            line: self.line,
            written: self.written.clone(),
            origin: self.origin.clone(),
            chain: Vec::new(),
            base: None,
        }
    }

    /// The key: 64 hex digits (also a valid registry tag).
    pub fn key(&self) -> String {
        let hashed_sources: BTreeMap<String, String>;
        let sources = if self.sources.keys().any(|k| k.starts_with(UNHASHED_SOURCE)) {
            hashed_sources = self
                .sources
                .iter()
                .filter(|(k, _)| !k.starts_with(UNHASHED_SOURCE))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            &hashed_sources
        } else {
            &self.sources
        };
        let h = Hashed {
            version: self.version,
            platform: &self.platform,
            layer_format: &self.layer_format,
            ignored: self.ignored.as_deref(),
            parent: &self.parent,
            linked: self.linked.as_deref(),
            instruction: &self.instruction,
            vars: &self.vars,
            files: &self.files,
            sources,
            user: self.user.as_deref(),
            shell: self.shell.as_deref(),
        };
        let bytes = serde_json::to_vec(&h).expect("key components serialise");
        Digest::of(&bytes).hex().to_string()
    }
}

/// What the steps after a `--link` step chain from: its key (which does not depend on the
/// steps before it) joined with the key of the step before it (which they do depend on).
pub fn linked_chain_key(parent: &str, linked_key: &str) -> String {
    #[derive(Serialize)]
    struct Chain<'a> {
        version: u32,
        parent: &'a str,
        linked: &'a str,
    }
    let b = serde_json::to_vec(&Chain { version: FORMAT_VERSION, parent, linked: linked_key }).unwrap();
    Digest::of(&b).hex().to_string()
}

/// The key a chain starts from for a base image, `scratch`, or a parent stage.
pub fn root_key(platform: &str, base: &RootOf<'_>) -> String {
    #[derive(Serialize)]
    struct Root<'a> {
        version: u32,
        platform: &'a str,
        base: &'a str,
    }
    match base {
        RootOf::Stage(parent_key) => parent_key.to_string(),
        RootOf::Scratch => {
            let b = serde_json::to_vec(&Root { version: FORMAT_VERSION, platform, base: "scratch" }).unwrap();
            Digest::of(&b).hex().to_string()
        }
        RootOf::Image(d) => {
            let b = serde_json::to_vec(&Root { version: FORMAT_VERSION, platform, base: d.as_str() }).unwrap();
            Digest::of(&b).hex().to_string()
        }
    }
}

pub enum RootOf<'a> {
    Scratch,
    Image(&'a Digest),
    /// The last key of the stage this one is built `FROM`.
    Stage(&'a str),
}

/// Names referenced by `$NAME` / `${NAME…}` in an instruction's raw text. Used to record, for
/// non-RUN steps, only the variables the step actually uses (an unrelated ARG must not miss).
pub fn referenced_names(raw: &str) -> Vec<String> {
    let b = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let start = if b.get(i + 1) == Some(&b'{') { i + 2 } else { i + 1 };
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > start && !b[start].is_ascii_digit() {
                let name = raw[start..j].to_string();
                if !out.contains(&name) {
                    out.push(name);
                }
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps() -> KeyComponents {
        KeyComponents {
            version: FORMAT_VERSION,
            platform: "linux/amd64".into(),
            layer_format: "gzip".into(),
            ignored: None,
            parent: "p".into(),
            linked: None,
            instruction: "RUN make".into(),
            vars: BTreeMap::new(),
            files: vec![],
            sources: BTreeMap::new(),
            user: None,
            shell: None,
            line: 3,
            written: None,
            origin: None,
            chain: vec![],
            base: None,
        }
    }

    #[test]
    fn explanation_context_is_not_hashed() {
        let a = comps();
        let mut b = comps();
        b.line = 99;
        b.chain.push(ChainLink {
            line: 1,
            instruction: "FROM x".into(),
            key: "k".into(),
            inputs: None,
            stage_tail: Vec::new(),
        });
        assert_eq!(a.key(), b.key());
    }

    /// kaniko joined parts with "-": `A=x-B=z` and `A=x`,`B=z` collided. Structured encoding
    /// cannot.
    #[test]
    fn no_join_collisions() {
        let mut a = comps();
        a.vars.insert("A".into(), Var { kind: VarKind::Arg, value: Some("x-B=z".into()) });
        let mut b = comps();
        b.vars.insert("A".into(), Var { kind: VarKind::Arg, value: Some("x".into()) });
        b.vars.insert("B".into(), Var { kind: VarKind::Arg, value: Some("z".into()) });
        assert_ne!(a.key(), b.key());
        let mut c = comps();
        c.instruction = "RUN make\",\"vars\":{}".into();
        assert_ne!(comps().key(), c.key());
    }

    #[test]
    fn file_names_are_hashed() {
        let f = |p: &str| FileEntry::regular(p, None);
        let mut a = comps();
        a.files = vec![f("src/a.rs")];
        let mut b = comps();
        b.files = vec![f("src/b.rs")];
        assert_ne!(a.key(), b.key());
    }

    /// Keys of steps without `--link`, and of files without xattrs, are what they were before
    /// those fields existed (the same JSON, field for field, in this format version).
    #[test]
    fn keys_without_link_are_unchanged() {
        let before = format!(
            r#"{{"version":{FORMAT_VERSION},"platform":"linux/amd64","layer_format":"gzip","parent":"p","instruction":"RUN make","vars":{{}},"files":[],"sources":{{}}}}"#
        );
        assert_eq!(comps().key(), Digest::of(before.as_bytes()).hex());
        let mut c = comps();
        c.files = vec![FileEntry::regular("a", None)];
        let before = format!(
            r#"{{"version":{FORMAT_VERSION},"platform":"linux/amd64","layer_format":"gzip","parent":"p","instruction":"RUN make","vars":{{}},"files":[{{"path":"a","kind":"f","mode":420,"uid":0,"gid":0}}],"sources":{{}}}}"#
        );
        assert_eq!(c.key(), Digest::of(before.as_bytes()).hex());
    }

    /// Other ignored paths make another key; the default (`None`) adds nothing to the JSON
    /// (checked above), and an empty list (`--ignore-var-run=false`) is not the default.
    #[test]
    fn ignored_paths_are_hashed() {
        let mut a = comps();
        a.ignored = Some(vec!["/ign".into(), "/var/run".into()]);
        let mut b = comps();
        b.ignored = Some(vec![]);
        assert_ne!(a.key(), comps().key());
        assert_ne!(b.key(), comps().key());
        assert_ne!(a.key(), b.key());
        let mut c = comps();
        c.line = 7;
        c.ignored = Some(vec!["/ign".into(), "/var/run".into()]);
        assert_eq!(a.key(), c.key());
    }

    /// Two files that are one inode key otherwise than two with the same bytes; a file of no
    /// group keys as before (checked above).
    #[test]
    fn hard_links_are_hashed() {
        let d = Some(Digest::of(b"same2"));
        let mut a = comps();
        a.files = vec![FileEntry::regular("a", d.clone()), FileEntry::regular("b", d.clone())];
        let mut b = a.clone();
        b.files[1].hard_link = Some("a".into());
        assert_ne!(a.key(), b.key());
        assert!(serde_json::to_string(&b.files[1]).unwrap().ends_with(r#","hard_link":"a"}"#));
    }

    #[test]
    fn linked_keys_do_not_chain_but_their_successors_do() {
        let mut a = comps();
        a.parent = String::new();
        a.linked = Some("/app/".into());
        let mut b = a.clone();
        b.line = 9;
        assert_eq!(a.key(), b.key());
        let mut c = a.clone();
        c.linked = Some("/srv/".into());
        assert_ne!(a.key(), c.key(), "the destination is part of the key");
        assert_ne!(a.key(), comps().key());
        assert_ne!(linked_chain_key("p1", &a.key()), linked_chain_key("p2", &a.key()));
        assert_ne!(linked_chain_key("p1", &a.key()), a.key());
    }

    /// A stage's uncached end: from its last step with an entry of its own (or FROM) on; none
    /// when it ends with one.
    #[test]
    fn uncached_tails() {
        let l = |key: &str, inputs: bool| ChainLink {
            line: 1,
            instruction: key.into(),
            key: key.into(),
            inputs: inputs.then(|| Box::new(LinkInputs::of(&comps()))),
            stage_tail: vec![],
        };
        let keys = |c: Vec<ChainLink>| uncached_tail(&c).into_iter().map(|l| l.key).collect::<Vec<_>>();
        assert_eq!(keys(vec![l("from", false), l("copy", true)]), ["from", "copy"]);
        assert_eq!(keys(vec![l("from", false), l("copy", true), l("run", false), l("c2", true)]), ["run", "c2"]);
        assert!(keys(vec![l("from", false), l("copy", true), l("run", false)]).is_empty());
        assert!(keys(vec![l("from", false)]).is_empty());
    }

    /// Entries made before a link recorded its USER and SHELL, or a stage's uncached end, still
    /// read: neither field is there (none is written when there is nothing to say, either).
    #[test]
    fn links_of_older_entries_read() {
        let old = r#"{"line":3,"instruction":"RUN id","key":"k","inputs":{"vars":{},"files_count":0}}"#;
        let l: ChainLink = serde_json::from_str(old).unwrap();
        assert_eq!(l.inputs.as_ref().unwrap().runs_as, None);
        assert!(l.stage_tail.is_empty());
        let now = serde_json::to_string(&ChainLink { inputs: None, ..l }).unwrap();
        assert_eq!(now, r#"{"line":3,"instruction":"RUN id","key":"k"}"#);
    }

    #[test]
    fn roots() {
        let d = Digest::of(b"x");
        assert_ne!(root_key("linux/amd64", &RootOf::Image(&d)), root_key("linux/arm64", &RootOf::Image(&d)));
        assert_ne!(root_key("linux/amd64", &RootOf::Image(&d)), root_key("linux/amd64", &RootOf::Scratch));
        assert_eq!(root_key("linux/amd64", &RootOf::Stage("abc")), "abc");
    }

    #[test]
    fn referenced() {
        assert_eq!(referenced_names("COPY ${SRC:-x} /$DEST/$1 $$ ${A}b"), vec!["SRC", "DEST", "A"]);
        assert!(referenced_names("RUN echo hi").is_empty());
    }
}
