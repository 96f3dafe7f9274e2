//! Registry options: kaniko's registry flags, and the per-host decisions derived from them.

use std::path::PathBuf;

use super::client_cert::ClientCertificate;
use super::reference::DOCKER_HUB;

/// kaniko's registry flags. The `*_pull` flags apply to pulls (base images); the plain ones to
/// pushes and to the existence checks and manifest lookups made around them (kaniko's layer
/// cache uses the push-side flags too). The per-registry lists apply to both directions.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `--insecure`: push over plain HTTP.
    pub insecure: bool,
    /// `--insecure-pull`: pull over plain HTTP.
    pub insecure_pull: bool,
    /// `--insecure-registry`: these registries are always plain HTTP.
    pub insecure_registries: Vec<String>,
    /// `--skip-tls-verify`: push (and, as in kaniko, pull) without verifying certificates.
    pub skip_tls_verify: bool,
    /// `--skip-tls-verify-pull`: pull without verifying certificates.
    pub skip_tls_verify_pull: bool,
    /// `--skip-tls-verify-registry`: never verify these registries' certificates.
    pub skip_tls_verify_registries: Vec<String>,
    /// `--registry-certificate host[:port]=/path/ca.pem`: extra trusted CAs, per registry.
    pub registry_certificates: Vec<(String, PathBuf)>,
    /// `--registry-client-cert host[:port]=cert.pem,key.pem`: the certificate a registry that
    /// requires mutual TLS gets, per registry (mirrors and the cache repository included).
    pub client_certificates: Vec<ClientCertificate>,
    /// `--registry-mirror host[/path]`: tried in order for Docker Hub images before Docker Hub.
    pub registry_mirrors: Vec<String>,
    /// `--registry-map`: `(registry, mirror)` pairs, in order (a registry may have several).
    pub registry_maps: Vec<(String, String)>,
    /// `--skip-default-registry-fallback`: with mirrors, a Docker Hub image none of them serves
    /// is an error instead of a pull from Docker Hub.
    pub skip_default_registry_fallback: bool,
    /// How many times a failed idempotent request (or a whole blob download/upload) is retried.
    pub retries: u32,
    /// The same for what is written (uploads, manifests, tags), when it differs from `retries`
    /// (`--push-retry` beside `--image-download-retry`).
    pub push_retries: Option<u32>,
    /// `--stall-timeout`: an attempt that moves no byte for this long (connecting, sending,
    /// waiting for the answer or reading it) fails and is retried; see `stall.rs`.
    pub stall_timeout: std::time::Duration,
    /// Directory holding `config.json`; else `$DOCKER_CONFIG`, `~/.docker`, `/kaniko/.docker`.
    pub docker_config: Option<PathBuf>,
    pub user_agent: String,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: false,
            insecure_pull: false,
            insecure_registries: Vec::new(),
            skip_tls_verify: false,
            skip_tls_verify_pull: false,
            skip_tls_verify_registries: Vec::new(),
            registry_certificates: Vec::new(),
            client_certificates: Vec::new(),
            registry_mirrors: Vec::new(),
            registry_maps: Vec::new(),
            skip_default_registry_fallback: false,
            retries: 3,
            push_retries: None,
            stall_timeout: super::stall::DEFAULT_STALL_TIMEOUT,
            docker_config: None,
            user_agent: format!("trowel/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Which side of kaniko's flags a request falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Pull,
    Push,
}

/// How to reach one registry host in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Protocol {
    /// HTTPS; `verify` false accepts any certificate.
    Https { verify: bool },
    /// Plain HTTP, by flag.
    Http,
    /// A loopback registry: HTTPS without verification if it speaks TLS, else plain HTTP.
    /// Decided by probing once, then cached.
    LoopbackProbe,
    /// A registry on a private address (RFC 1918, `*.local`): HTTPS (verified unless a flag
    /// says not to), else plain HTTP, as kaniko's registry client (go-containerregistry's
    /// `Registry.Scheme` and `ping`) reaches it: an in-house registry at `10.0.0.5:5000` that
    /// serves plain HTTP works there with no flag, so it does here.
    PrivateProbe { verify: bool },
}

impl RegistryOptions {
    /// How many times a failed request in direction `dir` is retried.
    pub fn retries_for(&self, dir: Direction) -> u32 {
        match dir {
            Direction::Pull => self.retries,
            Direction::Push => self.push_retries.unwrap_or(self.retries),
        }
    }

