//! A build context that is not a directory of this machine (`--context tar://…`, `git://…`,
//! `s3://…`, `gs://…`, Azure Blob Storage, an archive over `https://`): fetched into a locked
//! directory of the work dir before the build starts, as hostile input (an archive through the
//! layer unpacker's rules, as it is downloaded: `tar.rs`, `http.rs`; a repository through
//! `git/`), bounded by the
//! build's size limits, and described by a [`ContextOrigin`] that the build reports (in
//! `build_started`): where it came from (credentials masked), the commit, and a digest.
//!
//! The front end parses `--context` once into a [`ContextSource`] and calls [`fetch`]; what
//! comes back is a [`FetchedContext`] that owns the directory (removed when the last
//! [`BuildOptions`](crate::engine::BuildOptions) holding it is dropped; a killed trowel's is
//! swept by the next build like any work directory: `scratch.rs`) and the secrets the
//! emitter must mask (`GIT_PASSWORD`, `GIT_TOKEN`, a URL's password, a store's keys and tokens).
//!
//! A context is fetched before the build starts, but a signal already stops it
//! ([`FetchOptions::stop`]): the download gives up while it waits for the server
//! (`registry/cloud/http.rs`), the unpack between entries and chunks, a git command is killed
//! with its helpers (`git/cli.rs`); the fetch then fails as [`ContextError::Aborted`] and the
//! directory, with whatever part of the context it holds, is removed with its [`WorkDir`].

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::engine::scratch::WorkDir;
use crate::fs::{FileType, Root};

mod azure;
mod gcs;
mod git;

mod https;
mod s3;
mod source;

pub(crate) use source::percent_decoded;
mod tar;

pub use crate::registry::cloud::http::HttpError;
pub(crate) use crate::registry::cloud::http::last_modified;
pub use source::{AzureSource, ContextSource, GitOptions, GitSource, HttpsSource, ObjectSource, TarInput};

/// What bounds a fetched context: the build's `--max-file-size`, `--max-layer-size` and
/// `--max-layer-entries` (an archive's entries; a repository is bounded by its sizes).
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchLimits {
    pub max_file_size: Option<u64>,
    pub max_total_size: Option<u64>,
    pub max_entries: Option<u64>,
}

/// How to fetch a context.
pub struct FetchOptions<'a> {
    /// Where the context's directory is made (the build's `--work-dir`).
    pub work_dir: &'a Path,
    pub limits: FetchLimits,
    /// `--stall-timeout`: a download that moves no byte for this long fails (retried before its
    /// body has begun).
    pub stall_timeout: std::time::Duration,
    /// `--context-sub-path`.
    pub sub_path: Option<&'a str>,
    pub git: &'a GitOptions,
    /// Container isolation: git is the one bundled under `<trowel_dir>/git` (see `git/tools.rs`).
    pub container: bool,
    pub trowel_dir: &'a Path,
    /// Reads the environment: `GIT_USERNAME`, `GIT_PASSWORD`, `GIT_TOKEN`, and each store's
    /// credentials and endpoints as kaniko reads them.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// A `SOURCE_DATE_EPOCH` build argument was given (any value, `context` included): a git
    /// checkout's files get its commit's time, as BuildKit's do (the Dockerfile, and so a
    /// global ARG's default, is not read yet: BuildKit looks at the given argument alone here
    /// too).
    pub source_date_epoch: bool,
    /// The build's stop (a signal): the fetch gives up part way once it is asked for.
    pub stop: Option<crate::sandbox::Stop>,
}

impl FetchOptions<'_> {
    /// What the download, the unpack and git look at to give up.
    pub(crate) fn cancel(&self) -> Option<crate::fs::Cancel> {
        self.stop.as_ref().map(crate::sandbox::Stop::cancel)
    }
}

/// Which kind of remote context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextKind {
    Tar,
    Git,
    S3,
    Gcs,
    Azure,
    Https,
}

impl std::fmt::Display for ContextKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContextKind::Tar => "tar",
            ContextKind::Git => "git",
            ContextKind::S3 => "s3",
            ContextKind::Gcs => "gcs",
            ContextKind::Azure => "azure",
            ContextKind::Https => "https",
        })
    }
}

