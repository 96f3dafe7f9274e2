//! Microsoft Azure: Entra ID tokens (`identity.rs`), for Azure Blob Storage contexts and the
//! registry keychain's Azure Container Registry login.

pub(crate) mod identity;
