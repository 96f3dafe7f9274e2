//! Content digests as events carry them: validated `sha256:<hex>` strings, nothing more.
//!
//! The engine has its own digest type, with hashing; this one is the contract's, so the trace
//! format does not move when the engine's type does. Validation on reading matters: an event
//! whose digest was mangled (by secret masking, or by a hand-edited trace) is refused rather
//! than shown as if it named a blob.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A `sha256:<64 lowercase hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct Digest(String);

/// A string that is not a `sha256:` digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDigest(pub String);

impl fmt::Display for InvalidDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid digest {:?}: expected sha256:<64 hex digits>", self.0)
    }
}

impl std::error::Error for InvalidDigest {}

const PREFIX: &str = "sha256:";

impl Digest {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    /// `sha256:abcdef123456`: the short form logs and the debugger show.
    pub fn short(&self) -> &str {
        &self.0[..PREFIX.len() + 12]
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix(PREFIX).ok_or_else(|| InvalidDigest(s.to_string()))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(InvalidDigest(s.to_string()));
        }
        Ok(Digest(s.to_string()))
    }
}

impl TryFrom<String> for Digest {
    type Error = InvalidDigest;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_hex_is_a_digest() {
        let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(d.short(), "sha256:abababababab");
        assert_eq!(d.hex().len(), 64);
        for bad in ["sha256:***", "abc", &format!("sha256:{}", "AB".repeat(32)), &format!("md5:{}", "ab".repeat(32))] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Digest>("\"sha256:***\"").is_err());
    }
}
