//! How two lists of a COPY's source files (as cache keys record them) differ, in words: the
//! files and directories changed (a directory is never called a file) (and how, when not their content: `mode 0644 → 0600`, `hard link to a →
//! separate file`), added and removed, for a miss's explanation (`super::explain`).

use std::collections::{BTreeMap, BTreeSet};

use crate::cache::key::FileEntry;

/// How two lists of source files differ.
pub(crate) struct FileDiff<'a> {
    /// A changed file's path, and what changed when it was not its content (`mode 0644 →
    /// 0600`): a file whose content is the same is not said to have changed as if it were.
    pub changed: Vec<String>,
    /// How many of `changed`, from the first, are directories (listed first: `1 directory
    /// changed (src/sub: mode 0755 → 0700)`, then the files).
    pub changed_dirs: usize,
    pub added: Vec<&'a str>,
    pub removed: Vec<&'a str>,
}

/// What changed about a file besides its content, in words (`None`: its content, type or link
/// target changed, which its path alone says). An xattr's value is recorded as a digest only,
/// so the words say which one changed, not to what.
fn metadata_change(p: &FileEntry, c: &FileEntry) -> Option<String> {
    if (p.kind, &p.link, &p.digest) != (c.kind, &c.link, &c.digest) {
        return None;
    }
    let mut out = Vec::new();
    if p.mode != c.mode {
        out.push(format!("mode {:04o} → {:04o}", p.mode & 0o7777, c.mode & 0o7777));
    }
    if (p.uid, p.gid) != (c.uid, c.gid) {
        out.push(format!("owner {}:{} → {}:{}", p.uid, p.gid, c.uid, c.gid));
    }
    if p.hard_link != c.hard_link {
        let what = |l: &Option<String>| match l {
            Some(first) => format!("hard link to {first}"),
            None => "separate file".to_string(),
        };
        out.push(format!("{} → {}", what(&p.hard_link), what(&c.hard_link)));
    }
    let names: BTreeSet<&String> = p.xattrs.keys().chain(c.xattrs.keys()).collect();
    for n in names {
        match (p.xattrs.get(n), c.xattrs.get(n)) {
            (Some(a), Some(b)) if a != b => out.push(format!("xattr {n} changed")),
            (None, Some(_)) => out.push(format!("xattr {n} added")),
            (Some(_), None) => out.push(format!("xattr {n} removed")),
            _ => {}
        }
    }
    (!out.is_empty()).then(|| out.join(", "))
}

impl<'a> FileDiff<'a> {
    pub fn of(prev: &'a [FileEntry], cur: &'a [FileEntry]) -> FileDiff<'a> {
        let p: BTreeMap<&str, &FileEntry> = prev.iter().map(|f| (f.path.as_str(), f)).collect();
        let c: BTreeMap<&str, &FileEntry> = cur.iter().map(|f| (f.path.as_str(), f)).collect();
        // Directories first, then the rest, each in path order.
        let mut changed: Vec<(bool, String)> = c
            .iter()
            .filter_map(|(k, v)| {
                let pv = p.get(*k).filter(|pv| *pv != v)?;
                let words = match metadata_change(pv, v) {
                    Some(how) => format!("{k}: {how}"),
                    None => k.to_string(),
                };
                Some((v.kind != 'd', words))
            })
            .collect();
        changed.sort_by_key(|(not_dir, _)| *not_dir);
        FileDiff {
            changed_dirs: changed.iter().filter(|(not_dir, _)| !not_dir).count(),
            changed: changed.into_iter().map(|(_, w)| w).collect(),
            added: c.keys().filter(|k| !p.contains_key(*k)).copied().collect(),
            removed: p.keys().filter(|k| !c.contains_key(*k)).copied().collect(),
        }
    }

    /// `2 files changed (src/lib.rs, src/main.rs), 1 added (src/new.rs)`.
    pub fn words(&self) -> String {
        let mut parts = Vec::new();
        let (dirs, files) = self.changed.split_at(self.changed_dirs);
        for (what, changed) in [(("directory", "directories"), dirs), (("file", "files"), files)] {
            if !changed.is_empty() {
                let n = changed.len();
                let names: Vec<&str> = changed.iter().map(String::as_str).collect();
                parts.push(format!("{n} {} changed ({})", if n == 1 { what.0 } else { what.1 }, list(&names)));
            }
        }
        if !self.added.is_empty() {
            parts.push(format!("{} added ({})", self.added.len(), list(&self.added)));
        }
        if !self.removed.is_empty() {
            parts.push(format!("{} removed ({})", self.removed.len(), list(&self.removed)));
        }
        if parts.is_empty() { "files reordered".to_string() } else { parts.join(", ") }
    }
}

/// Up to five names, then how many more.
fn list(names: &[&str]) -> String {
    const MAX: usize = 5;
    let mut s = names.iter().take(MAX).copied().collect::<Vec<_>>().join(", ");
    if names.len() > MAX {
        s.push_str(&format!(", … {} more", names.len() - MAX));
    }
    s
}
