//! `s3://BUCKET/KEY`: an archive in Amazon S3 or an S3-compatible store (MinIO, Ceph, moto…),
//! with kaniko's environment (`pkg/buildcontext/s3.go`): the AWS SDK's credential chain
//! (`credentials.rs`, `profile.rs`), `S3_ENDPOINT` (with or without a scheme: https when none)
//! and `S3_FORCE_PATH_STYLE`; also `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` and
//! `AWS_CA_BUNDLE`, as the SDKs read them. The object is fetched with one signed GET
//! (`sign.rs`) and unpacked as it arrives (`tar.rs`): it is never stored whole.
//!
//! Why SigV4 by hand over `http.rs` rather than the AWS SDK for Rust (aws-config +
//! aws-sdk-s3): a download needs one GET and, for IRSA, one STS request; the SDK (aws-config
//! 1.13, aws-sdk-s3 1.157) resolves to 189 crates, 74 of them new to this tree (its smithy
//! runtime, hyper 0.14 beside hyper 1, rustls 0.21 beside 0.23, aws-lc-sys, a C and cmake build
//! this project keeps out: see the workspace's `Cargo.toml`), on a 2-core build, for a chain of
//! which trowel uses four links. The signer is ~100 lines checked against
//! AWS's published examples; the chain follows the SDK for Go v2's order, which is what kaniko
//! users have.
//!
//! Addressing: virtual-hosted (`BUCKET.HOST/KEY`) as the SDKs do, path style
//! (`HOST/BUCKET/KEY`) when `S3_FORCE_PATH_STYLE=true`, when the endpoint is an IP address
//! (no name to prefix) and when the bucket's name cannot be a host name (upper case,
//! underscores, dots over https). The region signs the request: `AWS_REGION`,
//! `AWS_DEFAULT_REGION`, the profile's `region`, else `us-east-1`; when S3 answers that the
//! bucket lives elsewhere (`x-amz-bucket-region`), the request is made once more there.

use std::path::{Path, PathBuf};

use super::{ContextError, ContextKind, ContextOrigin, FetchOptions, ObjectSource, tar};
use crate::registry::cloud::http::{Client, ClientOptions, Request, Response};

use crate::registry::cloud::aws::{credentials, one_line, profile, sign, xml_text};
use credentials::{Credentials, Origin};
use sign::{EMPTY_SHA256, Signing, uri_encode};

pub(super) fn fetch(
    src: &ObjectSource,
    dir: &Path,
    opts: &FetchOptions<'_>,
) -> Result<(ContextOrigin, Vec<String>), ContextError> {
    let shown = src.shown.clone();
    let invalid = |reason: String| ContextError::Invalid { source_: shown.clone(), reason };
    let env = opts.env;
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    check_key(&src.key).map_err(invalid)?;
    let profile = profile::load(env).map_err(invalid)?;
    let configured_region =
        var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).or_else(|| profile.get("region").map(str::to_string));
    if let Some(r) = configured_region.as_deref().filter(|r| !is_region(r)) {
        return Err(invalid(format!(
            "the region {r:?} (AWS_REGION, AWS_DEFAULT_REGION or the profile's region) is not a region's name"
        )));
    }
    let endpoint = Endpoint::from_env(env).map_err(invalid)?;
    let force_path = var("S3_FORCE_PATH_STYLE").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let client = Client::new(&ClientOptions {
        ca_file: var("AWS_CA_BUNDLE").map(PathBuf::from),
        insecure: false,
        stall_timeout: opts.stall_timeout,
        cancel: opts.cancel(),
    })
    .map_err(|source| ContextError::Http {
        source_: shown.clone(),
        what: "make an HTTP client".into(),
        source,
    })?;
    let mut secrets = Vec::new();
    let creds =
        credentials::resolve(env, &profile, configured_region.as_deref(), &client, &mut secrets).map_err(invalid)?;
    let mut region = configured_region.clone().unwrap_or_else(|| "us-east-1".into());
    let mut moved = false;
    loop {
        let target = endpoint.target(&src.bucket, &src.key, &region, force_path);
        let resp = client.send(&|| Ok(signed_get(&target, &region, &creds))).map_err(|source| {
            let what = format!("download from {}{}", target.shown_base, target.style_hint(&endpoint));
            ContextError::Http { source_: shown.clone(), what, source }
        })?;
        if resp.is_success() {
            let raw = Box::new(resp.into_reader());
            let origin = tar::unpack_archive(raw, ContextKind::S3, dir, &shown, opts)?;
            return Ok((origin, secrets));
        }
        // The bucket is in another region: S3 says which; sign for it once more.
        // Only a region's shape is taken: it becomes part of a host name on AWS.
        let elsewhere = header(&resp, "x-amz-bucket-region").filter(|r| *r != region && is_region(r));
        if let Some(r) = elsewhere
            && !moved
            && matches!(resp.status, 301 | 307 | 400)
        {
            region = r;
            moved = true;
            continue;
        }
        return Err(invalid(explain(resp, src, &target, &creds.origin, configured_region.is_some())));
    }
}

