//! Which files differ between two builds' layers of the same step, from what the traces
//! recorded of each layer (its changes: path, type, mode, owner, link target, content digest).
//!
//! Equal layer digests settle it without a file list. Otherwise each path is compared by what
//! is in the image, not by how it got there: a cached layer's listing says "added" for what a
//! built one calls "modified", and modification times differ on every rebuild, so neither is a
//! difference. What a trace does not record cannot be compared, and is said: an older trace's
//! listing of a cached layer carries no content digests, a listing says nothing of what a
//! whiteout deleted (see `StepView::unclassified`), and a trace may hold no listing at all. When layers
//! differ and the traces cannot say where, the step counts as different: equivalence is only
//! claimed when it is known.

use std::collections::{BTreeMap, BTreeSet};

use trowel_events::state::StepView;
use trowel_events::{Change, ChangeKind, FileType};

/// One path that differs between the two layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiff {
    pub path: String,
    /// How, in words: `content differs (12 B → 14 B)`, `only in B's layer`, `mode 0644 → 0755`.
    pub what: String,
    /// A text file whose content differs, when both traces recorded it (small text files,
    /// `--trace-content-limit`): A's content and B's, for a line diff.
    pub texts: Option<(String, String)>,
}

/// What the two layers of a step hold, compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesVerdict {
    /// Neither step wrote a layer.
    NoLayers,
    /// The very same layer.
    SameLayer { digest: String },
    /// Different layer digests, no compared file differs (times and xattrs are not recorded).
    SameFiles { compared: usize },
    /// Files differ; `unknown`: paths in both whose contents the traces do not record.
    Differ { files: Vec<FileDiff>, unknown: Vec<String> },
    /// The layers differ and the traces cannot say which files do.
    Unknown { why: String },
    /// One build did not finish the step: there is nothing to compare.
    NotFinished,
}

impl FilesVerdict {
    pub fn differs(&self) -> bool {
        matches!(self, FilesVerdict::Differ { .. } | FilesVerdict::Unknown { .. })
    }
}

fn short(d: &str) -> String {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    hex.chars().take(12).collect()
}

fn type_word(t: FileType) -> &'static str {
    match t {
        FileType::File => "file",
        FileType::Dir => "directory",
        FileType::Symlink => "symlink",
        FileType::Hardlink => "hard link",
        FileType::CharDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
    }
}

/// What is at a path in a layer, in words. `unclassified`: the layer was listed without the
/// layers below, so what a deleted path was is not known (its entry is the whiteout's).
fn present(c: &Change, unclassified: bool) -> String {
    match c.kind {
        ChangeKind::Deleted if unclassified => "deleted".to_string(),
        ChangeKind::Deleted => format!("deleted ({})", type_word(c.file_type)),
        _ => type_word(c.file_type).to_string(),
    }
}

/// How one path differs between the two layers (`None`: it does not, as far as is recorded);
/// `Err(())`: the content of a file in both is not recorded on one side. `unclassified`: which
/// side's layer was listed without the layers below (A's, B's).
fn path_diff(a: &Change, b: &Change, unclassified: (bool, bool)) -> Result<Option<String>, ()> {
    let (da, db) = (a.kind == ChangeKind::Deleted, b.kind == ChangeKind::Deleted);
    if da != db {
        return Ok(Some(format!("{} in A, {} in B", present(a, unclassified.0), present(b, unclassified.1))));
    }
    if da {
        return Ok(None);
    }
    if a.file_type != b.file_type {
        return Ok(Some(format!("{} in A, {} in B", type_word(a.file_type), type_word(b.file_type))));
    }
    let mut out = Vec::new();
    let mut unknown = false;
    if a.file_type == FileType::File {
        match (&a.digest, &b.digest) {
            (Some(x), Some(y)) if x != y => out.push(format!(
                "content differs ({} → {}, {} B → {} B)",
                short(x.as_str()),
                short(y.as_str()),
                a.size,
                b.size
            )),
            (Some(_), Some(_)) => {}
            _ if a.size != b.size => out.push(format!("content differs ({} B → {} B)", a.size, b.size)),
            _ => unknown = true,
        }
    }
    if a.link_target != b.link_target {
        let t = |l: &Option<String>| l.clone().unwrap_or_else(|| "(none)".into());
        out.push(format!("link target {} → {}", t(&a.link_target), t(&b.link_target)));
    }
    if a.mode != b.mode {
        out.push(format!("mode {:04o} → {:04o}", a.mode & 0o7777, b.mode & 0o7777));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        out.push(format!("owner {}:{} → {}:{}", a.uid, a.gid, b.uid, b.gid));
    }
    match (out.is_empty(), unknown) {
        (true, true) => Err(()),
        (true, false) => Ok(None),
        (false, _) => Ok(Some(out.join(", "))),
    }
}

fn done(s: &StepView) -> bool {
    use trowel_events::state::StepState::*;
    matches!(s.state, Built | Cached | Metadata)
}

