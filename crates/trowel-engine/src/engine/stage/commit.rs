//! Turning what a step changed into a layer of the stage and a history entry, and stamping
//! history entries with the right time.

use crate::engine::before::Before;
use std::time::Instant;

use trowel_events::{Event, StepId, When};

use crate::digest::Digest;
use crate::engine::error::BuildError;
use crate::engine::layer::{LayerOrigin, StageLayer};
use crate::engine::report;
use crate::engine::shared::Shared;
use crate::engine::stage::StageRunner;
use crate::engine::steps::Scope;
use crate::fs::Changes;
use crate::fs::LayerInfo;
use crate::fs::layer::{LayerOptions, write_layer_tapped};
use crate::image::config::History;
use crate::image::manifest::Descriptor;

/// Which time a history entry gets. Times are all that tells a rebuild from the image it
/// rebuilds, so they follow where a step's result came from: a step that ran is stamped now, a
/// step served from the cache keeps the time its entry was built, and a step that only changes
/// the config takes the time of what came before it. A build in which nothing ran therefore
/// reproduces the previous image byte for byte, digest included (as BuildKit does), and its
/// push has nothing to send; one step that runs makes the image new again.
pub(crate) enum Stamp {
    /// The step ran in this build.
    Now,
    /// The step's result came from a cache entry made at this time (if it says).
    At(Option<String>),
    /// The step changed only the config: the stage's clock.
    Inherit,
}

/// How the history entry of a layer made by a debugger shell differs from a step's.
pub(crate) const SHELL_COMMENT: &str = "trowel: manual step";

impl StageRunner {
    /// The `created` of the history entry about to be pushed to the stage, moving the stage's
    /// clock along. `None`: not known yet (see `unstamped`).
    fn stamp(&mut self, s: &Shared<'_, '_>, stamp: Stamp) -> Option<String> {
        let fixed = s.ctx.fixed_time();
        let t = match stamp {
            Stamp::Now => s.ctx.now_rfc3339(),
            Stamp::At(t) => fixed.or(t).unwrap_or_else(|| s.ctx.now_rfc3339()),
            Stamp::Inherit if fixed.is_some() => s.ctx.now_rfc3339(),
            Stamp::Inherit => return self.clock.clone(),
        };
        for i in std::mem::take(&mut self.unstamped) {
            self.config.image.set_history_created(i, &t);
        }
        self.clock = Some(t.clone());
        Some(t)
    }

    /// Adds a history entry for a step, stamped as `stamp` says.
    pub(crate) fn push_history(
        &mut self,
        s: &Shared<'_, '_>,
        stamp: Stamp,
        created_by: &str,
        comment: &str,
        empty_layer: bool,
    ) {
        let created = self.stamp(s, stamp);
        if created.is_none() {
            self.unstamped.push(self.config.image.history_len());
        }
        self.config.image.push_history(History {
            created,
            created_by: Some(s.ctx.redactor.redact(created_by)),
            comment: Some(comment.into()),
            empty_layer,
            ..History::default()
        });
    }

    /// A step that changed no files makes no layer (unless `--force-build-metadata`): its
    /// snapshot is reported empty and it gets a history entry of its own. Whether that was so.
    pub(crate) fn no_layer(&mut self, s: &Shared<'_, '_>, id: StepId, changes: &Changes, created_by: &str) -> bool {
        let ctx = s.ctx;
        if !changes.entries.is_empty() || ctx.opts.layers.force_build_metadata {
            return false;
        }
        ctx.emitter.emit(Event::Snapshot {
            id,
            changes: Vec::new(),
            stats: report::snapshot_stats(&changes.stats),
            classified: None,
        });
        self.empty_history(s, created_by, Stamp::Now);
        true
    }

    /// Adds a history entry for a step that changed no files.
    pub(crate) fn empty_history(&mut self, s: &Shared<'_, '_>, created_by: &str, stamp: Stamp) {
        self.push_history(s, stamp, created_by, "trowel", true);
    }

