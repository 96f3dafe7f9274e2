//! Asking a long file-system operation to give up part way: a build stopped by a signal or by
//! the debugger's quit while a big layer unpacks or is written, a COPY copies a big context
//! into the root, or a step's snapshot walks a huge tree. The operation looks between entries and
//! between chunks of a file's data, so it ends within a chunk's time, with
//! [`FsError::Cancelled`](super::FsError::Cancelled), and leaves what it wrote for its caller
//! to remove with the rest of the build root.
//!
//! It is a predicate rather than the sandbox's `Stop` so that `fs` needs nothing from the
//! layers beside it.

use std::sync::Arc;

/// Whether to give up now; shared by cloning.
#[derive(Clone)]
pub struct Cancel(Arc<dyn Fn() -> bool + Send + Sync>);

impl Cancel {
    pub fn new(requested: impl Fn() -> bool + Send + Sync + 'static) -> Cancel {
        Cancel(Arc::new(requested))
    }

    pub fn requested(&self) -> bool {
        (self.0)()
    }
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Cancel").field(&self.requested()).finish()
    }
}