    /// The protocol the flags ask for, before any probing.
    pub(crate) fn protocol(&self, host: &str, dir: Direction) -> Protocol {
        let host = normalise_host(host);
        let listed = |list: &[String]| list.iter().any(|e| normalise_host(e) == host);
        let plain = listed(&self.insecure_registries)
            || match dir {
                Direction::Pull => self.insecure_pull,
                Direction::Push => self.insecure,
            };
        if plain {
            return Protocol::Http;
        }
        // kaniko (v1.19.2) reads `--skip-tls-verify` for every connection, pulls included, and
        // `--skip-tls-verify-pull` nowhere: a job that pulls its base from a self-signed registry
        // with only `--skip-tls-verify` works there, so it does here. `--skip-tls-verify-pull`
        // keeps its documented meaning, pulls only.
        let skip = listed(&self.skip_tls_verify_registries)
            || self.skip_tls_verify
            || (dir == Direction::Pull && self.skip_tls_verify_pull);
        let has_ca = self.registry_certificates.iter().any(|(h, _)| normalise_host(h) == host);
        if is_loopback(&host) && !has_ca {
            return Protocol::LoopbackProbe;
        }
        if is_private(&host) && !has_ca {
            return Protocol::PrivateProbe { verify: !skip };
        }
        Protocol::Https { verify: !skip }
    }

    /// The CA files configured for `host` (exact `host:port` match, or the bare host name).
    pub(crate) fn certificates_for(&self, host: &str) -> Vec<(String, PathBuf)> {
        let host = normalise_host(host);
        let bare = strip_port(&host);
        self.registry_certificates
            .iter()
            .filter(|(h, _)| {
                let h = normalise_host(h);
                h == host || h == bare
            })
            .cloned()
            .collect()
    }

    /// The mirrors of `registry`, in the order they are tried, as `(registry host, repository
    /// prefix)`: its `--registry-map` entries, then, for Docker Hub, `--registry-mirror`s
    /// (kaniko ≥ 1.21 adds the mirrors to the map after the map's own entries).
    pub(crate) fn mirrors_for(&self, registry: &str) -> Vec<(String, String)> {
        let registry = normalise_host(registry);
        let mapped = self.registry_maps.iter().filter(|(from, _)| normalise_host(from) == registry).map(|(_, to)| to);
        let hub = self.registry_mirrors.iter().filter(|_| registry == DOCKER_HUB);
        Self::parse_mirrors(mapped.chain(hub))
    }

    /// Mirrors as `(registry host, repository prefix)`, e.g. `mirror.gcr.io` → `("mirror.gcr.io", "")`.
    fn parse_mirrors<'a>(mirrors: impl Iterator<Item = &'a String>) -> Vec<(String, String)> {
        mirrors
            .map(|m| {
                let m = m.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
                match m.split_once('/') {
                    Some((h, p)) => (h.to_string(), p.trim_matches('/').to_string()),
                    None => (m.to_string(), String::new()),
                }
            })
            .filter(|(h, _)| !h.is_empty())
            .collect()
    }
}

/// `https://docker.io/` → `index.docker.io`; flag values may carry a scheme or a trailing slash.
pub(crate) fn normalise_host(h: &str) -> String {
    let h = h.trim_start_matches("https://").trim_start_matches("http://");
    let h = h.split('/').next().unwrap_or(h);
    match h {
        "docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        _ => h.to_string(),
    }
}

pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// `localhost`, `127.0.0.0/8` and `::1`: Docker's always-insecure registries.
pub(crate) fn is_loopback(host: &str) -> bool {
    let h = strip_port(host);
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `host` is one kaniko's registry client also tries over plain HTTP: an RFC 1918
/// address (10/8, 172.16/12, 192.168/16) or a name ending `.local` or `.localhost`
/// (go-containerregistry's `isRFC1918` and `reLocal`). Loopback is [`is_loopback`]'s.
pub(crate) fn is_private(host: &str) -> bool {
    let h = strip_port(host);
    if let Ok(std::net::IpAddr::V4(ip)) = h.parse::<std::net::IpAddr>() {
        return ip.is_private();
    }
    let lower = h.to_ascii_lowercase();
    lower.ends_with(".local") || lower.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_hosts() {
        for h in [
            "10.0.0.5:5000",
            "172.16.1.1",
            "172.31.255.255:443",
            "192.168.1.50:5000",
            "reg.local",
            "h4reg.local:5000",
            "x.localhost:80",
        ] {
            assert!(is_private(h), "{h}");
        }
        for h in [
            "172.32.0.1:5000",
            "8.8.8.8",
            "registry.example.com",
            "localhost:5000",
            "127.0.0.1:5000",
            "local.example.com",
        ] {
            assert!(!is_private(h), "{h}");
        }
        let d = RegistryOptions::default();
        assert_eq!(d.protocol("10.1.2.3:5000", Direction::Push), Protocol::PrivateProbe { verify: true });
        let skip = RegistryOptions { skip_tls_verify: true, ..Default::default() };
        assert_eq!(skip.protocol("reg.local:5000", Direction::Pull), Protocol::PrivateProbe { verify: false });
        let plain = RegistryOptions { insecure_registries: vec!["10.1.2.3:5000".into()], ..Default::default() };
        assert_eq!(plain.protocol("10.1.2.3:5000", Direction::Push), Protocol::Http);
        let ca = RegistryOptions {
            registry_certificates: vec![("10.1.2.3:5000".into(), "/ca.pem".into())],
            ..Default::default()
        };
        assert_eq!(ca.protocol("10.1.2.3:5000", Direction::Push), Protocol::Https { verify: true });
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["registry.trowel.test:5000", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn protocol_per_direction() {
        let o = RegistryOptions {
            insecure_pull: true,
            skip_tls_verify: true,
            insecure_registries: vec!["plain.example:5000".into()],
            skip_tls_verify_registries: vec!["https://docker.io/".into()],
            ..Default::default()
        };
        assert_eq!(o.protocol("reg.example", Direction::Pull), Protocol::Http);
        assert_eq!(o.protocol("reg.example", Direction::Push), Protocol::Https { verify: false });
        assert_eq!(o.protocol("plain.example:5000", Direction::Push), Protocol::Http);
        let d = RegistryOptions::default();
        assert_eq!(d.protocol("reg.example", Direction::Push), Protocol::Https { verify: true });
        assert_eq!(d.protocol("127.0.0.1:5000", Direction::Pull), Protocol::LoopbackProbe);
        let pull_only = RegistryOptions { skip_tls_verify_pull: true, ..Default::default() };
        assert_eq!(pull_only.protocol("reg.example", Direction::Pull), Protocol::Https { verify: false });
        assert_eq!(pull_only.protocol("reg.example", Direction::Push), Protocol::Https { verify: true });
        let both = RegistryOptions { skip_tls_verify: true, ..Default::default() };
        assert_eq!(both.protocol("reg.example", Direction::Pull), Protocol::Https { verify: false });
        let hub = RegistryOptions { skip_tls_verify_registries: vec!["docker.io".into()], ..Default::default() };
        assert_eq!(hub.protocol(DOCKER_HUB, Direction::Pull), Protocol::Https { verify: false });
    }

    #[test]
    fn certificates_and_mirrors() {
        let o = RegistryOptions {
            registry_certificates: vec![
                ("reg.example".into(), "/a.pem".into()),
                ("other:5000".into(), "/b.pem".into()),
            ],
            registry_mirrors: vec!["mirror.gcr.io".into(), "https://m.example/hub/".into()],
            ..Default::default()
        };
        assert_eq!(o.certificates_for("reg.example:443").len(), 1);
        assert_eq!(o.certificates_for("other:5000").len(), 1);
        assert_eq!(o.certificates_for("other:6000").len(), 0);
        assert_eq!(
            o.mirrors_for("docker.io"),
            vec![("mirror.gcr.io".to_string(), String::new()), ("m.example".to_string(), "hub".to_string())]
        );
        assert!(o.mirrors_for("ghcr.io").is_empty());
        // --registry-map: any registry, its own entries first, Docker Hub's by either name.
        let m = RegistryOptions {
            registry_mirrors: vec!["mirror.gcr.io".into()],
            registry_maps: vec![
                ("docker.io".into(), "harbor.example/hub".into()),
                ("ghcr.io".into(), "m2.example".into()),
            ],
            ..Default::default()
        };
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(m.mirrors_for(DOCKER_HUB), [s("harbor.example", "hub"), s("mirror.gcr.io", "")]);
        assert_eq!(m.mirrors_for("ghcr.io"), [s("m2.example", "")]);
        assert!(m.mirrors_for("quay.io").is_empty());
    }
}