/// An object key the URL parser would rewrite (a `.` or `..` segment) cannot be signed as
/// sent: refused up front.
fn check_key(key: &str) -> Result<(), String> {
    if key.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("the object key {key:?} has a \".\" or \"..\" segment, which an HTTP URL cannot carry"));
    }
    Ok(())
}

/// Where the store is.
#[derive(Debug)]
struct Endpoint {
    scheme: String,
    host: String,
    port: Option<u16>,
    /// A path prefix of the endpoint (`http://host/s3`), without its trailing `/`.
    base: String,
    /// `S3_ENDPOINT` or an `AWS_ENDPOINT_URL*` names it (not AWS's own regional endpoint).
    custom: Option<&'static str>,
}

/// One request's address.
#[derive(Debug)]
struct Target {
    url: String,
    /// The `Host` header the client sends (and that is signed).
    host: String,
    /// The path as sent, encoded.
    path: String,
    /// Scheme and host, for messages.
    shown_base: String,
    virtual_hosted: bool,
}

impl Target {
    /// After a transport failure of a virtual-hosted request to a custom endpoint: the likely
    /// cure.
    fn style_hint(&self, e: &Endpoint) -> String {
        match (self.virtual_hosted, e.custom) {
            (true, Some(var)) => format!(
                " (virtual-hosted style, the bucket in the host name as the SDKs address it; a store named by {var} \
                 without wildcard DNS needs S3_FORCE_PATH_STYLE=true)"
            ),
            _ => String::new(),
        }
    }
}

impl Endpoint {
    /// `S3_ENDPOINT` (kaniko's), else `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (the
    /// SDKs'), else AWS itself. A value without a scheme is https, as the AWS SDK for Go took it.
    fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Endpoint, String> {
        let var = |k: &'static str| env(k).filter(|v| !v.trim().is_empty()).map(|v| (k, v.trim().to_string()));
        let Some((name, value)) =
            var("S3_ENDPOINT").or_else(|| var("AWS_ENDPOINT_URL_S3")).or_else(|| var("AWS_ENDPOINT_URL"))
        else {
            return Ok(Endpoint {
                scheme: "https".into(),
                host: String::new(),
                port: None,
                base: String::new(),
                custom: None,
            });
        };
        let with_scheme = if value.contains("://") { value.clone() } else { format!("https://{value}") };
        let u = reqwest::Url::parse(&with_scheme).map_err(|e| format!("{name}={value:?} is not a URL: {e}"))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(format!("{name}={value:?}: expected http(s)://HOST[:PORT]"));
        }
        if u.query().is_some() || !u.username().is_empty() {
            return Err(format!("{name}: an endpoint takes no query or credentials"));
        }
        Ok(Endpoint {
            scheme: u.scheme().into(),
            host: u.host_str().unwrap_or_default().to_string(),
            port: u.port(),
            base: u.path().trim_end_matches('/').to_string(),
            custom: Some(name),
        })
    }

    fn target(&self, bucket: &str, key: &str, region: &str, force_path: bool) -> Target {
        let host = if self.custom.is_some() {
            self.host.clone()
        } else if region.starts_with("cn-") {
            format!("s3.{region}.amazonaws.com.cn")
        } else {
            format!("s3.{region}.amazonaws.com")
        };
        let authority = match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok();
        let virtual_hosted = !force_path && !ip && dns_bucket(bucket, self.scheme == "https");
        let key = uri_encode(key, false);
        let (host, path) = if virtual_hosted {
            (format!("{bucket}.{authority}"), format!("{}/{key}", self.base))
        } else {
            (authority, format!("{}/{}/{key}", self.base, uri_encode(bucket, true)))
        };
        Target {
            url: format!("{}://{host}{path}", self.scheme),
            shown_base: format!("{}://{host}", self.scheme),
            host,
            path,
            virtual_hosted,
        }
    }
}

