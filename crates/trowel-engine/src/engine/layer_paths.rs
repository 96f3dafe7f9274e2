//! What a stack of layers holds at a few paths, read straight from the layer blobs in one pass:
//! what the debugger's "before" figures (`before.rs`) and the contents of base files
//! (`contents.rs`) need when the stage has no build root to look in. Later layers override
//! earlier ones; a whiteout of the path, or of a directory above it, or an opaque directory
//! above it, removes it.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use crate::engine::context::BuildContext;
use crate::engine::layer::StageLayer;

/// An entry of a layer, as the reader of a wanted path gets it.
pub(crate) type Entry<'a> = tar::Entry<'a, Box<dyn Read + Send>>;

/// For each of `wanted` that `layers` (bottom first) hold: what `read` made of its topmost
/// entry, or `None` where a later layer removed it. Paths no layer mentions are absent. Nothing
/// is found when the blobs cannot be fetched; a layer that cannot be read is skipped (what is
/// asked for is shown to a person, never built on).
pub(crate) fn read_paths<T>(
    ctx: &BuildContext<'_>,
    layers: &[StageLayer],
    wanted: &HashSet<&str>,
    mut read: impl FnMut(&mut Entry<'_>) -> Option<T>,
) -> HashMap<String, Option<T>> {
    let mut found: HashMap<String, Option<T>> = HashMap::new();
    if ctx.fetch_blobs(layers).is_err() {
        return found;
    }
    for l in layers {
        let Ok(file) = ctx.store.open_blob(&l.descriptor.digest) else { continue };
        let Ok(reader) = crate::fs::unpack::open_layer(file) else { continue };
        let mut archive = tar::Archive::new(reader);
        let Ok(entries) = archive.entries() else { continue };
        for entry in entries {
            let Ok(mut entry) = entry else { break };
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = format!("/{}", raw.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/'));
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", &path));
            if let Some(hidden) = name.strip_prefix(".wh.") {
                // `.wh..wh..opq` hides everything below `dir`; `.wh.x` hides `dir/x`.
                let victim = if hidden == ".wh..opq" { dir.to_string() } else { format!("{dir}/{hidden}") };
                for w in wanted {
                    if victim.is_empty() || *w == victim || w.starts_with(&format!("{victim}/")) {
                        found.insert(w.to_string(), None);
                    }
                }
                continue;
            }
            if wanted.contains(path.as_str()) {
                let value = read(&mut entry);
                found.insert(path, value);
            }
        }
    }
    found
}
