//! `gs://BUCKET/OBJECT` (and kaniko's `--bucket`): an archive in Google Cloud Storage. Not
//! written yet: refused with a clear error, as before.

use std::path::Path;

use super::{ContextError, ContextOrigin, FetchOptions, ObjectSource};

pub(super) fn fetch(
    src: &ObjectSource,
    _dir: &Path,
    _opts: &FetchOptions<'_>,
) -> Result<(ContextOrigin, Vec<String>), ContextError> {
    Err(ContextError::Invalid {
        source_: src.shown.clone(),
        reason: "gs:// contexts are not supported by trowel yet: download the archive and use tar://PATH".into(),
    })
}
