//! The end of a build for several platforms: the image index, its local outputs and its push.
//! (Work in progress: wired to the image index of `image/index.rs`.)

use crate::engine::build::Build;
use crate::engine::error::BuildError;
use crate::image::outputs::FinalImage;

pub use crate::image::index::FinalIndex;

impl Build<'_> {
    pub(crate) fn publish_index(
        &mut self,
        _targets: &[usize],
        _images: &[FinalImage],
    ) -> Result<(FinalIndex, Vec<String>), BuildError> {
        Err(BuildError::Options("a build for several platforms cannot publish its index yet".into()))
    }
}
