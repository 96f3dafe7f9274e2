//! What `--context` and `--git` say, parsed once into a [`ContextSource`] and [`GitOptions`],
//! with kaniko's syntax and meaning (`pkg/buildcontext/buildcontext.go`, `git.go`,
//! `pkg/config/options.go`). Pure: the environment is passed in.
//!
//! - a path, or `dir://PATH`: a local directory;
//! - `tar://PATH` (a `.tar`, `.tar.gz`…) and `tar://stdin`;
//! - `git://HOST/PATH#REF#COMMIT`: a repository fetched over https, or over http when
//!   `GIT_PULL_METHOD=http`, as kaniko does (trowel adds `GIT_PULL_METHOD=git`: git's own
//!   protocol); `REF` a branch, tag or other ref (`refs/pull/…`) or a commit, `COMMIT` the
//!   commit checked out after `REF` is fetched;
//! - `https://…/REPO.git#REF#COMMIT` and `http://…/REPO.git…`: the same, over that scheme
//!   (trowel's, as BuildKit reads such a URL);
//! - `s3://BUCKET/KEY` and `gs://BUCKET/OBJECT`: an archive in an object store (the object
//!   `context.tar.gz` when no path is given, as kaniko does);
//! - `https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB` (and the other Azure clouds' hosts,
//!   kaniko's list): an archive in Azure Blob Storage;
//! - any other `https://` URL: an archive downloaded from it (kaniko's `HTTPSTar`).

use std::path::PathBuf;

use crate::dockerfile::gitref::redact_url;
use crate::git::context::BasicAuth;

/// Where the build context comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextSource {
    /// A local directory.
    Dir(PathBuf),
    /// A tar archive, plain or compressed.
    Tar(TarInput),
    /// A git repository.
    Git(GitSource),
    /// `s3://BUCKET/KEY`.
    S3(ObjectSource),
    /// `gs://BUCKET/OBJECT`.
    Gcs(ObjectSource),
    /// An Azure Blob Storage URL.
    Azure(AzureSource),
    /// An archive at an `https://` URL.
    Https(HttpsSource),
}

/// An object in a bucket (`s3://`, `gs://`), as kaniko reads the URL
/// (`pkg/util/bucket.GetNameAndFilepathFromURI`): the host is the bucket, the path the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSource {
    pub bucket: String,
    /// The object's name, without the leading `/`; `context.tar.gz` when the URL has no path.
    pub key: String,
    /// The `--context` value as written (no credentials can be written in it).
    pub shown: String,
}

/// A blob in Azure Blob Storage, `https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureSource {
    /// The URL, query included (a SAS token is a credential there: never shown).
    pub url: String,
    pub account: String,
    pub container: String,
    pub blob: String,
    /// The URL without its query.
    pub shown: String,
}

/// An archive at an `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsSource {
    /// The URL as given (credentials in it are used, never shown).
    pub url: String,
    /// The URL, credentials and query masked.
    pub shown: String,
}

/// The Azure clouds' blob hosts, kaniko's `AzureBlobStorageHostRegEx`.
const AZURE_BLOB_SUFFIXES: [&str; 4] =
    [".blob.core.windows.net", ".blob.core.chinacloudapi.cn", ".blob.core.cloudapi.de", ".blob.core.usgovcloudapi.net"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TarInput {
    File(PathBuf),
    /// `tar://stdin`: the archive on standard input.
    Stdin,
}

/// A git repository as the context names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// The URL git fetches: scheme, host, path; never credentials.
    pub remote: String,
    /// The context value as written, credentials masked: what logs and traces show.
    pub shown: String,
    /// `#REF`.
    pub reference: Option<String>,
    /// `#REF#COMMIT`.
    pub commit: Option<String>,
    /// Credentials written in the URL (`https://user:token@host/…`); the `GIT_*` variables
    /// win over them, as they do in kaniko.
    pub url_auth: Option<BasicAuth>,
}

/// kaniko's `--git` options, and trowel's `depth`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitOptions {
    /// `branch=NAME`: clone this branch (or tag) instead of `#REF`.
    pub branch: Option<String>,
    /// `single-branch=BOOL` (default false): fetch only that branch.
    pub single_branch: bool,
    /// `recurse-submodules=BOOL` (default false).
    pub recurse_submodules: bool,
    /// `insecure-skip-tls=BOOL` (default false): do not verify an https remote's certificate.
    pub insecure_skip_tls: bool,
    /// `depth=N` (default 0: the whole history, as kaniko clones it).
    pub depth: Option<u32>,
}

