//! Pushing an image index: each platform's blobs and manifest by digest, then the index.
//!
//! The push is split in two phases so that a failure never moves a tag: [`Registry::stage_index`]
//! uploads everything by digest — each platform's image (with `push_image`'s blob logic: HEAD,
//! mount, streamed upload, progress), then the index itself, untagged — and only
//! [`Registry::tag_index`] points a tag at it. A registry that refuses the index's media type
//! (some old ones do not know OCI indexes) therefore fails in the first phase, before any tag
//! changed. With several destinations, stage every destination first and tag afterwards, and a
//! destination that fails leaves every tag where it was.

use super::client::{IndexPushReport, PushIndex, PushProgress, Registry};
use super::error::{Op, RegistryError};
use super::reference::Reference;
use super::session::Ctx;
use crate::digest::Digest;
use crate::image::manifest::Index;
use crate::image::store::BlobStore;

impl Registry {
    /// Both phases for one destination: [`Registry::stage_index`], then [`Registry::tag_index`].
    pub async fn push_index(
        &self,
        dest: &Reference,
        index: &PushIndex,
        store: &BlobStore,
        progress: &(dyn Fn(PushProgress) + Send + Sync),
    ) -> Result<IndexPushReport, RegistryError> {
        let report = self.stage_index(dest, index, store, progress).await?;
        self.tag_index(dest, index).await?;
        Ok(report)
    }

    /// Phase one: every platform's image by digest (platforms one after the other, so a blob
    /// two platforms share is uploaded once and found existing the second time; each image's
    /// blobs go a few at a time), then the index by digest. No tag is written. The digests the
    /// registry reports are checked against ours.
    pub async fn stage_index(
        &self,
        dest: &Reference,
        index: &PushIndex,
        store: &BlobStore,
        progress: &(dyn Fn(PushProgress) + Send + Sync),
    ) -> Result<IndexPushReport, RegistryError> {
        check_names_its_images(dest, index)?;
        let digest = Digest::of(&index.index_bytes);
        check_pinned(dest, &digest)?;
        let mut images = Vec::with_capacity(index.images.len());
        for image in &index.images {
            let digest = Digest::of(&image.manifest_bytes);
            let by_digest = untagged(dest, digest.clone());
            let pushed = self.push_image(&by_digest, image, store, progress).await;
            images.push(pushed.map_err(|e| e.naming(format!("{dest} (image manifest {digest})")))?);
        }
        let by_digest = untagged(dest, digest.clone());
        self.push_manifest(&by_digest, &index.index_bytes, &index.media_type)
            .await
            .map_err(|e| refused(e, &index.media_type).naming(format!("{dest} (image index {digest})")))?;
        Ok(IndexPushReport { index_digest: digest, images })
    }

    /// Phase two: points `dest`'s tag at the index (a PUT of the same bytes under the tag; the
    /// registry already holds everything it names). A destination given by digest only has no
    /// tag to move and was completed by [`Registry::stage_index`].
    pub async fn tag_index(&self, dest: &Reference, index: &PushIndex) -> Result<Digest, RegistryError> {
        let digest = Digest::of(&index.index_bytes);
        check_pinned(dest, &digest)?;
        if dest.tag.is_none() {
            return Ok(digest);
        }
        // Pinning the digest makes `push_manifest` refuse bytes that are not this index.
        let pinned = dest.with_digest(digest);
        self.push_manifest(&pinned, &index.index_bytes, &index.media_type)
            .await
            .map_err(|e| refused(e, &index.media_type))
    }

    /// True if `dest` (its tag, else its digest) already names exactly `digest` — a manifest or
    /// an index. A HEAD request; any doubt (no answer, no digest header) is `false`.
    pub async fn names_digest(&self, dest: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        let probe = match &dest.tag {
            Some(_) => Reference { digest: None, ..dest.clone() },
            None => dest.clone(),
        };
        Ok(self.manifest_digest(&probe).await?.as_ref() == Some(digest))
    }
}

/// The index must name exactly the images pushed with it, in order: a manifest it names but
/// that was not pushed would be refused by the registry only at the end, and one pushed but
/// not named would be left in the repository unreferenced.
fn check_names_its_images(dest: &Reference, index: &PushIndex) -> Result<(), RegistryError> {
    let ctx = Ctx::push(Op::Push, dest);
    let parsed: Index = serde_json::from_slice(&index.index_bytes)
        .map_err(|e| ctx.error(format!("the image index to push is not an index: {e}")))?;
    let named: Vec<&Digest> = parsed.manifests.iter().map(|d| &d.digest).collect();
    let given: Vec<Digest> = index.images.iter().map(|i| Digest::of(&i.manifest_bytes)).collect();
    if named != given.iter().collect::<Vec<_>>() {
        return Err(ctx.error(format!(
            "the image index names the manifests {} but the images given are {}",
            list(named.iter().copied()),
            list(given.iter())
        )));
    }
    Ok(())
}

