//! One build's copy-from records ([`crate::cache::copy_from`]): those it read or made, by
//! identity (a build for several platforms, or two COPYs reading the same paths, asks once),
//! and the writes of new ones to the cache repository, awaited at the build's end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::cache::copy_from::Record;
use crate::cache::key::FileEntry;
use crate::cache::registry::{CacheError, RegistryCache};
use crate::engine::context::BuildContext;
use crate::engine::error::BuildError;

/// A record write in flight.
type Write = tokio::task::JoinHandle<Result<(), CacheError>>;

/// Shared by a build's lanes (see `LayerCache::fork`).
#[derive(Clone)]
pub(crate) struct CopyFromRecords {
    remote: RegistryCache,
    /// Whether records may be written (not with `--no-push-cache`).
    write: bool,
    known: Arc<Mutex<HashMap<String, Arc<Vec<FileEntry>>>>>,
    /// Records asked for ahead ([`Self::ask`]), by identity.
    asked: Arc<Mutex<HashMap<String, Ask>>>,
    writes: Arc<Mutex<Vec<Write>>>,
}

/// A record being read.
type Ask = tokio::task::JoinHandle<Result<Option<Record>, CacheError>>;

/// Where a step's files came from.
pub(crate) enum Found {
    /// This build knew them already (or read them from the cache repository).
    Known(Arc<Vec<FileEntry>>),
    /// The cache repository has no record of them.
    Absent,
}

impl CopyFromRecords {
    pub fn new(remote: RegistryCache, write: bool) -> CopyFromRecords {
        CopyFromRecords {
            remote,
            write,
            known: Default::default(),
            asked: Default::default(),
            writes: Default::default(),
        }
    }

    /// What this build already knows of `identity`, without asking anyone.
    pub fn known(&self, identity: &str) -> Option<Arc<Vec<FileEntry>>> {
        self.known.lock().expect("records lock").get(identity).cloned()
    }

    /// The files of `identity`: this build's, else the cache repository's record. A record
    /// that cannot be read or used is said in a warning, and counts as absent. The wait for the
    /// registry is given up when the build is stopped ([`BuildError::Aborted`]), as every other
    /// wait on it is: a slow registry holds no stopped build until the grace period's SIGKILL.
    pub fn find(&self, ctx: &BuildContext<'_>, identity: &str) -> Result<Found, BuildError> {
        if let Some(files) = self.known(identity) {
            return Ok(Found::Known(files));
        }
        let asked = self.asked.lock().expect("records lock").remove(identity);
        let found = match asked {
            Some(h) => ctx.until_stopped(h)?.unwrap_or_else(|e| {
                Err(CacheError::Invalid { reference: identity.to_string(), reason: format!("read task failed: {e}") })
            }),
            None => ctx.until_stopped(self.remote.copy_from_record(identity, &ctx.store))?,
        };
        match found {
            Ok(Some(r)) => {
                let files = Arc::new(r.files);
                self.known.lock().expect("records lock").insert(identity.to_string(), files.clone());
                Ok(Found::Known(files))
            }
            Ok(None) => Ok(Found::Absent),
            Err(e) => {
                ctx.emitter.warn(format!("copy-from record not used, the files are read instead: {e}"));
                Ok(Found::Absent)
            }
        }
    }

    /// Starts reading the record of `identity` from the cache repository, unless this build
    /// knows its files or asked already: [`Self::find`] takes the answer.
    pub fn ask(&self, ctx: &BuildContext<'_>, identity: &str) {
        if self.known(identity).is_some() {
            return;
        }
        let mut asked = self.asked.lock().expect("records lock");
        if !asked.contains_key(identity) {
            let (remote, store, id) = (self.remote.clone(), ctx.store.clone(), identity.to_string());
            asked.insert(identity.to_string(), ctx.rt.spawn(async move { remote.copy_from_record(&id, &store).await }));
        }
    }

    /// Keeps the files of `identity`, read from the stage, and writes their record to the cache
    /// repository in the background (unless this build already did, or writes nothing there).
    pub fn made(&self, ctx: &BuildContext<'_>, identity: &str, files: Vec<FileEntry>) -> Arc<Vec<FileEntry>> {
        let files = Arc::new(files);
        let before = self.known.lock().expect("records lock").insert(identity.to_string(), files.clone());
        if self.write && before.as_ref() != Some(&files) {
            let record = Record { identity: identity.to_string(), files: files.to_vec() };
            let (remote, store) = (self.remote.clone(), ctx.store.clone());
            let h = ctx.rt.spawn(async move { remote.put_copy_from_record(&record, &store).await });
            self.writes.lock().expect("records lock").push(h);
        }
        files
    }

    /// Waits for the record writes, a failed one a warning (the next build reads the files).
    pub fn finish(&self, ctx: &BuildContext<'_>) {
        let writes = std::mem::take(&mut *self.writes.lock().expect("records lock"));
        for h in writes {
            match ctx.rt.block_on(h) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => ctx.emitter.warn(format!("could not write a copy-from record: {e}")),
                Err(e) => ctx.emitter.warn(format!("copy-from record write task failed: {e}")),
            }
        }
    }
}
