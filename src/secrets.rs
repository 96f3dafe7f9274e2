//! Recognising secret values so they never reach logs, traces or cache entries.
//!
//! A build arg is treated as secret when its name contains one of the usual markers (TOKEN,
//! PASSWORD, SECRET, KEY, …), as BuildKit's secrets linter does, or when the user named it with
//! `--secret-arg`.

use sha2::Digest as _;

const MARKERS: &[&str] = &["TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "CREDENTIAL", "AUTH", "PRIVATE", "PASS"];

/// Whether a variable name marks its value as secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    MARKERS.iter().any(|m| upper.contains(m))
}

/// A short fingerprint of a secret value: enough to tell that it changed, too short to confirm a
/// guess (32 bits collide for most candidate values).
pub fn fingerprint(value: &str) -> String {
    let h = sha2::Sha256::digest(value.as_bytes());
    format!("sha256:{}…", &hex::encode(h)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for s in ["GITHUB_TOKEN", "npm_token", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "SSH_KEY", "API_AUTH"] {
            assert!(is_secret_name(s), "{s}");
        }
        for s in ["VERSION", "HTTP_PROXY", "TARGETARCH", "NAME"] {
            assert!(!is_secret_name(s), "{s}");
        }
    }

    #[test]
    fn fingerprints_differ_and_are_short() {
        assert_ne!(fingerprint("a"), fingerprint("b"));
        assert_eq!(fingerprint("a").len(), "sha256:".len() + 8 + "…".len());
    }
}
