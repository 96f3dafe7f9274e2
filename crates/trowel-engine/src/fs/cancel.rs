//! Asking a long file-system operation to give up part way: a build stopped by a signal or by
//! the debugger's quit while a big layer unpacks or is written, a COPY copies a big context
//! into the root, or a step's snapshot walks a huge tree. The operation looks between entries and
//! between chunks of a file's data, so it ends within a chunk's time, with
//! [`FsError::Cancelled`](super::FsError::Cancelled), and leaves what it wrote for its caller
//! to remove with the rest of the build root.
//!
//! It is a predicate rather than the sandbox's `Stop` so that `fs` needs nothing from the
//! layers beside it.

use std::io;
use std::sync::Arc;

use super::FsError;

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

    /// The look every operation makes: [`FsError::Cancelled`] once `cancel` (if any) says to
    /// give up.
    pub fn check(cancel: Option<&Cancel>) -> Result<(), FsError> {
        match cancel {
            Some(c) if c.requested() => Err(FsError::Cancelled),
            _ => Ok(()),
        }
    }
}

/// Whether an I/O error is an operation's giving up ([`FsError::Cancelled`] carried in it, as
/// [`Checked`] and `copy::copy_as_cancellable` carry it).
pub fn is_cancelled(e: &io::Error) -> bool {
    e.get_ref().and_then(|i| i.downcast_ref::<FsError>()).is_some_and(|e| matches!(e, FsError::Cancelled))
}

/// How much a [`Checked`] reader reads between two looks: a big file given up within a
/// millisecond or so of hashing, at one look per MiB.
const READ_CHUNK: usize = 1 << 20;

/// A reader that looks at `cancel` after every [`READ_CHUNK`] bytes it has read, and fails
/// with [`FsError::Cancelled`] (inside the `io::Error`: [`is_cancelled`]) once it says so:
/// whatever reads a big file to its end (a digest) is given up part way.
pub struct Checked<'a, R> {
    inner: R,
    cancel: Option<&'a Cancel>,
    since: usize,
}

impl<'a, R> Checked<'a, R> {
    pub fn new(inner: R, cancel: Option<&'a Cancel>) -> Checked<'a, R> {
        Checked { inner, cancel, since: 0 }
    }
}

impl<R: io::Read> io::Read for Checked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.since += n;
        if self.since >= READ_CHUNK {
            self.since = 0;
            Cancel::check(self.cancel).map_err(io::Error::other)?;
        }
        Ok(n)
    }
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Cancel").field(&self.requested()).finish()
    }
}
