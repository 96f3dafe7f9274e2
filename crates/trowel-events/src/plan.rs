//! What a build is about to do, as `build_started` and `step_started` describe it: the steps'
//! identities, the plan of every stage and step, where the context came from, a RUN's mounts.

use serde::{Deserialize, Serialize};

use crate::Digest;

/// Identifies a step: its stage and its position in that stage. ONBUILD triggers inherited
/// from a base image run as steps too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepId {
    /// The stage's index in the build's plan ([`StagePlan::index`]): in a build for one
    /// platform, its index in the Dockerfile (0 = the first `FROM`); in a build for several,
    /// each platform's stages come after the previous platform's (a stage shared by every
    /// platform is there once; [`StagePlan::dockerfile_stage`] says which Dockerfile stage
    /// an index is).
    pub stage: usize,
    /// 0 = the stage's `FROM`, then one per instruction; ONBUILD triggers get the numbers after
    /// the stage's own instructions (and run right after `FROM`).
    pub step: usize,
}

impl std::fmt::Display for StepId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.stage, self.step)
    }
}

/// A build context fetched from elsewhere (`--context tar://…`, `git://…`, `https://…/repo.git`):
/// what it was, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ContextOrigin {
    /// `tar`, `git`, `s3`, `gcs`, `azure` (Azure Blob Storage) or `https` (an archive downloaded
    /// from a URL).
    pub kind: String,
    /// The `--context` value, any credentials masked (`git://host/org/repo.git#main`,
    /// `tar://stdin`; a URL's query, which may be a SAS token or a presigned signature, as `?…`).
    pub source: String,
    /// The ref fetched (`refs/heads/main`), for git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The commit checked out, for git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// A tar: the sha256 of the archive's bytes as read (compressed or not). A repository: the
    /// sha256 of trowel's listing of its checked-out tree (`.git` aside): each path in name
    /// order with its type, permission bits and content digest or link target.
    pub digest: Digest,
    /// Bytes of the archive, or of the tree's files.
    pub bytes: u64,
    /// Regular files in the context.
    pub files: u64,
    /// `--context-sub-path`, when given: the directory of the fetched context that is the
    /// build's context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
    /// The context's own time in seconds since 1970, which `SOURCE_DATE_EPOCH=context` dates
    /// the build by: a repository's commit time; an archive over `https://`, its
    /// `Last-Modified`, else its newest regular file's time; a bucket's archive, its newest
    /// file's. Absent for `tar://` and when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
}

/// A stage as planned, before anything runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StagePlan {
    pub index: usize,
    /// The name given with `AS`, if any.
    pub name: Option<String>,
    /// The base as written after ARG expansion (`busybox:1.35`, `scratch`, a stage name).
    pub base: String,
    /// False for stages the target does not need; they are skipped.
    pub needed: bool,
    pub steps: Vec<StepPlan>,
    /// In a build for several platforms: the Dockerfile stage this is (`index` counts every
    /// platform's stages); `null` in a build for one platform, where the two are the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_stage: Option<usize>,
    /// In a build for several platforms: the platform the stage's root is for (what its base
    /// is resolved for and its RUNs execute as, `FROM --platform` or the target's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// In a build for several platforms: the target platforms this stage is built for, one,
    /// or all of them for a stage they share (a `FROM --platform=$BUILDPLATFORM` stage that
    /// does not depend on the target). Empty in a build for one platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

/// A step as planned: one Dockerfile instruction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepPlan {
    pub id: StepId,
    /// The instruction's first Dockerfile line (1-based). ONBUILD triggers carry the FROM line.
    pub line: usize,
    /// Its last line (inclusive; later than `line` for continuation lines and heredocs).
    pub end_line: usize,
    /// The instruction in capitals (`RUN`, `COPY`, …).
    pub keyword: String,
    /// The instruction as written (first line for display; full text incl. heredocs).
    pub source: String,
    /// Set for ONBUILD triggers inherited from the base image.
    pub onbuild: bool,
}

/// One platform's manifest in an image index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IndexEntry {
    /// `os/arch[/variant]`.
    pub platform: String,
    pub digest: Digest,
    pub size: u64,
}

/// One `RUN --mount` of a step, as the step has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MountInfo {
    /// `bind`, `cache`, `tmpfs`, `secret` or `ssh`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where it appears, absolute; `null` for a secret given only as an environment variable.
    pub target: Option<String>,
    /// What a bind or cache mount is filled from: `context`, `stage NAME` or `image REF`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The path inside `from` (bind and cache mounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A cache's, secret's or ssh agent's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Options in BuildKit's words: `ro`/`rw`, `sharing=locked`, `size=…`, `env=NAME`,
    /// `required`, `mode=0400`, `uid=…`/`gid=…`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}
