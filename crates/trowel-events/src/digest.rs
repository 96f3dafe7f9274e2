//! Content digests as events carry them: validated `sha256:<hex>` strings, nothing more.
//!
//! The engine has its own digest type, with hashing; this one is the contract's, so the trace
//! format does not move when the engine's type does. Validation on reading matters: an event
//! whose digest was mangled (by secret masking, or by a hand-edited trace) is refused rather
//! than shown as if it named a blob.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

// The text is held inline rather than in a `String`: a build keeps a digest for every file it
// copies, in several structures at once (a COPY's key, its snapshot, its layer), and a heap
// string costs a 24-byte handle plus an 80-byte allocation where the text is 71 bytes
// (bench/README, "A COPY of 100,000 small files"). Byte order is the text's order, so sorting
// is unchanged. (Not a doc comment: that is the trace format's description of the type.)
/// A `sha256:<64 lowercase hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub struct Digest([u8; LEN]);

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
const LEN: usize = PREFIX.len() + 64;

impl Digest {
    /// The digest whose SHA-256 is `sum`.
    pub fn from_sha256(sum: &[u8; 32]) -> Digest {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; LEN];
        text[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
        for (i, b) in sum.iter().enumerate() {
            text[PREFIX.len() + 2 * i] = HEX[usize::from(b >> 4)];
            text[PREFIX.len() + 2 * i + 1] = HEX[usize::from(b & 15)];
        }
        Digest(text)
    }

    /// The SHA-256 the text spells.
    pub fn sha256(&self) -> [u8; 32] {
        let nibble = |c: u8| if c.is_ascii_digit() { c - b'0' } else { c - b'a' + 10 };
        let hex = &self.0[PREFIX.len()..];
        std::array::from_fn(|i| nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored: `from_str` checks it, `from_sha256` writes it.
        std::str::from_utf8(&self.0).expect("a digest is ASCII")
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.as_str()[PREFIX.len()..]
    }

    /// `sha256:abcdef123456`: the short form logs and the debugger show.
    pub fn short(&self) -> &str {
        &self.as_str()[..PREFIX.len() + 12]
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix(PREFIX).ok_or_else(|| InvalidDigest(s.to_string()))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(InvalidDigest(s.to_string()));
        }
        let mut text = [0u8; LEN];
        text.copy_from_slice(s.as_bytes());
        Ok(Digest(text))
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
        d.as_str().to_string()
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.as_str())
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

    /// The inline text round-trips through JSON as the plain string, and a digest made from a
    /// sum reads as its hex.
    #[test]
    fn inline_text_serializes_as_the_string() {
        let mut sum = [0u8; 32];
        sum[0] = 0xab;
        sum[31] = 0x0f;
        let d = Digest::from_sha256(&sum);
        let text = format!("sha256:ab{}0f", "00".repeat(30));
        assert_eq!(d.as_str(), text);
        assert_eq!(d.sha256(), sum);
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Digest>(&format!("\"{text}\"")).unwrap(), d);
        assert_eq!(String::from(d), text);
    }
}
