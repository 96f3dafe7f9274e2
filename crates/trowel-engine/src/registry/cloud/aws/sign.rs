//! AWS Signature Version 4, by hand (HMAC-SHA256 from `ring`, already in the tree through
//! rustls): what an S3 GET and an ECR token request need, and nothing of the SDK's machinery
//! (see `engine/remote_context/s3/mod.rs` for why not the AWS SDK). Checked against AWS's published examples: the SigV4 test suite's `get-vanilla`
//! family and the S3 documentation's worked examples (tests below).
//!
//! The canonical request is made from the very path, query and headers the request is sent
//! with, so what is signed is what goes on the wire: the caller builds its URL from
//! [`uri_encode`]d parts and hands the same parts here.

use crate::registry::cloud::http::percent_encoded;
use ring::{digest, hmac};

/// `sha256("")`, hex: the payload hash of a request without a body.
pub(crate) const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The keys a request is signed with.
#[derive(Clone)]
pub(crate) struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// A temporary credential's token (`AWS_SESSION_TOKEN`, STS, container credentials): sent
    /// as `x-amz-security-token`, and signed.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Keys {
    /// Never the secret nor the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// One request to sign.
pub(crate) struct Signing<'a> {
    pub method: &'a str,
    /// The path as sent: already [`uri_encode`]d (S3 signs it as it is, without encoding it
    /// again, unlike the other services).
    pub path: &'a str,
    /// The query's parameters, not encoded.
    pub query: &'a [(String, String)],
    /// Every header that is signed (`host` among them), any case.
    pub headers: &'a [(String, String)],
    /// Hex sha256 of the body, or `UNSIGNED-PAYLOAD`.
    pub payload_hash: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ`, as sent in `x-amz-date`.
    pub amz_date: &'a str,
}

/// The `Authorization` header's value for `req` signed with `keys`.
pub(crate) fn authorization(keys: &Keys, req: &Signing<'_>) -> String {
    let (signed_headers, signature) = signature(keys, req);
    let date = &req.amz_date[..8.min(req.amz_date.len())];
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{date}/{}/{}/aws4_request, SignedHeaders={signed_headers}, Signature={signature}",
        keys.access_key_id, req.region, req.service
    )
}

/// The signed headers' list and the hex signature.
fn signature(keys: &Keys, req: &Signing<'_>) -> (String, String) {
    let (canonical, signed_headers) = canonical_request(req);
    let date = &req.amz_date[..8.min(req.amz_date.len())];
    let scope = format!("{date}/{}/{}/aws4_request", req.region, req.service);
    let to_sign = format!("AWS4-HMAC-SHA256\n{}\n{scope}\n{}", req.amz_date, sha256_hex(canonical.as_bytes()));
    let mut key = hmac_sha256(format!("AWS4{}", keys.secret_access_key).as_bytes(), date.as_bytes());
    for part in [req.region, req.service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    (signed_headers, hex::encode(hmac_sha256(&key, to_sign.as_bytes())))
}

/// The canonical request and the signed headers' list.
fn canonical_request(req: &Signing<'_>) -> (String, String) {
    let mut query: Vec<(String, String)> =
        req.query.iter().map(|(k, v)| (uri_encode(k, true), uri_encode(v, true))).collect();
    query.sort();
    let query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        // Values trimmed, inner runs of spaces made one, as the specification says.
        .map(|(k, v)| (k.to_ascii_lowercase(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let path = if req.path.is_empty() { "/" } else { req.path };
    let canonical = format!("{}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{}", req.method, req.payload_hash);
    (canonical, signed)
}

/// AWS's URI encoding: every byte but the unreserved characters (`A-Z a-z 0-9 - _ . ~`) as
/// `%XX`, uppercase; `/` kept when `slash` is false (an object key's separators).
pub(crate) fn uri_encode(s: &str, slash: bool) -> String {
    // SigV4's unreserved set is that of every form and path segment the contexts encode.
    if slash { percent_encoded(s) } else { s.split('/').map(percent_encoded).collect::<Vec<_>>().join("/") }
}

pub(crate) fn sha256_hex(b: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, b))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SigV4 test suite's credentials, region, service and time.
    fn suite_keys() -> Keys {
        Keys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn suite(method: &str, path: &str, query: &[(&str, &str)], extra: &[(&str, &str)], payload: &str) -> String {
        let mut headers = h(&[("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")]);
        headers.extend(h(extra));
        let req = Signing {
            method,
            path,
            query: &h(query),
            headers: &headers,
            payload_hash: payload,
            region: "us-east-1",
            service: "service",
            amz_date: "20150830T123600Z",
        };
        authorization(&suite_keys(), &req)
    }

    #[test]
    fn the_sigv4_test_suite() {
        let prefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                      SignedHeaders=host;x-amz-date, Signature=";
        // get-vanilla
        assert_eq!(
            suite("GET", "/", &[], &[], EMPTY_SHA256),
            format!("{prefix}5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        );
        // get-vanilla-query-order-key-case: the parameters are sorted before signing.
        assert_eq!(
            suite("GET", "/", &[("Param2", "value2"), ("Param1", "value1")], &[], EMPTY_SHA256),
            format!("{prefix}b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
        );
        // post-vanilla
        assert_eq!(
            suite("POST", "/", &[], &[], EMPTY_SHA256),
            format!("{prefix}5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
        );
        // get-utf8: the path as sent, encoded.
        assert!(
            suite("GET", &format!("/{}", uri_encode("ሴ", false)), &[], &[], EMPTY_SHA256)
                .ends_with("8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85")
        );
    }

    /// The S3 documentation's examples ("Signature Calculations for the Authorization Header").
    fn s3_doc(method: &str, path: &str, query: &[(&str, &str)], extra: &[(&str, &str)], payload: &str) -> String {
        let keys = Keys {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let mut headers = h(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", payload),
        ]);
        headers.extend(h(extra));
        let req = Signing {
            method,
            path,
            query: &h(query),
            headers: &headers,
            payload_hash: payload,
            region: "us-east-1",
            service: "s3",
            amz_date: "20130524T000000Z",
        };
        authorization(&keys, &req)
    }

    #[test]
    fn the_s3_documentation_examples() {
        // GET Object, with a Range header.
        let a = s3_doc("GET", "/test.txt", &[], &[("Range", "bytes=0-9")], EMPTY_SHA256);
        assert_eq!(
            a,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        // PUT Object: a key that needs encoding (`$`), a body's hash.
        let body = sha256_hex(b"Welcome to Amazon S3.");
        assert_eq!(body, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
        let a = s3_doc(
            "PUT",
            &format!("/{}", uri_encode("test$file.text", false)),
            &[],
            &[("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            &body,
        );
        assert!(a.contains("SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class"), "{a}");
        assert!(a.ends_with("98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"), "{a}");
        // GET Bucket lifecycle: a parameter without a value.
        assert!(
            s3_doc("GET", "/", &[("lifecycle", "")], &[], EMPTY_SHA256)
                .ends_with("fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
        );
        // GET Bucket (list objects): parameters sorted.
        assert!(
            s3_doc("GET", "/", &[("prefix", "J"), ("max-keys", "2")], &[], EMPTY_SHA256)
                .ends_with("34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
        );
    }

    #[test]
    fn encoding_and_a_secret_that_is_never_shown() {
        assert_eq!(uri_encode("a b/c+d~_.-", false), "a%20b/c%2Bd~_.-");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert_eq!(uri_encode("é", false), "%C3%A9");
        let k = suite_keys();
        assert!(!format!("{k:?}").contains("EXAMPLEKEY"));
        assert!(!suite("GET", "/", &[], &[], EMPTY_SHA256).contains("EXAMPLEKEY"));
    }
}