fn list<'a>(ds: impl Iterator<Item = &'a Digest>) -> String {
    ds.map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

/// A destination pinned to a digest (`repo:tag@sha256:…`) must be pinned to the index's: the
/// platform images go under their own digests, so this is checked here, before any upload.
fn check_pinned(dest: &Reference, digest: &Digest) -> Result<(), RegistryError> {
    match &dest.digest {
        Some(want) if want != digest => Err(Ctx::push(Op::Push, dest)
            .error(format!("the image index hashes to {digest}, not to the destination's digest {want}"))),
        _ => Ok(()),
    }
}

/// `dest`'s repository, addressed by `digest` alone (so `push_manifest` writes no tag).
fn untagged(dest: &Reference, digest: Digest) -> Reference {
    Reference { tag: None, digest: Some(digest), ..dest.clone() }
}

/// The registry refusing the index's media type, said as such, naming the type: a 415, or a
/// 400 whose codes are about the manifest itself (distribution answers `MANIFEST_INVALID`,
/// others `UNSUPPORTED`), or a 400 with no codes at all (no JSON body to tell; a manifest PUT
/// whose children are all on the registry is most likely refused for its type). A 400 with
/// other codes keeps the registry's own words: a child it does not know
/// (`MANIFEST_BLOB_UNKNOWN`, `MANIFEST_UNKNOWN`), a bad tag, name, digest or size is not a
/// media-type problem, and saying so would send the user after the wrong cause.
fn refused(e: RegistryError, media_type: &str) -> RegistryError {
    let of_the_type = |status: u16, codes: &[String]| match status {
        415 => true,
        400 => codes.is_empty() || codes.iter().any(|c| c == "MANIFEST_INVALID" || c == "UNSUPPORTED"),
        _ => false,
    };
    match e {
        RegistryError::Registry { op: Op::Push, reference, status, detail, codes } if of_the_type(status, &codes) => {
            RegistryError::ManifestRefused {
                op: Op::Push,
                reference,
                media_type: media_type.to_string(),
                status,
                detail,
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PushImage;

    fn answer(status: u16, detail: &str, codes: &[&str]) -> RegistryError {
        RegistryError::Registry {
            op: Op::Push,
            reference: "127.0.0.1:5000/app:1".into(),
            status,
            detail: detail.into(),
            codes: codes.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn a_refused_media_type_is_named() {
        let oci = "application/vnd.oci.image.index.v1+json";
        let e = refused(answer(400, "manifest invalid: manifest invalid", &["MANIFEST_INVALID"]), oci);
        let msg = e.to_string();
        assert!(matches!(e, RegistryError::ManifestRefused { status: 400, .. }), "{msg}");
        assert!(msg.contains("127.0.0.1:5000/app:1") && msg.contains(oci), "{msg}");
        // Other registries' ways of saying it, and one that sent no JSON body to tell.
        for (status, codes) in [(400, &["UNSUPPORTED"][..]), (415, &[][..]), (415, &["UNSUPPORTED"]), (400, &[])] {
            let e = refused(answer(status, "bad request", codes), oci);
            assert!(matches!(e, RegistryError::ManifestRefused { .. }), "{status} {codes:?}: {e}");
        }
    }

    #[test]
    fn a_400_about_something_else_keeps_the_registry_s_words() {
        // distribution's answer to an index naming a manifest it does not hold.
        for codes in [
            &["MANIFEST_BLOB_UNKNOWN"][..],
            &["MANIFEST_UNKNOWN"],
            &["TAG_INVALID"],
            &["NAME_INVALID"],
            &["DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN"],
            &["SIZE_INVALID"],
        ] {
            let e = refused(answer(400, "blob unknown to registry", codes), "x");
            let msg = e.to_string();
            assert!(matches!(e, RegistryError::Registry { status: 400, .. }), "{codes:?}: {msg}");
            assert_eq!(msg, "push 127.0.0.1:5000/app:1: blob unknown to registry");
        }
        // An auth failure is not a media-type problem either.
        assert!(matches!(refused(answer(401, "unauthorized", &[]), "x"), RegistryError::Registry { status: 401, .. }));
    }

    #[test]
    fn an_index_must_name_exactly_its_images() {
        let r = Reference::parse("127.0.0.1:5000/app:1").unwrap();
        let image =
            |m: &[u8]| PushImage { manifest_bytes: m.to_vec(), manifest_media_type: String::new(), blobs: vec![] };
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let bytes = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"m","digest":"{a}","size":1}},{{"mediaType":"m","digest":"{b}","size":1}}]}}"#
        );
        let idx = |images| PushIndex { index_bytes: bytes.clone().into_bytes(), media_type: "x".into(), images };
        check_names_its_images(&r, &idx(vec![image(b"a"), image(b"b")])).unwrap();
        let e = check_names_its_images(&r, &idx(vec![image(b"a")])).unwrap_err().to_string();
        assert!(e.contains("127.0.0.1:5000/app:1") && e.contains(&b.to_string()), "{e}");
        assert!(check_names_its_images(&r, &idx(vec![image(b"b"), image(b"a")])).is_err(), "order matters");
    }

    #[test]
    fn untagged_drops_the_tag_and_a_pinned_digest_must_be_the_index() {
        let r = Reference::parse("127.0.0.1:5000/app:1").unwrap();
        let d = Digest::of(b"x");
        let u = untagged(&r, d.clone());
        assert_eq!((u.tag, u.digest), (None, Some(d.clone())));
        check_pinned(&r, &d).unwrap();
        check_pinned(&r.with_digest(d.clone()), &d).unwrap();
        let e = check_pinned(&r.with_digest(Digest::of(b"y")), &d).unwrap_err().to_string();
        assert!(e.contains("not to the destination's digest"), "{e}");
    }
}
