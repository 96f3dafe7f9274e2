//! Hard links among the names of a stacked file system (the Files pane's [`merged`] stack and
//! the [`waste`] analysis): a layer's hard link names the file's first name, and when that name
//! goes the file is not gone — it passes to one of its other names, which the rest then name.
//! Only a file whose last name goes is deleted (and its bytes waste).
//!
//! [`merged`]: super::merged
//! [`waste`]: super::waste

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HardLinks {
    /// The link names of each file, by the name they link to.
    names: BTreeMap<String, BTreeSet<String>>,
    /// What each link name links to.
    target: BTreeMap<String, String>,
}

impl HardLinks {
    /// `name` is another name of the file `target` names.
    pub fn link(&mut self, name: &str, target: &str) {
        self.target.insert(name.to_string(), target.to_string());
        self.names.entry(target.to_string()).or_default().insert(name.to_string());
    }

    /// `name` goes; whether it was a link (the file lives on under its other names).
    pub fn unlink(&mut self, name: &str) -> bool {
        let Some(target) = self.target.remove(name) else { return false };
        if let Some(names) = self.names.get_mut(&target) {
            names.remove(name);
        }
        true
    }

    /// The file `name` names goes from it: the name that holds the file now (its first other
    /// name, no longer a link) and the names that now link to that one; `None` when it had no
    /// other name.
    pub fn pass_on(&mut self, name: &str) -> Option<(String, BTreeSet<String>)> {
        let mut names = self.names.remove(name)?.into_iter();
        let heir = names.next()?;
        self.target.remove(&heir);
        let rest: BTreeSet<String> = names.collect();
        for n in &rest {
            self.target.insert(n.clone(), heir.clone());
        }
        if !rest.is_empty() {
            self.names.insert(heir.clone(), rest.clone());
        }
        Some((heir, rest))
    }

    /// The link names below `prefix` (a directory's path and `/`).
    pub fn below<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.target.range(prefix.to_string()..).map(|(n, _)| n).take_while(move |n| n.starts_with(prefix))
    }
}
