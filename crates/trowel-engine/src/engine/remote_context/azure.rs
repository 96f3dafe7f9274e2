//! `https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB`: an archive in Azure Blob Storage.
//! Not written yet: refused with a clear error, as before.

use std::path::Path;

use super::{AzureSource, ContextError, ContextOrigin, FetchOptions};

pub(super) fn fetch(
    src: &AzureSource,
    _dir: &Path,
    _opts: &FetchOptions<'_>,
) -> Result<(ContextOrigin, Vec<String>), ContextError> {
    Err(ContextError::Invalid {
        source_: src.shown.clone(),
        reason: "Azure Blob Storage contexts are not supported by trowel yet: download the archive and use \
                 tar://PATH"
            .into(),
    })
}
