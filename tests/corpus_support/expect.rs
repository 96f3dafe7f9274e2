//! A corpus case's `expect.json` (tests/corpus.rs): what its build must do and its image hold.
//! Unknown fields are refused, so a misspelt expectation cannot pass by checking nothing.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    #[serde(default)]
    pub flags: Vec<String>,
    pub target: Option<String>,
    #[serde(default)]
    pub files: BTreeMap<String, FileExpect>,
    #[serde(default)]
    pub absent: Vec<String>,
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub image: Option<Value>,
    pub layers: Option<usize>,
    pub history: Option<usize>,
    pub manifest_media_type: Option<String>,
    pub layer_media_types: Option<Vec<String>>,
    pub run: Option<RunExpect>,
    pub fail: Option<FailExpect>,
    #[serde(default)]
    pub log_contains: Vec<String>,
    #[serde(default)]
    pub log_lacks: Vec<String>,
    /// A Debian base for `FROM ${DEBIAN}` (a flavour of scripts/make-debian-image.sh).
    pub debian: Option<String>,
    /// `--secret id=…` values (placeholders filled); none may show in the log or the image.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Glob patterns no path of the image may match.
    #[serde(default)]
    pub absent_glob: Vec<String>,
    /// What the case is about (documentation only).
    #[serde(default, rename = "comment")]
    pub _comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileExpect {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub mode: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub content: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub link: Option<String>,
    pub same_inode_as: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunExpect {
    pub args: Option<Vec<String>>,
    pub stdout: String,
    #[serde(default)]
    pub exit_code: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailExpect {
    pub exit_code: Option<i32>,
    pub message: String,
}
