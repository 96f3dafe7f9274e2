//! Which `ADD` sources are git repositories, and what they ask for: BuildKit's rules
//! (moby/buildkit `frontend/dockerfile/dfgitutil/git_ref.go`, `util/gitutil/git_url.go`,
//! `util/sshutil/scpurl.go`), so a Dockerfile means the same thing here as under
//! `docker build`.
//!
//! - `http://` and `https://` URLs are git repositories only when their path ends in `.git`
//!   (anything else is a download); `git://` and `ssh://` URLs always are, and so is the scp-like
//!   form `user@host:path`. Other schemes and local paths are not.
//! - The fragment is `#ref:subdir` (a branch, a tag or a full commit, then a directory of the
//!   repository); the query may say the same and more: `ref`, `tag`, `branch`, `subdir`,
//!   `checksum`/`commit`, `keep-git-dir`, `submodules`, `mtime=checkout|commit`,
//!   `fetch-by-commit`, each at most once and consistent with the fragment.
//!
//! Pure: no I/O. Parsing is also what decides, before anything is pulled, that a Dockerfile
//! asks for something impossible (a bad query, an unknown `mtime`).

use std::fmt;

/// How a repository is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    Https,
    /// `git://`: git's own protocol, unencrypted.
    Git,
    /// `ssh://` or `user@host:path`.
    Ssh,
}

impl Transport {
    /// Sent in the clear (BuildKit discourages but accepts these).
    pub fn is_unencrypted(self) -> bool {
        matches!(self, Transport::Http | Transport::Git)
    }
}

/// A git source of `ADD`, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef {
    /// The repository as git is given it: the URL without its query and fragment (the scheme
    /// in lower case), or the scp-like form without them. May hold credentials: see
    /// [`GitRef::redacted`].
    pub remote: String,
    pub transport: Transport,
    /// A branch, a tag (`refs/tags/…` from `?tag=`), a full ref or a full commit; `None`: the
    /// repository's default branch.
    pub reference: Option<String>,
    /// A directory of the repository whose contents are added instead of the whole tree
    /// (cleaned: no leading `/`, no `.` or `..`).
    pub subdir: Option<String>,
    /// `?checksum=` / `?commit=`: a hex prefix the commit must start with.
    pub checksum: Option<String>,
    /// `?keep-git-dir[=bool]`.
    pub keep_git_dir: Option<bool>,
    /// `?submodules=false` skips submodules (they are checked out by default).
    pub submodules: Option<bool>,
    /// `?mtime=commit`: every file gets the commit's time (default: the time of the checkout).
    pub mtime_commit: bool,
    /// `?fetch-by-commit`: fetch the pinned commit itself instead of resolving the ref first.
    pub fetch_by_commit: bool,
}

impl GitRef {
    /// The remote with any user name and password replaced by `xxxxx`, as BuildKit prints it:
    /// what messages, cache entries and a kept `.git/config` may show.
    pub fn redacted(&self) -> String {
        redact_url(&self.remote)
    }

    /// Whether checking out needs nothing but the commit: a full commit id as the ref.
    pub fn reference_is_commit(&self) -> bool {
        self.reference.as_deref().is_some_and(is_commit_sha)
    }
}

impl fmt::Display for GitRef {
    /// `remote#ref:subdir`, credentials redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())?;
        if self.reference.is_some() || self.subdir.is_some() {
            write!(f, "#{}", self.reference.as_deref().unwrap_or(""))?;
            if let Some(s) = &self.subdir {
                write!(f, ":{s}")?;
            }
        }
        Ok(())
    }
}

/// Why an ssh source cannot be fetched without an agent (BuildKit clones it with the build's
/// `default` agent).
pub fn ssh_needs_agent(remote: &str) -> String {
    format!(
        "{remote}: cloning over ssh needs the build's default ssh agent, which was not given: pass --ssh default \
         (the agent at $SSH_AUTH_SOCK) or --ssh default=KEYFILE, or use an https:// URL"
    )
}

