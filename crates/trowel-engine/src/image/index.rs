//! TEMPORARY: replaced by the image index module.
use crate::digest::Digest;
#[derive(Debug, Clone)]
pub struct FinalIndex {
    pub digest: Digest,
}
