//! Image references (`[registry/]repository[:tag][@digest]`) with Docker's normalisation.
//!
//! The grammar and the defaults follow the Docker CLI (distribution's `reference` package):
//! a first path component is a registry only if it contains `.` or `:`, is `localhost`, or has
//! uppercase letters; otherwise the image lives on Docker Hub, whose one-component names get the
//! `library/` prefix. A reference without tag or digest gets `:latest`. Repository names must be
//! lowercase.

use std::fmt;
use std::str::FromStr;

use super::error::RegistryError;
use crate::digest::Digest;

/// The registry host Docker Hub images are stored under (and its API endpoint).
pub const DOCKER_HUB: &str = "index.docker.io";
/// How Docker Hub is written in the canonical, printed form of a reference.
const DOCKER_HUB_DISPLAY: &str = "docker.io";
/// Docker's limit on the length of `registry/repository`.
const NAME_TOTAL_MAX: usize = 255;

/// A normalised image reference.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reference {
    /// Registry host with optional port; `index.docker.io` for Docker Hub.
    pub registry: String,
    /// Repository path, e.g. `library/alpine`.
    pub repository: String,
    /// Tag; `latest` when the reference had neither tag nor digest.
    pub tag: Option<String>,
    /// Digest; when present it is what gets fetched, the tag is informational.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a reference: `alpine` → `docker.io/library/alpine:latest`,
    /// `localhost:5000/x`, `127.0.0.1:5000/x:t@sha256:…`. Uppercase repositories, bad tags,
    /// and digests other than sha256 are rejected with the reason.
    pub fn parse(s: &str) -> Result<Reference, RegistryError> {
        let bad = |reason: &str| RegistryError::InvalidReference {
            input: masked_userinfo(s).into_owned(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("empty reference"));
        }
        let (rest, digest) = match s.rsplit_once('@') {
            Some((name, d)) => {
                if !d.starts_with("sha256:") {
                    return Err(bad("only sha256 digests are supported"));
                }
                (name, Some(d.parse::<Digest>().map_err(|e| bad(&e.to_string()))?))
            }
            None => (s, None),
        };
        // A tag is a `:` after the last `/`, so a registry port is never mistaken for one.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(bad(&format!("invalid tag {t:?}")));
        }
        if name.is_empty() {
            return Err(bad("missing repository name"));
        }
        let (registry, repository) = split_registry(name);
        if !registry.is_empty() && !valid_host(registry) {
            return Err(bad(&format!("invalid registry {registry:?}")));
        }
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("repository name must be lowercase"));
        }
        if !valid_repository(repository) {
            return Err(bad(&format!("invalid repository name {repository:?}")));
        }
        let (registry, repository) = if registry.is_empty() || registry == DOCKER_HUB_DISPLAY || registry == DOCKER_HUB
        {
            let repo = if repository.contains('/') { repository.to_string() } else { format!("library/{repository}") };
            (DOCKER_HUB.to_string(), repo)
        } else {
            (registry.to_string(), repository.to_string())
        };
        if registry.len() + 1 + repository.len() > NAME_TOTAL_MAX {
            return Err(bad(&format!("repository name must not be longer than {NAME_TOTAL_MAX} characters")));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference { registry, repository, tag, digest })
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, RegistryError> {
        if !valid_tag(tag) {
            return Err(RegistryError::InvalidReference {
                input: format!("{}:{tag}", self.repo_ref()),
                reason: format!("invalid tag {tag:?}"),
            });
        }
        Ok(Reference { tag: Some(tag.to_string()), digest: None, ..self.clone() })
    }

    /// The same repository pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference { digest: Some(digest), ..self.clone() }
    }

    /// `registry/repository`, with Docker Hub written `docker.io` as in [`fmt::Display`].
    pub fn repo_ref(&self) -> String {
        format!("{}/{}", self.display_registry(), self.repository)
    }

    /// True for Docker Hub images (where `--registry-mirror` applies).
    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }

    /// What the manifest endpoint is addressed by: the digest if there is one, else the tag.
    pub(crate) fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    fn display_registry(&self) -> &str {
        if self.registry == DOCKER_HUB { DOCKER_HUB_DISPLAY } else { &self.registry }
    }
}

impl FromStr for Reference {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// The full form: `docker.io/library/alpine:latest`, `127.0.0.1:5000/x:t@sha256:…`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repo_ref())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Splits off the registry the way Docker does (see the module docs).
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => ("", name),
    }
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Path components `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`.
fn valid_repository(r: &str) -> bool {
    r.split('/').all(valid_path_component)
}

fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run: one `.`, one or two `_`, or any number of `-`.
        let start = i;
        let sep = b[i];
        while i < b.len() && b[i] == sep {
            i += 1;
        }
        let ok = match sep {
            b'.' => i - start == 1,
            b'_' => i - start <= 2,
            b'-' => true,
            _ => false,
        };
        // A separator must be followed by an alphanumeric, not by another kind of separator.
        if !ok || i == b.len() || !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            return false;
        }
    }
    true
}

/// A DNS name or IPv4 address, or a bracketed IPv6 address, with an optional numeric port.
fn valid_host(h: &str) -> bool {
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        let Some((v6, tail)) = rest.split_once(']') else { return false };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match tail {
            "" => (None, None),
            t => match t.strip_prefix(':') {
                Some(p) => (None, Some(p)),
                None => return false,
            },
        }
    } else {
        match h.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(h), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    match host {
        None => true,
        Some(host) => {
            !host.is_empty()
                && host.split('.').all(|label| {
                    let b = label.as_bytes();
                    !b.is_empty()
                        && b[0].is_ascii_alphanumeric()
                        && b[b.len() - 1].is_ascii_alphanumeric()
                        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                })
        }
    }
}

