//! Listing a stage's base-image layers for viewers that show the whole file system at a step
//! (the debugger's Files pane): one `base_layer_listed` event per layer, read from the blob
//! as the registry sent it, so the listing is the layer's own (whiteouts and opaque
//! directories included) and not what unpacking made of it. Only when a sink asks for
//! `Detail::base_listings`: it downloads the base even where a cached build would not.

use trowel_events::Event;

use crate::engine::context::BuildContext;
use crate::engine::error::BuildError;
use crate::engine::layer::StageLayer;
use crate::engine::report;
use crate::fs::unpack::open_layer;

/// Emits the entries of each of `layers` (the base of stage `stage`) when a sink wants them.
pub(super) fn list_base(
    ctx: &BuildContext<'_>,
    wanted: bool,
    stage: usize,
    layers: &[StageLayer],
) -> Result<(), BuildError> {
    if !wanted || layers.is_empty() {
        return Ok(());
    }
    ctx.fetch_blobs(layers)?;
    for (index, layer) in layers.iter().enumerate() {
        let digest = &layer.descriptor.digest;
        let what = format!("list base layer {digest}");
        let file = ctx.store.open_blob(digest).map_err(BuildError::store(what.clone()))?;
        let reader = open_layer(file).map_err(BuildError::fs(what.clone()))?;
        let entries = crate::fs::listing::list_layer(reader).map_err(BuildError::fs(what))?;
        ctx.emitter.emit(Event::BaseLayerListed {
            stage,
            index,
            digest: digest.into(),
            changes: report::into_changes(entries),
        });
    }
    Ok(())
}
