//! The registry flags `build`, `warm` and `check` share: how to reach and trust registries when
//! pulling, and where credentials are (kaniko's names).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

use trowel_engine::registry::{ClientCertificate, RegistryOptions};

use super::{CliError, parse_kv};

/// The registry flags `build` and `warm` share: how to reach and trust registries when pulling,
/// and where credentials are (kaniko's names).
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Pull over plain HTTP.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub insecure_pull: bool,
    /// Pull without verifying TLS certificates.
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
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
    /// Client certificate for a registry that requires mutual TLS:
    /// `host[:port]=/path/cert.pem,/path/key.pem` (repeatable; mirrors and the cache repo too).
    #[arg(long = "registry-client-cert", value_name = "REGISTRY=CERTFILE,KEYFILE")]
    pub registry_client_certs: Vec<String>,
    /// Mirror for docker.io images (repeatable, tried in order; also KANIKO_REGISTRY_MIRROR,
    /// `;`-separated, tried after the flags).
    #[arg(long = "registry-mirror")]
    pub registry_mirrors: Vec<String>,
    /// Mirrors of any registry (kaniko ≥ 1.21): `original=mirror[/prefix]`, several `;`-separated
    /// (repeatable; also KANIKO_REGISTRY_MAP). An image of `original` is pulled from each of its
    /// mirrors in turn, then from `original` (unless --skip-default-registry-fallback).
    #[arg(long = "registry-map", value_name = "REGISTRY=MIRROR[;…]")]
    pub registry_maps: Vec<String>,
    /// With --registry-mirror or --registry-map: an image no mirror serves is an error instead
    /// of a pull from its own registry (ignored without mirrors).
    #[arg(long, num_args = 0..=1, default_missing_value = bool_flag!(), action = ArgAction::Set, value_parser = super::parse_go_bool, default_value = "false")]
    pub skip_default_registry_fallback: bool,
    /// Retries for image downloads.
    #[arg(long, default_value_t = 3)]
    pub image_download_retry: u32,
    /// A registry or context download that moves no byte for this long (Go duration) fails
    /// that attempt, which is retried; a slow transfer that keeps moving is never cut off.
    #[arg(long, env = "TROWEL_STALL_TIMEOUT", default_value = "30s", value_parser = parse_stall_timeout)]
    pub stall_timeout: Duration,
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
        let client_certificates = self
            .registry_client_certs
            .iter()
            .map(|v| ClientCertificate::parse(v).map_err(CliError))
            .collect::<Result<_, _>>()?;
        let registry_mirrors =
            mirrors(&self.registry_mirrors, &std::env::var("KANIKO_REGISTRY_MIRROR").unwrap_or_default());
        refuse_credentials(registry_mirrors.iter().map(|m| ("registry-mirror", m)))?;
        let registry_maps = registry_maps(&self.registry_maps, std::env::var("KANIKO_REGISTRY_MAP").ok().as_deref())?;
        refuse_credentials(registry_maps.iter().flat_map(|(r, m)| [("registry-map", r), ("registry-map", m)]))?;
        Ok(RegistryOptions {
            insecure_pull: self.insecure_pull,
            insecure_registries: self.insecure_registries.clone(),
            skip_tls_verify_pull: self.skip_tls_verify_pull,
            skip_tls_verify_registries: self.skip_tls_verify_registries.clone(),
            registry_certificates,
            client_certificates,
            registry_mirrors,
            registry_maps,
            skip_default_registry_fallback: self.skip_default_registry_fallback,
            retries: self.image_download_retry,
            stall_timeout: self.stall_timeout,
            docker_config: self.docker_config.clone(),
            ..RegistryOptions::default()
        })
    }
}

