//! `COPY --link` and `ADD --link`: BuildKit's "copy onto `scratch`, then merge" in trowel.
//!
//! The step runs on an empty root of its own, so what it writes cannot depend on the stage
//! below: a destination is a directory only when the instruction says so, the parents it
//! creates are 0755 and owned by the `--chown` user, and nothing of the image is followed or
//! looked up. That root's whole contents become the step's layer; the layer is then laid over
//! the stage's root exactly as a layer of the image is when the image is unpacked (and as a
//! cache hit is) — a directory of the layer replaces a symlink of the image, a file replaces a
//! directory, as containerd applies BuildKit's layers. Because its content does not depend on
//! what is below, its cache key does not chain from the step before (`layer_cache/plan.rs`):
//! after an earlier step changed, the cached layer is used again.
//!
//! A stage that has no root yet (everything so far came from the cache, or from the base) gets
//! none: the layer is added on top of the stage's layers as they are, so a build whose only file
//! steps are `--link` never unpacks its base — BuildKit's "rebase" without pulling.

use std::time::Instant;

use trowel_events::{Event, StepId, StepStatus};

use crate::digest::Digest;
use crate::engine::error::BuildError;
use crate::engine::report;
use crate::engine::root::{BuildRoot, RootFor};
use crate::engine::shared::Shared;
use crate::engine::stage::{StageRunner, Stamp};
use crate::engine::steps::copy::seen::Seen;
use crate::engine::steps::{Changed, FileCx, FileStep, Scope, StepAt, StepOutcome};
use crate::fs::layer::write_layer_tapped;
use crate::fs::{Change, ChangeKind, Changes, FileType, Root};

impl StageRunner {
    /// Runs a `--link` step on an empty root and lays its layer over the stage.
    pub(crate) fn execute_linked(
        &mut self,
        s: &mut Shared<'_, '_>,
        at: &StepAt<'_>,
        step: &dyn FileStep,
        seen: Option<&Seen>,
    ) -> Result<StepOutcome, BuildError> {
        let ctx = s.ctx;
        let mut empty = ctx.materialize(&[], "link", RootFor::Linked)?;
        let result = (|| {
            let source = Self::source_of(s, self.index, at, step)?;
            let changed =
                step.run(FileCx { ctx, at, config: &mut self.config, root: &mut empty, source, mounts: None, seen })?;
            let Changed::Files(scope) = changed else {
                self.empty_history(s, &self.created_by(&at.display), Stamp::Inherit);
                return Ok(StepOutcome::metadata());
            };
            let what = format!("snapshot after step {}", at.id);
            // The step's own root, as big as what it copied: a stop gives its walk up.
            let cancel = ctx.fs_cancel();
            let mut changes = match scope {
                Scope::Full => empty.snap.snapshot_cancellable(cancel.as_ref()).map_err(ctx.fs_failed(what))?,
                Scope::Paths(p) => {
                    empty.snap.snapshot_paths_cancellable(&p, cancel.as_ref()).map_err(ctx.fs_failed(what))?
                }
            };
            // The root directory itself is the stage's, never the step's.
            changes.entries.retain(|c| c.path != "/");
            let created_by = self.created_by(&at.display);
            let layer = self.commit_linked(s, at.id, &empty, changes, &created_by)?;
            Ok(StepOutcome { status: StepStatus::Built, layer })
        })();
        // The empty root lives in `<work>/link-*/rootfs`.
        let _ = std::fs::remove_dir_all(empty.dir.parent().unwrap_or(&empty.dir));
        result
    }