/// Whether a bucket's name can be a host name's first label(s): S3's rules for
/// virtual-hosted addressing (lower case, digits, `-`, and `.` but not over https, where the
/// wildcard certificate covers one label only).
fn dns_bucket(bucket: &str, https: bool) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !bucket.contains("..")
        && !(https && bucket.contains('.'))
        && bucket.parse::<std::net::Ipv4Addr>().is_err()
}

/// The GET, signed now (each attempt signs afresh: the signature holds the time).
fn signed_get(t: &Target, region: &str, creds: &Credentials) -> Request {
    let mut r = Request::get(t.url.clone());
    let Some(keys) = &creds.keys else { return r };
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut headers = vec![
        ("host".to_string(), t.host.clone()),
        ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
        ("x-amz-date".to_string(), amz_date.clone()),
    ];
    if let Some(token) = &keys.session_token {
        headers.push(("x-amz-security-token".to_string(), token.clone()));
    }
    let auth = sign::authorization(
        keys,
        &Signing {
            method: "GET",
            path: &t.path,
            query: &[],
            headers: &headers,
            payload_hash: EMPTY_SHA256,
            region,
            service: "s3",
            amz_date: &amz_date,
        },
    );
    // `host` is the one the client sends from the URL.
    for (k, v) in headers.into_iter().filter(|(k, _)| k != "host") {
        r = r.header(&k, v);
    }
    r.header("authorization", auth)
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// `eu-west-1`, `us-gov-west-1`, `cn-north-1`: lower-case letters, digits and dashes.
fn is_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !r.starts_with('-')
}

