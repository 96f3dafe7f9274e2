//! Cache entries: what one warmed (reference, platform) resolved to, as a small JSON file under
//! `<dir>/refs/`, and how entries are named, read and written.
//!
//! One warm writes the same record under up to three keys, so every way a Dockerfile can name
//! the image finds it without the network:
//! - `(registry/repo:tag, platform)` for a tag reference;
//! - `(sha256:<index digest>, platform)` when the reference pointed to an index: the index
//!   covers every platform, so the platform is part of the key;
//! - `(sha256:<manifest digest>, *)`: a manifest digest names exactly one image whatever the
//!   requested platform (a registry pull of `repo@<manifest digest>` ignores the platform too).
//!
//! Digest keys leave out the repository on purpose: content addressing makes `a/x@sha256:…` and
//! `b/y@sha256:…` the same bytes, and every blob is re-hashed before use anyway.
//!
//! Each file is self-contained (no entry points at another), so re-warming a moved tag can never
//! leave a digest key pointing at a record that no longer exists.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::CacheDirError;
use crate::digest::Digest;
use crate::image::manifest::{Descriptor, Platform};
use crate::registry::Reference;

/// Bumped when the entry format changes incompatibly; other versions read as a miss.
pub(crate) const ENTRY_VERSION: u32 = 1;
/// An entry lists a manifest's descriptors; manifests are capped at 4 MiB by the registry client,
/// so anything much bigger is not an entry trowel wrote.
pub(crate) const MAX_ENTRY: u64 = 8 << 20;
/// The platform part of a manifest-digest key: any platform.
pub(crate) const ANY_PLATFORM: &str = "*";
/// Prefix of in-progress entry files; never a valid entry name (those are `<64 hex>.json`).
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// What an entry file is found by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryKey {
    /// `registry/repository:tag` (normalised) or a bare `sha256:…` digest.
    pub reference: String,
    /// `os/arch[/variant]` (arm64 always with its `v8` default), or `*`.
    pub platform: String,
}

impl EntryKey {
    /// The key of a tag reference (any digest in `r` is ignored).
    pub fn tag(r: &Reference, platform: &Platform) -> EntryKey {
        let untagged = Reference { digest: None, ..r.clone() };
        EntryKey { reference: untagged.to_string(), platform: platform_key(platform) }
    }

    /// The key of an index digest for one platform.
    pub fn index(digest: &Digest, platform: &Platform) -> EntryKey {
        EntryKey { reference: digest.to_string(), platform: platform_key(platform) }
    }

    /// The key of a manifest digest (platform-independent).
    pub fn manifest(digest: &Digest) -> EntryKey {
        EntryKey { reference: digest.to_string(), platform: ANY_PLATFORM.to_string() }
    }

    /// The entry's file name: a hash of the key, so any reference (ports, slashes, `@`) maps to a
    /// fixed-length name that can never escape `refs/` or collide with a temporary file.
    pub fn file_name(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"trowel-base-image-entry\0");
        h.update(self.reference.as_bytes());
        h.update(b"\0");
        h.update(self.platform.as_bytes());
        format!("{}.json", hex::encode(h.finalize()))
    }
}

/// The keys a lookup of `r` for `platform` tries, in order: a digest reference may name an
/// index (platform-specific key) or a manifest (platform-independent key).
pub(crate) fn lookup_keys(r: &Reference, platform: &Platform) -> Vec<EntryKey> {
    match &r.digest {
        Some(d) => vec![EntryKey::index(d, platform), EntryKey::manifest(d)],
        None => vec![EntryKey::tag(r, platform)],
    }
}

/// `os/arch[/variant]`, with arm64's implied `v8` spelled out so `linux/arm64` and
/// `linux/arm64/v8` (which select the same manifest) share entries.
pub fn platform_key(p: &Platform) -> String {
    let variant = match (p.architecture.as_str(), p.variant.as_deref()) {
        ("arm64", None) => Some("v8"),
        (_, v) => v,
    };
    match variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// The on-disk record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EntryFile {
    pub version: u32,
    /// The key this file was written under; checked on read so a misplaced or renamed file is
    /// never served for another image.
    pub key: EntryKey,
    /// The reference that was warmed (normalised, e.g. `docker.io/library/alpine:3.20`).
    pub reference: String,
    /// The same image pinned by manifest digest: what a pull of exactly this image would use.
    pub pinned: String,
    /// The platform that was asked for.
    pub platform: Platform,
    /// The index the manifest was chosen from, if the reference pointed to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<Digest>,
    /// Digest, size and media type of the platform manifest.
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// RFC 3339, UTC, nanoseconds. The TTL is measured from this, not from the file's mtime,
    /// which copies and backups of the cache volume do not preserve.
    pub written_at: String,
}