    /// Writes the contents of `empty` as the step's layer and lays it over the stage's root
    /// (when the stage has one). With `--single-snapshot` the layer only changes the root: the
    /// stage's one layer is taken at its end.
    fn commit_linked(
        &mut self,
        s: &mut Shared<'_, '_>,
        id: StepId,
        empty: &BuildRoot,
        mut changes: Changes,
        created_by: &str,
    ) -> Result<Option<Digest>, BuildError> {
        let ctx = s.ctx;
        let single = ctx.opts.layers.single_snapshot;
        if self.no_layer(s, id, &changes, created_by) {
            return Ok(None);
        }
        let (tap, digest_to) = match (!single).then(|| self.start_streamed_upload(s, id)).flatten() {
            Some((t, d)) => (Some(t), Some(d)),
            None => (None, None),
        };
        // The layer's own time: laying it over the stage and what a viewer asked for are not in it.
        let t0 = Instant::now();
        let opts = Self::layer_options(s);
        let cancel = ctx.fs_cancel();
        let (info, streamed) = write_layer_tapped(empty.root(), &mut changes, &ctx.store, &opts, tap, cancel.as_ref())
            .map_err(ctx.fs_failed(format!("write layer for step {id}")))?;
        let took = t0.elapsed();
        if let Some(d) = digest_to.filter(|_| streamed) {
            let _ = d.send(info.digest.clone());
        }
        let layer = self.built_layer(id, &info);
        let root = if single { Some(self.files.get(s, self.index, &self.layers)?) } else { self.files.existing_mut() };
        let applied = match root {
            Some(root) => {
                for w in replacements(root.root(), &changes.entries) {
                    ctx.emitter.warn(format!("step {id}: {w}"));
                }
                let opts = match &ctx.slash_keep {
                    Some(keep) if root.is_slash() => ctx.slash_unpack_options(keep),
                    _ => ctx.unpack_options(),
                };
                let stats =
                    ctx.unpack_verified(root.snap.root(), &layer, &opts, "lay the --link layer over the stage")?;
                if single {
                    // The stage's one snapshot, at its end, sees these files.
                    self.empty_history(s, created_by, Stamp::Now);
                    return Ok(None);
                }
                // What laying it over changed, as a snapshot sees it (this also brings the
                // index up to date for the steps after it).
                let what = format!("snapshot after step {id}");
                let touched = root.snap.snapshot_paths_cancellable(&stats.touched, cancel.as_ref());
                Some(touched.map_err(ctx.fs_failed(what))?)
            }
            None => None,
        };
        // Without a root, what the step changed is what its layer holds: all "added" until
        // compared with the layers below, which a viewer that asks for it gets (as for a cached
        // layer listed without a root).
        let mut classified = applied.as_ref().map_or(Some(false), |_| None);
        let diffs = ctx.detail.cached_diffs || s.controller.detail().cached_diffs;
        if let (None, Some(cap)) = (&applied, s.contents.as_deref_mut().filter(|_| diffs)) {
            cap.before.classify_listing(ctx, self.index, &self.layers, &mut changes.entries);
            classified = Some(true);
        }
        let (shown, after) = match &applied {
            Some(c) => (c, self.files.existing().map(|r| r.root())),
            None => (&changes, Some(empty.root())),
        };
        let (listed, stats) =
            report::snapshot_listed(&shown.entries, report::snapshot_stats(&shown.stats), ctx.detail.file_lists);
        ctx.emitter.emit(Event::Snapshot { id, changes: listed, stats, classified });
        self.last_changes = Self::changed_paths(ctx, &shown.entries);
        if let Some(cap) = s.contents.as_deref_mut() {
            cap.capture(ctx, self.index, &self.layers, after, id, &shown.entries);
        }
        Ok(Some(self.record_layer(s, id, layer, info.entries, took, created_by, "trowel")))
    }
}

/// What laying a `--link` layer over `root` replaces that a plain COPY would have kept: a
/// directory of the image where the layer has a file, a symlink where it has a directory. Each
/// is named once (not the paths below it).
fn replacements(root: &Root, layer: &[Change]) -> Vec<String> {
    let mut out = Vec::new();
    let mut replaced: Option<String> = None;
    for c in layer.iter().filter(|c| c.kind != ChangeKind::Deleted) {
        if replaced.as_deref().is_some_and(|r| c.path.starts_with(r) && c.path[r.len()..].starts_with('/')) {
            continue;
        }
        let Ok(Some(st)) = root.lstat(&c.path) else { continue };
        let layer_dir = c.file_type == FileType::Dir;
        let why = if st.is_dir() && !layer_dir {
            format!(
                "{} was a directory of the image; --link replaces it with this step's {} (as BuildKit: a --link \
                 step does not see the image, so a destination is a directory only when it ends with /)",
                c.path,
                kind(c.file_type)
            )
        } else if st.file_type == FileType::Symlink && layer_dir {
            let target = root.read_link(&c.path).unwrap_or_default();
            format!(
                "{} was a symlink to {target} in the image; --link replaces it with a directory holding only what \
                 this step copied (as BuildKit: a --link step does not follow the image's symlinks)",
                c.path
            )
        } else {
            continue;
        };
        out.push(why);
        replaced = Some(c.path.clone());
    }
    out
}

fn kind(t: FileType) -> &'static str {
    match t {
        FileType::Symlink => "symlink",
        FileType::Dir => "directory",
        _ => "file",
    }
}