/// Where a fetched context came from, as the build reports it: never a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextOrigin {
    pub kind: ContextKind,
    /// The `--context` value, credentials masked (`tar://stdin`, `git://host/repo.git#main`).
    pub source: String,
    /// The ref fetched (`refs/heads/main`), for git.
    pub reference: Option<String>,
    /// The commit checked out, for git.
    pub commit: Option<String>,
    /// A tar: the sha256 of the archive as it was read (compressed or not). A repository: the
    /// sha256 of its tree (see [`tree_digest`]).
    pub digest: Digest,
    /// Bytes of the archive, or of the tree's files.
    pub bytes: u64,
    /// Regular files in the context.
    pub files: u64,
    /// `--context-sub-path`.
    pub sub_path: Option<String>,
    /// The context's own time, what `SOURCE_DATE_EPOCH=context` dates the build by (see
    /// [`Plan::resolve_context_epoch`](crate::dockerfile::Plan::resolve_context_epoch)), as
    /// BuildKit takes it: a repository's commit time (the committer's); an archive downloaded
    /// over `https://`, its `Last-Modified`, else the newest of its regular files. BuildKit has no
    /// bucket contexts: theirs is the newest file too, the archive's own content dating it. None
    /// for `tar://` (a local archive, as a local directory).
    pub time: Option<i64>,
}

/// A fetched context: its directory lives as long as this does.
pub struct FetchedContext {
    /// The build context directory (with `--context-sub-path` applied).
    pub dir: PathBuf,
    pub origin: ContextOrigin,
    /// Values to mask in everything the build reports.
    pub secrets: Vec<String>,
    _work: WorkDir,
}

impl FetchedContext {
    /// The locked directory the context was fetched into (the context is `context/` in it, or
    /// a directory of that): what container isolation must keep out of `/`'s cleaning and
    /// snapshots.
    pub fn work_dir(&self) -> &Path {
        self._work.path()
    }
}

impl std::fmt::Debug for FetchedContext {
    /// Never the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedContext").field("dir", &self.dir).field("origin", &self.origin).finish()
    }
}

/// Why a context could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context {source_}: {reason}")]
    Invalid { source_: String, reason: String },
    #[error("build context {source_}: {what}: {source}")]
    Io {
        source_: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The archive broke the unpacker's rules (a path out of the context, a device, a size).
    #[error("build context {source_}: refused: {source}")]
    Tar {
        source_: String,
        #[source]
        source: crate::fs::FsError,
    },
    /// The server or store could not be reached, or answered with an error.
    #[error("build context {source_}: {what}: {source}")]
    Http {
        source_: String,
        what: String,
        #[source]
        source: HttpError,
    },
    #[error("build context {source_}: {source}")]
    Git {
        source_: String,
        #[source]
        source: Box<crate::git::GitError>,
    },
    /// The build was stopped while its context was fetched: `reason` is the stop's
    /// (`SIGTERM received`); the error the fetch gave up with is kept.
    #[error("build aborted: {reason} (while fetching the build context {source_})")]
    Aborted {
        source_: String,
        reason: String,
        #[source]
        source: Box<ContextError>,
    },
}

impl ContextError {
    pub fn is_aborted(&self) -> bool {
        matches!(self, ContextError::Aborted { .. })
    }
}

/// Fetches `source` (not a directory: that is used where it is) as `opts` say.
pub fn fetch(source: &ContextSource, opts: &FetchOptions<'_>) -> Result<FetchedContext, ContextError> {
    let shown = match source {
        ContextSource::Dir(p) => {
            return Err(ContextError::Invalid {
                source_: p.display().to_string(),
                reason: "a directory is not fetched".into(),
            });
        }
        ContextSource::Tar(TarInput::Stdin) => "tar://stdin".to_string(),
        ContextSource::Tar(TarInput::File(p)) => format!("tar://{}", p.display()),
        ContextSource::Git(g) => g.shown.clone(),
        ContextSource::S3(o) | ContextSource::Gcs(o) => o.shown.clone(),
        ContextSource::Azure(a) => a.shown.clone(),
        ContextSource::Https(h) => h.shown.clone(),
    };
    let io = |what: &str| {
        let (s, w) = (shown.clone(), what.to_string());
        move |source: std::io::Error| ContextError::Io { source_: s, what: w, source }
    };
    let work =
        WorkDir::create(opts.work_dir).map_err(io(&format!("create a directory in {}", opts.work_dir.display())))?;
    let dir = work.path().join("context");
    std::fs::create_dir(&dir).map_err(io("create the context directory"))?;
    let fetched = match source {
        ContextSource::Dir(_) => unreachable!("refused above"),
        ContextSource::Tar(input) => tar::fetch(input, &dir, &shown, opts).map(|o| (o, Vec::new())),
        ContextSource::Git(g) => git::fetch(g, &dir, opts),
        ContextSource::S3(o) => s3::fetch(o, &dir, opts),
        ContextSource::Gcs(o) => gcs::fetch(o, &dir, opts),
        ContextSource::Azure(a) => azure::fetch(a, &dir, opts),
        ContextSource::Https(h) => https::fetch(h, &dir, opts),
    };
    // Whatever a stopped fetch failed with (a read given up, a git killed), it was the stop;
    // `work` goes with the error, and the part of the context it holds with it.
    let (mut origin, secrets) = fetched.map_err(|e| match opts.stop.as_ref().and_then(|s| s.reason()) {
        Some(reason) => ContextError::Aborted { source_: shown.clone(), reason, source: Box::new(e) },
        None => e,
    })?;
    let dir = match opts.sub_path.filter(|s| !s.is_empty()) {
        Some(sub) => {
            let rel =
                check_sub_path(&dir, sub).map_err(|reason| ContextError::Invalid { source_: shown.clone(), reason })?;
            origin.sub_path = Some(sub.to_string());
            dir.join(rel)
        }
        None => dir,
    };
    Ok(FetchedContext { dir, origin, secrets, _work: work })
}

