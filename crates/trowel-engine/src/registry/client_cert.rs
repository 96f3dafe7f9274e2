//! Client certificates for registries that require mutual TLS (kaniko's
//! `--registry-client-cert REGISTRY=CERTFILE,KEYFILE`): parsing the flag's value, loading and
//! checking the files, and choosing which one a host gets.
//!
//! The files are checked when the registry client is made, before anything is pulled: a path
//! that does not exist, a file that holds no certificate or no usable private key, an encrypted
//! key, or a key that is not the certificate's are each an error naming the registry and the
//! file. A key's bytes never reach a message: errors name the path, never the content.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::RegistryError;
use super::options::{normalise_host, strip_port};

/// One `--registry-client-cert` value: the registry it is for, the certificate (a PEM file,
/// the client's certificate first, then any intermediates) and its private key (PEM: PKCS#8,
/// PKCS#1 or SEC1, unencrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// `host[:port]` as given (a scheme or trailing slash is dropped when matching).
    pub registry: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ClientCertificate {
    /// Parses kaniko's `REGISTRY=CERTFILE,KEYFILE`.
    pub fn parse(value: &str) -> Result<ClientCertificate, String> {
        let usage = || {
            format!(
                "invalid --registry-client-cert {value:?}: expected REGISTRY=CERTFILE,KEYFILE (e.g. registry.example.com=/certs/client.pem,/certs/client.key)"
            )
        };
        let (registry, files) = value.split_once('=').ok_or_else(usage)?;
        let registry = registry.trim();
        let (cert, key) = files.split_once(',').ok_or_else(usage)?;
        if registry.is_empty() || cert.trim().is_empty() || key.trim().is_empty() || key.contains(',') {
            return Err(usage());
        }
        Ok(ClientCertificate { registry: registry.to_string(), cert: cert.trim().into(), key: key.trim().into() })
    }

    /// Reads both files and checks that they make one identity: at least one certificate, one
    /// private key rustls can sign with, and that key's public half in the first certificate.
    /// Returns what reqwest takes (re-encoded from the parsed parts, so nothing else the files
    /// hold, such as EC parameters, reaches it).
    pub(crate) fn load(&self) -> Result<reqwest::Identity, RegistryError> {
        let err = |path: &Path, reason: String| RegistryError::ClientCertificate {
            registry: self.registry.clone(),
            path: path.to_path_buf(),
            reason,
        };
        let cert_pem = std::fs::read(&self.cert).map_err(|e| err(&self.cert, e.to_string()))?;
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| err(&self.cert, format!("not a PEM certificate file: {e}")))?;
        if certs.is_empty() {
            return Err(err(&self.cert, "no certificate in the file (expected a PEM \"CERTIFICATE\" block)".into()));
        }
        let key_pem = std::fs::read(&self.key).map_err(|e| err(&self.key, e.to_string()))?;
        let key = private_key(&key_pem).map_err(|reason| err(&self.key, reason))?;
        let provider = rustls::crypto::ring::default_provider();
        let key_der = key.clone_key();
        rustls::sign::CertifiedKey::from_der(certs.clone(), key_der, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                err(&self.key, format!("this private key is not the key of the certificate {}", self.cert.display()))
            }
            other => err(&self.key, format!("unusable private key: {other}")),
        })?;
        let mut pem = String::new();
        for c in &certs {
            push_pem(&mut pem, "CERTIFICATE", c.as_ref());
        }
        let label = match &key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        push_pem(&mut pem, label, key.secret_der());
        // The re-encoded key lives in `pem` until this returns; it is never logged, and reqwest's
        // error (which could quote it) is not kept.
        reqwest::Identity::from_pem(pem.as_bytes())
            .map_err(|_| err(&self.key, "the certificate and key could not be combined".into()))
    }

    /// Whether this certificate is for `host` (a reference's registry, `host[:port]`): the same
    /// `host:port`, or an entry without a port for any port of that host, as
    /// `--registry-certificate` is matched. Port 443 is the port of a host given without one.
    fn exact(&self, host: &str) -> bool {
        without_default_port(&normalise_host(&self.registry)) == without_default_port(&normalise_host(host))
    }

    fn bare(&self, host: &str) -> bool {
        let entry = normalise_host(&self.registry);
        strip_port(&entry) == entry && entry == strip_port(&normalise_host(host))
    }
}

