//! Layer listings kept under the cache dir (`<cache-dir>/listings/<blob digest hex>`): what a
//! layer holds, as `fs::listing::list_layer` read it from the blob, so that a debugger or a
//! trace asking again for a layer it was shown before needs neither the blob nor the time to
//! read it.
//!
//! A viewer is shown the entries of layers no build root needs: a cached step's layer in a
//! stage cached so far (the Changes pane, a trace's `snapshot`), and the base's layers (the
//! Files pane, `--trace-base-listings`). Without these files every such session downloaded and
//! read them again, even when the unpacked-layer store held them (a debug pod with a persistent
//! cache dir paid a cached 40 MB layer's download on every session, where an untraced rebuild
//! downloads nothing).
//!
//! A listing is a function of the blob's bytes, so it is keyed by the blob's digest: whatever
//! build, repository or cache entry names that blob shares it. It is written after the blob was
//! downloaded and verified against that digest (or found in a local store that verified it), and
//! is kept only in a cache dir, which only its owner can write (`docs/hardening.md`); what is
//! read back must be whole (`cache/sealed.rs`) and name its digest and this trowel's listing
//! format, or it is ignored and the blob read again. Reading one marks it used (its modification
//! time), so `trowel cache prune` removes the least recently used first; a cache dir keeps at
//! most [`MAX_LISTINGS`] whatever the prune policy.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use crate::digest::Digest;
use crate::fs::snapshot::Change;

/// The directory of listings under the cache dir.
pub const DIR: &str = "listings";
/// Listings kept per cache dir: the least recently used go first (a listing is about 200 bytes
/// per path; a base image's layers take a few hundred kilobytes each).
pub const MAX_LISTINGS: usize = 2000;
/// What a listing says of a layer. Raise it whenever `fs::listing::list_layer`'s output for
/// some layer changes: a listing an older trowel wrote would show its facts, not the new ones
/// (a unit test pins that output with this number, and fails until both change together).
const FORMAT: u32 = 1;
/// A listing larger than this is not kept (a layer of about a million paths).
const MAX_FILE: u64 = 256 << 20;

/// The listings of one cache dir, or none (no usable cache dir: every listing is read from its
/// blob).
#[derive(Debug, Default)]
pub struct Listings {
    dir: Option<PathBuf>,
    /// A listing could not be kept (a read-only cache dir, a full disk): this build keeps no
    /// more, and says so once.
    failed: AtomicBool,
}

impl Listings {
    /// The listings kept in `cache_dir`.
    pub fn in_cache_dir(cache_dir: &Path) -> Listings {
        Listings { dir: Some(cache_dir.join(DIR)), failed: AtomicBool::new(false) }
    }

    /// The listing of the layer whose blob is `blob`, when one is kept; marks it used.
    pub fn get(&self, blob: &Digest) -> Option<Vec<Change>> {
        let file = self.dir.as_ref()?.join(blob.hex());
        let entries = read(&file, blob)?;
        // Its last use, for the prunes (`cache/prune/`): one system call.
        let _ = File::open(&file).and_then(|f| f.set_modified(SystemTime::now()));
        Some(entries)
    }

    /// Keeps `entries` as the listing of the layer whose blob is `blob` (read from that blob,
    /// verified). A failure only costs reading the blob again next time: the first is returned
    /// for a warning, and the build then keeps no more.
    pub fn put(&self, blob: &Digest, entries: &[Change]) -> io::Result<()> {
        let Some(dir) = self.dir.as_ref().filter(|_| !self.failed.load(Ordering::Relaxed)) else { return Ok(()) };
        let json = serde_json::to_string(entries).map_err(io::Error::other)?;
        let body = format!("{}\n{json}\n", header(blob));
        if body.len() as u64 > MAX_FILE {
            return Ok(());
        }
        let kept =
            fs::create_dir_all(dir).and_then(|()| crate::cache::sealed::write(dir, &dir.join(blob.hex()), &body));
        match kept {
            Ok(()) => crate::cache::sealed::keep_newest(dir, MAX_LISTINGS),
            Err(_) => self.failed.store(true, Ordering::Relaxed),
        }
        kept
    }
}