    /// Snapshots what a step changed and, if anything did, writes it as a layer of the stage.
    /// With `--single-snapshot` nothing is snapshotted here (the stage gets one layer at its end).
    pub(crate) fn commit(
        &mut self,
        s: &mut Shared<'_, '_>,
        id: StepId,
        scope: Scope,
        created_by: &str,
    ) -> Result<Option<Digest>, BuildError> {
        if s.ctx.opts.layers.single_snapshot {
            self.empty_history(s, created_by, Stamp::Now);
            return Ok(None);
        }
        self.take_layer(s, id, scope, created_by)
    }

    /// `--single-snapshot`: one layer with everything the stage changed.
    pub(crate) fn single_snapshot(&mut self, s: &mut Shared<'_, '_>, last: StepId) -> Result<(), BuildError> {
        if self.files.existing().is_none() {
            return Ok(());
        }
        self.take_layer(s, last, Scope::Full, "trowel: single snapshot of the stage").map(|_| ())
    }

    fn take_layer(
        &mut self,
        s: &mut Shared<'_, '_>,
        id: StepId,
        scope: Scope,
        created_by: &str,
    ) -> Result<Option<Digest>, BuildError> {
        let root = self.files.get(s, self.index, &self.layers)?;
        let what = format!("snapshot after step {id}");
        // The layer writer reads the files these changes report; the snapshot leaves hashing
        // them to it (settled in `commit_changes`).
        // A stopped build gives up the walk of a step's huge tree (the stop is the error).
        let cancel = s.ctx.fs_cancel();
        let changes = match scope {
            Scope::Full => root.snap.snapshot_deferred(cancel.as_ref()).map_err(s.ctx.fs_failed(what))?,
            Scope::Paths(p) => root.snap.snapshot_paths_deferred(&p, cancel.as_ref()).map_err(s.ctx.fs_failed(what))?,
        };
        self.commit_changes(s, id, changes, created_by, None, true)
    }

    /// Writes snapshotted changes as a layer of the stage (or an empty history entry when there
    /// are none) and reports them. `shell`: a debugger shell session at the pause on that side
    /// of step `id` made them (the layer is the session's, in events and history). `stream`:
    /// the step's layer goes to the cache, so it may be uploaded there while it is written.
    pub(crate) fn commit_changes(
        &mut self,
        s: &mut Shared<'_, '_>,
        id: StepId,
        mut changes: Changes,
        created_by: &str,
        shell: Option<When>,
        stream: bool,
    ) -> Result<Option<Digest>, BuildError> {
        let ctx = s.ctx;
        let comment = if shell.is_some() { SHELL_COMMENT } else { "trowel" };
        self.last_changes = Self::changed_paths(ctx, &changes.entries);
        if let Some(cap) = s.contents.as_deref_mut() {
            let root = self.files.existing().map(|r| r.root());
            cap.capture(s.ctx, self.index, &self.layers, root, id, &changes.entries);
        }
        if self.no_layer(s, id, &changes, created_by) {
            return Ok(None);
        }
        let opts = Self::layer_options(s);
        // A layer not streamed to the cache repository may go to the destination ahead of the
        // push (`early_upload.rs`): the image's own stage, no shell session, no push gate.
        let streaming = stream.then(|| self.start_streamed_upload(s, id)).flatten().or_else(|| {
            let early = shell.is_none() && ctx.plan.targets.contains(&self.index) && !s.controller.wants_push_review();
            early.then(|| ctx.start_early_upload(self.in_tail(id))).flatten()
        });
        let (tap, digest_to) = match streaming {
            Some((t, d)) => (Some(t), Some(d)),
            None => (None, None),
        };
        // What the modified and deleted paths were (their old digests), for viewers that ask.
        // Read with the contents above, in one pass over the base layers (`base_files.rs`).
        let before = s
            .contents
            .as_deref_mut()
            .map(|cap| cap.before.lookup(ctx, self.index, &self.layers, &Before::wanted(&changes.entries, false)));
        let root = self.files.get(s, self.index, &self.layers)?;
        // The layer's own time: what a viewer asked for (`before`) is not in it.
        let t0 = Instant::now();
        let cancel = ctx.fs_cancel();
        let (info, streamed) =
            write_layer_tapped(root.snap.root(), &mut changes, &ctx.store, &opts, tap, cancel.as_ref())
                .map_err(ctx.fs_failed(format!("write layer for step {id}")))?;
        let took = t0.elapsed();
        // What the writer hashed, for a later stage's `COPY --from` key not to hash it again.
        if crate::engine::known_digests::read_later(&ctx.plan, self.index) {
            root.digests.record(&changes);
        }
        root.snap.settle(&changes).map_err(BuildError::fs(format!("index what step {id} wrote")))?;
        if let (Some(b), Some(cap)) = (before, s.contents.as_deref_mut()) {
            Before::fill(&mut changes.entries, &b);
            cap.before.record(self.index, &changes.entries);
        }
        // The upload commits only a stream that got every byte (the registry checks the digest
        // anyway); otherwise the digest is not sent and the upload is cancelled.
        if let Some(d) = digest_to.filter(|_| streamed) {
            let _ = d.send(info.digest.clone());
        }
        let (listed, stats) = report::snapshot_of(changes.entries, &changes.stats, ctx.detail.file_lists);
        ctx.emitter.emit(Event::Snapshot { id, stats, changes: listed, classified: None });
        let mut layer = self.built_layer(id, &info);
        if let Some(when) = shell {
            layer.origin = LayerOrigin::Shell(id, when);
        }
        Ok(Some(self.record_layer(s, id, layer, info.entries, took, created_by, comment)))
    }

