//! Recognising secret values so they never reach logs, traces or cache entries.
//!
//! A build arg is treated as secret when its name contains one of the usual markers (TOKEN,
//! PASSWORD, SECRET, KEY, …), as BuildKit's secrets linter does, or when the user named it with
//! `--secret-arg`. Credentials written into a URL (`https://user:token@host/…`, as in an `ADD`
//! of a private git repository), in any build arg or in the Dockerfile, are secret too.

use sha2::Digest as _;

const MARKERS: &[&str] = &["TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "CREDENTIAL", "AUTH", "PRIVATE", "PASS"];

/// Whether a variable name marks its value as secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    MARKERS.iter().any(|m| upper.contains(m))
}

/// The credentials written into URLs in `text`: the password of `scheme://user:password@`, or
/// the user of `scheme://user@` (a token passed as the user name, as GitHub and GitLab accept) —
/// except in `ssh://user@`, where the user is a login name (`git`, `root`) that ssh never takes
/// a token in: masking it would mask that word everywhere.
pub fn url_credentials(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let scheme_ok = rest[..i].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric());
        let after = &rest[i + 3..];
        let end =
            after.find(|c: char| matches!(c, '/' | '?' | '#' | '\'' | '"') || c.is_whitespace()).unwrap_or(after.len());
        let authority = &after[..end];
        let ssh = rest[..i].to_ascii_lowercase().ends_with("ssh");
        if scheme_ok && let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            let secret = match userinfo.split_once(':') {
                Some((_, password)) => password,
                None if ssh => "",
                None => userinfo,
            };
            if !secret.is_empty() && !out.iter().any(|o| o == secret) {
                out.push(secret.to_string());
            }
        }
        rest = &after[end..];
    }
    out
}

/// A short fingerprint of a secret value, so that a secret build arg changing changes the cache
/// key: 32 bits tell a changed value and say nothing of a random token, but they do confirm a
/// guess among fewer than ~2³² candidates (a weak password), which README says; a value that
/// must stay unguessable belongs in `--secret`, which no key records.
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
    fn credentials_in_urls() {
        assert_eq!(url_credentials("ADD https://oauth2:glpat-xyz@gitlab.example/g/r.git /src"), ["glpat-xyz"]);
        assert_eq!(url_credentials("https://ghp_token123@github.com/o/r.git"), ["ghp_token123"]);
        assert_eq!(
            url_credentials("a http://u:p1@h/x b git://h/y ssh://git@h:22/z 'http://v:p2@h' ssh://u:p3@h/r"),
            ["p1", "p2", "p3"]
        );
        assert!(url_credentials("https://host/path?x=a@b git@github.com:o/r.git").is_empty());
    }

    #[test]
    fn fingerprints_differ_and_are_short() {
        assert_ne!(fingerprint("a"), fingerprint("b"));
        assert_eq!(fingerprint("a").len(), "sha256:".len() + 8 + "…".len());
    }
}

/// Replaces secret values in everything the engine reports (events, hence logs and traces).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret containing another is replaced whole.
    values: Vec<String>,
}

/// What a secret is replaced with.
pub const MASK: &str = "***";

impl Redactor {
    /// Secrets shorter than this are not redacted: masking every "1" or "on" would destroy the
    /// log without protecting anything.
    pub const MIN_LEN: usize = 4;

    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut values: Vec<String> = values.into_iter().filter(|v| v.len() >= Self::MIN_LEN).collect();
        // Secrets also show up JSON-escaped (inside serialised configs).
        let escaped: Vec<String> = values
            .iter()
            .filter_map(|v| serde_json::to_string(v).ok().map(|s| s[1..s.len() - 1].to_string()))
            .filter(|e| !values.contains(e))
            .collect();
        values.extend(escaped);
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Redactor { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// A redactor masking both `self`'s values and `other`'s.
    pub fn merged(&self, other: &Redactor) -> Redactor {
        self.with(other.values.iter().cloned())
    }

    /// This redactor masking `more` as well.
    pub fn with(&self, more: impl IntoIterator<Item = String>) -> Redactor {
        Redactor::new(self.values.iter().cloned().chain(more))
    }

    /// Length of the longest secret (streamed output holds back this much minus one byte so a
    /// secret split across two chunks is still caught).
    pub fn max_len(&self) -> usize {
        self.values.first().map(String::len).unwrap_or(0)
    }

    pub fn redact(&self, s: &str) -> String {
        let mut out = s.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }

    /// Masks every secret inside a JSON value, in strings and in object keys alike. Returns
    /// whether anything was masked.
    pub fn redact_json(&self, v: &mut serde_json::Value) -> bool {
        let hit = |s: &str| self.values.iter().any(|x| s.contains(x.as_str()));
        match v {
            serde_json::Value::String(s) if hit(s) => {
                *s = self.redact(s);
                true
            }
            serde_json::Value::Array(a) => a.iter_mut().fold(false, |acc, x| self.redact_json(x) | acc),
            serde_json::Value::Object(o) => {
                let mut changed = false;
                if o.keys().any(|k| hit(k)) {
                    let entries = std::mem::take(o);
                    for (k, val) in entries {
                        o.insert(if hit(&k) { self.redact(&k) } else { k }, val);
                    }
                    changed = true;
                }
                o.values_mut().fold(changed, |acc, x| self.redact_json(x) | acc)
            }
            _ => false,
        }
    }
}

/// The secret values among build args: those whose names look secret, and those named with
/// `--secret-arg`.
pub fn secret_build_args<'a>(
    build_args: impl IntoIterator<Item = (&'a String, &'a String)>,
    extra_names: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in build_args {
        if is_secret_name(k) || extra_names.iter().any(|n| n == k) {
            out.push(v.clone());
        }
        out.extend(url_credentials(v));
    }
    out
}

#[cfg(test)]
mod redactor_tests {
    use super::*;

    #[test]
    fn redacts_plain_and_escaped() {
        let r = Redactor::new(vec!["hunter2-secret".to_string(), "a\"b\\c-token".to_string(), "x".to_string()]);
        assert_eq!(r.redact("pw=hunter2-secret!"), "pw=***!");
        let mut v = serde_json::json!({"env": ["T=a\"b\\c-token"], "n": 1, "short": "x"});
        assert!(r.redact_json(&mut v));
        assert_eq!(v["env"][0], "T=***");
        assert_eq!(v["short"], "x", "values under the minimum length are left alone");
        let json = serde_json::to_string(&serde_json::json!("a\"b\\c-token")).unwrap();
        assert_eq!(r.redact(&json), "\"***\"");
        let mut keyed = serde_json::json!({"hunter2-secret": 1, "clean": ["x"]});
        assert!(r.redact_json(&mut keyed));
        assert_eq!(keyed, serde_json::json!({"***": 1, "clean": ["x"]}));
        assert!(!r.redact_json(&mut serde_json::json!({"nothing": "here"})));
    }
}
