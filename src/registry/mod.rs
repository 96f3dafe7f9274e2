//! Registry client: references, auth, pull and push.
pub mod auth;
pub mod error;
pub mod options;
pub mod reference;
mod secret;

pub use error::{Op, RegistryError};
pub use options::{Direction, RegistryOptions};
pub use reference::Reference;