/// `--context-sub-path` inside a fetched context: a directory reached through directories only
/// (the context is hostile: a symlink on the way could lead anywhere on this machine).
fn check_sub_path(dir: &Path, sub: &str) -> Result<String, String> {
    let root = Root::open(dir).map_err(|e| e.to_string())?;
    let mut p = String::new();
    for part in sub.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if part == ".." {
            return Err(format!("--context-sub-path {sub:?} leaves the context"));
        }
        p = if p.is_empty() { part.to_string() } else { format!("{p}/{part}") };
        match root.lstat(&p).map_err(|e| e.to_string())? {
            None => return Err(format!("--context-sub-path {sub:?}: {p} does not exist in the context")),
            Some(st) if st.file_type != FileType::Dir => {
                return Err(format!("--context-sub-path {sub:?}: {p} is not a directory ({})", st.file_type.noun()));
            }
            Some(_) => {}
        }
    }
    Ok(p)
}

/// The sha256 of a tree's listing: for every entry below `dir` in name order (the top-level
/// `.git` left out: its packs differ between two fetches of one commit), its path, type and
/// permission bits, and a file's content digest or a symlink's target. Two checkouts of the same
/// commit with the same options have the same digest. Returns the digest, the files' bytes and
/// their number.
pub(crate) fn tree_digest(dir: &Path, cancel: Option<&crate::fs::Cancel>) -> std::io::Result<(Digest, u64, u64)> {
    use std::os::unix::fs::PermissionsExt;
    let mut h = crate::digest::Hasher::new();
    let (mut bytes, mut files) = (0u64, 0u64);
    let walk = walkdir::WalkDir::new(dir).follow_links(false).sort_by_file_name().min_depth(1);
    for e in walk.into_iter().filter_entry(|e| !(e.depth() == 1 && e.file_name() == ".git")) {
        let e = e.map_err(std::io::Error::other)?;
        crate::fs::Cancel::check(cancel).map_err(std::io::Error::other)?;
        let rel = e.path().strip_prefix(dir).unwrap_or(e.path()).to_string_lossy().into_owned();
        let md = e.path().symlink_metadata()?;
        let mode = md.permissions().mode() & 0o7777;
        let ft = md.file_type();
        let line = if ft.is_file() {
            let file = crate::fs::cancel::Checked::new(std::fs::File::open(e.path())?, cancel);
            let (d, n) = crate::digest::digest_reader(file)?;
            bytes += n;
            files += 1;
            format!("f {mode:o} {rel}\0{d}\n")
        } else if ft.is_symlink() {
            format!("l {mode:o} {rel}\0{}\n", std::fs::read_link(e.path())?.to_string_lossy())
        } else if ft.is_dir() {
            format!("d {mode:o} {rel}\0\n")
        } else {
            format!("o {mode:o} {rel}\0\n")
        };
        h.update(line.as_bytes());
    }
    Ok((h.finish(), bytes, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_paths_stay_inside_through_directories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("out")).unwrap();
        assert_eq!(check_sub_path(d.path(), "a/b/").unwrap(), "a/b");
        assert_eq!(check_sub_path(d.path(), "./a").unwrap(), "a");
        assert!(check_sub_path(d.path(), "out").unwrap_err().contains("out is not a directory"));
        assert!(check_sub_path(d.path(), "a/../../x").unwrap_err().contains("leaves the context"));
        assert!(check_sub_path(d.path(), "nope").unwrap_err().contains("does not exist"));
    }

    #[test]
    fn tree_digests_follow_content_modes_and_links_but_not_dot_git() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink("f", d.path().join("l")).unwrap();
        let (a, bytes, files) = tree_digest(d.path(), None).unwrap();
        assert_eq!((bytes, files), (1, 1));
        std::fs::create_dir(d.path().join(".git")).unwrap();
        std::fs::write(d.path().join(".git/HEAD"), "ref").unwrap();
        assert_eq!(tree_digest(d.path(), None).unwrap().0, a, ".git is left out");
        std::fs::write(d.path().join("f"), "y").unwrap();
        let b = tree_digest(d.path(), None).unwrap().0;
        assert_ne!(a, b);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.path().join("f"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(tree_digest(d.path(), None).unwrap().0, b);
    }
}
