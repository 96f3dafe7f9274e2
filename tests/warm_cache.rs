//! `BaseImageCache` against the real test registry: what warming writes (checked with sha256sum
//! and skopeo), skipping, forcing, corruption and repair, partial files, indexes, TTL expiry,
//! offline lookups, concurrent warmers, and handing blobs to a build's store.

mod common;
mod warm_support;

use std::time::Duration;

use common::env;
use trowel_engine::cache::basedir::{BaseImageCache, EntryKey, Miss, WarmOutcome};
use trowel_engine::digest::Digest;
use trowel_engine::image::manifest::Platform;
use trowel_engine::image::store::BlobStore;
use trowel_engine::registry::Reference;
use warm_support::*;

const TTL: Option<Duration> = Some(Duration::from_secs(3600));

fn host() -> Platform {
    Platform::host()
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn warm(cache: &BaseImageCache, r: &Reference, platform: &Platform, force: bool) -> WarmOutcome {
    rt().block_on(cache.warm(&registry(), r, platform, TTL, force)).unwrap()
}

#[test]
fn warm_by_tag_stores_verified_blobs_and_an_entry_matching_skopeo() {
    let (_g, cache, _) = fresh_cache();
    let busybox = env().busybox();
    let r = reference(&busybox);
    let outcome = warm(&cache, &r, &host(), false);
    let WarmOutcome::Warmed { base, downloaded_blobs, downloaded_bytes } = &outcome else {
        panic!("expected a fresh warm, got {outcome:?}")
    };

    let (skopeo_digest, skopeo_layers) = skopeo_image(&busybox, None);
    let (raw_manifest, raw_digest) = skopeo_raw(&busybox, None);
    assert_eq!(raw_digest, skopeo_digest);
    assert_eq!(base.image.manifest_digest.to_string(), skopeo_digest);
    let layers: Vec<String> = base.layers().iter().map(|l| l.digest.to_string()).collect();
    assert_eq!(layers, skopeo_layers);
    assert_eq!(*downloaded_blobs, skopeo_layers.len());
    assert_eq!(*downloaded_bytes, base.layers_size());
    assert_eq!(base.image.index_digest, None);

    // Every blob hashes to its name, and the store holds exactly manifest, config and layers.
    let blobs = assert_blobs_hash_to_their_names(&cache);
    let mut want: Vec<String> = skopeo_layers.iter().map(|d| d.trim_start_matches("sha256:").to_string()).collect();
    want.push(skopeo_digest.trim_start_matches("sha256:").to_string());
    want.push(base.image.config_digest.hex().to_string());
    want.sort();
    assert_eq!(blobs, want);
    assert_eq!(std::fs::read(cache.store().path(&base.image.manifest_digest)).unwrap(), raw_manifest);

    // The entry (tag key plus manifest-digest alias) records what skopeo reports.
    let entries = entries(&cache);
    assert_eq!(entries.len(), 2, "{entries:#?}");
    for e in &entries {
        assert_eq!(e["reference"], r.to_string());
        assert_eq!(e["manifest"]["digest"], skopeo_digest);
        assert_eq!(e["manifest"]["size"], raw_manifest.len());
        assert_eq!(e["manifest"]["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        let layers: Vec<&str> = e["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap()).collect();
        assert_eq!(layers, skopeo_layers);
        assert_eq!(e["config"]["digest"], base.image.config_digest.to_string());
        assert!(e["written_at"].as_str().unwrap().ends_with('Z'));
    }
    let tag_entry = cache.entry_path(&EntryKey::tag(&r, &host()));
    assert!(tag_entry.is_file(), "{}", tag_entry.display());

    // A lookup by tag and by manifest digest returns the same image without a registry.
    let hit = cache.lookup(&r, &host(), TTL).unwrap().expect("cached by tag");
    assert_eq!(hit.image.manifest_bytes, raw_manifest);
    assert_eq!(hit.image.config_bytes, base.image.config_bytes);
    assert!(cache.verify_layers(&hit).unwrap().is_empty());
    let pinned = r.with_digest(skopeo_digest.parse().unwrap());
    let hit = cache.lookup(&pinned, &host(), TTL).unwrap().expect("cached by manifest digest");
    assert_eq!(hit.image.manifest_digest.to_string(), skopeo_digest);
    // The same normalised reference written differently hits too.
    let spelled = reference(&format!("{}/busybox:1.35", env().registry));
    assert!(cache.lookup(&spelled, &host(), TTL).unwrap().is_some());
    assert!(cache.lookup(&reference(&format!("{}/busybox:latest", env().registry)), &host(), TTL).unwrap().is_none());
}

#[test]
fn warming_again_reuses_the_entry_and_force_refreshes_it() {
    let (_g, cache, _) = fresh_cache();
    let r = reference(&env().busybox());
    let first = warm(&cache, &r, &host(), false);
    let layer = first.base().layers()[0].digest.clone();
    let layer_path = cache.store().path(&layer);
    let entry_path = cache.entry_path(&EntryKey::tag(&r, &host()));
    // The entry's modification time is its last use (`trowel cache prune`), set by every
    // lookup: "not rewritten" is the same file with the same content.
    let entry_identity = |p: &std::path::Path| (identity(p).0, std::fs::read(p).unwrap());
    let (layer_id, entry_id) = (identity(&layer_path), entry_identity(&entry_path));
    std::thread::sleep(Duration::from_millis(20));

    let again = warm(&cache, &r, &host(), false);
    let WarmOutcome::AlreadyCached(c) = &again else { panic!("expected already cached, got {again:?}") };
    assert_eq!(c.image.manifest_digest, first.base().image.manifest_digest);
    assert_eq!(c.written_at, first.base().written_at);
    assert_eq!(identity(&layer_path), layer_id, "the layer blob was rewritten");
    assert_eq!(entry_identity(&entry_path), entry_id, "the entry was rewritten");

    // --force resolves again and writes a new entry; intact blobs are verified, not re-downloaded.
    let forced = warm(&cache, &r, &host(), true);
    let WarmOutcome::Warmed { base, downloaded_blobs, .. } = &forced else { panic!("expected a warm, got {forced:?}") };
    assert!(base.written_at > first.base().written_at);
    assert_eq!(*downloaded_blobs, 0);
    assert_ne!(entry_identity(&entry_path), entry_id, "the entry was not rewritten");
    assert_eq!(identity(&layer_path).0, layer_id.0);
    let hit = cache.lookup(&r, &host(), TTL).unwrap().unwrap();
    assert_eq!(hit.written_at, base.written_at);
}

#[test]
fn a_corrupt_layer_is_reported_deleted_and_repaired_by_the_next_warm() {
    let (_g, cache, _) = fresh_cache();
    let r = reference(&env().busybox());
    let first = warm(&cache, &r, &host(), false);
    let layer = first.base().layers()[0].clone();
    let path = cache.store().path(&layer.digest);
    // Same size, one byte flipped: only re-hashing can tell.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let hit = cache.lookup(&r, &host(), TTL).unwrap().expect("manifest and config are intact");
    let bad = cache.verify_layers(&hit).unwrap();
    assert_eq!(bad, vec![layer.clone()]);
    assert!(!path.exists(), "the corrupt blob must be deleted");
    // Now simply missing: still reported.
    assert_eq!(cache.verify_layers(&hit).unwrap(), vec![layer.clone()]);

    let repaired = warm(&cache, &r, &host(), false);
    let WarmOutcome::Warmed { downloaded_blobs, downloaded_bytes, .. } = repaired else {
        panic!("expected a re-warm, got {repaired:?}")
    };
    assert_eq!((downloaded_blobs, downloaded_bytes), (1, layer.size));
    assert_blobs_hash_to_their_names(&cache);
    let hit = cache.lookup(&r, &host(), TTL).unwrap().unwrap();
    assert!(cache.verify_layers(&hit).unwrap().is_empty());
}

#[test]
fn a_corrupt_manifest_or_config_is_a_miss_and_is_deleted() {
    let (_g, cache, _) = fresh_cache();
    let r = reference(&env().busybox());
    let base = warm(&cache, &r, &host(), false).base().clone();
    for digest in [&base.image.manifest_digest, &base.image.config_digest] {
        let path = cache.store().path(digest);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let miss = cache.lookup_explained(&r, &host(), TTL).unwrap().unwrap_err();
        assert_eq!(miss, Miss::BadBlob((*digest).clone()), "corrupt {digest} must not be served");
        assert!(!path.exists(), "corrupt {digest} must be deleted");
        let again = warm(&cache, &r, &host(), false);
        assert!(matches!(again, WarmOutcome::Warmed { .. }), "{again:?}");
        assert!(cache.lookup(&r, &host(), TTL).unwrap().is_some());
    }
    // An entry whose blob is gone entirely is a miss too.
    std::fs::remove_file(cache.store().path(&base.image.config_digest)).unwrap();
    assert!(cache.lookup(&r, &host(), TTL).unwrap().is_none());
}

#[test]
fn partial_files_left_by_a_crash_are_never_used() {
    let (_g, cache, _) = fresh_cache();
    let r = reference(&env().busybox());
    let (_, layers) = skopeo_image(&env().busybox(), None);
    let layer: Digest = layers[0].parse().unwrap();
    // What an interrupted download leaves: the first bytes of the real layer in a temporary
    // file, and (for a crash during an entry write) a truncated entry temp file.
    let (_g2, donor, _) = fresh_cache();
    let full = warm(&donor, &r, &host(), false);
    let layer_bytes = std::fs::read(donor.store().path(&layer)).unwrap();
    let blob_dir = cache.dir().join("blobs/sha256");
    let partial = blob_dir.join(".partial-crashed");
    std::fs::write(&partial, &layer_bytes[..layer_bytes.len() / 3]).unwrap();
    let entry_tmp = cache.dir().join("refs/.tmp-crashed");
    let entry_text = std::fs::read(donor.entry_path(&EntryKey::tag(&r, &host()))).unwrap();
    std::fs::write(&entry_tmp, &entry_text[..entry_text.len() / 2]).unwrap();

    // Nothing is cached yet: the temporary files do not count.
    assert!(cache.lookup(&r, &host(), TTL).unwrap().is_none());
    assert!(!cache.store().contains(&layer));

    let outcome = warm(&cache, &r, &host(), false);
    let WarmOutcome::Warmed { downloaded_blobs, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(downloaded_blobs, 1, "the layer must be downloaded, not taken from the partial file");
    assert_eq!(std::fs::read(cache.store().path(&layer)).unwrap(), layer_bytes);
    assert_eq!(
        cache.lookup(&r, &host(), TTL).unwrap().unwrap().image.manifest_digest,
        full.base().image.manifest_digest
    );
    // The leftovers are still there (a live writer could own them) until they are old enough.
    assert!(partial.exists() && entry_tmp.exists());
    assert_eq!(cache.remove_stale_temporaries(Duration::from_secs(3600)).unwrap(), 0);
    assert_eq!(cache.remove_stale_temporaries(Duration::ZERO).unwrap(), 2);
    assert!(!partial.exists() && !entry_tmp.exists());
    assert_blobs_hash_to_their_names(&cache);
}

#[test]
fn an_index_is_cached_per_platform_and_found_by_tag_index_digest_and_manifest_digest() {
    let (_g, cache, _) = fresh_cache();
    let multi = format!("{}/busybox:multi", env().registry);
    let r = reference(&multi);
    let amd64 = Platform::parse("linux/amd64").unwrap();
    let arm64 = Platform::parse("linux/arm64").unwrap();
    let (_, index_digest) = skopeo_raw(&multi, None);
    let index_digest: Digest = index_digest.parse().unwrap();

    for (platform, arch) in [(&amd64, "amd64"), (&arm64, "arm64")] {
        let outcome = warm(&cache, &r, platform, false);
        let (manifest_digest, layers) = skopeo_image(&multi, Some(arch));
        let base = outcome.base();
        assert_eq!(base.image.manifest_digest.to_string(), manifest_digest, "{platform}");
        assert_eq!(base.image.index_digest.as_ref(), Some(&index_digest));
        assert_eq!(base.layers().iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(), layers);
    }
    for (platform, arch) in [(&amd64, "amd64"), (&arm64, "arm64")] {
        let (manifest_digest, _) = skopeo_image(&multi, Some(arch));
        let by_tag = cache.lookup(&r, platform, TTL).unwrap().expect("by tag");
        assert_eq!(by_tag.image.manifest_digest.to_string(), manifest_digest);
        assert_eq!(by_tag.image.index_digest.as_ref(), Some(&index_digest));
        let config: serde_json::Value = serde_json::from_slice(&by_tag.image.config_bytes).unwrap();
        assert_eq!(config["architecture"], arch);

        // `FROM busybox@<index digest>` picks the platform's manifest, like a registry pull.
        let by_index = cache.lookup(&r.with_digest(index_digest.clone()), platform, TTL).unwrap().expect("by index");
        assert_eq!(by_index.image.manifest_digest.to_string(), manifest_digest);
        assert_eq!(by_index.image.index_digest.as_ref(), Some(&index_digest));

        // `FROM busybox@<manifest digest>` names one image, under any repository name.
        let m: Digest = manifest_digest.parse().unwrap();
        let elsewhere = reference(&format!("{}/renamed/copy@{m}", env().registry));
        let by_manifest = cache.lookup(&elsewhere, &host(), TTL).unwrap().expect("by manifest digest");
        assert_eq!(by_manifest.image.manifest_digest, m);
        assert_eq!(by_manifest.image.index_digest, None, "a manifest digest did not go through an index");
        assert_eq!(by_manifest.image.reference, elsewhere);
    }
    // A platform that was not warmed misses, by tag and by index digest.
    let ppc = Platform::parse("linux/ppc64le").unwrap();
    assert_eq!(cache.lookup_explained(&r, &ppc, TTL).unwrap().unwrap_err(), Miss::NotCached);
    assert!(cache.lookup(&r.with_digest(index_digest), &ppc, TTL).unwrap().is_none());
    // Each platform has its own manifest, config and layer (a real arm64 busybox: no blob shared).
    assert_eq!(assert_blobs_hash_to_their_names(&cache).len(), 6);
}

#[test]
fn warming_by_digest_needs_no_tag_and_never_expires() {
    let (_g, cache, _) = fresh_cache();
    let (digest, _) = skopeo_image(&env().busybox(), None);
    let pinned = reference(&format!("{}/busybox@{digest}", env().registry));
    let outcome = warm(&cache, &pinned, &host(), false);
    assert_eq!(outcome.base().image.manifest_digest.to_string(), digest);
    std::thread::sleep(Duration::from_millis(50));
    // Content named by digest cannot change: even a zero TTL keeps it.
    assert!(cache.lookup(&pinned, &host(), Some(Duration::ZERO)).unwrap().is_some());
    let again = rt().block_on(cache.warm(&registry(), &pinned, &host(), Some(Duration::ZERO), false)).unwrap();
    assert!(matches!(again, WarmOutcome::AlreadyCached(_)), "{again:?}");
    // No tag entry was invented.
    assert!(cache.lookup(&reference(&env().busybox()), &host(), TTL).unwrap().is_none());
}

#[test]
fn expired_entries_are_misses_and_are_refreshed() {
    let (_g, cache, _) = fresh_cache();
    let r = reference(&env().busybox());
    let first = warm(&cache, &r, &host(), false);
    std::thread::sleep(Duration::from_millis(1100));
    let ttl = Some(Duration::from_secs(1));
    let miss = cache.lookup_explained(&r, &host(), ttl).unwrap().unwrap_err();
    assert!(matches!(miss, Miss::Expired { age, .. } if age >= Duration::from_secs(1)), "{miss:?}");
    assert!(miss.to_string().contains("older than the cache TTL of 1s"), "{miss}");
    assert!(cache.lookup(&r, &host(), Some(Duration::from_secs(60))).unwrap().is_some());
    assert!(cache.lookup(&r, &host(), None).unwrap().is_some(), "no TTL: never expires");

    let refreshed = rt().block_on(cache.warm(&registry(), &r, &host(), ttl, false)).unwrap();
    let WarmOutcome::Warmed { base, downloaded_blobs, .. } = refreshed else { panic!("{refreshed:?}") };
    assert!(base.written_at > first.base().written_at);
    assert_eq!(downloaded_blobs, 0);
    assert!(cache.lookup(&r, &host(), ttl).unwrap().is_some(), "fresh again");
}

#[test]
fn lookups_need_no_registry_once_warmed() {
    let mut reg = PrivateRegistry::start();
    skopeo_copy("busybox:multi", &format!("{}/offline:1", reg.addr));
    let (_g, cache, _) = fresh_cache();
    let r = reference(&format!("{}/offline:1", reg.addr));
    let warmed = warm(&cache, &r, &host(), false);
    let index = warmed.base().image.index_digest.clone().expect("an index");
    reg.stop();

    let hit = cache.lookup(&r, &host(), TTL).unwrap().expect("lookup works offline");
    assert!(cache.verify_layers(&hit).unwrap().is_empty());
    assert_eq!(hit.image.manifest_digest, warmed.base().image.manifest_digest);
    assert!(cache.lookup(&r.with_digest(index), &host(), TTL).unwrap().is_some());
    // A non-forced warm of a fresh entry does not need the registry either...
    let again = warm(&cache, &r, &host(), false);
    assert!(matches!(again, WarmOutcome::AlreadyCached(_)), "{again:?}");
    // ...while a forced one reports the registry failure, naming the image, and keeps the entry.
    let err = rt().block_on(cache.warm(&registry(), &r, &host(), TTL, true)).unwrap_err().to_string();
    assert!(err.contains(&r.to_string()), "{err}");
    assert!(cache.lookup(&r, &host(), TTL).unwrap().is_some());
}

#[test]
fn concurrent_warmers_share_a_directory_safely() {
    let (_g, _cache, path) = fresh_cache();
    let images =
        [env().busybox(), format!("{}/busybox:multi", env().registry), format!("{}/busybox:docker", env().registry)];
    std::thread::scope(|s| {
        for i in 0..4 {
            let path = path.clone();
            let images = images.clone();
            s.spawn(move || {
                // Each warmer opens the directory itself, as separate processes would.
                let cache = BaseImageCache::open(&path).unwrap();
                let rt = rt();
                for image in images.iter().cycle().skip(i).take(images.len()) {
                    rt.block_on(cache.warm(&registry(), &reference(image), &Platform::host(), TTL, true)).unwrap();
                }
            });
        }
    });
    let cache = BaseImageCache::open(&path).unwrap();
    assert_blobs_hash_to_their_names(&cache);
    for image in &images {
        let hit = cache.lookup(&reference(image), &host(), TTL).unwrap().expect(image);
        assert!(cache.verify_layers(&hit).unwrap().is_empty(), "{image}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(path.join("refs"))
        .unwrap()
        .chain(std::fs::read_dir(path.join("blobs/sha256")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn cached_blobs_can_be_handed_to_a_build_store() {
    let (g, cache, _) = fresh_cache();
    let r = reference(&env().busybox());
    warm(&cache, &r, &host(), false);
    let hit = cache.lookup(&r, &host(), TTL).unwrap().unwrap();
    // Same filesystem: hard links.
    let build = BlobStore::open(g.path().join("build-blobs")).unwrap();
    cache.link_into(&hit, &build).unwrap();
    for d in hit.layers().iter().map(|l| &l.digest).chain([&hit.image.manifest_digest, &hit.image.config_digest]) {
        assert!(build.verify(d).unwrap(), "{d}");
        assert_eq!(identity(&build.path(d)).0, identity(&cache.store().path(d)).0, "{d} should be a hard link");
    }
    // Another filesystem (/dev/shm is a tmpfs): verified copies.
    let shm = tempfile::Builder::new().prefix("trowel-warm-").tempdir_in("/dev/shm").unwrap();
    let other = BlobStore::open(shm.path()).unwrap();
    cache.link_into(&hit, &other).unwrap();
    for l in hit.layers() {
        assert!(other.verify(&l.digest).unwrap());
    }
    // A blob missing from the cache is an error naming it.
    let empty = BlobStore::open(g.path().join("empty")).unwrap();
    std::fs::remove_file(cache.store().path(&hit.layers()[0].digest)).unwrap();
    let err = cache.link_into(&hit, &empty).unwrap_err().to_string();
    assert!(err.contains(hit.layers()[0].digest.as_str()), "{err}");
}

#[test]
fn a_digest_key_only_ever_serves_that_digest() {
    let (_g, cache, _) = fresh_cache();
    let multi = format!("{}/busybox:multi", env().registry);
    let r = reference(&multi);
    let amd = warm(&cache, &r, &Platform::parse("linux/amd64").unwrap(), false).base().clone();
    let arm = warm(&cache, &r, &Platform::parse("linux/arm64").unwrap(), false).base().clone();
    // Tamper with the amd64 manifest-digest entry: keep its key, point it at the arm64 image
    // (whose blobs are all present and valid).
    let amd_path = cache.entry_path(&EntryKey::manifest(&amd.image.manifest_digest));
    let arm_path = cache.entry_path(&EntryKey::manifest(&arm.image.manifest_digest));
    let mut forged: serde_json::Value = serde_json::from_slice(&std::fs::read(&arm_path).unwrap()).unwrap();
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&amd_path).unwrap()).unwrap();
    forged["key"] = original["key"].clone();
    std::fs::write(&amd_path, serde_json::to_vec(&forged).unwrap()).unwrap();
    let pinned = r.with_digest(amd.image.manifest_digest.clone());
    assert_eq!(cache.lookup_explained(&pinned, &host(), TTL).unwrap().unwrap_err(), Miss::NotCached);
    // The tag entry is a separate file and still serves amd64.
    let by_tag = cache.lookup(&r, &Platform::parse("linux/amd64").unwrap(), TTL).unwrap().unwrap();
    assert_eq!(by_tag.image.manifest_digest, amd.image.manifest_digest);
}
