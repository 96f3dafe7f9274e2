//! Amazon Web Services: the SDK's credential chain (`credentials.rs`, `profile.rs`) and
//! Signature Version 4 (`sign.rs`), by hand (why not the AWS SDK: `engine/remote_context/s3`).
//! Used by `s3://` contexts and by the registry keychain's ECR login.

pub(crate) mod credentials;
pub(crate) mod profile;
pub(crate) mod sign;

/// The text of the first `<tag>…</tag>` of a small XML document (S3's and STS's answers and
/// errors), entities decoded. Enough for documents of known shape; no general XML parser.
pub(crate) fn xml_text(doc: &str, tag: &str) -> Option<String> {
    let start = doc.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = doc[start..].find(&format!("</{tag}>"))? + start;
    let raw = &doc[start..end];
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&#xD;", "\r")
            .replace("&amp;", "&"),
    )
}

pub(crate) use super::one_line;