/// Where `s` (a reference, a repository or a registry as given on the command line, with or
/// without `http://`) holds URL-style credentials, `user[:password]@` before its host, the
/// byte range of them. `name@sha256:…` is a digest, not a user.
fn userinfo(s: &str) -> Option<std::ops::Range<usize>> {
    let start = ["http://", "https://"]
        .iter()
        .find(|p| s.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p)))
        .map_or(0, |p| p.len());
    let authority = &s[start..s[start..].find('/').map_or(s.len(), |i| start + i)];
    let at = authority.rfind('@')?;
    if authority[at + 1..].starts_with("sha256:") {
        return None;
    }
    Some(start..start + at)
}

/// Whether `s` names credentials in itself (`user:password@registry/…`), which no reference
/// may (Docker's grammar has no place for them; kaniko refuses them too). The caller refuses
/// them with [`masked_userinfo`] of the value, never the value.
pub fn has_userinfo(s: &str) -> bool {
    userinfo(s).is_some()
}

/// `s` with URL-style credentials before its host replaced by `***` (the user too: a token is
/// often given as one), for messages about a value typed with credentials in it.
pub fn masked_userinfo(s: &str) -> std::borrow::Cow<'_, str> {
    match userinfo(s) {
        Some(r) => format!("{}***{}", &s[..r.start], &s[r.end..]).into(),
        None => s.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_hub_normalisation() {
        let r = p("alpine");
        assert_eq!((r.registry.as_str(), r.repository.as_str()), (DOCKER_HUB, "library/alpine"));
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
        assert_eq!(p("docker.io/alpine:3").to_string(), "docker.io/library/alpine:3");
        assert_eq!(p("index.docker.io/library/alpine").repository, "library/alpine");
        assert_eq!(p("bitnami/redis:7").to_string(), "docker.io/bitnami/redis:7");
        assert!(p("ubuntu").is_docker_hub());
        assert_eq!(p("ubuntu").repo_ref(), "docker.io/library/ubuntu");
    }

    #[test]
    fn registries_with_ports_and_digests() {
        let r = p("localhost:5000/x");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "x", Some("latest"))
        );
        let r = p(&format!("127.0.0.1:5000/a/b:t@{D}"));
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert_eq!(r.digest.as_ref().unwrap().as_str(), D);
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/a/b:t@{D}"));
        let r = p(&format!("quay.io/x/y@{D}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.to_string(), format!("quay.io/x/y@{D}"));
        assert_eq!(p("localhost/foo").registry, "localhost");
        assert_eq!(p("[::1]:5000/foo:bar").registry, "[::1]:5000");
        assert_eq!(p("registry.trowel.test:443/a").registry, "registry.trowel.test:443");
    }

    #[test]
    fn rejections() {
        for bad in [
            "",
            "Alpine",
            "docker.io/Library/alpine",
            "alpine:",
            "alpine:-x",
            "alpine@sha256:abc",
            "alpine@md5:d41d8cd98f00b204e9800998ecf8427e",
            "a//b",
            "a/",
            "-a",
            "a..b",
            "a___b",
            "host:port/x",
            "[::1/x",
            "a b",
            &format!("x/{}", "a".repeat(260)),
            &format!("alpine:{}", "t".repeat(129)),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = Reference::parse("docker.io/Library/alpine").unwrap_err().to_string();
        assert!(e.contains("must be lowercase"), "{e}");
    }

    #[test]
    fn uppercase_first_component_is_a_registry() {
        // Docker's rule: a first component with uppercase letters cannot be a Hub namespace.
        let r = p("Myhost/foo");
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("Myhost", "foo"));
    }

    #[test]
    fn separators_in_path_components() {
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "a0/b-c/d.e_f"] {
            assert!(valid_repository(ok), "{ok}");
        }
        for bad in ["a.", ".a", "a-", "a._b", "a..b", "a___b", "A"] {
            assert!(!valid_repository(bad), "{bad}");
        }
    }

    #[test]
    fn with_tag_and_digest() {
        let r = p("127.0.0.1:5000/x:1");
        let d: Digest = D.parse().unwrap();
        assert_eq!(r.with_tag("2").unwrap().to_string(), "127.0.0.1:5000/x:2");
        assert!(r.with_tag("bad tag").is_err());
        assert_eq!(r.with_digest(d).to_string(), format!("127.0.0.1:5000/x:1@{D}"));
    }

    #[test]
    fn credentials_in_a_reference_are_found_and_masked() {
        for (given, masked) in [
            ("http://user:pw@127.0.0.1:5000/a/b:1", "http://***@127.0.0.1:5000/a/b:1"),
            ("user:pw@reg.example/repo", "***@reg.example/repo"),
            ("HTTPS://tok@reg.example", "HTTPS://***@reg.example"),
            ("mirroruser:Pass@127.0.0.1:5000", "***@127.0.0.1:5000"),
        ] {
            assert!(has_userinfo(given), "{given}");
            assert_eq!(masked_userinfo(given), masked);
        }
        // Not ASCII where a scheme would end: no panic (a remote context's FROM line).
        for odd in ["aaaaaaé", "aaaaaaaé/x", "ééééé@h/x"] {
            let _ = (has_userinfo(odd), masked_userinfo(odd));
        }
        assert!(Reference::parse("aaaaaaé").is_err());
        let d = format!("busybox@sha256:{}", "a".repeat(64));
        for plain in ["reg.example:5000/a/b:1", "busybox", "mirror.gcr.io", d.as_str(), "reg.example/a@sha256:00"] {
            assert!(!has_userinfo(plain), "{plain}");
            assert_eq!(masked_userinfo(plain), plain);
        }
    }
}
