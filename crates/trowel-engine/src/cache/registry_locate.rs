//! Where a layer reference record's layer can be had ([`super::layer_ref`]): the blob looked for
//! in this build's destinations and the record's repositories at once, its size checked against
//! the record's, since that size goes into the image's manifest unread.

use super::RegistryCache;
use crate::cache::layer_ref::RefRecord;
use crate::registry::{BlobHead, Reference};

impl RegistryCache {
    /// Where a record's layer can be had: the first of this build's destinations that has the
    /// blob, else the first of the record's repositories that does, among those on a registry
    /// this build already uses (the cache repository's or a destination's). `Err`: why none.
    pub(super) async fn locate(&self, record: &RefRecord, repos: &[Reference]) -> Result<Reference, String> {
        let ours = |r: &Reference| {
            r.registry == self.repo.registry || self.destinations.iter().any(|d| d.registry == r.registry)
        };
        let mut candidates: Vec<Reference> = self.destinations.clone();
        for r in repos.iter().filter(|r| ours(r)) {
            let r = Reference { tag: None, digest: None, ..r.clone() };
            if !candidates.iter().any(|c| c.registry == r.registry && c.repository == r.repository) {
                candidates.push(r);
            }
        }
        let digest = &record.layer.digest;
        let checks = candidates.iter().map(|c| self.registry.blob_head(c, digest));
        let results = futures_util::future::join_all(checks).await;
        let (mut failures, mut mismatched, mut found) = (Vec::new(), Vec::new(), None);
        for (c, r) in candidates.iter().zip(results) {
            match r {
                // The record's size goes into the image's manifest unread: a registry that
                // gives another size for the digest shows the record is wrong.
                Ok(BlobHead::Present { size: Some(size) }) if size != record.layer.size => mismatched.push(format!(
                    "{} has it as {size} bytes, the record says {}",
                    c.repo_ref(),
                    record.layer.size
                )),
                Ok(BlobHead::Present { .. }) => found = found.or_else(|| Some(c.clone())),
                Ok(BlobHead::Missing) => {}
                Err(e) => failures.push(format!("{}: {e}", c.repo_ref())),
            }
        }
        if !mismatched.is_empty() {
            return Err(format!(
                "the layer {} that the cache's reference record names is not the size the record says ({})",
                digest.short(),
                mismatched.join("; ")
            ));
        }
        if let Some(c) = found {
            return Ok(c);
        }
        let named = repos.iter().map(Reference::repo_ref).collect::<Vec<_>>().join(", ");
        let mut why = format!(
            "the layer {} that the cache's reference record names is gone (not in {named} nor in this build's destinations: image deleted or registry garbage-collected?)",
            digest.short()
        );
        if !failures.is_empty() {
            why = format!("{why}; could not check {}", failures.join("; "));
        }
        Err(why)
    }
}