impl EntryFile {
    pub fn written_at(&self) -> Option<SystemTime> {
        let t = chrono::DateTime::parse_from_rfc3339(&self.written_at).ok()?;
        let nanos = t.timestamp_nanos_opt()?;
        let since_epoch = Duration::from_nanos(u64::try_from(nanos).ok()?);
        SystemTime::UNIX_EPOCH.checked_add(since_epoch)
    }
}

/// The current time in the entry format.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Reads the entry stored under `key`: `Ok(None)` if there is none, or if the file is not a
/// readable entry for exactly this key (foreign version, garbage, wrong key). Only I/O errors
/// other than "not found" are errors.
pub(crate) fn read_entry(refs: &Path, key: &EntryKey) -> Result<Option<EntryFile>, CacheDirError> {
    let path = refs.join(key.file_name());
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CacheDirError::Io { path, source }),
    };
    let mut bytes = Vec::new();
    file.take(MAX_ENTRY + 1).read_to_end(&mut bytes).map_err(|source| CacheDirError::Io { path, source })?;
    if bytes.len() as u64 > MAX_ENTRY {
        return Ok(None);
    }
    match serde_json::from_slice::<EntryFile>(&bytes) {
        Ok(e) if e.version == ENTRY_VERSION && &e.key == key => Ok(Some(e)),
        _ => Ok(None),
    }
}

/// Writes `entry` under its key atomically: a temporary file in `refs/`, synced, then renamed
/// over any previous entry, then the directory synced. Readers see the old entry or the new
/// one, never a mix; two writers racing leave one complete entry (the last rename wins).
pub(crate) fn write_entry(refs: &Path, entry: &EntryFile) -> Result<PathBuf, CacheDirError> {
    let path = refs.join(entry.key.file_name());
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CacheDirError::Io { path, source }
    };
    // World-readable (as warming makes the blobs): a warmer and a build often run as different
    // users on a shared volume, and an entry holds nothing secret.
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(fs::Permissions::from_mode(0o644))
        .tempfile_in(refs)
        .map_err(io_err(refs))?;
    let bytes = serde_json::to_vec_pretty(entry).expect("entries serialise");
    tmp.write_all(&bytes).map_err(io_err(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
    tmp.persist(&path).map_err(|e| CacheDirError::Io { path: path.clone(), source: e.error })?;
    sync_dir(refs)?;
    Ok(path)
}

/// fsync a directory, so renames into it are durable before anything that depends on them.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), CacheDirError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| CacheDirError::Io { path: dir.to_path_buf(), source })
}

