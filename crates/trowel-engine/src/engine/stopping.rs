//! A build stopped (SIGTERM from a deleted pod, ctrl-c, the debugger's quit) while it waits on
//! the network or unpacks a layer ends there, not at its next step. Before, a stop during a
//! long pull or push waited for it to finish: a pod's grace period (30 s by default) could run
//! out first, and its SIGKILL left the build's roots behind; a ctrl-c did nothing visible for
//! as long as the base took to download.
//!
//! Three ways in, one outcome ([`BuildError::Aborted`] with the stop's reason):
//! - what the engine waits for on the runtime goes through [`BuildContext::until_stopped`],
//!   which drops it when the stop comes: an upload left uncommitted is no blob, a download
//!   left unfinished is no stored blob (its partial file goes with it);
//! - the downloads under way in the background are stopped by a watcher
//!   ([`BuildContext::watch_stop`]), so a root unpacking from one fails at once;
//! - an unpack, a COPY's copy into the root (`fs/copy.rs`), a step's snapshot walk and the
//!   writing of its layer look at the stop between entries and between chunks of a file
//!   ([`crate::fs::Cancel`]); so do the walk and hashing of a COPY's files for its cache key
//!   (`steps/copy/keyfiles.rs`), whose key then is not made: the step's checkpoint, next,
//!   ends the build. The wait for a copy-from record at planning goes through
//!   [`BuildContext::until_stopped`].
//! - the same look at the stop in a step's other long copies: the filtered copy of the context
//!   a `RUN --mount=type=bind` makes, the seeding of a cache mount from a stage's files and the
//!   copy made for a writable bind mount where no overlay can be had (`mounts/prepare.rs`;
//!   a seed given up leaves nothing in the cache dir), an ADD's archive unpacked and
//!   copied from its scratch root (`steps/copy/add.rs`), an ADD's git fetch (its commands
//!   killed, `git/cli.rs`) and its checkout copied into the root (`steps/copy/git.rs`). Their errors are the step's, so a copy given up is carried as
//!   [`StepError::Build`] of the abort ([`BuildContext::step_fs_failed`]), which
//!   [`StepAt::fail`](crate::engine::steps::StepAt::fail) hands on as the build's error.
//! - and in the snapshot walks of a plain build that put no step's layer of their own: a
//!   `--link` step's root and what its layer touched laid over the stage, what a cached layer
//!   touched when applied to a root, the indexing of a deferred step's files.
//!
//! - before the build, in the fetch of a remote context (`remote_context/`, given the stop in
//!   `FetchOptions::stop`): the download of an archive (`https://`, `s3://`, `gs://`, Azure)
//!   between attempts and while it waits for the answer or its next chunk
//!   (`registry/cloud/http.rs`), the unpack of any archive context (`tar://` too) between
//!   entries and chunks, a git context's commands (killed with their helpers: `git/cli.rs`),
//!   the walk that sets its checkout's modes and times (`git/tree.rs`, an ADD's too) and the
//!   digest of its checkout; the fetch fails as `ContextError::Aborted` and its
//!   directory goes with it.
//! - in container isolation, the copies of a RUN's placed mounts (`sandbox/placed.rs`): a bind
//!   source or a cache from another filesystem copied in, and a cache copied back out (given
//!   up, the cache keeps what it had). Never cut there: what puts `/` back (the copy at a
//!   target removed, the image's entry renamed back, the directories made removed, a whole
//!   copy's swap into the cache), which goes on even when the copy back was given up, and the
//!   read-only fingerprints and tmpfs sizes, which decide whether a cache's writes are kept.
//!
//! A look is one atomic load per entry or chunk, none at all in a build given no stop
//! ([`BuildContext::fs_cancel`] is then `None`). Left uncut, each reached only with a person
//! at the debugger: the walks of a debugger shell's changes (`stage/debug_shell.rs`) and of
//! what a failed attempt left before a retry (`stage/retry.rs`).
//!
//! Never cut short: an image manifest on its way (a tag the registry may already have taken
//! could not be unsaid; `publish.rs` asks before sending it) and the cache writes a build
//! waits for at its end (their tags name complete entries either way).

use std::future::Future;

use crate::engine::context::BuildContext;
use crate::engine::error::{BuildError, StepError};
use crate::fs::{Cancel, FsError};

impl BuildContext<'_> {
    /// The stop as the build's error, once one was asked for.
    pub(crate) fn aborted(&self) -> Option<BuildError> {
        self.stop.as_ref()?.reason().map(BuildError::Aborted)
    }

    /// Runs `fut` on the build's runtime, or drops it half way when a stop is asked for first.
    pub(crate) fn until_stopped<F: Future>(&self, fut: F) -> Result<F::Output, BuildError> {
        let Some(stop) = &self.stop else { return Ok(self.rt.block_on(fut)) };
        self.rt.block_on(stop.unless_asked(fut)).map_err(BuildError::Aborted)
    }

    /// What a long file-system operation (a layer's unpack or write) looks at to give up.
    pub(crate) fn fs_cancel(&self) -> Option<Cancel> {
        self.stop.as_ref().map(crate::sandbox::Stop::cancel)
    }

    /// [`BuildError::fs`], but an operation given up for a stop ([`FsError::Cancelled`]) is
    /// the stop.
    pub(crate) fn fs_failed(&self, what: impl Into<String>) -> impl FnOnce(FsError) -> BuildError + '_ {
        let what = what.into();
        move |e| match (e, self.aborted()) {
            (FsError::Cancelled, Some(stopped)) => stopped,
            (e, _) => BuildError::fs(what)(e),
        }
    }

    /// [`StepError::fs`] for a step's own file work (a mount's context copy, an ADD's archive
    /// or git checkout copied into the root), but a copy given up for a stop is the stop,
    /// carried as [`StepError::Build`] so that [`StepAt::fail`](crate::engine::steps::StepAt::fail)
    /// hands it on as the build's abort rather than as the step's failure.
    pub(crate) fn step_fs_failed(&self, what: impl Into<String>) -> impl FnOnce(FsError) -> StepError + '_ {
        let what = what.into();
        move |e| match (e, self.aborted()) {
            (FsError::Cancelled, Some(stopped)) => StepError::Build(Box::new(stopped)),
            (e, _) => StepError::fs(what)(e),
        }
    }

    /// Stops the downloads and base resolutions under way in the background as soon as a stop
    /// is asked for (the watcher ends with the build's runtime).
    pub(crate) fn watch_stop(&self) {
        let Some(stop) = self.stop.clone() else { return };
        let prefetch = self.prefetch.handles();
        self.rt.spawn(async move {
            stop.asked().await;
            prefetch.abort_all();
        });
    }
}
