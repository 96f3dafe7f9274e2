//! The layer cache as events describe it: a step's key, what it is made of, and what the
//! lookup found.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Digest, LayerSummary};

/// Whether the build has a layer cache and which steps go through it, as `trowel build`'s flags
/// set it up. Without it a viewer could only guess from the lookups it saw (none yet, or none
/// in a build whose every step makes no layer) whether the cache was off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum LayerCacheUse {
    /// No layer cache: `--cache` was not given, or `--single-snapshot` turned it off.
    Off,
    /// `--cache=true`.
    On {
        /// `--cache-run-layers`: RUN and WORKDIR steps are looked up.
        run_layers: bool,
        /// `--cache-copy-layers`: COPY and ADD layers are also written to the cache repository
        /// (without it they are still looked up, in the local layer store and by reference).
        copy_layers: bool,
    },
}

/// Where a variable in effect came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum VarKind {
    #[serde(rename = "ARG")]
    Arg,
    #[serde(rename = "ENV")]
    Env,
}

/// A variable in effect at a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Var {
    pub kind: VarKind,
    /// The value, or a short fingerprint (`sha256:1a2b3c4d…`) for secret build args.
    pub value: Option<String>,
}

/// One source file of a COPY or ADD, as it went into the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KeyFile {
    /// Path relative to the context (or the source stage's root), `/`-separated.
    pub path: String,
    /// `f` file, `d` directory, `l` symlink, `c` character device, `b` block device, `p` fifo.
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// A regular file's content digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The extended attributes the copy carries: name → SHA-256 of the value (absent: none, or
    /// a trace from before they were keyed).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub xattrs: std::collections::BTreeMap<String, String>,
    /// A regular file that is one inode with an earlier file of the same source: that file's
    /// path (the copy makes it a hard link to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_link: Option<String>,
}

/// An earlier step of the key chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChainLink {
    pub line: usize,
    pub instruction: String,
    pub key: String,
}

/// The image a key chain starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BaseInfo {
    pub reference: String,
    pub digest: Option<Digest>,
}

/// Everything a step's cache key is made of (the fields before `line` are hashed), plus the
/// context used to explain a miss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KeyComponents {
    /// The key scheme's version (a new trowel with a new scheme misses every old entry).
    pub version: u32,
    pub platform: String,
    /// How layers are written (compression, level, `+reproducible`).
    pub layer_format: String,
    /// The image paths snapshots leave out (`--ignore-path`, `/var/run` unless
    /// `--ignore-var-run=false`), cleaned and sorted; absent for the default, `/var/run` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<Vec<String>>,
    /// The previous step's key; empty for a `COPY --link`/`ADD --link` step (see `linked`).
    pub parent: String,
    /// Set for a `COPY --link`/`ADD --link` step: its destination, resolved against WORKDIR.
    /// Such a step's layer is made on an empty root, so its key does not chain from the step
    /// before it and it hits after earlier steps changed (the steps after it still chain from
    /// both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked: Option<String>,
    /// The expanded instruction.
    pub instruction: String,
    /// The ARG and ENV variables in effect, by name.
    pub vars: BTreeMap<String, Var>,
    /// A COPY or ADD's sources (for `COPY --from=<stage>`, the files it copies from the stage,
    /// owners kept); for a RUN, what its bind mounts show (a stage's at the mount's target).
    /// A trace always has them; the events of a build whose consumers keep no per-file lists
    /// (`Detail::file_lists`: one that only logs) leave them out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<KeyFile>,
    /// `stage:<name>` → that stage's last key; `image:<ref>` → its manifest digest; `from:<name>`
    /// → the last key of the stage a `COPY --from` or a bind mount is keyed by the files of
    /// (`files`): not part of the key, it says why those files changed when they did.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, String>,
    /// The user a RUN runs as, or a WORKDIR makes its directory for (`USER`), when one is set;
    /// absent for root and for every other step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The shell a RUN in shell form runs with (`SHELL`), when the config sets one; absent for
    /// the default and for every other step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// The step's Dockerfile line.
    pub line: usize,
    /// The ancestor steps the key chains through, with their keys.
    #[serde(default)]
    pub chain: Vec<ChainLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseInfo>,
}

impl KeyComponents {
    /// These components without the files a COPY or ADD read (or a RUN's bind mounts showed):
    /// what a consumer that never shows them keeps, since a step that copies 100,000 files
    /// lists every one of them here.
    pub fn without_files(&self) -> KeyComponents {
        let KeyComponents {
            version,
            platform,
            layer_format,
            ignored,
            parent,
            linked,
            instruction,
            vars,
            files: _,
            sources,
            user,
            shell,
            line,
            chain,
            base,
        } = self;
        KeyComponents {
            version: *version,
            platform: platform.clone(),
            layer_format: layer_format.clone(),
            ignored: ignored.clone(),
            parent: parent.clone(),
            linked: linked.clone(),
            instruction: instruction.clone(),
            vars: vars.clone(),
            files: Vec::new(),
            sources: sources.clone(),
            user: user.clone(),
            shell: shell.clone(),
            line: *line,
            chain: chain.clone(),
            base: base.clone(),
        }
    }
}

/// A cache entry a miss was explained against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CacheEntryRef {
    /// The entry's key (its tag in the cache repository).
    pub key: String,
    /// When the entry was made (RFC 3339), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

impl CacheEntryRef {
    /// `the entry made 2025-05-01T10:00:00Z (key 3f2a9c01b2d4)`, as the log and the panes say it.
    pub fn describe(&self) -> String {
        let key = &self.key[..self.key.len().min(12)];
        match &self.created {
            Some(c) => format!("the entry made {c} (key {key})"),
            None => format!("the entry with key {key}"),
        }
    }
}

/// What a cache lookup found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CacheResult {
    /// The cached layer was used (`layer` is `null` for a step that changed no files).
    /// `reference` says where the entry was found: `<cache repository>:<key>` for an entry of
    /// the cache repository, `local:<path of the entry file>` for one of the local layer store
    /// under `--cache-dir` (COPY/ADD layers without `--cache-copy-layers`, which never go to the
    /// cache repository), `registry-ref:<repository>@<layer digest>` for such a layer found by
    /// the layer reference record of the cache repository (the repository named is the one
    /// found to hold the layer: a destination of this build, or one the record names).
    Hit { reference: String, layer: Option<LayerSummary> },
    /// Not in the cache; `explanation` says why: every input that differs from the closest
    /// earlier entry of the step (`compared_with`, absent when there was none to compare with).
    Miss {
        explanation: String,
        /// The earlier entry of the step that differs least, which the explanation compares with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compared_with: Option<CacheEntryRef>,
    },
    /// The lookup itself failed; the step ran.
    Error { message: String },
}