/// A full SHA-1 or SHA-256 commit id (lower-case hex, as git prints them).
pub fn is_commit_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `src` names a git repository (BuildKit's `isGitSource`): a git URL form, even one
/// whose options are wrong (that is an error of the source, not a local path).
pub fn is_git_source(src: &str) -> bool {
    !matches!(parse_git_ref(src), Ok(None))
}

/// Parses an `ADD` source. `Ok(None)`: not a git repository (a local path or a download);
/// `Err`: a git repository whose URL, fragment or query is wrong.
pub fn parse_git_ref(src: &str) -> Result<Option<GitRef>, String> {
    if src.starts_with("./") || src.starts_with("../") || src.starts_with("github.com/") {
        // `github.com/org/repo` is git only as a build context in BuildKit, a local path here.
        return Ok(None);
    }
    let parts = match split_scheme(src) {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            let transport = match scheme.as_str() {
                "http" => Transport::Http,
                "https" => Transport::Https,
                "git" => Transport::Git,
                "ssh" => Transport::Ssh,
                _ => return Ok(None),
            };
            let (before_fragment, fragment) = match rest.split_once('#') {
                Some((b, f)) => (b, Some(f)),
                None => (rest, None),
            };
            let (without_query, query) = match before_fragment.split_once('?') {
                Some((b, q)) => (b, Some(q)),
                None => (before_fragment, None),
            };
            let path = without_query.find('/').map_or("", |i| &without_query[i..]);
            let path = percent_decode(path).unwrap_or_else(|| path.to_string());
            if matches!(transport, Transport::Http | Transport::Https) && !path.ends_with(".git") {
                return Ok(None);
            }
            let authority = without_query.split('/').next().unwrap_or("");
            if authority.rsplit('@').next().unwrap_or("").is_empty() {
                return Err(format!("git URL {} has no host", redact_url(src)));
            }
            Parts { remote: format!("{scheme}://{without_query}"), transport, query, fragment }
        }
        None => match scp_like(src) {
            Some((remote, query, fragment)) => Parts { remote, transport: Transport::Ssh, query, fragment },
            None => return Ok(None),
        },
    };
    let mut git = GitRef {
        remote: parts.remote,
        transport: parts.transport,
        reference: None,
        subdir: None,
        checksum: None,
        keep_git_dir: None,
        submodules: None,
        mtime_commit: false,
        fetch_by_commit: false,
    };
    if let Some(fragment) = parts.fragment.filter(|f| !f.is_empty()) {
        let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        git.reference = Some(reference.to_string()).filter(|r| !r.is_empty());
        git.subdir = clean_subdir(subdir);
    }
    if let Some(q) = parts.query.filter(|q| !q.is_empty()) {
        apply_query(&mut git, q)?;
    }
    if let Some(r) = &git.reference
        && r.starts_with('-')
    {
        return Err(format!("invalid git ref {r:?}"));
    }
    if let Some(c) = &git.checksum
        && !is_hex(c)
    {
        return Err(format!("invalid checksum {c} for Git URL, expected hex commit hash"));
    }
    Ok(Some(git))
}

struct Parts<'a> {
    remote: String,
    transport: Transport,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `scheme://rest` with BuildKit's scheme pattern (`[a-zA-Z0-9]+`).
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    (!scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric())).then_some((scheme, rest))
}

/// The scp-like form `user@host:path[?query][#fragment]` (user: letters, digits, `-`, `_`;
/// host: letters, digits, `-`, `.`): (remote, query, fragment).
fn scp_like(s: &str) -> Option<(String, Option<&str>, Option<&str>)> {
    let (user, rest) = s.split_once('@')?;
    if user.is_empty() || !user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return None;
    }
    let (host, rest) = rest.split_once(':')?;
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        return None;
    }
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (rest, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    Some((format!("{user}@{host}:{path}"), query, fragment))
}