fn header(blob: &Digest) -> String {
    format!("trowel-layer-listing {FORMAT}\t{}\t{blob}", env!("CARGO_PKG_VERSION"))
}

/// The entries of the listing file `file` when it is whole and says it lists `blob` in this
/// trowel's format.
fn read(file: &Path, blob: &Digest) -> Option<Vec<Change>> {
    let body = crate::cache::sealed::read(file, MAX_FILE)?;
    let (head, json) = body.split_once('\n')?;
    if head != header(blob) {
        return None;
    }
    serde_json::from_str(json).ok()
}

/// For `trowel cache check`: whether the listing at `file` is whole and names the blob its file
/// is named after. One of an older trowel's format is intact (it is only not used).
pub(crate) fn file_is_intact(file: &Path) -> bool {
    let Some(body) = crate::cache::sealed::read(file, MAX_FILE) else { return false };
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let named = body.lines().next().and_then(|h| h.rsplit('\t').next()).and_then(|d| d.parse::<Digest>().ok());
    named.is_some_and(|d| d.hex() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FileType;
    use crate::fs::snapshot::{ChangeKind, PrevMeta};

    fn change(path: &str, kind: ChangeKind, file_type: FileType) -> Change {
        Change {
            path: path.into(),
            kind,
            file_type,
            size: 0,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            link_target: None,
            digest: None,
            opaque: false,
            previous: None,
        }
    }

    /// Every field a listing can carry: a directory made opaque, a file with its digest, a
    /// symlink, a hard link, a whiteout, and (not from a listing, but serialised all the same)
    /// a previous state.
    fn listing() -> Vec<Change> {
        let mut file = change("/d/f\tname\n", ChangeKind::Added, FileType::File);
        file.size = 3;
        file.digest = Some(Digest::of(b"abc").into());
        let mut link = change("/d/l", ChangeKind::Added, FileType::Symlink);
        link.link_target = Some("../x".into());
        let mut hard = change("/d/h", ChangeKind::Added, FileType::Hardlink);
        hard.link_target = Some("/d/f\tname\n".into());
        hard.digest = file.digest;
        let mut dir = change("/d", ChangeKind::Added, FileType::Dir);
        dir.opaque = true;
        let mut gone = change("/gone", ChangeKind::Deleted, FileType::File);
        gone.previous = Some(Box::new(PrevMeta {
            file_type: FileType::Dir,
            size: 0,
            mode: 0o700,
            uid: 1,
            gid: 2,
            link_target: None,
            mtime: Some(5),
            digest: None,
        }));
        vec![dir, file, hard, link, gone]
    }

    #[test]
    fn a_kept_listing_is_the_listing_that_was_put() {
        let cache = tempfile::tempdir().unwrap();
        let listings = Listings::in_cache_dir(cache.path());
        let blob = Digest::of(b"a layer");
        assert_eq!(listings.get(&blob), None);
        listings.put(&blob, &listing()).unwrap();
        assert_eq!(listings.get(&blob), Some(listing()));
        assert_eq!(listings.get(&Digest::of(b"another layer")), None);
        assert!(file_is_intact(&cache.path().join(DIR).join(blob.hex())));
        // No cache dir: nothing kept, nothing found.
        Listings::default().put(&blob, &listing()).unwrap();
        assert_eq!(Listings::default().get(&blob), None);
    }

    #[test]
    fn a_listing_that_is_torn_misnamed_or_of_another_format_is_not_used() {
        let cache = tempfile::tempdir().unwrap();
        let listings = Listings::in_cache_dir(cache.path());
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        listings.put(&a, &listing()).unwrap();
        let dir = cache.path().join(DIR);
        let text = fs::read_to_string(dir.join(a.hex())).unwrap();
        // Another blob's listing under this blob's name (a copied file): not this layer's.
        fs::write(dir.join(b.hex()), &text).unwrap();
        assert_eq!(listings.get(&b), None);
        assert!(!file_is_intact(&dir.join(b.hex())));
        // Cut short.
        fs::write(dir.join(a.hex()), &text[..text.len() / 2]).unwrap();
        assert_eq!(listings.get(&a), None);
        assert!(!file_is_intact(&dir.join(a.hex())));
        // Whole, but written by a trowel whose listings say other things.
        let body = text[..text.rfind("end ").unwrap()].replace("trowel-layer-listing 1\t", "trowel-layer-listing 0\t");
        crate::cache::sealed::write(&dir, &dir.join(a.hex()), &body).unwrap();
        assert_eq!(listings.get(&a), None);
        assert!(file_is_intact(&dir.join(a.hex())), "whole, only not used");
    }

    #[test]
    fn a_listing_that_cannot_be_kept_is_said_once() {
        let cache = tempfile::tempdir().unwrap();
        // Where the listings would go is a file (as a read-only or full cache dir refuses them).
        fs::write(cache.path().join(DIR), "").unwrap();
        let listings = Listings::in_cache_dir(cache.path());
        assert!(listings.put(&Digest::of(b"a"), &listing()).is_err());
        assert!(listings.put(&Digest::of(b"b"), &listing()).is_ok(), "not tried again");
        assert_eq!(listings.get(&Digest::of(b"a")), None);
    }

    #[test]
    fn reading_a_listing_marks_it_used() {
        let cache = tempfile::tempdir().unwrap();
        let listings = Listings::in_cache_dir(cache.path());
        let blob = Digest::of(b"a layer");
        listings.put(&blob, &listing()).unwrap();
        let file = cache.path().join(DIR).join(blob.hex());
        let old = SystemTime::now() - std::time::Duration::from_secs(86400);
        File::options().write(true).open(&file).unwrap().set_modified(old).unwrap();
        listings.get(&blob).unwrap();
        let used = fs::metadata(&file).unwrap().modified().unwrap();
        assert!(used.elapsed().unwrap().as_secs() < 3600, "{used:?}");
    }

    /// `list_layer`'s output for a layer with every kind of entry, pinned with [`FORMAT`]: a
    /// change to what a listing says (a field, a rule, an order) must raise `FORMAT`, or the
    /// listings an older trowel kept would be shown as this one's facts. When this fails on
    /// purpose, raise `FORMAT` and pin the new digest with it.
    #[test]
    fn what_a_listing_says_is_pinned_with_its_format() {
        use tar::EntryType;
        let mut b = tar::Builder::new(Vec::new());
        let mut entry = |kind: EntryType, name: &str, mode: u32, link: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(1000);
            h.set_gid(50);
            h.set_mtime(1_700_000_000);
            h.set_size(data.len() as u64);
            h.set_path(name).unwrap();
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            h.set_cksum();
            b.append(&h, data).unwrap();
        };
        entry(EntryType::Directory, "app/", 0o755, "", b"");
        entry(EntryType::Directory, "app/cache/", 0o700, "", b"");
        entry(EntryType::Regular, "app/cache/.wh..wh..opq", 0o644, "", b"");
        entry(EntryType::Regular, "app/run", 0o4755, "", b"#!/bin/sh\n");
        entry(EntryType::Link, "app/run2", 0o4755, "app/run", b"");
        entry(EntryType::Symlink, "app/latest", 0o777, "run", b"");
        entry(EntryType::Regular, "app/.wh.old.log", 0o644, "", b"");
        entry(EntryType::Fifo, "app/pipe", 0o600, "", b"");
        let layer = b.into_inner().unwrap();
        let listed = crate::fs::listing::list_layer(&layer[..]).unwrap();
        let json = serde_json::to_string(&listed).unwrap();
        let pinned = (FORMAT, Digest::of(json.as_bytes()).to_string());
        assert_eq!(
            pinned,
            (1, "sha256:5571afd92ad2ff8ba7c6633821afeb7c50d3dfb444f4d97c62954c4ecc5216ae".to_string()),
            "list_layer's output changed: raise FORMAT and pin the new digest with it\n{json}"
        );
    }
}
