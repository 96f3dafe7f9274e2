//! The signed assertion a Google service account key is exchanged with for an access token
//! (OAuth 2.0's JWT bearer grant, RFC 7523, as Google documents it for service accounts): a JWT
//! signed RS256 with the key's `private_key` by `ring`, the crypto rustls already brings.
//!
//! The key is read from PEM (PKCS#8 `PRIVATE KEY`, what Google issues; PKCS#1 `RSA PRIVATE KEY`
//! too), and a bad key is an error that says what is wrong with it, never a part of it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Read-only access to Cloud Storage: all a context needs (a registry login asks for its own).
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_only";

/// An RSA private key from a service account key file.
pub(crate) struct SigningKey(ring::signature::RsaKeyPair);

impl SigningKey {
    /// The key in `pem`; the error names what is wrong (never the key's bytes).
    pub(crate) fn from_pem(pem: &str) -> Result<SigningKey, String> {
        let label = |l: &str| pem.contains(&format!("-----BEGIN {l}-----"));
        let pkcs8 = label("PRIVATE KEY");
        if !pkcs8 && !label("RSA PRIVATE KEY") {
            return Err("its private_key is not a PEM private key (-----BEGIN PRIVATE KEY-----)".into());
        }
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| "its private_key's PEM body is not valid base64".to_string())?;
        let key = if pkcs8 {
            ring::signature::RsaKeyPair::from_pkcs8(&der)
        } else {
            ring::signature::RsaKeyPair::from_der(&der)
        };
        key.map(SigningKey).map_err(|e| format!("its private_key is not a usable RSA key ({e})"))
    }

    /// The assertion `iss` signs for `aud` (the token endpoint) asking for `scope`, valid from
    /// `now` (Unix seconds) for an hour, Google's maximum.
    pub(crate) fn assertion(
        &self,
        key_id: Option<&str>,
        iss: &str,
        aud: &str,
        scope: &str,
        now: u64,
    ) -> Result<String, String> {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = key_id {
            header["kid"] = kid.into();
        }
        let claims = serde_json::json!({
            "iss": iss,
            "scope": scope,
            "aud": aud,
            "iat": now,
            "exp": now + 3600,
        });
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut sig = vec![0u8; self.0.public().modulus_len()];
        self.0
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "signing the token request with the private_key failed".to_string())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// The public key (DER, PKCS#1), for checking a signature.
    #[cfg(test)]
    fn public_der(&self) -> Vec<u8> {
        use ring::signature::KeyPair as _;
        self.0.public_key().as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2048-bit key made by openssl, as the integration tests make theirs.
    fn openssl_key() -> String {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("k.pem");
        let st = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
            .arg(&out)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (scripts/install-deps.sh installs it)");
        assert!(st.success());
        std::fs::read_to_string(out).unwrap()
    }

    #[test]
    fn an_assertion_verifies_with_the_public_key_and_says_what_google_reads() {
        let key = SigningKey::from_pem(&openssl_key()).unwrap();
        let jwt = key.assertion(Some("kid1"), "sa@p.iam.gserviceaccount.com", "https://t/token", SCOPE, 1000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "kid1"}));
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "sa@p.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "https://t/token");
        assert_eq!((claims["iat"].as_u64(), claims["exp"].as_u64()), (Some(1000), Some(4600)));
        assert_eq!(claims["scope"], SCOPE);
        let public =
            ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key.public_der());
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).expect("a valid RS256 signature");
        assert!(public.verify(b"other", &sig).is_err());
    }

    #[test]
    fn bad_keys_say_what_is_wrong_without_the_key() {
        assert!(SigningKey::from_pem("nope").err().unwrap().contains("not a PEM private key"));
        let e = SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n").err().unwrap();
        assert!(e.contains("not valid base64"), "{e}");
        let e = SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nc2VjcmV0Ynl0ZXM=\n-----END PRIVATE KEY-----\n")
            .err()
            .unwrap();
        assert!(e.contains("not a usable RSA key") && !e.contains("c2VjcmV0"), "{e}");
    }
}
