//! Cloud credentials and the small HTTP client that fetches them: AWS's credential chain and
//! SigV4 (`aws/`), Microsoft Entra ID tokens (`azure/`), Google's Application Default
//! Credentials (`google/`), and `http.rs`.
//!
//! Two users need them: the registry keychain (`registry/cloud_auth.rs`: ECR's, Google's and
//! Azure's registries with no `config.json`, as kaniko's compiled-in keychains) and the remote
//! build contexts (`engine/remote_context/`: `s3://`, `gs://`, Azure Blob Storage). They live here, under `registry`,
//! because the engine may import the registry but nothing below the engine may import it back,
//! and because `http.rs` shares the registry's stall watch and its wording of transport errors.

pub(crate) mod aws;
pub(crate) mod azure;
pub(crate) mod google;
pub(crate) mod http;

/// A server's words as one short line of printable text, at most 200 characters: they are
/// hostile input too (a registry's error messages, AWS's and Google's error documents, a
/// download's refusal). Control characters (a terminal's escapes, a line break that would forge
/// a log line) and invisible formatting (bidirectional overrides) become spaces; letters and
/// digits of any script stay.
pub(crate) fn one_line(s: &str) -> String {
    let shown = |c: char| c.is_ascii_graphic() || (!c.is_ascii() && c.is_alphanumeric());
    let s: String = s.chars().map(|c| if shown(c) { c } else { ' ' }).collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect()
}