const GIT_KEYS: [&str; 5] = ["branch", "single-branch", "recurse-submodules", "insecure-skip-tls", "depth"];

impl GitOptions {
    /// Every `--git` value, in order: `key=value`, several separated by commas
    /// (`branch=main,single-branch=true`), or one per flag as kaniko takes them.
    pub fn parse(flags: &[String]) -> Result<GitOptions, String> {
        let mut o = GitOptions::default();
        for flag in flags {
            for item in split_items(flag) {
                let Some((key, value)) = item.split_once('=') else {
                    return Err(format!("invalid --git {item:?}: expected KEY=VALUE (keys: {})", GIT_KEYS.join(", ")));
                };
                let boolean = || {
                    parse_go_bool(value).ok_or_else(|| format!("invalid --git {key}={value:?}: expected true or false"))
                };
                match key {
                    "branch" => o.branch = Some(value.to_string()).filter(|b| !b.is_empty()),
                    "single-branch" => o.single_branch = boolean()?,
                    "recurse-submodules" => o.recurse_submodules = boolean()?,
                    "insecure-skip-tls" => o.insecure_skip_tls = boolean()?,
                    "depth" => {
                        let d: u32 =
                            value.parse().map_err(|_| format!("invalid --git depth={value:?}: expected a number"))?;
                        o.depth = (d > 0).then_some(d);
                    }
                    _ => {
                        return Err(format!("unknown --git option {key:?} (known: {})", GIT_KEYS.join(", ")));
                    }
                }
            }
        }
        Ok(o)
    }
}

/// Splits at the commas that start another `key=` (a branch name may hold a comma).
fn split_items(flag: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in flag.match_indices(',') {
        let rest = &flag[i + 1..];
        if GIT_KEYS.iter().any(|k| rest.starts_with(&format!("{k}="))) {
            out.push(&flag[start..i]);
            start = i + 1;
        }
    }
    out.push(&flag[start..]);
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// Go's `strconv.ParseBool`, which kaniko's flags use.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl ContextSource {
    /// Parses a `--context` value; `env` reads `GIT_PULL_METHOD`.
    pub fn parse(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<ContextSource, String> {
        let Some((scheme, rest)) = value.split_once("://") else {
            return Ok(ContextSource::Dir(PathBuf::from(value)));
        };
        match scheme {
            "dir" => Ok(ContextSource::Dir(PathBuf::from(rest))),
            "tar" if rest == "stdin" => Ok(ContextSource::Tar(TarInput::Stdin)),
            "tar" if rest.is_empty() => Err("--context tar:// needs a path (tar://PATH) or stdin (tar://stdin)".into()),
            "tar" => Ok(ContextSource::Tar(TarInput::File(PathBuf::from(rest)))),
            "git" => {
                let method = env("GIT_PULL_METHOD").unwrap_or_default();
                // kaniko: https unless http is asked for; trowel also takes git's own protocol.
                let scheme = match method.as_str() {
                    "http" | "git" => method.as_str(),
                    _ => "https",
                };
                git_source(value, scheme, rest)
            }
            "https" | "http" if repo_path(rest).ends_with(".git") => git_source(value, scheme, rest),
            "https" => match azure_source(value, rest) {
                Some(a) => a.map(ContextSource::Azure),
                None => Ok(ContextSource::Https(HttpsSource { url: value.to_string(), shown: mask_query(value) })),
            },
            "s3" => object_source(value, rest).map(ContextSource::S3),
            "gs" => object_source(value, rest).map(ContextSource::Gcs),
            _ => Err(format!(
                "unknown build context {}: use a directory (PATH or dir://PATH), tar://PATH, tar://stdin, \
                 git://HOST/REPO.git#REF#COMMIT, https://HOST/REPO.git#REF, s3://BUCKET/KEY, gs://BUCKET/OBJECT, \
                 an Azure Blob Storage URL or an https:// URL of an archive",
                mask_query(value)
            )),
        }
    }
}

/// `s3://BUCKET/KEY`, `gs://BUCKET/OBJECT`: kaniko takes the URL's host as the bucket and its
/// path as the object, `context.tar.gz` when there is none.
fn object_source(value: &str, rest: &str) -> Result<ObjectSource, String> {
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("--context {value}: expected a bucket (s3://BUCKET/PATH or gs://BUCKET/PATH)"));
    }
    let key = if key.is_empty() { "context.tar.gz" } else { key };
    Ok(ObjectSource { bucket: bucket.to_string(), key: key.to_string(), shown: value.to_string() })
}