/// A refusal explained: what S3 said, and what to check.
fn explain(resp: Response, src: &ObjectSource, t: &Target, origin: &Origin, region_set: bool) -> String {
    let status = resp.status;
    let bucket_region = header(&resp, "x-amz-bucket-region").filter(|r| is_region(r));
    let body = resp.error_text();
    let code = xml_text(&body, "Code").unwrap_or_default();
    let message = xml_text(&body, "Message").map(|m| one_line(&m)).unwrap_or_default();
    let (bucket, key, at) = (&src.bucket, &src.key, &t.shown_base);
    let said = if message.is_empty() { String::new() } else { format!(" ({message})") };
    match code.as_str() {
        "NoSuchKey" => format!(
            "the object {key:?} is not in the bucket {bucket:?} at {at}: check the object's name in --context \
             (s3://BUCKET with no path fetches context.tar.gz, as kaniko does)"
        ),
        "NoSuchBucket" => format!(
            "the bucket {bucket:?} does not exist at {at}: check its name, and S3_ENDPOINT (an S3-compatible store) \
             or AWS_REGION"
        ),
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => format!(
            "access denied to s3://{bucket}/{key} (HTTP {status}{said}): check {}; the credentials need \
             s3:GetObject on it (S3 also answers so for a missing object when they may not list the bucket)",
            origin.check()
        ),
        "InvalidAccessKeyId" => {
            format!("the store at {at} does not know the access key id{said}: check {}", origin.check())
        }
        "SignatureDoesNotMatch" => format!(
            "the store at {at} refused the request's signature{said}: the secret key does not belong to the access \
             key id: check {}",
            origin.check()
        ),
        "ExpiredToken" | "TokenRefreshRequired" | "InvalidToken" => format!(
            "the store at {at} refused the session token ({code}){said}: temporary credentials expire: check {} \
             and get fresh ones",
            origin.check()
        ),
        "RequestTimeTooSkewed" => {
            format!("the store at {at} refused the request's time{said}: this machine's clock is wrong")
        }
        "PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException" => format!(
            "the bucket {bucket:?} is in another region than {}{said}: set AWS_REGION{}",
            if region_set { "the one set" } else { "us-east-1 (no AWS_REGION, AWS_DEFAULT_REGION or profile region)" },
            bucket_region.map(|r| format!("={r}")).unwrap_or_default()
        ),
        _ if status == 404 => format!("no object s3://{bucket}/{key} at {at} (HTTP 404{said})"),
        _ if status == 403 => {
            format!("the store at {at} refused s3://{bucket}/{key} (HTTP 403{said}): check {}", origin.check())
        }
        "" => format!("the store at {at} answered HTTP {status} to the download"),
        _ => format!("the store at {at} answered HTTP {status} {}{said}", one_line(&code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(pairs: &[(&str, &str)]) -> Result<Endpoint, String> {
        let v: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Endpoint::from_env(&move |k: &str| v.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn addressing_virtual_hosted_or_path_style() {
        let aws = endpoint(&[]).unwrap();
        let t = aws.target("my-bucket", "dir/ctx file.tar.gz", "eu-west-1", false);
        assert_eq!(t.url, "https://my-bucket.s3.eu-west-1.amazonaws.com/dir/ctx%20file.tar.gz");
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("my-bucket.s3.eu-west-1.amazonaws.com", "/dir/ctx%20file.tar.gz")
        );
        // Dots over https, upper case: path style.
        let t = aws.target("my.bucket", "k", "us-east-1", false);
        assert_eq!(t.url, "https://s3.us-east-1.amazonaws.com/my.bucket/k");
        assert_eq!(aws.target("B_x", "k", "cn-north-1", false).url, "https://s3.cn-north-1.amazonaws.com.cn/B_x/k");
        // kaniko's S3_ENDPOINT, with or without a scheme, a port, a path.
        let minio = endpoint(&[("S3_ENDPOINT", "minio.example:9000")]).unwrap();
        assert_eq!(minio.target("b1b", "k", "us-east-1", false).url, "https://b1b.minio.example:9000/k");
        assert_eq!(minio.target("b1b", "k", "us-east-1", true).url, "https://minio.example:9000/b1b/k");
        let ip = endpoint(&[("S3_ENDPOINT", "http://127.0.0.1:5000/s3/"), ("AWS_ENDPOINT_URL", "http://x")]).unwrap();
        let t = ip.target("bkt", "a/b", "us-east-1", false);
        assert_eq!((t.url.as_str(), t.host.as_str()), ("http://127.0.0.1:5000/s3/bkt/a/b", "127.0.0.1:5000"));
        assert!(!t.virtual_hosted, "an IP address has no name to put the bucket in");
        assert_eq!(
            endpoint(&[("AWS_ENDPOINT_URL_S3", "http://[::1]:9")]).unwrap().target("bkt", "k", "r", false).host,
            "[::1]:9"
        );
        assert!(endpoint(&[("S3_ENDPOINT", "ftp://h")]).unwrap_err().contains("expected http(s)"));
        assert!(check_key("a/../b").is_err() && check_key("a/.b").is_ok());
        // A region from a server's header becomes part of a host name: only a region's shape.
        assert!(is_region("us-gov-west-1") && !is_region("evil.example/x") && !is_region("") && !is_region("-x"));
    }

    /// A store on 127.0.0.1 giving `answers` in turn, one connection each; returns each
    /// request's head.
    fn serve(answers: Vec<Vec<u8>>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{Read as _, Write as _};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for a in answers {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 8192];
                let n = s.read(&mut buf).unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
                s.write_all(&a).unwrap();
            }
            seen
        });
        (url, h)
    }

    fn answer(head: &str, body: &[u8]) -> Vec<u8> {
        let mut v =
            format!("HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
        v.extend_from_slice(body);
        v
    }

    fn fetch_with(url: &str, extra: &[(&str, &str)]) -> (Result<ContextOrigin, ContextError>, tempfile::TempDir) {
        let mut vars = vec![
            ("S3_ENDPOINT".to_string(), url.to_string()),
            ("HOME".to_string(), "/nonexistent".to_string()),
            ("AWS_ACCESS_KEY_ID".to_string(), "AKIDTEST".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "test-secret-key".to_string()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let env = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let work = tempfile::tempdir().unwrap();
        let git = super::super::GitOptions::default();
        let opts = FetchOptions {
            stall_timeout: crate::registry::DEFAULT_STALL_TIMEOUT,
            work_dir: work.path(),
            limits: Default::default(),
            sub_path: None,
            git: &git,
            container: false,
            trowel_dir: work.path(),
            env: &env,
            source_date_epoch: false,
            stop: None,
        };
        let src = ObjectSource { bucket: "bkt".into(), key: "ctx.tar".into(), shown: "s3://bkt/ctx.tar".into() };
        let r = fetch(&src, work.path(), &opts).map(|(o, secrets)| {
            assert_eq!(secrets, ["test-secret-key"]);
            o
        });
        (r, work)
    }

    #[test]
    fn a_bucket_in_another_region_is_asked_there_once() {
        let mut b = ::tar::Builder::new(Vec::new());
        let mut h = ::tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(::tar::EntryType::Regular);
        b.append_data(&mut h, "f.txt", &b"abc"[..]).unwrap();
        let archive = b.into_inner().unwrap();
        let moved = b"<Error><Code>PermanentRedirect</Code><Message>elsewhere</Message></Error>";
        let (url, server) = serve(vec![
            answer("301 Moved Permanently\r\nx-amz-bucket-region: eu-west-1", moved),
            answer("200 OK", &archive),
        ]);
        let (r, work) = fetch_with(&url, &[]);
        let origin = r.unwrap();
        assert_eq!((origin.kind, origin.files, origin.bytes), (ContextKind::S3, 1, archive.len() as u64));
        assert_eq!(std::fs::read(work.path().join("f.txt")).unwrap(), b"abc");
        let seen = server.join().unwrap();
        assert!(seen[0].starts_with("GET /bkt/ctx.tar ") && seen[0].contains("/us-east-1/s3/aws4_request"));
        assert!(seen[1].contains("/eu-west-1/s3/aws4_request"), "{}", seen[1]);
        assert!(seen.iter().all(|s| !s.contains("test-secret-key")));

        // A region that is not a region's name is not followed, nor shown; the set one is named.
        let (url, _server) = serve(vec![answer("301 Moved Permanently\r\nx-amz-bucket-region: evil.example/x", moved)]);
        let err = fetch_with(&url, &[("AWS_REGION", "us-west-2")]).0.unwrap_err().to_string();
        assert!(err.contains("is in another region than the one set (elsewhere): set AWS_REGION"), "{err}");
        assert!(!err.contains("evil"), "{err}");
        let err = fetch_with(&url, &[("AWS_REGION", "eu west")]).0.unwrap_err().to_string();
        assert!(err.contains("\"eu west\"") && err.contains("is not a region's name"), "{err}");
    }

    #[test]
    fn refusals_name_what_to_check() {
        let t = endpoint(&[("S3_ENDPOINT", "http://127.0.0.1:1")]).unwrap().target("b", "k", "us-east-1", false);
        assert!(t.style_hint(&endpoint(&[("S3_ENDPOINT", "http://127.0.0.1:1")]).unwrap()).is_empty());
        assert_eq!(
            xml_text("<Error><Code>NoSuchKey</Code><Message>a &amp; b &lt;c&gt;</Message></Error>", "Message")
                .as_deref(),
            Some("a & b <c>")
        );
        assert_eq!(one_line("bad\x1b[31m\nnews"), "bad [31m news");
        let sts = "<AssumeRoleWithWebIdentityResponse><Credentials><AccessKeyId>ASIA1</AccessKeyId>\
                   <SecretAccessKey>s/+k</SecretAccessKey></Credentials></AssumeRoleWithWebIdentityResponse>";
        assert_eq!(xml_text(sts, "SecretAccessKey").as_deref(), Some("s/+k"));
        assert_eq!(xml_text(sts, "SessionToken"), None);
    }
}