    /// The paths a step changed, kept for the checkpoint after it (a debugger's breakpoint on a
    /// changed path), when a controller or viewer keeps per-file lists: a plain build's would
    /// be a copy of every path of a big COPY that nothing reads.
    pub(crate) fn changed_paths(
        ctx: &crate::engine::context::BuildContext<'_>,
        entries: &[crate::fs::Change],
    ) -> Vec<String> {
        if ctx.detail.file_lists { entries.iter().map(|c| c.path.clone()).collect() } else { Vec::new() }
    }

    /// The stage layer a step wrote.
    pub(crate) fn built_layer(&self, id: StepId, info: &LayerInfo) -> StageLayer {
        let media_type = self.format.layer_media_type(info.compression).to_string();
        StageLayer {
            descriptor: Descriptor::new(media_type, info.digest.clone(), info.size),
            diff_id: info.diff_id.clone(),
            origin: LayerOrigin::Built(id),
            uncompressed_size: Some(info.uncompressed_size),
            cached_for: None,
        }
    }

    /// Reports a layer a step wrote (`entries` in it, written in `took`) and adds it to the
    /// stage with its history entry.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_layer(
        &mut self,
        s: &Shared<'_, '_>,
        id: StepId,
        layer: StageLayer,
        entries: u64,
        took: std::time::Duration,
        created_by: &str,
        comment: &str,
    ) -> Digest {
        s.ctx.emitter.emit(Event::LayerWritten {
            id,
            layer: layer.summary(Some(id)),
            entries,
            duration_ms: took.as_millis() as u64,
        });
        self.config.image.push_diff_id(&layer.diff_id);
        self.push_history(s, Stamp::Now, created_by, comment, false);
        let digest = layer.descriptor.digest.clone();
        self.layers.push(layer);
        digest
    }

    /// How this build writes layers.
    pub(crate) fn layer_options(s: &Shared<'_, '_>) -> LayerOptions {
        LayerOptions {
            compression: s.ctx.opts.layers.compression,
            level: s.ctx.opts.layers.compression_level,
            mtime: s.ctx.opts.layers.reproducible.then_some(0),
        }
    }
}