/// An Azure Blob Storage URL (`None`: another https URL): `https://ACCOUNT.<cloud's blob
/// host>/CONTAINER/BLOB`, kaniko's test (`util.ValidAzureBlobStorageHost`).
fn azure_source(value: &str, rest: &str) -> Option<Result<AzureSource, String>> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let suffix = AZURE_BLOB_SUFFIXES.iter().find(|s| authority.ends_with(*s))?;
    let account = &authority[..authority.len() - suffix.len()];
    let shown = mask_query(value);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let Some((container, blob)) = path.split_once('/').filter(|(c, b)| !c.is_empty() && !b.is_empty()) else {
        return Some(Err(format!("--context {shown}: expected https://ACCOUNT{suffix}/CONTAINER/BLOB")));
    };
    if account.is_empty() || account.contains('@') {
        return Some(Err(format!("--context {shown}: expected https://ACCOUNT{suffix}/CONTAINER/BLOB")));
    }
    Some(Ok(AzureSource {
        url: value.to_string(),
        account: account.to_string(),
        container: container.to_string(),
        blob: blob.to_string(),
        shown,
    }))
}

/// A URL as it may be shown: credentials masked (`redact_url`), and the query replaced by `?…` (a presigned URL's signature, a SAS token).
pub(crate) fn mask_query(url: &str) -> String {
    let shown = redact_url(url);
    match shown.find('?') {
        Some(i) => format!("{}?…", &shown[..i]),
        None => shown,
    }
}

/// The path part of `host/path?query#fragment`.
fn repo_path(rest: &str) -> &str {
    let rest = rest.split(['#', '?']).next().unwrap_or("");
    rest.find('/').map_or("", |i| &rest[i..])
}

fn git_source(value: &str, scheme: &str, rest: &str) -> Result<ContextSource, String> {
    let shown = redact_url(value);
    let parts: Vec<&str> = rest.split('#').collect();
    if parts.len() > 3 {
        return Err(format!("--context {shown}: expected at most REPO#REF#COMMIT"));
    }
    let (authority, path) = parts[0].split_once('/').unwrap_or((parts[0], ""));
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() || path.is_empty() {
        return Err(format!("--context {shown}: expected a host and a repository path (git://HOST/ORG/REPO.git)"));
    }
    let url_auth = userinfo.map(|u| {
        let (user, password) = u.split_once(':').unwrap_or((u, ""));
        BasicAuth { username: percent_decoded(user), password: percent_decoded(password) }
    });
    let nonempty = |s: Option<&&str>| s.filter(|s| !s.is_empty()).map(|s| s.to_string());
    let commit = nonempty(parts.get(2));
    if let Some(c) = &commit
        && !crate::dockerfile::gitref::is_commit_sha(c)
    {
        return Err(format!("--context {shown}: {c:?} after the second # is not a full commit id"));
    }
    Ok(ContextSource::Git(GitSource {
        remote: format!("{scheme}://{host}/{path}"),
        shown,
        reference: nonempty(parts.get(1)),
        commit,
        url_auth,
    }))
}

