//! `trowel login` and `trowel logout`'s flags: `docker login`'s (`-u`, `-p`,
//! `--password-stdin`), and how to reach the registry for the check (the registry flags'
//! names).

use std::path::PathBuf;

use clap::Args;

use trowel_engine::registry::RegistryOptions;

use super::{CliError, parse_kv};

#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// The registry, host[:port] (docker.io, or nothing, for Docker Hub).
    #[arg(default_value = "docker.io")]
    pub server: String,
    /// Username.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password or token (visible to every process on the machine: prefer --password-stdin).
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Read the password or token from standard input (one trailing newline dropped).
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
    /// Directory of the config.json to write (default: the one builds read: $DOCKER_CONFIG,
    /// ~/.docker, /trowel/.docker or /kaniko/.docker, whichever has one, else $DOCKER_CONFIG or
    /// ~/.docker).
    #[arg(long)]
    pub docker_config: Option<PathBuf>,
    /// Reach the registry over plain HTTP (repeatable).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Do not verify this registry's TLS certificate (repeatable).
    #[arg(long = "skip-tls-verify-registry")]
    pub skip_tls_verify_registries: Vec<String>,
    /// CA certificate for a registry: `host[:port]=/path/ca.pem` (repeatable).
    #[arg(long = "registry-certificate")]
    pub registry_certificates: Vec<String>,
}

impl LoginArgs {
    /// How to reach the registry for the check.
    pub fn registry_options(&self) -> Result<RegistryOptions, CliError> {
        let registry_certificates = parse_kv("registry-certificate", &self.registry_certificates)?
            .into_iter()
            .map(|(h, p)| (h, PathBuf::from(p)))
            .collect();
        Ok(RegistryOptions {
            insecure_registries: self.insecure_registries.clone(),
            skip_tls_verify_registries: self.skip_tls_verify_registries.clone(),
            registry_certificates,
            docker_config: self.docker_config.clone(),
            ..RegistryOptions::default()
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct LogoutArgs {
    /// The registry, host[:port] (docker.io, or nothing, for Docker Hub).
    #[arg(default_value = "docker.io")]
    pub server: String,
    /// Directory of the config.json to change (default: as for `trowel login`).
    #[arg(long)]
    pub docker_config: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::super::{Command, parse};

    #[test]
    fn docker_login_flags() {
        let Command::Login(l) = parse(&["trowel", "login", "reg.example:5000", "-u", "me", "--password-stdin"]).command
        else {
            panic!("not login")
        };
        assert_eq!(
            (l.server.as_str(), l.username.as_deref(), l.password_stdin),
            ("reg.example:5000", Some("me"), true)
        );
        let Command::Login(l) = parse(&["trowel", "login", "-u", "me", "-p", "pw"]).command else {
            panic!("not login")
        };
        assert_eq!((l.server.as_str(), l.password.as_deref()), ("docker.io", Some("pw")));
        let both = ["trowel", "login", "r", "-u", "me", "-p", "pw", "--password-stdin"];
        assert!(<super::super::Cli as clap::Parser>::try_parse_from(both).is_err());
        let Command::Logout(l) = parse(&["trowel", "logout", "r.example"]).command else { panic!("not logout") };
        assert_eq!(l.server, "r.example");
    }
}
