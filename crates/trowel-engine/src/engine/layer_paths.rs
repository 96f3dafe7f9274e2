//! What a stack of layers holds at a few paths, or below a directory: what the debugger's
//! "before" figures (`before.rs`: what a cached layer changed, and what a directory it
//! re-created held) and the contents of base files (`contents.rs`) need when the stage has no
//! build root to look in, or its root has changed them since.
//!
//! When the unpacked-layer store has an entry of every layer (a root of them was mounted from
//! it, in this build or an earlier one), the entries are mounted as an overlay of their own in
//! the work dir and the paths looked up there: overlayfs resolves whiteouts and opaque
//! directories exactly as it does for the root, and no blob is needed (the store serves such a
//! root without downloading its base: `root.rs`). Otherwise the layer blobs are read in one
//! pass: later layers override earlier ones; a whiteout of the path, or of a directory above
//! it, or an opaque directory above it, removes it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

use crate::engine::context::BuildContext;
use crate::engine::layer::StageLayer;
use crate::fs::root::Root;
use crate::fs::{FileType, PrevMeta};

/// A path the layers hold, as a reader of it gets it.
pub(crate) struct Found<'a> {
    /// A hard link's own entry in a layer blob is a `File` without content (`read_from_blobs`
    /// reads a wanted one again from the entry it links to).
    pub file_type: FileType,
    /// A regular file's size; 0 for any other type.
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds.
    pub mtime: Option<i64>,
    pub link_target: Option<String>,
    /// A regular file's content.
    pub content: Option<&'a mut dyn Read>,
}

