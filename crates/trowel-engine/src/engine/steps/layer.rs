//! Turning what a step changed into a layer and a history entry.

use std::time::Instant;

use crate::digest::Digest;
use crate::engine::build::Engine;
use crate::engine::error::BuildError;
use crate::engine::report;
use crate::engine::stage::{LayerOrigin, StageLayer, StageState};
use crate::fs::Changes;
use crate::fs::layer::{LayerOptions, write_layer_tapped};
use crate::image::config::History;
use crate::image::manifest::Descriptor;
use trowel_events::{Event, LayerSummary, StepId};

/// Which part of the root a step may have changed.
pub enum Scope {
    /// Anything (RUN): walk the whole root.
    Full,
    /// Only these subtrees (COPY, ADD, WORKDIR).
    Paths(Vec<String>),
}

/// Which time a history entry gets. Times are all that tells a rebuild from the image it
/// rebuilds, so they follow where a step's result came from: a step that ran is stamped now, a
/// step served from the cache keeps the time its entry was built, and a step that only changes
/// the config takes the time of what came before it. A build in which nothing ran therefore
/// reproduces the previous image byte for byte, digest included (as BuildKit does), and its
/// push has nothing to send; one step that runs makes the image new again.
pub enum Stamp {
    /// The step ran in this build.
    Now,
    /// The step's result came from a cache entry made at this time (if it says).
    At(Option<String>),
    /// The step changed only the config: the stage's clock.
    Inherit,
}

impl Engine<'_> {
    /// The `created` of the history entry about to be pushed to the stage, moving the stage's
    /// clock along. `None`: not known yet (see `StageState::unstamped`).
    fn stamp(&self, st: &mut StageState, stamp: Stamp) -> Option<String> {
        let t = match stamp {
            Stamp::Now => self.now_rfc3339(),
            Stamp::At(t) => t.filter(|_| !self.opts.reproducible).unwrap_or_else(|| self.now_rfc3339()),
            Stamp::Inherit if self.opts.reproducible => self.now_rfc3339(),
            Stamp::Inherit => return st.clock.clone(),
        };
        for i in std::mem::take(&mut st.unstamped) {
            st.config.set_history_created(i, &t);
        }
        st.clock = Some(t.clone());
        Some(t)
    }
}

/// Adds a history entry for a step, stamped as `stamp` says.
pub fn push_history(
    engine: &Engine<'_>,
    st: &mut StageState,
    stamp: Stamp,
    created_by: &str,
    comment: &str,
    empty_layer: bool,
) {
    let created = engine.stamp(st, stamp);
    if created.is_none() {
        st.unstamped.push(st.config.history_len());
    }
    st.config.push_history(History {
        created,
        created_by: Some(engine.redactor.redact(created_by)),
        comment: Some(comment.into()),
        empty_layer,
        ..History::default()
    });
}

/// Adds a history entry for a step that changed no files.
pub fn empty_history(engine: &Engine<'_>, st: &mut StageState, created_by: &str, stamp: Stamp) {
    push_history(engine, st, stamp, created_by, "trowel", true);
}

/// Snapshots what the step changed and, if anything did, writes it as a layer of the stage.
/// With `--single-snapshot` nothing is snapshotted here (the stage gets one layer at its end).
pub fn commit(
    engine: &mut Engine<'_>,
    st: &mut StageState,
    id: StepId,
    scope: Scope,
    created_by: &str,
) -> Result<Option<Digest>, BuildError> {
    if engine.opts.single_snapshot {
        empty_history(engine, st, created_by, Stamp::Now);
        return Ok(None);
    }
    take_layer(engine, st, id, scope, created_by)
}

/// `--single-snapshot`: one layer with everything the stage changed.
pub fn single_snapshot(engine: &mut Engine<'_>, st: &mut StageState, last: StepId) -> Result<(), BuildError> {
    if st.root.is_none() {
        return Ok(());
    }
    take_layer(engine, st, last, Scope::Full, "trowel: single snapshot of the stage").map(|_| ())
}

fn take_layer(
    engine: &mut Engine<'_>,
    st: &mut StageState,
    id: StepId,
    scope: Scope,
    created_by: &str,
) -> Result<Option<Digest>, BuildError> {
    let root = st.root.as_mut().expect("a file-changing step materialised the root");
    let snap_err = |e: crate::fs::FsError| BuildError::Setup(format!("snapshot after step {id}: {e}"));
    let changes = match scope {
        Scope::Full => root.snap.snapshot().map_err(snap_err)?,
        Scope::Paths(p) => root.snap.snapshot_paths(&p).map_err(snap_err)?,
    };
    commit_changes(engine, st, id, changes, created_by, "trowel", true)
}

/// Writes snapshotted changes as a layer of the stage (or an empty history entry when there
/// are none) and reports them. `stream`: the step's layer goes to the cache, so it may be
/// uploaded there while it is written.
pub fn commit_changes(
    engine: &mut Engine<'_>,
    st: &mut StageState,
    id: StepId,
    mut changes: Changes,
    created_by: &str,
    comment: &str,
    stream: bool,
) -> Result<Option<Digest>, BuildError> {
    st.last_changes = changes.entries.iter().map(|c| c.path.clone()).collect();
    engine.capture_contents(st, id, &changes.entries);
    if changes.entries.is_empty() && !engine.opts.force_build_metadata {
        engine.emitter.emit(Event::Snapshot {
            id,
            changes: report::changes(&changes.entries),
            stats: report::snapshot_stats(&changes.stats),
        });
        empty_history(engine, st, created_by, Stamp::Now);
        return Ok(None);
    }
    let t0 = Instant::now();
    let opts = LayerOptions {
        compression: engine.opts.compression,
        level: engine.opts.compression_level,
        mtime: engine.opts.reproducible.then_some(0),
    };
    let (tap, digest_to) = match stream.then(|| engine.start_streamed_upload(st, id)).flatten() {
        Some((t, d)) => (Some(t), Some(d)),
        None => (None, None),
    };
    let root = st.root.as_mut().expect("a file-changing step materialised the root");
    let (info, streamed) = write_layer_tapped(root.snap.root(), &mut changes, &engine.store, &opts, tap)
        .map_err(|e| BuildError::Setup(format!("write layer for step {id}: {e}")))?;
    // The upload commits only a stream that got every byte (the registry checks the digest
    // anyway); otherwise the digest is not sent and the upload is cancelled.
    if let Some(d) = digest_to.filter(|_| streamed) {
        let _ = d.send(info.digest.clone());
    }
    engine.emitter.emit(Event::Snapshot {
        id,
        changes: report::changes(&changes.entries),
        stats: report::snapshot_stats(&changes.stats),
    });
    let media_type = st.format.layer_media_type(info.compression).to_string();
    let descriptor = Descriptor::new(media_type.clone(), info.digest.clone(), info.size);
    engine.emitter.emit(Event::LayerWritten {
        id,
        layer: LayerSummary {
            digest: info.digest.clone().into(),
            diff_id: Some(info.diff_id.clone().into()),
            size: info.size,
            uncompressed_size: Some(info.uncompressed_size),
            media_type,
            step: Some(id),
        },
        entries: info.entries,
        duration_ms: t0.elapsed().as_millis() as u64,
    });
    st.config.push_diff_id(&info.diff_id);
    push_history(engine, st, Stamp::Now, created_by, comment, false);
    st.layers.push(StageLayer {
        descriptor,
        diff_id: info.diff_id,
        origin: LayerOrigin::Built(id),
        uncompressed_size: Some(info.uncompressed_size),
    });
    Ok(Some(info.digest))
}
