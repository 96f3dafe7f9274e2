//! A step's changes as a collapsible directory tree with cumulative sizes.
//!
//! The snapshot reports changed paths (deletions only at the top-most deleted path); the tree
//! adds the intermediate directories so that each directory shows how many bytes its subtree
//! added, and rows can be sorted by name or size and filtered by a substring of the path.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use trowel_events::{Change, ChangeKind, FileType};

/// Row order among siblings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Name,
    /// Largest subtree first.
    Size,
}

impl Sort {
    pub fn toggle(self) -> Sort {
        match self {
            Sort::Name => Sort::Size,
            Sort::Size => Sort::Name,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::Size => "size",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The last path component.
    pub name: String,
    /// The absolute image path.
    pub path: String,
    /// Index of this path's own change, if it changed itself (an intermediate directory
    /// that only contains changes has none).
    pub change: Option<usize>,
    pub children: Vec<usize>,
    /// Bytes of regular files added or rewritten in this subtree.
    pub size: u64,
    /// Changed paths in this subtree, including this one.
    pub count: usize,
}

/// One visible row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub node: usize,
    pub depth: usize,
    /// For nodes with children: whether they are shown.
    pub expanded: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeTree {
    /// Node 0 is the root `/` (never shown as a row).
    pub nodes: Vec<Node>,
    /// Each node's path in lower case, for the case-insensitive filter (computed on first
    /// use, not on every key typed into it).
    lower: OnceLock<Vec<String>>,
}

impl ChangeTree {
    pub fn build(changes: &[Change]) -> ChangeTree {
        let mut t = ChangeTree {
            nodes: vec![Node { name: "/".into(), path: "/".into(), change: None, children: vec![], size: 0, count: 0 }],
            lower: OnceLock::new(),
        };
        // Nodes by path: scanning siblings for each component is quadratic in a directory of
        // thousands of changed files.
        let mut by_name: HashMap<(usize, &str), usize> = HashMap::with_capacity(changes.len() + 1);
        for (i, c) in changes.iter().enumerate() {
            let mut cur = 0;
            let mut path = String::with_capacity(c.path.len());
            for comp in c.path.split('/').filter(|s| !s.is_empty()) {
                path.push('/');
                path.push_str(comp);
                cur = match by_name.get(&(cur, comp)) {
                    Some(&k) => k,
                    None => {
                        t.nodes.push(Node {
                            name: comp.to_string(),
                            path: path.clone(),
                            change: None,
                            children: vec![],
                            size: 0,
                            count: 0,
                        });
                        let k = t.nodes.len() - 1;
                        t.nodes[cur].children.push(k);
                        by_name.insert((cur, comp), k);
                        k
                    }
                };
            }
            if cur == 0 {
                continue; // The root itself: its metadata is not a row.
            }
            t.nodes[cur].change = Some(i);
        }
        t.sum(0, changes);
        t
    }

    fn sum(&mut self, n: usize, changes: &[Change]) -> (u64, usize) {
        let own = self.nodes[n].change.map(|i| &changes[i]);
        let mut size =
            own.filter(|c| c.kind != ChangeKind::Deleted && c.file_type == FileType::File).map_or(0, |c| c.size);
        let mut count = usize::from(own.is_some());
        for i in 0..self.nodes[n].children.len() {
            let (s, c) = self.sum(self.nodes[n].children[i], changes);
            size += s;
            count += c;
        }
        self.nodes[n].size = size;
        self.nodes[n].count = count;
        (size, count)
    }

    /// The visible rows: children of collapsed directories are hidden, siblings are ordered
    /// by `sort`, and a non-empty `filter` keeps only paths containing it (case-insensitive)
    /// and their ancestors, all expanded.
    pub fn rows(&self, collapsed: &HashSet<String>, sort: Sort, filter: &str) -> Vec<Row> {
        let filter = filter.to_lowercase();
        let keep = if filter.is_empty() { None } else { Some(self.matching(&filter)) };
        let mut out = Vec::new();
        self.walk(0, 0, collapsed, sort, keep.as_ref(), &mut out);
        out
    }

    fn walk(
        &self,
        n: usize,
        depth: usize,
        collapsed: &HashSet<String>,
        sort: Sort,
        keep: Option<&Vec<bool>>,
        out: &mut Vec<Row>,
    ) {
        let mut kids: Vec<usize> =
            self.nodes[n].children.iter().copied().filter(|&k| keep.is_none_or(|m| m[k])).collect();
        match sort {
            Sort::Name => kids.sort_by(|&a, &b| self.nodes[a].name.cmp(&self.nodes[b].name)),
            Sort::Size => kids.sort_by(|&a, &b| {
                let (a, b) = (&self.nodes[a], &self.nodes[b]);
                (Reverse(a.size), &a.name).cmp(&(Reverse(b.size), &b.name))
            }),
        }
        for k in kids {
            let has_kids = !self.nodes[k].children.is_empty();
            let open = has_kids && (keep.is_some() || !collapsed.contains(&self.nodes[k].path));
            out.push(Row { node: k, depth, expanded: has_kids.then_some(open) });
            if open {
                self.walk(k, depth + 1, collapsed, sort, keep, out);
            }
        }
    }

    /// Which nodes match the filter or have a matching descendant (or ancestor: a matching
    /// directory shows what is inside it).
    fn matching(&self, filter: &str) -> Vec<bool> {
        let mut m = vec![false; self.nodes.len()];
        self.mark(0, filter, false, &mut m);
        m
    }

    fn mark(&self, n: usize, filter: &str, ancestor_matched: bool, m: &mut [bool]) -> bool {
        let lower = self.lower.get_or_init(|| self.nodes.iter().map(|n| n.path.to_lowercase()).collect());
        let own = n != 0 && lower[n].contains(filter);
        let mut any = own || ancestor_matched;
        for &k in &self.nodes[n].children {
            any |= self.mark(k, filter, own || ancestor_matched, m);
        }
        m[n] = any;
        any
    }

    /// Every directory path with children (for "collapse all").
    pub fn directories(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().skip(1).filter(|n| !n.children.is_empty()).map(|n| n.path.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trowel_events::PrevMeta;

    fn change(path: &str, kind: ChangeKind, t: FileType, size: u64) -> Change {
        Change {
            path: path.into(),
            kind,
            file_type: t,
            size,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            link_target: None,
            digest: None,
            opaque: false,
            previous: (kind != ChangeKind::Added).then(|| {
                Box::new(PrevMeta {
                    file_type: t,
                    size,
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    link_target: None,
                    mtime: None,
                    digest: None,
                })
            }),
        }
    }

    fn sample() -> Vec<Change> {
        vec![
            change("/etc", ChangeKind::Modified, FileType::Dir, 0),
            change("/etc/app/config.ini", ChangeKind::Added, FileType::File, 100),
            change("/etc/hostname", ChangeKind::Deleted, FileType::File, 9),
            change("/usr/local/bin/app", ChangeKind::Added, FileType::File, 2000),
            change("/usr/local/bin/link", ChangeKind::Added, FileType::Symlink, 3),
        ]
    }

    fn names(t: &ChangeTree, rows: &[Row]) -> Vec<String> {
        rows.iter().map(|r| format!("{}{}", "  ".repeat(r.depth), t.nodes[r.node].name)).collect()
    }

    #[test]
    fn cumulative_sizes_and_counts() {
        let t = ChangeTree::build(&sample());
        let usr = t.nodes.iter().find(|n| n.path == "/usr").unwrap();
        assert_eq!((usr.size, usr.count, usr.change), (2000, 2, None));
        let etc = t.nodes.iter().find(|n| n.path == "/etc").unwrap();
        // The deleted file does not add bytes; the directory's own change counts.
        assert_eq!((etc.size, etc.count, etc.change.is_some()), (100, 3, true));
    }

    #[test]
    fn sort_collapse_and_filter() {
        let t = ChangeTree::build(&sample());
        let all = t.rows(&HashSet::new(), Sort::Name, "");
        assert_eq!(
            names(&t, &all),
            ["etc", "  app", "    config.ini", "  hostname", "usr", "  local", "    bin", "      app", "      link"]
        );
        let by_size = t.rows(&HashSet::new(), Sort::Size, "");
        assert_eq!(t.nodes[by_size[0].node].path, "/usr");
        let collapsed: HashSet<String> = ["/usr".to_string()].into();
        let rows = t.rows(&collapsed, Sort::Name, "");
        assert_eq!(names(&t, &rows), ["etc", "  app", "    config.ini", "  hostname", "usr"]);
        assert_eq!(rows[4].expanded, Some(false));
        // A filter shows matches with their ancestors, even inside collapsed directories.
        let rows = t.rows(&collapsed, Sort::Name, "LINK");
        assert_eq!(names(&t, &rows), ["usr", "  local", "    bin", "      link"]);
        // A matching directory shows its contents.
        let rows = t.rows(&HashSet::new(), Sort::Name, "/etc/app");
        assert_eq!(names(&t, &rows), ["etc", "  app", "    config.ini"]);
    }
}
