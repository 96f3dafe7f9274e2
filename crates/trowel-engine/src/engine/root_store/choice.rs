//! Whether a build's roots come from the unpacked-layer store, and which store: decided once,
//! when the first root needs it (a rootless build's store is named after its user namespace's
//! id maps, which are written after the build starts). The choice also holds what the build
//! made in the store and the use locks it took, until the build ends (see `mod.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, OnceLock};
use std::thread::JoinHandle;

use crate::cache::unpacked::{Pending, USERNS_STORES, UnpackedStore};
use crate::digest::Digest;
use crate::sandbox::Isolation;

/// Whether this build's roots come from the store, decided at most once per build.
pub(crate) struct StoreChoice {
    /// The cache dir's store, and the isolation that decides which of its stores is this
    /// build's: resolved by [`StoreChoice::configured`] when the first root needs it.
    dir: Option<PathBuf>,
    isolation: Isolation,
    /// The store's directory, or why there is none to use.
    configured: OnceLock<Result<PathBuf, String>>,
    /// The opened and probed store, or why it cannot serve roots; made when the first root is.
    pub(super) ready: OnceLock<Result<UnpackedStore, String>>,
    /// Whether the store's refusal was said (`BuildContext::warn_store_refused`).
    pub(super) refused_said: Once,
    /// Entries this build made that are being committed on `committers` (marked, renamed into
    /// place): by chain ID, the directory they are in until then, so a later root of this
    /// build uses them rather than making them again.
    pub(super) made: Mutex<HashMap<Digest, PathBuf>>,
    /// What the committers could not make entries of; deleted when the build ends, after its
    /// roots (which may be mounted from them).
    pub(super) committers: Mutex<Vec<JoinHandle<Vec<Pending>>>>,
    /// The use locks of every entry this build looked up or made, held until it ends: its
    /// roots may be mounted from them (`cache/usage.rs`).
    pub(super) held: Mutex<HashMap<Digest, std::fs::File>>,
}

impl Drop for StoreChoice {
    /// The build waits for its entries to be committed: a process that exits first would
    /// leave them in `tmp/` for the next build to delete.
    fn drop(&mut self) {
        for c in std::mem::take(self.committers.get_mut().unwrap_or_else(|p| p.into_inner())) {
            // Dropping them deletes them.
            let _ = c.join();
        }
    }
}

impl StoreChoice {
    pub fn new(dir: Option<&Path>, isolation: Isolation) -> StoreChoice {
        StoreChoice {
            dir: dir.map(Path::to_path_buf),
            isolation,
            configured: OnceLock::new(),
            ready: OnceLock::new(),
            refused_said: Once::new(),
            made: Mutex::default(),
            committers: Mutex::default(),
            held: Mutex::default(),
        }
    }

    /// The store's directory, or why there is none to use. Decided when a root first needs it:
    /// a store in a user namespace is named after its maps, which a rootless build may not
    /// have yet when it starts (`sandbox/userns.rs`).
    pub(crate) fn configured(&self) -> &Result<PathBuf, String> {
        self.configured.get_or_init(|| match &self.dir {
            _ if self.isolation == Isolation::Container => Err("container isolation mounts no overlays".to_string()),
            None => Err("no cache dir (the --cache-dir directory, /cache unless given, does not exist)".to_string()),
            // A store of its own per user-namespace mapping (see `cache/unpacked.rs`).
            Some(d) if self.isolation == Isolation::Rootless || crate::fs::overlay_mount::in_user_namespace() => {
                userns_store(d)
            }
            Some(d) => Ok(d.clone()),
        })
    }
}

/// The store of a build in a user namespace (rootless isolation; or chroot isolation in a pod
/// with one), beside root's (`<dir>` is root's `<cache-dir>/unpacked`):
/// `<cache-dir>/unpacked-userns/<range|single|ns>-<12 hex>`, one per mapping of the namespace
/// this process is in, the hex a digest of its uid and gid maps. Kept apart from root's because an
/// entry's files are owned by the host ids the mapping gave them (the user's subordinate ids)
/// and its whiteouts and opaque directories are marked with `user.overlay.*`, which an overlay
/// mounted as real root ignores; and apart per mapping because an entry made with one id only
/// has every file owned by the user (0 inside), which a range mapping would serve as the image's
/// owners, and an entry made with a range holds ids another mapping shows as `nobody`.
fn userns_store(dir: &Path) -> Result<PathBuf, String> {
    // `None`: a namespace trowel did not make (a pod with `hostUsers: false`, chroot isolation).
    let kind = match crate::sandbox::userns::current_mapping() {
        Some(crate::sandbox::userns::Mapping::Range) => "range",
        Some(crate::sandbox::userns::Mapping::Single) => "single",
        None => "ns",
    };
    // The maps name the store: not before they are written.
    crate::sandbox::userns::mapped().map_err(|e| e.to_string())?;
    let read = |f: &str| std::fs::read_to_string(f).map_err(|e| format!("read {f}: {e}"));
    let name = store_name(kind, &read("/proc/self/uid_map")?, &read("/proc/self/gid_map")?);
    let cache_dir = dir.parent().unwrap_or(dir);
    Ok(cache_dir.join(USERNS_STORES).join(name))
}

/// `<kind>-<12 hex>`: the hex from the numbers of the uid and gid maps (the kernel pads their
/// columns), so two mappings never share a store.
fn store_name(kind: &str, uid_map: &str, gid_map: &str) -> String {
    let mut maps = String::new();
    for text in [uid_map, gid_map] {
        for line in text.lines() {
            maps.push_str(&line.split_whitespace().collect::<Vec<_>>().join(" "));
            maps.push('\n');
        }
        maps.push_str("--\n");
    }
    format!("{kind}-{}", &Digest::of(maps.as_bytes()).hex()[..12])
}

#[cfg(test)]
mod tests {
    use super::store_name;

    /// One store per mapping: the kind and every number of either map tell them apart; the
    /// kernel's column padding does not.
    #[test]
    fn each_mapping_has_a_store_of_its_own() {
        let single = store_name("single", "         0       1000          1\n", "         0       1000          1\n");
        let range = "0 1000 1\n1 1000000 65536\n";
        let a = store_name("range", range, range);
        assert!(single.starts_with("single-") && a.starts_with("range-"), "{single} {a}");
        assert_eq!(single.len(), "single-".len() + 12);
        assert_eq!(store_name("single", "0 1000 1\n", "0 1000 1\n"), single, "padding is not part of it");
        assert_ne!(store_name("range", "0 1000 1\n1 1065536 65536\n", range), a, "another range");
        assert_ne!(store_name("range", range, "0 1000 1\n1 1000000 65535\n"), a, "another gid range");
        assert_ne!(store_name("range", "0 1000 1\n", "0 1000 1\n"), store_name("single", "0 1000 1\n", "0 1000 1\n"));
    }
}
