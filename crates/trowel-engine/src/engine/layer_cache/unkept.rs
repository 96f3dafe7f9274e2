//! Whether this build keeps an entry of a COPY/ADD step it keeps out of the cache repository
//! (no `--cache-copy-layers`), for the words of its miss.
//!
//! Such a step is found again only in the local layer store (a usable `--cache-dir`, written
//! when the step runs) or by a layer reference record (written only after a push of an image
//! holding its layer). A build that writes neither leaves nothing for the next build like it:
//! its miss saying "no cache entry for this step yet" promised a hit that such a build gets only
//! if another kind of build (one that pushes an image holding the layer) wrote a record in
//! between, and its place's pointer tag, never moved by it, may name what the place held builds
//! ago. The explanation says what is true instead ([`crate::cache::explain::Around::unkept`]):
//! which builds miss here, and what would make one hit.

use crate::dockerfile::Base;
use crate::dockerfile::Plan;
use crate::engine::context::BuildContext;
use crate::engine::layer_cache::{LayerCache, PlannedStep};

/// What every such reason starts with.
const KEPT_OUT: &str = "COPY and ADD layers are not written to the cache repository (--cache-copy-layers=false)";

/// What a reason of a step that ran ends with: which builds miss here, and what makes one hit.
/// Not "every time": a build that pushes an image holding the layer, in between, writes the
/// layer reference record a build like this one then hits (the key is the same).
const UNLESS: &str = concat!(
    "a build like this one misses here unless one that pushed an image holding this layer left a layer ",
    "reference record of it"
);

impl LayerCache {
    /// Why this build keeps no entry of the step `planned` of stage `stage`, which missed;
    /// `None` when it keeps one (or may: a step that may make no layer has its entry written to
    /// the cache repository, see [`LayerCache::store`]). `deferred`: the step is not run (see
    /// `engine/stage/defer.rs`), so nothing of it is written anywhere.
    pub(crate) fn unkept(
        &self,
        ctx: &BuildContext<'_>,
        stage: usize,
        planned: &PlannedStep,
        deferred: bool,
    ) -> Option<String> {
        if !planned.local {
            return None;
        }
        if deferred {
            return Some(format!(
                "{KEPT_OUT}, and this one is not run (nothing needs its layer), so this build keeps no entry of it: a \
                 build that does not run it misses here unless one that ran it kept an entry (in its --cache-dir, or a \
                 layer reference record when it pushed an image holding this layer)"
            ));
        }
        // The local store keeps what runs. A COPY of no files from the context (a wildcard
        // that matched nothing) may make no layer, whose entry goes to the cache repository.
        let c = &planned.components;
        if self.local.is_some() || (c.files.is_empty() && c.sources.is_empty()) {
            return None;
        }
        let out = &ctx.opts.output;
        let not_pushed = if out.no_push {
            "--no-push"
        } else if self.opts.no_push {
            "--no-push-cache"
        } else if out.destinations.is_empty() {
            "no --destination"
        } else if !in_pushed_image(&ctx.plan, stage) {
            "its stage is in no pushed image"
        } else {
            return None;
        };
        Some(format!(
            "{KEPT_OUT}, and this build keeps none of this step's (no usable --cache-dir, and {not_pushed}): {UNLESS}"
        ))
    }
}

/// Whether stage `stage`'s layers are in an image the build pushes: a target's, or one a target
/// is built `FROM` (its layers are the target's lower ones).
pub(crate) fn in_pushed_image(plan: &Plan, stage: usize) -> bool {
    plan.targets.iter().any(|&t| {
        let mut at = Some(t);
        while let Some(i) = at {
            if i == stage {
                return true;
            }
            at = match plan.stages.get(i).map(|s| &s.base) {
                Some(Base::Stage(p)) if *p != i => Some(*p),
                _ => None,
            };
        }
        false
    })
}
