//! A stage's last layers: which steps write them, and the upload sessions opened for them
//! while the steps before them run.
//!
//! A layer's upload begins with a `POST` that opens its session (`registry/spare_uploads.rs`).
//! For the stage's last layers that round trip stands between the last step and the end of the
//! build: the last RUN's layer must reach the cache repository before the push can mount it
//! (or it goes up to the destination itself, `registry/push.rs`), and the last COPY's session
//! in the destination is opened only as the layer is written, just before the push that
//! commits it. So when the stage first runs a step that works on files (a config-only step
//! writes nothing: one at the top of a stage the cache serves whole would open sessions for
//! nothing), sessions are opened for its last
//! [`TAIL`] steps that work on files: in the cache repository for those whose layer goes
//! there, and, in the stage the image is made of, in the destination for each of them (a held
//! upload's, or a small RUN layer's pushed directly). Only those steps take them: an earlier
//! step's upload has the time to open its own, and would leave the last ones none.
//!
//! A session no upload takes (a step that wrote nothing, a layer too large to send twice, a
//! cache hit after all) is cancelled at the end of the build, like the push check's. A stage
//! served wholly from the cache opens none.
//!
//! At the same moment the destination is asked (`HEAD`) whether it holds the layers the stage
//! starts from (its base's): the push mounts those it lacks, and asked only then, the question
//! was a round trip before each mount (`early_upload.rs`, `ask_ahead`).

use crate::engine::layer::LayerOrigin;
use crate::engine::shared::Shared;
use crate::engine::stage::StageRunner;
use trowel_events::StepId;

/// How many of a stage's last file steps get sessions opened ahead: the last one, and the one
/// before it, which a short last step (W1's `COPY` of one file, 1 ms) leaves just as close to
/// the end.
const TAIL: usize = 2;

impl StageRunner {
    /// Whether step `id` is one of the stage's last [`TAIL`] steps that work on files.
    pub(crate) fn in_tail(&self, id: StepId) -> bool {
        self.order.iter().rev().filter(|l| l.files).take(TAIL).any(|l| l.id == id)
    }

    /// At the first step of the stage that runs and works on files (`id`): opens the upload
    /// sessions of the stage's last layers still to come (see the module's comment). Once per
    /// stage.
    pub(crate) fn open_tail_sessions(&mut self, s: &mut Shared<'_, '_>, id: StepId) {
        if std::mem::replace(&mut self.tail_sessions, true) {
            return;
        }
        // The stage's last file steps that are still to come.
        let Some(at) = self.order.iter().position(|l| l.id == id) else { return };
        let ahead: Vec<StepId> = self.order[at..].iter().rev().filter(|l| l.files).take(TAIL).map(|l| l.id).collect();
        if ahead.is_empty() {
            return;
        }
        let ctx = s.ctx;
        if let Some(repo) = s.cache.as_deref().and_then(|c| c.writes_to()) {
            let cached = ahead.iter().filter(|t| self.keys.cacheable(**t)).count();
            if cached > 0 {
                ctx.open_sessions_ahead(repo, cached);
            }
        }
        // As `commit_changes` decides whether a layer is sent early.
        let image = ctx.plan.targets.contains(&self.index) && !s.controller.wants_push_review();
        if let Some(dest) = ctx.early_dest().filter(|_| image) {
            ctx.open_sessions_ahead(dest, ahead.len());
            // And whether the destination holds the layers below (the base's, those from the
            // cache repository): asked now, not by the push before it mounts each.
            let below = self.layers.iter().filter(|l| matches!(l.origin, LayerOrigin::Base(_)));
            ctx.ask_ahead(below.map(|l| l.descriptor.digest.clone()).collect::<Vec<_>>());
        }
    }
}
