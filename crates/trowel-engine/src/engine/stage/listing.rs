//! Listing layers for viewers without applying them: a stage's base-image layers for viewers
//! that show the whole file system at a step (the debugger's Files pane), and a cached step's
//! layer in a stage that has no root (the Changes pane, a trace's `snapshot`).
//!
//! A listing is read from the blob as the registry sent it, so it is the layer's own
//! (whiteouts and opaque directories included) and not what unpacking made of it. With a usable
//! cache dir it is kept there (`cache/listings.rs`), and a later session is shown the same
//! listing without downloading or reading the blob again.

use trowel_events::Event;

use crate::engine::context::BuildContext;
use crate::engine::error::BuildError;
use crate::engine::layer::StageLayer;
use crate::engine::report;
use crate::fs::snapshot::Change;
use crate::fs::unpack::open_layer;

/// Emits the entries of each of `layers` (the base of stage `stage`) when a sink wants them
/// (`Detail::base_listings`): the base is downloaded where a cached build would not need it,
/// unless the cache dir keeps its listings.
pub(super) fn list_base(
    ctx: &BuildContext<'_>,
    wanted: bool,
    stage: usize,
    layers: &[StageLayer],
) -> Result<(), BuildError> {
    if !wanted || layers.is_empty() {
        return Ok(());
    }
    for (index, (layer, entries)) in layers.iter().zip(listings(ctx, layers, "base layer")?).enumerate() {
        ctx.emitter.emit(Event::BaseLayerListed {
            stage,
            index,
            digest: (&layer.descriptor.digest).into(),
            changes: report::into_changes(entries),
        });
    }
    Ok(())
}

/// The entries of each of `layers`, sorted by path (see `fs::listing::list_layer`): kept ones
/// from the cache dir, the rest read from their blobs (downloaded together first, where the
/// build's store lacks them) and kept. `what` names the layers in errors ("cached layer").
pub(super) fn listings(
    ctx: &BuildContext<'_>,
    layers: &[StageLayer],
    what: &str,
) -> Result<Vec<Vec<Change>>, BuildError> {
    let mut kept: Vec<Option<Vec<Change>>> = layers.iter().map(|l| ctx.listings.get(&l.descriptor.digest)).collect();
    let missing: Vec<StageLayer> =
        layers.iter().zip(&kept).filter(|(_, k)| k.is_none()).map(|(l, _)| l.clone()).collect();
    ctx.fetch_blobs(&missing)?;
    let mut out = Vec::with_capacity(layers.len());
    for (layer, kept) in layers.iter().zip(kept.iter_mut()) {
        if let Some(entries) = kept.take() {
            out.push(entries);
            continue;
        }
        let digest = &layer.descriptor.digest;
        let what = format!("list {what} {digest}");
        let file = ctx.store.open_blob(digest).map_err(BuildError::store(what.clone()))?;
        let reader = open_layer(file).map_err(BuildError::fs(what.clone()))?;
        let entries = crate::fs::listing::list_layer(reader).map_err(BuildError::fs(what))?;
        if let Err(e) = ctx.listings.put(digest, &entries) {
            ctx.emitter.warn(format!("could not keep the listing of layer {digest} in the cache dir: {e}"));
        }
        out.push(entries);
    }
    Ok(out)
}
