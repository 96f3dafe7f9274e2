//! [`IgnoreList`]: image paths that snapshots never record and unpacking never writes.

use serde::{Deserialize, Serialize};

use super::path;

/// A set of absolute image paths (`/proc`, `/sys`, trowel's own directory, `--ignore-path`
/// values). A path is ignored when it or any of its ancestors is in the list, compared
/// component-wise: `/proc` ignores `/proc/1` but not `/process`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoreList {
    /// Cleaned absolute paths, sorted, without entries already covered by an ancestor.
    paths: Vec<String>,
}

impl IgnoreList {
    /// A list of the given image paths (relative ones are taken from the root; `.`/`//` are
    /// cleaned away).
    pub fn new<I, S>(paths: I) -> IgnoreList
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut l = IgnoreList::default();
        for p in paths {
            l.add(p.as_ref());
        }
        l
    }

    /// Adds one path (and so its whole subtree).
    pub fn add(&mut self, p: &str) {
        let p = path::clean(p);
        if self.is_ignored(&p) {
            return;
        }
        self.paths.retain(|q| !path::is_within(q, &p));
        let at = self.paths.binary_search(&p).unwrap_or_else(|i| i);
        self.paths.insert(at, p);
    }

    /// True when `p` (an image path) or one of its ancestors is in the list.
    pub fn is_ignored(&self, p: &str) -> bool {
        if self.paths.is_empty() {
            return false;
        }
        // Fast path for the walkers, which pass cleaned absolute paths.
        if p.starts_with('/') && !p.contains("//") && !p.contains("/./") && !p.ends_with('/') {
            return self.paths.iter().any(|q| path::is_within(p, q));
        }
        let p = path::clean(p);
        self.paths.iter().any(|q| path::is_within(&p, q))
    }

    /// True when some ignored path lies strictly below `dir` (so a walk of `dir` must look
    /// at each child).
    pub fn has_ignored_below(&self, dir: &str) -> bool {
        self.paths.iter().any(|q| q != dir && path::is_within(q, dir))
    }

    /// The ignored paths, cleaned and sorted.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_wise_matching() {
        let l = IgnoreList::new(["/proc", "sys/", "/var/run"]);
        assert!(l.is_ignored("/proc"));
        assert!(l.is_ignored("/proc/1/status"));
        assert!(l.is_ignored("proc/1"));
        assert!(!l.is_ignored("/process"));
        assert!(!l.is_ignored("/"));
        assert!(l.is_ignored("/sys/kernel"));
        assert!(l.is_ignored("/var/run/x"));
        assert!(!l.is_ignored("/var"));
        assert!(!l.is_ignored("/var/running"));
        assert!(l.has_ignored_below("/var"));
        assert!(!l.has_ignored_below("/usr"));
    }

    #[test]
    fn add_collapses_descendants() {
        let mut l = IgnoreList::new(["/a/b", "/a/c"]);
        l.add("/a");
        assert_eq!(l.paths(), ["/a"]);
        l.add("/a/d");
        assert_eq!(l.paths(), ["/a"]);
        assert!(!IgnoreList::default().is_ignored("/x"));
    }
}
