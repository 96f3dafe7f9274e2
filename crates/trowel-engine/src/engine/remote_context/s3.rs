//! `s3://BUCKET/KEY`: an archive in Amazon S3 or an S3-compatible store, with kaniko's
//! environment (`AWS_*`, `S3_ENDPOINT`, `S3_FORCE_PATH_STYLE`). Not written yet: refused with a
//! clear error, as before.

use std::path::Path;

use super::{ContextError, ContextOrigin, FetchOptions, ObjectSource};

pub(super) fn fetch(
    src: &ObjectSource,
    _dir: &Path,
    _opts: &FetchOptions<'_>,
) -> Result<(ContextOrigin, Vec<String>), ContextError> {
    Err(ContextError::Invalid {
        source_: src.shown.clone(),
        reason: "s3:// contexts are not supported by trowel yet: download the archive and use tar://PATH".into(),
    })
}