/// A subdir as BuildKit keeps it: cleaned as an absolute path, then made relative; `None` for
/// the repository's root.
fn clean_subdir(s: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn parse_bool(key: &str, value: Option<&str>) -> Result<bool, String> {
    match value {
        None => Ok(true),
        // Go's strconv.ParseBool.
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(v) => Err(format!("invalid {key} value: {v:?}")),
    }
}

/// The query of a git URL (`?ref=…&subdir=…`), with BuildKit's rules.
fn apply_query(git: &mut GitRef, query: &str) -> Result<(), String> {
    let mut seen: Vec<String> = Vec::new();
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    for field in query.split('&').filter(|f| !f.is_empty()) {
        if field.contains(';') {
            return Err(format!("invalid query {query:?}: semicolons are not separators"));
        }
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        let k = percent_decode_query(k).ok_or_else(|| format!("invalid query key {k:?}"))?;
        let v = percent_decode_query(v).ok_or_else(|| format!("invalid query value {v:?}"))?;
        if seen.contains(&k) {
            return Err(format!("query {k:?} has multiple values"));
        }
        seen.push(k.clone());
        let v = if v.is_empty() {
            match k.as_str() {
                "submodules" | "keep-git-dir" | "fetch-by-commit" => None,
                _ => return Err(format!("query {k:?} has no value")),
            }
        } else {
            Some(v)
        };
        pairs.push((k, v));
    }
    let (mut tag, mut branch) = (None, None);
    for (k, v) in pairs {
        match (k.as_str(), v) {
            ("ref", Some(v)) => {
                if let Some(r) = &git.reference
                    && *r != v
                {
                    return Err(format!("ref conflicts: {r:?} vs {v:?}"));
                }
                git.reference = Some(v);
            }
            ("tag", Some(v)) => tag = Some(v),
            ("branch", Some(v)) => branch = Some(v),
            ("subdir", Some(v)) => {
                let v = clean_subdir(&v);
                if git.subdir.is_some() && v.is_some() && git.subdir != v {
                    return Err(format!(
                        "subdir conflicts: {:?} vs {:?}",
                        git.subdir.as_deref().unwrap_or(""),
                        v.as_deref().unwrap_or("")
                    ));
                }
                git.subdir = git.subdir.take().or(v);
            }
            ("checksum" | "commit", Some(v)) => git.checksum = Some(v),
            ("keep-git-dir", v) => git.keep_git_dir = Some(parse_bool("keep-git-dir", v.as_deref())?),
            ("submodules", v) => git.submodules = Some(parse_bool("submodules", v.as_deref())?),
            ("fetch-by-commit", v) => git.fetch_by_commit = parse_bool("fetch-by-commit", v.as_deref())?,
            ("mtime", Some(v)) => match v.as_str() {
                "checkout" => git.mtime_commit = false,
                "commit" => git.mtime_commit = true,
                _ => return Err(format!("invalid mtime value: {v:?} (must be \"checkout\" or \"commit\")")),
            },
            (other, _) => return Err(format!("unexpected query {other:?}")),
        }
    }
    let prefixed = |name: String, prefix: &str| {
        if name.starts_with(prefix) { name } else { format!("{prefix}{name}") }
    };
    if let Some(t) = tag {
        let t = prefixed(t, "refs/tags/");
        if let Some(r) = &git.reference
            && *r != t
        {
            return Err(format!("ref conflicts: {r:?} vs {t:?}"));
        }
        git.reference = Some(t);
    }
    if let Some(b) = branch {
        if git.reference.as_deref().is_some_and(|r| r.starts_with("refs/tags/")) {
            return Err("branch conflicts with tag".into());
        }
        let b = prefixed(b, "refs/heads/");
        if let Some(r) = &git.reference
            && *r != b
        {
            return Err(format!("ref conflicts: {r:?} vs {b:?}"));
        }
        git.reference = Some(b);
    }
    Ok(())
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `%XX` decoding of a URL path; `None` for a malformed escape or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex_val(*b.get(i + 1)?)?;
            let lo = hex_val(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Query decoding: `+` is a space, then `%XX`.
fn percent_decode_query(s: &str) -> Option<String> {
    percent_decode(&s.replace('+', " "))
}

/// `scheme://user:password@host/…` → `scheme://xxxxx:xxxxx@host/…` (a user alone becomes
/// `xxxxx`): BuildKit's `RedactCredentials`. Strings that are not such URLs are returned as they
/// are (the scp-like `git@host:path` names a user, not a secret).
pub fn redact_url(s: &str) -> String {
    let Some((scheme, rest)) = split_scheme(s) else { return s.to_string() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let Some(at) = authority.rfind('@') else { return s.to_string() };
    let userinfo = &authority[..at];
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    let masked = match (user.is_empty(), password) {
        (false, Some(_)) => "xxxxx:xxxxx".to_string(),
        (false, None) => "xxxxx".to_string(),
        (true, Some(_)) => ":xxxxx".to_string(),
        (true, None) => String::new(),
    };
    format!("{scheme}://{masked}@{}", &rest[at + 1..])
}

/// Every URL with credentials in `text` redacted (for git's own messages, which may quote the
/// remote).
pub fn redact_urls_in(text: &str, remote: &str) -> String {
    let redacted = redact_url(remote);
    let mut out = text.replace(remote, &redacted);
    // git also quotes the URL without a trailing `.git` or with a `/` added; mask any
    // `scheme://user:pass@` left anywhere.
    for scheme in ["http://", "https://", "git://", "ssh://"] {
        let mut from = 0;
        while let Some(i) = out[from..].find(scheme).map(|i| i + from) {
            let end = out[i..].find(|c: char| c.is_whitespace() || c == '\'' || c == '"').map_or(out.len(), |e| e + i);
            let url = out[i..end].to_string();
            let r = redact_url(&url);
            out.replace_range(i..end, &r);
            from = i + r.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(src: &str) -> GitRef {
        parse_git_ref(src).unwrap_or_else(|e| panic!("{src}: {e}")).unwrap_or_else(|| panic!("{src}: not git"))
    }

    #[test]
    fn which_sources_are_git() {
        for s in [
            "https://github.com/moby/buildkit.git",
            "http://127.0.0.1:9418/repo.git#main",
            "HTTPS://host/x.git",
            "git://host/repo",
            "ssh://git@host:2222/org/repo",
            "git@github.com:moby/buildkit.git",
            "git@github.com:moby/buildkit.git#v0.14.1:docs",
            "https://host/repo.git?ref=main",
        ] {
            assert!(is_git_source(s), "{s}");
        }
        for s in [
            "https://host/archive.tar.gz",
            "https://host/repo.git/",
            "https://host/repo",
            "ftp://host/repo.git",
            "./repo.git",
            "../x.git",
            "github.com/moby/buildkit",
            "src/",
            "a:b",
            "@host:path",
            "user@:path",
            "file:///srv/repo.git",
        ] {
            assert!(!is_git_source(s), "{s}");
        }
    }

    #[test]
    fn fragments() {
        let g = git("https://github.com/foo/bar.git#baz/qux:quux/quuz");
        assert_eq!(g.remote, "https://github.com/foo/bar.git");
        assert_eq!(g.transport, Transport::Https);
        assert_eq!(g.reference.as_deref(), Some("baz/qux"));
        assert_eq!(g.subdir.as_deref(), Some("quux/quuz"));

        let g = git("git@github.com:moby/buildkit.git#v0.14.1:/docs/../docs/./");
        assert_eq!(g.remote, "git@github.com:moby/buildkit.git");
        assert_eq!(g.transport, Transport::Ssh);
        assert_eq!(g.reference.as_deref(), Some("v0.14.1"));
        assert_eq!(g.subdir.as_deref(), Some("docs"));

        let g = git("https://host/r.git#:sub");
        assert_eq!((g.reference, g.subdir.as_deref()), (None, Some("sub")));
        let g = git("https://host/r.git#");
        assert_eq!((g.reference, g.subdir), (None, None));
        let g = git("https://host/r.git#main:/");
        assert_eq!(g.subdir, None);
        assert_eq!(git("HTTPS://Host/r.git").remote, "https://Host/r.git");
    }

    #[test]
    fn queries() {
        let g = git("https://host/r.git?ref=main&subdir=a/b&keep-git-dir&submodules=false&mtime=commit");
        assert_eq!(g.reference.as_deref(), Some("main"));
        assert_eq!(g.subdir.as_deref(), Some("a/b"));
        assert_eq!(g.keep_git_dir, Some(true));
        assert_eq!(g.submodules, Some(false));
        assert!(g.mtime_commit);
        assert_eq!(g.remote, "https://host/r.git");

        assert_eq!(git("https://host/r.git?tag=v1").reference.as_deref(), Some("refs/tags/v1"));
        assert_eq!(git("https://host/r.git?branch=dev").reference.as_deref(), Some("refs/heads/dev"));
        assert_eq!(git("https://host/r.git?commit=abc123").checksum.as_deref(), Some("abc123"));
        assert_eq!(git("git@host:r.git?ref=x#x").reference.as_deref(), Some("x"));
        assert!(git("https://host/r.git?fetch-by-commit=true&checksum=ab").fetch_by_commit);

        for (src, err) in [
            ("https://host/r.git?ref=a#b", "ref conflicts: \"b\" vs \"a\""),
            ("https://host/r.git?tag=v1&branch=main", "branch conflicts with tag"),
            ("https://host/r.git?subdir=a#:b", "subdir conflicts: \"b\" vs \"a\""),
            ("https://host/r.git?ref=", "query \"ref\" has no value"),
            ("https://host/r.git?ref=a&ref=a", "query \"ref\" has multiple values"),
            ("https://host/r.git?mtime=now", "invalid mtime value: \"now\" (must be \"checkout\" or \"commit\")"),
            ("https://host/r.git?keep-git-dir=maybe", "invalid keep-git-dir value: \"maybe\""),
            ("https://host/r.git?depth=1", "unexpected query \"depth\""),
            ("https://host/r.git?checksum=xyz", "invalid checksum xyz for Git URL, expected hex commit hash"),
            ("https://host/r.git#--upload-pack=touch", "invalid git ref \"--upload-pack=touch\""),
            ("https://@/r.git", "git URL https://@/r.git has no host"),
        ] {
            assert_eq!(parse_git_ref(src).unwrap_err(), err, "{src}");
            assert!(is_git_source(src), "{src}");
        }
    }

    #[test]
    fn display_and_redaction() {
        let g = git("https://oauth2:s3cret@host/org/r.git#main:sub");
        assert_eq!(g.to_string(), "https://xxxxx:xxxxx@host/org/r.git#main:sub");
        assert_eq!(git("https://tok3n@host/r.git").redacted(), "https://xxxxx@host/r.git");
        assert_eq!(git("git@host:r.git").redacted(), "git@host:r.git");
        assert_eq!(git("https://host/r.git").to_string(), "https://host/r.git");
        let msg = "fatal: unable to access 'https://oauth2:s3cret@host/org/r.git/': 403";
        let red = redact_urls_in(msg, "https://oauth2:s3cret@host/org/r.git");
        assert_eq!(red, "fatal: unable to access 'https://xxxxx:xxxxx@host/org/r.git/': 403");
        let red = redact_urls_in("see http://a:b@h/x and http://c@h/y", "https://other/");
        assert_eq!(red, "see http://xxxxx:xxxxx@h/x and http://xxxxx@h/y");
    }

    #[test]
    fn commit_ids() {
        assert!(is_commit_sha(&"a".repeat(40)));
        assert!(is_commit_sha(&"0".repeat(64)));
        assert!(!is_commit_sha(&"A".repeat(40)));
        assert!(!is_commit_sha("abc123"));
        assert!(git(&format!("https://h/r.git#{}", "b".repeat(40))).reference_is_commit());
    }
}
