//! What a stage works with besides its own state: the read-only [`BuildContext`] and the
//! build-wide state stages share — the other stages' results, the layer cache's bookkeeping,
//! the file contents recorded for viewers, the controller, the push check. Bundled so a stage
//! runner method takes one argument for "the rest of the build", with each part's own rules
//! (read-only context, mutable bookkeeping) kept by its type.

use crate::engine::contents::ContentCapture;
use crate::engine::context::BuildContext;
use crate::engine::controller::Controller;
use crate::engine::layer_cache::LayerCache;
use crate::engine::push_check::PushCheck;
use crate::engine::stages::Stages;

pub(crate) struct Shared<'s, 'o> {
    pub ctx: &'s BuildContext<'o>,
    pub stages: &'s mut Stages,
    /// The layer cache, with `--cache`.
    pub cache: Option<&'s mut LayerCache>,
    /// File contents for viewers, when a sink asked for them.
    pub contents: Option<&'s mut ContentCapture>,
    pub controller: &'s mut dyn Controller,
    pub push_check: &'s mut PushCheck,
}