/// Compares the layers of a paired step.
pub fn verdict(a: Option<&StepView>, b: Option<&StepView>) -> FilesVerdict {
    let (Some(a), Some(b)) = (a, b) else {
        return FilesVerdict::NotFinished;
    };
    if !done(a) || !done(b) {
        return FilesVerdict::NotFinished;
    }
    let (la, lb) = (a.layer.as_ref().map(|l| &l.digest), b.layer.as_ref().map(|l| &l.digest));
    match (la, lb) {
        (None, None) => return FilesVerdict::NoLayers,
        (Some(x), Some(y)) if x == y => return FilesVerdict::SameLayer { digest: x.to_string() },
        _ => {}
    }
    // A side with a layer but no listing: what is in it is not in the trace.
    let unlisted = |side: &str, s: &StepView| {
        (s.layer.is_some() && s.changes.is_empty()).then(|| {
            format!("{side}'s trace has no file list for this step's layer: which files differ cannot be known")
        })
    };
    if let Some(why) = unlisted("A", a).or_else(|| unlisted("B", b)) {
        return FilesVerdict::Unknown { why };
    }
    let ma: BTreeMap<&str, &Change> = a.changes.iter().map(|c| (c.path.as_str(), c)).collect();
    let mb: BTreeMap<&str, &Change> = b.changes.iter().map(|c| (c.path.as_str(), c)).collect();
    let paths: BTreeSet<&str> = ma.keys().chain(mb.keys()).copied().collect();
    let (mut files, mut unknown) = (Vec::new(), Vec::new());
    for p in &paths {
        let what = match (ma.get(p), mb.get(p)) {
            (Some(x), Some(y)) => match path_diff(x, y, (a.unclassified, b.unclassified)) {
                Ok(w) => w,
                Err(()) => {
                    unknown.push(p.to_string());
                    None
                }
            },
            (Some(x), None) => Some(format!("only in A's layer ({})", present(x, a.unclassified))),
            (None, Some(y)) => Some(format!("only in B's layer ({})", present(y, b.unclassified))),
            (None, None) => None,
        };
        if let Some(what) = what {
            let after = |s: &StepView| s.contents.get(*p).and_then(|c| c.after.clone());
            let texts = match (ma.get(p), mb.get(p)) {
                (Some(x), Some(y)) if x.digest != y.digest => after(a).zip(after(b)),
                _ => None,
            };
            files.push(FileDiff { path: p.to_string(), what, texts });
        }
    }
    match (files.is_empty(), unknown.is_empty()) {
        (true, true) => FilesVerdict::SameFiles { compared: paths.len() },
        (true, false) => FilesVerdict::Unknown {
            why: format!(
                "the layers differ; the contents of {} file(s) in both are not recorded ({}), so which differ cannot be \
                 known",
                unknown.len(),
                list(&unknown)
            ),
        },
        (false, _) => FilesVerdict::Differ { files, unknown },
    }
}

/// Up to five paths, then how many more.
pub fn list(paths: &[String]) -> String {
    let mut s = paths.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if paths.len() > 5 {
        s.push_str(&format!(", … {} more", paths.len() - 5));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use trowel_events::Digest;

    /// A content digest as the contract carries it.
    fn digest_of(content: &[u8]) -> Digest {
        Digest::try_from(trowel_engine::digest::Digest::of(content).to_string()).unwrap()
    }

    fn change(path: &str, kind: ChangeKind, content: Option<&[u8]>) -> Change {
        Change {
            path: path.into(),
            kind,
            file_type: FileType::File,
            size: content.map(|c| c.len() as u64).unwrap_or(3),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1,
            link_target: None,
            digest: content.map(digest_of),
            opaque: false,
            previous: None,
        }
    }

    #[test]
    fn paths_compare_by_what_is_in_the_image() {
        let a = change("/x", ChangeKind::Added, Some(b"one"));
        let mut b = change("/x", ChangeKind::Modified, Some(b"one"));
        b.mtime = 99;
        assert_eq!(path_diff(&a, &b, (false, false)), Ok(None), "added vs modified and mtimes are no difference");
        let c = change("/x", ChangeKind::Added, Some(b"two!"));
        assert_eq!(
            path_diff(&a, &c, (false, false)).unwrap().unwrap(),
            format!(
                "content differs ({} → {}, 3 B → 4 B)",
                &digest_of(b"one").hex()[..12],
                &digest_of(b"two!").hex()[..12]
            )
        );
        let mut d = a.clone();
        d.mode = 0o755;
        d.uid = 1000;
        assert_eq!(path_diff(&a, &d, (false, false)).unwrap().unwrap(), "mode 0644 → 0755, owner 0:0 → 1000:0");
        let gone = change("/x", ChangeKind::Deleted, None);
        assert_eq!(path_diff(&a, &gone, (false, false)).unwrap().unwrap(), "file in A, deleted (file) in B");
        // A listed whiteout's entry is the whiteout's, not what it deleted.
        assert_eq!(path_diff(&a, &gone, (false, true)).unwrap().unwrap(), "file in A, deleted in B");
        // A cached listing has no digests: same size is not the same content.
        assert_eq!(path_diff(&change("/x", ChangeKind::Added, None), &a, (false, false)), Err(()));
    }
}