/// Refuses a registry or reference flag written with credentials in it
/// (`--destination http://user:password@reg/app`): no reference has a place for them (kaniko
/// refuses them too), and the value would otherwise be quoted, password and all, in the error
/// and the trace, or a mirror's in every warning about it. The message masks them.
pub(crate) fn refuse_credentials<'a>(flags: impl Iterator<Item = (&'a str, &'a String)>) -> Result<(), CliError> {
    use trowel_engine::registry::reference::{has_userinfo, masked_userinfo};
    for (flag, value) in flags {
        if has_userinfo(value) {
            return Err(CliError(format!(
                "--{flag} {:?}: credentials cannot be part of a registry name; give them in a Docker config \
                 (`trowel login`, --docker-config) or DOCKER_AUTH_CONFIG",
                masked_userinfo(value)
            )));
        }
    }
    Ok(())
}

/// `--stall-timeout`: a positive Go duration (zero would fail every transfer).
fn parse_stall_timeout(s: &str) -> Result<Duration, String> {
    match trowel_engine::duration::parse_go_duration(s) {
        Ok(d) if d.is_zero() => Err(format!("{s:?}: the stall timeout must be more than zero")),
        Ok(d) => Ok(d),
        Err(_) => Err(format!("{s:?} is not a duration: use e.g. 30s, 2m, 1m30s")),
    }
}

/// The flags' mirrors, then `KANIKO_REGISTRY_MIRROR`'s (kaniko appends the variable to the
/// flags; later kaniko splits it at `;`, which one mirror never contains).
fn mirrors(flags: &[String], env: &str) -> Vec<String> {
    (flags.iter().map(String::as_str))
        .chain(env.split(';'))
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(String::from)
        .collect()
}

/// `--registry-map` values, then `KANIKO_REGISTRY_MAP`'s (kaniko reads the variable after the
/// flags): `original=mirror` pairs, `;`-separated, a registry mapped more than once keeping every
/// mirror in order (kaniko's `multiKeyMultiValueArg`).
fn registry_maps(flags: &[String], env: Option<&str>) -> Result<Vec<(String, String)>, CliError> {
    let mut out = Vec::new();
    for value in flags.iter().map(String::as_str).chain(env) {
        for pair in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((from, to)) if !from.trim().is_empty() && !to.trim().is_empty() => {
                    out.push((from.trim().to_string(), to.trim().to_string()))
                }
                _ => {
                    return Err(CliError(format!(
                        "invalid --registry-map {:?}: expected REGISTRY=MIRROR (e.g. index.docker.io=mirror.example/hub)",
                        trowel_engine::registry::reference::masked_userinfo(pair)
                    )));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_maps_as_kaniko_reads_them() {
        let flags = vec!["index.docker.io=m1.example;ghcr.io=m2.example/ghcr".to_string(), "ghcr.io=m3".into()];
        let got = registry_maps(&flags, Some("quay.io=m4")).unwrap();
        let want =
            [("index.docker.io", "m1.example"), ("ghcr.io", "m2.example/ghcr"), ("ghcr.io", "m3"), ("quay.io", "m4")];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
        assert!(registry_maps(&["nomirror".into()], None).unwrap_err().0.contains("expected REGISTRY=MIRROR"));
        assert!(registry_maps(&["a=".into()], None).is_err());
    }

    #[test]
    fn stall_timeout_is_a_positive_go_duration() {
        assert_eq!(parse_stall_timeout("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_stall_timeout("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_stall_timeout("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_stall_timeout("0s").unwrap_err(), "\"0s\": the stall timeout must be more than zero");
        assert_eq!(parse_stall_timeout("soon").unwrap_err(), "\"soon\" is not a duration: use e.g. 30s, 2m, 1m30s");
        let cli = crate::cli::parse(&["trowel", "build", "--no-push", "--stall-timeout", "2s"]);
        let crate::cli::Command::Build(b) = cli.command else { panic!("not a build") };
        assert_eq!(b.registry.options().unwrap().stall_timeout, Duration::from_secs(2));
    }

    #[test]
    fn kaniko_registry_mirror_variable_comes_after_the_flags() {
        let flags = vec!["flag.example".to_string()];
        assert_eq!(
            mirrors(&flags, "env1.example; env2.example/hub"),
            ["flag.example", "env1.example", "env2.example/hub"]
        );
        assert_eq!(mirrors(&flags, ""), ["flag.example"]);
        assert_eq!(mirrors(&[], "only.example"), ["only.example"]);
    }
}