/// The client certificate `host` gets: an entry naming its `host:port` wins over one naming the
/// bare host.
pub(crate) fn for_host<'a>(all: &'a [ClientCertificate], host: &str) -> Option<&'a ClientCertificate> {
    all.iter().find(|c| c.exact(host)).or_else(|| all.iter().find(|c| c.bare(host)))
}

/// Checks every entry (each file, each pair) and that no registry is given twice.
pub(crate) fn check_all(all: &[ClientCertificate]) -> Result<(), RegistryError> {
    for (i, c) in all.iter().enumerate() {
        if let Some(earlier) = all[..i].iter().find(|e| {
            without_default_port(&normalise_host(&e.registry)) == without_default_port(&normalise_host(&c.registry))
        }) {
            return Err(RegistryError::Options(format!(
                "--registry-client-cert: {} is given twice ({} and {})",
                c.registry,
                earlier.cert.display(),
                c.cert.display()
            )));
        }
        c.load()?;
    }
    Ok(())
}

fn without_default_port(host: &str) -> &str {
    host.strip_suffix(":443").unwrap_or(host)
}

/// The one private key in a PEM file, or why there is none usable.
fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    let mut keys = Vec::new();
    for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(pem) {
        let (kind, der) = section.map_err(|e| format!("not a PEM key file: {e}"))?;
        match kind {
            SectionKind::PrivateKey => keys.push(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::RsaPrivateKey => keys.push(PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::EcPrivateKey => keys.push(PrivateKeyDer::Sec1(der.into())),
            _ => {}
        }
    }
    if keys.len() > 1 {
        return Err("more than one private key in the file".into());
    }
    if let Some(k) = keys.pop() {
        return Ok(k);
    }
    if String::from_utf8_lossy(pem).contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err("the private key is encrypted: give an unencrypted key (e.g. `openssl pkey -in KEY -out PLAIN`), as kaniko requires too".into());
    }
    Err("no private key in the file (expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block)"
        .into())
}

fn push_pem(out: &mut String, label: &str, der: &[u8]) {
    out.push_str(&format!("-----BEGIN {label}-----\n"));
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(registry: &str) -> ClientCertificate {
        ClientCertificate { registry: registry.into(), cert: "/c".into(), key: "/k".into() }
    }

    #[test]
    fn parses_kaniko_values() {
        assert_eq!(
            ClientCertificate::parse("reg.example:5000=/certs/c.pem,/certs/c.key").unwrap(),
            ClientCertificate {
                registry: "reg.example:5000".into(),
                cert: "/certs/c.pem".into(),
                key: "/certs/c.key".into()
            }
        );
        for bad in ["reg.example", "reg.example=/c.pem", "=/c,/k", "r=/c,", "r=,/k", "r=/c,/k,/x"] {
            let e = ClientCertificate::parse(bad).unwrap_err();
            assert!(e.contains("REGISTRY=CERTFILE,KEYFILE") && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn host_matching() {
        let all = vec![cc("reg.example"), cc("reg.example:5000"), cc("https://docker.io/"), cc("other:443")];
        let pick = |h: &str| for_host(&all, h).map(|c| c.registry.clone());
        assert_eq!(pick("reg.example:5000").as_deref(), Some("reg.example:5000"));
        assert_eq!(pick("reg.example:6000").as_deref(), Some("reg.example"));
        assert_eq!(pick("reg.example").as_deref(), Some("reg.example"));
        assert_eq!(pick("index.docker.io").as_deref(), Some("https://docker.io/"));
        assert_eq!(pick("other").as_deref(), Some("other:443"));
        assert_eq!(pick("other:5000"), None);
        assert_eq!(pick("reg.example.org"), None);
    }

    #[test]
    fn keys_are_found_or_refused_with_reasons() {
        assert!(
            private_key(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .unwrap_err()
                .contains("no private key")
        );
        let enc = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(private_key(enc).unwrap_err().contains("encrypted"));
        let two = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(private_key(two).unwrap_err().contains("more than one"));
    }
}