/// For each of `wanted` that `layers` (bottom first) hold: what `read` made of it, or `None`
/// where a later layer removed it (absent: no layer has it). Nothing is found when neither the
/// store's entries nor the blobs can be had; a layer that cannot be read is skipped (what is
/// asked for is shown to a person, never built on).
pub(crate) fn read_paths<T: Clone>(
    ctx: &BuildContext<'_>,
    layers: &[StageLayer],
    wanted: &HashSet<&str>,
    mut read: impl FnMut(&mut Found<'_>) -> Option<T>,
) -> HashMap<String, Option<T>> {
    if let Some(found) = read_from_store(ctx, layers, wanted, &mut read) {
        return found;
    }
    read_from_blobs(ctx, layers, wanted, &mut read)
}

/// Every path `layers` (bottom first) hold below `dir` (not `dir` itself), with its metadata,
/// whiteouts and opaque directories applied: what a directory held before a step re-created
/// it. Empty when neither the store's entries nor the blobs can be had.
pub(crate) fn paths_under(ctx: &BuildContext<'_>, layers: &[StageLayer], dir: &str) -> BTreeMap<String, PrevMeta> {
    let dir = dir.trim_end_matches('/');
    if let Some(found) = under_in_store(ctx, layers, dir) {
        return found;
    }
    if ctx.fetch_blobs(layers).is_err() {
        return BTreeMap::new();
    }
    let prefix = format!("{dir}/");
    let mut out: BTreeMap<String, PrevMeta> = BTreeMap::new();
    for l in layers {
        each_entry(ctx, l, |path, entry| {
            let (parent, name) = path.rsplit_once('/').unwrap_or(("", &path));
            if let Some(hidden) = name.strip_prefix(".wh.") {
                if hidden == ".wh..opq" {
                    drop_below(&mut out, parent);
                } else {
                    let victim = format!("{parent}/{hidden}");
                    drop_below(&mut out, &victim);
                    out.remove(&victim);
                }
                return;
            }
            let h = entry.header();
            let file_type = match crate::fs::listing::file_type_of(h.entry_type()) {
                FileType::Hardlink => FileType::File,
                t => t,
            };
            // Anything but a directory replaces what was below its name.
            if file_type != FileType::Dir {
                drop_below(&mut out, &path);
            }
            if path.starts_with(&prefix) {
                let symlink = h.entry_type() == tar::EntryType::Symlink;
                let meta = PrevMeta {
                    file_type,
                    size: if file_type == FileType::File { h.size().unwrap_or(0) } else { 0 },
                    mode: h.mode().unwrap_or(0) & 0o7777,
                    uid: h.uid().unwrap_or(0) as u32,
                    gid: h.gid().unwrap_or(0) as u32,
                    link_target: entry
                        .link_name_bytes()
                        .filter(|_| symlink)
                        .map(|l| String::from_utf8_lossy(&l).into_owned()),
                    mtime: h.mtime().ok().map(|t| t as i64),
                    digest: None,
                };
                out.insert(path, meta);
            }
        });
    }
    out
}

/// Removes every path below `dir` from `out`.
fn drop_below<T>(out: &mut BTreeMap<String, T>, dir: &str) {
    let p = format!("{}/", dir.trim_end_matches('/'));
    let gone: Vec<String> =
        out.range(p.clone()..).take_while(|(k, _)| k.starts_with(&p)).map(|(k, _)| k.clone()).collect();
    for k in gone {
        out.remove(&k);
    }
}

/// [`paths_under`] from an overlay of the store's entries of `layers`.
fn under_in_store(ctx: &BuildContext<'_>, layers: &[StageLayer], dir: &str) -> Option<BTreeMap<String, PrevMeta>> {
    in_store_view(ctx, layers, |root| {
        let mut out = BTreeMap::new();
        let mut todo = vec![dir.to_string()];
        while let Some(d) = todo.pop() {
            for name in root.read_dir(&d).unwrap_or_default() {
                let p = format!("{d}/{name}");
                let Ok(Some(st)) = root.lstat(&p) else { continue };
                if st.file_type == FileType::Dir {
                    todo.push(p.clone());
                }
                let link_target = (st.file_type == FileType::Symlink).then(|| root.read_link(&p).ok()).flatten();
                let meta = PrevMeta {
                    file_type: st.file_type,
                    size: if st.file_type == FileType::File { st.size } else { 0 },
                    mode: st.mode,
                    uid: st.uid,
                    gid: st.gid,
                    link_target,
                    mtime: Some(st.mtime.sec),
                    digest: None,
                };
                out.insert(p, meta);
            }
        }
        out
    })
}

/// [`read_paths`] from an overlay of the store's entries of `layers`; `None` when the store
/// lacks one or the overlay cannot be mounted.
fn read_from_store<T>(
    ctx: &BuildContext<'_>,
    layers: &[StageLayer],
    wanted: &HashSet<&str>,
    read: &mut impl FnMut(&mut Found<'_>) -> Option<T>,
) -> Option<HashMap<String, Option<T>>> {
    in_store_view(ctx, layers, |root| {
        let mut found = HashMap::new();
        for p in wanted {
            if let Some(value) = read_in_root(root, p, read) {
                found.insert(p.to_string(), value);
            }
        }
        found
    })
}

/// What `look` makes of an overlay of the store's entries of `layers`, mounted in the work dir
/// for it; `None` when the store lacks one or the overlay cannot be mounted.
fn in_store_view<R>(ctx: &BuildContext<'_>, layers: &[StageLayer], look: impl FnOnce(&Root) -> R) -> Option<R> {
    let lowers = ctx.store_entries(layers)?;
    let scratch = ctx.scratch_dir("base-view").ok()?;
    let (target, upper, work) = (scratch.join("rootfs"), scratch.join("upper"), scratch.join("work"));
    let made = [&target, &upper, &work].iter().all(|d| std::fs::create_dir(d).is_ok());
    let mount = made.then(|| crate::fs::overlay_mount::LayerMount::mount(&lowers, &upper, &work, &target).ok());
    let found = mount.flatten().and_then(|mut mount| {
        let found = Root::open(&target).ok().map(|root| look(&root));
        // Busy only if something still held a file of it: detached then, gone when let go.
        let _ = mount.unmount();
        found
    });
    let _ = crate::fs::remove::remove_tree(&scratch);
    found
}

/// What `read` makes of `p` in `root`; `None` when `root` has no `p` or it cannot be read.
fn read_in_root<T>(root: &Root, p: &str, read: &mut impl FnMut(&mut Found<'_>) -> Option<T>) -> Option<Option<T>> {
    let st = root.lstat(p).ok()??;
    let mut found = Found {
        file_type: st.file_type,
        size: if st.file_type == FileType::File { st.size } else { 0 },
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        mtime: Some(st.mtime.sec),
        link_target: None,
        content: None,
    };
    match st.file_type {
        FileType::Symlink => found.link_target = root.read_link(p).ok(),
        FileType::File => {
            let (mut file, _) = root.open_file_nofollow(p).ok()?;
            return Some(read(&mut Found { content: Some(&mut file), ..found }));
        }
        _ => {}
    }
    Some(read(&mut found))
}

/// [`read_paths`] from the layer blobs, downloaded first where the blob store lacks them. A
/// wanted path that is a hard link in its layer is read from the entry it links to (the link's
/// own entry carries no content): in a second pass over that layer, or, when what it links to
/// is a link itself or a file of a layer below, as those layers hold it.
fn read_from_blobs<T: Clone>(
    ctx: &BuildContext<'_>,
    layers: &[StageLayer],
    wanted: &HashSet<&str>,
    read: &mut impl FnMut(&mut Found<'_>) -> Option<T>,
) -> HashMap<String, Option<T>> {
    if ctx.fetch_blobs(layers).is_err() {
        return HashMap::new();
    }
    read_layers(ctx, layers, wanted, read, 0)
}

/// How many links of a chain of hard links (a link to a link, or to a file of a layer below)
/// are followed. A full unpack refuses a link whose file is missing, so a layer whose chain
/// goes on past this (or loops) is one no build got this far with; its links keep what their
/// own entries say.
const MAX_LINK_DEPTH: usize = 8;

/// [`read_from_blobs`] over blobs that are there, `depth` links into a chain.
fn read_layers<T: Clone>(
    ctx: &BuildContext<'_>,
    layers: &[StageLayer],
    wanted: &HashSet<&str>,
    read: &mut impl FnMut(&mut Found<'_>) -> Option<T>,
    depth: usize,
) -> HashMap<String, Option<T>> {
    let mut found: HashMap<String, Option<T>> = HashMap::new();
    for (i, l) in layers.iter().enumerate() {
        // The wanted paths whose last entry in this layer is a hard link: the path it links to
        // and the link's place among the layer's entries.
        let mut linked: HashMap<String, (String, usize)> = HashMap::new();
        let mut at = 0usize;
        each_entry(ctx, l, |path, entry| {
            at += 1;
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", &path));
            if let Some(hidden) = name.strip_prefix(".wh.") {
                // `.wh..wh..opq` hides everything below `dir`; `.wh.x` hides `dir/x`.
                let victim = if hidden == ".wh..opq" { dir.to_string() } else { format!("{dir}/{hidden}") };
                for w in wanted {
                    if victim.is_empty() || *w == victim || w.starts_with(&format!("{victim}/")) {
                        found.insert(w.to_string(), None);
                        linked.remove(*w);
                    }
                }
                return;
            }
            if wanted.contains(path.as_str()) {
                // A later entry of the same name replaces an earlier one, link or not.
                match entry.link_name_bytes().filter(|_| entry.header().entry_type() == tar::EntryType::Link) {
                    Some(target) => linked.insert(path.clone(), (normalized(&target), at)),
                    None => linked.remove(&path),
                };
                let value = read_entry(entry, read);
                found.insert(path, value);
            }
        });
        if linked.is_empty() {
            continue;
        }
        // A hard link is to the file its target was when the link's entry came: the target's
        // last entry before it (a later entry of that name replaces the name, not the file).
        let mut targets: HashMap<String, Vec<(String, usize)>> = HashMap::new();
        for (name, (target, place)) in linked {
            targets.entry(target).or_default().push((name, place));
        }
        let mut resolved: HashMap<String, Option<Option<T>>> = HashMap::new();
        at = 0;
        each_entry(ctx, l, |path, entry| {
            at += 1;
            let Some(names) = targets.get(&path) else { return };
            let before: Vec<&String> = names.iter().filter(|(_, place)| at < *place).map(|(n, _)| n).collect();
            if before.is_empty() {
                return;
            }
            // `None`: the target is a link itself here, followed below.
            let value = (entry.header().entry_type() != tar::EntryType::Link).then(|| read_entry(entry, read));
            for name in before {
                resolved.insert(name.clone(), value.clone());
            }
        });
        // The rest link to a file of a layer below (their target has no entry before them
        // here), or to a link of this layer, followed as the layers up to this one hold it
        // (exact unless the layer names that link again after the entry linking to it).
        let (mut below, mut here): (HashMap<String, Vec<String>>, HashMap<String, Vec<String>>) = Default::default();
        for (target, names) in targets {
            for (name, _) in names {
                match resolved.remove(&name) {
                    Some(Some(value)) => {
                        found.insert(name, value);
                    }
                    Some(None) => here.entry(target.clone()).or_default().push(name),
                    None => below.entry(target.clone()).or_default().push(name),
                }
            }
        }
        if depth >= MAX_LINK_DEPTH {
            continue;
        }
        for (links, upto) in [(below, i), (here, i + 1)] {
            if links.is_empty() {
                continue;
            }
            let targets: HashSet<&str> = links.keys().map(String::as_str).collect();
            let values = read_layers(ctx, &layers[..upto], &targets, read, depth + 1);
            for (target, names) in &links {
                if let Some(value) = values.get(target) {
                    for name in names {
                        found.insert(name.clone(), value.clone());
                    }
                }
            }
        }
    }
    found
}

/// Calls `f` with each entry of layer `l`'s blob and its absolute path; a blob that cannot be
/// read is skipped, an entry that cannot ends the pass.
fn each_entry(ctx: &BuildContext<'_>, l: &StageLayer, mut f: impl FnMut(String, &mut BlobEntry<'_>)) {
    let Ok(file) = ctx.store.open_blob(&l.descriptor.digest) else { return };
    let Ok(reader) = crate::fs::unpack::open_layer(file) else { return };
    let mut archive = tar::Archive::new(reader);
    let Ok(entries) = archive.entries() else { return };
    for entry in entries {
        let Ok(mut entry) = entry else { break };
        let path = normalized(&entry.path_bytes());
        f(path, &mut entry);
    }
}

/// An entry of a layer blob.
type BlobEntry<'a> = tar::Entry<'a, Box<dyn Read + Send>>;

/// A tar entry's name (or a hard link's target) as an absolute path without a trailing `/`.
fn normalized(raw: &[u8]) -> String {
    let raw = String::from_utf8_lossy(raw);
    format!("/{}", raw.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/'))
}

/// What `read` makes of a layer blob's entry.
fn read_entry<T>(entry: &mut BlobEntry<'_>, read: &mut impl FnMut(&mut Found<'_>) -> Option<T>) -> Option<T> {
    let h = entry.header();
    let et = h.entry_type();
    let file_type = match crate::fs::listing::file_type_of(et) {
        FileType::Hardlink => FileType::File,
        t => t,
    };
    let regular = matches!(et, tar::EntryType::Regular | tar::EntryType::Continuous);
    let (mode, uid, gid) = (h.mode().unwrap_or(0) & 0o7777, h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
    let mtime = h.mtime().ok().map(|m| m as i64);
    let link_target = (file_type == FileType::Symlink)
        .then(|| entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()))
        .flatten();
    let size = if regular { entry.size() } else { 0 };
    let content: Option<&mut dyn Read> = if regular { Some(entry) } else { None };
    read(&mut Found { file_type, size, mode, uid, gid, mtime, link_target, content })
}
