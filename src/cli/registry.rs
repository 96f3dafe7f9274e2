//! The registry flags `build`, `warm` and `check` share: how to reach and trust registries when
//! pulling, and where credentials are (kaniko's names).

use std::path::PathBuf;

use clap::{ArgAction, Args};

use trowel_engine::registry::RegistryOptions;

use super::{CliError, parse_kv};

/// The registry flags `build` and `warm` share: how to reach and trust registries when pulling,
/// and where credentials are (kaniko's names).
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Pull over plain HTTP.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, default_value = "false")]
    pub insecure_pull: bool,
    /// Pull without verifying TLS certificates.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, default_value = "false")]
    pub skip_tls_verify_pull: bool,
    /// Registry to reach over plain HTTP (repeatable).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Registry whose TLS certificate is not verified (repeatable).
    #[arg(long = "skip-tls-verify-registry")]
    pub skip_tls_verify_registries: Vec<String>,
    /// CA certificate for a registry: `host[:port]=/path/ca.pem` (repeatable).
    #[arg(long = "registry-certificate")]
    pub registry_certificates: Vec<String>,
    /// Mirror for docker.io images (repeatable, tried in order).
    #[arg(long = "registry-mirror", env = "KANIKO_REGISTRY_MIRROR", value_delimiter = ';')]
    pub registry_mirrors: Vec<String>,
    /// Retries for image downloads.
    #[arg(long, default_value_t = 3)]
    pub image_download_retry: u32,
    /// Directory holding config.json for registry credentials (default: $DOCKER_CONFIG, ~/.docker, /kaniko/.docker).
    #[arg(long)]
    pub docker_config: Option<PathBuf>,
}

impl RegistryArgs {
    /// The registry options these flags describe (pull side; `build` adds its push flags).
    pub fn options(&self) -> Result<RegistryOptions, CliError> {
        let registry_certificates = parse_kv("registry-certificate", &self.registry_certificates)?
            .into_iter()
            .map(|(h, p)| (h, PathBuf::from(p)))
            .collect();
        Ok(RegistryOptions {
            insecure_pull: self.insecure_pull,
            insecure_registries: self.insecure_registries.clone(),
            skip_tls_verify_pull: self.skip_tls_verify_pull,
            skip_tls_verify_registries: self.skip_tls_verify_registries.clone(),
            registry_certificates,
            registry_mirrors: self.registry_mirrors.iter().filter(|m| !m.is_empty()).cloned().collect(),
            retries: self.image_download_retry,
            docker_config: self.docker_config.clone(),
            ..RegistryOptions::default()
        })
    }
}