/// Removes leftovers of interrupted writes older than `min_age` from `dir`: files whose names
/// start with one of `prefixes`. Younger ones may belong to a writer that is still running.
pub(crate) fn remove_stale_temps(dir: &Path, prefixes: &[&str], min_age: Duration) -> Result<usize, CacheDirError> {
    let io_err = |source| CacheDirError::Io { path: dir.to_path_buf(), source };
    let now = SystemTime::now();
    let mut removed = 0;
    for e in fs::read_dir(dir).map_err(io_err)? {
        let e = e.map_err(io_err)?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).unwrap_or_default();
        if meta.is_file() && age >= min_age && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse_exact(s).unwrap()
    }

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn file_names_are_fixed_length_hex() {
        for k in [
            EntryKey::tag(&r("busybox"), &p("linux/amd64")),
            EntryKey::tag(&r("127.0.0.1:5000/a/b/c:v1.2-rc"), &p("linux/arm/v7")),
            EntryKey::manifest(&Digest::of(b"x")),
        ] {
            let name = k.file_name();
            assert_eq!(name.len(), 64 + ".json".len(), "{name}");
            assert!(name.trim_end_matches(".json").bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
            assert!(!name.starts_with(TEMP_PREFIX));
        }
    }

    #[test]
    fn equivalent_references_share_a_key() {
        let plat = p("linux/amd64");
        let a = EntryKey::tag(&r("busybox"), &plat);
        let b = EntryKey::tag(&r("docker.io/library/busybox:latest"), &plat);
        let c = EntryKey::tag(&r("index.docker.io/library/busybox"), &plat);
        assert_eq!(a, b);
        assert_eq!(a.file_name(), c.file_name());
        assert_eq!(a.reference, "docker.io/library/busybox:latest");
        // arm64's default variant is implied.
        assert_eq!(
            EntryKey::tag(&r("x:1"), &p("linux/arm64")).file_name(),
            EntryKey::tag(&r("x:1"), &p("linux/arm64/v8")).file_name()
        );
    }

    #[test]
    fn distinct_keys_get_distinct_names() {
        let d = Digest::of(b"index");
        let names = [
            EntryKey::tag(&r("x:1"), &p("linux/amd64")).file_name(),
            EntryKey::tag(&r("x:1"), &p("linux/arm64")).file_name(),
            EntryKey::tag(&r("x:2"), &p("linux/amd64")).file_name(),
            EntryKey::tag(&r("y:1"), &p("linux/amd64")).file_name(),
            EntryKey::index(&d, &p("linux/amd64")).file_name(),
            EntryKey::index(&d, &p("linux/arm64")).file_name(),
            EntryKey::manifest(&d).file_name(),
            // The separator keeps ("ab", "c") and ("a", "bc") apart.
            EntryKey { reference: "ab".into(), platform: "c".into() }.file_name(),
            EntryKey { reference: "a".into(), platform: "bc".into() }.file_name(),
        ];
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn digest_references_try_index_then_manifest_keys() {
        let d = Digest::of(b"m");
        let plat = p("linux/amd64");
        let keys = lookup_keys(&r(&format!("reg.example/x:tag@{d}")), &plat);
        assert_eq!(keys, vec![EntryKey::index(&d, &plat), EntryKey::manifest(&d)]);
        assert_eq!(keys[1].platform, ANY_PLATFORM);
        assert_eq!(lookup_keys(&r("reg.example/x:tag"), &plat), vec![EntryKey::tag(&r("reg.example/x:tag"), &plat)]);
    }

    #[test]
    fn entries_round_trip_and_are_checked_against_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let plat = p("linux/amd64");
        let key = EntryKey::tag(&r("reg.example/x:1"), &plat);
        let desc = Descriptor::new("application/vnd.oci.image.manifest.v1+json", Digest::of(b"m"), 1);
        let entry = EntryFile {
            version: ENTRY_VERSION,
            key: key.clone(),
            reference: "reg.example/x:1".into(),
            pinned: format!("reg.example/x@{}", desc.digest),
            platform: plat.clone(),
            index_digest: None,
            manifest: desc.clone(),
            config: desc.clone(),
            layers: vec![desc],
            written_at: now_rfc3339(),
        };
        let path = write_entry(dir.path(), &entry).unwrap();
        assert_eq!(read_entry(dir.path(), &key).unwrap().as_ref(), Some(&entry));
        let age = SystemTime::now().duration_since(entry.written_at().unwrap()).unwrap();
        assert!(age < Duration::from_secs(60), "{age:?}");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        // A file that is moved under another key's name is not served for that key.
        let other = EntryKey::tag(&r("reg.example/y:1"), &plat);
        fs::rename(&path, dir.path().join(other.file_name())).unwrap();
        assert_eq!(read_entry(dir.path(), &other).unwrap(), None);
        // Garbage and foreign versions read as a miss.
        fs::write(dir.path().join(key.file_name()), b"{not json").unwrap();
        assert_eq!(read_entry(dir.path(), &key).unwrap(), None);
        let future = EntryFile { version: ENTRY_VERSION + 1, ..entry };
        write_entry(dir.path(), &future).unwrap();
        assert_eq!(read_entry(dir.path(), &key).unwrap(), None);
    }
}
