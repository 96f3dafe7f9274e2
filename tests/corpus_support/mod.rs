//! The corpus's rootless pass on Debian bases (tests/corpus.rs): where the user's cache mounts
//! live, and how root's and the user's images are compared when their digests cannot agree.

pub mod expect;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::common::Tree;
use crate::common::rootless::Workspace;

/// Root's and the user's images of a Debian case hold the same paths with the same type, mode,
/// owner and link target (contents may differ: see tests/corpus.rs's doc).
pub fn same_tree(name: &str, root: &Tree, user: &Tree) {
    let shape = |t: &Tree| -> BTreeMap<String, (char, u32, u32, u32, Option<String>)> {
        t.0.iter().map(|(p, f)| (p.clone(), (f.kind, f.mode, f.uid, f.gid, f.link.clone()))).collect()
    };
    let (root, user) = (shape(root), shape(user));
    let differ: Vec<String> = root
        .keys()
        .chain(user.keys())
        .filter(|p| root.get(*p) != user.get(*p))
        .map(|p| format!("{p}: root {:?}, rootless {:?}", root.get(p), user.get(p)))
        .collect();
    assert!(differ.is_empty(), "{name}: the rootless image's tree differs from root's:\n{}", differ.join("\n"));
}

/// The `--mount-cache-dir` of Debian cases, kept on the machine so packages are downloaded once
/// per machine. The user's is its own: root's holds files of ids the user's namespace does not
/// map, which its root could not write (and a user's build must not write root's cache). It is
/// named after the user's uid and subordinate range, the ids its files belong to, so a user made
/// again with other ids starts a new one.
pub fn mount_cache_dir(ws: Option<&Workspace>) -> PathBuf {
    let fixtures = PathBuf::from(std::env::var("TROWEL_FIXTURES").unwrap_or_else(|_| "/var/cache/trowel-tests".into()));
    let Some(ws) = ws else { return fixtures.join("mount-cache") };
    let u = &ws.user;
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap();
    let range = subuid.lines().find(|l| l.starts_with(&format!("{}:", u.name))).unwrap().replace(':', "-");
    let dir = fixtures.join(format!("mount-cache-rootless-{}-{range}", u.uid));
    if !dir.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(u.uid), Some(u.gid)).unwrap();
    }
    dir
}