/// `%XX` decoded (credentials in a URL are written so); left as written when invalid.
pub(crate) fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str, method: Option<&str>) -> Result<ContextSource, String> {
        let m = method.map(str::to_string);
        ContextSource::parse(v, &move |k| if k == "GIT_PULL_METHOD" { m.clone() } else { None })
    }

    fn git(v: &str, method: Option<&str>) -> GitSource {
        match parse(v, method).unwrap() {
            ContextSource::Git(g) => g,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kinds_as_kaniko_names_them() {
        assert_eq!(parse("/ws", None).unwrap(), ContextSource::Dir("/ws".into()));
        assert_eq!(parse("dir:///ws", None).unwrap(), ContextSource::Dir("/ws".into()));
        assert_eq!(parse("tar://stdin", None).unwrap(), ContextSource::Tar(TarInput::Stdin));
        assert_eq!(
            parse("tar:///c/ctx.tar.gz", None).unwrap(),
            ContextSource::Tar(TarInput::File("/c/ctx.tar.gz".into()))
        );
        assert!(parse("tar://", None).unwrap_err().contains("needs a path"));
        let o = |b: &str, k: &str, v: &str| ObjectSource { bucket: b.into(), key: k.into(), shown: v.into() };
        assert_eq!(
            parse("s3://bucket/a/ctx.tar.gz", None).unwrap(),
            ContextSource::S3(o("bucket", "a/ctx.tar.gz", "s3://bucket/a/ctx.tar.gz"))
        );
        assert_eq!(parse("gs://b", None).unwrap(), ContextSource::Gcs(o("b", "context.tar.gz", "gs://b")));
        assert!(parse("s3:///k", None).unwrap_err().contains("expected a bucket"));
        let ContextSource::Https(h) = parse("https://u:pw@h/ctx.tar.gz?X-Amz-Signature=s3cr3t", None).unwrap() else {
            panic!()
        };
        assert_eq!(h.shown, "https://xxxxx:xxxxx@h/ctx.tar.gz?…");
        let ContextSource::Azure(a) =
            parse("https://acct.blob.core.windows.net/ctr/dir/ctx.tar.gz?sv=1&sig=secret", None).unwrap()
        else {
            panic!()
        };
        assert_eq!((a.account.as_str(), a.container.as_str(), a.blob.as_str()), ("acct", "ctr", "dir/ctx.tar.gz"));
        assert_eq!(a.shown, "https://acct.blob.core.windows.net/ctr/dir/ctx.tar.gz?…");
        assert!(parse("https://acct.blob.core.windows.net/ctr", None).unwrap_err().contains("CONTAINER/BLOB"));
        assert!(parse("ftp://h/x", None).unwrap_err().starts_with("unknown build context"));
    }

    #[test]
    fn git_urls_with_kaniko_pull_methods_refs_and_commits() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        let g = git(&format!("git://github.com/org/repo.git#refs/heads/dev#{c}"), None);
        assert_eq!(g.remote, "https://github.com/org/repo.git");
        assert_eq!(g.reference.as_deref(), Some("refs/heads/dev"));
        assert_eq!(g.commit.as_deref(), Some(c));
        assert_eq!(git("git://h/r.git", Some("http")).remote, "http://h/r.git");
        assert_eq!(git("git://h/r.git", Some("git")).remote, "git://h/r.git");
        // An unknown method is https, as in kaniko.
        assert_eq!(git("git://h/r.git", Some("ftp")).remote, "https://h/r.git");
        let g = git("https://u:p%40ss@h:8443/r.git#main", None);
        assert_eq!(g.remote, "https://h:8443/r.git");
        assert_eq!(g.shown, "https://xxxxx:xxxxx@h:8443/r.git#main");
        assert_eq!(g.url_auth, Some(BasicAuth { username: "u".into(), password: "p@ss".into() }));
        assert_eq!(git("http://127.0.0.1:1/r.git", None).remote, "http://127.0.0.1:1/r.git");
        assert!(parse("git://h/r.git#main#nope", None).unwrap_err().contains("not a full commit id"));
        assert!(parse("git://h/r.git#a#b#c", None).is_err());
        assert!(parse("git://h", None).unwrap_err().contains("expected a host and a repository path"));
    }

    #[test]
    fn git_options_repeated_or_comma_separated() {
        let o = GitOptions::parse(&["branch=feat,x".into(), "single-branch=true,recurse-submodules=T".into()]).unwrap();
        assert_eq!(o.branch.as_deref(), Some("feat,x"));
        assert!(o.single_branch && o.recurse_submodules && !o.insecure_skip_tls);
        let o = GitOptions::parse(&["branch=main,insecure-skip-tls=true,depth=1".into()]).unwrap();
        assert_eq!((o.branch.as_deref(), o.insecure_skip_tls, o.depth), (Some("main"), true, Some(1)));
        assert_eq!(GitOptions::parse(&["depth=0".into()]).unwrap().depth, None);
        assert!(GitOptions::parse(&["branch".into()]).unwrap_err().contains("expected KEY=VALUE"));
        assert!(GitOptions::parse(&["single-branch=zaza".into()]).unwrap_err().contains("expected true or false"));
        assert!(GitOptions::parse(&["recurse-submodules=".into()]).is_err());
        assert!(GitOptions::parse(&["shallow=true".into()]).unwrap_err().starts_with("unknown --git option"));
    }
}
